"""DestinationRule: subsets and load balancing, with real origins (each its own name, answering
with X-Origin).

- Bookinfo's reviews subsets v1/v2/v3 selected by endpoint labels, with Istio's own
  destination-rule-reviews.yaml and virtual-service-reviews-80-20.yaml (FQDN hosts, a
  ServiceEntry whose endpoints carry version labels, bound to a Gateway).
- Consistent hash (ring hash by header, Maglev by query parameter) keeps a key on one origin
  across workers and connections, and spreads keys.
- LEAST_REQUEST with one slow origin sends most concurrent requests to the fast one.
- A subset that selects no endpoint answers 503 UH; an undefined subset is a config error
  that `petrel validate` reports at the destination's file:line:col.
"""

import collections
import os
import threading
import time

import yaml

from netutil import build_request, connect, free_port, header, recv_one
from petrel import ISTIO, REPO, gateway_doc, run_petrel, need_petrel, to_yaml

BOOKINFO = os.path.join(os.path.dirname(REPO), "shared", "acceptance", "istio", "bookinfo")
REVIEWS = "reviews.default.svc.cluster.local"


def service_entry(host, endpoints, port=9080, name=None):
    """endpoints: [(origin port, labels dict or None, weight or None)]."""
    eps = []
    for p, labels, weight in endpoints:
        e = {"address": "127.0.0.1", "ports": {"http": p}}
        if labels:
            e["labels"] = labels
        if weight:
            e["weight"] = weight
        eps.append(e)
    return {"apiVersion": ISTIO, "kind": "ServiceEntry",
            "metadata": {"name": name or host.split(".")[0]},
            "spec": {"hosts": [host], "location": "MESH_INTERNAL", "resolution": "STATIC",
                     "ports": [{"number": port, "name": "http", "protocol": "HTTP"}],
                     "endpoints": eps}}


def virtual_service(name, http, hosts=("*",)):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": list(hosts), "gateways": ["edge"], "http": http}}


def destination_rule(name, host, traffic_policy=None, subsets=None):
    spec = {"host": host}
    if traffic_policy:
        spec["trafficPolicy"] = traffic_policy
    if subsets:
        spec["subsets"] = subsets
    return {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": name},
            "spec": spec}


def get(sock, path="/echo", headers=()):
    sock.sendall(build_request(path, [("Host", "example.com")] + list(headers)))
    status, hdrs, _ = recv_one(sock)
    return status, header(hdrs, "x-origin")


def get_new(port, path="/echo", headers=()):
    s = connect(port)
    try:
        return get(s, path, headers)
    finally:
        s.close()


def load_bookinfo(name):
    with open(os.path.join(BOOKINFO, name)) as f:
        return yaml.safe_load(f)


def test_bookinfo_reviews_subsets_80_20(petrel, origin_factory):
    v1, v2, v3 = (origin_factory(name="reviews-%s" % v) for v in ("v1", "v2", "v3"))
    port = free_port()
    dr = load_bookinfo("destination-rule-reviews.yaml")
    dr["spec"]["host"] = REVIEWS  # short names are not expanded yet
    vs = load_bookinfo("virtual-service-reviews-80-20.yaml")
    vs["spec"]["hosts"] = ["*"]
    vs["spec"]["gateways"] = ["edge"]
    for r in vs["spec"]["http"][0]["route"]:
        r["destination"]["host"] = REVIEWS
    # A route of our own in front: /v3 goes to subset v3 only.
    vs["spec"]["http"].insert(0, {"match": [{"uri": {"prefix": "/v3"}}],
                                  "route": [{"destination": {"host": REVIEWS, "subset": "v3"}}]})
    docs = [gateway_doc([(port, "HTTP")]),
            service_entry(REVIEWS, [(v1.port, {"app": "reviews", "version": "v1"}, None),
                                    (v2.port, {"app": "reviews", "version": "v2"}, None),
                                    (v3.port, {"app": "reviews", "version": "v3"}, None)]),
            dr, vs]
    petrel(docs, concurrency=2)

    counts = collections.Counter()
    s = connect(port)
    for _ in range(500):
        status, who = get(s)
        assert status == 200
        counts[who] += 1
    s.close()
    assert set(counts) <= {"reviews-v1", "reviews-v2"}, counts
    # 80 / 20 of 500: 400 expected for v1 (standard deviation ~9).
    assert 350 <= counts["reviews-v1"] <= 450, counts
    for _ in range(20):
        assert get_new(port, "/v3/reviews/0") == (200, "reviews-v3")
    assert len(v3.requests) == 20


def test_subset_without_endpoints_is_503_uh(petrel, origin_factory):
    o = origin_factory(name="only-v1")
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]),
            service_entry(REVIEWS, [(o.port, {"version": "v1"}, None)]),
            destination_rule("reviews", REVIEWS,
                             subsets=[{"name": "v1", "labels": {"version": "v1"}},
                                      {"name": "v2", "labels": {"version": "v2"}}]),
            virtual_service("reviews", [
                {"match": [{"uri": {"prefix": "/v2"}}],
                 "route": [{"destination": {"host": REVIEWS, "subset": "v2"}}]},
                {"route": [{"destination": {"host": REVIEWS, "subset": "v1"}}]}])]
    p = petrel(docs, concurrency=1)
    assert get_new(port, "/v1") == (200, "only-v1")
    assert get_new(port, "/v2")[0] == 503
    lines = p.wait_access_log(2)
    assert " 503 UH " in lines[-1], lines


def hash_config(port, origins, traffic_policy):
    return [gateway_doc([(port, "HTTP")]),
            service_entry("hashed.local", [(o.port, None, None) for o in origins], port=80),
            destination_rule("hashed", "hashed.local", traffic_policy=traffic_policy),
            virtual_service("hashed", [{"route": [{"destination": {"host": "hashed.local"}}]}])]


def check_consistent_hash(port, key_request):
    """key_request(key) -> (path, headers). Every request of one key lands on one origin,
    over fresh connections (so over both workers); 50 keys reach most origins."""
    owner = {}
    for key in ("alice", "bob"):
        seen = set()
        kept = connect(port)
        for i in range(200):
            path, headers = key_request(key)
            # Half on one keep-alive connection, half on new ones (either worker).
            status, who = get(kept, path, headers) if i % 2 else get_new(port, path, headers)
            assert status == 200
            seen.add(who)
        kept.close()
        assert len(seen) == 1, (key, seen)
        owner[key] = seen.pop()
    spread = collections.Counter()
    for k in range(50):
        path, headers = key_request("user-%d" % k)
        status, who = get_new(port, path, headers)
        assert status == 200
        spread[who] += 1
    assert len(spread) >= 3, spread
    return owner


def test_consistent_hash_ring_by_header(petrel, origin_factory):
    origins = [origin_factory(name="hash-%d" % i) for i in range(4)]
    port = free_port()
    petrel(hash_config(port, origins, {"loadBalancer": {"consistentHash": {
        "httpHeaderName": "X-User", "ringHash": {"minimumRingSize": 1024}}}}), concurrency=2)
    check_consistent_hash(port, lambda key: ("/echo", [("X-User", key)]))
    # Without the header: a random origin, so more than one over 100 requests.
    seen = {get_new(port)[1] for _ in range(100)}
    assert len(seen) >= 2, seen


def test_consistent_hash_maglev_by_query_parameter(petrel, origin_factory):
    origins = [origin_factory(name="mag-%d" % i) for i in range(4)]
    port = free_port()
    petrel(hash_config(port, origins, {"loadBalancer": {"consistentHash": {
        "httpQueryParameterName": "user", "maglev": {"tableSize": 65537}}}}), concurrency=2)
    check_consistent_hash(port, lambda key: ("/echo?x=1&user=%s" % key, []))


def test_consistent_hash_keeps_a_key_with_one_connection(petrel, origin_factory):
    origins = [origin_factory(name="ka-%d" % i) for i in range(3)]
    port = free_port()
    petrel(hash_config(port, origins, {"loadBalancer": {"consistentHash": {
        "httpCookie": {"name": "session", "path": "/"}}}}), concurrency=2)
    s = connect(port)
    seen = {get(s, headers=[("Cookie", "a=1; session=xyz")])[1] for _ in range(200)}
    s.close()
    assert len(seen) == 1, seen


def test_least_request_prefers_the_fast_origin(petrel, origin_factory):
    fast, slow = origin_factory(name="fast"), origin_factory(name="slow")

    def slow_handler(conn, req):
        time.sleep(0.3)
        return conn.send_response(req, 200, body=b"slow")
    slow.routes["/work"] = slow_handler
    fast.routes["/work"] = lambda conn, req: conn.send_response(req, 200, body=b"fast")
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]),
            service_entry("lr.local", [(fast.port, None, None), (slow.port, None, None)], port=80),
            destination_rule("lr", "lr.local",
                             traffic_policy={"loadBalancer": {"simple": "LEAST_REQUEST"}}),
            virtual_service("lr", [{"route": [{"destination": {"host": "lr.local"}}]}])]
    petrel(docs, concurrency=1)

    counts = collections.Counter()
    lock = threading.Lock()
    errors = []

    def client():
        try:
            s = connect(port)
            for _ in range(15):
                status, who = get(s, "/work")
                assert status == 200
                with lock:
                    counts[who] += 1
            s.close()
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    total = counts["fast"] + counts["slow"]
    assert total == 150, counts
    # Round robin would give the slow origin half; least request keeps it to a small share.
    assert counts["slow"] <= total * 0.25, counts


def test_validate_reports_an_undefined_subset(tmp_path):
    need_petrel()
    vs = virtual_service("reviews", [
        {"route": [{"destination": {"host": REVIEWS, "subset": "v1"}, "weight": 80},
                   {"destination": {"host": REVIEWS, "subset": "v9"}, "weight": 20}]}])
    docs = [gateway_doc([(8080, "HTTP")]),
            service_entry(REVIEWS, [(9001, {"version": "v1"}, None)]),
            destination_rule("reviews", REVIEWS, subsets=[{"name": "v1",
                                                           "labels": {"version": "v1"}}]),
            vs]
    path = tmp_path / "bookinfo.yaml"
    text = to_yaml(docs)
    path.write_text(text)
    r = run_petrel(["validate", str(path)])
    assert r.returncode == 1, (r.stdout, r.stderr)
    # The subset key of the second destination.
    lines = text.splitlines()
    n = [i for i, l in enumerate(lines) if "subset: v9" in l][0]
    col = lines[n].index("subset") + 1
    expected = "%s:%d:%d: spec.http[0].route[1].destination.subset: subset \"v9\" is not " \
               "defined by DestinationRule default/reviews" % (path, n + 1, col)
    assert expected in r.stderr, r.stderr
    assert "(1 error)" in r.stderr, r.stderr
