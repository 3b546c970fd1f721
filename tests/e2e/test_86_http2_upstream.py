"""tests/e2e/test_86_http2_upstream.py -- HTTP/2 and gRPC upstreams (proxy/http2_client.c),
driven by HTTP/1.1 clients through a Gateway.

The origin is tests/lib/upstream.py's H2Origin (python3-h2) and a real grpcio server whose
stubs are generated at test time with python3-grpc-tools. What is checked:
  - the protocol as Istio picks it: a GRPC / HTTP2 port (or a port named grpc-* / http2-*) is
    spoken HTTP/2 (h2c); an HTTP port only with h2UpgradePolicy UPGRADE (the DestinationRule's,
    or the Proxy's mesh-wide default), and DO_NOT_UPGRADE keeps HTTP/1.1;
  - translation: Host -> :authority, connection-specific headers dropped, te: trailers kept,
    request trailers carried, response trailers reaching an HTTP/1.1 client as chunked trailers;
  - multiplexing: many concurrent client connections on few upstream connections, never more
    streams on one than the upstream's SETTINGS_MAX_CONCURRENT_STREAMS;
  - GOAWAY: a stream above the last stream id is retried (refused-stream) on a new connection;
  - gRPC: grpc-status from trailers-only answers and from trailers, retries on `unavailable`;
  - TLS with ALPN h2 to the upstream (DestinationRule tls SIMPLE).
"""

import json
import re
import threading

import pytest

from netutil import free_port, http_request, pattern_ok, wait_until
from petrel import ISTIO, simple_config, stats, wait_log


def h2_config(origin_port, protocol="GRPC", port_name=None, http_route=None, extra=()):
    docs = simple_config(http_port=free_port(), upstream_port=origin_port, http_route=http_route)
    se = docs[-1]["spec"]
    name = port_name or protocol.lower()
    se["ports"] = [{"number": 80, "name": name}]
    if protocol is not None:
        se["ports"][0]["protocol"] = protocol
    for ep in se["endpoints"]:
        ep["ports"] = {name: list(ep["ports"].values())[0]}
    return docs + list(extra)


def dest_rule(pool_http=None, tls=None, host="web.local"):
    tp = {}
    if pool_http is not None:
        tp["connectionPool"] = {"http": pool_http}
    if tls is not None:
        tp["tls"] = tls
    return {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "web-dr"},
            "spec": {"host": host, "trafficPolicy": tp}}


def test_grpc_port_is_spoken_http2_with_translated_headers(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    st, hdrs, body = http_request(p.port, path="/echo?x=1", host_header="svc.example:8080",
                                  headers=[("Keep-Alive", "timeout=5"), ("TE", "trailers"),
                                           ("X-Custom", "Kept")])
    assert st == 200, body
    req = json.loads(body)
    assert (req["method"], req["path"], req["authority"], req["scheme"]) == \
        ("GET", "/echo?x=1", "svc.example:8080", "http")
    names = [n for n, _ in req["headers"]]
    assert ["te", "trailers"] in req["headers"]
    assert ["x-custom", "Kept"] in req["headers"]
    for dropped in ("host", "connection", "keep-alive", "transfer-encoding", "upgrade"):
        assert dropped not in names, req["headers"]
    assert o.connections == 1


def test_port_name_prefix_selects_http2(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port, protocol=None, port_name="http2-web"), concurrency=1)
    st, _, body = http_request(p.port, path="/echo")
    assert st == 200 and json.loads(body)["method"] == "GET"


def test_post_body_and_request_trailers(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    payload = b"x" * 100000
    st, _, body = http_request(p.port, method="POST", path="/echo", body=payload)
    assert st == 200, body
    assert json.loads(body)["body_len"] == len(payload)
    chunked = (b"5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n")
    st, _, body = http_request(p.port, method="POST", path="/echo", body=chunked,
                               headers=[("Transfer-Encoding", "chunked"), ("TE", "trailers")])
    assert st == 200, body
    req = json.loads(body)
    assert req["body_len"] == 5 and req["trailers"] == [["x-checksum", "abc"]], req


def test_response_trailers_reach_an_http1_client_as_chunked_trailers(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    from netutil import raw_request, parse_responses
    raw = raw_request(p.port, b"GET /trailers HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n"
                              b"Connection: close\r\n\r\n")
    assert b"transfer-encoding: chunked" in raw.lower(), raw
    status, _, _, body, trailers = parse_responses(raw)[0]
    assert status == 200 and body == b"hello"
    assert b"x-trailer: done" in raw.lower(), raw


def test_large_response_flows_through_the_windows(petrel, h2origin):
    # 8 MiB: many times the stream's window (256 KiB) and the connection's (4 MiB), so the
    # download only ends if Petrel acknowledges what the client took.
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    n = 8 << 20
    st, _, body = http_request(p.port, path="/bytes/%d" % n, timeout=30)
    assert st == 200 and len(body) == n and pattern_ok(body)


def test_a_client_that_does_not_read_holds_back_only_its_stream(petrel, h2origin):
    import socket
    import time
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    n = 64 << 20
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    slow.connect(("127.0.0.1", p.port))
    slow.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % n)
    try:
        # The upstream stops once the stream's window is spent: what it sent settles far below
        # the body (the client's and Petrel's socket buffers, Petrel's write queue, the window).
        last = [-1, time.monotonic()]

        def settled():
            now = o.body_bytes_sent
            if now != last[0]:
                last[:] = [now, time.monotonic()]
            return now > 0 and time.monotonic() - last[1] > 0.5
        wait_until(settled, 10.0, what="the upstream's sending to settle")
        assert o.body_bytes_sent < 16 << 20, o.body_bytes_sent
        # Another client's request on the same upstream connection is not held back.
        req = json.loads(http_request(p.port, path="/echo", timeout=5)[2])
        assert req["conn_id"] == 1 and o.connections == 1
        # Reading resumes the stream: the whole body arrives.
        slow.settimeout(30)
        got = bytearray()
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            got += chunk
    finally:
        slow.close()
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) == n and pattern_ok(body)


def concurrent_gets(port, path, n):
    results = [None] * n

    def one(i):
        try:
            results[i] = http_request(port, path=path, timeout=20)[0]
        except Exception as e:  # reported through results
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_many_client_connections_share_one_upstream_connection(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200  # the connection and its SETTINGS
    results = concurrent_gets(p.port, "/delay/300", 20)
    assert results == [200] * 20
    assert o.connections == 1
    assert o.max_active_per_conn > 1


def test_settings_max_concurrent_streams_is_honoured(petrel, h2origin):
    o = h2origin(max_streams=2)
    p = petrel(h2_config(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    results = concurrent_gets(p.port, "/delay/300", 8)
    assert results == [200] * 8
    assert o.max_active_per_conn <= 2
    assert o.connections >= 4  # eight at once, two a connection


def test_idle_connections_above_demand_are_purged(petrel, h2origin):
    # One stream per connection: a burst of six opens six; idle afterwards, they fall to one
    # within seconds (the HTTP/1 pools' demand estimate, halving each second), not after the
    # 60 s upstreamIdleTimeout.
    o = h2origin(max_streams=1)
    p = petrel(h2_config(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    assert concurrent_gets(p.port, "/delay/300", 6) == [200] * 6
    assert o.connections >= 6
    wait_until(lambda: o.closed_by_client >= o.connections - 1, 10.0,
               what="idle HTTP/2 connections purged")
    assert stats(p)["upstream_cx_idle_purged"] >= o.connections - 1
    assert http_request(p.port, path="/echo")[0] == 200


def test_max_requests_per_connection_opens_the_next_connection(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port, extra=[dest_rule(pool_http={"maxRequestsPerConnection": 2})]),
               concurrency=1)
    conns = [json.loads(http_request(p.port, path="/echo")[2])["conn_id"] for _ in range(5)]
    assert conns == [1, 1, 2, 2, 3]


def test_breakers_count_requests_not_connections(petrel, h2origin):
    o = h2origin()
    dr = dest_rule(pool_http={"http2MaxRequests": 2})
    dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"] = {"maxConnections": 1}
    p = petrel(h2_config(o.port, extra=[dr]), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    # Two in flight at most: the others are refused at once (UO), however few connections.
    results = concurrent_gets(p.port, "/delay/700", 5)
    assert sorted(results) == [200, 200, 503, 503, 503], results
    assert o.connections == 1 and o.max_active_per_conn == 2
    assert stats(p)["upstream_overflow_requests"] == 3


def test_goaway_refused_stream_is_retried_on_a_new_connection(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    o.refuse_next(1)
    st, _, body = http_request(p.port, method="POST", path="/echo", body=b"once")
    assert st == 200, body
    req = json.loads(body)
    assert req["conn_id"] == 2 and req["body_len"] == 4
    assert ["x-envoy-attempt-count", "2"] in req["headers"]
    assert o.goaways == 1 and o.connections == 2


def test_an_idle_connection_that_gets_goaway_is_closed(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    assert json.loads(http_request(p.port, path="/echo")[2])["conn_id"] == 1
    o.goaway_open()
    wait_until(lambda: o.closed_by_client == 1, 5.0, what="Petrel closing the idle connection")
    req = json.loads(http_request(p.port, method="POST", path="/echo", body=b"x")[2])
    assert req["conn_id"] == 2 and ["x-envoy-attempt-count", "1"] in req["headers"]


def test_h2_upgrade_policy_both_ways(petrel, h2origin, origin):
    o = h2origin()
    # An HTTP port: HTTP/1.1 unless upgraded.
    up = petrel(h2_config(o.port, protocol="HTTP",
                          extra=[dest_rule(pool_http={"h2UpgradePolicy": "UPGRADE"})]),
                concurrency=1)
    assert http_request(up.port, path="/echo")[0] == 200
    assert len(o.requests) == 1
    # The mesh-wide default upgrades; a DestinationRule that says no wins over it.
    mesh = {"h2UpgradePolicy": "UPGRADE"}
    no = petrel(h2_config(origin.port, protocol="HTTP",
                          extra=[dest_rule(pool_http={"h2UpgradePolicy": "DO_NOT_UPGRADE"})]),
                concurrency=1, proxy_spec=mesh)
    st, _, body = http_request(no.port, path="/echo")
    assert st == 200 and json.loads(body)["version"] == "HTTP/1.1"
    yes = petrel(h2_config(o.port, protocol="HTTP"), concurrency=1, proxy_spec=mesh)
    assert http_request(yes.port, path="/echo")[0] == 200
    assert len(o.requests) == 2


def grpc_series(p):
    """{grpc_response_status: count} of istio_requests_total, read from the admin port."""
    st, _, body = http_request(p.admin_port, path="/stats/prometheus",
                               host_header="127.0.0.1:%d" % p.admin_port)
    assert st == 200
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r'^istio_requests_total\{.*grpc_response_status="([^"]*)".*\} (\S+)$', line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2))
    return out


def test_grpc_status_is_logged_and_unavailable_is_retried(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port, http_route={"retries": {"attempts": 2, "retryOn": "unavailable"}}),
               concurrency=1, proxy_spec={"accessLogFormat": "json"})
    st, hdrs, _ = http_request(p.port, path="/grpc/14")
    assert st == 200
    assert dict((k.lower(), v) for k, v in hdrs)["grpc-status"] == "14"
    assert len(o.requests) == 3  # the first attempt and two retries
    st, _, _ = http_request(p.port, path="/grpc/5")
    assert st == 200 and len(o.requests) == 4  # NOT_FOUND is not retried
    # grpc-status in trailers (after a body) counts as well.
    st, _, body = http_request(p.port, path="/grpc-body/7", headers=[("TE", "trailers")])
    assert st == 200 and body == b"\x00\x00\x00\x00\x00"
    st, _, _ = http_request(p.port, path="/echo")
    assert st == 200
    log = [json.loads(line) for line in wait_log(p, 4)]
    assert [e.get("grpc_status") for e in log] == [14, 5, 7, None], log
    assert [e["upstream_request_attempt_count"] for e in log] == [3, 1, 1, 1], log
    assert grpc_series(p) == {"14": 1, "5": 1, "7": 1, "": 1}


def test_tls_upstream_offers_alpn_h2(petrel, h2origin, tmp_path):
    from certs import make_ca, make_leaf
    ca = make_ca(tmp_path, "ca")
    o = h2origin(cert=make_leaf(tmp_path, "server", ca, ["web.local"], client=False))
    docs = h2_config(o.port, extra=[dest_rule(tls={"mode": "SIMPLE",
                                                   "caCertificates": str(tmp_path / "ca.crt")})])
    p = petrel(docs, concurrency=1)
    st, _, body = http_request(p.port, path="/echo")
    assert st == 200, body
    assert json.loads(body)["scheme"] == "https"
    results = concurrent_gets(p.port, "/delay/200", 6)
    assert results == [200] * 6
    assert o.alpn and set(o.alpn) == {"h2"}
    assert o.connections == 1


# ---- a real gRPC server (grpcio), called over HTTP/1.1 through Petrel ------------------------

PROTO = """
syntax = "proto3";
package petrel.test;
service Echo {
  rpc Say (Msg) returns (Msg);
  rpc Flaky (Msg) returns (Msg);
}
message Msg { string text = 1; }
"""


@pytest.fixture
def grpc_server(tmp_path):
    """A grpcio server for PROTO (stubs generated into tmp_path): Say echoes the text
    upper-cased; Flaky answers UNAVAILABLE to its first `text`-many calls, then echoes."""
    from concurrent import futures

    import grpc
    import grpcstubs

    pb, pb_grpc = grpcstubs.load(PROTO, "echo", tmp_path)
    calls = {"Flaky": 0}

    class Echo(pb_grpc.EchoServicer):
        def Say(self, request, context):
            return pb.Msg(text=request.text.upper())

        def Flaky(self, request, context):
            calls["Flaky"] += 1
            if calls["Flaky"] <= int(request.text):
                context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
            return pb.Msg(text="ok after %d" % calls["Flaky"])

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_EchoServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, pb, calls
    server.stop(0)


def grpc_call(port, method, msg):
    """A unary call as an HTTP/1.1 client writes it: POST, application/grpc, te: trailers, the
    length-prefixed message; returns (status, grpc-status, grpc-message, reply bytes)."""
    from netutil import parse_responses, raw_request
    payload = msg.SerializeToString()
    body = b"\x00" + len(payload).to_bytes(4, "big") + payload
    req = ("POST /petrel.test.Echo/%s HTTP/1.1\r\nHost: echo.example\r\n"
           "Content-Type: application/grpc\r\nTE: trailers\r\nContent-Length: %d\r\n"
           "Connection: close\r\n\r\n" % (method, len(body))).encode() + body
    status, _, headers, rbody, trailers = parse_responses(raw_request(port, req, timeout=10))[0]
    fields = {k.lower(): v for k, v in list(headers) + list(trailers or [])}
    return status, fields.get("grpc-status"), fields.get("grpc-message"), rbody


def test_grpcio_unary_call_through_petrel(petrel, grpc_server):
    port, pb, _ = grpc_server
    p = petrel(h2_config(port), concurrency=1, proxy_spec={"accessLogFormat": "json"})
    status, gs, _, reply = grpc_call(p.port, "Say", pb.Msg(text="hello"))
    assert (status, gs) == (200, "0")
    assert reply[0] == 0 and pb.Msg.FromString(reply[5:]).text == "HELLO"
    assert json.loads(wait_log(p, 1)[0])["grpc_status"] == 0


def test_grpcio_unavailable_is_retried(petrel, grpc_server):
    port, pb, calls = grpc_server
    p = petrel(h2_config(port, http_route={"retries": {"attempts": 3, "retryOn": "unavailable"}}),
               concurrency=1)
    status, gs, _, reply = grpc_call(p.port, "Flaky", pb.Msg(text="2"))
    assert (status, gs) == (200, "0")
    assert pb.Msg.FromString(reply[5:]).text == "ok after 3"
    assert calls["Flaky"] == 3
    # Petrel's default policy for a POST retries only what never reached the upstream.
    q = petrel(h2_config(port), concurrency=1)
    calls["Flaky"] = 0
    status, gs, gm, _ = grpc_call(q.port, "Flaky", pb.Msg(text="1"))
    assert (status, gs, gm) == (200, "14", "not yet")
