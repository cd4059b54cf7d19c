// app_compat_json.cpp - the seed's older expectation shape
// (TotalExpectationResponse of /api/v2 and /api/v3) rendered from the V4
// document the engine produced, so the legacy routes share the engine, the
// cache and its numbers instead of keeping a second calculator.
//
// simdjson is C++ only; this file's surface is the C function declared in
// app_int.h and nothing C++ (types, exceptions) escapes it. Any thread: each
// thread reuses its own parser.
#include <simdjson.h>

#include <cmath>
#include <cstring>
#include <new>

extern "C" {
#include "mx_err.h"
#include "mx_jsonw.h"
}

namespace
{

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

thread_local simdjson::dom::parser *parser;

bool str_of(object o, const char *k, std::string_view *out)
{
    return o[k].get_string().get(*out) == simdjson::SUCCESS;
}

bool int_of(object o, const char *k, int64_t *out)
{
    element e;
    if (o[k].get(e) != simdjson::SUCCESS)
        return false;
    if (e.is_int64())
        return e.get_int64().get(*out) == simdjson::SUCCESS;
    double d;
    if (e.get_double().get(d) != simdjson::SUCCESS || !std::isfinite(d))
        return false;
    *out = (int64_t)std::llround(d);
    return true;
}

void kstrv(mx_jsonw *w, const char *k, std::string_view v)
{
    mx_jsonw_key(w, k);
    mx_jsonw_strn(w, v.data(), v.size());
}

// One item: {part, itemName, potential, expectedCost, expectedCostText,
// expectedCount}; empty strings are left out (the seed's NON_EMPTY).
void item(mx_jsonw *w, object it)
{
    std::string_view s;
    int64_t v;
    mx_jsonw_obj_open(w);
    if (str_of(it, "itemPart", &s) && !s.empty())
        kstrv(w, "part", s);
    if (str_of(it, "itemName", &s) && !s.empty())
        kstrv(w, "itemName", s);
    object cube;
    array opts;
    bool has_cube = it["blackCubeExpectation"].get_object().get(cube) == simdjson::SUCCESS;
    if (has_cube && cube["options"].get_array().get(opts) == simdjson::SUCCESS) {
        std::string pot;
        for (element o : opts) {
            std::string_view line;
            if (o.get_string().get(line) != simdjson::SUCCESS || line.empty())
                continue;
            if (!pot.empty())
                pot += " | ";
            pot.append(line);
        }
        if (!pot.empty())
            kstrv(w, "potential", pot);
    }
    mx_jsonw_kint(w, "expectedCost", int_of(it, "expectedCost", &v) ? v : 0);
    if (str_of(it, "expectedCostText", &s) && !s.empty())
        kstrv(w, "expectedCostText", s);
    int64_t trials = 0;
    if (has_cube && !int_of(cube, "expectedTrials", &trials))
        trials = 0;
    mx_jsonw_kint(w, "expectedCount", trials);
    mx_jsonw_obj_close(w);
}

} // namespace

extern "C" int mx__app_total_expectation(const char *doc, size_t len, struct mx_jsonw *w)
{
    try {
        if (!parser)
            parser = new simdjson::dom::parser();
        object top;
        if (parser->parse(doc, len).get_object().get(top) != simdjson::SUCCESS)
            return MX_EDECODE;
        int64_t best = 0, total = 0;
        std::string_view s;
        int_of(top, "maxPresetNo", &best);
        mx_jsonw_obj_open(w);
        if (str_of(top, "userIgn", &s) && !s.empty())
            kstrv(w, "userIgn", s);
        mx_jsonw_kint(w, "totalCost", int_of(top, "totalExpectedCost", &total) ? total : 0);
        if (str_of(top, "totalCostText", &s) && !s.empty())
            kstrv(w, "totalCostText", s);
        array presets;
        size_t nitems = 0;
        if (top["presets"].get_array().get(presets) == simdjson::SUCCESS) {
            for (element pe : presets) {
                object p;
                int64_t no = 0;
                array items;
                if (pe.get_object().get(p) != simdjson::SUCCESS || !int_of(p, "presetNo", &no) ||
                    no != best || p["items"].get_array().get(items) != simdjson::SUCCESS)
                    continue;
                for (element ie : items) {
                    object it;
                    if (ie.get_object().get(it) != simdjson::SUCCESS)
                        continue;
                    if (!nitems++) {
                        mx_jsonw_key(w, "items");
                        mx_jsonw_arr_open(w);
                    }
                    item(w, it);
                }
                break;
            }
        }
        if (nitems)
            mx_jsonw_arr_close(w);
        mx_jsonw_obj_close(w);
        return w->err ? MX_ETOOBIG : 0;
    } catch (const std::bad_alloc &) {
        return MX_ENOMEM;
    } catch (...) {
        return MX_EINTERNAL;
    }
}
