"""tests/e2e/test_88_http2_keepalive.py -- finding dead upstream peers: the Proxy's
upstreamHttp2Keepalive (PINGs on upstream HTTP/2 connections) and the DestinationRule's
connectionPool.tcp.tcpKeepalive on an HTTP/2 upstream's socket.

The dead peer is tests/lib/upstream.py's H2Origin after freeze(): its connections stay
established (the kernel still acknowledges) but nothing reads or answers, as when a process
hangs or a NAT has dropped the connection's state. What is checked:
  - PINGs reach the origin at the configured interval, on an idle pooled connection and while a
    stream is open; answered PINGs keep the connection; without the setting no PING is sent;
  - a request on a connection whose peer stopped answering fails (503 URX) within interval +
    timeout, the connection is closed and the next request goes on a new connection;
  - an idle pooled connection whose peer stopped answering is dropped;
  - with `retryOn: reset` the request moves to a live endpoint and is answered;
  - tcpKeepalive's SO_KEEPALIVE and TCP_KEEPIDLE on the HTTP/2 upstream socket (ss -o).
"""

import json
import re
import shutil
import time

import pytest

from netutil import free_port, http_request, tcp_keepalive_timers, wait_until
from petrel import ISTIO, simple_config, stats

INTERVAL, TIMEOUT = 1.0, 1.0
# What a loaded machine (2 cores shared with other builds and fuzzers) may add to a deadline.
SLACK = 2.0


def h2_docs(origin_ports, http_route=None, extra=()):
    """A Gateway routing to web.local, whose HTTP2 port has an endpoint per origin port."""
    docs = simple_config(http_port=free_port(), upstream_port=origin_ports, http_route=http_route)
    se = docs[-1]["spec"]
    se["ports"] = [{"number": 80, "name": "http2", "protocol": "HTTP2"}]
    for ep in se["endpoints"]:
        ep["ports"] = {"http2": list(ep["ports"].values())[0]}
    return docs + list(extra)


def keepalive(interval=INTERVAL, timeout=TIMEOUT):
    return {"upstreamHttp2Keepalive": {"interval": "%dms" % (interval * 1000),
                                       "timeout": "%dms" % (timeout * 1000)}}


def timed_get(port, path="/echo", timeout=20.0):
    t0 = time.monotonic()
    st, _, body = http_request(port, path=path, timeout=timeout)
    return st, body, time.monotonic() - t0


def test_pings_at_the_interval_on_idle_and_busy_connections(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_docs(o.port), concurrency=1, proxy_spec=keepalive(interval=0.5, timeout=2))
    assert http_request(p.port, path="/echo")[0] == 200
    # idle in the pool
    wait_until(lambda: len(o.pings) >= 4, timeout=10, what="4 PINGs on the idle connection")
    gaps = [b - a for a, b in zip(o.pings, o.pings[1:4])]
    assert all(g >= 0.4 for g in gaps), gaps  # never more often than the interval
    assert sum(gaps) / len(gaps) <= 0.5 + SLACK / 2, gaps
    # busy: a stream open for 2.5 s sees PINGs go on
    before = len(o.pings)
    st, body, _ = timed_get(p.port, "/delay/2500")
    assert st == 200, body
    assert len(o.pings) - before >= 2, o.pings
    # every PING was answered: one connection all along, no keepalive failure
    assert o.connections == 1 and json.loads(body)["conn_id"] == 1
    assert stats(p)["upstream_cx_h2_keepalive_timeout"] == 0


def test_no_pings_without_the_setting(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_docs(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    # The negative check needs some quiet time: 1.5 s is three times the shortest interval the
    # other tests use.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not o.pings:
        time.sleep(0.05)
    assert o.pings == []


def test_request_on_a_dead_connection_fails_within_interval_plus_timeout(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_docs(o.port), concurrency=1, proxy_spec=keepalive())
    st, body, _ = timed_get(p.port)
    assert st == 200 and json.loads(body)["conn_id"] == 1
    o.freeze()
    st, body, took = timed_get(p.port)
    assert st == 503, body
    assert took <= INTERVAL + TIMEOUT + SLACK, took
    s = stats(p)
    assert s["upstream_cx_h2_keepalive_timeout"] == 1 and s["upstream_rq_reset"] == 1, s
    assert s["upstream_rq_reused_connection_retry"] == 0, s  # not replayed on the dead peer
    line = p.wait_access_log(2)[-1]
    assert " 503 URX " in line, line
    # Alive again: the next request goes on a new connection, and the old one was closed.
    o.thaw()
    st, body, _ = timed_get(p.port)
    assert st == 200 and json.loads(body)["conn_id"] == 2, body
    wait_until(lambda: o.closed_by_client >= 1, timeout=5, what="the dead connection closed")


def test_idle_dead_connection_is_dropped_from_the_pool(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_docs(o.port), concurrency=1, proxy_spec=keepalive(interval=0.5, timeout=0.5))
    assert http_request(p.port, path="/echo")[0] == 200
    wait_until(lambda: len(o.pings) >= 1, timeout=5, what="a PING answered")
    o.freeze()
    wait_until(lambda: stats(p)["upstream_cx_h2_keepalive_timeout"] == 1, timeout=0.5 + 0.5 +
               SLACK + 1, what="the idle connection's PING timed out")
    # the gauge drops once the socket's close completes, on the worker's next loop turn
    wait_until(lambda: stats(p)["upstream_cx_active"] == 0, timeout=5,
               what="the dead connection gone from the pool")
    o.thaw()
    st, body, _ = timed_get(p.port)
    assert st == 200 and json.loads(body)["conn_id"] == 2, body


def test_retry_on_reset_moves_the_request_to_a_live_endpoint(petrel, h2origin):
    dead, live = h2origin(name="dead"), h2origin(name="live")
    p = petrel(h2_docs([dead.port, live.port],
                       http_route={"retries": {"attempts": 2, "retryOn": "reset"}}),
               concurrency=1, proxy_spec=keepalive())
    # Round robin: both endpoints get a pooled connection.
    for _ in range(10):
        if dead.requests and live.requests:
            break
        assert http_request(p.port, path="/echo")[0] == 200
    assert dead.requests and live.requests
    dead.freeze()
    served = len(live.requests)
    for _ in range(4):  # round robin sends some of them to the dead endpoint first
        st, body, took = timed_get(p.port)
        assert st == 200, body
        assert took <= INTERVAL + TIMEOUT + SLACK, took
    assert len(live.requests) == served + 4
    s = stats(p)
    assert s["upstream_cx_h2_keepalive_timeout"] >= 1 and s["retries_reset"] >= 1, s


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_tcp_keepalive_on_the_http2_upstream_socket(petrel, h2origin):
    o = h2origin()
    dr = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "web-dr"},
          "spec": {"host": "web.local", "trafficPolicy": {"connectionPool": {"tcp": {
              "tcpKeepalive": {"time": "300s", "interval": "5s", "probes": 2}}}}}}
    p = petrel(h2_docs(o.port, extra=[dr]), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    # Just after an exchange the socket may still run its retransmission timer (ss shows one
    # timer per socket): the keepalive timer shows once what was sent is acknowledged.
    wait_until(lambda: len(tcp_keepalive_timers(o.port)) == 1, 5, what="the keepalive timer")
    timers = tcp_keepalive_timers(o.port)
    assert len(timers) == 1, timers
    # TCP_KEEPIDLE 300 s: the first probe within 5 minutes (the system's default is 2 h)
    m = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec)?", timers[0])
    left = int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
    assert 0 < left <= 300, timers
