"""tests/e2e/test_86_http2_upstream.py -- HTTP/2 and gRPC upstreams (proxy/http2_client.c),
driven by HTTP/1.1 clients through a Gateway.

The origin is tests/lib/upstream.py's H2Origin (python3-h2) and a real grpcio server whose
stubs are generated at test time with python3-grpc-tools. What is checked:
  - the protocol as Istio picks it: a GRPC / HTTP2 port (or a port named grpc-* / http2-*) is
    spoken HTTP/2 (h2c); an HTTP port only with h2UpgradePolicy UPGRADE (the DestinationRule's,
    or the Proxy's mesh-wide default), and DO_NOT_UPGRADE keeps HTTP/1.1;
  - translation: Host -> :authority, connection-specific headers dropped, te: trailers kept,
    request trailers carried, response trailers reaching an HTTP/1.1 client as chunked trailers;
  - multiplexing: many concurrent client connections on few upstream connections, never more
    streams on one than the upstream's SETTINGS_MAX_CONCURRENT_STREAMS;
  - GOAWAY: a stream above the last stream id is retried (refused-stream) on a new connection;
  - gRPC: grpc-status from trailers-only answers and from trailers, retries on `unavailable`;
  - TLS with ALPN h2 to the upstream (DestinationRule tls SIMPLE).
"""

import json
import threading

import pytest

from netutil import free_port, http_request
from petrel import ISTIO, simple_config, stats, wait_log
from upstream import H2Origin


def h2_config(origin_port, protocol="GRPC", port_name=None, http_route=None, extra=()):
    docs = simple_config(http_port=free_port(), upstream_port=origin_port, http_route=http_route)
    se = docs[-1]["spec"]
    name = port_name or protocol.lower()
    se["ports"] = [{"number": 80, "name": name}]
    if protocol is not None:
        se["ports"][0]["protocol"] = protocol
    for ep in se["endpoints"]:
        ep["ports"] = {name: list(ep["ports"].values())[0]}
    return docs + list(extra)


def dest_rule(pool_http=None, tls=None, host="web.local"):
    tp = {}
    if pool_http is not None:
        tp["connectionPool"] = {"http": pool_http}
    if tls is not None:
        tp["tls"] = tls
    return {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "web-dr"},
            "spec": {"host": host, "trafficPolicy": tp}}


@pytest.fixture
def h2origin():
    made = []

    def make(**kw):
        o = H2Origin(**kw)
        made.append(o)
        return o

    yield make
    errors = []
    for o in made:
        o.stop()
        errors += o.errors
    assert not errors, "\n".join(errors)


def test_grpc_port_is_spoken_http2_with_translated_headers(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    st, hdrs, body = http_request(p.port, path="/echo?x=1", host_header="svc.example:8080",
                                  headers=[("Keep-Alive", "timeout=5"), ("TE", "trailers"),
                                           ("X-Custom", "Kept")])
    assert st == 200, body
    req = json.loads(body)
    assert (req["method"], req["path"], req["authority"], req["scheme"]) == \
        ("GET", "/echo?x=1", "svc.example:8080", "http")
    names = [n for n, _ in req["headers"]]
    assert ["te", "trailers"] in req["headers"]
    assert ["x-custom", "Kept"] in req["headers"]
    for dropped in ("host", "connection", "keep-alive", "transfer-encoding", "upgrade"):
        assert dropped not in names, req["headers"]
    assert o.connections == 1


def test_port_name_prefix_selects_http2(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port, protocol=None, port_name="http2-web"), concurrency=1)
    st, _, body = http_request(p.port, path="/echo")
    assert st == 200 and json.loads(body)["method"] == "GET"


def test_post_body_and_request_trailers(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    payload = b"x" * 100000
    st, _, body = http_request(p.port, method="POST", path="/echo", body=payload)
    assert st == 200, body
    assert json.loads(body)["body_len"] == len(payload)
    chunked = (b"5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n")
    st, _, body = http_request(p.port, method="POST", path="/echo", body=chunked,
                               headers=[("Transfer-Encoding", "chunked"), ("TE", "trailers")])
    assert st == 200, body
    req = json.loads(body)
    assert req["body_len"] == 5 and req["trailers"] == [["x-checksum", "abc"]], req


def test_response_trailers_reach_an_http1_client_as_chunked_trailers(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    from netutil import raw_request, parse_responses
    raw = raw_request(p.port, b"GET /trailers HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n"
                              b"Connection: close\r\n\r\n")
    assert b"transfer-encoding: chunked" in raw.lower(), raw
    status, _, _, body, trailers = parse_responses(raw)[0]
    assert status == 200 and body == b"hello"
    assert b"x-trailer: done" in raw.lower(), raw


def concurrent_gets(port, path, n):
    results = [None] * n

    def one(i):
        try:
            results[i] = http_request(port, path=path, timeout=20)[0]
        except Exception as e:  # reported through results
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_many_client_connections_share_one_upstream_connection(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200  # the connection and its SETTINGS
    results = concurrent_gets(p.port, "/delay/300", 20)
    assert results == [200] * 20
    assert o.connections == 1
    assert o.max_active_per_conn > 1


def test_settings_max_concurrent_streams_is_honoured(petrel, h2origin):
    o = h2origin(max_streams=2)
    p = petrel(h2_config(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    results = concurrent_gets(p.port, "/delay/300", 8)
    assert results == [200] * 8
    assert o.max_active_per_conn <= 2
    assert o.connections >= 4  # eight at once, two a connection


def test_goaway_refused_stream_is_retried_on_a_new_connection(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port), concurrency=1)
    assert http_request(p.port, path="/echo")[0] == 200
    o.refuse_next(1)
    st, _, body = http_request(p.port, method="POST", path="/echo", body=b"once")
    assert st == 200, body
    req = json.loads(body)
    assert req["conn_id"] == 2 and req["body_len"] == 4
    assert ["x-envoy-attempt-count", "2"] in req["headers"]
    assert o.goaways == 1 and o.connections == 2


def test_h2_upgrade_policy_both_ways(petrel, h2origin, origin):
    o = h2origin()
    # An HTTP port: HTTP/1.1 unless upgraded.
    up = petrel(h2_config(o.port, protocol="HTTP",
                          extra=[dest_rule(pool_http={"h2UpgradePolicy": "UPGRADE"})]),
                concurrency=1)
    assert http_request(up.port, path="/echo")[0] == 200
    assert len(o.requests) == 1
    # The mesh-wide default upgrades; a DestinationRule that says no wins over it.
    mesh = {"h2UpgradePolicy": "UPGRADE"}
    no = petrel(h2_config(origin.port, protocol="HTTP",
                          extra=[dest_rule(pool_http={"h2UpgradePolicy": "DO_NOT_UPGRADE"})]),
                concurrency=1, proxy_spec=mesh)
    st, _, body = http_request(no.port, path="/echo")
    assert st == 200 and json.loads(body)["version"] == "HTTP/1.1"
    yes = petrel(h2_config(o.port, protocol="HTTP"), concurrency=1, proxy_spec=mesh)
    assert http_request(yes.port, path="/echo")[0] == 200
    assert len(o.requests) == 2


def test_grpc_status_is_logged_and_unavailable_is_retried(petrel, h2origin):
    o = h2origin()
    p = petrel(h2_config(o.port, http_route={"retries": {"attempts": 2, "retryOn": "unavailable"}}),
               concurrency=1)
    st, hdrs, _ = http_request(p.port, path="/grpc/14")
    assert st == 200
    assert dict((k.lower(), v) for k, v in hdrs)["grpc-status"] == "14"
    assert len(o.requests) == 3  # the first attempt and two retries
    st, _, _ = http_request(p.port, path="/grpc/5")
    assert st == 200 and len(o.requests) == 4  # NOT_FOUND is not retried
