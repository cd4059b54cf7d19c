/* test_units.c - no server needed: mysql URL validation, the spool (append,
 * replay order, CRC damage in the middle and at the tail, bounds, partial
 * replay with compaction, crash-replay idempotence) and hostile spool record
 * payloads for mx_store_apply. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mx_testutil.h"
#include "support/mx_proc.h"

#include "mx_err.h"
#include "mx_mysql.h"
#include "mx_spool.h"
#include "mx_store.h"

/* ---- URL ---- */

static void test_url_ok(void **st)
{
    struct mx_mysql_url u;
    char err[256];
    assert_int_equal(
        mx_mysql_url_parse("mysql://mx:secret@127.0.0.1:3306/mx", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "mx");
    assert_string_equal(u.password, "secret");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 3306);
    assert_string_equal(u.database, "mx");
    /* no password; escaped characters in the password; IPv6 */
    assert_int_equal(mx_mysql_url_parse("mysql://root@db.local:1/app_1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.password, "");
    assert_int_equal(mx_mysql_url_parse("mysql://u:p%40ss%3Aw%2Frd@h:2/d", &u, err, sizeof(err)),
                     0);
    assert_string_equal(u.password, "p@ss:w/rd");
    assert_int_equal(mx_mysql_url_parse("mysql://u@[::1]:3307/d", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 3307);
}

static void test_url_bad(void **st)
{
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"", "mysql://"},
        {"redis://u@h:1/d", "mysql://"},
        {"mysql://u@h:1", "/database"},
        {"mysql://h:1/d", "user@"},
        {"mysql://:pw@h:1/d", "empty user"},
        {"mysql://u@h/d", ":port"},
        {"mysql://u@h:/d", "empty port"},
        {"mysql://u@h:0/d", "1-65535"},
        {"mysql://u@h:65536/d", "1-65535"},
        {"mysql://u@h:99999999999999999999/d", "1-65535"},
        {"mysql://u@h:12a/d", "1-65535"},
        {"mysql://u@:1/d", "empty host"},
        {"mysql://u@h:1/", "empty database"},
        {"mysql://u@h:1/d?ssl=1", "[A-Za-z0-9_$]"},
        {"mysql://u@h:1/d/e", "[A-Za-z0-9_$]"},
        {"mysql://u:%zz@h:1/d", "badly escaped"},
        {"mysql://u:%4@h:1/d", "badly escaped"},
        {"mysql://u%00x@h:1/d", "badly escaped"},
        {"mysql://u@h h:1/d", "bad character"},
        {"mysql://u@[::1/d", "IPv6"},
    };
    struct mx_mysql_url u;
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = mx_mysql_url_parse(bad[i].url, &u, err, sizeof(err));
        if (rc != MX_ECONFIG || !strstr(err, bad[i].why))
            fail_msg("url '%s': rc %d err '%s', want '%s'", bad[i].url, rc, err, bad[i].why);
    }
    /* the password never shows up in an error */
    assert_int_equal(mx_mysql_url_parse("mysql://u:hunter2@h:0/d", &u, err, sizeof(err)),
                     MX_ECONFIG);
    assert_null(strstr(err, "hunter2"));
    /* too long a database name */
    char longu[200];
    snprintf(longu, sizeof(longu), "mysql://u@h:1/%0100d", 0);
    assert_int_equal(mx_mysql_url_parse(longu, &u, err, sizeof(err)), MX_ECONFIG);
}

/* ---- spool ---- */

static char dir[64];

static int setup_dir(void **st)
{
    return mx_proc_tmpdir(NULL, "spool", dir, sizeof dir);
}

static int teardown_dir(void **st)
{
    mx_proc_rmdir(dir);
    return 0;
}

static void spool_path(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

struct collect {
    int n;
    uint32_t kinds[256];
    char data[256][64];
    int fail_at; /* apply fails with MX_EUNAVAIL at this index; -1 = never */
};

static int collect_apply(void *ctx, uint32_t kind, const void *data, uint32_t len)
{
    struct collect *c = ctx;
    if (c->n == c->fail_at)
        return MX_EUNAVAIL;
    c->kinds[c->n] = kind;
    snprintf(c->data[c->n], sizeof(c->data[0]), "%.*s", (int)len, (const char *)data);
    c->n++;
    return 0;
}

static mx_spool_t *open_spool(const char *path, uint64_t max_bytes, uint32_t max_records)
{
    mx_spool_t *s;
    struct mx_spool_opts o = {.path = path, .max_bytes = max_bytes, .max_records = max_records};
    assert_int_equal(mx_spool_open(&o, &s), 0);
    return s;
}

static void append_n(mx_spool_t *s, int from, int to)
{
    char buf[32];
    for (int i = from; i < to; i++) {
        int l = snprintf(buf, sizeof(buf), "rec-%d", i);
        assert_int_equal(mx_spool_append(s, (uint32_t)i, buf, (uint32_t)l), 0);
    }
}

static void test_spool_append_replay(void **st)
{
    char p[128];
    struct mx_spool_stats ss;
    struct collect c = {.fail_at = -1};
    uint32_t applied;
    spool_path("a.spool", p, sizeof(p));
    mx_spool_t *s = open_spool(p, 0, 0);
    assert_true(mx_spool_idle(s));
    append_n(s, 0, 50);
    assert_false(mx_spool_idle(s));
    mx_spool_close(s);

    /* reopen: the records survived and are counted */
    s = open_spool(p, 0, 0);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.records, 50);
    assert_int_equal(ss.corrupt, 0);
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, &applied), 0);
    assert_int_equal(applied, 50);
    assert_int_equal(c.n, 50);
    for (int i = 0; i < 50; i++) { /* in append order */
        char want[32];
        snprintf(want, sizeof(want), "rec-%d", i);
        assert_int_equal(c.kinds[i], i);
        assert_string_equal(c.data[i], want);
    }
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.records, 0);
    assert_int_equal(ss.bytes, 0);
    assert_int_equal(ss.replayed, 50);
    assert_true(mx_spool_idle(s));
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    /* an empty record is a record */
    assert_int_equal(mx_spool_append(s, 7, NULL, 0), 0);
    c.n = 0;
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, &applied), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(c.kinds[0], 7);
    mx_spool_close(s);
}

static void test_spool_partial_replay_compacts(void **st)
{
    char p[128];
    struct mx_spool_stats ss;
    struct collect c = {.fail_at = 4};
    uint32_t applied;
    spool_path("b.spool", p, sizeof(p));
    mx_spool_t *s = open_spool(p, 0, 0);
    append_n(s, 0, 10);
    /* MySQL goes away after four records landed */
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, &applied), MX_EUNAVAIL);
    assert_int_equal(applied, 4);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.records, 6);
    mx_spool_close(s);
    /* the file now holds only the six that did not land (compacted) */
    s = open_spool(p, 0, 0);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.records, 6);
    c = (struct collect){.fail_at = -1};
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, &applied), 0);
    assert_int_equal(applied, 6);
    assert_string_equal(c.data[0], "rec-4");
    assert_string_equal(c.data[5], "rec-9");
    mx_spool_close(s);
}

static void flip_byte(const char *p, off_t off)
{
    int fd = open(p, O_RDWR);
    TU_ASSERT_CMP(fd, >=, 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_spool_crc_damage(void **st)
{
    char p[128];
    struct mx_spool_stats ss;
    struct collect c = {.fail_at = -1};
    uint32_t applied;
    spool_path("c.spool", p, sizeof(p));
    mx_spool_t *s = open_spool(p, 0, 0);
    append_n(s, 0, 5); /* "rec-N": 5 bytes each, 21-byte records */
    mx_spool_close(s);
    /* damage record 1's payload and record 3's length field */
    flip_byte(p, 21 * 1 + MX_SPOOL_HDR + 2);
    flip_byte(p, 21 * 3 + 5);
    s = open_spool(p, 0, 0);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.records, 3);
    assert_int_equal(ss.corrupt, 2);
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, &applied), 0);
    assert_int_equal(applied, 3);
    assert_string_equal(c.data[0], "rec-0");
    assert_string_equal(c.data[1], "rec-2");
    assert_string_equal(c.data[2], "rec-4");
    mx_spool_close(s);
}

static void test_spool_torn_tail(void **st)
{
    char p[128];
    struct mx_spool_stats ss;
    struct collect c = {.fail_at = -1};
    uint32_t applied;
    spool_path("d.spool", p, sizeof(p));
    mx_spool_t *s = open_spool(p, 0, 0);
    append_n(s, 0, 3);
    mx_spool_close(s);
    /* a crash in the middle of an append: half a record at the end */
    assert_int_equal(truncate(p, 21 * 3 - 7), 0);
    s = open_spool(p, 0, 0);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.records, 2);
    assert_int_equal(ss.corrupt, 1);
    assert_int_equal(ss.bytes, 42); /* the torn tail was cut off */
    append_n(s, 3, 4);              /* new appends follow the good records */
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, &applied), 0);
    assert_int_equal(applied, 3);
    assert_string_equal(c.data[2], "rec-3");
    mx_spool_close(s);

    /* pure garbage: nothing valid, nothing handed out, no crash */
    spool_path("e.spool", p, sizeof(p));
    FILE *f = fopen(p, "wb");
    srand(7);
    for (int i = 0; i < 100000; i++)
        fputc(i % 97 == 0 ? 'M' : rand() & 0xff, f);
    fwrite("MXSP\xff\xff\xff\x7f", 1, 8, f); /* a header claiming 2 GB */
    fclose(f);
    s = open_spool(p, 0, 0);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.records, 0);
    assert_int_equal(ss.bytes, 0);
    c.n = 0;
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, &applied), 0);
    assert_int_equal(c.n, 0);
    mx_spool_close(s);
}

static void test_spool_bounds(void **st)
{
    char p[128];
    struct mx_spool_stats ss;
    spool_path("f.spool", p, sizeof(p));
    mx_spool_t *s = open_spool(p, 0, 3);
    append_n(s, 0, 3);
    assert_int_equal(mx_spool_append(s, 1, "x", 1), MX_EFULL);
    assert_int_equal(mx_spool_append(s, 1, "x", 1), MX_EFULL);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.refused, 2);
    assert_int_equal(ss.records, 3);
    mx_spool_close(s);

    spool_path("g.spool", p, sizeof(p));
    s = open_spool(p, 100, 0); /* bytes: four 21-byte records fit, a fifth does not */
    append_n(s, 0, 4);
    assert_int_equal(mx_spool_append(s, 1, "rec-x", 5), MX_EFULL);
    mx_spool_stats(s, &ss);
    assert_int_equal(ss.refused, 1);
    TU_ASSERT_CMP(ss.bytes, <=, 100);
    assert_int_equal(mx_spool_append(s, 1, NULL, MX_SPOOL_MAX_RECORD + 1), MX_ETOOBIG);
    /* after a replay there is room again */
    struct collect c = {.fail_at = -1};
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, NULL), 0);
    assert_int_equal(mx_spool_append(s, 1, "rec-x", 5), 0);
    mx_spool_close(s);
}

/* a replay interrupted after applying but before dropping (a crash) hands
 * the same records out again: the writes must be idempotent */
static void test_spool_crash_replays_again(void **st)
{
    char p[128], copy[300];
    struct collect c = {.fail_at = -1};
    spool_path("h.spool", p, sizeof(p));
    mx_spool_t *s = open_spool(p, 0, 0);
    append_n(s, 0, 3);
    mx_spool_close(s);
    snprintf(copy, sizeof(copy), "cp %s %s.bak", p, p);
    assert_int_equal(system(copy), 0);
    s = open_spool(p, 0, 0);
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, NULL), 0);
    mx_spool_close(s);
    /* "crash": the file as it was before the truncate */
    snprintf(copy, sizeof(copy), "mv %s.bak %s", p, p);
    assert_int_equal(system(copy), 0);
    s = open_spool(p, 0, 0);
    c.n = 0;
    assert_int_equal(mx_spool_replay(s, collect_apply, &c, NULL), 0);
    assert_int_equal(c.n, 3);
    mx_spool_close(s);
}

/* ---- store records ---- */

static void test_store_records_hostile(void **st)
{
    uint8_t *rec;
    uint32_t len;
    struct mx_store_character ch = {"아델", "ocid1", "스카니아", NULL, "http://i/x.png"};
    assert_int_equal(mx_store_rec_character(&ch, 1234, &rec, &len), 0);
    /* every truncation and every single-byte corruption of the length
     * fields is refused before any SQL runs (c is NULL here) */
    for (uint32_t l = 0; l < len; l++)
        assert_int_equal(mx_store_apply(NULL, MX_STORE_REC_CHARACTER, rec, l), MX_EDECODE);
    uint8_t *big = malloc(len + 1);
    memcpy(big, rec, len);
    big[len] = 0;
    assert_int_equal(mx_store_apply(NULL, MX_STORE_REC_CHARACTER, big, len + 1), MX_EDECODE);
    for (uint32_t off = 8; off < 12; off++) { /* user_ign length */
        memcpy(big, rec, len);
        big[off] ^= 0x80;
        assert_int_equal(mx_store_apply(NULL, MX_STORE_REC_CHARACTER, big, len), MX_EDECODE);
    }
    free(big);
    assert_int_equal(mx_store_apply(NULL, 99, rec, len), MX_EDECODE);
    assert_int_equal(mx_store_apply(NULL, MX_STORE_REC_EQUIPMENT, rec, len), MX_EDECODE);
    assert_int_equal(mx_store_apply(NULL, MX_STORE_REC_EQUIPMENT, NULL, 0), MX_EDECODE);
    free(rec);
    assert_int_equal(mx_store_rec_equipment("", "x", 1, 1, &rec, &len), MX_EINVAL);
    struct mx_store_character noign = {NULL, "o", NULL, NULL, NULL};
    assert_int_equal(mx_store_rec_character(&noign, 1, &rec, &len), MX_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_ok),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_spool_append_replay),
        cmocka_unit_test(test_spool_partial_replay_compacts),
        cmocka_unit_test(test_spool_crc_damage),
        cmocka_unit_test(test_spool_torn_tail),
        cmocka_unit_test(test_spool_bounds),
        cmocka_unit_test(test_spool_crash_replays_again),
        cmocka_unit_test(test_store_records_hostile),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
