/* mx_curluv.h - libcurl's multi interface driven by an actor's libuv loop.
 *
 * curl tells which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to
 * wake (CURLMOPT_TIMERFUNCTION); uv_poll and a uv_timer on the loop report
 * back with curl_multi_socket_action, and every finished transfer is handed
 * to the owner's done callback. The fetcher and the outbox relay both run
 * their HTTP this way; this is the one copy of the glue.
 *
 * Everything here runs on the loop's thread (the owning actor's scheduler).
 */
#ifndef MX_CURLUV_H
#define MX_CURLUV_H

#include <curl/curl.h>
#include <uv.h>

struct mx__curluv_sock;

/* A transfer finished: easy (still in the multi; the owner removes it) and
 * its result. */
typedef void (*mx_curluv_done_fn)(void *ctx, CURL *easy, CURLcode rc);

struct mx_curluv {
    CURLM *multi; /* add and remove easy handles here */
    uv_timer_t timer;
    struct mx__curluv_sock *socks;
    mx_curluv_done_fn done;
    void *ctx;
    void (*closed)(void *ctx);
};

/* mx_curluv_init - create the multi handle on loop (cu is the caller's and
 * must stay put until closed). Returns 0, or MX_EINTERNAL (nothing to
 * close then). */
int mx_curluv_init(struct mx_curluv *cu, uv_loop_t *loop, mx_curluv_done_fn done, void *ctx);

/* mx_curluv_close - clean the multi up (remove the easy handles first),
 * stop watching its sockets and close the timer; closed(ctx) (may be NULL)
 * runs once the timer is closed, and may free the memory holding cu. */
void mx_curluv_close(struct mx_curluv *cu, void (*closed)(void *ctx));

/* mx_curluv_body_append - what a CURLOPT_WRITEFUNCTION does with a response
 * body kept in memory: append p[0..n) to *buf (length *len, capacity *cap,
 * kept NUL-terminated), growing it by doubling from 64 KiB. Returns n, or 0
 * (curl then fails the transfer with CURLE_WRITE_ERROR) when the body would
 * pass max bytes or memory runs out; *buf is unchanged then. */
size_t mx_curluv_body_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n,
                             size_t max);

#endif
