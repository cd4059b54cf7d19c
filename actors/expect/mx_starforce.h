/* mx_starforce.h - exact expected cost of starforce enhancement (KMS, March
 * 2025 rules, DESIGN.md section 8) by solving the Markov chain, no simulation.
 *
 * Pure functions of their arguments: thread-safe, non-blocking, callable from
 * any callback. See docs/expectation.md for the recurrence.
 */
#ifndef MX_STARFORCE_H
#define MX_STARFORCE_H

#include <stdbool.h>

#define MX_SF_MAX_STAR 30        /* stars 0..29 can be attempted */
#define MX_SF_SCROLL_MAX_STAR 15 /* scroll ("놀장") items: stars 0..14 */
#define MX_SF_RESTART_STAR 12    /* a destroyed item comes back at 12 */

struct mx_sf_opts {
    bool star_catch; /* success x1.05, keep/destroy shrink in proportion */
    bool discount;   /* 30% off the base attempt cost */
    bool sunday;     /* destroy chance x0.7 below 22 stars */
    bool shield;     /* destruction shield at 15..17: no destroy, +2x base cost */
};

struct mx_sf_result {
    double cost;     /* expected meso (0 for scroll items: they spend scrolls) */
    double destroys; /* expected number of destructions */
    double attempts; /* expected number of attempts (scrolls for scroll items) */
};

/* mx_sf_expect - expected cost, destructions and attempts to go from star
 * `from` to star `to` on an item of the given level. scroll selects the
 * scroll-item table (no destruction, no meso). Returns 0, or MX_EINVAL when
 * level is outside 0..300, from > to, or to exceeds 30 (15 for scroll items).
 * opts may be NULL (all options off). */
int mx_sf_expect(int level, int from, int to, bool scroll, const struct mx_sf_opts *opts,
                 struct mx_sf_result *out);

/* mx_sf_attempt_cost - meso for one attempt at `star` (0..29) on an item of
 * `level`, with discount/shield applied as mx_sf_expect does. */
double mx_sf_attempt_cost(int level, int star, const struct mx_sf_opts *opts);

/* mx_sf_probs - success and destroy probability of one attempt at `star`
 * after options (out params may not be NULL). Returns 0 or MX_EINVAL. */
int mx_sf_probs(int star, bool scroll, const struct mx_sf_opts *opts, double *success,
                double *destroy);

/* mx_sf_max_star - the highest star reachable at an item level (<=94: 5,
 * <=107: 8, <=117: 10, <=127: 15, <=137: 20, else 30); 15 for scroll items
 * if that is lower. */
int mx_sf_max_star(int level, bool scroll);

#endif
