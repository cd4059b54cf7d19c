/* mx_env.c - envelope wire header encode/decode (docs/wire-format.md).
 *
 * Fixed little-endian layout rather than msgpack so that a node can route a
 * frame by reading fixed offsets, and validate it before touching the body.
 */
#include "mx_env.h"

#include <string.h>

#include "mx_err.h"

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int mx_env_encode(const struct mx_env *env, uint32_t body_len, uint16_t name_len, uint8_t *out)
{
    if ((env->flags & ~MX_ENVF_KNOWN) || body_len > MX_ENV_MAX_BODY || name_len > MX_ENV_MAX_NAME ||
        (name_len > 0) != !!(env->flags & MX_ENVF_NAMED))
        return MX_EINVAL;
    out[0] = MX_ENV_MAGIC0;
    out[1] = MX_ENV_MAGIC1;
    out[2] = MX_ENV_VERSION;
    out[3] = (uint8_t)env->flags;
    put32(out + 4, env->type);
    put64(out + 8, env->from.node);
    put64(out + 16, env->from.actor);
    put64(out + 24, env->to.node);
    put64(out + 32, env->to.actor);
    put64(out + 40, env->corr);
    memcpy(out + 48, env->trace_id, 16);
    memcpy(out + 64, env->span_id, 8);
    put64(out + 72, env->deadline_ms);
    put64(out + 80, env->epoch);
    put32(out + 88, body_len);
    put16(out + 92, name_len);
    put16(out + 94, 0);
    return 0;
}

int mx_env_decode(const uint8_t *frame, size_t len, struct mx_env *env, const char **name,
                  uint16_t *name_len, const uint8_t **body, uint32_t *body_len)
{
    if (!frame || len < MX_ENV_WIRE_SIZE)
        return MX_EDECODE;
    if (frame[0] != MX_ENV_MAGIC0 || frame[1] != MX_ENV_MAGIC1 || frame[2] != MX_ENV_VERSION)
        return MX_EDECODE;
    uint32_t flags = frame[3];
    if (flags & ~MX_ENVF_KNOWN)
        return MX_EDECODE;
    uint32_t blen = get32(frame + 88);
    uint16_t nlen = get16(frame + 92);
    if (get16(frame + 94) != 0 || blen > MX_ENV_MAX_BODY || nlen > MX_ENV_MAX_NAME)
        return MX_EDECODE;
    if ((nlen > 0) != !!(flags & MX_ENVF_NAMED))
        return MX_EDECODE;
    if ((size_t)MX_ENV_WIRE_SIZE + nlen + blen != len)
        return MX_EDECODE;
    if ((flags & MX_ENVF_REPLY) && (flags & MX_ENVF_REQUEST))
        return MX_EDECODE;
    env->flags = flags;
    env->type = get32(frame + 4);
    env->from.node = get64(frame + 8);
    env->from.actor = get64(frame + 16);
    env->to.node = get64(frame + 24);
    env->to.actor = get64(frame + 32);
    env->corr = get64(frame + 40);
    memcpy(env->trace_id, frame + 48, 16);
    memcpy(env->span_id, frame + 64, 8);
    env->deadline_ms = get64(frame + 72);
    env->epoch = get64(frame + 80);
    if (((flags & (MX_ENVF_REPLY | MX_ENVF_REQUEST)) != 0) != (env->corr != 0))
        return MX_EDECODE;
    *name = nlen ? (const char *)frame + MX_ENV_WIRE_SIZE : NULL;
    *name_len = nlen;
    for (uint16_t i = 0; i < nlen; i++) {
        unsigned char c = frame[MX_ENV_WIRE_SIZE + i];
        if (c < 0x21 || c > 0x7e) /* names are printable ASCII without spaces */
            return MX_EDECODE;
    }
    *body = frame + MX_ENV_WIRE_SIZE + nlen;
    *body_len = blen;
    return 0;
}

void mx_env_trace_hex(const struct mx_env *env, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[env->trace_id[i] >> 4];
        out[2 * i + 1] = hex[env->trace_id[i] & 15];
    }
    out[32] = '\0';
}

bool mx_env_has_trace(const struct mx_env *env)
{
    uint64_t a, b;
    memcpy(&a, env->trace_id, 8);
    memcpy(&b, env->trace_id + 8, 8);
    return (a | b) != 0;
}
