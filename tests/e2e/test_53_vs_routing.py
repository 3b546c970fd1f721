"""tests/e2e/test_53_vs_routing.py -- VirtualService matching and route actions, end to end.

Real petrel, real origins (tests/lib/upstream.py: /echo and every other path not reserved
answers with the request it received, as JSON, and `?h=Name:Value` adds a response header):

  - header mutations (set / add / remove) in both directions, at route level and at
    destination level, and their order (destination first, then the route: the route wins);
  - rewrites: uri by prefix and by regex (query kept), authority (reaches the origin as Host);
  - redirects, each field, answered by Petrel without touching an origin;
  - regex, queryParams and withoutHeaders matches;
  - Bookinfo's "reviews: jason to v2, everyone else to v3", bound to a gateway with FQDN
    hosts (short names are expanded by another piece of work);
  - a 4000-request 80/20 split, within 3 points;
  - an invalid regex reported by `petrel validate` at file:line:col.
"""

import json
import time

from netutil import free_port, header, http_request, parse_responses, raw_request
from petrel import ISTIO, gateway_doc, run_petrel, service_entry_doc, to_yaml


def vs_doc(http, hosts=("*",), name="routes"):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": list(hosts), "gateways": ["edge"], "http": http}}


def dest(host, weight=None, headers=None):
    d = {"destination": {"host": host, "port": {"number": 80}}}
    if weight is not None:
        d["weight"] = weight
    if headers is not None:
        d["headers"] = headers
    return d


def get(port, path, headers=None, host="example.com", method="GET"):
    """(status, headers, body) of one request on a fresh connection."""
    return http_request(port, method, path, headers=headers, host_header=host)


def echoed(port, path, headers=None, host="example.com"):
    """The response, and the request as the origin saw it (its JSON echo)."""
    st, rh, body = get(port, path, headers, host)
    assert st == 200, (st, rh, body[:300])
    return rh, json.loads(body)


def req_headers(echo, name):
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def test_header_mutations_both_directions_both_levels(petrel, origin_factory):
    a = origin_factory(name="A")
    port = free_port()
    route_headers = {
        "request": {"set": {"x-route-set": "r1", "x-client-set": "replaced", "x-order": "route"},
                    "add": {"x-multi": "route-added"},
                    "remove": ["x-drop-me"]},
        "response": {"set": {"x-resp-route": "rs", "x-resp-order": "route"},
                     "add": {"x-resp-add": "ra"},
                     "remove": ["x-origin-secret"]},
    }
    dest_headers = {
        "request": {"set": {"x-dest-set": "d1", "x-order": "destination"},
                    "remove": ["x-dest-drop"]},
        "response": {"set": {"x-resp-dest": "ds", "x-resp-order": "destination"},
                     "add": {"x-resp-dest-add": "da"}},
    }
    docs = [gateway_doc([(port, "HTTP")]),
            vs_doc([{"match": [{"uri": {"prefix": "/hdr"}}], "headers": route_headers,
                     "route": [dest("a.local", headers=dest_headers)]},
                    {"route": [dest("a.local")]}]),
            service_entry_doc("a.local", a.port, name="a")]
    p = petrel(docs)
    rh, echo = echoed(p.port, "/hdr/echo?h=X-Origin-Secret:s3cr3t&h=X-Resp-Route:origin"
                              "&h=X-Kept:k",
                      headers=[("X-Client-Set", "original"), ("X-Drop-Me", "1"),
                               ("X-Dest-Drop", "2"), ("X-Multi", "client"), ("X-Keep", "yes")])
    # request side, as the origin received it
    assert req_headers(echo, "x-route-set") == ["r1"]
    assert req_headers(echo, "x-client-set") == ["replaced"]
    assert req_headers(echo, "x-dest-set") == ["d1"]
    assert req_headers(echo, "x-drop-me") == [] and req_headers(echo, "x-dest-drop") == []
    assert req_headers(echo, "x-multi") == ["client", "route-added"]
    assert req_headers(echo, "x-keep") == ["yes"]
    assert req_headers(echo, "x-order") == ["route"]  # destination first, then the route
    # response side, as the client received it
    assert header(rh, "x-origin-secret") is None
    assert [v for k, v in rh if k.lower() == "x-resp-route"] == ["rs"]
    assert header(rh, "x-resp-add") == "ra"
    assert header(rh, "x-resp-dest") == "ds" and header(rh, "x-resp-dest-add") == "da"
    assert header(rh, "x-resp-order") == "route"
    assert header(rh, "x-kept") == "k" and header(rh, "x-origin") == "A"

    # another route of the same VirtualService: nothing changed
    rh, echo = echoed(p.port, "/plain?h=X-Origin-Secret:s", headers=[("X-Drop-Me", "1")])
    assert req_headers(echo, "x-drop-me") == ["1"] and req_headers(echo, "x-route-set") == []
    assert header(rh, "x-origin-secret") == "s" and header(rh, "x-resp-route") is None


def test_rewrites_uri_prefix_regex_and_authority(petrel, origin_factory):
    a = origin_factory(name="A")
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]),
            vs_doc([
                {"match": [{"uri": {"prefix": "/old/"}}], "rewrite": {"uri": "/new/"},
                 "route": [dest("a.local")]},
                {"match": [{"uri": {"exact": "/exact"}}], "rewrite": {"uri": "/whole/path"},
                 "route": [dest("a.local")]},
                {"match": [{"uri": {"prefix": "/service/"}}],
                 "rewrite": {"uriRegexRewrite": {"match": "^/service/([^/]+)(/.*)$",
                                                 "rewrite": "\\2/instance/\\1"}},
                 "route": [dest("a.local")]},
                {"match": [{"uri": {"prefix": "/auth"}}],
                 "rewrite": {"authority": "backend.internal:8000", "uri": "/echo"},
                 "route": [dest("a.local")]},
                {"route": [dest("a.local")]}]),
            service_entry_doc("a.local", a.port, name="a")]
    p = petrel(docs)
    _, e = echoed(p.port, "/old/a/b?q=1&r=2")
    assert e["target"] == "/new/a/b?q=1&r=2", e["target"]
    _, e = echoed(p.port, "/exact?x=y")
    assert e["target"] == "/whole/path?x=y", e["target"]
    _, e = echoed(p.port, "/service/foo/bar/baz?k=v")
    assert e["target"] == "/bar/baz/instance/foo?k=v", e["target"]
    _, e = echoed(p.port, "/auth/anything?z=1", host="public.example.com")
    assert e["target"] == "/echo/anything?z=1", e["target"]
    assert req_headers(e, "host") == ["backend.internal:8000"]
    # not rewritten
    _, e = echoed(p.port, "/other/old/?q", host="public.example.com")
    assert e["target"] == "/other/old/?q" and req_headers(e, "host") == ["public.example.com"]
    # the access log keeps the path the client sent
    lines = p.wait_access_log(5)
    assert any('"GET /old/a/b?q=1&r=2 HTTP/1.1" 200' in l for l in lines), lines


def test_redirects_each_field(petrel, origin_factory):
    a = origin_factory(name="A")
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]),
            vs_doc([
                {"match": [{"uri": {"prefix": "/r-uri"}}], "redirect": {"uri": "/moved"}},
                {"match": [{"uri": {"prefix": "/r-q"}}], "redirect": {"uri": "/moved?b=2"}},
                {"match": [{"uri": {"prefix": "/r-auth"}}],
                 "redirect": {"authority": "other.example.org"}},
                {"match": [{"uri": {"prefix": "/r-port"}}], "redirect": {"port": 8443}},
                {"match": [{"uri": {"prefix": "/r-derive"}}],
                 "redirect": {"derivePort": "FROM_REQUEST_PORT"}},
                {"match": [{"uri": {"prefix": "/r-scheme"}}],
                 "redirect": {"scheme": "https", "redirectCode": 308}},
                {"match": [{"uri": {"prefix": "/r-code"}}],
                 "redirect": {"uri": "/c", "redirectCode": 302},
                 "headers": {"response": {"set": {"x-redirected": "yes"}}}},
                {"route": [dest("a.local")]}]),
            service_entry_doc("a.local", a.port, name="a")]
    p = petrel(docs)

    def loc(path, host="shop.example.com:%d" % port, method="GET"):
        st, rh, body = get(p.port, path, host=host, method=method)
        return st, header(rh, "location"), rh, body

    st, l, rh, body = loc("/r-uri/x?q=1")
    assert (st, l, body) == (301, "http://shop.example.com:%d/moved?q=1" % port, b"")
    assert header(rh, "content-length") == "0"
    assert loc("/r-q?q=1")[:2] == (301, "http://shop.example.com:%d/moved?b=2" % port)
    assert loc("/r-auth/p?x")[:2] == (301, "http://other.example.org/r-auth/p?x")
    assert loc("/r-port/p")[:2] == (301, "http://shop.example.com:8443/r-port/p")
    assert loc("/r-derive", host="shop.example.com")[:2] == \
        (301, "http://shop.example.com:%d/r-derive" % port)
    assert loc("/r-scheme/s", host="shop.example.com:80")[:2] == \
        (308, "https://shop.example.com/r-scheme/s")
    st, l, rh, _ = loc("/r-code")
    assert (st, l, header(rh, "x-redirected")) == (302, "http://shop.example.com:%d/c" % port, "yes")
    st, l, _, body = loc("/r-uri", method="HEAD")
    assert st == 301 and body == b""
    assert a.requests == []  # answered by Petrel alone

    # keep-alive survives a redirect: two pipelined requests, two answers, one connection
    raw = raw_request(p.port, b"GET /r-uri HTTP/1.1\r\nHost: h\r\n\r\n"
                              b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    resps = parse_responses(raw)
    assert [r[0] for r in resps] == [301, 200], raw[:400]
    assert len(a.requests) == 1
    lines = p.wait_access_log(10)
    assert any('"GET /r-code HTTP/1.1" 302' in l for l in lines), lines


def test_regex_query_params_and_without_headers_match(petrel, origin_factory):
    a, b, c = origin_factory(name="A"), origin_factory(name="B"), origin_factory(name="C")
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]),
            vs_doc([
                {"match": [{"uri": {"regex": "/items/[0-9]+"}}], "route": [dest("a.local")]},
                {"match": [{"queryParams": {"env": {"exact": "canary"},
                                            "id": {"regex": "[a-f0-9]{4}"}}}],
                 "route": [dest("b.local")]},
                {"match": [{"uri": {"prefix": "/beta"}, "withoutHeaders": {"x-opt-out": {}}}],
                 "route": [dest("b.local")]},
                {"route": [dest("c.local")]}]),
            service_entry_doc("a.local", a.port, name="a"),
            service_entry_doc("b.local", b.port, name="b"),
            service_entry_doc("c.local", c.port, name="c")]
    p = petrel(docs)

    def who(path, headers=None):
        st, rh, _ = get(p.port, path, headers)
        assert st == 200
        return header(rh, "x-origin")

    assert who("/items/42") == "A"
    assert who("/items/42?x=1") == "A"
    assert who("/items/42/more") == "C"  # full match only
    assert who("/items/abc") == "C"
    assert who("/q?env=canary&id=beef") == "B"
    assert who("/q?id=beef&env=canary") == "B"
    assert who("/q?env=canary&id=beefy") == "C"
    assert who("/q?env=prod&id=beef") == "C"
    assert who("/beta/x") == "B"
    assert who("/beta/x", [("X-Opt-Out", "1")]) == "C"


def test_bookinfo_reviews_jason_to_v2_everyone_else_to_v3(petrel, origin_factory):
    v2, v3 = origin_factory(name="reviews-v2"), origin_factory(name="reviews-v3")
    port = free_port()
    reviews = "reviews.bookinfo.svc.cluster.local"
    # ../shared/acceptance/istio/bookinfo/virtual-service-reviews-jason-v2-v3.yaml, with FQDN
    # hosts, bound to a gateway, subsets replaced by one ServiceEntry per version.
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - %(reviews)s
  gateways:
  - edge
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews-v2.bookinfo.svc.cluster.local
        port:
          number: 80
  - route:
    - destination:
        host: reviews-v3.bookinfo.svc.cluster.local
        port:
          number: 80
""" % {"reviews": reviews}
    docs = [gateway_doc([(port, "HTTP")]), vs,
            service_entry_doc("reviews-v2.bookinfo.svc.cluster.local", v2.port, name="v2"),
            service_entry_doc("reviews-v3.bookinfo.svc.cluster.local", v3.port, name="v3")]
    p = petrel(docs)

    def who(headers=None, host=reviews):
        st, rh, _ = get(p.port, "/reviews/0", headers, host)
        return st, header(rh, "x-origin")

    assert who([("end-user", "jason")]) == (200, "reviews-v2")
    assert who([("End-User", "jason")]) == (200, "reviews-v2")
    assert who([("end-user", "Jason")]) == (200, "reviews-v3")
    assert who([("end-user", "jasonx")]) == (200, "reviews-v3")
    assert who() == (200, "reviews-v3")
    assert who(host="ratings.bookinfo.svc.cluster.local")[0] == 404


def test_weighted_split_80_20_over_4000_requests(petrel, origin_factory):
    a, b = origin_factory(name="A"), origin_factory(name="B")
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]),
            vs_doc([{"route": [dest("a.local", 80), dest("b.local", 20)]}]),
            service_entry_doc("a.local", a.port, name="a"),
            service_entry_doc("b.local", b.port, name="b")]
    p = petrel(docs, concurrency=2)
    counts = {"A": 0, "B": 0}
    total, batch = 4000, 100
    deadline = time.monotonic() + 90
    one = b"GET /s HTTP/1.1\r\nHost: h\r\n\r\n"
    last = b"GET /s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    for _ in range(total // batch):
        assert time.monotonic() < deadline
        raw = raw_request(p.port, one * (batch - 1) + last, timeout=30)
        resps = parse_responses(raw)
        assert len(resps) == batch
        for st, _, rh, _, _ in resps:
            assert st == 200
            counts[header(rh, "x-origin")] += 1
    assert counts["A"] + counts["B"] == total
    share = counts["A"] / total
    assert 0.77 <= share <= 0.83, counts


def test_validate_reports_invalid_regex_at_file_line_col(tmp_path):
    from petrel import need_petrel
    need_petrel()
    docs = [gateway_doc([(8080, "HTTP")]),
            vs_doc([{"match": [{"uri": {"regex": "/a(b"}}], "route": [dest("a.local")]},
                    {"match": [{"queryParams": {"x": {"prefix": "y"}}}],
                     "route": [dest("a.local")]}]),
            service_entry_doc("a.local", 9, name="a")]
    path = tmp_path / "vs.yaml"
    text = to_yaml(docs)
    path.write_text(text)
    r = run_petrel(["validate", str(path)])
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = text.splitlines()
    n = [i for i, l in enumerate(lines) if "regex: /a(b" in l][0]
    col = lines[n].index("regex") + 1
    want = "%s:%d:%d: spec.http[0].match[0].uri.regex: invalid regex at offset" % (path, n + 1, col)
    assert want in r.stderr, r.stderr
    assert "spec.http[1].match[0].queryParams.x.prefix: not supported for query parameters" \
        in r.stderr, r.stderr
