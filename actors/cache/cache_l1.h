/* cache_l1.h - a cache shard's L1: a hash table of entries with one LRU
 * list, bounded in entries and in bytes, each entry with its own expiry.
 * Expired entries stay until the LRU evicts them, so that a failing
 * upstream can still be answered with the last value (marked stale).
 *
 * Keys are "<tag>|<part>[|<part>]" (mx__l1_key): "d|IGN|PRESET|OPTS"
 * expectation document, "c|IGN" character record, "o|IGN" ocid, "n|IGN"
 * unknown character, "e|OCID" raw equipment (with its document once one
 * was asked for). The table has no lock: it belongs to its shard's thread.
 * Times are mx_now_ms() values passed in, so the table has no clock of its
 * own (the unit test drives it).
 */
#ifndef MX_CACHE_L1_H
#define MX_CACHE_L1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_cache.h"

#define MX__L1_KEY_MAX 200                  /* key bytes, with its NUL */
#define MX__L1_ANY_AGE ((int64_t)INT64_MIN) /* mx__l1_get: expired entries too */

enum mx__l1_kind { K_DOC, K_CHAR, K_OCID, K_NEG, K_EQUIP };

struct mx__centry {
    struct mx__centry *hnext;         /* hash chain */
    struct mx__centry *lprev, *lnext; /* LRU list, most recent first */
    uint64_t hash;
    int64_t expires_ms; /* mx_now_ms clock */
    enum mx__l1_kind kind;
    struct mx_http_doc *doc;      /* K_DOC; K_EQUIP once asked as a document */
    struct mx_character_rec *rec; /* K_CHAR */
    struct mx_blob *blob;         /* K_EQUIP */
    char ocid[64];                /* K_OCID */
    size_t bytes;                 /* what this entry counts against max_bytes */
    uint16_t klen;
    char key[];
};

struct mx__l1 {
    struct mx__centry **buckets;
    uint32_t nbuckets; /* power of two */
    struct mx__centry *lru_head, *lru_tail;
    uint32_t nentries, max_entries;
    uint64_t nbytes, max_bytes;
    struct mx_cache_metrics *m; /* entries, bytes, evictions; may be NULL */
};

/* mx__l1_init - an empty table bounded by max_entries and max_bytes; m
 * (may be NULL) gets its entries/bytes gauges and evictions counter kept
 * current by the table. Aborts on out-of-memory. mx__l1_fini frees every
 * entry and the table (not l1 itself). */
void mx__l1_init(struct mx__l1 *l1, uint32_t max_entries, uint64_t max_bytes,
                 struct mx_cache_metrics *m);
void mx__l1_fini(struct mx__l1 *l1);

/* mx__key_hash - FNV-1a of n bytes (keys, and shard choice). Pure. */
uint64_t mx__key_hash(const char *k, size_t n);

/* mx__l1_key - write "<tag>|a[|b]" into buf (MX__L1_KEY_MAX bytes);
 * returns its length, or 0 when it does not fit. */
size_t mx__l1_key(char *buf, char tag, const char *a, const char *b);
/* mx__l1_doc_key - the key of q's expectation document of ign. */
size_t mx__l1_doc_key(char *buf, const struct mx_m_exp_get *q, const char *ign);

/* mx__l1_find - the entry under key, expired or not; no LRU touch. */
struct mx__centry *mx__l1_find(struct mx__l1 *l1, const char *key, size_t klen);

/* mx__l1_get - the entry under key if it expires after fresh_at
 * (MX__L1_ANY_AGE: any), made most recently used; else NULL. */
struct mx__centry *mx__l1_get(struct mx__l1 *l1, const char *key, size_t klen, int64_t fresh_at);

/* mx__l1_put - store an entry under key (replacing any), taking one
 * reference of doc and blob (either may be NULL); ocid is copied.
 * Then evicts least recently used entries, never the new one, until both
 * bounds hold. Returns the new entry (valid until the next put/remove). */
struct mx__centry *mx__l1_put(struct mx__l1 *l1, const char *key, size_t klen,
                              enum mx__l1_kind kind, struct mx_http_doc *doc, struct mx_blob *blob,
                              const char *ocid, int64_t expires_ms);

/* mx__l1_put_rec - mx__l1_put of a K_CHAR entry holding rec (one
 * reference taken). */
struct mx__centry *mx__l1_put_rec(struct mx__l1 *l1, const char *key, size_t klen,
                                  struct mx_character_rec *rec, int64_t expires_ms);

/* mx__l1_add_doc - attach doc (one reference taken) to an equipment entry
 * that shares its plain bytes with the entry's blob; counts its extra bytes. */
void mx__l1_add_doc(struct mx__l1 *l1, struct mx__centry *e, struct mx_http_doc *doc);

/* mx__l1_remove - unlink e and drop its references. */
void mx__l1_remove(struct mx__l1 *l1, struct mx__centry *e);

/* mx__l1_drop_character - remove the entries of one character: its
 * documents, record, unknown mark and (ocid non-empty) its equipment;
 * except the entry under keep (NULL: none). */
void mx__l1_drop_character(struct mx__l1 *l1, const char *ign, const char *ocid, const char *keep,
                           size_t keep_len);

#endif
