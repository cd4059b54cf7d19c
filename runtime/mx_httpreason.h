/* mx_httpreason.h - HTTP reason phrases, shared by the http-acceptor and
 * mxstub (llhttp names statuses only as C identifiers). */
#ifndef MX_HTTPREASON_H
#define MX_HTTPREASON_H

/* mx_http_reason - the reason phrase of status ("OK", "Not Found"...);
 * for a status without one, "Client Error", "Server Error" or "Unknown" by
 * its class. Never NULL; static storage. Any thread. */
const char *mx_http_reason(int status);

#endif
