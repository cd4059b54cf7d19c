/* cache_codec.c - the byte formats of the cache tiers: the L2 value frame
 * (length + CRC-32 header around a gzip stream), whole-stream gunzip with a
 * bound for L3 rows, and reading per-preset costs back out of a built
 * document for the MySQL summary rows. Everything here is pure: values from
 * Redis and MySQL are input, checked before use, never trusted memory. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mx_err.h"
#include "cache_codec.h"

static const uint8_t magic[4] = {'M', 'X', 'C', '1'};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct mx_blob *mx__frame_from_gzip(const void *raw, size_t raw_len, const void *gz, size_t gz_len)
{
    struct mx_blob *b = mx_blob_new(NULL, MX__FRAME_HDR + gz_len);
    memcpy(b->data, magic, 4);
    put32(b->data + 4, (uint32_t)raw_len);
    put32(b->data + 8, (uint32_t)crc32(0L, raw, (uInt)raw_len));
    memcpy(b->data + MX__FRAME_HDR, gz, gz_len);
    return b;
}

int mx__frame_encode(const void *raw, size_t raw_len, int level, struct mx_blob **out)
{
    struct mx_blob *gz;
    if (raw_len > MX__FRAME_MAX_RAW || mx_http_gzip(raw, raw_len, level, &gz) != 0)
        return MX_EINTERNAL;
    *out = mx__frame_from_gzip(raw, raw_len, gz->data, gz->len);
    mx_blob_unref(gz);
    return 0;
}

/* inflate exactly one gzip member into a buffer of want bytes */
static int inflate_exact(const uint8_t *in, size_t len, size_t want, struct mx_blob **out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + 15) != Z_OK) /* gzip wrapper only */
        return MX_EDECODE;
    struct mx_blob *b = mx_blob_new(NULL, want);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = b->data;
    zs.avail_out = (uInt)want;
    int zr = inflate(&zs, Z_FINISH);
    bool ok = zr == Z_STREAM_END && zs.total_out == want && zs.avail_in == 0;
    if (!ok && zr == Z_BUF_ERROR && zs.avail_out == 0) {
        /* more output than announced: not ours */
        ok = false;
    }
    inflateEnd(&zs);
    if (!ok) {
        mx_blob_unref(b);
        return MX_EDECODE;
    }
    *out = b;
    return 0;
}

int mx__frame_decode(const void *data, size_t len, struct mx_blob **out)
{
    const uint8_t *p = data;
    if (!p || len < MX__FRAME_HDR + 18 || memcmp(p, magic, 4) != 0)
        return MX_EDECODE;
    uint32_t raw_len = get32(p + 4), crc = get32(p + 8);
    if (raw_len > MX__FRAME_MAX_RAW)
        return MX_EDECODE;
    struct mx_blob *b;
    if (inflate_exact(p + MX__FRAME_HDR, len - MX__FRAME_HDR, raw_len, &b) != 0)
        return MX_EDECODE;
    if ((uint32_t)crc32(0L, b->data, b->len) != crc) {
        mx_blob_unref(b);
        return MX_EDECODE;
    }
    *out = b;
    return 0;
}

int mx__gunzip(const void *data, size_t len, size_t max, struct mx_blob **out)
{
    const uint8_t *p = data;
    if (!p || len < 18 || p[0] != 0x1f || p[1] != 0x8b)
        return MX_EDECODE;
    uint32_t isize = get32(p + len - 4); /* raw size mod 2^32 (RFC 1952) */
    if (isize > max)
        return MX_EDECODE;
    return inflate_exact(p, len, isize, out);
}

/* the integer after "key": at or after from, before limit; -1 if none */
static const char *find_key(const char *from, const char *limit, const char *key)
{
    size_t kl = strlen(key);
    for (const char *q = from; q && q + kl <= limit; q++) {
        q = memchr(q, key[0], (size_t)(limit - q));
        if (!q || q + kl > limit)
            return NULL;
        if (memcmp(q, key, kl) == 0)
            return q + kl;
    }
    return NULL;
}

static bool read_int(const char *p, const char *limit, int64_t *out)
{
    char buf[32];
    size_t n = 0;
    while (
        p < limit && n < sizeof buf - 1 &&
        (*p == '-' || *p == '+' || (*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E'))
        buf[n++] = *p++;
    if (n == 0)
        return false;
    buf[n] = '\0';
    *out = (int64_t)strtod(buf, NULL); /* costs may be written as reals */
    return true;
}

int mx__doc_summaries(const char *json, size_t len, struct mx__summary *out, int max)
{
    /* The document writes, per preset: "presetNo", "totalExpectedCost",
     * "totalCostText", "costBreakdown":{...} before its items, so the first
     * occurrences after "presetNo" are the preset's own. */
    const char *limit = json + len;
    const char *p = find_key(json, limit, "\"presetNo\":");
    int n = 0;
    while (n < max && p) {
        const char *next = find_key(p, limit, "\"presetNo\":");
        const char *end = next ? next : limit;
        struct mx__summary s = {0};
        int64_t pn;
        const char *t = find_key(p, end, "\"totalExpectedCost\":");
        const char *b = find_key(p, end, "\"blackCubeCost\":");
        const char *a = find_key(p, end, "\"additionalCubeCost\":");
        const char *f = find_key(p, end, "\"starforceCost\":");
        /* a cost that is null or absent counts as 0 */
        if (read_int(p, end, &pn) && pn >= 1 && pn <= 3 && t && read_int(t, end, &s.total)) {
            if (!b || !read_int(b, end, &s.black))
                s.black = 0;
            if (!a || !read_int(a, end, &s.additional))
                s.additional = 0;
            if (!f || !read_int(f, end, &s.starforce))
                s.starforce = 0;
            s.preset_no = (int)pn;
            out[n++] = s;
        }
        p = next;
    }
    return n;
}
