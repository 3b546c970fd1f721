"""tests/e2e/test_75_keepalive.py -- pooled upstream connections and the upstream's own idle
timeout (`Keep-Alive: timeout=N`), end to end.

An upstream that announces timeout=N closes an idle connection after N s; a proxy that reuses
it at that moment writes the request into a closing socket and the client gets a 503 (the
intermittent failure Envoy's users report). Petrel closes such a pooled connection after
max(0.5 s, N - 1 s) (or its own upstreamIdleTimeout, if smaller), so:

  - requests separated by pauses between Petrel's limit and the upstream's all succeed, each on
    a fresh upstream connection (POSTs with bodies, which are never replayed);
  - the same pauses against an upstream that announces nothing keep reusing one connection
    (the control: the limit comes from the header);
  - pauses shorter than Petrel's limit still reuse the connection;
  - timeout=0 means the upstream keeps nothing idle: the connection is not pooled.
"""

import json
import time

from netutil import free_port, http_request
from petrel import simple_config


def start(petrel, origin):
    # One worker: one pool, so reuse (or not) is visible from the origin.
    return petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)


def post(p, path, i):
    st, _, body = http_request(p.port, method="POST", path=path, body=b"payload-%d" % i * 100)
    return st, body


def test_pauses_around_the_upstream_timeout_never_fail(petrel, origin):
    p = start(petrel, origin)
    # Upstream timeout 2 s -> Petrel keeps the connection idle for 1 s at most.
    pauses = [1.6, 2.05, 1.8, 2.2, 1.7, 1.95]
    statuses, on_conn = [], []
    for i, pause in enumerate([0] + pauses):
        time.sleep(pause)  # the behaviour under test: the client's think time
        st, body = post(p, "/keep-alive?timeout=2", i)
        statuses.append(st)
        if st == 200:
            on_conn.append(json.loads(body)["request_on_connection"])
    assert statuses == [200] * (len(pauses) + 1)
    # Every request found the previous connection already closed by Petrel.
    assert on_conn == [0] * (len(pauses) + 1)
    assert origin.connections == len(pauses) + 1


def test_without_the_header_the_connection_is_reused(petrel, origin):
    p = start(petrel, origin)
    seen = []
    for i, pause in enumerate([0, 1.6, 1.6]):
        time.sleep(pause)
        st, body = post(p, "/echo", i)
        assert st == 200
        seen.append(json.loads(body)["request_on_connection"])
    assert seen == [0, 1, 2]
    assert origin.connections == 1


def test_short_pauses_still_reuse(petrel, origin):
    p = start(petrel, origin)
    seen = []
    for i in range(4):
        st, body = post(p, "/keep-alive?timeout=10", i)  # Petrel keeps it 9 s
        assert st == 200
        seen.append(json.loads(body)["request_on_connection"])
        time.sleep(0.2)
    assert seen == [0, 1, 2, 3]


def test_timeout_zero_is_not_pooled(petrel, origin):
    p = start(petrel, origin)
    for i in range(3):
        st, body = post(p, "/keep-alive?timeout=0", i)
        assert st == 200
        assert json.loads(body)["request_on_connection"] == 0
    assert origin.connections == 3
