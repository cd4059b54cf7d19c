// mx_jsonr_simdjson.cpp - the flat JSON readers of mx_jsonr.h (request
// bodies, JWT headers and claims, upstream records) on simdjson's DOM parser.
// Its own library, apart from the equipment parser of the expectation engine,
// so code that only reads small JSON objects (JWT) does not link the
// calculators. simdjson is C++ only; no C++ type or exception escapes here.
// Each thread reuses its own parser, so its buffers are allocated once.
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <new>

#include "mx_jsonr.h"
#include "mx_simdjson.hpp"
extern "C" {
#include "mx_err.h"
}

namespace
{

using simdjson::dom::element;
using simdjson::dom::object;

thread_local simdjson::dom::parser t_jr_parser;

void jr_err(char *err, size_t errlen, const char *fmt, const char *a)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a);
}

int jr_copy(std::string_view v, char *buf, size_t cap, size_t *len)
{
    if (!buf || v.size() + 1 > cap)
        return MX_ETOOBIG;
    memcpy(buf, v.data(), v.size());
    buf[v.size()] = '\0';
    if (len)
        *len = v.size();
    return 0;
}

int jr_object(const char *json, size_t len, struct mx_jr_field *f, size_t n, char *err,
              size_t errlen)
{
    element doc;
    if (t_jr_parser.parse(json, len).get(doc)) {
        jr_err(err, errlen, "%s", "$: not valid JSON");
        return MX_EDECODE;
    }
    object o;
    if (doc.get_object().get(o)) {
        jr_err(err, errlen, "%s", "$: expected a JSON object");
        return MX_EDECODE;
    }
    for (size_t k = 0; k < n; k++) {
        struct mx_jr_field *fd = &f[k];
        fd->present = false;
        fd->len = 0;
        element e;
        if (!mx_sj_lookup(o, fd->key, e)) {
            if (fd->required) {
                jr_err(err, errlen, "%s: required field missing", fd->key);
                return MX_EINVAL;
            }
            continue;
        }
        switch (fd->kind) {
        case MX_JR_STR: {
            std::string_view v;
            if (e.get_string().get(v)) {
                jr_err(err, errlen, "%s: expected a string", fd->key);
                return MX_EINVAL;
            }
            for (unsigned char ch : v)
                if (ch < 0x20 || ch == 0x7f) { /* NUL would cut the C string short */
                    jr_err(err, errlen, "%s: control characters (NUL included) are not allowed",
                           fd->key);
                    return MX_EINVAL;
                }
            if (jr_copy(v, fd->buf, fd->cap, &fd->len)) {
                jr_err(err, errlen, "%s: string too long", fd->key);
                return MX_ETOOBIG;
            }
            break;
        }
        case MX_JR_INT: {
            int64_t iv;
            std::string_view sv;
            if (!e.get_int64().get(iv)) {
                fd->i = iv;
            } else if (!e.get_string().get(sv) && !sv.empty() && sv.size() < 20) {
                char tmp[24];
                memcpy(tmp, sv.data(), sv.size());
                tmp[sv.size()] = '\0';
                char *end;
                long long x = strtoll(tmp, &end, 10);
                if (*end) {
                    jr_err(err, errlen, "%s: expected an integer", fd->key);
                    return MX_EINVAL;
                }
                fd->i = x;
            } else {
                jr_err(err, errlen, "%s: expected an integer", fd->key);
                return MX_EINVAL;
            }
            break;
        }
        case MX_JR_BOOL: {
            bool bv;
            if (e.get_bool().get(bv)) {
                jr_err(err, errlen, "%s: expected true or false", fd->key);
                return MX_EINVAL;
            }
            fd->b = bv;
            break;
        }
        }
        fd->present = true;
    }
    return 0;
}

int jr_list(const char *json, size_t len, struct mx_jr_character *out, size_t max, size_t *n,
            size_t *total, char *err, size_t errlen)
{
    element doc;
    object o;
    simdjson::dom::array accounts;
    *n = 0;
    *total = 0;
    if (t_jr_parser.parse(json, len).get(doc) || doc.get_object().get(o)) {
        jr_err(err, errlen, "%s", "$: expected a JSON object");
        return MX_EDECODE;
    }
    if (o["account_list"].get_array().get(accounts)) {
        jr_err(err, errlen, "%s", "account_list: expected an array");
        return MX_EDECODE;
    }
    for (element acc : accounts) {
        simdjson::dom::array chars;
        if (acc["character_list"].get_array().get(chars))
            continue;
        for (element ch : chars) {
            std::string_view ocid, name, world;
            if (ch["ocid"].get_string().get(ocid))
                continue;
            (*total)++;
            if (*n >= max)
                continue;
            struct mx_jr_character *c = &out[*n];
            memset(c, 0, sizeof *c);
            if (jr_copy(ocid, c->ocid, sizeof c->ocid, nullptr))
                continue;
            if (!ch["character_name"].get_string().get(name))
                jr_copy(name, c->name, sizeof c->name, nullptr);
            if (!ch["world_name"].get_string().get(world))
                jr_copy(world, c->world, sizeof c->world, nullptr);
            (*n)++;
        }
    }
    return 0;
}

template <typename F> int jr_guard(const char *json, size_t len, char *err, size_t errlen, F fn)
{
    if (err && errlen)
        err[0] = '\0';
    if (!json && len)
        return MX_EINVAL;
    if (len > MX_JSONR_MAX_INPUT) {
        jr_err(err, errlen, "%s", "$: input too large");
        return MX_ETOOBIG;
    }
    try {
        return fn(json ? json : "", len);
    } catch (const std::bad_alloc &) {
        return MX_ENOMEM;
    } catch (...) {
        jr_err(err, errlen, "%s", "$: internal parser error");
        return MX_EINTERNAL;
    }
}

} // namespace

extern "C" int mx_jsonr_object(const char *json, size_t len, struct mx_jr_field *f, size_t n,
                               char *err, size_t errlen)
{
    return jr_guard(json, len, err, errlen,
                    [&](const char *j, size_t l) { return jr_object(j, l, f, n, err, errlen); });
}

extern "C" int mx_jsonr_character_list(const char *json, size_t len, struct mx_jr_character *out,
                                       size_t max, size_t *n, size_t *total, char *err,
                                       size_t errlen)
{
    size_t dn, dt;
    if (!n)
        n = &dn;
    if (!total)
        total = &dt;
    *n = *total = 0;
    return jr_guard(json, len, err, errlen, [&](const char *j, size_t l) {
        return jr_list(j, l, out, max, n, total, err, errlen);
    });
}
