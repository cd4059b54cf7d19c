/* mx_calculator.h - the calculator actor: turns a character's equipment
 * JSON into its expectation document (parse, calculate, build the plain
 * and gzip forms, frame them for L2), or the equipment itself into a
 * document (MX_SVC_EQUIPMENT), for the cache shards.
 *
 * One actor registered as "calculator" (MX_CALCULATOR_NAME) owns a pool
 * of workers: it runs at most `pool` jobs at a time on the runtime's
 * offload threads (the work blocks a thread for milliseconds, so it never
 * runs on a scheduler), keeps up to `max_queued` more in a FIFO and
 * refuses the rest. Its mailbox, depth and counters show in `mxctl actors`
 * and `mxctl mailbox calculator`; its counters (MX_CALCULATOR_METRICS) are
 * registered as actor "calculator", instance "main".
 *
 * Protocol (local only: the job travels by pointer):
 *   calc_req (proto/msg_cache.def), ptr = struct mx_calc_job (ptr_free
 *   mx_calc_job_free), env.corr = a tag of the asker's choosing: sent with
 *   mx_calculator_ask.
 *   Answer exp_calc_done with the same env.corr, as a plain message (not a
 *   runtime reply: the worker thread sends it straight to the asker, so a
 *   result costs one hop, as an offload result would): status 0 or the
 *   job's error, ptr = the job with its results (freed with the message);
 *   status MX_EFULL and no ptr when the calculator refused the job (queue
 *   full, offload pool full). There is no runtime timeout: the asker keeps
 *   its own deadline, and a late answer is just freed.
 *   The worker then tells the calculator (calc_done) so it starts the next.
 */
#ifndef MX_CALCULATOR_H
#define MX_CALCULATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "cache_codec.h"
#include "mx_actor.h"
#include "mx_blob.h"
#include "mx_metrics.h"

struct mx_cube_table;

#define MX_CALCULATOR_NAME "calculator"

/* One calculation. The asker fills "in"; the calculator fills "out". Owned
 * by the message that carries it (request, then reply). */
struct mx_calc_job {
    /* in */
    struct mx_blob *equip; /* one reference */
    char ign[96];
    int preset;
    bool star_catch, discount, sunday;
    bool equip_fresh; /* just fetched: frame it for L2/L3 too */
    bool equip_doc;   /* MX_SVC_EQUIPMENT: no calculation, fresh = the equipment */
    /* set by the calculator */
    const struct mx_cube_table *table;
    uint32_t memo_entries;
    mx_system_t *sys;
    struct mx_env asker; /* whom to answer: from, corr, trace */
    /* out */
    int status;
    char err[200];
    struct mx_http_doc *fresh;   /* fromCache false, with gzip: for the requests that waited */
    struct mx_http_doc *cached;  /* fromCache true, with gzip: stored in L1 */
    struct mx_blob *doc_frame;   /* L2 frame of cached's plain bytes */
    struct mx_blob *equip_frame; /* equip_fresh: L2 frame of the equipment */
    struct mx__summary sums[3];  /* per preset, read back (cache_codec.h) */
    int nsums;
    int64_t calc_ms; /* on the worker */
};

/* mx_calc_job_new - a zeroed job holding one more reference of equip.
 * Aborts on out-of-memory. mx_calc_job_free frees it and every reference
 * it holds (NULL is a no-op); any thread. */
struct mx_calc_job *mx_calc_job_new(struct mx_blob *equip);
void mx_calc_job_free(void *job);

struct mx_calculator_opts {
    const struct mx_cube_table *cube_table; /* borrowed, outlives the actor; may be NULL */
    uint32_t memo_entries;                  /* calculator memo per worker thread; default 65536 */
    uint32_t pool;       /* jobs on the offload threads at once: their number; default 4 */
    uint32_t max_queued; /* jobs waiting beyond those; default 1024 */
};

void mx_calculator_opts_default(struct mx_calculator_opts *o);

/* mx_calculator_start - spawn the calculator (opts copied), registered as
 * MX_CALCULATOR_NAME. Returns 0 or the mx_spawn error. Not from a
 * scheduler. */
int mx_calculator_start(mx_system_t *sys, const struct mx_calculator_opts *opts);

/* mx_calculator_ask - send job to the calculator at `to`; its answer
 * (exp_calc_done) comes back with env.corr == tag. Takes job on 0; on
 * error (the mx_send errors) it stays the caller's. Owner thread of self. */
int mx_calculator_ask(mx_actor_t *self, struct mx_addr to, struct mx_calc_job *job, uint64_t tag);

/* The calculator's counters; one writer, the calculator's thread. */
#define MX_CALCULATOR_METRICS(X)                                                                   \
    X(COUNTER, requests, "calc_req received")                                                      \
    X(COUNTER, started, "jobs given to an offload thread")                                         \
    X(COUNTER, done, "jobs answered with a result")                                                \
    X(COUNTER, errors, "jobs whose result is an error (unreadable equipment, no preset)")          \
    X(COUNTER, refused, "jobs refused: queue full or the offload pool refused")                    \
    X(COUNTER, lost, "jobs whose answer did not reach the asker (gone, mailbox full)")             \
    X(COUNTER, calc_ms_total, "milliseconds the workers spent")                                    \
    X(GAUGE, pool, "jobs allowed on the offload threads at once")                                  \
    X(GAUGE, inflight, "jobs on the offload threads now")                                          \
    X(GAUGE, queued, "jobs waiting for a worker")

MX_METRICS_STRUCT(mx_calculator_metrics, MX_CALCULATOR_METRICS);

/* mx_calculator_metrics - the calculator's block (zeros before it
 * started). Any thread; read with MX_METRIC_GET. */
const struct mx_calculator_metrics *mx_calculator_metrics(void);

#endif
