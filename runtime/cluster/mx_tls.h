/* mx_tls.h - mutual TLS for the nng links between nodes and to the admin
 * endpoint (nng's tls+tcp:// transport, with OpenSSL as nng's TLS engine:
 * mx_tls_engine.h; Debian's libnng would use its mbedTLS).
 *
 * One mx_tls holds a server and a client nng_tls_config built from the
 * cluster CA, this node's certificate and its key (PEM files named by
 * MX_TLS_CA, MX_TLS_CERT, MX_TLS_KEY). Both ends present a certificate and
 * both check the other's against the cluster CA: any holder of a
 * certificate signed by that CA is a cluster member, so the CA must be
 * dedicated to one cluster. Host names are not checked (node addresses
 * come from the registry, certificates from the operator). See
 * docs/cluster.md "Threat model".
 *
 * The listener is configured with optional client authentication and every
 * new connection is checked in a pipe callback (mx_tls_pipe_ok): a peer with
 * no certificate, or one the CA did not sign, is closed there and counted,
 * which a handshake failure inside the TLS library would not be.
 */
#ifndef MX_TLS_H
#define MX_TLS_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mx_tls mx_tls_t;

/* mx_tls_load - read the three PEM files (each at most 1 MiB) and build the
 * configurations. Returns 0 and *out, or MX_ECONFIG with a message naming
 * the setting and the file in err (e.g. "MX_TLS_KEY: cannot read ..."), or
 * MX_EINVAL when a path is NULL/empty. Any thread; blocks on file reads. */
int mx_tls_load(const char *ca, const char *cert, const char *key, mx_tls_t **out, char *err,
                size_t errcap);

/* mx_tls_free - drop the configurations (nng keeps its own references for
 * listeners and dialers that still use them). NULL is a no-op. */
void mx_tls_free(mx_tls_t *t);

/* mx_tls_url - the URL to use: with t, "tcp://" becomes "tls+tcp://" and
 * "tls+tcp://" stays; without t, "tls+tcp://" is refused (MX_EINVAL: no
 * certificate to present). Other schemes (ipc, inproc) pass unchanged:
 * they never leave the host. Returns 0 or MX_EINVAL (also when out is too
 * small). */
int mx_tls_url(const mx_tls_t *t, const char *url, char *out, size_t cap);

/* mx_tls_listener, mx_tls_dialer - install the server / client
 * configuration on an nng listener or dialer not yet started. Returns 0 or
 * MX_EIO. */
int mx_tls_listener(const mx_tls_t *t, nng_listener l);
int mx_tls_dialer(const mx_tls_t *t, nng_dialer d);

/* mx_tls_pipe_ok - whether the peer of a TLS pipe presented a certificate
 * the cluster CA signed (NNG_OPT_TLS_VERIFIED). For a pipe of another
 * transport (ipc, inproc, or plain tcp when TLS is off) returns true. Call
 * from an NNG_PIPE_EV_ADD_PRE callback. */
bool mx_tls_pipe_ok(nng_pipe p);

/* A gate on a listening socket's inbound connections (nng pipes): at most
 * max pipes at once, and with TLS only peers whose certificate the cluster
 * CA signed. Refused pipes are closed before the protocol sees them and
 * counted. */
struct mx_pipe_gate {
    pthread_mutex_t mu;
    uint32_t max;     /* pipes at once */
    uint32_t n;       /* live pipes; under mu */
    uint32_t *ids;    /* their ids (max entries); under mu */
    int64_t *last_ms; /* when each last completed a message (monotonic); under mu */
    bool tls;         /* check NNG_OPT_TLS_VERIFIED */
    _Atomic uint64_t refused_tls, refused_limit, accepted, timed_out; /* relaxed: statistics */
};

/* mx_pipe_gate_install - initialise g (max >= 1) and register it on sock's
 * pipe events. g must outlive the socket (close the socket first, then
 * mx_pipe_gate_fini). Returns 0 or MX_EIO. */
int mx_pipe_gate_install(struct mx_pipe_gate *g, nng_socket sock, uint32_t max, bool tls);

/* mx_pipe_gate_fini - free what install allocated. */
void mx_pipe_gate_fini(struct mx_pipe_gate *g);

/* mx_pipe_gate_live - pipes open now. Any thread. */
uint32_t mx_pipe_gate_live(struct mx_pipe_gate *g);

/* mx_pipe_gate_touch - pipe id completed a message now. Any thread. */
void mx_pipe_gate_touch(struct mx_pipe_gate *g, uint32_t id);

/* mx_pipe_gate_reap - close the pipes that completed no message for
 * idle_ms (a peer that stalls mid-frame, or connects and says nothing, holds
 * a receive buffer only this long); they are counted in timed_out. Returns
 * how many were closed. Any thread but a pipe callback. */
uint32_t mx_pipe_gate_reap(struct mx_pipe_gate *g, int64_t idle_ms);

/* mx_url_is_loopback - whether an nng URL is reachable only from this host:
 * ipc://, inproc://, or a tcp/tls+tcp URL whose host (as mx_url_hostport
 * reads it) is an address in 127.0.0.0/8, ::1, or localhost. */
bool mx_url_is_loopback(const char *url);

#endif
