/* mx_proto.h - message schemas from mx_messages.def and their msgpack codec.
 *
 * For every MX_MSG(id, name, fields) this header declares the id constant
 * MX_T_<name>, a struct mx_m_<name> with one member per field, and typed
 * wrappers mx_m_<name>_encode()/_decode(). mx_proto.c generates one encoder
 * and one decoder per type from the same list, so adding a message type is
 * one line in the .def file.
 *
 * Decoding validates the whole body before use (structure, array length,
 * every field's type, lengths against the end of the buffer) and returns
 * MX_EDECODE for anything else: hostile bodies are an error value.
 */
#ifndef MX_PROTO_H
#define MX_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_jsonw.h"

/* A borrowed byte slice (STR and BIN fields); not NUL-terminated. */
struct mx_str {
    const char *ptr;
    uint32_t len;
};

#define MX_STR(lit) ((struct mx_str){(lit), (uint32_t)(sizeof(lit) - 1)})

enum mx_fkind { MX_F_U64, MX_F_I64, MX_F_F64, MX_F_BOOL, MX_F_STR, MX_F_BIN };

struct mx_field_desc {
    const char *name;
    uint8_t kind;    /* enum mx_fkind */
    uint16_t offset; /* offsetof in the message struct */
};

struct mx_msg_desc {
    uint32_t id;
    const char *name;
    uint16_t nfields;
    const struct mx_field_desc *fields;
};

/* Field C types per kind. */
#define MX__CT_U64 uint64_t
#define MX__CT_I64 int64_t
#define MX__CT_F64 double
#define MX__CT_BOOL bool
#define MX__CT_STR struct mx_str
#define MX__CT_BIN struct mx_str

enum mx_msg_type {
#define MX_MSG(id, name, fields) MX_T_##name = id,
#include "mx_messages.def"
#undef MX_MSG
};

#define F(kind, fname) MX__CT_##kind fname;
#define MX_MSG(id, name, fields)                                                                   \
    struct mx_m_##name {                                                                           \
        fields                                                                                     \
    };
#include "mx_messages.def"
#undef MX_MSG
#undef F

/* mx_proto_desc - the schema of a message type, or NULL if unknown. Any thread. */
const struct mx_msg_desc *mx_proto_desc(uint32_t type);

/* mx_proto_encode - encode the struct m of schema d as a msgpack array into
 * buf (cap bytes); *len gets the size. Returns 0, MX_ETOOBIG when it does not
 * fit. Any thread; does not allocate. */
int mx_proto_encode(const struct mx_msg_desc *d, const void *m, uint8_t *buf, size_t cap,
                    size_t *len);

/* mx_proto_encode_id / mx_proto_decode_id - the same by type id, without
 * the schema lookup (unknown ids: MX_EINVAL / MX_EDECODE). The message
 * layer's path. */
int mx_proto_encode_id(uint32_t type, const void *m, uint8_t *buf, size_t cap, size_t *len);
int mx_proto_decode_id(uint32_t type, const uint8_t *body, size_t len, void *out);

/* mx_proto_decode - validate body (len bytes) against schema d and fill the
 * struct out; STR/BIN members point into body. Returns 0 or MX_EDECODE.
 * Any thread; does not allocate. */
int mx_proto_decode(const struct mx_msg_desc *d, const uint8_t *body, size_t len, void *out);

/* mx_proto_validate - check that body is exactly one well-formed msgpack
 * value whose declared lengths and counts fit in len bytes. Does not
 * allocate. Returns 0 or MX_EDECODE. */
int mx_proto_validate(const uint8_t *body, size_t len);

/* mx_proto_to_json - write the body of a message of the given type as a JSON
 * object (field names from the schema) into w; unknown types or bad bodies
 * write {"type":N,"error":"..."} and return MX_EDECODE. */
int mx_proto_to_json(uint32_t type, const uint8_t *body, size_t len, struct mx_jsonw *w);

/* Typed wrappers. */
#define MX_MSG(id, name, fields)                                                                   \
    static inline int mx_m_##name##_encode(const struct mx_m_##name *m, uint8_t *buf, size_t cap,  \
                                           size_t *len)                                            \
    {                                                                                              \
        return mx_proto_encode_id(id, m, buf, cap, len);                                           \
    }                                                                                              \
    static inline int mx_m_##name##_decode(const uint8_t *body, size_t len,                        \
                                           struct mx_m_##name *out)                                \
    {                                                                                              \
        return mx_proto_decode_id(id, body, len, out);                                             \
    }
#include "mx_messages.def"
#undef MX_MSG

#endif
