// mx_simdjson.hpp - the small helpers both simdjson shims share (the
// equipment parser of actors/expect and the flat readers of mx_jsonr), so
// each is written once. C++ only; header-only.
#ifndef MX_SIMDJSON_HPP
#define MX_SIMDJSON_HPP

#include <simdjson.h>

// mx_sj_lookup - look key up in o; false when it is missing or null.
inline bool mx_sj_lookup(const simdjson::dom::object &o, const char *key,
                         simdjson::dom::element &out)
{
    auto r = o[key];
    if (r.error())
        return false;
    out = r.value_unsafe();
    return !out.is_null();
}

#endif
