"""tests/e2e/test_42_failures.py -- upstream failures, end to end.

Each failure class of docs/architecture.md ("Failures and reason flags") is provoked with a real
origin that misbehaves on purpose, and checked from three sides: what the client receives
(status, body, or a connection cut before a complete-looking response), the access-log line
(status, reason flag, byte counts, upstream host) and /stats. Origins that misbehave in ways
tests/lib/upstream.py has no path for are added as routes on an HttpOrigin (raw bytes written
through conn.sendall), so every byte on the wire is chosen here.

Petrel runs with one worker (concurrency=1) wherever a test reasons about its connection pool,
so "the next request used a new upstream connection" is a property of Petrel, not luck.
"""

import datetime
import re
import time

import pytest

from netutil import (Incomplete, build_request, connect, exchange, free_port, header, http_request,
                     parse_responses, pattern_bytes, pattern_ok, recv_one, wait_until)
from petrel import ISTIO, gateway_doc, service_entry_doc, simple_config, stats, wait_log

LOG_RE = re.compile(
    r'^\[(?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\] '
    r'"(?P<method>\S+) (?P<path>\S+) (?P<proto>\S+)" '
    r'(?P<status>\d+) (?P<flags>\S+) (?P<details>\S+) (?P<rx>\d+) (?P<tx>\d+) (?P<duration>\d+) '
    r'(?P<upstream_ms>\d+|-) '
    r'"(?P<xff>[^"]*)" "(?P<ua>[^"]*)" "(?P<rid>[^"]*)" "(?P<authority>[^"]*)" "(?P<upstream>[^"]*)" '
    r'(?P<cluster>\S+) (?P<route>\S+)$')


# ---- helpers ----------------------------------------------------------------------------------

def parse_log(line):
    m = LOG_RE.match(line)
    assert m, "access log line not in Envoy's default format with Istio's fields: %r" % line
    return m.groupdict()


def vs_doc(routes, name="failures"):
    """A VirtualService on gateway edge; routes: [(uri prefix, host, extra route fields)]."""
    http = []
    for prefix, host, extra in routes:
        r = {"match": [{"uri": {"prefix": prefix}}],
             "route": [{"destination": {"host": host, "port": {"number": 80}}}]}
        r.update(extra or {})
        http.append(r)
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": ["*"], "gateways": ["edge"], "http": http}}


# ---- 6. connect failure -------------------------------------------------------------------------

def test_connect_failure_is_503_uf(petrel):
    closed_port = free_port()  # nothing listens there
    p = petrel(simple_config(http_port=free_port(), upstream_port=closed_port), concurrency=1)
    assert stats(p)["upstream_cx_connect_fail"] == 0
    for i in range(2):
        status, headers, body = http_request(p.port, "GET", "/cf/%d" % i)
        assert status == 503
        assert b"connection failure" in body, body
        # the first try and the 2 retries of the default policy (connect-failure)
        assert stats(p)["upstream_cx_connect_fail"] == 3 * (i + 1)
    lines = wait_log(p, 2)
    assert len(lines) == 2
    for i, line in enumerate(lines):
        f = parse_log(line)
        assert (f["path"], f["status"], f["flags"]) == ("/cf/%d" % i, "503", "UF"), line
        assert f["details"] == "upstream_reset_before_response_started{connection_failure}", line
        assert (f["cluster"], f["route"]) == ("outbound|80||web.local", "web.0"), line
        assert f["upstream"] in ("-", "127.0.0.1:%d" % closed_port), line


# ---- 7. no endpoints ----------------------------------------------------------------------------

def test_no_endpoints_is_503_uh(petrel, origin):
    http_port = free_port()
    empty_se = service_entry_doc("empty.local", [], name="empty")
    docs = [gateway_doc([(http_port, "HTTP")]),
            vs_doc([("/empty", "empty.local", None), ("/nose", "nowhere.local", None),
                    ("/", "web.local", None)]),
            empty_se, service_entry_doc("web.local", origin.port, name="web")]
    p = petrel(docs, concurrency=1)
    for path in ("/empty", "/nose"):
        status, _, body = http_request(p.port, "GET", path)
        assert status == 503, (path, status, body)
        assert body == b"no healthy upstream", (path, body)
    status, _, _ = http_request(p.port, "GET", "/ok")  # the config itself is fine
    assert status == 200
    assert [r.path for r in origin.requests] == ["/ok"]
    lines = wait_log(p, 3)
    got = [(f["path"], f["status"], f["flags"], f["upstream"]) for f in map(parse_log, lines)]
    assert got[:2] == [("/empty", "503", "UH", "-"), ("/nose", "503", "UH", "-")], got
    assert [parse_log(l)["details"] for l in lines] == ["no_healthy_upstream"] * 2 + ["via_upstream"]
    assert stats(p)["upstream_rq_no_healthy"] == 2


# ---- 8. route timeout ---------------------------------------------------------------------------

def test_route_timeout_is_504_ut(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port,
                             http_route={"timeout": "500ms"}), concurrency=1)
    t0 = time.monotonic()
    status, _, body = http_request(p.port, "GET", "/delay/3000", timeout=10)
    elapsed = time.monotonic() - t0
    assert status == 504
    assert body == b"upstream request timeout"
    assert 0.4 <= elapsed <= 2.5, "504 after %.2f s" % elapsed
    assert [r.path for r in origin.requests] == ["/delay/3000"]
    f = parse_log(wait_log(p, 1)[0])
    assert (f["status"], f["flags"], f["details"]) == ("504", "UT", "upstream_response_timeout")
    assert 400 <= int(f["duration"]) <= 2500, f
    assert stats(p)["upstream_rq_timeout"] == 1


# ---- 9. invalid upstream responses --------------------------------------------------------------

INVALID = {
    "garbage": b"\x00\x01\x02 this is not http\r\n\r\n",
    "status": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
    "two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
}


@pytest.mark.parametrize("kind", sorted(INVALID))
def test_invalid_response_is_502_upe_and_connection_discarded(petrel, origin, kind):
    def bad(conn, req):
        conn.sendall(INVALID[kind])
        return True  # the origin keeps the connection open: only Petrel can discard it

    origin.routes["/bad"] = bad
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    s = connect(p.port)
    try:
        # warm the pool, then the bad response on the pooled connection
        s.sendall(build_request("/warm", [("Host", "example.com")]))
        assert recv_one(s)[0] == 200
        s.sendall(build_request("/bad", [("Host", "example.com")]))
        status, headers, body = recv_one(s)
        assert status == 502, (status, body)
        assert body == b"upstream sent an invalid response"
        s.sendall(build_request("/next", [("Host", "example.com")]))
        status, _, _ = recv_one(s)
        assert status == 200
    finally:
        s.close()
    reqs = {r.path: r for r in origin.requests}
    assert reqs["/warm"].conn_id == reqs["/bad"].conn_id  # the pool works...
    assert reqs["/next"].conn_id != reqs["/bad"].conn_id, "the broken connection was reused"
    assert reqs["/next"].index == 0
    fl = [parse_log(l) for l in wait_log(p, 3)]
    assert [(f["path"], f["status"], f["flags"]) for f in fl] == [
        ("/warm", "200", "-"), ("/bad", "502", "UPE"), ("/next", "200", "-")]
    assert fl[1]["details"] == "upstream_reset_before_response_started{protocol_error}"
    assert stats(p)["upstream_rq_protocol_error"] == 1


# ---- 10. upstream gone mid-response -------------------------------------------------------------

def test_upstream_closes_mid_content_length_body(petrel, origin):
    def cut(conn, req):
        conn.send_head(req, 200, [("Content-Length", "100000")])
        conn.sendall(pattern_bytes(0, 1000))
        return False  # the origin closes

    origin.routes["/cut"] = cut
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    got, closed, _ = exchange(p.port, build_request("/cut", [("Host", "example.com")]),
                              ignore_send_errors=False)
    assert closed, "Petrel kept the client connection open after the upstream died"
    with pytest.raises(Incomplete):
        parse_responses(got, strict=True)
    resps = parse_responses(got)
    assert len(resps) == 1
    status, _, hs, body, _ = resps[0]
    assert status == 200 and header(hs, "content-length") == "100000"
    assert 0 < len(body) <= 1000 and pattern_ok(body), len(body)
    f = parse_log(wait_log(p, 1)[0])
    assert (f["status"], f["flags"]) == ("200", "UC"), f
    assert f["details"] == "upstream_reset_after_response_started{connection_termination}", f
    assert int(f["tx"]) == len(body)


def test_upstream_closes_mid_chunk(petrel, origin):
    def cut(conn, req):
        conn.send_head(req, 200, [("Transfer-Encoding", "chunked")])
        conn.sendall(b"%x\r\n" % 1000 + pattern_bytes(0, 300))
        return False

    origin.routes["/cut"] = cut
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    got, closed, _ = exchange(p.port, build_request("/cut", [("Host", "example.com")]),
                              ignore_send_errors=False)
    assert closed, "Petrel kept the client connection open after the upstream died"
    assert got.startswith(b"HTTP/1.1 200 "), got[:200]
    with pytest.raises(Incomplete):
        parse_responses(got, strict=True)
    assert not got.endswith(b"0\r\n\r\n"), "the client got a terminating chunk: %r" % got[-50:]
    status, _, hs, body, _ = parse_responses(got)[0]
    assert header(hs, "transfer-encoding", "").lower() == "chunked"
    assert len(body) <= 300 and pattern_ok(body)
    f = parse_log(wait_log(p, 1)[0])
    assert (f["status"], f["flags"]) == ("200", "UC"), f


# ---- 11. the upstream closes pooled connections -------------------------------------------------

def test_stale_pooled_connection_closed_right_after_response(petrel, origin):
    def ka_then_close(conn, req):
        conn.send_response(req, 200, [("Content-Type", "text/plain")], b"ok", keep_alive=True)
        return False  # looks keep-alive, but the origin closes at once

    origin.routes["/ka-then-close"] = ka_then_close
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    s = connect(p.port)
    rounds = 20
    try:
        for i in range(rounds):
            s.sendall(build_request("/ka-then-close", [("Host", "example.com")]))
            st, _, body = recv_one(s)
            assert (st, body) == (200, b"ok"), i
            s.sendall(build_request("/after/%d" % i, [("Host", "example.com")]))
            st, _, _ = recv_one(s)
            assert st == 200, "round %d: %d after the upstream closed a pooled connection" % (i, st)
    finally:
        s.close()
    lines = [parse_log(l) for l in wait_log(p, 2 * rounds)]
    assert len(lines) == 2 * rounds and all(f["status"] == "200" and f["flags"] == "-" for f in lines)
    after = [r for r in origin.requests if r.path.startswith("/after/")]
    assert len(after) == rounds
    st = stats(p)
    assert st["downstream_rq_5xx"] == 0
    # each round the pooled connection died: noticed while idle, or replayed once
    assert st["upstream_cx_idle_closed"] + st["upstream_rq_reused_connection_retry"] >= rounds, st


def test_idle_pooled_connection_closed_by_origin_then_post(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    status, _, _ = http_request(p.port, "GET", "/keep-alive?timeout=1")
    assert status == 200
    # the origin closes its side after 1 s idle; wait until Petrel has noticed
    wait_until(lambda: stats(p)["upstream_cx_idle_closed"] == 1, 5, what="Petrel to see the close")
    body = b"x" * 1234
    status, _, rbody = http_request(p.port, "POST", "/echo", body=body)
    assert status == 200
    reqs = origin.requests
    assert [r.path for r in reqs] == ["/keep-alive", "/echo"]
    assert reqs[1].conn_id != reqs[0].conn_id and reqs[1].body == body
    assert stats(p)["downstream_rq_5xx"] == 0


# ---- 12. access log -----------------------------------------------------------------------------

def test_access_log_line_format_and_counts(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    req_body = bytes(range(97, 97 + 26)) * 4 + b"0123456789" * 1 + b"abcdefghi"  # 123 bytes
    assert len(req_body) == 123
    s = connect(p.port)
    t_before = datetime.datetime.now(datetime.timezone.utc)
    try:
        s.sendall(build_request("/bytes/5000", [
            ("Host", "example.com"), ("User-Agent", "e2e-agent/1.0"),
            ("X-Forwarded-For", "203.0.113.7"), ("Content-Length", "123")], "POST", req_body))
        st, hs, body = recv_one(s)
        assert st == 200 and len(body) == 5000
        chunked_req = b"7b\r\n" + req_body + b"\r\n0\r\n\r\n"
        s.sendall(build_request("/chunked/3000", [
            ("Host", "example.com:8080"), ("Transfer-Encoding", "chunked")], "PUT", chunked_req))
        st, hs, body = recv_one(s)
        assert st == 200 and len(body) == 3000 and header(hs, "transfer-encoding") == "chunked"
        s.sendall(build_request("/status/404", [("Host", "example.com")], "GET"))
        st, _, body = recv_one(s)
        assert st == 404
        n404 = len(body)
    finally:
        s.close()
    lines = wait_log(p, 3)
    assert len(lines) == 3, lines  # one line per request
    a, b, c = (parse_log(l) for l in lines)
    reqs = origin.requests
    up = "127.0.0.1:%d" % origin.port

    assert (a["method"], a["path"], a["proto"], a["status"], a["flags"]) == (
        "POST", "/bytes/5000", "HTTP/1.1", "200", "-")
    assert (a["rx"], a["tx"]) == ("123", "5000")
    assert a["ua"] == "e2e-agent/1.0"
    assert a["xff"].startswith("203.0.113.7"), a["xff"]
    assert a["authority"] == "example.com" and a["upstream"] == up
    assert a["rid"] == reqs[0].header("x-request-id"), (a["rid"], reqs[0].headers)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", a["rid"])
    assert a["upstream_ms"] != "-" and int(a["upstream_ms"]) <= int(a["duration"]) < 5000
    when = datetime.datetime.strptime(a["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((when - t_before).total_seconds()) < 5, (when, t_before)

    assert (b["method"], b["path"], b["status"], b["flags"]) == ("PUT", "/chunked/3000", "200", "-")
    assert (b["rx"], b["tx"]) == ("123", "3000"), "body bytes, not wire bytes: %r" % lines[1]
    assert b["ua"] == "-", lines[1]
    assert b["authority"] == "example.com:8080" and b["upstream"] == up
    assert reqs[1].body == req_body

    assert (c["path"], c["status"], c["flags"], c["rx"], c["tx"]) == (
        "/status/404", "404", "-", "0", str(n404))
