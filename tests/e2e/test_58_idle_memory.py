"""tests/e2e/test_58_idle_memory.py -- what an idle keep-alive client connection costs.

10,000 client connections each make one GET through Petrel and then stay open, idle. Petrel's
resident memory (VmRSS) grows by at most 512 bytes per connection: an idle connection holds no
stream, no request arena, no parser, no read slab and no libuv timer of its own.

Under AddressSanitizer the bound is not checked (its allocator's redzones and quarantine are
not Petrel's memory); the 10,000 connections are still opened, served and closed.

A warm-up round of the same shape comes first, so that the worker's caches (slabs, streams,
parsers, the upstream pool for the batch size) are already there when the "before" figure is
read and the delta counts the connections alone.
"""

import resource
import socket

import pytest

from netutil import LOCALHOST, free_port, recv_one, rss_kb, wait_until
from petrel import sanitized, simple_config, stats

CONNECTIONS = 10_000
BATCH = 50  # connections with a request in flight at once (within the worker's stream and
#             parser caches, so the transient per-request memory is reused, not fragmented)
MAX_BYTES_PER_CONNECTION = 512
REQUEST = b"GET /status/200 HTTP/1.1\r\nHost: web.local\r\n\r\n"


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n:
        return False
    if soft == resource.RLIM_INFINITY or soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
    return True


def open_idle(port, n, keep):
    """Opens n connections in batches, one GET each answered 200, and keeps them open."""
    for start in range(0, n, BATCH):
        batch = []
        for _ in range(min(BATCH, n - start)):
            s = socket.create_connection((LOCALHOST, port), timeout=10)
            keep.append(s)
            batch.append(s)
        for s in batch:
            s.sendall(REQUEST)
        for s in batch:
            st, _, _ = recv_one(s, timeout=20)
            assert st == 200


def test_idle_keepalive_connection_costs_at_most_512_bytes(petrel, origin):
    # client sockets + warm-up + slack; Petrel raises its own soft limit to the hard one.
    if not raise_nofile(CONNECTIONS + 2000):
        pytest.skip("RLIMIT_NOFILE hard limit below %d" % (CONNECTIONS + 2000))
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1,
               proxy_spec={"maxConnections": CONNECTIONS + 2000})
    held = []
    try:
        open_idle(p.port, 2 * BATCH, held)  # warm-up
        before = rss_kb(p.pid)
        open_idle(p.port, CONNECTIONS, held)
        after = rss_kb(p.pid)
        per_connection = (after - before) * 1024 / CONNECTIONS
        print("idle keep-alive connection: %.0f B of RSS (%d KiB over %d connections)"
              % (per_connection, after - before, CONNECTIONS))
        if not sanitized(p.pid):  # a sanitizer's shadow and quarantine are not Petrel's memory
            assert per_connection <= MAX_BYTES_PER_CONNECTION, per_connection
        # They are all still open and served: one more request on the first and the last.
        for s in (held[0], held[-1]):
            s.sendall(REQUEST)
            assert recv_one(s)[0] == 200
    finally:
        for s in held:
            s.close()
    # Petrel sees them go (downstream_cx_active back to 0 within a bounded time).
    wait_until(lambda: stats(p)["downstream_cx_active"] == 0, 20, what="connections closed")
