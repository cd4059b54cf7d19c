/* mx_http_proxy.c - the PROXY protocol header parser (v1 text, v2 binary),
 * as sent by a TCP load balancer (haproxy send-proxy / send-proxy-v2) at
 * the start of a connection to pass the client's address on.
 *
 * Why here and by hand: the header is a few dozen bytes with a fixed
 * layout (haproxy's doc/proxy-protocol.txt) and no library in Debian parses
 * it; it is input from the network, so every length and field is checked
 * and the parser never reads past what it was given. docs/http.md has the
 * wire formats and what the server does with them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_err.h"
#include "mx_http.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};

#define V1_MAX 107 /* the whole v1 line, CRLF included (the spec's bound) */

/* 0: buf (len bytes) starts like sig; MX_ENOTFOUND: it cannot */
static int prefix(const uint8_t *buf, size_t len, const void *sig, size_t siglen)
{
    size_t n = len < siglen ? len : siglen;
    return memcmp(buf, sig, n) == 0 ? 0 : MX_ENOTFOUND;
}

/* one decimal port 0-65535 without a sign or leading junk */
static bool port_of(const char *s, uint16_t *out)
{
    if (!*s || strlen(s) > 5)
        return false;
    unsigned v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > 65535 || (s[0] == '0' && s[1]))
        return false;
    *out = (uint16_t)v;
    return true;
}

static int parse_v1(const uint8_t *buf, size_t len, struct mx_proxy_hdr *out, size_t *used)
{
    const uint8_t *cr = NULL;
    size_t lim = len < V1_MAX ? len : V1_MAX;
    for (size_t i = 0; i + 1 < lim; i++)
        if (buf[i] == '\r') {
            if (buf[i + 1] != '\n')
                return MX_EDECODE;
            cr = buf + i;
            break;
        }
    if (!cr) {
        if (len >= V1_MAX)
            return MX_EDECODE; /* no CRLF where there must be one */
        for (size_t i = 0; i < len; i++)
            if (buf[i] == '\n' || buf[i] == 0)
                return MX_EDECODE;
        return 0; /* more bytes needed */
    }
    char line[V1_MAX + 1];
    size_t n = (size_t)(cr - buf);
    memcpy(line, buf, n);
    line[n] = '\0';
    char *fields[7];
    int nf = 0;
    for (char *p = line, *tok; nf < 7 && (tok = strsep(&p, " ")) != NULL;)
        fields[nf++] = tok;
    memset(out, 0, sizeof *out);
    out->version = 1;
    if (nf >= 2 && strcmp(fields[1], "UNKNOWN") == 0) {
        out->local = true; /* the sender does not know: keep the real peer */
        *used = n + 2;
        return 0;
    }
    if (nf != 6)
        return MX_EDECODE;
    uint16_t sport, dport;
    if (!port_of(fields[4], &sport) || !port_of(fields[5], &dport))
        return MX_EDECODE;
    if (strcmp(fields[1], "TCP4") == 0) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        if (inet_pton(AF_INET, fields[2], &s->sin_addr) != 1 ||
            inet_pton(AF_INET, fields[3], &d->sin_addr) != 1)
            return MX_EDECODE;
        s->sin_family = d->sin_family = AF_INET;
        s->sin_port = htons(sport);
        d->sin_port = htons(dport);
    } else if (strcmp(fields[1], "TCP6") == 0) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        if (inet_pton(AF_INET6, fields[2], &s->sin6_addr) != 1 ||
            inet_pton(AF_INET6, fields[3], &d->sin6_addr) != 1)
            return MX_EDECODE;
        s->sin6_family = d->sin6_family = AF_INET6;
        s->sin6_port = htons(sport);
        d->sin6_port = htons(dport);
    } else {
        return MX_EDECODE;
    }
    *used = n + 2;
    return 0;
}

static int parse_v2(const uint8_t *buf, size_t len, struct mx_proxy_hdr *out, size_t *used)
{
    if (len < 16)
        return 0;
    uint8_t ver_cmd = buf[12], fam = buf[13];
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if ((ver_cmd & 0xF0) != 0x20 || (ver_cmd & 0x0F) > 1)
        return MX_EDECODE;
    if (16 + body > MX_PROXY_MAX_HEADER)
        return MX_EDECODE;
    if (len < 16 + body)
        return 0;
    memset(out, 0, sizeof *out);
    out->version = 2;
    const uint8_t *a = buf + 16;
    if ((ver_cmd & 0x0F) == 0) { /* LOCAL: the balancer's own connection (health checks) */
        out->local = true;
        *used = 16 + body;
        return 0;
    }
    switch (fam) {
    case 0x11: { /* TCP over IPv4 */
        if (body < 12)
            return MX_EDECODE;
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        break;
    }
    case 0x21: { /* TCP over IPv6 */
        if (body < 36)
            return MX_EDECODE;
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        break;
    }
    case 0x00: /* UNSPEC */
    case 0x12: /* UDP, unix sockets: no client address to use */
    case 0x22:
    case 0x31:
    case 0x32:
        out->local = true;
        break;
    default:
        return MX_EDECODE;
    }
    *used = 16 + body; /* TLVs after the addresses are skipped */
    return 0;
}

int mx_proxy_parse(const uint8_t *buf, size_t len, struct mx_proxy_hdr *out, size_t *used)
{
    *used = 0;
    if (len == 0)
        return 0;
    if (prefix(buf, len, v2_sig, sizeof v2_sig) == 0) {
        if (len < sizeof v2_sig)
            return 0;
        return parse_v2(buf, len, out, used);
    }
    if (prefix(buf, len, v1_sig, sizeof v1_sig) == 0) {
        if (len < sizeof v1_sig)
            return 0;
        return parse_v1(buf, len, out, used);
    }
    return MX_ENOTFOUND;
}
