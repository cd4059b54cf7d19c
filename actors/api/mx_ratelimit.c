/* mx_ratelimit.c - token bucket rate limiter in one Redis Lua script.
 *
 * The script keeps two hash fields per bucket: tk (tokens, fractional) and
 * ts (ms of the last update, from Redis TIME). A clock that goes backwards
 * (Redis failover to a host with an earlier clock) never adds tokens. The
 * TTL is the time to refill completely plus a second, so an expired bucket
 * is exactly a full one.
 */
#include "mx_ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

static const char rl_lua[] =
    "local cap = tonumber(ARGV[1])\n"
    "local refill = tonumber(ARGV[2])\n"
    "local period = tonumber(ARGV[3])\n"
    "local cost = tonumber(ARGV[4])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local b = redis.call('HMGET', KEYS[1], 'tk', 'ts')\n"
    "local tokens = tonumber(b[1])\n"
    "local ts = tonumber(b[2])\n"
    "if tokens == nil or ts == nil then\n"
    "  tokens = cap\n"
    "  ts = now\n"
    "end\n"
    "if tokens > cap then tokens = cap end\n"
    "if now > ts then\n"
    "  tokens = math.min(cap, tokens + (now - ts) * refill / period)\n"
    "  ts = now\n"
    "end\n"
    "local allowed = 0\n"
    "local retry = 0\n"
    "if tokens >= cost then\n"
    "  tokens = tokens - cost\n"
    "  allowed = 1\n"
    "else\n"
    "  retry = math.ceil((cost - tokens) * period / refill)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tk', string.format('%.6f', tokens), 'ts', string.format('%d', "
    "ts))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) * period / refill) + 1000)\n"
    "return {allowed, math.floor(tokens + 1e-6), retry}\n";

struct rl_call {
    mx_rl_cb cb;
    void *arg;
};

const char *mx_ratelimit_script(void)
{
    return rl_lua;
}

static void on_rl_reply(mx_redis_t *r, int status, const redisReply *reply, void *arg)
{
    struct rl_call call = *(struct rl_call *)arg;
    struct mx_rl_result res = {0};
    (void)r;
    free(arg);
    if (status == 0) {
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER &&
            reply->element[1]->type == REDIS_REPLY_INTEGER &&
            reply->element[2]->type == REDIS_REPLY_INTEGER) {
            long long rem = reply->element[1]->integer, ra = reply->element[2]->integer;
            res.allowed = reply->element[0]->integer == 1;
            res.remaining = rem < 0 ? 0 : rem > UINT32_MAX ? UINT32_MAX : (uint32_t)rem;
            res.retry_after_ms = ra < 0 ? 0 : ra > UINT32_MAX ? UINT32_MAX : (uint32_t)ra;
        } else {
            status = MX_EDECODE;
        }
    }
    call.cb(status, status == 0 ? &res : NULL, call.arg);
}

int mx_ratelimit_check(mx_redis_t *r, const char *key, const struct mx_rl_rule *rule, mx_rl_cb cb,
                       void *arg)
{
    mx_redis_script_t *s;
    char k[MX_RL_KEY_MAX + 8], a[4][16];
    const char *argv[5];
    size_t lens[5];
    int rc;

    size_t keylen = key ? strnlen(key, MX_RL_KEY_MAX + 1) : 0;
    if (!r || keylen == 0 || keylen > MX_RL_KEY_MAX || !rule || !cb)
        return MX_EINVAL;
    uint32_t cost = rule->cost ? rule->cost : 1;
    if (rule->capacity == 0 || rule->refill_tokens == 0 || rule->refill_ms == 0 ||
        cost > rule->capacity)
        return MX_EINVAL;
    rc = mx_redis_script(r, rl_lua, &s);
    if (rc != 0)
        return rc;
    memcpy(k, "{rl}:", 5);
    memcpy(k + 5, key, keylen);
    argv[0] = k;
    lens[0] = keylen + 5;
    uint32_t v[4] = {rule->capacity, rule->refill_tokens, rule->refill_ms, cost};
    for (int i = 0; i < 4; i++) {
        lens[i + 1] = (size_t)snprintf(a[i], sizeof(a[i]), "%u", v[i]);
        argv[i + 1] = a[i];
    }
    struct rl_call *call = malloc(sizeof(*call));
    if (!call) {
        fprintf(stderr, "mx_ratelimit: out of memory\n");
        abort();
    }
    call->cb = cb;
    call->arg = arg;
    rc = mx_redis_eval(r, s, on_rl_reply, call, 1, 5, argv, lens);
    if (rc != 0)
        free(call);
    return rc;
}
