"""HTTP chaos proxies: a ChaosProxy with spec.protocol HTTP runs Petrel's HTTP engine between its
listen and its upstream (config/compile.c makes its route table and cluster chaos|<name>;
filters/chaos/toxics.c hands its connections to the HTTP engine), so HTTP toxics act per request
on it. Real petrel, a real origin (HttpOrigin), http.client and raw sockets as clients:

  - plain proxying: status, body, keep-alive (one connection to petrel, requests reused), h2c
    with prior knowledge (curl);
    GET /proxies reports the port picked for listen :0 and "protocol": "http";
  - http_abort (toxicity 1, set over the API on the proxy): every request answered 503 and the
    origin receives nothing; access log flag FI, route name = the proxy, petrel_chaos_* counter;
  - toxicity 0.3 over 300 requests within a sane bound;
  - http_delay 50 ms: the median added latency within +-15 ms;
  - http_drop_first count 3: exactly 3 requests cut, then they pass;
  - enabled: false over the API refuses connections and closes an idle keep-alive one; enabled
    again serves;
  - a reload that changes spec.upstream sends the requests to the new upstream, on the same
    port; one that removes the proxy closes its port;
  - bad input: a TCP toxic on an HTTP proxy is a 400 with {"error", "status"}; an API proxy
    cannot be made HTTP; `petrel validate` names file:line:col and the field of a bad
    protocol and of a TCP toxic in an HTTP proxy's YAML.
"""

import re
import socket
import statistics
import subprocess

from chaos import (ChaosApi, HttpClient, chaos_metric, chaos_proxy_spec,
                   http_toxic_body)
from netutil import LOCALHOST, connect, free_port, recv_to_eof, wait_until
from petrel import run_petrel, to_yaml

LOG_RE = re.compile(r'^\[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d+) '
                    r'(?P<flags>\S+) (?P<details>\S+) ')


def chaos_http_doc(name, upstream_port, listen="127.0.0.1:0", toxics=()):
    return {"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy", "metadata": {"name": name},
            "spec": {"protocol": "HTTP", "listen": listen,
                     "upstream": "127.0.0.1:%d" % upstream_port, "toxics": list(toxics)}}


def start(petrel, origin, toxics=()):
    api = ChaosApi(free_port())
    p = petrel([chaos_http_doc("shop", origin.port, toxics=toxics)],
               proxy_spec=chaos_proxy_spec(api.port))
    api.petrel = p
    proxy = api.ok("GET", "/proxies/shop")
    return p, api, int(proxy["listen"].rsplit(":", 1)[1])


def toxic(api, type_, name, toxicity=1.0, **fields):
    return api.ok("POST", "/proxies/shop/toxics", http_toxic_body(type_, name, toxicity, **fields))


def metric(api, name, toxic_name):
    return chaos_metric(api.petrel, name, 'proxy="shop",toxic="%s"' % toxic_name)


def test_proxies_http_with_keep_alive_and_reports_its_port(petrel, origin):
    p, api, port = start(petrel, origin)
    proxy = api.ok("GET", "/proxies")["shop"]
    assert proxy["protocol"] == "http" and proxy["enabled"] is True
    assert port != 0 and proxy["upstream"] == "127.0.0.1:%d" % origin.port
    c = HttpClient(port)
    for i in range(5):
        status, _, body = c.get("/bytes/%d" % (1000 + i))
        assert status == 200 and len(body) == 1000 + i
    status, _, body = c.get("/status/404")
    assert (status, body) == (404, b"status 404\n")
    c.close()
    # HTTP/2 with prior knowledge (h2c) is served too, as on a Gateway's HTTP port.
    r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                        "%{http_code} %{http_version}", "http://127.0.0.1:%d/h2" % port],
                       capture_output=True, text=True, timeout=10)
    assert r.stdout == "200 2", (r.stdout, r.stderr)
    # One client connection, requests carried on as keep-alive: petrel's upstream connection
    # is reused too.
    reqs = origin.wait_requests(7)
    assert len({r.conn_id for r in reqs[:6]}) == 1, [r.conn_id for r in reqs]
    # Envoy's line ends with the upstream cluster and the route name.
    lines = p.wait_access_log(7)
    assert all(line.endswith(" chaos|shop shop") for line in lines), lines
    assert all('"127.0.0.1:%d"' % origin.port in line for line in lines), lines


def test_abort_answers_every_request_and_spares_the_origin(petrel, origin):
    p, api, port = start(petrel, origin)
    toxic(api, "http_abort", "ab", attributes={"status": 503})
    c = HttpClient(port)
    statuses = [c.get("/x%d" % i)[::2] for i in range(10)]  # status and body
    c.close()
    assert statuses == [(503, b"fault filter abort")] * 10
    assert origin.requests == []
    fields = [LOG_RE.match(line).groupdict() for line in p.wait_access_log(10)]
    assert all((f["status"], f["flags"], f["details"]) == ("503", "FI", "chaos:ab")
               for f in fields), fields
    assert metric(api, "petrel_chaos_toxic_hits_total", "ab") == 10
    assert metric(api, "petrel_chaos_toxic_dry_run_hits_total", "ab") == 0
    api.ok("DELETE", "/proxies/shop/toxics/ab")
    assert HttpClient(port).get("/after")[0] == 200


def test_toxicity_share_of_requests(petrel, origin):
    p, api, port = start(petrel, origin)
    toxic(api, "http_abort", "some", toxicity=0.3, attributes={"status": 503})
    c = HttpClient(port)
    aborted = sum(c.get("/status/200")[0] == 503 for _ in range(300))
    c.close()
    # 300 draws at p = 0.3: mean 90, sd 7.9; +-4 sd.
    assert 58 <= aborted <= 122, aborted
    assert metric(api, "petrel_chaos_toxic_hits_total", "some") == aborted
    assert len(origin.requests) == 300 - aborted


def test_delay_adds_its_delay(petrel, origin):
    p, api, port = start(petrel, origin)
    c = HttpClient(port)
    base = statistics.median(c.timed("/status/200")[2] for _ in range(15))
    toxic(api, "http_delay", "late", attributes={"delay": 50})
    times = [c.timed("/status/200") for _ in range(15)]
    c.close()
    assert all(s == 200 for s, _, _ in times)
    added = statistics.median(ms for _, _, ms in times) - base
    assert abs(added - 50) <= 15, added
    assert metric(api, "petrel_chaos_toxic_hits_total", "late") == 15
    assert [LOG_RE.match(line).group("flags") for line in p.wait_access_log(30)][15:] == \
        ["DI"] * 15


def test_drop_first_cuts_exactly_three(petrel, origin):
    p, api, port = start(petrel, origin,
                         toxics=[{"name": "drop", "type": "http_drop_first",
                                  "attributes": {"count": 3}}])
    results = []
    for _ in range(6):
        s = connect(port)
        s.sendall(b"GET /x HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        got, _ = recv_to_eof(s, 5)
        s.close()
        results.append(got[:12])
    assert results[:3] == [b""] * 3, results
    assert results[3:] == [b"HTTP/1.1 200"] * 3, results
    assert len(origin.requests) == 3
    assert metric(api, "petrel_chaos_toxic_hits_total", "drop") == 3


def refused(port):
    try:
        socket.create_connection((LOCALHOST, port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def test_disabled_refuses_and_enabled_serves_again(petrel, origin):
    p, api, port = start(petrel, origin)
    idle = connect(port)  # a keep-alive connection, idle when the proxy is disabled
    idle.sendall(b"GET /a HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert idle.recv(12) == b"HTTP/1.1 200"
    api.ok("POST", "/proxies/shop", {"enabled": False})
    assert refused(port)  # the store shuts the socket down before it answers
    got, how = recv_to_eof(idle, 5)  # the rest of the response, then the worker closes it
    idle.close()
    assert how == "eof", how
    assert api.ok("GET", "/proxies/shop")["enabled"] is False
    api.ok("POST", "/proxies/shop", {"enabled": True})
    listen = api.ok("GET", "/proxies/shop")["listen"]
    port = int(listen.rsplit(":", 1)[1])
    wait_until(lambda: not refused(port), timeout=5, what="the listener again")
    c = HttpClient(port)
    assert c.get("/b")[0] == 200
    c.close()


def test_bad_input_is_a_clear_error(petrel, origin, tmp_path):
    p, api, port = start(petrel, origin)
    st, out = api.call("POST", "/proxies/shop/toxics",
                       {"type": "latency", "attributes": {"latency": 5}})
    assert st == 400 and set(out) == {"error", "status"} and out["status"] == 400
    assert "not a toxic type of an HTTP proxy" in out["error"], out
    st, out = api.call("POST", "/proxies", {"name": "web", "upstream": "127.0.0.1:%d" % origin.port,
                                            "protocol": "http"})
    assert st == 400 and "declared by a ChaosProxy resource" in out["error"], out
    st, out = api.call("POST", "/proxies/shop", {"upstream": "127.0.0.1:1"})
    assert st == 400 and out["error"].startswith("upstream:"), out
    st, out = api.call("POST", "/proxies/shop", {"protocol": "tcp"})
    assert st == 400 and out["error"].startswith("protocol:"), out
    # A TCP proxy made over the API says so.
    api.proxy("tcp", origin.port)
    assert api.ok("GET", "/proxies/tcp")["protocol"] == "tcp"
    assert HttpClient(port).get("/still")[0] == 200

    f = tmp_path / "chaos.yaml"
    f.write_text(to_yaml([
        {"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy", "metadata": {"name": "a"},
         "spec": {"upstream": "127.0.0.1:1", "protocol": "HTTP2"}},
        {"apiVersion": "petrel.io/v1alpha1", "kind": "ChaosProxy", "metadata": {"name": "b"},
         "spec": {"upstream": "127.0.0.1:1", "protocol": "HTTP",
                  "toxics": [{"type": "latency", "attributes": {"latency": 5}}]}}]))
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1
    assert re.search(r"chaos\.yaml:\d+:\d+: spec\.protocol: must be TCP or HTTP, got \"HTTP2\"",
                     r.stderr), r.stderr
    assert re.search(r"chaos\.yaml:\d+:\d+: spec\.toxics\[0\]\.type: \"latency\" is a TCP toxic: "
                     r"an HTTP chaos proxy", r.stderr), r.stderr


def test_reload_moves_the_upstream_and_removal_closes_the_port(petrel, origin_factory):
    first, second = origin_factory(name="first"), origin_factory(name="second")
    api = ChaosApi(free_port())
    p = petrel([chaos_http_doc("shop", first.port)], proxy_spec=chaos_proxy_spec(api.port))
    port = int(api.ok("GET", "/proxies/shop")["listen"].rsplit(":", 1)[1])
    assert HttpClient(port).get("/who")[0] == 200 and len(first.requests) == 1
    p.write_config([chaos_http_doc("shop", second.port)])
    wait_until(lambda: api.ok("GET", "/proxies/shop")["upstream"].endswith(":%d" % second.port),
               timeout=10, what="the reload")
    assert api.ok("GET", "/proxies/shop")["listen"].endswith(":%d" % port)  # :0's port kept
    c = HttpClient(port)
    wait_until(lambda: c.get("/who")[0] == 200 and len(second.requests) > 0, timeout=10,
               what="requests to the new upstream")
    c.close()
    p.write_config([])
    wait_until(lambda: refused(port), timeout=10, what="the port closed")
    assert api.call("GET", "/proxies/shop")[0] == 404
