"""tests/e2e/test_86_http2_server.py -- HTTP/2 from the client (h2c with prior knowledge).

A plaintext HTTP Gateway server speaks HTTP/2 to a client whose first bytes are the HTTP/2
preface (proxy/http2_server.c, on nghttp2), and HTTP/1 otherwise. Each request stream is a
stream of the engine like an HTTP/1 request: routed, forwarded to the HTTP/1 origin, logged
with protocol HTTP/2. Real clients: curl --http2-prior-knowledge, nghttp, h2load (bounded -n),
and python3-h2 for the frame-level cases (bad pseudo-headers, connection-specific headers,
content-length against DATA, rapid reset) where curl would refuse to send what is tested.
"""

import copy
import shutil
import subprocess
import threading
import time

import pytest

from netutil import (build_request, connect, free_port, http_request, pattern_bytes, recv_exact, recv_one,
                     rss_kb, wait_until)
from petrel import simple_config, stats, wait_log
from test_42_failures import parse_log

h2 = pytest.importorskip("h2.connection")
import h2.events  # noqa: E402

from h2wire import H2Client, req_headers  # noqa: E402


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed" % tool)


def curl(args, timeout=20):
    r = subprocess.run(["curl", "-sS", "--max-time", "10"] + args, capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def gw(petrel, origin):
    return petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)


def test_curl_prior_knowledge_get_and_post(gw, origin):
    need("curl")
    rc, out, err = curl(["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                         "http://127.0.0.1:%d/h2/get" % gw.port])
    assert (rc, out) == (0, b"2 200"), err
    rc, out, err = curl(["--http2-prior-knowledge", "-d", "x" * 100000, "-o", "/dev/null",
                         "-w", "%{http_version} %{http_code}", "http://127.0.0.1:%d/h2/post" % gw.port])
    assert (rc, out) == (0, b"2 200"), err
    reqs = origin.wait_requests(2, timeout=5)
    post = [r for r in reqs if r.path == "/h2/post"][0]
    assert post.method == "POST" and post.body_len == 100000
    assert post.header("host") == "127.0.0.1:%d" % gw.port
    assert post.header("x-forwarded-for") == "127.0.0.1"
    log = wait_log(gw, 2)
    assert all('HTTP/2"' in line for line in log), log


def test_preface_alone_gets_settings(gw):
    # the preface a client with prior knowledge opens with: the answer is Petrel's SETTINGS
    # frame (RFC 9113 §3.4), not an HTTP/1 status line
    s = connect(gw.port)
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        head = recv_exact(s, 9, 5.0)
        assert head[3] == 4 and head[4] == 0, head  # type SETTINGS, no ACK flag
    finally:
        s.close()


def test_http1_still_served_on_the_same_port(gw):
    s = connect(gw.port)
    try:
        s.sendall(build_request("/h1", [("Host", "web.local")]))
        assert recv_one(s, 5.0)[0] == 200
    finally:
        s.close()


def test_many_streams_on_one_connection(gw, origin):
    c = H2Client(gw.port)
    try:
        ids = []
        for i in range(20):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, req_headers("/multi/%d" % i, gw.port), end_stream=True)
            ids.append(sid)
        c.flush()
        for sid in ids:
            got = c.response(sid)
            assert got is not None and got[0] == 200, (sid, got)
        assert len(origin.wait_requests(20, timeout=5)) >= 20
    finally:
        c.close()


def test_nghttp_and_h2load(gw):
    need("nghttp")
    need("h2load")
    r = subprocess.run(["nghttp", "-n", "-s", "http://127.0.0.1:%d/nghttp" % gw.port],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["h2load", "-n", "200", "-c", "2", "-m", "10",
                        "http://127.0.0.1:%d/load" % gw.port], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert b"200 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout[-600:]


@pytest.mark.parametrize("headers", [
    [(":method", "GET"), (":scheme", "http"), (":path", "/bad")],  # no :authority, no host
    [(":method", "GET"), (":path", "/bad"), (":authority", "web.local")],  # no :scheme
    [(":method", "GET"), (":scheme", "http"), (":authority", "web.local"), (":path", "/bad"),
     ("connection", "keep-alive")],  # a connection-specific header
    [(":method", "GET"), (":scheme", "http"), (":authority", "web.local"), (":path", "/bad"),
     (":bogus", "x")],  # an unknown pseudo-header
], ids=["no-authority", "no-scheme", "connection-header", "unknown-pseudo"])
def test_malformed_request_never_reaches_the_origin(gw, origin, headers):
    c = H2Client(gw.port, validate=False)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, headers, end_stream=True)
        c.flush()
        assert c.read_until(lambda: c.of(h2.events.StreamReset, sid) or
                            c.of(h2.events.StreamEnded, sid))
        reset = c.of(h2.events.StreamReset, sid)
        if reset:
            assert reset[0].error_code == 1  # PROTOCOL_ERROR
        else:
            assert int(dict(c.of(h2.events.ResponseReceived, sid)[0].headers)[":status"]) == 400
    finally:
        c.close()
    # the same connection-level check as HTTP/1's corpus: a good request after it is the only one
    assert curl(["--http2-prior-knowledge", "-o", "/dev/null", "http://127.0.0.1:%d/after" % gw.port])[0] == 0
    assert [r.path for r in origin.wait_requests(1, timeout=5)] == ["/after"]


def test_content_length_mismatch_is_reset_and_not_completed(gw, origin):
    c = H2Client(gw.port, validate=False)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, req_headers("/cl", gw.port, "POST", [("content-length", "10")]))
        c.conn.send_data(sid, b"abc", end_stream=True)
        c.flush()
        assert c.read_until(lambda: c.of(h2.events.StreamReset, sid) or c.of(h2.events.StreamEnded, sid))
        reset = c.of(h2.events.StreamReset, sid)
        assert reset and reset[0].error_code == 1, c.events
    finally:
        c.close()
    # the origin may have seen the head (bodies stream), never a complete 10-byte body
    assert not [r for r in origin.requests if r.path == "/cl" and r.body_len == 10]


def test_rapid_reset_gets_goaway_enhance_your_calm(gw):
    c = H2Client(gw.port)
    try:
        for _ in range(300):  # resets before any response: Petrel gives up after 100
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, req_headers("/rr", gw.port), end_stream=False)
            c.conn.reset_stream(sid, error_code=8)  # CANCEL, as the attack sends
            try:
                c.flush()
            except OSError:
                break
        assert c.read_until(lambda: c.of(h2.events.ConnectionTerminated), timeout=10), c.events[-5:]
        assert c.of(h2.events.ConnectionTerminated)[0].error_code == 11  # ENHANCE_YOUR_CALM
    finally:
        c.close()
    # the server is still serving others
    assert curl(["--http2-prior-knowledge", "-o", "/dev/null", "http://127.0.0.1:%d/ok" % gw.port])[0] == 0


def test_upgrade_h2c_is_not_performed_nor_forwarded(gw, origin):
    s = connect(gw.port)
    try:
        s.sendall(build_request("/up", [("Host", "web.local"), ("Connection", "Upgrade, HTTP2-Settings"),
                                        ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")]))
        status, headers, _ = recv_one(s, 5.0)
        assert status == 200
    finally:
        s.close()
    r = [r for r in origin.wait_requests(1, timeout=5) if r.path == "/up"][0]
    assert r.header("upgrade") is None and r.header("http2-settings") is None, r.headers


def test_stats_count_http2_requests(gw):
    rc, _, err = curl(["--http2-prior-knowledge", "-o", "/dev/null", "http://127.0.0.1:%d/s" % gw.port])
    assert rc == 0, err
    wait_until(lambda: stats(gw).get("downstream_rq_2xx", 0) >= 1, 5, what="the request counted")


def test_policies_apply_per_stream(petrel, origin):
    # the route's fault abort (half the paths by a header match) and response header set, and
    # the access log, per HTTP/2 stream as for HTTP/1
    route = {"headers": {"response": {"set": {"x-h2-route": "yes"}}}}
    docs = simple_config(http_port=free_port(), upstream_port=origin.port, http_route=route)
    vs = [d for d in docs if d["kind"] == "VirtualService"][0]
    vs["spec"]["http"].insert(0, {"match": [{"uri": {"prefix": "/abort"}}],
                                  "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
                                  "route": copy.deepcopy(vs["spec"]["http"][0]["route"])})
    p = petrel(docs, concurrency=1)
    c = H2Client(p.port)
    try:
        ok = c.conn.get_next_available_stream_id()
        c.conn.send_headers(ok, req_headers("/fine", p.port), end_stream=True)
        bad = c.conn.get_next_available_stream_id()
        c.conn.send_headers(bad, req_headers("/abort/me", p.port), end_stream=True)
        c.flush()
        got_ok, got_bad = c.response(ok), c.response(bad)
        assert got_ok is not None and got_ok[0] == 200 and got_ok[1].get("x-h2-route") == "yes", got_ok
        assert got_bad is not None and got_bad[0] == 418, got_bad
    finally:
        c.close()
    raw = wait_log(p, 2)
    lines = [parse_log(line) for line in raw]
    by_status = {f["status"]: f for f in lines}
    assert by_status["418"]["flags"] == "FI" and by_status["200"]["flags"] == "-", lines
    assert all(' HTTP/2" ' in line for line in raw), raw
    assert [r.path for r in origin.requests] == ["/fine"]


def test_slow_reading_client_keeps_memory_bounded(petrel, origin):
    # 100 MB asked for on one stream, the client granting no window beyond the first 64 KiB:
    # Petrel's queue for the stream stops the upstream, so RSS stays flat and the origin is
    # held back.
    big = 100 << 20
    sent = {"n": 0}
    stop = threading.Event()

    def handler(conn, req):
        conn.send_head(req, 200, [("Content-Length", str(big))])
        chunk = pattern_bytes(0, 64 << 10)
        conn.sock.settimeout(5)
        try:
            while sent["n"] < big and not stop.is_set():
                conn.sendall(chunk)
                sent["n"] += len(chunk)
        except OSError:
            pass
        return False

    origin.routes["/big"] = handler
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    start_rss = rss_kb(p.pid)
    c = H2Client(p.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, req_headers("/big", p.port), end_stream=True)
        c.flush()
        peak = start_rss
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3:  # the client reads nothing meanwhile
            peak = max(peak, rss_kb(p.pid))
            time.sleep(0.05)
        assert peak - start_rss < 4096, "RSS grew %d KiB" % (peak - start_rss)
        assert sent["n"] < 16 << 20, "the origin sent %d bytes to a client that reads nothing" % sent["n"]
    finally:
        stop.set()
        c.close()


@pytest.mark.parametrize("protocol", ["HTTP2", "GRPC", "GRPC-WEB"])
def test_gateway_servers_of_http2_protocols_are_served(petrel, origin, protocol):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    port = docs[0]["spec"]["servers"][0]["port"]
    port["protocol"] = protocol
    p = petrel(docs, concurrency=1)
    rc, out, err = curl(["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                         "http://127.0.0.1:%d/%s" % (p.port, protocol.lower())])
    assert (rc, out) == (0, b"2 200"), err


def test_unknown_method_is_501_and_not_forwarded(gw, origin):
    c = H2Client(gw.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, req_headers("/m", gw.port, method="FROB"), end_stream=True)
        c.flush()
        got = c.response(sid)
        assert got is not None and got[0] == 501, got
    finally:
        c.close()
    assert curl(["--http2-prior-knowledge", "-o", "/dev/null", "http://127.0.0.1:%d/after" % gw.port])[0] == 0
    assert [r.path for r in origin.wait_requests(1, timeout=5)] == ["/after"]


def test_cookie_crumbs_joined_and_expect_answered_here(gw, origin):
    c = H2Client(gw.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        crumbs = [("cookie", "a=1"), ("cookie", "b=2")]
        c.conn.send_headers(sid, req_headers("/cookies", gw.port, extra=crumbs), end_stream=True)
        c.flush()
        assert c.response(sid)[0] == 200
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, req_headers("/expect", gw.port, "POST",
                                             [("expect", "100-continue"), ("content-length", "3")]))
        c.flush()
        assert c.read_until(lambda: c.of(h2.events.InformationalResponseReceived, sid)), c.events
        assert dict(c.of(h2.events.InformationalResponseReceived, sid)[0].headers)[":status"] == "100"
        c.conn.send_data(sid, b"abc", end_stream=True)
        c.flush()
        assert c.response(sid)[0] == 200
    finally:
        c.close()
    reqs = {r.path: r for r in origin.wait_requests(2, timeout=5)}
    assert reqs["/cookies"].header_all("cookie") == ["a=1; b=2"], reqs["/cookies"].headers
    assert reqs["/expect"].header("expect") is None and reqs["/expect"].body == b"abc"


def test_drain_sends_goaway_and_finishes_the_stream_in_flight(gw, origin):
    need("nghttp")
    client = subprocess.Popen(["nghttp", "-v", "http://127.0.0.1:%d/delay/1000" % gw.port],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        origin.wait_requests(1, timeout=5)
        st, _, _ = http_request(gw.admin_port, "POST", "/drain_listeners?graceful", host_header="127.0.0.1")
        assert st == 200
        out, _ = client.communicate(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, out[-800:]
    assert ":status: 200" in out, out[-800:]
    assert "recv GOAWAY frame" in out and "error_code=NO_ERROR" in out, out[-800:]


def test_request_protocol_metric_is_grpc_for_grpc_content(gw, origin):
    from test_56_metrics import pick, samples, scrape
    c = H2Client(gw.port)
    try:
        for path, ctype in (("/pkg.Svc/Call", "application/grpc"), ("/plain", "text/plain")):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, req_headers(path, gw.port, "POST", [("content-type", ctype)]))
            c.conn.send_data(sid, b"\x00\x00\x00\x00\x00", end_stream=True)
            c.flush()
            assert c.response(sid)[0] == 200
    finally:
        c.close()

    def counted():
        series = samples(scrape(gw), "istio_requests_total")
        return pick(series, request_protocol="grpc") == 1 and pick(series, request_protocol="http") == 1
    wait_until(counted, 5, what="one grpc and one http request in istio_requests_total")


def test_big_bodies_both_ways_and_trailers(gw, origin, tmp_path):
    # 8 MB down (Content-Length, then chunked with trailers relayed as HTTP/2 trailers) and
    # 4 MB up, through the flow-control windows of both sides
    need("nghttp")
    for path in ("/bytes/8000000", "/chunked/8000000?trailers=1"):
        r = subprocess.run(["nghttp", "-v", "http://127.0.0.1:%d%s" % (gw.port, path)],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr[-400:]
        assert r.stdout.count(b"recv DATA frame") >= 8000000 // 16384, r.stdout[-400:]
        if "trailers" in path:
            assert b"x-trailer: done" in r.stdout and b"x-body-sha256: " in r.stdout, r.stdout[-800:]
    body = tmp_path / "up.bin"
    body.write_bytes(pattern_bytes(0, 4000000))
    rc, out, err = curl(["--http2-prior-knowledge", "--data-binary", "@%s" % body, "-o", "/dev/null",
                         "-w", "%{http_version} %{http_code}", "http://127.0.0.1:%d/up" % gw.port])
    assert (rc, out) == (0, b"2 200"), err
    up = [r for r in origin.wait_requests(3, timeout=10) if r.path == "/up"][0]
    assert up.body_len == 4000000
