"""tests/lib/chaos.py -- a small client of Petrel's Toxiproxy-compatible API for the e2e tests.

  ChaosApi(port)     .call(method, path, body) -> (status, decoded JSON or text or None)
                     .proxy(name, upstream_port) -> the proxy's listen port
                     .toxic(proxy, type, stream, toxicity, **attributes) -> the toxic's JSON
  chaos_petrel_docs  the Proxy document that turns the API on at a given port
  http_toxic_body    the JSON of an HTTP toxic (name, type, toxicity, attributes, Petrel's fields)
  chaos_metric       a petrel_chaos_* counter of a proxy's or a route's toxic (Prometheus text)
  HttpClient(port)   one keep-alive HTTP/1.1 connection through a chaos proxy or a route:
                     .get(path) -> (status, headers, body); .timed(path) -> (status, body, ms)
"""

import http.client
import json
import time

from netutil import LOCALHOST


class ApiError(Exception):
    pass


class ChaosApi:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, raw=None):
        """(status, body): JSON bodies decoded, others as text, an empty body as None."""
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=5)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read().decode()
            if not text:
                return r.status, None
            if (r.getheader("content-type") or "").startswith("application/json"):
                return r.status, json.loads(text)
            return r.status, text
        finally:
            conn.close()

    def ok(self, method, path, body=None, expect=(200, 201, 204)):
        status, out = self.call(method, path, body)
        if status not in expect:
            raise ApiError("%s %s: %d %r" % (method, path, status, out))
        return out

    def proxy(self, name, upstream_port, enabled=True):
        p = self.ok("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                         "upstream": "127.0.0.1:%d" % upstream_port,
                                         "enabled": enabled})
        return int(p["listen"].rsplit(":", 1)[1])

    def toxic(self, proxy, type_, stream="downstream", toxicity=1.0, name=None, **attributes):
        body = {"type": type_, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        if name:
            body["name"] = name
        return self.ok("POST", "/proxies/%s/toxics" % proxy, body)


def chaos_proxy_spec(api_port):
    """The Proxy spec fields that turn the chaos API on at api_port (loopback)."""
    return {"chaosApi": {"port": api_port}}


def http_toxic_body(type_, name, toxicity=1.0, **fields):
    """A toxic's JSON for POST .../toxics: attributes= and Petrel's own fields (ttl_ms,
    max_hits, dry_run, match) as keywords."""
    attributes = fields.pop("attributes", {})
    return dict({"name": name, "type": type_, "toxicity": toxicity, "attributes": attributes},
                **fields)


def chaos_metric(petrel, name, labels):
    """The value of counter name on the line carrying labels ('proxy="p",toxic="t"'), or None."""
    status, body = petrel.admin_get("/stats/prometheus")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and labels in line:
            return int(line.rsplit(" ", 1)[1])
    return None


class HttpClient:
    """One keep-alive HTTP/1.1 connection (http.client), reopened after a close."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=10)
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read()
        if r.will_close:
            self.conn.close()
            self.conn = None
        return r.status, r.getheaders(), body

    def timed(self, path):
        t0 = time.monotonic()
        status, _, body = self.get(path)
        return status, body, (time.monotonic() - t0) * 1000

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
