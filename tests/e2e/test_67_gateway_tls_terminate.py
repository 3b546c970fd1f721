"""tests/e2e/test_67_gateway_tls_terminate.py -- Gateway `protocol: TLS` servers that terminate
(tls.mode SIMPLE / MUTUAL) and route the plaintext by VirtualService tcp[] routes, and HTTP
upgrades (WebSocket) over TLS on either side.

Real processes only: the petrel binary, Python TLS clients (an ssl.MemoryBIO client over a
non-blocking socket, so that it can send close_notify and go on reading: a real half-close),
the house TCP echo upstream (tests/lib/upstream.py), a TLS echo upstream and a WebSocket echo
server written here (RFC 6455 handshake and frames). Certificates come from `openssl`.

  - SIMPLE: two servers on one port, each certificate chosen by SNI; bytes both ways; 4 MiB
    each way with a slow reader, checked by hash; half-close both ways; istio_tcp_* metrics;
  - MUTUAL: no client certificate refused, the right one passes; a DENY AuthorizationPolicy on
    the verified principal closes that client's connection and lets another through; the same
    with OPTIONAL_MUTUAL, where no certificate passes;
  - weighted tcp[] destinations behind a terminating server;
  - TLS origination (DestinationRule tls SIMPLE) to a TLS upstream from a terminated server;
    a relaying session and a stalled handshake when Petrel stops;
  - WebSocket through an HTTPS server to a plain upstream, and from a plain listener to a TLS
    upstream, frames echoed both ways.
"""

import base64
import hashlib
import os
import select
import socket
import ssl
import threading
import time

import pytest

from certs import make_ca, make_leaf
from netutil import free_port, recv_exact, wait_until
from petrel import ISTIO, Petrel, need_petrel, run_petrel, service_entry_doc, stats, to_yaml
from upstream import TcpEchoServer, TlsEchoServer


# --- certificates ---

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    edge, clients = make_ca(d, "edge-ca"), make_ca(d, "client-ca")
    out = {"ca": str(d / "edge-ca.crt"), "client_ca": str(d / "client-ca.crt")}
    for name in ("a", "b"):
        out[name] = make_leaf(d, name, edge, ["%s.example.com" % name], client=False)
    out["backend"] = make_leaf(d, "backend", edge, ["backend.internal"], client=False)
    for name in ("buyer", "seller"):
        out[name] = make_leaf(d, name, clients, ["spiffe://cluster.local/ns/shop/sa/" + name],
                              client=True)
    return out


def client_ctx(certs, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs["ca"])
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


# --- configuration ---

def tls_server(port, hosts, tls, protocol="TLS"):
    return {"port": {"number": port, "name": "%s-%d" % (protocol.lower(), port),
                     "protocol": protocol}, "hosts": hosts, "tls": tls}


def docs_for(servers, dests, extra=()):
    """A Gateway with servers, and one VirtualService whose tcp[] route goes to dests: a list
    of (host, endpoint port, weight)."""
    gw = {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
          "spec": {"servers": servers}}
    route = [{"destination": {"host": h, "port": {"number": 7}}, "weight": w}
             for h, _, w in dests]
    vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "tcp"},
          "spec": {"hosts": ["*"], "gateways": ["edge"], "tcp": [{"route": route}]}}
    return [gw, vs] + [service_entry_doc(h, p, port=7, protocol="TCP") for h, p, _ in dests] \
        + list(extra)


# --- a TLS client that can half-close ---

class TlsClient:
    """TLS over a non-blocking socket through ssl.MemoryBIO: run() sends payload, then
    close_notify (our write side only), and reads until the peer's close_notify or EOF."""

    def __init__(self, port, ctx, sni):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)
        self.wire = b""

    def _pump(self, timeout, want_read=True, read_size=1 << 20):
        """Sends pending ciphertext and reads what arrived; returns False at the peer's EOF."""
        self.wire += self.out.read()
        r, w, _ = select.select([self.sock] if want_read else [],
                                [self.sock] if self.wire else [], [], timeout)
        if w:
            try:
                self.wire = self.wire[self.sock.send(self.wire):]
            except BlockingIOError:
                pass
        if r:
            data = self.sock.recv(read_size)
            if not data:
                self.inc.write_eof()
                return False
            self.inc.write(data)
        return True

    def handshake(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.obj.do_handshake()
                self.wire += self.out.read()
                return self.obj.getpeercert()
            except ssl.SSLWantReadError:
                if time.monotonic() > deadline:
                    raise TimeoutError("no handshake")
                if not self._pump(0.2):
                    raise ConnectionError("closed during the handshake")

    def run(self, payload, timeout=60, read_delay=0.0, read_size=1 << 20):
        """Returns (bytes received, "close_notify" or "eof")."""
        self.handshake()
        deadline = time.monotonic() + timeout
        sent, got, shut = 0, bytearray(), False
        eof = False
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("%d of %d bytes sent, %d received" % (sent, len(payload),
                                                                         len(got)))
            while sent < len(payload) and len(self.wire) + self.out.pending < (256 << 10):
                sent += self.obj.write(payload[sent:sent + 16384])
            if sent == len(payload) and not shut and self.inc.pending == 0:
                try:
                    self.obj.unwrap()  # sends close_notify; the peer's comes later
                except ssl.SSLWantReadError:
                    pass
                shut = True
            while True:
                try:
                    data = self.obj.read(1 << 16)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    return bytes(got), "close_notify"
                if not data:
                    return bytes(got), "close_notify"
                got += data
            if eof:
                return bytes(got), "eof"
            eof = not self._pump(0.2, read_size=read_size)
            if read_delay:
                time.sleep(read_delay)

    def close(self):
        self.sock.close()


def handshake_refused(port, ctx, sni):
    """True when the handshake, or the first read after it (TLS 1.3 sends the rejection of a
    client certificate after the client's Finished), fails."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname=sni)
        s.sendall(b"hello")
        data = s.recv(100)
        s.close()
        return data == b""
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def tls_echo_once(port, ctx, sni, data=b"ping"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall(data)
            return recv_exact(s, len(data), timeout=10)


# --- upstreams written here ---

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(payload, mask):
    """One final text frame (RFC 6455 §5.2), masked by the client."""
    head = bytes([0x81])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read_frame(recv):
    """(opcode, payload) of one frame, unmasked; recv(n) returns exactly n bytes."""
    b0, b1 = recv(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(recv(2), "big")
    elif n == 127:
        n = int.from_bytes(recv(8), "big")
    key = recv(4) if b1 & 0x80 else None
    data = recv(n) if n else b""
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


class WebSocketEcho:
    """A WebSocket server (optionally over TLS): checks the handshake, answers 101 with the
    right Sec-WebSocket-Accept, then echoes each text frame back as "echo: <text>"."""

    def __init__(self, cert=None):
        self.ctx = None
        if cert is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*cert)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.upgrades = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(20)
        s = raw
        try:
            if self.ctx is not None:
                s = self.ctx.wrap_socket(raw, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1)
            fields = {}
            for line in head.split(b"\r\n")[1:]:
                k, v = line.split(b":", 1)
                fields[k.strip().lower()] = v.strip()
            if fields.get(b"upgrade", b"").lower() != b"websocket":
                s.sendall(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
                return
            self.upgrades += 1
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                      + ws_accept(fields[b"sec-websocket-key"]) + b"\r\n\r\n")
            buf = bytearray(rest)

            def recv(n):
                while len(buf) < n:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf.extend(chunk)
                out = bytes(buf[:n])
                del buf[:n]
                return out

            while True:
                op, data = ws_read_frame(recv)
                if op == 8:  # close
                    s.sendall(bytes([0x88, 0]))
                    return
                s.sendall(ws_frame(b"echo: " + data, mask=False))
        except (ConnectionError, OSError, ssl.SSLError, ValueError):
            pass
        finally:
            raw.close()

    def stop(self):
        self.sock.close()


def websocket_session(sock, host, messages):
    """A WebSocket handshake on sock (plain or TLS) and one echo per message; returns the
    replies."""
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /chat HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                 b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    buf = bytearray()

    def recv(n):
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed after %r" % bytes(buf[:300]))
            buf.extend(chunk)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head: %r" % bytes(buf[:300]))
        buf.extend(chunk)
    head, rest = bytes(buf).split(b"\r\n\r\n", 1)
    buf[:] = rest
    assert head.startswith(b"HTTP/1.1 101"), head
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert {k.lower(): v for k, v in fields.items()}[b"sec-websocket-accept"] == ws_accept(key)
    replies = []
    for m in messages:
        sock.sendall(ws_frame(m, mask=True))
        op, data = ws_read_frame(recv)
        assert op == 1
        replies.append(data)
    sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # close, masked, empty
    assert ws_read_frame(recv)[0] == 8
    return replies


# --- tests ---

def test_simple_terminates_chooses_by_sni_and_relays_with_backpressure(tmp_path, certs):
    need_petrel()
    port = free_port()
    echo = TcpEchoServer()
    servers = [tls_server(port, ["a.example.com"], {"mode": "SIMPLE",
                                                     "serverCertificate": certs["a"][0],
                                                     "privateKey": certs["a"][1]}),
               tls_server(port, ["b.example.com"], {"mode": "SIMPLE",
                                                     "serverCertificate": certs["b"][0],
                                                     "privateKey": certs["b"][1],
                                                     "minProtocolVersion": "TLSV1_3"})]
    try:
        with Petrel(tmp_path / "p", docs_for(servers, [("echo.internal", echo.port, 100)])) as p:
            assert "not enforced" not in p.stderr()
            # SNI chooses the server: its certificate, its versions
            for sni in ("a.example.com", "b.example.com"):
                c = TlsClient(port, client_ctx(certs), sni)
                cert = c.handshake()
                assert dict(x[0] for x in cert["subject"])["commonName"] == sni[0]
                c.close()
            old = client_ctx(certs)
            old.maximum_version = ssl.TLSVersion.TLSv1_2
            assert handshake_refused(port, old, "b.example.com")
            assert tls_echo_once(port, old, "a.example.com") == b"ping"

            # 4 MiB through, echoed back to a slow reader, then half-close both ways: our
            # close_notify reaches the upstream as a FIN, its FIN comes back as close_notify
            payload = os.urandom(4 << 20)
            c = TlsClient(port, client_ctx(certs), "a.example.com")
            got, how = c.run(payload, timeout=120, read_delay=0.001, read_size=16384)
            c.close()
            assert len(got) == len(payload)
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            assert how == "close_notify"
            wait_until(lambda: echo.half_closed >= 1, 10, what="the upstream saw our FIN")

            s = stats(p)
            assert s["ssl_handshake"] >= 2 and s["tcp_cx_total"] >= 2
            wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 10, what="sessions closed")
            _, body = p.admin_get("/stats/prometheus")
            text = body.decode()
            assert 'istio_tcp_connections_opened_total{' in text
            sent = [line for line in text.splitlines()
                    if line.startswith("istio_tcp_received_bytes_total{")
                    and "echo.internal" in line]
            assert sent and float(sent[0].rsplit(" ", 1)[1]) >= len(payload), sent
            p.stop_and_check()
    finally:
        echo.stop()


def test_mutual_needs_a_client_certificate_and_authz_sees_its_principal(tmp_path, certs):
    need_petrel()
    port = free_port()
    echo = TcpEchoServer()
    servers = [tls_server(port, ["a.example.com"], {"mode": "MUTUAL",
                                                     "serverCertificate": certs["a"][0],
                                                     "privateKey": certs["a"][1],
                                                     "caCertificates": certs["client_ca"]})]
    deny = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "no-buyer"},
            "spec": {"action": "DENY",
                     "rules": [{"from": [{"source": {
                         "principals": ["cluster.local/ns/shop/sa/buyer"]}}]}]}}
    try:
        with Petrel(tmp_path / "p", docs_for(servers, [("echo.internal", echo.port, 100)],
                                             [deny])) as p:
            assert handshake_refused(port, client_ctx(certs), "a.example.com")
            assert tls_echo_once(port, client_ctx(certs, certs["seller"]), "a.example.com",
                                 b"seller") == b"seller"
            before = echo.connections
            # the buyer's handshake succeeds, then the connection closes without an upstream
            assert handshake_refused(port, client_ctx(certs, certs["buyer"]), "a.example.com")
            assert echo.connections == before
            wait_until(lambda: stats(p)["rbac_denied"] == 1, 10, what="the denial counted")
            assert stats(p)["ssl_handshake"] >= 2
            p.stop_and_check()
        # OPTIONAL_MUTUAL: no certificate passes (no principal), the buyer's is still denied
        servers[0]["tls"]["mode"] = "OPTIONAL_MUTUAL"
        with Petrel(tmp_path / "q", docs_for(servers, [("echo.internal", echo.port, 100)],
                                             [deny])) as p:
            assert tls_echo_once(port, client_ctx(certs), "a.example.com", b"anon") == b"anon"
            assert handshake_refused(port, client_ctx(certs, certs["buyer"]), "a.example.com")
            p.stop_and_check()
    finally:
        echo.stop()


def test_weighted_tcp_routes_behind_termination(tmp_path, certs):
    need_petrel()
    port = free_port()
    one, two = TcpEchoServer(greeting=b"one "), TcpEchoServer(greeting=b"two ")
    servers = [tls_server(port, ["*"], {"serverCertificate": certs["a"][0],
                                        "privateKey": certs["a"][1]})]  # mode: SIMPLE default
    try:
        with Petrel(tmp_path / "p", docs_for(servers, [("one.internal", one.port, 70),
                                                        ("two.internal", two.port, 30)])) as p:
            seen = {b"one ": 0, b"two ": 0}
            for _ in range(100):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with client_ctx(certs).wrap_socket(raw, server_hostname="a.example.com") as s:
                        seen[recv_exact(s, 4, timeout=10)] += 1
            assert seen[b"one "] + seen[b"two "] == 100
            assert 50 <= seen[b"one "] <= 90, seen
            p.stop_and_check()
    finally:
        one.stop()
        two.stop()


def test_tls_origination_from_a_terminated_server(tmp_path, certs):
    need_petrel()
    port = free_port()
    backend = TlsEchoServer(certs["backend"])
    servers = [tls_server(port, ["a.example.com"], {"mode": "SIMPLE",
                                                     "serverCertificate": certs["a"][0],
                                                     "privateKey": certs["a"][1]})]
    dr = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "backend"},
          "spec": {"host": "backend.internal",
                   "trafficPolicy": {"tls": {"mode": "SIMPLE", "caCertificates": certs["ca"]}}}}
    try:
        with Petrel(tmp_path / "p", docs_for(servers, [("backend.internal", backend.port, 100)],
                                             [dr])) as p:
            payload = os.urandom(1 << 20)
            c = TlsClient(port, client_ctx(certs), "a.example.com")
            got, how = c.run(payload, timeout=60)
            c.close()
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            assert how == "close_notify"
            assert backend.snis == ["backend.internal"]
            s = stats(p)
            assert s["upstream_cx_ssl_handshake"] == 1 and s["upstream_cx_ssl_error"] == 0
            wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 10, what="the session to end")
            # a relaying session and a client mid-handshake when Petrel stops: both closed by
            # the drain, a clean exit (no leak under ASan)
            raw = socket.create_connection(("127.0.0.1", port), timeout=20)
            open_tls = client_ctx(certs).wrap_socket(raw, server_hostname="a.example.com")
            open_tls.sendall(b"ping")
            assert recv_exact(open_tls, 4, timeout=10) == b"ping"
            stalled = socket.create_connection(("127.0.0.1", port), timeout=20)
            stalled.sendall(b"\x16\x03\x01")  # the start of a record, no more
            p.stop_and_check()
            open_tls.close()
            stalled.close()
    finally:
        backend.stop()


def test_websocket_through_an_https_server_to_a_plain_upstream(tmp_path, certs):
    need_petrel()
    port = free_port()
    ws = WebSocketEcho()
    gw = {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
          "spec": {"servers": [tls_server(port, ["*"], {"mode": "SIMPLE",
                                                        "serverCertificate": certs["a"][0],
                                                        "privateKey": certs["a"][1]},
                                          protocol="HTTPS")]}}
    vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "chat"},
          "spec": {"hosts": ["*"], "gateways": ["edge"],
                   "http": [{"route": [{"destination": {"host": "chat.internal",
                                                        "port": {"number": 80}}}]}]}}
    try:
        with Petrel(tmp_path / "p", [gw, vs, service_entry_doc("chat.internal", ws.port)]) as p:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with client_ctx(certs).wrap_socket(raw, server_hostname="a.example.com") as s:
                    big = os.urandom(200000)
                    replies = websocket_session(s, "a.example.com", [b"hello", big])
            assert replies == [b"echo: hello", b"echo: " + big]
            assert ws.upgrades == 1 and stats(p)["tunnel_total"] == 1
            p.stop_and_check()
    finally:
        ws.stop()


def test_websocket_from_a_plain_listener_to_a_tls_upstream(tmp_path, certs):
    need_petrel()
    port = free_port()
    ws = WebSocketEcho(cert=certs["backend"])
    gw = {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
          "spec": {"servers": [{"port": {"number": port, "name": "http", "protocol": "HTTP"},
                                "hosts": ["*"]}]}}
    vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "chat"},
          "spec": {"hosts": ["*"], "gateways": ["edge"],
                   "http": [{"route": [{"destination": {"host": "backend.internal",
                                                        "port": {"number": 80}}}]}]}}
    dr = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "backend"},
          "spec": {"host": "backend.internal",
                   "trafficPolicy": {"tls": {"mode": "SIMPLE", "caCertificates": certs["ca"]}}}}
    try:
        with Petrel(tmp_path / "p", [gw, vs, dr, service_entry_doc("backend.internal",
                                                                    ws.port)]) as p:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                replies = websocket_session(s, "backend.internal", [b"one", b"two" * 30000])
            assert replies == [b"echo: one", b"echo: " + b"two" * 30000]
            s = stats(p)
            assert ws.upgrades == 1 and s["tunnel_total"] == 1
            assert s["upstream_cx_ssl_handshake"] == 1
            p.stop_and_check()
    finally:
        ws.stop()


def test_validate_terminating_tls_servers(tmp_path, certs):
    need_petrel()

    def validate(docs):
        f = tmp_path / "cfg.yaml"
        f.write_text(to_yaml(docs))
        r = run_petrel(["validate", str(f)])
        return r.returncode, r.stdout + r.stderr

    simple = {"mode": "SIMPLE", "serverCertificate": certs["a"][0], "privateKey": certs["a"][1]}
    rc, out = validate(docs_for([tls_server(8443, ["*"], simple)], [("e.internal", 9, 100)]))
    assert rc == 0 and "not enforced" not in out, out
    # MUTUAL needs the CA that checks clients
    mutual = dict(simple, mode="MUTUAL")
    rc, out = validate(docs_for([tls_server(8443, ["*"], mutual)], [("e.internal", 9, 100)]))
    assert rc == 1 and "mode MUTUAL needs caCertificates" in out, out
    # one port terminates some hosts and passes others through, by SNI (test_68)
    rc, out = validate(docs_for([tls_server(8443, ["a.example.com"], simple),
                                 tls_server(8443, ["b.example.com"], {"mode": "PASSTHROUGH"})],
                                [("e.internal", 9, 100)]))
    assert rc == 0, out
