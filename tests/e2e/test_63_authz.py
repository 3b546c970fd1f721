"""tests/e2e/test_63_authz.py -- AuthorizationPolicy enforced by the real petrel binary.

Oracles:
  - Istio's own builder test data (../shared/acceptance/istio/authz-builder/*-in.yaml and the
    Envoy RBAC Istio generates for them, *-out*.yaml): a small evaluator of Envoy's RBAC
    (below) decides, for requests derived from the strings in the expected output, whether
    Envoy would allow or deny them; petrel must answer the same (200 / 403) through a real
    origin. A policy Petrel cannot enforce (JWT, Envoy metadata) must make `petrel run` refuse.
  - Istio's docs tasks authz-deny and authz-http, with their expected 200 / 403 codes. The
    requests from principals need mTLS, which this branch does not have: those assertions
    check the no-principal answer (403) and skip the mTLS one with the reason.
Then Petrel's own: 403 body and RBAC flag in the access log, counters, TCP listeners (a denied
connection is closed; Istio's HTTP-field rules on TCP), connection.sni on TLS passthrough, scope
(root namespace, selector, targetRef Gateway), AUDIT and dry-run, keep-alive and pipelining
around a refusal, reloads, and what `petrel run` refuses or `petrel validate` reports.
"""

import glob
import ipaddress
import os
import re
import socket

import pytest
import yaml

from netutil import build_request, connect, free_port, http_request, recv_responses, wait_until
from petrel import REPO, run_petrel, simple_config, stats, to_yaml

ACCEPT = os.path.join(REPO, "..", "shared", "acceptance", "istio")
BUILDER = os.path.join(ACCEPT, "authz-builder")
DOCS = os.path.join(ACCEPT, "docs-tasks")
SEC = "security.istio.io/v1"
LOG_RE = re.compile(r'^\[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d+) (?P<flags>\S+) ')

# ---- a small evaluator of Envoy's RBAC, for the builder oracle --------------------------


def _string_match(m, value, ignore_case=False):
    if value is None:
        return False
    ic = m.get("ignoreCase", ignore_case)
    v = value.lower() if ic else value
    for k in ("exact", "prefix", "suffix"):
        if k in m:
            t = m[k].lower() if ic else m[k]
            return {"exact": v == t, "prefix": v.startswith(t), "suffix": v.endswith(t)}[k]
    if "safeRegex" in m:
        return re.fullmatch(m["safeRegex"]["regex"], value) is not None
    raise AssertionError("string match %r" % m)


def _template_regex(t):
    seg = r"[a-zA-Z0-9\-._~%!$&'()+,;:@=]"
    out = ""
    i = 0
    while i < len(t):
        if t.startswith("**", i):
            out += "(%s|/)*" % seg
            i += 2
        elif t[i] == "*":
            out += seg + "+"
            i += 1
        else:
            out += re.escape(t[i])
            i += 1
    return out


def _header(req, name):
    if name == ":authority":
        return req["host"]
    if name == ":method":
        return req["method"]
    return req["headers"].get(name.lower())


def _header_rule(h, req):
    v = _header(req, h["name"])
    if "presentMatch" in h:
        return v is not None
    return _string_match(h["stringMatch"], v)


def _perm(p, req):
    if p.get("any"):
        return True
    if "andRules" in p:
        return all(_perm(r, req) for r in p["andRules"]["rules"])
    if "orRules" in p:
        return any(_perm(r, req) for r in p["orRules"]["rules"])
    if "notRule" in p:
        return not _perm(p["notRule"], req)
    if "header" in p:
        return _header_rule(p["header"], req)
    if "urlPath" in p:
        return _string_match(p["urlPath"]["path"], req["path"].split("?")[0])
    if "uriTemplate" in p:
        t = p["uriTemplate"]["typedConfig"]["pathTemplate"]
        return re.fullmatch(_template_regex(t), req["path"].split("?")[0]) is not None
    if "destinationPort" in p:
        return p["destinationPort"] == req["port"]
    raise AssertionError("permission %r" % p)


def _cidr(c, ip):
    net = ipaddress.ip_network("%s/%d" % (c["addressPrefix"], c["prefixLen"]), strict=False)
    return ipaddress.ip_address(ip) in net


def _principal(p, req):
    if p.get("any"):
        return True
    if "andIds" in p:
        return all(_principal(i, req) for i in p["andIds"]["ids"])
    if "orIds" in p:
        return any(_principal(i, req) for i in p["orIds"]["ids"])
    if "notId" in p:
        return not _principal(p["notId"], req)
    if "authenticated" in p:  # a verified peer certificate; none without mTLS
        return req.get("principal") is not None and _string_match(
            p["authenticated"]["principalName"], "spiffe://" + req["principal"])
    if "directRemoteIp" in p:
        return _cidr(p["directRemoteIp"], req["ip"])
    if "remoteIp" in p:
        return _cidr(p["remoteIp"], req["ip"])
    if "header" in p:
        return _header_rule(p["header"], req)
    raise AssertionError("principal %r" % p)


def envoy_decision(rbacs, req):
    """rbacs: the RBAC filter configs Istio generated (DENY ones and ALLOW ones); True when
    Envoy lets req through: no DENY policy matches, and an ALLOW filter, if any, matches."""
    allows = []
    for r in rbacs:
        rules = r["typedConfig"]["rules"]
        action = rules.get("action", "ALLOW")
        matched = any(any(_perm(p, req) for p in pol["permissions"]) and
                      any(_principal(i, req) for i in pol["principals"])
                      for pol in rules.get("policies", {}).values())
        if action == "DENY" and matched:
            return False
        if action == "ALLOW":
            allows.append(matched)
    return all(allows) if allows else True


def _strings(node, key_filter, out):
    """Collects (kind, value) of exact / prefix / suffix / template strings under node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("exact", "prefix", "suffix", "pathTemplate") and isinstance(v, str):
                out.add((k, v))
            else:
                _strings(v, key_filter, out)
    elif isinstance(node, list):
        for v in node:
            _strings(v, key_filter, out)


def derived_requests(rbacs):
    """Requests that probe each string of the expected RBAC: exact values, a prefix plus a
    tail, a head plus a suffix, templates filled in, and plain ones."""
    found = set()
    _strings(rbacs, None, found)
    paths = {"/", "/other"}
    for kind, v in found:
        if not v.startswith("/") and kind != "suffix":
            continue
        if kind == "exact":
            paths.add(v)
        elif kind == "prefix":
            paths.add(v + "tail")
        elif kind == "suffix":
            paths.add("/head" + v)
        else:
            paths.add(v.replace("**", "a/b").replace("*", "seg"))
    reqs = []
    for path in sorted(paths):
        for method in ("GET", "POST"):
            reqs.append({"method": method, "path": path, "host": "example.com", "headers": {},
                         "ip": "127.0.0.1", "principal": None})
    return reqs


BUILDER_CASES = sorted(os.path.basename(f)[:-len("-in.yaml")]
                       for f in glob.glob(os.path.join(BUILDER, "*-in.yaml")))
UNENFORCEABLE = {"allow-full-rule"}  # JWT (request.auth.*) and Envoy metadata conditions
WORKLOAD_FOO = {"workload": {"namespace": "foo", "labels": {"app": "httpbin", "version": "v1"}}}


def _read(path):
    with open(path) as f:
        return f.read()


def test_builder_cases_exist():
    assert len(BUILDER_CASES) >= 6, BUILDER


@pytest.mark.parametrize("case", BUILDER_CASES)
def test_builder_oracle(petrel, origin, case):
    policy = _read(os.path.join(BUILDER, case + "-in.yaml"))
    rbacs = [yaml.safe_load(_read(f)) for f in
             sorted(glob.glob(os.path.join(BUILDER, case + "-out*.yaml")))]
    port = free_port()
    docs = simple_config(http_port=port, upstream_port=origin.port) + [policy]
    if case in UNENFORCEABLE:
        p = petrel(docs, start=False, proxy_spec=WORKLOAD_FOO)
        p.write_config()
        r = run_petrel(["run", "-c", p.config_dir])
        assert r.returncode != 0
        assert "cannot be enforced by Petrel" in r.stderr and "request.auth" in r.stderr
        v = run_petrel(["validate", "--lenient", os.path.join(BUILDER, case + "-in.yaml")])
        assert v.returncode == 0 and "petrel run` refuses" in v.stderr, v.stderr
        v = run_petrel(["validate", os.path.join(BUILDER, case + "-in.yaml")])
        assert v.returncode == 1 and "refusing to run" in v.stderr, v.stderr
        return
    p = petrel(docs, proxy_spec=WORKLOAD_FOO)
    reqs = derived_requests(rbacs)
    assert len(reqs) >= 4
    for req in reqs:
        req["port"] = port
        want = 200 if envoy_decision(rbacs, req) else 403
        st, _, body = http_request(p.port, method=req["method"], path=req["path"])
        assert st == want, (case, req, body)
        if want == 403:
            assert body == b"RBAC: access denied"
    # A workload the selector does not pick, or one of another namespace: nothing applies.
    selects = any((d.get("spec") or {}).get("selector") for d in yaml.safe_load_all(policy))
    other = {"namespace": "foo", "labels": {"app": "other"}} if selects else {"namespace": "bar"}
    q = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [policy],
               proxy_spec={"workload": other})
    assert http_request(q.port, path="/exact")[0] == 200


def test_builder_oracle_with_principals_is_evaluated_like_envoy():
    """The evaluator itself, on the deny-and-allow output with the principals Envoy would see
    from a verified certificate: keeps the oracle honest where mTLS is not available yet."""
    rbacs = [yaml.safe_load(_read(f)) for f in
             sorted(glob.glob(os.path.join(BUILDER, "deny-and-allow-out*.yaml")))]
    base = {"method": "GET", "path": "/", "host": "h", "headers": {}, "ip": "127.0.0.1", "port": 80}
    assert envoy_decision(rbacs, dict(base, principal="allow")) is True
    assert envoy_decision(rbacs, dict(base, principal="deny")) is False
    assert envoy_decision(rbacs, dict(base, principal=None)) is False


# ---- Istio's docs tasks ----------------------------------------------------------------


def _snip(task, n, prefix):
    return _read(os.path.join(DOCS, task, "%s_%d.yaml" % (prefix, n)))


DENY = "snip_explicitly_deny_a_request"
HTTP = "snip_configure_access_control_for_workloads_using_http_traffic"
HTTPBIN = {"workload": {"namespace": "foo", "labels": {"app": "httpbin", "version": "v1"}}}


def test_docs_authz_deny_get(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) +
               [_snip("authz-deny", 1, DENY)], proxy_spec=HTTPBIN)
    assert http_request(p.port, path="/get")[0] == 403
    assert http_request(p.port, method="POST", path="/post", body=b"x")[0] == 200
    assert [r.path for r in origin.requests] == ["/post"]


def test_docs_authz_deny_unless_admin_token_then_allow_ip(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) +
               [_snip("authz-deny", 4, DENY)], proxy_spec=HTTPBIN)
    assert http_request(p.port, path="/get", headers=[("x-token", "admin")])[0] == 200
    assert http_request(p.port, path="/get", headers=[("x-token", "guest")])[0] == 403
    assert http_request(p.port, path="/get")[0] == 403  # no token: notValues holds
    # Step 7 adds an ALLOW for /ip next to the DENY.
    q = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) +
               [_snip("authz-deny", 4, DENY), _snip("authz-deny", 7, DENY)], proxy_spec=HTTPBIN)
    assert http_request(q.port, path="/ip", headers=[("x-token", "admin")])[0] == 200
    assert http_request(q.port, path="/get", headers=[("x-token", "admin")])[0] == 403
    assert http_request(q.port, path="/ip", headers=[("x-token", "guest")])[0] == 403


def test_docs_authz_http(petrel, origin):
    snips = [_snip("authz-http", i, HTTP) for i in range(1, 6)]
    cfg = simple_config(http_port=free_port(), upstream_port=origin.port)
    # allow-nothing alone: every workload of "default" refuses everything.
    p = petrel(cfg + snips[:1], proxy_spec={"workload": {"labels": {"app": "productpage"}}})
    assert http_request(p.port, path="/productpage")[0] == 403
    # productpage-viewer: GET allowed to productpage, other methods still refused.
    q = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + snips[:2],
               proxy_spec={"workload": {"labels": {"app": "productpage"}}})
    assert http_request(q.port, path="/productpage")[0] == 200
    assert http_request(q.port, method="POST", path="/productpage", body=b"x")[0] == 403
    # details / reviews / ratings viewers allow GET only from a principal: a caller without
    # a verified certificate is refused, whatever header it sends.
    for app in ("details", "reviews", "ratings"):
        r = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + snips,
                   proxy_spec={"workload": {"labels": {"app": app}}})
        assert http_request(r.port, path="/x")[0] == 403
        assert http_request(r.port, path="/x", headers=[
            ("x-forwarded-client-cert", "URI=spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
        ])[0] == 403


@pytest.mark.skip(reason="the docs' 200 for GET from bookinfo-productpage / bookinfo-reviews needs "
                         "a verified peer certificate (mTLS), built on another branch, to fill "
                         "pt_conn_t.peer_principal; tests/unit/proxy/authz.c "
                         "(docs_authz_http_with_principals) checks those decisions with the "
                         "principal set by hand")
def test_docs_authz_http_from_principal():
    pass


# ---- Petrel's behaviour around the policies ---------------------------------------------


def ap(name, spec, ns="default", annotations=None):
    meta = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": SEC, "kind": "AuthorizationPolicy", "metadata": meta, "spec": spec}


def test_403_log_flag_and_counters(petrel, origin):
    pol = ap("deny-admin", {"action": "DENY", "rules": [{"to": [{"operation": {
        "paths": ["/admin/*", "*.php", "/exact"], "methods": ["GET", "DEL*"]}}]}]})
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [pol])
    cases = [("GET", "/admin/x", 403), ("DELETE", "/x.php", 403), ("GET", "/exact?q=1", 403),
             ("GET", "/exactly", 200), ("POST", "/admin/x", 200), ("GET", "/adminx", 200),
             ("GET", "/public/../admin/x", 403), ("GET", "/./exact", 403)]
    for method, path, want in cases:
        st, hdrs, body = http_request(p.port, method=method, path=path)
        assert st == want, (method, path)
        if want == 403:
            assert body == b"RBAC: access denied"
    lines = p.wait_access_log(len(cases))
    got = sorted((LOG_RE.match(x).group("path"), LOG_RE.match(x).group("status"),
                  LOG_RE.match(x).group("flags")) for x in lines)  # two workers: any order
    assert got == sorted((path, str(w), "RBAC" if w == 403 else "-") for _, path, w in cases)
    s = stats(p)
    assert s["rbac_denied"] == 5 and s["rbac_allowed"] == 3
    assert len(origin.requests) == 3
    status, prom = p.admin_get("/stats/prometheus")
    assert status == 200 and re.search(rb"^petrel_rbac_denied\S* 5$", prom, re.M), prom


def test_when_conditions_ips_ports_and_hosts(petrel, origin):
    port = free_port()
    pol = ap("allow", {"rules": [
        {"from": [{"source": {"ipBlocks": ["127.0.0.0/8"], "notIpBlocks": ["127.0.0.2"]}}],
         "to": [{"operation": {"hosts": ["*.example.com", "Exact.org"], "ports": [str(port)]}}],
         "when": [{"key": "request.headers[X-Env]", "values": ["prod*"]},
                  {"key": "destination.port", "values": [str(port)]},
                  {"key": "source.ip", "notValues": ["10.0.0.0/8"]}]}]})
    p = petrel(simple_config(http_port=port, upstream_port=origin.port) + [pol])
    good = [("X-Env", "production")]
    assert http_request(p.port, host_header="a.example.com", headers=good)[0] == 200
    assert http_request(p.port, host_header="EXACT.ORG", headers=good)[0] == 200
    assert http_request(p.port, host_header="example.com", headers=good)[0] == 403
    assert http_request(p.port, host_header="a.example.com", headers=[("X-Env", "dev")])[0] == 403
    assert http_request(p.port, host_header="a.example.com")[0] == 403
    # 127.0.0.2 is a loopback address the client can bind: notIpBlocks refuses it.
    assert http_request(p.port, host_header="a.example.com", headers=good, host="127.0.0.1")[0] == 200
    s = socket.create_connection(("127.0.0.1", p.port), source_address=("127.0.0.2", 0), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Env: prod\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    assert data.startswith(b"HTTP/1.1 403"), data[:100]


def test_principals_never_come_from_headers(petrel, origin):
    """Without mTLS no connection has a principal: principals / namespaces never match and
    their not-forms always do, whatever the client writes in headers."""
    allow = ap("allow-p", {"rules": [{"from": [{"source": {"principals": ["*"]}}]},
                                     {"from": [{"source": {"namespaces": ["default"]}}]}]})
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [allow])
    hdrs = [("x-forwarded-client-cert", "URI=spiffe://cluster.local/ns/default/sa/x"),
            ("x-spiffe-id", "spiffe://cluster.local/ns/default/sa/x")]
    assert http_request(p.port, headers=hdrs)[0] == 403
    deny = ap("deny-unauth", {"action": "DENY",
                              "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]})
    q = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [deny])
    assert http_request(q.port, headers=hdrs)[0] == 403
    assert origin.requests == []


def test_scope_root_namespace_selector_and_target_ref(petrel, origin):
    deny_all = {"action": "DENY", "rules": [{}]}
    cases = [
        (ap("mesh", deny_all, ns="istio-system"), {}, 403),
        (ap("mesh", deny_all, ns="mesh-root"), {"rootNamespace": "mesh-root"}, 403),
        (ap("other-ns", deny_all, ns="other"), {}, 200),
        (ap("sel", dict(deny_all, selector={"matchLabels": {"app": "web"}})),
         {"workload": {"labels": {"app": "web", "v": "1"}}}, 403),
        (ap("sel", dict(deny_all, selector={"matchLabels": {"app": "web"}})),
         {"workload": {"labels": {"app": "api"}}}, 200),
        (ap("gw", dict(deny_all, targetRefs=[{"group": "gateway.networking.k8s.io",
                                              "kind": "Gateway", "name": "edge"}])),
         {"workload": {"labels": {"gateway.networking.k8s.io/gateway-name": "edge"}}}, 403),
        (ap("gw", dict(deny_all, targetRef={"group": "gateway.networking.k8s.io",
                                            "kind": "Gateway", "name": "other"})),
         {"workload": {"labels": {"gateway.networking.k8s.io/gateway-name": "edge"}}}, 200),
    ]
    for pol, spec, want in cases:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [pol],
                   proxy_spec=spec)
        assert http_request(p.port)[0] == want, (pol, spec)
        p.stop()


def test_audit_and_dry_run_never_refuse(petrel, origin):
    pols = [ap("audit", {"action": "AUDIT", "rules": [{}]}),
            ap("shadow", {"action": "DENY", "rules": [{}]}, annotations={"istio.io/dry-run": "true"})]
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + pols)
    for _ in range(3):
        assert http_request(p.port)[0] == 200
    s = stats(p)
    assert s["rbac_audited"] == 3 and s["rbac_shadow_denied"] == 3 and s["rbac_denied"] == 0
    # A dry-run ALLOW policy: /ok would be allowed, /other would not; both are served.
    shadow_allow = ap("shadow-allow", {"rules": [{"to": [{"operation": {"paths": ["/ok"]}}]}]},
                      annotations={"istio.io/dry-run": "true"})
    q = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [shadow_allow])
    assert http_request(q.port, path="/ok")[0] == 200
    assert http_request(q.port, path="/other")[0] == 200
    s = stats(q)
    assert (s["rbac_shadow_allowed"], s["rbac_shadow_denied"], s["rbac_denied"]) == (1, 1, 0)


def _tcp_roundtrip(port):
    """b"ping" echoed back, or b"" when the connection is closed without data."""
    s = connect(port)
    try:
        try:
            s.sendall(b"ping")
            s.shutdown(socket.SHUT_WR)
        except OSError:  # already closed by petrel (a refused connection): nothing relayed
            return b""
        data = b""
        while True:
            try:
                b = s.recv(100)
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
        return data
    finally:
        s.close()


def test_tcp_listener(petrel, origin, tcp_echo):
    def run(pols):
        tport = free_port()
        return petrel(simple_config(http_port=free_port(), upstream_port=origin.port,
                                    tcp_port=tport, tcp_upstream_port=tcp_echo.port) + pols), tport

    # L4 DENY: the connection is closed before anything is relayed.
    p, t = run([ap("deny-lo", {"action": "DENY", "rules": [{"from": [{"source": {
        "ipBlocks": ["127.0.0.1/32"]}}]}]})])
    assert _tcp_roundtrip(t) == b""
    assert wait_until(lambda: stats(p)["rbac_denied"] >= 1, timeout=5)
    assert tcp_echo.connections == 0
    # ALLOW on other ports only: closed.
    p2, t2 = run([ap("allow-port", {"rules": [{"to": [{"operation": {"ports": ["1"]}}]},
                                              {"when": [{"key": "destination.port", "values": ["0"]}]}]})])
    assert _tcp_roundtrip(t2) == b""
    p3, t3 = run([ap("allow-l4", {"rules": [{"from": [{"source": {"ipBlocks": ["127.0.0.1"]}}]}]})])
    assert _tcp_roundtrip(t3) == b"ping"
    # Istio on TCP: an ALLOW rule with HTTP fields never matches ...
    p4, t4 = run([ap("allow-http", {"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]})])
    assert _tcp_roundtrip(t4) == b""
    assert http_request(p4.port)[0] == 200  # ... while it does on the HTTP listener
    # ... and a DENY rule is applied without them (a wider deny).
    p5, t5 = run([ap("deny-http", {"action": "DENY", "rules": [{"to": [{"operation": {
        "methods": ["POST"]}}]}]})])
    assert _tcp_roundtrip(t5) == b""
    assert http_request(p5.port)[0] == 200


@pytest.mark.parametrize("spec,needle", [
    ({"action": "CUSTOM", "provider": {"name": "ext"}, "rules": [{}]}, "action CUSTOM"),
    ({"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}, "request principal"),
    ({"rules": [{"when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]}, "request.auth"),
])
def test_run_refuses_what_it_cannot_enforce(petrel, origin, spec, needle):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [ap("x", spec)],
               start=False)
    p.write_config()
    r = run_petrel(["run", "-c", p.config_dir])
    assert r.returncode != 0 and needle in r.stderr and "refusing to run" in r.stderr, r.stderr
    # validate refuses it as run does; --lenient only warns.
    v = run_petrel(["validate", p.config_dir])
    assert v.returncode == 1 and needle in v.stderr and "refusing to run" in v.stderr, v.stderr
    v = run_petrel(["validate", "--lenient", p.config_dir])
    assert v.returncode == 0 and needle in v.stderr, v.stderr


@pytest.mark.parametrize("spec,needle", [
    ({"action": "MAYBE"}, "unknown action"),
    ({"rules": [{"when": [{"key": "source.ipp", "values": ["1.2.3.4"]}]}]}, 'unknown key "source.ipp"'),
    ({"rules": [{"when": [{"key": "source.ip"}]}]}, "values or notValues"),
    ({"rules": [{"from": [{"source": {}}]}]}, "must not be empty"),
    ({"rules": [{"to": [{}]}]}, "operation: required"),
    ({"rules": [{"from": [{"source": {"ipBlocks": ["1.2.3.4/40"]}}]}]}, "invalid IP address"),
    ({"rules": [{"to": [{"operation": {"ports": ["http"]}}]}]}, 'invalid port "http"'),
    ({"rules": [{"to": [{"operation": {"path": ["/x"]}}]}]}, "path"),
    ({"selector": {"matchLabels": {"a": "b"}},
      "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "g"}},
     "only one of selector"),
    ({"provider": {"name": "x"}}, "only allowed with action CUSTOM"),
    ({"action": "DENY"}, "DENY policy without rules never applies"),
    ({"rules": [{"from": []}]}, "from: must not be empty"),
    ({"rules": [None]}, "rules[0]: must not be null"),
    ({"rules": [{"to": [{"operation": {"paths": ["/a{*}"]}}]}]}, "invalid path template"),
    ({"rules": [{"to": [{"operation": {"paths": ["/{**}/{*}"]}}]}]}, "{**} must be the last operator"),
    ({"rules": [{"from": [{"source": {"serviceAccounts": ["ns/*"]}}]}]}, "wildcards are not allowed"),
    ({"rules": [{"from": [{"source": {"serviceAccounts": ["a"] * 17}}]}]}, "at most 16"),
    ({"rules": [{"from": [{"source": {"serviceAccounts": ["a"], "principals": ["b"]}}]}]},
     "serviceAccounts cannot be set with principals"),
    ({"rules": [{"when": [{"key": "destination.namespace", "values": ["x"]}]}]}, "replaced by metadata.namespace"),
])
def test_invalid_policies_name_file_line_and_field(tmp_path, spec, needle):
    f = tmp_path / "ap.yaml"
    f.write_text(to_yaml([ap("bad", spec)]))
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1, r.stderr
    assert needle in r.stderr and re.search(r"ap\.yaml:\d+:\d+: spec", r.stderr), r.stderr


def _client_hello(sni):
    """A real ClientHello (Python's ssl, in memory) for sni."""
    import ssl
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def test_tls_passthrough_connection_sni(petrel, tcp_echo):
    """connection.sni on a TLS-passthrough listener: decided once the ClientHello is read; an
    allowed connection is relayed (the echo upstream returns the ClientHello), a denied one is
    closed with nothing relayed."""
    port = free_port()
    docs = [
        {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "edge"},
         "spec": {"servers": [{"port": {"number": port, "name": "tls", "protocol": "TLS"},
                               "hosts": ["*"], "tls": {"mode": "PASSTHROUGH"}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "sni"},
         "spec": {"hosts": ["*.example.com"], "gateways": ["edge"],
                  "tls": [{"match": [{"sniHosts": ["*.example.com"]}],
                           "route": [{"destination": {"host": "echo.local", "port": {"number": 443}}}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "echo"},
         "spec": {"hosts": ["echo.local"], "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
                  "resolution": "STATIC", "location": "MESH_EXTERNAL",
                  "endpoints": [{"address": "127.0.0.1", "ports": {"tls": tcp_echo.port}}]}},
        ap("deny-sni", {"action": "DENY", "rules": [
            {"when": [{"key": "connection.sni", "values": ["blocked.*", "*.internal.example.com"]}]},
            # HTTP fields on a TLS connection: dropped from this DENY rule (Istio), so it would
            # deny everything; the port condition keeps it to a port that is not this one.
            {"to": [{"operation": {"methods": ["GET"], "ports": ["1"]}}]}]}),
    ]
    p = petrel(docs)

    def roundtrip(sni):
        hello = _client_hello(sni)
        s = connect(port)
        try:
            s.sendall(hello)
            got = b""
            while len(got) < len(hello):
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    break
                if not b:
                    break
                got += b
            return got == hello
        finally:
            s.close()

    assert roundtrip("www.example.com")
    assert not roundtrip("db.internal.example.com")
    assert not roundtrip("blocked.example.com")
    assert stats(p)["rbac_denied"] == 2 and stats(p)["rbac_allowed"] == 1
    assert tcp_echo.connections == 1


def test_deny_rule_with_only_http_attributes_warns(tmp_path):
    """Istio's validation warning: on TCP such a rule denies every connection."""
    f = tmp_path / "ap.yaml"
    f.write_text(to_yaml([ap("d", {"action": "DENY", "rules": [
        {"to": [{"operation": {"methods": ["GET"]}}]},
        {"to": [{"operation": {"methods": ["GET"], "ports": ["80"]}}]}]})]))
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 0, r.stderr
    warned = [x for x in r.stderr.splitlines() if "only HTTP attributes" in x]
    assert len(warned) == 1 and "spec.rules[0]" in warned[0], r.stderr


def test_keep_alive_and_pipelining_around_a_refusal(petrel, origin):
    """A refused request (with a body) and allowed ones pipelined on one connection: each gets
    its answer in order, the refused body never reaches the origin."""
    pol = ap("deny-post", {"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]})
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [pol])
    s = connect(p.port)
    host = [("Host", "example.com")]
    s.sendall(build_request("/a", host) +
              build_request("/b", host + [("Content-Length", "5")], method="POST", body=b"hello") +
              build_request("/c", host))
    rs = recv_responses(s, 3, timeout=10)
    s.close()
    statuses = [r[0] for r in rs]
    # After a refused request with a body Petrel may close instead of reading the body on;
    # what it must never do is forward the POST or answer out of order.
    assert statuses[:2] == [200, 403], statuses
    assert statuses[2:] in ([200], []), statuses
    assert [r.method for r in origin.requests] == ["GET"] * (len(statuses) - 1)
    # Without a body the connection carries on: refused and allowed requests alternate.
    s = connect(p.port)
    s.sendall((build_request("/d", host + [("Content-Length", "0")], method="POST") +
               build_request("/e", host)) * 3)
    rs = recv_responses(s, 6, timeout=10)
    s.close()
    assert [r[0] for r in rs] == [403, 200] * 3


def test_policies_follow_reloads(petrel, origin):
    """A policy added, changed or removed by a reload applies to the next request; an invalid
    one is refused and the running policies stay."""
    import signal
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    p = petrel(docs)
    assert http_request(p.port, path="/x")[0] == 200

    def reload(extra, want):
        p.write_config(docs + extra)
        p.signal(signal.SIGHUP)
        assert wait_until(lambda: http_request(p.port, path="/x")[0] == want, timeout=10), want

    deny = ap("deny-x", {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/x"]}}]}]})
    reload([deny], 403)
    bad = ap("bad", {"rules": [{"when": [{"key": "source.ip", "values": ["not-an-ip"]}]}]})
    p.write_config(docs + [deny, bad])
    p.signal(signal.SIGHUP)
    assert wait_until(lambda: "not-an-ip" in p.stderr(), timeout=10)
    assert http_request(p.port, path="/x")[0] == 403
    reload([], 200)
