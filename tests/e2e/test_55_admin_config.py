"""The admin API's view of the configuration: /config_dump (every resource in force, with the
file and line it came from, and the generation) and /clusters (each cluster's endpoints), both
following a reload."""

import json

from netutil import free_port, header, http_request, wait_until
from petrel import simple_config


def admin(p, method, path):
    status, _, body = admin_with_headers(p, method, path)
    return status, body


def admin_with_headers(p, method, path):
    return http_request(p.admin_port, method, path, host_header="127.0.0.1:%d" % p.admin_port)


def test_config_dump_lists_resources_with_their_source(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    status, headers, body = admin_with_headers(p, "GET", "/config_dump")
    assert status == 200
    assert header(headers, "content-type") == "application/json"
    dump = json.loads(body)
    kinds = [(r["resource"]["kind"], r["resource"]["metadata"]["name"]) for r in dump["resources"]]
    assert kinds == [("Proxy", "proxy"), ("Gateway", "edge"), ("VirtualService", "web"),
                     ("ServiceEntry", "web")], kinds
    se = dump["resources"][3]
    assert se["source"].endswith("/config/10-test.yaml")
    assert isinstance(se["line"], int) and se["line"] > 1
    assert se["resource"]["spec"]["endpoints"][0]["ports"]["http"] == origin.port
    with open(se["source"]) as f:  # the line really is where that document starts
        assert f.read().splitlines()[se["line"] - 1].startswith("apiVersion:")
    generation = dump["generation"]

    other = free_port()
    p.write_config(simple_config(http_port=p.port, upstream_port=[origin.port, other]))
    wait_until(lambda: json.loads(admin(p, "GET", "/config_dump")[1])["generation"] > generation,
               timeout=5, what="a new generation in /config_dump")
    endpoints = json.loads(admin(p, "GET", "/config_dump")[1])["resources"][3]["resource"]["spec"][
        "endpoints"]
    assert [e["ports"]["http"] for e in endpoints] == [origin.port, other]


def test_clusters_lists_endpoints(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
               concurrency=1)
    status, body = admin(p, "GET", "/clusters")
    assert status == 200
    lines = body.decode().splitlines()
    name = "outbound|80||web.local"
    assert "%s::127.0.0.1:%d::weight::1" % (name, origin.port) in lines
    assert "%s::127.0.0.1:%d::health_flags::healthy" % (name, origin.port) in lines
    assert admin(p, "POST", "/clusters")[0] == 405
    assert admin(p, "POST", "/config_dump")[0] == 405
