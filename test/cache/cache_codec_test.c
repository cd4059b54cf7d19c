/* cache_codec_test.c - the L2 value frame and the L3 gunzip are the only
 * things between bytes in Redis/MySQL and a served document: every damaged
 * or truncated input must be refused, and good ones must round-trip. Also
 * the per-preset costs read back for the summary rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mx_testutil.h"

#include "mx_err.h"
#include "cache_codec.h"

static char *sample(size_t *len)
{
    size_t cap = 200000;
    char *s = malloc(cap);
    size_t n = 0;
    n += (size_t)snprintf(s + n, cap - n, "{\"items\":[");
    for (int i = 0; n < cap - 200; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s{\"slot\":\"ring%d\",\"level\":%d}", i ? "," : "",
                              i, i * 7 % 250);
    n += (size_t)snprintf(s + n, cap - n, "]}");
    *len = n;
    return s;
}

static void frame_roundtrip(void **st)
{
    (void)st;
    size_t len;
    char *raw = sample(&len);
    struct mx_blob *f, *out;
    assert_int_equal(mx__frame_encode(raw, len, 6, &f), 0);
    TU_ASSERT_CMP(f->len, <, len / 2); /* compressed */
    assert_memory_equal(f->data, "MXC1", 4);
    assert_int_equal(mx__frame_decode(f->data, f->len, &out), 0);
    assert_int_equal(out->len, len);
    assert_memory_equal(out->data, raw, len);
    mx_blob_unref(out);
    /* the gzip part alone is what L3 keeps */
    assert_int_equal(mx__gunzip(f->data + MX__FRAME_HDR, f->len - MX__FRAME_HDR, 1u << 20, &out),
                     0);
    assert_int_equal(out->len, len);
    mx_blob_unref(out);
    /* empty and tiny values too */
    assert_int_equal(mx__frame_encode("", 0, 6, &out), 0);
    struct mx_blob *back;
    assert_int_equal(mx__frame_decode(out->data, out->len, &back), 0);
    assert_int_equal(back->len, 0);
    mx_blob_unref(back);
    mx_blob_unref(out);
    mx_blob_unref(f);
    free(raw);
}

static void frame_truncated(void **st)
{
    (void)st;
    size_t len;
    char *raw = sample(&len);
    struct mx_blob *f, *out = NULL;
    assert_int_equal(mx__frame_encode(raw, len, 6, &f), 0);
    for (size_t cut = 0; cut < f->len; cut += (cut < 64 ? 1 : 97))
        assert_int_equal(mx__frame_decode(f->data, cut, &out), MX_EDECODE);
    assert_int_equal(mx__frame_decode(f->data, f->len - 1, &out), MX_EDECODE);
    for (size_t cut = 0; cut + MX__FRAME_HDR < f->len; cut += 101)
        assert_int_equal(mx__gunzip(f->data + MX__FRAME_HDR, cut, 1u << 20, &out), MX_EDECODE);
    /* trailing bytes are not ours either */
    struct mx_blob *longer = mx_blob_new(NULL, f->len + 3);
    memcpy(longer->data, f->data, f->len);
    memcpy(longer->data + f->len, "abc", 3);
    assert_int_equal(mx__frame_decode(longer->data, longer->len, &out), MX_EDECODE);
    mx_blob_unref(longer);
    mx_blob_unref(f);
    free(raw);
}

static void frame_corrupt(void **st)
{
    (void)st;
    size_t len;
    char *raw = sample(&len);
    struct mx_blob *f, *out = NULL;
    assert_int_equal(mx__frame_encode(raw, len, 6, &f), 0);
    struct mx_blob *c = mx_blob_new(f->data, f->len);
    /* one flipped bit anywhere: magic, length, CRC, gzip header, deflate
     * data, gzip trailer */
    for (size_t i = 0; i < c->len; i += (i < 40 ? 1 : 53)) {
        c->data[i] ^= 0x10;
        int rc = mx__frame_decode(c->data, c->len, &out);
        if (rc == 0) {
            /* only acceptable if what came out is exactly the original */
            assert_int_equal(out->len, len);
            assert_memory_equal(out->data, raw, len);
            mx_blob_unref(out);
        }
        c->data[i] ^= 0x10;
    }
    /* a header that lies about the length, with a matching CRC of nothing */
    memcpy(c->data + 4, "\xff\xff\xff\x7f", 4);
    assert_int_equal(mx__frame_decode(c->data, c->len, &out), MX_EDECODE);
    /* not a frame at all */
    assert_int_equal(mx__frame_decode("garbage-garbage-garbage-garbage", 31, &out), MX_EDECODE);
    assert_int_equal(mx__frame_decode(NULL, 0, &out), MX_EDECODE);
    assert_int_equal(mx__gunzip("\x1f\x8b not gzip at all, really", 27, 1000, &out), MX_EDECODE);
    /* bigger than the caller allows */
    assert_int_equal(mx__gunzip(f->data + MX__FRAME_HDR, f->len - MX__FRAME_HDR, len - 1, &out),
                     MX_EDECODE);
    mx_blob_unref(c);
    mx_blob_unref(f);
    free(raw);
}

static void summaries(void **st)
{
    (void)st;
    const char *doc =
        "{\"userIgn\":\"x\",\"totalExpectedCost\":999,\"presets\":["
        "{\"presetNo\":1,\"totalExpectedCost\":100,\"totalCostText\":\"1\",\"costBreakdown\":"
        "{\"blackCubeCost\":60,\"redCubeCost\":0,\"additionalCubeCost\":15,\"starforceCost\":25},"
        "\"items\":[{\"costBreakdown\":{\"blackCubeCost\":1}}]},"
        "{\"presetNo\":2,\"totalExpectedCost\":2.5e3,\"costBreakdown\":{\"blackCubeCost\":1,"
        "\"additionalCubeCost\":2,\"starforceCost\":3}},"
        "{\"presetNo\":9,\"totalExpectedCost\":1}]}";
    struct mx__summary s[3];
    int n = mx__doc_summaries(doc, strlen(doc), s, 3);
    assert_int_equal(n, 2);
    assert_int_equal(s[0].preset_no, 1);
    assert_int_equal(s[0].total, 100);
    assert_int_equal(s[0].black, 60);
    assert_int_equal(s[0].additional, 15);
    assert_int_equal(s[0].starforce, 25);
    assert_int_equal(s[1].preset_no, 2);
    assert_int_equal(s[1].total, 2500);
    assert_int_equal(mx__doc_summaries("{\"presetNo\":", 12, s, 3), 0);
    assert_int_equal(mx__doc_summaries("", 0, s, 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_roundtrip),
        cmocka_unit_test(frame_truncated),
        cmocka_unit_test(frame_corrupt),
        cmocka_unit_test(summaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
