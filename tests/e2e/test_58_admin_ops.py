"""Operations endpoints of the admin API (issue #5): /logging (GET answers the log level, POST
/logging?level=L sets it for every worker at once), POST /drain (the SIGTERM drain: /ready 503,
in-flight requests finish, exit 0), and a real Prometheus server (Debian's /usr/bin/prometheus)
scraping Petrel's prometheusPort and answering PromQL queries with the exact request count."""

import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from netutil import connect, free_port, header, http_request, raw_request, recv_responses, recv_to_eof, wait_until
from petrel import simple_config

PROMETHEUS = "/usr/bin/prometheus"

# A request Petrel's HTTP/1 codec refuses (400); conn.c logs the refusal at debug level.
BAD_REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: abc\r\n\r\n"
REFUSED_LINE = "request refused with 400"


def admin(p, method, path, port=None):
    st, _, body = http_request(port or p.admin_port, method, path, host_header="127.0.0.1")
    return st, body.decode()


def refused_lines(p):
    return [l for l in p.stderr().splitlines() if REFUSED_LINE in l]


def send_bad_request(p):
    data = raw_request(p.port, BAD_REQUEST, timeout=5)
    assert data.startswith(b"HTTP/1.1 400"), data[:200]


# -- /logging -----------------------------------------------------------------------------------

def test_logging_level_get_set_and_effect_on_workers(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    assert admin(p, "GET", "/logging") == (200, "level: info\n")

    # at info, a refused request leaves no debug line
    send_bad_request(p)
    time.sleep(0.2)
    assert refused_lines(p) == [], p.stderr()

    # debug: the workers log refusals (several connections, so both workers take some)
    assert admin(p, "POST", "/logging?level=debug") == (200, "level: debug\n")
    assert admin(p, "GET", "/logging") == (200, "level: debug\n")
    for _ in range(6):
        send_bad_request(p)
    wait_until(lambda: len(refused_lines(p)) == 6, 3, what="6 debug lines for refused requests")
    line = refused_lines(p)[0]
    assert " debug downstream 127.0.0.1" in line, line
    assert "log level debug (was info), set by the admin API" in p.stderr()

    # error: quiet again
    assert admin(p, "POST", "/logging?level=error") == (200, "level: error\n")
    send_bad_request(p)
    time.sleep(0.2)
    assert len(refused_lines(p)) == 6, p.stderr()
    # lowering the level is still logged (before it takes effect)
    assert "log level error (was debug), set by the admin API" in p.stderr()

    # warning and info are accepted too; POST without a query answers the level in force
    assert admin(p, "POST", "/logging?level=warning") == (200, "level: warning\n")
    assert admin(p, "POST", "/logging?level=info") == (200, "level: info\n")
    assert admin(p, "POST", "/logging") == (200, "level: info\n")
    p.check_alive()


def test_logging_rejects_bad_levels_and_get_changes(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    for q in ("level=verbose", "level=", "level=DEBUG", "lvl=debug", "level=debugx", "x"):
        st, body = admin(p, "POST", "/logging?" + q)
        assert st == 400, (q, st, body)
        for name in ("error", "warning", "info", "debug"):
            assert name in body, (q, body)
    # a GET never changes the level
    st, _ = admin(p, "GET", "/logging?level=debug")
    assert st == 405
    st, _ = admin(p, "PUT", "/logging?level=debug")
    assert st == 405
    assert admin(p, "GET", "/logging") == (200, "level: info\n")


def test_ops_endpoints_not_on_prometheus_or_health_ports(petrel, origin):
    prom, health = free_port(), free_port()
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
               proxy_spec={"prometheusPort": prom, "healthPort": health})
    for port in (prom, health):
        for method, path in (("POST", "/logging?level=debug"), ("GET", "/logging"),
                             ("POST", "/drain"), ("POST", "/quitquitquit")):
            st, _ = admin(p, method, path, port=port)
            assert st == 404, (port, method, path, st)
    assert admin(p, "GET", "/logging") == (200, "level: info\n")
    assert admin(p, "GET", "/ready") == (200, "LIVE\n")


# -- /drain -------------------------------------------------------------------------------------

def test_drain_needs_post(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    for method in ("GET", "HEAD", "PUT"):
        st, _, _ = http_request(p.admin_port, method, "/drain", host_header="127.0.0.1")
        assert st == 405, method
    assert admin(p, "GET", "/ready") == (200, "LIVE\n")
    p.check_alive()


def test_drain_finishes_in_flight_then_exits_0(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    busy = connect(p.port, timeout=5.0)
    busy.sendall(b"GET /delay/1000 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    origin.wait_requests(1, timeout=5)
    t0 = time.monotonic()
    assert admin(p, "POST", "/drain") == (200, "draining\n")

    assert admin(p, "GET", "/ready") == (503, "DRAINING\n")
    st, _ = admin(p, "GET", "/healthz/ready")
    assert st == 503
    # a second call while draining changes nothing
    assert admin(p, "POST", "/drain") == (200, "draining\n")

    def refused():
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=0.5).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_until(refused, 0.5, what="new connections refused during the drain")
    assert p.proc.poll() is None, "exited before the in-flight request ended"
    assert time.monotonic() - t0 < 0.9, "checks ran past the origin's delay; they prove nothing"

    resp = recv_responses(busy, 1, timeout=5)[0]
    assert resp[0] == 200
    assert (header(resp[2], "connection") or "").lower() == "close", resp[2]
    assert recv_to_eof(busy, 2)[0] == b""
    busy.close()
    assert time.monotonic() - t0 >= 0.8
    assert p.proc.wait(timeout=3) == 0, p.output_tail()
    assert "draining" in p.stderr()


# -- a real Prometheus server -------------------------------------------------------------------

class PrometheusServer:
    """/usr/bin/prometheus scraping one target every second, all on 127.0.0.1 and a temp dir."""

    def __init__(self, workdir, target_port):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.config = os.path.join(self.dir, "prom.yml")
        with open(self.config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: petrel\n"
                    "    metrics_path: /stats/prometheus\n"
                    "    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % target_port)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.config,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port, "--web.enable-lifecycle"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited with %d\n%s" % (self.proc.returncode,
                                                                        self.log_tail()))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                            timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until(ready, 30, interval=0.1, what="prometheus ready")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def query(self, promql):
        """The value of a one-sample instant vector, or None when the result is empty."""
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (self.port, urllib.parse.quote(promql))
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        result = doc["data"]["result"]
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_value(self, promql, want, timeout=30.0):
        seen = []

        def check():
            v = self.query(promql)
            seen.append(v)
            return v == want
        try:
            wait_until(check, timeout, interval=0.25, what="%s == %s" % (promql, want))
        except TimeoutError:
            raise AssertionError("%s never became %s (last values %r)\n%s"
                                 % (promql, want, seen[-5:], self.log_tail()))


@pytest.fixture
def prometheus_server(tmp_path):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("%s is not installed (Debian package `prometheus`)" % PROMETHEUS)
    made = []

    def make(target_port):
        s = PrometheusServer(tmp_path / "prometheus", target_port)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


def test_prometheus_scrapes_exact_counts(petrel, origin, prometheus_server):
    prom_port = free_port()
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2,
               proxy_spec={"prometheusPort": prom_port})
    n = 13
    for i in range(n):  # a fresh connection each, so both workers count some
        assert http_request(p.port, "GET", "/echo?i=%d" % i)[0] == 200
    prom = prometheus_server(prom_port)
    prom.wait_value('up{job="petrel"}', 1.0)
    prom.wait_value("sum(istio_requests_total)", float(n))
    prom.wait_value('sum(istio_requests_total{response_code="200",destination_service="web.local"})',
                    float(n))
    prom.wait_value("sum(istio_request_duration_milliseconds_count)", float(n))
    prom.wait_value('sum(istio_request_duration_milliseconds_bucket{le="+Inf"})', float(n))
    prom.wait_value("petrel_downstream_rq_total", float(n))
    # a quantile over the histogram is a number (the buckets are well formed and cumulative)
    q = prom.query("histogram_quantile(0.5, sum by (le) (istio_request_duration_milliseconds_bucket))")
    assert q is not None and q == q and q >= 0, q  # q == q: not NaN

    # more traffic shows up in the next scrapes
    for i in range(4):
        assert http_request(p.port, "GET", "/status/503")[0] == 503
    prom.wait_value("sum(istio_requests_total)", float(n + 4))
    prom.wait_value('sum(istio_requests_total{response_code="503"})', 4.0)
    p.check_alive()
