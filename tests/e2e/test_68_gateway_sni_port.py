"""tests/e2e/test_68_gateway_sni_port.py -- one Gateway port shared by an HTTPS server, a TLS
server that terminates (tcp[] routes) and a TLS PASSTHROUGH server, chosen by the ClientHello's
SNI, as Istio ingress gateways commonly run port 443.

Real processes only: the petrel binary; Python ssl, curl and `openssl s_client` as clients; the
house HTTP origin and TCP echo (tests/lib/upstream.py) and a Python TLS echo server with a
certificate of its own CA, so a client that verifies against that CA proves the passthrough
connection was never terminated.

  - three hosts on one port, from three Gateway resources: HTTPS -> HTTP origin, TLS SIMPLE ->
    TCP echo, PASSTHROUGH -> the TLS server (its certificate reaches the client); metrics,
    access log and counters for each branch;
  - the same with no HTTPS server (a TLS port that terminates and passes through), and a drain
    with a passthrough session relaying;
  - unknown SNI and no SNI are closed (Envoy: no filter chain), unless a server's host "*"
    takes them;
  - a ClientHello written 1 byte at a time, to each branch; no ClientHello within
    headerTimeout closes the connection;
  - AuthorizationPolicy connection.sni on the passthrough branch;
  - a reload that moves a host from PASSTHROUGH to HTTPS; a relayed passthrough session
    carries on across it;
  - `petrel validate`: plaintext HTTP with HTTPS or TLS on one port is refused, naming both.
"""

import socket
import ssl
import subprocess
import time

import pytest

from certs import make_ca, make_leaf
from netutil import free_port, recv_exact, wait_until
from petrel import ISTIO, run_petrel, service_entry_doc, stats, to_yaml
from upstream import TcpEchoServer, TlsEchoServer

SEC = "security.istio.io/v1"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    edge, backend = make_ca(d, "edge-ca"), make_ca(d, "backend-ca")
    out = {"ca": str(d / "edge-ca.crt"), "backend_ca": str(d / "backend-ca.crt")}
    for name in ("https", "tls", "pass"):
        out[name] = make_leaf(d, "gw-" + name, edge, ["%s.example.com" % name], client=False)
    out["backend"] = make_leaf(d, "pass-backend", backend, ["pass.example.com"], client=False)
    return out


@pytest.fixture
def upstreams(certs, origin):
    echo, backend = TcpEchoServer(), TlsEchoServer(certs["backend"])
    yield origin, echo, backend
    echo.stop()
    backend.stop()


# --- configuration ---

def server(port, protocol, host, tls):
    return {"port": {"number": port, "name": "%s-%d" % (protocol.lower(), port),
                     "protocol": protocol}, "hosts": [host], "tls": tls}


def gateway(name, servers):
    return {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": name},
            "spec": {"servers": servers}}


def vs(name, host, gw, **routes):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": dict({"hosts": [host], "gateways": [gw]}, **routes)}


def simple(certs, name):
    return {"mode": "SIMPLE", "serverCertificate": certs[name][0], "privateKey": certs[name][1]}


def http_route(host):
    return [{"route": [{"destination": {"host": host, "port": {"number": 80}}}]}]


def shared_port_docs(port, certs, upstreams, pass_mode="PASSTHROUGH", https_any=False):
    """Three Gateways on one port. pass_mode "HTTPS" serves pass.example.com terminated, as
    HTTP, instead. https_any: the HTTPS server's host is "*" (it takes unknown and no SNI)."""
    origin, echo, backend = upstreams
    https_host = "*" if https_any else "https.example.com"
    docs = [gateway("web", [server(port, "HTTPS", https_host, simple(certs, "https"))]),
            gateway("tcp", [server(port, "TLS", "tls.example.com", simple(certs, "tls"))]),
            vs("web", https_host, "web", http=http_route("web.internal")),
            vs("tcp", "tls.example.com", "tcp",
               tcp=[{"route": [{"destination": {"host": "echo.internal",
                                                "port": {"number": 7}}}]}]),
            service_entry_doc("web.internal", origin.port, name="web"),
            service_entry_doc("echo.internal", echo.port, port=7, protocol="TCP", name="echo"),
            service_entry_doc("pass.internal", backend.port, port=443, protocol="TLS",
                              name="pass")]
    if pass_mode == "PASSTHROUGH":
        docs += [gateway("pass", [server(port, "TLS", "pass.example.com",
                                         {"mode": "PASSTHROUGH"})]),
                 vs("pass", "pass.example.com", "pass",
                    tls=[{"match": [{"sniHosts": ["pass.example.com"]}],
                          "route": [{"destination": {"host": "pass.internal",
                                                     "port": {"number": 443}}}]}])]
    else:
        docs += [gateway("pass", [server(port, "HTTPS", "pass.example.com",
                                         simple(certs, "pass"))]),
                 vs("pass", "pass.example.com", "pass", http=http_route("web.internal"))]
    return docs


# --- clients ---

def ctx_for(ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    return ctx


def open_tls(port, ctx, sni):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


def echo_once(port, ctx, sni, data=b"ping"):
    with open_tls(port, ctx, sni) as s:
        s.sendall(data)
        return recv_exact(s, len(data), timeout=10)


def https_get(port, ctx, sni, host=None):
    with open_tls(port, ctx, sni) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % (host or sni).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    return data


def refused(port, sni, ca):
    """True when the connection is closed before any handshake completes."""
    ctx = ctx_for(ca)
    if sni is None:
        ctx.check_hostname = False
    try:
        with open_tls(port, ctx, sni):
            return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def split_hello_handshake(port, ctx, sni):
    """A handshake whose ClientHello goes out 1 byte per write; returns the TLS object and its
    socket once the handshake is done."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    first = True
    while True:
        try:
            obj.do_handshake()
            raw.sendall(out.read())
            return obj, raw, inc, out
        except ssl.SSLWantReadError:
            data = out.read()
            if first:
                for i in range(len(data)):
                    raw.sendall(data[i:i + 1])
                    time.sleep(0.001)  # separate segments, not a wait for anything
                first = False
            elif data:
                raw.sendall(data)
            b = raw.recv(65536)
            if not b:
                raise ConnectionError("closed during the handshake")
            inc.write(b)


def bio_roundtrip(obj, raw, inc, out, payload):
    obj.write(payload)
    raw.sendall(out.read())
    got = b""
    while len(got) < len(payload):
        try:
            got += obj.read(65536)
        except ssl.SSLWantReadError:
            b = raw.recv(65536)
            if not b:
                break
            inc.write(b)
    return got


# --- tests ---

def test_three_kinds_share_one_port(petrel, certs, upstreams):
    origin, echo, backend = upstreams
    port = free_port()
    p = petrel(shared_port_docs(port, certs, upstreams))
    edge = ctx_for(certs["ca"])
    # HTTPS: terminated, routed as HTTP to the origin
    resp = https_get(port, edge, "https.example.com")
    assert resp.startswith(b"HTTP/1.1 200") and b"X-Origin: origin" in resp, resp[:200]
    r = subprocess.run(["curl", "-sS", "--cacert", certs["ca"], "--resolve",
                        "https.example.com:%d:127.0.0.1" % port, "-o", "/dev/null", "-w",
                        "%{http_code}", "https://https.example.com:%d/curl" % port],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "200", r.stderr
    # TLS SIMPLE: terminated, tcp[] to the echo
    assert echo_once(port, edge, "tls.example.com", b"through tcp[]") == b"through tcp[]"
    with open_tls(port, edge, "tls.example.com") as s:
        assert "gw-tls" in str(s.getpeercert()["subject"])
    # PASSTHROUGH: the backend's own certificate, from a CA Petrel has never seen
    back = ctx_for(certs["backend_ca"])
    with open_tls(port, back, "pass.example.com") as s:
        assert "pass-backend" in str(s.getpeercert()["subject"])
        s.sendall(b"end to end")
        assert recv_exact(s, 10, timeout=10) == b"end to end"
    with pytest.raises(ssl.SSLError):  # the edge CA cannot verify it: not terminated here
        open_tls(port, edge, "pass.example.com")
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "pass.example.com", "-CAfile", certs["backend_ca"],
                        "-verify_return_error"], input="", capture_output=True, text=True,
                       timeout=30)
    out = r.stdout + r.stderr
    assert "CN = pass-backend" in out and "Verify return code: 0 (ok)" in out, out
    wait_until(lambda: backend.handshakes >= 2, 10, what="backend handshakes")
    # counters, metrics, access log for each branch
    s = stats(p)
    assert s["ssl_handshake"] >= 3 and s["tls_sni_no_route"] == 0
    assert s["tcp_cx_total"] >= 5  # two tcp[] sessions, three passthrough ones
    wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 10, what="sessions closed")
    _, body = p.admin_get("/stats/prometheus")
    text = body.decode()
    for svc in ("echo.internal", "pass.internal"):
        assert any(line.startswith("istio_tcp_connections_opened_total{") and svc in line
                   for line in text.splitlines()), svc
    lines = p.wait_access_log(2)
    assert any("/curl" in line for line in lines) and any("/x" in line for line in lines)
    p.stop_and_check()


def test_unknown_and_missing_sni(petrel, certs, upstreams):
    port = free_port()
    p = petrel(shared_port_docs(port, certs, upstreams))
    assert refused(port, "other.example.com", certs["ca"])
    assert refused(port, None, certs["ca"])
    wait_until(lambda: stats(p)["tls_sni_no_route"] == 2, 10, what="both counted")
    assert stats(p)["ssl_handshake"] == 0
    # a server whose host is "*" takes what no other server names, and no SNI
    port2 = free_port()
    p2 = petrel(shared_port_docs(port2, certs, upstreams, https_any=True))
    edge = ctx_for(certs["ca"])
    edge.check_hostname = False
    resp = https_get(port2, edge, "other.example.com")
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    resp = https_get(port2, edge, None, host="nosni.example.com")
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    with open_tls(port2, ctx_for(certs["backend_ca"]), "pass.example.com") as s:
        assert "pass-backend" in str(s.getpeercert()["subject"])
    assert stats(p2)["tls_sni_no_route"] == 0


def test_tls_only_port_terminates_and_passes_through(petrel, certs, upstreams):
    """No HTTPS server: a TLS port whose servers terminate some hosts and pass others
    through."""
    port = free_port()
    docs = [d for d in shared_port_docs(port, certs, upstreams)
            if d["metadata"]["name"] != "web"]
    p = petrel(docs)
    assert echo_once(port, ctx_for(certs["ca"]), "tls.example.com") == b"ping"
    with open_tls(port, ctx_for(certs["backend_ca"]), "pass.example.com") as s:
        assert "pass-backend" in str(s.getpeercert()["subject"])
        s.sendall(b"pong")
        assert recv_exact(s, 4, timeout=10) == b"pong"
    assert refused(port, "https.example.com", certs["ca"])
    assert stats(p)["tls_sni_no_route"] == 1
    # a drain with a passthrough session relaying and a terminated one still open: a clean exit
    relaying = open_tls(port, ctx_for(certs["backend_ca"]), "pass.example.com")
    relaying.sendall(b"x")
    assert recv_exact(relaying, 1, timeout=10) == b"x"
    terminated = open_tls(port, ctx_for(certs["ca"]), "tls.example.com")
    p.stop_and_check(timeout=30)
    relaying.close()
    terminated.close()


def test_split_client_hello_and_deadline(petrel, certs, upstreams):
    port = free_port()
    p = petrel(shared_port_docs(port, certs, upstreams), proxy_spec={"headerTimeout": "5s"})
    for sni, ca, payload in (("pass.example.com", "backend_ca", b"passthrough"),
                             ("tls.example.com", "ca", b"terminated")):
        obj, raw, inc, out = split_hello_handshake(port, ctx_for(certs[ca]), sni)
        try:
            assert bio_roundtrip(obj, raw, inc, out, payload) == payload
        finally:
            raw.close()
    obj, raw, inc, out = split_hello_handshake(port, ctx_for(certs["ca"]), "https.example.com")
    try:
        resp = bio_roundtrip(obj, raw, inc, out,
                             b"GET /split HTTP/1.1\r\nHost: https.example.com\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 200"), resp
    finally:
        raw.close()
    # no ClientHello (nothing, or half of one) within headerTimeout: closed
    for first in (b"", b"\x16\x03\x01\x02\x00\x01"):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(first)
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 29
        s.close()
    p.stop_and_check()


def test_authorization_policy_sni_on_shared_port(petrel, certs, upstreams):
    port = free_port()
    deny = {"apiVersion": SEC, "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-pass", "namespace": "default"},
            "spec": {"action": "DENY", "rules": [
                {"when": [{"key": "connection.sni", "values": ["pass.example.com"]}]}]}}
    p = petrel(shared_port_docs(port, certs, upstreams) + [deny])
    assert refused(port, "pass.example.com", certs["backend_ca"])
    assert echo_once(port, ctx_for(certs["ca"]), "tls.example.com") == b"ping"
    wait_until(lambda: stats(p)["rbac_denied"] >= 1, 10, what="the denial counted")
    assert upstreams[2].handshakes == 0


def test_reload_moves_host_from_passthrough_to_https(petrel, certs, upstreams):
    port = free_port()
    p = petrel(shared_port_docs(port, certs, upstreams))
    back = ctx_for(certs["backend_ca"])
    kept = open_tls(port, back, "pass.example.com")
    kept.sendall(b"before")
    assert recv_exact(kept, 6, timeout=10) == b"before"
    p.write_config(shared_port_docs(port, certs, upstreams, pass_mode="HTTPS"))

    def served_as_https():
        try:
            return https_get(port, ctx_for(certs["ca"]), "pass.example.com") \
                .startswith(b"HTTP/1.1 200")
        except (ssl.SSLError, OSError):
            return False

    wait_until(served_as_https, 20, interval=0.2, what="pass.example.com served as HTTPS")
    # the session relayed before the reload carries on, still end to end
    kept.sendall(b"after")
    assert recv_exact(kept, 5, timeout=10) == b"after"
    kept.close()
    # the other hosts are unchanged
    assert echo_once(port, ctx_for(certs["ca"]), "tls.example.com") == b"ping"
    p.stop_and_check()


def validate(tmp_path, docs):
    f = tmp_path / "cfg.yaml"
    f.write_text(to_yaml(docs))
    r = run_petrel(["validate", str(f)])
    return r.returncode, r.stdout + r.stderr


def test_validate_plain_http_does_not_share_a_tls_port(tmp_path, certs):
    port = 8443
    plain = {"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
    https = server(port, "HTTPS", "https.example.com", simple(certs, "https"))
    tls = server(port, "TLS", "pass.example.com", {"mode": "PASSTHROUGH"})
    rc, out = validate(tmp_path, [gateway("a", [plain]), gateway("b", [https])])
    assert rc == 1 and "HTTPS and HTTP servers" in out, out
    rc, out = validate(tmp_path, [gateway("a", [plain]), gateway("b", [tls])])
    assert rc == 1 and "port 8443 is TLS here but HTTP in Gateway default/a" in out, out
    assert "plaintext HTTP cannot share a port with TLS servers" in out, out
    rc, out = validate(tmp_path, [gateway("a", [https]), gateway("b", [tls])])
    assert rc == 0, out
