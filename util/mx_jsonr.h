/* mx_jsonr.h - small JSON readers for the documents the service receives
 * besides equipment: request bodies ({apiKey, userIgn}), JWT headers and
 * claims, upstream records ({ocid}, character basic, character list).
 *
 * They are implemented on simdjson (mx_jsonr_simdjson.cpp, the library
 * mx_jsonr) so no hand-written JSON parser exists. Any
 * thread: each thread reuses its own parser.
 */
#ifndef MX_JSONR_H
#define MX_JSONR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MX_JSONR_MAX_INPUT (4u << 20) /* larger inputs are refused (MX_ETOOBIG) */

enum mx_jr_kind { MX_JR_STR, MX_JR_INT, MX_JR_BOOL };

/* One top-level field to extract. key, kind, required, buf and cap are
 * inputs; present, len, i and b are outputs. */
struct mx_jr_field {
    const char *key;
    enum mx_jr_kind kind;
    bool required;
    char *buf;    /* MX_JR_STR: destination (NUL-terminated) */
    size_t cap;   /* bytes at buf, including the NUL */
    bool present; /* found and not null */
    size_t len;   /* MX_JR_STR: string length */
    int64_t i;    /* MX_JR_INT (a number, or a string of digits) */
    bool b;       /* MX_JR_BOOL */
};

/* mx_jsonr_object - parse len bytes as one JSON object and fill the n
 * fields. Unknown keys are ignored. Returns 0; MX_EDECODE when the input is
 * not JSON or not an object; MX_EINVAL when a field has the wrong type, a
 * required one is missing or a string field holds a control character
 * (U+0000-U+001F, U+007F: NUL would cut the C copy short); MX_ETOOBIG when a string does not fit
 * its buffer or the input is over MX_JSONR_MAX_INPUT. err (errlen bytes, may be NULL) gets a
 * message naming the field. */
int mx_jsonr_object(const char *json, size_t len, struct mx_jr_field *f, size_t n, char *err,
                    size_t errlen);

/* A character of an account (from /maplestory/v1/character/list). */
struct mx_jr_character {
    char ocid[64];
    char name[64];
    char world[64];
};

/* mx_jsonr_character_list - the characters of account_list[].character_list[]
 * (at most max; *n gets how many were stored, *total how many exist).
 * Returns 0, MX_EDECODE (not JSON, or no account_list array), MX_ETOOBIG. */
int mx_jsonr_character_list(const char *json, size_t len, struct mx_jr_character *out, size_t max,
                            size_t *n, size_t *total, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
