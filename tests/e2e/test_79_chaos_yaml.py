"""The ChaosProxy kind (config/kind_chaos_proxy.c): chaos proxies and their toxics declared in
the watched config. Runtime changes made over the Toxiproxy-compatible API live beside the
declaration and survive a reload that leaves it alone; a changed declaration wins; POST /reset
returns to what the YAML says; `petrel validate` names file:line:col and the field path of a bad
toxic."""

import os
import statistics
import time

from chaos import ChaosApi, chaos_proxy_spec
from netutil import connect, free_port, recv_exact, wait_until
from petrel import run_petrel


def chaos_doc(name, upstream_port, listen="127.0.0.1:0", toxics=(), enabled=True):
    return {"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy", "metadata": {"name": name},
            "spec": {"listen": listen, "upstream": "127.0.0.1:%d" % upstream_port,
                     "enabled": enabled, "toxics": list(toxics)}}


def latency(ms, name="lat"):
    return {"name": name, "type": "latency", "stream": "downstream",
            "attributes": {"latency": ms}}


def rtt_ms(port, n=5):
    s = connect(port)
    try:
        out = []
        for _ in range(n):
            t0 = time.monotonic()
            s.sendall(b"ping")
            recv_exact(s, 4, 5)
            out.append((time.monotonic() - t0) * 1000)
        return statistics.median(out)
    finally:
        s.close()


def toxic_names(api, proxy):
    status, out = api.call("GET", "/proxies/%s/toxics" % proxy)
    return sorted(t["name"] for t in out) if status == 200 else None


def test_declared_proxy_relays_with_its_toxics_without_the_api(petrel, tcp_echo):
    port = free_port()
    petrel([chaos_doc("db", tcp_echo.port, listen="127.0.0.1:%d" % port,
                      toxics=[latency(60)])])
    assert 55 <= rtt_ms(port) <= 120


def test_runtime_changes_survive_reloads_and_reset_returns_to_the_yaml(petrel, tcp_echo):
    api = ChaosApi(free_port())
    docs = [chaos_doc("db", tcp_echo.port, toxics=[latency(40)])]
    p = petrel(docs, proxy_spec=chaos_proxy_spec(api.port))
    assert toxic_names(api, "db") == ["lat"]
    api.toxic("db", "limit_data", stream="upstream", bytes=1 << 20)
    api.ok("POST", "/proxies", {"name": "extra", "upstream": "127.0.0.1:%d" % tcp_echo.port})

    # A reload that leaves db's declaration alone (a new proxy beside it) keeps the API's work.
    p.write_config(docs + [chaos_doc("other", tcp_echo.port)])
    wait_until(lambda: api.call("GET", "/proxies/other")[0] == 200, timeout=10, what="reload")
    assert toxic_names(api, "db") == ["lat", "limit_data_upstream"]
    assert api.call("GET", "/proxies/extra")[0] == 200

    # POST /reset: db back to its declaration, the API's own proxy enabled with no toxic.
    api.toxic("extra", "latency", latency=5)
    api.ok("POST", "/reset")
    assert toxic_names(api, "db") == ["lat"]
    assert toxic_names(api, "extra") == []

    # A changed declaration wins over the runtime state.
    api.ok("DELETE", "/proxies/db/toxics/lat")
    listen = api.ok("GET", "/proxies/db")["listen"]
    p.write_config([chaos_doc("db", tcp_echo.port, toxics=[latency(90, name="slow")]),
                    chaos_doc("other", tcp_echo.port)])
    wait_until(lambda: toxic_names(api, "db") == ["slow"], timeout=10, what="redeclared")
    assert api.ok("GET", "/proxies/db")["listen"] == listen  # its port stays
    port = int(listen.rsplit(":", 1)[1])
    assert 85 <= rtt_ms(port) <= 150

    # Gone from the YAML: gone; the API's own proxy stays.
    p.write_config([chaos_doc("db", tcp_echo.port, toxics=[latency(90, name="slow")])])
    wait_until(lambda: api.call("GET", "/proxies/other")[0] == 404, timeout=10, what="removal")
    assert api.call("GET", "/proxies/extra")[0] == 200


def test_validate_names_the_bad_toxic(tmp_path):
    f = tmp_path / "chaos.yaml"
    f.write_text("""apiVersion: petrel.io/v1alpha1
kind: ChaosProxy
metadata:
  name: db
spec:
  upstream: 127.0.0.1:5432
  toxics:
  - type: latency
    attributes:
      latency: 100
      jiter: 5
  - type: slowclose
  - type: bandwidth
    toxicity: 2
""")
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1, r.stderr
    err = r.stderr
    assert "%s:11:7: spec.toxics[0].attributes.jiter: not an attribute of a latency toxic" % f in err, err
    assert "%s:12:5: spec.toxics[1].type: unknown toxic type \"slowclose\"" % f in err, err
    assert "%s:14:5: spec.toxics[2].toxicity: must be a number from 0 to 1" % f in err, err
