/* mx_jsonw.h - a bounded JSON writer.
 *
 * Builds JSON text into a growable buffer with a hard maximum size (the
 * writer refuses to grow past it and remembers the failure). Commas between
 * members and elements are inserted automatically. Parsing is not here: mx
 * parses JSON with simdjson; this only writes.
 *
 * Not thread-safe: one writer belongs to one thread at a time.
 */
#ifndef MX_JSONW_H
#define MX_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MX_JSONW_MAX_DEPTH 32

struct mx_jsonw {
    char *buf;                      /* owned; NUL-terminated while err == 0 */
    size_t len;                     /* bytes written, excluding the NUL */
    size_t cap;                     /* bytes allocated */
    size_t max;                     /* hard limit on len */
    int err;                        /* first error (MX_ETOOBIG, MX_ENOMEM, MX_EINVAL), sticky */
    int depth;                      /* nesting depth */
    bool first[MX_JSONW_MAX_DEPTH]; /* no member written yet at this depth */
    bool after_key;                 /* a key was just written: next value takes no comma */
};

/* mx_jsonw_init - start an empty writer that will hold at most max bytes. */
void mx_jsonw_init(struct mx_jsonw *w, size_t max);
/* mx_jsonw_fini - free the buffer (unless taken with mx_jsonw_take). */
void mx_jsonw_fini(struct mx_jsonw *w);
/* mx_jsonw_reset - empty the writer, keeping its buffer. */
void mx_jsonw_reset(struct mx_jsonw *w);
/* mx_jsonw_take - give the caller the buffer (free() it); the writer is empty
 * afterwards. Returns NULL if the writer failed. */
char *mx_jsonw_take(struct mx_jsonw *w, size_t *len);

void mx_jsonw_obj_open(struct mx_jsonw *w);
void mx_jsonw_obj_close(struct mx_jsonw *w);
void mx_jsonw_arr_open(struct mx_jsonw *w);
void mx_jsonw_arr_close(struct mx_jsonw *w);
/* mx_jsonw_key - write an object key; the next call writes its value. */
void mx_jsonw_key(struct mx_jsonw *w, const char *key);
void mx_jsonw_str(struct mx_jsonw *w, const char *s);
/* mx_jsonw_strn - a string of n bytes; invalid UTF-8 bytes become U+FFFD. */
void mx_jsonw_strn(struct mx_jsonw *w, const char *s, size_t n);
void mx_jsonw_int(struct mx_jsonw *w, int64_t v);
void mx_jsonw_uint(struct mx_jsonw *w, uint64_t v);
/* mx_jsonw_double - shortest round-trip form; NaN and infinities write null. */
void mx_jsonw_double(struct mx_jsonw *w, double v);
void mx_jsonw_bool(struct mx_jsonw *w, bool v);
void mx_jsonw_null(struct mx_jsonw *w);
/* mx_jsonw_raw - append already-valid JSON as one value. */
void mx_jsonw_raw(struct mx_jsonw *w, const char *json, size_t n);

/* Shorthands: key + value. */
void mx_jsonw_kstr(struct mx_jsonw *w, const char *k, const char *v);
void mx_jsonw_kint(struct mx_jsonw *w, const char *k, int64_t v);
void mx_jsonw_kuint(struct mx_jsonw *w, const char *k, uint64_t v);
void mx_jsonw_kdouble(struct mx_jsonw *w, const char *k, double v);
void mx_jsonw_kbool(struct mx_jsonw *w, const char *k, bool v);
void mx_jsonw_knull(struct mx_jsonw *w, const char *k);

#endif
