/* app_xcut.c - what every answer of the HTTP API carries, whichever route
 * produced it: the seed's security headers, X-Correlation-ID, and CORS
 * (docs/http-api.md, "Cross-cutting headers").
 *
 * The http layer knows nothing of these: every route of mx_app is entered
 * through mx__app_entry (app_routes.c), which calls mx__app_xcut_begin
 * before the route's handler, and the headers it adds stay on the request
 * until it is answered, now or later. Paths no route serves end in the
 * catch-all routes here (404 / 405 with Allow), and OPTIONS is answered
 * here without reaching any handler, the rate limits or Redis: a CORS
 * preflight never touches the application.
 *
 * Everything runs on the acceptor's thread; the origin list is parsed once
 * at start (mx__app_cors_parse) and read-only afterwards.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app_int.h"
#include "mx_err.h"
#include "mx_log.h"
#include "mx_url.h"

#define CORS_METHODS "GET, POST, PUT, PATCH, DELETE, OPTIONS"
#define CORS_HEADERS                                                                               \
    "Authorization, Content-Type, X-Requested-With, Accept, Origin, X-Correlation-ID, "            \
    "Idempotency-Key, traceparent, If-None-Match"
#define CORS_EXPOSE                                                                                \
    "X-Correlation-ID, Retry-After, X-RateLimit-Remaining, ETag, Warning, traceparent"

int mx__app_cors_parse(struct mx_app *app, const char *list)
{
    const char *o;
    size_t n;
    app->ncors = 0;
    while ((o = mx__app_list_item(&list, &n))) {
        while (n && o[n - 1] == '/')
            n--; /* "https://a.example/" is the origin "https://a.example" */
        if (!n)
            continue;
        if (app->ncors == MX_APP_MAX_ORIGINS || n >= sizeof app->cors[0]) {
            MX_ERROR("MX_CORS_ORIGINS: at most %d origins of < %zu bytes each", MX_APP_MAX_ORIGINS,
                     sizeof app->cors[0]);
            return MX_ECONFIG;
        }
        char *c = app->cors[app->ncors];
        memcpy(c, o, n);
        c[n] = '\0';
        /* an origin is scheme://host[:port], read by the one URL parser */
        const char *why = strcmp(c, "*") == 0 ? NULL : mx_http_url_error(c, false);
        if (!why && strcmp(c, "*") != 0 && strchr(strstr(c, "://") + 3, '/'))
            why = "has a path";
        if (why) {
            MX_ERROR("MX_CORS_ORIGINS: \"%s\" is not * or an http(s):// origin (the URL %s)", c,
                     why);
            return MX_ECONFIG;
        }
        app->ncors++;
    }
    return 0;
}

static bool origin_allowed(const struct mx_app *app, const char *origin)
{
    /* bounded, so that echoing it (with "*") stays within the response's
     * 2 KiB of extra headers */
    if (strlen(origin) >= sizeof app->cors[0])
        return false;
    for (int i = 0; i < app->ncors; i++)
        if (strcmp(app->cors[i], "*") == 0 || strcasecmp(app->cors[i], origin) == 0)
            return true;
    return false;
}

/* A client's X-Correlation-ID is echoed when it is a plain token of at most
 * 64 characters; anything else (or none) gets the request's trace id in
 * UUID form, so logs (which carry the trace id) and the client's id agree. */
static void correlation_id(mx_http_req_t *r)
{
    const char *in = mx_http_req_header(r, "X-Correlation-ID");
    size_t n = in ? strlen(in) : 0;
    bool ok = n > 0 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = (in[i] >= '0' && in[i] <= '9') || (in[i] >= 'a' && in[i] <= 'z') ||
             (in[i] >= 'A' && in[i] <= 'Z') || in[i] == '-' || in[i] == '_' || in[i] == '.' ||
             in[i] == ':';
    if (ok) {
        mx_http_add_header(r, "X-Correlation-ID", in);
        if (strcmp(in, mx_http_req_trace_hex(r)) != 0)
            MX_DEBUG("X-Correlation-ID %s is trace %s", in, mx_http_req_trace_hex(r));
        return;
    }
    const char *t = mx_http_req_trace_hex(r);
    char id[40];
    snprintf(id, sizeof id, "%.8s-%.4s-%.4s-%.4s-%.12s", t, t + 8, t + 12, t + 16, t + 20);
    mx_http_add_header(r, "X-Correlation-ID", id);
}

/* The headers of Spring Security's defaults the seed sent, except that a
 * document route (one answered with an ETag) says no-cache rather than
 * no-store: the client may keep it but must revalidate, and 304 works. */
static void security_headers(mx_http_req_t *r, bool doc)
{
    mx_http_add_header(r, "X-Content-Type-Options", "nosniff");
    mx_http_add_header(r, "X-Frame-Options", "DENY");
    mx_http_add_header(r, "X-XSS-Protection", "0");
    mx_http_add_header(r, "Content-Security-Policy",
                       "default-src 'self'; frame-ancestors 'none'; form-action 'self'");
    if (doc) {
        mx_http_add_header(r, "Cache-Control", "no-cache");
    } else {
        mx_http_add_header(r, "Cache-Control", "no-cache, no-store, max-age=0, must-revalidate");
        mx_http_add_header(r, "Pragma", "no-cache");
        mx_http_add_header(r, "Expires", "0");
    }
    /* HSTS only where the client spoke HTTPS (to the TLS-terminating proxy) */
    const char *proto = mx_http_req_header(r, "X-Forwarded-Proto");
    if (proto && strcasecmp(proto, "https") == 0)
        mx_http_add_header(r, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
}

static void cors_forbidden(mx_http_req_t *r)
{
    mx_http_error(r, 403, "CORS_FORBIDDEN", "Origin not allowed (MX_CORS_ORIGINS)");
}

void mx__app_xcut_layer(mx_http_req_t *r, void *ctx)
{
    (void)ctx;
    correlation_id(r);
    security_headers(r, false);
}

bool mx__app_xcut_begin(mx_http_req_t *r, struct acc *a, uint32_t flags)
{
    correlation_id(r);
    security_headers(r, flags & MX__APP_F_DOC);
    const char *origin = mx_http_req_header(r, "Origin");
    if (!origin || a->app->ncors == 0 || (flags & MX__APP_F_NO_CORS))
        return true; /* not a cross-origin call, or CORS off: no CORS headers */
    if (!origin_allowed(a->app, origin)) {
        cors_forbidden(r);
        return false;
    }
    mx_http_add_header(r, "Access-Control-Allow-Origin", origin);
    mx_http_add_header(r, "Access-Control-Allow-Credentials", "true");
    mx_http_add_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE);
    mx_http_add_header(r, "Vary", "Origin");
    return true;
}

/* ---- paths no route serves, and OPTIONS ---- */

/* Whether a route pattern matches the raw path: literal segments exactly,
 * {name} one non-empty segment, a last ** the rest. */
static bool pattern_match(const char *pat, const char *path)
{
    for (;;) {
        if (*pat != '/' || *path != '/')
            return *pat == '\0' && *path == '\0';
        pat++;
        path++;
        if (strcmp(pat, "**") == 0)
            return true;
        size_t pn = strcspn(pat, "/"), sn = strcspn(path, "/");
        if (pat[0] == '{') {
            if (sn == 0)
                return false;
        } else if (pn != sn || memcmp(pat, path, pn) != 0) {
            return false;
        }
        pat += pn;
        path += sn;
    }
}

/* The methods the served routes allow on path, as an Allow value (GET
 * brings HEAD; OPTIONS is always there). Returns how many routes matched. */
static int allowed_methods(const char *path, char *out, size_t cap)
{
    int n = 0;
    size_t len = 0;
    out[0] = '\0';
    const struct mx_http_route *rt;
    size_t nrt = mx__app_routes(&rt);
    for (size_t i = 0; i < nrt; i++) {
        if (!pattern_match(rt[i].pattern, path))
            continue;
        const char *m = rt[i].method;
        char cand[24];
        snprintf(cand, sizeof cand, "%s%s", m, strcmp(m, "GET") == 0 ? ", HEAD" : "");
        if (strstr(out, m)) /* listed by an earlier route */
            continue;
        int k = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", cand);
        if (k > 0 && (size_t)k < cap - len)
            len += (size_t)k;
        n++;
    }
    snprintf(out + len, cap - len, "%sOPTIONS", len ? ", " : "");
    return n;
}

int mx__app_not_found(mx_http_req_t *r, void *st)
{
    char allow[128];
    if (allowed_methods(mx_http_req_path(r), allow, sizeof allow) > 0) {
        mx_http_add_header(r, "Allow", allow);
        mx_http_error(r, 405, "METHOD_NOT_ALLOWED", "Method not allowed on this resource");
    } else {
        mx_http_error(r, 404, "NOT_FOUND", "No such resource");
    }
    return MX_HTTP_DONE;
}

int mx__app_options(mx_http_req_t *r, void *st)
{
    struct acc *a = st;
    char allow[128];
    int n = allowed_methods(mx_http_req_path(r), allow, sizeof allow);
    const char *origin = mx_http_req_header(r, "Origin");
    const char *want = mx_http_req_header(r, "Access-Control-Request-Method");
    if (origin && want) { /* a CORS preflight */
        if (a->app->ncors == 0 || !origin_allowed(a->app, origin)) {
            cors_forbidden(r);
            return MX_HTTP_DONE;
        }
        if (n == 0) {
            mx_http_error(r, 404, "NOT_FOUND", "No such resource");
            return MX_HTTP_DONE;
        }
        char age[16];
        snprintf(age, sizeof age, "%u", a->app->o.cors_max_age_s);
        mx_http_add_header(r, "Access-Control-Allow-Origin", origin);
        mx_http_add_header(r, "Access-Control-Allow-Credentials", "true");
        mx_http_add_header(r, "Access-Control-Allow-Methods", CORS_METHODS);
        mx_http_add_header(r, "Access-Control-Allow-Headers", CORS_HEADERS);
        mx_http_add_header(r, "Access-Control-Max-Age", age);
        mx_http_add_header(r, "Vary",
                           "Origin, Access-Control-Request-Method, "
                           "Access-Control-Request-Headers");
        mx_http_respond(r, 200, NULL, NULL, 0);
        return MX_HTTP_DONE;
    }
    if (n == 0) {
        mx_http_error(r, 404, "NOT_FOUND", "No such resource");
        return MX_HTTP_DONE;
    }
    mx_http_add_header(r, "Allow", allow);
    mx_http_respond(r, 200, NULL, NULL, 0);
    return MX_HTTP_DONE;
}
