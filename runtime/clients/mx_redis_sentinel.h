/* mx_redis_sentinel.h - internal: the Sentinel resolver shared by every
 * mx_redis client of one redis-sentinel:// URL in a process. Only
 * mx_redis.c uses it; users see the URL form and the counters.
 *
 * A resolver runs its own thread and libuv loop with, per sentinel, one
 * command link (SENTINEL get-master-addr-by-name) and one subscriber link
 * (+switch-master). It keeps the master's address and a generation that
 * rises with every change, and wakes each follower (a uv_async_t on the
 * follower's loop) when it changes. Followers read the address when they
 * connect; they kick it when what they found is not a usable master.
 */
#ifndef MX_REDIS_SENTINEL_H
#define MX_REDIS_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mx_redis.h"

struct mx__sentinel;
struct mx_jsonw;

/* mx__sentinel_get - the resolver of url (a valid redis-sentinel:// URL),
 * created with its thread on first use; one reference more. Returns 0,
 * MX_EINVAL, MX_ELIMIT (MX_REDIS_MAX_FOLLOWERS clients of the URL, or 16
 * URLs in the process; counted and logged). Any thread. */
int mx__sentinel_get(const char *url, struct mx__sentinel **out);

/* mx__sentinel_put - drop a reference; the last one stops the resolver's
 * thread and joins it (a few ms). Any thread but the resolver's. */
void mx__sentinel_put(struct mx__sentinel *s);

/* mx__sentinel_follow / unfollow - (stop) wake `wake` (uv_async_send)
 * whenever the master changes. After unfollow returns, `wake` is never
 * touched again, so it may be closed. Any thread. */
void mx__sentinel_follow(struct mx__sentinel *s, uv_async_t *wake);
void mx__sentinel_unfollow(struct mx__sentinel *s, uv_async_t *wake);

/* mx__sentinel_master - the master as last resolved: true with host, port
 * and the generation, false while none is known. Any thread. */
bool mx__sentinel_master(struct mx__sentinel *s, char *host, size_t cap, int *port, uint64_t *gen);

/* mx__sentinel_kick - ask the sentinels again now (coalesced; at most one
 * round per 200 ms). Any thread. */
void mx__sentinel_kick(struct mx__sentinel *s);

/* mx__sentinel_report - a JSON array of the process's resolvers. */
void mx__sentinel_report(struct mx_jsonw *w);

/* mx__redis_open_link - (mx_redis.c) a client to one sentinel: no ROLE
 * check, and an AUTH the sentinel says it does not need is not an error.
 * on_msg non-NULL makes it a subscriber. Not listed by mx_redis_report. */
int mx__redis_open_link(uv_loop_t *loop, const char *url, const struct mx_redis_opts *opts,
                        mx_redis_msg_cb on_msg, void *arg, mx_redis_t **out);

#endif
