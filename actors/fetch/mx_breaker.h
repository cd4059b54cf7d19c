/* mx_breaker.h - a circuit breaker as pure code (no clock, no I/O).
 *
 * The fetcher owns one and calls it on its loop thread; the caller passes
 * the time in, so the state machine is tested without sleeping
 * (test/fetch/breaker_test.c). States:
 *
 *   closed    every attempt passes; its outcome goes into a ring of the
 *             last `window` outcomes. When the ring is full (window
 *             outcomes seen since it last closed) and failures * 100 >=
 *             threshold_pct * window, the breaker opens. A partly filled
 *             ring never opens it: a few failures after start or after a
 *             recovery are not a trend.
 *   open      attempts are refused (MX_EUNAVAIL) until open_ms passed.
 *   half-open the first acquire after the open period moves here; at most
 *             `probes` attempts are in flight at once, the rest refused.
 *             A probe success closes the breaker (empty ring); a probe
 *             failure opens it again for open_ms.
 *
 * Outcomes of attempts that were not probes are ignored unless the breaker
 * is closed (they started before it opened). Not thread-safe: one owner.
 */
#ifndef MX_BREAKER_H
#define MX_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define MX_BREAKER_WINDOW_MAX 64u

enum mx_breaker_state { MX_BREAKER_CLOSED = 0, MX_BREAKER_OPEN = 1, MX_BREAKER_HALF_OPEN = 2 };

struct mx_breaker {
    /* configuration */
    uint32_t window;        /* outcomes remembered, 1..MX_BREAKER_WINDOW_MAX */
    uint32_t threshold_pct; /* failure percentage that opens, 1..100 */
    uint32_t open_ms;       /* how long it stays open */
    uint32_t probes;        /* half-open attempts in flight at most, >= 1 */
    /* state */
    enum mx_breaker_state state;
    uint64_t ring;        /* bit i set = outcome i was a failure */
    uint32_t pos;         /* next ring slot */
    uint32_t count;       /* outcomes in the ring, <= window */
    uint32_t fails;       /* set bits among the counted slots */
    uint32_t probes_out;  /* half-open probes in flight */
    int64_t opened_at_ms; /* when it last opened (caller's clock) */
    uint64_t opens;       /* times it opened */
};

/* mx_breaker_init - a closed breaker with this configuration; out-of-range
 * values are clamped (window to 1..64, threshold to 1..100, probes >= 1).
 * Does not allocate. */
void mx_breaker_init(struct mx_breaker *b, uint32_t window, uint32_t threshold_pct,
                     uint32_t open_ms, uint32_t probes);

/* mx_breaker_acquire - may an attempt start at now_ms? Returns 0 and sets
 * *probe (true when the attempt is a half-open probe, which the caller must
 * later pass to mx_breaker_record or mx_breaker_cancel), or MX_EUNAVAIL. */
int mx_breaker_acquire(struct mx_breaker *b, int64_t now_ms, bool *probe);

/* mx_breaker_record - the outcome of an attempt acquired with *probe. */
void mx_breaker_record(struct mx_breaker *b, int64_t now_ms, bool probe, bool success);

/* mx_breaker_cancel - an acquired probe ended without an outcome (the
 * request was abandoned); frees its slot. No-op for non-probes. */
void mx_breaker_cancel(struct mx_breaker *b, bool probe);

/* mx_breaker_state_at - the state an acquire at now_ms would see (an open
 * breaker whose period ended reads as half-open). Does not change b. */
enum mx_breaker_state mx_breaker_state_at(const struct mx_breaker *b, int64_t now_ms);

/* mx_breaker_retry_after_ms - while open, ms until the open period ends;
 * 0 otherwise. */
int64_t mx_breaker_retry_after_ms(const struct mx_breaker *b, int64_t now_ms);

#endif
