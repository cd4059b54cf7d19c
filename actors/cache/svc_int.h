/* svc_int.h - shared between the cache actor, the offloaded calculator, the
 * L2/L3 value codec and the MySQL jobs of the expectation service. */
#ifndef MX_SVC_INT_H
#define MX_SVC_INT_H

#include "mx_mysql.h"
#include "mx_spool.h"
#include "mx_cache.h"

/* ---- the L2 value frame (docs/expectation-service.md) ----
 *   0  4  magic "MXC1"
 *   4  4  raw length, little-endian
 *   8  4  CRC-32 (zlib) of the raw bytes, little-endian
 *  12  .. gzip (RFC 1952) of the raw bytes
 * The gzip part alone is what L3 (character_equipment) stores. */
#define MX__FRAME_HDR 12u
#define MX__FRAME_MAX_RAW (32u << 20) /* largest raw value accepted on decode */

/* mx__frame_from_gzip - a frame (new blob) around gz (gzip of raw). */
struct mx_blob *mx__frame_from_gzip(const void *raw, size_t raw_len, const void *gz, size_t gz_len);
/* mx__frame_encode - gzip raw at level and frame it. 0 or MX_EINTERNAL. */
int mx__frame_encode(const void *raw, size_t raw_len, int level, struct mx_blob **out);
/* mx__frame_decode - check and inflate a frame: magic, length, the gzip
 * stream (its own CRC and size too), the header CRC. Returns 0 and *out
 * (raw bytes, one reference), or MX_EDECODE for anything damaged. Pure. */
int mx__frame_decode(const void *data, size_t len, struct mx_blob **out);
/* mx__gunzip - inflate a whole gzip stream of at most max raw bytes.
 * Returns 0 and *out, or MX_EDECODE (damaged, truncated, trailing bytes,
 * too big). Pure. */
int mx__gunzip(const void *data, size_t len, size_t max, struct mx_blob **out);

/* Per-preset costs read back from a built document. */
struct mx__summary {
    int preset_no;
    int64_t total, black, additional, starforce;
};
/* mx__doc_summaries - the presets' costs of an expectation document (JSON
 * text); returns how many were found (<= max). */
int mx__doc_summaries(const char *json, size_t len, struct mx__summary *out, int max);

/* One calculation, owned by the exp_calc_done message that carries it back
 * (ptr payload). */
struct mx__calc_job {
    /* in */
    struct mx_blob *equip; /* one reference */
    const struct mx_cube_table *table;
    uint32_t memo_entries;
    char ign[96];
    int preset;
    bool star_catch, discount, sunday;
    bool equip_fresh; /* just fetched: frame it for L2/L3 too */
    bool equip_doc;   /* MX_SVC_EQUIPMENT: no calculation, fresh = the equipment */
    /* out */
    int status;
    char err[200];
    struct mx_http_doc *fresh;   /* fromCache false, with gzip: for the requests that waited */
    struct mx_http_doc *cached;  /* fromCache true, with gzip: stored in L1 */
    struct mx_blob *doc_frame;   /* L2 frame of cached's plain bytes */
    struct mx_blob *equip_frame; /* equip_fresh: L2 frame of the equipment */
    struct mx__summary sums[3];
    int nsums;
    int64_t calc_ms;
};

struct mx_msg *mx__calc_run(void *arg);
void mx__calc_job_free(void *arg);

/* ---- MySQL jobs (svc_l3.c), run on the mx_mysql pool ---- */

/* Read character_equipment(ocid): the gzip is inflated and checked on the
 * pool thread; a damaged row is deleted (MX_EDECODE). */
struct mx__l3_read {
    char ocid[64];
    char ign[96];          /* ocid lookup by user_ign when ocid is "" */
    uint64_t fid;          /* flight it belongs to */
    struct mx_blob *equip; /* out: raw JSON, one reference */
    uint64_t at_ms;        /* out: when it was stored */
};
int mx__l3_read_job(struct mx_mysql_conn *c, void *arg);
int mx__l3_ocid_job(struct mx_mysql_conn *c, void *arg);
void mx__l3_read_free(void *arg);

#endif
