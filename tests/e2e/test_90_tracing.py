"""tests/e2e/test_90_tracing.py -- distributed tracing (Proxy spec.tracing), end to end.

Real petrel, a real origin that echoes the headers it received (tests/lib/upstream.py), and
real collectors on ephemeral ports:

  - propagation: W3C traceparent/tracestate, B3 multi-header and single-header `b3` each reach
    the origin in the format they came in, same trace id, Petrel's new span id, the parent's
    decision; no context -> a new W3C trace; malformed context -> treated as absent, whole;
  - sampling: 10 % over 2000 requests lands within tolerance; a parent's sampled=0 (W3C and B3)
    and sampled=1 are honoured whatever the rate;
  - export: Zipkin v2 JSON to a Python receiver checking zipkin2-api's span fields; OTLP/HTTP
    JSON to a Node receiver that decodes with the OpenTelemetry project's own definitions
    (tests/e2e/otel/, npm); spans carry the HTTP attributes, route, cluster, upstream, flag and
    fault events; exported spans are counted;
  - a dead collector and one that stalls: traffic unaffected, failed exports and drops counted,
    and the process still exits promptly (the last flush is bounded).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from netutil import free_port, http_request, wait_until
from petrel import simple_config, stats

HERE = os.path.dirname(os.path.abspath(__file__))
HEX = re.compile(r"^[0-9a-f]+$")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """An HTTP server that records POSTed JSON bodies. mode: "ok" (202), "stall" (reads the
    request, never answers), "fail" (500)."""

    def __init__(self, mode="ok"):
        self.mode = mode
        self.bodies = []
        self.requests = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                outer.requests.append((self.path, dict(self.headers)))
                if outer.mode == "stall":
                    outer.bodies.append(body)
                    outer.release.wait(30)
                    return
                outer.bodies.append(body)
                status = 500 if outer.mode == "fail" else 202
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self):
        out = []
        for b in list(self.bodies):
            out.extend(json.loads(b))
        return out

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    made = []

    def make(mode="ok"):
        c = Collector(mode)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def start(petrel, origin, tracing, http_route=None, **kw):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port,
                         http_route=http_route or {})
    return petrel(docs, proxy_spec={"tracing": tracing}, **kw)


def echoed(body):
    """The headers the origin received, lower-cased names -> list of values."""
    out = {}
    for k, v in json.loads(body)["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def get(p, headers=(), path="/echo"):
    st, _, body = http_request(p.port, path=path, headers=list(headers))
    assert st == 200, body
    return echoed(body)


def parse_traceparent(v):
    m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$", v)
    assert m, v
    return m.groups()


# --- propagation ---

def test_w3c_propagated_with_a_new_span_id(petrel, origin):
    p = start(petrel, origin, {"sampling": 0})
    h = get(p, [("traceparent", "00-%s-%s-01" % (TRACE, PARENT)),
                ("tracestate", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")])
    assert len(h["traceparent"]) == 1
    trace, span, flags = parse_traceparent(h["traceparent"][0])
    assert trace == TRACE and span != PARENT and flags == "01"  # the parent's decision
    assert h["tracestate"] == ["congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"]
    assert not any(k.startswith("x-b3") or k == "b3" for k in h)
    # a new span per hop: two requests with one parent get two span ids
    h2 = get(p, [("traceparent", "00-%s-%s-01" % (TRACE, PARENT))])
    assert parse_traceparent(h2["traceparent"][0])[1] not in (span, PARENT)
    assert "tracestate" not in h2


def test_b3_multi_propagated(petrel, origin):
    p = start(petrel, origin, {"sampling": 100})
    h = get(p, [("X-B3-TraceId", "463ac35c9f6413ad"), ("X-B3-SpanId", "a2fb4a1d1a96d312"),
                ("X-B3-ParentSpanId", "0020000000000001"), ("X-B3-Sampled", "0")])
    assert h["x-b3-traceid"] == ["463ac35c9f6413ad"]  # a 64-bit id stays 64-bit
    span = h["x-b3-spanid"][0]
    assert HEX.match(span) and len(span) == 16 and span != "a2fb4a1d1a96d312"
    assert h["x-b3-parentspanid"] == ["a2fb4a1d1a96d312"]
    assert h["x-b3-sampled"] == ["0"]  # the parent said no, whatever the rate
    assert "traceparent" not in h and "b3" not in h


def test_b3_single_propagated(petrel, origin):
    p = start(petrel, origin, {"sampling": 0})
    h = get(p, [("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")])
    trace, span, sampled, parent = h["b3"][0].split("-")
    assert trace == "80f198ee56343ba864fe8b2a57d3eff7" and sampled == "1"
    assert parent == "e457b5a2e4d86bd1" and span != parent and len(span) == 16
    assert "traceparent" not in h and "x-b3-traceid" not in h
    # debug ("d") passes as debug; a decision alone starts a new trace with that decision
    h = get(p, [("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")])
    assert h["b3"][0].split("-")[2] == "d"
    h = get(p, [("b3", "0")])
    trace, span, sampled = h["b3"][0].split("-")
    assert len(trace) == 32 and sampled == "0"


def test_both_formats_come_and_go_w3c_is_the_parent(petrel, origin):
    p = start(petrel, origin, {"sampling": 100})
    h = get(p, [("traceparent", "00-%s-%s-00" % (TRACE, PARENT)),
                ("x-b3-traceid", "463ac35c9f6413ad463ac35c9f6413ad"),
                ("x-b3-spanid", "a2fb4a1d1a96d312"), ("x-b3-sampled", "1")])
    trace, span, flags = parse_traceparent(h["traceparent"][0])
    assert trace == TRACE and flags == "00"
    assert h["x-b3-traceid"] == [TRACE] and h["x-b3-spanid"] == [span]
    assert h["x-b3-parentspanid"] == [PARENT] and h["x-b3-sampled"] == ["0"]


def test_no_context_starts_a_w3c_trace(petrel, origin):
    p = start(petrel, origin, {"sampling": 100})
    seen = set()
    for _ in range(3):
        trace, span, flags = parse_traceparent(get(p)["traceparent"][0])
        assert flags == "01" and trace != "0" * 32 and span != "0" * 16
        seen.add(trace)
    assert len(seen) == 3


MALFORMED = [
    [("traceparent", "00-%s-%s-01" % (TRACE.upper(), PARENT))],  # upper-case hex
    [("traceparent", "00-%s-%s-01" % ("0" * 32, PARENT))],  # all-zero trace id
    [("traceparent", "00-%s-%s-01" % (TRACE, "0" * 16))],  # all-zero span id
    [("traceparent", "ff-%s-%s-01" % (TRACE, PARENT))],  # forbidden version
    [("traceparent", "00-%s-%s-01-extra" % (TRACE, PARENT))],  # version 00 is exactly 55
    [("traceparent", "00-%s-%s-1" % (TRACE, PARENT))],
    [("traceparent", "00-%s-%s-01" % (TRACE, PARENT)), ("traceparent", "00-%s-%s-01" % (TRACE, PARENT))],
    [("x-b3-traceid", "463ac35c9f6413ad")],  # a trace id without a span id
    [("x-b3-traceid", "463ac35c9f6413ad"), ("x-b3-spanid", "a2fb4a1d1a96d31")],
    [("x-b3-traceid", "463ac35c9f6413ad"), ("x-b3-spanid", "a2fb4a1d1a96d312"), ("x-b3-sampled", "yes")],
    [("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x")],
    [("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-9")],
]


@pytest.mark.parametrize("headers", MALFORMED)
def test_malformed_context_is_absent(petrel, origin, headers):
    """Never trusted partially: no id of the malformed header reaches the origin, the trace is
    new (W3C), the decision is the proxy's own (sampling 100 -> sampled), and the malformed
    lines themselves are not forwarded."""
    p = start(petrel, origin, {"sampling": 100})
    h = get(p, headers)
    assert "b3" not in h and not any(k.startswith("x-b3") for k in h)
    assert len(h["traceparent"]) == 1
    trace, span, flags = parse_traceparent(h["traceparent"][0])
    assert trace not in (TRACE, "463ac35c9f6413ad".rjust(32, "0"), "80f198ee56343ba864fe8b2a57d3eff7")
    assert flags == "01"


def test_invalid_tracestate_dropped_traceparent_kept(petrel, origin):
    p = start(petrel, origin, {"sampling": 0})
    h = get(p, [("traceparent", "00-%s-%s-01" % (TRACE, PARENT)), ("tracestate", "Upper=1")])
    assert parse_traceparent(h["traceparent"][0])[0] == TRACE
    assert "tracestate" not in h


def test_tracing_off_passes_headers_through(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    h = get(p, [("traceparent", "garbage"), ("x-b3-sampled", "1")])
    assert h["traceparent"] == ["garbage"] and h["x-b3-sampled"] == ["1"]


# --- sampling ---

def keepalive_requests(port, n, headers=()):
    """n GETs on one keep-alive connection; returns each response's echoed headers."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rb")
    out = []
    extra = "".join("%s: %s\r\n" % kv for kv in headers)
    try:
        for _ in range(n):
            s.sendall(("GET /echo HTTP/1.1\r\nHost: example.com\r\n%s\r\n" % extra).encode())
            line = f.readline()
            assert line.startswith(b"HTTP/1.1 200"), line
            length = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                k, _, v = h.decode().partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            out.append(echoed(f.read(length)))
    finally:
        s.close()
    return out


def test_sampling_rate_within_tolerance(petrel, origin):
    p = start(petrel, origin, {"sampling": 10})
    got = keepalive_requests(p.port, 2000)
    sampled = sum(parse_traceparent(h["traceparent"][0])[2] == "01" for h in got)
    # binomial(2000, 0.1): sd 13.4; +-60 is 4.5 sd
    assert 140 <= sampled <= 260, sampled


def test_parent_decision_honoured(petrel, origin):
    p = start(petrel, origin, {"sampling": 100})
    got = keepalive_requests(p.port, 50, [("traceparent", "00-%s-%s-00" % (TRACE, PARENT))])
    assert all(parse_traceparent(h["traceparent"][0])[2] == "00" for h in got)
    got = keepalive_requests(p.port, 50, [("x-b3-sampled", "0")])
    assert all(h["x-b3-sampled"] == ["0"] for h in got)
    p2 = start(petrel, origin, {"sampling": 0})
    got = keepalive_requests(p2.port, 50, [("traceparent", "00-%s-%s-01" % (TRACE, PARENT))])
    assert all(parse_traceparent(h["traceparent"][0])[2] == "01" for h in got)


def test_reload_changes_sampling_not_collectors(petrel, origin, collector):
    c = collector()
    p = start(petrel, origin, {"sampling": 0, "zipkin": {"address": "127.0.0.1:%d" % c.port}})
    assert parse_traceparent(get(p)["traceparent"][0])[2] == "00"
    gen = stats(p)["config_generation"]
    p.proxy_spec["tracing"]["sampling"] = 100
    p.write_config()
    wait_until(lambda: stats(p)["config_generation"] > gen, 10, what="the reload")
    assert parse_traceparent(get(p)["traceparent"][0])[2] == "01"
    p.proxy_spec["tracing"]["zipkin"]["address"] = "127.0.0.1:%d" % free_port()
    p.write_config()
    wait_until(lambda: stats(p)["config_reloads_refused"] >= 1, 10, what="a refused reload")
    assert "spec.tracing.zipkin cannot change without a restart" in p.stderr()


# --- export ---

def check_zipkin_span(s):
    """The fields of zipkin2-api.yaml's Span, with their types and formats."""
    allowed = {"traceId", "id", "parentId", "name", "kind", "timestamp", "duration",
               "localEndpoint", "remoteEndpoint", "annotations", "tags", "debug", "shared"}
    assert set(s) <= allowed, set(s) - allowed
    assert HEX.match(s["traceId"]) and len(s["traceId"]) in (16, 32)
    assert HEX.match(s["id"]) and len(s["id"]) == 16
    if "parentId" in s:
        assert HEX.match(s["parentId"]) and len(s["parentId"]) == 16
    assert s["kind"] in ("CLIENT", "SERVER", "PRODUCER", "CONSUMER")
    assert isinstance(s["timestamp"], int) and s["timestamp"] > 1_600_000_000_000_000
    assert isinstance(s["duration"], int) and s["duration"] >= 1
    assert set(s["localEndpoint"]) <= {"serviceName", "ipv4", "ipv6", "port"}
    assert isinstance(s["localEndpoint"]["serviceName"], str)
    if "remoteEndpoint" in s:
        assert set(s["remoteEndpoint"]) <= {"serviceName", "ipv4", "ipv6", "port"}
    for a in s.get("annotations", []):
        assert set(a) == {"timestamp", "value"} and isinstance(a["timestamp"], int)
        assert isinstance(a["value"], str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in s["tags"].items())


def test_zipkin_export(petrel, origin, collector):
    c = collector()
    p = start(petrel, origin, {"sampling": 100, "serviceName": "edge-gw",
                               "zipkin": {"address": "127.0.0.1:%d" % c.port},
                               "flushInterval": "100ms"})
    for i in range(5):
        st, _, _ = http_request(p.port, path="/echo/%d?q=1" % i,
                                headers=[("User-Agent", "tracer-test/1"),
                                         ("x-request-id", "req-%d" % i),
                                         ("traceparent", "00-%s-%s-01" % (TRACE, PARENT))])
        assert st == 200
    assert http_request(p.port, path="/status/503")[0] == 503
    wait_until(lambda: len(c.spans()) >= 6, 10, what="6 spans at the Zipkin receiver")
    assert all(path == "/api/v2/spans" for path, _ in c.requests)
    spans = c.spans()
    for s in spans:
        check_zipkin_span(s)
    mine = sorted((s for s in spans if s["tags"].get("guid:x-request-id", "").startswith("req-")),
                  key=lambda s: s["tags"]["guid:x-request-id"])
    assert len(mine) == 5
    s = mine[0]
    assert s["traceId"] == TRACE and s["parentId"] == PARENT and s["kind"] == "SERVER"
    assert s["localEndpoint"]["serviceName"] == "edge-gw"
    assert s["remoteEndpoint"]["ipv4"] == "127.0.0.1"
    t = s["tags"]
    assert t["http.method"] == "GET" and t["http.url"] == "http://example.com/echo/0?q=1"
    assert t["http.status_code"] == "200" and t["user_agent"] == "tracer-test/1"
    assert t["upstream_cluster"].endswith("web.local")
    assert t["upstream_address"] == "127.0.0.1:%d" % origin.port
    assert t["route_name"] and t["response_flags"] == "-"
    assert len({x["id"] for x in mine}) == 5
    failed = [x for x in spans if x["tags"].get("http.status_code") == "503"]
    assert len(failed) == 1 and failed[0]["tags"]["error"] == "true"
    wait_until(lambda: stats(p)["trace_spans_exported"] == 6, 10, what="6 spans counted")
    assert stats(p)["trace_spans_dropped"] == 0


def test_fault_events_on_spans(petrel, origin, collector):
    c = collector()
    p = start(petrel, origin, {"sampling": 100, "zipkin": {"address": "127.0.0.1:%d" % c.port},
                               "flushInterval": "100ms"},
              http_route={"fault": {"delay": {"fixedDelay": "50ms", "percentage": {"value": 100}},
                                    "abort": {"httpStatus": 418, "percentage": {"value": 100}}}})
    assert http_request(p.port, path="/f")[0] == 418
    wait_until(lambda: len(c.spans()) >= 1, 10, what="a span")
    s = c.spans()[0]
    values = [a["value"] for a in s["annotations"]]
    assert values == ["fault.delay delay_ms=50", "fault.abort http.status_code=418"], values
    assert s["annotations"][1]["timestamp"] - s["annotations"][0]["timestamp"] >= 50_000
    assert s["tags"]["response_flags"] == "DI,FI" and s["tags"]["http.status_code"] == "418"


def test_unsampled_requests_are_not_exported(petrel, origin, collector):
    c = collector()
    p = start(petrel, origin, {"sampling": 100, "zipkin": {"address": "127.0.0.1:%d" % c.port},
                               "flushInterval": "100ms"})
    for _ in range(5):
        get(p, [("traceparent", "00-%s-%s-00" % (TRACE, PARENT))])
    get(p, [("traceparent", "00-%s-%s-01" % (TRACE, PARENT))])
    wait_until(lambda: len(c.spans()) >= 1, 10, what="a span")
    p.stop_and_check()  # the last flush has run: nothing else was queued
    assert len(c.spans()) == 1


def otel_receiver_ready():
    return os.path.isdir(os.path.join(HERE, "otel", "node_modules")) and shutil.which("node")


@pytest.fixture
def otlp_receiver(tmp_path):
    """tests/e2e/otel/receiver.js: decodes each POST with the OpenTelemetry protobuf definitions
    and writes one JSON line per accepted request (or an error line) to a file."""
    if not otel_receiver_ready():
        pytest.fail("tests/e2e/otel/node_modules missing: run `npm ci --prefix tests/e2e/otel`")
    out = tmp_path / "otlp.jsonl"
    proc = subprocess.Popen(["node", os.path.join(HERE, "otel", "receiver.js"), str(out)],
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "otlp.err", "wb"))
    line = proc.stdout.readline().decode()
    m = re.match(r"^listening (\d+)$", line.strip())
    assert m, (line, (tmp_path / "otlp.err").read_text())

    class R:
        port = int(m.group(1))

        def records(self):
            if not out.exists():
                return []
            return [json.loads(x) for x in out.read_text().splitlines() if x.strip()]

    yield R()
    proc.terminate()
    proc.wait(10)


def test_otlp_export_decodes_with_opentelemetry_definitions(petrel, origin, otlp_receiver):
    p = start(petrel, origin, {"sampling": 100,
                               "otlp": {"address": "127.0.0.1:%d" % otlp_receiver.port},
                               "flushInterval": "100ms"},
              concurrency=2)
    for i in range(10):
        hdrs = [("x-request-id", "otlp-%d" % i), ("User-Agent", 'quote" \\ a\tb')]
        if i == 0:
            hdrs.append(("traceparent", "00-%s-%s-01" % (TRACE, PARENT)))
            hdrs.append(("tracestate", "congo=t61rcWkgMzE"))
        assert http_request(p.port, path="/o/%d" % i, headers=hdrs)[0] == 200
    wait_until(lambda: sum(r.get("spans", 0) for r in otlp_receiver.records()) >= 10, 15,
               what="10 spans decoded by the OTLP receiver")
    recs = otlp_receiver.records()
    assert all("error" not in r for r in recs), recs
    spans = [s for r in recs for rs in r["request"]["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    res = recs[0]["request"]["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "petrel"}} in res
    first = [s for s in spans if {"key": "guid:x-request-id", "value": {"stringValue": "otlp-0"}}
             in s["attributes"]]
    assert len(first) == 1
    s = first[0]
    assert s["traceId"] == TRACE and s["parentSpanId"] == PARENT and s["kind"] == 2
    assert s["traceState"] == "congo=t61rcWkgMzE"
    assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 1_600_000_000 * 10**9
    attrs = {a["key"]: a["value"] for a in s["attributes"]}
    assert attrs["http.status_code"] == {"intValue": "200"}
    assert attrs["user_agent"] == {"stringValue": 'quote" \\ a\tb'}
    wait_until(lambda: stats(p)["trace_spans_exported"] == 10, 10, what="10 spans counted")


def test_otlp_fault_events(petrel, origin, otlp_receiver):
    p = start(petrel, origin, {"sampling": 100,
                               "otlp": {"address": "127.0.0.1:%d" % otlp_receiver.port},
                               "flushInterval": "100ms"},
              http_route={"fault": {"delay": {"fixedDelay": "20ms", "percentage": {"value": 100}},
                                    "abort": {"httpStatus": 503, "percentage": {"value": 100}}}})
    assert http_request(p.port, path="/f")[0] == 503
    wait_until(lambda: sum(r.get("spans", 0) for r in otlp_receiver.records()) >= 1, 15,
               what="a span decoded by the OTLP receiver")
    recs = otlp_receiver.records()
    assert all("error" not in r for r in recs), recs
    s = recs[0]["request"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert [e["name"] for e in s["events"]] == ["fault.delay", "fault.abort"]
    assert s["events"][1]["attributes"] == [{"key": "http.status_code",
                                             "value": {"intValue": "503"}}]
    assert s["status"] == {"code": 2}


def test_a_full_batch_goes_before_the_interval(petrel, origin, collector):
    c = collector()
    p = start(petrel, origin, {"sampling": 100, "zipkin": {"address": "127.0.0.1:%d" % c.port},
                               "flushInterval": "1h", "batchSize": 8, "maxQueue": 64},
              concurrency=1)
    keepalive_requests(p.port, 20)
    # the worker wakes the exporter once its queue holds a batch: no waiting for the interval
    wait_until(lambda: len(c.spans()) >= 16, 10, what="two batches of 8")
    p.stop_and_check()
    assert len(c.spans()) == 20 and max(len(json.loads(b)) for b in c.bodies) <= 8


# --- a collector that is dead or stalls ---

def traffic_ok(p, n):
    t0 = time.monotonic()
    got = keepalive_requests(p.port, n)
    assert len(got) == n
    return time.monotonic() - t0


def test_dead_collector_traffic_unaffected(petrel, origin):
    dead = free_port()  # nothing listens there
    p = start(petrel, origin, {"sampling": 100, "otlp": {"address": "127.0.0.1:%d" % dead},
                               "flushInterval": "50ms", "maxQueue": 16, "batchSize": 8})
    traffic_ok(p, 500)
    # every sampled span is accounted for: failed at the collector or dropped at a full queue
    wait_until(lambda: stats(p)["trace_spans_export_failed"] + stats(p)["trace_spans_dropped"]
               == 500, 10, what="500 spans failed or dropped")
    st = stats(p)
    assert st["trace_spans_exported"] == 0 and st["trace_spans_export_failed"] > 0
    assert p.stderr().count("trace export to otlp collector") == 1  # one warning, not one a batch
    t0 = time.monotonic()
    p.stop_and_check()
    assert time.monotonic() - t0 < 8


def test_last_flush_on_exit(petrel, origin, collector):
    c = collector()
    p = start(petrel, origin, {"sampling": 100, "zipkin": {"address": "127.0.0.1:%d" % c.port},
                               "flushInterval": "1h"})
    for _ in range(3):
        get(p)
    assert c.spans() == []  # nothing goes before the (hour-long) interval...
    p.stop_and_check()
    assert len(c.spans()) == 3  # ...but the exit sends what is queued


def test_stalled_collector_traffic_unaffected(petrel, origin, collector):
    c = collector("stall")
    p = start(petrel, origin, {"sampling": 100, "zipkin": {"address": "127.0.0.1:%d" % c.port},
                               "flushInterval": "50ms", "exportTimeout": "1s", "maxQueue": 64,
                               "batchSize": 32})
    traffic_ok(p, 1000)  # one batch hangs at the collector: the queue fills and drops
    st = stats(p)
    assert st["trace_spans_dropped"] > 0 and st["trace_spans_exported"] == 0
    wait_until(lambda: stats(p)["trace_spans_export_failed"] >= 32, 10,
               what="the stalled batch timed out and counted")
    t0 = time.monotonic()
    p.stop_and_check()  # the last flush hangs too, and is cut at exportTimeout
    assert time.monotonic() - t0 < 8


def test_config_errors(tmp_path):
    from petrel import proxy_doc, run_petrel, to_yaml
    doc = proxy_doc(free_port(), str(tmp_path / "log"))
    doc["spec"]["tracing"] = {"sampling": 101, "zipkin": {"address": "collector:9411"},
                              "otlp": {"path": "v1"}, "maxQueue": 0}
    f = tmp_path / "p.yaml"
    f.write_text(to_yaml([doc]))
    r = run_petrel(["validate", str(f)])
    err = r.stderr
    assert r.returncode == 1, err
    assert re.search(r"p\.yaml:\d+:\d+: spec\.tracing\.sampling: must be a percentage", err), err
    assert "spec.tracing.zipkin.address: must be IP:PORT" in err
    assert "spec.tracing.otlp.address: is required" in err
    assert "spec.tracing.otlp.path: must be an absolute path" in err
    assert "spec.tracing.maxQueue" in err
