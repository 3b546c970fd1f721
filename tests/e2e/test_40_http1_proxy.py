"""tests/e2e/test_40_http1_proxy.py -- end-to-end tests of Petrel's HTTP/1.1 proxying.

Each test drives the real petrel binary over real sockets against the programmable origin of
tests/lib/upstream.py (or a route added to it), and checks exact statuses, bytes on the wire
both ways, header presence/absence as the origin recorded it, and connection counts:
keep-alive and pooling, pipelining, body framing (Content-Length, chunked with trailers,
close-delimited), 1 GiB transfers with bounded memory, Expect: 100-continue, bodyless
responses, hop-by-hop headers, forwarding headers and request ids, HTTP/1.0 clients,
Upgrade tunnels, and routing from the configuration.

Every wait is a poll or a socket read with a deadline; all ports are ephemeral.
"""

import hashlib
import json
import os
import re
import socket
import threading
import time
import zlib

from netutil import (PATTERN_BLOCK, connect, free_port, header, http_request, parse_head,
                     parse_responses, pattern_bytes, pattern_ok, rss_kb, wait_until)
from petrel import ISTIO, gateway_doc, service_entry_doc, simple_config, stats

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GIB = 1 << 30


# -- helpers ---------------------------------------------------------------------------------

class Resp:
    """One parsed response: status, headers [(name, value)], body bytes, trailers."""

    def __init__(self, status, reason, headers, body, trailers, head):
        self.status, self.reason, self.headers = status, reason, headers
        self.body, self.trailers, self.head = body, trailers, head

    def h(self, name, default=None):
        return header(self.headers, name, default)

    def has(self, name):
        return header(self.headers, name) is not None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Resp %d %r body=%d>" % (self.status, self.headers, len(self.body))


def parse_one(buf, no_body=False, eof=False):
    """Parses one response at the start of buf. Returns (Resp, consumed) or None when more
    bytes are needed. A body delimited by the connection's end is complete only at eof."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end + 4])
    status, reason, headers = parse_head(head[:-4])
    pos = end + 4
    te = (header(headers, "transfer-encoding") or "").lower()
    cl = header(headers, "content-length")
    trailers = []
    if no_body or status < 200 or status in (204, 304):
        body = b""
    elif "chunked" in te:
        chunks = []
        while True:
            le = buf.find(b"\r\n", pos)
            if le < 0:
                return None
            size = int(bytes(buf[pos:le]).split(b";")[0].strip(), 16)
            pos = le + 2
            if size == 0:
                while True:
                    le = buf.find(b"\r\n", pos)
                    if le < 0:
                        return None
                    line = bytes(buf[pos:le]).decode("latin-1")
                    pos = le + 2
                    if not line:
                        break
                    name, _, value = line.partition(":")
                    trailers.append((name, value.strip(" \t")))
                break
            if len(buf) < pos + size + 2:
                return None
            chunks.append(bytes(buf[pos:pos + size]))
            if buf[pos + size:pos + size + 2] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            pos += size + 2
        body = b"".join(chunks)
    elif cl is not None:
        n = int(cl)
        if len(buf) < pos + n:
            return None
        body = bytes(buf[pos:pos + n])
        pos += n
    else:
        if not eof:
            return None
        body = bytes(buf[pos:])
        pos = len(buf)
    return Resp(status, reason, headers, body, trailers, head), pos


class Client:
    """A client connection with a receive buffer, so responses can be read one at a time."""

    def __init__(self, port, timeout=10.0):
        self.sock = connect(port, timeout)
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("nothing more within the deadline; have %r" % bytes(self.buf[:300]))
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            self.eof = True
        self.buf += chunk

    def response(self, no_body=False, timeout=None):
        """Reads and removes one complete response (1xx included) from the stream."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = parse_one(self.buf, no_body=no_body, eof=self.eof)
            if r is not None:
                resp, used = r
                del self.buf[:used]
                return resp
            if self.eof:
                raise EOFError("connection closed inside a response: %r" % bytes(self.buf[:300]))
            self._fill(deadline)

    def until(self, marker, timeout=None):
        """Reads until marker is in the buffer; removes and returns everything up to it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buf:
            if self.eof:
                raise EOFError("EOF before %r: %r" % (marker, bytes(self.buf[:300])))
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out = bytes(self.buf[:i])
        del self.buf[:i]
        return out

    def exactly(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if self.eof:
                raise EOFError("EOF after %d of %d bytes" % (len(self.buf), n))
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, timeout=None):
        """Everything until the peer closes (reset counts as close); raises on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            try:
                self._fill(deadline)
            except ConnectionResetError:
                self.eof = True
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get(path, host="example.com", extra=b"", version="HTTP/1.1"):
    return b"GET %s %s\r\nHost: %s\r\n%s\r\n" % (path.encode(), version.encode(), host.encode(), extra)


def access_line(p, needle, timeout=5.0):
    """The first access log line containing needle (the log is flushed within ~100 ms)."""
    def find():
        for line in p.access_log_lines():
            if needle in line:
                return line
        return None
    return wait_until(find, timeout, what="access log line with %r" % needle)


def vs_doc(name, hosts, http):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": hosts, "gateways": ["edge"], "http": http}}


def dest(host, weight=None):
    d = {"destination": {"host": host, "port": {"number": 80}}}
    if weight is not None:
        d["weight"] = weight
    return d


class RssSampler:
    """Samples a process's RSS every few ms in a thread; .peak is the highest seen (KiB)."""

    def __init__(self, pid, interval=0.01):
        self.pid = pid
        self.interval = interval
        self.peak = rss_kb(pid)
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
                self.samples += 1
            except (OSError, ValueError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(2)


# -- 1. keep-alive downstream, pooled upstream -----------------------------------------------

def test_keep_alive_downstream_and_pooled_upstream(proxied):
    o, p = proxied.origin, proxied.petrel
    before = stats(p)
    with Client(proxied.port) as c:
        for i in range(5):
            c.send(get("/echo/ka%d" % i))
            r = c.response()
            assert r.status == 200, r
            assert r.json()["path"] == "/echo/ka%d" % i
            assert r.h("connection", "").lower() != "close"
        # an HTTP/1.1 client's Connection: close ends it after the response
        c.send(get("/echo/ka-last", extra=b"Connection: close\r\n"))
        r = c.response()
        assert r.status == 200 and r.json()["path"] == "/echo/ka-last"
        assert r.h("connection", "").lower() == "close", r.headers
        assert c.read_to_eof(timeout=5) == b""
    after = stats(p)
    assert after["downstream_cx_total"] - before["downstream_cx_total"] == 1
    assert after["downstream_rq_total"] - before["downstream_rq_total"] == 6
    # Six requests on one client connection went over one upstream connection.
    assert o.connections == 1, o.requests
    assert [(q.conn_id, q.index) for q in o.requests] == [(0, i) for i in range(6)]

    # Sequential client connections (each `Connection: close`) reuse pooled upstream
    # connections: at most one per worker (concurrency 2), never one per request.
    o.reset()
    n = 20
    for i in range(n):
        st, _, body = http_request(proxied.port, "GET", "/echo/pool%d" % i)
        assert st == 200 and json.loads(body)["path"] == "/echo/pool%d" % i
    assert len(o.requests) == n
    assert o.connections <= 2, "origin saw %d connections for %d requests" % (o.connections, n)
    # The client's Connection: close is hop-by-hop: never forwarded.
    assert all(q.header("connection") is None or "close" not in q.header("connection").lower()
               for q in o.requests)
    final = stats(p)
    assert final["upstream_rq_reused_connection"] - after["upstream_rq_reused_connection"] >= n - 2


# -- 2. pipelining ---------------------------------------------------------------------------

def pipeline(tag):
    """Five requests in one buffer, bodies included (Content-Length and chunked), so request
    boundaries inside the pipeline depend on body framing too."""
    return (get("/echo/%s0" % tag)
            + b"POST /echo/%s1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\n"
              b"GET /x HTTP" % tag.encode()
            + get("/echo/%s2" % tag)
            + b"PUT /echo/%s3 HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n" % tag.encode()
            + get("/echo/%s4" % tag))


PIPE_BODIES = [None, "GET /x HTTP", None, "hello", None]


def test_pipelined_requests_answered_in_order(proxied):
    reqs = pipeline("pipe")
    with Client(proxied.port) as c:
        c.send(reqs)  # one write
        got = [c.response() for _ in range(5)]
        assert [r.status for r in got] == [200] * 5
        assert [r.json()["path"] for r in got] == ["/echo/pipe%d" % i for i in range(5)]
        assert [r.json()["body"] or None for r in got] == PIPE_BODIES
        # still usable after the pipeline
        c.send(get("/echo/after"))
        assert c.response().json()["path"] == "/echo/after"
    assert [q.path for q in proxied.origin.requests] == \
        ["/echo/pipe%d" % i for i in range(5)] + ["/echo/after"]


def test_pipelined_requests_then_half_close_all_answered(proxied):
    reqs = pipeline("half")
    with Client(proxied.port) as c:
        c.send(reqs)
        c.sock.shutdown(socket.SHUT_WR)
        raw = c.read_to_eof(timeout=10)
    got = parse_responses(raw, strict=True)
    assert [r[0] for r in got] == [200] * 5, raw[:500]
    assert [json.loads(r[3])["path"] for r in got] == ["/echo/half%d" % i for i in range(5)]
    assert [json.loads(r[3])["body"] or None for r in got] == PIPE_BODIES
    assert len(proxied.origin.requests) == 5


def test_many_pipelined_requests_beyond_one_read_buffer(proxied):
    """1000 pipelined requests (~150 KB, more than one 64 KiB read slab), written by a
    thread while the responses are read, then a half-close: every one answered, in order."""
    n = 1000
    reqs = b"".join(get("/echo/m%04d" % i, extra=b"X-Pad: %s\r\n" % (b"p" * 80)) for i in range(n))
    assert len(reqs) > 2 * 65536
    with Client(proxied.port, timeout=30) as c:
        def writer():
            try:
                c.sock.sendall(reqs)
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        paths = []
        for _ in range(n):
            r = c.response()
            assert r.status == 200
            paths.append(r.json()["path"])
        assert c.read_to_eof() == b""
        t.join(5)
    assert paths == ["/echo/m%04d" % i for i in range(n)]
    assert len(proxied.origin.requests) == n


# -- 3. Content-Length bodies ----------------------------------------------------------------

def test_content_length_upload_and_download(proxied):
    o = proxied.origin
    body = os.urandom(300_000)
    with Client(proxied.port) as c:
        c.send(b"POST /echo/up HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/x\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        r = c.response()
        assert r.status == 200
        j = r.json()
        assert j["body_len"] == len(body)
        assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
        q = o.requests[-1]
        assert q.body == body
        assert q.header("content-length") == str(len(body))
        assert q.header("transfer-encoding") is None
        assert q.header("content-type") == "application/x"

        n = 3_000_001
        c.send(get("/bytes/%d" % n))
        r = c.response()
        assert r.status == 200
        assert r.h("content-length") == str(n)
        assert not r.has("transfer-encoding")
        assert len(r.body) == n and pattern_ok(r.body)
        assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(pattern_bytes(0, n)).hexdigest()


# -- 4. chunked bodies with trailers ---------------------------------------------------------

def test_chunked_request_body_with_trailer(proxied):
    o = proxied.origin
    pieces = [b"hello ", os.urandom(70_000), b"", b"x" * 3, os.urandom(5000)]
    body = b"".join(pieces)
    wire = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in pieces if x)
    # a chunk extension too, which must not end up in the body
    wire = b"4;ext=1\r\nabcd\r\n" + wire
    body = b"abcd" + body
    with Client(proxied.port) as c:
        c.send(b"POST /echo/chunked HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
               b"Trailer: X-Checksum\r\n\r\n" + wire + b"0\r\nX-Checksum: abc123\r\n\r\n")
        r = c.response()
        assert r.status == 200
        q = o.requests[-1]
        assert q.header("transfer-encoding", "").lower() == "chunked"
        assert q.header("content-length") is None
        assert q.body == body and q.body_len == len(body)
        assert [(k.lower(), v) for k, v in q.trailers] == [("x-checksum", "abc123")]
        # the origin got a real chunked stream, terminated by a last chunk and the trailer
        raw = o.raw_conns[q.conn_id]
        assert re.search(rb"\r\n0\r\n(?i:x-checksum): abc123\r\n\r\n$", bytes(raw)), bytes(raw[-200:])
        # and the connection is still good
        c.send(get("/echo/next"))
        assert c.response().json()["path"] == "/echo/next"


def test_chunked_response_with_trailers(proxied):
    n = 200_000
    with Client(proxied.port) as c:
        c.send(get("/chunked/%d?trailers=1&chunk=7777" % n))
        r = c.response()
        assert r.status == 200
        assert r.h("transfer-encoding", "").lower() == "chunked"
        assert not r.has("content-length")
        assert len(r.body) == n and pattern_ok(r.body)
        tr = {k.lower(): v for k, v in r.trailers}
        assert tr.get("x-trailer") == "done", r.trailers
        assert tr.get("x-body-sha256") == hashlib.sha256(r.body).hexdigest()
        c.send(get("/echo/next"))
        assert c.response().json()["path"] == "/echo/next"


# -- 5. close-delimited responses ------------------------------------------------------------

CLOSE_BODY = pattern_bytes(0, 100_000)


def _eof_route(conn, req):
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Eof: 1\r\n\r\n" + CLOSE_BODY)
    return False  # closing the connection ends the body


def test_close_delimited_response_rechunked_or_close_delimited(proxied):
    proxied.origin.routes["/eof"] = _eof_route
    # HTTP/1.1 client: chunked, and the client connection stays usable
    with Client(proxied.port) as c:
        c.send(get("/eof"))
        r = c.response()
        assert r.status == 200 and r.h("x-eof") == "1"
        assert r.h("transfer-encoding", "").lower() == "chunked", r.headers
        assert not r.has("content-length")
        assert r.body == CLOSE_BODY
        c.send(get("/echo/next"))
        assert c.response().json()["path"] == "/echo/next"
    # HTTP/1.0 client: no length, no chunking, the body ends with the connection
    with Client(proxied.port) as c:
        c.send(get("/eof", version="HTTP/1.0"))
        raw = c.read_to_eof()
    resp, used = parse_one(raw, eof=True)
    assert resp.status == 200 and resp.h("x-eof") == "1"
    assert not resp.has("transfer-encoding") and not resp.has("content-length"), resp.headers
    assert resp.body == CLOSE_BODY
    # a chunked origin response also reaches an HTTP/1.0 client close-delimited
    with Client(proxied.port) as c:
        c.send(get("/chunked/50000?trailers=1", version="HTTP/1.0"))
        raw = c.read_to_eof()
    resp, used = parse_one(raw, eof=True)
    assert resp.status == 200
    assert not resp.has("transfer-encoding") and not resp.has("content-length"), resp.headers
    assert len(resp.body) == 50000 and pattern_ok(resp.body)


# -- 6. 1 GiB each way, bounded memory -------------------------------------------------------

def _idle_rss(p, port):
    """RSS after a small warm-up exchange, so first-use allocations count as idle."""
    st, _, b = http_request(port, "POST", "/echo/warm", body=os.urandom(1 << 20))
    assert st == 200
    st, _, b = http_request(port, "GET", "/bytes/%d" % (4 << 20))
    assert st == 200 and len(b) == 4 << 20
    return rss_kb(p.pid)


def test_upload_1gib_bounded_memory(proxied):
    p = proxied.petrel
    idle = _idle_rss(p, proxied.port)
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    deadline = time.monotonic() + 120
    t0 = time.monotonic()
    with RssSampler(p.pid) as rs, Client(proxied.port, timeout=120) as c:
        c.send(b"POST /echo/big HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n" % GIB)
        for _ in range(GIB // len(block)):
            assert time.monotonic() < deadline, "upload slower than 120 s"
            c.send(block)
            h.update(block)
        r = c.response(timeout=max(1.0, deadline - time.monotonic()))
    took = time.monotonic() - t0
    print("1 GiB upload: %.1f s, petrel RSS idle %d KiB peak %d KiB (%d samples)"
          % (took, idle, rs.peak, rs.samples))
    assert r.status == 200
    j = r.json()
    assert j["body_len"] == GIB
    assert j["body_sha256"] == h.hexdigest()
    assert rs.peak < idle + 16 * 1024, "RSS grew from %d to %d KiB" % (idle, rs.peak)


def test_download_1gib_bounded_memory(proxied):
    p = proxied.petrel
    idle = _idle_rss(p, proxied.port)
    # the expected running checksum of GIB pattern bytes (the pattern repeats per block)
    whole, rest = divmod(GIB, len(PATTERN_BLOCK))
    expect = 0
    for _ in range(whole):
        expect = zlib.crc32(PATTERN_BLOCK, expect)
    expect = zlib.crc32(PATTERN_BLOCK[:rest], expect)
    deadline = time.monotonic() + 120
    t0 = time.monotonic()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with RssSampler(p.pid) as rs, Client(proxied.port, timeout=120) as c:
        c.send(get("/bytes/%d" % GIB, extra=b"Connection: close\r\n"))
        head = c.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert re.search(rb"(?i)\r\ncontent-length: %d\r\n" % GIB, head), head
        got = len(c.buf)
        crc = zlib.crc32(bytes(c.buf))
        c.buf.clear()
        while got < GIB:
            left = deadline - time.monotonic()
            assert left > 0, "download slower than 120 s (%d bytes)" % got
            c.sock.settimeout(left)
            k = c.sock.recv_into(buf)
            if not k:
                break
            crc = zlib.crc32(view[:k], crc)
            got += k
        c.sock.settimeout(5)
        extra = c.sock.recv(100)  # Connection: close: EOF, nothing beyond the body
    took = time.monotonic() - t0
    print("1 GiB download: %.1f s, petrel RSS idle %d KiB peak %d KiB (%d samples)"
          % (took, idle, rs.peak, rs.samples))
    assert got == GIB
    assert crc == expect
    assert extra == b""
    assert rs.peak < idle + 16 * 1024, "RSS grew from %d to %d KiB" % (idle, rs.peak)


# -- 7. Expect: 100-continue -----------------------------------------------------------------

def test_expect_100_continue(petrel, origin):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    # a route to a cluster without endpoints (no ServiceEntry for its host)
    docs[1]["spec"]["http"].insert(0, {"match": [{"uri": {"prefix": "/noep"}}],
                                       "route": [dest("noep.local")]})
    p = petrel(docs)
    body = os.urandom(10_000)
    with Client(p.port) as c:
        c.send(b"POST /echo/exp HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        interim = c.until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        assert not c.buf  # nothing but the interim response before the body
        c.send(body)
        r = c.response()
        assert r.status == 200
        q = origin.requests[-1]
        assert q.header("expect") is None, q.headers
        assert q.body == body
        assert b"expect" not in origin.raw.lower()
        # the connection is still usable
        c.send(get("/echo/next"))
        assert c.response().json()["path"] == "/echo/next"

    # chunked body after the 100
    with Client(p.port) as c:
        c.send(b"PUT /echo/exp-chunked HTTP/1.1\r\nHost: example.com\r\nExpect: 100-Continue\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        interim = c.until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        c.send(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        r = c.response()
        assert r.status == 200 and r.json()["body"] == "abcdefg"
        assert origin.requests[-1].header("expect") is None

    # a client that does not wait sends the body with the head: it still gets its answer
    # (a 100 before it is allowed, nothing else)
    with Client(p.port) as c:
        c.send(b"POST /echo/exp-eager HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\nhello" + get("/echo/exp-after"))
        r = c.response()
        if r.status == 100:
            r = c.response()
        assert r.status == 200 and r.json()["body"] == "hello"
        r = c.response()
        assert r.status == 200 and r.json()["path"] == "/echo/exp-after"

    # HTTP/1.0 clients never get a 100 (RFC 9110 section 10.1.1)
    with Client(p.port) as c:
        c.send(b"POST /echo/exp-10 HTTP/1.0\r\nHost: example.com\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\nhello")
        raw = c.read_to_eof()
    assert raw.startswith(b"HTTP/1.1 200 ") or raw.startswith(b"HTTP/1.0 200 "), raw[:200]
    assert json.loads(parse_one(raw, eof=True)[0].body)["body"] == "hello"

    with Client(p.port) as c:
        c.send(b"POST /noep HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\n")
        r = c.response()
        assert r.status == 503, r  # the final answer, with no 100 before it
    line = access_line(p, "/noep")
    assert " 503 UH " in line, line


# -- 8. HEAD, 204, 304 -----------------------------------------------------------------------

def test_head_204_304_have_no_body_and_connection_reusable(proxied):
    with Client(proxied.port) as c:
        c.send(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        head = c.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert re.search(rb"(?i)\r\ncontent-length: 1000\r\n", head), head
        # HEAD of a response the origin frames as chunked: no body, no last chunk either
        c.send(b"HEAD /chunked/5000 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        head = c.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        for path, status in (("/status/204", 204), ("/status/304?h=Content-Length:1000", 304),
                             ("/echo/last", 200)):
            # Whatever followed the previous head must be the start of this response: a body
            # byte left over would make it unparseable.
            c.send(get(path))
            r = c.response()
            assert r.status == status, (path, r)
            if status != 200:
                assert r.body == b""
                assert not r.has("transfer-encoding"), r.headers
                if status == 304:  # a 304's Content-Length describes the resource: kept
                    assert r.h("content-length") == "1000", r.headers
                else:
                    assert not r.has("content-length"), r.headers
            else:
                assert r.json()["path"] == "/echo/last"
        assert not c.buf
    assert proxied.origin.connections == 1
    assert [q.method for q in proxied.origin.requests] == ["HEAD", "HEAD", "GET", "GET", "GET"]


# -- 9. hop-by-hop headers -------------------------------------------------------------------

HOP_REQUEST_NAMES = ("keep-alive", "te", "proxy-connection", "upgrade", "x-foo")


def test_request_hop_by_hop_headers_removed(proxied):
    o = proxied.origin
    with Client(proxied.port) as c:
        c.send(b"GET /echo/hop HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, x-foo\r\n"
               b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n"
               b"Upgrade: h2c\r\nX-Foo: 1\r\nX-Keep: yes\r\nAccept: */*\r\n"
               b"User-Agent: hop-test\r\n\r\n")
        r = c.response()
        assert r.status == 200, r
        q = o.requests[-1]
        names = [k.lower() for k, _ in q.headers]
        for n in HOP_REQUEST_NAMES:
            assert n not in names, (n, q.headers)
        conn_hdr = (q.header("connection") or "").lower()
        assert "x-foo" not in conn_hdr and "upgrade" not in conn_hdr, q.headers
        assert q.header("x-keep") == "yes"
        assert q.header("accept") == "*/*"
        assert q.header("user-agent") == "hop-test"
        assert q.header("host") == "example.com"

        # Several Connection fields, tokens in any case with odd spacing: all nominate.
        c.send(b"GET /echo/hop1 HTTP/1.1\r\nHost: example.com\r\nConnection: X-FOO ,x-baz\r\n"
               b"X-Foo: 1\r\nX-Baz: 2\r\nConnection: x-qux\r\nX-Qux: 3\r\nX-Keep: yes\r\n\r\n")
        r = c.response()
        assert r.status == 200, r
        q = o.requests[-1]
        assert q.path == "/echo/hop1"
        names = [k.lower() for k, _ in q.headers]
        for n in ("x-foo", "x-baz", "x-qux"):
            assert n not in names, (n, q.headers)
        assert q.header("x-keep") == "yes"

        # Connection naming framing headers or Host must not strip them.
        body = b"0123456789abcdef"
        c.send(b"POST /echo/hop2 HTTP/1.1\r\nHost: example.com\r\nConnection: content-length, host\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        r = c.response()
        assert r.status == 200, r
        q = o.requests[-1]
        assert q.path == "/echo/hop2"
        assert q.header("host") == "example.com", q.headers
        assert q.header("content-length") == str(len(body)), q.headers
        assert q.body == body
        # and the stream is still in sync
        c.send(get("/echo/next"))
        assert c.response().json()["path"] == "/echo/next"


def _hop_response(conn, req):
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: x-bar\r\nX-Bar: 1\r\nKeep-Alive: timeout=5\r\n"
                 b"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\n"
                 b"X-Other: 2\r\nContent-Length: 2\r\n\r\nok")
    return True


def test_response_hop_by_hop_headers_removed(proxied):
    proxied.origin.routes["/hop-resp"] = _hop_response
    with Client(proxied.port) as c:
        c.send(get("/hop-resp"))
        r = c.response()
        assert r.status == 200 and r.body == b"ok"
        assert r.h("x-other") == "2"
        assert not r.has("x-bar"), r.headers
        assert not r.has("keep-alive"), r.headers
        assert not r.has("proxy-connection"), r.headers
        assert not r.has("upgrade"), r.headers
        assert "x-bar" not in (r.h("connection") or "").lower(), r.headers
        c.send(get("/echo/next"))
        assert c.response().json()["path"] == "/echo/next"


# -- 10. forwarding headers and x-request-id -------------------------------------------------

def test_forwarded_headers_and_request_id(proxied):
    o, p = proxied.origin, proxied.petrel
    long_id = "a" * 200
    cases = [
        ("keep", [("X-Forwarded-For", "1.2.3.4"), ("X-Request-Id", "req-abc.123_X")]),
        ("absent", []),
        ("two", [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "5.6.7.8")]),
        ("space", [("X-Request-Id", "bad id")]),
        ("long", [("X-Request-Id", long_id)]),
    ]
    seen = {}
    with Client(proxied.port) as c:
        for name, hdrs in cases:
            extra = "".join("%s: %s\r\n" % kv for kv in hdrs).encode()
            c.send(get("/echo/xff-%s" % name, extra=extra))
            assert c.response().status == 200
            q = o.requests[-1]
            assert q.path == "/echo/xff-%s" % name
            assert q.header_all("x-forwarded-proto") == ["http"], q.headers
            assert len(q.header_all("x-request-id")) == 1, q.headers
            assert len(q.header_all("x-forwarded-for")) == 1, q.headers
            seen[name] = (q.header("x-forwarded-for"), q.header("x-request-id"))
    assert seen["keep"] == ("1.2.3.4, 127.0.0.1", "req-abc.123_X")
    assert seen["absent"][0] == "127.0.0.1"
    # two field lines are one list (RFC 9110 section 5.3): neither may be lost
    assert seen["two"][0] == "1.2.3.4, 5.6.7.8, 127.0.0.1"
    for name in ("absent", "two", "space", "long"):
        assert UUID4.match(seen[name][1]), (name, seen[name])
    assert len({seen[n][1] for n in ("absent", "two", "space", "long")}) == 4
    # the access log shows the id as sent upstream
    for name in ("keep", "absent", "two", "space", "long"):
        line = access_line(p, "/echo/xff-%s " % name)
        assert '"%s"' % seen[name][1] in line, line
    assert long_id not in "\n".join(p.access_log_lines())


# -- 11. HTTP/1.0 clients --------------------------------------------------------------------

def test_http10_keep_alive_only_when_asked(proxied):
    with Client(proxied.port) as c:
        for i in range(2):
            c.send(get("/echo/ten%d" % i, extra=b"Connection: keep-alive\r\n", version="HTTP/1.0"))
            r = c.response()
            assert r.status == 200
            assert r.json()["path"] == "/echo/ten%d" % i
            assert "keep-alive" in (r.h("connection") or "").lower(), r.headers
            assert r.h("content-length") == str(len(r.body))
    # keep-alive asked for, but the origin's answer is chunked: to a 1.0 client it can only
    # be delimited by the close, so the connection must not be announced as kept alive
    with Client(proxied.port) as c:
        c.send(get("/chunked/1000", extra=b"Connection: keep-alive\r\n", version="HTTP/1.0"))
        raw = c.read_to_eof(timeout=5)
    resp, _ = parse_one(raw, eof=True)
    assert resp.status == 200 and resp.body == pattern_bytes(0, 1000)
    assert not resp.has("transfer-encoding")
    assert "keep-alive" not in (resp.h("connection") or "").lower(), resp.headers
    with Client(proxied.port) as c:
        c.send(get("/echo/ten-close", version="HTTP/1.0"))
        raw = c.read_to_eof(timeout=5)  # closed after the response
    got = parse_responses(raw, strict=True)
    assert len(got) == 1 and got[0][0] == 200, raw[:300]
    assert "keep-alive" not in (header(got[0][2], "connection") or "").lower()
    assert json.loads(got[0][3])["path"] == "/echo/ten-close"


# -- 12. Upgrade -----------------------------------------------------------------------------

def test_upgrade_tunnel_echoes_both_ways(proxied):
    o = proxied.origin
    with Client(proxied.port) as c:
        c.send(b"GET /upgrade HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\nearly-bytes")
        head = c.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert re.search(rb"(?i)\r\nupgrade: websocket\r\n", head), head
        assert re.search(rb"(?i)\r\nconnection: upgrade\r\n", head), head
        assert c.exactly(len(b"early-bytes")) == b"early-bytes"
        for payload in (b"ping", os.urandom(300_000), b"\x00\r\n\r\nGET / HTTP/1.1\r\n\r\n", b"z"):
            c.send(payload)
            assert c.exactly(len(payload)) == payload
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_to_eof() == b""  # the origin's half-close comes back through
    q = o.requests[-1]
    assert q.header("upgrade") == "websocket"
    assert "upgrade" in q.header("connection", "").lower()
    assert q.header("sec-websocket-version") == "13"
    # the bytes that followed the request head in the client's first packet reached the
    # origin right after the head, before anything else
    assert (q.raw_head + b"early-bytes" + b"ping") in bytes(o.raw_conns[q.conn_id])


def _no_upgrade(conn, req):
    return conn.send_response(req, 200, [("Content-Type", "text/plain")], b"no upgrade here")


def test_upgrade_refused_with_200_then_closed(proxied):
    proxied.origin.routes["/noupgrade"] = _no_upgrade
    with Client(proxied.port) as c:
        c.send(b"GET /noupgrade HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\n\r\n")
        r = c.response()
        assert r.status == 200 and r.body == b"no upgrade here"
        rest = c.read_to_eof(timeout=5)  # and then the connection closes
        assert rest == b""


# -- 13. routing -----------------------------------------------------------------------------

def test_routing_from_config(petrel, origin_factory):
    a, b, v = origin_factory(name="A"), origin_factory(name="B"), origin_factory(name="V")
    port = free_port()
    docs = [
        gateway_doc([(port, "HTTP")]),
        vs_doc("star", ["*"], [
            {"match": [{"uri": {"exact": "/exact"}}], "route": [dest("b.local")]},
            {"match": [{"uri": {"prefix": "/api/"}}], "route": [dest("a.local")]},
            {"match": [{"headers": {"x-route": {"exact": "to-b"}}}], "route": [dest("b.local")]},
            {"match": [{"method": {"exact": "DELETE"}}], "route": [dest("b.local")]},
            {"match": [{"uri": {"prefix": "/direct"}}],
             "directResponse": {"status": 418, "body": {"string": "short and stout\n"}}},
            {"match": [{"uri": {"prefix": "/split"}}],
             "route": [dest("a.local", 80), dest("b.local", 20)]},
            {"match": [{"uri": {"prefix": "/any"}}], "route": [dest("a.local")]},
            {"match": [{"uri": {"prefix": "/delay/"}}], "route": [dest("a.local")]},
        ]),
        vs_doc("vhost-a", ["a.example.com"], [{"route": [dest("v.local")]}]),
        service_entry_doc("a.local", a.port, name="a"),
        service_entry_doc("b.local", b.port, name="b"),
        service_entry_doc("v.local", v.port, name="v"),
    ]
    p = petrel(docs)

    def who(method, path, host="example.com", headers=()):
        st, h, body = http_request(p.port, method, path, headers=list(headers), host_header=host)
        return st, header(h, "x-origin"), body

    assert who("GET", "/exact")[:2] == (200, "B")
    assert who("GET", "/exact/more")[:2] == (404, None)  # exact is exact
    assert who("GET", "/api/x")[:2] == (200, "A")
    assert who("GET", "/api")[:2] == (404, None)  # prefix /api/ does not match /api
    assert who("GET", "/other", headers=[("X-Route", "to-b")])[:2] == (200, "B")
    assert who("GET", "/other", headers=[("X-Route", "to-bb")])[:2] == (404, None)
    assert who("DELETE", "/other")[:2] == (200, "B")
    assert who("GET", "/any/thing")[:2] == (200, "A")
    st, org, body = who("GET", "/direct/x")
    assert (st, org, body) == (418, None, b"short and stout\n")
    # the host-specific virtual host takes its host, "*" the rest
    assert who("GET", "/exact", host="a.example.com")[:2] == (200, "V")
    assert who("GET", "/anything", host="a.example.com")[:2] == (200, "V")
    assert who("GET", "/exact", host="b.example.com")[:2] == (200, "B")
    # no match
    st, org, _ = who("GET", "/nomatch", host="other.example.com")
    assert (st, org) == (404, None)
    line = access_line(p, "/nomatch ")
    assert '" 404 NR ' in line, line
    assert len(v.requests) == 2 and all(q.header("host") == "a.example.com" for q in v.requests)

    # pipelined: a slow proxied answer, then local answers, then a proxied one: in order
    with Client(p.port) as c:
        c.send(get("/delay/300") + get("/direct/p") + get("/nomatch2", host="other.example.com")
               + get("/any/p"))
        got = [c.response() for _ in range(4)]
    assert [(r.status, r.h("x-origin")) for r in got] == [(200, "A"), (418, None), (404, None),
                                                          (200, "A")]
    assert got[0].json()["path"] == "/delay/300" and got[3].json()["path"] == "/any/p"
    assert got[1].body == b"short and stout\n"

    # weighted split 80/20 over 2000 requests, pipelined in batches on one connection
    counts = {"A": 0, "B": 0}
    total = 2000
    batch = 50
    deadline = time.monotonic() + 60
    with Client(p.port) as c:
        for start in range(0, total, batch):
            assert time.monotonic() < deadline
            c.send(b"".join(get("/split/%d" % i) for i in range(start, start + batch)))
            for _ in range(batch):
                r = c.response()
                assert r.status == 200
                counts[r.h("x-origin")] += 1
    assert counts["A"] + counts["B"] == total
    share = counts["A"] / total
    assert 0.76 <= share <= 0.84, counts
