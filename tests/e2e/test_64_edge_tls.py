"""tests/e2e/test_64_edge_tls.py -- TLS termination at Gateway HTTPS servers.

Certificates are made with Python's `cryptography` (CAs, server certificates per host, client
certificates: good, from another CA, expired, without the required SAN). Real clients: Python's
ssl / http.client, `curl` and `openssl s_client`; a real HTTP origin behind a real petrel.

  - several HTTPS servers on one port, each with its certificate, chosen by SNI (exact before
    wildcard, no SNI: the first server's); requests and a 2 MiB upload and download over TLS;
  - TLS 1.1 refused (the handshake fails and is counted), minProtocolVersion TLSV1_3, and
    TLSV1_1 in the config refused by `petrel validate`;
  - MUTUAL: no client certificate, one from another CA, an expired one and one without the
    subjectAltName are refused; a good one is served and its SPIFFE ID reaches the access log;
    OPTIONAL_MUTUAL serves both;
  - credentialName through the Proxy's credentialsDirectory;
  - httpsRedirect: an HTTP server answers 301 to https://;
  - a certificate rotated while clients make new connections: no request fails;
  - a handshake that never finishes is closed after headerTimeout and counted;
  - testssl.sh reports nothing of severity MEDIUM or above, with a certificate shaped like a
    public CA's and the site's security headers set by the route (about 3 minutes).
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certs import make_ca, make_leaf, public_style_server
from netutil import connect, free_port, recv_to_eof, wait_until
from petrel import ISTIO, Petrel, need_petrel, run_petrel, service_entry_doc, stats, to_yaml, wait_log
from upstream import HttpOrigin


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    ca = make_ca(d, "edge-ca")
    client_ca = make_ca(d, "client-ca")
    other_ca = make_ca(d, "other-ca")
    out = {"dir": d, "ca": str(d / "edge-ca.crt"), "client_ca": str(d / "client-ca.crt")}
    out["a"] = make_leaf(d, "a", ca, ["a.example.com"], client=False)
    out["a2"] = make_leaf(d, "a2", ca, ["a.example.com"], client=False)
    out["wild"] = make_leaf(d, "wild", ca, ["*.wild.example"], client=False)
    out["exact"] = make_leaf(d, "exact", ca, ["x.wild.example"], client=False)
    out["good"] = make_leaf(d, "good", client_ca, ["spiffe://cluster.local/ns/shop/sa/buyer",
                                                  "client.example"], client=True)
    out["nosan"] = make_leaf(d, "nosan", client_ca, ["other.example"], client=True)
    out["expired"] = make_leaf(d, "expired", client_ca, ["client.example"], expired=True,
                               client=True)
    out["foreign"] = make_leaf(d, "foreign", other_ca, ["client.example"], client=True)
    return out


def https_server(port, hosts, tls, name=None):
    s = {"port": {"number": port, "name": name or "https-%d" % port, "protocol": "HTTPS"},
         "hosts": hosts, "tls": tls}
    return s


def config(servers, origin_port):
    gw = {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
          "spec": {"servers": servers}}
    vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
          "spec": {"hosts": ["*"], "gateways": ["edge"],
                   "http": [{"route": [{"destination": {"host": "web.local",
                                                        "port": {"number": 80}}}]}]}}
    return [gw, vs, service_entry_doc("web.local", origin_port, name="web")]


def client_ctx(certs, cert=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(certs["ca"])
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def https_get(port, ctx, sni, path="/echo", method="GET", body=None, timeout=10):
    """(status, body, peer certificate's CN) of one request over a new TLS connection."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    der = s.getpeercert(binary_form=True)
    cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)[0].value
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.sock = s
    conn.request(method, path, body=body, headers={"Host": sni or "a.example.com"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data, cn


def handshake_fails(port, ctx, sni="a.example.com"):
    """True when the handshake, or the first read after it (TLS 1.3 sends a client
    certificate's rejection after the client's Finished), fails."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname=sni)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        data = s.recv(100)
        s.close()
        return data == b""
    except (ssl.SSLError, ConnectionError, OSError):
        return True


@pytest.fixture
def origin():
    o = HttpOrigin()
    yield o
    o.stop()


def test_https_servers_chosen_by_sni(tmp_path, certs, origin):
    need_petrel()
    port = free_port()
    servers = [https_server(port, ["a.example.com"], {"mode": "SIMPLE",
                                                       "serverCertificate": certs["a"][0],
                                                       "privateKey": certs["a"][1]}, "a"),
               https_server(port, ["*.wild.example"], {"serverCertificate": certs["wild"][0],
                                                        "privateKey": certs["wild"][1]}, "w"),
               https_server(port, ["x.wild.example"], {"serverCertificate": certs["exact"][0],
                                                        "privateKey": certs["exact"][1]}, "x")]
    with Petrel(tmp_path / "p", config(servers, origin.port)) as p:
        ctx = client_ctx(certs)
        st, body, cn = https_get(port, ctx, "a.example.com")
        assert (st, cn) == (200, "a") and b'"path": "/echo"' in body.replace(b'":"', b'": "')
        # The origin learns the client's scheme, as Envoy tells it.
        assert origin.wait_requests(1)[-1].header_all("x-forwarded-proto") == ["https"]
        assert https_get(port, ctx, "y.wild.example")[2] == "wild"
        assert https_get(port, ctx, "x.wild.example")[2] == "exact"  # exact before wildcard
        # no SNI: the first server's certificate
        assert https_get(port, client_ctx(certs, verify=False), None)[2] == "a"
        # a 2 MiB upload and download through the TLS transport
        up = os.urandom(2 << 20)
        st, body, _ = https_get(port, ctx, "a.example.com", method="POST", body=up)
        assert st == 200 and str(len(up)).encode() in body
        st, body, _ = https_get(port, ctx, "a.example.com", path="/bytes/%d" % (2 << 20))
        assert st == 200 and len(body) == 2 << 20
        # curl, keep-alive: two requests on one connection
        r = subprocess.run(["curl", "-sS", "--cacert", certs["ca"], "--resolve",
                            "a.example.com:%d:127.0.0.1" % port, "-o", "/dev/null", "-o",
                            "/dev/null", "-w", "%{http_code} %{num_connects}\n",
                            "https://a.example.com:%d/echo" % port,
                            "https://a.example.com:%d/echo" % port],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.split() == ["200", "1", "200", "0"], r.stderr
        s = stats(p)
        assert s["ssl_handshake"] >= 7 and s["ssl_handshake_error"] == 0


def test_alpn_offers_h2_then_http11(tmp_path, certs, origin):
    """ALPN: a client offering h2 and http/1.1 gets h2 and is served HTTP/2 (curl --http2);
    one offering only http/1.1, or no ALPN at all, is served HTTP/1.1."""
    need_petrel()
    port = free_port()
    servers = [https_server(port, ["*"], {"serverCertificate": certs["a"][0],
                                          "privateKey": certs["a"][1]})]
    with Petrel(tmp_path / "p", config(servers, origin.port)):
        for offered, chosen in ((["http/1.1"], "http/1.1"), (None, None)):
            ctx = client_ctx(certs)
            if offered is not None:
                ctx.set_alpn_protocols(offered)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.example.com") as s:
                    assert s.selected_alpn_protocol() == chosen
                    s.sendall(b"GET /echo HTTP/1.1\r\nHost: a.example.com\r\n"
                              b"Connection: close\r\n\r\n")
                    assert recv_to_eof(s, 10)[0].startswith(b"HTTP/1.1 200 ")
        ctx = client_ctx(certs)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.example.com") as s:
                assert s.selected_alpn_protocol() == "h2"
        for version in ("--http2", "--http1.1"):
            r = subprocess.run(["curl", "-sS", version, "--cacert", certs["ca"], "--resolve",
                                "a.example.com:%d:127.0.0.1" % port, "-d", "x" * 70000,
                                "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                                "https://a.example.com:%d/echo" % port],
                               capture_output=True, text=True, timeout=30)
            assert r.stdout == ("200 2" if version == "--http2" else "200 1.1"), r.stderr


def test_old_versions_refused(tmp_path, certs, origin):
    need_petrel()
    port, port13 = free_port(), free_port()
    tls = {"serverCertificate": certs["a"][0], "privateKey": certs["a"][1]}
    servers = [https_server(port, ["*"], tls),
               https_server(port13, ["*"], dict(tls, minProtocolVersion="TLSV1_3"))]
    with Petrel(tmp_path / "p", config(servers, origin.port)) as p:
        # a real TLS 1.1 ClientHello (seclevel 0 lets this OpenSSL send one)
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-servername",
                            "a.example.com"], input="", capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "Cipher is (NONE)" in r.stdout + r.stderr or \
            "alert" in (r.stdout + r.stderr), r.stdout + r.stderr
        wait_until(lambda: stats(p)["ssl_handshake_error"] >= 1, 10, what="the refused 1.1")
        ctx12 = client_ctx(certs)
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        assert https_get(port, ctx12, "a.example.com")[0] == 200
        assert handshake_fails(port13, ctx12)
        assert https_get(port13, client_ctx(certs), "a.example.com")[0] == 200
    bad = config([https_server(port, ["*"], dict(tls, minProtocolVersion="TLSV1_1"))],
                 origin.port)
    f = tmp_path / "bad.yaml"
    f.write_text(to_yaml(bad))
    r = run_petrel(["validate", str(f)])
    assert r.returncode != 0
    assert "minProtocolVersion" in r.stderr + r.stdout and "TLSV1_1" in r.stderr + r.stdout


def test_mutual_tls(tmp_path, certs, origin):
    need_petrel()
    port, port_opt = free_port(), free_port()
    tls = {"mode": "MUTUAL", "serverCertificate": certs["a"][0], "privateKey": certs["a"][1],
           "caCertificates": certs["client_ca"], "subjectAltNames": ["client.example"]}
    opt = {"mode": "OPTIONAL_MUTUAL", "serverCertificate": certs["a"][0],
           "privateKey": certs["a"][1], "caCertificates": certs["client_ca"]}
    servers = [https_server(port, ["*"], tls), https_server(port_opt, ["*"], opt)]
    with Petrel(tmp_path / "p", config(servers, origin.port),
                proxy_spec={"accessLogFormat": "json"}) as p:
        assert https_get(port, client_ctx(certs, certs["good"]), "a.example.com")[0] == 200
        # the client's SPIFFE ID, in Istio's principal form, in the access log
        line = json.loads(wait_log(p, 1)[0])
        assert line["downstream_peer_principal"] == "cluster.local/ns/shop/sa/buyer"
        # A gateway reports as the source of the requests it forwards, as Istio's do:
        # source_principal is its own, and Istio's source reporter leaves the security policy
        # "unknown" (only a destination reporter says "mutual_tls" or "none").
        st, prom = p.admin_get("/stats/prometheus")
        series = [x for x in prom.decode().splitlines() if x.startswith("istio_requests_total{")]
        assert any('reporter="source"' in x and 'connection_security_policy="unknown"' in x
                   for x in series), series
        errors = stats(p)["ssl_handshake_error"]
        for cert in (None, certs["foreign"], certs["expired"], certs["nosan"]):
            assert handshake_fails(port, client_ctx(certs, cert)), cert
        wait_until(lambda: stats(p)["ssl_handshake_error"] >= errors + 4, 10,
                   what="4 refused handshakes")
        assert https_get(port_opt, client_ctx(certs), "a.example.com")[0] == 200
        assert https_get(port_opt, client_ctx(certs, certs["good"]), "a.example.com")[0] == 200
        assert handshake_fails(port_opt, client_ctx(certs, certs["foreign"]))


def test_credential_name_and_https_redirect(tmp_path, certs, origin):
    need_petrel()
    port, http_port = free_port(), free_port()
    creds = tmp_path / "creds" / "edge-cert"
    creds.mkdir(parents=True)
    (creds / "tls.crt").write_bytes(open(certs["a"][0], "rb").read())
    (creds / "tls.key").write_bytes(open(certs["a"][1], "rb").read())
    servers = [https_server(port, ["a.example.com"], {"credentialName": "edge-cert"}),
               {"port": {"number": http_port, "name": "http", "protocol": "HTTP"},
                "hosts": ["a.example.com"], "tls": {"httpsRedirect": True}}]
    with Petrel(tmp_path / "p", config(servers, origin.port),
                proxy_spec={"credentialsDirectory": str(tmp_path / "creds")}) as p:
        assert https_get(port, client_ctx(certs), "a.example.com")[:3:2] == (200, "a")
        c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        c.request("GET", "/x?y=1", headers={"Host": "a.example.com"})
        r = c.getresponse()
        r.read()
        assert r.status == 301
        assert r.getheader("location") == "https://a.example.com/x?y=1"
        assert len(origin.requests) == 1  # the redirect never reached the origin
        p.check_alive()


def install(src, dst):
    tmp = str(dst) + ".new"
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
    os.rename(tmp, dst)


def test_rotation_under_load_drops_nothing(tmp_path, certs, origin):
    need_petrel()
    port = free_port()
    d = tmp_path / "live"
    d.mkdir()
    install(certs["a"][0], d / "tls.crt")
    install(certs["a"][1], d / "tls.key")
    servers = [https_server(port, ["*"], {"serverCertificate": str(d / "tls.crt"),
                                          "privateKey": str(d / "tls.key")})]
    with Petrel(tmp_path / "p", config(servers, origin.port)) as p:
        gen = stats(p)["config_generation"]
        stop = threading.Event()
        results, serials = [], set()
        ctx = client_ctx(certs)

        def load():
            while not stop.is_set():
                try:
                    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                    s = ctx.wrap_socket(raw, server_hostname="a.example.com")
                    serials.add(x509.load_der_x509_certificate(
                        s.getpeercert(binary_form=True)).serial_number)
                    s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    data = recv_to_eof(s, 10)[0]
                    s.close()
                    results.append(data.startswith(b"HTTP/1.1 200"))
                except (OSError, ssl.SSLError) as e:
                    results.append(repr(e))

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: len(results) >= 20, 20, what="requests before the rotation")
        # key first would mismatch the old certificate for a moment: the reload refuses that
        # state and the running snapshot stays; then the pair is consistent again
        install(certs["a2"][1], d / "tls.key")
        install(certs["a2"][0], d / "tls.crt")
        wait_until(lambda: len(serials) >= 2, 20, what="the rotated certificate in use")
        n = len(results)
        wait_until(lambda: len(results) >= n + 20, 20, what="requests after the rotation")
        stop.set()
        for t in threads:
            t.join(30)
        assert stats(p)["config_generation"] > gen
        failures = [r for r in results if r is not True]
        assert failures == [], failures[:5]


def test_upgrade_over_https_is_relayed(tmp_path, certs, origin):
    """A 101 through an HTTPS server becomes a tunnel over the same TLS connection: bytes
    echoed by the origin come back; when the client goes, the upstream connection closes too
    and Petrel goes on serving. (WebSocket frames both ways: test_67.)"""
    need_petrel()
    port = free_port()
    servers = [https_server(port, ["*"], {"serverCertificate": certs["a"][0],
                                          "privateKey": certs["a"][1]})]
    with Petrel(tmp_path / "p", config(servers, origin.port)) as p:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = client_ctx(certs).wrap_socket(raw, server_hostname="a.example.com")
        s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: a.example.com\r\nConnection: upgrade\r\n"
                  b"Upgrade: websocket\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        echoed = head.split(b"\r\n\r\n", 1)[1]
        payload = os.urandom(300 * 1024)
        s.sendall(payload)
        while len(echoed) < len(payload):
            chunk = s.recv(65536)
            assert chunk, len(echoed)
            echoed += chunk
        assert echoed == payload
        s.close()
        assert https_get(port, client_ctx(certs), "a.example.com")[0] == 200
        wait_until(lambda: stats(p)["upstream_cx_active"] <= 1, 10, what="the upstream closed")


def test_handshake_bounded_by_header_timeout(tmp_path, certs, origin):
    need_petrel()
    port = free_port()
    servers = [https_server(port, ["*"], {"serverCertificate": certs["a"][0],
                                          "privateKey": certs["a"][1]})]
    with Petrel(tmp_path / "p", config(servers, origin.port),
                proxy_spec={"headerTimeout": "1s"}) as p:
        s = connect(port)
        s.sendall(b"\x16\x03\x01")  # the start of a record, never finished
        assert recv_to_eof(s, 20) == (b"", "eof")
        s.close()
        wait_until(lambda: stats(p)["ssl_handshake_error"] >= 1, 10, what="the count")
        # plaintext HTTP on the HTTPS port: closed, counted
        s = connect(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert recv_to_eof(s, 20) == (b"", "eof")
        s.close()
        wait_until(lambda: stats(p)["ssl_handshake_error"] >= 2, 10, what="the count")


def test_testssl_finds_nothing_medium_or_above(tmp_path, origin):
    """testssl.sh (Debian's testssl.sh package) against an HTTPS port: no finding of severity
    MEDIUM or above, none excepted. The route adds HSTS and the security headers testssl
    looks for the way Istio users do (VirtualService headers.response): they are the site's
    choice, not the proxy's. Bounded: testssl's default checks, nothing that needs a network."""
    need_petrel()
    import shutil
    tool = shutil.which("testssl") or shutil.which("testssl.sh")
    if tool is None:
        pytest.skip("testssl.sh is not installed (docker/install-deps.sh TEST)")
    ca, crt, key = public_style_server(tmp_path)
    port = free_port()
    docs = config([https_server(port, ["*"], {"serverCertificate": crt, "privateKey": key})],
                  origin.port)
    docs[1]["spec"]["http"][0]["headers"] = {"response": {"set": {
        "strict-transport-security": "max-age=31536000; includeSubDomains",
        "x-content-type-options": "nosniff", "x-frame-options": "DENY"}}}
    with Petrel(tmp_path / "p", docs):
        out = tmp_path / "testssl.json"
        r = subprocess.run([tool, "--quiet", "--color", "0", "--severity", "MEDIUM", "--fast",
                            "--warnings", "batch", "--add-ca", ca, "--jsonfile", str(out),
                            "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=600)
        findings = json.loads(out.read_text())
        assert findings, r.stdout[-2000:] + r.stderr[-2000:]
        bad = [f for f in findings if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")]
        assert bad == [], [(f["id"], f["severity"], f["finding"]) for f in bad]
