/* proxy/dns.h
 * The DNS resolver of ServiceEntries with resolution DNS / DNS_ROUND_ROBIN: c-ares driven by
 * the main thread's libuv loop (uv_poll on c-ares' sockets, a uv_timer for its timeouts and
 * one for refreshes). Never on the request path; workers never see it.
 *
 * It keeps, per name, the last good answer (IPv4 addresses when there are any, else IPv6)
 * as runtime state that outlives snapshots. Compile reads it through
 * pt_config_set_dns_lookup(); when an answer changes, on_change runs (main thread) and
 * proxy/main.c recompiles the config in force and publishes the new snapshot. A refresh whose
 * answer is the same set of addresses changes nothing.
 *
 * Refresh: when the smallest TTL of the answer (A/AAAA records and every CNAME of the chain)
 * expires, clamped to [minRefresh, maxRefresh]. A failure (timeout, refused, server failure)
 * keeps the last good answer and retries after minRefresh, doubling per consecutive failure
 * up to min(maxRefresh, 10 x minRefresh). NXDOMAIN / no data is an answer with no addresses,
 * as Envoy: the name's endpoints go away (NXDOMAIN is also a warning: a name that does not
 * exist is most often a typo in the ServiceEntry). */
#ifndef PT_DNS_H
#define PT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "../config/config.h"
#include "stats.h"

typedef struct pt_dns pt_dns_t;

/* Starts the resolver on loop with settings (servers: NULL reads /etc/resolv.conf). on_change
 * runs on loop's thread after an answer changed. Returns NULL and logs when c-ares cannot
 * start. The counters go to stats (main thread only). */
pt_dns_t *pt_dns_start(uv_loop_t *loop, const pt_dns_settings_t *settings, pt_stats_t *stats,
                       void (*on_change)(void *arg), void *arg);

/* Takes the refresh bounds and timeout of a new snapshot (servers need a restart). */
void pt_dns_configure(pt_dns_t *d, const pt_dns_settings_t *settings);

/* The names the snapshot in force resolves (services[i]: the ServiceEntry that names names[i],
 * for log lines): new ones are queried at once, names no longer listed are forgotten. */
void pt_dns_track(pt_dns_t *d, const char *const *names, const char *const *services, size_t n);

/* The last good answer for name (ports 0); 0 when there is none. The array lives until the
 * next answer for the name is stored, which only happens in a loop callback. */
size_t pt_dns_lookup(void *dns, const char *name, const struct sockaddr_storage **addrs);

/* Cancels the queries and closes every handle (the loop then ends); frees itself once they
 * are closed. */
void pt_dns_stop(pt_dns_t *d);

/* ---- pure helpers (unit-tested) ------------------------------------------------------- */

/* When to ask again after an answer whose smallest TTL is ttl_s seconds. */
uint64_t pt_dns_refresh_ms(uint32_t ttl_s, uint64_t min_ms, uint64_t max_ms);
/* When to ask again after the n-th consecutive failure (n >= 1). */
uint64_t pt_dns_retry_ms(unsigned n, uint64_t min_ms, uint64_t max_ms);
/* Keeps the IPv4 addresses of v when there are any, else the IPv6 ones; drops duplicates;
 * keeps the order. Returns the new count. */
size_t pt_dns_prefer_ipv4(struct sockaddr_storage *v, size_t n);
/* The smallest TTL of a c-ares answer: its address records and every CNAME of the chain; 0
 * when it has none. */
struct ares_addrinfo;
uint32_t pt_dns_min_ttl(const struct ares_addrinfo *ai);
/* Do a and b hold the same addresses, in any order? */
bool pt_dns_same_addrs(const struct sockaddr_storage *a, size_t na,
                       const struct sockaddr_storage *b, size_t nb);

#endif
