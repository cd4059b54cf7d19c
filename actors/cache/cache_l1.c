/* cache_l1.c - a cache shard's L1 (cache_l1.h): a chained hash table over
 * one LRU list, bounded in entries and bytes. It is its own file so that
 * the bounds, the LRU order and the expiry rules have a unit test
 * (test/cache/cache_l1_test.c) that needs no actor, Redis or MySQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_l1.h"
#include "mx_alloc.h"
#include "mx_blob.h"

uint64_t mx__key_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)k[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint32_t mx_svc_shard(const char *ign, size_t len, uint32_t n)
{
    return n ? (uint32_t)(mx__key_hash(ign, len) % n) : 0;
}

/* the gauges follow the table; one writer (the shard's thread) */
static void publish(struct mx__l1 *l1)
{
    if (!l1->m)
        return;
    MX_METRIC_SET(l1->m, entries, l1->nentries);
    MX_METRIC_SET(l1->m, bytes, l1->nbytes);
}

void mx__l1_init(struct mx__l1 *l1, uint32_t max_entries, uint64_t max_bytes,
                 struct mx_cache_metrics *m)
{
    memset(l1, 0, sizeof *l1);
    l1->max_entries = max_entries;
    l1->max_bytes = max_bytes;
    l1->m = m;
    l1->nbuckets = 1024;
    while (l1->nbuckets < max_entries && l1->nbuckets < (1u << 24))
        l1->nbuckets <<= 1;
    l1->buckets = xcalloc(l1->nbuckets, sizeof *l1->buckets);
}

void mx__l1_fini(struct mx__l1 *l1)
{
    while (l1->lru_head)
        mx__l1_remove(l1, l1->lru_head);
    free(l1->buckets);
    l1->buckets = NULL;
}

static void lru_unlink(struct mx__l1 *l1, struct mx__centry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        l1->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        l1->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct mx__l1 *l1, struct mx__centry *e)
{
    e->lprev = NULL;
    e->lnext = l1->lru_head;
    if (l1->lru_head)
        l1->lru_head->lprev = e;
    l1->lru_head = e;
    if (!l1->lru_tail)
        l1->lru_tail = e;
}

struct mx__centry *mx__l1_find(struct mx__l1 *l1, const char *key, size_t klen)
{
    uint64_t h = mx__key_hash(key, klen);
    for (struct mx__centry *e = l1->buckets[h & (l1->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

void mx__l1_remove(struct mx__l1 *l1, struct mx__centry *e)
{
    struct mx__centry **pp = &l1->buckets[e->hash & (l1->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(l1, e);
    l1->nentries--;
    l1->nbytes -= e->bytes;
    publish(l1);
    if (e->doc)
        mx_http_doc_unref(e->doc);
    mx_blob_unref(e->blob);
    mx_character_rec_unref(e->rec);
    free(e);
}

struct mx__centry *mx__l1_get(struct mx__l1 *l1, const char *key, size_t klen, int64_t fresh_at)
{
    struct mx__centry *e = mx__l1_find(l1, key, klen);
    if (!e || (fresh_at != MX__L1_ANY_AGE && e->expires_ms <= fresh_at))
        return NULL;
    lru_unlink(l1, e);
    lru_push(l1, e);
    return e;
}

static struct mx__centry *put(struct mx__l1 *l1, const char *key, size_t klen,
                              enum mx__l1_kind kind, struct mx_http_doc *doc, struct mx_blob *blob,
                              struct mx_character_rec *rec, const char *ocid, int64_t expires_ms)
{
    struct mx__centry *old = mx__l1_find(l1, key, klen);
    if (old)
        mx__l1_remove(l1, old);
    struct mx__centry *e = xcalloc(1, sizeof *e + klen + 1);
    e->hash = mx__key_hash(key, klen);
    e->klen = (uint16_t)klen;
    memcpy(e->key, key, klen);
    e->kind = kind;
    e->doc = doc;
    e->blob = blob;
    e->rec = rec;
    if (ocid)
        snprintf(e->ocid, sizeof e->ocid, "%s", ocid);
    e->expires_ms = expires_ms;
    e->bytes = sizeof *e + klen;
    if (doc) /* an equipment document shares its plain bytes with blob */
        e->bytes += sizeof *doc + (doc->plain == blob ? 0 : doc->plain->len) +
                    (doc->gzip ? doc->gzip->len : 0);
    if (blob)
        e->bytes += sizeof *blob + blob->len;
    if (rec)
        e->bytes += sizeof *rec;
    struct mx__centry **b = &l1->buckets[e->hash & (l1->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(l1, e);
    l1->nentries++;
    l1->nbytes += e->bytes;
    /* bounds: evict least recently used entries, never the new one */
    while ((l1->nentries > l1->max_entries || l1->nbytes > l1->max_bytes) && l1->lru_tail &&
           l1->lru_tail != e) {
        mx__l1_remove(l1, l1->lru_tail);
        if (l1->m)
            MX_METRIC_INC(l1->m, evictions);
    }
    publish(l1);
    return e;
}

struct mx__centry *mx__l1_put(struct mx__l1 *l1, const char *key, size_t klen,
                              enum mx__l1_kind kind, struct mx_http_doc *doc, struct mx_blob *blob,
                              const char *ocid, int64_t expires_ms)
{
    return put(l1, key, klen, kind, doc, blob, NULL, ocid, expires_ms);
}

struct mx__centry *mx__l1_put_rec(struct mx__l1 *l1, const char *key, size_t klen,
                                  struct mx_character_rec *rec, int64_t expires_ms)
{
    return put(l1, key, klen, K_CHAR, NULL, NULL, rec, NULL, expires_ms);
}

void mx__l1_add_doc(struct mx__l1 *l1, struct mx__centry *e, struct mx_http_doc *doc)
{
    size_t add = sizeof *doc + (doc->gzip ? doc->gzip->len : 0);
    e->doc = doc;
    e->bytes += add;
    l1->nbytes += add;
    publish(l1);
}

size_t mx__l1_key(char *buf, char tag, const char *a, const char *b)
{
    int n = snprintf(buf, MX__L1_KEY_MAX, "%c|%s%s%s", tag, a, b ? "|" : "", b ? b : "");
    return n < 0 || n >= MX__L1_KEY_MAX ? 0 : (size_t)n;
}

size_t mx__l1_doc_key(char *buf, const struct mx_m_exp_get *q, const char *ign)
{
    char opt[32];
    snprintf(opt, sizeof opt, "%u|%d%d%d", (unsigned)q->preset, q->star_catch, q->discount,
             q->sunday);
    return mx__l1_key(buf, 'd', ign, opt);
}

void mx__l1_drop_character(struct mx__l1 *l1, const char *ign, const char *ocid, const char *keep,
                           size_t keep_len)
{
    char pfx[MX__L1_KEY_MAX];
    int pl = snprintf(pfx, sizeof pfx, "|%s|", ign);
    char ek[MX__L1_KEY_MAX];
    size_t ekl = ocid && ocid[0] ? mx__l1_key(ek, 'e', ocid, NULL) : 0;
    for (struct mx__centry *e = l1->lru_head, *next; e; e = next) {
        next = e->lnext;
        if (keep && e->klen == keep_len && memcmp(e->key, keep, keep_len) == 0)
            continue;
        /* "d|IGN|..." documents, "c|IGN" records, "n|IGN" marks of that character */
        bool hit = (e->kind == K_DOC && e->klen > (size_t)pl &&
                    memcmp(e->key + 1, pfx, (size_t)pl) == 0) ||
                   ((e->kind == K_CHAR || e->kind == K_NEG) && e->klen == (size_t)pl &&
                    memcmp(e->key + 1, pfx, (size_t)pl - 1) == 0) ||
                   (ekl && e->kind == K_EQUIP && e->klen == ekl && memcmp(e->key, ek, ekl) == 0);
        if (hit)
            mx__l1_remove(l1, e);
    }
}
