/* mx_alloc.h - allocation that cannot fail: on out-of-memory the process
 * prints what it wanted to stderr and aborts. For the memory mx cannot go
 * on without (actors, mailboxes, documents); anything sized by input from
 * outside must be bounded before it gets here. Any thread.
 */
#ifndef MX_ALLOC_H
#define MX_ALLOC_H

#include <stddef.h>

/* mx_oom - print "mx: out of memory (N bytes)" and abort. */
_Noreturn void mx_oom(size_t n);

/* xmalloc/xcalloc/xrealloc/xstrdup/xstrndup - malloc and friends that
 * never return NULL (a 0-byte request gets 1 byte, so NULL never means
 * "empty" either). xcalloc checks n * sz for overflow. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* xmemdup - a copy of n bytes at p (which may hold NULs) plus a NUL after
 * them, so text and binary callers alike may use it. */
char *xmemdup(const void *p, size_t n);

#endif
