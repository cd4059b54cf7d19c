/* breaker.c - the fetcher's circuit breaker state machine (mx_breaker.h).
 *
 * Kept free of clocks and I/O so that every transition can be unit-tested
 * with made-up times; the fetcher feeds it the outcome of each upstream
 * attempt (docs/fetcher.md says which outcomes are failures).
 */
#include "mx_breaker.h"

#include "mx_err.h"

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void mx_breaker_init(struct mx_breaker *b, uint32_t window, uint32_t threshold_pct,
                     uint32_t open_ms, uint32_t probes)
{
    *b = (struct mx_breaker){0};
    b->window = clamp(window, 1, MX_BREAKER_WINDOW_MAX);
    b->threshold_pct = clamp(threshold_pct, 1, 100);
    b->open_ms = open_ms;
    b->probes = probes ? probes : 1;
    b->state = MX_BREAKER_CLOSED;
}

static void reset_ring(struct mx_breaker *b)
{
    b->ring = 0;
    b->pos = b->count = b->fails = 0;
}

static void open_at(struct mx_breaker *b, int64_t now_ms)
{
    b->state = MX_BREAKER_OPEN;
    b->opened_at_ms = now_ms;
    b->opens++;
    b->probes_out = 0;
    reset_ring(b);
}

enum mx_breaker_state mx_breaker_state_at(const struct mx_breaker *b, int64_t now_ms)
{
    if (b->state == MX_BREAKER_OPEN && now_ms - b->opened_at_ms >= (int64_t)b->open_ms)
        return MX_BREAKER_HALF_OPEN;
    return b->state;
}

int64_t mx_breaker_retry_after_ms(const struct mx_breaker *b, int64_t now_ms)
{
    if (b->state != MX_BREAKER_OPEN)
        return 0;
    int64_t left = b->opened_at_ms + (int64_t)b->open_ms - now_ms;
    return left > 0 ? left : 0;
}

int mx_breaker_acquire(struct mx_breaker *b, int64_t now_ms, bool *probe)
{
    *probe = false;
    if (b->state == MX_BREAKER_OPEN) {
        if (now_ms - b->opened_at_ms < (int64_t)b->open_ms)
            return MX_EUNAVAIL;
        b->state = MX_BREAKER_HALF_OPEN;
        b->probes_out = 0;
    }
    if (b->state == MX_BREAKER_HALF_OPEN) {
        if (b->probes_out >= b->probes)
            return MX_EUNAVAIL;
        b->probes_out++;
        *probe = true;
    }
    return 0;
}

void mx_breaker_cancel(struct mx_breaker *b, bool probe)
{
    if (probe && b->state == MX_BREAKER_HALF_OPEN && b->probes_out > 0)
        b->probes_out--;
}

void mx_breaker_record(struct mx_breaker *b, int64_t now_ms, bool probe, bool success)
{
    if (probe) {
        if (b->state != MX_BREAKER_HALF_OPEN)
            return; /* another probe already decided */
        if (success) {
            b->state = MX_BREAKER_CLOSED;
            b->probes_out = 0;
            reset_ring(b);
        } else {
            open_at(b, now_ms);
        }
        return;
    }
    if (b->state != MX_BREAKER_CLOSED)
        return; /* started before the breaker opened: not evidence any more */
    uint64_t bit = 1ull << b->pos;
    if (b->count == b->window) {
        /* the slot being overwritten leaves the window */
        if (b->ring & bit)
            b->fails--;
    } else {
        b->count++;
    }
    if (success) {
        b->ring &= ~bit;
    } else {
        b->ring |= bit;
        b->fails++;
    }
    b->pos = (b->pos + 1) % b->window;
    if (b->count == b->window && (uint64_t)b->fails * 100 >= (uint64_t)b->threshold_pct * b->window)
        open_at(b, now_ms);
}
