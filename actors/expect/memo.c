/* memo.c - bounded 4-way set-associative memo table (see mx_memo.h).
 * Entries live in one array allocated at creation; nothing grows afterwards.
 */
#include "mx_memo.h"

#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

#define WAYS 4

struct entry {
    uint64_t hash;
    uint64_t used; /* tick of last use; 0 = empty slot */
    uint32_t gen;  /* the memo's generation when stored; older = empty */
    uint16_t klen;
    unsigned char key[MX_MEMO_KEY_MAX];
    /* value follows (val_size bytes) */
};

struct mx_memo {
    size_t nsets, val_size, stride;
    uint64_t tick;
    uint32_t gen; /* mx_memo_clear bumps it: O(1) instead of a memset of every slot */
    struct mx_memo_stats st;
    unsigned char *slots; /* nsets * WAYS * stride bytes */
};

/* 8 bytes a step (keys are a few hundred bytes: a byte-wise FNV showed in
 * profiles), then the tail byte by byte. */
static uint64_t hash64(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = (h ^ v) * 1099511628211ull;
        h ^= h >> 32;
    }
    for (; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static struct entry *slot(const struct mx_memo *m, size_t set, int way)
{
    struct entry *e = (struct entry *)(m->slots + (set * WAYS + (size_t)way) * m->stride);
    if (e->used && e->gen != m->gen)
        e->used = 0; /* cleared since it was stored */
    return e;
}

int mx_memo_new(size_t capacity, size_t val_size, struct mx_memo **out)
{
    struct mx_memo *m;
    if (!out || !val_size || val_size > MX_MEMO_VAL_MAX)
        return MX_EINVAL;
    *out = NULL;
    m = calloc(1, sizeof *m);
    if (!m)
        return MX_ENOMEM;
    m->nsets = (capacity + WAYS - 1) / WAYS;
    if (!m->nsets)
        m->nsets = 1;
    m->val_size = val_size;
    m->stride = (sizeof(struct entry) + val_size + 15) & ~(size_t)15;
    m->slots = calloc(m->nsets * WAYS, m->stride);
    if (!m->slots) {
        free(m);
        return MX_ENOMEM;
    }
    m->st.capacity = m->nsets * WAYS;
    *out = m;
    return 0;
}

void mx_memo_free(struct mx_memo *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

bool mx_memo_get(struct mx_memo *m, const void *key, size_t klen, void *val)
{
    if (klen > MX_MEMO_KEY_MAX) {
        m->st.misses++;
        return false;
    }
    uint64_t h = hash64(key, klen);
    size_t set = (size_t)(h % m->nsets);
    for (int w = 0; w < WAYS; w++) {
        struct entry *e = slot(m, set, w);
        if (e->used && e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) {
            e->used = ++m->tick;
            memcpy(val, (unsigned char *)e + sizeof *e, m->val_size);
            m->st.hits++;
            return true;
        }
    }
    m->st.misses++;
    return false;
}

void mx_memo_put(struct mx_memo *m, const void *key, size_t klen, const void *val)
{
    if (klen > MX_MEMO_KEY_MAX) {
        m->st.refused++;
        return;
    }
    uint64_t h = hash64(key, klen);
    size_t set = (size_t)(h % m->nsets);
    struct entry *victim = NULL;
    for (int w = 0; w < WAYS; w++) {
        struct entry *e = slot(m, set, w);
        if (e->used && e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) {
            victim = e; /* overwrite in place */
            break;
        }
        if (!victim || e->used < victim->used)
            victim = e;
    }
    if (victim->used &&
        !(victim->hash == h && victim->klen == klen && !memcmp(victim->key, key, klen)))
        m->st.evictions++;
    else if (!victim->used)
        m->st.entries++;
    victim->hash = h;
    victim->gen = m->gen;
    victim->used = ++m->tick;
    victim->klen = (uint16_t)klen;
    memcpy(victim->key, key, klen);
    memcpy((unsigned char *)victim + sizeof *victim, val, m->val_size);
    m->st.inserts++;
}

void mx_memo_clear(struct mx_memo *m)
{
    if (++m->gen == 0) { /* wrapped after 2^32 clears: really empty the slots */
        memset(m->slots, 0, m->nsets * WAYS * m->stride);
        m->gen = 0;
    }
    m->st.entries = 0;
}

void mx_memo_get_stats(const struct mx_memo *m, struct mx_memo_stats *out)
{
    *out = m->st;
}
