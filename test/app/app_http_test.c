#define _GNU_SOURCE /* memmem */
/* app_http_test.c - the MapleExpectation routes of a real mxnode against a
 * real mxstub: documents and their fromCache flag, gzip and ETag/304,
 * presets, unknown characters (404 C002, negative cache), the character
 * record, recalculation, upstream failure (503 with Retry-After), health,
 * metrics, the 503 answers for parts not built yet, 404/405, one upstream
 * load for 50 concurrent cold requests, the v2/v3 equipment served from the
 * cache (upstream calls counted at the stub), and a clean SIGTERM exit. */
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "../stub/stub_harness.h"
#include "mx_testutil.h"
#include "node_harness.h"

static struct stub g_stub;
static struct node g_node;
static char g_base[96];

#define EVAN "\xec\x97\x90\xeb\xb0\x98" /* 에반 */
#define EVAN_URL "%EC%97%90%EB%B0%98"
#define FRONT "https://front.example"

/* A copy of the Evan fixture without preset 3 (its key renamed, so the
 * parser skips it), in a temp file: a character with two presets. */
static char g_two_presets[64];
#define TWO "two-presets"

static int write_two_presets(const char *evan)
{
    FILE *in = fopen(evan, "rb");
    if (!in)
        return -1;
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        abort();
    size_t got = fread(buf, 1, (size_t)n, in);
    fclose(in);
    buf[got] = '\0';
    char *k = strstr(buf, "\"item_equipment_preset_3\"");
    snprintf(g_two_presets, sizeof g_two_presets, "/tmp/mx-two-presets-%d.json", (int)getpid());
    FILE *out = k ? fopen(g_two_presets, "wb") : NULL;
    if (out) {
        k[strlen("\"item_equipment_preset_")] = '9';
        fwrite(buf, 1, got, out);
        fclose(out);
    }
    free(buf);
    return out ? 0 : -1;
}

static int setup(void **st)
{
    char evan[4096], mech[4096], a1[4200], a2[4200], a3[200];
    stub_fixture_path("evan_equip.json", evan, sizeof evan);
    stub_fixture_path("mechanic_equip.json", mech, sizeof mech);
    if (write_two_presets(evan) != 0)
        return -1;
    snprintf(a1, sizeof a1, EVAN "=%s", evan);
    snprintf(a2, sizeof a2, "\xeb\xa9\x94\xec\xb9\xb4\xeb\x8b\x89=%s", mech); /* 메카닉 */
    snprintf(a3, sizeof a3, TWO "=%s", g_two_presets);
    const char *args[] = {"--character", a1,    "--character", a2, "--character", a3,
                          "--unknown",   "404", NULL};
    if (stub_start(&g_stub, args) != 0)
        return -1;
    static char base[160];
    snprintf(base, sizeof base, "MX_NEXON_BASE_URL=%s", g_stub.base);
    const char *env[] = {base, "MX_FETCH_TIMEOUT_MS=1500", "MX_CORS_ORIGINS=" FRONT, NULL};
    if (node_start(&g_node, env) != 0)
        return -1;
    snprintf(g_base, sizeof g_base, "http://127.0.0.1:%d", g_node.http_port);
    return 0;
}

static int teardown(void **st)
{
    node_kill(&g_node);
    stub_stop(&g_stub);
    unlink(g_two_presets);
    return 0;
}

/* One HTTP/1.1 request on its own connection; returns the status and hands
 * over head and body (the caller frees them). */
static int raw(const char *method, const char *path, const char *extra, char **head, char **body,
               size_t *body_len)
{
    struct http_res r;
    int s = node_http(g_node.http_port, method, path, extra, NULL, &r);
    TU_ASSERT_CMP(s, >, 0);
    if (head)
        *head = r.head;
    else
        free(r.head);
    if (body) {
        *body = r.body;
        *body_len = r.body_len;
    } else {
        free(r.body);
    }
    return s;
}

/* a response header's value from a head returned by raw() */
static void header_value(const char *head, const char *name, char *out, size_t cap)
{
    struct http_res r = {.head = (char *)head};
    http_header(&r, name, out, cap);
}

/* a NULL-terminated list of strings, for expect() */
#define STRS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* expect - one request (raw()); its status must be want and its body must
 * hold every string of has and none of lacks (NULL-terminated lists, or
 * NULL). */
static void expect(const char *method, const char *path, int want, const char *const *has,
                   const char *const *lacks)
{
    char *head, *body;
    size_t blen;
    int s = raw(method, path, NULL, &head, &body, &blen);
    if (s != want)
        fail_msg("%s %s: %d, want %d: %.300s", method, path, s, want, body);
    for (; has && *has; has++)
        if (!strstr(body, *has))
            fail_msg("%s %s: no %s in %.300s", method, path, *has, body);
    for (; lacks && *lacks; lacks++)
        if (strstr(body, *lacks))
            fail_msg("%s %s: %s in %.300s", method, path, *lacks, body);
    free(head);
    free(body);
}

static long long stat_path(const char *path)
{
    long long v = stub_stat(&g_stub, path); /* the harness adds the quotes */
    TU_ASSERT_CMP(v, >=, 0);
    return v;
}

static void test_expectation_cache_gzip_etag(void **st)
{
    long long eq0 = stat_path("/maplestory/v1/character/item-equipment");
    char *head, *body;
    size_t blen;
    int s = raw("GET", "/api/v4/characters/" EVAN_URL "/expectation", NULL, &head, &body, &blen);
    assert_int_equal(s, 200);
    assert_non_null(strstr(body, "\"userIgn\":\"" EVAN "\""));
    assert_non_null(strstr(body, "\"fromCache\":false"));
    assert_non_null(strstr(body, "\"totalExpectedCost\":"));
    assert_non_null(strstr(body, "\"presets\":["));
    char ct[128], tp[128], date[128];
    header_value(head, "Content-Type", ct, sizeof ct);
    header_value(head, "traceparent", tp, sizeof tp);
    header_value(head, "Date", date, sizeof date);
    assert_non_null(strstr(ct, "application/json"));
    assert_int_equal(strlen(tp), 55);
    TU_ASSERT_CMP(strlen(date), >, 20);
    free(head);
    free(body);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 1);

    /* second: from L1, fromCache true, no upstream call */
    s = raw("GET", "/api/v4/characters/" EVAN_URL "/expectation", NULL, &head, &body, &blen);
    assert_int_equal(s, 200);
    assert_non_null(strstr(body, "\"fromCache\":true"));
    char etag[128];
    header_value(head, "ETag", etag, sizeof etag);
    TU_ASSERT_CMP(strlen(etag), >, 4);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 1);

    /* gzip: the stored bytes, which inflate to the plain document */
    char *gh, *gb;
    size_t glen;
    s = raw("GET", "/api/v4/characters/" EVAN_URL "/expectation", "Accept-Encoding: gzip\r\n", &gh,
            &gb, &glen);
    assert_int_equal(s, 200);
    char ce[64];
    header_value(gh, "Content-Encoding", ce, sizeof ce);
    assert_string_equal(ce, "gzip");
    TU_ASSERT_CMP(glen, <, blen);
    uLongf outlen = (uLongf)blen + 16;
    char *plain = malloc(outlen);
    z_stream z = {0};
    inflateInit2(&z, 15 + 16);
    z.next_in = (Bytef *)gb;
    z.avail_in = (uInt)glen;
    z.next_out = (Bytef *)plain;
    z.avail_out = (uInt)outlen;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, blen);
    assert_memory_equal(plain, body, blen);
    inflateEnd(&z);
    free(plain);
    free(gh);
    free(gb);

    /* If-None-Match with the ETag: 304 without a body */
    char inm[256];
    snprintf(inm, sizeof inm, "If-None-Match: %s\r\n", etag);
    char *nh, *nb;
    size_t nlen;
    s = raw("GET", "/api/v4/characters/" EVAN_URL "/expectation", inm, &nh, &nb, &nlen);
    assert_int_equal(s, 304);
    assert_int_equal(nlen, 0);
    free(nh);
    free(nb);
    free(head);
    free(body);
}

/* The node's document equals the golden document of test/expect/golden
 * (written by the engine's unit test and reviewed by hand) from
 * "totalExpectedCost" on: only userIgn, calculatedAt and fromCache, which
 * precede it, depend on the request. */
static void assert_golden(const char *body, const char *gname, const char *ign)
{
    char gpath[4096], want_ign[256];
    const char *src = getenv("MX_SOURCE_DIR");
    assert_non_null(src);
    snprintf(gpath, sizeof gpath, "%s/test/expect/golden/%s", src, gname);
    FILE *f = fopen(gpath, "rb");
    assert_non_null(f);
    static char golden[1 << 20];
    size_t glen = fread(golden, 1, sizeof golden - 1, f);
    fclose(f);
    TU_ASSERT_CMP(glen, >, 0);
    TU_ASSERT_CMP(glen, <, sizeof golden - 1);
    golden[glen] = '\0';
    if (golden[glen - 1] == '\n')
        golden[--glen] = '\0';
    snprintf(want_ign, sizeof want_ign, "{\"userIgn\":\"%s\",\"calculatedAt\":\"", ign);
    assert_memory_equal(body, want_ign, strlen(want_ign));
    const char *key = "\"totalExpectedCost\":";
    const char *a = strstr(body, key), *b = strstr(golden, key);
    assert_non_null(a);
    assert_non_null(b);
    if (strcmp(a, b) != 0) {
        size_t i = 0;
        while (a[i] && a[i] == b[i])
            i++;
        size_t from = i > 80 ? i - 80 : 0;
        fail_msg("document differs from %s at byte %zu after totalExpectedCost:\n got: %.200s\n"
                 "want: %.200s",
                 gname, i, a + from, b + from);
    }
}

static void test_documents_match_golden(void **st)
{
    char *body;
    size_t blen;
    assert_int_equal(
        raw("GET", "/api/v4/characters/" EVAN_URL "/expectation", NULL, NULL, &body, &blen), 200);
    assert_golden(body, "evan.json", EVAN);
    free(body);
    assert_int_equal(raw("GET", "/api/v4/characters/%EB%A9%94%EC%B9%B4%EB%8B%89/expectation", NULL,
                         NULL, &body, &blen),
                     200);
    assert_golden(body, "mechanic.json", "\xeb\xa9\x94\xec\xb9\xb4\xeb\x8b\x89");
    free(body);
}

/* A client reading slowly makes the kernel take only part of a stored
 * document at a time; the rest stays queued. Three pipelined requests read
 * in small sips must still give three identical, complete bodies in order. */
static void test_slow_reader_pipelined(void **st)
{
    char *head, *ref;
    size_t rlen;
    assert_int_equal(
        raw("GET", "/api/v4/characters/" EVAN_URL "/expectation", NULL, &head, &ref, &rlen), 200);
    free(head);
    int port = atoi(strrchr(g_base, ':') + 1);
    int fd = raw_connect(port);
    TU_ASSERT_CMP(fd, >=, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char req[] = "GET /api/v4/characters/" EVAN_URL "/expectation HTTP/1.1\r\n"
                       "Host: t\r\n\r\n";
    int n = (int)strlen(req);
    char three[768];
    snprintf(three, sizeof three, "%s%s%s", req, req, req);
    assert_int_equal(send(fd, three, (size_t)n * 3, 0), n * 3);
    size_t cap = rlen * 4 + 65536, len = 0;
    char *in = malloc(cap);
    int64_t dl = tu_now_ms() + 20000;
    while (len < cap && tu_now_ms() < dl) {
        usleep(200); /* a slow reader */
        ssize_t r = recv(fd, in + len, 2048 < cap - len ? 2048 : cap - len, MSG_DONTWAIT);
        if (r > 0)
            len += (size_t)r;
        else if (r == 0)
            break;
        /* done when three bodies are in */
        int bodies = 0;
        for (char *p = in; (p = memmem(p, len - (size_t)(p - in), "\r\n\r\n", 4)); p += 4) {
            size_t at = (size_t)(p + 4 - in);
            if (at + rlen <= len)
                bodies++;
        }
        if (bodies >= 3 && len >= 3 * rlen)
            break;
    }
    close(fd);
    char *p = in;
    for (int i = 0; i < 3; i++) {
        char *sep = memmem(p, len - (size_t)(p - in), "\r\n\r\n", 4);
        assert_non_null(sep);
        TU_ASSERT_CMP(strncmp(p, "HTTP/1.1 200", 12), ==, 0);
        char *body = sep + 4;
        TU_ASSERT_CMP((size_t)(body - in) + rlen, <=, len);
        /* the same bytes apart from fromCache (the reference may be the
         * first, freshly computed answer) */
        assert_memory_equal(body + rlen - 100, ref + rlen - 100, 100);
        TU_ASSERT_CMP(body[0], ==, '{');
        TU_ASSERT_CMP(body[rlen - 1], ==, '}');
        p = body + rlen;
    }
    free(in);
    free(ref);
}

static void test_presets_and_options(void **st)
{
#define EVAN_EXP "/api/v4/characters/" EVAN_URL "/expectation"
#define TWO_EXP "/api/v4/characters/" TWO "/expectation"
    expect("GET", EVAN_EXP "/preset/2", 200, STRS("\"presetNo\":2"), STRS("\"presetNo\":1"));
    /* a preset the character does not have: the seed's 200 with no presets;
     * the seed's builder leaves totalCostText and maxPresetNo unset, the
     * rest is the whole document's */
    expect("GET", EVAN_EXP "/preset/4", 200,
           STRS("\"presets\":[]", "\"totalExpectedCost\":0", "\"totalCostText\":null",
                "\"maxPresetNo\":0", "\"calculatedAt\":\"20"),
           NULL);
    /* preset 3 of a character that has only presets 1 and 2: the same */
    expect("GET", TWO_EXP "/preset/3", 200,
           STRS("\"presets\":[]", "\"maxPresetNo\":0", "\"calculatedAt\":\"20",
                "\"userIgn\":\"" TWO "\""),
           NULL);
    expect("GET", TWO_EXP "/preset/2", 200, STRS("\"presetNo\":2"), NULL);
    /* presetNo is a Java Integer in the seed: a sign is fine, beyond its range is not */
    expect("GET", EVAN_EXP "/preset/-1", 200, STRS("\"presets\":[]"), NULL);
    expect("GET", EVAN_EXP "/preset/+2", 200, STRS("\"presetNo\":2"), NULL);
    expect("GET", EVAN_EXP "/preset/2147483648", 400, NULL, NULL);
    expect("GET", EVAN_EXP "/preset/x", 400,
           STRS("\"code\":\"C001\"", "\"status\":400", "\"timestamp\":"), NULL);
    expect("GET", EVAN_EXP "?starCatch=maybe", 400, NULL, NULL);
#undef EVAN_EXP
#undef TWO_EXP
    /* options change the document: no star catch costs at least as much */
    char *b1, *b2, *h1, *h2;
    size_t l1, l2;
    assert_int_equal(raw("GET", "/api/v4/characters/" EVAN_URL "/expectation?starCatch=false", NULL,
                         &h1, &b1, &l1),
                     200);
    assert_int_equal(raw("GET", "/api/v4/characters/" EVAN_URL "/expectation?starCatch=true", NULL,
                         &h2, &b2, &l2),
                     200);
    long long c1 = 0, c2 = 0;
    const char *k = "\"totalExpectedCost\":";
    sscanf(strstr(b1, k) + strlen(k), "%lld", &c1);
    sscanf(strstr(b2, k) + strlen(k), "%lld", &c2);
    TU_ASSERT_CMP(c1, >=, c2);
    TU_ASSERT_CMP(c2, >, 0);
    free(b1);
    free(b2);
    free(h1);
    free(h2);
}

static void test_unknown_and_bad_names(void **st)
{
    long long id0 = stat_path("/maplestory/v1/id");
    expect("GET", "/api/v4/characters/nobody-here/expectation", 404, STRS("\"code\":\"C002\""),
           NULL);
    expect("GET", "/api/v1/characters/nobody-here", 404, NULL, NULL);
    /* negative cache: the second and third asked upstream once in all */
    assert_int_equal(stat_path("/maplestory/v1/id"), id0 + 1);
    /* invalid UTF-8, an empty IGN, '//' */
    expect("GET", "/api/v4/characters/%FF%FE/expectation", 400, NULL, NULL);
    expect("GET", "/api/v4/characters//expectation", 400, NULL, NULL);
    /* as the seed, a name is trimmed: spaces around it find the character,
     * a name of spaces only is empty */
    expect("GET", "/api/v1/characters/%20" EVAN_URL "%20%09", 200, NULL, NULL);
    expect("GET", "/api/v4/characters/%20%20/expectation", 400, NULL, NULL);
}

static void test_character_record(void **st)
{
    /* no like store reachable here (no MySQL, Redis on a closed port): the
     * live count is unknown, and said so rather than a made-up 0 */
    expect("GET", "/api/v1/characters/" EVAN_URL, 200,
           STRS("\"userIgn\":\"" EVAN "\"", "\"ocid\":\"", "\"likeCount\":null",
                "\"worldName\":", "\"characterClass\":", "\"characterImage\":"),
           NULL);
}

static void test_recalculate(void **st)
{
    expect("GET", "/api/v4/characters/" EVAN_URL "/expectation", 200, NULL, NULL);
    long long eq0 = stat_path("/maplestory/v1/character/item-equipment");
    expect("POST", "/api/v4/characters/" EVAN_URL "/expectation/recalculate", 200,
           STRS("\"fromCache\":false"), NULL);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 1);
    expect("GET", "/api/v4/characters/" EVAN_URL "/expectation?force=true", 200,
           STRS("\"fromCache\":false"), NULL);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 2);
}

struct cold_arg {
    int status;
    char *body;
};

static void *cold_one(void *p)
{
    struct cold_arg *a = p;
    char *head;
    size_t blen;
    a->status = raw("GET", "/api/v4/characters/cold-one/expectation", NULL, &head, &a->body, &blen);
    free(head);
    return NULL;
}

/* 50 concurrent requests for one uncached (synthetic) character: one
 * upstream id call and one equipment call, the same totals for all. */
static void test_single_flight(void **st)
{
    /* the synthetic character needs --unknown synthetic */
    struct resp r;
    char url[256];
    snprintf(url, sizeof url, "%s/__stub/config?unknown=synthetic", g_stub.base);
    assert_int_equal(http_post(url, &r), 0);
    resp_free(&r);
    long long id0 = stat_path("/maplestory/v1/id");
    long long eq0 = stat_path("/maplestory/v1/character/item-equipment");
    enum { N = 50 };
    pthread_t t[N];
    struct cold_arg a[N];
    memset(a, 0, sizeof a);
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, cold_one, &a[i]);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    const char *k = "\"totalExpectedCost\":";
    long long first = -1;
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].status, 200);
        long long c;
        assert_int_equal(sscanf(strstr(a[i].body, k) + strlen(k), "%lld", &c), 1);
        if (first < 0)
            first = c;
        assert_int_equal(c, first);
        free(a[i].body);
    }
    assert_int_equal(stat_path("/maplestory/v1/id"), id0 + 1);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 1);
    snprintf(url, sizeof url, "%s/__stub/config?unknown=404", g_stub.base);
    assert_int_equal(http_post(url, &r), 0);
    resp_free(&r);
}

/* inflate a whole gzip body into out (cap bytes); returns its length or -1 */
static long gunzip_body(const char *gz, size_t len, char *out, size_t cap)
{
    z_stream z = {0};
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -1;
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    long n = rc == Z_STREAM_END ? (long)z.total_out : -1;
    inflateEnd(&z);
    return n;
}

struct equip_arg {
    const char *path;
    int status;
    char *body;
    size_t len;
};

static void *equip_one(void *p)
{
    struct equip_arg *a = p;
    char *head;
    a->status = raw("GET", a->path, NULL, &head, &a->body, &a->len);
    free(head);
    return NULL;
}

/* v2/v3 equipment come from the cache tiers: the upstream's bytes as they
 * are, one upstream call for a cold character however many requests (and
 * concurrent ones) ask, and none for a character whose expectation was
 * computed already (the calculation stored the same equipment). */
static void test_equipment_cached(void **st)
{
    struct resp r;
    char url[512], ocid[40];
    snprintf(url, sizeof url, "%s/__stub/config?unknown=synthetic", g_stub.base);
    assert_int_equal(http_post(url, &r), 0);
    resp_free(&r);
    /* what the upstream sends for equip-one, read straight from the stub */
    assert_int_equal(stub_ocid(&g_stub, "equip-one", ocid), 200);
    snprintf(url, sizeof url, "%s/maplestory/v1/character/item-equipment?ocid=%s", g_stub.base,
             ocid);
    struct resp up;
    assert_int_equal(http_get(url, "k", false, &up), 0);
    assert_int_equal(up.status, 200);
    TU_ASSERT_CMP(up.len, >, 1000);

    long long eq0 = stat_path("/maplestory/v1/character/item-equipment");
    long long id0 = stat_path("/maplestory/v1/id");
    /* 8 concurrent cold requests, v2 and v3 mixed: one load */
    enum { N = 8 };
    pthread_t t[N];
    struct equip_arg a[N];
    memset(a, 0, sizeof a);
    for (int i = 0; i < N; i++) {
        a[i].path = i % 2 ? "/api/v3/characters/equip-one/equipment"
                          : "/api/v2/characters/equip-one/equipment";
        pthread_create(&t[i], NULL, equip_one, &a[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].status, 200);
        assert_int_equal(a[i].len, up.len);
        assert_memory_equal(a[i].body, up.body, up.len);
        free(a[i].body);
    }
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 1);
    assert_int_equal(stat_path("/maplestory/v1/id"), id0 + 1);

    /* repeated: from L1, v3 gzip inflating to the same bytes, with an ETag */
    char *head, *body;
    size_t blen;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            raw("GET", "/api/v2/characters/equip-one/equipment", NULL, &head, &body, &blen), 200);
        assert_int_equal(blen, up.len);
        assert_memory_equal(body, up.body, up.len);
        free(head);
        free(body);
    }
    assert_int_equal(raw("GET", "/api/v3/characters/equip-one/equipment",
                         "Accept-Encoding: gzip\r\n", &head, &body, &blen),
                     200);
    char ce[64], etag[128];
    header_value(head, "Content-Encoding", ce, sizeof ce);
    header_value(head, "ETag", etag, sizeof etag);
    assert_string_equal(ce, "gzip");
    TU_ASSERT_CMP(strlen(etag), >, 4);
    TU_ASSERT_CMP(blen, <, up.len);
    char *plain = malloc(up.len + 16);
    assert_int_equal(gunzip_body(body, blen, plain, up.len + 16), (long)up.len);
    assert_memory_equal(plain, up.body, up.len);
    free(plain);
    free(head);
    free(body);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 1);
    /* the expectation of the same character is computed from that equipment */
    assert_int_equal(
        raw("GET", "/api/v4/characters/equip-one/expectation", NULL, NULL, &body, &blen), 200);
    free(body);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 1);

    /* the other way round: expectation first, then the equipment, one call */
    assert_int_equal(
        raw("GET", "/api/v4/characters/equip-two/expectation", NULL, NULL, &body, &blen), 200);
    free(body);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 2);
    assert_int_equal(raw("GET", "/api/v3/characters/equip-two/equipment", NULL, NULL, &body, &blen),
                     200);
    TU_ASSERT_CMP(blen, >, 1000);
    TU_ASSERT_CMP(body[0], ==, '{');
    free(body);
    assert_int_equal(stat_path("/maplestory/v1/character/item-equipment"), eq0 + 2);
    resp_free(&up);

    /* an unknown character: 404 C002, as the other routes */
    snprintf(url, sizeof url, "%s/__stub/config?unknown=404", g_stub.base);
    assert_int_equal(http_post(url, &r), 0);
    resp_free(&r);
    assert_int_equal(
        raw("GET", "/api/v2/characters/nobody-equip/equipment", NULL, NULL, &body, &blen), 404);
    assert_non_null(strstr(body, "\"code\":\"C002\""));
    free(body);
}

static void test_upstream_failure(void **st)
{
    struct resp r;
    char url[256];
    snprintf(url, sizeof url, "%s/__stub/config?fail_rate=1&fail_status=503&unknown=synthetic",
             g_stub.base);
    assert_int_equal(http_post(url, &r), 0);
    resp_free(&r);
    char *head, *body;
    size_t blen;
    int s = raw("GET", "/api/v4/characters/failing-one/expectation", NULL, &head, &body, &blen);
    assert_int_equal(s, 503);
    assert_non_null(strstr(body, "\"code\":\"S005\""));
    char ra[32];
    header_value(head, "Retry-After", ra, sizeof ra);
    TU_ASSERT_CMP(atoi(ra), >, 0);
    free(head);
    free(body);
    /* a cached document keeps being served while upstream fails */
    s = raw("GET", "/api/v4/characters/" EVAN_URL "/expectation", NULL, &head, &body, &blen);
    assert_int_equal(s, 200);
    free(head);
    free(body);
    snprintf(url, sizeof url, "%s/__stub/config?fail_rate=0&unknown=404", g_stub.base);
    assert_int_equal(http_post(url, &r), 0);
    resp_free(&r);
}

static void test_health_metrics_and_others(void **st)
{
    char *head, *body;
    size_t blen;
    /* this node's Redis (port 1) is down: health says which component, 503 */
    expect("GET", "/actuator/health", 503,
           STRS("\"redis\":{\"status\":\"DOWN\"}", "\"diskSpace\":{\"status\":\"UP\"",
                "\"status\":\"DOWN\"}"),
           NULL);
    expect("GET", "/actuator/info", 200, STRS("\"version\":\""), NULL);
    expect("GET", "/actuator", 200, STRS("/actuator/health\",\"templated\":false"), NULL);
    expect("GET", "/actuator/health/liveness", 200, NULL, NULL);
    expect("GET", "/actuator/health/readiness", 200, NULL, NULL);
    assert_int_equal(raw("GET", "/actuator/prometheus", NULL, &head, &body, &blen), 200);
    assert_non_null(strstr(body, "mx_http_requests_total{"));
    TU_ASSERT_CMP(prom_sum(body, "mx_http_bytes_out_total"), >, 100000); /* over the acceptors */
    assert_non_null(strstr(body, "mx_cache_total{"));
    assert_non_null(strstr(body, "event=\"l1_hit\"} "));
    assert_non_null(strstr(body, "mx_fetch_total{"));
    assert_non_null(strstr(body, "mx_deadletters_total{"));
    free(head);
    free(body);
    /* a toggle needs a signed-in user (docs/likes.md) */
    expect("POST", "/api/v2/characters/" EVAN_URL "/like", 401, STRS("\"UNAUTHORIZED\""), NULL);
    expect("GET", "/nope", 404, NULL, NULL);
    assert_int_equal(
        raw("DELETE", "/api/v4/characters/" EVAN_URL "/expectation", NULL, &head, &body, &blen),
        405);
    char allow[64];
    header_value(head, "Allow", allow, sizeof allow);
    assert_non_null(strstr(allow, "GET"));
    free(head);
    free(body);
}

/* What every answer carries: the seed's security headers, X-Correlation-ID
 * (the client's, or the trace id), and CORS for MX_CORS_ORIGINS only. */
static void test_cross_cutting(void **st)
{
    char *head, *body, v[160];
    size_t blen;
    static const char *const paths[] = {"/actuator/health/liveness", "/nope",
                                        "/api/v4/characters/" EVAN_URL "/expectation"};
    for (int i = 0; i < 3; i++) {
        raw("GET", paths[i], NULL, &head, &body, &blen);
        header_value(head, "X-Content-Type-Options", v, sizeof v);
        assert_string_equal(v, "nosniff");
        header_value(head, "X-Frame-Options", v, sizeof v);
        assert_string_equal(v, "DENY");
        header_value(head, "Cache-Control", v, sizeof v);
        /* a document keeps its ETag useful: no-cache, not no-store */
        assert_string_equal(v,
                            i == 2 ? "no-cache" : "no-cache, no-store, max-age=0, must-revalidate");
        header_value(head, "Content-Security-Policy", v, sizeof v);
        assert_non_null(strstr(v, "frame-ancestors 'none'"));
        /* generated: the trace id in UUID form */
        char tp[80], cid[64];
        header_value(head, "traceparent", tp, sizeof tp);
        header_value(head, "X-Correlation-ID", cid, sizeof cid);
        assert_int_equal(strlen(cid), 36);
        char hex[40];
        snprintf(hex, sizeof hex, "%.8s%.4s%.4s%.4s%.12s", cid, cid + 9, cid + 14, cid + 19,
                 cid + 24);
        assert_memory_equal(hex, tp + 3, 32);
        free(head);
        free(body);
    }
    raw("GET", "/actuator/health/liveness", "X-Correlation-ID: my-id-42\r\n", &head, &body, &blen);
    header_value(head, "X-Correlation-ID", v, sizeof v);
    assert_string_equal(v, "my-id-42");
    free(head);
    free(body);
    /* a preflight from the allowed origin is answered by the node itself */
    assert_int_equal(raw("OPTIONS", "/api/v4/characters/" EVAN_URL "/expectation",
                         "Origin: " FRONT "\r\nAccess-Control-Request-Method: GET\r\n", &head,
                         &body, &blen),
                     200);
    header_value(head, "Access-Control-Allow-Origin", v, sizeof v);
    assert_string_equal(v, FRONT);
    header_value(head, "Access-Control-Allow-Methods", v, sizeof v);
    assert_non_null(strstr(v, "GET"));
    header_value(head, "Access-Control-Allow-Credentials", v, sizeof v);
    assert_string_equal(v, "true");
    free(head);
    free(body);
    assert_int_equal(raw("OPTIONS", "/api/v4/characters/" EVAN_URL "/expectation",
                         "Origin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n",
                         &head, &body, &blen),
                     403);
    assert_non_null(strstr(body, "\"code\":\"CORS_FORBIDDEN\""));
    header_value(head, "Access-Control-Allow-Origin", v, sizeof v);
    assert_string_equal(v, "");
    free(head);
    free(body);
    /* actual requests: allowed origin gets the headers, another one 403 */
    assert_int_equal(
        raw("GET", "/actuator/health/liveness", "Origin: " FRONT "\r\n", &head, &body, &blen), 200);
    header_value(head, "Access-Control-Allow-Origin", v, sizeof v);
    assert_string_equal(v, FRONT);
    free(head);
    free(body);
    assert_int_equal(raw("GET", "/actuator/health/liveness", "Origin: https://evil.example\r\n",
                         &head, &body, &blen),
                     403);
    free(head);
    free(body);
    /* OPTIONS without CORS: the methods of the path; an empty body has no
     * Content-Type */
    assert_int_equal(raw("OPTIONS", "/auth/login", NULL, &head, &body, &blen), 200);
    header_value(head, "Allow", v, sizeof v);
    assert_string_equal(v, "POST, OPTIONS");
    assert_int_equal(blen, 0);
    header_value(head, "Content-Type", v, sizeof v);
    assert_string_equal(v, "");
    free(head);
    free(body);
    /* answers the http layer writes itself (a query that is not valid
     * percent-encoding, headers past the limit) carry the same headers */
    static const char *const extra[] = {NULL, NULL};
    char big[20000];
    memset(big, 'a', sizeof big);
    memcpy(big, "X-Big: ", 7);
    memcpy(big + sizeof big - 3, "\r\n", 3);
    const char *paths2[] = {"/actuator/health/liveness?x=%zz", "/actuator/health/liveness"};
    const int want[] = {400, 431};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(raw("GET", paths2[i], i == 1 ? big : extra[i], &head, &body, &blen),
                         want[i]);
        header_value(head, "X-Content-Type-Options", v, sizeof v);
        assert_string_equal(v, "nosniff");
        header_value(head, "X-Correlation-ID", v, sizeof v);
        assert_int_equal(strlen(v), 36);
        free(head);
        free(body);
    }
}

static void test_sigterm(void **st)
{
    assert_int_equal(node_signal_wait(&g_node, SIGTERM, 15000), 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expectation_cache_gzip_etag),
        cmocka_unit_test(test_documents_match_golden),
        cmocka_unit_test(test_slow_reader_pipelined),
        cmocka_unit_test(test_presets_and_options),
        cmocka_unit_test(test_unknown_and_bad_names),
        cmocka_unit_test(test_character_record),
        cmocka_unit_test(test_recalculate),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_equipment_cached),
        cmocka_unit_test(test_upstream_failure),
        cmocka_unit_test(test_health_metrics_and_others),
        cmocka_unit_test(test_cross_cutting),
        cmocka_unit_test(test_sigterm),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
