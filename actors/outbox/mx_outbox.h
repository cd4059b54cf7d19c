/* mx_outbox.h - the transactional outbox: the outbox-relay singleton that
 * delivers its rows, and the pool jobs (DLQ admin, donations, points) the
 * HTTP routes run against the outbox and ledger tables.
 *
 * Producers write an outbox row in the same MySQL transaction as the data
 * it describes (mx_outbox_insert). One node - the holder of the
 * "outbox-relay" lease - claims due rows in bounded batches (SELECT ... FOR
 * UPDATE SKIP LOCKED inside mx_mysql_fenced, rows stamped with its lease
 * counter), POSTs each to the URL of its event type through libcurl multi
 * on its own loop with an Idempotency-Key header equal to the row's key,
 * and completes the rows with UPDATEs guarded by that counter: a deposed
 * relay's completion changes 0 rows. Failures back off min(2^attempt x
 * base, cap) with jitter; after the last attempt the row moves to
 * outbox_dlq in the same transaction. Delivery is at least once; receivers
 * drop repeats by the key. docs/outbox.md has the tables, states and SQL.
 */
#ifndef MX_OUTBOX_H
#define MX_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_lease.h"
#include "mx_mysql.h"

#define MX_OUTBOX_SINGLETON "outbox-relay"
#define MX_OUTBOX_KEY_MAX 191 /* bytes of an idempotency key (the column) */
#define MX_OUTBOX_TYPE_MAX 64 /* bytes of an event type */
#define MX_OUTBOX_BATCH_MAX 2000

/* Event types with their own destination; every other type goes to the
 * sink URL. */
#define MX_OUTBOX_EV_ALERT "ALERT"
#define MX_OUTBOX_EV_DONATION "DONATION_COMPLETED"
#define MX_OUTBOX_EV_REFETCH "UPSTREAM_REFETCH" /* payload: a path GET from refetch_url */

struct mx_outbox_opts {
    mx_mysql_t *mysql;        /* required */
    const char *sink_url;     /* MX_OUTBOX_SINK_URL: every type but ALERT; "" = none */
    const char *alert_url;    /* MX_ALERT_WEBHOOK_URL: ALERT rows; "" = sink_url */
    const char *refetch_url;  /* MX_OUTBOX_REFETCH_URL: base URL UPSTREAM_REFETCH paths are
                                 GET from (the service itself, e.g. its load balancer) */
    uint32_t batch;           /* rows claimed (and held) at most; 0 = 500 */
    uint32_t concurrency;     /* HTTP requests in flight; 0 = 64 */
    uint32_t timeout_ms;      /* one delivery attempt; 0 = 5000 */
    uint32_t poll_ms;         /* claim period while idle; 0 = 100 */
    uint32_t max_attempts;    /* attempts before the DLQ; 0 = 5 */
    uint32_t backoff_base_ms; /* 0 = 1000 */
    uint32_t backoff_cap_ms;  /* 0 = 300000 */
    uint32_t stuck_s;         /* INFLIGHT rows older than this are reclaimed; 0 = 120 */
    uint32_t retain_s;        /* DONE rows are deleted this long after delivery; 0 = 7 days */
};

/* mx_outbox_start - declare the outbox-relay singleton on lm (before
 * mx_leases_start); without any URL nothing is declared (rows wait), and
 * without a sink URL only ALERT rows are claimed. Strings are copied. One
 * per process. Returns 0,
 * MX_EINVAL (no pool, or a URL that is not http(s)://), or mx_singleton's
 * errors. Main thread. */
int mx_outbox_start(mx_leases_t *lm, const struct mx_outbox_opts *opts);

/* Counters of this node's relay (zero on nodes that never held the lease)
 * and the last table figures its holder read (once a second). */
struct mx_outbox_stats {
    bool holding;               /* the relay runs here now */
    uint64_t epoch;             /* lease counter of the current or last term here */
    uint64_t claimed;           /* rows claimed */
    uint64_t delivered;         /* rows completed DONE (guarded UPDATE matched) */
    uint64_t attempts;          /* HTTP attempts started */
    uint64_t failures;          /* attempts that failed (non-2xx, timeout, no destination) */
    uint64_t retries;           /* rows rescheduled with backoff */
    uint64_t dead;              /* rows moved to outbox_dlq */
    uint64_t stale_completions; /* completions that matched 0 rows (row no longer ours) */
    uint64_t fenced;            /* relay jobs refused by the MySQL fence (deposed) */
    uint64_t reclaimed;         /* INFLIGHT rows of older epochs or stuck, put back */
    uint64_t refused;           /* pool submits refused (queue full) */
    uint64_t purged;            /* DONE rows deleted after the retention */
    uint64_t lag_p50_ms, lag_p99_ms, lag_max_ms; /* commit -> 2xx, this term */
    uint64_t lag_count;                          /* deliveries in the lag histogram */
    int64_t backlog;                             /* PENDING + INFLIGHT rows; -1 unknown */
    int64_t oldest_due_age_ms;                   /* age of the oldest due PENDING row; -1 unknown */
    int64_t dlq_size;                            /* rows in outbox_dlq; -1 unknown */
    uint32_t inflight;                           /* HTTP requests running */
    uint32_t held;                               /* claimed rows held in memory */
};

/* The relay's counters, declared once (mx_metrics.h), registered as actor
 * "outbox", instance "relay": Prometheus mx_outbox_total{event} and the
 * gauges mx_outbox_<field>; mxctl stats metrics.outbox. */
#define MX_OUTBOX_METRICS(X)                                                                       \
    X(GAUGE, holding, "1 while the relay runs here")                                               \
    X(GAUGE, epoch, "lease counter of the current or last term here")                              \
    X(COUNTER, claimed, "rows claimed", "", "event=\"claimed\"")                                   \
    X(COUNTER, deliveries, "rows completed DONE", "", "event=\"delivery\"")                        \
    X(COUNTER, attempts, "HTTP attempts started", "", "event=\"attempt\"")                         \
    X(COUNTER, failures, "attempts that failed", "", "event=\"failure\"")                          \
    X(COUNTER, retries, "rows rescheduled with backoff", "", "event=\"retry\"")                    \
    X(COUNTER, dead, "rows moved to outbox_dlq", "", "event=\"dead\"")                             \
    X(COUNTER, stale_completions, "completions that matched no row", "",                           \
      "event=\"stale_completion\"")                                                                \
    X(COUNTER, fenced, "relay jobs refused by the MySQL fence", "", "event=\"fenced\"")            \
    X(COUNTER, reclaimed, "INFLIGHT rows put back", "", "event=\"reclaimed\"")                     \
    X(COUNTER, refused, "pool submits refused (queue full)", "", "event=\"refused\"")              \
    X(COUNTER, purged, "DONE rows deleted after the retention", "", "event=\"purged\"")            \
    X(SGAUGE, backlog, "PENDING + INFLIGHT rows; -1 unknown (not the holder)")                     \
    X(SGAUGE, oldest_ms, "age of the oldest due PENDING row; -1 unknown", "oldest_due_age_ms")     \
    X(SGAUGE, dlq_size, "rows in outbox_dlq; -1 unknown")                                          \
    X(GAUGE, inflight, "HTTP requests running")                                                    \
    X(GAUGE, held, "claimed rows held in memory")

/* mx_outbox_register_metrics - register the relay's and the alert actor's
 * counter blocks (process-wide, static) once, so the node shows them
 * (zero, and -1 for the table figures) even where the relay never runs;
 * mx_outbox_start and mx_alert_start call it too. Any thread. */
void mx_outbox_register_metrics(void);

/* mx_outbox_stats - a snapshot. Any thread; no lock. */
void mx_outbox_stats(struct mx_outbox_stats *out);

/* mx_outbox_insert - insert an outbox row (status PENDING, due now) on c,
 * inside the caller's transaction. Returns 0, MX_EEXISTS (the key is
 * already in the outbox), MX_EINVAL (empty or too long type/key), or the
 * exec errors. The thread that owns c. */
int mx_outbox_insert(struct mx_mysql_conn *c, const char *type, const char *payload, size_t len,
                     const char *key);

/* ---- alerts (alert.c) ---- */

struct mx_alert_opts {
    mx_system_t *sys;
    mx_mysql_t *mysql;       /* where ALERT outbox rows are written; required */
    const char *redis_url;   /* throttle and AI quota; NULL/"" = no throttle */
    const char *cluster;     /* key prefix mx:{cluster}:alert: */
    uint32_t window_s;       /* one alert per pattern per window, cluster-wide; 0 = 60 */
    uint32_t ai_daily_quota; /* AI analyses per UTC day, cluster-wide; 0 = none */
    const char *ai_url;      /* OpenAI-compatible chat-completions URL; NULL/"" = no AI */
    const char *ai_key;      /* its Bearer key; may be empty */
    const char *ai_model;    /* NULL = "gpt-4o-mini" */
    uint32_t ai_concurrency; /* AI calls at once; 0 = 2 */
    uint32_t ai_timeout_ms;  /* one AI call; 0 = 10000 */
    bool refetch;            /* mx_outbox_refetch writes events (a refetch URL is set) */
};

/* mx_alert_start - spawn this node's "alerter" actor. Strings are copied.
 * Returns 0, MX_EINVAL or mx_spawn's errors. Main thread, once. */
int mx_alert_start(const struct mx_alert_opts *opts);

/* mx_alert_raise - raise an alert (pattern: 1-63 bytes of [A-Za-z0-9._:-]
 * naming what happened, the throttle key; level 0 info, 1 warning, 2 critical). It is
 * throttled per pattern, then written as an ALERT outbox row (a Discord
 * embed) that the relay delivers; never sent inline. Strings are copied.
 * Returns 0, MX_ESTOPPED (no alerter on this node), MX_EINVAL, or
 * MX_EFULL (the alerter's mailbox is full; counted). Any thread; never
 * blocks. */
int mx_alert_raise(const char *pattern, int level, const char *title, const char *desc);

/* mx_outbox_refetch - an upstream call failed and no stale data could be
 * served (the seed's scenario B): write an UPSTREAM_REFETCH outbox row
 * (through the alerter, retried while MySQL is down) whose delivery GETs
 * the character's expectation (or character) path from the refetch URL
 * later, warming the cache. One row per character and kind per minute.
 * Returns 0, MX_ESTOPPED (re-fetch off), MX_EINVAL, MX_EFULL. Any thread;
 * never blocks. */
int mx_outbox_refetch(const char *ign, bool expectation);

struct mx_alert_stats {
    uint64_t raised, refused;            /* accepted by / refused at the mailbox */
    uint64_t throttled, passed;          /* by the per-pattern window */
    uint64_t bypassed;                   /* Redis could not decide: passed without AI */
    uint64_t ai_granted, ai_refused;     /* daily AI quota decisions */
    uint64_t ai_calls, ai_ok, ai_failed; /* AI endpoint calls made, answered, failed */
    uint64_t ai_busy;   /* granted but not called: concurrency, breaker open, offload queue */
    uint64_t refetches; /* UPSTREAM_REFETCH events handed to the alerter */
    uint64_t written, retried, dropped; /* outbox rows; retries while MySQL was down */
};

/* The alert actor's counters, declared once, registered as actor "alert",
 * instance "alerts": Prometheus mx_alert_total{event}. */
#define MX_ALERT_METRICS(X)                                                                        \
    X(COUNTER, raised, "alerts raised here", "", "event=\"raised\"")                               \
    X(COUNTER, refused, "alerts refused (queue full)", "", "event=\"refused\"")                    \
    X(COUNTER, throttled, "alerts inside their pattern's window", "", "event=\"throttled\"")       \
    X(COUNTER, passed, "alerts past the throttle", "", "event=\"passed\"")                         \
    X(COUNTER, bypassed, "alerts sent without the throttle (Redis down)", "",                      \
      "event=\"bypassed\"")                                                                        \
    X(COUNTER, ai_granted, "AI analyses granted by the daily quota", "", "event=\"ai_granted\"")   \
    X(COUNTER, ai_refused, "AI analyses refused by the daily quota", "", "event=\"ai_refused\"")   \
    X(COUNTER, written, "ALERT outbox rows written", "", "event=\"written\"")                      \
    X(COUNTER, retried, "outbox writes retried", "", "event=\"retried\"")                          \
    X(COUNTER, dropped, "alerts dropped", "", "event=\"dropped\"")                                 \
    X(COUNTER, ai_calls, "AI calls started", "", "event=\"ai_call\"")                              \
    X(COUNTER, ai_ok, "AI calls answered", "", "event=\"ai_ok\"")                                  \
    X(COUNTER, ai_failed, "AI calls failed", "", "event=\"ai_failed\"")                            \
    X(COUNTER, ai_busy, "granted alerts refused: no AI slot", "", "event=\"ai_busy\"")             \
    X(COUNTER, refetches, "refetch events written", "", "event=\"refetch\"")

/* mx_alert_stats - this node's alert counters. Any thread. */
void mx_alert_stats(struct mx_alert_stats *out);

/* ---- pool jobs for the HTTP routes (DLQ admin, donations, points) ---- */

enum mx_outbox_op {
    MX_OBOP_DLQ_PAGE = 1,  /* page, size */
    MX_OBOP_DLQ_GET,       /* id */
    MX_OBOP_DLQ_REPROCESS, /* id */
    MX_OBOP_DLQ_DELETE,    /* id */
    MX_OBOP_DLQ_COUNT,
    MX_OBOP_DLQ_CURSOR,   /* cursor (has_cursor), size */
    MX_OBOP_DONATE,       /* key, account, receiver, amount */
    MX_OBOP_POINTS_GRANT, /* account, amount */
    MX_OBOP_POINTS_GET,   /* account */
};

/* One job: the inputs, then the HTTP answer the pool thread built. */
struct mx_outbox_job {
    enum mx_outbox_op op;
    int64_t id, page, size, cursor, amount;
    bool has_cursor;
    char key[65];      /* donation request id */
    char account[97];  /* points account */
    char receiver[65]; /* donation receiver (an admin fingerprint) */
    /* results: an HTTP status with either a JSON body or an error code */
    int http_status;
    char code[8];
    char message[200];
    char *body; /* malloc'd JSON when http_status < 400 */
    size_t body_len;
};

/* mx_outbox_job_run - an mx_mysql_fn running job (a struct mx_outbox_job)
 * on c: fills http_status and body, or code/message. Returns 0 when it
 * answered (including 4xx), or the MySQL error (MX_EUNAVAIL, MX_EIO, ...)
 * with nothing written (its transaction rolled back). Pool thread. */
int mx_outbox_job_run(struct mx_mysql_conn *c, void *job);

/* mx_outbox_job_free - free a job and its body (an arg_free for
 * mx_mysql_submit). */
void mx_outbox_job_free(void *job);

#endif
