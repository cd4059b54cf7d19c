/* alert.c - alerts through the outbox (mx_outbox.h, docs/outbox.md).
 *
 * mx_alert_raise (any thread) hands an alert to this node's "alerter"
 * actor through its bounded mailbox. The actor asks Redis, in one Lua
 * script, whether the alert's pattern is outside its throttle window (SET
 * NX PX: one alert per pattern per window, cluster-wide) and whether the
 * cluster-wide daily AI-analysis quota has room (INCR of a per-day key):
 * three nodes together never exceed either. An alert that passes becomes a
 * Discord-compatible embed written as an ALERT outbox row through the
 * MySQL pool; the relay delivers it to MX_ALERT_WEBHOOK_URL. Nothing is
 * ever POSTed inline. While MySQL is down (a "MySQL down" alert is the
 * obvious case) the row waits in a bounded retry list and is written when
 * MySQL is back. When Redis cannot answer, the alert passes (better a
 * repeat than a lost alert) and no AI quota is granted.
 *
 * A granted AI unit (and MX_AI_URL set) sends the alert to an
 * OpenAI-compatible chat-completions endpoint on an offload thread (a
 * blocking libcurl call with a timeout), at most ai_concurrency at once
 * and behind a circuit breaker; its answer goes into the embed. Refused
 * (busy, breaker open, no quota) or failed, the embed carries the
 * rule-based summary. The fetcher's breaker opening is noticed here too:
 * the tick compares its open counter (mx_fetch_stats) and raises
 * "breaker-open".
 */
#include "mx_outbox.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx_breaker.h"
#include "mx_curluv.h"
#include "mx_err.h"
#include "mx_fetch.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "mx_metrics.h"
#include "mx_proto.h"
#include "mx_redis.h"

#define ALERTER_NAME "alerter"
#define RETRY_MAX 64
#define AI_WAIT_MAX 32 /* granted alerts waiting for an AI slot; more are refused (ai_busy) */
#define RETRY_MS 1000
#define RELAXED memory_order_relaxed

MX_METRICS_STRUCT(alert_metrics, MX_ALERT_METRICS);
#define MX_METRICS_TYPE struct alert_metrics
static const struct mx_metric_desc alert_desc[] = {MX_ALERT_METRICS(MX_METRIC_DESC)};
#undef MX_METRICS_TYPE

static struct {
    mx_system_t *sys;
    mx_mysql_t *mysql;
    char *redis_url;
    char prefix[96]; /* "mx:{cluster}:alert:" */
    uint32_t window_s, quota;
    char *ai_url, *ai_auth, *ai_model; /* ai_auth: "Authorization: Bearer KEY" or NULL */
    uint32_t ai_concurrency, ai_timeout_ms;
    _Atomic bool started;
    struct mx_addr addr;
    struct alert_metrics m; /* MX_ALERT_METRICS: any thread writes (shared) */
    _Atomic int metrics_id;
    bool refetch_on;
} g;

int mx__outbox_ai_content(const char *json, size_t len, char *out, size_t cap); /* ai_json.cpp */

#define ADD(f) MX_METRIC_INC_SHARED(&g.m, f)

struct alert {
    char pattern[64];
    int level;
    char title[128];
    char desc[768];
    char node[64];
    int64_t at_ms;      /* unix ms raised */
    bool ai;            /* the daily AI quota granted one analysis */
    char analysis[700]; /* the AI's answer; "" = rule-based summary */
    /* not an alert: an UPSTREAM_REFETCH row (mx_outbox_refetch) */
    bool refetch;
    char rkey[96];
    char path[400];
};

/* KEYS window, ai-day; ARGV window_ms, quota, day_ttl_s.
 * 0 throttled; 1 passes; 2 passes with an AI-analysis unit. */
static const char LUA_THROTTLE[] =
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end\n"
    "local q = tonumber(ARGV[2])\n"
    "if q <= 0 then return 1 end\n"
    "local n = redis.call('INCR', KEYS[2])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end\n"
    "if n <= q then return 2 end\n"
    "return 1\n";

/* Stamp a and send it to the alerter actor (which then owns it). Returns 0,
 * or the send error (counted as refused; a is freed). */
static int hand_over(struct alert *a)
{
    a->at_ms = (int64_t)mx_unix_ms();
    struct mx_msg *m = mx_msg_with_ptr(MX_T_outbox_alert, a, free);
    if (!m) {
        free(a);
        return MX_ENOMEM;
    }
    int rc = mx_sys_send(g.sys, g.addr, m);
    if (rc != 0) {
        mx_msg_free(m);
        ADD(refused);
    }
    return rc;
}

int mx_alert_raise(const char *pattern, int level, const char *title, const char *desc)
{
    /* acquire: pairs with the release store when the actor is up */
    if (!atomic_load_explicit(&g.started, memory_order_acquire))
        return MX_ESTOPPED;
    if (!pattern || !*pattern || strlen(pattern) > 63)
        return MX_EINVAL;
    for (const char *p = pattern; *p; p++) /* it becomes part of an HTTP header value */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == ':'))
            return MX_EINVAL;
    struct alert *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    snprintf(a->pattern, sizeof a->pattern, "%s", pattern);
    a->level = level < 0 ? 0 : level > 2 ? 2 : level;
    snprintf(a->title, sizeof a->title, "%s", title ? title : pattern);
    snprintf(a->desc, sizeof a->desc, "%s", desc ? desc : "");
    snprintf(a->node, sizeof a->node, "%s", mx_system_node_name(g.sys));
    int rc = hand_over(a);
    if (rc == 0)
        ADD(raised);
    return rc;
}

void mx_alert_stats(struct mx_alert_stats *s)
{
    s->raised = MX_METRIC_GET(&g.m, raised);
    s->refused = MX_METRIC_GET(&g.m, refused);
    s->throttled = MX_METRIC_GET(&g.m, throttled);
    s->passed = MX_METRIC_GET(&g.m, passed);
    s->bypassed = MX_METRIC_GET(&g.m, bypassed);
    s->ai_granted = MX_METRIC_GET(&g.m, ai_granted);
    s->ai_refused = MX_METRIC_GET(&g.m, ai_refused);
    s->written = MX_METRIC_GET(&g.m, written);
    s->retried = MX_METRIC_GET(&g.m, retried);
    s->dropped = MX_METRIC_GET(&g.m, dropped);
    s->ai_calls = MX_METRIC_GET(&g.m, ai_calls);
    s->ai_ok = MX_METRIC_GET(&g.m, ai_ok);
    s->ai_failed = MX_METRIC_GET(&g.m, ai_failed);
    s->ai_busy = MX_METRIC_GET(&g.m, ai_busy);
    s->refetches = MX_METRIC_GET(&g.m, refetches);
}

/* ---- the embed ---- */

static const char *level_name(int l)
{
    return l >= 2 ? "CRITICAL" : l == 1 ? "WARNING" : "INFO";
}

/* The seed's Discord embed: title, description, colour by level, fields,
 * footer and an ISO-8601 timestamp. */
static char *embed(const struct alert *a, size_t *len)
{
    static const int colour[] = {3066993, 15105570, 15158332}; /* green, orange, red */
    time_t secs = (time_t)(a->at_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(a->at_ms % 1000));
    char title[160], summary[300];
    snprintf(title, sizeof title, "[%s] %s", level_name(a->level), a->title);
    snprintf(summary, sizeof summary, "rule-based: %s on %s; see the runbook for pattern '%s'",
             level_name(a->level), a->node, a->pattern);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 16384);
    mx_jsonw_obj_open(&w);
    mx_jsonw_key(&w, "embeds");
    mx_jsonw_arr_open(&w);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "title", title);
    mx_jsonw_kstr(&w, "description", a->desc);
    mx_jsonw_kint(&w, "color", colour[a->level]);
    mx_jsonw_key(&w, "fields");
    mx_jsonw_arr_open(&w);
    const char *f[][2] = {{"Node", a->node},
                          {"Pattern", a->pattern},
                          {"Analysis", a->analysis[0] ? a->analysis : summary}};
    for (size_t i = 0; i < 3; i++) {
        mx_jsonw_obj_open(&w);
        mx_jsonw_kstr(&w, "name", f[i][0]);
        mx_jsonw_kstr(&w, "value", f[i][1]);
        mx_jsonw_kbool(&w, "inline", i < 2);
        mx_jsonw_obj_close(&w);
    }
    mx_jsonw_arr_close(&w);
    mx_jsonw_key(&w, "footer");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "text", "mx alert");
    mx_jsonw_obj_close(&w);
    mx_jsonw_kstr(&w, "timestamp", ts);
    mx_jsonw_obj_close(&w);
    mx_jsonw_arr_close(&w);
    mx_jsonw_obj_close(&w);
    char *b = mx_jsonw_take(&w, len);
    mx_jsonw_fini(&w);
    return b;
}

/* ---- writing the outbox row (pool thread) ---- */

struct write_job {
    struct alert a;
    const char *type;
    char key[160];
    char *json;
    size_t len;
};

static void write_job_free(void *arg)
{
    struct write_job *j = arg;
    free(j->json);
    free(j);
}

static int write_run(struct mx_mysql_conn *c, void *arg)
{
    struct write_job *j = arg;
    int rc = mx_outbox_insert(c, j->type, j->json, j->len, j->key);
    return rc == MX_EEXISTS ? 0 : rc; /* written before: a retry after a lost reply */
}

/* ---- the actor ---- */

struct alerter {
    mx_actor_t *self;
    mx_redis_t *redis;
    mx_redis_script_t *s_throttle;
    struct mx_breaker br;               /* the AI endpoint's */
    uint32_t ai_inflight;               /* offloaded AI calls */
    struct alert *ai_wait[AI_WAIT_MAX]; /* FIFO of granted alerts waiting for a slot */
    uint32_t ai_whead, ai_wn;
    uint64_t fetch_opens;           /* the fetcher's breaker opens last seen */
    struct alert *retry[RETRY_MAX]; /* waiting for MySQL */
    uint32_t nretry;
};

struct pass_ctx {
    struct alerter *st;
    struct alert *a;
};

static void submit_write(struct alerter *st, struct alert *a)
{
    struct write_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->a = *a;
    if (a->refetch) {
        j->type = MX_OUTBOX_EV_REFETCH;
        snprintf(j->key, sizeof j->key, "%s", a->rkey);
        j->len = strlen(a->path);
        j->json = strdup(a->path);
    } else {
        j->type = MX_OUTBOX_EV_ALERT;
        snprintf(j->key, sizeof j->key, "alert:%s:%lld:%s", a->pattern, (long long)a->at_ms,
                 a->node);
        j->json = embed(a, &j->len);
    }
    if (!j->json ||
        mx_mysql_submit(g.mysql, write_run, j, write_job_free, mx_self(st->self), NULL) != 0) {
        write_job_free(j);
        if (st->nretry < RETRY_MAX) {
            st->retry[st->nretry++] = a;
            return;
        }
        ADD(dropped);
        MX_ERROR("alert %s dropped: MySQL queue full and the retry list is full", a->pattern);
    }
    free(a);
}

/* ---- AI analysis (offload thread) ---- */

struct ai_job {
    struct alert a;
    int status; /* 0 ok */
    bool probe; /* the breaker's half-open probe */
    char *resp; /* response body */
    size_t len, cap;
};

static size_t ai_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct ai_job *j = ud;
    /* bounded: an answer over 1 MiB fails the call */
    return mx_curluv_body_append(&j->resp, &j->len, &j->cap, p, size * nmemb, 1u << 20);
}

static void ai_job_free(void *arg)
{
    struct ai_job *j = arg;
    free(j->resp);
    free(j);
}

static struct mx_msg *ai_run(void *arg)
{
    struct ai_job *j = arg;
    struct mx_jsonw w;
    char user[1200];
    snprintf(user, sizeof user, "[%s] %s: %s (pattern %s, node %s)", level_name(j->a.level),
             j->a.title, j->a.desc, j->a.pattern, j->a.node);
    mx_jsonw_init(&w, 16384);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "model", g.ai_model);
    mx_jsonw_key(&w, "messages");
    mx_jsonw_arr_open(&w);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "role", "system");
    mx_jsonw_kstr(&w, "content",
                  "You are an SRE assistant. In at most three sentences, give the"
                  " likely cause of this alert and the first thing to check.");
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "role", "user");
    mx_jsonw_kstr(&w, "content", user);
    mx_jsonw_obj_close(&w);
    mx_jsonw_arr_close(&w);
    mx_jsonw_kint(&w, "max_tokens", 200);
    mx_jsonw_obj_close(&w);
    j->status = MX_EUPSTREAM;
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (g.ai_auth)
        h = curl_slist_append(h, g.ai_auth);
    if (e && h && !w.err) {
        curl_easy_setopt(e, CURLOPT_URL, g.ai_url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, w.buf);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w.len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)g.ai_timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ai_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
        long code = 0;
        if (curl_easy_perform(e) == CURLE_OK &&
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 &&
            j->resp &&
            mx__outbox_ai_content(j->resp, j->len, j->a.analysis, sizeof j->a.analysis) == 0 &&
            j->a.analysis[0])
            j->status = 0;
    }
    curl_slist_free_all(h);
    if (e)
        curl_easy_cleanup(e);
    mx_jsonw_fini(&w);
    if (j->status != 0)
        j->a.analysis[0] = '\0';
    struct mx_msg *m = mx_msg_with_ptr(MX_T_outbox_ai_done, j, ai_job_free);
    if (!m)
        ai_job_free(j);
    return m;
}

/* A granted AI unit: analyse, then write; refused or unconfigured: write
 * with the rule-based summary. Takes a. */
static void analyse_or_write(struct alerter *st, struct alert *a)
{
    bool probe = false;
    if (!a->ai || !g.ai_url) {
        submit_write(st, a);
        return;
    }
    if (st->ai_inflight >= g.ai_concurrency) {
        if (st->ai_wn < AI_WAIT_MAX) { /* a slot frees when a call ends */
            st->ai_wait[(st->ai_whead + st->ai_wn++) % AI_WAIT_MAX] = a;
            return;
        }
        ADD(ai_busy);
        submit_write(st, a);
        return;
    }
    if (mx_breaker_acquire(&st->br, mx_now_ms(), &probe) != 0) {
        ADD(ai_busy);
        submit_write(st, a);
        return;
    }
    struct ai_job *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->a = *a;
    j->probe = probe;
    if (mx_offload(st->self, ai_run, j, NULL) != 0) {
        mx_breaker_cancel(&st->br, probe);
        free(j);
        ADD(ai_busy);
        submit_write(st, a);
        return;
    }
    ADD(ai_calls);
    st->ai_inflight++;
    free(a);
}

static void throttled_cb(mx_redis_t *r, int status, const redisReply *rep, void *arg)
{
    struct pass_ctx *pc = arg;
    struct alert *a = pc->a;
    if (status == MX_ESTOPPED) {
        free(a);
        free(pc);
        return;
    }
    if (status != 0 || !rep || rep->type != REDIS_REPLY_INTEGER) {
        ADD(bypassed); /* Redis cannot decide: the alert passes, without AI */
    } else if (rep->integer == 0) {
        ADD(throttled);
        free(a);
        free(pc);
        return;
    } else if (rep->integer == 2) {
        a->ai = true;
        ADD(ai_granted);
    } else if (g.quota > 0) {
        ADD(ai_refused);
    }
    ADD(passed);
    analyse_or_write(pc->st, a);
    free(pc);
}

static void take(struct alerter *st, struct alert *a)
{
    if (!st->redis || !mx_redis_connected(st->redis)) {
        ADD(bypassed);
        ADD(passed);
        submit_write(st, a);
        return;
    }
    char kw[200], kd[200], win[24], quota[24];
    time_t now = (time_t)(a->at_ms / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(kw, sizeof kw, "%swin:%s", g.prefix, a->pattern);
    snprintf(kd, sizeof kd, "%sai:%04d%02d%02d", g.prefix, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
    snprintf(win, sizeof win, "%llu", (unsigned long long)g.window_s * 1000);
    snprintf(quota, sizeof quota, "%u", g.quota);
    const char *argv[] = {kw, kd, win, quota, "172800"};
    struct pass_ctx *pc = malloc(sizeof *pc);
    if (!pc)
        abort();
    *pc = (struct pass_ctx){st, a};
    if (mx_redis_eval(st->redis, st->s_throttle, throttled_cb, pc, 2, 5, argv, NULL) != 0) {
        free(pc);
        ADD(bypassed);
        ADD(passed);
        submit_write(st, a);
    }
}

/* The tick: the fetcher's breaker opened since the last one? */
static void watch_breaker(struct alerter *st)
{
    struct mx_addr fa;
    struct mx_fetch_stats fs;
    if (mx_whereis(g.sys, MX_FETCH_NAME, &fa) != 0 || mx_fetch_stats(g.sys, fa, &fs) != 0)
        return;
    if (fs.breaker_opens > st->fetch_opens)
        mx_alert_raise("breaker-open", 1, "Upstream circuit breaker opened",
                       "The Nexon Open API failed often enough to open the fetcher's breaker;"
                       " requests without stale data answer 503 until it closes.");
    st->fetch_opens = fs.breaker_opens;
}

static int al_init(mx_actor_t *self, void *arg, void **state)
{
    struct alerter *st = calloc(1, sizeof *st);
    if (!st)
        return MX_ENOMEM;
    st->self = self;
    /* 5 calls, 60 % failed: open for 30 s, one probe */
    mx_breaker_init(&st->br, 5, 60, 30000, 1);
    {
        struct mx_addr fa;
        struct mx_fetch_stats fs;
        if (mx_whereis(g.sys, MX_FETCH_NAME, &fa) == 0 && mx_fetch_stats(g.sys, fa, &fs) == 0)
            st->fetch_opens = fs.breaker_opens;
    }
    if (g.redis_url && g.redis_url[0]) {
        struct mx_redis_opts ro = {.name = "redis-alert", .timeout_ms = 500};
        if (mx_redis_open(mx_actor_loop(self), g.redis_url, &ro, &st->redis) == 0)
            mx_redis_script(st->redis, LUA_THROTTLE, &st->s_throttle);
        else
            st->redis = NULL;
    }
    uint64_t id;
    struct mx_msg *tick = mx_msg_new(MX_T_sys_tick, 0);
    int rc = mx_timer_start(self, RETRY_MS, RETRY_MS, tick, &id);
    if (rc != 0) {
        mx_msg_free(tick);
        if (st->redis)
            mx_redis_close(st->redis, NULL, NULL);
        free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static int al_receive(mx_actor_t *self, void *state, struct mx_msg *m)
{
    struct alerter *st = state;
    if (m->env.type == MX_T_outbox_alert && m->ptr) {
        struct alert *a = malloc(sizeof *a);
        if (!a)
            abort();
        memcpy(a, m->ptr, sizeof *a);
        if (a->refetch)
            submit_write(st, a); /* no throttle: the key dedups per minute */
        else
            take(st, a);
    } else if (m->env.type == MX_T_outbox_ai_done && m->ptr) {
        struct ai_job *j = m->ptr;
        st->ai_inflight--;
        mx_breaker_record(&st->br, mx_now_ms(), j->probe, j->status == 0);
        if (j->status == 0)
            ADD(ai_ok);
        else
            ADD(ai_failed);
        struct alert *a = malloc(sizeof *a);
        if (!a)
            abort();
        *a = j->a;
        submit_write(st, a);
        if (st->ai_wn) { /* the freed slot goes to the oldest waiting alert */
            struct alert *w = st->ai_wait[st->ai_whead];
            st->ai_whead = (st->ai_whead + 1) % AI_WAIT_MAX;
            st->ai_wn--;
            analyse_or_write(st, w);
        }
    } else if (m->env.type == MX_T_sys_tick) {
        watch_breaker(st);
        uint32_t n = st->nretry;
        struct alert *list[RETRY_MAX];
        memcpy(list, st->retry, n * sizeof *list);
        st->nretry = 0;
        for (uint32_t i = 0; i < n; i++) {
            ADD(retried);
            submit_write(st, list[i]);
        }
    } else if (m->env.type == MX_T_store_job_done && m->ptr) {
        struct mx_m_store_job_done d;
        struct write_job *j = m->ptr;
        if (mx_msg_decode(m, &d) != 0)
            return 0;
        bool transient = d.status == MX_EUNAVAIL || d.status == MX_EFULL ||
                         d.status == MX_ESTOPPED || d.status == MX_ETIMEDOUT;
        if (d.status == 0) {
            ADD(written);
        } else if (transient && st->nretry < RETRY_MAX) {
            struct alert *a = malloc(sizeof *a);
            if (!a)
                abort();
            *a = j->a;
            st->retry[st->nretry++] = a; /* MySQL down: written when it is back */
        } else {
            ADD(dropped);
            MX_ERROR("alert %s dropped: %s%s", j->a.pattern, mx_strerror((int)d.status),
                     transient ? " and the retry list is full" : "");
        }
    }
    return 0;
}

static void al_stop(mx_actor_t *self, void *state)
{
    struct alerter *st = state;
    for (uint32_t i = 0; i < st->nretry; i++)
        free(st->retry[i]);
    for (uint32_t i = 0; i < st->ai_wn; i++)
        free(st->ai_wait[(st->ai_whead + i) % AI_WAIT_MAX]);
    if (st->nretry)
        MX_WARN("alerter: %u alerts not written (MySQL down at stop)", st->nretry);
    if (st->redis)
        mx_redis_close(st->redis, NULL, NULL);
    free(st);
}

static const struct mx_behaviour alerter_beh = {ALERTER_NAME, al_init, al_receive, al_stop};

int mx_outbox_refetch(const char *ign, bool expectation)
{
    /* acquire: pairs with the release store when the actor is up */
    if (!g.refetch_on || !atomic_load_explicit(&g.started, memory_order_acquire))
        return MX_ESTOPPED;
    size_t n = ign ? strlen(ign) : 0;
    if (n == 0 || n > 64)
        return MX_EINVAL;
    char *esc = curl_easy_escape(NULL, ign, (int)n);
    if (!esc)
        return MX_ENOMEM;
    struct alert *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->refetch = true;
    snprintf(a->pattern, sizeof a->pattern, "refetch");
    snprintf(a->path, sizeof a->path,
             expectation ? "/api/v4/characters/%s/expectation" : "/api/v1/characters/%s", esc);
    curl_free(esc);
    /* one event per character and kind per minute: FNV-1a of the name */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)ign[i]) * 0x100000001b3ull;
    snprintf(a->rkey, sizeof a->rkey, "refetch:%c:%016llx:%lld", expectation ? 'e' : 'c',
             (unsigned long long)h, (long long)(mx_unix_ms() / 60000));
    int rc = hand_over(a);
    if (rc == 0)
        ADD(refetches);
    return rc;
}

void mx__alert_register_metrics(void)
{
    mx_metrics_register_once(&g.metrics_id, "alert", "alerts", alert_desc,
                             sizeof alert_desc / sizeof *alert_desc, &g.m);
}

int mx_alert_start(const struct mx_alert_opts *o)
{
    if (!o || !o->sys || !o->mysql)
        return MX_EINVAL;
    mx_outbox_register_metrics();
    g.sys = o->sys;
    g.mysql = o->mysql;
    g.redis_url = o->redis_url ? strdup(o->redis_url) : NULL;
    g.window_s = o->window_s ? o->window_s : 60;
    g.quota = o->ai_daily_quota;
    g.refetch_on = o->refetch;
    snprintf(g.prefix, sizeof g.prefix, "mx:{%s}:alert:", o->cluster ? o->cluster : "mx");
    if (o->ai_url && o->ai_url[0]) {
        g.ai_url = strdup(o->ai_url);
        g.ai_model = strdup(o->ai_model && o->ai_model[0] ? o->ai_model : "gpt-4o-mini");
        if (o->ai_key && o->ai_key[0]) {
            size_t n = strlen(o->ai_key) + 32;
            g.ai_auth = malloc(n);
            if (g.ai_auth)
                snprintf(g.ai_auth, n, "Authorization: Bearer %s", o->ai_key);
        }
        if (!g.ai_url || !g.ai_model)
            abort();
    }
    g.ai_concurrency = o->ai_concurrency ? o->ai_concurrency : 2;
    g.ai_timeout_ms = o->ai_timeout_ms ? o->ai_timeout_ms : 10000;
    struct mx_spawn_opts so = MX_SPAWN_OPTS_DEFAULT;
    so.name = ALERTER_NAME;
    int rc = mx_spawn(o->sys, &alerter_beh, NULL, &so, &g.addr);
    if (rc == 0)
        atomic_store_explicit(&g.started, true, memory_order_release);
    return rc;
}
