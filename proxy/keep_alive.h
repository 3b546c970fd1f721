/* proxy/keep_alive.h
 * What an upstream says about its own idle timeout (`Keep-Alive: timeout=N`, RFC 2068
 * §19.7.1.1, sent by Apache, nginx with a second keepalive_timeout argument, Node and others),
 * and how long Petrel keeps such a connection idle in its pool: long enough to be reused,
 * short enough that the upstream never closes it just as a request is written on it. */
#ifndef PT_KEEP_ALIVE_H
#define PT_KEEP_ALIVE_H

#include <stddef.h>
#include <stdint.h>

/* Never keep a connection idle for less than this when the upstream allows any idle time. */
#define PT_KEEP_ALIVE_MIN_IDLE_MS 500u
/* Closed this long before the upstream's own timeout: covers the upstream's timer granularity
 * and a request already on the wire. */
#define PT_KEEP_ALIVE_MARGIN_MS 1000u

/* The timeout=N parameter of a Keep-Alive header value ("timeout=5, max=100"), in seconds, or
 * -1 when the value has none or it is not a decimal number. Parameters are matched
 * case-insensitively; a quoted number is accepted; N is capped at one day. */
int64_t pt_keep_alive_timeout_s(const char *value, size_t len);

/* How long to keep a connection idle in the pool: configured_ms when the upstream announced no
 * timeout (upstream_s < 0), else the smaller of configured_ms and N s - 1 s, but at least
 * 0.5 s. 0 (do not pool it) when the upstream announced timeout=0. */
uint64_t pt_keep_alive_idle_ms(uint64_t configured_ms, int64_t upstream_s);

#endif
