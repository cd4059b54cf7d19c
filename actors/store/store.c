/* store.c - table helpers for the mx schema, the spool record format of
 * those writes, and the write-or-spool path used while MySQL is down.
 *
 * Record payloads (little-endian): at_ms u64, then fields, each a u32 length
 * and that many bytes (0xffffffff = NULL). They are decoded with bounds
 * checks on every field: a spool file is input, not trusted memory.
 */
#include "mx_store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_log.h"

#define NULL_LEN 0xffffffffu
#define MAX_FIELDS 8

struct slice {
    const char *p; /* NULL = SQL NULL */
    uint32_t len;
};

static struct mx_sql_val sv_text(struct slice s)
{
    return s.p ? MX_SQL_SN(s.p, s.len) : MX_SQL_NUL;
}

static struct slice sl(const char *s)
{
    return (struct slice){s, s ? (uint32_t)strlen(s) : 0};
}

/* ---- tables ---- */

static int put_equipment(struct mx_mysql_conn *c, struct slice ocid, struct slice gz,
                         uint64_t at_ms)
{
    struct mx_sql_val v[] = {sv_text(ocid), MX_SQL_B(gz.p, gz.len), MX_SQL_I(at_ms)};
    if (!ocid.p || !ocid.len || !gz.p || at_ms > (uint64_t)INT64_MAX)
        return MX_EINVAL;
    /* assignments run left to right: updated_at must change last */
    return mx_mysql_exec(
        c,
        "INSERT INTO character_equipment (ocid, equipment, updated_at)"
        " VALUES (?, ?, FROM_UNIXTIME(? / 1000))"
        " ON DUPLICATE KEY UPDATE"
        " equipment = IF(VALUES(updated_at) >= updated_at, VALUES(equipment), equipment),"
        " updated_at = GREATEST(updated_at, VALUES(updated_at))",
        v, 3, NULL);
}

int mx_store_put_equipment(struct mx_mysql_conn *c, const char *ocid, const void *gz, size_t len,
                           uint64_t at_ms)
{
    if (len > UINT32_MAX)
        return MX_ETOOBIG;
    return put_equipment(c, sl(ocid), (struct slice){gz, (uint32_t)len}, at_ms);
}

struct equip_out {
    void *data;
    size_t len;
    uint64_t at_ms;
    bool found;
};

static int equip_row(void *ctx, const struct mx_sql_val *cols, size_t n)
{
    struct equip_out *o = ctx;
    if (n != 2 || cols[0].kind != MX_SQL_BLOB || cols[1].kind != MX_SQL_INT)
        return MX_EINTERNAL;
    o->data = malloc(cols[0].len ? cols[0].len : 1);
    if (!o->data)
        return MX_ENOMEM;
    memcpy(o->data, cols[0].p, cols[0].len);
    o->len = cols[0].len;
    o->at_ms = (uint64_t)cols[1].i;
    o->found = true;
    return 0;
}

int mx_store_get_equipment(struct mx_mysql_conn *c, const char *ocid, void **out, size_t *len,
                           uint64_t *at_ms)
{
    struct equip_out o = {0};
    struct mx_sql_val v[] = {MX_SQL_S(ocid)};
    int rc = mx_mysql_query(c,
                            "SELECT equipment, CAST(UNIX_TIMESTAMP(updated_at) * 1000 AS SIGNED)"
                            " FROM character_equipment WHERE ocid = ?",
                            v, 1, equip_row, &o, NULL);
    if (rc != 0) {
        free(o.data);
        return rc;
    }
    if (!o.found)
        return MX_ENOTFOUND;
    *out = o.data;
    *len = o.len;
    if (at_ms)
        *at_ms = o.at_ms;
    return 0;
}

static int put_character(struct mx_mysql_conn *c, const struct slice f[5], uint64_t at_ms)
{
    if (!f[0].p || !f[0].len || !f[1].p || !f[1].len || at_ms > (uint64_t)INT64_MAX)
        return MX_EINVAL;
    struct mx_sql_val v[] = {sv_text(f[0]), sv_text(f[1]), sv_text(f[2]),
                             sv_text(f[3]), sv_text(f[4]), MX_SQL_I(at_ms)};
    return mx_mysql_exec(
        c,
        "INSERT INTO game_character"
        " (user_ign, ocid, world_name, character_class, character_image, updated_at)"
        " VALUES (?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000))"
        " ON DUPLICATE KEY UPDATE"
        " user_ign = IF(VALUES(updated_at) >= updated_at, VALUES(user_ign), user_ign),"
        " ocid = IF(VALUES(updated_at) >= updated_at, VALUES(ocid), ocid),"
        " world_name = IF(VALUES(updated_at) >= updated_at, VALUES(world_name), world_name),"
        " character_class = IF(VALUES(updated_at) >= updated_at, VALUES(character_class),"
        "  character_class),"
        " character_image = IF(VALUES(updated_at) >= updated_at, VALUES(character_image),"
        "  character_image),"
        " updated_at = GREATEST(updated_at, VALUES(updated_at))",
        v, 6, NULL);
}

int mx_store_put_character(struct mx_mysql_conn *c, const struct mx_store_character *ch,
                           uint64_t at_ms)
{
    struct slice f[5] = {sl(ch->user_ign), sl(ch->ocid), sl(ch->world_name),
                         sl(ch->character_class), sl(ch->character_image)};
    return put_character(c, f, at_ms);
}

static int put_summary(struct mx_mysql_conn *c, struct slice ocid, struct slice ign, int64_t preset,
                       const int64_t cost[4], uint64_t at_ms)
{
    if (!ocid.p || !ocid.len || !ign.p || !ign.len || preset < 1 || preset > 3 ||
        at_ms > (uint64_t)INT64_MAX)
        return MX_EINVAL;
    struct mx_sql_val v[] = {sv_text(ocid),     sv_text(ign),      MX_SQL_I(preset),
                             MX_SQL_I(cost[0]), MX_SQL_I(cost[1]), MX_SQL_I(cost[2]),
                             MX_SQL_I(cost[3]), MX_SQL_I(at_ms)};
    /* as put_equipment: a replayed older write never overwrites a newer one */
    return mx_mysql_exec(
        c,
        "INSERT INTO equipment_expectation_summary (ocid, user_ign, preset_no,"
        " total_expected_cost, black_cube_cost, additional_cube_cost, starforce_cost,"
        " calculated_at) VALUES (?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000))"
        " ON DUPLICATE KEY UPDATE"
        " user_ign = IF(VALUES(calculated_at) >= calculated_at, VALUES(user_ign), user_ign),"
        " total_expected_cost = IF(VALUES(calculated_at) >= calculated_at,"
        "  VALUES(total_expected_cost), total_expected_cost),"
        " black_cube_cost = IF(VALUES(calculated_at) >= calculated_at, VALUES(black_cube_cost),"
        "  black_cube_cost),"
        " additional_cube_cost = IF(VALUES(calculated_at) >= calculated_at,"
        "  VALUES(additional_cube_cost), additional_cube_cost),"
        " starforce_cost = IF(VALUES(calculated_at) >= calculated_at, VALUES(starforce_cost),"
        "  starforce_cost),"
        " calculated_at = GREATEST(calculated_at, VALUES(calculated_at))",
        v, 8, NULL);
}

int mx_store_put_summary(struct mx_mysql_conn *c, const struct mx_store_summary *sm, uint64_t at_ms)
{
    int64_t cost[4] = {sm->total_expected_cost, sm->black_cube_cost, sm->additional_cube_cost,
                       sm->starforce_cost};
    return put_summary(c, sl(sm->ocid), sl(sm->user_ign), sm->preset_no, cost, at_ms);
}

int mx_store_del_equipment(struct mx_mysql_conn *c, const char *ocid)
{
    struct mx_sql_val v[] = {MX_SQL_S(ocid)};
    return mx_mysql_exec(c, "DELETE FROM character_equipment WHERE ocid = ?", v, 1, NULL);
}

struct ocid_out {
    char *buf;
    size_t cap;
    bool found, too_big;
};

static int ocid_row(void *ctx, const struct mx_sql_val *cols, size_t n)
{
    struct ocid_out *o = ctx;
    if (n != 1 || cols[0].kind != MX_SQL_BLOB)
        return 0;
    if (cols[0].len >= o->cap) {
        o->too_big = true;
        return 0;
    }
    memcpy(o->buf, cols[0].p, cols[0].len);
    o->buf[cols[0].len] = '\0';
    o->found = true;
    return 0;
}

int mx_store_get_ocid(struct mx_mysql_conn *c, const char *user_ign, char *out, size_t cap)
{
    struct ocid_out o = {out, cap, false, false};
    struct mx_sql_val v[] = {MX_SQL_S(user_ign)};
    int rc = mx_mysql_query(c, "SELECT ocid FROM game_character WHERE user_ign = ?", v, 1, ocid_row,
                            &o, NULL);
    if (rc != 0)
        return rc;
    return o.too_big ? MX_ETOOBIG : o.found ? 0 : MX_ENOTFOUND;
}

/* ---- record encoding ---- */

static int encode(uint64_t at_ms, const struct slice *f, int n, uint8_t **out, uint32_t *outlen)
{
    uint64_t total = 8;
    for (int i = 0; i < n; i++)
        total += 4 + (f[i].p ? f[i].len : 0);
    if (total > MX_SPOOL_MAX_RECORD)
        return MX_ETOOBIG;
    uint8_t *b = malloc(total), *p = b;
    if (!b)
        return MX_ENOMEM;
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(at_ms >> (8 * i));
    for (int i = 0; i < n; i++) {
        uint32_t l = f[i].p ? f[i].len : NULL_LEN;
        for (int k = 0; k < 4; k++)
            *p++ = (uint8_t)(l >> (8 * k));
        if (f[i].p && f[i].len) {
            memcpy(p, f[i].p, f[i].len);
            p += f[i].len;
        }
    }
    *out = b;
    *outlen = (uint32_t)total;
    return 0;
}

/* exactly n fields or MX_EDECODE */
static int decode(const uint8_t *d, uint32_t len, uint64_t *at_ms, struct slice *f, int n)
{
    uint32_t off = 8;
    if (!d || len < 8)
        return MX_EDECODE;
    *at_ms = 0;
    for (int i = 0; i < 8; i++)
        *at_ms |= (uint64_t)d[i] << (8 * i);
    for (int i = 0; i < n; i++) {
        if (len - off < 4)
            return MX_EDECODE;
        uint32_t l = (uint32_t)d[off] | (uint32_t)d[off + 1] << 8 | (uint32_t)d[off + 2] << 16 |
                     (uint32_t)d[off + 3] << 24;
        off += 4;
        if (l == NULL_LEN) {
            f[i] = (struct slice){NULL, 0};
            continue;
        }
        if (l > len - off)
            return MX_EDECODE;
        f[i] = (struct slice){(const char *)d + off, l};
        off += l;
    }
    return off == len ? 0 : MX_EDECODE;
}

int mx_store_rec_equipment(const char *ocid, const void *gz, size_t len, uint64_t at_ms,
                           uint8_t **out, uint32_t *outlen)
{
    if (!ocid || !*ocid || !gz || len > MX_SPOOL_MAX_RECORD)
        return len > MX_SPOOL_MAX_RECORD ? MX_ETOOBIG : MX_EINVAL;
    struct slice f[2] = {sl(ocid), {gz, (uint32_t)len}};
    return encode(at_ms, f, 2, out, outlen);
}

int mx_store_rec_character(const struct mx_store_character *ch, uint64_t at_ms, uint8_t **out,
                           uint32_t *outlen)
{
    if (!ch || !ch->user_ign || !*ch->user_ign || !ch->ocid || !*ch->ocid)
        return MX_EINVAL;
    struct slice f[5] = {sl(ch->user_ign), sl(ch->ocid), sl(ch->world_name),
                         sl(ch->character_class), sl(ch->character_image)};
    return encode(at_ms, f, 5, out, outlen);
}

/* costs travel as decimal text so the record format needs no new field type */
int mx_store_rec_summary(const struct mx_store_summary *sm, uint64_t at_ms, uint8_t **out,
                         uint32_t *outlen)
{
    if (!sm || !sm->ocid || !*sm->ocid || !sm->user_ign || !*sm->user_ign || sm->preset_no < 1 ||
        sm->preset_no > 3)
        return MX_EINVAL;
    char num[5][24];
    int64_t v[5] = {sm->preset_no, sm->total_expected_cost, sm->black_cube_cost,
                    sm->additional_cube_cost, sm->starforce_cost};
    struct slice f[7] = {sl(sm->ocid), sl(sm->user_ign)};
    for (int i = 0; i < 5; i++) {
        snprintf(num[i], sizeof num[i], "%lld", (long long)v[i]);
        f[2 + i] = sl(num[i]);
    }
    return encode(at_ms, f, 7, out, outlen);
}

static bool slice_int(struct slice s, int64_t *out)
{
    char buf[24];
    if (!s.p || s.len == 0 || s.len >= sizeof buf)
        return false;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end)
        return false;
    *out = v;
    return true;
}

int mx_store_apply(struct mx_mysql_conn *c, uint32_t kind, const void *data, uint32_t len)
{
    struct slice f[MAX_FIELDS];
    uint64_t at;
    switch (kind) {
    case MX_STORE_REC_EQUIPMENT:
        if (decode(data, len, &at, f, 2) != 0 || !f[0].p || !f[0].len || !f[1].p)
            return MX_EDECODE;
        return put_equipment(c, f[0], f[1], at);
    case MX_STORE_REC_CHARACTER:
        if (decode(data, len, &at, f, 5) != 0 || !f[0].p || !f[0].len || !f[1].p || !f[1].len)
            return MX_EDECODE;
        return put_character(c, f, at);
    case MX_STORE_REC_SUMMARY: {
        int64_t n[5];
        if (decode(data, len, &at, f, 7) != 0 || !f[0].p || !f[1].p)
            return MX_EDECODE;
        for (int i = 0; i < 5; i++)
            if (!slice_int(f[2 + i], &n[i]))
                return MX_EDECODE;
        return put_summary(c, f[0], f[1], n[0], n + 1, at);
    }
    default:
        return MX_EDECODE;
    }
}

/* ---- spool integration ---- */

static int replay_apply(void *ctx, uint32_t kind, const void *data, uint32_t len)
{
    struct mx_mysql_conn *c = ctx;
    int rc = mx_store_apply(c, kind, data, len);
    if (rc == MX_EDECODE || rc == MX_EINVAL) {
        /* retrying cannot fix it; keeping it would block the spool forever */
        mx_log(MX_LOG_ERROR, "spool: dropping a malformed record (kind %u, %u bytes)", kind, len);
        return 0;
    }
    return rc;
}

int mx_store_replay(struct mx_mysql_conn *c, mx_spool_t *spool, uint32_t *applied)
{
    return mx_spool_replay(spool, replay_apply, c, applied);
}

int mx_store_write_job(struct mx_mysql_conn *c, void *arg)
{
    struct mx_store_write *w = arg;
    int rc;
    w->spooled = 0;
    if (c && w->spool && !mx_spool_idle(w->spool)) {
        /* earlier writes wait in the spool: land them first, in order */
        if (mx_store_replay(c, w->spool, NULL) == 0 && mx_spool_idle(w->spool))
            goto direct;
        goto spool;
    }
    if (!c)
        goto spool;
direct:
    rc = mx_store_apply(c, w->kind, w->rec, w->len);
    if (rc != MX_EUNAVAIL || !w->spool)
        return rc;
spool:
    if (!w->spool)
        return MX_EUNAVAIL;
    rc = mx_spool_append(w->spool, w->kind, w->rec, w->len);
    if (rc == 0)
        w->spooled = 1;
    return rc;
}

void mx_store_write_free(void *arg)
{
    struct mx_store_write *w = arg;
    if (!w)
        return;
    free(w->rec);
    free(w);
}

int mx_store_replay_job(struct mx_mysql_conn *c, void *arg)
{
    if (!c)
        return MX_EUNAVAIL;
    return mx_store_replay(c, arg, NULL);
}
