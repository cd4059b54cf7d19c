/* mx_msg.c - message allocation, encoding and sharing (see mx_msg.h). */
#include "mx_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "mx_err.h"

/* Small messages (body <= SMALL_BODY) all have one size and are recycled
 * through a bounded per-thread cache: a receiver frees into its thread's
 * cache and senders on that thread allocate from it, which removes the
 * allocator from the common same-scheduler path. glibc's own per-thread
 * cache holds only 7 blocks per size. Freed blocks beyond CACHE_MAX go back
 * to the allocator; a thread's cache is freed when the thread exits. */
#define SMALL_BODY 64u
#ifdef MX_SANITIZED
#define CACHE_MAX 0u /* let AddressSanitizer see every free */
#else
#define CACHE_MAX 512u
#endif

struct msg_cache {
    struct mx_msg *head; /* linked through node.next (plain store: thread-private) */
    uint32_t n;
};

static const uint32_t cache_max = CACHE_MAX; /* a variable: 0 is not a constant compare */
static __thread struct msg_cache t_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_drain(void *arg)
{
    struct msg_cache *c = arg;
    while (c->head) {
        struct mx_msg *m = c->head;
        c->head = (struct mx_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
        free(m);
    }
    c->n = 0;
}

static void cache_key_init(void)
{
    pthread_key_create(&cache_key, cache_drain);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "mx: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

static struct mx_msg *alloc_small(void)
{
    struct mx_msg *m = t_cache.head;
    if (m) {
        t_cache.head = (struct mx_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
        t_cache.n--;
        return m;
    }
    return xmalloc(sizeof(struct mx_msg) + SMALL_BODY);
}

static void free_small(struct mx_msg *m)
{
    if (t_cache.n >= cache_max) {
        free(m);
        return;
    }
    if (t_cache.n == 0 && !t_cache.head) {
        /* first use on this thread: register the exit-time drain */
        pthread_once(&cache_once, cache_key_init);
        pthread_setspecific(cache_key, &t_cache);
    }
    atomic_store_explicit(&m->node.next, (struct mx_mnode *)t_cache.head, memory_order_relaxed);
    t_cache.head = m;
    t_cache.n++;
}

struct mx_msg *mx_msg_new(uint32_t type, uint32_t body_len)
{
    bool inl = body_len <= MX_MSG_INLINE_MAX;
    struct mx_msg *m = body_len <= SMALL_BODY ? alloc_small()
                                              : xmalloc(sizeof(*m) + (inl ? body_len : 0));
    memset(m, 0, sizeof(*m));
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
    const struct mx_msg_desc *d = mx_proto_desc(type);
    uint8_t stackbuf[MX_MSG_INLINE_MAX];
    size_t len;
    int rc;
    if (!d)
        return MX_EINVAL;
    rc = mx_proto_encode(d, fields, stackbuf, sizeof(stackbuf), &len);
    if (rc == 0) {
        struct mx_msg *m = mx_msg_new(type, (uint32_t)len);
        memcpy(mx_msg_body_mut(m), stackbuf, len);
        *out = m;
        return 0;
    }
    /* larger than the inline limit: grow a heap buffer up to the body cap */
    for (size_t cap = 4 * MX_MSG_INLINE_MAX; cap <= MX_ENV_MAX_BODY; cap *= 4) {
        uint8_t *buf = xmalloc(cap);
        rc = mx_proto_encode(d, fields, buf, cap, &len);
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
    return mx_proto_decode(mx_proto_desc(m->env.type), m->body, m->body_len, fields);
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
