"""HTTP toxics on a VirtualService route (filters/chaos_http.c), set at runtime through the chaos
API: POST /routes/{virtual-service}/{route}/toxics. Real petrel, a real origin, http.client and
raw sockets as clients:

  - http_abort answers its status, or a gRPC trailers-only reply, flag FI, the origin untouched;
  - http_delay adds its delay (median within +-5 ms), jitter stays within its bounds;
  - http_slow_body paces the body (bytes per interval) within +-10 %;
  - http_drop_first cuts exactly the first N requests without an answer, then they pass;
  - toxicity 0.3 over 1,000 requests lands within +-5 points; max_hits stops at its count;
    a dry run affects nothing and counts; a TTL removes the toxic;
  - the toxics survive a config reload; POST /reset removes them;
  - a span event for each toxic that fired (Zipkin export); faults on HTTPS traffic (a
    Gateway's TLS termination, curl);
  - bad input (an HTTP toxic on a chaos proxy or in a ChaosProxy, a TCP toxic on a route) is a
    clear error;
  - the game day of docs/chaos.md, with its 5 minutes scaled down.
"""

import re
import statistics
import subprocess
import time

from certs import make_ca, make_leaf
from chaos import (ChaosApi, HttpClient, chaos_metric, chaos_proxy_spec,
                   http_toxic_body)
from netutil import connect, free_port, http_request, recv_to_eof, wait_until
from petrel import ISTIO, run_petrel, service_entry_doc, simple_config, to_yaml
from test_90_tracing import Collector

LOG_RE = re.compile(r'^\[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d+) '
                    r'(?P<flags>\S+) (?P<details>\S+) ')
ROUTE = "/routes/web/main/toxics"


def start(petrel, origin, proxy_spec=None, **route):
    api = ChaosApi(free_port())
    docs = simple_config(http_port=free_port(), upstream_port=origin.port,
                         http_route=dict({"name": "main"}, **route))
    p = petrel(docs, proxy_spec=dict(chaos_proxy_spec(api.port), **(proxy_spec or {})))
    api.petrel = p
    return p, api, docs


def toxic(api, type_, name, toxicity=1.0, **fields):
    return api.ok("POST", ROUTE, http_toxic_body(type_, name, toxicity, **fields))


def metric(api, name, toxic_name):
    return chaos_metric(api.petrel, name, 'virtual_service="web",route="main",toxic="%s"' % toxic_name)


def log_fields(p, n):
    lines = p.wait_access_log(n)
    out = []
    for line in lines:
        m = LOG_RE.match(line)
        assert m, line
        out.append(m.groupdict())
    return out


def test_abort_with_a_status_and_with_a_grpc_status(petrel, origin):
    p, api, _ = start(petrel, origin)
    t = toxic(api, "http_abort", "ab", attributes={"status": 418})
    assert t["attributes"] == {"status": 418, "grpc_status": 0}
    st, headers, body = http_request(p.port, path="/a")
    assert (st, body) == (418, b"fault filter abort")
    api.ok("POST", ROUTE + "/ab", {"attributes": {"grpc_status": 14}})
    st, headers, body = http_request(p.port, path="/b")
    h = dict(headers)
    assert st == 200 and body == b""
    assert (h["content-type"], h["grpc-status"], h["grpc-message"]) == (
        "application/grpc", "14", "fault filter abort")
    assert origin.requests == []
    assert sorted((f["status"], f["flags"], f["details"]) for f in log_fields(p, 2)) == [
        ("200", "FI", "chaos:ab"), ("418", "FI", "chaos:ab")]
    assert metric(api, "petrel_chaos_toxic_hits_total", "ab") == 2
    assert api.ok("GET", "/routes") == [{"virtual_service": "web", "route": "main",
                                         "toxics": [api.ok("GET", ROUTE + "/ab")]}]
    api.ok("DELETE", ROUTE + "/ab")
    assert api.ok("GET", "/routes") == [] and api.ok("GET", ROUTE) == []
    assert http_request(p.port, path="/c")[0] == 200


def test_delay_is_accurate_and_jitter_stays_in_bounds(petrel, origin):
    p, api, _ = start(petrel, origin)
    c = HttpClient(p.port)
    base = statistics.median(c.timed("/status/200")[2] for _ in range(15))
    toxic(api, "http_delay", "late", attributes={"delay": 50})
    added = statistics.median(c.timed("/status/200")[2] for _ in range(15)) - base
    assert abs(added - 50) <= 5, added
    api.ok("POST", ROUTE + "/late", {"attributes": {"delay": 60, "jitter": 20}})
    times = [c.timed("/status/200")[2] - base for _ in range(40)]
    assert min(times) >= 40 - 2, times  # never early (the loop's clock rounds to a ms)
    assert sum(1 for x in times if x <= 80 + 5) >= 36, times
    c.close()
    assert all(f["flags"] == "DI" for f in log_fields(p, 70)[15:])


def test_slow_body_paces_the_response(petrel, origin):
    p, api, _ = start(petrel, origin)
    c = HttpClient(p.port)
    base = statistics.median(c.timed("/bytes/40000")[2] for _ in range(5))
    toxic(api, "http_slow_body", "slow", attributes={"bytes": 4000, "interval": 40})
    for chunked in ("", "?chunked=1&chunk=3000"):
        status, body, ms = c.timed("/bytes/40000" + chunked)
        assert status == 200 and len(body) == 40000
        expected = 9 * 40  # ten slices, nine intervals between them
        assert abs((ms - base) - expected) <= expected * 0.10, (ms, base)
    c.close()
    assert [f["flags"] for f in log_fields(p, 7)] == ["-"] * 5 + ["FI"] * 2
    assert metric(api, "petrel_chaos_toxic_hits_total", "slow") == 2


def test_drop_first_cuts_exactly_n_requests_then_passes(petrel, origin):
    p, api, _ = start(petrel, origin)
    toxic(api, "http_drop_first", "drop", attributes={"count": 3})
    results = []
    for _ in range(6):
        s = connect(p.port)
        s.sendall(b"GET /x HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        got, how = recv_to_eof(s, 5)
        s.close()
        results.append(got[:12])
    assert results[:3] == [b""] * 3, results
    assert all(r == b"HTTP/1.1 200" for r in results[3:]), results
    assert len(origin.requests) == 3
    assert metric(api, "petrel_chaos_toxic_hits_total", "drop") == 3
    # Two workers write their lines each on its own: compare without order.
    assert sorted((f["status"], f["flags"]) for f in log_fields(p, 6)) == \
        [("0", "FI")] * 3 + [("200", "-")] * 3


def test_toxicity_cap_dry_run_and_ttl(petrel, origin):
    p, api, _ = start(petrel, origin)
    toxic(api, "http_abort", "some", toxicity=0.3, attributes={"status": 503})
    c = HttpClient(p.port)
    aborted = sum(c.get("/status/200")[0] == 503 for _ in range(1000))
    assert 225 <= aborted <= 375, aborted  # 1000 draws at p = 0.3: mean 300, sd 14.5; +-5 sd
    assert metric(api, "petrel_chaos_toxic_hits_total", "some") == aborted
    api.ok("DELETE", ROUTE + "/some")

    toxic(api, "http_abort", "capped", attributes={"status": 500}, max_hits=5)
    assert [c.get("/status/200")[0] for _ in range(20)] == [500] * 5 + [200] * 15
    api.ok("DELETE", ROUTE + "/capped")

    toxic(api, "http_abort", "dry", attributes={"status": 500}, dry_run=True, max_hits=7)
    assert all(c.get("/status/200")[0] == 200 for _ in range(10))
    assert metric(api, "petrel_chaos_toxic_dry_run_hits_total", "dry") == 7
    assert metric(api, "petrel_chaos_toxic_hits_total", "dry") == 0
    api.ok("DELETE", ROUTE + "/dry")

    t0 = time.monotonic()
    toxic(api, "http_abort", "brief", attributes={"status": 500}, ttl_ms=400)
    assert c.get("/status/200")[0] == 500
    wait_until(lambda: api.ok("GET", ROUTE) == [], timeout=5, what="expiry")
    assert time.monotonic() - t0 >= 0.4 - 0.005
    assert c.get("/status/200")[0] == 200
    c.close()


def test_toxics_survive_a_reload_and_reset_removes_them(petrel, origin):
    p, api, docs = start(petrel, origin)
    toxic(api, "http_abort", "ab", attributes={"status": 503})
    # A reload that changes the route (a timeout) keeps the runtime toxic, found by name.
    docs[1]["spec"]["http"][0]["timeout"] = "5s"
    p.write_config(docs)
    wait_until(lambda: b"timeout" in p.admin_get("/config_dump")[1], timeout=10, what="reload")
    assert http_request(p.port, path="/x")[0] == 503
    api.ok("POST", "/reset")
    assert api.ok("GET", "/routes") == []
    assert http_request(p.port, path="/x")[0] == 200


def test_bad_input_is_a_clear_error(petrel, origin, tmp_path):
    p, api, _ = start(petrel, origin)
    st, out = api.call("POST", ROUTE, {"type": "latency", "attributes": {"latency": 5}})
    assert st == 400 and "not a toxic type of a route" in out["error"]
    st, out = api.call("POST", ROUTE, {"type": "http_abort", "attributes": {"status": 99}})
    assert st == 400 and out["error"].startswith("attributes.status: must be a whole number")
    st, out = api.call("POST", ROUTE, {"type": "http_slow_body", "attributes": {"bytes": 0}})
    assert st == 400 and "attributes.bytes" in out["error"]
    api.proxy("tcp", origin.port)
    st, out = api.call("POST", "/proxies/tcp/toxics", {"type": "http_abort"})
    assert st == 400 and "http_* toxics go on a route" in out["error"]
    assert api.call("GET", "/routes/web")[0] == 404
    assert api.call("DELETE", ROUTE + "/none")[0] == 404
    assert api.ok("GET", "/routes") == []

    f = tmp_path / "chaos.yaml"
    f.write_text(to_yaml([{"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy",
                           "metadata": {"name": "db"},
                           "spec": {"upstream": "127.0.0.1:1",
                                    "toxics": [{"type": "http_abort"}]}}]))
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1
    assert re.search(r"chaos\.yaml:\d+:\d+: .*toxics\[0\]\.type: \"http_abort\" is an HTTP toxic",
                     r.stderr), r.stderr


def test_span_events_name_the_toxics(petrel, origin):
    c = Collector()
    try:
        p, api, _ = start(petrel, origin, proxy_spec={"tracing": {
            "sampling": 100, "zipkin": {"address": "127.0.0.1:%d" % c.port},
            "flushInterval": "100ms"}})
        toxic(api, "http_delay", "late", attributes={"delay": 30})
        toxic(api, "http_abort", "ab", attributes={"status": 418})
        assert http_request(p.port, path="/f")[0] == 418
        wait_until(lambda: len(c.spans()) >= 1, 10, what="a span")
        s = c.spans()[0]
        values = [a["value"] for a in s["annotations"]]
        assert values == ["chaos.http_delay delay_ms=30", "chaos.http_abort status_code=418"]
        assert s["tags"]["response_flags"] == "DI,FI"
    finally:
        c.stop()


def test_faults_apply_to_https_traffic(petrel, origin, tmp_path):
    ca = make_ca(tmp_path, "ca")
    cert, key = make_leaf(tmp_path, "web", ca, ["web.example.com"], client=False)
    port, api = free_port(), ChaosApi(free_port())
    server = {"port": {"number": port, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"],
              "tls": {"mode": "SIMPLE", "serverCertificate": cert, "privateKey": key}}
    docs = [{"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
             "spec": {"servers": [server]}},
            {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
             "spec": {"hosts": ["*"], "gateways": ["edge"],
                      "http": [{"name": "main", "route": [{"destination": {
                          "host": "web.local", "port": {"number": 80}}}]}]}},
            service_entry_doc("web.local", origin.port, name="web")]
    petrel(docs, proxy_spec=chaos_proxy_spec(api.port))
    toxic(api, "http_abort", "ab", attributes={"status": 503})

    def curl():
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                            str(tmp_path / "ca.crt"), "--resolve",
                            "web.example.com:%d:127.0.0.1" % port,
                            "https://web.example.com:%d/x" % port],
                           capture_output=True, text=True, timeout=10)
        return r.stdout
    assert curl() == "503"
    api.ok("DELETE", ROUTE + "/ab")
    assert curl() == "200"


def test_game_day(petrel, origin, tcp_echo):
    """docs/chaos.md's game day: a latency toxic on a dependency (a chaos proxy), then an HTTP
    abort on 10 % of one route for 5 minutes (here 1.5 s) with a cap, then POST /reset."""
    p, api, _ = start(petrel, origin)
    port = api.proxy("inventory", tcp_echo.port)
    api.ok("POST", "/proxies/inventory/toxics",
           {"name": "late", "type": "latency", "stream": "downstream", "toxicity": 1.0,
            "attributes": {"latency": 100}})
    s = connect(port)
    t0 = time.monotonic()
    s.sendall(b"ping")
    assert s.recv(4) == b"ping" and time.monotonic() - t0 >= 0.095
    s.close()

    t0 = time.monotonic()
    api.ok("POST", ROUTE, {"name": "abort-10", "type": "http_abort", "toxicity": 0.1,
                           "max_hits": 20, "ttl_ms": 1500, "attributes": {"status": 503}})
    c = HttpClient(p.port)
    statuses = [c.get("/status/200")[0] for _ in range(400)]
    assert statuses.count(503) == 20  # 10 % of 400 would be 40: the cap stops it at 20
    assert metric(api, "petrel_chaos_toxic_hits_total", "abort-10") == 20
    wait_until(lambda: api.ok("GET", ROUTE) == [], timeout=5, what="the TTL")
    assert time.monotonic() - t0 >= 1.5 - 0.005
    assert all(c.get("/status/200")[0] == 200 for _ in range(50))
    c.close()
    api.ok("POST", "/reset")
    assert api.ok("GET", "/proxies/inventory/toxics") == []
