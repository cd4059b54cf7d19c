/* mx_alloc.c - see mx_alloc.h. */
#include "mx_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void mx_oom(size_t n)
{
    fprintf(stderr, "mx: out of memory (%zu bytes)\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        mx_oom(n);
    return p;
}

void *xcalloc(size_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz)
        mx_oom(SIZE_MAX);
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        mx_oom(n * sz);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        mx_oom(n);
    return q;
}

char *xstrndup(const char *s, size_t n)
{
    size_t l = strnlen(s, n);
    char *p = xmalloc(l + 1);
    memcpy(p, s, l);
    p[l] = '\0';
    return p;
}

char *xmemdup(const void *src, size_t n)
{
    if (n == SIZE_MAX)
        mx_oom(n);
    char *p = xmalloc(n + 1);
    memcpy(p, src, n);
    p[n] = '\0';
    return p;
}

char *xstrdup(const char *s)
{
    size_t l = strlen(s);
    char *p = xmalloc(l + 1);
    memcpy(p, s, l + 1);
    return p;
}
