/* mxctl_json.cpp - the numeric and boolean leaves of a JSON document with
 * their dotted paths, for mxctl's merge of the members' stats: the nodes'
 * stats sections travel as JSON (msgpack ext type 1), and simdjson reads
 * them (no hand-written parser). C linkage; never throws. */
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "mx_err.h"
#include "mxctl_merge.h"

namespace
{

struct walker {
    mxm_leaf_fn fn;
    void *ctx;
    int depth;
};

void walk(walker &w, simdjson::dom::element e, std::string &path)
{
    if (++w.depth > 32) { /* deeper than any stats section: not followed */
        w.depth--;
        return;
    }
    switch (e.type()) {
    case simdjson::dom::element_type::OBJECT:
        for (auto field : simdjson::dom::object(e)) {
            size_t was = path.size();
            if (!path.empty())
                path += '.';
            path.append(field.key.data(), field.key.size());
            walk(w, field.value, path);
            path.resize(was);
        }
        break;
    case simdjson::dom::element_type::INT64:
        w.fn(w.ctx, path.c_str(), MXM_INT, (double)int64_t(e), int64_t(e));
        break;
    case simdjson::dom::element_type::UINT64: {
        uint64_t u = uint64_t(e);
        w.fn(w.ctx, path.c_str(), MXM_INT, (double)u, u > INT64_MAX ? INT64_MAX : (int64_t)u);
        break;
    }
    case simdjson::dom::element_type::DOUBLE:
        w.fn(w.ctx, path.c_str(), MXM_FLOAT, double(e), 0);
        break;
    case simdjson::dom::element_type::BOOL:
        w.fn(w.ctx, path.c_str(), MXM_BOOL, bool(e) ? 1 : 0, bool(e) ? 1 : 0);
        break;
    default: /* arrays (lists of connections, ...) and strings are not merged */
        break;
    }
    w.depth--;
}

} // namespace

extern "C" int mxm_json_leaves(const char *json, size_t len, const char *prefix, mxm_leaf_fn fn,
                               void *ctx)
{
    try {
        thread_local simdjson::dom::parser parser;
        simdjson::dom::element doc;
        if (len > MXM_JSON_MAX || parser.parse(json, len).get(doc) != simdjson::SUCCESS)
            return MX_EDECODE;
        walker w{fn, ctx, 0};
        std::string path(prefix ? prefix : "");
        walk(w, doc, path);
        return 0;
    } catch (...) {
        return MX_EINTERNAL;
    }
}
