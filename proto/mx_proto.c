/* mx_proto.c - the table-driven msgpack codec behind mx_proto.h.
 *
 * Encoding writes with msgpuck into a caller buffer, checking each value's
 * size first. Decoding
 * walks the bytes once with msgpuck's bounds-checked cursor straight into the
 * message struct, checking each field's type against the schema: no zone, no
 * object tree, nothing allocated, so a body cannot make the decoder allocate
 * whatever count it claims. mx_proto_validate (any msgpack value, used for
 * admin requests) stays a separate walk.
 */
#include "mx_proto.h"

#include <msgpuck.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "mx_err.h"

#define F(kind, fname) {#fname, MX_F_##kind, 0},
#define MX_MSG(id, name, fields) static struct mx_field_desc fields_##name[] = {fields{NULL, 0, 0}};
#include "mx_messages.def"
#undef MX_MSG
#undef F

static struct mx_msg_desc descs[] = {
#define MX_MSG(id, name, fields) {id, #name, 0, fields_##name},
#include "mx_messages.def"
#undef MX_MSG
};

/* Room for any decoded message (mx_proto_to_json decodes into it). */
union any_msg {
#define MX_MSG(id, name, fields) struct mx_m_##name name;
#include "mx_messages.def"
#undef MX_MSG
};

#define NDESCS (sizeof(descs) / sizeof(descs[0]))

/* type id -> index + 1 into descs, for ids below BY_ID_MAX (all of today's);
 * an id past it falls back to a scan */
#define BY_ID_MAX 4096u
static uint8_t by_id[BY_ID_MAX];
_Static_assert(NDESCS < 255, "by_id holds indexes in a byte");

static void set_offsets(void)
{
#define F(kind, fname) fields_[i_++].offset = (uint16_t)offsetof(struct_t_, fname);
#define MX_MSG(id, name, fieldlist)                                                                \
    {                                                                                              \
        typedef struct mx_m_##name struct_t_;                                                      \
        struct mx_field_desc *fields_ = fields_##name;                                             \
        int i_ = 0;                                                                                \
        fieldlist(void) fields_;                                                                   \
        (void)i_;                                                                                  \
    }
#include "mx_messages.def"
#undef MX_MSG
#undef F
    for (size_t i = 0; i < NDESCS; i++) {
        uint16_t n = 0;
        while (descs[i].fields[n].name)
            n++;
        descs[i].nfields = n;
        if (descs[i].id < BY_ID_MAX)
            by_id[descs[i].id] = (uint8_t)(i + 1);
    }
}

static void init_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, set_offsets);
}

const struct mx_msg_desc *mx_proto_desc(uint32_t type)
{
    init_once();
    if (type < BY_ID_MAX)
        return by_id[type] ? &descs[by_id[type] - 1] : NULL;
    for (size_t i = 0; i < NDESCS; i++)
        if (descs[i].id == type)
            return &descs[i];
    return NULL;
}

/* Encoding writes with msgpuck straight into the caller's buffer: each
 * value's size (mp_sizeof_*) is checked against what is left before it is
 * written. The bytes are the canonical smallest encodings, the same that
 * msgpack-c's packer writes (docs/wire-format.md). Each message type has its
 * own encoder and decoder, generated from mx_messages.def below, so the
 * field kinds and offsets are constants the compiler sees: a generic walk of
 * the schema table cost a switch and an indirect load per field, which was
 * most of the codec's time in a small message. */
#define ROOM(n)                                                                                    \
    do {                                                                                           \
        if ((size_t)(end - p) < (size_t)(n))                                                       \
            return MX_ETOOBIG;                                                                     \
    } while (0)
#define ENC_U64(x)                                                                                 \
    do {                                                                                           \
        uint64_t u_ = (x);                                                                         \
        ROOM(mp_sizeof_uint(u_));                                                                  \
        p = mp_encode_uint(p, u_);                                                                 \
    } while (0)
#define ENC_I64(x)                                                                                 \
    do {                                                                                           \
        int64_t i_ = (x);                                                                          \
        if (i_ >= 0) {                                                                             \
            ROOM(mp_sizeof_uint((uint64_t)i_));                                                    \
            p = mp_encode_uint(p, (uint64_t)i_);                                                   \
        } else {                                                                                   \
            ROOM(mp_sizeof_int(i_));                                                               \
            p = mp_encode_int(p, i_);                                                              \
        }                                                                                          \
    } while (0)
#define ENC_F64(x)                                                                                 \
    do {                                                                                           \
        ROOM(mp_sizeof_double(x));                                                                 \
        p = mp_encode_double(p, (x));                                                              \
    } while (0)
#define ENC_BOOL(x)                                                                                \
    do {                                                                                           \
        ROOM(mp_sizeof_bool(x));                                                                   \
        p = mp_encode_bool(p, (x));                                                                \
    } while (0)
#define ENC_STR(x)                                                                                 \
    do {                                                                                           \
        ROOM(mp_sizeof_str((x).len));                                                              \
        p = mp_encode_str(p, (x).ptr, (x).len);                                                    \
    } while (0)
#define ENC_BIN(x)                                                                                 \
    do {                                                                                           \
        ROOM(mp_sizeof_bin((x).len));                                                              \
        p = mp_encode_bin(p, (x).ptr, (x).len);                                                    \
    } while (0)

/* fields per type, as constants */
#define F(kind, fname) +1
#define MX_MSG(id, name, fields) NF_##name = 0 fields,
enum {
#include "mx_messages.def"
};
#undef MX_MSG
#undef F

#define F(kind, fname) ENC_##kind(v->fname);
#define MX_MSG(id, name, fields)                                                                   \
    static int enc_##name(const struct mx_m_##name *v, char *p, const char *end, char **endp)      \
    {                                                                                              \
        (void)v;                                                                                   \
        ROOM(mp_sizeof_array(NF_##name));                                                          \
        p = mp_encode_array(p, NF_##name);                                                         \
        fields *endp = p;                                                                          \
        return 0;                                                                                  \
    }
#include "mx_messages.def"
#undef MX_MSG
#undef F
#undef ROOM

int mx_proto_encode_id(uint32_t type, const void *m, uint8_t *buf, size_t cap, size_t *len)
{
    char *p = (char *)buf, *end = (char *)buf + cap, *stop = p;
    int rc;
    switch (type) {
#define MX_MSG(id, name, fields)                                                                   \
    case id:                                                                                       \
        rc = enc_##name(m, p, end, &stop);                                                         \
        break;
#include "mx_messages.def"
#undef MX_MSG
    default:
        return MX_EINVAL;
    }
    if (rc == 0)
        *len = (size_t)(stop - p);
    return rc;
}

int mx_proto_encode(const struct mx_msg_desc *d, const void *m, uint8_t *buf, size_t cap,
                    size_t *len)
{
    return d ? mx_proto_encode_id(d->id, m, buf, cap, len) : MX_EINVAL;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int mx_proto_validate(const uint8_t *body, size_t len)
{
    const uint8_t *p = body, *end = body + len;
    uint64_t items = 1; /* values still to read */
    if (!body || len == 0)
        return MX_EDECODE;
    while (items > 0) {
        if (p >= end)
            return MX_EDECODE;
        uint8_t c = *p++;
        uint64_t skip = 0, add = 0;
        int hdr = 0; /* bytes of length field following c */
        items--;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            /* fixint, nil, bool */
        } else if (c >= 0x80 && c <= 0x8f) {
            add = 2u * (c & 0x0f);
        } else if (c >= 0x90 && c <= 0x9f) {
            add = c & 0x0f;
        } else if (c >= 0xa0 && c <= 0xbf) {
            skip = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4:
            case 0xd9:
                hdr = 1;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                hdr = 2;
                break; /* bin16, str16 */
            case 0xc6:
            case 0xdb:
                hdr = 4;
                break; /* bin32, str32 */
            case 0xc7:
                hdr = 1;
                skip = 1;
                break; /* ext8 (+type) */
            case 0xc8:
                hdr = 2;
                skip = 1;
                break;
            case 0xc9:
                hdr = 4;
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break;
            case 0xcb:
                skip = 8;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break; /* fixext: type + data */
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
            case 0xde:
                hdr = 2;
                break; /* array16, map16 */
            case 0xdd:
            case 0xdf:
                hdr = 4;
                break; /* array32, map32 */
            default:
                return MX_EDECODE; /* 0xc1: never used */
            }
            if (hdr) {
                if ((size_t)(end - p) < (size_t)hdr)
                    return MX_EDECODE;
                uint64_t n = be(p, hdr);
                p += hdr;
                if (c == 0xdc || c == 0xdd)
                    add = n;
                else if (c == 0xde || c == 0xdf)
                    add = 2 * n;
                else
                    skip += n;
            }
        }
        if (skip > (uint64_t)(end - p))
            return MX_EDECODE;
        p += skip;
        items += add;
        /* every value takes at least one byte: a count past the end is a lie */
        if (items > (uint64_t)(end - p))
            return MX_EDECODE;
    }
    return p == end ? 0 : MX_EDECODE;
}

/* Decoders, one per field kind: the value at *pp, checked against the
 * field's kind; every read is bounds-checked with msgpuck's mp_check_*
 * before its mp_decode_*. Integer kinds accept either msgpack integer
 * family when the value fits (msgpack-c and other encoders pick a signed
 * encoding for non-negative values). */
static inline int dec_int(const char **pp, const char *end, uint64_t *u, int64_t *i, bool *neg)
{
    const char *p = *pp;
    if (p >= end)
        return MX_EDECODE;
    *neg = false;
    if ((uint8_t)*p <= 0x7f) { /* positive fixint, the common case */
        *u = (uint8_t)*p;
        *i = 0;
        *pp = p + 1;
        return 0;
    }
    enum mp_type t = mp_typeof(*p);
    if (t == MP_UINT) {
        if (mp_check_uint(p, end) > 0)
            return MX_EDECODE;
        *u = mp_decode_uint(&p);
        *i = 0;
    } else if (t == MP_INT) {
        if (mp_check_int(p, end) > 0)
            return MX_EDECODE;
        *i = mp_decode_int(&p);
        *neg = *i < 0;
        *u = *neg ? 0 : (uint64_t)*i;
    } else {
        return MX_EDECODE;
    }
    *pp = p;
    return 0;
}

static inline int dec_U64(const char **pp, const char *end, uint64_t *out)
{
    uint64_t u;
    int64_t i;
    bool neg;
    if (dec_int(pp, end, &u, &i, &neg) != 0 || neg)
        return MX_EDECODE;
    *out = u;
    return 0;
}

static inline int dec_I64(const char **pp, const char *end, int64_t *out)
{
    uint64_t u;
    int64_t i;
    bool neg;
    if (dec_int(pp, end, &u, &i, &neg) != 0 || (!neg && u > INT64_MAX))
        return MX_EDECODE;
    *out = neg ? i : (int64_t)u;
    return 0;
}

static inline int dec_F64(const char **pp, const char *end, double *out)
{
    const char *p = *pp;
    if (p >= end)
        return MX_EDECODE;
    enum mp_type t = mp_typeof(*p);
    if (t == MP_DOUBLE) {
        if (mp_check_double(p, end) > 0)
            return MX_EDECODE;
        *out = mp_decode_double(&p);
    } else if (t == MP_FLOAT) {
        if (mp_check_float(p, end) > 0)
            return MX_EDECODE;
        *out = mp_decode_float(&p);
    } else {
        return MX_EDECODE;
    }
    *pp = p;
    return 0;
}

static inline int dec_BOOL(const char **pp, const char *end, bool *out)
{
    const char *p = *pp;
    if (p >= end || mp_typeof(*p) != MP_BOOL || mp_check_bool(p, end) > 0)
        return MX_EDECODE;
    *out = mp_decode_bool(&p);
    *pp = p;
    return 0;
}

static inline int dec_STR(const char **pp, const char *end, struct mx_str *out)
{
    const char *p = *pp;
    uint32_t n;
    if (p < end && ((uint8_t)*p & 0xe0) == 0xa0) { /* fixstr, up to 31 bytes */
        n = (uint8_t)*p++ & 0x1f;
    } else {
        if (p >= end || mp_typeof(*p) != MP_STR || mp_check_strl(p, end) > 0)
            return MX_EDECODE;
        n = mp_decode_strl(&p);
    }
    if (n > (size_t)(end - p))
        return MX_EDECODE;
    out->ptr = p;
    out->len = n;
    *pp = p + n;
    return 0;
}

static inline int dec_BIN(const char **pp, const char *end, struct mx_str *out)
{
    const char *p = *pp;
    if (p >= end || mp_typeof(*p) != MP_BIN || mp_check_binl(p, end) > 0)
        return MX_EDECODE;
    uint32_t n = mp_decode_binl(&p);
    if (n > (size_t)(end - p))
        return MX_EDECODE;
    out->ptr = p;
    out->len = n;
    *pp = p + n;
    return 0;
}

/* the array header at *pp holds exactly n values (p < end) */
static inline bool array_of(const char **pp, const char *end, uint32_t n)
{
    const char *p = *pp;
    if (((uint8_t)*p & 0xf0) == 0x90) { /* fixarray, up to 15 */
        *pp = p + 1;
        return ((uint8_t)*p & 0x0f) == n;
    }
    if (mp_typeof(*p) != MP_ARRAY || mp_check_array(p, end) > 0 || mp_decode_array(&p) != n)
        return false;
    *pp = p;
    return true;
}

/* Bodies are flat arrays of scalars, so decoding walks the bytes once with
 * msgpuck's cursor: no allocation, no tree, and no separate validation pass
 * (every length is checked against what is left before it is used, and the
 * body must end exactly after the last field). */
#define F(kind, fname)                                                                             \
    if (dec_##kind(&p, end, &v->fname) != 0)                                                       \
        return MX_EDECODE;
#define MX_MSG(id, name, fields)                                                                   \
    static int dec_##name(const char *p, const char *end, struct mx_m_##name *v)                   \
    {                                                                                              \
        (void)v;                                                                                   \
        if (!array_of(&p, end, NF_##name))                                                         \
            return MX_EDECODE;                                                                     \
        fields return p == end ? 0 : MX_EDECODE;                                                   \
    }
#include "mx_messages.def"
#undef MX_MSG
#undef F

int mx_proto_decode_id(uint32_t type, const uint8_t *body, size_t len, void *out)
{
    if (!body || len == 0)
        return MX_EDECODE;
    const char *p = (const char *)body, *end = p + len;
    switch (type) {
#define MX_MSG(id, name, fields)                                                                   \
    case id:                                                                                       \
        return dec_##name(p, end, out);
#include "mx_messages.def"
#undef MX_MSG
    default:
        return MX_EDECODE;
    }
}

int mx_proto_decode(const struct mx_msg_desc *d, const uint8_t *body, size_t len, void *out)
{
    return d ? mx_proto_decode_id(d->id, body, len, out) : MX_EDECODE;
}

int mx_proto_to_json(uint32_t type, const uint8_t *body, size_t len, struct mx_jsonw *w)
{
    const struct mx_msg_desc *d = mx_proto_desc(type);
    union {
        union any_msg any;
        char raw[sizeof(union any_msg)];
    } m;
    int rc = d ? mx_proto_decode(d, body, len, &m) : MX_EDECODE;
    mx_jsonw_obj_open(w);
    mx_jsonw_kuint(w, "type", type);
    if (rc != 0) {
        mx_jsonw_kstr(w, "error", d ? "malformed body" : "unknown type");
        mx_jsonw_kuint(w, "bodyBytes", len);
        mx_jsonw_obj_close(w);
        return rc;
    }
    mx_jsonw_kstr(w, "name", d->name);
    for (uint16_t i = 0; i < d->nfields; i++) {
        const struct mx_field_desc *f = &d->fields[i];
        const void *p = m.raw + f->offset;
        mx_jsonw_key(w, f->name);
        switch (f->kind) {
        case MX_F_U64:
            mx_jsonw_uint(w, *(const uint64_t *)p);
            break;
        case MX_F_I64:
            mx_jsonw_int(w, *(const int64_t *)p);
            break;
        case MX_F_F64:
            mx_jsonw_double(w, *(const double *)p);
            break;
        case MX_F_BOOL:
            mx_jsonw_bool(w, *(const bool *)p);
            break;
        case MX_F_STR:
            mx_jsonw_strn(w, ((const struct mx_str *)p)->ptr, ((const struct mx_str *)p)->len);
            break;
        case MX_F_BIN: {
            /* binary as lowercase hex, capped so a huge blob cannot flood a peek */
            const struct mx_str *s = p;
            char hex[2 * 64 + 4] = ""; /* an empty blob renders as "" */
            uint32_t n = s->len < 64 ? s->len : 64;
            for (uint32_t j = 0; j < n; j++)
                snprintf(hex + 2 * j, 3, "%02x", (unsigned char)s->ptr[j]);
            if (s->len > 64)
                strcpy(hex + 2 * n, "...");
            mx_jsonw_str(w, hex);
            break;
        }
        }
    }
    mx_jsonw_obj_close(w);
    return 0;
}
