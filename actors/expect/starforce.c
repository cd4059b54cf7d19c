/* starforce.c - exact starforce expectation (see mx_starforce.h).
 *
 * With E_s the expected cost to go from star s to s+1, one attempt at s costs
 * c_s and ends in success (p_s), destruction (d_s: back to 12, then the climb
 * 12 -> s must be paid again) or keep (1 - p_s - d_s: try again). So
 *     E_s = c_s + d_s (R_s + E_s) + (1 - p_s - d_s) E_s,   R_s = sum_{k=12}^{s-1} E_k
 *     E_s = (c_s + d_s R_s) / p_s
 * which is solved in increasing s; the total from a to b is sum_{s=a}^{b-1} E_s
 * (valid from any a, since a fall always lands on 12 and re-climbs through
 * E_12..E_{s-1}). Destructions and attempts follow the same recurrence with
 * c_s replaced by d_s and by 1.
 */
#include "mx_starforce.h"

#include <math.h>
#include <stddef.h>

#include "mx_err.h"

static const double success_tab[MX_SF_MAX_STAR] = {
    .95, .90, .85, .85, .80, .75, .70, .65, .60, .55, /* 0-9 */
    .50, .45, .40, .35, .30, .30, .30, .15, .15, .15, /* 10-19 */
    .30, .15, .15, .10, .10, .10, .07, .05, .03, .01, /* 20-29 */
};

/* destroy chance at stars 15..29 */
static const double destroy_tab[MX_SF_MAX_STAR] = {
    [15] = .021, [16] = .021,  [17] = .068, [18] = .068, [19] = .085,
    [20] = .105, [21] = .1275, [22] = .17,  [23] = .18,  [24] = .18,
    [25] = .18,  [26] = .186,  [27] = .19,  [28] = .194, [29] = .198,
};

static const double scroll_success_tab[MX_SF_SCROLL_MAX_STAR] = {
    .60, .55, .50, .40, .30, .20, .19, .18, .17, .16, .16, .14, .12, .10, .10,
};

/* divisor d of the meso formula for stars 10..21; 200 from 22 on */
static const double meso_div[12] = {571, 314, 214, 157, 107, 200, 200, 150, 70, 45, 200, 125};

int mx_sf_max_star(int level, bool scroll)
{
    int m;
    if (level <= 94)
        m = 5;
    else if (level <= 107)
        m = 8;
    else if (level <= 117)
        m = 10;
    else if (level <= 127)
        m = 15;
    else if (level <= 137)
        m = 20;
    else
        m = 30;
    if (scroll && m > MX_SF_SCROLL_MAX_STAR)
        m = MX_SF_SCROLL_MAX_STAR;
    return m;
}

/* The base meso cost: the game uses the level rounded down to a multiple of
 * 10 and shows the price rounded to 100 meso. */
static double base_cost(int level, int star)
{
    double l = (double)(level / 10 * 10);
    double l3 = l * l * l;
    double raw;
    if (star <= 9)
        raw = 1000.0 + l3 * (star + 1) / 36.0;
    else
        raw = 1000.0 + l3 * pow(star + 1, 2.7) / (star < 22 ? meso_div[star - 10] : 200.0);
    return round(raw / 100.0) * 100.0;
}

double mx_sf_attempt_cost(int level, int star, const struct mx_sf_opts *o)
{
    double base = base_cost(level, star);
    double c = base;
    if (o && o->discount)
        c = round(base * 0.7 / 100.0) * 100.0;
    /* The shield surcharge is +200% of the undiscounted base (x3 in total
     * without discount); the discount never applies to the surcharge. */
    if (o && o->shield && star >= 15 && star <= 17)
        c += 2.0 * base;
    return c;
}

int mx_sf_probs(int star, bool scroll, const struct mx_sf_opts *o, double *success, double *destroy)
{
    double p, d;
    if (scroll) {
        if (star < 0 || star >= MX_SF_SCROLL_MAX_STAR)
            return MX_EINVAL;
        *success = scroll_success_tab[star];
        *destroy = 0.0;
        return 0;
    }
    if (star < 0 || star >= MX_SF_MAX_STAR)
        return MX_EINVAL;
    p = success_tab[star];
    d = destroy_tab[star];
    if (o && o->star_catch) {
        double np = fmin(1.0, p * 1.05);
        /* keep and destroy shrink in proportion to what is left */
        d = p < 1.0 ? d * (1.0 - np) / (1.0 - p) : 0.0;
        p = np;
    }
    if (o && o->sunday && star < 22)
        d *= 0.7; /* the removed mass becomes "keep" */
    if (o && o->shield && star >= 15 && star <= 17)
        d = 0.0;
    *success = p;
    *destroy = d;
    return 0;
}

int mx_sf_expect(int level, int from, int to, bool scroll, const struct mx_sf_opts *opts,
                 struct mx_sf_result *out)
{
    static const struct mx_sf_opts none = {0};
    double e_cost[MX_SF_MAX_STAR] = {0}, e_dest[MX_SF_MAX_STAR] = {0}, e_att[MX_SF_MAX_STAR] = {0};
    int top = scroll ? MX_SF_SCROLL_MAX_STAR : MX_SF_MAX_STAR;

    if (!out)
        return MX_EINVAL;
    out->cost = out->destroys = out->attempts = 0.0;
    if (level < 0 || level > 300 || from < 0 || from > to || to > top)
        return MX_EINVAL;
    if (!opts)
        opts = &none;
    /* E_s depends on E_12..E_{s-1} only, so solve from 0 (or 12) upward. */
    int lo = from < MX_SF_RESTART_STAR ? from : MX_SF_RESTART_STAR;
    for (int s = lo; s < to; s++) {
        double p, d, c;
        mx_sf_probs(s, scroll, opts, &p, &d);
        c = scroll ? 0.0 : mx_sf_attempt_cost(level, s, opts);
        double rc = 0, rd = 0, ra = 0;
        if (d > 0)
            for (int k = MX_SF_RESTART_STAR; k < s; k++) {
                rc += e_cost[k];
                rd += e_dest[k];
                ra += e_att[k];
            }
        e_cost[s] = (c + d * rc) / p;
        e_dest[s] = (d + d * rd) / p;
        e_att[s] = (1.0 + d * ra) / p;
    }
    for (int s = from; s < to; s++) {
        out->cost += e_cost[s];
        out->destroys += e_dest[s];
        out->attempts += e_att[s];
    }
    return 0;
}
