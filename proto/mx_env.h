/* mx_env.h - the message envelope and its fixed binary wire header.
 *
 * Every message, in process or across nodes, is an envelope plus a msgpack
 * body. In process the envelope is this struct; on the wire it is the 96-byte
 * little-endian header of docs/wire-format.md followed by an optional
 * receiver name and the body. mx_env_decode() validates every field before a
 * frame is used, so hostile bytes become an error code, never a crash.
 */
#ifndef MX_ENV_H
#define MX_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An actor address: node incarnation id + actor id (generation << 32 | slot).
 * actor 0 means "no actor" (e.g. a message sent from outside any actor). */
struct mx_addr {
    uint64_t node;
    uint64_t actor;
};

#define MX_ENV_WIRE_SIZE 96u
#define MX_ENV_MAGIC0 'M'
#define MX_ENV_MAGIC1 'X'
#define MX_ENV_VERSION 1u
#define MX_ENV_MAX_BODY (16u << 20) /* 16 MiB: larger bodies are refused */
#define MX_ENV_MAX_NAME 64u

enum mx_env_flags {
    MX_ENVF_REPLY = 1u << 0,   /* answers the request with the same corr id */
    MX_ENVF_REQUEST = 1u << 1, /* expects a reply to `from` with `corr` */
    MX_ENVF_NAMED = 1u << 2,   /* receiver given by name (follows the header) */
    MX_ENVF_CONTROL = 1u << 3, /* control lane: never refused for capacity */
};
#define MX_ENVF_KNOWN 0x0fu

struct mx_env {
    uint32_t type;        /* message type id (mx_messages.def) */
    uint32_t flags;       /* enum mx_env_flags */
    struct mx_addr from;  /* sender; actor 0 when not sent by an actor */
    struct mx_addr to;    /* receiver */
    uint64_t corr;        /* correlation id of a request/reply; 0 = none */
    uint8_t trace_id[16]; /* W3C trace-id; all zero = none */
    uint8_t span_id[8];   /* W3C parent span id */
    uint64_t deadline_ms; /* unix time in ms after which the message is void; 0 = none */
    uint64_t epoch;       /* singleton fencing epoch; 0 = not from a singleton */
};

/* mx_env_encode - write the 96-byte wire header for env with a body of
 * body_len bytes and an optional receiver name (name_len bytes, only with
 * MX_ENVF_NAMED) into out (at least MX_ENV_WIRE_SIZE bytes).
 * Returns 0 or MX_EINVAL (unknown flags, body or name too long). Any thread. */
int mx_env_encode(const struct mx_env *env, uint32_t body_len, uint16_t name_len, uint8_t *out);

/* mx_env_decode - validate and parse a whole frame (header, name, body) of
 * len bytes. On success fills env, points *name and *name_len into the frame
 * (NULL and 0 without a name) and *body, *body_len at the body. Returns 0 or
 * MX_EDECODE; never reads past len. Any thread. */
int mx_env_decode(const uint8_t *frame, size_t len, struct mx_env *env, const char **name,
                  uint16_t *name_len, const uint8_t **body, uint32_t *body_len);

/* mx_env_trace_hex - format env's trace id as 32 lowercase hex digits plus
 * NUL into out (33 bytes). */
void mx_env_trace_hex(const struct mx_env *env, char out[33]);

/* mx_env_has_trace - whether env carries a trace id. */
bool mx_env_has_trace(const struct mx_env *env);

#endif
