/* mx_tls.c - the cluster's mutual TLS configuration (see mx_tls.h and
 * docs/cluster.md). Thin: nng's TLS supplement does the protocol, this file
 * loads the files once, names the failing setting, and decides which URLs
 * stay on the host.
 */
#include "mx_tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mx_actor.h"
#include "mx_err.h"
#include "mx_tls_engine.h"
#include "mx_url.h"

#define PEM_MAX (1u << 20)

struct mx_tls {
    nng_tls_config *server; /* listeners: optional client certificate, checked per pipe */
    nng_tls_config *client; /* dialers: the server's certificate is required */
};

/* The whole file as a NUL-terminated string, or NULL with err filled. */
static char *read_pem(const char *setting, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "%s: cannot read %s", setting, path);
        return NULL;
    }
    char *buf = malloc(PEM_MAX + 1);
    if (!buf) {
        fprintf(stderr, "mx: out of memory (tls)\n");
        abort();
    }
    size_t n = fread(buf, 1, PEM_MAX + 1, f);
    bool bad = ferror(f) || n == 0 || n > PEM_MAX;
    fclose(f);
    if (bad || !strstr(buf, "-----BEGIN ")) {
        snprintf(err, errcap, "%s: %s is empty, over 1 MiB or not PEM", setting, path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int make_config(nng_tls_config **out, nng_tls_mode mode, const char *ca, const char *cert,
                       const char *key, char *err, size_t errcap)
{
    nng_tls_config *c;
    int rv = mx_tls_engine_register();
    if (rv != 0) {
        snprintf(err, errcap, "TLS: cannot install OpenSSL as nng's TLS engine: %s",
                 nng_strerror(rv));
        return MX_ECONFIG;
    }
    rv = nng_tls_config_alloc(&c, mode);
    if (rv != 0) {
        snprintf(err, errcap, "TLS: %s (is libnng built with TLS?)", nng_strerror(rv));
        return MX_ECONFIG;
    }
    const char *what = "MX_TLS_CA";
    if ((rv = nng_tls_config_ca_chain(c, ca, NULL)) == 0) {
        what = "MX_TLS_CERT/MX_TLS_KEY";
        rv = nng_tls_config_own_cert(c, cert, key, NULL);
    }
    if (rv == 0) {
        what = "TLS";
        rv = nng_tls_config_auth_mode(c, mode == NNG_TLS_MODE_SERVER ? NNG_TLS_AUTH_MODE_OPTIONAL
                                                                     : NNG_TLS_AUTH_MODE_REQUIRED);
    }
    if (rv == 0)
        rv = nng_tls_config_version(c, NNG_TLS_1_2, NNG_TLS_1_3);
    if (rv != 0) {
        snprintf(err, errcap, "%s: refused by the TLS library: %s", what, nng_strerror(rv));
        nng_tls_config_free(c);
        return MX_ECONFIG;
    }
    *out = c;
    return 0;
}

int mx_tls_load(const char *ca, const char *cert, const char *key, mx_tls_t **out, char *err,
                size_t errcap)
{
    if (!ca || !*ca || !cert || !*cert || !key || !*key) {
        snprintf(err, errcap, "MX_TLS_CA, MX_TLS_CERT and MX_TLS_KEY must all be set");
        return MX_EINVAL;
    }
    int rc = MX_ECONFIG;
    char *ca_pem = NULL, *cert_pem = NULL, *key_pem = NULL;
    struct mx_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return MX_ENOMEM;
    if (!(ca_pem = read_pem("MX_TLS_CA", ca, err, errcap)) ||
        !(cert_pem = read_pem("MX_TLS_CERT", cert, err, errcap)) ||
        !(key_pem = read_pem("MX_TLS_KEY", key, err, errcap)))
        goto out_free;
    if ((rc = make_config(&t->server, NNG_TLS_MODE_SERVER, ca_pem, cert_pem, key_pem, err,
                          errcap)) != 0 ||
        (rc = make_config(&t->client, NNG_TLS_MODE_CLIENT, ca_pem, cert_pem, key_pem, err,
                          errcap)) != 0)
        goto out_free;
    *out = t;
    t = NULL;
out_free:
    if (key_pem) /* the key does not outlive its use in memory we own */
        memset(key_pem, 0, strlen(key_pem));
    free(ca_pem);
    free(cert_pem);
    free(key_pem);
    mx_tls_free(t);
    return rc;
}

void mx_tls_free(mx_tls_t *t)
{
    if (!t)
        return;
    if (t->server)
        nng_tls_config_free(t->server);
    if (t->client)
        nng_tls_config_free(t->client);
    free(t);
}

int mx_tls_url(const mx_tls_t *t, const char *url, char *out, size_t cap)
{
    const char *rest = NULL;
    if (strncasecmp(url, "tls+tcp://", 10) == 0)
        rest = url + 10;
    else if (strncasecmp(url, "tcp://", 6) == 0)
        rest = url + 6;
    int n;
    if (!rest)
        n = snprintf(out, cap, "%s", url);
    else if (t)
        n = snprintf(out, cap, "tls+tcp://%s", rest);
    else if (rest == url + 10)
        return MX_EINVAL;
    else
        n = snprintf(out, cap, "%s", url);
    return n < 0 || (size_t)n >= cap ? MX_EINVAL : 0;
}

int mx_tls_listener(const mx_tls_t *t, nng_listener l)
{
    return nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, t->server) == 0 ? 0 : MX_EIO;
}

int mx_tls_dialer(const mx_tls_t *t, nng_dialer d)
{
    return nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, t->client) == 0 ? 0 : MX_EIO;
}

bool mx_tls_pipe_ok(nng_pipe p)
{
    bool verified = false;
    int rv = nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified);
    if (rv == NNG_ENOTSUP)
        return true; /* not a TLS pipe */
    return rv == 0 && verified;
}

static void gate_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct mx_pipe_gate *g = arg;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    pthread_mutex_lock(&g->mu);
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        _Atomic uint64_t *refused = NULL;
        if (g->tls && !mx_tls_pipe_ok(p))
            refused = &g->refused_tls;
        else if (g->n >= g->max)
            refused = &g->refused_limit;
        else {
            g->last_ms[g->n] = mx_now_ms();
            g->ids[g->n++] = id;
        }
        pthread_mutex_unlock(&g->mu);
        /* relaxed: statistics */
        atomic_fetch_add_explicit(refused ? refused : &g->accepted, 1, memory_order_relaxed);
        if (refused)
            nng_pipe_close(p);
        return;
    }
    for (uint32_t i = 0; i < g->n; i++) { /* REM_POST: a refused pipe is not listed */
        if (g->ids[i] == id) {
            g->n--;
            g->ids[i] = g->ids[g->n];
            g->last_ms[i] = g->last_ms[g->n];
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

int mx_pipe_gate_install(struct mx_pipe_gate *g, nng_socket sock, uint32_t max, bool tls)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    g->max = max ? max : 1;
    g->tls = tls;
    g->ids = calloc(g->max, sizeof(*g->ids));
    g->last_ms = calloc(g->max, sizeof(*g->last_ms));
    if (!g->ids || !g->last_ms) {
        fprintf(stderr, "mx: out of memory (pipe gate)\n");
        abort();
    }
    if (nng_pipe_notify(sock, NNG_PIPE_EV_ADD_PRE, gate_cb, g) != 0 ||
        nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, gate_cb, g) != 0)
        return MX_EIO;
    return 0;
}

void mx_pipe_gate_fini(struct mx_pipe_gate *g)
{
    free(g->ids);
    free(g->last_ms);
    g->ids = NULL;
    g->last_ms = NULL;
    pthread_mutex_destroy(&g->mu);
}

uint32_t mx_pipe_gate_live(struct mx_pipe_gate *g)
{
    pthread_mutex_lock(&g->mu);
    uint32_t n = g->n;
    pthread_mutex_unlock(&g->mu);
    return n;
}

void mx_pipe_gate_touch(struct mx_pipe_gate *g, uint32_t id)
{
    int64_t now = mx_now_ms();
    pthread_mutex_lock(&g->mu);
    for (uint32_t i = 0; i < g->n; i++) {
        if (g->ids[i] == id) {
            g->last_ms[i] = now;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

uint32_t mx_pipe_gate_reap(struct mx_pipe_gate *g, int64_t idle_ms)
{
    uint32_t stale[64], k = 0;
    int64_t now = mx_now_ms();
    pthread_mutex_lock(&g->mu);
    for (uint32_t i = 0; i < g->n && k < 64; i++)
        if (now - g->last_ms[i] > idle_ms)
            stale[k++] = g->ids[i];
    pthread_mutex_unlock(&g->mu);
    /* outside the lock: closing runs the REM_POST callback, which takes it */
    for (uint32_t i = 0; i < k; i++)
        nng_pipe_close((nng_pipe){.id = stale[i]});
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&g->timed_out, k, memory_order_relaxed);
    return k;
}

bool mx_url_is_loopback(const char *url)
{
    if (strncmp(url, "ipc://", 6) == 0 || strncmp(url, "inproc://", 9) == 0)
        return true;
    const char *h = strstr(url, "://");
    char host[256];
    unsigned char a[16];
    /* the host as the one URL parser reads it: "127.evil.example" is a name */
    if (!h || mx_url_hostport(h + 3, strlen(h + 3), true, host, sizeof host, NULL, NULL) != 0)
        return false;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, &in6addr_loopback, 16) == 0;
}
