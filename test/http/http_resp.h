/* http_resp.h - split a byte stream of HTTP/1.1 responses (as mx_http
 * writes them: Content-Length bodies, none for 204/304/HEAD) for the tests. */
#ifndef HTTP_RESP_H
#define HTTP_RESP_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct presp {
    int status;
    char head[2048];  /* status line + headers, NUL-terminated (cut if longer) */
    const char *body; /* points into the parsed buffer */
    size_t body_len;
};

/* header value (first match, case-insensitive) copied into out; false if absent */
static inline bool presp_header(const struct presp *p, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *s = strstr(p->head, "\r\n");
    while (s && s[2]) {
        s += 2;
        if (strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
            const char *v = s + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        s = strstr(s, "\r\n");
    }
    return false;
}

/* Parse up to max complete responses; head_only[i] (may be NULL) says the
 * i-th had no body. Returns the number parsed; *used the bytes consumed. */
static inline int parse_responses(const char *buf, size_t len, struct presp *out, int max,
                                  const bool *head_only, size_t *used)
{
    size_t off = 0;
    int n = 0;
    while (n < max && off < len) {
        const char *start = buf + off;
        const char *end = NULL;
        for (size_t i = off; i + 3 < len; i++)
            if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
                end = buf + i;
                break;
            }
        if (!end || strncmp(start, "HTTP/1.1 ", 9) != 0)
            break;
        struct presp *p = &out[n];
        size_t hl = (size_t)(end - start) + 2;
        if (hl >= sizeof(p->head))
            hl = sizeof(p->head) - 1;
        memcpy(p->head, start, hl);
        p->head[hl] = '\0';
        p->status = atoi(start + 9);
        char cl[32];
        size_t blen = 0;
        if (presp_header(p, "Content-Length", cl, sizeof(cl)) && !(head_only && head_only[n]))
            blen = (size_t)strtoull(cl, NULL, 10);
        size_t bstart = (size_t)(end + 4 - buf);
        if (bstart + blen > len)
            break;
        p->body = buf + bstart;
        p->body_len = blen;
        off = bstart + blen;
        n++;
    }
    if (used)
        *used = off;
    return n;
}

#endif
