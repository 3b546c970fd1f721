"""tests/e2e/test_88_http2_malformed.py -- hostile HTTP/2 peers, frame by frame.

One data-driven corpus of malformed HTTP/2 (raw frames and HPACK written by tests/lib/h2wire.py,
since python3-h2 refuses to produce most of them): each case names the bytes sent after the
client preface and the answer Petrel must give -- a GOAWAY or RST_STREAM error code, or an
HTTP status -- and the counting origin must receive nothing of it: no request, and not one byte
of the case's unique path, checked once a sentinel request sent after the case has arrived.

Then the limits on by default: SETTINGS_MAX_CONCURRENT_STREAMS (100, and the Proxy's
http2.maxConcurrentStreams), and floods (PING, SETTINGS, empty DATA, PRIORITY, WINDOW_UPDATE,
CONTINUATION, rapid reset) ended with GOAWAY ENHANCE_YOUR_CALM within bounded time and RSS
while another client on the same listener is served.
"""

import threading
import time

import pytest

from netutil import free_port, http_request, rss_kb, wait_until
from petrel import Petrel, need_petrel, sanitized, simple_config

pytest.importorskip("h2.connection")
pytest.importorskip("hpack")
from h2wire import (COMPRESSION_ERROR, CONTINUATION, END_HEADERS, END_STREAM,  # noqa: E402
                    ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, INTERNAL_ERROR, FRAME_SIZE_ERROR, HEADERS, PADDED,
                    PING, SETTINGS, PRIORITY_FLAG, PROTOCOL_ERROR, PUSH_PROMISE, REFUSED_STREAM, H2Client,
                    RawH2, block, data_frame, frame, header_frames, headers_frame, indexed, literal, ping_frame,
                    priority_frame, req_headers, request_fields, rst_frame, settings_frame,
                    table_size_update, window_update_frame)

EH, ES = END_HEADERS, END_STREAM


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """One Petrel and one counting origin for the whole corpus (each case on its own
    connection); at the end Petrel must exit 0 without a sanitizer report."""
    from upstream import HttpOrigin
    need_petrel()
    origin = HttpOrigin(name="counting")
    p = Petrel(tmp_path_factory.mktemp("petrel88"),
               simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    p.start()
    p.origin = origin
    yield p
    _, problems = p.stop()
    origin.stop()
    assert not problems, "%s\n%s" % (problems, p.output_tail(100))


def GET(path, extra=(), **kw):
    return block(request_fields(path, extra=extra, **kw))


def POST(path, extra=()):
    return block(request_fields(path, "POST", extra=extra))


def swap(fields, name, value):
    return [(n, value if n == name else v) for n, v in fields]


def without(fields, name):
    return [(n, v) for n, v in fields if n != name]


def head(fields):
    """HEADERS with END_STREAM on stream 1: the whole request is these fields."""
    return headers_frame(1, block(fields))


def F(path):
    return request_fields(path)


# A case: (name, bytes after the preface -- a function of the case's unique path --, expected).
# expected: ("goaway", code), ("rst", code) on stream 1, or ("status", n) on stream 1.
HUGE = b"v" * 4000
CASES = [
    # pseudo-headers (RFC 9113 §8.3): a stream error
    ("missing-method", lambda p: head(without(F(p), ":method")), ("rst", PROTOCOL_ERROR)),
    ("missing-path", lambda p: head(without(F(p), ":path") + [("x-p", p)]), ("rst", PROTOCOL_ERROR)),
    ("missing-scheme", lambda p: head(without(F(p), ":scheme")), ("rst", PROTOCOL_ERROR)),
    ("duplicate-method", lambda p: head(F(p) + [(":method", "GET")]), ("rst", PROTOCOL_ERROR)),
    ("duplicate-path", lambda p: head(F(p) + [(":path", p)]), ("rst", PROTOCOL_ERROR)),
    ("unknown-pseudo", lambda p: head(F(p) + [(":bogus", "1")]), ("rst", PROTOCOL_ERROR)),
    ("response-pseudo", lambda p: head(F(p) + [(":status", "200")]), ("rst", PROTOCOL_ERROR)),
    ("pseudo-after-regular", lambda p: head(without(F(p), ":path") + [("accept", "*/*"), (":path", p)]),
     ("rst", PROTOCOL_ERROR)),
    ("uppercase-pseudo", lambda p: head(swap(F(p), ":method", "GET") + [(":Method", "GET")]),
     ("rst", PROTOCOL_ERROR)),
    ("empty-path", lambda p: head(swap(F(p), ":path", "") + [("x-p", p)]), ("rst", PROTOCOL_ERROR)),
    ("empty-method", lambda p: head(swap(F(p), ":method", "")), ("rst", PROTOCOL_ERROR)),
    ("connect-with-path", lambda p: head(swap(F(p), ":method", "CONNECT")), ("rst", PROTOCOL_ERROR)),
    ("no-authority-no-host", lambda p: head(without(F(p), ":authority")), ("rst", PROTOCOL_ERROR)),
    # field names and values (RFC 9113 §8.2.1)
    ("uppercase-name", lambda p: head(F(p) + [("Accept", "*/*")]), ("rst", PROTOCOL_ERROR)),
    ("space-in-name", lambda p: head(F(p) + [("x y", "1")]), ("rst", PROTOCOL_ERROR)),
    ("colon-in-name", lambda p: head(F(p) + [("x:y", "1")]), ("rst", PROTOCOL_ERROR)),
    ("empty-name", lambda p: head(F(p) + [("", "1")]), ("rst", PROTOCOL_ERROR)),
    ("nul-in-value", lambda p: head(F(p) + [("x-v", "a\x00b")]), ("rst", PROTOCOL_ERROR)),
    ("crlf-in-value", lambda p: head(F(p) + [("x-v", "a\r\nx-injected: 1")]), ("rst", PROTOCOL_ERROR)),
    ("leading-space-in-value", lambda p: head(F(p) + [("x-v", " a")]), ("rst", PROTOCOL_ERROR)),
    # connection-specific fields (RFC 9113 §8.2.2)
    ("connection", lambda p: head(F(p) + [("connection", "close")]), ("rst", PROTOCOL_ERROR)),
    ("keep-alive", lambda p: head(F(p) + [("keep-alive", "timeout=5")]), ("rst", PROTOCOL_ERROR)),
    ("proxy-connection", lambda p: head(F(p) + [("proxy-connection", "keep-alive")]), ("rst", PROTOCOL_ERROR)),
    ("transfer-encoding", lambda p: head(F(p) + [("transfer-encoding", "chunked")]), ("rst", PROTOCOL_ERROR)),
    ("upgrade", lambda p: head(F(p) + [("upgrade", "websocket")]), ("rst", PROTOCOL_ERROR)),
    ("te-gzip", lambda p: head(F(p) + [("te", "gzip")]), ("rst", PROTOCOL_ERROR)),
    # content-length against DATA (RFC 9113 §8.1.1): the request is never started
    ("content-length-more-than-data",
     lambda p: headers_frame(1, POST(p, [("content-length", "10")]), EH) + data_frame(1, b"abc", ES),
     ("rst", PROTOCOL_ERROR)),
    ("content-length-less-than-data",
     lambda p: headers_frame(1, POST(p, [("content-length", "3")]), EH) + data_frame(1, b"abcdefghij", ES),
     ("rst", PROTOCOL_ERROR)),
    ("content-length-zero-with-data",
     lambda p: headers_frame(1, POST(p, [("content-length", "0")]), EH) + data_frame(1, b"x", ES),
     ("rst", PROTOCOL_ERROR)),
    ("content-length-not-a-number", lambda p: head(F(p) + [("content-length", "1x")]), ("rst", PROTOCOL_ERROR)),
    ("content-length-twice-differing",
     lambda p: head(F(p) + [("content-length", "1"), ("content-length", "2")]), ("rst", PROTOCOL_ERROR)),
    # trailers (RFC 9113 §8.1): a pseudo-header in them, or trailers without END_STREAM
    ("pseudo-in-trailers",
     lambda p: headers_frame(1, POST(p), EH) + data_frame(1, b"abc") +
     headers_frame(1, block([(":path", "/x")]), EH | ES), ("rst", PROTOCOL_ERROR)),
    ("trailers-without-end-stream",
     lambda p: headers_frame(1, POST(p), EH) + data_frame(1, b"abc") +
     headers_frame(1, block([("x-t", "1")]), EH), ("rst", PROTOCOL_ERROR)),
    ("trailers-over-100-fields",
     lambda p: headers_frame(1, POST(p), EH) + data_frame(1, b"abc") +
     headers_frame(1, block([("x-t%d" % i, "1") for i in range(101)]), EH | ES), ("rst", INTERNAL_ERROR)),
    # the header list limits (maxHeaders 100, maxHeaderBytes 61440), as HTTP/1's
    ("101-headers", lambda p: head(F(p) + [("x-h%d" % i, "1") for i in range(101)]), ("status", 431)),
    ("61k-value-in-continuations",
     lambda p: header_frames(1, GET(p, [("x-big", "v" * 62000)])), ("status", 431)),
    # HPACK bombs: a 4000-byte field indexed once, then referenced by one byte 3000 times
    # (12 MB decoded from 12 KB); a table size update above SETTINGS_HEADER_TABLE_SIZE
    ("hpack-bomb-indexed-refs",
     lambda p: headers_frame(1, GET(p) + literal("x-bomb", HUGE, indexed=True) + indexed(62) * 3000),
     ("status", 431)),
    ("hpack-table-size-over-settings",
     lambda p: headers_frame(1, table_size_update(1 << 20) + GET(p)), ("goaway", COMPRESSION_ERROR)),
    ("hpack-index-out-of-table", lambda p: headers_frame(1, GET(p) + indexed(1000)), ("goaway", COMPRESSION_ERROR)),
    ("hpack-string-past-block",
     lambda p: headers_frame(1, GET(p) + b"\x00\x05x-bad\x7f\xff\x01abc"), ("goaway", COMPRESSION_ERROR)),
    ("hpack-field-over-64k", lambda p: header_frames(1, GET(p, [("x-big", "v" * 70000)])),
     ("goaway", COMPRESSION_ERROR)),
    # frames where they do not belong (RFC 9113 §5.1, §6)
    ("headers-on-stream-0", lambda p: frame(HEADERS, EH | ES, 0, GET(p)), ("goaway", PROTOCOL_ERROR)),
    ("even-stream-id", lambda p: frame(HEADERS, EH | ES, 2, GET(p)), ("goaway", PROTOCOL_ERROR)),
    ("data-on-idle-stream", lambda p: data_frame(1, b"x" + p.encode(), ES), ("goaway", PROTOCOL_ERROR)),
    ("data-on-stream-0", lambda p: data_frame(0, p.encode()), ("goaway", PROTOCOL_ERROR)),
    ("rst-on-idle-stream", lambda p: rst_frame(1) + data_frame(1, p.encode()), ("goaway", PROTOCOL_ERROR)),
    ("push-promise-from-client",
     lambda p: headers_frame(1, POST(p), EH) + frame(PUSH_PROMISE, EH, 1, b"\x00\x00\x00\x02" + GET(p)),
     ("goaway", PROTOCOL_ERROR)),
    ("continuation-without-headers", lambda p: frame(CONTINUATION, EH, 1, GET(p)), ("goaway", PROTOCOL_ERROR)),
    ("data-between-headers-and-continuation",
     lambda p: headers_frame(1, GET(p)[:10], ES) + data_frame(1, b"x") + frame(CONTINUATION, EH, 1, GET(p)[10:]),
     ("goaway", PROTOCOL_ERROR)),
    ("continuation-on-other-stream",
     lambda p: headers_frame(1, GET(p)[:10], ES) + frame(CONTINUATION, EH, 3, GET(p)[10:]),
     ("goaway", PROTOCOL_ERROR)),
    ("padding-longer-than-frame",
     lambda p: frame(HEADERS, EH | ES | PADDED, 1, b"\xff" + GET(p)), ("goaway", PROTOCOL_ERROR)),
    ("stream-depends-on-itself",
     lambda p: frame(HEADERS, EH | ES | PRIORITY_FLAG, 1, b"\x00\x00\x00\x01\x10" + GET(p)),
     ("goaway", PROTOCOL_ERROR)),
    ("data-frame-over-max-frame-size",
     lambda p: headers_frame(1, POST(p), EH) + data_frame(1, b"x" * 20000, ES), ("goaway", FRAME_SIZE_ERROR)),
    ("ping-of-7-bytes", lambda p: headers_frame(1, POST(p), EH) + frame(PING, 0, 0, b"1234567"),
     ("goaway", FRAME_SIZE_ERROR)),
    ("settings-not-multiple-of-6",
     lambda p: headers_frame(1, POST(p), EH) + frame(4, 0, 0, b"\x00\x03\x00\x00\x00"), ("goaway", FRAME_SIZE_ERROR)),
    ("settings-on-a-stream",
     lambda p: headers_frame(1, POST(p), EH) + frame(4, 0, 1, b""), ("goaway", PROTOCOL_ERROR)),
    ("settings-window-over-2^31",
     lambda p: headers_frame(1, POST(p), EH) + settings_frame([(4, 1 << 31)]), ("goaway", FLOW_CONTROL_ERROR)),
    ("settings-enable-push-2",
     lambda p: headers_frame(1, POST(p), EH) + settings_frame([(2, 2)]), ("goaway", PROTOCOL_ERROR)),
    ("settings-max-frame-size-too-small",
     lambda p: headers_frame(1, POST(p), EH) + settings_frame([(5, 100)]), ("goaway", PROTOCOL_ERROR)),
    ("window-update-of-0",
     lambda p: headers_frame(1, POST(p), EH) + window_update_frame(0, 0), ("goaway", PROTOCOL_ERROR)),
    ("window-update-overflow",
     lambda p: headers_frame(1, POST(p), EH) + window_update_frame(0, 0x7FFFFFFF), ("goaway", FLOW_CONTROL_ERROR)),
    # floods, each in one burst from a client that reads nothing meanwhile
    ("continuation-flood",
     lambda p: headers_frame(1, GET(p)[:4], ES) + b"".join(frame(CONTINUATION, 0, 1, b"") for _ in range(20)),
     ("goaway", ENHANCE_YOUR_CALM)),
    ("ping-flood", lambda p: headers_frame(1, POST(p), EH) + ping_frame() * 5000, ("goaway", ENHANCE_YOUR_CALM)),
    ("settings-flood",
     lambda p: headers_frame(1, POST(p), EH) + settings_frame() * 5000, ("goaway", ENHANCE_YOUR_CALM)),
    ("settings-with-40-entries",
     lambda p: headers_frame(1, POST(p), EH) + settings_frame([(3, 100)] * 40), ("goaway", ENHANCE_YOUR_CALM)),
    ("empty-data-flood",
     lambda p: headers_frame(1, POST(p), EH) + data_frame(1, b"") * 100, ("goaway", ENHANCE_YOUR_CALM)),
    ("priority-flood",
     lambda p: headers_frame(1, POST(p), EH) + priority_frame(3) * 500, ("goaway", ENHANCE_YOUR_CALM)),
    ("window-update-flood",
     lambda p: headers_frame(1, POST(p), EH) + window_update_frame(0, 1) * 500, ("goaway", ENHANCE_YOUR_CALM)),
    ("rapid-reset",
     lambda p: b"".join(headers_frame(i, POST(p), EH) + rst_frame(i) for i in range(1, 600, 2)),
     ("goaway", ENHANCE_YOUR_CALM)),
]


def run_case(port, payload, expected):
    kind, want = expected
    r = RawH2(port)
    try:
        r.send(payload)
        got = {"goaway": r.goaway, "rst": lambda: r.reset(1), "status": lambda: r.status(1)}[kind]
        r.read_until(lambda: got() is not None or r.goaway() is not None)
        return got(), r
    finally:
        r.close()


def sentinel(gw, name):
    """A good request after the case, on a new connection: it must be served, and once it
    arrived, whatever the case could have sent upstream would have arrived before it."""
    path = "/sentinel/%s" % name
    st, _, _ = http_request(gw.port, "GET", path, host_header="web.local", timeout=5)
    assert st == 200, (name, st)
    wait_until(lambda: path in [q.path for q in gw.origin.requests], 5, what="the sentinel " + path)


@pytest.mark.parametrize("name,build,expected", CASES, ids=[c[0] for c in CASES])
def test_malformed(gw, name, build, expected):
    path = "/m/%s" % name
    n_before = len(gw.origin.requests)
    got, r = run_case(gw.port, build(path), expected)
    assert got == expected[1], "%s: wanted %s %s, got %r; frames %r" % (
        name, expected[0], expected[1], got, [(f[0], f[1], f[2], f[3][:16]) for f in r.frames[-6:]])
    sentinel(gw, name)
    new = [q.path for q in gw.origin.requests[n_before:]]
    assert new == ["/sentinel/%s" % name], (name, new)
    assert path.encode() not in gw.origin.raw, "%s: the origin received part of it" % name


def test_a_whole_request_in_one_read_is_forwarded_whole(gw):
    # the control for the cases above: head, body in three DATA frames and trailers in one
    # burst start the stream once the read is parsed, with all of it
    r = RawH2(gw.port)
    try:
        r.send(headers_frame(1, POST("/whole", [("content-length", "9"), ("te", "trailers")]), EH) +
               data_frame(1, b"abc") + data_frame(1, b"def") + data_frame(1, b"ghi") +
               headers_frame(1, block([("x-trailer", "yes")]), EH | ES))
        assert r.read_until(lambda: r.status(1) is not None) and r.status(1) == 200, r.frames[-3:]
    finally:
        r.close()
    got = [q for q in gw.origin.wait_requests(1) if q.path == "/whole"]
    assert got and got[0].body == b"abcdefghi", got


def test_corpus_size():
    assert len(CASES) >= 40


def held_streams(r, ids, path="/held"):
    """POST heads without END_STREAM: each stream stays open, waiting for its body."""
    return b"".join(headers_frame(i, POST("%s/%d" % (path, i)), EH) for i in ids)


def settings_of(r):
    """The server's first SETTINGS frame as {identifier: value}."""
    r.read_until(lambda: any(f[0] == SETTINGS and not f[1] & 1 for f in r.frames))
    payload = [f[3] for f in r.frames if f[0] == SETTINGS and not f[1] & 1][0]
    return {int.from_bytes(payload[i:i + 2], "big"): int.from_bytes(payload[i + 2:i + 6], "big")
            for i in range(0, len(payload), 6)}


@pytest.mark.parametrize("acked", [False, True], ids=["before-settings-ack", "after-settings-ack"])
def test_stream_over_100(gw, acked):
    # Before the client acknowledged SETTINGS_MAX_CONCURRENT_STREAMS, a stream over it is
    # refused (RST_STREAM REFUSED_STREAM, safe to retry); after, nghttp2 holds the client to
    # the limit it acknowledged: GOAWAY PROTOCOL_ERROR. The 101st is never forwarded.
    r = RawH2(gw.port, ack_settings=acked)
    path = "/held-%s" % ("acked" if acked else "early")
    try:
        if acked:
            assert settings_of(r)[3] == 100  # SETTINGS_MAX_CONCURRENT_STREAMS
            assert r.read_until(lambda: any(f[0] == SETTINGS and f[1] & 1 for f in r.frames))
        ids = list(range(1, 203, 2))  # 101 streams
        r.send(held_streams(r, ids, path))
        if acked:
            assert r.read_until(lambda: r.goaway() is not None) and r.goaway() == PROTOCOL_ERROR
        else:
            assert settings_of(r)[3] == 100
            assert r.read_until(lambda: r.reset(ids[-1]) is not None), r.frames[-4:]
            assert r.reset(ids[-1]) == REFUSED_STREAM and r.goaway() is None
            assert all(r.reset(i) is None for i in ids[:-1])
            # the 100 were forwarded (their bodies pending), the refused one never
            held = b"%s/%d " % (path.encode(), ids[-2])
            wait_until(lambda: held in gw.origin.raw, 5, what="the 100th stream at the origin")
    finally:
        r.close()
    sentinel(gw, "after-101-streams-%s" % acked)
    assert b"%s/%d " % (path.encode(), ids[-1]) not in gw.origin.raw


def test_max_concurrent_streams_from_the_proxy_spec(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1,
               proxy_spec={"http2": {"maxConcurrentStreams": 3}})
    r = RawH2(p.port, ack_settings=False)
    try:
        r.send(held_streams(r, [1, 3, 5, 7]))
        assert settings_of(r)[3] == 3
        assert r.read_until(lambda: r.reset(7) is not None)
        assert r.reset(7) == REFUSED_STREAM and r.reset(5) is None
    finally:
        r.close()


def test_max_concurrent_streams_is_validated(tmp_path):
    from petrel import run_petrel
    need_petrel()
    f = tmp_path / "proxy.yaml"
    f.write_text("apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                 "spec:\n  http2:\n    maxConcurrentStreams: 0\n")
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1
    assert "proxy.yaml:6:" in r.stderr and "spec.http2.maxConcurrentStreams" in r.stderr, r.stderr


# Floods sent in bursts, again and again, by a client that reads nothing until the end:
# Petrel must end each with GOAWAY ENHANCE_YOUR_CALM within seconds, its RSS flat, while
# another client on the same listener keeps being served.
# Floods of frames Petrel must acknowledge (docs/operations.md, "Hostile HTTP/2 peers").
ACK_FLOODS = ("ping", "settings")
FLOODS = {
    "ping": lambda i: ping_frame() * 500,
    "settings": lambda i: settings_frame() * 500,
    "empty-data": lambda i: (headers_frame(1, POST("/flood"), EH) if i == 0 else b"") + data_frame(1, b"") * 100,
    "priority": lambda i: priority_frame(2 * i + 3) * 100,
    "window-update": lambda i: window_update_frame(0, 1) * 100,
    "continuation": lambda i: (headers_frame(1, GET("/flood")[:4], ES) if i == 0 else b"") +
    frame(CONTINUATION, 0, 1, b"") * 100,
    "rapid-reset": lambda i: b"".join(headers_frame(s, POST("/flood"), EH) + rst_frame(s)
                                      for s in range(200 * i + 1, 200 * i + 200, 2)),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_flood_ends_in_goaway_while_others_are_served(gw, kind):
    stop = threading.Event()
    served, failed = [], []

    def good_client():
        c = H2Client(gw.port)
        try:
            while not stop.is_set() and len(served) < 500:
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, req_headers("/good/%s" % kind, gw.port), end_stream=True)
                c.flush()
                got = c.response(sid)
                (served if got is not None and got[0] == 200 else failed).append(got)
        finally:
            c.close()

    t = threading.Thread(target=good_client, daemon=True)
    t.start()
    wait_until(lambda: served or failed, 5, what="the good client served")
    rss0 = rss_kb(gw.pid)
    r = RawH2(gw.port, ack_settings=False)
    t0 = time.monotonic()
    try:
        bursts = 0
        while bursts < 2000 and time.monotonic() - t0 < 10 and r.send(FLOODS[kind](bursts)):
            bursts += 1
        r.sock.settimeout(0.2)
        assert r.read_until(lambda: r.goaway() is not None or r.closed, timeout=10)
        took = time.monotonic() - t0
        if kind in ACK_FLOODS and r.goaway() is None:
            # This client reads none of the ACKs it asks for: Petrel's writes back up, the GOAWAY
            # waits behind them, and the close (with the flood unread) resets the connection,
            # which may destroy it before it is read. The connection ending is the defence.
            assert r.closed
        else:
            assert r.goaway() == ENHANCE_YOUR_CALM, r.frames[-3:]
        assert took < 10, "GOAWAY after %.1f s" % took
        rss = rss_kb(gw.pid)
        n = len(served)
        wait_until(lambda: len(served) >= n + 5 or failed, 5, what="the good client served after")
    finally:
        r.close()
        stop.set()
        t.join(10)
    if not sanitized(gw.pid):  # a sanitizer's quarantine keeps freed memory resident on purpose
        assert rss - rss0 < 16 << 10, "RSS grew %d KiB" % (rss - rss0)
    assert served and not failed, (len(served), failed[:3])


def test_ping_flood_from_a_client_that_reads_nothing(gw):
    # PINGs in small writes (no read holds 1000 of them), from a client with a 4 KiB receive
    # buffer that never reads: once Petrel's writes back up, the ACKs wait in nghttp2, whose
    # limit (1000) ends the connection. Without that, the ACKs would pile up in Petrel's write
    # queue for as long as the client sends.
    rss0 = rss_kb(gw.pid)
    r = RawH2(gw.port, ack_settings=False, rcvbuf=4096)
    t0 = time.monotonic()
    try:
        sent = 0
        while time.monotonic() - t0 < 20 and r.send(ping_frame() * 20):
            sent += 20
            time.sleep(0.0002)  # the attack's pace: small reads on Petrel's side
        took = time.monotonic() - t0
        rss = rss_kb(gw.pid)
    finally:
        r.close()
    assert took < 20, "still open after %.1f s and %d PINGs" % (took, sent)
    if not sanitized(gw.pid):  # a sanitizer's quarantine keeps freed memory resident on purpose
        assert rss - rss0 < 16 << 10, "RSS grew %d KiB" % (rss - rss0)
    sentinel(gw, "after-slow-ping-flood")
