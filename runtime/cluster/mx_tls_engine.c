/* mx_tls_engine.c - an OpenSSL engine for nng's TLS layer (see
 * mx_tls_engine.h and docs/cluster.md "Speed").
 *
 * Why: Debian's libnng 1.5.2 does TLS with mbedTLS 2.28, whose ciphers are
 * portable C: its default suite here is ChaCha20-Poly1305 at about
 * 350 MB/s per core (AES-GCM is slower still, 260 MB/s), against 3.8-4.4
 * GB/s for OpenSSL's assembly. perf of bench_remote over TLS put 68% of
 * the samples in libmbedcrypto. nng lets a program replace the engine
 * through its public nng/supplemental/tls/engine.h (nng_tls_engine_register)
 * without rebuilding the library: nng keeps the transport (tls+tcp, its
 * buffers and threads), this file only turns plaintext into records and
 * back, and checks certificates, with OpenSSL.
 *
 * The semantics follow nng's own mbedTLS engine, which this replaces:
 * - a client requires and verifies the server's certificate; a server asks
 *   for a client certificate only with NNG_TLS_AUTH_MODE_OPTIONAL or
 *   REQUIRED. With OPTIONAL the handshake goes on whatever the client sent
 *   (as mbedTLS's VERIFY_OPTIONAL does) and verified() says whether a
 *   certificate was presented and verified, so mx_pipe_gate can refuse and
 *   count the connection (mx_tls.h);
 * - a server name set on the configuration is checked against the peer's
 *   certificate (DNS name or IP address) and sent as SNI;
 * - every certificate of the CA chain is a trust anchor, a root or not
 *   (mbedTLS's rule; OpenSSL's X509_V_FLAG_PARTIAL_CHAIN);
 * - TLS 1.2 is the floor (a request for 1.0 or 1.1 is refused), 1.3 is
 *   used when both ends allow it (mbedTLS 2.28 stops at 1.2), and session
 *   tickets are off (no resumption: every connection authenticates with
 *   its certificate).
 * Threads: nng calls the config ops under the configuration's lock and the
 * connection ops under the connection's lock; OpenSSL 3 needs no locking of
 * its own. OpenSSL's error queue is per thread, so each call clears it
 * first.
 */
#include "mx_tls_engine.h"

#include <nng/nng.h>
#include <nng/supplemental/tls/engine.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct nng_tls_engine_config {
    SSL_CTX *ctx;
    bool server;
    bool optional;     /* server: ask for a certificate, let the handshake go on */
    char *server_name; /* client: checked against the server's certificate */
};

struct nng_tls_engine_conn {
    void *tls;  /* nng's handle for nng_tls_engine_send / _recv */
    SSL *ssl;   /* owns the BIO */
    int io_err; /* the nng error of the last failed transfer, for the caller */
    /* a frame's length prefix, held back to go out in one record with the
     * bytes that follow it (conn_send) */
    uint8_t held[8];
    bool has_held;
    uint8_t *join;   /* held + the next write, until OpenSSL has taken it */
    size_t join_cap; /* allocated */
    size_t join_len; /* 0: nothing pending */
    size_t join_src; /* bytes of the caller's buffer in join */
};

static BIO_METHOD *bio_method; /* created once by mx_tls_engine_register */

/* ---- the BIO: OpenSSL's records in and out through nng's buffers ---- */

static int bio_write(BIO *b, const char *buf, int len)
{
    struct nng_tls_engine_conn *ec = BIO_get_data(b);
    size_t sz = (size_t)len;
    BIO_clear_retry_flags(b);
    int rv = nng_tls_engine_send(ec->tls, (const uint8_t *)buf, &sz);
    if (rv == 0)
        return (int)sz;
    if (rv == NNG_EAGAIN) {
        BIO_set_retry_write(b);
        return -1;
    }
    ec->io_err = rv;
    return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct nng_tls_engine_conn *ec = BIO_get_data(b);
    size_t sz = (size_t)len;
    BIO_clear_retry_flags(b);
    int rv = nng_tls_engine_recv(ec->tls, (uint8_t *)buf, &sz);
    if (rv == 0)
        return (int)sz;
    if (rv == NNG_EAGAIN) {
        BIO_set_retry_read(b);
        return -1;
    }
    ec->io_err = rv;
    return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH; /* nng sends as soon as it has bytes */
}

/* An OpenSSL result as an nng error: NNG_EAGAIN when it waits for I/O. */
static int ssl_err(struct nng_tls_engine_conn *ec, int ret)
{
    switch (SSL_get_error(ec->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return NNG_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return NNG_ECLOSED;
    case SSL_ERROR_SYSCALL:
        return ec->io_err ? ec->io_err : NNG_ECLOSED;
    default:
        return SSL_get_verify_result(ec->ssl) != X509_V_OK ? NNG_EPEERAUTH : NNG_ECRYPTO;
    }
}

/* ---- connections ---- */

static int conn_init(struct nng_tls_engine_conn *ec, void *tls, struct nng_tls_engine_config *cfg)
{
    ERR_clear_error();
    ec->tls = tls;
    if (!(ec->ssl = SSL_new(cfg->ctx)))
        return NNG_ENOMEM;
    BIO *b = BIO_new(bio_method);
    if (!b) {
        SSL_free(ec->ssl);
        ec->ssl = NULL;
        return NNG_ENOMEM;
    }
    BIO_set_data(b, ec);
    BIO_set_init(b, 1);
    SSL_set_bio(ec->ssl, b, b);
    if (cfg->server) {
        SSL_set_accept_state(ec->ssl);
        return 0;
    }
    SSL_set_connect_state(ec->ssl);
    if (!cfg->server_name)
        return 0;
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(cfg->server_name);
    int ok;
    if (ip) {
        ok = X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ec->ssl), ASN1_STRING_get0_data(ip),
                                       (size_t)ASN1_STRING_length(ip));
        ASN1_OCTET_STRING_free(ip);
    } else {
        ok = SSL_set_tlsext_host_name(ec->ssl, cfg->server_name) &&
             SSL_set1_host(ec->ssl, cfg->server_name);
    }
    if (!ok) {
        SSL_free(ec->ssl);
        ec->ssl = NULL;
        return NNG_ENOMEM;
    }
    return 0;
}

static void conn_fini(struct nng_tls_engine_conn *ec)
{
    SSL_free(ec->ssl);
    free(ec->join);
}

static void conn_close(struct nng_tls_engine_conn *ec)
{
    if (!ec->ssl) /* init failed or never ran */
        return;
    /* close_notify, best effort; nng closes the TCP connection itself */
    ERR_clear_error();
    (void)SSL_shutdown(ec->ssl);
}

static int conn_handshake(struct nng_tls_engine_conn *ec)
{
    ERR_clear_error();
    int ret = SSL_do_handshake(ec->ssl);
    return ret == 1 ? 0 : ssl_err(ec, ret);
}

static int conn_recv(struct nng_tls_engine_conn *ec, uint8_t *buf, size_t *szp)
{
    size_t n;
    ERR_clear_error();
    int ret = SSL_read_ex(ec->ssl, buf, *szp, &n);
    if (ret != 1)
        return ssl_err(ec, ret);
    *szp = n;
    return 0;
}

/* tlstran frames every message as an 8-byte big-endian length and then the
 * message, and nng's TLS layer hands the engine one part at a time: the
 * length alone became a record (and a TCP send the body's record waited
 * for), and the receiver took a record and a hand-off for it. A write of
 * exactly 8 bytes that is such a length (not 0, under 2^40: the SP
 * negotiation header "\0SP\0..." is not one) is held and written with the
 * next write, which tlstran always issues at once (the length promises
 * that many bytes). The copy is the price: held + the message in one
 * buffer, kept until OpenSSL has taken it all (nng retries the same part
 * after NNG_EAGAIN). */
static bool is_frame_length(const uint8_t *b, size_t n)
{
    if (n != 8 || b[0] || b[1] || b[2])
        return false;
    for (int i = 3; i < 8; i++)
        if (b[i])
            return true;
    return false;
}

static int send_joined(struct nng_tls_engine_conn *ec, const uint8_t *buf, size_t *szp)
{
    if (!ec->join_len) {
        size_t need = sizeof(ec->held) + *szp;
        if (need > ec->join_cap) {
            uint8_t *j = realloc(ec->join, need);
            if (!j)
                return NNG_ENOMEM;
            ec->join = j;
            ec->join_cap = need;
        }
        memcpy(ec->join, ec->held, sizeof(ec->held));
        memcpy(ec->join + sizeof(ec->held), buf, *szp);
        ec->join_len = need;
        ec->join_src = *szp;
    } else if (*szp != ec->join_src) {
        return NNG_EINTERNAL; /* nng retries with the same part: never */
    }
    size_t n;
    ERR_clear_error();
    int ret = SSL_write_ex(ec->ssl, ec->join, ec->join_len, &n);
    if (ret != 1)
        return ssl_err(ec, ret);
    *szp = ec->join_src;
    ec->has_held = false;
    ec->join_len = 0;
    return 0;
}

/* Without SSL_MODE_ENABLE_PARTIAL_WRITE a write finishes the whole buffer
 * (nng retries it with the same buffer after NNG_EAGAIN), so nng completes
 * one send per message part rather than one per 16 KiB record. */
static int conn_send(struct nng_tls_engine_conn *ec, const uint8_t *buf, size_t *szp)
{
    if (ec->has_held)
        return send_joined(ec, buf, szp);
    if (is_frame_length(buf, *szp) && SSL_is_init_finished(ec->ssl)) {
        memcpy(ec->held, buf, sizeof(ec->held));
        ec->has_held = true;
        return 0; /* taken: *szp stays 8 */
    }
    size_t n;
    ERR_clear_error();
    int ret = SSL_write_ex(ec->ssl, buf, *szp, &n);
    if (ret != 1)
        return ssl_err(ec, ret);
    *szp = n;
    return 0;
}

static bool conn_verified(struct nng_tls_engine_conn *ec)
{
    /* OpenSSL reports X509_V_OK when no certificate was presented at all */
    return ec->ssl && SSL_get0_peer_certificate(ec->ssl) != NULL &&
           SSL_get_verify_result(ec->ssl) == X509_V_OK;
}

/* ---- configurations ---- */

/* OPTIONAL: record the verdict (SSL_get_verify_result keeps it) and go on */
static int verify_go_on(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

static void config_apply_auth(struct nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
    cfg->optional = mode == NNG_TLS_AUTH_MODE_OPTIONAL;
    switch (mode) {
    case NNG_TLS_AUTH_MODE_NONE:
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_NONE, NULL);
        break;
    case NNG_TLS_AUTH_MODE_OPTIONAL:
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_PEER, verify_go_on);
        break;
    case NNG_TLS_AUTH_MODE_REQUIRED:
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        break;
    }
}

static void config_fini(struct nng_tls_engine_config *cfg)
{
    SSL_CTX_free(cfg->ctx);
    free(cfg->server_name);
}

static int config_init(struct nng_tls_engine_config *cfg, nng_tls_mode mode)
{
    ERR_clear_error();
    cfg->server = mode == NNG_TLS_MODE_SERVER;
    cfg->ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
    if (!cfg->ctx)
        return NNG_ENOMEM;
    SSL_CTX_set_min_proto_version(cfg->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(cfg->ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(cfg->ctx, 0);
    SSL_CTX_set_session_cache_mode(cfg->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(cfg->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* as nng's mbedTLS engine: a client requires the server's certificate,
     * a server asks for none until told */
    config_apply_auth(cfg, cfg->server ? NNG_TLS_AUTH_MODE_NONE : NNG_TLS_AUTH_MODE_REQUIRED);
    return 0;
}

static int config_server(struct nng_tls_engine_config *cfg, const char *name)
{
    char *dup = strdup(name);
    if (!dup)
        return NNG_ENOMEM;
    free(cfg->server_name);
    cfg->server_name = dup;
    return 0;
}

static int config_auth(struct nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
    if (mode != NNG_TLS_AUTH_MODE_NONE && mode != NNG_TLS_AUTH_MODE_OPTIONAL &&
        mode != NNG_TLS_AUTH_MODE_REQUIRED)
        return NNG_EINVAL;
    config_apply_auth(cfg, mode);
    return 0;
}

/* certs: one or more PEM certificates; crl: PEM CRLs or NULL */
static int config_ca_chain(struct nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
    ERR_clear_error();
    X509_STORE *st = SSL_CTX_get_cert_store(cfg->ctx);
    int rv = NNG_EINVAL, n = 0;
    BIO *b = BIO_new_mem_buf(certs, -1);
    if (!b)
        return NNG_ENOMEM;
    for (X509 *x; (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL; n++) {
        int ok = X509_STORE_add_cert(st, x);
        X509_free(x);
        if (!ok)
            goto out_free;
    }
    if (n == 0)
        goto out_free;
    /* every certificate given is a trust anchor, a root or not, as with
     * mbedTLS's CA chain */
    X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    BIO_free(b);
    b = NULL;
    if (crl) {
        if (!(b = BIO_new_mem_buf(crl, -1)))
            return NNG_ENOMEM;
        n = 0;
        for (X509_CRL *c; (c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL; n++) {
            int ok = X509_STORE_add_crl(st, c);
            X509_CRL_free(c);
            if (!ok)
                goto out_free;
        }
        if (n == 0)
            goto out_free;
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    rv = 0;
out_free:
    BIO_free(b);
    ERR_clear_error(); /* the end of the PEM stream leaves an entry */
    return rv;
}

/* The password callback: the given password or none (never a prompt). */
static int pem_pass(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pass = u;
    size_t n = pass ? strlen(pass) : 0;
    if (!pass || n > (size_t)size)
        return 0;
    memcpy(buf, pass, n);
    return (int)n;
}

/* cert: the certificate then any intermediates (PEM); key: its private key
 * (PEM, may be the same text); pass: the key's password or NULL */
static int config_own_cert(struct nng_tls_engine_config *cfg, const char *cert, const char *key,
                           const char *pass)
{
    ERR_clear_error();
    int rv = NNG_EINVAL;
    EVP_PKEY *pk = NULL;
    BIO *b = BIO_new_mem_buf(cert, -1);
    if (!b)
        return NNG_ENOMEM;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (!x || SSL_CTX_use_certificate(cfg->ctx, x) != 1)
        goto out_free;
    SSL_CTX_clear_chain_certs(cfg->ctx);
    for (X509 *c; (c = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL;) {
        if (SSL_CTX_add0_chain_cert(cfg->ctx, c) != 1) {
            X509_free(c);
            goto out_free;
        }
    }
    BIO_free(b);
    if (!(b = BIO_new_mem_buf(key, -1))) {
        rv = NNG_ENOMEM;
        goto out_free;
    }
    pk = PEM_read_bio_PrivateKey(b, NULL, pem_pass, (void *)pass);
    if (pk && SSL_CTX_use_PrivateKey(cfg->ctx, pk) == 1 && SSL_CTX_check_private_key(cfg->ctx) == 1)
        rv = 0;
out_free:
    EVP_PKEY_free(pk);
    X509_free(x);
    BIO_free(b);
    ERR_clear_error();
    return rv;
}

static int proto_version(nng_tls_version v)
{
    switch (v) {
    case NNG_TLS_1_2:
        return TLS1_2_VERSION;
    case NNG_TLS_1_3:
        return TLS1_3_VERSION;
    default:
        return 0; /* 1.0 and 1.1 are refused */
    }
}

static int config_version(struct nng_tls_engine_config *cfg, nng_tls_version min_ver,
                          nng_tls_version max_ver)
{
    int lo = proto_version(min_ver), hi = proto_version(max_ver);
    if (!lo || !hi || lo > hi)
        return NNG_ENOTSUP;
    if (SSL_CTX_set_min_proto_version(cfg->ctx, lo) != 1 ||
        SSL_CTX_set_max_proto_version(cfg->ctx, hi) != 1)
        return NNG_ENOTSUP;
    return 0;
}

static nng_tls_engine_config_ops config_ops = {
    .size = sizeof(struct nng_tls_engine_config),
    .init = config_init,
    .fini = config_fini,
    .server = config_server,
    .auth = config_auth,
    .ca_chain = config_ca_chain,
    .own_cert = config_own_cert,
    .version = config_version,
};

static nng_tls_engine_conn_ops conn_ops = {
    .size = sizeof(struct nng_tls_engine_conn),
    .init = conn_init,
    .fini = conn_fini,
    .close = conn_close,
    .handshake = conn_handshake,
    .recv = conn_recv,
    .send = conn_send,
    .verified = conn_verified,
};

static const nng_tls_engine engine = {
    .version = NNG_TLS_ENGINE_VERSION,
    .config_ops = &config_ops,
    .conn_ops = &conn_ops,
    .name = "mx-openssl",
    .description = OPENSSL_VERSION_TEXT,
    .fips_mode = false,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_rv;

static void register_once(void)
{
    /* nng's own initialisation installs its mbedTLS engine; it must have
     * run first or it would replace this one (allocating a configuration
     * runs it) */
    nng_tls_config *probe;
    if (nng_tls_config_alloc(&probe, NNG_TLS_MODE_CLIENT) != 0) {
        once_rv = NNG_ENOTSUP;
        return;
    }
    nng_tls_config_free(probe);
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mx-nng");
    if (!bio_method || !BIO_meth_set_write(bio_method, bio_write) ||
        !BIO_meth_set_read(bio_method, bio_read) || !BIO_meth_set_ctrl(bio_method, bio_ctrl)) {
        once_rv = NNG_ENOMEM;
        return;
    }
    once_rv = nng_tls_engine_register(&engine);
}

int mx_tls_engine_register(void)
{
    pthread_once(&once, register_once);
    return once_rv;
}
