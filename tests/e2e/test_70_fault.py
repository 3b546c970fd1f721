"""tests/e2e/test_70_fault.py -- VirtualService http[].fault (delay and abort), end to end.

Real petrel, real origins (tests/lib/upstream.py counts requests and connections):

  - abort 100% -> the status and body "fault filter abort", flag FI, the origin sees nothing;
  - abort 10% over 5000 pipelined keep-alive requests lands within 1.5 points;
  - fixedDelay 300ms at 100% -> each response takes >= 300 ms, flag DI; concurrent delayed
    requests hold no upstream connection; a client gone during the delay causes no upstream
    request at all;
  - delay then abort (Envoy's order): >= the delay, then the abort status, flag DI,FI;
  - Bookinfo's ratings-test-abort / ratings-test-delay (end-user: jason), bound to a gateway
    with FQDN hosts;
  - grpcStatus validates (test_87_grpc.py answers it); invalid values are errors.
"""

import re
import socket
import struct
import threading
import time

from netutil import build_request, connect, free_port, http_request, recv_responses, wait_until
from petrel import gateway_doc, run_petrel, service_entry_doc, simple_config, to_yaml

FLAGS_RE = re.compile(r'^\[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d+) (?P<flags>\S+) ')


def log_fields(line):
    m = FLAGS_RE.match(line)
    assert m, line
    return m.groupdict()


def start(petrel, origin, fault, **kw):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port,
                         http_route={"fault": fault})
    return petrel(docs, **kw)


def test_abort_100_percent_never_reaches_origin(petrel, origin):
    p = start(petrel, origin, {"abort": {"httpStatus": 503, "percentage": {"value": 100}}})
    for i in range(5):
        st, _, body = http_request(p.port, path="/a/%d" % i)
        assert (st, body) == (503, b"fault filter abort")
    st, _, body = http_request(p.port, method="POST", path="/post", body=b"x" * 1000)
    assert (st, body) == (503, b"fault filter abort")
    lines = p.wait_access_log(6)
    assert [log_fields(x)["status"] for x in lines] == ["503"] * 6
    assert [log_fields(x)["flags"] for x in lines] == ["FI"] * 6
    assert origin.requests == [] and origin.connections == 0


def test_fault_without_percentage_applies_to_no_request(petrel, origin):
    """Istio's semantics: an unset percentage is 0 %, for aborts and delays alike."""
    p = start(petrel, origin, {"abort": {"httpStatus": 418}, "delay": {"fixedDelay": "5s"}})
    for _ in range(5):
        t0 = time.monotonic()
        st, _, _ = http_request(p.port, path="/t")
        assert st == 200 and time.monotonic() - t0 < 2.0
    assert len(origin.requests) == 5


def test_abort_10_percent_over_5000_requests(petrel, origin):
    p = start(petrel, origin, {"abort": {"httpStatus": 503, "percentage": {"value": 10.0}}},
              proxy_spec={"accessLog": ""})
    n_conns, per_conn = 10, 500
    counts = []
    errors = []

    def client():
        try:
            s = connect(p.port)
            got = {}
            # pipelined in batches: keep-alive, few round trips
            for _ in range(per_conn // 100):
                s.sendall(build_request("/p", headers=[("Host", "example.com")]) * 100)
                for r in recv_responses(s, 100, timeout=20.0):
                    got[r[0]] = got.get(r[0], 0) + 1
            s.close()
            counts.append(got)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(n_conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    total = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    assert sum(total.values()) == n_conns * per_conn, total
    assert set(total) <= {200, 503}, total
    share = total.get(503, 0) / (n_conns * per_conn)
    assert 0.085 <= share <= 0.115, total
    assert len(origin.requests) == total[200]


def test_zero_percent_never_fires(petrel, origin):
    p = start(petrel, origin, {"abort": {"httpStatus": 500, "percentage": {"value": 0}}})
    s = connect(p.port)
    s.sendall(build_request("/z", headers=[("Host", "example.com")]) * 200)
    assert {r[0] for r in recv_responses(s, 200)} == {200}
    s.close()


def test_fixed_delay_300ms_holds_no_upstream_connection(petrel, origin):
    p = start(petrel, origin, {"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}})
    t0 = time.monotonic()
    st, _, _ = http_request(p.port, path="/d")
    assert st == 200 and time.monotonic() - t0 >= 0.3
    lines = p.wait_access_log(1)
    assert (log_fields(lines[0])["status"], log_fields(lines[0])["flags"]) == ("200", "DI")

    # 20 concurrent delayed requests: while they wait, the origin gets no connection at all
    # (the first request's pooled connection aside).
    conns_before = origin.connections
    reqs_before = len(origin.requests)
    socks = []
    for i in range(20):
        s = connect(p.port)
        s.sendall(build_request("/c/%d" % i, headers=[("Host", "example.com")]))
        socks.append(s)
    time.sleep(0.15)
    assert len(origin.requests) == reqs_before
    assert origin.connections == conns_before
    t1 = time.monotonic()
    for s in socks:
        r = recv_responses(s, 1, timeout=5.0)
        assert r[0][0] == 200
        s.close()
    assert time.monotonic() - t1 < 2.0
    assert len(origin.requests) == reqs_before + 20


def test_client_gone_during_delay_causes_no_upstream_request(petrel, origin):
    p = start(petrel, origin, {"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}})
    for i in range(5):
        s = connect(p.port)
        s.sendall(build_request("/gone/%d" % i, headers=[("Host", "example.com")]))
        time.sleep(0.05)
        # gone = reset: a FIN alone is a half-close, after which Petrel still answers
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    # a POST whose body arrives during the delay is forwarded whole afterwards
    st, _, _ = http_request(p.port, method="POST", path="/body", body=b"b" * 70000)
    assert st == 200
    time.sleep(0.4)
    assert [r.path for r in origin.requests] == ["/body"]
    assert len(origin.requests[0].body) == 70000 if hasattr(origin.requests[0], "body") else True
    lines = p.wait_access_log(6)
    flags = sorted(log_fields(x)["flags"] for x in lines)
    assert flags == ["DC"] * 5 + ["DI"], lines
    p.check_alive()


def test_delay_then_abort(petrel, origin):
    p = start(petrel, origin, {"delay": {"fixedDelay": "0.2s", "percentage": {"value": 100}},
                               "abort": {"httpStatus": 500, "percentage": {"value": 100.0}}})
    t0 = time.monotonic()
    st, _, body = http_request(p.port, path="/da")
    assert (st, body) == (500, b"fault filter abort")
    assert time.monotonic() - t0 >= 0.2
    lines = p.wait_access_log(1)
    assert log_fields(lines[0])["flags"] == "DI,FI"
    assert origin.connections == 0


def bookinfo(petrel, origin_factory, fault):
    ratings = origin_factory(name="ratings-v1")
    port = free_port()
    host = "ratings.bookinfo.svc.cluster.local"
    # ../shared/acceptance/istio/bookinfo/virtual-service-ratings-test-{abort,delay}.yaml with
    # FQDN hosts, bound to a gateway, the subset replaced by its own ServiceEntry.
    def dest():  # fresh objects: the YAML writer would turn a shared one into an alias
        return [{"destination": {"host": "ratings-v1.bookinfo.svc.cluster.local",
                                 "port": {"number": 80}}}]
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "ratings"},
          "spec": {"hosts": [host], "gateways": ["edge"], "http": [
              {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "fault": fault,
               "route": dest()},
              {"route": dest()}]}}
    docs = [gateway_doc([(port, "HTTP")]), vs,
            service_entry_doc("ratings-v1.bookinfo.svc.cluster.local", ratings.port, name="v1")]
    return petrel(docs), ratings, host


def test_bookinfo_ratings_abort_for_jason(petrel, origin_factory):
    p, ratings, host = bookinfo(petrel, origin_factory,
                                {"abort": {"percentage": {"value": 100.0}, "httpStatus": 500}})
    st, _, body = http_request(p.port, path="/ratings/0", headers=[("end-user", "jason")],
                               host_header=host)
    assert (st, body) == (500, b"fault filter abort")
    assert len(ratings.requests) == 0
    st, _, _ = http_request(p.port, path="/ratings/0", headers=[("end-user", "alice")],
                            host_header=host)
    assert st == 200 and len(ratings.requests) == 1


def test_bookinfo_ratings_delay_for_jason(petrel, origin_factory):
    # 7s in Bookinfo; 500ms here to keep the suite fast.
    p, ratings, host = bookinfo(petrel, origin_factory,
                                {"delay": {"percentage": {"value": 100.0}, "fixedDelay": "500ms"}})
    t0 = time.monotonic()
    st, _, _ = http_request(p.port, path="/ratings/0", headers=[("end-user", "jason")],
                            host_header=host)
    assert st == 200 and time.monotonic() - t0 >= 0.5
    t0 = time.monotonic()
    st, _, _ = http_request(p.port, path="/ratings/0", host_header=host)
    assert st == 200 and time.monotonic() - t0 < 0.4


def validate(tmp_path, fault):
    docs = simple_config(http_port=free_port(), upstream_port=free_port(),
                         http_route={"fault": fault})
    f = tmp_path / "c.yaml"
    f.write_text(to_yaml(docs))
    return run_petrel(["validate", str(f)])


def test_validation(tmp_path):
    r = validate(tmp_path, {"abort": {"grpcStatus": "UNAVAILABLE"}})
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "grpcStatus" not in out, out  # enforced (test_87)
    r = validate(tmp_path, {"delay": {"percent": 50, "fixedDelay": "1s"}})
    assert r.returncode == 0 and "deprecated" in r.stdout + r.stderr
    for bad in ({"abort": {"httpStatus": 600}},
                {"abort": {"httpStatus": 500, "percentage": {"value": 101}}},
                {"abort": {"httpStatus": 500, "percentage": {"value": "ten"}}},
                {"abort": {"percentage": {"value": 5}}},
                {"delay": {"percentage": {"value": 5}}},
                {"delay": {"fixedDelay": "soon"}},
                {"abort": {"grpcStatus": "UNAVAILABL"}}):
        r = validate(tmp_path, bad)
        assert r.returncode != 0, (bad, r.stdout, r.stderr)
