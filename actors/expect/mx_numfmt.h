/* mx_numfmt.h - number formatting for the expectation documents, through
 * the fmt library (numfmt_fmt.cpp): the same text as printf's "%.15g",
 * about five times faster, which matters because a document holds hundreds
 * of such numbers. Pure, thread-safe, never allocates.
 */
#ifndef MX_NUMFMT_H
#define MX_NUMFMT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MX_NUMFMT_MAX 32 /* bytes that always suffice, NUL included */

/* mx_fmt_g15 - write v as printf("%.15g") would into buf (at least
 * MX_NUMFMT_MAX bytes), NUL-terminated; returns the length. Not for NaN or
 * infinities (callers write null for those). */
size_t mx_fmt_g15(double v, char *buf);

#ifdef __cplusplus
}
#endif

#endif
