/* fetch_harness.h - a system with a fetcher pointed at a real mxstub, and a
 * client actor that makes requests for the test thread (test/fetch). */
#ifndef FETCH_HARNESS_H
#define FETCH_HARNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mx_actor.h"
#include "mx_fetch.h"
#include "stub_harness.h"

/* One call, filled in by the test thread, answered by the client actor. */
struct call {
    enum mx_fetch_kind kind;
    const char *arg;
    const char *key;
    bool inline_body;
    uint32_t timeout_ms; /* the caller's deadline (mx_request); 0 = 10 s */
    struct mx_msg *raw;  /* send this message instead (taken) */
    bool raw_plain;      /* send raw with mx_send, not as a request */
    /* results */
    int status;          /* fetch status, or MX_ETIMEDOUT when the caller's timeout fired */
    bool caller_timeout; /* the sys_timeout arrived, not a reply */
    uint32_t http, attempts, retry_after;
    char err[400];
    struct mx_fetch_body *body; /* taken from the reply (ptr payload) */
    char *inline_copy;          /* a copy of an inline body */
    size_t inline_len;
    bool had_ptr;
    double t0, t1; /* ms */
    uint64_t corr;
    _Atomic int done;
};

struct fx {
    mx_system_t *sys;
    struct stub stub;
    struct mx_addr fetcher, client;
    bool have_fetcher;
};

/* start mxstub with args (NULL-terminated, may be NULL) and a system with a
 * fetcher (opts adjusted: base_url = the stub unless o->base_url is set,
 * api_key "test-key" unless set). */
void fx_start(struct fx *x, const char *const *stub_args, struct mx_fetch_opts *o);
/* stop everything; safe after a failed test */
void fx_stop(struct fx *x);
/* fx_setup, fx_teardown - cmocka per-test fixtures: *state is a zeroed
 * struct fx; teardown stops what the test started, even after a failure. */
int fx_setup(void **state);
int fx_teardown(void **state);
/* send c through the client; wait for the answer (15 s); returns c->status */
int fx_call(struct fx *x, struct call *c);
/* send n calls at once and wait for all */
void fx_call_many(struct fx *x, struct call *c, int n);
void call_free(struct call *c);
struct mx_fetch_stats fx_stats(struct fx *x);
/* the body of a call: from the ptr payload or the inline copy */
const char *call_body(const struct call *c, size_t *len);

#endif
