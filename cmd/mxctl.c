/* mxctl.c - the admin CLI: asks one node (--node) or every member of a
 * cluster (--cluster, member list from Redis) over nng req/rep and prints
 * tables for people or JSON for scripts (--json).
 *
 * Requests and answers are msgpack maps (see runtime/cluster/mx_admin.h); answers
 * are validated with mx_proto_validate before msgpack-c unpacks them, and
 * converted to JSON with the bounded JSON writer. Exit codes: 0 success, 1 a
 * node did not answer in time, 2 usage error, 3 a node answered with an
 * error (unauthorized, no such actor, ...). docs/cluster.md.
 */
#define _GNU_SOURCE /* memmem */
#include <hiredis/hiredis.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_admin.h"
#include "mx_err.h"
#include "mx_jsonw.h"
#include "mx_redis.h"
#include "mx_proto.h"
#include "mx_tls.h"
#include "mxctl_merge.h"

#define EXIT_NOANSWER 1
#define EXIT_USAGE 2
#define EXIT_ERRANSWER 3
#define MAX_NODES 256
#define ANSWER_MAX (64u << 20)

struct opts {
    const char *node;
    const char *cluster;      /* redis URL */
    const char *cluster_name; /* the {cluster} in keys */
    const char *token;
    int timeout_ms;
    bool json;
    const char *cmd;
    const char *arg; /* NAME for mailbox, NODE for drain and undrain */
    int top, peek;
    const char *sort;
    const char *tls_ca, *tls_cert, *tls_key; /* all three, or none */
    mx_tls_t *tls;                           /* loaded from them */
};

struct target {
    char name[128];
    char admin[256];
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mxctl [--node ADDR | --cluster REDIS_URL [--cluster-name C]] [--token T]\n"
        "             [--timeout MS] [--json] [--tls-ca F --tls-cert F --tls-key F] COMMAND\n"
        "commands:\n"
        "  stats                          node, uptime, schedulers, actors, dead letters, transport,\n"
        "                                 every actor instance's counters (--cluster: counters\n"
        "                                 summed, gauges per member)\n"
        "  actors [--top N] [--sort depth|age|rate]\n"
        "  mailbox NAME [--peek N]        pending messages of an actor (name or hex id)\n"
        "  deadletters                    dead letters by reason\n"
        "  drain NODE                     take NODE out of service (phases 1-4 of\n"
        "                                 docs/shutdown.md); it stays up and idle\n"
        "  undrain NODE                   serve again after a drain\n"
        "  members | leases               what the cluster registry reports\n"
        "  redis                          each Redis connection's master, failovers and\n"
        "                                 reconnect times; the sentinel resolvers\n"
        "defaults: --node $MX_ADMIN_ADDR or tcp://127.0.0.1:7200, --token $MX_ADMIN_TOKEN,\n"
        "          --cluster-name $MX_CLUSTER or mx, --timeout 2000,\n"
        "          --tls-ca/--tls-cert/--tls-key $MX_TLS_CA/$MX_TLS_CERT/$MX_TLS_KEY\n"
        "          (mutual TLS: tcp:// addresses are dialled as tls+tcp://)\n"
        "exit: 0 ok, 1 a node did not answer, 2 usage, 3 a node answered with an error\n");
}

/* drain and undrain name one node */
static bool is_drain(const char *cmd)
{
    return !strcmp(cmd, "drain") || !strcmp(cmd, "undrain");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    const char *env;
    o->node = (env = getenv("MX_ADMIN_ADDR")) && *env ? env : "tcp://127.0.0.1:7200";
    o->token = getenv("MX_ADMIN_TOKEN");
    o->cluster_name = (env = getenv("MX_CLUSTER")) && *env ? env : "mx";
    o->tls_ca = getenv("MX_TLS_CA");
    o->tls_cert = getenv("MX_TLS_CERT");
    o->tls_key = getenv("MX_TLS_KEY");
    o->timeout_ms = 2000;
    o->peek = 10;
    bool have_node = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                                    \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "mxctl: %s needs a value\n", a);                                       \
            return -1;                                                                             \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "--node") == 0) {
            NEEDV();
            o->node = v;
            have_node = true;
        } else if (strcmp(a, "--cluster") == 0) {
            NEEDV();
            o->cluster = v;
        } else if (strcmp(a, "--cluster-name") == 0) {
            NEEDV();
            o->cluster_name = v;
        } else if (strcmp(a, "--token") == 0) {
            NEEDV();
            o->token = v;
        } else if (strcmp(a, "--tls-ca") == 0) {
            NEEDV();
            o->tls_ca = v;
        } else if (strcmp(a, "--tls-cert") == 0) {
            NEEDV();
            o->tls_cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            NEEDV();
            o->tls_key = v;
        } else if (strcmp(a, "--timeout") == 0) {
            NEEDV();
            if (parse_int(v, 1, 600000, &o->timeout_ms) != 0) {
                fprintf(stderr, "mxctl: --timeout wants 1-600000 ms, got '%s'\n", v);
                return -1;
            }
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--top") == 0) {
            NEEDV();
            if (parse_int(v, 0, 1000000, &o->top) != 0) {
                fprintf(stderr, "mxctl: --top wants a count, got '%s'\n", v);
                return -1;
            }
        } else if (strcmp(a, "--peek") == 0) {
            NEEDV();
            if (parse_int(v, 0, 1000, &o->peek) != 0) {
                fprintf(stderr, "mxctl: --peek wants 0-1000, got '%s'\n", v);
                return -1;
            }
        } else if (strcmp(a, "--sort") == 0) {
            NEEDV();
            if (strcmp(v, "depth") && strcmp(v, "age") && strcmp(v, "rate")) {
                fprintf(stderr, "mxctl: --sort wants depth, age or rate, got '%s'\n", v);
                return -1;
            }
            o->sort = v;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (a[0] == '-') {
            fprintf(stderr, "mxctl: unknown option %s\n", a);
            return -1;
        } else if (!o->cmd) {
            o->cmd = a;
        } else if (!o->arg) {
            o->arg = a;
        } else {
            fprintf(stderr, "mxctl: unexpected argument %s\n", a);
            return -1;
        }
#undef NEEDV
    }
    if (!o->cmd) {
        fprintf(stderr, "mxctl: no command\n");
        return -1;
    }
    static const char *const cmds[] = {"stats",   "actors",  "mailbox", "deadletters", "drain",
                                       "undrain", "members", "leases",  "redis"};
    bool known = false;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        known |= strcmp(o->cmd, cmds[i]) == 0;
    if (!known) {
        fprintf(stderr, "mxctl: unknown command %s\n", o->cmd);
        return -1;
    }
    bool wants_arg = !strcmp(o->cmd, "mailbox") || is_drain(o->cmd);
    if (wants_arg != (o->arg != NULL)) {
        fprintf(stderr,
                wants_arg ? "mxctl: %s needs an argument\n" : "mxctl: %s takes no argument\n",
                o->cmd);
        return -1;
    }
    if (have_node && o->cluster) {
        fprintf(stderr, "mxctl: --node and --cluster exclude each other\n");
        return -1;
    }
    if ((o->tls_ca && *o->tls_ca) || (o->tls_cert && *o->tls_cert) || (o->tls_key && *o->tls_key)) {
        char err[512];
        if (mx_tls_load(o->tls_ca, o->tls_cert, o->tls_key, &o->tls, err, sizeof err) != 0) {
            fprintf(stderr, "mxctl: %s\n", err);
            return -1;
        }
    }
    return 0;
}

/* ---- request ---- */

static void pk_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_str(pk, strlen(v));
    msgpack_pack_str_body(pk, v, strlen(v));
}

static void pk_kint(msgpack_packer *pk, const char *k, int v)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_int(pk, v);
}

static void build_request(const struct opts *o, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t n = 1 + (o->token && *o->token) + (o->arg != NULL) + (o->top > 0) + (o->sort != NULL) +
               (!strcmp(o->cmd, "mailbox"));
    msgpack_pack_map(&pk, n);
    pk_kstr(&pk, "cmd", strcmp(o->cmd, "redis") ? o->cmd : "stats"); /* redis: a stats section */
    if (o->token && *o->token)
        pk_kstr(&pk, "token", o->token);
    if (o->arg)
        pk_kstr(&pk, is_drain(o->cmd) ? "node" : "name", o->arg);
    if (o->top > 0)
        pk_kint(&pk, "top", o->top);
    if (o->sort)
        pk_kstr(&pk, "sort", o->sort);
    if (!strcmp(o->cmd, "mailbox"))
        pk_kint(&pk, "peek", o->peek);
}

/* Ask one node. Returns 0 with the answer (malloc'd) or EXIT_NOANSWER. */
static int ask(const char *url, const struct opts *o, const msgpack_sbuffer *req, char **ans,
               size_t *len, char *err, size_t errlen)
{
    nng_socket s;
    int rc = EXIT_NOANSWER, nrc;
    if ((nrc = nng_req0_open(&s)) != 0) {
        snprintf(err, errlen, "%s", nng_strerror(nrc));
        return rc;
    }
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, o->timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, o->timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, ANSWER_MAX);
    nng_dialer d;
    char turl[300];
    if (mx_tls_url(o->tls, url, turl, sizeof turl) != 0) {
        snprintf(err, errlen, "%s needs TLS: give --tls-ca, --tls-cert and --tls-key", url);
        nng_close(s);
        return EXIT_USAGE;
    }
    if ((nrc = nng_dialer_create(&d, s, turl)) != 0 ||
        (o->tls && strncmp(turl, "tls+", 4) == 0 && (nrc = mx_tls_dialer(o->tls, d)) != 0)) {
        snprintf(err, errlen, "bad address %s: %s", turl, nrc > 0 ? nng_strerror(nrc) : "TLS");
        rc = EXIT_USAGE;
        goto out;
    }
    nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, ANSWER_MAX);
    nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 50);
    nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, 200);
    nng_dialer_start(d, NNG_FLAG_NONBLOCK); /* a down node shows as a timeout */
    if ((nrc = nng_send(s, req->data, req->size, 0)) != 0) {
        snprintf(err, errlen, "no answer from %s: %s", url, nng_strerror(nrc));
        goto out;
    }
    nng_msg *m;
    if ((nrc = nng_recvmsg(s, &m, 0)) != 0) {
        snprintf(err, errlen, "no answer from %s: %s", url, nng_strerror(nrc));
        goto out;
    }
    *len = nng_msg_len(m);
    *ans = malloc(*len ? *len : 1);
    if (!*ans)
        abort();
    memcpy(*ans, nng_msg_body(m), *len);
    nng_msg_free(m);
    rc = 0;
out:
    nng_close(s);
    return rc;
}

/* ---- answers ---- */

static const msgpack_object *get(const msgpack_object *o, const char *key)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kl &&
            memcmp(kv->key.via.str.ptr, key, kl) == 0)
            return &kv->val;
    }
    return NULL;
}

static const char *sget(const msgpack_object *o, const char *key, char *buf, size_t n)
{
    const msgpack_object *v = get(o, key);
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return "";
    snprintf(buf, n, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    return buf;
}

static long long iget(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = get(o, key);
    if (!v)
        return 0;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (long long)v->via.u64;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return (long long)v->via.i64;
    if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)
        return (long long)v->via.f64;
    return 0;
}

static void to_json(const msgpack_object *o, struct mx_jsonw *w)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        mx_jsonw_null(w);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        mx_jsonw_bool(w, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        mx_jsonw_uint(w, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        mx_jsonw_int(w, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        mx_jsonw_double(w, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        mx_jsonw_strn(w, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        mx_jsonw_strn(w, o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        if (o->via.ext.type == MX_ADMIN_EXT_JSON && o->via.ext.size > 0)
            mx_jsonw_raw(w, o->via.ext.ptr, o->via.ext.size);
        else
            mx_jsonw_null(w);
        break;
    case MSGPACK_OBJECT_ARRAY:
        mx_jsonw_arr_open(w);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            to_json(&o->via.array.ptr[i], w);
        mx_jsonw_arr_close(w);
        break;
    case MSGPACK_OBJECT_MAP:
        mx_jsonw_obj_open(w);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            char k[128];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                continue;
            snprintf(k, sizeof(k), "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
            mx_jsonw_key(w, k);
            to_json(&kv->val, w);
        }
        mx_jsonw_obj_close(w);
        break;
    }
}

/* A JSON field of the flat object starting at obj (the node's own output,
 * mx_redis_report): the raw value, quotes stripped, into buf. */
static const char *jfield(const char *obj, const char *end, const char *key, char *buf, size_t n)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(obj, k);
    buf[0] = '\0';
    if (!p || p >= end)
        return buf;
    p += strlen(k);
    bool quoted = *p == '"';
    p += quoted;
    size_t len = quoted ? strcspn(p, "\"") : strcspn(p, ",}");
    snprintf(buf, n, "%.*s", (int)len, p);
    return buf;
}

/* mxctl redis: the "redis" section of stats as two tables */
static void print_redis(const msgpack_object *a)
{
    const msgpack_object *sec = get(get(a, "sections"), "redis");
    struct mx_jsonw w;
    mx_jsonw_init(&w, ANSWER_MAX);
    if (sec)
        to_json(sec, &w);
    const char *js = w.err || !sec ? "" : w.buf, *sen = strstr(js, "\"sentinels\":");
    char f[9][300];
    printf("%-14s %-24s %-5s %8s %9s %8s %12s %12s %8s\n", "CLIENT", "MASTER", "UP", "CONNECTS",
           "FAILOVERS", "READONLY", "RECONNECT_MS", "RECONN_MAX", "REPLICAS");
    for (const char *o = strstr(js, "{\"name\":"); o && (!sen || o < sen);
         o = strstr(o + 1, "{\"name\":")) {
        const char *e = strchr(o, '}');
        printf("%-14s %-24s %-5s %8s %9s %8s %12s %12s %8s\n",
               jfield(o, e, "name", f[0], sizeof f[0]), jfield(o, e, "master", f[1], sizeof f[1]),
               strcmp(jfield(o, e, "connected", f[2], sizeof f[2]), "true") ? "no" : "yes",
               jfield(o, e, "connects", f[3], sizeof f[3]),
               jfield(o, e, "failovers", f[4], sizeof f[4]),
               jfield(o, e, "readonly", f[5], sizeof f[5]),
               jfield(o, e, "reconnect_ms_last", f[6], sizeof f[6]),
               jfield(o, e, "reconnect_ms_max", f[7], sizeof f[7]),
               jfield(o, e, "replicas", f[8], sizeof f[8]));
    }
    if (!sec)
        printf("(this node has no redis section)\n");
    for (const char *o = sen ? strstr(sen, "{\"master_name\":") : NULL; o;
         o = strstr(o + 1, "{\"master_name\":")) {
        const char *e = strchr(o, '}');
        printf("sentinels for %s: master %s, %s sentinels, %s switches seen, %s resolves, "
               "%s failures%s%s\n",
               jfield(o, e, "master_name", f[0], sizeof f[0]),
               jfield(o, e, "master", f[1], sizeof f[1]),
               jfield(o, e, "sentinels", f[2], sizeof f[2]),
               jfield(o, e, "switches", f[3], sizeof f[3]),
               jfield(o, e, "resolves", f[4], sizeof f[4]),
               jfield(o, e, "failures", f[5], sizeof f[5]),
               *jfield(o, e, "error", f[6], sizeof f[6]) ? "; last error: " : "", f[6]);
    }
    mx_jsonw_fini(&w);
}

static void print_table(const struct opts *o, const msgpack_object *a)
{
    if (!strcmp(o->cmd, "redis")) {
        print_redis(a);
        return;
    }
    char b1[256], b2[256], b3[256], b4[256], b5[256];
    const msgpack_object *v;
    if (!strcmp(o->cmd, "stats")) {
        printf("node        %s (%s) %s\n", sget(a, "node", b1, sizeof b1),
               sget(a, "node_id", b2, sizeof b2), sget(a, "state", b3, sizeof b3));
        printf("uptime      %.1f s\n", (double)iget(a, "uptime_ms") / 1000.0);
        printf("schedulers  %lld\nlive actors %lld\n", iget(a, "schedulers"),
               iget(a, "live_actors"));
        if ((v = get(a, "deadletters")) && v->type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < v->via.map.size; i++)
                if (v->via.map.ptr[i].val.via.u64)
                    printf("dead letter %.*s %llu\n", (int)v->via.map.ptr[i].key.via.str.size,
                           v->via.map.ptr[i].key.via.str.ptr,
                           (unsigned long long)v->via.map.ptr[i].val.via.u64);
        if ((v = get(a, "transport")) && v->type == MSGPACK_OBJECT_MAP) {
            printf(
                "transport   peers %lld up %lld, frames in %lld out %lld, send full %lld down %lld\n",
                iget(v, "peers"), iget(v, "peers_up"), iget(v, "frames_in"), iget(v, "frames_out"),
                iget(v, "send_full"), iget(v, "send_down"));
            const msgpack_object *d = get(v, "drops");
            if (d && d->type == MSGPACK_OBJECT_MAP)
                for (uint32_t i = 0; i < d->via.map.size; i++)
                    if (d->via.map.ptr[i].val.via.u64)
                        printf("frame drop  %.*s %llu\n", (int)d->via.map.ptr[i].key.via.str.size,
                               d->via.map.ptr[i].key.via.str.ptr,
                               (unsigned long long)d->via.map.ptr[i].val.via.u64);
        }
        if ((v = get(a, "sections")) && v->type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < v->via.map.size; i++) {
                struct mx_jsonw w;
                mx_jsonw_init(&w, ANSWER_MAX);
                to_json(&v->via.map.ptr[i].val, &w);
                printf("%-11.*s %s\n", (int)v->via.map.ptr[i].key.via.str.size,
                       v->via.map.ptr[i].key.via.str.ptr, w.err ? "?" : w.buf);
                mx_jsonw_fini(&w);
            }
        /* the counter table Prometheus shows too (actor -> instance -> field) */
        if ((v = get(a, "metrics"))) {
            struct mx_jsonw w;
            mx_jsonw_init(&w, ANSWER_MAX);
            to_json(v, &w);
            printf("%-11s %s\n", "metrics", w.err ? "?" : w.buf);
            mx_jsonw_fini(&w);
        }
    } else if (!strcmp(o->cmd, "actors")) {
        printf("%-18s %-20s %-12s %8s %8s %10s %12s %10s %8s\n", "ID", "NAME", "TYPE", "DEPTH",
               "HWM", "OLDEST_MS", "HANDLED", "RATE/S", "RESTARTS");
        if ((v = get(a, "actors")) && v->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < v->via.array.size; i++) {
                const msgpack_object *x = &v->via.array.ptr[i];
                printf("%-18s %-20s %-12s %8lld %8lld %10lld %12lld %10lld %8lld\n",
                       sget(x, "id", b1, sizeof b1), sget(x, "name", b2, sizeof b2),
                       sget(x, "type", b3, sizeof b3), iget(x, "depth"), iget(x, "hwm"),
                       iget(x, "oldest_ms"), iget(x, "handled"), iget(x, "rate"),
                       iget(x, "restarts"));
            }
        printf("(%lld actors, sorted by %s)\n", iget(a, "total"), sget(a, "sort", b1, sizeof b1));
    } else if (!strcmp(o->cmd, "mailbox")) {
        printf("%s: depth %lld\n", sget(a, "name", b1, sizeof b1), iget(a, "depth"));
        if ((v = get(a, "messages")) && v->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < v->via.array.size; i++) {
                const msgpack_object *x = &v->via.array.ptr[i];
                struct mx_jsonw w;
                mx_jsonw_init(&w, ANSWER_MAX);
                const msgpack_object *body = get(x, "body");
                if (body)
                    to_json(body, &w);
                printf("%3u %-14s from %-34s corr %-6lld age %6lld ms %s\n", i,
                       sget(x, "type_name", b1, sizeof b1), sget(x, "from", b2, sizeof b2),
                       iget(x, "corr"), iget(x, "age_ms"), w.err || !w.buf ? "" : w.buf);
                mx_jsonw_fini(&w);
            }
    } else if (!strcmp(o->cmd, "deadletters")) {
        if ((v = get(a, "deadletters")) && v->type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < v->via.map.size; i++)
                printf("%-16.*s %llu\n", (int)v->via.map.ptr[i].key.via.str.size,
                       v->via.map.ptr[i].key.via.str.ptr,
                       (unsigned long long)v->via.map.ptr[i].val.via.u64);
        printf("%-16s %lld\n", "total", iget(a, "total"));
    } else if (is_drain(o->cmd)) {
        printf("%s: %s (%s)\n", sget(a, "node", b1, sizeof b1), sget(a, "state", b2, sizeof b2),
               sget(a, "result", b3, sizeof b3));
    } else if (!strcmp(o->cmd, "members")) {
        printf("%-20s %-18s %-9s %-28s %-28s %8s\n", "NAME", "NODE_ID", "STATE", "NNG", "ADMIN",
               "AGE_MS");
        if ((v = get(a, "members")) && v->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < v->via.array.size; i++) {
                const msgpack_object *x = &v->via.array.ptr[i];
                printf("%-20s %-18s %-9s %-28s %-28s %8lld\n", sget(x, "name", b1, sizeof b1),
                       sget(x, "node_id", b2, sizeof b2), sget(x, "state", b3, sizeof b3),
                       sget(x, "nng", b4, sizeof b4), sget(x, "admin", b5, sizeof b5),
                       iget(x, "age_ms"));
            }
        printf("(registry: %s)\n", sget(a, "registry", b1, sizeof b1));
    } else if (!strcmp(o->cmd, "leases")) {
        printf("%-24s %-20s %20s %10s %8s\n", "NAME", "HOLDER", "EPOCH", "SEQ", "TTL_MS");
        if ((v = get(a, "leases")) && v->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < v->via.array.size; i++) {
                const msgpack_object *x = &v->via.array.ptr[i];
                /* an epoch is <24-bit singleton id><40-bit lease counter>:
                 * shown as id:counter, unsigned */
                unsigned long long ep = (unsigned long long)iget(x, "epoch");
                char eps[32];
                snprintf(eps, sizeof eps, "%06llx:%llu", ep >> 40, ep & ((1ull << 40) - 1));
                printf("%-24s %-20s %20s %10lld %8lld\n", sget(x, "name", b1, sizeof b1),
                       sget(x, "holder", b2, sizeof b2), eps, iget(x, "seq"), iget(x, "ttl_ms"));
            }
        printf("(registry: %s)\n", sget(a, "registry", b1, sizeof b1));
    }
}

/* mxctl --cluster members: the first answering node's view of the registry
 * once, with a column naming every other node whose own view of that
 * member differs (another state, or not listed), then the members only
 * other nodes list. */
static const msgpack_object *find_member(const msgpack_object *ans, const char *name)
{
    const msgpack_object *v = get(ans, "members");
    char b[128];
    if (!v || v->type != MSGPACK_OBJECT_ARRAY)
        return NULL;
    for (uint32_t i = 0; i < v->via.array.size; i++)
        if (!strcmp(sget(&v->via.array.ptr[i], "name", b, sizeof b), name))
            return &v->via.array.ptr[i];
    return NULL;
}

static void print_members_once(const msgpack_object **ans, const struct target *t, int n)
{
    int ref = -1, answered = 0;
    for (int i = 0; i < n; i++)
        if (ans[i]) {
            answered++;
            if (ref < 0)
                ref = i;
        }
    if (ref < 0)
        return;
    char b1[128], b2[128], b3[64], b4[160], b5[160], diff[512];
    printf("%-20s %-18s %-9s %-28s %-28s %8s  %s\n", "NAME", "NODE_ID", "STATE", "NNG", "ADMIN",
           "AGE_MS", "VIEWS_THAT_DIFFER");
    const msgpack_object *v = get(ans[ref], "members");
    uint32_t nm = v && v->type == MSGPACK_OBJECT_ARRAY ? v->via.array.size : 0;
    for (uint32_t i = 0; i < nm; i++) {
        const msgpack_object *x = &v->via.array.ptr[i];
        sget(x, "name", b1, sizeof b1);
        sget(x, "state", b3, sizeof b3);
        size_t dl = 0;
        diff[0] = '\0';
        for (int k = 0; k < n; k++) {
            if (!ans[k] || k == ref)
                continue;
            const msgpack_object *y = find_member(ans[k], b1);
            char st[64];
            if (!y)
                snprintf(st, sizeof st, "absent");
            else if (strcmp(sget(y, "state", st, sizeof st), b3) == 0)
                continue;
            if (dl + strlen(t[k].name) + strlen(st) + 4 < sizeof diff)
                dl += (size_t)snprintf(diff + dl, sizeof diff - dl, "%s%s:%s", dl ? "," : "",
                                       t[k].name, st);
        }
        printf("%-20s %-18s %-9s %-28s %-28s %8lld  %s\n", b1, sget(x, "node_id", b2, sizeof b2),
               b3, sget(x, "nng", b4, sizeof b4), sget(x, "admin", b5, sizeof b5),
               iget(x, "age_ms"), dl ? diff : "-");
    }
    /* members the reference node does not list */
    for (int k = 0; k < n; k++) {
        if (!ans[k] || k == ref)
            continue;
        const msgpack_object *w = get(ans[k], "members");
        uint32_t nw = w && w->type == MSGPACK_OBJECT_ARRAY ? w->via.array.size : 0;
        for (uint32_t i = 0; i < nw; i++) {
            const msgpack_object *y = &w->via.array.ptr[i];
            if (find_member(ans[ref], sget(y, "name", b1, sizeof b1)))
                continue;
            printf("%-20s %-18s %-9s %-28s %-28s %8lld  %s:absent (listed by %s)\n", b1,
                   sget(y, "node_id", b2, sizeof b2), sget(y, "state", b3, sizeof b3),
                   sget(y, "nng", b4, sizeof b4), sget(y, "admin", b5, sizeof b5),
                   iget(y, "age_ms"), t[ref].name, t[k].name);
        }
    }
    printf("(the registry as %s sees it; %d of %d nodes answered)\n", t[ref].name, answered, n);
}

/* ---- cluster members from Redis ---- */

/* The string value of a top-level "admin" key in a small JSON object the
 * registry writes; a deliberately narrow scan (no escapes in addresses). */
static bool json_admin(const char *js, size_t n, char *out, size_t cap)
{
    const char *k = memmem(js, n, "\"admin\"", 7);
    if (!k)
        return false;
    const char *p = k + 7, *end = js + n;
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    if (p >= end || *p != '"')
        return false;
    p++;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || (size_t)(q - p) >= cap || memchr(p, '\\', (size_t)(q - p)))
        return false;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return true;
}

/* --cluster redis-sentinel://...: the master as the first sentinel that
 * answers names it (docs/redis.md) */
static int sentinel_master(const struct opts *o, char *host, size_t hcap, int *port, char *user,
                           size_t ucap, char *pw, size_t pcap, int *db)
{
    struct mx_redis_sentinel_url u;
    if (mx_redis_parse_sentinel_url(o->cluster, &u) != 0) {
        fprintf(stderr, "mxctl: --cluster wants redis-sentinel://[[user]:password@]host:port"
                        "[,host:port...]/MASTER_NAME[/db]\n");
        return EXIT_USAGE;
    }
    snprintf(user, ucap, "%s", u.user);
    snprintf(pw, pcap, "%s", u.password);
    *db = u.db;
    struct timeval tv = {o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
    for (int i = 0; i < u.n; i++) {
        redisContext *c = redisConnectWithTimeout(u.host[i], u.port[i], tv);
        if (!c || c->err) {
            if (c)
                redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        if (u.password[0]) /* a sentinel without a password says so: no matter */
            freeReplyObject(u.user[0] ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                                      : redisCommand(c, "AUTH %s", u.password));
        redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", u.master);
        bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                  r->element[0]->type == REDIS_REPLY_STRING &&
                  r->element[1]->type == REDIS_REPLY_STRING;
        if (ok) {
            snprintf(host, hcap, "%s", r->element[0]->str);
            *port = atoi(r->element[1]->str);
        }
        freeReplyObject(r);
        redisFree(c);
        if (ok)
            return 0;
    }
    fprintf(stderr, "mxctl: no sentinel of --cluster named a master %s\n", u.master);
    return EXIT_NOANSWER;
}

/* Run one set-up command (AUTH, SELECT) on c. False, after saying why on
 * stderr (never the password), when Redis refuses it or is gone. */
static bool redis_ok(redisContext *c, const char *host, int port, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        fprintf(stderr, "mxctl: redis %s:%d: %.*s refused: %s\n", host, port,
                (int)strcspn(fmt, " "), fmt, r ? r->str : c->errstr);
    freeReplyObject(r);
    return ok;
}

static int cluster_targets(const struct opts *o, struct target *t, int *n)
{
    char host[256] = "127.0.0.1", pw[256] = "", user[128] = "";
    int port = 6379, db = 0;
    const char *u = o->cluster;
    if (strncmp(u, "redis-sentinel://", 17) == 0) {
        int rc =
            sentinel_master(o, host, sizeof host, &port, user, sizeof user, pw, sizeof pw, &db);
        if (rc != 0)
            return rc;
    } else if (mx_redis_parse_url(u, host, sizeof host, &port, user, sizeof user, pw, sizeof pw,
                                  &db) != 0) {
        fprintf(stderr,
                "mxctl: --cluster: the URL %s; expected redis://[[user]:password@]host:port"
                "[/db] or redis-sentinel://...\n",
                mx_redis_url_error(u));
        return EXIT_USAGE;
    }
    struct timeval tv = {o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        fprintf(stderr, "mxctl: redis %s:%d: %s\n", host, port, c ? c->errstr : "no memory");
        if (c)
            redisFree(c);
        return EXIT_NOANSWER;
    }
    redisSetTimeout(c, tv);
    redisReply *r;
    bool ok = !*pw || (*user ? redis_ok(c, host, port, "AUTH %s %s", user, pw)
                             : redis_ok(c, host, port, "AUTH %s", pw));
    if (!ok || (db && !redis_ok(c, host, port, "SELECT %d", db))) {
        redisFree(c);
        return EXIT_NOANSWER;
    }
    r = redisCommand(c, "HGETALL mx:{%s}:members", o->cluster_name);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "mxctl: redis: %s\n",
                r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        freeReplyObject(r);
        redisFree(c);
        return EXIT_NOANSWER;
    }
    if (r->elements == 0) {
        /* a name with no members is usually a typo: say which clusters exist */
        freeReplyObject(r);
        char found[1024] = "";
        size_t fl = 0;
        char cursor[32] = "0";
        int rounds = 0;
        do {
            redisReply *sc = redisCommand(c, "SCAN %s MATCH mx:{*}:members COUNT 1000", cursor);
            if (!sc || sc->type != REDIS_REPLY_ARRAY || sc->elements != 2) {
                freeReplyObject(sc);
                break;
            }
            snprintf(cursor, sizeof cursor, "%s", sc->element[0]->str ? sc->element[0]->str : "0");
            for (size_t i = 0; i < sc->element[1]->elements; i++) {
                const char *k = sc->element[1]->element[i]->str;
                const char *b = k ? strchr(k, '{') : NULL, *e = b ? strstr(b, "}:members") : NULL;
                if (b && e && fl + (size_t)(e - b) + 3 < sizeof found)
                    fl += (size_t)snprintf(found + fl, sizeof found - fl, "%s%.*s", fl ? ", " : "",
                                           (int)(e - b - 1), b + 1);
            }
            freeReplyObject(sc);
        } while (strcmp(cursor, "0") != 0 && ++rounds < 1000);
        redisFree(c);
        if (fl)
            fprintf(stderr,
                    "mxctl: cluster %s has no members; clusters found: %s "
                    "(choose one with --cluster-name or MX_CLUSTER)\n",
                    o->cluster_name, found);
        else
            fprintf(stderr, "mxctl: cluster %s has no members, and no cluster has any in %s\n",
                    o->cluster_name, o->cluster);
        return EXIT_NOANSWER;
    }
    *n = 0;
    for (size_t i = 0; i + 1 < r->elements && *n < MAX_NODES; i += 2) {
        struct target *x = &t[*n];
        snprintf(x->name, sizeof(x->name), "%.*s", (int)r->element[i]->len, r->element[i]->str);
        if (json_admin(r->element[i + 1]->str, r->element[i + 1]->len, x->admin, sizeof(x->admin)))
            (*n)++;
        else
            fprintf(stderr, "mxctl: member %s has no admin address\n", x->name);
    }
    freeReplyObject(r);
    redisFree(c);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    static struct target targets[MAX_NODES];
    int n = 1;
    if (o.cluster) {
        int rc = cluster_targets(&o, targets, &n);
        if (rc)
            return rc;
        if (is_drain(o.cmd)) {
            int k;
            for (k = 0; k < n && strcmp(targets[k].name, o.arg); k++)
                ;
            if (k == n) {
                fprintf(stderr, "mxctl: no member named %s\n", o.arg);
                return EXIT_ERRANSWER;
            }
            targets[0] = targets[k];
            n = 1;
        }
    } else {
        snprintf(targets[0].name, sizeof(targets[0].name), "%s", o.node);
        snprintf(targets[0].admin, sizeof(targets[0].admin), "%s", o.node);
    }
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    build_request(&o, &req);
    int worst = 0;
    struct mx_jsonw all;
    mx_jsonw_init(&all, ANSWER_MAX);
    if (o.cluster) {
        mx_jsonw_obj_open(&all);
        mx_jsonw_key(&all, "nodes");
        mx_jsonw_arr_open(&all);
    }
    /* --cluster members as a table: kept, printed once after every answer */
    bool members_once = o.cluster && !o.json && !strcmp(o.cmd, "members");
    static msgpack_unpacked kept[MAX_NODES];
    static const msgpack_object *kept_ans[MAX_NODES];
    static char *kept_buf[MAX_NODES];
    /* --cluster stats: the members' counters summed, their gauges side by side */
    struct mxm *merge = o.cluster && !strcmp(o.cmd, "stats") ? mxm_new(n) : NULL;
    for (int i = 0; i < n; i++) {
        char *ans = NULL, err[512] = "";
        size_t len = 0;
        int rc = ask(targets[i].admin, &o, &req, &ans, &len, err, sizeof(err));
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        if (rc == 0 && (len == 0 || mx_proto_validate((const uint8_t *)ans, len) != 0 ||
                        msgpack_unpack_next(&up, ans, len, &off) != MSGPACK_UNPACK_SUCCESS ||
                        up.data.type != MSGPACK_OBJECT_MAP)) {
            snprintf(err, sizeof(err), "malformed answer from %s", targets[i].admin);
            rc = EXIT_NOANSWER;
        }
        const msgpack_object *okv = rc == 0 ? get(&up.data, "ok") : NULL;
        bool ok = okv && okv->type == MSGPACK_OBJECT_BOOLEAN && okv->via.boolean;
        if (rc == 0 && !ok) {
            char eb[256];
            snprintf(err, sizeof(err), "%.128s: %.256s", targets[i].name,
                     sget(&up.data, "error", eb, sizeof(eb)));
            rc = EXIT_ERRANSWER;
        }
        if (rc != 0)
            fprintf(stderr, "mxctl: %s\n", err);
        if (merge && rc == 0)
            mxm_answer(merge, i, &up.data);
        else if (merge)
            mxm_missing(merge, i, err);
        if (rc > worst && !(worst == EXIT_NOANSWER && rc == EXIT_ERRANSWER))
            worst = rc;
        if (o.json) {
            if (o.cluster) {
                mx_jsonw_obj_open(&all);
                mx_jsonw_kstr(&all, "member", targets[i].name);
                mx_jsonw_kstr(&all, "admin", targets[i].admin);
                mx_jsonw_key(&all, "answer");
            }
            if (rc == 0 || rc == EXIT_ERRANSWER)
                to_json(&up.data, &all);
            else if (o.cluster)
                mx_jsonw_null(&all);
            if (o.cluster) {
                if (rc != 0)
                    mx_jsonw_kstr(&all, "error", err);
                mx_jsonw_obj_close(&all);
            }
        } else if (rc == 0 && members_once) {
            kept[i] = up; /* owns the unpacked zone; freed below */
            kept_ans[i] = &kept[i].data;
            kept_buf[i] = ans;
            continue;
        } else if (rc == 0) {
            if (o.cluster)
                printf("== %s (%s)\n", targets[i].name, targets[i].admin);
            print_table(&o, &up.data);
        }
        msgpack_unpacked_destroy(&up);
        free(ans);
    }
    if (members_once) {
        print_members_once(kept_ans, targets, n);
        for (int i = 0; i < n; i++)
            if (kept_ans[i]) {
                msgpack_unpacked_destroy(&kept[i]);
                free(kept_buf[i]);
            }
    }
    static const char *names[MAX_NODES], *admins[MAX_NODES];
    for (int i = 0; merge && i < n; i++) {
        names[i] = targets[i].name;
        admins[i] = targets[i].admin;
    }
    if (o.cluster) {
        mx_jsonw_arr_close(&all);
        if (merge && o.json) {
            mx_jsonw_key(&all, "merged");
            mxm_json(merge, names, admins, &all);
        }
        mx_jsonw_obj_close(&all);
    }
    if (merge && !o.json)
        mxm_print(merge, names, admins, stdout);
    mxm_free(merge);
    if (o.json && all.err == 0 && all.len)
        printf("%s\n", all.buf);
    mx_jsonw_fini(&all);
    msgpack_sbuffer_destroy(&req);
    return worst;
}
