"""Prometheus metrics on the admin port (/stats/prometheus): Istio's standard metric names and
labels with exact counts, byte sums and TCP connection metrics, Petrel's own petrel_* counters,
and a text format that promtool accepts (its only remark being the unit in Istio's own
istio_request_duration_milliseconds name, which dashboards depend on)."""

import re
import shutil
import socket
import subprocess

import pytest

from netutil import free_port, http_request, recv_to_eof, wait_until
from petrel import simple_config


def scrape(p):
    status, headers, body = http_request(p.admin_port, "GET", "/stats/prometheus",
                                         host_header="127.0.0.1:%d" % p.admin_port)
    assert status == 200
    return body.decode()


def samples(text, name):
    """{labels-dict-as-frozenset: value} for every sample of metric name."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^%s\{(.*)\} (\S+)$" % re.escape(name), line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out[labels] = float(m.group(2))
    return out


def pick(series, **want):
    return sum(v for labels, v in series.items()
               if all((k, str(val)) in labels for k, val in want.items()))


def test_istio_request_metrics_count_exactly(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    for _ in range(7):
        assert http_request(p.port, "GET", "/bytes/1000")[0] == 200
    for _ in range(3):
        assert http_request(p.port, "POST", "/status/503", body=b"x" * 10)[0] == 503
    text = scrape(p)
    req = samples(text, "istio_requests_total")
    assert pick(req, destination_service="web.local", response_code=200, response_flags="-") == 7
    assert pick(req, destination_service="web.local", response_code=503) == 3
    assert pick(req, reporter="source", request_protocol="http") == 10
    dur = samples(text, "istio_request_duration_milliseconds_count")
    assert pick(dur, destination_service="web.local") == 10
    inf = samples(text, "istio_request_duration_milliseconds_bucket")
    assert pick(inf, response_code=200, le="+Inf") == 7
    resp_sum = samples(text, "istio_response_bytes_sum")
    assert pick(resp_sum, response_code=200) == 7000
    req_sum = samples(text, "istio_request_bytes_sum")
    assert pick(req_sum, response_code=503) == 30
    assert re.search(r"^petrel_downstream_rq_total 10$", text, re.M), text[-3000:]


def test_metrics_off_records_no_request_series(petrel, origin):
    """Proxy `metrics: false`: the requests are served and counted by petrel_*, but no
    istio_request* series is recorded."""
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
               proxy_spec={"metrics": False})
    for _ in range(5):
        assert http_request(p.port, "GET", "/bytes/10")[0] == 200
    text = scrape(p)
    assert samples(text, "istio_requests_total") == {}
    assert re.search(r"^petrel_downstream_rq_total 5$", text, re.M), text[-3000:]


def test_tcp_metrics(petrel, tcp_echo, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port,
                             tcp_port=free_port(), tcp_upstream_port=tcp_echo.port), concurrency=1)
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=5)
        s.sendall(b"y" * 1000)
        s.shutdown(socket.SHUT_WR)
        data, _ = recv_to_eof(s, 5)
        assert data == b"y" * 1000
        s.close()
    wait_until(lambda: pick(samples(scrape(p), "istio_tcp_connections_closed_total"),
                            destination_service="echo.local") == 2, timeout=5,
               what="both TCP connections closed in the metrics")
    text = scrape(p)
    assert pick(samples(text, "istio_tcp_connections_opened_total"), request_protocol="tcp") == 2
    assert pick(samples(text, "istio_tcp_received_bytes_total"), destination_service="echo.local") == 2000
    assert pick(samples(text, "istio_tcp_sent_bytes_total"), destination_service="echo.local") == 2000


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_promtool_accepts_the_exposition(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    for _ in range(3):
        http_request(p.port, "GET", "/echo")
    out = subprocess.run(["promtool", "check", "metrics"], input=scrape(p), capture_output=True,
                         text=True, timeout=30)
    problems = [l for l in (out.stdout + out.stderr).splitlines() if l.strip()]
    assert problems == ['istio_request_duration_milliseconds use base unit "seconds" instead of '
                        '"milliseconds"'], problems
