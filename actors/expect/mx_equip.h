/* mx_equip.h - item-equipment JSON (Nexon Open API) parsed into bounded C structs.
 *
 * The JSON is parsed with simdjson in one C++ translation unit
 * (equip_parse_simdjson.cpp); everything it produces is plain C data defined
 * here. Every list and string has a fixed maximum: an input that exceeds one is
 * rejected with MX_ETOOBIG and a message naming the field, never truncated
 * silently. Fields that are null or missing read as empty strings or 0.
 */
#ifndef MX_EQUIP_H
#define MX_EQUIP_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MX_EQUIP_MAX_INPUT (16u << 20) /* bytes of JSON accepted */
#define MX_EQUIP_MAX_ITEMS 48          /* items per list (Nexon sends <= ~30) */
#define MX_EQUIP_SLOT_MAX 64           /* bytes incl. NUL: slot, part, grade, class */
#define MX_EQUIP_NAME_MAX 128          /* bytes incl. NUL: item name */
#define MX_EQUIP_ICON_MAX 256          /* bytes incl. NUL: icon URL */
#define MX_EQUIP_LINE_MAX 128          /* bytes incl. NUL: one potential line */
#define MX_EQUIP_ERR_MAX 256           /* bytes of an error message */

/* The four lists of the response. */
enum mx_equip_list_id {
    MX_EQUIP_CURRENT = 0, /* item_equipment */
    MX_EQUIP_PRESET1 = 1, /* item_equipment_preset_1 .. 3 */
    MX_EQUIP_PRESET2 = 2,
    MX_EQUIP_PRESET3 = 3,
    MX_EQUIP_NLISTS = 4
};

/* Potential grades; NONE when the field is null/empty, UNKNOWN when it holds
 * text that is not one of the four Korean grade names. */
enum mx_grade {
    MX_GRADE_NONE = 0,
    MX_GRADE_RARE,      /* 레어 */
    MX_GRADE_EPIC,      /* 에픽 */
    MX_GRADE_UNIQUE,    /* 유니크 */
    MX_GRADE_LEGENDARY, /* 레전드리 */
    MX_GRADE_UNKNOWN
};

/* item_add_option ("flame" stats), integers as sent. */
struct mx_flame_stats {
    int str, dex, int_, luk;
    int max_hp, max_mp;
    int attack, magic;
    int armor, speed, jump;
    int boss_damage, damage; /* percent */
    int all_stat;            /* percent */
    int level_decrease;
};

struct mx_equip_item {
    char slot[MX_EQUIP_SLOT_MAX]; /* item_equipment_slot, e.g. "반지1" */
    char part[MX_EQUIP_SLOT_MAX]; /* item_equipment_part, e.g. "반지" */
    char name[MX_EQUIP_NAME_MAX]; /* item_name */
    char icon[MX_EQUIP_ICON_MAX]; /* item_icon */
    int level;                    /* item_base_option.base_equipment_level */
    int base_attack, base_magic;  /* item_base_option attack/magic_power */
    enum mx_grade pot_grade;      /* potential_option_grade */
    char pot_grade_text[MX_EQUIP_SLOT_MAX];
    char pot[3][MX_EQUIP_LINE_MAX]; /* potential_option_1..3, "" if null */
    enum mx_grade add_grade;        /* additional_potential_option_grade */
    char add_grade_text[MX_EQUIP_SLOT_MAX];
    char add[3][MX_EQUIP_LINE_MAX]; /* additional_potential_option_1..3 */
    int starforce;                  /* "22" -> 22 */
    bool scroll;                    /* starforce_scroll_flag == "사용" */
    int special_ring_level;
    bool has_flame;              /* item_add_option was an object */
    struct mx_flame_stats flame; /* item_add_option */
};

struct mx_equip_list {
    bool present; /* the key existed with an array */
    int n;        /* items used, <= MX_EQUIP_MAX_ITEMS */
    struct mx_equip_item items[MX_EQUIP_MAX_ITEMS];
};

struct mx_equip {
    char character_class[MX_EQUIP_SLOT_MAX]; /* character_class, "" if absent */
    int preset_no;                           /* preset_no, 0 if absent */
    struct mx_equip_list lists[MX_EQUIP_NLISTS];
};

/* A reusable parser (owns simdjson's buffers). Not thread-safe: one thread
 * uses one parser at a time; keep one per thread and reuse it. */
struct mx_equip_parser;

/* mx_equip_parser_new - allocate a parser. Returns 0 or MX_ENOMEM. */
int mx_equip_parser_new(struct mx_equip_parser **out);

/* mx_equip_parser_free - free a parser (NULL is ignored). */
void mx_equip_parser_free(struct mx_equip_parser *p);

/* mx_equip_parse - parse len bytes of item-equipment JSON into *out (which
 * the caller owns; about 300 KB, so allocate it on the heap). Returns 0, or
 * MX_EDECODE (not JSON or wrong shape), MX_ETOOBIG (a bound was exceeded),
 * MX_EINVAL (NULL arguments), MX_ENOMEM. On error err (if not NULL) holds a
 * message naming the field and what was expected, e.g.
 * "item_equipment_preset_2[3].starforce: expected string or number", and *out
 * is left zeroed. Does not block; never crashes on any input. */
int mx_equip_parse(struct mx_equip_parser *p, const char *json, size_t len, struct mx_equip *out,
                   char *err, size_t errlen);

/* mx_equip_grade_from_text - map a Korean grade name to enum mx_grade
 * ("" or NULL -> NONE, unrecognised -> UNKNOWN). Pure, thread-safe. */
enum mx_grade mx_equip_grade_from_text(const char *s);

/* mx_equip_grade_name - the Korean name of a grade ("" for NONE/UNKNOWN). */
const char *mx_equip_grade_name(enum mx_grade g);

/* mx_equip_parse_int - parse a decimal integer that Nexon sends as a string
 * ("22", " 7 ", "-3"). Empty/blank -> 0. Returns 0 or MX_EINVAL for anything
 * else (junk, overflow beyond int). Pure, thread-safe. */
int mx_equip_parse_int(const char *s, size_t n, int *out);

#ifdef __cplusplus
}
#endif

#endif
