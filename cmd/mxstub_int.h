/* mxstub_int.h - what the two halves of mxstub share.
 *
 * mxstub.c is the HTTP server (libuv + llhttp, routing, injection, stats);
 * mxstub_data.c makes the answers: ocids from names, the ocid -> name
 * registry, and deterministic synthetic basic / item-equipment / character
 * list documents. Everything here runs on the one loop thread.
 */
#ifndef MXSTUB_INT_H
#define MXSTUB_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_jsonw.h"

#define MX__STUB_OCID_LEN 32        /* hex digits, as the real API's ocids */
#define MX__STUB_NAME_MAX 64        /* bytes of UTF-8; real names are <= 12 chars */
#define MX__STUB_REGISTRY_CAP 16384 /* ocid -> name entries (power of two) */

/* A character given with --character NAME=FILE: its equipment is the file. */
struct mx__stub_fixture {
    char name[MX__STUB_NAME_MAX + 1];
    char ocid[MX__STUB_OCID_LEN + 1];
    char cls[64]; /* "character_class" read from the file, or "" */
    char *body;   /* owned: the file's bytes, served as they are */
    size_t body_len;
    char *gz; /* owned: gzip of body, made on first gzip request */
    size_t gz_len;
};

/* mx__stub_hash64 - FNV-1a over n bytes, then a splitmix64 finish with seed.
 * Stable across runs and machines: it names synthetic data. */
uint64_t mx__stub_hash64(const void *p, size_t n, uint64_t seed);

/* mx__stub_ocid - the deterministic ocid (32 lowercase hex digits + NUL) of
 * a character name. */
void mx__stub_ocid(const char *name, size_t n, char out[MX__STUB_OCID_LEN + 1]);

/* mx__stub_ocid_valid - true if s is 32 lowercase hex digits. */
bool mx__stub_ocid_valid(const char *s);

/* mx__stub_name_valid - true if a character name is acceptable: 1 to
 * MX__STUB_NAME_MAX bytes of valid UTF-8 without control characters. */
bool mx__stub_name_valid(const char *s, size_t n);

/* mx__stub_registry_put - remember ocid -> name. Returns 0, or MX_EFULL when
 * the registry is full (counted in *refused by the caller). Re-putting the
 * same ocid is a no-op. */
int mx__stub_registry_put(const char *ocid, const char *name);
/* mx__stub_registry_get - the name for an ocid, or NULL. The pointer is
 * valid until mx__stub_registry_clear. */
const char *mx__stub_registry_get(const char *ocid);
/* mx__stub_registry_clear - forget everything (at exit). */
void mx__stub_registry_clear(void);

/* mx__stub_gen_basic - a character/basic record. name may be NULL (the ocid
 * was never seen: a name is made from the ocid); cls overrides the synthetic
 * class when non-empty. */
void mx__stub_gen_basic(struct mx_jsonw *w, const char *ocid, const char *name, const char *cls);

/* mx__stub_gen_equipment - a synthetic item-equipment document for an ocid,
 * same shape as the real one (three presets and item_equipment). */
void mx__stub_gen_equipment(struct mx_jsonw *w, const char *ocid);

/* mx__stub_gen_list - the character/list answer for an API key. Every listed
 * character is registered (ocid -> name); registry refusals are added to
 * *refused. */
void mx__stub_gen_list(struct mx_jsonw *w, const char *key, size_t key_len, uint64_t *refused);

#endif
