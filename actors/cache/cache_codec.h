/* cache_codec.h - the value codec shared by the cache tiers and the
 * calculator: the L2 frame around a gzip, the gzip L3 stores, and the
 * per-preset costs read back from a built document. Pure functions, any
 * thread. */
#ifndef MX_CACHE_CODEC_H
#define MX_CACHE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "mx_blob.h"

/* ---- the L2 value frame (docs/expectation-service.md) ----
 *   0  4  magic "MXC1"
 *   4  4  raw length, little-endian
 *   8  4  CRC-32 (zlib) of the raw bytes, little-endian
 *  12  .. gzip (RFC 1952) of the raw bytes
 * The gzip part alone is what L3 (character_equipment) stores. */
#define MX__FRAME_HDR 12u
#define MX__FRAME_MAX_RAW (32u << 20) /* largest raw value accepted on decode */

/* mx__frame_from_gzip - a frame (new blob) around gz (gzip of raw). */
struct mx_blob *mx__frame_from_gzip(const void *raw, size_t raw_len, const void *gz, size_t gz_len);
/* mx__frame_encode - gzip raw at level and frame it. 0 or MX_EINTERNAL. */
int mx__frame_encode(const void *raw, size_t raw_len, int level, struct mx_blob **out);
/* mx__frame_decode - check and inflate a frame: magic, length, the gzip
 * stream (its own CRC and size too), the header CRC. Returns 0 and *out
 * (raw bytes, one reference), or MX_EDECODE for anything damaged. Pure. */
int mx__frame_decode(const void *data, size_t len, struct mx_blob **out);
/* mx__gunzip - inflate a whole gzip stream of at most max raw bytes.
 * Returns 0 and *out, or MX_EDECODE (damaged, truncated, trailing bytes,
 * too big). Pure. */
int mx__gunzip(const void *data, size_t len, size_t max, struct mx_blob **out);

/* Per-preset costs read back from a built document. */
struct mx__summary {
    int preset_no;
    int64_t total, black, additional, starforce;
};
/* mx__doc_summaries - the presets' costs of an expectation document (JSON
 * text); returns how many were found (<= max). */
int mx__doc_summaries(const char *json, size_t len, struct mx__summary *out, int max);

#endif
