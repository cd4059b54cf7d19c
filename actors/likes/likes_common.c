/* likes_common.c - what the like-buffer and like-sync share: the options,
 * the key layout, the Lua scripts, the liker identity and the counters.
 *
 * Key layout (P = "mx:<cluster>:", k = partition of the target ocid T):
 *   P{lk<k>}:n        hash  T -> live count; a field exists iff T is warm
 *   P{lk<k>}:r:T      set   account ids liking T (warm targets only)
 *   P{lk<k>}:p:T      hash  account -> 1|0: pairs changed since the last batch
 *   P{lk<k>}:d        zset  T -> unix ms of its oldest pending change
 *   P{lk<k>}:ign      hash  T -> the character name last seen with a toggle
 *   P{lk<k>}:t        zset  T -> unix ms of its last toggle (idle characters are unloaded)
 *   P{lk<k>}:j        hash  "T|account" -> 1|0: the journal of the batch in flight
 *   P{lk<k>}:jid      string the journal's batch id
 *   P{lk<k>}:jt       string unix ms of the journal's oldest change
 *   P{lk<k>}:hw       list  the last 16 batches whose journals were deleted (newest first)
 *   P{lk<k>}:w:T:<nonce> set staging a warm load (60 s TTL)
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "likes_int.h"
#include "mx_err.h"

struct mx_likes_opts mx__likes_o;
char mx__likes_prefix[128] = "mx:mx:";
struct mx__likes_ctr mx__likes_ctr;

#define MX_METRICS_TYPE struct mx__likes_ctr
static const struct mx_metric_desc likes_desc[] = {MX_LIKES_METRICS(MX_METRIC_DESC)};
static const struct mx_metric_desc sync_desc[] = {MX_LIKE_SYNC_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE
static _Atomic int likes_id, sync_id;

void mx_likes_register_metrics(void)
{
    mx_metrics_register_once(&likes_id, "likes", "node", likes_desc,
                             sizeof likes_desc / sizeof *likes_desc, &mx__likes_ctr);
    mx_metrics_register_once(&sync_id, "like_sync", "node", sync_desc,
                             sizeof sync_desc / sizeof *sync_desc, &mx__likes_ctr);
}
const uint32_t mx_likes_lag_bounds_ms[7] = {100, 250, 500, 1000, 2000, 5000, 10000};

void mx_likes_opts_default(struct mx_likes_opts *o)
{
    *o = (struct mx_likes_opts){.cluster = "mx",
                                .redis_timeout_ms = 1000,
                                .sync_interval_ms = 1000,
                                .sync_batch = 2000,
                                .warm_max_rows = 500000,
                                .idle_s = 3600};
}

static uint32_t fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

uint32_t mx_likes_partition(const char *ocid, size_t len)
{
    return fnv1a(ocid, len) % MX_LIKES_PARTITIONS;
}

size_t mx__likes_pprefix(char *out, size_t cap, uint32_t part)
{
    int n = snprintf(out, cap, "%s{lk%u}:", mx__likes_prefix, part);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t mx__likes_key(char *out, size_t cap, uint32_t part, const char *suffix)
{
    int n = snprintf(out, cap, "%s{lk%u}:%s", mx__likes_prefix, part, suffix);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t mx__likes_tkey(char *out, size_t cap, uint32_t part, const char *what, const char *ocid)
{
    int n = snprintf(out, cap, "%s{lk%u}:%s:%s", mx__likes_prefix, part, what, ocid);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

bool mx_likes_valid_ocid(const char *s, size_t len)
{
    if (len == 0 || len > MX_LIKES_OCID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

bool mx_likes_valid_account(const char *s, size_t len)
{
    if (len == 0 || len > MX_LIKES_ACCOUNT_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int mx_likes_account_id(const char *csv, char *out, size_t cap)
{
    if (cap < MX_LIKES_ACCOUNT_LEN + 1)
        return MX_ETOOBIG;
    size_t len = strlen(csv);
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, csv, len + 1);
    const char *items[256];
    size_t n = 0;
    for (char *p = copy, *save = NULL, *tok; (tok = strtok_r(p, ",", &save)); p = NULL) {
        if (!*tok)
            continue;
        if (n == 256) {
            free(copy);
            return MX_EINVAL;
        }
        items[n++] = tok;
    }
    if (n == 0) {
        free(copy);
        return MX_EINVAL;
    }
    /* Java's String.compareTo on ASCII ocids orders as strcmp does */
    qsort(items, n, sizeof *items, cmp_str);
    /* the joined list is at most len bytes (same items, same commas) */
    char *joined = malloc(len + 1);
    if (!joined)
        abort();
    size_t jl = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            joined[jl++] = ',';
        size_t il = strlen(items[i]);
        memcpy(joined + jl, items[i], il);
        jl += il;
    }
    uint8_t d[32];
    SHA256((const unsigned char *)joined, jl, d);
    free(joined);
    free(copy);
    char b64[48];
    int bl = EVP_EncodeBlock((unsigned char *)b64, d, 32); /* 44 chars with one '=' */
    if (bl != 44)
        return MX_EINTERNAL;
    for (int i = 0; i < MX_LIKES_ACCOUNT_LEN; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    out[MX_LIKES_ACCOUNT_LEN] = '\0';
    return 0;
}

void mx_likes_stats(struct mx_likes_stats *o)
{
    struct mx__likes_ctr *c = &mx__likes_ctr;
#define L(f) atomic_load_explicit(&c->f, memory_order_relaxed)
    *o = (struct mx_likes_stats){.toggles = L(toggles),
                                 .likes = L(likes),
                                 .unlikes = L(unlikes),
                                 .status_redis = L(status_redis),
                                 .status_mysql = L(status_mysql),
                                 .warms = L(warms),
                                 .warm_rows = L(warm_rows),
                                 .warm_failures = L(warm_failures),
                                 .redis_failures = L(redis_failures),
                                 .mysql_failures = L(mysql_failures),
                                 .refused = L(refused),
                                 .wait_unacked = L(wait_unacked),
                                 .sync_batches = L(sync_batches),
                                 .sync_pairs = L(sync_pairs),
                                 .sync_replays = L(sync_replays),
                                 .sync_stale = L(sync_stale),
                                 .sync_failures = L(sync_failures),
                                 .sync_inserted = L(sync_inserted),
                                 .sync_deleted = L(sync_deleted),
                                 .sync_rollbacks = L(sync_rollbacks),
                                 .unloads = L(unloads),
                                 .sync_last_lag_ms = (int64_t)L(sync_last_lag_ms),
                                 .sync_last_at_ms = (int64_t)L(sync_last_at_ms),
                                 .sync_lag_sum_ms = L(sync_lag_sum_ms),
                                 .journals_open = L(journals_open),
                                 .pending_targets = L(pending_targets),
                                 .holder = L(holder) != 0};
    for (int i = 0; i < 8; i++)
        o->sync_lag_buckets[i] = L(sync_lag_buckets[i]);
#undef L
}

/* ---- scripts ----
 * Every script touches the keys of one partition only (one hash tag). The
 * take script builds the per-target key names from the partition prefix it
 * is given (same slot), because the targets are only known inside it. */

/* KEYS r, n, p, d, ign, t. ARGV T, account, ign, now_ms, wait ("1": also
 * the master's connected replicas).
 * {-1, 0} T is cold (load it first); else {liked 1|0, live count[, replicas]}. */
const char mx__lk_toggle_lua[] =
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return {-1, 0} end\n"
    "local liked = 1\n"
    "if redis.call('SREM', KEYS[1], ARGV[2]) == 1 then liked = 0\n"
    "else redis.call('SADD', KEYS[1], ARGV[2]) end\n"
    "local n = redis.call('HINCRBY', KEYS[2], ARGV[1], liked == 1 and 1 or -1)\n"
    "if n < 0 then redis.call('HSET', KEYS[2], ARGV[1], 0) n = 0 end\n"
    "redis.call('HSET', KEYS[3], ARGV[2], liked)\n"
    "redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[1])\n"
    "if ARGV[3] ~= '' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[3]) end\n"
    "redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])\n"
    "if ARGV[5] == '1' then\n" /* MX_REDIS_WAIT_REPLICAS: is there a replica to wait for? */
    "  local i = redis.call('INFO', 'replication')\n"
    "  return {liked, n, tonumber(string.match(i, 'connected_slaves:(%d+)')) or 0}\n"
    "end\n"
    "return {liked, n}\n";

/* KEYS d, t, n, ign. ARGV partition prefix, cutoff unix ms, max, now ms.
 * Unloads up to max characters not toggled since cutoff and with nothing
 * pending (their relations are all in MySQL): their set, count and name go;
 * the next toggle loads them again. One still pending is looked at again
 * later. Returns how many were unloaded. */
const char mx__lk_idle_lua[] =
    "local ts = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))\n"
    "local n = 0\n"
    "for _, t in ipairs(ts) do\n"
    "  if redis.call('ZSCORE', KEYS[1], t) or redis.call('EXISTS', ARGV[1] .. 'p:' .. t) == 1 then\n"
    "    redis.call('ZADD', KEYS[2], ARGV[4], t)\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[2], t)\n"
    "    redis.call('DEL', ARGV[1] .. 'r:' .. t)\n"
    "    redis.call('HDEL', KEYS[3], t)\n"
    "    redis.call('HDEL', KEYS[4], t)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* KEYS r, n. ARGV T, account ("" = anonymous).
 * {-1, 0} cold; else {liked 1|0, live count}. */
const char mx__lk_status_lua[] =
    "local n = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if not n then return {-1, 0} end\n"
    "local liked = 0\n"
    "if ARGV[2] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 then liked = 1 end\n"
    "return {liked, tonumber(n)}\n";

/* KEYS r, n, w (staging set), p, j. ARGV T, count, expected members.
 * 1 loaded; 0 already warm (staging dropped); -2 the staging set is not
 * what was sent (expired or partial): nothing changed, load again.
 * MySQL's likers become the relation set; then the changes MySQL does not
 * have yet - the open journal's pairs of T, then T's pending pairs, newer -
 * are applied on top, and the count moves with every member that really
 * changed. So a character can be loaded (and unloaded) at any time, even
 * with changes in flight, and the set and count equal MySQL plus them. */
const char mx__lk_warm_lua[] =
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then\n"
    "  redis.call('DEL', KEYS[3]) return 0 end\n"
    "if redis.call('SCARD', KEYS[3]) ~= tonumber(ARGV[3]) then\n"
    "  redis.call('DEL', KEYS[3]) return -2 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if tonumber(ARGV[3]) > 0 then\n"
    "  redis.call('RENAME', KEYS[3], KEYS[1]) redis.call('PERSIST', KEYS[1]) end\n"
    "local n = tonumber(ARGV[2])\n"
    "local function apply(acct, state)\n"
    "  if state == '1' then n = n + redis.call('SADD', KEYS[1], acct)\n"
    "  else n = n - redis.call('SREM', KEYS[1], acct) end\n"
    "end\n"
    "local pre = ARGV[1] .. '|'\n"
    "local cur = '0'\n"
    "repeat\n"
    "  local r = redis.call('HSCAN', KEYS[5], cur, 'MATCH', pre .. '*', 'COUNT', 1000)\n"
    "  cur = r[1]\n"
    "  for i = 1, #r[2], 2 do apply(string.sub(r[2][i], #pre + 1), r[2][i + 1]) end\n"
    "until cur == '0'\n"
    "local kv = redis.call('HGETALL', KEYS[4])\n"
    "for i = 1, #kv, 2 do apply(kv[i], kv[i + 1]) end\n"
    "if n < 0 then n = 0 end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], n)\n"
    "return 1\n";

/* KEYS d, j, jid, jt. ARGV partition prefix, max pairs, new batch id.
 * {2, id, oldest, left} an unfinished journal exists (finish it first);
 * {1, id, oldest, left} pending pairs moved into a new journal;
 * {0, '', 0, 0} nothing pending. Targets are taken oldest first, each
 * whole; left = targets still pending. */
const char mx__lk_take_lua[] =
    "local cur = redis.call('GET', KEYS[3])\n"
    "if cur then return {2, cur, redis.call('GET', KEYS[4]) or '0', redis.call('ZCARD', KEYS[1])} end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  redis.call('SET', KEYS[3], ARGV[3]) redis.call('SET', KEYS[4], '0')\n"
    "  return {2, ARGV[3], '0', redis.call('ZCARD', KEYS[1])} end\n"
    "local max = tonumber(ARGV[2])\n"
    "local n = 0\n"
    "local oldest = nil\n"
    "while n < max do\n"
    "  local e = redis.call('ZPOPMIN', KEYS[1])\n"
    "  if #e == 0 then break end\n"
    "  local t = e[1]\n"
    "  if not oldest then oldest = e[2] end\n"
    "  local pk = ARGV[1] .. 'p:' .. t\n"
    "  local kv = redis.call('HGETALL', pk)\n"
    "  for i = 1, #kv, 2 do\n"
    "    redis.call('HSET', KEYS[2], t .. '|' .. kv[i], kv[i + 1])\n"
    "    n = n + 1\n"
    "  end\n"
    "  redis.call('DEL', pk)\n"
    "end\n"
    "if n == 0 then return {0, '', '0', 0} end\n"
    "redis.call('SET', KEYS[3], ARGV[3])\n"
    "redis.call('SET', KEYS[4], oldest)\n"
    "return {1, ARGV[3], oldest, redis.call('ZCARD', KEYS[1])}\n";

/* KEYS j, jid, jt, hw. ARGV batch id. 1 deleted (and the batch joins the
 * partition's high-water list, the last 16 batches finished); 0 the
 * journal is another batch's (a stale holder must not delete a newer
 * journal). */
const char mx__lk_finish_lua[] = "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end\n"
                                 "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])\n"
                                 "redis.call('LPUSH', KEYS[4], ARGV[1])\n"
                                 "redis.call('LTRIM', KEYS[4], 0, 15)\n"
                                 "return 1\n";

/* KEYS hw, jid, n. ARGV MySQL's last committed batch of the partition ("" =
 * none), partition prefix. Redis that knows that batch (in its high-water
 * list, or as its open journal) is whole: 0. The list holds the last 16
 * batches, so a check that read MySQL just before a late holder finished
 * one more batch is still satisfied. Otherwise Redis lost writes (a crash
 * inside the AOF fsync window, a failover to a lagging replica): its
 * relation sets may be older than MySQL, so every character of the
 * partition is unloaded (pending pairs and the journal stay; the next load
 * applies them on top of MySQL) and the list restarts at MySQL's batch: the
 * number unloaded + 1. */
const char mx__lk_check_lua[] =
    "if ARGV[1] == '' or ARGV[1] == (redis.call('GET', KEYS[2]) or '') then return 0 end\n"
    "for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do\n"
    "  if v == ARGV[1] then return 0 end\n"
    "end\n"
    "local ts = redis.call('HKEYS', KEYS[3])\n"
    "for _, t in ipairs(ts) do redis.call('DEL', ARGV[2] .. 'r:' .. t) end\n"
    "redis.call('DEL', KEYS[3], KEYS[1])\n"
    "redis.call('RPUSH', KEYS[1], ARGV[1])\n"
    "return #ts + 1\n";
