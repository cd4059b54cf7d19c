/* mx_tls_engine.h - nng's TLS layer with OpenSSL as its engine instead of
 * the mbedTLS that Debian's libnng is built with (the reason and the
 * semantics are in mx_tls_engine.c). nng keeps the tls+tcp transport; only
 * the records and the certificate checks move to OpenSSL.
 */
#ifndef MX_TLS_ENGINE_H
#define MX_TLS_ENGINE_H

/* mx_tls_engine_register - make OpenSSL nng's TLS engine for every
 * nng_tls_config allocated afterwards in this process (configurations
 * allocated before keep theirs). Idempotent: the first call decides and
 * later calls return its result. Returns 0 or an nng error (NNG_ENOTSUP
 * when nng has no TLS or refuses the engine version, NNG_ENOMEM). Any
 * thread; call before allocating configurations (mx_tls_load does). */
int mx_tls_engine_register(void);

#endif
