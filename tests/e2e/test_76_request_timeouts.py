"""tests/e2e/test_76_request_timeouts.py -- Istio's "Request Timeouts" task, with its own files.

In the task, Bookinfo's reviews (v2) calls ratings; ratings gets a 2 s fault delay
(snip_request_timeouts_2.yaml, with the deprecated integer `percent`), so a request to reviews
takes about 2 s; then reviews gets `timeout: 0.5s` (snip_request_timeouts_3.yaml, a live
reload here) and the same request is cut at 0.5 s with 504 (flag UT). The task's
VirtualServices are mesh ones: here they are bound to the test's Gateway (the only change made
to Istio's files), the subsets come from Bookinfo's destination-rule-all.yaml as Istio ships
it, and the services are ServiceEntries on loopback. Real petrel; reviews is a real HTTP app
that calls ratings back through petrel, as the task's reviews calls ratings through its
sidecar.
"""

import http.server
import os
import threading
import time
import urllib.request

import pytest
import yaml

from netutil import free_port, http_request, wait_until
from petrel import ISTIO, REPO, gateway_doc, stats
from upstream import HttpOrigin

ISTIO_DIR = os.path.join(REPO, "..", "shared", "acceptance", "istio")
TASK = os.path.join(ISTIO_DIR, "docs-tasks", "request-timeouts")
DR_ALL = os.path.join(ISTIO_DIR, "bookinfo", "destination-rule-all.yaml")

# The task's short host names, completed in the rules' namespace as Istio reads them: at a
# Gateway, requests name the service by its FQDN.
REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"

pytestmark = pytest.mark.skipif(not os.path.isdir(TASK), reason="Istio's task files not beside the repo")


def task_docs(name):
    """The task's snippet as Istio ships it, bound to the test Gateway."""
    with open(os.path.join(TASK, name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for d in docs:
        d["spec"]["gateways"] = ["edge"]
    return docs


def bookinfo_drs():
    with open(DR_ALL) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def service(host, port, version):
    return {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": host},
            "spec": {"hosts": [host], "location": "MESH_INTERNAL", "resolution": "STATIC",
                     "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                     "endpoints": [{"address": "127.0.0.1", "ports": {"http": port},
                                    "labels": {"version": version}}]}}


class Reviews:
    """reviews v2: answers once ratings (asked through petrel) has answered."""

    def __init__(self, petrel_port):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                req = urllib.request.Request("http://127.0.0.1:%d/ratings/0" % outer.petrel_port,
                                             headers={"Host": RATINGS})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        body = b"reviews-v2 got ratings " + r.read()
                        status = 200
                except OSError as e:
                    body, status = ("reviews-v2: ratings failed: %r" % e).encode(), 503
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.petrel_port = petrel_port
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def timed_get(port, host):
    t0 = time.monotonic()
    status, _, body = http_request(port, "GET", "/reviews/0", host_header=host, timeout=15)
    return status, body, time.monotonic() - t0


def test_istio_request_timeouts_task(petrel):
    port = free_port()
    ratings = HttpOrigin(name="ratings-v1")
    reviews = Reviews(port)
    try:
        base = [gateway_doc([(port, "HTTP")]),
                service("reviews", reviews.port, "v2"), service("ratings", ratings.port, "v1")]
        base += bookinfo_drs()
        p = petrel(base + task_docs("snip_request_timeouts_1.yaml") +
                   task_docs("snip_request_timeouts_2.yaml"))
        # ratings is delayed 2 s: reviews answers after it, and so does the client's request
        status, body, took = timed_get(port, REVIEWS)
        assert status == 200 and b"reviews-v2 got ratings" in body, (status, body)
        assert took >= 2.0, took
        # the task's last step: reviews gets a 0.5 s timeout (a live reload here)
        gen = stats(p)["config_generation"]
        p.write_config(base + task_docs("snip_request_timeouts_3.yaml") +
                       task_docs("snip_request_timeouts_2.yaml"))
        wait_until(lambda: stats(p)["config_generation"] > gen, 10, what="the reload")
        status, body, took = timed_get(port, REVIEWS)
        assert status == 504, (status, body)
        assert 0.5 <= took < 1.9, took
        assert stats(p)["upstream_rq_timeout"] >= 1
    finally:
        reviews.stop()
        ratings.stop()
