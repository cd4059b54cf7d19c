/* mx_proto.c - the table-driven msgpack codec behind mx_proto.h.
 *
 * Encoding uses msgpack-c's packer writing into a caller buffer. Decoding
 * first walks the bytes with mx_proto_validate (no allocation: every declared
 * length and container count must fit in what is left, which stops a 5-byte
 * body from claiming a 4-billion-element array before msgpack-c allocates
 * for it), then unpacks with msgpack-c into a per-thread zone and checks each
 * field's type against the schema.
 */
#include "mx_proto.h"

#include <msgpack.h>
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
    /* ids are sparse but few: a linear scan over a small table is cheaper
     * than hashing; hot paths cache the pointer */
    for (size_t i = 0; i < NDESCS; i++)
        if (descs[i].id == type)
            return &descs[i];
    return NULL;
}

struct wbuf {
    uint8_t *buf;
    size_t len, cap;
};

static int wbuf_write(void *data, const char *p, size_t n)
{
    struct wbuf *w = data;
    if (w->cap - w->len < n)
        return -1;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

int mx_proto_encode(const struct mx_msg_desc *d, const void *m, uint8_t *buf, size_t cap,
                    size_t *len)
{
    if (!d)
        return MX_EINVAL;
    struct wbuf w = {buf, 0, cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, wbuf_write);
    const char *base = m;
    int rc = msgpack_pack_array(&pk, d->nfields);
    for (uint16_t i = 0; i < d->nfields && rc == 0; i++) {
        const struct mx_field_desc *f = &d->fields[i];
        const void *p = base + f->offset;
        switch (f->kind) {
        case MX_F_U64: rc = msgpack_pack_uint64(&pk, *(const uint64_t *)p); break;
        case MX_F_I64: rc = msgpack_pack_int64(&pk, *(const int64_t *)p); break;
        case MX_F_F64: rc = msgpack_pack_double(&pk, *(const double *)p); break;
        case MX_F_BOOL:
            rc = *(const bool *)p ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
            break;
        case MX_F_STR: {
            const struct mx_str *s = p;
            rc = msgpack_pack_str(&pk, s->len);
            if (rc == 0 && s->len)
                rc = msgpack_pack_str_body(&pk, s->ptr, s->len);
            break;
        }
        case MX_F_BIN: {
            const struct mx_str *s = p;
            rc = msgpack_pack_bin(&pk, s->len);
            if (rc == 0 && s->len)
                rc = msgpack_pack_bin_body(&pk, s->ptr, s->len);
            break;
        }
        default: return MX_EINVAL;
        }
    }
    if (rc != 0)
        return MX_ETOOBIG;
    *len = w.len;
    return 0;
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
            case 0xc4: case 0xd9: hdr = 1; break;               /* bin8, str8 */
            case 0xc5: case 0xda: hdr = 2; break;               /* bin16, str16 */
            case 0xc6: case 0xdb: hdr = 4; break;               /* bin32, str32 */
            case 0xc7: hdr = 1; skip = 1; break;                /* ext8 (+type) */
            case 0xc8: hdr = 2; skip = 1; break;
            case 0xc9: hdr = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                         /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde: hdr = 2; break;               /* array16, map16 */
            case 0xdd: case 0xdf: hdr = 4; break;               /* array32, map32 */
            default: return MX_EDECODE;                         /* 0xc1: never used */
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

static __thread msgpack_zone *tzone;
static pthread_key_t zone_key;
static pthread_once_t zone_once = PTHREAD_ONCE_INIT;

static void zone_free(void *z)
{
    msgpack_zone_free(z);
}

static void zone_key_init(void)
{
    pthread_key_create(&zone_key, zone_free);
}

/* Per-thread scratch zone, created on first use and reused for the
 * thread's life; freed when the thread exits. */
static msgpack_zone *scratch_zone(void)
{
    if (!tzone) {
        tzone = msgpack_zone_new(2048);
        pthread_once(&zone_once, zone_key_init);
        pthread_setspecific(zone_key, tzone);
    }
    return tzone;
}

static int unpack(const uint8_t *body, size_t len, msgpack_zone **zone, msgpack_object *obj)
{
    if (mx_proto_validate(body, len) != 0)
        return MX_EDECODE;
    *zone = scratch_zone();
    if (!*zone)
        return MX_ENOMEM;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack((const char *)body, len, &off, *zone, obj);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_zone_clear(*zone);
        return MX_EDECODE;
    }
    return 0;
}

static int field_from(const struct mx_field_desc *f, const msgpack_object *o, char *base)
{
    void *p = base + f->offset;
    switch (f->kind) {
    case MX_F_U64:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return MX_EDECODE;
        *(uint64_t *)p = o->via.u64;
        return 0;
    case MX_F_I64:
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            *(int64_t *)p = o->via.i64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
            *(int64_t *)p = (int64_t)o->via.u64;
        else
            return MX_EDECODE;
        return 0;
    case MX_F_F64:
        if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
            *(double *)p = o->via.f64;
        else
            return MX_EDECODE;
        return 0;
    case MX_F_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return MX_EDECODE;
        *(bool *)p = o->via.boolean;
        return 0;
    case MX_F_STR:
        if (o->type != MSGPACK_OBJECT_STR)
            return MX_EDECODE;
        ((struct mx_str *)p)->ptr = o->via.str.ptr;
        ((struct mx_str *)p)->len = o->via.str.size;
        return 0;
    case MX_F_BIN:
        if (o->type != MSGPACK_OBJECT_BIN)
            return MX_EDECODE;
        ((struct mx_str *)p)->ptr = o->via.bin.ptr;
        ((struct mx_str *)p)->len = o->via.bin.size;
        return 0;
    }
    return MX_EDECODE;
}

int mx_proto_decode(const struct mx_msg_desc *d, const uint8_t *body, size_t len, void *out)
{
    msgpack_zone *zone;
    msgpack_object obj;
    int rc;
    if (!d)
        return MX_EDECODE;
    if ((rc = unpack(body, len, &zone, &obj)) != 0)
        return rc;
    rc = MX_EDECODE;
    if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size != d->nfields)
        goto out_clear;
    for (uint16_t i = 0; i < d->nfields; i++)
        if (field_from(&d->fields[i], &obj.via.array.ptr[i], out) != 0)
            goto out_clear;
    rc = 0;
out_clear:
    msgpack_zone_clear(zone);
    return rc;
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
        case MX_F_U64: mx_jsonw_uint(w, *(const uint64_t *)p); break;
        case MX_F_I64: mx_jsonw_int(w, *(const int64_t *)p); break;
        case MX_F_F64: mx_jsonw_double(w, *(const double *)p); break;
        case MX_F_BOOL: mx_jsonw_bool(w, *(const bool *)p); break;
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
