"""Operations endpoints of the admin API: /help (the one route table), /stats with Envoy's filter,
usedonly and format=json, /server_info, /listeners, /logging (GET answers the log level, POST
/logging?level=L with Envoy's level names sets it for every worker at once), POST /drain (the
SIGTERM drain: /ready 503, in-flight requests finish, exit 0), POST /drain_listeners (the same
drain, the process stays up), and a real Prometheus server (Debian's /usr/bin/prometheus)
scraping Petrel's prometheusPort and answering PromQL queries with the exact request count."""

import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from netutil import build_request, connect, free_port, header, http_request, raw_request, recv_one, recv_responses, recv_to_eof, wait_until
from petrel import parse_stats, simple_config

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


def test_logging_takes_envoys_level_names(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    # Envoy's names, each to the Petrel level showing the same lines (none is quieter than error)
    for envoy, petrel_level in (("trace", "debug"), ("debug", "debug"), ("info", "info"),
                                ("warning", "warning"), ("warn", "warning"), ("error", "error"),
                                ("critical", "error"), ("off", "error")):
        assert admin(p, "POST", "/logging?level=" + envoy) == (200, "level: %s\n" % petrel_level)
        assert admin(p, "GET", "/logging") == (200, "level: %s\n" % petrel_level)
    st, body = admin(p, "POST", "/logging?level=verbose")
    assert st == 400
    assert "trace, debug, info, warning, warn, error, critical, off" in body, body


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


# -- /help and the route table ------------------------------------------------------------------

def test_help_lists_every_endpoint_and_each_answers(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    st, body = admin(p, "GET", "/help")
    assert st == 200
    lines = [l.strip() for l in body.splitlines()[1:]]
    endpoints = {}
    for line in lines:
        head, _, desc = line.partition(": ")
        assert desc, line  # every endpoint has a description
        method, _, path = head.rpartition(" ")
        endpoints[path] = method or "GET"
    assert set(endpoints) >= {"/help", "/ready", "/stats", "/stats/prometheus", "/server_info",
                              "/listeners", "/clusters", "/config_dump", "/logging",
                              "/healthz/ready", "/drain_listeners", "/drain", "/quitquitquit"}
    for path, method in endpoints.items():
        if method == "POST":  # mutating: a GET is refused and changes nothing
            for m in ("GET", "HEAD"):
                st, _, _ = http_request(p.admin_port, m, path, host_header="127.0.0.1")
                assert st == 405, (m, path, st)
        else:
            st, _ = admin(p, "GET", path)
            assert st == 200, (path, st)
    assert admin(p, "GET", "/ready") == (200, "LIVE\n")
    st, body = admin(p, "GET", "/nope")
    assert st == 404 and "/help" in body
    p.check_alive()


# -- /stats -------------------------------------------------------------------------------------

def test_stats_filter_usedonly_and_json(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    for _ in range(3):
        assert http_request(p.port, "GET", "/")[0] == 200
    # The clients have closed; wait until Petrel has seen it, so that no counter moves between
    # the full list and the filtered ones below.
    wait_until(lambda: parse_stats(admin(p, "GET", "/stats")[1].encode())
               .get("downstream_cx_active", 0) == 0, 5, what="the client connections closed")
    full = parse_stats(admin(p, "GET", "/stats")[1].encode())
    assert full["downstream_rq_2xx"] == 3 and full["tcp_cx_total"] == 0

    # a partial match anywhere in the name, as Envoy's std::regex_search
    st, body = admin(p, "GET", "/stats?filter=rq_2xx")
    assert st == 200
    assert parse_stats(body.encode()) == {"downstream_rq_2xx": 3}, body
    st, body = admin(p, "GET", "/stats?filter=%5Eupstream_cx_(total%7Cactive)%24")  # ^...$, encoded
    assert set(parse_stats(body.encode())) == {"upstream_cx_total", "upstream_cx_active"}, body

    # usedonly: only the stats that are not zero
    st, body = admin(p, "GET", "/stats?usedonly")
    used = parse_stats(body.encode())
    assert used == {k: v for k, v in full.items() if v != 0}, body
    assert "downstream_rq_total" in used and "tcp_cx_total" not in used
    st, body = admin(p, "GET", "/stats?usedonly&filter=downstream_rq")
    assert set(parse_stats(body.encode())) == {"downstream_rq_total", "downstream_rq_2xx"}, body

    # format=json: Envoy's {"stats": [{"name", "value"}]}
    st, _, raw = http_request(p.admin_port, "GET", "/stats?format=json&filter=rq_2xx",
                              host_header="127.0.0.1")
    assert st == 200
    assert json.loads(raw) == {"stats": [{"name": "downstream_rq_2xx", "value": 3}]}

    # a bad regex or format is refused with the reason
    st, body = admin(p, "GET", "/stats?filter=(unclosed")
    assert st == 400 and "invalid regex in filter" in body and "missing closing" in body, body
    st, body = admin(p, "GET", "/stats?format=yaml")
    assert st == 400 and "format=json" in body, body
    p.check_alive()


# -- /server_info and /listeners ----------------------------------------------------------------

def test_server_info(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2,
               proxy_spec={"workload": {"name": "web-1", "namespace": "shop",
                                        "serviceAccount": "web", "labels": {"app": "web"}}})
    st, hs, raw = http_request(p.admin_port, "GET", "/server_info", host_header="127.0.0.1")
    assert st == 200 and header(hs, "content-type") == "application/json"
    info = json.loads(raw)
    assert info["state"] == "LIVE"
    version = subprocess.run([p.binary, "--version"], capture_output=True, text=True).stdout
    assert info["version"] and info["version"] in version, (info["version"], version)
    assert info["uptime_current_epoch"].endswith("s")
    assert info["uptime_all_epochs"] == info["uptime_current_epoch"]
    opts = info["command_line_options"]
    assert opts["argv"][1] == "run" and str(p.config_dir) in opts["argv"], opts
    assert opts["concurrency"] == 2 and opts["log_level"] == "info" and opts["drain_time"] == "5s"
    node = info["node"]
    assert node["id"] == "router~127.0.0.1~web-1.shop~shop.svc.cluster.local", node
    assert node["metadata"] == {"NAME": "web-1", "NAMESPACE": "shop", "SERVICE_ACCOUNT": "web",
                                "LABELS": {"app": "web"}, "SPIFFE_ID": None}, node


def test_listeners_text_and_json(petrel, origin):
    http_port, prom = free_port(), free_port()
    p = petrel(simple_config(http_port=http_port, upstream_port=origin.port),
               proxy_spec={"prometheusPort": prom})
    st, body = admin(p, "GET", "/listeners")
    assert st == 200
    assert body.splitlines() == ["default/edge/%d::127.0.0.1:%d::HTTP" % (http_port, http_port),
                                 "prometheus::127.0.0.1:%d::/stats/prometheus" % prom], body
    st, hs, raw = http_request(p.admin_port, "GET", "/listeners?format=json",
                               host_header="127.0.0.1")
    assert st == 200 and header(hs, "content-type") == "application/json"
    statuses = json.loads(raw)["listener_statuses"]
    assert statuses[0] == {"name": "default/edge/%d" % http_port, "serves": "HTTP",
                           "local_address": {"socket_address": {"address": "127.0.0.1",
                                                                "port_value": http_port}}}
    assert [s["name"] for s in statuses] == ["default/edge/%d" % http_port, "prometheus"]


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


# -- /drain_listeners ---------------------------------------------------------------------------

def test_drain_listeners_drains_and_keeps_running(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    for method in ("GET", "HEAD"):
        st, _, _ = http_request(p.admin_port, method, "/drain_listeners?graceful",
                                host_header="127.0.0.1")
        assert st == 405
    # an idle keep-alive connection and one with a request in flight
    keep = connect(p.port, timeout=5.0)
    keep.sendall(build_request("/", [("Host", "example.com")]))
    assert recv_one(keep)[0] == 200
    busy = connect(p.port, timeout=5.0)
    busy.sendall(build_request("/delay/1000", [("Host", "example.com")]))
    origin.wait_requests(2, timeout=5)
    t0 = time.monotonic()
    assert admin(p, "POST", "/drain_listeners?graceful") == (200, "OK\n")
    assert json.loads(admin(p, "GET", "/server_info")[1])["state"] == "DRAINING"
    assert admin(p, "GET", "/ready") == (503, "DRAINING\n")

    def refused():
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=0.5).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_until(refused, 0.5, what="new connections refused once the listeners drain")
    assert time.monotonic() - t0 < 0.9, "checks ran past the origin's delay; they prove nothing"

    # the in-flight request finishes, told to close
    st, hs, _ = recv_one(busy, timeout=5)
    assert st == 200 and (header(hs, "connection") or "").lower() == "close", hs
    assert recv_to_eof(busy, 2)[0] == b""
    busy.close()
    # the idle keep-alive connection is closed, with nothing sent on it
    assert recv_to_eof(keep, 2)[0] == b""
    keep.close()
    # the process stays up: admin answers, nothing exits, a second call changes nothing
    time.sleep(0.2)
    assert p.proc.poll() is None, p.output_tail()
    assert admin(p, "POST", "/drain_listeners") == (200, "OK\n")
    assert json.loads(admin(p, "GET", "/server_info")[1])["state"] == "DRAINING"
    assert parse_stats(admin(p, "GET", "/stats")[1].encode())["downstream_rq_2xx"] == 2
    # SIGTERM still ends it cleanly
    p.stop_and_check()


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
