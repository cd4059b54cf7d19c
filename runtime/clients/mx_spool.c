/* mx_spool.c - the durable write spool: an append-only file of CRC'd
 * records, bounded, replayed in order and then truncated or compacted.
 *
 * Record layout (little-endian), docs/storage.md has the table:
 *   magic u32 "MXSP" | len u32 | kind u32 | crc32 u32 | payload[len]
 * The CRC (zlib crc32) covers len, kind and the payload, so a torn write, a
 * flipped bit or a bogus length is caught. After damage the reader looks for
 * the next magic whose record checks out, so one bad record does not hide
 * the ones after it.
 *
 * Concurrency: one mutex guards the file's end (size, counters). Replay reads
 * the region [0, end-at-start) without it: appends only write past the end
 * and nothing else changes that region until the replay itself drops it.
 */
#define _GNU_SOURCE
#include "mx_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "mx_actor.h"
#include "mx_err.h"
#include "mx_log.h"

#define MAGIC 0x5053584du /* "MXSP" on disk */
#define SCAN_CHUNK 65536u

struct mx_spool {
    pthread_mutex_t mu; /* guards everything below but path/limits */
    char path[PATH_MAX];
    uint64_t max_bytes;
    uint32_t max_records;
    uint32_t sync_every;
    int fd;
    uint64_t size;     /* file size: where the next record goes */
    uint32_t records;  /* valid records in the file */
    uint32_t unsynced; /* appends since the last fsync */
    bool replaying;
    int64_t refuse_log_ms; /* last refusal log, to rate-limit it */
    struct mx_spool_stats st;
};

struct rec {
    uint64_t off;
    uint32_t len;
    uint32_t kind;
};

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t rec_crc(const uint8_t *hdr, const void *data, uint32_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr + 4, 8); /* len, kind */
    if (len)
        c = crc32(c, data, len);
    return (uint32_t)c;
}

/* pread (or pwrite) all n bytes at off, through EINTR and short transfers */
static int io_full(int fd, void *buf, size_t n, uint64_t off, bool write)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = write ? pwrite(fd, p, n, (off_t)off) : pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int read_full(int fd, void *buf, size_t n, uint64_t off)
{
    return io_full(fd, buf, n, off, false);
}

static int write_full(int fd, const void *buf, size_t n, uint64_t off)
{
    return io_full(fd, (void *)buf, n, off, true); /* only read from when writing */
}

/* A growable read buffer bounded by MX_SPOOL_MAX_RECORD. */
struct rbuf {
    uint8_t *p;
    size_t cap;
};

static int rbuf_reserve(struct rbuf *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    uint8_t *q = realloc(b->p, n);
    if (!q)
        return -1;
    b->p = q;
    b->cap = n;
    return 0;
}

/* Is there a valid record at off (ending by end)? 1 yes (payload in b),
 * 0 no, -1 read error. */
static int read_at(int fd, uint64_t off, uint64_t end, struct rec *r, struct rbuf *b)
{
    uint8_t h[MX_SPOOL_HDR];
    if (off + MX_SPOOL_HDR > end)
        return 0;
    if (read_full(fd, h, sizeof(h), off) != 0)
        return -1;
    uint32_t len = get32(h + 4);
    if (get32(h) != MAGIC || len > MX_SPOOL_MAX_RECORD || off + MX_SPOOL_HDR + len > end)
        return 0;
    if (rbuf_reserve(b, len ? len : 1) != 0)
        return -1;
    if (len && read_full(fd, b->p, len, off + MX_SPOOL_HDR) != 0)
        return -1;
    if (rec_crc(h, b->p, len) != get32(h + 12))
        return 0;
    r->off = off;
    r->len = len;
    r->kind = get32(h + 8);
    return 1;
}

/* The first valid record at or after off, before end: 1 found, 0 none,
 * -1 read error. *skipped gets the damaged bytes passed over. */
static int next_valid(int fd, uint64_t off, uint64_t end, struct rec *r, struct rbuf *b,
                      uint64_t *skipped)
{
    uint8_t chunk[SCAN_CHUNK];
    *skipped = 0;
    int v = read_at(fd, off, end, r, b);
    if (v != 0)
        return v;
    uint8_t m[4];
    put32(m, MAGIC);
    for (uint64_t pos = off + 1; pos + MX_SPOOL_HDR <= end;) {
        size_t n = end - pos < SCAN_CHUNK ? (size_t)(end - pos) : SCAN_CHUNK;
        if (read_full(fd, chunk, n, pos) != 0)
            return -1;
        for (size_t i = 0; i + 4 <= n; i++) {
            if (memcmp(chunk + i, m, 4) != 0)
                continue;
            v = read_at(fd, pos + i, end, r, b);
            if (v < 0)
                return v;
            if (v == 1) {
                *skipped = pos + i - off;
                return 1;
            }
        }
        if (n < 4)
            break;
        pos += n - 3; /* a magic may straddle two chunks */
    }
    *skipped = end - off;
    return 0;
}

static int sync_dir(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    int dfd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

int mx_spool_open(const struct mx_spool_opts *o, mx_spool_t **out)
{
    struct mx_spool *s;
    struct stat sb;
    struct rbuf b = {0};
    struct rec r;
    uint64_t off = 0, skipped, last_end = 0;
    int v;

    if (!o || !o->path || !*o->path || strlen(o->path) >= PATH_MAX - 8 || !out)
        return MX_EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return MX_ENOMEM;
    snprintf(s->path, sizeof(s->path), "%s", o->path);
    s->max_bytes = o->max_bytes ? o->max_bytes : (64u << 20);
    s->max_records = o->max_records ? o->max_records : 100000;
    s->sync_every = o->sync_every ? o->sync_every : 1;
    s->fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        mx_log(MX_LOG_ERROR, "spool %s: open: %s", s->path, strerror(errno));
        free(s);
        return MX_EIO;
    }
    if (fstat(s->fd, &sb) != 0)
        goto out_io;
    s->size = (uint64_t)sb.st_size;
    while ((v = next_valid(s->fd, off, s->size, &r, &b, &skipped)) == 1) {
        if (skipped) {
            s->st.corrupt++;
            mx_log(MX_LOG_WARN, "spool %s: skipped %llu damaged bytes at offset %llu", s->path,
                   (unsigned long long)skipped, (unsigned long long)off);
        }
        s->records++;
        off = last_end = r.off + MX_SPOOL_HDR + r.len;
    }
    if (v < 0)
        goto out_io;
    if (last_end < s->size) {
        s->st.corrupt++;
        mx_log(MX_LOG_WARN, "spool %s: cut %llu damaged bytes at the tail (offset %llu)", s->path,
               (unsigned long long)(s->size - last_end), (unsigned long long)last_end);
        if (ftruncate(s->fd, (off_t)last_end) != 0 || fsync(s->fd) != 0)
            goto out_io;
        s->size = last_end;
    }
    free(b.p);
    pthread_mutex_init(&s->mu, NULL);
    s->st.records = s->records;
    s->st.bytes = s->size;
    *out = s;
    return 0;
out_io:
    mx_log(MX_LOG_ERROR, "spool %s: read: %s", s->path, strerror(errno));
    free(b.p);
    close(s->fd);
    free(s);
    return MX_EIO;
}

void mx_spool_close(mx_spool_t *s)
{
    if (!s)
        return;
    if (s->unsynced)
        (void)fsync(s->fd);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int mx_spool_append(mx_spool_t *s, uint32_t kind, const void *data, uint32_t len)
{
    uint8_t h[MX_SPOOL_HDR];
    int rc = 0;
    if (len > MX_SPOOL_MAX_RECORD)
        return MX_ETOOBIG;
    if (len && !data)
        return MX_EINVAL;
    put32(h, MAGIC);
    put32(h + 4, len);
    put32(h + 8, kind);
    put32(h + 12, rec_crc(h, data, len));

    pthread_mutex_lock(&s->mu);
    if (s->records >= s->max_records || s->size + MX_SPOOL_HDR + len > s->max_bytes) {
        s->st.refused++;
        int64_t now = mx_now_ms();
        if (now - s->refuse_log_ms >= 1000) {
            s->refuse_log_ms = now;
            mx_log(MX_LOG_ERROR,
                   "spool %s full (%u records, %llu bytes; bounds %u, %llu): write refused "
                   "(%llu refused so far)",
                   s->path, s->records, (unsigned long long)s->size, s->max_records,
                   (unsigned long long)s->max_bytes, (unsigned long long)s->st.refused);
        }
        rc = MX_EFULL;
        goto out_unlock;
    }
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)(uintptr_t)data, len}};
    ssize_t w = pwritev(s->fd, iov, len ? 2 : 1, (off_t)s->size);
    if (w != (ssize_t)(MX_SPOOL_HDR + len)) {
        /* a short write: finish it the slow way */
        size_t done = w > 0 ? (size_t)w : 0;
        bool ok = w >= 0;
        if (ok && done < MX_SPOOL_HDR)
            ok = write_full(s->fd, h + done, MX_SPOOL_HDR - done, s->size + done) == 0;
        if (ok) {
            size_t pd = done > MX_SPOOL_HDR ? done - MX_SPOOL_HDR : 0;
            ok = write_full(s->fd, (const uint8_t *)data + pd, len - pd,
                            s->size + MX_SPOOL_HDR + pd) == 0;
        }
        if (!ok)
            goto out_io;
    }
    if (++s->unsynced >= s->sync_every) {
        if (fdatasync(s->fd) != 0)
            goto out_io;
        s->unsynced = 0;
    }
    s->size += MX_SPOOL_HDR + len;
    s->records++;
    s->st.appended++;
    goto out_unlock;
out_io:
    s->st.io_errors++;
    mx_log(MX_LOG_ERROR, "spool %s: append: %s", s->path, strerror(errno));
    if (ftruncate(s->fd, (off_t)s->size) != 0) /* cut the partial record */
        mx_log(MX_LOG_ERROR, "spool %s: truncate: %s", s->path, strerror(errno));
    rc = MX_EIO;
out_unlock:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int mx_spool_sync(mx_spool_t *s)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->unsynced) {
        if (fdatasync(s->fd) != 0) {
            s->st.io_errors++;
            rc = MX_EIO;
        } else {
            s->unsynced = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Drop [0, keep_from) from the file: truncate when nothing is left, else
 * copy the rest to a temp file and rename it over. Caller holds mu. */
static int drop_prefix(struct mx_spool *s, uint64_t keep_from)
{
    char tmp[PATH_MAX + 8];
    uint8_t buf[SCAN_CHUNK];
    int nfd;

    if (keep_from == 0)
        return 0;
    if (keep_from >= s->size) {
        if (ftruncate(s->fd, 0) != 0 || fsync(s->fd) != 0)
            return MX_EIO;
        s->size = 0;
        s->unsynced = 0;
        return 0;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->path);
    nfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nfd < 0)
        return MX_EIO;
    for (uint64_t off = keep_from; off < s->size;) {
        size_t n = s->size - off < sizeof(buf) ? (size_t)(s->size - off) : sizeof(buf);
        if (read_full(s->fd, buf, n, off) != 0 || write_full(nfd, buf, n, off - keep_from) != 0)
            goto out_unlink;
        off += n;
    }
    if (fsync(nfd) != 0 || rename(tmp, s->path) != 0)
        goto out_unlink;
    (void)sync_dir(s->path);
    close(s->fd);
    s->fd = nfd;
    s->size -= keep_from;
    s->unsynced = 0;
    return 0;
out_unlink:
    close(nfd);
    unlink(tmp);
    return MX_EIO;
}

int mx_spool_replay(mx_spool_t *s, mx_spool_apply_fn apply, void *ctx, uint32_t *applied_out)
{
    struct rbuf b = {0};
    struct rec r;
    uint64_t end, off = 0, stop, skipped, corrupt = 0;
    uint32_t applied = 0;
    int rc = 0, v;

    if (applied_out)
        *applied_out = 0;
    pthread_mutex_lock(&s->mu);
    if (s->replaying) {
        pthread_mutex_unlock(&s->mu);
        return MX_EEXISTS;
    }
    s->replaying = true;
    if (s->unsynced && fdatasync(s->fd) == 0)
        s->unsynced = 0;
    end = s->size;
    pthread_mutex_unlock(&s->mu);

    stop = end;
    for (;;) {
        v = next_valid(s->fd, off, end, &r, &b, &skipped);
        if (skipped) {
            corrupt++;
            mx_log(MX_LOG_WARN, "spool %s: replay skipped %llu damaged bytes at offset %llu",
                   s->path, (unsigned long long)skipped, (unsigned long long)off);
        }
        if (v < 0) {
            mx_log(MX_LOG_ERROR, "spool %s: replay read: %s", s->path, strerror(errno));
            rc = MX_EIO;
            stop = off;
            break;
        }
        if (v == 0)
            break; /* stop = end: everything before it landed or was damaged */
        rc = apply(ctx, r.kind, b.p, r.len);
        if (rc != 0) {
            stop = r.off;
            break;
        }
        applied++;
        off = r.off + MX_SPOOL_HDR + r.len;
    }
    free(b.p);

    pthread_mutex_lock(&s->mu);
    int drc = drop_prefix(s, stop);
    if (drc != 0) {
        s->st.io_errors++;
        mx_log(MX_LOG_ERROR,
               "spool %s: dropping %u landed records failed; they will be "
               "replayed again",
               s->path, applied);
        if (rc == 0)
            rc = drc;
    } else {
        s->records -= applied <= s->records ? applied : s->records;
    }
    s->st.replayed += applied;
    s->st.corrupt += corrupt;
    s->replaying = false;
    pthread_mutex_unlock(&s->mu);
    if (applied_out)
        *applied_out = applied;
    return rc;
}

bool mx_spool_idle(mx_spool_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool idle = s->records == 0 && !s->replaying;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void mx_spool_stats(mx_spool_t *s, struct mx_spool_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->records = s->records;
    out->bytes = s->size;
    pthread_mutex_unlock(&s->mu);
}
