/* svc_int.h - shared between the cache actor and the offloaded calculator. */
#ifndef MX_SVC_INT_H
#define MX_SVC_INT_H

#include "mx_svc.h"

/* One calculation, owned by the exp_calc_done message that carries it back
 * (ptr payload). */
struct mx__calc_job {
    /* in */
    struct mx_blob *equip;      /* one reference */
    const struct mx_cube_table *table;
    uint32_t memo_entries;
    char ign[96];
    int preset;
    bool star_catch, discount, sunday;
    /* out */
    int status;
    char err[200];
    struct mx_http_doc *fresh;   /* fromCache false: for the requests that waited */
    struct mx_http_doc *cached;  /* fromCache true, with gzip: stored in L1 */
    int64_t calc_ms;
};

struct mx_msg *mx__calc_run(void *arg);
void mx__calc_job_free(void *arg);

#endif
