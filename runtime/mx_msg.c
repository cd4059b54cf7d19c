/* mx_msg.c - message allocation, encoding and sharing (see mx_msg.h). */
#include "mx_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "mx: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

struct mx_msg *mx_msg_new(uint32_t type, uint32_t body_len)
{
    bool inl = body_len <= MX_MSG_INLINE_MAX;
    struct mx_msg *m = xmalloc(sizeof(*m) + (inl ? body_len : 0));
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
        c = xmalloc(sizeof(*c) + m->body_len);
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
    free(m);
}
