/* app_actuator.c - the Spring Boot Actuator routes clients of the seed
 * know (health with components, info, the links document) and the OpenAPI
 * document (docs/openapi.yaml, embedded at build time) at /v3/api-docs.
 *
 * Health looks only at state this node already keeps (its Redis client,
 * the mysql-health report, the fetcher's breaker, free disk), so a probe
 * never waits on a server. Readiness (the load balancer's check) stays
 * separate: a MySQL outage turns /actuator/health 503 as in the seed,
 * without taking every node out of the balancer.
 * Everything runs on the acceptor's thread.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "app_int.h"
#include "mx_fetch.h"
#include "mx_health.h"
#include "mx_jsonw.h"

/* bytes free below which diskSpace is DOWN (Spring's default) */
#define DISK_THRESHOLD (10u << 20)

#ifndef MX_VERSION
#define MX_VERSION "0.0.0"
#endif
#ifndef MX_GIT_COMMIT
#define MX_GIT_COMMIT "unknown"
#endif

extern const char mx__app_openapi_json[];
extern const size_t mx__app_openapi_json_len;
extern const char mx__app_openapi_yaml[];
extern const size_t mx__app_openapi_yaml_len;

static void component(struct mx_jsonw *w, const char *name, const char *status)
{
    mx_jsonw_key(w, name);
    mx_jsonw_obj_open(w);
    mx_jsonw_kstr(w, "status", status);
}

int mx__app_health(mx_http_req_t *r, void *st)
{
    struct acc *a = st;
    bool down = false;
    struct mx_jsonw w;
    mx_jsonw_init(&w, 8192);
    mx_jsonw_obj_open(&w);
    mx_jsonw_key(&w, "components");
    mx_jsonw_obj_open(&w);

    /* the upstream breaker: reported, never DOWN (stale documents are served) */
    struct mx_addr fa;
    struct mx_fetch_stats fs;
    if (mx_whereis(a->app->sys, MX_FETCH_NAME, &fa) == 0 &&
        mx_fetch_stats(a->app->sys, fa, &fs) == 0) {
        static const char *const comp[] = {"UP", "CIRCUIT_OPEN", "CIRCUIT_HALF_OPEN"};
        static const char *const state[] = {"CLOSED", "OPEN", "HALF_OPEN"};
        uint32_t s = fs.breaker_state < 3 ? fs.breaker_state : 1;
        component(&w, "circuitBreakers", comp[s]);
        mx_jsonw_key(&w, "details");
        mx_jsonw_obj_open(&w);
        /* per breaker a Health object, as resilience4j's indicator writes it */
        component(&w, "nexonApi", comp[s]);
        mx_jsonw_key(&w, "details");
        mx_jsonw_obj_open(&w);
        mx_jsonw_kstr(&w, "state", state[s]);
        mx_jsonw_kuint(&w, "breakerOpens", fs.breaker_opens);
        mx_jsonw_obj_close(&w);
        mx_jsonw_obj_close(&w);
        mx_jsonw_obj_close(&w);
        mx_jsonw_obj_close(&w);
    }
    if (a->app->o.mysql) {
        struct mx_health_view hv;
        mx_health_view(&hv);
        const char *s = hv.state == 1 ? "UP" : hv.state == 0 ? "DOWN" : "UNKNOWN";
        down |= hv.state == 0;
        component(&w, "db", s);
        mx_jsonw_key(&w, "details");
        mx_jsonw_obj_open(&w);
        mx_jsonw_kstr(&w, "database", "MySQL");
        if (hv.node[0])
            mx_jsonw_kstr(&w, "reportedBy", hv.node);
        mx_jsonw_kint(&w, "reportAgeMs", hv.age_ms);
        mx_jsonw_obj_close(&w);
        mx_jsonw_obj_close(&w);
    }
    struct statvfs vfs;
    if (statvfs(".", &vfs) == 0) {
        unsigned long long freeb = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
        down |= freeb < DISK_THRESHOLD;
        component(&w, "diskSpace", freeb < DISK_THRESHOLD ? "DOWN" : "UP");
        mx_jsonw_key(&w, "details");
        mx_jsonw_obj_open(&w);
        mx_jsonw_kuint(&w, "total", (uint64_t)vfs.f_blocks * vfs.f_frsize);
        mx_jsonw_kuint(&w, "free", freeb);
        mx_jsonw_kuint(&w, "threshold", DISK_THRESHOLD);
        char cwd[512]; /* Spring's default path: the working directory, as "<abs>/." */
        if (getcwd(cwd, sizeof cwd - 2))
            mx_jsonw_kstr(&w, "path", strcat(cwd, "/."));
        mx_jsonw_kbool(&w, "exists", true);
        mx_jsonw_obj_close(&w);
        mx_jsonw_obj_close(&w);
    }
    component(&w, "ping", "UP");
    mx_jsonw_obj_close(&w);
    if (a->app->o.redis_url && a->app->o.redis_url[0]) {
        bool up = a->redis && mx_redis_connected(a->redis);
        down |= !up;
        component(&w, "redis", up ? "UP" : "DOWN");
        mx_jsonw_obj_close(&w);
    }
    mx_jsonw_obj_close(&w); /* components */
    mx_jsonw_kstr(&w, "status", down ? "DOWN" : "UP");
    mx_jsonw_obj_close(&w);
    mx__app_send_json(r, down ? 503 : 200, &w);
    return MX_HTTP_DONE;
}

int mx__app_liveness(mx_http_req_t *r, void *st)
{
    static const char up[] = "{\"status\":\"UP\"}";
    mx_http_respond(r, 200, "application/json", up, sizeof up - 1);
    return MX_HTTP_DONE;
}

int mx__app_info(mx_http_req_t *r, void *st)
{
    struct acc *a = st;
    char started[32];
    time_t t = (time_t)(a->app->started_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_key(&w, "app");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "name", "mx");
    mx_jsonw_kstr(&w, "description", "MapleExpectation-compatible expectation service");
    mx_jsonw_obj_close(&w);
    mx_jsonw_key(&w, "build");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "name", "mx");
    mx_jsonw_kstr(&w, "version", MX_VERSION);
    mx_jsonw_obj_close(&w);
    mx_jsonw_key(&w, "git");
    mx_jsonw_obj_open(&w);
    mx_jsonw_key(&w, "commit");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "id", MX_GIT_COMMIT);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    mx_jsonw_key(&w, "node");
    mx_jsonw_obj_open(&w);
    mx_jsonw_kstr(&w, "name", a->app->o.node_name ? a->app->o.node_name : "");
    mx_jsonw_kstr(&w, "startedAt", started);
    mx_jsonw_kuint(&w, "uptimeSeconds", (mx_unix_ms() - a->app->started_ms) / 1000);
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    mx__app_send_json(r, 200, &w);
    return MX_HTTP_DONE;
}

/* The links document: absolute hrefs on the Host the client used. */
int mx__app_links(mx_http_req_t *r, void *st)
{
    static const struct {
        const char *name, *path;
        bool templated;
    } links[] = {
        {"self", "/actuator", false},
        {"health", "/actuator/health", false},
        {"health-path", "/actuator/health/{*path}", true},
        {"info", "/actuator/info", false},
        {"prometheus", "/actuator/prometheus", false},
    };
    const char *host = mx_http_req_header(r, "Host");
    const char *proto = mx_http_req_header(r, "X-Forwarded-Proto");
    char base[300];
    snprintf(base, sizeof base, "%s://%s",
             proto && strcasecmp(proto, "https") == 0 ? "https" : "http",
             host && host[0] && !strpbrk(host, "\"\\/ ") ? host : "localhost");
    struct mx_jsonw w;
    mx_jsonw_init(&w, 4096);
    mx_jsonw_obj_open(&w);
    mx_jsonw_key(&w, "_links");
    mx_jsonw_obj_open(&w);
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        char href[400];
        snprintf(href, sizeof href, "%s%s", base, links[i].path);
        mx_jsonw_key(&w, links[i].name);
        mx_jsonw_obj_open(&w);
        mx_jsonw_kstr(&w, "href", href);
        mx_jsonw_kbool(&w, "templated", links[i].templated);
        mx_jsonw_obj_close(&w);
    }
    mx_jsonw_obj_close(&w);
    mx_jsonw_obj_close(&w);
    mx__app_send_json(r, 200, &w);
    return MX_HTTP_DONE;
}

int mx__app_api_docs(mx_http_req_t *r, void *st)
{
    struct acc *a = st;
    if (!a->app->o.api_docs) {
        mx_http_error(r, 404, "NOT_FOUND", "API documents are off on this node (MX_API_DOCS=0)");
        return MX_HTTP_DONE;
    }
    if (mx__app_route(r)->flags & 1)
        mx_http_respond(r, 200, "application/yaml", mx__app_openapi_yaml, mx__app_openapi_yaml_len);
    else
        mx_http_respond(r, 200, "application/json", mx__app_openapi_json, mx__app_openapi_json_len);
    return MX_HTTP_DONE;
}
