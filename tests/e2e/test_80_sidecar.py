"""tests/e2e/test_80_sidecar.py -- Petrel as a sidecar, with real traffic capture.

Three network namespaces are three pods (A, B, C) on one bridge (in a fourth namespace). Each
pod runs docker/petrel-iptables.sh, a real Petrel as uid 1337 (setpriv) with Proxy
spec.sidecar, and real app servers: an HTTP app on 9080 (answers with its pod name and the
Host it saw), a plain HTTP server on 8081 that no config knows, and a server-first TCP
service on 7000 (sends a banner, then echoes). The app in pod A is the client:

  - A asks the service VIP 10.96.0.10:9080 with Host `reviews` (its other short forms, and
    the VIP itself):
    app A -> Petrel A (outbound, 15001) -> B or C by the VirtualService -> Petrel B/C (inbound,
    15006) -> the app on 127.0.0.1:9080; both sidecars' access logs show each request once;
  - a header-matched route pins B; a weighted 75/25 split lands on B and C within 4 points
    over 2000 requests; a reload (SIGHUP) changes the routes;
  - unknown HTTP passes through to its original address (PassthroughCluster);
  - a server-first TCP protocol works after protocol detection times out, and a client-first
    binary payload arrives whole and in order;
  - TCP to a ServiceEntry address goes to that service, a VirtualService tcp route with
    destinationSubnets picking another service for one of its addresses;
  - Petrel's own upstream connections are not captured again (uid 1337), and a client that
    connects to 15001 directly is refused instead of looping;
  - outboundTrafficPolicy REGISTRY_ONLY (after a reload): unknown HTTP gets 502, unknown TCP
    is closed, known services still work;
  - docker/petrel-iptables.sh: apply twice, clean, a refused option, and rule-for-rule
    equality with istio-iptables' own test output.

Needs root and `ip netns`; skipped otherwise. Namespaces and processes are removed even when a
test fails (fixture finalizer).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading

import pytest
import yaml

import certs
from netns import Mesh, MeshPod, usable as netns_usable
from netutil import wait_until
from petrel import ISTIO, petrel_bin, sanitizer_report

SUFFIX = "%d" % os.getpid()
MESH = Mesh("pt")
PODS = {"a": "10.77.0.10", "b": "10.77.0.11", "c": "10.77.0.12"}
VIP = "10.96.0.10"
ECHO_VIP, ECHO_VIP_C = "10.96.0.20", "10.96.0.21"
PROXY_UID = 1337

HTTP_APP = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
pod, port = sys.argv[1], int(sys.argv[2])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"pod": pod, "host": self.headers.get("host"), "path": self.path,
                           "port": port}).encode()
        # One write: a head and a body written apart meet Nagle and delayed ACKs (40 ms).
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
    def log_message(self, *a):
        pass
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()
"""

BANNER_APP = r"""
import socketserver, sys
pod = sys.argv[1]
class H(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"BANNER " + pod.encode() + b"\n")
        while True:
            d = self.request.recv(65536)
            if not d:
                return
            self.request.sendall(d)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 7000), H).serve_forever()
"""

# Runs in a pod: one keep-alive connection, the requests of argv[1] (JSON), results as JSON.
HTTP_CLIENT = r"""
import http.client, json, sys
spec = json.loads(sys.argv[1])
out = []
conn = http.client.HTTPConnection(spec["ip"], spec["port"], timeout=10)
for r in spec["requests"]:
    conn.request("GET", r.get("path", "/"), headers=r.get("headers", {}))
    resp = conn.getresponse()
    out.append([resp.status, resp.read().decode("latin-1")])
print(json.dumps(out))
"""

TCP_CLIENT = r"""
import json, random, socket, sys
spec = json.loads(sys.argv[1])
s = socket.create_connection((spec["ip"], spec["port"]), timeout=10)
payload = b""
if spec.get("send_first"):
    payload = bytes.fromhex(spec["send_first"]) + random.Random(7).randbytes(spec["random_bytes"])
if payload:
    s.sendall(payload)
want = spec["expect_len"]
got = b""
while len(got) < want:
    try:
        d = s.recv(65536)
    except ConnectionResetError:
        break
    if not d:
        break
    got += d
    if not payload and got.endswith(b"\n") and spec.get("then"):
        s.sendall(spec["then"].encode())
        want += len(spec["then"])
        spec["then"] = None
s.close()
print(json.dumps({"data": got.hex()}))
"""

# Connects to Petrel's own outbound port (no redirect): it must close without answering.
DIRECT_CLIENT = r"""
import json, socket
s = socket.create_connection(("127.0.0.1", 15001), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n")
try:
    data = s.recv(65536)
except ConnectionResetError:
    data = b""
print(json.dumps({"data": data.hex()}))
"""


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


def in_pod(pod, *args, check=True):
    return MESH.run(pod, *args, check=check)


def run_in_pod(pod, code, arg):
    out = in_pod(pod, "/usr/bin/python3", "-c", code, json.dumps(arg)).stdout
    return json.loads(out)


def istio_docs(detect_ms):
    # No prometheusPort / healthPort: each pod's sidecar serves Istio's 15090 and 15021 in its
    # own network namespace (test_sidecar_serves_istios_prometheus_and_health_ports).
    proxy = {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "sidecar"},
             "spec": {"adminPort": 15000, "concurrency": 1, "accessLogFormat": "json",
                      "sidecar": {"protocolDetectionTimeout": "%dms" % detect_ms}}}
    se = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "reviews"},
          "spec": {"hosts": ["reviews"], "addresses": [VIP], "location": "MESH_INTERNAL",
                   "resolution": "STATIC",
                   "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                   "endpoints": [{"address": PODS["b"], "labels": {"version": "v1"}},
                                 {"address": PODS["c"], "labels": {"version": "v2"}}]}}
    dr = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "reviews"},
          "spec": {"host": "reviews",
                   "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                               {"name": "v2", "labels": {"version": "v2"}}]}}
    vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "reviews"},
          "spec": {"hosts": ["reviews"], "http": [
              {"match": [{"headers": {"x-pin": {"exact": "v1"}}}],
               "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
              {"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 75},
                         {"destination": {"host": "reviews", "subset": "v2"}, "weight": 25}]}]}}
    # TCP by address: VIPs .20 and .21 are the echo service (pod B); a tcp route sends .21
    # (destinationSubnets) to echo-c (pod C).
    echo = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "echo"},
            "spec": {"hosts": ["echo"], "addresses": [ECHO_VIP, ECHO_VIP_C],
                     "location": "MESH_INTERNAL", "resolution": "STATIC",
                     "ports": [{"number": 7000, "name": "tcp", "protocol": "TCP"}],
                     "endpoints": [{"address": PODS["b"]}]}}
    echo_c = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "echo-c"},
              "spec": {"hosts": ["echo-c"], "location": "MESH_INTERNAL", "resolution": "STATIC",
                       "ports": [{"number": 7000, "name": "tcp", "protocol": "TCP"}],
                       "endpoints": [{"address": PODS["c"]}]}}
    echo_vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "echo"},
               "spec": {"hosts": ["echo"], "tcp": [
                   {"match": [{"port": 7000, "destinationSubnets": [ECHO_VIP_C + "/32"]}],
                    "route": [{"destination": {"host": "echo-c"}}]}]}}
    return [proxy, se, dr, vs, echo, echo_c, echo_vs]


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def mesh(request):
    why_not = netns_usable()
    if why_not:
        pytest.skip(why_not)
    if not os.access(petrel_bin(), os.X_OK):
        pytest.skip("petrel binary not built")
    workdir = tempfile.mkdtemp(prefix="petrel-sidecar-")
    os.chmod(workdir, 0o755)
    binary = os.path.join(workdir, "petrel")
    shutil.copy(petrel_bin(), binary)
    os.chmod(binary, 0o755)
    pods = {}
    request.addfinalizer(lambda: (MESH.close(), shutil.rmtree(workdir, ignore_errors=True)))

    for name, ip in PODS.items():
        # The service VIPs (10.96.0.0/16) get a route through eth0: the sidecar redirects
        # before it is ever used.
        MESH.add_pod(name, ip)
        pods[name] = MeshPod(MESH, name, workdir)
        MESH.capture(name)

    for name, pod in pods.items():
        docs = istio_docs(detect_ms=150)
        docs[0]["spec"]["accessLog"] = pod.log
        docs[0]["spec"]["workload"] = {"name": "app-" + name, "namespace": "default"}
        with open(os.path.join(pod.dir, "config", "sidecar.yaml"), "w") as f:
            yaml.safe_dump_all(docs, f)
        pod.petrel = pod.start([binary, "run", "-c", os.path.join(pod.dir, "config")],
                               uid=PROXY_UID, name="petrel")
        pod.start(["/usr/bin/python3", "-c", HTTP_APP, name, "9080"], name="app9080")
        pod.start(["/usr/bin/python3", "-c", HTTP_APP, name + "-unknown", "8081"], name="app8081")
        pod.start(["/usr/bin/python3", "-c", BANNER_APP, name], name="banner")

    def ready(pod):
        if pod.petrel.poll() is not None:
            raise AssertionError("petrel in pod %s exited: %s" % (pod.name, pod.stderr()[-2000:]))
        return pod.admin("/ready") != ""

    probe = "import socket\nfor p in (9080, 8081, 7000):\n    socket.create_connection(('127.0.0.1', p), 1).close()"
    for pod in pods.values():
        wait_until(lambda: ready(pod), 15, what="petrel in pod %s ready" % pod.name)
        wait_until(lambda: in_pod(pod.name, "/usr/bin/python3", "-c", probe,
                                  check=False).returncode == 0, 15,
                   what="apps in pod %s" % pod.name)
    yield pods
    # Every Petrel stops cleanly on SIGTERM, with nothing from a sanitizer.
    for pod in pods.values():
        pod.petrel.send_signal(signal.SIGTERM)
        assert pod.petrel.wait(timeout=15) == 0, pod.stderr()[-3000:]
        assert sanitizer_report(pod.stderr()) is None, pod.stderr()[-3000:]


def stat_of(pod, name):
    for line in pod.admin("/stats").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return int(value)
    raise AssertionError("no %s in %s's /stats" % (name, pod.name))


def requests_from_a(requests, ip=VIP, port=9080):
    return run_in_pod("a", HTTP_CLIENT, {"ip": ip, "port": port, "requests": requests})


def lines_for(pod, paths):
    return [line for line in pod.access_log() if line["path"] in paths]


def settle(pods, marker):
    """Sends one more request through A to B and waits for it in every log given: each
    sidecar has one worker, so its log holds every earlier line once the marker is there."""
    requests_from_a([{"path": marker, "headers": {"host": "reviews", "x-pin": "v1"}}])
    for pod in pods:
        wait_until(lambda: lines_for(pod, {marker}), 5, what="%s in %s's log" % (marker, pod.name))


def test_app_to_app_through_both_sidecars(mesh):
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    hosts = ["reviews", "reviews:9080", "reviews.default", "reviews.default.svc",
             "reviews.default.svc.cluster.local", VIP + ":9080"]
    paths = ["/both/%d" % i for i in range(len(hosts))]
    out = requests_from_a([{"path": paths[i], "headers": {"host": h, "x-pin": "v1"}}
                           for i, h in enumerate(hosts)])
    for i, (status, body) in enumerate(out):
        assert status == 200, (hosts[i], status, body)
        seen = json.loads(body)
        assert seen["pod"] == "b" and seen["path"] == paths[i], seen
        assert seen["host"] == hosts[i]
    settle([a, b], "/both/marker")
    out_lines = lines_for(a, set(paths))
    in_lines = lines_for(b, set(paths))
    # Exactly once in each sidecar: Petrel A's own connection to B was not captured again.
    assert len(out_lines) == len(hosts) and len(in_lines) == len(hosts), (out_lines, in_lines)
    assert lines_for(c, set(paths)) == []
    for line in out_lines:
        assert line["upstream_host"] == PODS["b"] + ":9080", line
        assert line["response_code"] == 200
    assert sorted(line["authority"] for line in out_lines) == sorted(hosts)
    for line in in_lines:
        assert line["upstream_host"] == "127.0.0.1:9080", line
    prom = a.admin("/stats/prometheus")
    assert 'destination_service="reviews.default.svc.cluster.local"' in prom
    assert 'destination_service="InboundPassthroughCluster"' in b.admin("/stats/prometheus")


def test_sidecar_serves_istios_prometheus_and_health_ports(mesh):
    """A Proxy with spec.sidecar and no port fields: Istio's 15090 (/stats/prometheus only)
    and 15021 (/healthz/ready only), as the pod's annotations and probes expect."""
    requests_from_a([{"path": "/prom", "headers": {"host": "reviews", "x-pin": "v1"}}])

    def get(port, path):
        out = in_pod("a", "curl", "-s", "--max-time", "5", "-o", "/dev/stderr", "-w",
                     "%{http_code}", "http://127.0.0.1:%d%s" % (port, path), check=False)
        return out.stdout, out.stderr

    code, body = get(15090, "/stats/prometheus")
    assert code == "200" and "istio_requests_total{" in body, (code, body[:500])
    assert get(15090, "/stats")[0] == "404"
    assert get(15021, "/healthz/ready")[0] == "200"
    assert get(15021, "/stats/prometheus")[0] == "404"
    listeners = mesh["a"].admin("/listeners").splitlines()
    assert "prometheus::127.0.0.1:15090::/stats/prometheus" in listeners, listeners
    assert "health::127.0.0.1:15021::/healthz/ready" in listeners, listeners


def test_weighted_split_across_two_pods(mesh):
    n = 2000
    out = requests_from_a([{"path": "/split", "headers": {"host": "reviews"}}] * n)
    pods = [json.loads(body)["pod"] for status, body in out if status == 200]
    assert len(pods) == n
    share_b = pods.count("b") / n
    # 75/25 over 2000 draws: sigma is 1 point; 4 points is beyond 4 sigma.
    assert abs(share_b - 0.75) < 0.04, share_b
    assert pods.count("c") > 0


def test_unknown_http_passes_through(mesh):
    a, c = mesh["a"], mesh["c"]
    out = requests_from_a([{"path": "/ext", "headers": {"host": "unknown.example"}}],
                          ip=PODS["c"], port=8081)
    assert out[0][0] == 200
    seen = json.loads(out[0][1])
    assert seen["pod"] == "c-unknown" and seen["host"] == "unknown.example"
    wait_until(lambda: lines_for(a, {"/ext"}) and lines_for(c, {"/ext"}), 5, what="logs")
    assert lines_for(a, {"/ext"})[0]["upstream_host"] == PODS["c"] + ":8081"
    assert lines_for(c, {"/ext"})[0]["upstream_host"] == "127.0.0.1:8081"
    assert 'destination_service="PassthroughCluster"' in a.admin("/stats/prometheus")


def test_http2_prior_knowledge_is_captured(mesh):
    # An app speaking HTTP/2 with prior knowledge: on the declared HTTP port it is routed by the
    # mesh table (to B, as HTTP/1 between the sidecars); on a port detected from the first
    # bytes, the preface is recognised and the request passes through to the original
    # destination.
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    for url, path, pod in (("http://%s:9080/h2/mesh" % VIP, "/h2/mesh", b),
                           ("http://%s:8081/h2/ext" % PODS["c"], "/h2/ext", c)):
        r = in_pod("a", "curl", "-sS", "--max-time", "10", "--http2-prior-knowledge",
                   "-H", "x-pin: v1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url)
        assert r.stdout == "2 200", (url, r.stdout, r.stderr)
        wait_until(lambda: lines_for(a, {path}) and lines_for(pod, {path}), 5, what="logs")
        assert lines_for(a, {path})[0]["protocol"] == "HTTP/2", lines_for(a, {path})


def test_known_port_unknown_host_passes_through(mesh):
    # Port 9080 has a route table, but no service named like this: the original address.
    out = requests_from_a([{"path": "/x", "headers": {"host": "elsewhere.example"}}],
                          ip=PODS["c"], port=9080)
    assert out[0][0] == 200 and json.loads(out[0][1])["pod"] == "c"


def test_resolution_none_and_passthrough_balancer_go_to_the_original_destination(mesh):
    """A ServiceEntry with resolution NONE (Istio's default), and one whose DestinationRule
    balancer is PASSTHROUGH, send each request to the address the app dialled (pod B), not to
    an endpoint (pod C is the STATIC one's only endpoint)."""
    a = mesh["a"]
    none_se = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "plain"},
               "spec": {"hosts": ["plain.example"], "location": "MESH_EXTERNAL",
                        "ports": [{"number": 8081, "name": "http", "protocol": "HTTP"}]}}
    static_se = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "pinned"},
                 "spec": {"hosts": ["pinned.example"], "location": "MESH_EXTERNAL",
                          "resolution": "STATIC",
                          "ports": [{"number": 8081, "name": "http", "protocol": "HTTP"}],
                          "endpoints": [{"address": PODS["c"]}]}}
    passthrough = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "pinned"},
                   "spec": {"host": "pinned.example",
                            "trafficPolicy": {"loadBalancer": {"simple": "PASSTHROUGH"}}}}
    try:
        reconfigure(a, [none_se, static_se])
        out = requests_from_a([{"path": "/n", "headers": {"host": "plain.example"}},
                               {"path": "/s", "headers": {"host": "pinned.example"}}],
                              ip=PODS["b"], port=8081)
        assert [(st, json.loads(body)["pod"]) for st, body in out] == \
            [(200, "b-unknown"), (200, "c-unknown")], out
        reconfigure(a, [none_se, static_se, passthrough])
        out = requests_from_a([{"path": "/p", "headers": {"host": "pinned.example"}}],
                              ip=PODS["b"], port=8081)
        assert (out[0][0], json.loads(out[0][1])["pod"]) == (200, "b-unknown"), out
    finally:
        reconfigure(a, [])


def test_server_first_tcp_after_detection_timeout(mesh):
    banner = b"BANNER b\n"
    timeouts = stat_of(mesh["a"], "capture_detect_timeout")
    out = run_in_pod("a", TCP_CLIENT, {"ip": PODS["b"], "port": 7000, "send_first": "",
                                       "expect_len": len(banner), "then": "ping\n"})
    assert bytes.fromhex(out["data"]) == banner + b"ping\n"
    # The client spoke second: both sidecars waited out the detection, then relayed.
    assert stat_of(mesh["a"], "capture_detect_timeout") == timeouts + 1
    assert stat_of(mesh["b"], "capture_detect_timeout") >= 1
    prom = mesh["a"].admin("/stats/prometheus")
    assert "istio_tcp_connections_opened_total" in prom and "PassthroughCluster" in prom


def test_tcp_to_a_service_address_follows_tcp_routes(mesh):
    def banner_via(vip):
        out = run_in_pod("a", TCP_CLIENT, {"ip": vip, "port": 7000, "send_first": "",
                                           "expect_len": len(b"BANNER b\n"), "then": "hi\n"})
        return bytes.fromhex(out["data"])

    timeouts = stat_of(mesh["a"], "capture_detect_timeout")
    assert banner_via(ECHO_VIP) == b"BANNER b\nhi\n"
    assert banner_via(ECHO_VIP_C) == b"BANNER c\nhi\n"
    # The service declares protocol TCP: relayed at once, nothing waited for detection.
    assert stat_of(mesh["a"], "capture_detect_timeout") == timeouts
    prom = mesh["a"].admin("/stats/prometheus")
    assert 'destination_service="echo.default.svc.cluster.local"' in prom
    assert 'destination_service="echo-c.default.svc.cluster.local"' in prom


def test_client_first_binary_relayed_whole_and_in_order(mesh):
    # Starts like TLS: not HTTP/1, decided on the first bytes.
    payload = b"\x16\x03\x01" + random.Random(7).randbytes(200000)
    banner = b"BANNER c\n"
    out = run_in_pod("a", TCP_CLIENT, {"ip": PODS["c"], "port": 7000, "send_first": "160301",
                                       "random_bytes": 200000,
                                       "expect_len": len(banner) + len(payload)})
    got = bytes.fromhex(out["data"])
    assert got == banner + payload


def test_direct_connection_to_capture_port_is_refused_not_looped(mesh):
    a = mesh["a"]
    refused = stat_of(a, "capture_cx_not_redirected")
    out = run_in_pod("a", DIRECT_CLIENT, {})
    assert out["data"] == ""
    assert stat_of(a, "capture_cx_not_redirected") == refused + 1
    settle([a], "/direct/marker")
    assert [line for line in a.access_log() if line["path"] == "/"] == []
    assert a.petrel.poll() is None


def reconfigure(pod, extra_docs, identity=None):
    """Rewrites pod's config (Istio's docs plus extra_docs, and with identity — a dict of the
    Proxy's spec.identity — the workload certificate and Istio's tlsMode label on the
    service's endpoints, so sidecars speak mTLS to each other), reloads and waits for it."""
    docs = istio_docs(detect_ms=150) + list(extra_docs)
    docs[0]["spec"]["accessLog"] = pod.log
    docs[0]["spec"]["workload"] = {"name": "app-" + pod.name, "namespace": "default",
                                   "serviceAccount": pod.name}
    if identity is not None:
        docs[0]["spec"]["identity"] = identity
        for ep in docs[1]["spec"]["endpoints"]:
            ep["labels"]["security.istio.io/tlsMode"] = "istio"
    before = stat_of(pod, "config_generation")
    path = os.path.join(pod.dir, "config", "sidecar.yaml")
    with open(path + ".new", "w") as f:
        yaml.safe_dump_all(docs, f)
    os.rename(path + ".new", path)
    pod.petrel.send_signal(signal.SIGHUP)
    wait_until(lambda: stat_of(pod, "config_generation") > before, 10,
               what="%s reloaded" % pod.name)


def test_authorization_policy_applies_inbound_only(mesh):
    """The same mesh-wide DENY policy in both sidecars: A's outbound never applies it, B's
    inbound does, for HTTP (403, flag RBAC in B's log) and for TCP (the connection closed)."""
    a, b = mesh["a"], mesh["b"]
    deny = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-admin", "namespace": "istio-system"},
            "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]},
                                                 {"to": [{"operation": {"ports": ["7000"]}}]}]}}
    try:
        for pod in (a, b):
            reconfigure(pod, [deny])
        out = requests_from_a([{"path": "/admin/x", "headers": {"host": "reviews", "x-pin": "v1"}},
                               {"path": "/fine", "headers": {"host": "reviews", "x-pin": "v1"}}])
        assert [status for status, _ in out] == [403, 200], out
        assert out[0][1] == "RBAC: access denied"
        settle([a, b], "/authz-settle")
        assert [line["response_flags"] for line in lines_for(b, {"/admin/x"})] == ["RBAC"]
        assert [line["response_flags"] for line in lines_for(a, {"/admin/x"})] == ["-"]
        # TCP to the echo service (port 7000, pod B): B's sidecar closes it unanswered
        tcp = run_in_pod("a", TCP_CLIENT, {"ip": ECHO_VIP, "port": 7000, "send_first": "",
                                           "expect_len": 1, "then": None})
        assert tcp["data"] == ""
        assert stat_of(b, "rbac_denied") >= 2 and stat_of(a, "rbac_denied") == 0
    finally:
        for pod in (a, b):
            reconfigure(pod, [])


def mesh_certs(d):
    """A mesh CA, a certificate per pod (SPIFFE IDs in cluster.local), and the bad ones: from
    another CA, expired, and from another trust domain. Readable by the proxy's uid."""
    os.makedirs(d, exist_ok=True)
    mesh_ca = certs.make_ca(d, "mesh-ca")
    other_ca = certs.make_ca(d, "other-ca")
    for pod in ("a", "b", "b2"):
        certs.make_leaf(d, pod, mesh_ca, ["spiffe://cluster.local/ns/default/sa/%s" % pod[0]])
    certs.make_leaf(d, "stranger", other_ca, ["spiffe://cluster.local/ns/default/sa/a"])
    certs.make_leaf(d, "expired", mesh_ca, ["spiffe://cluster.local/ns/default/sa/a"],
                    expired=True)
    certs.make_leaf(d, "foreign", mesh_ca, ["spiffe://other.domain/ns/default/sa/a"])
    os.chmod(d, 0o755)


def identity_of(d, name):
    return {"certificateChain": os.path.join(d, name + ".crt"),
            "privateKey": os.path.join(d, name + ".key"),
            "rootCertificates": os.path.join(d, "mesh-ca.crt")}


# A TLS client run as the proxy's uid in pod A, so that A's sidecar does not capture it: it
# reaches B's inbound capture directly, as a workload outside the mesh would.
TLS_PROBE = r"""
import json, socket, ssl, sys
spec = json.loads(sys.argv[1])
try:
    raw = socket.create_connection((spec["ip"], spec["port"]), timeout=10)
    if spec.get("plaintext"):
        raw.sendall(b"GET /probe HTTP/1.1\r\nhost: reviews\r\n\r\n")
        data = raw.recv(65536)
        print(json.dumps({"ok": bool(data), "data": data.decode("latin-1")}))
        sys.exit(0)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if spec.get("tls11"):
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if spec.get("cert"):
        ctx.load_cert_chain(spec["cert"], spec["key"])
    t = ctx.wrap_socket(raw)
    t.sendall(b"GET /probe HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n")
    data = t.recv(65536)
    print(json.dumps({"ok": data.startswith(b"HTTP/1.1 200"), "data": data[:200].decode("latin-1")}))
except (OSError, ssl.SSLError) as e:
    print(json.dumps({"ok": False, "data": repr(e)}))
"""


def probe_b(mesh, **spec):
    spec.update({"ip": PODS["b"], "port": 9080})
    out = in_pod("a", "setpriv", "--reuid=%d" % PROXY_UID, "--regid=%d" % PROXY_UID,
                 "--clear-groups", "/usr/bin/python3", "-c", TLS_PROBE, json.dumps(spec)).stdout
    return json.loads(out)


def test_strict_mtls_between_sidecars(mesh):
    """Pods A and B with workload certificates and a mesh-wide STRICT PeerAuthentication in B:
    A's sidecar speaks mTLS to B's (Istio's auto mTLS), B sees A's SPIFFE principal; a
    plaintext client, one without a certificate, one from another CA, an expired one, one from
    another trust domain and TLS 1.1 are all refused at B; the valid one passes; B's certificate
    rotated under load drops no request."""
    a, b = mesh["a"], mesh["b"]
    d = os.path.join(os.path.dirname(a.dir), "certs")
    mesh_certs(d)
    strict = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": "istio-system"},
              "spec": {"mtls": {"mode": "STRICT"}}}
    b_identity = {"certificateChain": os.path.join(d, "b-live.crt"),
                  "privateKey": os.path.join(d, "b-live.key"),
                  "rootCertificates": os.path.join(d, "mesh-ca.crt")}
    for ext in (".crt", ".key"):
        shutil.copy(os.path.join(d, "b" + ext), os.path.join(d, "b-live" + ext))
        os.chmod(os.path.join(d, "b-live" + ext), 0o644)
    try:
        reconfigure(a, [], identity=identity_of(d, "a"))
        reconfigure(b, [strict], identity=b_identity)
        out = requests_from_a([{"path": "/mtls", "headers": {"host": "reviews", "x-pin": "v1"}}])
        assert out[0][0] == 200 and json.loads(out[0][1])["pod"] == "b", out
        settle([b], "/mtls-settle")
        principals = [line.get("downstream_peer_principal") for line in lines_for(b, {"/mtls"})]
        assert principals == ["cluster.local/ns/default/sa/a"], principals
        # Istio's labels: B reports as the destination, A as the source
        b_series = [ln for ln in b.admin("/stats/prometheus").splitlines()
                    if ln.startswith("istio_requests_total{") and 'reporter="destination"' in ln]
        assert any('source_principal="cluster.local/ns/default/sa/a"' in ln and
                   'source_workload_namespace="default"' in ln and
                   'destination_workload="app-b"' in ln and
                   'destination_principal="cluster.local/ns/default/sa/b"' in ln and
                   'connection_security_policy="mutual_tls"' in ln for ln in b_series), b_series
        a_series = [ln for ln in a.admin("/stats/prometheus").splitlines()
                    if ln.startswith("istio_requests_total{") and 'reporter="source"' in ln]
        assert any('source_workload="app-a"' in ln and
                   'source_principal="cluster.local/ns/default/sa/a"' in ln and
                   'destination_service="reviews.default.svc.cluster.local"' in ln
                   for ln in a_series), a_series
        # Clients outside the mesh, straight to B
        assert not probe_b(mesh, plaintext=True)["ok"]
        assert not probe_b(mesh)["ok"]  # TLS without a certificate
        for bad in ("stranger", "expired", "foreign"):
            res = probe_b(mesh, cert=os.path.join(d, bad + ".crt"), key=os.path.join(d, bad + ".key"))
            assert not res["ok"], (bad, res)
        assert not probe_b(mesh, tls11=True, cert=os.path.join(d, "a.crt"),
                           key=os.path.join(d, "a.key"))["ok"]
        assert probe_b(mesh, cert=os.path.join(d, "a.crt"), key=os.path.join(d, "a.key"))["ok"]
        # B's certificate rotated (write aside, rename) while A keeps sending: no failure
        before = stat_of(b, "config_generation")
        results = []
        sender = threading.Thread(target=lambda: results.extend(requests_from_a(
            [{"path": "/rotate", "headers": {"host": "reviews", "x-pin": "v1"}}] * 300)))
        sender.start()
        for ext in (".crt", ".key"):
            shutil.copy(os.path.join(d, "b2" + ext), os.path.join(d, "b-live" + ext + ".new"))
            os.chmod(os.path.join(d, "b-live" + ext + ".new"), 0o644)
        for ext in (".crt", ".key"):
            os.rename(os.path.join(d, "b-live" + ext + ".new"), os.path.join(d, "b-live" + ext))
        # B's identity files came with a reload, not at start-up, so they are not watched yet
        # (Petrel says so in its log; test_62_identity.py covers the watched case): SIGHUP.
        b.petrel.send_signal(signal.SIGHUP)
        sender.join(60)
        assert not sender.is_alive()
        assert len(results) == 300 and all(st == 200 for st, _ in results), \
            [r for r in results if r[0] != 200][:3]
        wait_until(lambda: stat_of(b, "config_generation") > before, 10, what="B reloaded")
    finally:
        for pod in (a, b):
            reconfigure(pod, [])


def test_reload_changes_mesh_routes_without_restart(mesh):
    """Runs last among the mesh tests: it leaves pod A routing reviews to pod C only."""
    a = mesh["a"]
    docs = istio_docs(detect_ms=150)
    docs[0]["spec"]["accessLog"] = a.log
    docs[0]["spec"]["workload"] = {"name": "app-a", "namespace": "default"}
    docs[3]["spec"]["http"] = [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]
    path = os.path.join(a.dir, "config", "sidecar.yaml")
    with open(path + ".new", "w") as f:
        yaml.safe_dump_all(docs, f)
    os.rename(path + ".new", path)
    a.petrel.send_signal(signal.SIGHUP)

    def all_on_c():
        out = requests_from_a([{"path": "/reload", "headers": {"host": "reviews"}}] * 20)
        return all(status == 200 and json.loads(body)["pod"] == "c" for status, body in out)

    wait_until(all_on_c, 10, what="the reloaded route in force")
    assert a.petrel.poll() is None


def test_registry_only_refuses_what_no_service_names(mesh):
    """After the reload test: pod A switches to outboundTrafficPolicy REGISTRY_ONLY."""
    a = mesh["a"]
    docs = istio_docs(detect_ms=150)
    docs[0]["spec"]["accessLog"] = a.log
    docs[0]["spec"]["sidecar"]["outboundTrafficPolicy"] = {"mode": "REGISTRY_ONLY"}
    path = os.path.join(a.dir, "config", "sidecar.yaml")
    with open(path + ".new", "w") as f:
        yaml.safe_dump_all(docs, f)
    os.rename(path + ".new", path)
    a.petrel.send_signal(signal.SIGHUP)

    def unknown_refused():
        out = requests_from_a([{"path": "/ro", "headers": {"host": "unknown.example"}}],
                              ip=PODS["c"], port=8081)
        return out[0][0] == 502

    wait_until(unknown_refused, 10, what="REGISTRY_ONLY in force")
    # Known services still work, by name and by address.
    out = requests_from_a([{"path": "/ro-known", "headers": {"host": "reviews", "x-pin": "v1"}}])
    assert out[0][0] == 200 and json.loads(out[0][1])["pod"] == "b"
    out = run_in_pod("a", TCP_CLIENT, {"ip": ECHO_VIP, "port": 7000, "send_first": "",
                                       "expect_len": len(b"BANNER b\n"), "then": "ok\n"})
    assert bytes.fromhex(out["data"]) == b"BANNER b\nok\n"
    # TCP to an address no ServiceEntry has: closed, never relayed (Envoy's BlackHoleCluster).
    closed = stat_of(a, "capture_cx_blackholed")
    out = run_in_pod("a", TCP_CLIENT, {"ip": PODS["b"], "port": 7000, "send_first": "",
                                       "expect_len": 1})
    assert out["data"] == ""
    assert stat_of(a, "capture_cx_blackholed") == closed + 1


def test_iptables_script_apply_twice_clean_and_refuse(tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
        pytest.skip("needs root, ip and iptables")
    ns = "ptipt" + SUFFIX
    script = os.path.join(REPO, "docker/petrel-iptables.sh")
    sh("ip", "netns", "add", ns)
    try:
        def nat():
            out = sh("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-S").stdout
            return sorted(out.splitlines())

        before = nat()
        sh("ip", "netns", "exec", ns, "sh", script, "-d", "22", "-x", "10.0.0.0/8", "-o", "5432")
        once = nat()
        assert "-A OUTPUT -j PETREL_OUTPUT" in once
        assert "-A PREROUTING -p tcp -j PETREL_INBOUND" in once
        assert "-A PETREL_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in once
        assert "-A PETREL_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in once
        assert "-A PETREL_OUTPUT -m owner --uid-owner 1337 -j RETURN" in once
        assert "-A PETREL_OUTPUT -d 10.0.0.0/8 -j RETURN" in once
        assert "-A PETREL_INBOUND -p tcp -m tcp --dport 22 -j RETURN" in once
        sh("ip", "netns", "exec", ns, "sh", script, "-d", "22", "-x", "10.0.0.0/8", "-o", "5432")
        assert nat() == once  # applying twice gives one set of rules
        sh("ip", "netns", "exec", ns, "sh", script, "clean")
        assert nat() == before  # exactly what it added is gone
        bad = sh("ip", "netns", "exec", ns, "sh", script, "-x", "not-a-cidr", check=False)
        assert bad.returncode == 1 and "nothing was left applied" in bad.stderr
        assert nat() == before
    finally:
        sh("ip", "netns", "del", ns, check=False)


GOLDEN = os.path.join(REPO, "..", "shared", "acceptance", "istio", "iptables",
                      "inbound-ports-wildcard.golden")


@pytest.mark.skipif(not os.path.exists(GOLDEN), reason="Istio's iptables golden file not beside the repo")
def test_iptables_layout_is_istios_rule_for_rule():
    """istio-iptables' own test output (capture all inbound, no outbound CIDR), loaded with
    iptables-restore, against the script's rules with the same options: the same nat table
    once ISTIO_ reads PETREL_."""
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None:
        pytest.skip("needs root and iptables-restore")
    with open(GOLDEN) as f:
        rules = [line for line in f.read().splitlines() if line.startswith(("-N ", "-A "))]
    restore = "*nat\n" + "\n".join(r.replace("ISTIO_", "PETREL_") for r in rules) + "\nCOMMIT\n"
    ns_golden, ns_script = "ptgold" + SUFFIX, "ptscr" + SUFFIX
    try:
        for ns in (ns_golden, ns_script):
            sh("ip", "netns", "add", ns)
        subprocess.run(["ip", "netns", "exec", ns_golden, "iptables-restore"], input=restore,
                       text=True, check=True, capture_output=True, timeout=30)
        sh("ip", "netns", "exec", ns_script, "sh", os.path.join(REPO, "docker/petrel-iptables.sh"),
           "-d", "", "-i", "")

        def nat(ns):
            out = sh("ip", "netns", "exec", ns, "iptables-save", "-t", "nat").stdout
            return [line for line in out.splitlines() if line.startswith("-A")]

        golden = nat(ns_golden)
        assert len(golden) == len([r for r in rules if r.startswith("-A")]) > 10
        assert nat(ns_script) == golden
    finally:
        for ns in (ns_golden, ns_script):
            sh("ip", "netns", "del", ns, check=False)
