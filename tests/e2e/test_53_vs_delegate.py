"""tests/e2e/test_53_vs_delegate.py -- VirtualService delegation (http[].delegate), end to end.

A root VirtualService bound to the gateway hands parts of its URI space to delegate
VirtualServices (ones without hosts), as Istio's reference shows it. Real petrel, real origins
(each answers with `X-Origin: <name>` and echoes the request it got as JSON):

  - a delegate's routes serve under the root route's match (merged: both conditions hold), its
    catch-all route stays inside the root's prefix, a delegate route whose match conflicts with
    the root's is left out, and the root's other routes are untouched;
  - the root route's headers, timeout and rewrite apply to delegate routes that have none;
  - a header condition on the root route joins the delegate's conditions;
  - changing only the delegate file reroutes live;
  - `petrel validate` errors for misuse (delegate next to route, a delegate with gateways,
    delegating twice, delegating to a VirtualService with hosts).
"""

import json

from netutil import free_port, header, http_request, wait_until
from petrel import ISTIO, gateway_doc, run_petrel, service_entry_doc, stats, to_yaml


def vs(name, http, hosts=None, gateways=None):
    spec = {"http": http}
    if hosts is not None:
        spec["hosts"] = hosts
    if gateways is not None:
        spec["gateways"] = gateways
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": spec}


def to(host):
    return [{"destination": {"host": host, "port": {"number": 80}}}]


def prefix(p, **more):
    m = {"uri": {"prefix": p}}
    m.update(more)
    return [m]


def origin_name(port, path, headers=None):
    st, rh, body = http_request(port, "GET", path, headers=headers, host_header="bookinfo.com")
    return st, header(rh, "x-origin"), body


def start(petrel, origin_factory, root_extra=None, delegate_http=None):
    a, b, c = (origin_factory(name=n) for n in ("A", "B", "C"))
    port = free_port()
    root_route = {"match": prefix("/productpage"), "delegate": {"name": "productpage"}}
    root_route.update(root_extra or {})
    docs = [gateway_doc([(port, "HTTP")]),
            vs("root", [root_route, {"route": to("c.local")}], hosts=["bookinfo.com"],
               gateways=["edge"]),
            vs("productpage", delegate_http or [
                {"match": prefix("/productpage/v1"), "route": to("a.local")},
                {"match": prefix("/login"), "route": to("a.local")},  # outside /productpage
                {"route": to("b.local")}]),
            service_entry_doc("a.local", a.port, name="a"),
            service_entry_doc("b.local", b.port, name="b"),
            service_entry_doc("c.local", c.port, name="c")]
    return petrel(docs), port, docs


def test_delegate_routes_serve_under_the_root_match(petrel, origin_factory):
    p, port, _ = start(petrel, origin_factory)
    assert origin_name(port, "/productpage/v1/items")[:2] == (200, "A")
    assert origin_name(port, "/productpage")[:2] == (200, "B")  # the delegate's catch-all
    assert origin_name(port, "/productpage/v2")[:2] == (200, "B")
    # /login conflicts with the root's /productpage: that delegate route is left out
    assert origin_name(port, "/login")[:2] == (200, "C")
    assert origin_name(port, "/other")[:2] == (200, "C")


def test_root_defaults_apply_to_delegate_routes_without_their_own(petrel, origin_factory):
    root_extra = {"headers": {"request": {"set": {"x-from": "root"}}},
                  "rewrite": {"uri": "/echo"}, "timeout": "5s"}
    delegate_http = [
        {"match": prefix("/productpage/own"),
         "headers": {"request": {"set": {"x-from": "delegate"}}},
         "route": to("a.local")},
        {"route": to("b.local")}]
    p, port, _ = start(petrel, origin_factory, root_extra, delegate_http)
    st, who, body = origin_name(port, "/productpage/own")
    assert (st, who) == (200, "A")
    echo = json.loads(body)
    assert [v for k, v in echo["headers"] if k.lower() == "x-from"] == ["delegate"]
    assert echo["path"] == "/echo"  # the root's rewrite of the matched prefix
    st, who, body = origin_name(port, "/productpage/x")
    echo = json.loads(body)
    assert (st, who) == (200, "B")
    assert [v for k, v in echo["headers"] if k.lower() == "x-from"] == ["root"]
    assert echo["path"] == "/echo/x"


def test_root_header_condition_joins_the_delegates(petrel, origin_factory):
    root_extra = {"match": prefix("/productpage", headers={"end-user": {"exact": "jason"}})}
    p, port, _ = start(petrel, origin_factory, root_extra)
    assert origin_name(port, "/productpage/v1", [("end-user", "jason")])[:2] == (200, "A")
    assert origin_name(port, "/productpage/v1")[:2] == (200, "C")  # no header: root's fallback


def test_changing_the_delegate_reroutes_live(petrel, origin_factory):
    p, port, docs = start(petrel, origin_factory)
    assert origin_name(port, "/productpage/v2")[:2] == (200, "B")
    gen = stats(p)["config_generation"]
    docs[2] = vs("productpage", [{"route": to("a.local")}])
    p.write_config(docs)
    wait_until(lambda: stats(p)["config_generation"] > gen, 10, what="the reload")
    assert origin_name(port, "/productpage/v2")[:2] == (200, "A")
    assert origin_name(port, "/other")[:2] == (200, "C")


def validate(tmp_path, docs):
    f = tmp_path / "cfg.yaml"
    f.write_text(to_yaml(docs))
    r = run_petrel(["validate", str(f)])
    return r.returncode, r.stdout + r.stderr


def test_validate_delegation_misuse(tmp_path):
    gw = gateway_doc([(8080, "HTTP")])
    se = service_entry_doc("a.local", 9, name="a")
    root = vs("root", [{"match": prefix("/p"), "delegate": {"name": "d"}, "route": to("a.local")}],
              hosts=["*"], gateways=["edge"])
    rc, out = validate(tmp_path, [gw, se, root, vs("d", [{"route": to("a.local")}])])
    assert rc == 1 and "spec.http[0]: delegate excludes route, redirect and directResponse" in out
    root = vs("root", [{"delegate": {"name": "d"}}], hosts=["*"], gateways=["edge"])
    rc, out = validate(tmp_path, [gw, se, root, vs("d", [{"route": to("a.local")}],
                                                   gateways=["edge"])])
    assert rc == 1 and "spec.gateways: a VirtualService without hosts is a delegate" in out, out
    rc, out = validate(tmp_path, [gw, se, root, vs("d", [{"delegate": {"name": "e"}}])])
    assert rc == 1 and "delegation is one level deep" in out, out
    rc, out = validate(tmp_path, [gw, se, root, vs("d", [{"route": to("a.local")}],
                                                   hosts=["d.com"])])
    assert rc == 1 and "VirtualService default/d has hosts: only one without hosts can be " \
        "delegated to" in out, out
