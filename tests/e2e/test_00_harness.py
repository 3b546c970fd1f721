"""tests/e2e/test_00_harness.py -- tests the end-to-end harness itself, without petrel.

If these fail, every other e2e result is suspect: the origin must echo and count what it
receives, misbehave exactly as asked, and the Petrel process wrapper must notice a bad exit or
a sanitizer report (checked here with a fake binary that only answers /ready).
"""

import hashlib
import json
import os
import socket
import stat
import sys
import textwrap
import time

import pytest
import yaml

from netutil import (cpu_ticks, free_port, header, http_request, parse_responses, pattern_bytes,
                     pattern_ok, raw_request, recv_responses, rss_kb)
from petrel import Petrel, gateway_ports, sanitizer_report, simple_config, to_yaml


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until(s, marker, limit=1 << 20):
    buf = b""
    while marker not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        assert len(buf) < limit
    return buf


def recv_all(s):
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk


# -- utilities -------------------------------------------------------------------------------

def test_free_port_is_bindable():
    p = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", p))


def test_rss_and_cpu_of_self():
    assert rss_kb(os.getpid()) > 1000
    assert cpu_ticks(os.getpid()) >= 0


def test_pattern_slices_agree():
    whole = pattern_bytes(0, 200000)
    assert pattern_ok(whole[70000:130001], 70000)
    assert not pattern_ok(b"\x01" + whole[1:10])


def test_sanitizer_markers():
    assert sanitizer_report("x.c:3:5: runtime error: signed integer overflow") == "runtime error:"
    assert sanitizer_report("==1==ERROR: AddressSanitizer: heap-use-after-free")
    assert sanitizer_report("all fine\n") is None


# -- the HTTP origin -------------------------------------------------------------------------

def test_echo_records_request_and_counts_connections(origin):
    status, hdrs, body = http_request(origin.port, "POST", "/echo?a=1",
                                      headers=[("X-Test", "yes")], body=b"hello")
    assert status == 200
    assert header(hdrs, "x-origin") == "origin"
    j = json.loads(body)
    assert j["method"] == "POST" and j["path"] == "/echo" and j["query"] == {"a": ["1"]}
    assert ["X-Test", "yes"] in j["headers"]
    assert j["body"] == "hello" and j["body_len"] == 5
    assert j["body_sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert origin.connections == 1
    assert len(origin.requests) == 1 and origin.requests[0].header("x-test") == "yes"
    assert origin.raw.startswith(b"POST /echo?a=1 HTTP/1.1\r\nHost: example.com\r\nX-Test: yes\r\n")
    assert origin.raw.endswith(b"\r\n\r\nhello")


def test_keep_alive_reuses_one_connection(origin):
    s = connect(origin.port)
    req = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req + req)  # pipelined
    r = recv_responses(s, 2)
    s.close()
    assert [x[0] for x in r] == [200, 200]
    assert [json.loads(x[3])["request_on_connection"] for x in r] == [0, 1]
    assert origin.connections == 1
    assert [(q.conn_id, q.index) for q in origin.requests] == [(0, 0), (0, 1)]
    http_request(origin.port, "GET", "/")
    assert origin.connections == 2


def test_nothing_received_is_observable(origin):
    assert origin.connections == 0 and origin.bytes_received == 0 and origin.raw == b""
    raw_request(origin.port, b"", timeout=0.2, shutdown_write=True)
    origin.wait_requests(0)
    assert origin.connections == 1
    origin.reset()
    assert origin.connections == 0


def test_status_and_fixed_status(origin_factory):
    o = origin_factory(status=503)
    assert http_request(o.port, "GET", "/anything")[0] == 503
    assert http_request(o.port, "GET", "/status/404")[0] == 404
    assert http_request(o.port, "GET", "/echo?status=201")[0] == 201
    st, h, b = http_request(o.port, "GET", "/status/204")
    assert st == 204 and b == b"" and header(h, "content-length") is None


def test_extra_response_headers_and_close(origin):
    st, h, _ = http_request(origin.port, "GET", "/echo?h=X-A:1&h=X-B:%202")
    assert header(h, "x-a") == "1" and header(h, "x-b") == "2"
    raw = raw_request(origin.port, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
    assert b"Connection: close" in raw  # and the origin closed: raw_request returned at EOF


def test_bytes_content_length_and_chunked(origin):
    st, h, b = http_request(origin.port, "GET", "/bytes/300000")
    assert st == 200 and header(h, "content-length") == "300000" and pattern_ok(b)
    st, h, b = http_request(origin.port, "GET", "/bytes/100000?chunked=1&chunk=777")
    assert header(h, "transfer-encoding") == "chunked" and len(b) == 100000 and pattern_ok(b)


def test_chunked_with_trailers(origin):
    raw = raw_request(origin.port, b"GET /chunked/50000?trailers=1 HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
    (st, _, h, body, trailers), = parse_responses(raw)
    assert header(h, "trailer") == "X-Trailer, X-Body-Sha256"
    assert pattern_ok(body) and len(body) == 50000
    assert header(trailers, "x-trailer") == "done"
    assert header(trailers, "x-body-sha256") == hashlib.sha256(body).hexdigest()


def test_head_has_no_body(origin):
    s = connect(origin.port)
    s.sendall(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/200 HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    raw = recv_all(s)
    s.close()
    assert raw.count(b"HTTP/1.1 200") == 2 and raw.endswith(b"status 200\n")
    assert b"Content-Length: 1000" in raw


def test_one_gib_streams_without_buffering(origin):
    """1 GiB through the origin: bytes counted, memory flat."""
    n = 1 << 30
    before = rss_kb(os.getpid())
    s = connect(origin.port)
    s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % n)
    head = recv_until(s, b"\r\n\r\n")
    got = len(head) - head.index(b"\r\n\r\n") - 4
    tail = b""
    buf = bytearray(1 << 20)
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        got += k
        tail = (tail + bytes(buf[:k]))[-1000:]
    s.close()
    assert got == n
    assert pattern_ok(tail, n - len(tail))
    assert rss_kb(os.getpid()) - before < 64 * 1024


def test_large_upload_is_hashed_not_kept(origin_factory):
    o = origin_factory(body_limit=1000, record_limit=4096)
    body = pattern_bytes(0, 3_000_000)
    st, _, b = http_request(o.port, "PUT", "/echo", body=body)
    j = json.loads(b)
    assert j["body_len"] == 3_000_000 and j["body"] is None
    assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert len(o.requests[0].body) == 1000
    assert len(o.raw) == 4096 and o.bytes_received > 3_000_000


def test_chunked_request_with_trailers_is_parsed(origin):
    raw = raw_request(origin.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n")
    j = json.loads(parse_responses(raw)[0][3])
    assert j["body"] == "abcde" and j["trailers"] == [["X-T", "1"]]


def test_delay(origin):
    t0 = time.monotonic()
    assert http_request(origin.port, "GET", "/delay/300")[0] == 200
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    st, _, b = http_request(origin.port, "GET", "/delay-body/200")
    assert b == b"0123456789" and time.monotonic() - t0 >= 0.2


def test_close_mid_body(origin):
    raw = raw_request(origin.port, b"GET /close-mid-body?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head and len(body) == 500
    raw = raw_request(origin.port, b"GET /close-mid-body?chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.endswith(b"\r\n") and not raw.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("kind", ["status", "garbage", "badlength", "cl-te", "two-cl", "header-space"])
def test_invalid_responses(origin, kind):
    raw = raw_request(origin.port, b"GET /invalid-response?kind=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                      % kind.encode())
    assert raw and (kind == "garbage") == (not raw.startswith(b"HTTP/1.1 "))


def test_expect_100_continue(origin):
    s = connect(origin.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n"
              b"Connection: close\r\n\r\n")
    assert recv_until(s, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"body")
    r = parse_responses(recv_all(s))
    s.close()
    assert r[0][0] == 200 and json.loads(r[0][3])["body"] == "body"


def test_expect_reject(origin):
    raw = raw_request(origin.port, b"POST /expect-reject HTTP/1.1\r\nHost: x\r\n"
                      b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 417 ") and b"Connection: close" in raw


def test_upgrade_tunnel_echoes_and_half_closes(origin):
    s = connect(origin.port)
    s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
    head = recv_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and b"Upgrade: websocket" in head
    rest = head[head.index(b"\r\n\r\n") + 4:]
    while len(rest) < 5:
        rest += s.recv(100)
    assert rest == b"early"
    s.sendall(b"ping")
    assert recv_until(s, b"ping") == b"ping"
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s) == b""  # clean EOF after our EOF
    s.close()
    assert http_request(origin.port, "GET", "/upgrade")[0] == 426


def test_keep_alive_header_and_idle_close(origin):
    s = connect(origin.port)
    s.sendall(b"GET /keep-alive?timeout=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    head = recv_until(s, b"}")
    assert b"Keep-Alive: timeout=1, max=100" in head
    t0 = time.monotonic()
    assert recv_all(s) == b""  # the origin closes the idle connection itself
    assert 0.5 < time.monotonic() - t0 < 5
    s.close()


def test_no_response_and_hang(origin):
    assert raw_request(origin.port, b"GET /no-response HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    t0 = time.monotonic()
    assert raw_request(origin.port, b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n", timeout=0.3) == b""
    assert 0.25 < time.monotonic() - t0 < 2


def test_bad_request_gets_400(origin):
    raw = raw_request(origin.port, b"GARBAGE\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")


def test_custom_route(origin):
    def teapot(conn, req):
        return conn.send_response(req, 418, [("X-Pot", "1")], b"short and stout")
    origin.routes["/tea"] = teapot
    st, h, b = http_request(origin.port, "GET", "/teapot")
    assert st == 418 and b == b"short and stout" and header(h, "x-pot") == "1"


# -- TCP echo --------------------------------------------------------------------------------

def test_tcp_echo_half_close(tcp_echo):
    s = connect(tcp_echo.port)
    data = os.urandom(300000)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s) == data
    s.close()
    time.sleep(0.05)
    assert tcp_echo.connections == 1 and tcp_echo.bytes_received == len(data)
    assert tcp_echo.half_closed == 1


# -- config helpers and the Petrel wrapper ---------------------------------------------------

def test_simple_config_shape():
    docs = simple_config(http_port=8080, upstream_port=[34567, 34568], tcp_port=9000, tcp_upstream_port=7777,
                         http_route={"timeout": "1s"})
    parsed = list(yaml.safe_load_all(to_yaml(docs)))
    assert [d["kind"] for d in parsed] == ["Gateway", "VirtualService", "ServiceEntry", "ServiceEntry"]
    assert gateway_ports(docs) == [(8080, "HTTP"), (9000, "TCP")]
    vs = parsed[1]["spec"]
    assert vs["gateways"] == ["edge"] and vs["http"][0]["timeout"] == "1s"
    assert vs["tcp"][0]["match"] == [{"port": 9000}]
    assert [e["ports"]["http"] for e in parsed[2]["spec"]["endpoints"]] == [34567, 34568]
    assert parsed[3]["spec"]["endpoints"][0]["ports"] == {"tcp": 7777}


FAKE_PETREL = textwrap.dedent("""\
    #!/usr/bin/python3
    # A stand-in for petrel: reads adminPort from the config, answers GET /ready with 200,
    # exits on SIGTERM with the status / stderr the test asks for through the environment.
    import os, signal, socket, sys, yaml
    cfg = sys.argv[3]
    proxy = next(yaml.safe_load_all(open(os.path.join(cfg, "00-proxy.yaml"))))
    def bye(*_):
        sys.stderr.write(os.environ.get("FAKE_STDERR", ""))
        sys.stderr.flush()
        os._exit(int(os.environ.get("FAKE_EXIT", "0")))
    signal.signal(signal.SIGTERM, bye)
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", proxy["spec"]["adminPort"])); ls.listen(8)
    print("fake petrel up", flush=True)
    while True:
        c, _ = ls.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\nConnection: close\\r\\n\\r\\nready\\n")
        c.close()
    """)


@pytest.fixture
def fake_bin(tmp_path):
    path = tmp_path / "fake-petrel"
    path.write_text(FAKE_PETREL)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_petrel_wrapper_lifecycle(tmp_path, fake_bin):
    docs = simple_config(http_port=free_port(), upstream_port=1, tcp_port=free_port(), tcp_upstream_port=2)
    p = Petrel(tmp_path / "p", docs, concurrency=3, binary=fake_bin)
    proxy = yaml.safe_load(open(os.path.join(p.config_dir, "00-proxy.yaml")))
    assert proxy["spec"]["adminPort"] == p.admin_port and proxy["spec"]["concurrency"] == 3
    assert proxy["spec"]["accessLog"] == p.access_log
    assert p.port == docs[0]["spec"]["servers"][0]["port"]["number"]
    assert p.tcp_port == docs[0]["spec"]["servers"][1]["port"]["number"]
    p.start()
    assert p.ready_after is not None and p.ready_after < 10
    p.stop_and_check()
    assert p.returncode == 0 and "fake petrel up" in p.stdout()


@pytest.mark.parametrize("env,problem", [
    ({"FAKE_EXIT": "3"}, "exit status 3"),
    ({"FAKE_STDERR": "a.c:1:2: runtime error: load of null pointer\n"}, "sanitizer report"),
    ({"FAKE_STDERR": "==7==ERROR: AddressSanitizer: heap-buffer-overflow\n", "FAKE_EXIT": "1"}, "sanitizer"),
])
def test_petrel_wrapper_detects_bad_exit(tmp_path, fake_bin, env, problem):
    p = Petrel(tmp_path / "p", [], binary=fake_bin, env=dict(os.environ, **env))
    p.start()
    with pytest.raises(AssertionError, match=problem):
        p.stop_and_check()


def test_petrel_wrapper_reports_early_exit(tmp_path):
    p = Petrel(tmp_path / "p", [], binary="/bin/false")
    with pytest.raises(AssertionError, match="exited with status 1 before it was ready"):
        p.start()
    p.stop()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
