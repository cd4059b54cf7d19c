/* mx_memo.h - a bounded memo table (key bytes -> fixed-size value) with LRU
 * eviction inside 4-way sets, and hit/miss/eviction counters.
 *
 * Used to memoise cube and flame results so a "warm" document is cheap. Not
 * thread-safe: one memo belongs to one thread (one calculator context).
 */
#ifndef MX_MEMO_H
#define MX_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MX_MEMO_KEY_MAX 448 /* bytes; longer keys are never stored */
#define MX_MEMO_VAL_MAX 512 /* bytes of one value */

struct mx_memo;

struct mx_memo_stats {
    uint64_t hits, misses, inserts, evictions, refused; /* refused: key too long */
    size_t entries, capacity;
};

/* mx_memo_new - a memo of `capacity` entries (rounded up to a multiple of 4,
 * at least 4) holding values of val_size bytes. Returns 0, MX_EINVAL
 * (val_size 0 or > MX_MEMO_VAL_MAX) or MX_ENOMEM. */
int mx_memo_new(size_t capacity, size_t val_size, struct mx_memo **out);

/* mx_memo_free - free a memo (NULL is ignored). */
void mx_memo_free(struct mx_memo *m);

/* mx_memo_get - copy the value stored under key into val; false if absent. */
bool mx_memo_get(struct mx_memo *m, const void *key, size_t klen, void *val);

/* mx_memo_put - store val under key, evicting the set's least recently used
 * entry when the set is full. Keys above MX_MEMO_KEY_MAX are refused. */
void mx_memo_put(struct mx_memo *m, const void *key, size_t klen, const void *val);

/* mx_memo_clear - drop every entry (counters are kept). */
void mx_memo_clear(struct mx_memo *m);

/* mx_memo_get_stats - counters and sizes. */
void mx_memo_get_stats(const struct mx_memo *m, struct mx_memo_stats *out);

#endif
