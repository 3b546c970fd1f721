"""tests/e2e/test_87_grpc.py -- gRPC end to end: a real grpcio client, Petrel, a real grpcio server.

The client speaks to a Petrel Gateway server of protocol GRPC (h2c with prior knowledge), or to an
HTTPS server (ALPN h2, a test CA from tests/lib/certs.py); the server is a grpcio server behind a
ServiceEntry port of protocol GRPC (h2c), with stubs generated at test time (tests/lib/grpcstubs.py),
or tests/lib/upstream.py's H2Origin where an upstream must not enforce a deadline itself.
What is checked:
  - the four kinds of call (unary, server-streaming, client-streaming, bidirectional), over h2c
    and over TLS;
  - what a gRPC client sees of Petrel's own replies: trailers-only answers whose grpc-status is
    mapped from the HTTP status Petrel decided (no route UNIMPLEMENTED, authorization denied
    PERMISSION_DENIED, an httpStatus fault UNAVAILABLE, connect failure UNAVAILABLE), and
    VirtualService fault.abort.grpcStatus; the access log and metrics keep the HTTP status and add
    the grpc-status, with request_protocol="grpc";
  - deadlines: the client's (grpc-timeout) and the route timeout, whichever ends first, answer
    DEADLINE_EXCEEDED and cancel the upstream call; a client's cancellation reaches the server;
  - flow control end to end: 1 GiB each way on one bidirectional call keeps Petrel's RSS flat, and
    a client that stops reading holds the server back instead of filling Petrel.
"""

import json
import re
import shutil
import subprocess
import threading
import time

import pytest

from netutil import free_port, http_request, rss_kb, wait_until
from petrel import ISTIO, gateway_doc, is_sanitizer_build, service_entry_doc, wait_log

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")

PROTO = """
syntax = "proto3";
package petrel.grpctest;
service Echo {
  rpc Say (Msg) returns (Msg);
  rpc Secret (Msg) returns (Msg);
  rpc Hang (Msg) returns (Msg);
  rpc Count (Msg) returns (stream Msg);
  rpc Join (stream Msg) returns (Msg);
  rpc Chat (stream Msg) returns (stream Msg);
  rpc Bulk (stream Chunk) returns (stream Chunk);
  rpc Flood (Msg) returns (stream Chunk);
  rpc Stall (stream Chunk) returns (Msg);
}
message Msg { string text = 1; }
message Chunk { bytes data = 1; }
"""

CHUNK = 64 << 10
CALL_TIMEOUT = 10  # seconds: a bound on every call that should succeed at once


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    import grpcstubs
    return grpcstubs.load(PROTO, "petrel_grpc87", tmp_path_factory.mktemp("stubs"))


class Server:
    """A grpcio server of the Echo service on 127.0.0.1 that records what its handlers see."""

    def __init__(self, stubs):
        from concurrent import futures
        pb, pb_grpc = stubs
        self.pb = pb
        self.lock = threading.Lock()
        self.calls = {}            # method -> count
        self.hang_started = threading.Event()
        self.hang_cancelled = threading.Event()  # a Hang call saw its context go inactive
        self.bulk_received = 0     # bytes Bulk read
        self.flood_sent = 0        # bytes Flood handed to grpcio
        self.stall_started = threading.Event()
        self.stall_release = threading.Event()  # Stall reads nothing more until it is set
        server = self

        def count(method):
            with server.lock:
                server.calls[method] = server.calls.get(method, 0) + 1

        class Echo(pb_grpc.EchoServicer):
            def Say(self, request, context):
                count("Say")
                return pb.Msg(text=request.text.upper())

            def Secret(self, request, context):
                count("Secret")
                return pb.Msg(text="secret")

            def Hang(self, request, context):
                # Waits for the call to end from the other side (bounded): the client's
                # cancellation or a deadline Petrel enforces reaches this context.
                count("Hang")
                server.hang_started.set()
                end = time.monotonic() + 20
                while context.is_active() and time.monotonic() < end:
                    time.sleep(0.01)
                if not context.is_active():
                    server.hang_cancelled.set()
                return pb.Msg(text="too late")

            def Count(self, request, context):
                count("Count")
                for i in range(int(request.text)):
                    yield pb.Msg(text=str(i))

            def Join(self, request_iterator, context):
                count("Join")
                return pb.Msg(text=",".join(m.text for m in request_iterator))

            def Chat(self, request_iterator, context):
                count("Chat")
                for m in request_iterator:
                    yield pb.Msg(text="re:" + m.text)

            def Bulk(self, request_iterator, context):
                # Sends text-many chunks of CHUNK bytes while reading what the client sends:
                # both directions at once, each at its own pace.
                count("Bulk")
                first = next(request_iterator)
                n = int(first.data)

                def drain():
                    for c in request_iterator:
                        with server.lock:
                            server.bulk_received += len(c.data)

                reader = threading.Thread(target=drain, daemon=True)
                reader.start()
                chunk = pb.Chunk(data=b"s" * CHUNK)
                for _ in range(n):
                    yield chunk
                reader.join(120)

            def Flood(self, request, context):
                # Streams until told to stop: flood_sent says how far flow control let it go.
                count("Flood")
                chunk = pb.Chunk(data=b"f" * CHUNK)
                end = time.monotonic() + 30
                while context.is_active() and time.monotonic() < end:
                    yield chunk
                    with server.lock:
                        server.flood_sent += CHUNK

            def Stall(self, request_iterator, context):
                count("Stall")
                next(request_iterator)
                server.stall_started.set()
                server.stall_release.wait(30)
                return pb.Msg(text="released")

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_EchoServicer_to_server(Echo(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(0)


@pytest.fixture
def server(stubs):
    s = Server(stubs)
    yield s
    s.stop()


def vs(http):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "grpc"},
            "spec": {"hosts": ["*"], "gateways": ["edge"], "http": http}}


def to(host):
    return [{"destination": {"host": host, "port": {"number": 80}}}]


def grpc_routes(extra_routes=()):
    """Routes for the Echo service only (another service has no route), a few of its methods
    with faults, a service whose endpoint refuses connections, and (by an x-route header) the
    H2Origin, which knows nothing of grpc-timeout, with a route timeout or without."""
    prefix = "/petrel.grpctest.Echo/"
    routes = list(extra_routes) + [
        {"match": [{"uri": {"exact": prefix + "Faulty"}}],
         "fault": {"abort": {"grpcStatus": "RESOURCE_EXHAUSTED", "percentage": {"value": 100}}},
         "route": to("grpc.local")},
        {"match": [{"uri": {"exact": prefix + "Broken"}}],
         "fault": {"abort": {"httpStatus": 429, "percentage": {"value": 100}}},
         "route": to("grpc.local")},
        {"match": [{"headers": {"x-route": {"exact": "short"}}}], "timeout": "300ms",
         "route": to("h2.local")},
        {"match": [{"headers": {"x-route": {"exact": "none"}}}], "route": to("h2.local")},
        {"match": [{"uri": {"prefix": prefix}}], "route": to("grpc.local")},
        {"match": [{"uri": {"prefix": "/petrel.grpctest.Down/"}}], "route": to("down.local")},
    ]
    return vs(routes)


def config(server, tls=None, extra=(), h2_port=None):
    port = free_port()
    gw = gateway_doc([(port, "GRPC")])
    if tls is not None:
        crt, key = tls
        gw["spec"]["servers"].append({
            "port": {"number": free_port(), "name": "https", "protocol": "HTTPS"},
            "hosts": ["*"], "tls": {"mode": "SIMPLE", "serverCertificate": crt, "privateKey": key}})
    return [gw, grpc_routes(),
            service_entry_doc("grpc.local", server.port, protocol="GRPC", name="grpc"),
            service_entry_doc("down.local", free_port(), protocol="GRPC", name="down"),
            service_entry_doc("h2.local", h2_port or free_port(), protocol="GRPC", name="h2")] + \
        list(extra)


def start(petrel, server, **kw):
    return petrel(config(server, **kw), concurrency=1, proxy_spec={"accessLogFormat": "json"})


def channel(port, options=()):
    return grpc.insecure_channel("127.0.0.1:%d" % port, options=list(options))


def stub(stubs, ch):
    return stubs[1].EchoStub(ch)


def log_entries(p, n):
    return [json.loads(line) for line in wait_log(p, n)]


def prometheus(p):
    st, _, body = http_request(p.admin_port, path="/stats/prometheus",
                               host_header="127.0.0.1:%d" % p.admin_port)
    assert st == 200
    return body.decode()


def grpc_series(p):
    """{(request_protocol, response_code, grpc_response_status): count} of istio_requests_total."""
    out = {}
    for line in prometheus(p).splitlines():
        if not line.startswith("istio_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        key = (labels["request_protocol"], labels["response_code"], labels["grpc_response_status"])
        out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


# ---- the four kinds of call ----------------------------------------------------------------


def four_calls(pb, s):
    assert s.Say(pb.Msg(text="hello"), timeout=CALL_TIMEOUT).text == "HELLO"
    assert [m.text for m in s.Count(pb.Msg(text="5"), timeout=CALL_TIMEOUT)] == list("01234")
    assert s.Join(iter([pb.Msg(text=t) for t in "abc"]), timeout=CALL_TIMEOUT).text == "a,b,c"
    assert [m.text for m in s.Chat(iter([pb.Msg(text=t) for t in "xy"]), timeout=CALL_TIMEOUT)] \
        == ["re:x", "re:y"]


def test_unary_and_streaming_calls_over_h2c(petrel, server, stubs):
    pb = stubs[0]
    p = start(petrel, server)
    with channel(p.port) as ch:
        four_calls(pb, stub(stubs, ch))
    log = log_entries(p, 4)
    assert sorted(e["path"] for e in log) == ["/petrel.grpctest.Echo/%s" % m
                                              for m in ("Chat", "Count", "Join", "Say")]
    assert all(e["protocol"] == "HTTP/2" and e["response_code"] == 200 and e["grpc_status"] == 0
               for e in log), log
    assert grpc_series(p) == {("grpc", "200", "0"): 4}


def test_calls_over_tls_with_alpn_h2(petrel, server, stubs, tmp_path):
    from certs import make_ca, make_leaf
    ca = make_ca(tmp_path, "ca")
    p = start(petrel, server, tls=make_leaf(tmp_path, "edge", ca, ["grpc.example"], client=False))
    tls_port = p.ports[1]
    creds = grpc.ssl_channel_credentials(root_certificates=(tmp_path / "ca.crt").read_bytes())
    with grpc.secure_channel("127.0.0.1:%d" % tls_port, creds,
                             options=[("grpc.ssl_target_name_override", "grpc.example")]) as ch:
        four_calls(stubs[0], stub(stubs, ch))
    assert all(e["protocol"] == "HTTP/2" and e["grpc_status"] == 0 for e in log_entries(p, 4))


# ---- Petrel's own replies, as a gRPC client reads them --------------------------------------


def call_error(fn, request, timeout=CALL_TIMEOUT):
    with pytest.raises(grpc.RpcError) as e:
        fn(request, timeout=timeout)
    return e.value.code(), e.value.details()


def test_local_replies_are_trailers_only_grpc_statuses(petrel, server, stubs):
    pb = stubs[0]
    deny = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-secret", "namespace": "default"},
            "spec": {"action": "DENY",
                     "rules": [{"to": [{"operation": {"paths": ["/petrel.grpctest.Echo/Secret"]}}]}]}}
    p = start(petrel, server, extra=[deny])
    with channel(p.port) as ch:
        s = stub(stubs, ch)
        assert call_error(s.Secret, pb.Msg()) == (grpc.StatusCode.PERMISSION_DENIED,
                                                  "RBAC: access denied")
        other = ch.unary_unary("/petrel.grpctest.Other/Call", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
        assert call_error(other, b"")[0] == grpc.StatusCode.UNIMPLEMENTED
        faulty = ch.unary_unary("/petrel.grpctest.Echo/Faulty", request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
        assert call_error(faulty, b"") == (grpc.StatusCode.RESOURCE_EXHAUSTED, "fault filter abort")
        broken = ch.unary_unary("/petrel.grpctest.Echo/Broken", request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
        assert call_error(broken, b"") == (grpc.StatusCode.UNAVAILABLE, "fault filter abort")
        down = ch.unary_unary("/petrel.grpctest.Down/Call", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        code, details = call_error(down, b"")
        assert code == grpc.StatusCode.UNAVAILABLE and "connection failure" in details, details
        # a streaming call refused before it reached the upstream reads the same way
        stream = ch.stream_stream("/petrel.grpctest.Other/Stream", request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            list(stream(iter([b"x", b"y"]), timeout=CALL_TIMEOUT))
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert server.calls.get("Secret") is None
    got = {e["path"]: (e["response_code"], e["response_flags"], e["grpc_status"])
           for e in log_entries(p, 6)}
    assert got["/petrel.grpctest.Echo/Secret"] == (403, "RBAC", 7)
    assert got["/petrel.grpctest.Other/Call"] == (404, "NR", 12)
    assert got["/petrel.grpctest.Other/Stream"] == (404, "NR", 12)
    assert got["/petrel.grpctest.Echo/Faulty"] == (200, "FI", 8)
    assert got["/petrel.grpctest.Echo/Broken"] == (429, "FI", 14)
    assert got["/petrel.grpctest.Down/Call"] == (503, "UF", 14)
    series = grpc_series(p)
    for key in [("grpc", "403", "7"), ("grpc", "200", "8"),
                ("grpc", "429", "14"), ("grpc", "503", "14")]:
        assert series.get(key) == 1, (key, series)
    assert series.get(("grpc", "404", "12")) == 2, series


def test_breaker_overflow_is_unavailable(petrel, server, stubs):
    dr = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "grpc-dr"},
          "spec": {"host": "grpc.local",
                   "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 1}}}}}
    p = start(petrel, server, extra=[dr])
    with channel(p.port) as ch:
        s = stub(stubs, ch)
        hanging = s.Hang.future(stubs[0].Msg(), timeout=30)
        wait_until(server.hang_started.is_set, 10, what="the first call to hold the slot")
        code, details = call_error(s.Say, stubs[0].Msg(text="x"))
        assert code == grpc.StatusCode.UNAVAILABLE and "overflow" in details, details
        hanging.cancel()
    entry = [e for e in log_entries(p, 2) if e["path"].endswith("/Say")][0]
    assert (entry["response_code"], entry["response_flags"], entry["grpc_status"]) == \
        (503, "UO", 14)
    assert server.calls.get("Say") is None


def test_a_call_answered_before_its_request_ended_is_reset_no_error(petrel, server):
    # RFC 9113 §8.1: the reply ends the response, then RST_STREAM NO_ERROR tells the client,
    # still sending, that the rest of its request is not wanted.
    from test_86_http2_server import H2Client, req_headers
    import h2.events
    p = start(petrel, server)
    c = H2Client(p.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, req_headers("/petrel.grpctest.Other/Call", p.port, "POST",
                                             [("content-type", "application/grpc"),
                                              ("te", "trailers")]))
        c.conn.send_data(sid, b"\x00\x00\x00\x00\x00")  # one message, and no END_STREAM
        c.flush()
        assert c.read_until(lambda: c.of(h2.events.StreamReset, sid)), c.events
        head = dict(c.of(h2.events.ResponseReceived, sid)[0].headers)
        assert (head[":status"], head["grpc-status"]) == ("200", "12"), head
        assert c.of(h2.events.StreamEnded, sid), c.events  # the reply was whole
        assert c.of(h2.events.StreamReset, sid)[0].error_code == 0
    finally:
        c.close()
    assert log_entries(p, 1)[0]["response_code"] == 404


# ---- deadlines and cancellation -------------------------------------------------------------


def test_client_deadline_exceeded_cancels_the_upstream_call(petrel, server, stubs):
    p = start(petrel, server)
    with channel(p.port) as ch:
        t0 = time.monotonic()
        code, _ = call_error(stub(stubs, ch).Hang, stubs[0].Msg(), timeout=0.5)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 5
    wait_until(server.hang_cancelled.is_set, 10, what="the server's context to see the cancel")


def test_client_cancellation_reaches_the_upstream(petrel, server, stubs):
    p = start(petrel, server)
    with channel(p.port) as ch:
        fut = stub(stubs, ch).Hang.future(stubs[0].Msg(), timeout=30)
        wait_until(server.hang_started.is_set, 10, what="the call to reach the server")
        assert fut.cancel()
        wait_until(server.hang_cancelled.is_set, 10, what="the server's context to see the cancel")
    entry = log_entries(p, 1)[0]
    assert entry["response_flags"] == "DC", entry


def need_curl_http2():
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")


def raw_grpc_call(port, path, headers, body, tmp_path):
    """A unary gRPC call as curl sends it (h2c with prior knowledge), with headers of our own
    (grpc-timeout, which grpcio sets only from its own deadline); returns (the response's head
    fields, seconds taken). curl has a deadline of its own of 15 s and none on the gRPC level."""
    frame = tmp_path / "frame.bin"
    frame.write_bytes(b"\x00" + len(body).to_bytes(4, "big") + body)
    args = ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "15", "-o", "/dev/null",
            "-D", "-", "-H", "content-type: application/grpc", "-H", "te: trailers",
            "--data-binary", "@%s" % frame]
    for h in headers:
        args += ["-H", h]
    t0 = time.monotonic()
    r = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                       timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    fields = {}
    for line in r.stdout.decode().splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    return r.stdout.decode().splitlines()[0], fields, took


@pytest.mark.parametrize("grpc_timeout,route,want_seconds", [
    ("400m", "none", 0.4),   # grpc-timeout, and no route timeout at all
    ("400m", "short", 0.3),  # the route timeout (300ms) ends first
    ("20S", "short", 0.3),
    ("200m", "short", 0.2),  # grpc-timeout shorter than the route timeout
])
def test_grpc_timeout_within_the_route_timeout(petrel, server, h2origin, tmp_path, grpc_timeout,
                                               route, want_seconds):
    # The origin answers /delay/5000 after 5 s and ignores grpc-timeout: the deadline is Petrel's.
    need_curl_http2()
    o = h2origin()
    p = petrel(config(server, h2_port=o.port), concurrency=1,
               proxy_spec={"accessLogFormat": "json"})
    status, fields, took = raw_grpc_call(p.port, "/delay/5000",
                                         ["grpc-timeout: " + grpc_timeout, "x-route: " + route],
                                         b"", tmp_path)
    assert status.startswith("HTTP/2 200"), (status, fields)
    assert fields["content-type"] == "application/grpc"
    assert fields["grpc-status"] == "4" and fields["grpc-message"] == "upstream request timeout"
    assert want_seconds - 0.05 <= took < want_seconds + 3, took
    wait_until(lambda: o.resets == 1, 10, what="the upstream stream to be reset")
    entry = log_entries(p, 1)[0]
    assert (entry["response_code"], entry["response_flags"], entry["grpc_status"]) == (504, "UT", 4)


def test_grpc_timeout_runs_while_the_request_streams(petrel, server, h2origin):
    # The client sends its head and one message, then nothing (no END_STREAM): the route
    # timeout has not started, the client's deadline has.
    from test_86_http2_server import H2Client, req_headers
    import h2.events
    o = h2origin()
    p = petrel(config(server, h2_port=o.port), concurrency=1,
               proxy_spec={"accessLogFormat": "json"})
    c = H2Client(p.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        t0 = time.monotonic()
        c.conn.send_headers(sid, req_headers("/delay/5000", p.port, "POST",
                                             [("content-type", "application/grpc"),
                                              ("te", "trailers"), ("grpc-timeout", "300m"),
                                              ("x-route", "short")]))
        c.conn.send_data(sid, b"\x00\x00\x00\x00\x00")
        c.flush()
        assert c.read_until(lambda: c.of(h2.events.StreamEnded, sid)), c.events
        took = time.monotonic() - t0
        head = dict(c.of(h2.events.ResponseReceived, sid)[0].headers)
        assert (head[":status"], head["grpc-status"]) == ("200", "4"), head
        assert 0.25 <= took < 3, took
    finally:
        c.close()
    wait_until(lambda: o.resets == 1, 10, what="the upstream stream to be reset")
    assert log_entries(p, 1)[0]["response_flags"] == "UT"


def test_malformed_grpc_timeout_is_ignored(petrel, server, stubs, tmp_path):
    need_curl_http2()
    p = start(petrel, server)
    payload = stubs[0].Msg(text="hi").SerializeToString()
    # (grpc-timeout goes upstream as sent: a zero the server would read as "now" is not tried)
    for bad in ["1x", "123456789S", "S", "-1S"]:
        status, fields, _ = raw_grpc_call(p.port, "/petrel.grpctest.Echo/Say", ["grpc-timeout: " + bad],
                                          payload, tmp_path)
        # answered by the server (grpc-status 0 in its trailers), not cut short by Petrel
        assert status.startswith("HTTP/2 200") and fields.get("grpc-status") == "0", (bad, fields)
    assert server.calls["Say"] == 4


# ---- flow control end to end ----------------------------------------------------------------


def bulk_call(stubs, ch, n_chunks, sample=None):
    """One Bulk call moving n_chunks of CHUNK bytes each way; returns the bytes the client read.
    sample(), when given, runs between the messages the client reads."""
    pb = stubs[0]
    chunk = pb.Chunk(data=b"c" * CHUNK)

    def requests():
        yield pb.Chunk(data=str(n_chunks).encode())
        for _ in range(n_chunks):
            yield chunk

    got = 0
    for m in stub(stubs, ch).Bulk(requests(), timeout=120):
        got += len(m.data)
        if sample is not None:
            sample()
    return got


def test_one_gib_each_way_keeps_rss_flat(petrel, server, stubs):
    p = start(petrel, server)
    n = (1 << 30) // CHUNK
    with channel(p.port) as ch:
        # a first call brings the pools and slabs to their working size
        assert bulk_call(stubs, ch, 256) == 256 * CHUNK
        wait_until(lambda: server.bulk_received == 256 * CHUNK, 10, what="the warm-up's bytes")
        server.bulk_received = 0
        before = rss_kb(p.pid)
        peak = [before]
        last = [0.0]

        def sample():
            now = time.monotonic()
            if now - last[0] >= 0.05:
                last[0] = now
                peak[0] = max(peak[0], rss_kb(p.pid))

        t0 = time.monotonic()
        assert bulk_call(stubs, ch, n, sample) == 1 << 30
        wait_until(lambda: server.bulk_received == 1 << 30, 30, what="1 GiB at the server")
        took = time.monotonic() - t0
    assert took < 120
    if not is_sanitizer_build():  # ASan's quarantine keeps what was freed
        assert peak[0] - before < 8 << 10, "RSS grew from %d to %d KiB" % (before, peak[0])


def test_a_stalled_upload_holds_back_only_its_own_call(petrel, server, stubs):
    # One grpcio channel is one HTTP/2 connection: a call whose server reads nothing of its
    # upload must not take the connection's window from the other calls on it.
    p = start(petrel, server)
    pb = stubs[0]
    chunk = pb.Chunk(data=b"u" * CHUNK)
    taken = [0]

    def upload():  # 16 MiB offered, counted as grpcio takes it
        for _ in range(256):
            taken[0] += 1
            yield chunk

    def settled():
        a = taken[0]
        time.sleep(0.3)
        return taken[0] == a

    with channel(p.port) as ch:
        s = stub(stubs, ch)
        stalled = s.Stall.future(upload(), timeout=60)
        try:
            wait_until(server.stall_started.is_set, 10, what="the stalled call to start")
            wait_until(settled, 20, what="the upload to fill the windows")
            assert taken[0] < 256, "the whole upload went though the server read none of it"
            for i in range(3):
                assert s.Say(pb.Msg(text="next%d" % i), timeout=5).text == "NEXT%d" % i
        finally:
            server.stall_release.set()
        assert stalled.result(timeout=30).text == "released"


def test_a_client_that_stops_reading_holds_the_server_back(petrel, server, stubs):
    p = start(petrel, server)
    # grpcio's window stays at its initial size without BDP probing: what the client buffers is
    # bounded, so what the server sends beyond it is what Petrel and the sockets hold.
    with channel(p.port, [("grpc.http2.bdp_probe", 0)]) as ch:
        before = rss_kb(p.pid)
        calls = stub(stubs, ch).Flood(stubs[0].Msg(), timeout=60)
        first = next(calls)  # the call is flowing; now the client reads nothing
        assert len(first.data) == CHUNK

        def settled():
            a = server.flood_sent
            time.sleep(0.5)
            return a > 0 and server.flood_sent == a

        wait_until(settled, 20, interval=0.01, what="the server to block on flow control")
        held = server.flood_sent
        peak = rss_kb(p.pid)
        assert held < 32 << 20, "the server sent %d bytes to a client that reads nothing" % held
        if not is_sanitizer_build():
            assert peak - before < 8 << 10, "RSS grew from %d to %d KiB" % (before, peak)
        # reading again lets it go on
        for _ in range(64):
            next(calls)
        wait_until(lambda: server.flood_sent > held, 10, what="the server to go on")
        calls.cancel()
