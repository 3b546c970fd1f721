"""tests/e2e/test_87_sidecar_mesh_h2.py -- HTTP/2 between two Petrel sidecars over mesh mTLS.

Two network namespaces are two pods on one bridge, each with docker/petrel-iptables.sh, a
workload certificate (SPIFFE IDs in cluster.local) and a real Petrel as uid 1337. Pod B's
sidecar is STRICT (mesh-wide PeerAuthentication) in front of an HTTP/1.1-only app on 9080;
pod A's app is the client, asking the service VIP through A's sidecar (auto mTLS: B's endpoint
carries security.istio.io/tlsMode: istio). What is checked:
  - 50 concurrent HTTP/1.1 app connections in A, each open at once, are carried to B on at most
    2 TLS connections (ESTABLISHED sockets counted in A while all 50 are open);
  - they travel as HTTP/2 (B's access log says HTTP/2 for each), every response body is the
    one the app sent (SHA-256), B sees A's principal and counts them in istio_requests_total
    with connection_security_policy="mutual_tls"; an h2c app (curl with prior knowledge)
    crosses the same way;
  - B's inbound negotiates ALPN as Istio's sidecars do: h2 for a client offering
    istio-h2,istio,h2 and still serves one offering only http/1.1, or no ALPN (openssl
    s_client with A's certificate, as uid 1337 so A's sidecar leaves it alone);
  - the Proxy's explicit h2UpgradePolicy DO_NOT_UPGRADE keeps HTTP/1.1 between the sidecars;
  - a grpcio client in A calls a grpcio server in B (a GRPC port of a second service) through
    both sidecars: unary, server-, client- and bidirectional streaming, a deadline that
    expires (DEADLINE_EXCEEDED, the server sees the call cancelled) and a cancellation.

Needs root and `ip netns`; skipped otherwise. Namespaces and processes are removed even when a
test fails (fixture finalizer).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest
import yaml

import certs
from netns import Mesh, MeshPod, usable as netns_usable
from netutil import wait_until
from petrel import ISTIO, petrel_bin, sanitizer_report

MESH = Mesh("pm")
PODS = {"a": "10.78.0.10", "b": "10.78.0.11"}
VIP = "10.96.0.10"
PROXY_UID = 1337
N_CONNECTIONS = 50

# B's app: HTTP/1.1 only; each path gets 24 KiB derived from it, so that every response
# spans several HTTP/2 DATA frames and a mixed-up stream shows in its hash.
HTTP_APP = r"""
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = hashlib.sha256(self.path.encode()).hexdigest().encode() * 384
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer(("0.0.0.0", 9080), H).serve_forever()
"""

VIP_GRPC = "10.96.0.20"
GRPC_PROTO = """
syntax = "proto3";
package petrel.meshgrpc;
service Echo {
  rpc Say (Msg) returns (Msg);
  rpc Count (Msg) returns (stream Msg);
  rpc Join (stream Msg) returns (Msg);
  rpc Chat (stream Msg) returns (stream Msg);
  rpc Hang (Msg) returns (Msg);
}
message Msg { string text = 1; }
"""

# B's gRPC app on 9090: Say echoes, Count streams n answers, Join joins, Chat echoes each,
# Hang waits until the call is cancelled and records that it was (GET-able as Say("hung?")).
GRPC_SERVER = r"""
import sys, threading
from concurrent import futures
sys.path.insert(0, sys.argv[1])
import grpc, meshgrpc_pb2 as pb, meshgrpc_pb2_grpc as rpc
cancelled = []
class Echo(rpc.EchoServicer):
    def Say(self, m, ctx):
        if m.text == "hung?":
            return pb.Msg(text="cancelled %d" % len(cancelled))
        return pb.Msg(text="say " + m.text)
    def Count(self, m, ctx):
        for i in range(int(m.text)):
            yield pb.Msg(text=str(i))
    def Join(self, it, ctx):
        return pb.Msg(text=",".join(m.text for m in it))
    def Chat(self, it, ctx):
        for m in it:
            yield pb.Msg(text="re " + m.text)
    def Hang(self, m, ctx):
        done = threading.Event()
        ctx.add_callback(lambda: (cancelled.append(1), done.set()))
        done.wait(30)
        return pb.Msg(text="late")
s = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
rpc.add_EchoServicer_to_server(Echo(), s)
s.add_insecure_port("0.0.0.0:9090")
s.start()
s.wait_for_termination()
"""

# A's gRPC app: every kind of call to the service's address, through A's sidecar. Prints JSON.
GRPC_CLIENT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import grpc, meshgrpc_pb2 as pb, meshgrpc_pb2_grpc as rpc
ch = grpc.insecure_channel(sys.argv[2] + ":9090", options=[("grpc.default_authority", "ratings")])
e = rpc.EchoStub(ch)
out = {}
out["unary"] = e.Say(pb.Msg(text="hi"), timeout=10).text
out["server"] = [m.text for m in e.Count(pb.Msg(text="5"), timeout=10)]
out["client"] = e.Join(iter([pb.Msg(text=t) for t in "abc"]), timeout=10).text
out["bidi"] = [m.text for m in e.Chat(iter([pb.Msg(text=t) for t in "xyz"]), timeout=10)]
try:
    e.Hang(pb.Msg(text="x"), timeout=1)
    out["deadline"] = "answered"
except grpc.RpcError as err:
    out["deadline"] = err.code().name
fut = e.Hang.future(pb.Msg(text="y"), timeout=20)
time.sleep(0.5)
fut.cancel()
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    out["hung"] = e.Say(pb.Msg(text="hung?"), timeout=10).text
    if out["hung"] == "cancelled 2":
        break
    time.sleep(0.1)
print(json.dumps(out))
"""

# A's app: n connections, all open at once (each made its first request), then the sockets
# to B's address counted with ss, then `more` requests on each; paths start with prefix.
# Prints JSON.
CLIENT = r"""
import hashlib, http.client, json, subprocess, sys, threading
vip, b_ip, prefix = sys.argv[1], sys.argv[2], sys.argv[5]
n, more = int(sys.argv[3]), int(sys.argv[4])
opened = threading.Barrier(n + 1, timeout=30)
counted = threading.Barrier(n + 1, timeout=30)
results, errors = [], []
def one(i):
    try:
        conn = http.client.HTTPConnection(vip, 9080, timeout=20)
        for k in range(1 + more):
            path = "%s/c%d/r%d" % (prefix, i, k)
            conn.request("GET", path, headers={"host": "reviews"})
            resp = conn.getresponse()
            body = resp.read()
            want = hashlib.sha256(path.encode()).hexdigest().encode() * 384
            results.append([path, resp.status, body == want])
            if k == 0:
                opened.wait()
                counted.wait()
        conn.close()
    except Exception as e:
        errors.append(repr(e))
        opened.abort()
        counted.abort()
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
opened.wait()
ss = subprocess.run(["ss", "-Htn", "state", "established", "dst", b_ip], capture_output=True,
                    text=True, timeout=10).stdout
app = subprocess.run(["ss", "-Htn", "state", "established", "dst", vip], capture_output=True,
                     text=True, timeout=10).stdout
counted.wait()
for t in threads:
    t.join(60)
print(json.dumps({"results": results, "errors": errors,
                  "to_b": len(ss.splitlines()), "app_connections": len(app.splitlines())}))
"""


def in_pod(pod, *args, check=True, timeout=30):
    return MESH.run(pod, *args, check=check, timeout=timeout)


class Pod(MeshPod):
    def stat(self, name):
        for line in self.admin("/stats").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return int(value)
        raise AssertionError("no %s in %s's /stats" % (name, self.name))

    def write_config(self, certs_dir, h2_upgrade=None):
        proxy = {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy",
                 "metadata": {"name": "sidecar"},
                 "spec": {"adminPort": 15000, "concurrency": 1, "accessLogFormat": "json",
                          "accessLog": self.log, "sidecar": {},
                          "workload": {"name": "app-" + self.name, "namespace": "default",
                                       "serviceAccount": self.name},
                          "identity": {
                              "certificateChain": os.path.join(certs_dir, self.name + ".crt"),
                              "privateKey": os.path.join(certs_dir, self.name + ".key"),
                              "rootCertificates": os.path.join(certs_dir, "mesh-ca.crt")}}}
        if h2_upgrade is not None:
            proxy["spec"]["h2UpgradePolicy"] = h2_upgrade
        se = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "reviews"},
              "spec": {"hosts": ["reviews"], "addresses": [VIP], "location": "MESH_INTERNAL",
                       "resolution": "STATIC",
                       "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                       "endpoints": [{"address": PODS["b"],
                                      "labels": {"security.istio.io/tlsMode": "istio"}}]}}
        se_grpc = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "ratings"},
                   "spec": {"hosts": ["ratings"], "addresses": [VIP_GRPC],
                            "location": "MESH_INTERNAL", "resolution": "STATIC",
                            "ports": [{"number": 9090, "name": "grpc", "protocol": "GRPC"}],
                            "endpoints": [{"address": PODS["b"],
                                           "labels": {"security.istio.io/tlsMode": "istio"}}]}}
        strict = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                  "metadata": {"name": "default", "namespace": "istio-system"},
                  "spec": {"mtls": {"mode": "STRICT"}}}
        path = os.path.join(self.dir, "config", "sidecar.yaml")
        with open(path + ".new", "w") as f:
            yaml.safe_dump_all([proxy, se, se_grpc, strict], f)
        os.rename(path + ".new", path)


@pytest.fixture(scope="module")
def pods(request):
    why_not = netns_usable()
    if why_not:
        pytest.skip(why_not)
    if not os.access(petrel_bin(), os.X_OK):
        pytest.skip("petrel binary not built")
    workdir = tempfile.mkdtemp(prefix="petrel-mesh-h2-")
    os.chmod(workdir, 0o755)
    request.addfinalizer(lambda: (MESH.close(), shutil.rmtree(workdir, ignore_errors=True)))
    binary = os.path.join(workdir, "petrel")
    shutil.copy(petrel_bin(), binary)
    os.chmod(binary, 0o755)
    certs_dir = os.path.join(workdir, "certs")
    os.makedirs(certs_dir)
    ca = certs.make_ca(certs_dir, "mesh-ca")
    for name in PODS:
        certs.make_leaf(certs_dir, name, ca, ["spiffe://cluster.local/ns/default/sa/" + name])
    os.chmod(certs_dir, 0o755)
    for f in os.listdir(certs_dir):
        os.chmod(os.path.join(certs_dir, f), 0o644)

    out = {}
    for name, ip in PODS.items():
        MESH.add_pod(name, ip)
        MESH.capture(name)
        pod = out[name] = Pod(MESH, name, workdir)
        pod.certs_dir = certs_dir
        pod.write_config(certs_dir)
        pod.petrel = MESH.popen(name, [binary, "run", "-c", os.path.join(pod.dir, "config")],
                                uid=PROXY_UID, log_dir=pod.dir, name="petrel")
    MESH.popen("b", ["/usr/bin/python3", "-c", HTTP_APP], log_dir=out["b"].dir, name="app")
    import grpcstubs
    stubs = os.path.join(workdir, "stubs")
    os.makedirs(stubs)
    grpcstubs.load(GRPC_PROTO, "meshgrpc", stubs)
    os.chmod(stubs, 0o755)
    MESH.popen("b", ["/usr/bin/python3", "-c", GRPC_SERVER, stubs], log_dir=out["b"].dir,
               name="grpc")
    out["a"].stubs = stubs

    def ready(pod):
        if pod.petrel.poll() is not None:
            raise AssertionError("petrel in pod %s exited: %s" % (pod.name, pod.stderr()[-2000:]))
        return pod.admin("/ready") != ""

    for pod in out.values():
        wait_until(lambda: ready(pod), 15, what="petrel in pod %s ready" % pod.name)
    probe = "import socket\nsocket.create_connection(('127.0.0.1', 9080), 1).close()"
    wait_until(lambda: in_pod("b", "/usr/bin/python3", "-c", probe, check=False).returncode == 0,
               15, what="the app in pod b")
    probe = probe.replace("9080", "9090")
    wait_until(lambda: in_pod("b", "/usr/bin/python3", "-c", probe, check=False).returncode == 0,
               15, what="the gRPC app in pod b")
    yield out
    for pod in out.values():
        pod.petrel.send_signal(signal.SIGTERM)
        assert pod.petrel.wait(timeout=15) == 0, pod.stderr()[-3000:]
        assert sanitizer_report(pod.stderr()) is None, pod.stderr()[-3000:]


def run_clients(more, prefix):
    out = in_pod("a", "/usr/bin/python3", "-c", CLIENT, VIP, PODS["b"], str(N_CONNECTIONS),
                 str(more), prefix, timeout=120).stdout
    return json.loads(out)


def b_lines(pods, prefix, n):
    """B's access log lines for paths under prefix, once there are n of them."""
    def enough():
        lines = [ln for ln in pods["b"].access_log() if ln["path"].startswith(prefix + "/")]
        return lines if len(lines) >= n else None
    return wait_until(enough, 10, what="%d lines for %s in B's access log" % (n, prefix))


def reload(pod, **kw):
    before = pod.stat("config_generation")
    pod.write_config(pod.certs_dir, **kw)
    pod.petrel.send_signal(signal.SIGHUP)
    wait_until(lambda: pod.stat("config_generation") > before, 10, what="%s reloaded" % pod.name)


def mutual_tls_requests(pods):
    """The sum of B's istio_requests_total series that saw A's principal over mutual TLS."""
    total = 0
    for ln in pods["b"].admin("/stats/prometheus").splitlines():
        if (ln.startswith("istio_requests_total{") and 'reporter="destination"' in ln and
                'connection_security_policy="mutual_tls"' in ln and
                'source_principal="cluster.local/ns/default/sa/a"' in ln):
            total += int(float(ln.rsplit(" ", 1)[1]))
    return total


def test_fifty_app_connections_share_few_http2_connections(pods):
    before = mutual_tls_requests(pods)
    res = run_clients(more=3, prefix="/mux")
    assert res["errors"] == [], res["errors"][:3]
    n = N_CONNECTIONS * 4
    assert len(res["results"]) == n
    bad = [r for r in res["results"] if r[1] != 200 or not r[2]]
    assert bad == [], bad[:3]
    # All 50 app connections were open at the count (each had its answer and waited).
    assert res["app_connections"] >= N_CONNECTIONS, res
    assert 1 <= res["to_b"] <= 2, res
    lines = b_lines(pods, "/mux", n)
    assert len(lines) == n
    assert {ln["protocol"] for ln in lines} == {"HTTP/2"}, {ln["protocol"] for ln in lines}
    assert {ln["downstream_peer_principal"] for ln in lines} == {"cluster.local/ns/default/sa/a"}
    assert {ln["response_code"] for ln in lines} == {200}
    assert mutual_tls_requests(pods) - before == n


def test_http2_app_across_too(pods):
    """An app that speaks h2c itself (curl with prior knowledge) reaches B's HTTP/1.1 app the
    same way: its stream rides the sidecars' HTTP/2 connection."""
    out = in_pod("a", "curl", "-s", "--http2-prior-knowledge", "--max-time", "10", "-o",
                 "/dev/null", "-w", "%{http_version} %{http_code} %{size_download}",
                 "-H", "host: reviews", "http://%s:9080/h2app/x" % VIP).stdout
    assert out == "2 200 24576", out
    lines = b_lines(pods, "/h2app", 1)
    assert [(ln["protocol"], ln["response_code"]) for ln in lines] == [("HTTP/2", 200)]


def s_client(d, alpn=None):
    """openssl s_client from pod A with A's workload certificate (in d), as uid 1337 (not
    captured), straight to B's inbound: one HTTP/1.1 request; the session summary and the
    answer."""
    argv = ["setpriv", "--reuid=%d" % PROXY_UID, "--regid=%d" % PROXY_UID, "--clear-groups",
            "openssl", "s_client", "-connect", PODS["b"] + ":9080", "-ign_eof",
            "-cert", os.path.join(d, "a.crt"), "-key", os.path.join(d, "a.key"),
            "-CAfile", os.path.join(d, "mesh-ca.crt")]
    if alpn is not None:
        argv += ["-alpn", alpn]
    request = "GET /sclient HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n"
    return subprocess.run(MESH.command("a", argv), input=request, capture_output=True, text=True,
                          errors="replace", timeout=30).stdout


def test_inbound_alpn_as_istio_and_http1_clients_still_served(pods):
    d = pods["a"].certs_dir
    # What a peer sidecar offers for HTTP/2 gets h2.
    out = s_client(d, "istio-h2,istio,h2")
    assert "ALPN protocol: h2" in out, out[-1500:]
    # Only istio-h2: the in-mesh name itself.
    out = s_client(d, "istio-h2")
    assert "ALPN protocol: istio-h2" in out, out[-1500:]
    # An HTTP/1-only TLS client, and one without ALPN, are served HTTP/1.1.
    for alpn in ("http/1.1", "istio-http/1.1,istio,http/1.1", None):
        out = s_client(d, alpn)
        want = "No ALPN negotiated" if alpn is None else "ALPN protocol: http/1.1"
        assert want in out, (alpn, out[-1500:])
        assert "HTTP/1.1 200 OK" in out, (alpn, out[-1500:])


def test_explicit_do_not_upgrade_keeps_http1_between_sidecars(pods):
    a = pods["a"]
    try:
        reload(a, h2_upgrade="DO_NOT_UPGRADE")
        res = run_clients(more=0, prefix="/h1")
        assert res["errors"] == [] and all(r[1] == 200 and r[2] for r in res["results"]), res
        # An mTLS connection for each request in flight, HTTP/1.1 on each.
        assert res["to_b"] > 2, res
        lines = b_lines(pods, "/h1", N_CONNECTIONS)
        assert {ln["protocol"] for ln in lines} == {"HTTP/1.1"}
    finally:
        reload(a)


def test_grpc_calls_across_both_sidecars(pods):
    """grpcio in A to grpcio in B: A's sidecar sees the HTTP/2 preface on the captured
    connection, routes the GRPC port over mesh mTLS as HTTP/2, and B's inbound hands each
    call to the app as HTTP/2 (a gRPC call to the original destination keeps the client's
    protocol)."""
    before = mutual_tls_requests(pods)
    out = json.loads(in_pod("a", "/usr/bin/python3", "-c", GRPC_CLIENT, pods["a"].stubs,
                            VIP_GRPC, timeout=90).stdout)
    assert out["unary"] == "say hi"
    assert out["server"] == ["0", "1", "2", "3", "4"]
    assert out["client"] == "a,b,c"
    assert out["bidi"] == ["re x", "re y", "re z"]
    assert out["deadline"] == "DEADLINE_EXCEEDED"
    assert out["hung"] == "cancelled 2", out  # the expired call and the cancelled one
    lines = b_lines(pods, "/petrel.meshgrpc.Echo", 1)
    assert {ln["protocol"] for ln in lines} == {"HTTP/2"}
    assert {ln["downstream_peer_principal"] for ln in lines} == {"cluster.local/ns/default/sa/a"}
    assert mutual_tls_requests(pods) > before
