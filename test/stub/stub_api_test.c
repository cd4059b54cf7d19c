/* stub_api_test.c - mxstub answers the Nexon Open API paths as the real API.
 *
 * Starts the real mxstub binary per test and talks to it with libcurl:
 * every path, Korean names percent-encoded, fixtures served byte for byte,
 * synthetic data identical across two runs, the unknown-name and invalid-key
 * error shapes, gzip, and the command line's exit codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "stub_harness.h"

static char evan_path[4096], mech_path[4096];

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *b;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = '\0';
    fclose(f);
    return b;
}

static void get(struct stub *s, const char *path_query, const char *key, struct resp *r)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", s->base, path_query);
    assert_int_equal(http_get(url, key, false, r), 0);
}

static void test_id_and_korean_names(void **state)
{
    struct stub *s = *state;
    char o1[40], o2[40], o3[40];
    struct resp r;

    assert_int_equal(stub_start(s, NULL), 0);
    /* curl_easy_escape writes uppercase hex: %EC%97%90%EB%B0%98 */
    assert_int_equal(stub_ocid(s, "에반", o1), 200);
    assert_int_equal(strlen(o1), 32);
    /* the same name with lowercase escapes is the same character */
    get(s, "/maplestory/v1/id?character_name=%ec%97%90%eb%b0%98", "k", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, o1));
    resp_free(&r);
    /* other names, other ocids */
    assert_int_equal(stub_ocid(s, "메카닉", o2), 200);
    assert_int_equal(stub_ocid(s, "Adele 1", o3), 200);
    assert_string_not_equal(o1, o2);
    assert_string_not_equal(o2, o3);
    /* the answer is exactly {"ocid":"..."} */
    get(s, "/maplestory/v1/id?character_name=%EC%97%90%EB%B0%98", "k", &r);
    char want[64];
    snprintf(want, sizeof(want), "{\"ocid\":\"%s\"}", o1);
    assert_string_equal(r.body, want);
    assert_non_null(strstr(r.headers, "application/json"));
    resp_free(&r);
    /* bad names: missing, empty, invalid UTF-8, bad escape */
    const char *bad[] = {"/maplestory/v1/id", "/maplestory/v1/id?character_name=",
                         "/maplestory/v1/id?character_name=%ff%fe",
                         "/maplestory/v1/id?character_name=%zz"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        get(s, bad[i], "k", &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"name\":\"OPENAPI00004\""));
        resp_free(&r);
    }
}

static void test_basic_shape(void **state)
{
    struct stub *s = *state;
    char ocid[40], q[256];
    struct resp r;
    const char *fields[] = {
        "\"date\":null",
        "\"character_name\":\"아델\"",
        "\"world_name\":\"",
        "\"character_gender\":\"",
        "\"character_class\":\"",
        "\"character_class_level\":\"",
        "\"character_level\":",
        "\"character_exp\":",
        "\"character_exp_rate\":\"",
        "\"character_guild_name\":\"",
        "\"character_image\":\"https://open.api.nexon.com/static/maplestory/character/look/",
        "\"character_date_create\":\"",
        "\"access_flag\":\"true\"",
        "\"liberation_quest_clear\":\""};

    assert_int_equal(stub_start(s, NULL), 0);
    assert_int_equal(stub_ocid(s, "아델", ocid), 200);
    snprintf(q, sizeof(q), "/maplestory/v1/character/basic?ocid=%s", ocid);
    get(s, q, "k", &r);
    assert_int_equal(r.status, 200);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!strstr(r.body, fields[i]))
            fail_msg("basic lacks %s: %s", fields[i], r.body);
    }
    resp_free(&r);
    /* malformed ocid: OPENAPI00003; missing: OPENAPI00004 */
    get(s, "/maplestory/v1/character/basic?ocid=xyz", "k", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "OPENAPI00003"));
    resp_free(&r);
    get(s, "/maplestory/v1/character/basic", "k", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "OPENAPI00004"));
    resp_free(&r);
}

static void test_fixture_byte_identical(void **state)
{
    struct stub *s = *state;
    char arg1[4200], arg2[4200], ocid[40], q[256];
    const char *args[] = {"--character", arg1, "--character", arg2, "--gzip", NULL};
    struct resp r;
    size_t flen;
    char *want;

    snprintf(arg1, sizeof(arg1), "에반=%s", evan_path);
    snprintf(arg2, sizeof(arg2), "메카닉=%s", mech_path);
    assert_int_equal(stub_start(s, args), 0);

    assert_int_equal(stub_ocid(s, "에반", ocid), 200);
    snprintf(q, sizeof(q), "/maplestory/v1/character/item-equipment?ocid=%s", ocid);
    want = read_file(evan_path, &flen);
    assert_non_null(want);
    get(s, q, "k", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, flen);
    assert_memory_equal(r.body, want, flen);
    resp_free(&r);
    /* gzip on the wire, same bytes after decoding */
    {
        char url[512];
        snprintf(url, sizeof(url), "%s%s", s->base, q);
        assert_int_equal(http_get(url, "k", true, &r), 0);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.headers, "Content-Encoding: gzip"));
        assert_int_equal(r.len, flen);
        assert_memory_equal(r.body, want, flen);
        resp_free(&r);
    }
    free(want);
    /* the basic record of a fixture character carries its name and class */
    snprintf(q, sizeof(q), "/maplestory/v1/character/basic?ocid=%s", ocid);
    get(s, q, "k", &r);
    assert_non_null(strstr(r.body, "\"character_name\":\"에반\""));
    assert_non_null(strstr(r.body, "\"character_class\":\"에반\""));
    resp_free(&r);

    assert_int_equal(stub_ocid(s, "메카닉", ocid), 200);
    snprintf(q, sizeof(q), "/maplestory/v1/character/item-equipment?ocid=%s", ocid);
    want = read_file(mech_path, &flen);
    get(s, q, "k", &r);
    assert_int_equal(r.len, flen);
    assert_memory_equal(r.body, want, flen);
    resp_free(&r);
    free(want);
}

static void fetch_all(struct stub *s, const char *name, const char *key, char **out)
{
    char ocid[40], q[256];
    struct resp r;
    size_t len = 0, cap = 0;
    char *buf = NULL;

    assert_int_equal(stub_ocid(s, name, ocid), 200);
    const char *paths[] = {"/maplestory/v1/character/basic?ocid=%s",
                           "/maplestory/v1/character/item-equipment?ocid=%s",
                           "/maplestory/v1/character/list"};
    for (int i = 0; i < 3; i++) {
        snprintf(q, sizeof(q), paths[i], ocid);
        get(s, q, key, &r);
        assert_int_equal(r.status, 200);
        if (len + r.len + 64 > cap) {
            cap = (len + r.len + 64) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, r.body, r.len);
        len += r.len;
        buf[len++] = '\n';
        resp_free(&r);
    }
    memcpy(buf + len, ocid, 33);
    *out = buf;
}

static void test_synthetic_deterministic(void **state)
{
    struct stub *s = *state;
    char *a, *b, *c;

    assert_int_equal(stub_start(s, NULL), 0);
    fetch_all(s, "테스트캐릭", "key-1", &a);
    fetch_all(s, "다른캐릭", "key-2", &c);
    assert_int_equal(stub_stop(s) & 0xffff, 0); /* exit 0 on SIGTERM */
    assert_int_equal(stub_start(s, NULL), 0);
    fetch_all(s, "테스트캐릭", "key-1", &b);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    /* the shape of the synthetic equipment */
    const char *must[] = {"\"item_equipment_preset_1\":[",
                          "\"item_equipment_preset_2\":[",
                          "\"item_equipment_preset_3\":[",
                          "\"item_equipment\":[",
                          "\"item_equipment_part\":",
                          "\"item_equipment_slot\":\"모자\"",
                          "\"item_name\":",
                          "\"item_icon\":\"https://",
                          "\"base_equipment_level\":",
                          "\"potential_option_grade\":",
                          "\"potential_option_1\":",
                          "\"additional_potential_option_grade\":",
                          "\"additional_potential_option_3\":",
                          "\"starforce\":\"",
                          "\"starforce_scroll_flag\":\"",
                          "\"special_ring_level\":",
                          "\"item_add_option\":{",
                          " +",
                          "%\"",
                          "\"account_list\":[",
                          "\"character_list\":[",
                          "\"account_id\":\""};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!strstr(a, must[i]))
            fail_msg("synthetic data lacks %s", must[i]);
    /* grades are the Korean words */
    assert_true(strstr(a, "레전드리") || strstr(a, "유니크") || strstr(a, "에픽"));
    free(a);
    free(b);
    free(c);
}

static void test_character_list_and_keys(void **state)
{
    struct stub *s = *state;
    const char *args[] = {
        "--reject-key",         "revoked", "--reject-key", "other-bad", "--account-character",
        "listed-key=AsciiHero", NULL};
    struct resp r, r2;
    char ocid[40], name[128], q[256];

    assert_int_equal(stub_start(s, args), 0);
    /* --account-character: the name joins that key's list (last), and only
     * that key's; basic knows it by its ocid */
    get(s, "/maplestory/v1/character/list", "listed-key", &r);
    assert_int_equal(r.status, 200);
    const char *last = strstr(r.body, "\"character_name\":\"AsciiHero\"");
    assert_non_null(last);
    assert_null(strstr(last + 1, "\"character_name\":"));
    get(s, "/maplestory/v1/character/list", "good-key", &r2);
    assert_null(strstr(r2.body, "AsciiHero"));
    resp_free(&r2);
    resp_free(&r);
    assert_int_equal(stub_ocid(s, "AsciiHero", ocid), 200);
    snprintf(q, sizeof(q), "/maplestory/v1/character/basic?ocid=%s", ocid);
    get(s, q, "k", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"character_name\":\"AsciiHero\""));
    resp_free(&r);

    get(s, "/maplestory/v1/character/list", "good-key", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "{\"account_list\":[{\"account_id\":\""));
    assert_non_null(strstr(r.body, "\"character_list\":[{\"ocid\":\""));
    assert_non_null(strstr(r.body, "\"character_level\":"));
    get(s, "/maplestory/v1/character/list", "good-key", &r2);
    assert_string_equal(r.body, r2.body); /* deterministic per key */
    resp_free(&r2);
    get(s, "/maplestory/v1/character/list", "another-key", &r2);
    assert_string_not_equal(r.body, r2.body);
    resp_free(&r2);
    /* a listed character resolves to the listed ocid */
    const char *p = strstr(r.body, "\"ocid\":\"");
    const char *n = strstr(r.body, "\"character_name\":\"");
    assert_non_null(p);
    assert_non_null(n);
    snprintf(ocid, 33, "%.32s", p + 8);
    n += 18;
    snprintf(name, sizeof(name), "%.*s", (int)(strchr(n, '"') - n), n);
    char got[40];
    assert_int_equal(stub_ocid(s, name, got), 200);
    assert_string_equal(got, ocid);
    resp_free(&r);

    /* rejected and missing keys get the real invalid-key error */
    get(s, "/maplestory/v1/character/list", "revoked", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(
        r.body,
        "{\"error\":{\"name\":\"OPENAPI00005\",\"message\":\"Please input valid api key\"}}");
    resp_free(&r);
    snprintf(q, sizeof(q), "/maplestory/v1/character/basic?ocid=%s", ocid);
    get(s, q, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "OPENAPI00005"));
    resp_free(&r);
    get(s, "/maplestory/v1/id?character_name=a", NULL, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    assert_int_equal(stub_stat(s, "missing_key"), 2);
    assert_int_equal(stub_stat(s, "rejected_key"), 1);
    /* unknown API path */
    get(s, "/maplestory/v1/nope", "k", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "OPENAPI00006"));
    resp_free(&r);
}

static void test_unknown_404(void **state)
{
    struct stub *s = *state;
    char arg[4200], ocid[40], q[256];
    const char *args[] = {"--unknown", "404", "--character", arg, NULL};
    struct resp r;

    snprintf(arg, sizeof(arg), "에반=%s", evan_path);
    assert_int_equal(stub_start(s, args), 0);
    get(s, "/maplestory/v1/id?character_name=%EC%97%86%EB%8A%94%EC%9D%B4%EB%A6%84", "k", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(
        r.body,
        "{\"error\":{\"name\":\"OPENAPI00004\",\"message\":\"Please input valid parameter\"}}");
    resp_free(&r);
    assert_int_equal(stub_ocid(s, "에반", ocid), 200);
    /* an ocid nobody handed out is not a character either */
    get(s, "/maplestory/v1/character/basic?ocid=0123456789abcdef0123456789abcdef", "k", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "OPENAPI00003"));
    resp_free(&r);
    snprintf(q, sizeof(q), "/maplestory/v1/character/basic?ocid=%s", ocid);
    get(s, q, "k", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* switching back at run time */
    char url[256];
    snprintf(url, sizeof(url), "%s/__stub/config?unknown=synthetic", s->base);
    assert_int_equal(http_post(url, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(stub_ocid(s, "없는이름", ocid), 200);
}

static void test_gzip_synthetic(void **state)
{
    struct stub *s = *state;
    const char *args[] = {"--gzip", NULL};
    char ocid[40], url[512];
    struct resp plain, gz;

    assert_int_equal(stub_start(s, args), 0);
    assert_int_equal(stub_ocid(s, "압축", ocid), 200);
    snprintf(url, sizeof(url), "%s/maplestory/v1/character/item-equipment?ocid=%s", s->base, ocid);
    assert_int_equal(http_get(url, "k", false, &plain), 0);
    assert_null(strstr(plain.headers, "Content-Encoding"));
    assert_int_equal(http_get(url, "k", true, &gz), 0);
    assert_non_null(strstr(gz.headers, "Content-Encoding: gzip"));
    assert_int_equal(plain.len, gz.len);
    assert_memory_equal(plain.body, gz.body, plain.len);
    resp_free(&plain);
    resp_free(&gz);
}

static void test_command_line(void **state)
{
    const char *bogus[] = {"--bogus", NULL};
    const char *rate[] = {"--fail-rate", "1.5", NULL};
    const char *status[] = {"--fail-status", "200", NULL};
    const char *listen[] = {"--listen", "nohost", NULL};
    const char *unk[] = {"--unknown", "maybe", NULL};
    const char *extra[] = {"positional", NULL};
    const char *missing[] = {"--character", "x=/nonexistent/file.json", NULL};
    const char *noeq[] = {"--character", "just-a-name", NULL};
    const char *acct[] = {"--account-character", "key-without-name", NULL};
    const char *acct2[] = {"--account-character", "key=", NULL};
    const char *help[] = {"--help", NULL};
    (void)state;
    assert_int_equal(stub_run_exit(bogus, 5000), 2);
    assert_int_equal(stub_run_exit(rate, 5000), 2);
    assert_int_equal(stub_run_exit(status, 5000), 2);
    assert_int_equal(stub_run_exit(listen, 5000), 2);
    assert_int_equal(stub_run_exit(unk, 5000), 2);
    assert_int_equal(stub_run_exit(extra, 5000), 2);
    assert_int_equal(stub_run_exit(noeq, 5000), 2);
    assert_int_equal(stub_run_exit(acct, 5000), 2);
    assert_int_equal(stub_run_exit(acct2, 5000), 2);
    assert_int_equal(stub_run_exit(missing, 5000), 1);
    assert_int_equal(stub_run_exit(help, 5000), 0);
}

static void test_sigint_exit0(void **state)
{
    struct stub *s = *state;
    int status;
    char ocid[40];
    assert_int_equal(stub_start(s, NULL), 0);
    assert_int_equal(stub_ocid(s, "a", ocid), 200);
    kill(s->pid, SIGINT);
    for (int i = 0; i < 500 && waitpid(s->pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    s->pid = 0; /* reaped */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_id_and_korean_names, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_basic_shape, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_fixture_byte_identical, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_synthetic_deterministic, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_character_list_and_keys, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_404, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_gzip_synthetic, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_command_line, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_sigint_exit0, stub_setup, stub_teardown),
    };
    stub_fixture_path("evan_equip.json", evan_path, sizeof(evan_path));
    stub_fixture_path("mechanic_equip.json", mech_path, sizeof(mech_path));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
