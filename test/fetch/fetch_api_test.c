/* fetch_api_test.c - the fetcher against a real mxstub: every endpoint's
 * bytes, Korean and awkward names URL-encoded, keep-alive, gzip, the body as
 * a pointer payload or inline, not found, invalid keys, and hostile
 * requests that must never reach the upstream. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch_harness.h"
#include "mx_err.h"
#include "mx_testutil.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = '\0';
    fclose(f);
    return b;
}

static void assert_body(const struct call *c, const char *want, size_t want_len)
{
    size_t len;
    const char *b = call_body(c, &len);
    assert_non_null(b);
    if (len != want_len || memcmp(b, want, len) != 0)
        fail_msg("body differs: got %zu bytes, want %zu", len, want_len);
}

/* the ocid in {"ocid":"..."} */
static void ocid_of(const struct call *c, char out[33])
{
    size_t len;
    const char *b = call_body(c, &len);
    assert_non_null(b);
    const char *p = strstr(b, "\"ocid\":\"");
    assert_non_null(p);
    snprintf(out, 33, "%.32s", p + 8);
}

static void stub_body(struct fx *x, const char *pathq, const char *key, struct resp *r)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", x->stub.base, pathq);
    assert_int_equal(http_get(url, key, false, r), 0);
    assert_int_equal(r->status, 200);
}

static void test_endpoints(void **state)
{
    struct fx *x = *state;
    char evan[4096], arg[4200], ocid[33], want_ocid[33], q[256];
    stub_fixture_path("evan_equip.json", evan, sizeof(evan));
    snprintf(arg, sizeof(arg), "에반=%s", evan);
    const char *args[] = {"--character", arg, NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    fx_start(x, args, &o);

    /* id: the Korean name is percent-encoded; the stub hands out the ocid */
    struct call id = {.kind = MX_FETCH_ID, .arg = "에반"};
    assert_int_equal(fx_call(x, &id), 0);
    assert_int_equal(id.http, 200);
    assert_int_equal(id.attempts, 1);
    assert_true(id.had_ptr);
    ocid_of(&id, ocid);

    struct call basic = {.kind = MX_FETCH_BASIC, .arg = ocid};
    assert_int_equal(fx_call(x, &basic), 0);
    struct call eq = {.kind = MX_FETCH_EQUIPMENT, .arg = ocid};
    assert_int_equal(fx_call(x, &eq), 0);
    assert_true(eq.had_ptr); /* in process: pointer payload, no msgpack copy */
    struct call list = {.kind = MX_FETCH_LIST, .key = "user-key-7"};
    assert_int_equal(fx_call(x, &list), 0);
    /* inline: the same bytes in the encoded body, no pointer */
    struct call eqi = {.kind = MX_FETCH_EQUIPMENT, .arg = ocid, .inline_body = true};
    assert_int_equal(fx_call(x, &eqi), 0);
    assert_false(eqi.had_ptr);

    /* awkward names: '+' must stay a plus, '&' and '=' must not split the query */
    struct call odd = {.kind = MX_FETCH_ID, .arg = "a+b c&d=e/?#%"};
    assert_int_equal(fx_call(x, &odd), 0);
    char odd_ocid[33];
    ocid_of(&odd, odd_ocid);

    /* keep-alive: six calls, one connection (the second is this stats request's own) */
    assert_int_equal(stub_stat(&x->stub, "accepted"), 2);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.requests, 6);
    assert_int_equal(st.ok, 6);
    assert_int_equal(st.upstream_calls, 6);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.breaker_state, 0);

    /* what the stub serves, fetched independently */
    assert_int_equal(stub_ocid(&x->stub, "에반", want_ocid), 200);
    assert_string_equal(ocid, want_ocid);
    assert_int_equal(stub_ocid(&x->stub, "a+b c&d=e/?#%", want_ocid), 200);
    assert_string_equal(odd_ocid, want_ocid);
    struct resp r;
    snprintf(q, sizeof(q), "/maplestory/v1/character/basic?ocid=%s", ocid);
    stub_body(x, q, "k", &r);
    assert_body(&basic, r.body, r.len);
    assert_non_null(strstr(r.body, "\"character_name\":\"에반\""));
    resp_free(&r);
    size_t flen;
    char *file = read_file(evan, &flen);
    TU_ASSERT_CMP(flen, >, 100000);
    assert_body(&eq, file, flen);
    assert_body(&eqi, file, flen);
    free(file);
    stub_body(x, "/maplestory/v1/character/list", "user-key-7", &r);
    assert_body(&list, r.body, r.len);
    resp_free(&r);
    TU_ASSERT_CMP(st.body_bytes, >, 2 * flen);
    call_free(&id);
    call_free(&basic);
    call_free(&eq);
    call_free(&eqi);
    call_free(&list);
    call_free(&odd);
}

static void test_gzip(void **state)
{
    struct fx *x = *state;
    char evan[4096], arg[4200];
    stub_fixture_path("evan_equip.json", evan, sizeof(evan));
    snprintf(arg, sizeof(arg), "에반=%s", evan);
    const char *args[] = {"--gzip", "--character", arg, NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    fx_start(x, args, &o);
    struct call id = {.kind = MX_FETCH_ID, .arg = "에반"};
    assert_int_equal(fx_call(x, &id), 0);
    char ocid[33];
    ocid_of(&id, ocid);
    struct call eq = {.kind = MX_FETCH_EQUIPMENT, .arg = ocid};
    assert_int_equal(fx_call(x, &eq), 0);
    size_t flen;
    char *file = read_file(evan, &flen);
    assert_body(&eq, file, flen); /* decoded by curl */
    free(file);
    call_free(&id);
    call_free(&eq);
}

static void test_not_found(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--unknown", "404", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    fx_start(x, args, &o);
    struct call c = {.kind = MX_FETCH_ID, .arg = "없는캐릭터"};
    assert_int_equal(fx_call(x, &c), MX_ENOTFOUND);
    assert_int_equal(c.http, 400);
    assert_int_equal(c.attempts, 1); /* 4xx: never retried */
    assert_non_null(strstr(c.err, "not found"));
    assert_null(c.body);
    struct call b = {.kind = MX_FETCH_BASIC, .arg = "not-an-ocid"};
    assert_int_equal(fx_call(x, &b), MX_ENOTFOUND);
    struct call e = {.kind = MX_FETCH_EQUIPMENT, .arg = "0123456789abcdef0123456789abcdef"};
    assert_int_equal(fx_call(x, &e), MX_ENOTFOUND);
    assert_int_equal(stub_stat(&x->stub, "total"), 3);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.not_found, 3);
    assert_int_equal(st.upstream_calls, 3);
    assert_int_equal(st.breaker_state, 0); /* a 4xx is not an upstream failure */
}

static void test_invalid_key(void **state)
{
    struct fx *x = *state;
    const char *args[] = {"--reject-key", "bad-key", NULL};
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    o.api_key = "bad-key";
    fx_start(x, args, &o);
    struct call c = {.kind = MX_FETCH_ID, .arg = "에반"};
    assert_int_equal(fx_call(x, &c), MX_EINVAL);
    assert_int_equal(c.http, 400);
    assert_int_equal(c.attempts, 1);
    assert_non_null(strstr(c.err, "invalid API key"));
    /* the caller's key replaces the node's: good key works, bad one does not */
    struct call good = {.kind = MX_FETCH_ID, .arg = "에반", .key = "user-key"};
    assert_int_equal(fx_call(x, &good), 0);
    struct call l1 = {.kind = MX_FETCH_LIST, .key = "bad-key"};
    assert_int_equal(fx_call(x, &l1), MX_EINVAL);
    assert_int_equal(stub_stat(&x->stub, "total"), 3);
    /* refused locally, never sent: list without a key, a key with CR LF, a
     * key with spaces, a key over 512 bytes */
    struct call l2 = {.kind = MX_FETCH_LIST};
    assert_int_equal(fx_call(x, &l2), MX_EINVAL);
    assert_int_equal(l2.attempts, 0);
    struct call inj = {.kind = MX_FETCH_LIST, .key = "k\r\nx-evil: 1"};
    assert_int_equal(fx_call(x, &inj), MX_EINVAL);
    struct call sp = {.kind = MX_FETCH_ID, .arg = "x", .key = "a b"};
    assert_int_equal(fx_call(x, &sp), MX_EINVAL);
    assert_int_equal(stub_stat(&x->stub, "total"), 3);
    struct mx_fetch_stats st = fx_stats(x);
    assert_int_equal(st.invalid_key, 5);
    assert_int_equal(st.ok, 1);
    call_free(&good);
}

static void test_hostile_requests(void **state)
{
    struct fx *x = *state;
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    fx_start(x, NULL, &o);
    struct mx_msg *m;

    /* the builder refuses what the fetcher would */
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(mx_fetch_request_new(MX_FETCH_ID, big, NULL, false, &m), MX_EINVAL);
    assert_int_equal(mx_fetch_request_new((enum mx_fetch_kind)9, "a", NULL, false, &m), MX_EINVAL);

    /* an unknown kind, made by hand */
    struct mx_m_fetch_req q = {.kind = 99, .arg = MX_STR("a")};
    assert_int_equal(mx_msg_encode(MX_T_fetch_req, &q, &m), 0);
    struct call c1 = {.raw = m};
    assert_int_equal(fx_call(x, &c1), MX_EDECODE);
    /* an oversized argument, made by hand */
    q = (struct mx_m_fetch_req){.kind = MX_FETCH_ID, .arg = {big, sizeof(big) - 1}};
    assert_int_equal(mx_msg_encode(MX_T_fetch_req, &q, &m), 0);
    struct call c2 = {.raw = m};
    assert_int_equal(fx_call(x, &c2), MX_ENOTFOUND);
    /* a NUL inside the name */
    q = (struct mx_m_fetch_req){.kind = MX_FETCH_ID, .arg = {"ab\0cd", 5}};
    assert_int_equal(mx_msg_encode(MX_T_fetch_req, &q, &m), 0);
    struct call c3 = {.raw = m};
    assert_int_equal(fx_call(x, &c3), MX_ENOTFOUND);
    /* empty name and ocid */
    struct call c4 = {.kind = MX_FETCH_ID, .arg = ""};
    assert_int_equal(fx_call(x, &c4), MX_ENOTFOUND);
    struct call c5 = {.kind = MX_FETCH_BASIC};
    assert_int_equal(fx_call(x, &c5), MX_ENOTFOUND);
    /* garbage bytes as a body */
    m = mx_msg_new(MX_T_fetch_req, 7);
    memcpy(mx_msg_body_mut(m), "\x93\xcc\xff\xa5zz\xc1", 7);
    struct call c6 = {.raw = m};
    assert_int_equal(fx_call(x, &c6), MX_EDECODE);
    /* a wrong-typed field: arg as an integer */
    struct mx_m_test_echo e = {.n = 1, .text = MX_STR("x")};
    assert_int_equal(mx_msg_encode(MX_T_test_echo, &e, &m), 0);
    m->env.type = MX_T_fetch_req;
    struct call c7 = {.raw = m};
    assert_int_equal(fx_call(x, &c7), MX_EDECODE);
    /* not a request: nobody to answer, counted */
    assert_int_equal(mx_fetch_request_new(MX_FETCH_ID, "a", NULL, false, &m), 0);
    struct call c8 = {.raw = m, .raw_plain = true};
    assert_int_equal(fx_call(x, &c8), 0);
    /* a reply the fetcher did not expect */
    struct mx_m_fetch_rep rep = {.status = 0};
    assert_int_equal(mx_msg_encode(MX_T_fetch_rep, &rep, &m), 0);
    struct call c9 = {.raw = m, .raw_plain = true};
    assert_int_equal(fx_call(x, &c9), 0);
    assert_true(TU_WAIT_UNTIL(fx_stats(x).bad_requests == 5, 2000));

    /* none of it reached the upstream, and the fetcher still works */
    assert_int_equal(stub_stat(&x->stub, "total"), 0);
    struct call ok = {.kind = MX_FETCH_ID, .arg = "멀쩡한이름"};
    assert_int_equal(fx_call(x, &ok), 0);
    assert_int_equal(stub_stat(&x->stub, "total"), 1);
    call_free(&ok);

    /* a reply reader given the wrong message */
    struct mx_fetch_result res;
    assert_int_equal(mx_fetch_request_new(MX_FETCH_ID, "a", NULL, false, &m), 0);
    assert_int_equal(mx_fetch_reply_read(m, &res), MX_EDECODE);
    assert_null(mx_fetch_reply_take_body(m));
    mx_msg_free(m);
}

static void test_bad_options(void **state)
{
    struct fx *x = *state;
    struct mx_fetch_opts o = MX_FETCH_OPTS_DEFAULT;
    fx_start(x, NULL, &o);
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = "f2";
    struct mx_fetch_opts b = MX_FETCH_OPTS_DEFAULT;
    b.base_url = "ftp://example.com";
    assert_int_equal(mx_fetch_spawn(x->sys, &b, &so, NULL), MX_EINVAL);
    b = (struct mx_fetch_opts)MX_FETCH_OPTS_DEFAULT;
    b.base_url = "http://a b";
    assert_int_equal(mx_fetch_spawn(x->sys, &b, &so, NULL), MX_EINVAL);
    b = (struct mx_fetch_opts)MX_FETCH_OPTS_DEFAULT;
    b.api_key = "key\r\nX: y";
    assert_int_equal(mx_fetch_spawn(x->sys, &b, &so, NULL), MX_EINVAL);
    b = (struct mx_fetch_opts)MX_FETCH_OPTS_DEFAULT;
    b.max_attempts = 0;
    assert_int_equal(mx_fetch_spawn(x->sys, &b, &so, NULL), MX_EINVAL);
    b = (struct mx_fetch_opts)MX_FETCH_OPTS_DEFAULT;
    b.breaker_window = 65;
    assert_int_equal(mx_fetch_spawn(x->sys, &b, &so, NULL), MX_EINVAL);
    /* the default name is taken by the first fetcher */
    b = (struct mx_fetch_opts)MX_FETCH_OPTS_DEFAULT;
    assert_int_equal(mx_fetch_spawn(x->sys, &b, NULL, NULL), MX_EEXISTS);
    struct mx_addr a;
    assert_int_equal(mx_whereis(x->sys, MX_FETCH_NAME, &a), 0);
    assert_int_equal(a.actor, x->fetcher.actor);
    /* stopping the fetcher answers nothing more and removes its stats */
    assert_int_equal(mx_actor_stop(x->sys, x->fetcher), 0);
    struct mx_fetch_stats st;
    assert_true(TU_WAIT_UNTIL(mx_fetch_stats(x->sys, x->fetcher, &st) == MX_ENOTFOUND, 2000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endpoints, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_gzip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_not_found, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_key, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_requests, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
