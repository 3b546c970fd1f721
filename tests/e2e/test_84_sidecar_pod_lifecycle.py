"""tests/e2e/test_84_sidecar_pod_lifecycle.py -- the sidecar's start and stop in a pod, with
real traffic capture (network namespaces, as test_80_sidecar.py).

Pod A runs docker/petrel-iptables.sh, Petrel as uid 1337 (Proxy spec.sidecar, readiness on
15021) and a Python app; pod B an HTTP server on 9080 that no config names (A's calls to it
pass through A's sidecar to their original destination):

  - held, not refused: the app connects to B before Petrel runs (its SYN is seen waiting in
    SYN-SENT), Petrel starts, and that first request is answered;
  - SIGTERM: Petrel closes its inbound (a new connection into A is refused) while A's app,
    stopping at the same time, keeps calling out, on its open connection and on new ones, and
    gets every answer; Petrel then exits 0 as soon as the app's connections are gone, well
    before terminationDrainDuration (PETREL_TERMINATION_DRAIN_DURATION, 20s here);
  - the hold rule: applied once however often the script runs, and removed by clean.

Needs root and `ip netns`; skipped otherwise.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import yaml

from netns import IPTABLES_SCRIPT, Mesh, usable as netns_usable
from netutil import wait_until
from petrel import petrel_bin, need_petrel, sanitizer_report

PODS = {"a": "10.78.0.10", "b": "10.78.0.11"}

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"pod b " + self.path.encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    def log_message(self, *a):
        pass
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""

# One request to B, its result as JSON; connects with a long timeout (SYN retransmits).
FIRST_CALL = r"""
import http.client, json, sys, time
t0 = time.monotonic()
try:
    c = http.client.HTTPConnection(sys.argv[1], 9080, timeout=30)
    c.request("GET", "/first")
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode(), "s": time.monotonic() - t0}))
except OSError as e:
    print(json.dumps({"error": repr(e), "s": time.monotonic() - t0}))
"""

# An app that keeps a connection open, says "ready", and on SIGTERM makes calls for 3 seconds
# (on that connection and on new ones) before it exits, as an app finishing its work does.
STOPPING_APP = r"""
import http.client, json, signal, sys, time
ip = sys.argv[1]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
kept = http.client.HTTPConnection(ip, 9080, timeout=10)
def call(conn, path):
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return [r.status, r.read().decode()]
    except OSError as e:
        return [0, repr(e)]
results = [call(kept, "/before")]
print("ready", flush=True)
signal.sigwait({signal.SIGTERM})
t0 = time.monotonic()
for i in range(10):
    results.append(call(kept, "/stopping-kept-%d" % i))
    fresh = http.client.HTTPConnection(ip, 9080, timeout=10)
    results.append(call(fresh, "/stopping-new-%d" % i))
    fresh.close()
    time.sleep(0.3)
kept.close()
print(json.dumps({"results": results, "done_s": time.monotonic() - t0}), flush=True)
"""


@pytest.fixture
def pods():
    why = netns_usable()
    if why:
        pytest.skip(why)
    need_petrel()
    mesh = Mesh("pl")
    # Not pytest's tmp_path: its parents are closed to the proxy's uid.
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="petrel-pod-lifecycle-"))
    try:
        for pod, ip in PODS.items():
            mesh.add_pod(pod, ip)
        mesh.popen("b", ["/usr/bin/python3", "-c", SERVER, "9080"], log_dir=str(tmp_path),
                   name="server-b")
        mesh.capture("a")
        os.chmod(str(tmp_path), 0o777)
        cfg = tmp_path / "config"
        cfg.mkdir()
        proxy = {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy",
                 "metadata": {"name": "sidecar"},
                 "spec": {"adminPort": 15000, "healthPort": 15021, "concurrency": 1,
                          "drainTimeout": "2s", "sidecar": {"protocolDetectionTimeout": "100ms"}}}
        (cfg / "proxy.yaml").write_text(yaml.safe_dump(proxy))
        os.chmod(str(cfg), 0o755)
        yield mesh, tmp_path
    finally:
        mesh.close()
        shutil.rmtree(str(tmp_path), ignore_errors=True)


def start_petrel(mesh, tmp_path, env_drain=None):
    argv = [petrel_bin(), "run", "-c", str(tmp_path / "config")]
    if env_drain is not None:
        argv = ["env", "PETREL_TERMINATION_DRAIN_DURATION=" + env_drain] + argv
    return mesh.popen("a", argv, uid=1337, log_dir=str(tmp_path), name="petrel")


def wait_ready(mesh):
    def ready():
        r = mesh.run("a", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     "http://127.0.0.1:15021/healthz/ready", check=False)
        return r.stdout == "200"
    wait_until(ready, 15, interval=0.05, what="petrel ready in pod a")


def petrel_stderr(tmp_path):
    with open(tmp_path / "petrel.err", errors="replace") as f:
        return f.read()


def test_first_call_before_petrel_is_held_not_refused(pods):
    mesh, tmp_path = pods
    out = tmp_path / "first.out"
    with open(out, "w") as f:
        app = subprocess.Popen(mesh.command("a", ["/usr/bin/python3", "-c", FIRST_CALL,
                                                  PODS["b"]]), stdout=f, stderr=subprocess.STDOUT)
    try:
        # The app's connect is under way (SYN-SENT, held by PETREL_HOLD) before Petrel starts.
        wait_until(lambda: "9080" in mesh.run("a", "ss", "-tnH", "state", "syn-sent").stdout,
                   10, interval=0.02, what="the app's SYN waiting")
        assert app.poll() is None
        start_petrel(mesh, tmp_path)
        assert app.wait(timeout=40) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    result = json.loads(out.read_text())
    assert result.get("status") == 200 and result["body"] == "pod b /first", result


def test_sigterm_serves_the_stopping_app_then_exits_0(pods):
    mesh, tmp_path = pods
    # The app in pod A also serves inbound on 8080 (a plain server, reached through A's
    # inbound capture), to show the inbound closes at SIGTERM.
    mesh.popen("a", ["/usr/bin/python3", "-c", SERVER, "8080"], log_dir=str(tmp_path),
               name="server-a")
    petrel = start_petrel(mesh, tmp_path, env_drain="20s")
    wait_ready(mesh)

    def inbound_answers():
        r = mesh.run("b", "curl", "-s", "-m", "3", "http://%s:8080/in" % PODS["a"], check=False)
        return r.stdout == "pod b /in"
    wait_until(inbound_answers, 10, interval=0.05, what="inbound to pod a")
    app = mesh.popen("a", ["/usr/bin/python3", "-c", STOPPING_APP, PODS["b"]],
                     log_dir=str(tmp_path), name="app")
    wait_until(lambda: "ready" in (tmp_path / "app.out").read_text(), 15, interval=0.02,
               what="app ready")
    t0 = time.monotonic()
    petrel.send_signal(signal.SIGTERM)
    app.send_signal(signal.SIGTERM)
    # Inbound drains at once: a new connection into A is refused.
    wait_until(lambda: mesh.run("b", "curl", "-s", "-m", "3", "http://%s:8080/in" % PODS["a"],
                                check=False).returncode == 7, 5, interval=0.02,
               what="inbound refused")
    assert app.wait(timeout=30) == 0
    app_done = time.monotonic() - t0
    assert petrel.wait(timeout=30) == 0, petrel_stderr(tmp_path)
    petrel_done = time.monotonic() - t0
    out = json.loads((tmp_path / "app.out").read_text().splitlines()[-1])
    assert [st for st, _ in out["results"]] == [200] * 21, out
    assert out["results"][-1][1] == "pod b /stopping-new-9"
    # The app called out for longer than the Proxy's own drainTimeout (2 s), which the pod's
    # 20 s replaced; Petrel outlived the app's last call and left once its connections were
    # gone, well before those 20 s.
    assert out["done_s"] > 3
    assert app_done <= petrel_done < 12, (app_done, petrel_done)
    assert not sanitizer_report(petrel_stderr(tmp_path)), petrel_stderr(tmp_path)


def test_hold_rule_applied_once_and_cleaned():
    why = netns_usable()
    if why:
        pytest.skip(why)
    mesh = Mesh("ph")
    try:
        mesh.add_pod("a", "10.79.0.10")

        def filter_rules():
            return sorted(mesh.run("a", "iptables", "-S").stdout.splitlines())

        before = filter_rules()
        mesh.capture("a", "-p", "15101")
        once = filter_rules()
        assert "-A INPUT -p tcp -m tcp --dport 15101 --tcp-flags FIN,SYN,RST,ACK SYN " \
               "-j PETREL_HOLD" in once
        assert "-A PETREL_HOLD -m socket --nowildcard -j RETURN" in once
        mesh.run("a", "sh", IPTABLES_SCRIPT, "-p", "15101")
        assert filter_rules() == once
        mesh.run("a", "sh", IPTABLES_SCRIPT, "clean")
        assert filter_rules() == before
    finally:
        mesh.close()
