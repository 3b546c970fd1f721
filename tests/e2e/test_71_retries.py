"""tests/e2e/test_71_retries.py -- VirtualService http[].retries, Petrel's safe default, the
retry budget and the request-body limit, end to end.

Real petrel, real origins that fail on command (tests/lib/upstream.py /fail-first/<n>: the
first n requests to a target answer a status, a gRPC status, reset or hang, then it echoes):

  - every retryOn condition retries what it names and nothing else; plain status codes;
  - no `retries`: GET is retried on 503 and connect failure (Istio's default), POST only on
    connect failure; an explicit policy retries POST, sending the same body again;
  - a retry goes to another endpoint; perTryTimeout cuts an attempt and retries; the route
    timeout bounds every attempt and backoff together; backoff shows in the timing;
  - nothing is retried once response bytes went to the client; attempts: 0 disables;
  - retries exhausted: the last response with flag URX and the attempt count in the log;
    x-envoy-attempt-count on each upstream request (Istio turns it on);
  - a retry storm (an origin failing everything, concurrent clients) stays within the budget;
    DestinationRule retryBudget and maxRetries refuse retries;
  - a body over retryBodyLimit is not retried (counted); faultPerAttempt makes aborts retried.
"""

import json
import threading
import time

import pytest

from netutil import connect, free_port, http_request, recv_to_eof, wait_until
from petrel import ISTIO, stats, simple_config


# Tests of something else than the budget lift it: Linkerd's default (20 % of requests, 10 a
# second) would refuse some of their retries.
NO_BUDGET = {"trafficPolicy": {"retryBudget": {"percent": 100, "minRetryConcurrency": 1000}}}


def dr_doc(dr):
    return {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "web"},
            "spec": dict({"host": "web.local"}, **dr)}


def start(petrel, ports, route=None, dr=NO_BUDGET, proxy_spec=None, concurrency=2):
    docs = simple_config(http_port=free_port(), upstream_port=ports, http_route=route)
    if dr is not None:
        docs.append(dr_doc(dr))
    spec = {"accessLogFormat": "json"}
    spec.update(proxy_spec or {})
    return petrel(docs, proxy_spec=spec, concurrency=concurrency)


def log_entries(p, n):
    return [json.loads(x) for x in p.wait_access_log(n)]


def retries(**kw):
    return {"retries": kw}


# ---- each retryOn condition ---------------------------------------------------------------

CASES = [
    # retryOn, failure (query of /fail-first/1), retried?
    ("5xx", "code=500", True),
    ("5xx", "code=404", False),
    ("5xx", "mode=reset", True),
    ("gateway-error", "code=502", True),
    ("gateway-error", "code=504", True),
    ("gateway-error", "code=500", False),
    ("gateway-error", "mode=reset", True),
    ("reset", "mode=reset", True),
    ("reset", "code=503", False),
    ("connect-failure", "mode=reset", False),
    ("retriable-4xx", "code=409", True),
    ("retriable-4xx", "code=429", False),
    ("429,503", "code=429", True),
    ("503", "code=500", False),
    ("retriable-status-codes,418", "code=418", True),
    ("cancelled", "grpc=1", True),
    ("deadline-exceeded", "grpc=4", True),
    ("internal", "grpc=13", True),
    ("resource-exhausted", "grpc=8", True),
    ("unavailable", "grpc=14", True),
    ("unavailable", "grpc=13", False),
]


def test_each_retry_on_condition(petrel, origin):
    routes = []
    for i, (on, _, _) in enumerate(CASES):
        routes.append({"match": [{"uri": {"prefix": "/c%d/" % i}}],
                       "rewrite": {"uri": "/"},
                       "retries": {"attempts": 1, "retryOn": on},
                       "route": [{"destination": {"host": "web.local", "port": {"number": 80}}}]})
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    docs[1]["spec"]["http"] = routes
    docs.append(dr_doc(NO_BUDGET))
    p = petrel(docs)
    for i, (on, failure, retried) in enumerate(CASES):
        # close=1: no pooled connection, so no reused-connection replay blurs the count
        target = "/c%d/fail-first/1?%s&close=1" % (i, failure)
        status, headers, _ = http_request(p.port, "GET", target)
        seen = origin.fail_counts.get("/fail-first/1?%s&close=1" % failure)
        origin.fail_counts.clear()
        assert seen == (2 if retried else 1), (on, failure, seen)
        if retried:
            assert status == 200, (on, failure, status)
        elif "code=" in failure:
            assert status == int(failure.split("=")[1]), (on, failure, status)


def test_plain_codes_with_conditions(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=3, retryOn="503,connect-failure"))
    status, _, _ = http_request(p.port, "GET", "/fail-first/3?code=503")
    assert status == 200
    assert origin.fail_counts["/fail-first/3?code=503"] == 4
    assert stats(p)["retries_status"] == 3
    code, body = p.admin_get("/stats/prometheus")
    assert code == 200
    assert b'petrel_retries_total{reason="status"} 3\n' in body
    assert b'petrel_retries_total{reason="reset"} 0\n' in body


# ---- the safe default ----------------------------------------------------------------------

def test_default_retries_get_on_503_not_post(petrel, origin):
    p = start(petrel, origin.port)
    status, _, _ = http_request(p.port, "GET", "/fail-first/1?x=get")
    assert status == 200
    assert origin.fail_counts["/fail-first/1?x=get"] == 2
    status, _, _ = http_request(p.port, "POST", "/fail-first/1?x=post", body=b"pay once")
    assert status == 503
    assert origin.fail_counts["/fail-first/1?x=post"] == 1
    # Istio's default is 2 retries: three 503s in a row reach the client, flagged URX
    status, _, _ = http_request(p.port, "GET", "/fail-first/3?x=get3")
    assert status == 503
    assert origin.fail_counts["/fail-first/3?x=get3"] == 3
    entries = log_entries(p, 3)  # workers flush their lines in any order
    last = [e for e in entries if e["path"] == "/fail-first/3?x=get3"][0]
    assert last["response_flags"] == "URX" and last["upstream_request_attempt_count"] == 3, last
    assert last["response_code_details"] == "via_upstream", last  # the last 503 is the origin's


def test_reset_after_a_retried_response_is_logged_as_a_reset(petrel, origin):
    """A 503 from the origin, retried, then a reset with no attempt left: the 503 the client
    gets is Petrel's, and the log says so (not via_upstream)."""
    calls = []

    def flaky(conn, req):
        calls.append(req.path)
        if len(calls) == 1:
            conn.send_response(req, 503, body=b"busy")
            return True
        return False  # closes without answering

    origin.routes["/flaky"] = flaky
    p = start(petrel, origin.port, retries(attempts=1, retryOn="5xx,reset"), concurrency=1)
    status, _, body = http_request(p.port, "GET", "/flaky")
    assert status == 503 and b"reset reason: connection termination" in body, body
    assert len(calls) == 2
    e = log_entries(p, 1)[0]
    assert e["response_flags"] == "URX", e
    assert e["response_code_details"] == \
        "upstream_reset_before_response_started{connection_termination}", e


def test_default_retries_post_on_connect_failure(petrel, origin):
    """A refused connection never reached an application: POST too is retried, on the other
    endpoint."""
    closed = free_port()
    p = start(petrel, [closed, origin.port])
    for i in range(6):
        status, _, body = http_request(p.port, "POST", "/echo/%d" % i, body=b"b%d" % i)
        assert status == 200, body
        assert json.loads(body)["body"] == "b%d" % i
    assert len(origin.requests) == 6
    assert stats(p)["retries_connect_failure"] >= 1


def test_explicit_policy_retries_post_with_the_same_body(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=2, retryOn="5xx"))
    body = bytes(range(256)) * 40
    status, _, resp = http_request(p.port, "POST", "/fail-first/2", body=body)
    assert status == 200
    assert origin.fail_counts["/fail-first/2"] == 3
    got = [r for r in origin.requests if r.path == "/fail-first/2"]
    assert len(got) == 3 and {r.body for r in got} == {body}
    # Istio has Envoy send the attempt number upstream
    assert [r.header_all("x-envoy-attempt-count") for r in got] == [["1"], ["2"], ["3"]]
    assert json.loads(resp)["body_len"] == len(body)


def test_client_attempt_count_is_replaced(petrel, origin):
    p = start(petrel, origin.port)
    status, _, body = http_request(p.port, "GET", "/echo",
                                   headers=[("x-envoy-attempt-count", "7")])
    assert status == 200
    assert origin.requests[0].header_all("x-envoy-attempt-count") == ["1"]


def test_chunked_body_retried_whole(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=1, retryOn="5xx"))
    s = connect(p.port)
    s.sendall(b"POST /fail-first/1?x=c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    raw, _ = recv_to_eof(s, 10)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    got = [r.body for r in origin.requests if r.path == "/fail-first/1"]
    assert got == [b"hello world", b"hello world"]


def test_attempts_zero_disables(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=0))
    status, _, _ = http_request(p.port, "GET", "/fail-first/1")
    assert status == 503
    assert origin.fail_counts["/fail-first/1"] == 1
    closed = free_port()
    p2 = start(petrel, closed, retries(attempts=0))
    status, _, _ = http_request(p2.port, "GET", "/x")
    assert status == 503
    assert stats(p2)["upstream_cx_connect_fail"] == 1


# ---- where and when a retry goes -----------------------------------------------------------

def test_retry_goes_to_another_endpoint(petrel, origin_factory):
    bad = origin_factory(name="bad", status=503)
    good = origin_factory(name="good")
    p = start(petrel, [bad.port, good.port], retries(attempts=1, retryOn="5xx"), concurrency=1)
    for i in range(10):
        status, headers, body = http_request(p.port, "GET", "/r/%d" % i)
        assert status == 200, body
        assert json.loads(body)["origin"] == "good"
    # round robin: a first attempt on bad went to good next, and the one after starts on bad
    # again; one endpoint per try
    assert len(bad.requests) >= 5
    assert len(good.requests) == 10


def test_retry_ignore_previous_hosts_false_may_repeat(petrel, origin_factory):
    bad = origin_factory(name="bad", status=503)
    p = start(petrel, [bad.port], retries(attempts=2, retryOn="5xx",
                                          retryIgnorePreviousHosts=False))
    status, _, _ = http_request(p.port, "GET", "/only")
    assert status == 503
    assert len(bad.requests) == 3  # one endpoint: the same one every time


def test_per_try_timeout_then_success(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=2, perTryTimeout="300ms", retryOn="5xx"))
    t0 = time.monotonic()
    status, _, _ = http_request(p.port, "GET", "/fail-first/1?mode=hang")
    took = time.monotonic() - t0
    assert status == 200
    assert took >= 0.29
    assert origin.fail_counts["/fail-first/1?mode=hang"] == 2
    assert stats(p)["retries_per_try_timeout"] == 1


def test_per_try_timeout_exhausted_is_504_ut(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=1, perTryTimeout="200ms", retryOn="reset"))
    status, _, body = http_request(p.port, "GET", "/hang")
    assert status == 504 and body == b"upstream request timeout"
    assert origin.wait_requests(2) and len(origin.requests) == 2
    assert log_entries(p, 1)[0]["response_flags"] == "UT"


def test_route_timeout_bounds_all_attempts(petrel, origin):
    route = {"timeout": "1s", "retries": {"attempts": 50, "perTryTimeout": "200ms",
                                          "retryOn": "5xx"}}
    p = start(petrel, origin.port, route)
    t0 = time.monotonic()
    status, _, _ = http_request(p.port, "GET", "/hang")
    took = time.monotonic() - t0
    assert status == 504
    assert 0.9 <= took < 5.0
    assert 2 <= len(origin.requests) < 50


def test_backoff_shows_in_timing(petrel, origin):
    """4 retries with a 50 ms base: full jitter draws from [0, 50), [0, 150), [0, 350),
    [0, 500) ms, about 0.65 s per request on average; 5 requests stay above 1 s unless the
    draws are all far below their means (a 4-sigma event)."""
    p = start(petrel, origin.port, retries(attempts=4, retryOn="5xx", backoff="50ms"))
    t0 = time.monotonic()
    for i in range(5):
        status, _, _ = http_request(p.port, "GET", "/fail-first/4?i=%d" % i)
        assert status == 200
    took = time.monotonic() - t0
    assert 1.0 <= took < 30.0, took
    assert stats(p)["retries_status"] == 20


def test_no_retry_after_response_bytes(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=3, retryOn="5xx,reset"))
    s = connect(p.port)
    s.sendall(b"GET /close-mid-body?n=4000 HTTP/1.1\r\nHost: a\r\n\r\n")
    raw, _ = recv_to_eof(s, 10)
    assert raw.startswith(b"HTTP/1.1 200")
    assert len(raw.split(b"\r\n\r\n", 1)[1]) < 4000
    assert len(origin.requests) == 1
    assert log_entries(p, 1)[0]["response_flags"] == "UC"


# ---- budgets and limits --------------------------------------------------------------------

def test_retry_storm_stays_within_budget(petrel, origin_factory):
    """Every request fails; 10 clients send 300 requests with a policy of 5 retries. Without
    a budget the origin would see 1800 requests. Linkerd's budget: 20 % of requests, 10 per
    second, and what the bucket starts with (1 s of floor)."""
    bad = origin_factory(name="bad", status=503)
    p = start(petrel, bad.port, retries(attempts=5, retryOn="5xx"), dr=None,
              proxy_spec={"accessLog": ""})
    n_clients, per_client = 10, 30
    statuses = []

    def client():
        for _ in range(per_client):
            st, _, _ = http_request(p.port, "GET", "/storm")
            statuses.append(st)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - t0
    n = n_clients * per_client
    assert statuses == [503] * n
    retried = len(bad.requests) - n
    allowed = 0.2 * n + 10 * (elapsed + 1) + 10
    assert 0 < retried <= allowed, (retried, allowed, elapsed)
    st = stats(p)
    assert st["retry_budget_exhausted"] > 0
    assert st["retries_status"] == retried


def test_destination_rule_retry_budget_refuses(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=3, retryOn="5xx"),
              dr={"trafficPolicy": {"retryBudget": {"percent": 0, "minRetryConcurrency": 0}}})
    for i in range(4):
        status, _, _ = http_request(p.port, "GET", "/fail-first/1?i=%d" % i)
        assert status == 503
    assert len(origin.requests) == 4
    assert stats(p)["retry_budget_exhausted"] == 4


def test_max_retries_circuit_breaker(petrel, origin_factory):
    """maxRetries: 1 while 4 clients each retry a slow failure: at most one retries at a
    time, so some requests get no retry at all."""
    bad = origin_factory(name="bad")
    p = start(petrel, bad.port, retries(attempts=1, retryOn="5xx", backoff="300ms"),
              dr={"trafficPolicy": dict(NO_BUDGET["trafficPolicy"],
                                        connectionPool={"http": {"maxRetries": 1}})})
    out = []

    def client(i):
        out.append(http_request(p.port, "GET", "/fail-first/9?c=%d&code=500" % i)[0])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert out == [500] * 4
    st = stats(p)
    assert st["upstream_overflow_retries"] >= 1
    assert st["retries_status"] + st["upstream_overflow_retries"] == 4


def test_body_over_limit_is_not_retried(petrel, origin):
    p = start(petrel, origin.port, retries(attempts=2, retryOn="5xx"),
              proxy_spec={"retryBodyLimit": 1024})
    status, _, _ = http_request(p.port, "POST", "/fail-first/1?big", body=b"x" * 2000)
    assert status == 503
    assert origin.fail_counts["/fail-first/1?big"] == 1
    assert stats(p)["retry_body_too_large"] == 1
    status, _, _ = http_request(p.port, "POST", "/fail-first/1?small", body=b"y" * 1000)
    assert status == 200
    assert [r.body for r in origin.requests if r.target == "/fail-first/1?small"] == [b"y" * 1000] * 2


# ---- faults and retries --------------------------------------------------------------------

ABORT_30 = {"abort": {"httpStatus": 503, "percentage": {"value": 30}}}


def test_fault_abort_is_not_retried_by_default(petrel, origin):
    p = start(petrel, origin.port, {"fault": ABORT_30,
                                    "retries": {"attempts": 10, "retryOn": "5xx"}})
    got = [http_request(p.port, "GET", "/f/%d" % i)[0] for i in range(40)]
    assert set(got) <= {200, 503} and 503 in got
    assert len(origin.requests) == got.count(200)


def test_fault_per_attempt_exercises_the_retry_policy(petrel, origin):
    p = start(petrel, origin.port, {"fault": ABORT_30,
                                    "retries": {"attempts": 10, "retryOn": "5xx"}},
              proxy_spec={"faultPerAttempt": True})
    got = [http_request(p.port, "GET", "/f/%d" % i)[0] for i in range(40)]
    assert got == [200] * 40
    assert len(origin.requests) == 40
    assert stats(p)["retries_status"] > 0
