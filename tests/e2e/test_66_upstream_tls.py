"""tests/e2e/test_66_upstream_tls.py -- TLS to upstreams: DestinationRule trafficPolicy.tls
(SIMPLE, MUTUAL, ISTIO_MUTUAL, credentialName), Istio's auto mTLS, pool separation, rotation,
backpressure, and TCP routes originating TLS.

The upstreams are real TLS servers (Python's ssl module over http.server) that record, per
connection, the SNI the client sent and the client certificate they verified (and a TLS echo
server for TCP routes). Certificates are made with the `openssl` command in the test's
directory: a CA for "external" servers, a mesh CA whose leaves carry SPIFFE IDs, and a
foreign CA.
"""

import http.server
import json
import os
import shutil
import socketserver
import ssl
import subprocess
import threading

import pytest

from netutil import free_port, http_request, wait_until
from petrel import ISTIO, Petrel, gateway_doc, need_petrel, stats, wait_log
from upstream import TlsEchoServer

BOOKINFO = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "shared", "acceptance", "istio", "bookinfo")


# --- certificates ---

def openssl(*args):
    subprocess.run(["openssl"] + [str(a) for a in args], check=True, capture_output=True,
                   timeout=30)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=%s" % name, "-keyout", d / (name + ".key"),
            "-out", d / (name + ".pem"))
    return d / (name + ".pem")


def make_leaf(d, ca, name, sans, client=False):
    """<name>.pem / <name>.key signed by CA <ca>; sans like "DNS:a.example,URI:spiffe://..."."""
    key, csr, crt, ext = (d / (name + s) for s in (".key", ".csr", ".pem", ".ext"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
    ext.write_text("subjectAltName=%s\nextendedKeyUsage=%s\n"
                   % (sans, "clientAuth,serverAuth" if client else "serverAuth"))
    openssl("x509", "-req", "-in", csr, "-CA", d / (ca + ".pem"), "-CAkey", d / (ca + ".key"),
            "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", crt)
    return crt, key


# --- a TLS origin ---

class TlsOrigin:
    """An HTTPS/1.1 server on 127.0.0.1:<ephemeral> with keep-alive. Accepts any upgrade (101),
    answers GET /big/<n> with
    n pattern bytes (256 x 0..255 repeated), POST with the body, every other request with JSON
    {"origin", "sni", "peer" (the client certificate's SANs), "conn", "path"}, and records each
    connection's SNI and client-certificate SANs in .conns."""

    def __init__(self, name, cert, key, client_ca=None, idle_timeout=None):
        self.name = name
        self.conns = []
        self.handshake_errors = 0
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            ctx.load_verify_locations(str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        origin = self

        def on_sni(sock, server_name, _ctx):
            sock.context_sni = server_name

        ctx.sni_callback = on_sni

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_timeout  # closes a keep-alive connection idle this long

            def setup(self):
                super().setup()
                cert = self.connection.getpeercert()
                sans = [v for _, v in cert.get("subjectAltName", ())] if cert else []
                self.conn_index = len(origin.conns)
                origin.conns.append({"sni": getattr(self.connection, "context_sni", None),
                                     "peer": sans})

            def do_GET(self):
                if self.headers.get("upgrade"):
                    self.send_response(101)
                    self.send_header("connection", "upgrade")
                    self.send_header("upgrade", self.headers["upgrade"])
                    self.end_headers()
                    self.close_connection = True
                    return
                if self.path.startswith("/big/"):
                    n = int(self.path[5:])
                    self.send_response(200)
                    self.send_header("content-length", str(n))
                    self.end_headers()
                    block = bytes(range(256)) * 256
                    while n > 0:
                        self.wfile.write(block[:min(n, len(block))])
                        n -= min(n, len(block))
                    return
                c = origin.conns[self.conn_index]
                body = json.dumps({"origin": origin.name, "sni": c["sni"], "peer": c["peer"],
                                   "conn": self.conn_index, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:  # then trailers, up to an empty line
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            break
                        data += self.rfile.read(size + 2)[:size]
                else:
                    data = self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, addr = self.socket.accept()
                sock.settimeout(10)
                try:
                    return ctx.wrap_socket(sock, server_side=True), addr
                except (ssl.SSLError, OSError):
                    origin.handshake_errors += 1
                    sock.close()
                    raise

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- config ---

def docs_for(http_port, host, origin_port, tls=None, labels=None, subsets=None, extra=(),
             route_subset=None, se_port=443):
    endpoint = {"address": "127.0.0.1", "ports": {"https": origin_port}}
    if labels:
        endpoint["labels"] = labels
    dest = {"host": host, "port": {"number": se_port}}
    if route_subset:
        dest["subset"] = route_subset
    docs = [gateway_doc([(http_port, "HTTP")]),
            {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
             "spec": {"hosts": ["*"], "gateways": ["edge"],
                      "http": [{"route": [{"destination": dest}]}]}},
            {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "web"},
             "spec": {"hosts": [host], "location": "MESH_EXTERNAL", "resolution": "STATIC",
                      "ports": [{"number": se_port, "name": "https", "protocol": "HTTP"}],
                      "endpoints": [endpoint]}}]
    if tls is not None or subsets:
        spec = {"host": host}
        if tls is not None:
            spec["trafficPolicy"] = {"tls": tls}
        if subsets:
            spec["subsets"] = subsets
        docs.append({"apiVersion": ISTIO, "kind": "DestinationRule",
                     "metadata": {"name": "web"}, "spec": spec})
    return docs + list(extra)


def get_json(port, path="/"):
    st, _, body = http_request(port, "GET", path)
    return st, (json.loads(body) if st == 200 else body)


_started = []  # every petrel start() made, stopped after each test even when it failed


@pytest.fixture(autouse=True)
def _stop_started_petrels():
    yield
    while _started:
        p = _started.pop()
        if p.proc is not None and p.proc.poll() is None:
            p.stop()


def start(tmp_path, docs, proxy_spec=None, name="p"):
    p = Petrel(tmp_path / name, docs, concurrency=1, proxy_spec=proxy_spec,
               extra_args=["--log-level", "debug"])
    _started.append(p)
    p.start()
    return p


def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    make_ca(d, "ca")
    make_ca(d, "other")
    make_leaf(d, "ca", "server", "DNS:api.example.com,DNS:alt.example.com")
    make_leaf(d, "ca", "client", "DNS:client.example.com", client=True)
    return d


# --- SIMPLE ---

def test_simple_verifies_the_server_against_ca_certificates_and_its_name(tmp_path):
    need_petrel()
    d = certs(tmp_path)
    origin = TlsOrigin("api", d / "server.pem", d / "server.key")
    try:
        port = free_port()
        host = "api.example.com"
        p = start(tmp_path, docs_for(port, host, origin.port,
                                     tls={"mode": "SIMPLE", "caCertificates": str(d / "ca.pem")}))
        st, body = get_json(port)
        assert st == 200, body
        assert body["sni"] == host and body["peer"] == []
        # keep-alive: the second request reuses the TLS connection
        assert get_json(port)[1]["conn"] == body["conn"]
        s = stats(p)
        assert s["upstream_cx_ssl_handshake"] == 1 and s["upstream_cx_ssl_error"] == 0
        # an upgrade the upstream accepts is relayed over TLS (test_67 exchanges frames)
        st, _, _ = http_request(port, "GET", "/ws", headers=[("Connection", "upgrade"),
                                                             ("Upgrade", "websocket")])
        assert st == 101
        p.stop_and_check()

        # the wrong CA: 503 UF, counted, the reason in the debug log
        p = start(tmp_path, docs_for(port, host, origin.port,
                                     tls={"mode": "SIMPLE", "caCertificates": str(d / "other.pem")}),
                  name="wrong-ca")
        st, _, body = http_request(port, "GET", "/")
        assert st == 503 and b"connection failure" in body
        assert stats(p)["upstream_cx_ssl_error"] >= 1
        wait_until(lambda: "certificate verification failed" in p.stderr(), 5,
                   what="the TLS error in the log")
        assert '" 503 UF ' in wait_log(p, 1)[-1]
        p.stop_and_check()

        # the wrong name (sni names a host the certificate does not carry)
        p = start(tmp_path, docs_for(port, host, origin.port,
                                     tls={"mode": "SIMPLE", "caCertificates": str(d / "ca.pem"),
                                          "sni": "www.example.org"}), name="wrong-name")
        assert http_request(port, "GET", "/")[0] == 503
        assert stats(p)["upstream_cx_ssl_error"] >= 1
        p.stop_and_check()

        # subjectAltNames replace the name check: a SAN of the certificate passes with any SNI,
        # one it lacks fails; insecureSkipVerify accepts the wrong CA
        cases = [({"sni": "www.example.org", "subjectAltNames": ["alt.example.com"]}, 200),
                 ({"subjectAltNames": ["nope.example.com"]}, 503),
                 ({"caCertificates": str(d / "other.pem"), "insecureSkipVerify": True}, 200)]
        for i, (extra, want) in enumerate(cases):
            tls = {"mode": "SIMPLE", "caCertificates": str(d / "ca.pem")}
            tls.update(extra)
            p = start(tmp_path, docs_for(port, host, origin.port, tls=tls), name="san%d" % i)
            assert http_request(port, "GET", "/")[0] == want, extra
            p.stop_and_check()
    finally:
        origin.stop()


def test_simple_without_ca_certificates_uses_the_system_store(tmp_path):
    """Istio's behaviour: no caCertificates means the system's roots, which do not include the
    test's CA, so the server is refused (and accepted with insecureSkipVerify)."""
    need_petrel()
    d = certs(tmp_path)
    origin = TlsOrigin("api", d / "server.pem", d / "server.key")
    try:
        port = free_port()
        p = start(tmp_path, docs_for(port, "api.example.com", origin.port,
                                     tls={"mode": "SIMPLE"}))
        assert http_request(port, "GET", "/")[0] == 503
        assert stats(p)["upstream_cx_ssl_error"] >= 1
        p.stop_and_check()
    finally:
        origin.stop()


def test_large_response_to_a_slow_client_keeps_backpressure(tmp_path):
    """16 MiB through the TLS transport to a client reading at 4 MB/s (curl --limit-rate), much
    slower than the upstream sends: the bytes arrive intact and in order (reading from the
    upstream pauses and resumes, with plaintext held inside OpenSSL in between), and the
    upstream connection is reused afterwards."""
    need_petrel()
    import hashlib

    d = certs(tmp_path)
    origin = TlsOrigin("api", d / "server.pem", d / "server.key")
    try:
        port = free_port()
        p = start(tmp_path, docs_for(port, "api.example.com", origin.port,
                                     tls={"mode": "SIMPLE", "caCertificates": str(d / "ca.pem")}))
        assert get_json(port)[1]["conn"] == 0
        n = 16 << 20
        out = tmp_path / "big.bin"
        r = subprocess.run(["curl", "-s", "-o", str(out), "-w", "%{http_code}", "--limit-rate",
                            "4M", "http://127.0.0.1:%d/big/%d" % (port, n)],
                           capture_output=True, timeout=120)
        assert r.stdout == b"200"
        block = bytes(range(256)) * 256
        want = hashlib.sha256(block * (n // len(block))).hexdigest()
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want
        assert get_json(port)[1]["conn"] == 0
        s = stats(p)
        assert s["upstream_cx_total"] == 1 and s["upstream_rq_reused_connection"] == 2
        p.stop_and_check()
    finally:
        origin.stop()


def test_an_idle_pooled_tls_connection_closed_by_the_upstream_is_dropped(tmp_path):
    """The upstream closes keep-alive connections idle for 0.5 s: Petrel notices the close of
    its pooled TLS connection while idle (upstream_cx_idle_closed) and the next request goes
    on a new connection, with no error."""
    need_petrel()
    d = certs(tmp_path)
    origin = TlsOrigin("api", d / "server.pem", d / "server.key", idle_timeout=0.5)
    try:
        port = free_port()
        p = start(tmp_path, docs_for(port, "api.example.com", origin.port,
                                     tls={"mode": "SIMPLE", "caCertificates": str(d / "ca.pem")}))
        assert get_json(port)[1]["conn"] == 0
        wait_until(lambda: stats(p)["upstream_cx_idle_closed"] == 1, 10,
                   what="the idle connection's close")
        st, body = get_json(port)
        assert st == 200 and body["conn"] == 1
        s = stats(p)
        assert s["upstream_cx_ssl_handshake"] == 2 and s["upstream_rq_reused_connection"] == 0
        p.stop_and_check()
    finally:
        origin.stop()


# --- MUTUAL, credentialName, rotation ---

def test_mutual_presents_the_client_certificate_the_upstream_checks(tmp_path):
    need_petrel()
    d = certs(tmp_path)
    origin = TlsOrigin("api", d / "server.pem", d / "server.key", client_ca=d / "ca.pem")
    try:
        port = free_port()
        host = "api.example.com"
        # without a client certificate the upstream refuses the handshake
        p = start(tmp_path, docs_for(port, host, origin.port,
                                     tls={"mode": "SIMPLE", "caCertificates": str(d / "ca.pem")}),
                  name="simple")
        assert http_request(port, "GET", "/")[0] == 503
        p.stop_and_check()
        p = start(tmp_path, docs_for(port, host, origin.port,
                                     tls={"mode": "MUTUAL", "caCertificates": str(d / "ca.pem"),
                                          "clientCertificate": str(d / "client.pem"),
                                          "privateKey": str(d / "client.key")}))
        st, body = get_json(port)
        assert st == 200, body
        assert body["peer"] == ["client.example.com"]
        # a POST body goes through the TLS transport intact
        data = os.urandom(200000)
        st, _, echoed = http_request(port, "POST", "/", body=data)
        assert st == 200 and echoed == data
        # a chunked one too (re-framed chunk by chunk through the TLS writes)
        import socket

        c = socket.create_connection(("127.0.0.1", port), timeout=20)
        c.sendall(b"POST / HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n"
                  b"connection: close\r\n\r\n")
        for i in range(0, len(data), 30000):
            piece = data[i:i + 30000]
            c.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        c.sendall(b"0\r\n\r\n")
        resp = b""
        while True:
            r = c.recv(65536)
            if not r:
                break
            resp += r
        c.close()
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == data
        p.stop_and_check()
    finally:
        origin.stop()


def test_credential_name_and_a_rotated_client_certificate(tmp_path):
    """credentialName maps to <credentialsDirectory>/<name>/{tls.crt,tls.key,ca.crt}; a new
    client certificate written there (rename) reloads, and new connections present it."""
    need_petrel()
    d = certs(tmp_path)
    make_leaf(d, "ca", "client2", "DNS:client2.example.com", client=True)
    creds = tmp_path / "creds"
    (creds / "api-client").mkdir(parents=True)
    for src, dst in (("client.pem", "tls.crt"), ("client.key", "tls.key"), ("ca.pem", "ca.crt")):
        shutil.copy(d / src, creds / "api-client" / dst)
    origin = TlsOrigin("api", d / "server.pem", d / "server.key", client_ca=d / "ca.pem")
    try:
        port = free_port()
        p = start(tmp_path, docs_for(port, "api.example.com", origin.port,
                                     tls={"mode": "MUTUAL", "credentialName": "api-client"}),
                  proxy_spec={"credentialsDirectory": str(creds)})
        st, body = get_json(port)
        assert st == 200 and body["peer"] == ["client.example.com"], body
        gen = stats(p)["config_generation"]
        for src, dst in (("client2.pem", "tls.crt"), ("client2.key", "tls.key")):
            shutil.copy(d / src, creds / "api-client" / (dst + ".new"))
            os.rename(creds / "api-client" / (dst + ".new"), creds / "api-client" / dst)
        wait_until(lambda: stats(p)["config_generation"] > gen, 10, what="the reload")

        def new_cert_seen():
            # requests on fresh connections (Connection: close) present the new certificate
            st2, b2 = get_json(port)
            return st2 == 200 and b2["peer"] == ["client2.example.com"]
        wait_until(new_cert_seen, 10, what="the rotated client certificate")
        p.stop_and_check()
    finally:
        origin.stop()


# --- pools ---

def test_plaintext_and_tls_to_one_address_never_share_a_pool(tmp_path):
    """Two hosts on the same 127.0.0.1:<port>: one with SIMPLE (sni a), one with SIMPLE (sni b),
    and a third in plaintext. Each keeps its own connections; the TLS server never sees a
    plaintext request (it would fail the handshake) and each SNI arrives on its own
    connections."""
    need_petrel()
    d = certs(tmp_path)
    origin = TlsOrigin("api", d / "server.pem", d / "server.key")
    try:
        port = free_port()
        ca = str(d / "ca.pem")
        docs = [gateway_doc([(port, "HTTP")]),
                {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
                 "spec": {"hosts": ["*"], "gateways": ["edge"], "http": [
                     {"match": [{"uri": {"prefix": "/" + h.split(".")[0]}}],
                      "route": [{"destination": {"host": h, "port": {"number": 443}}}]}
                     for h in ("api.example.com", "alt.example.com", "plain.example.com")]}}]
        for h in ("api.example.com", "alt.example.com", "plain.example.com"):
            docs.append({"apiVersion": ISTIO, "kind": "ServiceEntry",
                         "metadata": {"name": h.split(".")[0]},
                         "spec": {"hosts": [h], "location": "MESH_EXTERNAL",
                                  "resolution": "STATIC",
                                  "ports": [{"number": 443, "name": "https", "protocol": "HTTP"}],
                                  "endpoints": [{"address": "127.0.0.1",
                                                 "ports": {"https": origin.port}}]}})
        for h in ("api.example.com", "alt.example.com"):
            docs.append({"apiVersion": ISTIO, "kind": "DestinationRule",
                         "metadata": {"name": h.split(".")[0]},
                         "spec": {"host": h, "trafficPolicy": {
                             "tls": {"mode": "SIMPLE", "caCertificates": ca}}}})
        p = start(tmp_path, docs)
        seen = {}
        for _ in range(3):
            for prefix, sni in (("/api", "api.example.com"), ("/alt", "alt.example.com")):
                st, body = get_json(port, prefix)
                assert st == 200 and body["sni"] == sni, body
                seen.setdefault(prefix, set()).add(body["conn"])
        assert not seen["/api"] & seen["/alt"]
        # plaintext to the TLS port: the server answers no HTTP (a failed handshake there),
        # and that failure does not touch the TLS pools
        errors = origin.handshake_errors
        assert http_request(port, "GET", "/plain")[0] in (502, 503)
        wait_until(lambda: origin.handshake_errors > errors, 5, what="the plaintext attempt")
        st, body = get_json(port, "/api")
        assert st == 200 and body["conn"] in seen["/api"]
        p.stop_and_check()
    finally:
        origin.stop()


# --- ISTIO_MUTUAL and auto mTLS ---

def mesh_certs(tmp_path):
    """The mesh CA, Petrel's identity (sa/web), servers with SPIFFE IDs in cluster.local and in
    another trust domain, all signed by the mesh CA."""
    d = tmp_path / "mesh"
    d.mkdir()
    make_ca(d, "mesh")
    make_leaf(d, "mesh", "web", "URI:spiffe://cluster.local/ns/default/sa/web", client=True)
    make_leaf(d, "mesh", "reviews", "URI:spiffe://cluster.local/ns/default/sa/reviews")
    make_leaf(d, "mesh", "foreign", "URI:spiffe://other.domain/ns/default/sa/reviews")
    return d


def identity(d):
    return {"identity": {"certificateChain": str(d / "web.pem"), "privateKey": str(d / "web.key"),
                         "rootCertificates": str(d / "mesh.pem")}}


def test_istio_mutual_checks_the_spiffe_trust_domain(tmp_path):
    need_petrel()
    d = mesh_certs(tmp_path)
    good = TlsOrigin("reviews", d / "reviews.pem", d / "reviews.key", client_ca=d / "mesh.pem")
    foreign = TlsOrigin("foreign", d / "foreign.pem", d / "foreign.key", client_ca=d / "mesh.pem")
    try:
        port = free_port()
        host = "reviews.default.svc.cluster.local"
        v1 = [{"name": "v1", "labels": {"version": "v1"}}]
        p = start(tmp_path, docs_for(port, host, good.port, tls={"mode": "ISTIO_MUTUAL"},
                                     labels={"version": "v1"}, subsets=v1, route_subset="v1",
                                     se_port=9080),
                  proxy_spec=identity(d))
        st, body = get_json(port)
        assert st == 200, body
        assert body["peer"] == ["spiffe://cluster.local/ns/default/sa/web"]
        assert body["sni"] == "outbound_.9080_.v1_.%s" % host
        p.stop_and_check()

        # a server from another trust domain (same roots): refused, 503 UF, counted
        p = start(tmp_path, docs_for(port, host, foreign.port, tls={"mode": "ISTIO_MUTUAL"}),
                  proxy_spec=identity(d), name="foreign")
        assert http_request(port, "GET", "/")[0] == 503
        assert stats(p)["upstream_cx_ssl_error"] >= 1
        wait_until(lambda: "is not in trust domain cluster.local" in p.stderr(), 5,
                   what="the refusal in the log")
        p.stop_and_check()

        # subjectAltNames narrow the accepted IDs further
        for sans, want in ((["spiffe://cluster.local/ns/default/sa/reviews"], 200),
                           (["spiffe://cluster.local/ns/default/sa/ratings"], 503)):
            p = start(tmp_path, docs_for(port, host, good.port,
                                         tls={"mode": "ISTIO_MUTUAL", "subjectAltNames": sans}),
                      proxy_spec=identity(d), name="sans-%d" % want)
            assert http_request(port, "GET", "/")[0] == want
            p.stop_and_check()
    finally:
        good.stop()
        foreign.stop()


def test_auto_mtls_by_endpoint_label(tmp_path):
    """With an identity and no tls in any DestinationRule, endpoints labelled
    security.istio.io/tlsMode: istio get ISTIO_MUTUAL, the others plaintext."""
    need_petrel()
    from upstream import HttpOrigin

    d = mesh_certs(tmp_path)
    mesh = TlsOrigin("reviews", d / "reviews.pem", d / "reviews.key", client_ca=d / "mesh.pem")
    legacy = HttpOrigin("legacy")
    try:
        port = free_port()
        docs = [gateway_doc([(port, "HTTP")]),
                {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
                 "spec": {"hosts": ["*"], "gateways": ["edge"], "http": [
                     {"match": [{"uri": {"prefix": "/legacy"}}],
                      "route": [{"destination": {"host": "legacy.local",
                                                 "port": {"number": 80}}}]},
                     {"route": [{"destination": {"host": "reviews.local",
                                                 "port": {"number": 80}}}]}]}}]
        for h, origin_port, labels in (
                ("reviews.local", mesh.port, {"security.istio.io/tlsMode": "istio"}),
                ("legacy.local", legacy.port, {"app": "legacy"})):
            docs.append({"apiVersion": ISTIO, "kind": "ServiceEntry",
                         "metadata": {"name": h.split(".")[0]},
                         "spec": {"hosts": [h], "location": "MESH_INTERNAL",
                                  "resolution": "STATIC",
                                  "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                                  "endpoints": [{"address": "127.0.0.1", "labels": labels,
                                                 "ports": {"http": origin_port}}]}})
        p = start(tmp_path, docs, proxy_spec=identity(d))
        st, body = get_json(port, "/")
        assert st == 200, body
        assert body["peer"] == ["spiffe://cluster.local/ns/default/sa/web"]
        assert body["sni"] == "outbound_.80_._.reviews.local"
        assert http_request(port, "GET", "/legacy")[0] == 200
        # Mesh mTLS offers HTTP/2 first; this origin chose no ALPN, so the request was refused
        # unsent and retried (refused-stream) as HTTP/1.1 on a second connection, and the next
        # one goes as HTTP/1.1 at once.
        s = stats(p)
        assert s["upstream_cx_ssl_handshake"] == 2 and s["upstream_cx_h2_refused"] == 1, s
        assert get_json(port, "/")[0] == 200
        s = stats(p)
        assert s["upstream_cx_ssl_handshake"] == 2 and s["upstream_cx_h2_refused"] == 1, s
        p.stop_and_check()
    finally:
        mesh.stop()
        legacy.stop()


# --- Istio's samples ---

def test_bookinfo_destination_rule_all_mtls(tmp_path):
    """Istio's destination-rule-all-mtls.yaml as-is (short hosts, ISTIO_MUTUAL with subsets),
    with ServiceEntries putting reviews v1 and details v1 on mesh TLS servers."""
    need_petrel()
    d = mesh_certs(tmp_path)
    make_leaf(d, "mesh", "details", "URI:spiffe://cluster.local/ns/default/sa/details")
    reviews = TlsOrigin("reviews", d / "reviews.pem", d / "reviews.key", client_ca=d / "mesh.pem")
    details = TlsOrigin("details", d / "details.pem", d / "details.key", client_ca=d / "mesh.pem")
    try:
        port = free_port()
        with open(os.path.join(BOOKINFO, "destination-rule-all-mtls.yaml")) as f:
            istio_doc = f.read()
        docs = [gateway_doc([(port, "HTTP")]),
                {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "bookinfo"},
                 "spec": {"hosts": ["*"], "gateways": ["edge"], "http": [
                     {"match": [{"uri": {"prefix": "/details"}}],
                      "route": [{"destination": {"host": "details", "subset": "v1",
                                                 "port": {"number": 9080}}}]},
                     {"route": [{"destination": {"host": "reviews", "subset": "v1",
                                                 "port": {"number": 9080}}}]}]}}]
        for h, origin in (("reviews", reviews), ("details", details)):
            docs.append({"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": h},
                         "spec": {"hosts": [h], "location": "MESH_INTERNAL",
                                  "resolution": "STATIC",
                                  "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                                  "endpoints": [{"address": "127.0.0.1",
                                                 "labels": {"version": "v1"},
                                                 "ports": {"http": origin.port}}]}})
        docs.append(istio_doc)
        p = start(tmp_path, docs, proxy_spec=identity(d))
        for path, name in (("/", "reviews"), ("/details/0", "details")):
            st, body = get_json(port, path)
            assert st == 200, body
            assert body["origin"] == name
            # Istio's SNI names the service by its FQDN: the short name completed in the
            # rule's namespace ("default")
            assert body["sni"] == "outbound_.9080_.v1_.%s.default.svc.cluster.local" % name
            assert body["peer"] == ["spiffe://cluster.local/ns/default/sa/web"]
        p.stop_and_check()
    finally:
        reviews.stop()
        details.stop()


def test_egress_tls_origination_sample(tmp_path):
    """Istio's egress-rule-google-apis.yaml as-is: the DestinationRule originates TLS (SIMPLE,
    no caCertificates: the system store) on port 443. www.googleapis.com is put on a loopback
    TLS server by a STATIC ServiceEntry loaded first (the first ServiceEntry for a host wins),
    so nothing leaves the machine; the system store is the test's CA through SSL_CERT_FILE."""
    need_petrel()
    d = certs(tmp_path)
    make_leaf(d, "ca", "google", "DNS:www.googleapis.com")
    origin = TlsOrigin("googleapis", d / "google.pem", d / "google.key")
    try:
        port = free_port()
        host = "www.googleapis.com"
        with open(os.path.join(BOOKINFO, "egress-rule-google-apis.yaml")) as f:
            istio_doc = f.read()
        docs = [gateway_doc([(port, "HTTP")]),
                {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "loopback"},
                 "spec": {"hosts": [host], "location": "MESH_EXTERNAL", "resolution": "STATIC",
                          "ports": [{"number": 80, "name": "http", "protocol": "HTTP"},
                                    {"number": 443, "name": "https", "protocol": "HTTPS"}],
                          "endpoints": [{"address": "127.0.0.1",
                                         "ports": {"https": origin.port,
                                                   "http": free_port()}}]}},
                # the sample's VirtualService is for the mesh (sidecars); the same route on
                # Petrel's gateway listener
                {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "edge"},
                 "spec": {"hosts": [host], "gateways": ["edge"], "http": [
                     {"route": [{"destination": {"host": host, "port": {"number": 443}}}]}]}},
                istio_doc]
        env = dict(os.environ, SSL_CERT_FILE=str(d / "ca.pem"))
        p = Petrel(tmp_path / "p", docs, concurrency=1, env=env,
                   extra_args=["--log-level", "debug"])
        p.start()
        st, _, body = http_request(port, "GET", "/books/v1/volumes?q=isbn:0486424618",
                                   host_header=host)
        assert st == 200, body
        body = json.loads(body)
        assert body["sni"] == host and body["path"].startswith("/books/v1/volumes")
        assert stats(p).get("dns_queries", 0) == 0  # the real host is never looked up
        p.stop_and_check()
    finally:
        origin.stop()


# --- TCP routes ---

def tcp_docs(tcp_port, echo_port, tls):
    return [gateway_doc([(tcp_port, "TCP")]),
            {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "echo"},
             "spec": {"hosts": ["*"], "gateways": ["edge"],
                      "tcp": [{"route": [{"destination": {"host": "echo.example.com",
                                                         "port": {"number": 7}}}]}]}},
            {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "echo"},
             "spec": {"hosts": ["echo.example.com"], "location": "MESH_EXTERNAL",
                      "resolution": "STATIC",
                      "ports": [{"number": 7, "name": "tcp", "protocol": "TCP"}],
                      "endpoints": [{"address": "127.0.0.1", "ports": {"tcp": echo_port}}]}},
            {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "echo"},
             "spec": {"host": "echo.example.com", "trafficPolicy": {"tls": tls}}}]


def test_tcp_route_originates_tls(tmp_path):
    """A TCP route whose cluster has tls: the client speaks plaintext, the upstream TLS (SNI
    the host); 4 MiB echoed both ways at once with backpressure; the client's half-close
    reaches the server (close_notify and FIN) and the server's last words and close come
    back. A wrong CA closes the connection and counts upstream_cx_ssl_error."""
    need_petrel()
    import hashlib
    import socket

    d = certs(tmp_path)
    make_leaf(d, "ca", "echo", "DNS:echo.example.com")
    echo = TlsEchoServer((d / "echo.pem", d / "echo.key"), farewell=b"bye %d")
    try:
        port = free_port()
        p = start(tmp_path, tcp_docs(port, echo.port,
                                     {"mode": "SIMPLE", "caCertificates": str(d / "ca.pem")}),
                  proxy_spec={"drainTimeout": "1s"})
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        data = os.urandom(4 << 20)
        got = []

        def reader():
            while True:
                c = s.recv(65536)
                if not c:
                    return
                got.append(c)
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join(30)
        assert not t.is_alive()
        s.close()
        out = b"".join(got)
        assert len(out) == len(data) + len(b"bye %d" % len(data))
        assert hashlib.sha256(out[:len(data)]).digest() == hashlib.sha256(data).digest()
        assert out[len(data):] == b"bye %d" % len(data)
        assert echo.snis == ["echo.example.com"]
        s = stats(p)
        assert s["upstream_cx_ssl_handshake"] == 1
        wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 10, what="the session to end")
        # a session still open when Petrel stops is closed by the drain deadline
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
        p.stop_and_check()
        s.close()

        p = start(tmp_path, tcp_docs(port, echo.port,
                                     {"mode": "SIMPLE", "caCertificates": str(d / "other.pem")}),
                  name="wrong-ca")
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(b"hello")
        try:  # closed without a byte (reset: the unread "hello" was discarded)
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
        assert stats(p)["upstream_cx_ssl_error"] == 1
        p.stop_and_check()
    finally:
        echo.stop()
