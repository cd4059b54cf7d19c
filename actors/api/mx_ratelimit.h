/* mx_ratelimit.h - global rate limits: token buckets kept in Redis.
 *
 * One Lua script does the whole decision atomically inside Redis: it reads
 * the bucket, refills it by the time elapsed (Redis TIME, so the clocks of
 * the nodes do not matter), takes `cost` tokens if there are enough, writes
 * it back and sets a PEXPIRE so idle buckets vanish (an absent bucket is a
 * full one). Every node sharing a Redis shares the buckets. Keys are
 * "{rl}:<key>" (one hash tag, cluster safe).
 *
 * Refill is continuous: refill_tokens per refill_ms, i.e. a bucket of
 * capacity 100 refilling 10 per 6 s gains one token every 600 ms.
 */
#ifndef MX_RATELIMIT_H
#define MX_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "mx_redis.h"

#define MX_RL_KEY_MAX 256 /* bytes of the caller's key */

struct mx_rl_rule {
    uint32_t capacity;      /* burst: tokens in a full bucket, >= 1 */
    uint32_t refill_tokens; /* tokens added per refill_ms, >= 1 */
    uint32_t refill_ms;     /* >= 1 */
    uint32_t cost;          /* tokens this request takes; 0 = 1; <= capacity */
};

/* The service's defaults: per client IP and per signed-in user. */
#define MX_RL_RULE_IP                                                                              \
    {                                                                                              \
        .capacity = 100, .refill_tokens = 10, .refill_ms = 6000, .cost = 1                         \
    }
#define MX_RL_RULE_USER                                                                            \
    {                                                                                              \
        .capacity = 200, .refill_tokens = 20, .refill_ms = 6000, .cost = 1                         \
    }

struct mx_rl_result {
    bool allowed;
    uint32_t remaining;      /* whole tokens left after this request */
    uint32_t retry_after_ms; /* when refused: time until `cost` tokens are there; else 0 */
};

/* Decision callback, on the client's loop. status 0: res says allowed or
 * not. status != 0 (MX_EUNAVAIL, MX_ETIMEDOUT, MX_EIO, MX_ESTOPPED): Redis
 * could not decide - the caller chooses (the service lets the request pass
 * and counts it); res is NULL then. */
typedef void (*mx_rl_cb)(int status, const struct mx_rl_result *res, void *arg);

/* mx_ratelimit_check - take rule->cost tokens from the bucket "{rl}:key"
 * (key: a C string of 1..MX_RL_KEY_MAX bytes, e.g. "ip:10.0.0.1" or
 * "user:42"). Registers the script on r at the first call. Returns 0 (cb
 * will be called once), MX_EINVAL (bad key or rule), or the mx_redis_eval
 * errors - MX_EUNAVAIL when Redis is down, MX_EFULL - in which case cb is
 * never called. Loop thread of r. */
int mx_ratelimit_check(mx_redis_t *r, const char *key, const struct mx_rl_rule *rule, mx_rl_cb cb,
                       void *arg);

/* mx_ratelimit_script - the Lua source, for docs and tests. */
const char *mx_ratelimit_script(void);

#endif
