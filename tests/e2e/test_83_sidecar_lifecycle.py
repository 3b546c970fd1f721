"""tests/e2e/test_83_sidecar_lifecycle.py -- the sidecar's lifecycle on 127.0.0.1: readiness on
the health port, `petrel wait`, and the app's probes forwarded by the health port.

  - `petrel wait` started before Petrel exits 0 once Petrel is ready, and 1 with a message
    when nothing is ready within --timeout;
  - /healthz/ready is 200 with the config loaded and listeners bound, and 503 "certificate
    expired" when the workload certificate has expired.
"""

import subprocess
import time

import pytest

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
