/* mx_blob.h - refcounted immutable byte buffers, gzip, and stored documents
 * (plain + gzip variants with their ETags) with the content negotiation
 * helpers that pick between them (Accept-Encoding, If-None-Match).
 *
 * Its own small library (zlib, OpenSSL's digest) rather than part of the
 * HTTP server, so the cache, which stores documents, does not link llhttp;
 * the HTTP server writes these blobs straight to sockets (docs/http.md).
 * The names keep their mx_http_ prefix for the documents: they are what an
 * HTTP answer is made of. Every function here may be called from any thread.
 */
#ifndef MX_BLOB_H
#define MX_BLOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- blobs and documents ---- */

/* An immutable refcounted byte buffer. Fill data only before sharing it. */
struct mx_blob {
    _Atomic uint32_t refs; /* holders; freed at 0 */
    uint32_t len;          /* bytes in data */
    uint8_t data[];
};

/* mx_blob_new - a blob holding a copy of len bytes of data (data may be NULL
 * to get an uninitialised blob to fill before sharing). One reference for the
 * caller. Aborts on allocation failure; len must be < 4 GiB. Any thread. */
struct mx_blob *mx_blob_new(const void *data, size_t len);
/* mx_blob_ref - take one more reference; returns b. Any thread. */
struct mx_blob *mx_blob_ref(struct mx_blob *b);
/* mx_blob_unref - drop one reference; frees at 0. NULL is a no-op. Any thread. */
void mx_blob_unref(struct mx_blob *b);

/* mx_http_gzip - gzip (RFC 1952) len bytes of in at zlib level (1-9, 0 =
 * default 6) into a new blob *out (one reference for the caller). Returns 0,
 * MX_EINVAL or MX_EINTERNAL (zlib failed). Any thread; CPU-bound (offload
 * large inputs). */
int mx_http_gzip(const void *in, size_t len, int level, struct mx_blob **out);

/* A stored document: plain bytes, optional gzip bytes, their strong ETags. */
struct mx_http_doc {
    _Atomic uint32_t refs;
    struct mx_blob *plain; /* never NULL */
    struct mx_blob *gzip;  /* NULL: only plain is served */
    char content_type[64];
    char etag[48];    /* "\"<32 hex>\"" of the plain bytes */
    char etag_gz[52]; /* "\"<32 hex>-gz\"" of the gzip variant */
};

/* mx_http_doc_new - a document of content_type from plain (a reference is
 * taken) and, when gzip is true, its gzip variant (computed here). ETags are
 * derived from a SHA-256 of the plain bytes. Returns 0 and *out (one
 * reference), MX_EINVAL or MX_EINTERNAL. Any thread; CPU-bound. */
int mx_http_doc_new(const char *content_type, struct mx_blob *plain, bool gzip,
                    struct mx_http_doc **out);
/* mx_http_doc_ref / mx_http_doc_unref - references, as for blobs. */
struct mx_http_doc *mx_http_doc_ref(struct mx_http_doc *d);
void mx_http_doc_unref(struct mx_http_doc *d);

/* mx_http_accepts_gzip - whether an Accept-Encoding value allows gzip:
 * "gzip" or "x-gzip" with q > 0, or "*" with q > 0 when gzip is not listed.
 * NULL (no header) is false. Malformed parts are ignored. Any thread. */
bool mx_http_accepts_gzip(const char *accept_encoding);

/* mx_http_etag_match - whether an If-None-Match value lists etag (weak
 * comparison; "*" matches). Any thread. */
bool mx_http_etag_match(const char *if_none_match, const char *etag);

#endif
