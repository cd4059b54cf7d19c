/* fuzz_http.c - libFuzzer harness over the socket-free HTTP core: llhttp
 * parsing, limits, routing, percent/UTF-8 decoding, query parsing, answers
 * in order with deferred ones completed out of order, backpressure, 408 and
 * EOF paths; plus the header-value parsers (traceparent, Accept-Encoding,
 * If-None-Match) and the PROXY protocol parser on the raw input.
 *
 * Input: byte 0 is control (bits 0-5: feed chunk size - 1, bit 6: EOF at
 * the end, bit 7: head timeout at the end), the rest is what a client sends.
 * Built and run by scripts/fuzz-http; seeds in test/fuzz/corpus-http/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../http/http_core_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    /* header-value parsers on the raw bytes (NUL-terminated copy) */
    char *s = malloc(len + 1);
    memcpy(s, in, len);
    s[len] = '\0';
    uint8_t t[16], sp[8], fl;
    (void)mx_http_traceparent_parse(s, strlen(s), t, sp, &fl);
    (void)mx_http_accepts_gzip(s);
    (void)mx_http_etag_match(s, "\"abc\"");
    free(s);
    /* the PROXY protocol header parser on the raw bytes */
    struct mx_proxy_hdr ph;
    size_t pused;
    if (mx_proxy_parse((const uint8_t *)in, len, &ph, &pused) == 0 && pused > len)
        abort();

    struct mx_http_opts o = {.max_header_bytes = 2048,
                             .max_body_bytes = 4096,
                             .max_pipeline = 8,
                             .max_output_bytes = 1 << 16};
    struct hh *h = hh_new(&o);
    size_t chunk = (size_t)(ctl & 0x3f) + 1, off = 0;
    int stuck = 0;
    while (off < len && stuck < 3) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = mx__http_conn_feed(&h->conn, in + off, n);
        off += used;
        if (used == 0) {
            /* paused: complete the app's work and retry */
            hh_answer_deferred(h);
            stuck++;
        } else {
            stuck = 0;
        }
        if (h->ndeferred > 4)
            hh_answer_deferred(h);
    }
    if (ctl & 0x80)
        mx__http_conn_head_timeout(&h->conn);
    if (ctl & 0x40)
        mx__http_conn_eof(&h->conn);
    hh_answer_deferred(h);
    /* every answer is a well-formed status line */
    if (h->out_len && memcmp(h->out, "HTTP/1.1 ", 9) != 0)
        abort();
    hh_free(h);
    return 0;
}
