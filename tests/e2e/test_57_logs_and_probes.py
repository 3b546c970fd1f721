"""Access log in JSON (with Istio's route_name, upstream_cluster and response_code_details) and
text, an upgraded connection's line with its tunnel bytes, log rotation with SIGUSR1, and the
dedicated listeners Istio's tooling expects: prometheusPort (Istio's 15090, /stats/prometheus only) and healthPort (Istio's 15021,
/healthz/ready only)."""

import json
import os
import signal
import socket

from netutil import connect, free_port, http_request, recv_exact, recv_to_eof, wait_until
from petrel import ISTIO, gateway_doc, run_petrel, service_entry_doc, simple_config, wait_log


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
    for line in (first, second):  # Istio's fields: the upstream answered both
        assert line["response_code_details"] == "via_upstream", line
        assert line["upstream_cluster"] == "outbound|80||web.local", line
        assert line["route_name"] == "web.0", line  # the unnamed route: "<vs>.<index>"


def details_docs(http_port, origin_port):
    """One VirtualService with a named route per way a request can end, a DENY policy, and a
    DestinationRule subset so the cluster name carries it."""
    vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
          "spec": {"hosts": ["*"], "gateways": ["edge"], "http": [
              {"name": "direct", "match": [{"uri": {"prefix": "/direct"}}],
               "directResponse": {"status": 418, "body": {"string": "teapot"}}},
              {"name": "moved", "match": [{"uri": {"prefix": "/moved"}}],
               "redirect": {"uri": "/elsewhere"}},
              {"name": "abort", "match": [{"uri": {"prefix": "/abort"}}],
               "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 100}}},
               "route": [{"destination": {"host": "web.local", "port": {"number": 80}}}]},
              {"name": "slow", "match": [{"uri": {"prefix": "/delay"}}], "timeout": "200ms",
               "route": [{"destination": {"host": "web.local", "port": {"number": 80}}}]},
              {"name": "v1", "match": [{"uri": {"prefix": "/app"}}, {"uri": {"prefix": "/upgrade"}},
                                       {"uri": {"prefix": "/denied"}}],
               "route": [{"destination": {"host": "web.local", "subset": "v1",
                                          "port": {"number": 80}}}]}]}}
    dr = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "web"},
          "spec": {"host": "web.local", "subsets": [{"name": "v1", "labels": {}}]}}
    deny = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "no-denied", "namespace": "default"},
            "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/denied"]}}]}]}}
    return [gateway_doc([(http_port, "HTTP")]), vs, dr, deny,
            service_entry_doc("web.local", origin_port, name="web")]


def test_response_code_details_route_name_and_cluster(petrel, origin):
    p = petrel(details_docs(free_port(), origin.port), concurrency=1,
               proxy_spec={"accessLogFormat": "json"})
    want = [  # path, status, flags, details, route_name, upstream_cluster
        ("/app", 200, "-", "via_upstream", "v1", "outbound|80|v1|web.local"),
        ("/direct", 418, "-", "direct_response", "direct", None),
        ("/moved", 301, "-", "direct_response", "moved", None),
        ("/abort", 503, "FI", "fault_filter_abort", "abort", None),
        ("/delay/2000", 504, "UT", "upstream_response_timeout", "slow",
         "outbound|80||web.local"),
        ("/nowhere", 404, "NR", "route_not_found", None, None),
        ("/denied", 403, "RBAC",
         "rbac_access_denied_matched_policy[ns[default]-policy[no-denied]-rule[0]]", None, None),
    ]
    for path, status, *_ in want:
        assert http_request(p.port, "GET", path)[0] == status, path
    got = [json.loads(l) for l in wait_log(p, len(want))]
    assert [(g["path"], g["response_code"], g["response_flags"], g["response_code_details"],
             g["route_name"], g["upstream_cluster"]) for g in got] == want

    # the same fields in the text format, in the places Istio's default text format has them
    p2 = petrel(details_docs(free_port(), origin.port), concurrency=1)
    http_request(p2.port, "GET", "/app")
    http_request(p2.port, "GET", "/nowhere")
    app, nowhere = wait_log(p2, 2)
    assert app.split(" ")[5:7] == ["-", "via_upstream"], app
    assert app.endswith('" outbound|80|v1|web.local v1'), app
    assert nowhere.split(" ")[5:7] == ["NR", "route_not_found"], nowhere
    assert nowhere.endswith('"-" - -'), nowhere


def test_upgraded_connection_logs_its_tunnel_bytes(petrel, origin):
    p = petrel(details_docs(free_port(), origin.port), concurrency=1,
               proxy_spec={"accessLogFormat": "json"})
    s = connect(p.port)
    s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
              b"Upgrade: websocket\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += recv_exact(s, 1, 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    sent = b"x" * 7000 + b"y" * 345
    s.sendall(sent)
    assert recv_exact(s, len(sent), 5) == sent  # the origin echoes
    # the line is written when the tunnel ends, not at the 101
    assert p.access_log_lines() == []
    s.shutdown(socket.SHUT_WR)
    assert recv_to_eof(s, 5)[0] == b""
    s.close()
    line = json.loads(wait_log(p, 1)[0])
    assert line["response_code"] == 101 and line["path"] == "/upgrade"
    assert (line["bytes_received"], line["bytes_sent"]) == (len(sent), len(sent)), line
    assert line["response_code_details"] == "via_upstream"
    assert (line["route_name"], line["upstream_cluster"]) == ("v1", "outbound|80|v1|web.local")


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
