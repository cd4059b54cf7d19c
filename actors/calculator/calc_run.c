/* calc_run.c - the calculator's work, on an offload thread: parse the
 * equipment JSON and build the expectation document (plain, and gzip for
 * the cached copy, framed for L2; the equipment framed for L2/L3 when it
 * was just fetched) with that thread's own parser and memoising calculator
 * context (created on first use, freed at thread exit). The actor that
 * hands jobs to these threads is calculator.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_doc.h"
#include "mx_equip.h"
#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_log.h"
#include "calc_int.h"
#include "mx_alloc.h"

/* ---- the calculator, on offload threads ---- */

struct calc_tls {
    struct mx_equip_parser *parser;
    struct mx_calc *calc;
    const struct mx_cube_table *table;
    struct mx_equip *eq; /* large: heap */
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
    struct calc_tls *t = p;
    if (!t)
        return;
    mx_equip_parser_free(t->parser);
    mx_calc_free(t->calc);
    free(t->eq);
    free(t);
}

static void tls_init(void)
{
    pthread_key_create(&tls_key, tls_free);
}

void mx__calc_thread_fini(void)
{
    pthread_once(&tls_once, tls_init);
    tls_free(pthread_getspecific(tls_key));
    pthread_setspecific(tls_key, NULL);
}

static struct calc_tls *calc_tls(const struct mx_cube_table *table, uint32_t memo)
{
    pthread_once(&tls_once, tls_init);
    struct calc_tls *t = pthread_getspecific(tls_key);
    if (t && t->table == table)
        return t;
    if (t)
        mx__calc_thread_fini();
    t = xcalloc(1, sizeof *t);
    t->table = table;
    t->eq = xmalloc(sizeof *t->eq);
    if (mx_equip_parser_new(&t->parser) || mx_calc_new(table, memo, &t->calc)) {
        tls_free(t);
        return NULL;
    }
    pthread_setspecific(tls_key, t);
    return t;
}

static int build(struct calc_tls *t, const struct mx_calc_job *j, bool from_cache, char *when,
                 struct mx_http_doc **out, bool gz)
{
    struct mx_doc_opts o;
    mx_doc_opts_default(&o);
    o.star_catch = j->star_catch;
    o.discount = j->discount;
    o.sunday = j->sunday;
    o.preset = j->preset;
    o.user_ign = j->ign;
    o.calculated_at = when;
    o.from_cache = from_cache;
    struct mx_jsonw w;
    mx_jsonw_init(&w, MX_DOC_MAX_BYTES);
    int rc = mx_doc_build(t->calc, t->eq, &o, &w);
    if (rc == 0 && w.err)
        rc = w.err;
    if (rc == 0) {
        struct mx_blob *b = mx_blob_new(w.buf, w.len);
        rc = mx_http_doc_new("application/json", b, gz, out);
        mx_blob_unref(b);
    }
    mx_jsonw_fini(&w);
    return rc;
}

/* MX_SVC_EQUIPMENT: the equipment itself as a document; its one gzip also
 * makes the L2 frame (and the L3 bytes) when it was just loaded. */
static int equip_doc(struct mx_calc_job *j)
{
    int rc = mx_http_doc_new("application/json", j->equip, true, &j->fresh);
    if (rc == 0 && j->equip_fresh && j->fresh->gzip)
        j->equip_frame = mx__frame_from_gzip(j->equip->data, j->equip->len, j->fresh->gzip->data,
                                             j->fresh->gzip->len);
    if (rc)
        snprintf(j->err, sizeof j->err, "equipment document: %s", mx_strerror(rc));
    return rc;
}

/* Send j's answer straight to its asker (one hop, as an offload result
 * would have been), then tell the calculator it is done. Consumes j. */
static struct mx_msg *deliver(struct mx_calc_job *j)
{
    struct mx_m_calc_done n = {.status = j->status, .calc_ms = j->calc_ms};
    struct mx_m_exp_calc_done d = {.status = j->status};
    struct mx_msg *rep;
    int rc = mx_msg_encode(MX_T_exp_calc_done, &d, &rep);
    if (rc == 0) {
        rep->ptr = j; /* the answer owns the job from here on */
        rep->ptr_free = mx_calc_job_free;
        rep->env.corr = j->asker.corr;
        memcpy(rep->env.trace_id, j->asker.trace_id, sizeof rep->env.trace_id);
        memcpy(rep->env.span_id, j->asker.span_id, sizeof rep->env.span_id);
        rc = mx_sys_send(j->sys, j->asker.from, rep);
        if (rc != 0)
            mx_msg_free(rep); /* the asker is gone or full: counted as a dead letter */
    } else {
        mx_calc_job_free(j);
    }
    n.delivered = rc == 0;
    struct mx_msg *m;
    return mx_msg_encode(MX_T_calc_done, &n, &m) == 0 ? m : NULL;
}

struct mx_msg *mx__calc_run(void *arg)
{
    struct mx_calc_job *j = arg;
    int64_t t0 = mx_now_ms();
    if (j->equip_doc) {
        j->status = equip_doc(j);
        goto out;
    }
    struct calc_tls *t = calc_tls(j->table, j->memo_entries);
    if (!t) {
        j->status = MX_ENOMEM;
        goto out;
    }
    j->status = mx_equip_parse(t->parser, (const char *)j->equip->data, j->equip->len, t->eq,
                               j->err, sizeof j->err);
    if (j->status)
        goto out;
    char when[80];
    uint64_t ms = mx_unix_ms();
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    /* the fresh copy answers every request that waited for this load, on
     * this node: with gzip too, or 1,000 gzip clients get 111 KB each */
    j->status = build(t, j, false, when, &j->fresh, true);
    if (j->status == 0)
        j->status = build(t, j, true, when, &j->cached, true);
    if (j->status == 0 && j->cached->gzip)
        j->doc_frame = mx__frame_from_gzip(j->cached->plain->data, j->cached->plain->len,
                                           j->cached->gzip->data, j->cached->gzip->len);
    if (j->status == 0) {
        j->nsums = mx__doc_summaries((const char *)j->fresh->plain->data, j->fresh->plain->len,
                                     j->sums, 3);
        /* equipment just fetched: one gzip serves L2 (framed) and L3 */
        if (j->equip_fresh && mx__frame_encode(j->equip->data, j->equip->len, 6, &j->equip_frame))
            j->equip_frame = NULL;
    }
    if (j->status && !j->err[0])
        snprintf(j->err, sizeof j->err, "document: %s", mx_strerror(j->status));
out:
    j->calc_ms = mx_now_ms() - t0;
    return deliver(j);
}

struct mx_calc_job *mx_calc_job_new(struct mx_blob *equip)
{
    struct mx_calc_job *j = xcalloc(1, sizeof *j);
    j->equip = mx_blob_ref(equip);
    return j;
}

void mx_calc_job_free(void *arg)
{
    struct mx_calc_job *j = arg;
    if (!j)
        return;
    mx_blob_unref(j->equip);
    if (j->fresh)
        mx_http_doc_unref(j->fresh);
    if (j->cached)
        mx_http_doc_unref(j->cached);
    mx_blob_unref(j->doc_frame);
    mx_blob_unref(j->equip_frame);
    free(j);
}
