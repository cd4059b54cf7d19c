/* mx_flame.h - expected number of rebirth flames (powerful, eternal, abyss)
 * to reach an item's item_add_option score, by dynamic programming over the
 * option kinds and their stages. Pure functions: thread-safe, non-blocking.
 * Sources and assumptions: docs/expectation.md, "Flame".
 */
#ifndef MX_FLAME_H
#define MX_FLAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_equip.h"

#define MX_FLAME_MAX_SCORE 20000      /* scores above are refused (MX_ETOOBIG) */
#define MX_FLAME_MAX_LEVEL 300        /* item levels above are refused (MX_EINVAL) */
#define MX_FLAME_MAX_BASE_ATTACK 1000 /* weapon base attack above: MX_EINVAL */
#define MX_FLAME_MAX_WIDTH (1 << 18)  /* bound on a distribution's score range */

enum mx_flame_type { MX_FLAME_POWERFUL = 0, MX_FLAME_ETERNAL, MX_FLAME_ABYSS, MX_FLAME_NTYPES };

enum mx_stat { MX_STAT_STR = 0, MX_STAT_DEX, MX_STAT_INT, MX_STAT_LUK };

/* Which stats count for the character (from its class). */
struct mx_flame_weights {
    enum mx_stat main, secondary;
    bool magic; /* the class uses magic (마력) rather than attack (공격력) */
};

struct mx_flame_item {
    int level;
    bool weapon;     /* the weapon pool: boss/damage %, attack from base */
    bool boss;       /* boss-drop item: 4 lines, stages +2 */
    int base_attack; /* weapon base attack/magic (for the weapon ATT table) */
};

/* Score weights: main stat 10, secondary 1, all stat % 100, attack or magic
 * 40, damage % and boss damage % 140. */
#define MX_FLAME_W_MAIN 10
#define MX_FLAME_W_SECONDARY 1
#define MX_FLAME_W_ALLSTAT 100
#define MX_FLAME_W_ATTACK 40
#define MX_FLAME_W_DAMAGE 140

/* mx_flame_score - the item_add_option score under weights w; computed in
 * 64 bits, so any int the upstream sends gives a defined (maybe huge or
 * negative) score. */
int64_t mx_flame_score(const struct mx_flame_stats *f, const struct mx_flame_weights *w);

/* mx_flame_prob - probability that one flame of type yields score >= target.
 * Returns 0, MX_EINVAL (bad arguments, level above MX_FLAME_MAX_LEVEL, weapon
 * base attack outside 0..MX_FLAME_MAX_BASE_ATTACK) or MX_ETOOBIG (target
 * above MX_FLAME_MAX_SCORE). Builds the distribution each call: callers
 * asking many targets of one structure keep an mx_flame_dist instead. */
int mx_flame_prob(const struct mx_flame_item *it, const struct mx_flame_weights *w,
                  enum mx_flame_type type, int64_t target, double *p);

/* The score distribution of one flame type on one item structure (level
 * tier, weapon or not, boss or not, weapon base attack, weights): it does
 * not depend on the item's current flame, so it answers P(score >= T) for
 * every T by binary search. Immutable once built: may be shared read-only. */
struct mx_flame_dist;

/* mx_flame_dist_new - build the distribution (a DP over the scoring option
 * kinds, about 0.1-1 ms). Returns 0, MX_EINVAL (as mx_flame_prob),
 * MX_ETOOBIG (score range above MX_FLAME_MAX_WIDTH) or MX_ENOMEM. */
int mx_flame_dist_new(const struct mx_flame_item *it, const struct mx_flame_weights *w,
                      enum mx_flame_type type, struct mx_flame_dist **out);

/* mx_flame_dist_tail - P(score >= target); 1 for target <= 0. */
double mx_flame_dist_tail(const struct mx_flame_dist *d, int64_t target);

/* mx_flame_dist_bytes - memory a distribution holds (for budgets). */
size_t mx_flame_dist_bytes(const struct mx_flame_dist *d);

/* mx_flame_dist_free - free a distribution (NULL is ignored). */
void mx_flame_dist_free(struct mx_flame_dist *d);

/* mx_flame_weights_for_class - weights for a Korean class name (e.g. "에반");
 * returns false (and INT/LUK-free defaults: STR/DEX, attack) if unknown. */
bool mx_flame_weights_for_class(const char *character_class, struct mx_flame_weights *w);

/* mx_flame_is_boss_item - whether an item name belongs to a boss-drop set
 * (a fixed list of name prefixes, see docs). */
bool mx_flame_is_boss_item(const char *name);

/* mx_flame_can_have - whether an item slot can carry flames (rings,
 * shoulders, emblems, badges, medals, secondary weapons, hearts cannot). */
bool mx_flame_can_have(const char *slot);

/* mx_flame_stat_name - "STR", "DEX", "INT", "LUK". */
const char *mx_flame_stat_name(enum mx_stat s);

#endif
