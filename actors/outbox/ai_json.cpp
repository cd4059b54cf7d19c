/* ai_json.cpp - the one JSON read the alerter needs from an
 * OpenAI-compatible chat-completions answer: choices[0].message.content,
 * with simdjson (no hand-written parser). C linkage; never throws. */
#include <simdjson.h>

#include <cstring>

#include "mx_err.h"

extern "C" int mx__outbox_ai_content(const char *json, size_t len, char *out, size_t cap)
{
    try {
        thread_local simdjson::dom::parser parser;
        simdjson::dom::element doc;
        if (len > (1u << 20) || parser.parse(json, len).get(doc) != simdjson::SUCCESS)
            return MX_EDECODE;
        std::string_view s;
        if (doc.at_pointer("/choices/0/message/content").get(s) != simdjson::SUCCESS)
            return MX_EDECODE;
        size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
        std::memcpy(out, s.data(), n);
        out[n] = '\0';
        return 0;
    } catch (...) {
        return MX_EINTERNAL;
    }
}
