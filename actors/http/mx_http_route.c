/* mx_http_route.c - the router (method + path pattern -> handler), percent
 * decoding with strict UTF-8 validation, and W3C traceparent parsing and
 * generation.
 *
 * Routing is a linear scan over a compiled table: the service has about
 * twenty routes, and a scan of short segment compares beats a trie at that
 * size. Everything here is a pure function of its inputs, so the router is
 * unit-tested and fuzzed without sockets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mx_err.h"
#include "mx_http_int.h"
#include "mx_log.h"
#include "mx_url.h"

static bool valid_method(const char *m)
{
    static const char *const ok[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", NULL};
    for (int i = 0; ok[i]; i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

static int compile(struct mx__http_proute *pr, const struct mx_http_route *r)
{
    const char *p = r->pattern;
    if (!r->method || !valid_method(r->method) || !p || p[0] != '/' || !r->fn || strstr(p, "//"))
        return MX_EINVAL;
    pr->r = *r;
    pr->r.method = strdup(r->method);
    pr->r.pattern = strdup(r->pattern);
    if (!pr->r.method || !pr->r.pattern)
        abort();
    p = pr->r.pattern + 1;
    int nparam = 0;
    pr->nseg = 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (pr->nseg == MX__HTTP_MAX_SEGS)
            return MX_EINVAL;
        struct mx__http_seg *s = &pr->seg[pr->nseg++];
        if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
            if (n == 2 || ++nparam > MX__HTTP_MAX_PARAMS || memchr(p + 1, '{', n - 2) ||
                memchr(p + 1, '}', n - 2))
                return MX_EINVAL;
            s->kind = 1;
            s->s = p + 1;
            s->len = (uint16_t)(n - 2);
        } else if (n == 2 && p[0] == '*' && p[1] == '*') {
            if (e || ++nparam > MX__HTTP_MAX_PARAMS)
                return MX_EINVAL; /* ** only last */
            s->kind = 2;
            s->s = p;
            s->len = 2;
        } else {
            if (memchr(p, '{', n) || memchr(p, '}', n) || memchr(p, '?', n) || memchr(p, '%', n))
                return MX_EINVAL;
            s->kind = 0;
            s->s = p;
            s->len = (uint16_t)n;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

void mx__http_router_fini(struct mx__http_router *rt)
{
    for (size_t i = 0; rt->routes && i < rt->n; i++) {
        free((char *)rt->routes[i].r.method);
        free((char *)rt->routes[i].r.pattern);
    }
    free(rt->routes);
    rt->routes = NULL;
    rt->n = 0;
}

int mx__http_router_init(struct mx__http_router *rt, const struct mx_http_route *routes, size_t n)
{
    rt->n = 0;
    rt->routes = calloc(n ? n : 1, sizeof(*rt->routes));
    if (!rt->routes)
        abort();
    for (size_t i = 0; i < n; i++) {
        int rc = compile(&rt->routes[i], &routes[i]);
        rt->n = i + 1; /* so fini frees what compile strdup'ed */
        if (rc != 0) {
            mx_logkv(MX_LOG_ERROR, "invalid http route", "method",
                     routes[i].method ? routes[i].method : "(null)", "pattern",
                     routes[i].pattern ? routes[i].pattern : "(null)", NULL);
            mx__http_router_fini(rt);
            return rc;
        }
    }
    return 0;
}

bool mx__http_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead 0xc0/0xc1, > 0xf4 */
        }
        if (n - i <= need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

long mx__http_pct_decode(const char *s, size_t n, bool plus_space, bool utf8, char *out)
{
    long o = mx_url_unescape(s, n, plus_space, out, n);
    if (o < 0 || (utf8 && !mx__http_utf8_valid((const uint8_t *)out, (size_t)o)))
        return -1;
    return o;
}

/* Does the pattern of pr match path's segments? *empty: a {param} matched an
 * empty segment. */
static bool pattern_match(const struct mx__http_proute *pr, const char *path, bool *empty)
{
    const char *p = path + 1;
    *empty = false;
    for (uint16_t i = 0; i < pr->nseg; i++) {
        const struct mx__http_seg *s = &pr->seg[i];
        if (s->kind == 2)
            return true; /* the rest, whatever it is */
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (s->kind == 0) {
            if (n != s->len || memcmp(p, s->s, n) != 0)
                return false;
        } else if (n == 0) {
            *empty = true;
        }
        bool last = i + 1 == pr->nseg;
        if (last && e)
            return false; /* the path has more segments */
        if (!last && !e)
            return false; /* the path ended early */
        if (e)
            p = e + 1;
    }
    return true;
}

static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t l = strlen(allow), ml = strlen(m);
    /* already listed? */
    for (const char *p = allow; (p = strstr(p, m)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return;
    if (l + ml + 3 > cap)
        return;
    if (l) {
        memcpy(allow + l, ", ", 2);
        l += 2;
    }
    memcpy(allow + l, m, ml + 1);
}

int mx__http_route_path(const struct mx__http_router *rt, const char *method, const char *path,
                        const struct mx__http_proute **route, struct mx__http_param *params,
                        int *nparams, char *out, size_t out_cap, size_t *out_len, char *allow,
                        size_t allow_cap, const char **why)
{
    bool head = strcmp(method, "HEAD") == 0;
    bool any = false;
    *why = NULL;
    if (allow_cap)
        allow[0] = '\0';
    if (path[0] != '/') {
        *why = "the request target must be an absolute path";
        return MX__HTTP_ROUTE_400;
    }
    if (strstr(path, "//")) {
        *why = "empty path segment (//)";
        return MX__HTTP_ROUTE_400;
    }
    for (size_t i = 0; i < rt->n; i++) {
        const struct mx__http_proute *pr = &rt->routes[i];
        bool empty;
        if (!pattern_match(pr, path, &empty))
            continue;
        any = true;
        if (strcmp(pr->r.method, method) != 0 && !(head && strcmp(pr->r.method, "GET") == 0)) {
            allow_add(allow, allow_cap, pr->r.method);
            if (strcmp(pr->r.method, "GET") == 0)
                allow_add(allow, allow_cap, "HEAD");
            continue;
        }
        if (empty) {
            *why = "empty path parameter";
            return MX__HTTP_ROUTE_400;
        }
        /* decode the params */
        const char *p = path + 1;
        size_t o = 0;
        int np = 0;
        for (uint16_t k = 0; k < pr->nseg; k++) {
            const struct mx__http_seg *s = &pr->seg[k];
            const char *e = s->kind == 2 ? NULL : strchr(p, '/');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (s->kind != 0) {
                if (o + n + 1 > out_cap) {
                    *why = "path too long";
                    return MX__HTTP_ROUTE_400;
                }
                long dl = mx__http_pct_decode(p, n, false, true, out + o);
                if (dl < 0) {
                    *why = "invalid percent-encoding or UTF-8 in the path";
                    return MX__HTTP_ROUTE_400;
                }
                params[np].name = s->kind == 2 ? "**" : NULL; /* see mx_http_req_param */
                params[np].off = (uint32_t)o;
                np++;
                o += (size_t)dl;
                out[o++] = '\0';
            }
            if (e)
                p = e + 1;
        }
        *route = pr;
        *nparams = np;
        *out_len = o;
        return MX__HTTP_ROUTE_OK;
    }
    return any ? MX__HTTP_ROUTE_405 : MX__HTTP_ROUTE_404;
}

/* ---- traceparent ---- */

static bool hex_bytes(const char *s, size_t nbytes, uint8_t *out)
{
    bool nonzero = false;
    for (size_t i = 0; i < nbytes; i++) {
        char a = s[2 * i], b = s[2 * i + 1];
        /* lowercase hex only (W3C) */
        if (!((a >= '0' && a <= '9') || (a >= 'a' && a <= 'f')) ||
            !((b >= '0' && b <= '9') || (b >= 'a' && b <= 'f')))
            return false;
        out[i] = (uint8_t)((a <= '9' ? a - '0' : a - 'a' + 10) << 4 |
                           (b <= '9' ? b - '0' : b - 'a' + 10));
        nonzero |= out[i] != 0;
    }
    return nonzero || nbytes == 1;
}

bool mx_http_traceparent_parse(const char *s, size_t len, uint8_t trace_id[16], uint8_t span_id[8],
                               uint8_t *flags)
{
    uint8_t ver, t[16], sp[8], fl;
    if (!s || len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    if (!hex_bytes(s, 1, &ver) || ver == 0xff)
        return false;
    if (ver == 0 && len != 55)
        return false;
    if (ver != 0 && len > 55 && s[55] != '-')
        return false; /* a future version may append "-..." */
    if (!hex_bytes(s + 3, 16, t) || !hex_bytes(s + 36, 8, sp) || !hex_bytes(s + 53, 1, &fl))
        return false;
    memcpy(trace_id, t, 16);
    memcpy(span_id, sp, 8);
    *flags = fl;
    return true;
}

/* xoshiro256** per thread, seeded from getrandom: ids need to be unique,
 * not secret. */
static __thread uint64_t rng_s[4];
static __thread bool rng_seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (getrandom(rng_s, sizeof(rng_s), 0) != (ssize_t)sizeof(rng_s)) {
            rng_s[0] = (uint64_t)mx_unix_ms() ^ (uint64_t)(uintptr_t)&rng_s;
            rng_s[1] = 0x9e3779b97f4a7c15ull;
            rng_s[2] = (uint64_t)mx_now_ms();
            rng_s[3] = 0xbf58476d1ce4e5b9ull;
        }
        rng_seeded = true;
    }
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

void mx_http_traceparent_new(uint8_t trace_id[16], uint8_t span_id[8])
{
    uint64_t a, b, c;
    do {
        a = rng_next();
        b = rng_next();
    } while ((a | b) == 0);
    do {
        c = rng_next();
    } while (c == 0);
    memcpy(trace_id, &a, 8);
    memcpy(trace_id + 8, &b, 8);
    memcpy(span_id, &c, 8);
}

void mx_http_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                                char out[56])
{
    static const char hx[] = "0123456789abcdef";
    char *p = out;
    *p++ = '0';
    *p++ = '0';
    *p++ = '-';
    for (int i = 0; i < 16; i++) {
        *p++ = hx[trace_id[i] >> 4];
        *p++ = hx[trace_id[i] & 15];
    }
    *p++ = '-';
    for (int i = 0; i < 8; i++) {
        *p++ = hx[span_id[i] >> 4];
        *p++ = hx[span_id[i] & 15];
    }
    *p++ = '-';
    *p++ = hx[flags >> 4];
    *p++ = hx[flags & 15];
    *p = '\0';
}
