/* mx_redis.h - the Redis client of the runtime: hiredis async on one libuv loop.
 *
 * A client (mx_redis_t) is bound to ONE uv loop - an actor's (mx_actor_loop)
 * or any loop in tests - and every function here must be called on that
 * loop's thread, except mx_redis_connected(), mx_redis_stats() and
 * mx_redis_report(), which any thread may call. Every callback runs on the loop thread.
 *
 * What it guarantees, so users (cache tiers, sessions, membership, leases,
 * rate limits) need not:
 * - every command has a deadline; on expiry its callback gets MX_ETIMEDOUT
 *   exactly once and the late reply is dropped (counted);
 * - at most max_pending commands are outstanding (MX_EFULL past it, counted);
 * - while the connection is not up, commands fail fast with MX_EUNAVAIL
 *   (counted): nothing is buffered while Redis is away;
 * - the connection is re-established with exponential backoff and jitter
 *   (50 ms .. 1 s by default), with AUTH and SELECT from the URL; an optional
 *   state callback reports up/down transitions;
 * - the server must be a master: ROLE is checked on every connect, and a
 *   READONLY reply drops the connection at once (a replica is a connect
 *   failure, logged with the setting MX_REDIS_URL);
 * - with a redis-sentinel:// URL the master is found through Sentinel: one
 *   resolver per URL and process (its own thread, a command link and a
 *   +switch-master subscription per sentinel) tells every client of that URL
 *   where the master is, and moves them at once when it changes;
 * - Lua scripts are registered once and called by EVALSHA; NOSCRIPT (a
 *   restarted or flushed Redis) is answered by EVAL and one transparent retry;
 * - a subscriber client (mx_redis_open_subscriber) resubscribes after every
 *   reconnect.
 *
 * Callback contract: if a function that takes a callback returns an error,
 * the callback is never called. Otherwise it is called exactly once with
 * status 0 (a reply that is not an error reply), MX_EIO (Redis answered
 * with an error reply: `reply` is that reply, read reply->str), MX_ETIMEDOUT,
 * MX_EUNAVAIL (the connection was lost before the reply came; the command
 * may or may not have run) or MX_ESTOPPED (the client is closing). `reply`
 * is borrowed: valid only during the callback, NULL unless status is 0 or
 * MX_EIO. Callbacks may issue new commands and may call mx_redis_close.
 */
#ifndef MX_REDIS_H
#define MX_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "mx_url.h"

struct uv_loop_s;
typedef struct mx_redis mx_redis_t;
typedef struct mx_redis_script mx_redis_script_t;

/* Reply callback: status 0 or MX_E* (see above); reply borrowed. */
typedef void (*mx_redis_cb)(mx_redis_t *r, int status, const redisReply *reply, void *arg);
/* Connection state change: up after the handshake (AUTH, SELECT, scripts)
 * succeeded, down when an up connection was lost. Not called while closing. */
typedef void (*mx_redis_state_cb)(mx_redis_t *r, bool up, void *arg);
/* Close completion: the client's memory is freed right after it returns. */
typedef void (*mx_redis_close_cb)(mx_redis_t *r, void *arg);
/* Subscriber message: channel (NUL-terminated), payload (binary, len bytes),
 * pattern (NULL unless it came through a pattern subscription). Borrowed. */
typedef void (*mx_redis_msg_cb)(mx_redis_t *r, const char *channel, const char *data, size_t len,
                                const char *pattern, void *arg);

#define MX_REDIS_MAX_SCRIPTS 64     /* registered scripts per client */
#define MX_REDIS_MAX_SUBS 1024      /* channels + patterns per subscriber */
#define MX_REDIS_MAX_ARGS 1024      /* arguments per argv command */
#define MX_REDIS_MAX_FOLLOWERS 4096 /* clients per sentinel URL and process */

struct mx_redis_opts {
    const char *name;            /* for logs; NULL = "redis" */
    uint32_t timeout_ms;         /* per command; 0 = 1000 */
    uint32_t connect_timeout_ms; /* TCP connect + handshake; 0 = 1000 */
    uint32_t max_pending;        /* outstanding commands, incl. timed-out ones not yet
                                    answered; 0 = 1024 */
    uint32_t backoff_min_ms;     /* first reconnect delay; 0 = 50 */
    uint32_t backoff_max_ms;     /* reconnect delay cap; 0 = 1000 */
    uint32_t stall_ms;           /* a command timed out and nothing was read for this
                                    long: drop the connection and reconnect (a hung or
                                    half-open peer); 0 = 5000 */
    mx_redis_state_cb on_state;  /* may be NULL */
    void *state_arg;
};

/* Counters. Each field is exact; together they are a snapshot taken while
 * the loop may be running. */
struct mx_redis_stats {
    bool connected;
    uint64_t connects;          /* handshakes completed (up transitions) */
    uint64_t disconnects;       /* up connections lost */
    uint64_t connect_failures;  /* attempts that failed (refused, timeout, AUTH...) */
    uint64_t commands;          /* commands accepted */
    uint64_t replies;           /* replies delivered with status 0 */
    uint64_t errors;            /* replies delivered as MX_EIO (error replies) */
    uint64_t lost;              /* commands failed with MX_EUNAVAIL after acceptance */
    uint64_t timeouts;          /* commands failed with MX_ETIMEDOUT */
    uint64_t late_replies;      /* replies that came after their timeout (dropped) */
    uint64_t refused_full;      /* refused with MX_EFULL */
    uint64_t refused_down;      /* refused with MX_EUNAVAIL (not connected) */
    uint64_t noscript_retries;  /* EVALSHA answered NOSCRIPT and retried by EVAL */
    uint64_t messages;          /* subscriber: messages delivered */
    uint64_t pending;           /* gauge: outstanding commands */
    uint64_t failovers;         /* came up on another address than the previous up connection */
    uint64_t readonly;          /* READONLY replies, ROLE not master: re-resolved at once */
    uint64_t reconnect_ms_last; /* last outage: up connection lost (or told to move) -> up again */
    uint64_t reconnect_ms_max;
    uint32_t replicas; /* listed by the master in ROLE at the last connect */
    char master[272];  /* host:port in use (or being tried); "" before the first */
};

/* mx_redis_open - create a client on loop for url and start connecting
 * (the first attempt starts at once; commands fail with MX_EUNAVAIL until
 * the handshake is done). opts may be NULL. Returns 0 and *out, or
 * MX_EINVAL (bad URL or option), MX_ELIMIT (redis-sentinel://: over 4096
 * clients of one URL, or 16 sentinel URLs, in the process). Loop thread; does not block (except
 * that a host name, not an IP address, is resolved synchronously on connect). */
int mx_redis_open(struct uv_loop_s *loop, const char *url, const struct mx_redis_opts *opts,
                  mx_redis_t **out);

/* mx_redis_open_subscriber - like mx_redis_open, for a pub/sub client:
 * only mx_redis_subscribe/unsubscribe work on it (commands: MX_EINVAL).
 * on_msg (not NULL) gets every message of every subscription. */
int mx_redis_open_subscriber(struct uv_loop_s *loop, const char *url,
                             const struct mx_redis_opts *opts, mx_redis_msg_cb on_msg, void *arg,
                             mx_redis_t **out);

/* mx_redis_close - close the client: pending commands get MX_ESTOPPED
 * (before this returns, or - when called from a reply callback - right after
 * that callback returns); later calls to other functions are invalid. done
 * (may be NULL) runs on the loop once the hiredis context and every uv
 * handle are closed; the client's memory is freed after done returns, so
 * the loop may be closed from done. Safe from an actor's stop callback and
 * from any callback of this client. Calling it twice is invalid. */
void mx_redis_close(mx_redis_t *r, mx_redis_close_cb done, void *arg);

/* mx_redis_connected - true while the connection is up (handshake done).
 * Any thread. */
bool mx_redis_connected(const mx_redis_t *r);

/* mx_redis_stats - copy the counters. Any thread. */
void mx_redis_stats(const mx_redis_t *r, struct mx_redis_stats *out);

/* mx_redis_loop - the loop the client is bound to. */
struct uv_loop_s *mx_redis_loop(const mx_redis_t *r);

/* mx_redis_command - a printf-style command (hiredis format: %s for a C
 * string, %b for binary data + size_t length, %d/%lld for integers). cb
 * may be NULL (fire and forget; still bounded and counted). Returns 0, or
 * MX_EUNAVAIL (not connected), MX_EFULL (max_pending reached), MX_EINVAL
 * (bad format, subscriber client, closing). Loop thread; from callbacks too. */
int mx_redis_command(mx_redis_t *r, mx_redis_cb cb, void *arg, const char *fmt, ...);

/* mx_redis_argv - a command from argc binary-safe arguments (argvlen NULL:
 * each is a C string). Arguments are copied before this returns. Same
 * returns as mx_redis_command (also MX_EINVAL if argc is 0 or over
 * MX_REDIS_MAX_ARGS). */
int mx_redis_argv(mx_redis_t *r, mx_redis_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen);

/* mx_redis_argv_timeout - mx_redis_argv with its own timeout (ms, > 0),
 * e.g. for a blocking command. */
int mx_redis_argv_timeout(mx_redis_t *r, uint32_t timeout_ms, mx_redis_cb cb, void *arg, int argc,
                          const char **argv, const size_t *argvlen);

/* mx_redis_script - register Lua source (copied) and get its handle, owned
 * by the client and freed by mx_redis_close. Registering the same source
 * again returns the same handle. The script is loaded (SCRIPT LOAD) now if
 * connected and after every (re)connect. Returns 0 and *out, or MX_EINVAL
 * (empty source, subscriber client), MX_ELIMIT (MX_REDIS_MAX_SCRIPTS). */
int mx_redis_script(mx_redis_t *r, const char *lua, mx_redis_script_t **out);

/* mx_redis_script_sha - the script's SHA1 (40 hex digits) once Redis told
 * it, else "" (calls then use EVAL). */
const char *mx_redis_script_sha(const mx_redis_script_t *s);

/* mx_redis_eval - run script s with nkeys keys followed by the other
 * arguments (argv[0..nkeys) are keys, argv[nkeys..argc) are ARGV; binary
 * safe, copied). EVALSHA first; on NOSCRIPT it is retried once by EVAL
 * (which also loads the script), within the same timeout. Same returns as
 * mx_redis_argv; MX_EINVAL also if nkeys > argc. */
int mx_redis_eval(mx_redis_t *r, mx_redis_script_t *s, mx_redis_cb cb, void *arg, int nkeys,
                  int argc, const char **argv, const size_t *argvlen);

/* mx_redis_subscribe - subscribe a subscriber client to channel (or to a
 * glob pattern when pattern is true). Remembered and re-sent after every
 * reconnect; sent now if connected. Subscribing twice is a no-op. Returns
 * 0, MX_EINVAL (not a subscriber, empty or > 512 byte name), MX_ELIMIT
 * (MX_REDIS_MAX_SUBS). Works while disconnected. */
int mx_redis_subscribe(mx_redis_t *r, const char *channel, bool pattern);

/* mx_redis_unsubscribe - forget a subscription (UNSUBSCRIBE now if
 * connected). Returns 0 or MX_ENOTFOUND. */
int mx_redis_unsubscribe(mx_redis_t *r, const char *channel, bool pattern);

/* mx_redis_report - append one JSON object describing every client of the
 * process: {"clients":[{name, master, connected, connects, connect_failures, failovers,
 * readonly, reconnect_ms_last, reconnect_ms_max, replicas}], "sentinels":
 * [{master_name, master, switches, resolves, failures, error}]}. Usable as
 * an admin section (ctx unused). Any thread; takes a process-wide lock
 * briefly, never blocks on Redis. */
struct mx_jsonw;
void mx_redis_report(struct mx_jsonw *w, void *ctx);

/* mx_redis_reply_is - true if reply is a status or string reply equal to s. */
bool mx_redis_reply_is(const redisReply *reply, const char *s);

#endif
