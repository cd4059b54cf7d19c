/* like_client.h - what the tests that drive likes share: the seed's liker
 * identity computed independently of mx, a character list from mxstub, and
 * HTTP requests through a kept-alive libcurl handle. */
#ifndef LIKE_CLIENT_H
#define LIKE_CLIENT_H

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <stddef.h>

#include "../stub/stub_harness.h"

/* lc_account_id - base64url_nopad(SHA-256(join(",", sort(ocids)))) of the
 * comma-separated csv into out (43 characters and a NUL). */
void lc_account_id(const char *csv, char out[48]);

/* lc_stub_list - the characters of an API key's account(s) from mxstub s:
 * up to max names (72 bytes each) and every ocid comma-separated into
 * ocids (cap bytes). Returns the number of names, or -1. */
int lc_stub_list(const struct stub *s, const char *key, char names[][72], int max, char *ocids,
                 size_t cap);

/* A user of the tests: an API key mxstub knows, a character of its
 * account to sign in with, every ocid of the account, the seed's account id
 * and, once signed in, a token. */
struct lc_user {
    char key[32];
    char ign[72];
    char ocids[64 * 40];
    char acct[48];
    char token[1024];
};

/* lc_users - n users with keys "<prefix>-user-<i>" from mxstub s (not
 * signed in). Returns 0 or -1. */
int lc_users(const struct stub *s, const char *prefix, struct lc_user *u, int n);

/* lc_targets - n character names mxstub knows (from keys
 * "<prefix>-target-<k>"), no two alike and none owned by any of the
 * nusers users (mxstub derives an ocid from the name, so a user may own a
 * character of the same name), with their ocids. Returns 0 or -1. */
int lc_targets(const struct stub *s, const char *prefix, const struct lc_user *u, int nusers,
               char names[][72], char ocids[][40], int n);

/* lc_req - one request on handle h (NULL: a fresh one) to 127.0.0.1:port:
 * method GET, POST or DELETE, an optional Bearer token and JSON body. Returns
 * the status (0: no answer) and the body in *body (malloc'd; may be NULL). */
long lc_req(CURL *h, int port, const char *method, const char *path, const char *token,
            const char *json, char **body);

/* lc_escape - s percent-encoded for a path (malloc'd). */
char *lc_escape(const char *s);

/* lc_pending_work - the like pairs still pending plus the open journals,
 * over every partition, asked on the connection c (docs/likes.md keys);
 * -1 when c gives no answer. */
long long lc_pending_work(redisContext *c);

#endif
