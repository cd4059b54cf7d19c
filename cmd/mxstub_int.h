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

/* mx__stub_gen_list - the character/list answer for an API key: the
 * synthetic characters, then the nextra names of extra (--account-character)
 * in the first account. Every listed character is registered (ocid ->
 * name); registry refusals are added to *refused. */
void mx__stub_gen_list(struct mx_jsonw *w, const char *key, size_t key_len,
                       const char *const *extra, size_t nextra, uint64_t *refused);

/* ---- the webhook sink (mxstub_sink.c): outbox and alert deliveries ----
 * POST /sink/<anything> records the request's Idempotency-Key (a set with
 * a count per key: effects are counted once per key, repeats apart) and
 * answers 200, or fails on demand. Control: POST /__stub/sink?fail=N
 * (fail the next N), &fail_all=0|1, &status=400..599, &latency_ms=;
 * GET /__stub/sink/stats; GET /__stub/sink/has?key=K; GET
 * /__stub/sink/keys; POST /__stub/sink/reset. See docs/mxstub.md. */

#define MX__STUB_SINK_KEYS (1u << 20) /* distinct keys remembered; more are refused, counted */
#define MX__STUB_SINK_KEY_MAX 191

struct mx__stub_answer {
    int status;
    char *body; /* malloc'd */
    size_t len;
    uint64_t delay_ms;
};

/* mx__stub_sink_post - a POST to /sink/...; key NULL when the request had
 * no Idempotency-Key header. Fills a. */
void mx__stub_sink_post(const char *key, size_t key_len, struct mx__stub_answer *a);

/* mx__stub_chat_post - the fake OpenAI-compatible chat-completions
 * endpoint (POST /v1/chat/completions): counts calls and answers "stub
 * analysis <n>" as choices[0].message.content, or 500 while ai_fail=1. */
void mx__stub_chat_post(struct mx__stub_answer *a);

/* mx__stub_sink_control - a /__stub/sink control request (path without
 * the query, q the query or NULL). Returns false when path is not one of
 * the sink's (a is untouched then). */
bool mx__stub_sink_control(const char *path, const char *q, bool post, struct mx__stub_answer *a);

/* mx__stub_sink_free - forget the keys (at exit). */
void mx__stub_sink_free(void);

#endif
