"""tests/e2e/test_83_sidecar_lifecycle.py -- the sidecar's lifecycle on 127.0.0.1: readiness on
the health port, `petrel wait`, and the app's probes forwarded by the health port.

  - `petrel wait` started before Petrel exits 0 once Petrel is ready, and 1 with a message
    when nothing is ready within --timeout;
  - /healthz/ready is 200 with the config loaded and listeners bound, and 503 "certificate
    expired" when the workload certificate has expired;
  - the app's probes, moved by `petrel inject` to /app-health/<container>/<kind> with the
    originals in PETREL_APP_PROBERS, are made to the app on 127.0.0.1 and answered 200 / 503;
    a malformed PETREL_APP_PROBERS stops the start with a message.
"""

import os
import subprocess
import time

import pytest
import yaml

import certs
from netutil import free_port, http_request, wait_until
from petrel import Petrel, need_petrel, petrel_bin


def health(port):
    st, _, body = http_request(port, path="/healthz/ready", timeout=5)
    return st, body


def test_wait_returns_once_petrel_is_ready(tmp_path):
    need_petrel()
    port = free_port()
    waiter = subprocess.Popen([petrel_bin(), "wait", "--port", str(port), "--timeout", "30",
                               "--period", "50"], stderr=subprocess.PIPE, text=True)
    try:
        # Nothing listens yet: the waiter is still waiting.
        assert waiter.poll() is None
        p = Petrel(tmp_path, proxy_spec={"healthPort": port})
        p.start()
        assert waiter.wait(timeout=20) == 0, waiter.stderr.read()
        assert health(port)[0] == 200
        p.stop_and_check()
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_wait_times_out_with_a_message():
    need_petrel()
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    r = subprocess.run([petrel_bin(), "wait", "--port", str(port), "--timeout", "1"],
                       capture_output=True, text=True, timeout=20)
    took = time.monotonic() - t0
    assert r.returncode == 1
    assert "petrel wait: not ready after 1s: 127.0.0.1:%d: Connection refused" % port in r.stderr
    assert 0.9 < took < 5, took
    r = subprocess.run([petrel_bin(), "wait", "--timeout", "soon"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 2 and "bad value for \"--timeout\"" in r.stderr


@pytest.mark.parametrize("expired", [False, True], ids=["valid", "expired"])
def test_readiness_needs_a_valid_certificate(tmp_path, expired):
    need_petrel()
    ca = certs.make_ca(str(tmp_path), "mesh-ca")
    chain, key = certs.make_leaf(str(tmp_path), "me", ca,
                                 ["spiffe://cluster.local/ns/default/sa/me"], expired=expired)
    port = free_port()
    p = Petrel(tmp_path, proxy_spec={
        "healthPort": port, "sidecar": {"outboundPort": free_port(), "inboundPort": free_port()},
        "identity": {"certificateChain": chain, "privateKey": key,
                     "rootCertificates": str(tmp_path / "mesh-ca.crt")}})
    p.start()
    st, body = health(port)
    if expired:
        assert (st, body) == (503, b"certificate expired\n")
    else:
        assert st == 200
    p.stop_and_check()


def probers_from_inject(tmp_path, containers):
    """PETREL_APP_PROBERS as `petrel inject` writes it for a Pod with these containers."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": containers}}
    src = tmp_path / "pod.yaml"
    src.write_text(yaml.safe_dump(pod))
    r = subprocess.run([petrel_bin(), "inject", "-f", str(src)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    proxy = yaml.safe_load(r.stdout)["spec"]["initContainers"][1]
    return {e["name"]: e.get("value") for e in proxy["env"]}["PETREL_APP_PROBERS"]


def test_app_probes_are_forwarded_by_the_health_port(tmp_path, origin):
    """The probes inject moved to 15021 reach the app on 127.0.0.1 as the kubelet would make
    them: an HTTP probe passes with a 2xx (its headers sent along) and fails with a 500, a TCP
    probe passes on a listening port and fails on a closed one."""
    need_petrel()
    closed = free_port()
    probers = probers_from_inject(tmp_path, [
        {"name": "web", "image": "x",
         "readinessProbe": {"httpGet": {"path": "/ready", "port": origin.port,
                                        "httpHeaders": [{"name": "x-probe", "value": "yes"}]}},
         "livenessProbe": {"httpGet": {"path": "/live?status=500", "port": origin.port}},
         "startupProbe": {"tcpSocket": {"port": origin.port}}},
        {"name": "db", "image": "x", "readinessProbe": {"tcpSocket": {"port": closed}}}])
    port = free_port()
    p = Petrel(tmp_path, proxy_spec={"healthPort": port},
               env=dict(os.environ, PETREL_APP_PROBERS=probers))
    p.start()
    assert health_of(port, "/app-health/web/readyz") == (200, b"")
    req = [r for r in origin.requests if r.path == "/ready"][-1]
    assert req.header("x-probe") == "yes" and req.header("user-agent").startswith("kube-probe")
    assert health_of(port, "/app-health/web/livez") == (503, b"app answered an error status\n")
    assert health_of(port, "/app-health/web/startupz") == (200, b"")
    assert health_of(port, "/app-health/db/readyz") == (503,
                                                        b"app port refused the connection\n")
    assert health_of(port, "/app-health/nope/readyz")[0] == 404
    p.stop_and_check()


def health_of(port, path):
    st, _, body = http_request(port, path=path, timeout=5)
    return st, body


def test_malformed_app_probers_stop_the_start_with_a_message(tmp_path):
    need_petrel()
    p = Petrel(tmp_path, proxy_spec={"healthPort": free_port()},
               env=dict(os.environ, PETREL_APP_PROBERS='{"/app-health/a/livez": {"httpGet": {}}}'))
    p.start(wait=False)
    assert p.proc.wait(timeout=20) == 1
    assert ("PETREL_APP_PROBERS: /app-health/a/livez: expected httpGet or tcpSocket with a port"
            in p.stderr()), p.stderr()


def test_a_bad_pod_drain_duration_is_refused_with_a_message(tmp_path):
    """PETREL_TERMINATION_DRAIN_DURATION (a pod's terminationDrainDuration, set by inject)
    overrides drainTimeout; one that is not a duration refuses the config."""
    need_petrel()
    p = Petrel(tmp_path, env=dict(os.environ, PETREL_TERMINATION_DRAIN_DURATION="soon"))
    p.start(wait=False)
    assert p.proc.wait(timeout=20) == 1
    assert ("spec: environment PETREL_TERMINATION_DRAIN_DURATION: \"soon\" is not a duration"
            in p.stderr()), p.stderr()
