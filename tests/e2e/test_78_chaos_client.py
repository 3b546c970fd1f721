"""Petrel's Toxiproxy-compatible API driven by a real third-party client: npm's
toxiproxy-node-client 4.1.0 (pinned by tests/e2e/chaos/package-lock.json, installed by
`make tests/e2e/chaos/node_modules`), through every endpoint and every toxic type, each toxic
checked on a real connection (tests/e2e/chaos/client.js). Also the API's answers to bad input:
status codes and {"error", "status"} bodies that name the field."""

import os
import shutil
import subprocess

import pytest

from chaos import ChaosApi, chaos_proxy_spec
from netutil import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "chaos")

STEPS = [
    "GET /version", "POST /proxies", "POST /proxies duplicate 409",
    "POST /proxies without upstream 400", "GET /proxies, GET /proxies/{name}",
    "GET /proxies/{name} missing 404", "POST /populate",
    "GET/POST /proxies/{name}/toxics/{toxic}", "toxic latency", "toxic bandwidth",
    "toxic slow_close", "toxic timeout", "toxic reset_peer (ECONNRESET)", "toxic slicer",
    "toxic limit_data", "toxicity 0", "POST /proxies/{name}/toxics bad type 400",
    "POST /proxies/{name}/toxics duplicate 409", "GET /proxies/{name}/toxics",
    "GET /proxies/{name}/toxics/{toxic} missing 404", "POST /proxies/{name} enabled false",
    "POST /reset", "DELETE /proxies/{name}",
]


@pytest.fixture
def api(petrel):
    port = free_port()
    petrel([], proxy_spec=chaos_proxy_spec(port))
    return ChaosApi(port)


def test_npm_client_every_endpoint_and_toxic(api, tcp_echo):
    if shutil.which("node") is None or not os.path.isdir(os.path.join(CLIENT_DIR, "node_modules")):
        pytest.skip("node or tests/e2e/chaos/node_modules missing (make tests/e2e/chaos/node_modules)")
    r = subprocess.run(["node", os.path.join(CLIENT_DIR, "client.js"), str(api.port),
                        str(tcp_echo.port)], capture_output=True, text=True, timeout=120,
                       cwd=CLIENT_DIR)
    done = [line[3:] for line in r.stdout.splitlines() if line.startswith("ok ")]
    assert r.returncode == 0, "after %r:\n%s" % (done[-1:] or None, r.stderr)
    assert done == STEPS


@pytest.mark.parametrize("method,path,body,status,error", [
    ("GET", "/nothing", None, 404, "not found"),
    ("GET", "/proxies/none", None, 404, "proxy not found"),
    ("DELETE", "/proxies", None, 405, "method not allowed"),
    ("POST", "/proxies", b"{", 400, "body: line 1, column 2: a member name in double quotes was expected"),
    ("POST", "/proxies", b'{"name": 3, "upstream": "127.0.0.1:1"}', 400, "name: must be a string, not a number"),
    ("POST", "/proxies", b'{"name": "a/b", "upstream": "127.0.0.1:1"}', 400,
     "name: \"a/b\" may hold only letters, digits, '_', '-' and '.'"),
    ("POST", "/proxies", b'{"name": "x", "upstream": "127.0.0.1"}', 400,
     "upstream: \"127.0.0.1\" is not host:port"),
    ("POST", "/proxies", b'{"name": "x", "upstream": "127.0.0.1:1", "lisen": "1"}', 400,
     "lisen: unknown field (expected name, listen, upstream, enabled, protocol)"),
    ("POST", "/populate", b'[{"name": "x"}]', 400, "[0].upstream: missing"),
])
def test_bad_requests_answer_with_toxiproxy_errors(api, method, path, body, status, error):
    got_status, out = api.call(method, path, raw=body)
    assert got_status == status
    assert out == {"error": error, "status": status}


def test_bad_toxic_fields_name_the_field(api, tcp_echo):
    api.proxy("p", tcp_echo.port)
    cases = [
        ({"type": "latency", "attributes": {"latency": -1}}, "attributes.latency: must be a whole number from 0 to 604800000"),
        ({"type": "latency", "attributes": {"rate": 1}}, "attributes.rate: not an attribute of a latency toxic"),
        ({"type": "latency", "toxicity": 1.5}, "toxicity: must be a number from 0 to 1"),
        ({"type": "latency", "stream": "sideways"}, "stream: must be upstream or downstream"),
        ({"attributes": {}}, "type: missing"),
    ]
    for body, error in cases:
        status, out = api.call("POST", "/proxies/p/toxics", body)
        assert (status, out) == (400, {"error": error, "status": 400}), body
    # Nothing was added by the refused requests.
    assert api.ok("GET", "/proxies/p/toxics") == []
