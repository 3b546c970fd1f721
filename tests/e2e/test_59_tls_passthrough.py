"""tests/e2e/test_59_tls_passthrough.py -- TLS passthrough (Gateway `tls.mode: PASSTHROUGH`
with VirtualService `tls[]` routes on sniHosts) and weighted tcp[]/tls[] destinations.

Real TLS servers (Python's ssl module, each with its own certificate made by `openssl req`)
behind a real petrel; real TLS clients (Python's ssl module, verifying the backend's
certificate, so a pass proves Petrel relayed the handshake without terminating it):

  - an exact sniHost, a wildcard one, and exact winning over a wildcard listed first;
  - an SNI no route matches, a ClientHello without SNI, plaintext on the TLS port, and a client
    that sends nothing: each connection is closed and counted;
  - a ClientHello that arrives one byte at a time reaches the upstream byte for byte;
  - weighted destinations: an 80/20 tcp[] split over 1000 connections and a 50/50 tls[] split;
  - Istio's TCP traffic-shifting task with its own files (all to v1, then 80/20 after a live
    reload);
  - config checks through `petrel validate`.
"""

import os
import socket
import ssl
import subprocess
import threading

import pytest
import yaml

from netutil import connect, free_port, recv_exact, recv_to_eof, wait_until
from petrel import ISTIO, REPO, gateway_doc, run_petrel, service_entry_doc, stats, to_yaml
from upstream import TcpEchoServer


# -- certificates and TLS servers -----------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """{name: (certfile, keyfile)}: self-signed certificates, each its own trust anchor."""
    d = tmp_path_factory.mktemp("certs")
    out = {}
    for name, san in (("a", "DNS:a.example.com"), ("b", "DNS:*.wild.example,DNS:a.wild.example"),
                      ("c", "DNS:split.example")):
        crt, key = d / (name + ".crt"), d / (name + ".key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + name,
                        "-addext", "subjectAltName=" + san, "-keyout", str(key), "-out", str(crt)],
                       check=True, capture_output=True, timeout=30)
        out[name] = (str(crt), str(key))
    return out


class TlsServer:
    """Terminates TLS with its certificate, reads one line and answers "<name> <sni>\\n"."""

    def __init__(self, name, cert):
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        self.lock = threading.Lock()
        self.connections = 0
        self.sni = []
        self.ctx.sni_callback = self._on_sni
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _on_sni(self, sslobj, name, ctx):
        with self.lock:
            self.sni.append(name)

    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            s.settimeout(10)
            t = self.ctx.wrap_socket(s, server_side=True)
            line = t.recv(100)
            t.sendall(b"%s %s\n" % (self.name.encode(), line.strip()))
            t.close()
        except (OSError, ssl.SSLError):
            s.close()

    def stop(self):
        self.stopped = True
        self.lsock.close()


@pytest.fixture
def tls_servers(certs):
    made = []

    def make(name, cert):
        srv = TlsServer(name, certs[cert])
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


def tls_get(port, sni, cafile, timeout=10):
    """Connects through petrel with this SNI, verifying the certificate against cafile; returns
    the backend's answer line."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as t:
            t.sendall(b"hello\n")
            return t.recv(100).decode()


def hello_bytes(sni):
    """The ClientHello Python's ssl sends for sni (None: no SNI), made through memory BIOs."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def closed_without_answer(port, data, timeout=10):
    """Sends data; true when petrel closed the connection without sending a byte."""
    s = connect(port)
    try:
        if data:
            s.sendall(data)
        got, how = recv_to_eof(s, timeout)
        return got == b"" and how in ("eof", "reset")
    finally:
        s.close()


# -- config documents ------------------------------------------------------------------------

def tls_gateway(port, name="edge", mode="PASSTHROUGH", hosts=("*",)):
    return {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": name},
            "spec": {"servers": [{"port": {"number": port, "name": "tls", "protocol": "TLS"},
                                  "hosts": list(hosts), "tls": {"mode": mode}}]}}


def tls_vs(routes, hosts=("*.example.com", "*.wild.example", "split.example"), name="sni"):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": list(hosts), "gateways": ["edge"], "tls": routes}}


def tls_route(sni_hosts, *dests):
    """dests: (host, weight) pairs."""
    return {"match": [{"sniHosts": list(sni_hosts)}],
            "route": [{"destination": {"host": h, "port": {"number": 443}}, "weight": w}
                      for h, w in dests]}


def backend(host, port):
    return service_entry_doc(host, port, port=443, protocol="TLS", name=host.replace(".", "-"))


# -- SNI routing ------------------------------------------------------------------------------

def test_sni_routes_exact_wildcard_and_exact_first(petrel, tls_servers, certs):
    a, b = tls_servers("A", "a"), tls_servers("B", "b")
    port = free_port()
    docs = [tls_gateway(port),
            # the wildcard comes first, the exact host still wins for a.example.com
            tls_vs([tls_route(["*.example.com"], ("b.backend", 100)),
                    tls_route(["a.example.com"], ("a.backend", 100)),
                    tls_route(["*.wild.example"], ("b.backend", 100))]),
            backend("a.backend", a.port), backend("b.backend", b.port)]
    p = petrel(docs)
    assert tls_get(port, "a.example.com", certs["a"][0]) == "A hello\n"
    assert tls_get(port, "A.Example.COM", certs["a"][0]) == "A hello\n"  # SNI is case-blind
    assert tls_get(port, "a.wild.example", certs["b"][0]) == "B hello\n"
    assert a.sni == ["a.example.com", "A.Example.COM"]  # the ClientHello went as it came
    assert b.sni == ["a.wild.example"]
    st = stats(p)
    assert st["tcp_cx_total"] == 3 and st["tls_sni_no_route"] == 0


def test_unroutable_connections_are_closed_and_counted(petrel, tls_servers, certs):
    a = tls_servers("A", "a")
    port = free_port()
    docs = [tls_gateway(port), tls_vs([tls_route(["a.example.com"], ("a.backend", 100))]),
            backend("a.backend", a.port)]
    p = petrel(docs, proxy_spec={"headerTimeout": "1s"})
    with pytest.raises((ssl.SSLError, OSError)):
        tls_get(port, "other.example.com", certs["a"][0])
    # no SNI at all
    assert closed_without_answer(port, hello_bytes(None))
    assert stats(p)["tls_sni_no_route"] == 2
    # plaintext HTTP on the TLS port
    assert closed_without_answer(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    # a client that connects and says nothing is closed at headerTimeout
    assert closed_without_answer(port, b"", timeout=10)
    wait_until(lambda: stats(p)["tls_hello_invalid"] == 2, 5, what="tls_hello_invalid == 2")
    assert a.connections == 0
    wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 5, what="sessions closed")


def test_hello_sent_byte_by_byte_reaches_upstream_unchanged(petrel):
    echo = TcpEchoServer()
    try:
        port = free_port()
        docs = [tls_gateway(port), tls_vs([tls_route(["split.example"], ("echo.backend", 1))]),
                backend("echo.backend", echo.port)]
        p = petrel(docs)
        hello = hello_bytes("split.example")
        s = connect(port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(hello)):
            s.sendall(hello[i:i + 1])
        s.sendall(b"after the hello")
        got = recv_exact(s, len(hello) + 15, timeout=10)
        assert got == hello + b"after the hello"
        s.close()
        assert echo.connections == 1
    finally:
        echo.stop()


# -- weighted destinations --------------------------------------------------------------------

def test_weighted_tcp_destinations_split_80_20(petrel):
    heavy, light = TcpEchoServer(), TcpEchoServer()
    try:
        port = free_port()
        docs = [gateway_doc([(port, "TCP")]),
                {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "split"},
                 "spec": {"hosts": ["*"], "gateways": ["edge"], "tcp": [{"route": [
                     {"destination": {"host": "heavy.local", "port": {"number": 7}}, "weight": 80},
                     {"destination": {"host": "light.local", "port": {"number": 7}},
                      "weight": 20}]}]}},
                service_entry_doc("heavy.local", heavy.port, port=7, protocol="TCP", name="heavy"),
                service_entry_doc("light.local", light.port, port=7, protocol="TCP", name="light")]
        p = petrel(docs)
        n = 1000
        for i in range(n):
            s = connect(port)
            s.sendall(b"x")
            assert recv_exact(s, 1, timeout=10) == b"x"
            s.close()
        wait_until(lambda: heavy.connections + light.connections == n, 10, what="all connected")
        # 80 % of 1000 is 800; 60 is more than four standard deviations (12.6)
        assert abs(heavy.connections - 800) <= 60, (heavy.connections, light.connections)
    finally:
        heavy.stop()
        light.stop()


def test_weighted_tls_destinations(petrel, tls_servers, certs):
    one, two = tls_servers("ONE", "c"), tls_servers("TWO", "c")
    port = free_port()
    docs = [tls_gateway(port),
            tls_vs([tls_route(["split.example"], ("one.backend", 1), ("two.backend", 1))]),
            backend("one.backend", one.port), backend("two.backend", two.port)]
    p = petrel(docs)
    seen = {"ONE": 0, "TWO": 0}
    for _ in range(200):
        seen[tls_get(port, "split.example", certs["c"][0]).split()[0]] += 1
    # 50/50 over 200: each side within 100 +- 30 (more than four standard deviations)
    assert abs(seen["ONE"] - 100) <= 30, seen


# -- config checks ----------------------------------------------------------------------------

def validate(tmp_path, docs):
    f = tmp_path / "cfg.yaml"
    f.write_text(to_yaml(docs))
    r = run_petrel(["validate", str(f)])
    return r.returncode, r.stdout + r.stderr


def test_validate_tls_servers_and_routes(tmp_path):
    # TLS without tls settings: an error
    gw = tls_gateway(8443)
    del gw["spec"]["servers"][0]["tls"]
    rc, out = validate(tmp_path, [gw])
    assert rc == 1 and "spec.servers[0].tls: required for protocol TLS" in out, out
    # SIMPLE terminates (test_67): it needs a certificate; AUTO_PASSTHROUGH is not served yet
    rc, out = validate(tmp_path, [tls_gateway(8443, mode="SIMPLE")])
    assert rc == 1 and "mode SIMPLE needs credentialName, or serverCertificate" in out, out
    rc, out = validate(tmp_path, [tls_gateway(8443, mode="AUTO_PASSTHROUGH")])
    assert rc == 0 and "tls.mode AUTO_PASSTHROUGH on a TLS server is not enforced" in out, out
    # an sniHost outside the VirtualService's hosts
    rc, out = validate(tmp_path, [tls_gateway(8443),
                                  tls_vs([tls_route(["evil.org"], ("a.backend", 1))]),
                                  backend("a.backend", 9)])
    assert rc == 1 and "spec.tls[0].match[0].sniHosts[0]: \"evil.org\" is not within" in out, out
    # tls[] routes need sniHosts
    vs = tls_vs([{"match": [{"port": 8443}],
                  "route": [{"destination": {"host": "a.backend", "port": {"number": 443}}}]}])
    rc, out = validate(tmp_path, [tls_gateway(8443), vs, backend("a.backend", 9)])
    assert rc == 1 and "spec.tls[0].match[0].sniHosts: required" in out, out


# -- Istio's TCP traffic-shifting task, with its own files ------------------------------------

TCP_ECHO = os.path.join(REPO, "..", "shared", "acceptance", "istio", "tcp-echo")


def istio_docs(name, port):
    """The task's file as Istio ships it, with the gateway port 31400 moved to port."""
    with open(os.path.join(TCP_ECHO, name)) as f:
        text = f.read()
    return [d for d in yaml.safe_load_all(text.replace("31400", str(port))) if d]


def test_istio_tcp_traffic_shifting_task(petrel):
    """All to v1, then (a live reload to the task's second file) 80 % v1 / 20 % v2."""
    v1, v2 = TcpEchoServer(greeting=b"one "), TcpEchoServer(greeting=b"two ")
    try:
        port = free_port()
        # tcp-echo is a Kubernetes Service in the task: a ServiceEntry with labelled endpoints
        se = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "tcp-echo"},
              "spec": {"hosts": ["tcp-echo"], "location": "MESH_INTERNAL", "resolution": "STATIC",
                       "ports": [{"number": 9000, "name": "tcp", "protocol": "TCP"}],
                       "endpoints": [
                           {"address": "127.0.0.1", "ports": {"tcp": v1.port},
                            "labels": {"version": "v1"}},
                           {"address": "127.0.0.1", "ports": {"tcp": v2.port},
                            "labels": {"version": "v2"}}]}}
        all_v1 = istio_docs("tcp-echo-all-v1.yaml", port)
        p = petrel(all_v1 + [se])

        def ask(n):
            seen = {b"one": 0, b"two": 0}
            for _ in range(n):
                s = connect(port)
                s.sendall(b"x")
                seen[recv_exact(s, 5, timeout=10)[:3]] += 1
                s.close()
            return seen

        assert ask(100) == {b"one": 100, b"two": 0}
        # the task's second step: same Gateway and DestinationRule, the 80/20 VirtualService
        gen = stats(p)["config_generation"]
        rest = [d for d in all_v1 if d["kind"] != "VirtualService"]
        p.write_config(rest + istio_docs("tcp-echo-20-v2.yaml", port) + [se])
        wait_until(lambda: stats(p)["config_generation"] > gen, 10, what="the reload")
        seen = ask(1000)
        assert abs(seen[b"two"] - 200) <= 60, seen  # 20 % of 1000, +- 4.7 standard deviations
    finally:
        v1.stop()
        v2.stop()
