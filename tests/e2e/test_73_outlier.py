"""tests/e2e/test_73_outlier.py -- DestinationRule outlierDetection, end to end.

Real petrel, real origins (tests/lib/upstream.py; HttpOrigin(status=N) answers N everywhere):

  - an endpoint answering 503 is ejected after consecutive5xxErrors and traffic goes to the
    healthy ones; /clusters shows it as /failed_outlier_check; it comes back after
    baseEjectionTime (and is ejected again at once if it still fails, for twice as long);
  - maxEjectionPercent caps how many endpoints are out at once (the rest is counted, and
    logged at most once per 10 s);
  - minHealthPercent: below it (panic) every endpoint is used again; without it, a cluster
    whose every endpoint is ejected answers 503 UH;
  - consecutiveGatewayErrors counts 502/503/504 only, and consecutive5xxErrors: 0 leaves a
    500-answering endpoint in;
  - connection failures count as gateway errors (no split) or as local-origin failures
    (splitExternalLocalOriginErrors + consecutiveLocalOriginFailures);
  - the state is shared by the workers and survives a reload.
"""

import collections
import re
import time

from netutil import build_request, connect, free_port, header, recv_one, wait_until
from petrel import ISTIO, gateway_doc, stats

HOST = "web.default.svc.cluster.local"


def docs_for(port, endpoint_ports, outlier, subsets=None):
    eps = [{"address": "127.0.0.1", "ports": {"http": p}} for p in endpoint_ports]
    dr = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "web"},
          "spec": {"host": HOST, "trafficPolicy": {"outlierDetection": outlier}}}
    return [gateway_doc([(port, "HTTP")]),
            {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "web"},
             "spec": {"hosts": [HOST], "location": "MESH_INTERNAL", "resolution": "STATIC",
                      "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                      "endpoints": eps}},
            dr,
            {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
             "spec": {"hosts": ["*"], "gateways": ["edge"],
                      # no retries: every failure must reach the client and the counts
                      "http": [{"retries": {"attempts": 0},
                                "route": [{"destination": {"host": HOST,
                                                           "port": {"number": 80}}}]}]}}]


def get(sock, path="/echo"):
    sock.sendall(build_request(path, [("Host", "example.com")]))
    status, hdrs, _ = recv_one(sock)
    return status, header(hdrs, "x-origin")


def run(port, n):
    """n requests on one keep-alive connection: Counter of (status, origin)."""
    out = collections.Counter()
    s = connect(port)
    try:
        for _ in range(n):
            out[get(s)] += 1
    finally:
        s.close()
    return out


def clusters(p):
    st, body = p.admin_get("/clusters")
    assert st == 200
    return body.decode()


def health(p, origin_port):
    m = re.search(r"::127\.0\.0\.1:%d::health_flags::(\S+)" % origin_port, clusters(p))
    assert m, clusters(p)
    return m.group(1)


def prom(p, name):
    st, body = p.admin_get("/stats/prometheus")
    assert st == 200
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    assert m, name
    return int(m.group(1))


def test_5xx_endpoint_is_ejected_and_returns(petrel, origin_factory):
    a, b = origin_factory(name="a"), origin_factory(name="b")
    bad = origin_factory(name="bad", status=503)
    port = free_port()
    p = petrel(docs_for(port, [a.port, b.port, bad.port],
                        {"consecutive5xxErrors": 3, "interval": "1s", "baseEjectionTime": "3s",
                         "maxEjectionPercent": 100}), concurrency=2)
    assert health(p, bad.port) == "healthy"
    first = run(port, 12)  # round robin: bad gets its 3 (or close) and is ejected
    assert first[(503, "bad")] == 3, first
    assert health(p, bad.port) == "/failed_outlier_check"
    assert health(p, a.port) == "healthy"
    seen_bad = len(bad.requests)
    after = run(port, 60)
    assert set(after) <= {(200, "a"), (200, "b")}, after
    assert len(bad.requests) == seen_bad
    st = stats(p)
    assert st["outlier_ejections"] == 1 and st["outlier_ejections_consecutive_5xx"] == 1
    assert st["outlier_ejections_active"] == 1
    assert prom(p, "petrel_outlier_ejections_total") == 1
    assert re.search(r"127\.0\.0\.1:%d::outlier_ejections::1" % bad.port, clusters(p))
    ejected_at = time.monotonic()

    # Back after baseEjectionTime: the next requests reach it again.
    def bad_reached():
        run(port, 3)
        return len(bad.requests) > seen_bad
    wait_until(bad_reached, timeout=20, interval=0.2, what="the ejected endpoint back")
    assert time.monotonic() - ejected_at >= 2.0  # base 3 s, generous margin for the load
    assert stats(p)["outlier_unejections"] == 1
    # Still failing: ejected again (the second time for 2 x base).
    wait_until(lambda: stats(p)["outlier_ejections"] == 2 or run(port, 3) and False,
               timeout=20, interval=0.1, what="a second ejection")
    assert health(p, bad.port) == "/failed_outlier_check"
    assert "ejected 127.0.0.1:%d" % bad.port in p.stderr() + p.stdout()
    assert "(consecutive 5xx, ejection 2)" in p.stderr() + p.stdout()


def test_max_ejection_percent_caps_ejections(petrel, origin_factory):
    good = origin_factory(name="good")
    bad1, bad2 = origin_factory(name="bad1", status=500), origin_factory(name="bad2", status=500)
    port = free_port()
    p = petrel(docs_for(port, [good.port, bad1.port, bad2.port],
                        {"consecutive5xxErrors": 2, "baseEjectionTime": "60s",
                         "maxEjectionPercent": 34}), concurrency=1)
    started = time.monotonic()
    run(port, 30)
    out = [health(p, o.port) for o in (good, bad1, bad2)]
    assert out.count("/failed_outlier_check") == 1, out
    assert out[0] == "healthy"
    st = stats(p)
    assert st["outlier_ejections"] == 1
    assert st["outlier_ejections_overflow"] >= 1
    # The one not ejected still gets its share.
    later = run(port, 20)
    assert later[(200, "good")] > 0 and sum(v for (s, _), v in later.items() if s == 500) > 0
    # Each failure over the cap is counted, but logged at most once per 10 s.
    overflows = stats(p)["outlier_ejections_overflow"]
    lines = re.findall(r"not ejected: maxEjectionPercent 34 reached.*", p.stderr())
    assert overflows >= 10, overflows
    assert 1 <= len(lines) <= 1 + (time.monotonic() - started) // 10, lines


def test_min_health_percent_panic_uses_every_endpoint(petrel, origin_factory):
    good, bad = origin_factory(name="good"), origin_factory(name="bad", status=503)
    port = free_port()
    p = petrel(docs_for(port, [good.port, bad.port],
                        {"consecutive5xxErrors": 2, "baseEjectionTime": "60s",
                         "maxEjectionPercent": 100, "minHealthPercent": 60}), concurrency=1)
    run(port, 10)
    assert health(p, bad.port) == "/failed_outlier_check"
    n = len(bad.requests)
    later = run(port, 20)
    # 1 of 2 healthy is 50 % < 60 %: panic, both endpoints take traffic.
    assert later[(200, "good")] > 0 and later[(503, "bad")] > 0, later
    assert len(bad.requests) > n


def test_every_endpoint_ejected_without_panic_is_503_uh(petrel, origin_factory):
    b1, b2 = origin_factory(name="b1", status=503), origin_factory(name="b2", status=503)
    port = free_port()
    p = petrel(docs_for(port, [b1.port, b2.port],
                        {"consecutive5xxErrors": 1, "baseEjectionTime": "60s",
                         "maxEjectionPercent": 100}), concurrency=1)
    run(port, 4)
    n = len(b1.requests) + len(b2.requests)
    assert n >= 2
    later = run(port, 5)
    assert later == collections.Counter({(503, None): 5}), later
    assert len(b1.requests) + len(b2.requests) == n
    assert stats(p)["upstream_rq_no_healthy"] == (4 - n) + 5


def test_retry_finding_every_endpoint_ejected_is_503_uh(petrel, origin_factory):
    """With Petrel's default retries (a GET's 503 is retried), the attempts eject both
    endpoints; the next retry finds none and the client gets 503 UH (this once crashed)."""
    b1, b2 = origin_factory(name="b1", status=503), origin_factory(name="b2", status=503)
    port = free_port()
    docs = docs_for(port, [b1.port, b2.port],
                    {"consecutive5xxErrors": 1, "baseEjectionTime": "60s",
                     "maxEjectionPercent": 100})
    del docs[3]["spec"]["http"][0]["retries"]
    p = petrel(docs, concurrency=1)
    got = run(port, 3)
    assert got == collections.Counter({(503, None): 3}), got
    assert len(b1.requests) == 1 and len(b2.requests) == 1  # each ejected after its one 503
    assert stats(p)["upstream_rq_no_healthy"] >= 1
    p.check_alive()


def test_gateway_errors_versus_5xx(petrel, origin_factory):
    good = origin_factory(name="good")
    e500 = origin_factory(name="e500", status=500)
    e502 = origin_factory(name="e502", status=502)
    port = free_port()
    p = petrel(docs_for(port, [good.port, e500.port, e502.port],
                        {"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 3,
                         "baseEjectionTime": "60s", "maxEjectionPercent": 100}), concurrency=1)
    run(port, 45)
    assert health(p, e502.port) == "/failed_outlier_check"
    assert health(p, e500.port) == "healthy"  # 500 is not a gateway error; 5xx is off
    st = stats(p)
    assert st["outlier_ejections_consecutive_gateway"] == 1 and st["outlier_ejections"] == 1


def test_connect_failures_count_as_gateway_errors(petrel, origin_factory):
    good = origin_factory(name="good")
    dead = free_port()  # nothing listens there
    port = free_port()
    p = petrel(docs_for(port, [good.port, dead],
                        {"consecutiveGatewayErrors": 2, "baseEjectionTime": "60s",
                         "maxEjectionPercent": 50}), concurrency=1)
    first = run(port, 6)
    assert first[(503, None)] == 2, first  # two UF answers, then it is out
    assert health(p, dead) == "/failed_outlier_check"
    assert run(port, 20) == collections.Counter({(200, "good"): 20})


def test_split_local_origin_failures(petrel, origin_factory):
    good = origin_factory(name="good")
    dead = free_port()
    port = free_port()
    p = petrel(docs_for(port, [good.port, dead],
                        {"splitExternalLocalOriginErrors": True,
                         "consecutiveLocalOriginFailures": 3, "consecutive5xxErrors": 1,
                         "baseEjectionTime": "60s", "maxEjectionPercent": 50}), concurrency=1)
    first = run(port, 10)
    # With the split a connect failure is not a 5xx: three of them, not one, eject it.
    assert first[(503, None)] == 3, first
    assert health(p, dead) == "/failed_outlier_check"
    assert stats(p)["outlier_ejections_consecutive_local_origin"] == 1


def test_ejection_survives_a_reload(petrel, origin_factory):
    a, bad = origin_factory(name="a"), origin_factory(name="bad", status=503)
    port = free_port()
    od = {"consecutive5xxErrors": 2, "baseEjectionTime": "60s", "maxEjectionPercent": 50}
    docs = docs_for(port, [a.port, bad.port], od)
    p = petrel(docs, concurrency=2)
    for _ in range(4):
        run(port, 3)  # new connections: both workers take part
    assert health(p, bad.port) == "/failed_outlier_check"
    n = len(bad.requests)
    # A reload that changes something else (the VirtualService's timeout).
    docs[3]["spec"]["http"][0]["timeout"] = "30s"
    p.write_config(docs)
    wait_until(lambda: prom(p, "petrel_config_reloads_accepted_total") >= 1, timeout=15,
               what="the reload")
    assert health(p, bad.port) == "/failed_outlier_check"
    for _ in range(4):
        assert set(run(port, 5)) == {(200, "a")}
    assert len(bad.requests) == n
