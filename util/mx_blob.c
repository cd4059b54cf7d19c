/* mx_blob.c - refcounted response bodies, gzip, stored documents and
 * the content negotiation helpers (Accept-Encoding, If-None-Match).
 *
 * A cached document is built once (plain + gzip + ETags) and written to
 * every connection that asks for it, on any scheduler, by reference: the
 * refcounts are atomic for that reason.
 */
#include "mx_blob.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "mx_alloc.h"
#include "mx_err.h"

struct mx_blob *mx_blob_new(const void *data, size_t len)
{
    if (len > UINT32_MAX - 64) {
        fprintf(stderr, "mx_blob_new: %zu bytes is too large\n", len);
        abort();
    }
    struct mx_blob *b = xmalloc(sizeof(*b) + len);
    atomic_init(&b->refs, 1);
    b->len = (uint32_t)len;
    if (data && len)
        memcpy(b->data, data, len);
    return b;
}

struct mx_blob *mx_blob_ref(struct mx_blob *b)
{
    /* relaxed: a new reference is made from an existing one */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void mx_blob_unref(struct mx_blob *b)
{
    /* acq_rel: the last holder must see every write made before others let go */
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

int mx_http_gzip(const void *in, size_t len, int level, struct mx_blob **out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (!out || (len && !in) || level < 0 || level > 9 || len > UINT32_MAX / 2)
        return MX_EINVAL;
    /* 15 + 16: window 32 KiB with a gzip wrapper */
    if (deflateInit2(&zs, level ? level : 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return MX_EINTERNAL;
    uLong bound = deflateBound(&zs, (uLong)len) + 32;
    struct mx_blob *b = mx_blob_new(NULL, bound);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = b->data;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(b);
        return MX_EINTERNAL;
    }
    b->len = (uint32_t)zs.total_out;
    *out = b;
    return 0;
}

int mx_http_doc_new(const char *content_type, struct mx_blob *plain, bool gzip,
                    struct mx_http_doc **out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hx[] = "0123456789abcdef";
    if (!content_type || !plain || !out || strlen(content_type) >= 64 ||
        strpbrk(content_type, "\r\n"))
        return MX_EINVAL;
    if (!EVP_Digest(plain->data, plain->len, md, &mdlen, EVP_sha256(), NULL) || mdlen < 16)
        return MX_EINTERNAL;
    struct mx_http_doc *d = calloc(1, sizeof(*d));
    if (!d)
        abort();
    atomic_init(&d->refs, 1);
    if (gzip) {
        int rc = mx_http_gzip(plain->data, plain->len, 6, &d->gzip);
        if (rc != 0) {
            free(d);
            return rc;
        }
    }
    d->plain = mx_blob_ref(plain);
    snprintf(d->content_type, sizeof(d->content_type), "%s", content_type);
    char hex[33];
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = hx[md[i] >> 4];
        hex[2 * i + 1] = hx[md[i] & 15];
    }
    hex[32] = '\0';
    snprintf(d->etag, sizeof(d->etag), "\"%s\"", hex);
    snprintf(d->etag_gz, sizeof(d->etag_gz), "\"%s-gz\"", hex);
    *out = d;
    return 0;
}

struct mx_http_doc *mx_http_doc_ref(struct mx_http_doc *d)
{
    /* relaxed: a new reference is made from an existing one */
    atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    return d;
}

void mx_http_doc_unref(struct mx_http_doc *d)
{
    /* acq_rel: as for blobs */
    if (d && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
        mx_blob_unref(d->plain);
        mx_blob_unref(d->gzip);
        free(d);
    }
}

/* q-value of one coding's parameters ("; q=0.5"): 1000ths, 1000 when absent,
 * -1 when malformed. */
static int qvalue(const char *p, const char *end)
{
    int q = 1000;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            if (p < end && *p == '0') {
                q = 0;
                p++;
                if (p < end && *p == '.') {
                    int scale = 100;
                    for (p++; p < end && isdigit((unsigned char)*p) && scale; p++, scale /= 10)
                        q += (*p - '0') * scale;
                }
            } else if (p < end && *p == '1') {
                q = 1000;
                p++;
                if (p < end && *p == '.')
                    for (p++; p < end && *p == '0'; p++)
                        ;
            } else {
                return -1;
            }
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (p < end && *p != ';')
                return -1;
        } else {
            while (p < end && *p != ';')
                p++; /* another parameter: ignored */
        }
    }
    return q;
}

bool mx_http_accepts_gzip(const char *ae)
{
    int gz = -2, star = -2; /* -2: not listed */
    if (!ae)
        return false;
    const char *p = ae;
    while (*p) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *t = p;
        while (t < e && (*t == ' ' || *t == '\t'))
            t++;
        const char *te = t;
        while (te < e && *te != ';' && *te != ' ' && *te != '\t')
            te++;
        size_t tl = (size_t)(te - t);
        int q = qvalue(te, e);
        if (q >= 0) {
            if ((tl == 4 && strncasecmp(t, "gzip", 4) == 0) ||
                (tl == 6 && strncasecmp(t, "x-gzip", 6) == 0))
                gz = q > gz ? q : gz;
            else if (tl == 1 && *t == '*')
                star = q;
        }
        p = *e ? e + 1 : e;
    }
    if (gz != -2)
        return gz > 0;
    return star > 0;
}

bool mx_http_etag_match(const char *inm, const char *etag)
{
    if (!inm || !etag)
        return false;
    const char *want = etag;
    if (strncmp(want, "W/", 2) == 0)
        want += 2;
    size_t wl = strlen(want);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p != '"')
            return false; /* malformed list: no match */
        const char *q = strchr(p + 1, '"');
        if (!q)
            return false;
        if ((size_t)(q + 1 - p) == wl && memcmp(p, want, wl) == 0)
            return true;
        p = q + 1;
    }
    return false;
}
