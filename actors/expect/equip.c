/* equip.c - the C half of equipment parsing: grade names and the lenient
 * integer reader used for Nexon's numbers-as-strings. The JSON walk itself is
 * in equip_parse_simdjson.cpp, the project's one C++ file.
 */
#include "mx_equip.h"

#include <limits.h>
#include <string.h>

#include "mx_err.h"

static const char *const grade_names[] = {
    [MX_GRADE_NONE] = "",         [MX_GRADE_RARE] = "레어",          [MX_GRADE_EPIC] = "에픽",
    [MX_GRADE_UNIQUE] = "유니크", [MX_GRADE_LEGENDARY] = "레전드리", [MX_GRADE_UNKNOWN] = "",
};

enum mx_grade mx_equip_grade_from_text(const char *s)
{
    if (!s || !*s)
        return MX_GRADE_NONE;
    for (int g = MX_GRADE_RARE; g <= MX_GRADE_LEGENDARY; g++)
        if (strcmp(s, grade_names[g]) == 0)
            return (enum mx_grade)g;
    return MX_GRADE_UNKNOWN;
}

const char *mx_equip_grade_name(enum mx_grade g)
{
    if ((int)g < 0 || g > MX_GRADE_UNKNOWN)
        return "";
    return grade_names[g];
}

int mx_equip_parse_int(const char *s, size_t n, int *out)
{
    size_t i = 0;
    long long v = 0;
    bool neg = false, digits = false;

    *out = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n)
        return 0; /* blank reads as 0 */
    if (s[i] == '+' || s[i] == '-')
        neg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        v = v * 10 + (s[i] - '0');
        digits = true;
        if (v > INT_MAX)
            return MX_EINVAL;
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (!digits || i != n)
        return MX_EINVAL;
    *out = (int)(neg ? -v : v);
    return 0;
}
