/* test_proto.c - the msgpack codec and envelope reject hostile bytes
 * cleanly: random bytes, truncation, wrong types, lengths past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <msgpack.h>

#include "mx_env.h"
#include "mx_err.h"
#include "mx_proto.h"
#include "mx_testutil.h"

static size_t encode_kv(uint8_t *buf, size_t cap)
{
    struct mx_m_test_kv kv = {.sender = 7,
                              .seq = 123456789012ull,
                              .delta = -42,
                              .ratio = 0.25,
                              .flag = true,
                              .text = MX_STR("hello, 세계"),
                              .blob = {"\x00\x01\x02", 3}};
    size_t len;
    assert_int_equal(mx_m_test_kv_encode(&kv, buf, cap, &len), 0);
    return len;
}

static void test_roundtrip(void **st)
{
    uint8_t buf[256];
    size_t len = encode_kv(buf, sizeof(buf));
    struct mx_m_test_kv out;
    assert_int_equal(mx_m_test_kv_decode(buf, len, &out), 0);
    assert_int_equal(out.sender, 7);
    assert_int_equal(out.seq, 123456789012ull);
    assert_int_equal(out.delta, -42);
    TU_ASSERT_CMP(out.ratio, ==, 0.25);
    assert_true(out.flag);
    assert_int_equal(out.text.len, strlen("hello, 세계"));
    assert_memory_equal(out.text.ptr, "hello, 세계", out.text.len);
    assert_int_equal(out.blob.len, 3);
    assert_memory_equal(out.blob.ptr, "\x00\x01\x02", 3);
}

static void test_encode_too_small(void **st)
{
    uint8_t buf[8];
    struct mx_m_test_kv kv = {.text = MX_STR("a string longer than eight bytes")};
    size_t len;
    assert_int_equal(mx_m_test_kv_encode(&kv, buf, sizeof(buf), &len), MX_ETOOBIG);
}

static void test_truncated(void **st)
{
    uint8_t buf[256];
    size_t len = encode_kv(buf, sizeof(buf));
    struct mx_m_test_kv out;
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(mx_m_test_kv_decode(buf, cut, &out), MX_EDECODE);
    /* trailing bytes are as wrong as missing ones */
    buf[len] = 0xc0;
    assert_int_equal(mx_m_test_kv_decode(buf, len + 1, &out), MX_EDECODE);
}

static size_t pack(msgpack_sbuffer *sb, void (*fill)(msgpack_packer *))
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    fill(&pk);
    return sb->size;
}

static void fill_wrong_type(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2); /* test_echo is {U64 n, STR text} */
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "x", 1); /* string where the integer belongs */
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "y", 1);
}

static void fill_negative_u64(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, -1);
    msgpack_pack_str(pk, 0);
}

static void fill_wrong_count(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_str(pk, 0);
    msgpack_pack_nil(pk);
}

static void fill_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_uint64(pk, 2);
}

static void fill_nested(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_str(pk, 0);
}

static void test_wrong_types(void **st)
{
    void (*fills[])(msgpack_packer *) = {fill_wrong_type, fill_negative_u64, fill_wrong_count,
                                         fill_map, fill_nested};
    for (size_t i = 0; i < sizeof(fills) / sizeof(fills[0]); i++) {
        msgpack_sbuffer sb;
        size_t len = pack(&sb, fills[i]);
        struct mx_m_test_echo out;
        assert_int_equal(mx_m_test_echo_decode((uint8_t *)sb.data, len, &out), MX_EDECODE);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_lengths_past_end(void **st)
{
    struct mx_m_test_echo out;
    /* array32 claiming 4 billion elements in 5 bytes: refused before any
     * allocation is attempted */
    const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(mx_proto_validate(huge_array, sizeof(huge_array)), MX_EDECODE);
    assert_int_equal(mx_m_test_echo_decode(huge_array, sizeof(huge_array), &out), MX_EDECODE);
    const uint8_t huge_map[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(mx_proto_validate(huge_map, sizeof(huge_map)), MX_EDECODE);
    /* [1, str32 of 2 GiB] with 3 bytes of string present */
    const uint8_t long_str[] = {0x92, 0x01, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    assert_int_equal(mx_m_test_echo_decode(long_str, sizeof(long_str), &out), MX_EDECODE);
    /* bin16 of 300 bytes with 2 present */
    const uint8_t short_bin[] = {0xc5, 0x01, 0x2c, 0x00, 0x00};
    assert_int_equal(mx_proto_validate(short_bin, sizeof(short_bin)), MX_EDECODE);
    /* the never-used byte 0xc1 */
    const uint8_t c1[] = {0x92, 0xc1, 0xa0};
    assert_int_equal(mx_proto_validate(c1, sizeof(c1)), MX_EDECODE);
    assert_int_equal(mx_proto_validate(NULL, 0), MX_EDECODE);
    /* 1000 nested arrays are a structure error for our schemas, not a crash */
    uint8_t deep[1001];
    memset(deep, 0x91, 1000);
    deep[1000] = 0x01;
    assert_int_equal(mx_proto_validate(deep, sizeof(deep)), 0);
    assert_int_equal(mx_m_test_echo_decode(deep, sizeof(deep), &out), MX_EDECODE);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random and mutated bodies never crash the decoder; every answer is 0 or
 * MX_EDECODE, and a success yields strings inside the buffer. */
static void test_random_bodies(void **st)
{
    uint8_t valid[256], buf[256];
    size_t vlen = encode_kv(valid, sizeof(valid));
    const int iters = TU_SCALE(200000);
    for (int it = 0; it < iters; it++) {
        size_t len;
        if (it % 2) {
            len = next_rand() % sizeof(buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)next_rand();
        } else {
            memcpy(buf, valid, vlen);
            len = vlen;
            for (int k = 0; k < 3; k++)
                buf[next_rand() % vlen] = (uint8_t)next_rand();
        }
        struct mx_m_test_kv out;
        int rc = mx_m_test_kv_decode(buf, len, &out);
        assert_true(rc == 0 || rc == MX_EDECODE);
        if (rc == 0) {
            assert_true((const uint8_t *)out.text.ptr >= buf &&
                        (const uint8_t *)out.text.ptr + out.text.len <= buf + len);
        }
        struct mx_env env;
        const char *name;
        uint16_t nlen;
        const uint8_t *body;
        uint32_t blen;
        rc = mx_env_decode(buf, len, &env, &name, &nlen, &body, &blen);
        assert_true(rc == 0 || rc == MX_EDECODE);
    }
}

static size_t make_frame(uint8_t *frame, const struct mx_env *env, const char *name,
                         const uint8_t *body, uint32_t blen)
{
    uint16_t nlen = name ? (uint16_t)strlen(name) : 0;
    assert_int_equal(mx_env_encode(env, blen, nlen, frame), 0);
    memcpy(frame + MX_ENV_WIRE_SIZE, name, nlen);
    memcpy(frame + MX_ENV_WIRE_SIZE + nlen, body, blen);
    return MX_ENV_WIRE_SIZE + nlen + blen;
}

static void test_envelope(void **st)
{
    struct mx_env env = {.type = MX_T_test_echo,
                         .flags = MX_ENVF_REQUEST | MX_ENVF_NAMED,
                         .from = {1, 2},
                         .to = {3, 0},
                         .corr = 99,
                         .deadline_ms = 1234,
                         .epoch = 5};
    memset(env.trace_id, 0xab, 16);
    uint8_t body[64], frame[512];
    size_t blen;
    assert_int_equal(
        mx_m_test_echo_encode(&(struct mx_m_test_echo){1, MX_STR("x")}, body, sizeof(body), &blen),
        0);
    size_t flen = make_frame(frame, &env, "cache", body, (uint32_t)blen);
    struct mx_env out;
    const char *name;
    uint16_t nlen;
    const uint8_t *b;
    uint32_t bl;
    assert_int_equal(mx_env_decode(frame, flen, &out, &name, &nlen, &b, &bl), 0);
    assert_int_equal(out.type, MX_T_test_echo);
    assert_int_equal(out.corr, 99);
    assert_int_equal(out.epoch, 5);
    assert_int_equal(out.from.actor, 2);
    assert_int_equal(nlen, 5);
    assert_memory_equal(name, "cache", 5);
    assert_int_equal(bl, blen);
    assert_memory_equal(out.trace_id, env.trace_id, 16);
    char hex[33];
    mx_env_trace_hex(&out, hex);
    assert_string_equal(hex, "abababababababababababababababab");

    /* every truncation and one byte too many are rejected */
    for (size_t cut = 0; cut < flen; cut++)
        assert_int_equal(mx_env_decode(frame, cut, &out, &name, &nlen, &b, &bl), MX_EDECODE);
    assert_int_equal(mx_env_decode(frame, flen + 1, &out, &name, &nlen, &b, &bl), MX_EDECODE);

    struct {
        size_t off;
        uint8_t val;
    } bad[] = {
        {0, 'Z'},   /* magic */
        {2, 9},     /* version */
        {3, 0x80},  /* unknown flag */
        {3, 0x03},  /* request and reply at once */
        {3, 0x02},  /* named flag cleared while a name follows */
        {91, 0x01}, /* body length past the end (16 MiB+) */
        {92, 200},  /* name length over the limit */
        {94, 1},    /* reserved bytes */
        {96, ' '},  /* a space in the name */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t copy[512];
        memcpy(copy, frame, flen);
        copy[bad[i].off] = bad[i].val;
        assert_int_equal(mx_env_decode(copy, flen, &out, &name, &nlen, &b, &bl), MX_EDECODE);
    }
    /* a request without a correlation id */
    env.corr = 0;
    env.flags = MX_ENVF_REQUEST;
    assert_int_equal(mx_env_encode(&env, 0, 0, frame), 0);
    assert_int_equal(mx_env_decode(frame, MX_ENV_WIRE_SIZE, &out, &name, &nlen, &b, &bl),
                     MX_EDECODE);
    /* encode refuses what decode would refuse */
    env.flags = 0x80;
    assert_int_equal(mx_env_encode(&env, 0, 0, frame), MX_EINVAL);
    env.flags = 0;
    assert_int_equal(mx_env_encode(&env, MX_ENV_MAX_BODY + 1, 0, frame), MX_EINVAL);
}

static void test_to_json(void **st)
{
    uint8_t buf[256];
    size_t len = encode_kv(buf, sizeof(buf));
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    assert_int_equal(mx_proto_to_json(MX_T_test_kv, buf, len, &w), 0);
    assert_non_null(strstr(w.buf, "\"name\":\"test_kv\""));
    assert_non_null(strstr(w.buf, "\"delta\":-42"));
    assert_non_null(strstr(w.buf, "\"blob\":\"000102\""));
    mx_jsonw_reset(&w);
    assert_int_equal(mx_proto_to_json(99999, buf, len, &w), MX_EDECODE);
    assert_non_null(strstr(w.buf, "unknown type"));
    mx_jsonw_fini(&w);
}

/* Other encoders' choices decode the same: a non-negative value in a signed
 * encoding for a U64 field, a positive one for an I64 field, a float32 for
 * an F64 field; a value that does not fit its field is refused. */
static void test_other_encodings(void **st)
{
    struct mx_m_test_kv out;
    /* [int64 7, uint8 200, uint64 5, float32 0.5, true, "", bin ""] */
    const uint8_t ok[] = {0x97, 0xd3, 0, 0, 0, 0, 0,    0,    0, 7, 0xcc, 200,  0xcf, 0,    0,
                          0,    0,    0, 0, 0, 5, 0xca, 0x3f, 0, 0, 0,    0xc3, 0xa0, 0xc4, 0};
    assert_int_equal(mx_m_test_kv_decode(ok, sizeof(ok), &out), 0);
    assert_int_equal(out.sender, 7);
    assert_int_equal(out.seq, 200);
    assert_int_equal(out.delta, 5);
    TU_ASSERT_CMP(out.ratio, ==, 0.5);
    assert_true(out.flag);
    assert_int_equal(out.text.len, 0);
    assert_int_equal(out.blob.len, 0);
    /* delta (I64) = 2^63 does not fit */
    uint8_t big[sizeof(ok)];
    memcpy(big, ok, sizeof(ok));
    const uint8_t two63[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    memcpy(big + 12, two63, sizeof(two63));
    assert_int_equal(mx_m_test_kv_decode(big, sizeof(big), &out), MX_EDECODE);
    /* sender (U64) = int8 -1 */
    const uint8_t neg[] = {0x97, 0xd0, 0xff, 0xcc, 200,  0x05, 0xca, 0x3f,
                           0,    0,    0,    0xc3, 0xa0, 0xc4, 0};
    assert_int_equal(mx_m_test_kv_decode(neg, sizeof(neg), &out), MX_EDECODE);
    /* a string for a bin field, and a bin for a string field */
    const uint8_t swapped[] = {0x97, 1, 2, 3, 0xca, 0x3f, 0, 0, 0, 0xc3, 0xc4, 0, 0xa0};
    assert_int_equal(mx_m_test_kv_decode(swapped, sizeof(swapped), &out), MX_EDECODE);
}

/* The encoder's bytes are msgpack-c's packer's, value for value, across the
 * size classes of every kind: nodes of different versions (a rolling
 * upgrade) must agree on the wire. */
static void test_same_bytes_as_msgpack_c(void **st)
{
    static const uint64_t us[] = {0,     127,   128,           255,           256,
                                  65535, 65536, 4294967295ull, 4294967296ull, UINT64_MAX};
    static const int64_t is[] = {0,    5,      -1,     -32,       -33,      -128,
                                 -129, -32768, -32769, INT64_MIN, INT64_MAX};
    static const uint32_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
    static char text[65536];
    memset(text, 'x', sizeof(text));
    for (size_t k = 0; k < 11; k++) {
        uint32_t n = lens[k % 7];
        struct mx_m_test_kv kv = {.sender = us[k % 10],
                                  .seq = us[(k + 3) % 10],
                                  .delta = is[k],
                                  .ratio = -1.5 * (double)k,
                                  .flag = k & 1,
                                  .text = {text, n},
                                  .blob = {text, lens[(k + 2) % 7]}};
        size_t cap = 2 * 65536 + 256, len;
        uint8_t *ours = malloc(cap);
        assert_non_null(ours);
        assert_int_equal(mx_m_test_kv_encode(&kv, ours, cap, &len), 0);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 7);
        msgpack_pack_uint64(&pk, kv.sender);
        msgpack_pack_uint64(&pk, kv.seq);
        msgpack_pack_int64(&pk, kv.delta);
        msgpack_pack_double(&pk, kv.ratio);
        if (kv.flag)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        msgpack_pack_str_with_body(&pk, kv.text.ptr, kv.text.len);
        msgpack_pack_bin_with_body(&pk, kv.blob.ptr, kv.blob.len);
        assert_int_equal(len, sb.size);
        assert_memory_equal(ours, sb.data, len);
        struct mx_m_test_kv out;
        assert_int_equal(mx_m_test_kv_decode(ours, len, &out), 0);
        TU_ASSERT_CMP(out.sender, ==, kv.sender);
        TU_ASSERT_CMP(out.seq, ==, kv.seq);
        TU_ASSERT_CMP(out.delta, ==, kv.delta);
        msgpack_sbuffer_destroy(&sb);
        free(ours);
    }
}

/* Every message type's generated encoder and decoder, driven by its schema
 * row (field kinds and offsets): the bytes equal msgpack-c's packing of the
 * same values, decoding gives the values back, and every cut, a trailing
 * byte and a wrong field count are refused. */
static void test_every_type(void **st)
{
    static char text[300];
    memset(text, 'y', sizeof(text));
    int types = 0;
    for (uint32_t id = 0; id < 70000; id++) {
        const struct mx_msg_desc *d = mx_proto_desc(id);
        if (!d)
            continue;
        types++;
        _Alignas(max_align_t) char in[1024], out[1024];
        memset(in, 0, sizeof(in));
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, d->nfields);
        for (uint16_t i = 0; i < d->nfields; i++) {
            const struct mx_field_desc *f = &d->fields[i];
            char *v = in + f->offset;
            uint64_t r = (uint64_t)id * 1000003u + i * 7919u; /* varies the widths */
            switch (f->kind) {
            case MX_F_U64:
                *(uint64_t *)v = r << (i * 9 % 40);
                msgpack_pack_uint64(&pk, *(uint64_t *)v);
                break;
            case MX_F_I64:
                *(int64_t *)v = (i & 1) ? -(int64_t)(r % 100000) : (int64_t)r;
                if (*(int64_t *)v >= 0)
                    msgpack_pack_uint64(&pk, (uint64_t) * (int64_t *)v);
                else
                    msgpack_pack_int64(&pk, *(int64_t *)v);
                break;
            case MX_F_F64:
                *(double *)v = (double)r / 3.0;
                msgpack_pack_double(&pk, *(double *)v);
                break;
            case MX_F_BOOL:
                *(bool *)v = r & 1;
                if (r & 1)
                    msgpack_pack_true(&pk);
                else
                    msgpack_pack_false(&pk);
                break;
            case MX_F_STR:
            case MX_F_BIN: {
                struct mx_str *sv = (struct mx_str *)v;
                sv->ptr = text;
                sv->len = (uint32_t)(r % sizeof(text));
                if (f->kind == MX_F_STR)
                    msgpack_pack_str_with_body(&pk, sv->ptr, sv->len);
                else
                    msgpack_pack_bin_with_body(&pk, sv->ptr, sv->len);
                break;
            }
            default:
                fail_msg("type %u field %s: unknown kind %d", id, f->name, f->kind);
            }
        }
        uint8_t buf[4096];
        size_t len = 0;
        assert_int_equal(mx_proto_encode_id(id, in, buf, sizeof(buf), &len), 0);
        TU_ASSERT_CMP(len, ==, sb.size);
        assert_memory_equal(buf, sb.data, len);
        if (len > 0) {
            size_t short_len;
            assert_int_equal(mx_proto_encode_id(id, in, buf, len - 1, &short_len), MX_ETOOBIG);
        }
        memset(out, 0xa5, sizeof(out));
        assert_int_equal(mx_proto_decode_id(id, buf, len, out), 0);
        for (uint16_t i = 0; i < d->nfields; i++) {
            const struct mx_field_desc *f = &d->fields[i];
            if (f->kind == MX_F_STR || f->kind == MX_F_BIN) {
                const struct mx_str *a = (const void *)(in + f->offset),
                                    *b = (const void *)(out + f->offset);
                TU_ASSERT_CMP(a->len, ==, b->len);
                assert_memory_equal(a->ptr, b->ptr, a->len);
            } else if (f->kind == MX_F_BOOL) {
                TU_ASSERT_CMP(*(bool *)(in + f->offset), ==, *(bool *)(out + f->offset));
            } else {
                assert_memory_equal(in + f->offset, out + f->offset, 8);
            }
        }
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal(mx_proto_decode_id(id, buf, cut, out), MX_EDECODE);
        buf[len] = 0;
        assert_int_equal(mx_proto_decode_id(id, buf, len + 1, out), MX_EDECODE);
        buf[0] = (uint8_t)(0x90 | (d->nfields + 1)); /* one field more than the schema */
        assert_int_equal(mx_proto_decode_id(id, buf, len, out), MX_EDECODE);
        msgpack_sbuffer_destroy(&sb);
    }
    /* every row of the list was reached by the scan */
    enum {
#define MX_MSG(id, name, fields) ROW_##name,
#include "mx_messages.def"
#undef MX_MSG
        ROWS
    };
    TU_ASSERT_CMP(types, ==, ROWS);
    size_t len;
    uint8_t buf[16];
    assert_int_equal(mx_proto_encode_id(99999, text, buf, sizeof(buf), &len), MX_EINVAL);
    assert_int_equal(mx_proto_decode_id(99999, (const uint8_t *)"\x90", 1, text), MX_EDECODE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),        cmocka_unit_test(test_encode_too_small),
        cmocka_unit_test(test_truncated),        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_lengths_past_end), cmocka_unit_test(test_random_bodies),
        cmocka_unit_test(test_envelope),         cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_other_encodings),  cmocka_unit_test(test_same_bytes_as_msgpack_c),
        cmocka_unit_test(test_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
