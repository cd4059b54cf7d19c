/* like_client.c - see like_client.h. */
#define _GNU_SOURCE
#include "like_client.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lc_account_id(const char *csv, char out[48])
{
    char *items[256], buf[64 * 40];
    snprintf(buf, sizeof buf, "%s", csv);
    int n = 0;
    for (char *p = buf, *sv = NULL, *t; (t = strtok_r(p, ",", &sv)) && n < 256; p = NULL)
        items[n++] = t;
    for (int i = 1; i < n; i++) /* insertion sort: a few ocids */
        for (int j = i; j > 0 && strcmp(items[j - 1], items[j]) > 0; j--) {
            char *x = items[j];
            items[j] = items[j - 1];
            items[j - 1] = x;
        }
    char joined[64 * 40] = "";
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(joined, ",");
        strcat(joined, items[i]);
    }
    unsigned char d[32], b[48];
    SHA256((unsigned char *)joined, strlen(joined), d);
    EVP_EncodeBlock(b, d, 32);
    for (int i = 0; i < 43; i++)
        out[i] = b[i] == '+' ? '-' : b[i] == '/' ? '_' : (char)b[i];
    out[43] = '\0';
}

int lc_stub_list(const struct stub *s, const char *key, char names[][72], int max, char *ocids,
                 size_t cap)
{
    char url[200];
    snprintf(url, sizeof url, "%s/maplestory/v1/character/list", s->base);
    struct resp r;
    if (http_get(url, key, false, &r) != 0 || r.status != 200)
        return -1;
    int n = 0;
    size_t o = 0;
    ocids[0] = '\0';
    for (const char *p = r.body; (p = strstr(p, "\"ocid\":\""));) {
        p += 8;
        const char *e = strchr(p, '"');
        if (!e)
            break;
        int k = snprintf(ocids + o, cap - o, "%s%.*s", o ? "," : "", (int)(e - p), p);
        if (k > 0 && (size_t)k < cap - o)
            o += (size_t)k;
        const char *nm = strstr(e, "\"character_name\":\"");
        if (nm && n < max) {
            nm += 18;
            const char *ne = strchr(nm, '"');
            snprintf(names[n], 72, "%.*s", (int)(ne - nm), nm);
            n++;
        }
        p = e;
    }
    resp_free(&r);
    return n;
}

int lc_users(const struct stub *s, const char *prefix, struct lc_user *u, int n)
{
    for (int i = 0; i < n; i++) {
        char names[12][72];
        snprintf(u[i].key, sizeof u[i].key, "%.12s-user-%d", prefix, i);
        if (lc_stub_list(s, u[i].key, names, 12, u[i].ocids, sizeof u[i].ocids) < 1)
            return -1;
        snprintf(u[i].ign, sizeof u[i].ign, "%s", names[0]);
        lc_account_id(u[i].ocids, u[i].acct);
    }
    return 0;
}

int lc_targets(const struct stub *s, const char *prefix, const struct lc_user *u, int nusers,
               char names[][72], char ocids[][40], int n)
{
    int nt = 0;
    for (int k = 0; nt < n && k < 100; k++) {
        char key[32], got[12][72], all[64 * 40];
        snprintf(key, sizeof key, "%.12s-target-%d", prefix, k);
        int m = lc_stub_list(s, key, got, 12, all, sizeof all);
        for (int i = 0; i < m && nt < n; i++) {
            bool dup = false;
            for (int x = 0; x < nt; x++)
                dup |= strcmp(names[x], got[i]) == 0;
            if (dup)
                continue;
            snprintf(names[nt], 72, "%.71s", got[i]);
            if (stub_ocid((struct stub *)s, got[i], ocids[nt]) != 200)
                return -1;
            bool owned = false;
            for (int x = 0; x < nusers && !owned; x++)
                owned = strstr(u[x].ocids, ocids[nt]) != NULL;
            if (!owned)
                nt++;
        }
    }
    return nt == n ? 0 : -1;
}

struct buf {
    char *p;
    size_t len;
};

static size_t sink(char *d, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = sz * n;
    char *np = realloc(b->p, b->len + add + 1);
    if (!np)
        abort();
    b->p = np;
    memcpy(b->p + b->len, d, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

long lc_req(CURL *h, int port, const char *method, const char *path, const char *token,
            const char *json, char **body)
{
    CURL *own = h ? NULL : curl_easy_init();
    if (own)
        h = own;
    char url[512], auth[1100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct buf b = {0};
    struct curl_slist *hd = NULL;
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hd = curl_slist_append(hd, auth);
    }
    if (json)
        hd = curl_slist_append(hd, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json ? json : "");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long st = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(hd);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    if (own)
        curl_easy_cleanup(own);
    if (body)
        *body = b.p;
    else
        free(b.p);
    return st;
}

char *lc_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = strdup(e);
    curl_free(e);
    return out;
}

/* one integer reply of c, or -1 */
static long long int_reply(redisContext *c, const char *fmt, int part)
{
    redisReply *r = redisCommand(c, fmt, part);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

long long lc_pending_work(redisContext *c)
{
    long long sum = 0;
    for (int k = 0; c && k < 16; k++) {
        long long d = int_reply(c, "ZCARD mx:mx:{lk%d}:d", k);
        long long j = d < 0 ? -1 : int_reply(c, "EXISTS mx:mx:{lk%d}:jid", k);
        if (j < 0)
            return -1;
        sum += d + j;
    }
    return c ? sum : -1;
}
