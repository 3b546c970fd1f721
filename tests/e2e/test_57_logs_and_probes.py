"""Access log in JSON, log rotation with SIGUSR1, and the dedicated listeners Istio's tooling
expects: prometheusPort (Istio's 15090, /stats/prometheus only) and healthPort (Istio's 15021,
/healthz/ready only)."""

import json
import os
import signal

from netutil import free_port, http_request, wait_until
from petrel import run_petrel, simple_config, wait_log


def test_json_access_log(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1,
               proxy_spec={"accessLogFormat": "json"})
    http_request(p.port, "POST", "/echo", body=b"abc",
                 headers=[("User-Agent", 'say "hi"\\'), ("X-Forwarded-For", "203.0.113.9")])
    http_request(p.port, "GET", "/status/503")
    lines = wait_log(p, 2)
    first, second = (json.loads(l) for l in lines)
    assert first["method"] == "POST" and first["path"] == "/echo"
    assert first["protocol"] == "HTTP/1.1" and first["response_code"] == 200
    assert first["response_flags"] == "-" and first["bytes_received"] == 3
    assert first["user_agent"] == 'say "hi"\\'  # escaped, and read back whole
    assert first["x_forwarded_for"] == "203.0.113.9"
    assert first["upstream_host"] == "127.0.0.1:%d" % origin.port
    assert isinstance(first["upstream_service_time"], int)
    assert first["request_id"] == origin.requests[0].header("x-request-id")
    assert second["response_code"] == 503 and second["bytes_received"] == 0


def test_sigusr1_reopens_the_access_log(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    http_request(p.port, "GET", "/echo?before")
    wait_log(p, 1)
    os.rename(p.access_log, p.access_log + ".1")
    p.signal(signal.SIGUSR1)
    wait_until(lambda: "reopened" in p.stderr(), timeout=5, what="the reopen")
    for _ in range(4):  # on both workers
        http_request(p.port, "GET", "/echo?after")
    lines = wait_log(p, 4)
    assert all("/echo?after" in l for l in lines), lines
    with open(p.access_log + ".1") as f:
        rotated = f.read().splitlines()
    assert len(rotated) == 1 and "/echo?before" in rotated[0]


def test_prometheus_and_health_ports(petrel, origin):
    prom, health = free_port(), free_port()
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1,
               proxy_spec={"prometheusPort": prom, "healthPort": health})
    http_request(p.port, "GET", "/echo")
    status, _, body = http_request(prom, "GET", "/stats/prometheus")
    assert status == 200 and b"istio_requests_total{" in body
    assert http_request(prom, "GET", "/stats")[0] == 404  # nothing else on the scrape port
    assert http_request(prom, "POST", "/quitquitquit")[0] == 404
    assert http_request(health, "GET", "/healthz/ready")[0] == 200
    assert http_request(health, "GET", "/stats/prometheus")[0] == 404
    assert http_request(p.admin_port, "GET", "/healthz/ready")[0] == 200


def test_bad_access_log_format_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                   "spec:\n  accessLogFormat: xml\n")
    out = run_petrel(["validate", str(cfg)])
    assert out.returncode == 1
    assert "c.yaml:5:3: spec.accessLogFormat: unknown value \"xml\" (expected text or json)" \
        in out.stderr, out.stderr
