/* mxnode_settings.c - every setting of mxnode with its default.
 *
 * Settings for parts that later issues build (HTTP, Redis, MySQL, Nexon,
 * JWT) are declared and validated here already, so a bad value is caught at
 * start whichever part reads it.
 */
#include "mxnode_settings.h"

const struct mx_setting mx_node_settings[] = {
    {"MX_NODE_NAME", "--node-name", "mx1", MX_SET_NAME, 0, 0, "this node's name in logs and the cluster"},
    {"MX_CLUSTER", "--cluster", "mx", MX_SET_NAME, 0, 0, "cluster name (Redis key prefix mx:{CLUSTER}:)"},
    {"MX_SCHEDULERS", "--schedulers", "0", MX_SET_INT, 0, 256, "scheduler threads; 0 = one per core"},
    {"MX_MAILBOX_CAP", "--mailbox-cap", "1024", MX_SET_INT, 1, 1 << 24, "default mailbox capacity (messages)"},
    {"MX_OFFLOAD_THREADS", "--offload-threads", "4", MX_SET_INT, 1, 256, "worker threads for blocking work"},
    {"MX_OFFLOAD_QUEUE", "--offload-queue", "1024", MX_SET_INT, 1, 1 << 20, "pending offload jobs before refusing"},
    {"MX_MAX_ACTORS", "--max-actors", "1048576", MX_SET_INT, 1, 1 << 24, "live actors per node"},
    {"MX_SHUTDOWN_TIMEOUT_MS", "--shutdown-timeout-ms", "10000", MX_SET_INT, 100, 600000, "SIGTERM to exit: the shutdown phases' one deadline (docs/shutdown.md)"},
    {"MX_LOG_LEVEL", "--log-level", "info", MX_SET_LEVEL, 0, 0, "debug, info, warn or error"},
    {"MX_LOG_FORMAT", "--log-format", "auto", MX_SET_NAME, 0, 0, "json, text, or auto (text on a terminal, JSON lines otherwise)"},
    {"MX_HTTP_ADDR", "--http-addr", "127.0.0.1:8080", MX_SET_HOSTPORT, 0, 0, "HTTP API listen address"},
    {"MX_NNG_ADDR", "--nng-addr", "tcp://127.0.0.1:7100", MX_SET_NNG_URL, 0, 0, "actor traffic listen URL (nng)"},
    {"MX_ADMIN_ADDR", "--admin-addr", "tcp://127.0.0.1:7200", MX_SET_NNG_URL, 0, 0, "admin (mxctl) listen URL (nng)"},
    {"MX_ADMIN_TOKEN", "--admin-token", "", MX_SET_SECRET, 16, 0, "token required by the admin endpoint off loopback"},
    {"MX_REDIS_URL", "--redis-url", "redis://127.0.0.1:6379/0", MX_SET_REDIS_URL, 0, 0, "Redis: redis://[:password@]host:port[/db]"},
    {"MX_MYSQL_URL", "--mysql-url", "", MX_SET_MYSQL_URL, 0, 0, "MySQL: mysql://user[:password]@host:port/database"},
    {"MX_MYSQL_POOL", "--mysql-pool", "4", MX_SET_INT, 1, 64, "MySQL connections (one thread each)"},
    {"MX_MYSQL_QUEUE", "--mysql-queue", "1024", MX_SET_INT, 1, 1 << 20, "MySQL jobs waiting for a connection before refusing"},
    {"MX_NEXON_BASE_URL", "--nexon-base-url", "https://open.api.nexon.com", MX_SET_HTTP_URL, 0, 0, "Nexon Open API base URL"},
    {"MX_NEXON_API_KEY", "--nexon-api-key", "", MX_SET_SECRET, 1, 0, "Nexon Open API key (x-nxopen-api-key)"},
    {"MX_CUBE_TABLE", "--cube-table", "../shared/data/cube_probability_black.csv", MX_SET_STR, 0, 4096, "cube probability table (CSV)"},
    {"MX_JWT_SECRET", "--jwt-secret", "", MX_SET_SECRET, 32, 0, "HS256 secret for access tokens (required, >= 32 bytes)"},
    {"MX_HTTP_MAX_CONNS", "--http-max-conns", "10000", MX_SET_INT, 1, 1000000, "open HTTP connections per node; more are refused"},
    {"MX_L1_MAX_ENTRIES", "--l1-max-entries", "10000", MX_SET_INT, 16, 10000000, "L1 cache entries per scheduler"},
    {"MX_L1_MAX_MB", "--l1-max-mb", "128", MX_SET_INT, 1, 65536, "L1 cache megabytes per scheduler"},
    {"MX_FETCH_MAX_INFLIGHT", "--fetch-max-inflight", "32", MX_SET_INT, 1, 4096, "concurrent upstream (Nexon) calls"},
    {"MX_FETCH_TIMEOUT_MS", "--fetch-timeout-ms", "5000", MX_SET_INT, 100, 120000, "one upstream attempt's total timeout"},
    {"MX_RATE_LIMIT", "--rate-limit", "1", MX_SET_INT, 0, 1, "global rate limits in Redis: 1 on, 0 off (benchmarks)"},
    {"MX_TRUSTED_PROXIES", "--trusted-proxies", "", MX_SET_CIDRS, 0, 0, "peers whose X-Forwarded-For and PROXY protocol header are honoured"},
    /* cache tier settings (mxnode_svc.c): add below */
    {"MX_CACHE_L2", "--cache-l2", "1", MX_SET_INT, 0, 1, "L2 Redis cache and cluster single-flight: 1 on, 0 off"},
    {"MX_CACHE_LATCH_TTL_MS", "--cache-latch-ttl-ms", "10000", MX_SET_INT, 200, 600000, "single-flight latch TTL (and longest wait for another node's load)"},
    {"MX_CACHE_REDIS_TIMEOUT_MS", "--cache-redis-timeout-ms", "1000", MX_SET_INT, 10, 60000, "timeout of one cache Redis command"},
    {"MX_TTL_DOC_L1_S", "--ttl-doc-l1-s", "3600", MX_SET_INT, 1, 604800, "expectation document TTL in L1 (seconds)"},
    {"MX_TTL_DOC_L2_S", "--ttl-doc-l2-s", "3600", MX_SET_INT, 1, 604800, "expectation document TTL in L2 (seconds)"},
    {"MX_TTL_EQUIPMENT_L1_S", "--ttl-equipment-l1-s", "300", MX_SET_INT, 1, 604800, "equipment TTL in L1 (seconds)"},
    {"MX_TTL_EQUIPMENT_L2_S", "--ttl-equipment-l2-s", "600", MX_SET_INT, 1, 604800, "equipment TTL in L2 (seconds)"},
    {"MX_TTL_OCID_L1_S", "--ttl-ocid-l1-s", "1800", MX_SET_INT, 1, 604800, "IGN -> ocid TTL in L1 (seconds)"},
    {"MX_TTL_OCID_L2_S", "--ttl-ocid-l2-s", "3600", MX_SET_INT, 1, 604800, "IGN -> ocid TTL in L2 (seconds)"},
    {"MX_TTL_CHARACTER_L1_S", "--ttl-character-l1-s", "900", MX_SET_INT, 1, 604800, "character record TTL in L1 (seconds)"},
    {"MX_TTL_CHARACTER_L2_S", "--ttl-character-l2-s", "900", MX_SET_INT, 1, 604800, "character record TTL in L2 (seconds)"},
    {"MX_TTL_NEGATIVE_S", "--ttl-negative-s", "900", MX_SET_INT, 1, 604800, "unknown character (negative cache) TTL, L1 and L2 (seconds)"},
    {"MX_L3_FRESH_S", "--l3-fresh-s", "900", MX_SET_INT, 0, 604800, "stored equipment (MySQL) younger than this is used without upstream (seconds)"},
    {"MX_SPOOL_PATH", "--spool-path", "", MX_SET_STR, 0, 4096, "write spool file for MySQL outages; \"\" = ./var/spool-<MX_NODE_NAME>.log"},
    {"MX_SPOOL_MAX_MB", "--spool-max-mb", "64", MX_SET_INT, 1, 65536, "write spool size bound (MiB); writes past it are refused and counted"},
    /* shutdown settings (actors/shutdown, docs/shutdown.md): add below */
    {"MX_DRAIN_GRACE_MS", "--drain-grace-ms", "3000", MX_SET_INT, 0, 300000, "readiness 503 while still serving, before listeners close; at most MX_SHUTDOWN_TIMEOUT_MS/2"},
    /* cluster settings (mxnode_cluster.c): add below */
    {"MX_REGISTRY", "--registry", "1", MX_SET_INT, 0, 1, "cluster membership and singleton leases in Redis: 1 on, 0 off"},
    {"MX_MEMBER_REFRESH_MS", "--member-refresh-ms", "1000", MX_SET_INT, 50, 60000, "membership record refresh period"},
    {"MX_MEMBER_TTL_MS", "--member-ttl-ms", "5000", MX_SET_INT, 100, 600000, "membership record TTL (a node silent this long is down)"},
    {"MX_LEASE_TTL_MS", "--lease-ttl-ms", "2000", MX_SET_INT, 100, 600000, "singleton lease TTL; renewed every TTL/3"},
    {"MX_LEASE_MARGIN_MS", "--lease-margin-ms", "0", MX_SET_INT, 0, 60000, "self-fence this long before the lease TTL ends; 0 = max(100, TTL/10)"},
    {"MX_SINGLETON_BUFFER", "--singleton-buffer", "256", MX_SET_INT, 1, 65536, "messages per singleton waiting for a holder"},
    {"MX_HEALTH_PROBE_MS", "--health-probe-ms", "1000", MX_SET_INT, 50, 60000, "mysql-health probe period"},
    /* likes settings (mxnode_likes.c) */
    {"MX_LIKE_SYNC_INTERVAL_MS", "--like-sync-interval-ms", "1000", MX_SET_INT, 20, 60000, "like-sync pass period: pending likes move to MySQL this often"},
    {"MX_LIKE_SYNC_BATCH", "--like-sync-batch", "2000", MX_SET_INT, 1, 100000, "pending like pairs per like-sync batch (one MySQL transaction)"},
    {"MX_LIKE_WARM_MAX_ROWS", "--like-warm-max-rows", "500000", MX_SET_INT, 1, 10000000, "most likers of one character loaded into Redis; a bigger one answers 503"},
    {"MX_LIKE_SYNC_PAUSE_MS", "--like-sync-pause-ms", "0", MX_SET_INT, 0, 600000, "tests only: like-sync waits this long between journal and commit"},
    {"MX_LEASE_TEST", "--lease-test", "0", MX_SET_INT, 0, 1, "tests only: run the lease-probe singleton (logs its ticks in Redis)"},
    {"MX_ADVERTISE_HOST", "--advertise-host", "", MX_SET_STR, 0, 255, "host peers use for this node's nng/admin addresses; empty = the listen host"},
};

const size_t mx_node_settings_count = sizeof(mx_node_settings) / sizeof(mx_node_settings[0]);
