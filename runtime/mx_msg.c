/* mx_msg.c - message allocation, encoding and sharing (see mx_msg.h). */
#include "mx_msg.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "mx_alloc.h"
#include "mx_err.h"

/* Small messages (body <= SMALL_BODY) all have one size and are recycled
 * through per-thread pools, so the allocator is off the common path:
 *
 * - a block remembers the pool it came from (a small header before the
 *   message);
 * - freed on its pool's own thread, it goes on the pool's private list;
 * - freed on another thread (a message that crossed schedulers), it is
 *   pushed back onto its pool's "returned" stack, one CAS, and the owner
 *   takes the whole stack with one exchange when its private list runs dry.
 *
 * Without the return path a one-way stream between two schedulers mallocs
 * every message on one thread and frees it on the other, and glibc's arena
 * lock (futex waits in the kernel) became the largest cost of the
 * cross-scheduler and fan-in shapes. The private list holds at most
 * CACHE_MAX blocks (beyond that a free goes to the allocator); the returned
 * stack holds at most the pool's blocks in flight. A thread claims one of
 * MAX_POOLS pools on its first small allocation and gives it back (drained)
 * when it exits; threads past MAX_POOLS, and AddressSanitizer builds (so it
 * sees every free), use the allocator directly. ThreadSanitizer builds keep
 * the pools, so the return path's races are checked. */
#define SMALL_BODY 64u
#define MAX_POOLS 64u
#define NO_POOL 0xffffffffu
#ifdef MX_SANITIZE_ADDRESS
#define CACHE_MAX 0u
#else
#define CACHE_MAX 4096u
#endif

struct small_blk {
    uint32_t pool; /* index into pools[], or NO_POOL */
    uint32_t pad_[3];
    struct mx_msg m; /* followed by SMALL_BODY bytes of inline body */
};

struct msg_pool {
    /* pushed by other threads, taken whole by the owner; each pool is two
     * cache lines of its own (80 bytes unaligned put one pool's owner words
     * on the line of the next pool's returned stack) */
    _Alignas(64) _Atomic(struct mx_msg *) returned;
    char pad_[64 - sizeof(void *)];
    /* owner thread only */
    struct mx_msg *head; /* linked through node.next */
    uint32_t n;
    _Atomic int claimed;
};

static const uint32_t cache_max = CACHE_MAX; /* a variable: 0 is not a constant compare */
static struct msg_pool pools[MAX_POOLS];
static __thread struct msg_pool *t_pool;
static __thread bool t_pool_tried;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static inline struct small_blk *blk_of(struct mx_msg *m)
{
    return (struct small_blk *)((char *)m - offsetof(struct small_blk, m));
}

static inline struct mx_msg *link_next(struct mx_msg *m)
{
    /* relaxed: the list is private to one thread once taken */
    return (struct mx_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
}

static void free_list(struct mx_msg *m)
{
    while (m) {
        struct mx_msg *next = link_next(m);
        free(blk_of(m));
        m = next;
    }
}

/* Thread exit: free what the pool holds and give the slot back. A block
 * returned after this waits on the stack for the slot's next owner. */
static void pool_release(void *arg)
{
    struct msg_pool *p = arg;
    t_pool = NULL; /* frees from later destructors go to the allocator */
    t_pool_tried = true;
    free_list(p->head);
    p->head = NULL;
    p->n = 0;
    /* acquire: see the blocks' contents written before their push */
    free_list(atomic_exchange_explicit(&p->returned, NULL, memory_order_acquire));
    /* release: the next claimer sees head and n reset */
    atomic_store_explicit(&p->claimed, 0, memory_order_release);
}

static void pool_key_init(void)
{
    pthread_key_create(&pool_key, pool_release);
}

static struct msg_pool *my_pool(void)
{
    if (t_pool || t_pool_tried || cache_max == 0)
        return t_pool;
    t_pool_tried = true;
    pthread_once(&pool_once, pool_key_init);
    for (uint32_t i = 0; i < MAX_POOLS; i++) {
        int want = 0;
        /* acquire: pairs with pool_release's store; the slot is ours */
        if (atomic_compare_exchange_strong_explicit(&pools[i].claimed, &want, 1,
                                                    memory_order_acquire, memory_order_relaxed)) {
            t_pool = &pools[i];
            pthread_setspecific(pool_key, t_pool);
            break;
        }
    }
    return t_pool;
}

static struct mx_msg *alloc_small(void)
{
    struct msg_pool *p = my_pool();
    if (p) {
        if (!p->head) {
            /* acquire: pairs with the release CAS in free_small */
            struct mx_msg *got = atomic_exchange_explicit(&p->returned, NULL, memory_order_acquire);
            /* keep at most cache_max; the rest goes back to the allocator */
            uint32_t n = 0;
            struct mx_msg *last = NULL;
            for (struct mx_msg *m = got; m && n < cache_max; m = link_next(m)) {
                last = m;
                n++;
            }
            if (last) {
                free_list(link_next(last));
                atomic_store_explicit(&last->node.next, NULL, memory_order_relaxed);
            }
            p->head = got;
            p->n = n;
        }
        struct mx_msg *m = p->head;
        if (m) {
            p->head = link_next(m);
            p->n--;
            return m;
        }
    }
    struct small_blk *b = xmalloc(sizeof(*b) + SMALL_BODY);
    b->pool = p ? (uint32_t)(p - pools) : NO_POOL;
    return &b->m;
}

static void free_small(struct mx_msg *m)
{
    struct small_blk *b = blk_of(m);
    struct msg_pool *mine = my_pool();
    if (b->pool != NO_POOL && &pools[b->pool] != mine) {
        /* another thread's block: hand it back to its pool */
        struct msg_pool *p = &pools[b->pool];
        struct mx_msg *old = atomic_load_explicit(&p->returned, memory_order_relaxed);
        do {
            atomic_store_explicit(&m->node.next, (struct mx_mnode *)old, memory_order_relaxed);
            /* release: the owner's acquire exchange sees the block as we left it */
        } while (!atomic_compare_exchange_weak_explicit(&p->returned, &old, m, memory_order_release,
                                                        memory_order_relaxed));
        return;
    }
    if (!mine || mine->n >= cache_max) {
        free(b);
        return;
    }
    b->pool = (uint32_t)(mine - pools); /* adopts a block made without a pool */
    atomic_store_explicit(&m->node.next, (struct mx_mnode *)mine->head, memory_order_relaxed);
    mine->head = m;
    mine->n++;
}

static const struct mx_msg zero_msg;

struct mx_msg *mx_msg_new(uint32_t type, uint32_t body_len)
{
    bool inl = body_len <= MX_MSG_INLINE_MAX;
    struct mx_msg *m =
        body_len <= SMALL_BODY ? alloc_small() : xmalloc(sizeof(*m) + (inl ? body_len : 0));
    /* a copy of a zero template: GCC turns a constant-size memset into
     * `rep stos`, whose start-up cost was most of this function */
    memcpy(m, &zero_msg, sizeof(*m));
    m->env.type = type;
    m->body_len = body_len;
    if (inl) {
        m->body = body_len ? m->inline_body : NULL;
    } else {
        struct mx_body *b = xmalloc(sizeof(*b) + body_len);
        atomic_init(&b->refs, 1);
        b->len = body_len;
        m->shared = b;
        m->body = b->data;
    }
    return m;
}

uint8_t *mx_msg_body_mut(struct mx_msg *m)
{
    return m->shared ? m->shared->data : m->inline_body;
}

int mx_msg_encode(uint32_t type, const void *fields, struct mx_msg **out)
{
    uint8_t stackbuf[MX_MSG_INLINE_MAX];
    size_t len;
    /* most bodies fit a small message: encode straight into one */
    struct mx_msg *sm = mx_msg_new(type, SMALL_BODY);
    int rc = mx_proto_encode_id(type, fields, sm->inline_body, SMALL_BODY, &len);
    if (rc == 0) {
        sm->body_len = (uint32_t)len;
        sm->body = len ? sm->inline_body : NULL;
        *out = sm;
        return 0;
    }
    mx_msg_free(sm);
    if (rc != MX_ETOOBIG)
        return rc; /* unknown type */
    rc = mx_proto_encode_id(type, fields, stackbuf, sizeof(stackbuf), &len);
    if (rc == 0) {
        struct mx_msg *m = mx_msg_new(type, (uint32_t)len);
        memcpy(mx_msg_body_mut(m), stackbuf, len);
        *out = m;
        return 0;
    }
    /* larger than the inline limit: grow a heap buffer up to the body cap */
    for (size_t cap = 4 * MX_MSG_INLINE_MAX; cap <= MX_ENV_MAX_BODY; cap *= 4) {
        uint8_t *buf = xmalloc(cap);
        rc = mx_proto_encode_id(type, fields, buf, cap, &len);
        if (rc == 0) {
            struct mx_msg *m = mx_msg_new(type, (uint32_t)len);
            memcpy(mx_msg_body_mut(m), buf, len);
            free(buf);
            *out = m;
            return 0;
        }
        free(buf);
    }
    return MX_ETOOBIG;
}

int mx_msg_decode(const struct mx_msg *m, void *fields)
{
    return mx_proto_decode_id(m->env.type, m->body, m->body_len, fields);
}

struct mx_msg *mx_msg_share(const struct mx_msg *m)
{
    struct mx_msg *c;
    if (m->shared) {
        c = xmalloc(sizeof(*c));
        memcpy(c, m, sizeof(*c));
        /* relaxed: the new reference is derived from one we hold */
        atomic_fetch_add_explicit(&m->shared->refs, 1, memory_order_relaxed);
    } else {
        c = m->body_len <= SMALL_BODY ? alloc_small() : xmalloc(sizeof(*c) + m->body_len);
        memcpy(c, m, sizeof(*c));
        if (m->body_len)
            memcpy(c->inline_body, m->body, m->body_len);
        c->body = m->body_len ? c->inline_body : NULL;
    }
    atomic_store_explicit(&c->node.next, NULL, memory_order_relaxed);
    c->ptr = NULL;
    c->ptr_free = NULL;
    c->acct_bytes = 0;
    return c;
}

struct mx_msg *mx_msg_with_ptr(uint32_t type, void *ptr, void (*free_fn)(void *))
{
    struct mx_msg *m = mx_msg_new(type, 0);
    m->ptr = ptr;
    m->ptr_free = free_fn;
    return m;
}

void mx_msg_free(struct mx_msg *m)
{
    if (!m)
        return;
    if (m->ptr && m->ptr_free)
        m->ptr_free(m->ptr);
    /* acq_rel: the last owner must see every write made through other refs */
    if (m->shared && atomic_fetch_sub_explicit(&m->shared->refs, 1, memory_order_acq_rel) == 1)
        free(m->shared);
    if (!m->shared && m->body_len <= SMALL_BODY)
        free_small(m);
    else
        free(m);
}

bool mx_msg_local_only(uint32_t type)
{
    switch (type) {
#define MX_LOCAL_CASE(name, why) case MX_T_##name:
        MX_LOCAL_ONLY_MAP(MX_LOCAL_CASE)
#undef MX_LOCAL_CASE
        return true;
    default:
        return false;
    }
}
