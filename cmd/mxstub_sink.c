/* mxstub_sink.c - mxstub's webhook sink (mxstub_int.h): the receiving end
 * of the outbox relay and of alert webhooks in tests and benchmarks.
 *
 * Every POST under /sink/ is counted; its Idempotency-Key goes into a
 * bounded open-addressing set with a delivery count per key, so a test
 * can check that every event arrived and that repeats were only repeats
 * of the same key (one effect per key). It fails on demand (the next N
 * requests, or all of them, with a chosen status) and can answer late.
 * Runs on mxstub's one loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_jsonw.h"
#include "mxstub_int.h"

struct key_ent {
    char *key; /* NULL = empty slot */
    uint32_t count;
};

static struct {
    struct key_ent *tab; /* MX__STUB_SINK_KEYS * 2 slots, allocated on first use */
    size_t nkeys;
    /* config */
    uint64_t fail_next;
    bool fail_all;
    int status;
    uint64_t latency_ms;
    /* counters */
    uint64_t received, accepted, unique, duplicates, failed, missing_key, refused;
    /* the fake chat-completions endpoint */
    bool ai_fail;
    uint64_t ai_calls, ai_failed;
} sk = {.status = 500};

#define SLOTS (MX__STUB_SINK_KEYS * 2)

static size_t slot_of(const char *k, size_t n)
{
    return (size_t)mx__stub_hash64(k, n, 0x51ed) & (SLOTS - 1);
}

static struct key_ent *find(const char *k, size_t n, bool insert)
{
    if (!sk.tab) {
        if (!insert)
            return NULL;
        sk.tab = calloc(SLOTS, sizeof *sk.tab);
        if (!sk.tab)
            abort();
    }
    size_t i = slot_of(k, n);
    while (sk.tab[i].key) {
        if (strlen(sk.tab[i].key) == n && memcmp(sk.tab[i].key, k, n) == 0)
            return &sk.tab[i];
        i = (i + 1) & (SLOTS - 1);
    }
    if (!insert || sk.nkeys >= MX__STUB_SINK_KEYS)
        return NULL;
    sk.tab[i].key = malloc(n + 1);
    if (!sk.tab[i].key)
        abort();
    memcpy(sk.tab[i].key, k, n);
    sk.tab[i].key[n] = '\0';
    sk.nkeys++;
    return &sk.tab[i];
}

static void answer_json(struct mx__stub_answer *a, int status, struct mx_jsonw *w)
{
    a->status = status;
    a->body = mx_jsonw_take(w, &a->len);
    mx_jsonw_fini(w);
    if (!a->body) {
        a->body = strdup("{\"error\":\"sink answer too large\"}");
        if (!a->body)
            abort();
        a->len = strlen(a->body);
        a->status = 500;
    }
}

static void answer_msg(struct mx__stub_answer *a, int status, const char *k, const char *v)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 1024);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, k, v);
    mx_jsonw_obj_close(&w);
    answer_json(a, status, &w);
}

void mx__stub_sink_post(const char *key, size_t key_len, struct mx__stub_answer *a)
{
    sk.received++;
    a->delay_ms = sk.latency_ms;
    if (!key || key_len == 0 || key_len > MX__STUB_SINK_KEY_MAX) {
        sk.missing_key++;
        answer_msg(a, 400, "error", "Idempotency-Key header required (1-191 bytes)");
        return;
    }
    if (sk.fail_all || sk.fail_next) {
        if (sk.fail_next)
            sk.fail_next--;
        sk.failed++;
        answer_msg(a, sk.status, "error", "failure injected");
        return;
    }
    struct key_ent *e = find(key, key_len, true);
    if (!e) {
        sk.refused++;
        answer_msg(a, 503, "error", "sink key set full");
        return;
    }
    sk.accepted++;
    if (e->count++ == 0)
        sk.unique++;
    else
        sk.duplicates++;
    answer_msg(a, 200, "result", "accepted");
}

void mx__stub_chat_post(struct mx__stub_answer *a)
{
    sk.ai_calls++;
    a->delay_ms = 0;
    if (sk.ai_fail) {
        sk.ai_failed++;
        answer_msg(a, 500, "error", "failure injected");
        return;
    }
    char content[64];
    snprintf(content, sizeof content, "stub analysis %llu", (unsigned long long)sk.ai_calls);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "id", "chatcmpl-stub");
    mx_jsonw_kstr(&w, "object", "chat.completion");
    mx_jsonw_key(&w, "choices");
    mx_jsonw_arr_open(&w);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kint(&w, "index", 0);
    mx_jsonw_key(&w, "message");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "role", "assistant");
    mx_jsonw_kstr(&w, "content", content);
    mx_jsonw_obj_close(&w);
    mx_jsonw_kstr(&w, "finish_reason", "stop");
    mx_jsonw_obj_close(&w);
    mx_jsonw_arr_close(&w);
    mx_jsonw_obj_close(&w);
    answer_json(a, 200, &w);
}

/* name=<unsigned> in the query: 0 found, 1 absent, -1 malformed. */
static int q_u64(const char *q, const char *name, uint64_t max, uint64_t *out)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            char buf[24];
            size_t vl = len - n - 1;
            if (vl == 0 || vl >= sizeof buf)
                return -1;
            memcpy(buf, p + n + 1, vl);
            buf[vl] = '\0';
            char *end;
            unsigned long long v = strtoull(buf, &end, 10);
            if (*end || buf[0] == '-' || v > max)
                return -1;
            *out = v;
            return 0;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 1;
}

/* key=<raw> (no escapes: test keys are plain) into out. */
static bool q_key(const char *q, char *out, size_t cap)
{
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 4 && strncmp(p, "key=", 4) == 0 && len - 4 < cap) {
            memcpy(out, p + 4, len - 4);
            out[len - 4] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

static void stats(struct mx__stub_answer *a)
{
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_kuint(&w, "received", sk.received);
    mx_jsonw_kuint(&w, "accepted", sk.accepted);
    mx_jsonw_kuint(&w, "unique", sk.unique);
    mx_jsonw_kuint(&w, "duplicates", sk.duplicates);
    mx_jsonw_kuint(&w, "failed", sk.failed);
    mx_jsonw_kuint(&w, "missing_key", sk.missing_key);
    mx_jsonw_kuint(&w, "refused", sk.refused);
    mx_jsonw_kuint(&w, "ai_calls", sk.ai_calls);
    mx_jsonw_kuint(&w, "ai_failed", sk.ai_failed);
    mx_jsonw_key(&w, "config");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kuint(&w, "fail_next", sk.fail_next);
    mx_jsonw_kbool(&w, "fail_all", sk.fail_all);
    mx_jsonw_kint(&w, "status", sk.status);
    mx_jsonw_kuint(&w, "latency_ms", sk.latency_ms);
    mx_jsonw_kbool(&w, "ai_fail", sk.ai_fail);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    answer_json(a, 200, &w);
}

bool mx__stub_sink_control(const char *path, const char *q, bool post, struct mx__stub_answer *a)
{
    memset(a, 0, sizeof *a);
    if (strcmp(path, "/__stub/sink") == 0 && post) {
        uint64_t fail = 0, all = 0, status = 0, lat = 0, aif = 0;
        int rf = q_u64(q, "fail", 1000000000, &fail), ra = q_u64(q, "fail_all", 1, &all),
            rs = q_u64(q, "status", 599, &status), rl = q_u64(q, "latency_ms", 600000, &lat),
            rai = q_u64(q, "ai_fail", 1, &aif);
        if (rf < 0 || ra < 0 || rs < 0 || rl < 0 || rai < 0 || (rs == 0 && status < 400)) {
            answer_msg(a, 400, "error",
                       "fail=N, fail_all=0|1, status=400..599, latency_ms=0..600000, ai_fail=0|1");
            return true;
        }
        if (rai == 0)
            sk.ai_fail = aif;
        if (rf == 0)
            sk.fail_next = fail;
        if (ra == 0)
            sk.fail_all = all;
        if (rs == 0)
            sk.status = (int)status;
        if (rl == 0)
            sk.latency_ms = lat;
        stats(a);
    } else if (strcmp(path, "/__stub/sink/stats") == 0 && !post) {
        stats(a);
    } else if (strcmp(path, "/__stub/sink/reset") == 0 && post) {
        mx__stub_sink_free();
        sk.received = sk.accepted = sk.unique = sk.duplicates = sk.failed = sk.missing_key =
            sk.refused = sk.ai_calls = sk.ai_failed = 0;
        sk.ai_fail = false;
        sk.fail_next = 0;
        sk.fail_all = false;
        sk.status = 500;
        sk.latency_ms = 0;
        answer_msg(a, 200, "reset", "sink");
    } else if (strcmp(path, "/__stub/sink/has") == 0 && !post) {
        char key[MX__STUB_SINK_KEY_MAX + 1];
        if (!q_key(q, key, sizeof key)) {
            answer_msg(a, 400, "error", "key=K required");
            return true;
        }
        struct key_ent *e = find(key, strlen(key), false);
        struct mx_jsonw w;
        mx_jsonw_init(&w, 1024);
        mx_jsonw_obj_open(&w);
        mx_jsonw_kuint(&w, "count", e ? e->count : 0);
        mx_jsonw_obj_close(&w);
        answer_json(a, 200, &w);
    } else if (strcmp(path, "/__stub/sink/keys") == 0 && !post) {
        struct mx_jsonw w;
        mx_jsonw_init(&w, 64u << 20);
        mx_jsonw_obj_open(&w);
        mx_jsonw_key(&w, "keys");
        mx_jsonw_obj_open(&w);
        for (size_t i = 0; sk.tab && i < SLOTS; i++)
            if (sk.tab[i].key)
                mx_jsonw_kuint(&w, sk.tab[i].key, sk.tab[i].count);
        mx_jsonw_obj_close(&w);
        mx_jsonw_obj_close(&w);
        answer_json(a, 200, &w);
    } else if (strncmp(path, "/__stub/sink", 12) == 0) {
        answer_msg(a, 404, "error", "no such sink control endpoint (or wrong method)");
    } else {
        return false;
    }
    return true;
}

void mx__stub_sink_free(void)
{
    if (!sk.tab)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        free(sk.tab[i].key);
    free(sk.tab);
    sk.tab = NULL;
    sk.nkeys = 0;
}
