// equip_parse_simdjson.cpp - the project's one C++ translation unit: walks the
// item-equipment JSON with simdjson's DOM parser and fills the C structs of
// mx_equip.h. It exists because simdjson is C++ only; its surface is the C API
// in mx_equip.h and no C++ type or exception escapes it.
//
// The parser object is reused between calls so its buffers are allocated once
// (simdjson's "reuse the parser" advice); that is what makes >1 GB/s possible.
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <new>

#include "mx_equip.h"
#include "mx_simdjson.hpp"
extern "C" {
#include "mx_err.h"
}

struct mx_equip_parser {
    simdjson::dom::parser dom;
};

namespace
{

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// Where we are, for error messages: "item_equipment_preset_2[3].starforce".
struct ctx {
    char *err;
    size_t errlen;
    const char *list;
    int index;       // -1: not inside an item
    const char *sub; // nested object name or nullptr
};

int fail(ctx &c, int code, const char *field, const char *what)
{
    if (c.err && c.errlen) {
        if (c.index >= 0 && c.sub)
            snprintf(c.err, c.errlen, "%s[%d].%s.%s: %s", c.list, c.index, c.sub, field, what);
        else if (c.index >= 0)
            snprintf(c.err, c.errlen, "%s[%d].%s: %s", c.list, c.index, field, what);
        else if (c.list)
            snprintf(c.err, c.errlen, "%s: %s", c.list, what);
        else
            snprintf(c.err, c.errlen, "%s: %s", field, what);
    }
    return code;
}

// Looks a key up; returns false when missing or null.
bool lookup(const object &o, const char *key, element &out)
{
    return mx_sj_lookup(o, key, out);
}

int get_str(ctx &c, const object &o, const char *key, char *buf, size_t cap)
{
    element e;
    buf[0] = '\0';
    if (!lookup(o, key, e))
        return 0;
    if (e.type() != element_type::STRING)
        return fail(c, MX_EDECODE, key, "expected string");
    std::string_view sv = e.get_string().value_unsafe();
    if (sv.size() >= cap) {
        char what[64];
        snprintf(what, sizeof what, "string longer than %zu bytes", cap - 1);
        return fail(c, MX_ETOOBIG, key, what);
    }
    memcpy(buf, sv.data(), sv.size());
    buf[sv.size()] = '\0';
    return 0;
}

int get_int(ctx &c, const object &o, const char *key, int *out)
{
    element e;
    *out = 0;
    if (!lookup(o, key, e))
        return 0;
    switch (e.type()) {
    case element_type::INT64: {
        int64_t v = e.get_int64().value_unsafe();
        if (v < -2147483647LL || v > 2147483647LL)
            return fail(c, MX_EDECODE, key, "integer out of range");
        *out = (int)v;
        return 0;
    }
    case element_type::UINT64:
        return fail(c, MX_EDECODE, key, "integer out of range");
    case element_type::DOUBLE: {
        double d = e.get_double().value_unsafe();
        if (!(d >= -2147483647.0 && d <= 2147483647.0) || d != (double)(long long)d)
            return fail(c, MX_EDECODE, key, "expected an integer");
        *out = (int)d;
        return 0;
    }
    case element_type::STRING: {
        std::string_view sv = e.get_string().value_unsafe();
        if (mx_equip_parse_int(sv.data(), sv.size(), out) != 0)
            return fail(c, MX_EDECODE, key, "expected an integer in the string");
        return 0;
    }
    default:
        return fail(c, MX_EDECODE, key, "expected string or number");
    }
}

// Optional nested object: missing/null -> *present=false; other type -> error.
int get_obj(ctx &c, const object &o, const char *key, object &out, bool *present)
{
    element e;
    *present = false;
    if (!lookup(o, key, e))
        return 0;
    if (e.type() != element_type::OBJECT)
        return fail(c, MX_EDECODE, key, "expected object");
    out = e.get_object().value_unsafe();
    *present = true;
    return 0;
}

int parse_flame(ctx &c, const object &o, mx_flame_stats *f)
{
    struct {
        const char *k;
        int *v;
    } map[] = {
        {"str", &f->str},
        {"dex", &f->dex},
        {"int", &f->int_},
        {"luk", &f->luk},
        {"max_hp", &f->max_hp},
        {"max_mp", &f->max_mp},
        {"attack_power", &f->attack},
        {"magic_power", &f->magic},
        {"armor", &f->armor},
        {"speed", &f->speed},
        {"jump", &f->jump},
        {"boss_damage", &f->boss_damage},
        {"damage", &f->damage},
        {"all_stat", &f->all_stat},
        {"equipment_level_decrease", &f->level_decrease},
    };
    c.sub = "item_add_option";
    for (auto &m : map) {
        int rc = get_int(c, o, m.k, m.v);
        if (rc)
            return rc;
    }
    c.sub = nullptr;
    return 0;
}

int parse_item(ctx &c, const object &o, mx_equip_item *it)
{
    int rc;
    char flag[MX_EQUIP_SLOT_MAX];
    static const char *pot_keys[3] = {"potential_option_1", "potential_option_2",
                                      "potential_option_3"};
    static const char *add_keys[3] = {"additional_potential_option_1",
                                      "additional_potential_option_2",
                                      "additional_potential_option_3"};

    if ((rc = get_str(c, o, "item_equipment_slot", it->slot, sizeof it->slot)) ||
        (rc = get_str(c, o, "item_equipment_part", it->part, sizeof it->part)) ||
        (rc = get_str(c, o, "item_name", it->name, sizeof it->name)) ||
        (rc = get_str(c, o, "item_icon", it->icon, sizeof it->icon)) ||
        (rc = get_str(c, o, "potential_option_grade", it->pot_grade_text,
                      sizeof it->pot_grade_text)) ||
        (rc = get_str(c, o, "additional_potential_option_grade", it->add_grade_text,
                      sizeof it->add_grade_text)) ||
        (rc = get_int(c, o, "starforce", &it->starforce)) ||
        (rc = get_str(c, o, "starforce_scroll_flag", flag, sizeof flag)) ||
        (rc = get_int(c, o, "special_ring_level", &it->special_ring_level)))
        return rc;
    for (int i = 0; i < 3; i++) {
        if ((rc = get_str(c, o, pot_keys[i], it->pot[i], sizeof it->pot[i])) ||
            (rc = get_str(c, o, add_keys[i], it->add[i], sizeof it->add[i])))
            return rc;
    }
    it->pot_grade = mx_equip_grade_from_text(it->pot_grade_text);
    it->add_grade = mx_equip_grade_from_text(it->add_grade_text);
    it->scroll = strcmp(flag, "사용") == 0;
    /* any int is kept: an out-of-range star or level is one item's problem
     * (the calculators give that item a reason), not the whole document's */

    object sub;
    bool present;
    if ((rc = get_obj(c, o, "item_base_option", sub, &present)))
        return rc;
    if (present) {
        c.sub = "item_base_option";
        if ((rc = get_int(c, sub, "base_equipment_level", &it->level)) ||
            (rc = get_int(c, sub, "attack_power", &it->base_attack)) ||
            (rc = get_int(c, sub, "magic_power", &it->base_magic)))
            return rc;
        c.sub = nullptr;
    }
    if ((rc = get_obj(c, o, "item_add_option", sub, &present)))
        return rc;
    it->has_flame = present;
    if (present && (rc = parse_flame(c, sub, &it->flame)))
        return rc;
    return 0;
}

int parse_list(ctx &c, const object &root, const char *key, mx_equip_list *l)
{
    element e;
    c.list = key;
    c.index = -1;
    c.sub = nullptr;
    if (!lookup(root, key, e))
        return 0;
    if (e.type() != element_type::ARRAY)
        return fail(c, MX_EDECODE, key, "expected array of items");
    l->present = true;
    simdjson::dom::array arr;
    if (e.get_array().get(arr))
        return fail(c, MX_EDECODE, key, "expected array of items");
    for (element item : arr) {
        if (l->n == MX_EQUIP_MAX_ITEMS) {
            c.index = -1;
            char what[64];
            snprintf(what, sizeof what, "more than %d items", MX_EQUIP_MAX_ITEMS);
            return fail(c, MX_ETOOBIG, key, what);
        }
        c.index = l->n;
        if (item.type() != element_type::OBJECT) {
            if (c.err && c.errlen)
                snprintf(c.err, c.errlen, "%s[%d]: expected object", key, l->n);
            return MX_EDECODE;
        }
        int rc = parse_item(c, item.get_object().value_unsafe(), &l->items[l->n]);
        if (rc)
            return rc;
        l->n++;
    }
    c.index = -1;
    return 0;
}

int parse_all(mx_equip_parser *p, const char *json, size_t len, mx_equip *out, ctx &c)
{
    element root;
    auto err = p->dom.parse(json, len, true).get(root);
    if (err) {
        if (c.err && c.errlen)
            snprintf(c.err, c.errlen, "$: not JSON (%s)", simdjson::error_message(err));
        return MX_EDECODE;
    }
    if (root.type() != element_type::OBJECT) {
        if (c.err && c.errlen)
            snprintf(c.err, c.errlen, "$: expected object");
        return MX_EDECODE;
    }
    object o = root.get_object().value_unsafe();
    int rc;
    c.list = nullptr;
    c.index = -1;
    if ((rc =
             get_str(c, o, "character_class", out->character_class, sizeof out->character_class)) ||
        (rc = get_int(c, o, "preset_no", &out->preset_no)))
        return rc;
    static const char *keys[MX_EQUIP_NLISTS] = {"item_equipment", "item_equipment_preset_1",
                                                "item_equipment_preset_2",
                                                "item_equipment_preset_3"};
    for (int i = 0; i < MX_EQUIP_NLISTS; i++)
        if ((rc = parse_list(c, o, keys[i], &out->lists[i])))
            return rc;
    return 0;
}

} // namespace

extern "C" int mx_equip_parser_new(struct mx_equip_parser **out)
{
    if (!out)
        return MX_EINVAL;
    *out = new (std::nothrow) mx_equip_parser();
    return *out ? 0 : MX_ENOMEM;
}

extern "C" void mx_equip_parser_free(struct mx_equip_parser *p)
{
    delete p;
}

extern "C" int mx_equip_parse(struct mx_equip_parser *p, const char *json, size_t len,
                              struct mx_equip *out, char *err, size_t errlen)
{
    ctx c{err, errlen, nullptr, -1, nullptr};
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (!p || !out || (!json && len)) {
        if (err && errlen)
            snprintf(err, errlen, "mx_equip_parse: NULL argument");
        return MX_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (len > MX_EQUIP_MAX_INPUT) {
        if (err && errlen)
            snprintf(err, errlen, "$: input of %zu bytes exceeds %u", len,
                     (unsigned)MX_EQUIP_MAX_INPUT);
        return MX_ETOOBIG;
    }
    try {
        rc = parse_all(p, json ? json : "", len, out, c);
    } catch (const std::bad_alloc &) {
        rc = MX_ENOMEM;
    } catch (...) {
        if (err && errlen)
            snprintf(err, errlen, "$: internal parser error");
        rc = MX_EINTERNAL;
    }
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}
