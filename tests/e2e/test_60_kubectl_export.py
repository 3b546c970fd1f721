"""tests/e2e/test_60_kubectl_export.py -- what `kubectl get -o yaml` writes, loaded as it is.

tests/lib/kubectl_export.yaml is `kubectl get vs,dr,gw,se -A -o yaml` as kubectl writes it: a
`kind: List` with `metadata: {resourceVersion: ""}` whose items carry managedFields, a status
with conditions and the last-applied annotation. With its ports filled in:

  - `petrel validate` accepts it (exit 0, one listener, one cluster, no warning);
  - `petrel run` serves it: a request through the Gateway item reaches the origin that the
    ServiceEntry item names, and /config_dump lists the four items as resources, each at the
    line where it starts;
  - a typo inside the third item is refused with the item's line and a path from items[2].
"""

import json
import os
import string

from netutil import free_port, http_request
from petrel import REPO, need_petrel, run_petrel

EXPORT = os.path.join(REPO, "tests", "lib", "kubectl_export.yaml")


def export_text(gateway_port, upstream_port):
    with open(EXPORT) as f:
        return string.Template(f.read()).substitute(GATEWAY_PORT=gateway_port,
                                                    UPSTREAM_PORT=upstream_port)


def test_validate_accepts_the_export(tmp_path):
    need_petrel()
    path = tmp_path / "export.yaml"
    path.write_text(export_text(free_port(), free_port()))
    r = run_petrel(["validate", str(path)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("petrel: configuration valid: 1 listener, 1 cluster "), r.stdout
    assert r.stderr == "", r.stderr


def test_run_serves_the_export(petrel, origin):
    gateway_port = free_port()
    text = export_text(gateway_port, origin.port)
    p = petrel([text], concurrency=1)
    status, _, body = http_request(gateway_port, "GET", "/from-kubectl", host_header="shop.example")
    assert status == 200, body
    req = origin.wait_requests(1)[0]
    assert req.target == "/from-kubectl"
    assert req.header("host") == "shop.example"

    st, _, dump_body = http_request(p.admin_port, "GET", "/config_dump",
                                    host_header="127.0.0.1:%d" % p.admin_port)
    assert st == 200
    items = [r for r in json.loads(dump_body)["resources"] if r["source"].endswith("10-test.yaml")]
    assert [(r["resource"]["kind"], r["resource"]["metadata"]["namespace"]) for r in items] == [
        ("VirtualService", "default"), ("DestinationRule", "default"),
        ("Gateway", "istio-system"), ("ServiceEntry", "default")]
    lines = open(items[0]["source"]).read().splitlines()
    for r in items:
        assert lines[r["line"] - 1] == "- apiVersion: networking.istio.io/v1", r["line"]


def test_error_inside_an_item_names_it(tmp_path):
    need_petrel()
    text = export_text(free_port(), free_port())
    typo = text.replace("        protocol: HTTP\n  status: {}", "        protocoll: HTTP\n  status: {}")
    assert typo != text
    path = tmp_path / "export.yaml"
    path.write_text(typo)
    line = typo.splitlines().index("        protocoll: HTTP") + 1
    r = run_petrel(["validate", str(path)])
    assert r.returncode == 1, r.stdout
    assert r.stderr.splitlines() == [
        '%s:%d:9: items[2].spec.servers[0].port.protocoll: unknown field; did you mean "protocol"?'
        % (path, line),
        "%s:%d:7: items[2].spec.servers[0].port.protocol: required" % (path, line - 3),
        "petrel: configuration refused (2 errors)",
    ]
