/* stub_harness.c - process and HTTP helpers for the mxstub system tests. */
#define _GNU_SOURCE
#include "stub_harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

const char *stub_shared_dir(void)
{
    const char *d = getenv("MX_SHARED_DIR");
    return d && *d ? d : "../shared"; /* ctest sets MX_SHARED_DIR */
}

void stub_fixture_path(const char *file, char *out, size_t cap)
{
    snprintf(out, cap, "%s/fixtures/nexon/%s", stub_shared_dir(), file);
}

/* mxstub with "--listen 127.0.0.1:0" (when listen) and args; stdout on a
 * pipe (listen: the address line) or captured */
static int spawn(struct mx_proc *p, const char *const *args, bool listen)
{
    char bin[4096];
    const char *argv[64];
    int n = 0;
    argv[n++] = mx_proc_bin("mxstub", bin, sizeof bin);
    if (listen) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct mx_proc_opts o = {.argv = argv, .out = listen ? MX_PROC_PIPE : MX_PROC_CAPTURE};
    return mx_proc_start(p, &o);
}

int stub_start(struct stub *s, const char *const *args)
{
    char line[256];
    memset(s, 0, sizeof(*s));
    if (spawn(&s->proc, args, true) != 0)
        return -1;
    s->pid = s->proc.pid;
    int rc = mx_proc_read_line(&s->proc, NULL, line, sizeof line, 5000);
    /* nothing reads stdout after the first line */
    close(s->proc.out);
    s->proc.out = -1;
    if (rc != 0 || strncmp(line, "listening 127.0.0.1:", 20) != 0) {
        fprintf(stderr, "harness: mxstub did not start (first line '%s')\n", line);
        stub_stop(s);
        return -1;
    }
    snprintf(s->addr, sizeof(s->addr), "%.40s", line + 10);
    s->port = atoi(line + 20);
    snprintf(s->base, sizeof(s->base), "http://%s", s->addr);
    return 0;
}

int stub_setup(void **state)
{
    struct stub *s = calloc(1, sizeof(*s));
    *state = s;
    return s ? 0 : -1;
}

int stub_teardown(void **state)
{
    struct stub *s = *state;
    stub_stop(s);
    free(s);
    return 0;
}

int stub_stop(struct stub *s)
{
    if (s->proc.pid <= 0)
        return -1;
    int st = mx_proc_stop(&s->proc, SIGTERM, 5000);
    mx_proc_release(&s->proc);
    s->pid = 0;
    return st;
}

int stub_run_exit(const char *const *args, int timeout_ms)
{
    struct mx_proc p;
    if (spawn(&p, args, false) != 0)
        return -1;
    int st = mx_proc_wait(&p, timeout_ms);
    mx_proc_release(&p);
    return st >= 0 && st < 128 ? st : -1; /* timeout or a crash: -1 */
}

/* ---- libcurl ---- */

struct sink {
    char *buf;
    size_t len;
};

static size_t sink_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    if (s->len + n > (64u << 20))
        return 0; /* bounded: a test never expects more */
    char *nb = realloc(s->buf, s->len + n + 1);
    if (!nb)
        return 0;
    s->buf = nb;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static int request(const char *url, const char *key, bool gzip, bool post, struct resp *r)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct sink body = {0}, head = {0};
    char kh[600];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    if (!h)
        return -1;
    if (key) {
        snprintf(kh, sizeof(kh), "x-nxopen-api-key: %s", key);
        hdrs = curl_slist_append(hdrs, kh);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &head);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (gzip)
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    if (post) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    double t0 = now_ms();
    rc = curl_easy_perform(h);
    r->ms = now_ms() - t0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    r->body = body.buf ? body.buf : strdup("");
    r->len = body.len;
    r->headers = head.buf ? head.buf : strdup("");
    if (rc != CURLE_OK) {
        fprintf(stderr, "harness: %s: %s\n", url, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

int http_get(const char *url, const char *key, bool gzip, struct resp *r)
{
    return request(url, key, gzip, false, r);
}

int http_post(const char *url, struct resp *r)
{
    return request(url, NULL, false, true, r);
}

void resp_free(struct resp *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

long stub_post(struct stub *st, const char *path_query)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", st->base, path_query);
    struct resp r = {0};
    http_post(url, &r);
    long s = r.status;
    resp_free(&r);
    return s;
}

long stub_ocid(struct stub *s, const char *name, char *ocid)
{
    char url[1024];
    struct resp r;
    long status;
    char *esc = curl_easy_escape(NULL, name, 0);
    snprintf(url, sizeof(url), "%s/maplestory/v1/id?character_name=%s", s->base, esc);
    curl_free(esc);
    ocid[0] = '\0';
    if (http_get(url, "test-key", false, &r) != 0) {
        resp_free(&r);
        return -1;
    }
    status = r.status;
    const char *p = strstr(r.body, "\"ocid\":\"");
    if (p && strlen(p + 8) >= 33)
        snprintf(ocid, 33, "%.32s", p + 8);
    resp_free(&r);
    return status;
}

long long stub_stat(struct stub *s, const char *key)
{
    char url[256], pat[128];
    struct resp r;
    long long v = -1;
    snprintf(url, sizeof(url), "%s/__stub/stats", s->base);
    if (http_get(url, NULL, false, &r) == 0) {
        snprintf(pat, sizeof(pat), "\"%s\":", key);
        const char *p = strstr(r.body, pat);
        if (p)
            v = atoll(p + strlen(pat));
    }
    resp_free(&r);
    return v;
}

/* ---- raw sockets ---- */

int raw_connect(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* count complete responses (headers + Content-Length body) in buf */
static int count_responses(const char *buf, size_t len)
{
    int n = 0;
    size_t off = 0;
    while (off < len) {
        const char *end = memmem(buf + off, len - off, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hlen = (size_t)(end - (buf + off)) + 4;
        const char *cl = memmem(buf + off, hlen, "Content-Length: ", 16);
        size_t blen = cl ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
        if (off + hlen + blen > len)
            break;
        off += hlen + blen;
        n++;
    }
    return n;
}

int raw_exchange(int fd, const char *buf, size_t len, int responses, int timeout_ms, char **in,
                 size_t *in_len)
{
    size_t sent = 0, got = 0, cap = 1 << 16;
    char *ib = malloc(cap + 1);
    double deadline = now_ms() + timeout_ms;
    int n = 0;
    bool eof = false;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (!eof && (n = count_responses(ib, got)) < responses) {
        struct pollfd p = {fd, POLLIN | (sent < len ? POLLOUT : 0), 0};
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t w = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                sent = len; /* peer gone: keep reading what it said */
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (got == cap) {
                cap *= 2;
                ib = realloc(ib, cap + 1);
            }
            ssize_t r = recv(fd, ib + got, cap - got, 0);
            if (r > 0)
                got += (size_t)r;
            else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                eof = true;
        }
    }
    ib[got] = '\0';
    *in = ib;
    *in_len = got;
    return count_responses(ib, got);
}

ssize_t raw_read_to_eof(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t got = 0;
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        ssize_t r = recv(fd, buf + got, cap - got - 1, 0);
        if (r <= 0) {
            buf[got] = '\0';
            return (ssize_t)got;
        }
        got += (size_t)r;
        if (got + 1 >= cap) {
            buf[got] = '\0';
            return (ssize_t)got;
        }
    }
}

int stub_first_character(struct stub *s, const char *key, char *out, size_t cap)
{
    char url[256];
    struct resp r;
    snprintf(url, sizeof url, "%s/maplestory/v1/character/list", s->base);
    if (http_get(url, key, false, &r) != 0 || r.status != 200)
        return -1;
    const char *p = strstr(r.body, "\"character_name\":\"");
    int rc = -1;
    if (p) {
        p += strlen("\"character_name\":\"");
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\""), p);
        rc = 0;
    }
    resp_free(&r);
    return rc;
}
