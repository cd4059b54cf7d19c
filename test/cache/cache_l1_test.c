/* cache_l1_test.c - a cache shard's L1 (actors/cache/cache_l1.c) on its
 * own: the expiry rule (an expired entry is absent unless asked for with
 * MX__L1_ANY_AGE), the least-recently-used eviction under the entry and
 * byte bounds (never the entry just stored), replacement, the references
 * it takes and drops, the gauges it keeps in the metrics block, and which
 * entries dropping one character removes. Times are given, not slept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache_l1.h"
#include "mx_blob.h"

static struct mx_cache_metrics m;

static size_t key(char *buf, char tag, const char *a, const char *b)
{
    size_t n = mx__l1_key(buf, tag, a, b);
    assert_true(n > 0);
    return n;
}

/* an ocid entry: the smallest kind, no references */
static struct mx__centry *put_ocid(struct mx__l1 *l1, const char *ign, int64_t expires)
{
    char k[MX__L1_KEY_MAX];
    size_t n = key(k, 'o', ign, NULL);
    return mx__l1_put(l1, k, n, K_OCID, NULL, NULL, "ocid-of-someone", expires);
}

static struct mx__centry *get(struct mx__l1 *l1, char tag, const char *a, int64_t fresh_at)
{
    char k[MX__L1_KEY_MAX];
    size_t n = key(k, tag, a, NULL);
    return mx__l1_get(l1, k, n, fresh_at);
}

static void keys(void **st)
{
    (void)st;
    char k[MX__L1_KEY_MAX];
    assert_int_equal(mx__l1_key(k, 'e', "abc", NULL), 5);
    assert_string_equal(k, "e|abc");
    assert_int_equal(mx__l1_key(k, 'd', "IGN", "1|101"), 11);
    assert_string_equal(k, "d|IGN|1|101");
    struct mx_m_exp_get q = {.preset = 2, .star_catch = true, .discount = false, .sunday = true};
    assert_int_equal(mx__l1_doc_key(k, &q, "IGN"), 11);
    assert_string_equal(k, "d|IGN|2|101");
    char longname[MX__L1_KEY_MAX + 8];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(mx__l1_key(k, 'o', longname, NULL), 0); /* does not fit: refused */
}

static void expiry(void **st)
{
    (void)st;
    struct mx__l1 l1;
    mx__l1_init(&l1, 100, 1 << 20, &m);
    put_ocid(&l1, "alpha", 1000);
    assert_non_null(get(&l1, 'o', "alpha", 999));
    assert_null(get(&l1, 'o', "alpha", 1000)); /* expires_ms is the first stale instant */
    assert_null(get(&l1, 'o', "alpha", 5000));
    struct mx__centry *e = get(&l1, 'o', "alpha", MX__L1_ANY_AGE); /* kept for stale answers */
    assert_non_null(e);
    assert_string_equal(e->ocid, "ocid-of-someone");
    assert_null(get(&l1, 'o', "beta", MX__L1_ANY_AGE));
    assert_int_equal(l1.nentries, 1);
    mx__l1_fini(&l1);
}

static void lru_entry_bound(void **st)
{
    (void)st;
    memset(&m, 0, sizeof m);
    struct mx__l1 l1;
    mx__l1_init(&l1, 3, 1 << 20, &m);
    put_ocid(&l1, "a", 100);
    put_ocid(&l1, "b", 100);
    put_ocid(&l1, "c", 100);
    assert_non_null(get(&l1, 'o', "a", 0)); /* a is now the most recent: b is the oldest */
    put_ocid(&l1, "d", 100);
    assert_int_equal(l1.nentries, 3);
    assert_int_equal(MX_METRIC_GET(&m, evictions), 1);
    assert_int_equal(MX_METRIC_GET(&m, entries), 3);
    assert_int_equal(MX_METRIC_GET(&m, bytes), l1.nbytes);
    assert_null(get(&l1, 'o', "b", MX__L1_ANY_AGE));
    assert_non_null(get(&l1, 'o', "a", MX__L1_ANY_AGE));
    assert_non_null(get(&l1, 'o', "c", MX__L1_ANY_AGE));
    assert_non_null(get(&l1, 'o', "d", MX__L1_ANY_AGE));
    /* the gets above made a, c, d most recent in that order, so a is the
     * oldest; a find does not touch the order, so a is still evicted next */
    char k[MX__L1_KEY_MAX];
    size_t n = key(k, 'o', "a", NULL);
    assert_non_null(mx__l1_find(&l1, k, n));
    put_ocid(&l1, "e", 100);
    assert_null(get(&l1, 'o', "a", MX__L1_ANY_AGE));
    assert_int_equal(MX_METRIC_GET(&m, evictions), 2);
    mx__l1_fini(&l1);
    assert_int_equal(MX_METRIC_GET(&m, entries), 0);
    assert_int_equal(MX_METRIC_GET(&m, bytes), 0);
}

static void byte_bound_and_refs(void **st)
{
    (void)st;
    memset(&m, 0, sizeof m);
    struct mx__l1 l1;
    mx__l1_init(&l1, 1000, 4096, &m);
    struct mx_blob *small = mx_blob_new("{}", 2);
    struct mx_blob *big = mx_blob_new(NULL, 10000);
    memset(big->data, 'x', big->len);
    char k[MX__L1_KEY_MAX];
    size_t n = key(k, 'e', "small", NULL);
    mx__l1_put(&l1, k, n, K_EQUIP, NULL, mx_blob_ref(small), NULL, 100);
    assert_int_equal(small->refs, 2);
    /* larger than the whole bound: stored anyway (never evict the new
     * entry), and everything older goes */
    n = key(k, 'e', "big", NULL);
    struct mx__centry *e = mx__l1_put(&l1, k, n, K_EQUIP, NULL, mx_blob_ref(big), NULL, 100);
    assert_ptr_equal(e->blob, big);
    assert_int_equal(l1.nentries, 1);
    assert_true(l1.nbytes > 10000);
    assert_int_equal(small->refs, 1); /* the evicted entry dropped its reference */
    assert_int_equal(MX_METRIC_GET(&m, evictions), 1);
    /* replacing under the same key drops the old value, counts no eviction */
    mx__l1_put(&l1, k, n, K_EQUIP, NULL, mx_blob_ref(small), NULL, 200);
    assert_int_equal(big->refs, 1);
    assert_int_equal(small->refs, 2);
    assert_int_equal(l1.nentries, 1);
    assert_int_equal(MX_METRIC_GET(&m, evictions), 1);
    assert_int_equal(get(&l1, 'e', "big", 0)->expires_ms, 200);
    /* a document joining an equipment entry shares its plain bytes */
    struct mx_http_doc *doc;
    assert_int_equal(mx_http_doc_new("application/json", small, true, &doc), 0);
    uint64_t before = l1.nbytes;
    e = get(&l1, 'e', "big", 0);
    mx__l1_add_doc(&l1, e, doc);
    assert_int_equal(l1.nbytes - before, sizeof *doc + (doc->gzip ? doc->gzip->len : 0));
    assert_int_equal(MX_METRIC_GET(&m, bytes), l1.nbytes);
    mx__l1_fini(&l1);
    assert_int_equal(small->refs, 1);
    mx_blob_unref(small);
    mx_blob_unref(big);
}

static void drop_character(void **st)
{
    (void)st;
    struct mx__l1 l1;
    mx__l1_init(&l1, 100, 1 << 20, NULL); /* no metrics block: allowed */
    char k[MX__L1_KEY_MAX];
    size_t n;
    struct mx_blob *b = mx_blob_new("{}", 2);
    struct mx_http_doc *doc;
    assert_int_equal(mx_http_doc_new("application/json", b, false, &doc), 0);
    const char *docs[] = {"1|111", "0|111", "2|000"};
    for (int i = 0; i < 3; i++) {
        n = key(k, 'd', "hero", docs[i]);
        mx__l1_put(&l1, k, n, K_DOC, mx_http_doc_ref(doc), NULL, NULL, 100);
        n = key(k, 'd', "heroine", docs[i]); /* a name with "hero" as prefix */
        mx__l1_put(&l1, k, n, K_DOC, mx_http_doc_ref(doc), NULL, NULL, 100);
    }
    struct mx_character_rec *rec = mx_character_rec_new();
    n = key(k, 'c', "hero", NULL);
    mx__l1_put_rec(&l1, k, n, mx_character_rec_ref(rec), 100);
    n = key(k, 'c', "heroine", NULL);
    mx__l1_put_rec(&l1, k, n, mx_character_rec_ref(rec), 100);
    assert_int_equal(rec->refs, 3);
    n = key(k, 'n', "hero", NULL);
    mx__l1_put(&l1, k, n, K_NEG, NULL, NULL, NULL, 100);
    put_ocid(&l1, "hero", 100); /* the ocid is not the character's data: kept */
    n = key(k, 'e', "OCIDHERO", NULL);
    mx__l1_put(&l1, k, n, K_EQUIP, NULL, mx_blob_ref(b), NULL, 100);
    n = key(k, 'e', "OCIDOTHER", NULL);
    mx__l1_put(&l1, k, n, K_EQUIP, NULL, mx_blob_ref(b), NULL, 100);
    assert_int_equal(l1.nentries, 12);
    char keep[MX__L1_KEY_MAX];
    size_t keep_len = key(keep, 'd', "hero", "1|111");
    mx__l1_drop_character(&l1, "hero", "OCIDHERO", keep, keep_len);
    /* gone: two documents, the record, the mark, the equipment */
    assert_int_equal(l1.nentries, 7);
    assert_non_null(mx__l1_find(&l1, keep, keep_len));
    n = key(k, 'd', "hero", "0|111");
    assert_null(mx__l1_find(&l1, k, n));
    assert_null(get(&l1, 'c', "hero", MX__L1_ANY_AGE));
    assert_int_equal(rec->refs, 2); /* the dropped record let its reference go */
    assert_null(get(&l1, 'n', "hero", MX__L1_ANY_AGE));
    assert_null(get(&l1, 'e', "OCIDHERO", MX__L1_ANY_AGE));
    assert_non_null(get(&l1, 'e', "OCIDOTHER", MX__L1_ANY_AGE));
    assert_non_null(get(&l1, 'o', "hero", MX__L1_ANY_AGE));
    assert_non_null(get(&l1, 'c', "heroine", MX__L1_ANY_AGE));
    n = key(k, 'd', "heroine", "2|000");
    assert_non_null(mx__l1_find(&l1, k, n));
    /* without an ocid the equipment stays */
    mx__l1_drop_character(&l1, "heroine", "", NULL, 0);
    assert_int_equal(l1.nentries, 3);
    assert_non_null(get(&l1, 'e', "OCIDOTHER", MX__L1_ANY_AGE));
    mx__l1_fini(&l1);
    assert_int_equal(doc->refs, 1);
    assert_int_equal(b->refs, 2); /* ours and the document's */
    assert_int_equal(rec->refs, 1);
    mx_character_rec_unref(rec);
    mx_http_doc_unref(doc);
    mx_blob_unref(b);
}

static void shard_choice(void **st)
{
    (void)st;
    /* stable, in range, and the same for the same name */
    assert_int_equal(mx_svc_shard("hero", 4, 0), 0);
    uint32_t seen[4] = {0};
    char name[16];
    for (int i = 0; i < 400; i++) {
        int len = snprintf(name, sizeof name, "c%d", i);
        uint32_t s = mx_svc_shard(name, (size_t)len, 4);
        assert_true(s < 4);
        assert_int_equal(s, mx_svc_shard(name, (size_t)len, 4));
        seen[s]++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(seen[i] > 50); /* FNV-1a spreads them */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys),
        cmocka_unit_test(expiry),
        cmocka_unit_test(lru_entry_bound),
        cmocka_unit_test(byte_bound_and_refs),
        cmocka_unit_test(drop_character),
        cmocka_unit_test(shard_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
