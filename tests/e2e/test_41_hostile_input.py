"""tests/e2e/test_41_hostile_input.py -- hostile and malformed downstream input, end to end.

What a client can throw at Petrel's HTTP listener before a request is accepted: the
malformed-request corpus in tests/e2e/malformed/ (one test per file), the head limits at their
exact boundaries (defaults and custom values from the Proxy spec), the header and idle timeouts,
maxConnections, and request-smuggling payloads. The invariant throughout: a refused request gets
exactly its status with `connection: close`, Petrel then closes the connection, the access log
says DPE, and the origin never sees a byte of it.

How "the origin saw nothing" is proved without sleeping: after each hostile request a sentinel
GET goes through the same single-worker Petrel; once its response is back, every byte the
origin received since the snapshot must be the sentinel's own head (Petrel handles one event
loop in order, so anything it forwarded for the hostile request was written before).

Limit conventions (proxy/http1.c, tests/unit/proxy/http1.c): maxRequestLineBytes counts the
request line without its CRLF; maxHeaderBytes counts the whole head, start line and final CRLF
included; maxHeaders counts every field line, Host included.
"""

import os
import re

import pytest

from netutil import (build_request, connect, exchange, free_port, header, http_request,
                     parse_responses, recv_one, timed_read_to_close, wait_until)
from petrel import Petrel, need_petrel, simple_config, stats, wait_log
from upstream import HttpOrigin

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "malformed")


def load_corpus():
    rows = []
    with open(os.path.join(CORPUS, "expected.tsv"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            name, status, rule = line.split("\t", 2)
            rows.append((name, int(status), rule))
    return rows


CORPUS_ROWS = load_corpus()
# The HTTP/2 preface is refused by the HTTP/1 parser (tests/unit/proxy/http1.c), but on an HTTP
# listener it now opens an HTTP/2 connection (test_86_http2_server.py), so it is not sent here.
HTTP1_ROWS = [r for r in CORPUS_ROWS if not r[0].endswith("-h2-preface.req")]


# ---- helpers ----------------------------------------------------------------------------------

def one_response(got):
    """The single response in got, as (status, headers, body); fails on anything else."""
    resps = parse_responses(got, strict=True)
    assert len(resps) == 1, "expected exactly one response, got %d: %r" % (len(resps), got[:400])
    status, _, headers, body, _ = resps[0]
    return status, headers, body


def status_line_code(got):
    line = got.split(b"\r\n", 1)[0]
    m = re.match(rb"^HTTP/1\.1 (\d{3}) [^\r\n]*$", line)
    assert m, "bad status line %r" % line
    return int(m.group(1))


class Env:
    """One origin + one single-worker Petrel, with before/after bookkeeping."""

    def __init__(self, petrel, origin):
        self.petrel = petrel
        self.origin = origin
        self.port = petrel.port
        self.n = 0

    def snapshot(self):
        o = self.origin
        with o.lock:
            return {"conns": o.connections, "raw": [len(r) for r in o.raw_conns],
                    "nreq": len(o.requests), "bytes": o.bytes_received,
                    "log": len(self.petrel.access_log_lines())}

    def sentinel(self):
        """A valid GET through Petrel; returns the origin's Request for it."""
        self.n += 1
        path = "/sentinel/%d" % self.n
        status, _, _ = http_request(self.port, "GET", path)
        assert status == 200, "sentinel %s answered %d" % (path, status)
        reqs = self.origin.wait_requests(1, timeout=5)
        mine = [r for r in reqs if r.path == path]
        assert len(mine) == 1, "sentinel %s reached the origin %d times" % (path, len(mine))
        return mine[0]

    def hostile_bytes(self, snap, sentinel):
        """(bytes the origin received since snap that are not the sentinel's head, new requests
        other than the sentinel, new connections other than the sentinel's)."""
        o = self.origin
        with o.lock:
            extra = o.bytes_received - snap["bytes"] - len(sentinel.raw_head)
            reqs = [r for r in o.requests[snap["nreq"]:] if r is not sentinel]
            conns = o.connections - snap["conns"] - (1 if sentinel.index == 0 else 0)
            per_conn = {}
            for i, r in enumerate(o.raw_conns):
                before = snap["raw"][i] if i < len(snap["raw"]) else 0
                got = len(r) - before - (len(sentinel.raw_head) if i == sentinel.conn_id else 0)
                if got:
                    per_conn[i] = bytes(r[before:])
        return extra, reqs, conns, per_conn


def make_env(tmp_path_factory, **proxy_spec):
    need_petrel()
    origin = HttpOrigin(name="origin41")
    p = Petrel(tmp_path_factory.mktemp("petrel41"),
               simple_config(http_port=free_port(), upstream_port=origin.port),
               concurrency=1, proxy_spec=proxy_spec)
    try:
        p.start()
    except BaseException:
        p.stop()
        origin.stop()
        raise
    return Env(p, origin)


def close_env(env):
    try:
        env.petrel.stop_and_check()
    finally:
        env.origin.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = make_env(tmp_path_factory)
    yield e
    close_env(e)


@pytest.fixture(scope="module")
def small_env(tmp_path_factory):
    e = make_env(tmp_path_factory, maxHeaders=10, maxHeaderBytes=2048, maxRequestLineBytes=256)
    yield e
    close_env(e)


def assert_refused(env, data, expected, timeout=5.0):
    """Sends data; asserts exactly `expected` with connection: close, then a close by Petrel,
    a DPE access-log line, and no byte at the origin. Returns the response body."""
    snap = env.snapshot()
    got, closed, _ = exchange(env.port, data, timeout)
    env.petrel.check_alive()
    assert got, "no response at all (closed=%s)" % closed
    assert status_line_code(got) == expected, got[:300]
    status, headers, body = one_response(got)
    assert status == expected
    assert header(headers, "connection", "").lower() == "close", headers
    assert closed, "Petrel did not close the connection after a %d" % expected
    sent = env.sentinel()
    extra, reqs, conns, per_conn = env.hostile_bytes(snap, sent)
    assert reqs == [], "origin received requests %r" % reqs
    assert extra == 0 and per_conn == {}, "origin received %d bytes: %r" % (extra, per_conn)
    assert conns == 0, "origin accepted %d extra connection(s)" % conns
    lines = wait_log(env.petrel, snap["log"] + 2)[snap["log"]:]
    dpe = [l for l in lines if re.search(r'" %d DPE ' % expected, l)]
    assert len(dpe) == 1, "no single '%d DPE' access log line in %r" % (expected, lines)
    return body


# ---- 1. the malformed-request corpus ------------------------------------------------------------

def test_corpus_is_complete():
    files = sorted(f for f in os.listdir(CORPUS) if f.endswith(".req"))
    assert [r[0] for r in CORPUS_ROWS] == files, "expected.tsv and the .req files differ"
    assert len(CORPUS_ROWS) >= 60, "only %d corpus rows" % len(CORPUS_ROWS)


@pytest.mark.parametrize("name,expected,rule", HTTP1_ROWS, ids=[r[0] for r in HTTP1_ROWS])
def test_malformed_corpus(env, name, expected, rule):
    with open(os.path.join(CORPUS, name), "rb") as f:
        data = f.read()
    snap = env.snapshot()
    got, closed, _ = exchange(env.port, data)
    env.petrel.check_alive()
    assert got, "%s: no response at all (closed=%s)" % (name, closed)
    assert status_line_code(got) == expected, "%s (%s): %r" % (name, rule, got[:300])
    status, headers, _ = one_response(got)
    assert header(headers, "connection", "").lower() == "close", headers
    assert closed, "%s: Petrel did not close the connection" % name
    sent = env.sentinel()
    extra, reqs, conns, per_conn = env.hostile_bytes(snap, sent)
    assert reqs == [], "%s: the origin received a complete request: %r" % (name, reqs)
    if rule.startswith("[body]") and "trailer" in rule:
        # An error in the trailers is found after the head was accepted and forwarded (Petrel
        # streams bodies; chunked framing that came with the head is checked before it goes,
        # see test_broken_chunk_framing_with_the_head_reaches_no_upstream). The upstream must
        # never see a complete request, and the upstream connection that carried the partial
        # one must be discarded, not pooled.
        for conn_id, raw in per_conn.items():
            assert conn_id != sent.conn_id, "%s: the cut upstream connection was reused" % name
            assert raw.startswith(b"POST / HTTP/1.1\r\n"), raw[:200]
            assert b"\r\n0\r\n\r\n" not in raw, "%s: origin got a terminating chunk: %r" % (name, raw)
    else:
        assert extra == 0 and per_conn == {}, "%s: origin received %d bytes: %r" % (name, extra, per_conn)
        assert conns == 0, "%s: origin accepted %d connection(s)" % (name, conns)
    lines = wait_log(env.petrel, snap["log"] + 2)[snap["log"]:]
    dpe = [l for l in lines if re.search(r'" %d DPE ' % expected, l)]
    assert len(dpe) == 1, "%s: no single '%d DPE' line in %r" % (name, expected, lines)


@pytest.mark.parametrize("chunk", [b"0x2\r\nab\r\n0\r\n\r\n",
                                   b"123456789012345678\r\nab\r\n0\r\n\r\n",
                                   b"2\r\nabXY0\r\n\r\n"],
                         ids=["0x-prefix", "18-digit-size", "no-crlf-after-data"])
def test_broken_chunk_framing_with_the_head_reaches_no_upstream(env, chunk):
    # The head and its broken chunked body arrive in one write: the framing already buffered
    # is checked before the head goes upstream, so the origin gets no byte and no connection.
    head = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert_refused(env, head + chunk, 400)


# ---- 2. limits ----------------------------------------------------------------------------------

def line_of(n):
    """A request target making the request line (without CRLF) exactly n bytes."""
    return "/" + "a" * (n - len("GET  HTTP/1.1") - 1)


def head_of(n, extra_headers=()):
    """A GET whose whole head (final CRLF included) is exactly n bytes."""
    base = build_request("/pad", [("Host", "example.com"), ("Connection", "close")] +
                         list(extra_headers) + [("X-Pad", "")])
    pad = n - len(base)
    assert pad > 0
    return build_request("/pad", [("Host", "example.com"), ("Connection", "close")] +
                         list(extra_headers) + [("X-Pad", "p" * pad)])


def n_headers(n):
    """A GET with exactly n field lines, Host included."""
    hs = [("Host", "example.com"), ("Connection", "close")]
    hs += [("X-H%d" % i, "v") for i in range(n - 2)]
    assert len(hs) == n
    return build_request("/many", hs)


def assert_passes(env, data, check):
    got, closed, _ = exchange(env.port, data)
    assert got, "no response"
    status, _, body = one_response(got)
    assert status == 200, got[:300]
    req = [r for r in env.origin.requests if check(r)]
    assert len(req) == 1, "the request did not reach the origin intact"
    return req[0]


def test_request_line_at_default_limit(env):
    target = line_of(8192)
    assert len("GET %s HTTP/1.1" % target) == 8192
    assert_passes(env, build_request(target, [("Host", "example.com"), ("Connection", "close")]),
                  lambda r: r.target == target)


def test_request_line_over_default_limit(env):
    target = line_of(8193)
    assert_refused(env, build_request(target, [("Host", "example.com")]), 414)


def test_header_bytes_at_default_limit(env):
    data = head_of(61440)
    assert len(data) == 61440
    pad = data.split(b"X-Pad: ")[1].split(b"\r\n")[0].decode()
    assert_passes(env, data, lambda r: r.header("x-pad") == pad)


def test_header_bytes_over_default_limit(env):
    data = head_of(61441)
    assert len(data) == 61441
    assert_refused(env, data, 431)


def test_100_headers_pass_101_refused(env):
    data = n_headers(100)
    assert_passes(env, data, lambda r: r.path == "/many" and r.header("x-h97") == "v")
    assert_refused(env, n_headers(101), 431)


def test_custom_limits_request_line(small_env):
    target = line_of(256)
    assert_passes(small_env, build_request(target, [("Host", "example.com"), ("Connection", "close")]),
                  lambda r: r.target == target)
    assert_refused(small_env, build_request(line_of(257), [("Host", "example.com")]), 414)


def test_custom_limits_header_count(small_env):
    assert_passes(small_env, n_headers(10), lambda r: r.path == "/many" and r.header("x-h7") == "v"
                  and len(r.header_all("x-h7")) == 1 and r.header("x-h8") is None)
    assert_refused(small_env, n_headers(11), 431)


def test_custom_limits_header_bytes(small_env):
    data = head_of(2048)
    pad = data.split(b"X-Pad: ")[1].split(b"\r\n")[0].decode()
    assert_passes(small_env, data, lambda r: r.header("x-pad") == pad)
    assert_refused(small_env, head_of(2049), 431)


def test_custom_line_limit_is_below_the_default(small_env):
    # 300-byte line: under the default 8192, over the custom 256
    assert_refused(small_env, build_request(line_of(300), [("Host", "example.com")]), 414)


# ---- 3. header and idle timeouts ---------------------------------------------------------------

@pytest.fixture(scope="module")
def timeout_env(tmp_path_factory):
    e = make_env(tmp_path_factory, headerTimeout="1s", idleTimeout="1s")
    yield e
    close_env(e)


def test_header_timeout_half_head_gets_408(timeout_env):
    env = timeout_env
    before = stats(env.petrel)
    snap = env.snapshot()
    s = connect(env.port)
    try:
        got, closed, elapsed = timed_read_to_close(
            s, 6.0, send=b"GET /slow HTTP/1.1\r\nHost: example.com\r\nX-Half: ")
    finally:
        s.close()
    assert got, "no 408 (closed=%s after %.2f s)" % (closed, elapsed)
    status, headers, body = one_response(got)
    assert status == 408
    assert header(headers, "connection", "").lower() == "close"
    assert closed, "connection not closed after the 408"
    assert 0.9 <= elapsed <= 3.0, "408 after %.2f s" % elapsed
    sent = env.sentinel()
    extra, reqs, conns, per_conn = env.hostile_bytes(snap, sent)
    assert reqs == [] and extra == 0 and conns == 0, (extra, reqs, conns, per_conn)
    lines = wait_log(env.petrel, snap["log"] + 2)[snap["log"]:]
    assert len([l for l in lines if '" 408 DPE ' in l]) == 1, lines
    after = stats(env.petrel)
    assert after["downstream_cx_header_timeout"] == before["downstream_cx_header_timeout"] + 1


def test_header_timeout_silent_client_closed_without_response(timeout_env):
    env = timeout_env
    before = stats(env.petrel)
    snap = env.snapshot()
    s = connect(env.port)
    try:
        got, closed, elapsed = timed_read_to_close(s, 6.0)
    finally:
        s.close()
    assert got == b"", "a silent client got %r" % got[:200]
    assert closed, "a silent client was not closed within 6 s"
    assert 0.9 <= elapsed <= 3.0, "closed after %.2f s" % elapsed
    after = stats(env.petrel)
    assert after["downstream_cx_header_timeout"] == before["downstream_cx_header_timeout"] + 1
    assert len(env.petrel.access_log_lines()) == snap["log"], "a silent connection was logged"
    assert env.origin.connections == snap["conns"]


def test_idle_timeout_closes_keep_alive_connection(timeout_env):
    env = timeout_env
    before = stats(env.petrel)
    s = connect(env.port)
    try:
        s.sendall(build_request("/idle", [("Host", "example.com")]))
        status, headers, _ = recv_one(s, 5.0)  # exactly one response
        assert status == 200
        assert header(headers, "connection", "").lower() != "close"
        got, closed, elapsed = timed_read_to_close(s, 6.0)
    finally:
        s.close()
    assert got == b"", "unexpected bytes on an idle connection: %r" % got[:200]
    assert closed, "idle keep-alive connection not closed within 6 s"
    assert 0.8 <= elapsed <= 3.0, "idle close after %.2f s" % elapsed
    after = stats(env.petrel)
    assert after["downstream_cx_idle_timeout"] == before["downstream_cx_idle_timeout"] + 1


# ---- 4. maxConnections ------------------------------------------------------------------------

def keepalive_get(s, path):
    """The status of one GET path on keep-alive socket s (exactly one response within 5 s)."""
    s.sendall(build_request(path, [("Host", "example.com")]))
    return recv_one(s, 5.0)[0]


def test_max_connections(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
               concurrency=2, proxy_spec={"maxConnections": 3})
    socks = [connect(p.port) for _ in range(3)]
    try:
        for i, s in enumerate(socks):
            assert keepalive_get(s, "/first/%d" % i) == 200
        fourth = connect(p.port)
        try:
            got, closed, elapsed = timed_read_to_close(
                fourth, 5.0, send=build_request("/fourth", [("Host", "example.com")]))
        except OSError:
            got, closed, elapsed = b"", True, 0.0
        finally:
            fourth.close()
        assert got == b"", "the 4th connection got a response: %r" % got[:200]
        assert closed and elapsed < 1.0, "4th connection not closed at once (%.2f s)" % elapsed
        assert not [r for r in origin.requests if r.path == "/fourth"]
        for i, s in enumerate(socks):
            assert keepalive_get(s, "/again/%d" % i) == 200
        st = stats(p)
        assert st["downstream_cx_overflow"] == 1, st
        socks.pop().close()
        wait_until(lambda: stats(p)["downstream_cx_active"] <= 2, 5, what="a connection to go")
        s = connect(p.port)
        socks.append(s)
        assert keepalive_get(s, "/after-close") == 200
        assert stats(p)["downstream_cx_overflow"] == 1
    finally:
        for s in socks:
            s.close()


# ---- 5. smuggling --------------------------------------------------------------------------------

H = [("Host", "example.com")]
HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"

SMUGGLE_REFUSED = [
    ("cl-te", build_request("/", H + [("Content-Length", "6"), ("Transfer-Encoding", "chunked")],
                            "POST", b"0\r\n\r\n" + HIDDEN), 400),
    ("te-cl", build_request("/", H + [("Transfer-Encoding", "chunked"), ("Content-Length", "4")],
                            "POST", b"%x\r\n" % len(HIDDEN) + HIDDEN + b"\r\n0\r\n\r\n"), 400),
    ("te-cl-hidden-after-zero", build_request(
        "/", H + [("Transfer-Encoding", "chunked"), ("Content-Length", str(5 + len(HIDDEN)))],
        "POST", b"0\r\n\r\n" + HIDDEN), 400),
    ("te-te-obfuscated", build_request(
        "/", H + [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "x"), ("Content-Length", "4")],
        "POST", b"5c\r\n" + HIDDEN + b"\r\n0\r\n\r\n"), 400),
    ("te-space-before-colon", b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding : chunked\r\n"
     b"Content-Length: 4\r\n\r\n0\r\n\r\n" + HIDDEN, 400),
    ("cl-cl", build_request("/", H + [("Content-Length", "0"), ("Content-Length", str(len(HIDDEN)))],
                            "POST", HIDDEN), 400),
    ("te-xchunked-cl", build_request("/", H + [("Transfer-Encoding", "xchunked"), ("Content-Length", "4")],
                                     "POST", b"0\r\n\r\n" + HIDDEN), 400),
]


@pytest.mark.parametrize("name,data,expected", SMUGGLE_REFUSED, ids=[s[0] for s in SMUGGLE_REFUSED])
def test_smuggling_refused(env, name, data, expected):
    assert_refused(env, data, expected)


def test_smuggling_hidden_request_in_content_length_body(env):
    """Accepted: the hidden request is body, forwarded with its length, never a second request."""
    snap = env.snapshot()
    data = build_request("/carrier-cl", H + [("Content-Length", str(len(HIDDEN))), ("Connection", "close")],
                         "POST", HIDDEN)
    got, closed, _ = exchange(env.port, data)
    status, _, _ = one_response(got)
    assert status == 200 and closed
    sent = env.sentinel()
    new = [r for r in env.origin.requests[snap["nreq"]:] if r is not sent]
    assert [r.path for r in new] == ["/carrier-cl"], new
    assert new[0].body == HIDDEN and new[0].header("content-length") == str(len(HIDDEN))
    assert not [r for r in env.origin.requests if r.path == "/smuggled"]
    # every byte the origin got is that one request: forwarded head + the body
    extra, _, _, _ = env.hostile_bytes(snap, sent)
    assert extra == len(new[0].raw_head) + len(HIDDEN)


def test_smuggling_hidden_request_in_chunked_body(env):
    snap = env.snapshot()
    body = b"%x\r\n" % len(HIDDEN) + HIDDEN + b"\r\n0\r\n\r\n"
    data = build_request("/carrier-te", H + [("Transfer-Encoding", "chunked"), ("Connection", "close")],
                         "POST", body)
    got, closed, _ = exchange(env.port, data)
    status, _, _ = one_response(got)
    assert status == 200 and closed
    sent = env.sentinel()
    new = [r for r in env.origin.requests[snap["nreq"]:] if r is not sent]
    assert [r.path for r in new] == ["/carrier-te"], new
    assert new[0].body == HIDDEN
    assert not [r for r in env.origin.requests if r.path == "/smuggled"]


def test_smuggling_bytes_after_declared_length_are_next_request_only_after_answer(env):
    """A request with Content-Length 0 followed by more bytes on a keep-alive connection: the
    follow-up is parsed by Petrel as its own request (validated, routed, logged), never glued
    onto the first request's upstream body."""
    snap = env.snapshot()
    data = (build_request("/first", H + [("Content-Length", "0")], "POST") +
            b"GET /second HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    got, closed, _ = exchange(env.port, data)
    resps = parse_responses(got, strict=True)
    assert [r[0] for r in resps] == [200, 200] and closed
    sent = env.sentinel()
    new = [r for r in env.origin.requests[snap["nreq"]:] if r is not sent]
    assert [r.path for r in new] == ["/first", "/second"]
    assert new[0].body == b"" and new[0].header("content-length") in ("0", None)
