"""tests/e2e/test_79_chaos_tls.py -- a ChaosProxy that terminates TLS (spec.tls, a Gateway
server's fields): the client speaks TLS to the chaos proxy, the toxics act on the plaintext, and
the upstream gets plaintext.

Real processes only: the petrel binary, the house HTTP origin (tests/lib/upstream.py) on an
ephemeral port, Python's ssl and http.client verifying the chaos proxy's certificate against
the test CA (tests/lib/certs.py).

  - HTTPS through a latency toxic: every response arrives, the median added latency of a
    keep-alive connection's requests is at least the toxic's and less than 50 ms over it;
    GET /proxies shows "tls": true, read-only over the API;
  - a plaintext client fails the handshake and the upstream sees no connection;
  - a rotated certificate serves new handshakes; a reload with a broken tls is refused and the
    running proxy stays;
  - `petrel validate` names file:line:col and the field of a bad tls;
  - an HTTP chaos proxy (spec.protocol HTTP) with tls: HTTPS by http.client (HTTP/1.1) and curl
    (HTTP/2 by ALPN), the certificate verified, x-forwarded-proto https to the upstream; an http_abort set over the API answers both
    with its status and the origin sees none of those requests.
"""

import http.client
import os
import socket
import ssl
import statistics
import subprocess
import time

import pytest

from certs import make_ca, make_leaf
from chaos import ChaosApi, chaos_proxy_spec
from netutil import connect, free_port, recv_to_eof, wait_until
from petrel import run_petrel, stats

HOST = "shop.example.com"
LATENCY_MS = 100


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    ca, other_ca = make_ca(d, "chaos-ca"), make_ca(d, "other-ca")
    crt, key = make_leaf(d, "shop", ca, [HOST], client=False)
    other_crt, other_key = make_leaf(d, "shop-other", other_ca, [HOST], client=False)
    return {"ca": str(d / "chaos-ca.crt"), "other_ca": str(d / "other-ca.crt"), "crt": crt,
            "key": key, "other_crt": other_crt, "other_key": other_key}


def chaos_tls_doc(upstream_port, crt, key, toxics=()):
    return {"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy",
            "metadata": {"name": "shop-tls"},
            "spec": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:%d" % upstream_port,
                     "tls": {"mode": "SIMPLE", "serverCertificate": crt, "privateKey": key},
                     "toxics": list(toxics)}}


def latency(ms):
    return {"name": "lat", "type": "latency", "stream": "downstream", "attributes": {"latency": ms}}


def https_conn(port, ca):
    """An http.client connection over TLS to 127.0.0.1:port, the certificate verified for HOST
    against ca."""
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    conn.sock = ctx.wrap_socket(raw, server_hostname=HOST)
    return conn


def get(conn):
    conn.request("GET", "/chaos")
    r = conn.getresponse()
    return r.status, r.read()


def start(petrel, origin, certs, toxics=()):
    api = ChaosApi(free_port())
    p = petrel([chaos_tls_doc(origin.port, certs["crt"], certs["key"], toxics)],
               proxy_spec=chaos_proxy_spec(api.port))
    proxy = api.ok("GET", "/proxies/shop-tls")
    return p, api, proxy, int(proxy["listen"].rsplit(":", 1)[1])


def test_https_through_a_latency_toxic(petrel, origin, certs):
    p, api, proxy, port = start(petrel, origin, certs, [latency(LATENCY_MS)])
    assert proxy["tls"] is True
    # Read-only over the API: echoed back it is fine, asked for it is refused.
    assert api.call("POST", "/proxies/shop-tls", {"tls": True, "enabled": True})[0] == 200
    status, out = api.call("POST", "/proxies/shop-tls", {"tls": False})
    assert status == 400 and out["error"].startswith("tls: read-only"), out
    status, out = api.call("POST", "/proxies", {"name": "plain", "tls": True,
                                                "upstream": "127.0.0.1:%d" % origin.port})
    assert status == 400 and out["error"].startswith("tls: read-only"), out
    assert "tls" not in api.ok("POST", "/proxies", {"name": "plain",
                                                    "upstream": "127.0.0.1:%d" % origin.port})
    conn = https_conn(port, certs["ca"])
    try:
        assert get(conn)[0] == 200  # the connection and the upstream's are made
        added = []
        for _ in range(7):
            t0 = time.monotonic()
            status, body = get(conn)
            added.append((time.monotonic() - t0) * 1000)
            assert status == 200 and body
    finally:
        conn.close()
    med = statistics.median(added)
    assert LATENCY_MS <= med < LATENCY_MS + 50, added
    # The upstream got plaintext HTTP (it parsed the requests).
    assert len(origin.wait_requests(8)) == 8
    assert stats(p)["ssl_handshake"] >= 1


def test_plaintext_client_fails_the_handshake(petrel, origin, certs):
    p, api, proxy, port = start(petrel, origin, certs)
    s = connect(port)
    try:
        s.sendall(b"GET /chaos HTTP/1.1\r\nHost: shop\r\n\r\n")
        got, _ = recv_to_eof(s, 5)  # Petrel closes it
    finally:
        s.close()
    assert got == b"", got  # no TLS alert either: no engine was made for a non-ClientHello
    wait_until(lambda: stats(p)["ssl_handshake_error"] >= 1, 5, what="the handshake failure")
    # The session starts only after a handshake: no upstream connection was ever begun.
    assert origin.connections == 0 and origin.bytes_received == 0
    # A TLS client still gets through.
    conn = https_conn(port, certs["ca"])
    try:
        assert get(conn)[0] == 200
    finally:
        conn.close()


def test_rotation_is_picked_up_and_a_bad_reload_is_refused(petrel, origin, certs, tmp_path):
    # The proxy's files are copies the test rewrites (write, then rename), as a rotation does.
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"

    def put(src, dst):
        tmp = str(dst) + ".tmp"
        with open(src, "rb") as f, open(tmp, "wb") as g:
            g.write(f.read())
        os.rename(tmp, str(dst))

    put(certs["crt"], crt)
    put(certs["key"], key)
    api = ChaosApi(free_port())
    docs = [chaos_tls_doc(origin.port, str(crt), str(key), [latency(1)])]
    p = petrel(docs, proxy_spec=chaos_proxy_spec(api.port))
    port = int(api.ok("GET", "/proxies/shop-tls")["listen"].rsplit(":", 1)[1])
    old = https_conn(port, certs["ca"])
    assert get(old)[0] == 200
    put(certs["other_key"], key)
    put(certs["other_crt"], crt)

    def new_certificate_served():
        try:
            c = https_conn(port, certs["other_ca"])
        except (ssl.SSLError, OSError):
            return False
        try:
            return get(c)[0] == 200
        finally:
            c.close()

    wait_until(new_certificate_served, 10, what="the rotated certificate in use")
    # The reload kept the proxy (its port, its toxic) and its open session.
    assert get(old)[0] == 200
    assert [t["name"] for t in api.ok("GET", "/proxies/shop-tls/toxics")] == ["lat"]

    refused = stats(p)["config_reloads_refused"]
    p.write_config([chaos_tls_doc(origin.port, str(tmp_path / "missing.crt"), str(key))])
    wait_until(lambda: stats(p)["config_reloads_refused"] > refused, 10,
               what="the broken tls refused")
    assert "missing.crt" in p.stderr()
    assert get(old)[0] == 200
    c = https_conn(port, certs["other_ca"])
    try:
        assert get(c)[0] == 200
    finally:
        c.close()
    old.close()


def test_validate_names_the_bad_tls(tmp_path, certs):
    f = tmp_path / "chaos.yaml"
    f.write_text("""apiVersion: petrel.io/v1alpha1
kind: ChaosProxy
metadata: {name: no-key}
spec:
  upstream: 127.0.0.1:8080
  tls:
    serverCertificate: %(crt)s
---
apiVersion: petrel.io/v1alpha1
kind: ChaosProxy
metadata: {name: mutual}
spec:
  upstream: 127.0.0.1:8080
  tls: {mode: MUTUAL, serverCertificate: %(crt)s, privateKey: %(key)s, caCertificates: %(ca)s}
---
apiVersion: petrel.io/v1alpha1
kind: ChaosProxy
metadata: {name: unreadable}
spec:
  upstream: 127.0.0.1:8080
  tls: {serverCertificate: %(dir)s/nope.crt, privateKey: %(key)s}
""" % {"crt": certs["crt"], "key": certs["key"], "ca": certs["ca"], "dir": tmp_path})
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1, r.stderr
    err = r.stderr
    assert ("%s:6:3: spec.tls: mode SIMPLE needs credentialName, or serverCertificate and "
            "privateKey" % f) in err, err
    assert ("%s:14:9: spec.tls.mode: mode MUTUAL is not supported on a ChaosProxy" % f) in err, err
    assert ("%s:21:3: spec.tls: %s/nope.crt: cannot read the certificate chain" % (f, tmp_path)) in err and "nope.crt" in err, err


def test_http_chaos_proxy_terminates_tls_and_aborts_per_request(petrel, origin, certs):
    doc = chaos_tls_doc(origin.port, certs["crt"], certs["key"])
    doc["spec"]["protocol"] = "HTTP"
    api = ChaosApi(free_port())
    petrel([doc], proxy_spec=chaos_proxy_spec(api.port))
    proxy = api.ok("GET", "/proxies/shop-tls")
    assert proxy["tls"] is True and proxy["protocol"] == "http", proxy
    port = int(proxy["listen"].rsplit(":", 1)[1])
    conn = https_conn(port, certs["ca"])
    try:
        assert get(conn)[0] == 200
    finally:
        conn.close()
    req = origin.wait_requests(1)[0]
    assert req.path == "/chaos"
    assert req.header_all("x-forwarded-proto") == ["https"], req.headers  # as Envoy says it

    def curl_h2():
        out = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", certs["ca"], "--resolve",
             "%s:%d:127.0.0.1" % (HOST, port), "-o", "/dev/null",
             "-w", "%{http_version} %{http_code}", "https://%s:%d/h2" % (HOST, port)],
            capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert curl_h2() == "2 200"
    assert len(origin.wait_requests(2)) == 2
    api.ok("POST", "/proxies/shop-tls/toxics",
           {"name": "down", "type": "http_abort", "attributes": {"status": 503}})
    conn = https_conn(port, certs["ca"])
    try:
        assert get(conn)[0] == 503
    finally:
        conn.close()
    assert curl_h2() == "2 503"
    assert len(origin.requests) == 2  # the aborted requests never left Petrel
