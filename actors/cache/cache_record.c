/* cache_record.c - the character record (mx_cache.h): its references, and
 * its L2 value. The L2 value is JSON of the shape the /api/v1/characters
 * route once served verbatim, "likeCount": 0 included, so that during a
 * rolling upgrade nodes of either version read what the other wrote. The
 * answer clients see is rendered by the API layer (actors/api). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "mx_alloc.h"
#include "mx_err.h"
#include "mx_jsonr.h"
#include "mx_jsonw.h"

struct mx_character_rec *mx_character_rec_new(void)
{
    struct mx_character_rec *c = xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    return c;
}

struct mx_character_rec *mx_character_rec_ref(struct mx_character_rec *c)
{
    /* relaxed: a new reference is made from one already held */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void mx_character_rec_unref(struct mx_character_rec *c)
{
    /* acq_rel: the last holder sees every other holder's use before free */
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

int mx__character_to_json(const struct mx_character_rec *c, struct mx_jsonw *w)
{
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "userIgn", c->user_ign);
    mx_jsonw_kstr(w, "ocid", c->ocid);
    mx_jsonw_kint(w, "likeCount", 0); /* the old nodes' answer; never read back */
    mx_jsonw_kstr(w, "worldName", c->world_name);
    mx_jsonw_kstr(w, "characterClass", c->character_class);
    mx_jsonw_kstr(w, "characterImage", c->character_image);
    mx_jsonw_obj_close(w);
    return w->err ? w->err : 0;
}

int mx__character_from_json(const char *json, size_t len, struct mx_character_rec *c)
{
    struct mx_jr_field f[] = {
        {.key = "userIgn", .kind = MX_JR_STR, .buf = c->user_ign, .cap = sizeof c->user_ign},
        {.key = "ocid", .kind = MX_JR_STR, .required = true, .buf = c->ocid, .cap = sizeof c->ocid},
        {.key = "worldName", .kind = MX_JR_STR, .buf = c->world_name, .cap = sizeof c->world_name},
        {.key = "characterClass",
         .kind = MX_JR_STR,
         .buf = c->character_class,
         .cap = sizeof c->character_class},
        {.key = "characterImage",
         .kind = MX_JR_STR,
         .buf = c->character_image,
         .cap = sizeof c->character_image},
    };
    if (mx_jsonr_object(json, len, f, sizeof f / sizeof *f, NULL, 0) != 0 || !c->ocid[0])
        return MX_EDECODE;
    return 0;
}
