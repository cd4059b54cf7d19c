/* curluv.c - see mx_curluv.h. */
#include "mx_curluv.h"

#include <stdlib.h>
#include <string.h>

#include "mx_err.h"

/* One watched socket; freed in its close callback (never touches cu after
 * uv_close). */
struct mx__curluv_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct mx_curluv *cu;
    struct mx__curluv_sock *prev, *next;
};

static void read_done(struct mx_curluv *cu)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(cu->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            cu->done(cu->ctx, msg->easy_handle, msg->data.result);
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_close(struct mx_curluv *cu, struct mx__curluv_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        cu->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct mx__curluv_sock *s = h->data;
    struct mx_curluv *cu = s->cu;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(cu->multi, s->fd, flags, &running);
    read_done(cu);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct mx_curluv *cu = userp;
    struct mx__curluv_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(cu->multi, fd, NULL);
            sock_close(cu, s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            abort();
        s->fd = fd;
        s->cu = cu;
        if (uv_poll_init_socket(cu->timer.loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->next = cu->socks;
        if (cu->socks)
            cu->socks->prev = s;
        cu->socks = s;
        curl_multi_assign(cu->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *t)
{
    struct mx_curluv *cu = t->data;
    int running;
    curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    read_done(cu);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct mx_curluv *cu = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&cu->timer);
    else
        uv_timer_start(&cu->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

int mx_curluv_init(struct mx_curluv *cu, uv_loop_t *loop, mx_curluv_done_fn done, void *ctx)
{
    *cu = (struct mx_curluv){.done = done, .ctx = ctx};
    cu->multi = curl_multi_init();
    if (!cu->multi || uv_timer_init(loop, &cu->timer) != 0) {
        if (cu->multi)
            curl_multi_cleanup(cu->multi);
        cu->multi = NULL;
        return MX_EINTERNAL;
    }
    cu->timer.data = cu;
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct mx_curluv *cu = h->data;
    if (cu->closed)
        cu->closed(cu->ctx); /* may free cu */
}

void mx_curluv_close(struct mx_curluv *cu, void (*closed)(void *ctx))
{
    curl_multi_cleanup(cu->multi); /* may still report sockets to remove */
    cu->multi = NULL;
    while (cu->socks)
        sock_close(cu, cu->socks);
    cu->closed = closed;
    uv_timer_stop(&cu->timer);
    uv_close((uv_handle_t *)&cu->timer, on_timer_closed);
}

size_t mx_curluv_body_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n,
                             size_t max)
{
    if (n > max || *len > max - n)
        return 0;
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64 * 1024;
        while (c < *len + n + 1)
            c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb)
            return 0;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return n;
}
