"""tests/e2e/test_72_circuit_breaking.py -- DestinationRule connectionPool circuit breakers,
end to end.

  - Istio's circuit-breaking task (its DestinationRule from ../shared/acceptance/istio, its
    fortio run as concurrent Python clients): some requests get 503 at once with flag UO and
    `x-envoy-overloaded: true`, counted; the origin never sees two connections at a time;
  - maxConnections holds across 2 workers (the origin never has more requests in flight);
  - maxRequestsPerConnection: 1 opens a connection per request; idleTimeout closes pooled ones;
  - http2MaxRequests caps the cluster's requests in flight;
  - a reload that leaves the cluster alone keeps its counters: a request in flight from the
    old snapshot still holds its slot, and gives it back when it ends;
  - connectTimeout, maxConnectionDuration and tcpKeepalive (seen with ss) per cluster.
"""

import json
import os
import re
import shutil
import signal
import socket
import threading
import time

import pytest
import yaml

from netutil import free_port, header, http_request, tcp_keepalive_timers, wait_until
from petrel import ISTIO, REPO, simple_config, stats

TASK_DR = None
for base in (os.path.join(REPO, ".."), os.path.join(REPO, "..", "..")):
    path = os.path.join(base, "shared", "acceptance", "istio", "docs-tasks", "circuit-breaking",
                        "snip_configuring_the_circuit_breaker_1.yaml")
    if os.path.exists(path):
        TASK_DR = path
        break


def dr_doc(traffic_policy, name="web"):
    return {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": name},
            "spec": {"host": "web.local", "trafficPolicy": traffic_policy}}


def pool(tcp=None, http=None):
    cp = {}
    if tcp:
        cp["tcp"] = tcp
    if http:
        cp["http"] = http
    return {"connectionPool": cp}


class InFlight:
    """An origin route that answers after delay seconds and records the most requests it
    had in flight at once."""

    def __init__(self, origin, prefix, delay):
        self.lock = threading.Lock()
        self.now = 0
        self.max = 0
        self.delay = delay
        origin.routes[prefix] = self.handle

    def handle(self, conn, req):
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
        return conn.send_response(req, 200, [("Content-Type", "text/plain")], b"ok\n")


def run_clients(port, n_clients, per_client, path):
    """fortio -c n_clients -n n_clients*per_client, one connection per request."""
    out = []
    lock = threading.Lock()

    def client(c):
        for i in range(per_client):
            st, hdrs, body = http_request(port, "GET", "%s?c=%d&i=%d" % (path, c, i), timeout=30)
            with lock:
                out.append((st, hdrs, body))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


@pytest.mark.skipif(TASK_DR is None, reason="../shared/acceptance/istio is not beside the repo")
def test_istio_circuit_breaking_task(petrel, origin):
    with open(TASK_DR) as f:
        dr = yaml.safe_load(f)
    dr["spec"]["host"] = "web.local"  # httpbin here is the origin behind web.local
    slow = InFlight(origin, "/get", 0.05)
    docs = simple_config(http_port=free_port(), upstream_port=origin.port) + [dr]
    p = petrel(docs, proxy_spec={"accessLogFormat": "json"})
    out = run_clients(p.port, 3, 10, "/get")
    assert len(out) == 30
    ok = [o for o in out if o[0] == 200]
    overflow = [o for o in out if o[0] == 503]
    assert len(ok) + len(overflow) == 30
    assert ok and overflow, [o[0] for o in out]
    for st, hdrs, body in overflow:
        assert header(hdrs, "x-envoy-overloaded") == "true", hdrs
        assert b"overflow" in body
    st = stats(p)
    assert st["upstream_overflow_pending"] == len(overflow)
    assert slow.max == 1
    # maxRequestsPerConnection: 1 -- every request that went through had its own connection
    assert origin.connections == len(ok)
    flags = [line for line in p.wait_access_log(30) if '"response_flags":"UO"' in line]
    assert len(flags) == len(overflow)


def test_max_connections_held_across_workers(petrel, origin):
    slow = InFlight(origin, "/slow", 0.1)
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    docs.append(dr_doc(pool(tcp={"maxConnections": 2}, http={"http1MaxPendingRequests": 100})))
    p = petrel(docs, concurrency=2)
    out = run_clients(p.port, 8, 3, "/slow")
    assert [o[0] for o in out] == [200] * 24
    assert slow.max <= 2
    assert stats(p)["upstream_overflow_connections"] > 0
    # without the limit the same load runs more than 2 at a time
    origin2_docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    p2 = petrel(origin2_docs, concurrency=2)
    slow.max = 0
    out = run_clients(p2.port, 8, 2, "/slow")
    assert [o[0] for o in out] == [200] * 16
    assert slow.max > 2


def test_max_requests_per_connection(petrel, origin_factory):
    for limit, expected in ((1, 5), (None, 1)):
        o = origin_factory()
        docs = simple_config(http_port=free_port(), upstream_port=o.port)
        if limit:
            docs.append(dr_doc(pool(http={"maxRequestsPerConnection": limit})))
        p = petrel(docs, concurrency=1)
        for i in range(5):
            assert http_request(p.port, "GET", "/r/%d" % i)[0] == 200
        assert o.connections == expected, (limit, o.connections)


def test_idle_timeout_closes_pooled_connections(petrel, origin):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    docs.append(dr_doc(pool(http={"idleTimeout": "200ms"})))
    p = petrel(docs, concurrency=1)
    assert http_request(p.port, "GET", "/a")[0] == 200
    wait_until(lambda: stats(p)["upstream_cx_idle_closed"] == 1, timeout=5,
               what="the pooled connection closed after idleTimeout")


def test_http2_max_requests(petrel, origin):
    InFlight(origin, "/slow", 0.3)
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    docs.append(dr_doc(pool(http={"http2MaxRequests": 1})))
    p = petrel(docs)
    out = run_clients(p.port, 3, 2, "/slow")
    codes = [o[0] for o in out]
    assert 200 in codes and 503 in codes, codes
    assert stats(p)["upstream_overflow_requests"] == codes.count(503)


def test_reload_keeps_breaker_counters(petrel, origin):
    InFlight(origin, "/slow", 1.5)
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    docs.append(dr_doc(pool(http={"http2MaxRequests": 1})))
    p = petrel(docs)
    held = []
    t = threading.Thread(target=lambda: held.append(http_request(p.port, "GET", "/slow")[0]))
    t.start()
    origin.wait_requests(1)
    # a reload that changes the route, not the cluster
    docs2 = simple_config(http_port=p.port, upstream_port=origin.port,
                          http_route={"timeout": "20s"})
    docs2.append(dr_doc(pool(http={"http2MaxRequests": 1})))
    p.write_config(docs2)
    p.signal(signal.SIGHUP)
    wait_until(lambda: stats(p)["config_reloads_accepted"] >= 1, timeout=5, what="reload")
    status, hdrs, _ = http_request(p.port, "GET", "/fast")
    assert status == 503 and header(hdrs, "x-envoy-overloaded") == "true"
    t.join(10)
    assert held == [200]
    # the old snapshot's request gave its slot back
    assert http_request(p.port, "GET", "/fast")[0] == 200


def test_h2_fields_are_read(petrel, origin):
    # useClientProtocol wins over h2UpgradePolicy (as in Istio): an HTTP/1.1 client's request
    # stays HTTP/1.1, so this HTTP/1-only origin answers. (HTTP/2 upstreams: test_86.)
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    docs.append(dr_doc(pool(http={"h2UpgradePolicy": "UPGRADE", "useClientProtocol": True,
                                  "maxConcurrentStreams": 10})))
    p = petrel(docs)
    st, _, body = http_request(p.port, "GET", "/a")
    assert st == 200 and json.loads(body)["version"] == "HTTP/1.1"
    err = p.stderr()
    assert "h2UpgradePolicy" not in err and "useClientProtocol" not in err, err
    assert "connectionPool.http.maxConcurrentStreams: Petrel announces nghttp2's default" in err, err


def test_connect_timeout_per_cluster(petrel):
    """A listener whose accept queue is full drops new SYNs: the connect hangs until the
    cluster's connectTimeout (the Proxy's is 10 s)."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        docs = simple_config(http_port=free_port(), upstream_port=port, http_route={
            "retries": {"attempts": 0}})
        docs.append(dr_doc(pool(tcp={"connectTimeout": "300ms"})))
        p = petrel(docs)
        t0 = time.monotonic()
        status, _, body = http_request(p.port, "GET", "/ct")
        took = time.monotonic() - t0
        assert status == 503 and b"connection failure" in body
        assert 0.25 <= took < 5.0, took
        assert stats(p)["upstream_cx_connect_timeout"] == 1
    finally:
        for s in fillers:
            s.close()
        ls.close()


def test_max_connection_duration(petrel, origin):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    docs.append(dr_doc(pool(tcp={"maxConnectionDuration": "300ms"})))
    p = petrel(docs, concurrency=1)
    assert http_request(p.port, "GET", "/a")[0] == 200
    # the pooled connection is closed when its duration ends, though idleTimeout is 60 s
    wait_until(lambda: stats(p)["upstream_cx_idle_closed"] == 1, timeout=5,
               what="the pooled connection closed at maxConnectionDuration")
    assert http_request(p.port, "GET", "/b")[0] == 200
    assert origin.connections == 2


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_tcp_keepalive_sets_socket_options(petrel, origin_factory):
    plain, kept = origin_factory(name="plain"), origin_factory(name="kept")
    for o, with_keepalive in ((plain, False), (kept, True)):
        docs = simple_config(http_port=free_port(), upstream_port=o.port)
        if with_keepalive:
            docs.append(dr_doc(pool(tcp={"tcpKeepalive": {"time": "600s", "interval": "7s",
                                                          "probes": 3}})))
        p = petrel(docs, concurrency=1)
        assert http_request(p.port, "GET", "/k")[0] == 200
        if with_keepalive:  # the retransmission timer may show until the last send is acked
            wait_until(lambda: len(tcp_keepalive_timers(o.port)) == 1, 5, what="the timer")
        timers = tcp_keepalive_timers(o.port)
        if with_keepalive:
            assert len(timers) == 1, timers
            # TCP_KEEPIDLE 600 s: the first probe within 10 minutes (the system's is 2 h)
            m = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec)?", timers[0])
            left = int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
            assert 0 < left <= 600, timers
        else:
            assert timers == []


def test_pending_request_waits_then_overflows(petrel, origin):
    """maxConnections: 1 held by a hanging request: the next waits as pending (up to the
    cluster's connectTimeout: its own route timeout has not started) and is then answered
    503 UO; once the hanging one timed out, the slot is free and a request goes through."""
    docs = simple_config(http_port=free_port(), upstream_port=origin.port,
                         http_route={"timeout": "1500ms", "retries": {"attempts": 0}})
    docs.append(dr_doc(pool(tcp={"maxConnections": 1, "connectTimeout": "400ms"},
                            http={"http1MaxPendingRequests": 5})))
    p = petrel(docs)
    hung = socket.create_connection(("127.0.0.1", p.port))
    hung.sendall(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
    origin.wait_requests(1)
    t0 = time.monotonic()
    status, hdrs, _ = http_request(p.port, "GET", "/waits")
    took = time.monotonic() - t0
    assert status == 503 and header(hdrs, "x-envoy-overloaded") == "true"
    assert 0.35 <= took < 5.0, took
    st = stats(p)
    assert st["upstream_overflow_connections"] == 1 and st["upstream_overflow_pending"] == 1
    hung.close()
    wait_until(lambda: http_request(p.port, "GET", "/after")[0] == 200, timeout=5,
               what="a request through once the slot is free")
