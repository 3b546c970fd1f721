"""tests/e2e/test_65_peer_auth.py -- PeerAuthentication on the sidecar's inbound (15006).

Two network namespaces on one bridge: a server pod with real traffic capture
(docker/petrel-iptables.sh), a real Petrel (uid 1337) with Proxy spec.sidecar, spec.identity and
spec.workload {namespace: default, labels: {app: server}}, and a real HTTP app on 9080 and
9081; and a client pod without a sidecar, whose Python ssl client plays another workload's
sidecar with certificates made by `cryptography`:

  - a mesh-wide STRICT policy (istio-system): plaintext to 9080 is closed, a client without a
    certificate, with one from another CA, or from another trust domain is refused; a mesh
    certificate is served, and its principal reaches the JSON access log;
  - the workload's policy with portLevelMtls 9081: PERMISSIVE serves plaintext and mTLS on the
    same port;
  - `petrel validate`: STRICT without spec.identity is an error.

Needs root and `ip netns`; skipped otherwise.
"""

import json
import os
import shutil
import signal
import tempfile

import pytest
import yaml

from certs import make_ca, make_leaf
from netns import Mesh, usable as netns_usable
from netutil import wait_until
from petrel import petrel_bin, run_petrel, sanitizer_report

PODS = {"c": "10.78.0.10", "s": "10.78.0.11"}
SECURITY = "security.istio.io/v1"

HTTP_APP = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port = int(sys.argv[1])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"app %d" % port
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    def log_message(self, *a):
        pass
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()
"""

# Runs in the client pod: each case is {port, cert: [crt, key] or null, tls: bool, path};
# the answer is the status line's code, or "closed" / "refused: <error>".
CLIENT = r"""
import json, socket, ssl, sys
args = json.loads(sys.argv[1])
out = []
for case in args["cases"]:
    try:
        s = socket.create_connection((args["ip"], case["port"]), timeout=10)
        if case["tls"]:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(args["roots"])
            if case["cert"]:
                ctx.load_cert_chain(*case["cert"])
            s = ctx.wrap_socket(s)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n"
                  % case["path"].encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        out.append(data.split(b" ")[1].decode() if data else "closed")
    except (OSError, ssl.SSLError) as e:
        out.append("refused: %r" % e)
print(json.dumps(out))
"""


MESH = Mesh("pa")


def in_pod(pod, *args, check=True):
    return MESH.run(pod, *args, check=check)


def docs(d, peer_auth=True):
    proxy = {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "sidecar"},
             "spec": {"adminPort": 15000, "concurrency": 1, "accessLogFormat": "json",
                      "prometheusPort": 0, "healthPort": 0,  # not what this file tests
                      "accessLog": os.path.join(d, "access.log"),
                      "sidecar": {"protocolDetectionTimeout": "150ms"},
                      "workload": {"name": "server", "namespace": "default",
                                   "labels": {"app": "server"}},
                      "identity": {"certificateChain": os.path.join(d, "server.crt"),
                                   "privateKey": os.path.join(d, "server.key"),
                                   "rootCertificates": os.path.join(d, "mesh-ca.crt")}}}
    out = [proxy]
    if peer_auth:
        out.append({"apiVersion": SECURITY, "kind": "PeerAuthentication",
                    "metadata": {"name": "default", "namespace": "istio-system"},
                    "spec": {"mtls": {"mode": "STRICT"}}})
        out.append({"apiVersion": SECURITY, "kind": "PeerAuthentication",
                    "metadata": {"name": "server", "namespace": "default"},
                    "spec": {"selector": {"matchLabels": {"app": "server"}},
                             "mtls": {"mode": "UNSET"},
                             "portLevelMtls": {"9081": {"mode": "PERMISSIVE"}}}})
    return out


@pytest.fixture(scope="module")
def pod(request):
    why_not = netns_usable()
    if why_not:
        pytest.skip(why_not)
    if not os.access(petrel_bin(), os.X_OK):
        pytest.skip("petrel binary not built")
    d = tempfile.mkdtemp(prefix="petrel-peerauth-")
    os.chmod(d, 0o777)  # petrel runs as uid 1337 and writes its access log here
    request.addfinalizer(lambda: (MESH.close(), shutil.rmtree(d, ignore_errors=True)))
    mesh_ca = make_ca(d, "mesh-ca")
    other_ca = make_ca(d, "other-ca")
    certs = {
        "server": make_leaf(d, "server", mesh_ca, ["spiffe://cluster.local/ns/default/sa/server"],
                            client=False),
        "buyer": make_leaf(d, "buyer", mesh_ca, ["spiffe://cluster.local/ns/shop/sa/buyer"],
                           client=True),
        "foreign_td": make_leaf(d, "foreign-td", mesh_ca, ["spiffe://other.local/ns/x/sa/y"],
                                client=True),
        "other_ca": make_leaf(d, "other-ca-leaf", other_ca,
                              ["spiffe://cluster.local/ns/shop/sa/buyer"], client=True),
    }
    binary = os.path.join(d, "petrel")
    shutil.copy(petrel_bin(), binary)
    os.chmod(binary, 0o755)

    for name, ip in PODS.items():
        MESH.add_pod(name, ip)
    MESH.capture("s")
    os.makedirs(os.path.join(d, "config"))
    with open(os.path.join(d, "config", "sidecar.yaml"), "w") as f:
        yaml.safe_dump_all(docs(d), f)
    os.chmod(os.path.join(d, "config"), 0o755)

    petrel = MESH.popen("s", [binary, "run", "-c", os.path.join(d, "config")], uid=1337,
                        log_dir=d, name="petrel")
    for port in (9080, 9081):
        MESH.popen("s", ["/usr/bin/python3", "-c", HTTP_APP, str(port)], log_dir=d,
                   name="app%d" % port)

    def stderr():
        with open(os.path.join(d, "petrel.err"), errors="replace") as f:
            return f.read()

    def ready():
        if petrel.poll() is not None:
            raise AssertionError("petrel exited: %s" % stderr()[-2000:])
        return in_pod("s", "curl", "-s", "--max-time", "5", "http://127.0.0.1:15000/ready",
                      check=False).stdout != ""

    wait_until(ready, 15, what="petrel ready")
    probe = "import socket\nfor p in (9080, 9081):\n    socket.create_connection(('127.0.0.1', p), 1).close()"
    wait_until(lambda: in_pod("s", "/usr/bin/python3", "-c", probe, check=False).returncode == 0,
               15, what="the apps")
    yield {"dir": d, "certs": certs, "roots": os.path.join(d, "mesh-ca.crt"), "stderr": stderr}
    petrel.send_signal(signal.SIGTERM)
    assert petrel.wait(timeout=15) == 0, stderr()[-3000:]
    assert sanitizer_report(stderr()) is None, stderr()[-3000:]


def client(pod, cases):
    arg = {"ip": PODS["s"], "roots": pod["roots"], "cases": cases}
    out = in_pod("c", "/usr/bin/python3", "-c", CLIENT, json.dumps(arg)).stdout
    return json.loads(out)


def case(port, cert=None, tls=True, path="/"):
    return {"port": port, "cert": list(cert) if cert else None, "tls": tls, "path": path}


def stat(name):
    out = in_pod("s", "curl", "-s", "--max-time", "5", "http://127.0.0.1:15000/stats").stdout
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return int(value)
    raise AssertionError("no %s in /stats" % name)


def test_strict_refuses_plaintext_and_foreign_clients(pod):
    c = pod["certs"]
    before = stat("ssl_handshake_error")
    got = client(pod, [case(9080, tls=False), case(9080, None), case(9080, c["other_ca"]),
                       case(9080, c["foreign_td"]), case(9080, c["buyer"], path="/strict-ok")])
    assert got[0] == "closed", got
    assert all(g == "closed" or g.startswith("refused") for g in got[1:4]), got
    assert got[4] == "200", got
    wait_until(lambda: stat("ssl_handshake_error") >= before + 4, 10, what="4 refusals counted")


def test_principal_in_access_log(pod):
    client(pod, [case(9080, pod["certs"]["buyer"], path="/principal")])
    log = os.path.join(pod["dir"], "access.log")

    def line():
        try:
            with open(log) as f:
                return [json.loads(x) for x in f if '"/principal"' in x]
        except FileNotFoundError:
            return []
    wait_until(line, 10, what="the access log line")
    assert line()[0]["downstream_peer_principal"] == "cluster.local/ns/shop/sa/buyer"
    prom = in_pod("s", "curl", "-s", "--max-time", "5",
                  "http://127.0.0.1:15000/stats/prometheus").stdout
    assert any('source_principal="cluster.local/ns/shop/sa/buyer"' in x and
               'connection_security_policy="mutual_tls"' in x
               for x in prom.splitlines() if x.startswith("istio_requests_total{")), prom[-2000:]


def test_port_level_permissive_serves_both(pod):
    got = client(pod, [case(9081, tls=False, path="/plain"), case(9081, pod["certs"]["buyer"])])
    assert got == ["200", "200"], got
    # The plaintext request, reported by the destination: no principal, policy "none".
    prom = in_pod("s", "curl", "-s", "--max-time", "5",
                  "http://127.0.0.1:15000/stats/prometheus").stdout
    assert any('reporter="destination"' in x and 'source_principal="unknown"' in x and
               'connection_security_policy="none"' in x
               for x in prom.splitlines() if x.startswith("istio_requests_total{")), prom[-2000:]


def test_strict_without_identity_is_refused(tmp_path):
    if not os.access(petrel_bin(), os.X_OK):
        pytest.skip("petrel binary not built")
    d = docs(str(tmp_path))
    del d[0]["spec"]["identity"]
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump_all(d))
    r = run_petrel(["validate", str(f)])
    assert r.returncode != 0
    assert "PeerAuthentication STRICT needs the Proxy's spec.identity" in r.stderr + r.stdout
