"""tests/e2e/test_77_pool_demand.py -- idle upstream connections above recent demand are closed
within seconds after a burst, not kept for the whole upstreamIdleTimeout (60 s by default).

A burst of concurrent slow requests makes Petrel open one upstream connection per request.
Afterwards a trickle of one request at a time keeps the demand at one connection: within a
few seconds Petrel's ESTABLISHED connections to the origin (read from /proc/net/tcp) fall to
that, the closes are counted as upstream_cx_idle_purged, and the trickle keeps being served
on the one connection left. A quiet spell longer than the purge period keeps that connection:
sparse traffic does not pay a new connection per request.
"""

import json
import threading
import time

from netutil import free_port, http_request
from petrel import simple_config, stats

BURST = 40


def established_to(port):
    """Sockets in state ESTABLISHED whose remote end is 127.0.0.1:port: Petrel's side of its
    connections to the origin (the origin's own sockets have port as their local end)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and remote == "0100007F:%04X" % port:
                n += 1
    return n


def test_burst_connections_fall_to_recent_demand(petrel, origin):
    # One worker: one pool, so the count is the pool's.
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    statuses = []
    lock = threading.Lock()

    def one():
        st, _, _ = http_request(p.port, path="/delay/500", timeout=20)
        with lock:
            statuses.append(st)

    threads = [threading.Thread(target=one) for _ in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * BURST
    opened = stats(p)["upstream_cx_total"]
    assert opened >= BURST // 2, "the burst should have needed many connections: %d" % opened
    after_burst = established_to(origin.port)
    assert after_burst >= BURST // 2

    # One request at a time from now on: the recent demand is one connection.
    burst_end = time.monotonic()
    on_conn = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        st, _, body = http_request(p.port, path="/echo")
        assert st == 200
        on_conn.append(json.loads(body)["request_on_connection"])
        if established_to(origin.port) <= 1 and len(on_conn) >= 5:
            break
        time.sleep(0.1)  # the client's think time between requests (not a wait for Petrel)
    assert established_to(origin.port) <= 1, "idle connections above demand still open"
    print("burst of %d: %d upstream connections open after it, %d after %.1f s of one request "
          "at a time" % (BURST, after_burst, established_to(origin.port),
                         time.monotonic() - burst_end))
    purged = stats(p)["upstream_cx_idle_purged"]
    assert purged >= opened - 2, (purged, opened)
    # The connection kept for the demand goes on serving: the last requests reused it.
    assert on_conn[-1] >= 1 and on_conn[-2] >= 1, on_conn
    # Traffic sparser than one request a purge period keeps one warm connection (it goes only at
    # upstreamIdleTimeout): after 2.5 quiet seconds the next request still reuses it.
    served = on_conn[-1]
    time.sleep(2.5)  # the quiet period under test, not a wait for Petrel
    assert established_to(origin.port) == 1
    st, _, body = http_request(p.port, path="/echo")
    assert st == 200 and json.loads(body)["request_on_connection"] == served + 1
