/* cache_l3.c - a cache shard's L3 (MySQL). Reads are jobs for the
 * mx_mysql pool: they block, so they never run on a scheduler. Stored
 * equipment is gzip JSON; it is inflated and sanity-checked on the pool
 * thread, and a row that does not inflate or is not a JSON object is
 * deleted and reported as MX_EDECODE so the cache reloads it from upstream
 * instead of serving it. Writes go through mx_store_write_job (spooled
 * while MySQL is down, replayed by shard 0 once a second). The shard side
 * (submit, bound of MAX_L3_INFLIGHT, completions) is below the jobs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_log.h"
#include "mx_store.h"

int mx__l3_read_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx__l3_read *r = arg;
    if (!c)
        return MX_EUNAVAIL;
    void *gz = NULL;
    size_t len = 0;
    int rc = mx_store_get_equipment(c, r->ocid, &gz, &len, &r->at_ms);
    if (rc != 0)
        return rc;
    struct mx_blob *b = NULL;
    rc = mx__gunzip(gz, len, MX__FRAME_MAX_RAW, &b);
    free(gz);
    if (rc == 0 && (b->len < 2 || b->data[0] != '{' || b->data[b->len - 1] != '}')) {
        mx_blob_unref(b);
        rc = MX_EDECODE;
    }
    if (rc != 0) {
        mx_log(MX_LOG_WARN, "L3: stored equipment of %s is damaged (%zu bytes); deleting it",
               r->ocid, len);
        mx_store_del_equipment(c, r->ocid);
        return MX_EDECODE;
    }
    r->equip = b;
    return 0;
}

int mx__l3_ocid_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx__l3_read *r = arg;
    if (!c)
        return MX_EUNAVAIL;
    return mx_store_get_ocid(c, r->ign, r->ocid, sizeof r->ocid);
}

void mx__l3_read_free(void *arg)
{
    struct mx__l3_read *r = arg;
    if (!r)
        return;
    mx_blob_unref(r->equip);
    free(r);
}

/* ---- on the shard ---- */

void mx__l3_write(struct mx__shard *s, uint32_t kind, uint8_t *rec, uint32_t len)
{
    if (!s->o.mysql) {
        free(rec);
        return;
    }
    if (s->l3_inflight >= MAX_L3_INFLIGHT) {
        INC(s, l3_refused);
        MX_WARN("L3: %u writes in flight; refusing one (kind %u)", s->l3_inflight, kind);
        free(rec);
        return;
    }
    struct mx_store_write *w = xcalloc(1, sizeof *w);
    w->spool = s->o.spool;
    w->kind = kind;
    w->rec = rec;
    w->len = len;
    if (mx_mysql_submit_ex(s->o.mysql, mx_store_write_job, w, mx_store_write_free, mx_self(s->self),
                           MX_MYSQL_CALL_DOWN, NULL) != 0) {
        INC(s, l3_refused);
        MX_WARN("L3: the MySQL queue refused a write (kind %u)", kind);
        mx_store_write_free(w);
        return;
    }
    s->l3_inflight++;
    INC(s, l3_writes);
}

bool mx__l3_read(struct mx__shard *s, struct mx__flight *f, mx_mysql_fn fn, enum mx__stage st)
{
    if (!s->o.mysql || s->l3_inflight >= MAX_L3_INFLIGHT)
        return false;
    if (mx__mysql_down(s)) {
        INC(s, l3_skipped_down); /* the cluster knows it is down: do not wait for it */
        return false;
    }
    struct mx__l3_read *r = xcalloc(1, sizeof *r);
    snprintf(r->ocid, sizeof r->ocid, "%s", f->ocid);
    snprintf(r->ign, sizeof r->ign, "%s", f->ign);
    r->fid = f->id;
    if (mx_mysql_submit(s->o.mysql, fn, r, mx__l3_read_free, mx_self(s->self), &f->job) != 0) {
        mx__l3_read_free(r);
        INC(s, l3_errors);
        return false;
    }
    s->l3_inflight++;
    f->stage = st;
    return true;
}

void mx__l3_on_done(mx_actor_t *self, struct mx__shard *s, struct mx_msg *m)
{
    struct mx_m_store_job_done d;
    if (mx_msg_decode(m, &d) != 0)
        return;
    if (s->replaying && d.job == s->replay_job) {
        s->replaying = false;
        if (d.status == 0)
            INC(s, replays_ok);
        return;
    }
    if (s->l3_inflight)
        s->l3_inflight--;
    for (struct mx__flight *f = s->flights; f; f = f->next)
        if (f->job == d.job && (f->stage == ST_EQ_L3 || f->stage == ST_OCID_L3)) {
            f->job = 0;
            mx__load_on_l3_done(self, s, f, (int)d.status, m->ptr);
            return;
        }
    /* a write */
    struct mx_store_write *w = m->ptr;
    if (!w)
        return;
    if (d.status != 0) {
        INC(s, l3_write_errors);
        MX_WARN("L3: a write (kind %u) was lost: %s", w->kind, mx_strerror((int)d.status));
    } else if (w->spooled) {
        INC(s, l3_spooled);
    }
}

void mx__l3_tick(mx_actor_t *self, struct mx__shard *s)
{
    /* the spool: replay once a second while it holds writes (shard 0) */
    if (s->index != 0 || !s->o.mysql || !s->o.spool || ++s->ticks % (1000 / TICK_MS) != 0 ||
        s->replaying || mx_spool_idle(s->o.spool) || mx__mysql_down(s))
        return;
    if (mx_mysql_submit(s->o.mysql, mx_store_replay_job, s->o.spool, NULL, mx_self(self),
                        &s->replay_job) == 0) {
        s->replaying = true;
        INC(s, replays);
    }
}
