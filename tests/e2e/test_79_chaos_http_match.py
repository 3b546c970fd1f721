"""An HTTP toxic's own match[] (Istio's HTTPMatchRequest, compiled by the VirtualService's reader:
config/chaos_match.c; evaluated by the router's code: filters/chaos_http.c). Real petrel, an HTTP
chaos proxy or a Gateway route in front of a real origin (HttpOrigin), raw requests:

  - YAML: http_abort 503 with match uri prefix /api aborts /api/... and never /other, and its
    hits count only those; method + header match; a dry run with a match counts only the matched
    requests; max_hits caps matched requests only;
  - API: a toxic POSTed with "match" reads back as given (GET), and behaves (uri regex,
    withoutHeaders, queryParams, authority); an update replaces the match, null removes it, an
    update without one keeps it; a toxic without one keeps Toxiproxy's shape;
  - a route toxic (POST /routes/{vs}/{route}/toxics) with a match;
  - lifetimes: POST /reset brings a declared toxic back with its match; a reload that leaves the
    declaration as it was keeps the API's changes, one that changes the match applies it;
  - bad input: a 400 naming the field for an unknown field, a bad regex, a match on a TCP toxic;
    `petrel validate` errors with file:line:col and the field path for the same in YAML.
"""

import re

from chaos import ChaosApi, chaos_proxy_spec
from netutil import free_port, http_request, wait_until
from petrel import run_petrel, to_yaml
from test_79_chaos_http import start as route_start
from test_79_chaos_http_proxy import chaos_http_doc, metric
from test_79_chaos_http_proxy import start as proxy_start

API_ABORT = {"name": "api", "type": "http_abort", "attributes": {"status": 503},
             "match": [{"uri": {"prefix": "/api"}}]}


def status(port, path="/", method="GET", headers=None):
    return http_request(port, method=method, path=path, headers=headers)[0]


def test_yaml_match_aborts_only_the_requests_it_matches(petrel, origin):
    p, api, port = proxy_start(petrel, origin, toxics=[API_ABORT])
    got = [status(port, "/api/x%d" % i) for i in range(5)] + \
        [status(port, "/other%d" % i) for i in range(5)] + [status(port, "/api?q=1")]
    assert got == [503] * 5 + [200] * 5 + [503], got
    assert sorted(r.path for r in origin.requests) == ["/other%d" % i for i in range(5)]
    assert metric(api, "petrel_chaos_toxic_hits_total", "api") == 6
    t = api.ok("GET", "/proxies/shop/toxics/api")
    assert t["match"] == [{"uri": {"prefix": "/api"}}], t


def test_method_and_header_match(petrel, origin):
    match = [{"method": {"exact": "POST"}, "headers": {"x-chaos": {"exact": "on"}}}]
    p, api, port = proxy_start(petrel, origin, toxics=[
        {"name": "post", "type": "http_abort", "attributes": {"status": 502}, "match": match}])
    assert status(port, "/a", "POST", [("X-Chaos", "on")]) == 502
    assert status(port, "/a", "POST") == 200
    assert status(port, "/a", "POST", [("X-Chaos", "off")]) == 200
    assert status(port, "/a", "GET", [("X-Chaos", "on")]) == 200
    assert metric(api, "petrel_chaos_toxic_hits_total", "post") == 1
    assert len(origin.requests) == 3


def test_dry_run_and_max_hits_count_only_matched_requests(petrel, origin):
    p, api, port = proxy_start(petrel, origin, toxics=[
        dict(API_ABORT, name="dry", dry_run=True),
        {"name": "capped", "type": "http_abort", "attributes": {"status": 504}, "max_hits": 2,
         "match": [{"uri": {"exact": "/capped"}}]}])
    got = [status(port, "/api/%d" % i) for i in range(4)] + \
        [status(port, "/other") for _ in range(6)]
    assert got == [200] * 10, got
    assert metric(api, "petrel_chaos_toxic_dry_run_hits_total", "dry") == 4
    assert metric(api, "petrel_chaos_toxic_hits_total", "dry") == 0
    # The cap is spent on matched requests only: the 10 above left it whole.
    assert [status(port, "/capped") for _ in range(3)] == [504, 504, 200]
    assert metric(api, "petrel_chaos_toxic_hits_total", "capped") == 2


def test_api_match_round_trip_and_behaviour(petrel, origin):
    p, api, port = proxy_start(petrel, origin)
    match = [{"uri": {"regex": "/v[0-9]+/.*"}, "withoutHeaders": {"x-canary": {}}},
             {"queryParams": {"fail": {"exact": "1"}}, "authority": {"prefix": "shop."}}]
    body = {"name": "m", "type": "http_abort", "attributes": {"status": 503}, "match": match}
    made = api.ok("POST", "/proxies/shop/toxics", body)
    assert made["match"] == match
    assert api.ok("GET", "/proxies/shop/toxics/m")["match"] == match
    assert api.ok("GET", "/proxies/shop")["toxics"][0]["match"] == match
    assert status(port, "/v1/a") == 503
    assert status(port, "/v1") == 200  # a regex matches the whole path
    assert status(port, "/v1/a", headers=[("x-canary", "1")]) == 200
    assert status(port, "/x?fail=1", headers=[("Host", "shop.example")]) == 503
    assert status(port, "/x?fail=1", headers=[("Host", "web.example")]) == 200
    assert status(port, "/x?fail=2", headers=[("Host", "shop.example")]) == 200
    # An update without "match" keeps it; one with a match replaces it; null removes it.
    api.ok("POST", "/proxies/shop/toxics/m", {"attributes": {"status": 502}})
    assert status(port, "/v1/a") == 502 and status(port, "/only") == 200
    api.ok("POST", "/proxies/shop/toxics/m", {"match": [{"uri": {"exact": "/only"}}]})
    assert api.ok("GET", "/proxies/shop/toxics/m")["match"] == [{"uri": {"exact": "/only"}}]
    assert status(port, "/only") == 502 and status(port, "/v1/a") == 200
    out = api.ok("POST", "/proxies/shop/toxics/m", {"match": None})
    assert "match" not in out  # Toxiproxy's shape again
    assert status(port, "/v1/a") == 502
    assert metric(api, "petrel_chaos_toxic_hits_total", "m") == 5


def test_route_toxic_with_a_match(petrel, origin):
    p, api, _ = route_start(petrel, origin)
    t = api.ok("POST", "/routes/web/main/toxics",
               {"name": "ab", "type": "http_abort", "attributes": {"status": 503},
                "match": [{"uri": {"prefix": "/api"}, "method": {"regex": "GET|HEAD"}}]})
    assert t["match"] == [{"uri": {"prefix": "/api"}, "method": {"regex": "GET|HEAD"}}]
    assert status(p.port, "/api/x") == 503
    assert status(p.port, "/api/x", "DELETE") == 200
    assert status(p.port, "/other") == 200
    assert api.ok("GET", "/routes")[0]["toxics"][0]["match"] == t["match"]
    assert len(origin.requests) == 2


def test_reset_and_reloads_keep_the_declared_match(petrel, origin):
    api = ChaosApi(free_port())
    docs = [chaos_http_doc("shop", origin.port, toxics=[API_ABORT])]
    p = petrel(docs, proxy_spec=chaos_proxy_spec(api.port))
    api.petrel = p
    port = int(api.ok("GET", "/proxies/shop")["listen"].rsplit(":", 1)[1])
    api.ok("DELETE", "/proxies/shop/toxics/api")
    assert status(port, "/api/x") == 200
    # POST /reset: the declaration again, match and all.
    api.ok("POST", "/reset")
    assert api.ok("GET", "/proxies/shop/toxics/api")["match"] == API_ABORT["match"]
    assert status(port, "/api/x") == 503 and status(port, "/other") == 200
    # A reload that leaves the declaration as it was (its match compiled anew) keeps the API's
    # change; another proxy in the same reload shows that it was applied.
    api.ok("DELETE", "/proxies/shop/toxics/api")
    p.write_config(docs + [chaos_http_doc("other", origin.port)])
    wait_until(lambda: api.call("GET", "/proxies/other")[0] == 200, timeout=10,
               what="the reload")
    assert api.ok("GET", "/proxies/shop/toxics") == []
    # One that changes the match applies the declaration.
    changed = dict(API_ABORT, match=[{"uri": {"prefix": "/v2"}}])
    p.write_config([chaos_http_doc("shop", origin.port, toxics=[changed])])
    wait_until(lambda: api.ok("GET", "/proxies/shop/toxics") != [], timeout=10,
               what="the changed declaration")
    assert api.ok("GET", "/proxies/shop/toxics/api")["match"] == changed["match"]
    assert status(port, "/v2/x") == 503 and status(port, "/api/x") == 200


def test_bad_match_over_the_api_is_a_400_naming_the_field(petrel, origin):
    p, api, port = proxy_start(petrel, origin)
    cases = [
        ([{"uri": {"prefx": "/api"}}],
         'match[0].uri.prefx: unknown field; did you mean "prefix"? (body, line 1, column '),
        ([{"uri": {"regex": "("}}], "match[0].uri.regex: "),
        ([{"port": 80}], "match[0].port: not on a toxic's match"),
        ([{"headers": {"x": {"exact": "a", "prefix": "b"}}}],
         "match[0].headers.x: give only one of exact, prefix or regex"),
        ({"uri": {"prefix": "/"}}, "match: must be a list"),
        ([{"queryParams": {"q": {"prefix": "a"}}}], "match[0].queryParams.q.prefix: "),
    ]
    for match, want in cases:
        st, out = api.call("POST", "/proxies/shop/toxics",
                           {"name": "bad", "type": "http_abort", "match": match})
        assert st == 400 and set(out) == {"error", "status"} and out["status"] == 400, out
        assert out["error"].startswith(want), (want, out)
    assert api.ok("GET", "/proxies/shop/toxics") == []  # none was made
    # docs/chaos.md's example, to the byte.
    st, out = api.call("POST", "/proxies/shop/toxics",
                       raw=b'{"match": [{"uri": {"prefx": "/pay"}}], "type": "http_abort"}')
    assert (st, out) == (400, {"error": 'match[0].uri.prefx: unknown field; did you mean '
                                        '"prefix"? (body, line 1, column 30)', "status": 400})
    # A TCP toxic has no match.
    api.proxy("tcp", origin.port)
    st, out = api.call("POST", "/proxies/tcp/toxics",
                       {"type": "latency", "match": [{"uri": {"prefix": "/"}}]})
    assert st == 400 and out["error"].startswith("match: a TCP toxic"), out
    # An update with a bad match changes nothing.
    api.ok("POST", "/proxies/shop/toxics", API_ABORT)
    st, out = api.call("POST", "/proxies/shop/toxics/api", {"match": [{"uri": {"regex": "["}}]})
    assert st == 400 and out["error"].startswith("match[0].uri.regex: "), out
    assert api.ok("GET", "/proxies/shop/toxics/api")["match"] == API_ABORT["match"]
    assert status(port, "/api/x") == 503


def test_validate_names_a_bad_match_in_yaml(tmp_path):
    f = tmp_path / "chaos.yaml"
    f.write_text(to_yaml([
        {"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy", "metadata": {"name": "a"},
         "spec": {"upstream": "127.0.0.1:1", "protocol": "HTTP",
                  "toxics": [{"type": "http_abort", "match": [{"uri": {"prefx": "/api"}}]},
                             {"name": "r", "type": "http_delay",
                              "match": [{"headers": {"x": {"regex": "a(b"}}}]}]}},
        {"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy", "metadata": {"name": "b"},
         "spec": {"upstream": "127.0.0.1:1",
                  "toxics": [{"type": "latency", "match": [{"uri": {"prefix": "/"}}]}]}}]))
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1
    assert re.search(r'chaos\.yaml:\d+:\d+: spec\.toxics\[0\]\.match\[0\]\.uri\.prefx: unknown '
                     r'field; did you mean "prefix"\?', r.stderr), r.stderr
    assert re.search(r"chaos\.yaml:\d+:\d+: spec\.toxics\[1\]\.match\[0\]\.headers\.x\.regex: ",
                     r.stderr), r.stderr
    assert re.search(r"chaos\.yaml:\d+:\d+: spec\.toxics\[0\]\.match: a TCP toxic acts on a "
                     r"session's bytes", r.stderr), r.stderr
