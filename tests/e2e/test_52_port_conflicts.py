"""tests/e2e/test_52_port_conflicts.py -- a port someone else listens on is an error.

Petrel's workers listen with SO_REUSEPORT, which the kernel lets another socket of the same
user share: a second Petrel (or any server that sets SO_REUSEPORT) on the same port would get
half of the connections. So a port that another process listens on is refused, at start-up
(exit 1, "address already in use" naming the Gateway server and address:port) and on a reload
(refused, the running config keeps serving); a port Petrel itself holds stays fine across its
workers and its reloads.
"""

import socket

import pytest

from netutil import free_port, http_request, wait_until
from petrel import ISTIO, gateway_doc, need_petrel, run_petrel, stats, to_yaml


def direct_docs(ports, body):
    """A Gateway "edge" with an HTTP server on each port, all answering body directly."""
    return [
        gateway_doc([(p, "HTTP") for p in ports]),
        {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "direct"},
         "spec": {"hosts": ["*"], "gateways": ["edge"],
                  "http": [{"directResponse": {"status": 200, "body": {"string": body}}}]}},
    ]


def listener(reuse_port):
    """A plain listening socket on 127.0.0.1, with SO_REUSEPORT set as asked."""
    s = socket.socket()
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def body_at(port):
    st, _, body = http_request(port, "GET", "/", timeout=5)
    assert st == 200
    return body


@pytest.mark.parametrize("reuse_port", [False, True])
def test_port_of_another_process_is_refused_at_start(tmp_path, reuse_port):
    need_petrel()
    busy = listener(reuse_port)
    port = busy.getsockname()[1]
    proxy = {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "p"},
             "spec": {"bindAddress": "127.0.0.1", "adminPort": free_port(), "accessLog": ""}}
    (tmp_path / "c.yaml").write_text(to_yaml([proxy] + direct_docs([port], "x\n")))
    try:
        r = run_petrel(["run", "-c", str(tmp_path / "c.yaml")], timeout=15)
        # Nothing was taken from the owner: a connection still lands in its backlog.
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn, _ = busy.accept()
        conn.close()
        c.close()
    finally:
        busy.close()
    assert r.returncode == 1, r.stderr
    assert ("listener default/edge/%d on 127.0.0.1:%d: address already in use (another "
            "process listens there)" % (port, port)) in r.stderr, r.stderr


def test_second_petrel_on_the_same_port_is_refused(petrel, tmp_path):
    port = free_port()
    first = petrel(direct_docs([port], "first\n"))
    second = petrel(direct_docs([port], "second\n"), start=False)
    second.start(wait=False)
    wait_until(lambda: second.proc.poll() is not None, timeout=15, what="the second to exit")
    assert second.proc.returncode == 1, second.stderr()
    assert "127.0.0.1:%d: address already in use" % port in second.stderr()
    second.proc = None  # exited as it should: nothing for the fixture to stop
    # Every connection still reaches the first one.
    assert {body_at(port) for _ in range(20)} == {b"first\n"}
    assert first.proc.poll() is None


def test_reload_adding_a_port_of_another_process_is_refused(petrel):
    port = free_port()
    p = petrel(direct_docs([port], "v1\n"))
    busy = listener(reuse_port=True)  # shareable: only the probe can tell
    taken = busy.getsockname()[1]
    try:
        p.write_config(direct_docs([port, taken], "v2\n"))
        wait_until(lambda: stats(p)["config_reloads_refused"] >= 1, timeout=5, what="refusal")
        err = p.stderr()
        assert ("listener default/edge/%d on 127.0.0.1:%d: address already in use" %
                (taken, taken)) in err, err[-2000:]
        assert "refused: a listener port is in use; keeping generation 1" in err, err[-2000:]
        assert stats(p)["config_generation"] == 1
        assert body_at(port) == b"v1\n"
        # Petrel did not take part of the port: connections land with its owner.
        c = socket.create_connection(("127.0.0.1", taken), timeout=5)
        busy.settimeout(5)
        conn, _ = busy.accept()
        conn.close()
        c.close()
    finally:
        busy.close()


def test_reload_keeping_its_own_port_and_adding_a_free_one(petrel):
    port, added = free_port(), free_port()
    p = petrel(direct_docs([port], "v1\n"), concurrency=2)
    p.write_config(direct_docs([port, added], "v2\n"))
    wait_until(lambda: stats(p)["config_generation"] == 2, timeout=5, what="the reload")
    assert stats(p)["config_reloads_refused"] == 0
    assert body_at(port) == b"v2\n" and body_at(added) == b"v2\n"
    # And again: both ports are Petrel's own now.
    p.write_config(direct_docs([port, added], "v3\n"))
    wait_until(lambda: stats(p)["config_generation"] == 3, timeout=5, what="the second reload")
    assert body_at(port) == b"v3\n" and body_at(added) == b"v3\n"
