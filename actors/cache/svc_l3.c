/* svc_l3.c - the cache's MySQL (L3) reads, as jobs for the mx_mysql pool:
 * they block, so they never run on a scheduler. Stored equipment is gzip
 * JSON; it is inflated and sanity-checked here, on the pool thread, and a
 * row that does not inflate or is not a JSON object is deleted and reported
 * as MX_EDECODE so the cache reloads it from upstream instead of serving
 * it. Writes go through mx_store_write_job (spooled while MySQL is down). */
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_log.h"
#include "mx_store.h"
#include "svc_int.h"

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
