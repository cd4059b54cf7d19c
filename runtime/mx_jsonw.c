/* mx_jsonw.c - bounded JSON writer (see mx_jsonw.h).
 *
 * Exists because logs, admin answers, mxcalc and the HTTP bodies all write
 * JSON and none of the Debian JSON libraries we use (simdjson) writes it.
 */
#include "mx_jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

void mx_jsonw_init(struct mx_jsonw *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
    w->first[0] = true;
}

void mx_jsonw_fini(struct mx_jsonw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

void mx_jsonw_reset(struct mx_jsonw *w)
{
    w->len = 0;
    w->err = 0;
    w->depth = 0;
    w->first[0] = true;
    w->after_key = false;
    if (w->buf)
        w->buf[0] = '\0';
}

char *mx_jsonw_take(struct mx_jsonw *w, size_t *len)
{
    char *b = w->err ? NULL : w->buf;
    if (len)
        *len = w->err ? 0 : w->len;
    if (w->err)
        free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
    mx_jsonw_reset(w);
    return b;
}

static bool reserve(struct mx_jsonw *w, size_t n)
{
    if (w->err)
        return false;
    if (w->len + n > w->max) {
        w->err = MX_ETOOBIG;
        return false;
    }
    if (w->len + n + 1 <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n + 1)
        cap *= 2;
    if (cap > w->max + 1)
        cap = w->max + 1;
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->err = MX_ENOMEM;
        return false;
    }
    w->buf = b;
    w->cap = cap;
    return true;
}

static void put(struct mx_jsonw *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* Before any value or key: the separating comma where one is due. */
static void sep(struct mx_jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        put(w, ",", 1);
    w->first[w->depth] = false;
}

static void open_(struct mx_jsonw *w, char c)
{
    sep(w);
    if (w->depth + 1 >= MX_JSONW_MAX_DEPTH) {
        w->err = MX_EINVAL;
        return;
    }
    put(w, &c, 1);
    w->depth++;
    w->first[w->depth] = true;
}

static void close_(struct mx_jsonw *w, char c)
{
    if (w->depth == 0) {
        w->err = MX_EINVAL;
        return;
    }
    w->depth--;
    put(w, &c, 1);
}

void mx_jsonw_obj_open(struct mx_jsonw *w)
{
    open_(w, '{');
}
void mx_jsonw_obj_close(struct mx_jsonw *w)
{
    close_(w, '}');
}
void mx_jsonw_arr_open(struct mx_jsonw *w)
{
    open_(w, '[');
}
void mx_jsonw_arr_close(struct mx_jsonw *w)
{
    close_(w, ']');
}

/* Length of a valid UTF-8 sequence starting at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static void put_escaped(struct mx_jsonw *w, const char *s, size_t n)
{
    put(w, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t l = (c >= 0x20 && c != '"' && c != '\\') ? utf8_len(p + i, n - i) : 0;
        if (l > 0) {
            i += l;
            run += l;
            continue;
        }
        put(w, (const char *)p + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"':
            put(w, "\\\"", 2);
            break;
        case '\\':
            put(w, "\\\\", 2);
            break;
        case '\n':
            put(w, "\\n", 2);
            break;
        case '\r':
            put(w, "\\r", 2);
            break;
        case '\t':
            put(w, "\\t", 2);
            break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                put(w, esc, 6);
            } else {
                put(w, "\xef\xbf\xbd", 3); /* invalid UTF-8: U+FFFD */
            }
        }
        i++;
    }
    put(w, (const char *)p + i - run, run);
    put(w, "\"", 1);
}

void mx_jsonw_key(struct mx_jsonw *w, const char *key)
{
    sep(w);
    put_escaped(w, key, strlen(key));
    put(w, ":", 1);
    w->after_key = true;
}

void mx_jsonw_str(struct mx_jsonw *w, const char *s)
{
    if (!s) {
        mx_jsonw_null(w);
        return;
    }
    mx_jsonw_strn(w, s, strlen(s));
}

void mx_jsonw_strn(struct mx_jsonw *w, const char *s, size_t n)
{
    sep(w);
    put_escaped(w, s, n);
}

void mx_jsonw_int(struct mx_jsonw *w, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%lld", (long long)v);
    sep(w);
    put(w, b, (size_t)n);
}

void mx_jsonw_uint(struct mx_jsonw *w, uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
    sep(w);
    put(w, b, (size_t)n);
}

void mx_jsonw_double(struct mx_jsonw *w, double v)
{
    if (!isfinite(v)) {
        mx_jsonw_null(w);
        return;
    }
    char b[32];
    int n;
    /* shortest of %.15g..%.17g that reads back exactly */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(b, sizeof(b), "%.*g", prec, v);
        if (strtod(b, NULL) == v)
            break;
    }
    sep(w);
    put(w, b, (size_t)n);
}

void mx_jsonw_bool(struct mx_jsonw *w, bool v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void mx_jsonw_null(struct mx_jsonw *w)
{
    sep(w);
    put(w, "null", 4);
}

void mx_jsonw_raw(struct mx_jsonw *w, const char *json, size_t n)
{
    sep(w);
    put(w, json, n);
}

void mx_jsonw_kstr(struct mx_jsonw *w, const char *k, const char *v)
{
    mx_jsonw_key(w, k);
    mx_jsonw_str(w, v);
}
void mx_jsonw_kint(struct mx_jsonw *w, const char *k, int64_t v)
{
    mx_jsonw_key(w, k);
    mx_jsonw_int(w, v);
}
void mx_jsonw_kuint(struct mx_jsonw *w, const char *k, uint64_t v)
{
    mx_jsonw_key(w, k);
    mx_jsonw_uint(w, v);
}
void mx_jsonw_kdouble(struct mx_jsonw *w, const char *k, double v)
{
    mx_jsonw_key(w, k);
    mx_jsonw_double(w, v);
}
void mx_jsonw_kbool(struct mx_jsonw *w, const char *k, bool v)
{
    mx_jsonw_key(w, k);
    mx_jsonw_bool(w, v);
}
void mx_jsonw_knull(struct mx_jsonw *w, const char *k)
{
    mx_jsonw_key(w, k);
    mx_jsonw_null(w);
}
