"""Live configuration: the config directory is watched (files replaced by rename, and
Kubernetes' ConfigMap ..data symlink swap), SIGHUP reloads, a new set of files is validated as
a whole and published at once, a bad set is refused with its errors and the running config
stays, and a reload closes no connection whose route did not change: client keep-alive
connections and pooled upstream connections survive it."""

import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

from netutil import build_request, connect, free_port, header, recv_one, wait_until
from petrel import ISTIO, gateway_doc, service_entry_doc, stats, to_yaml


def config(http_port, destination, a_port, b_port, extra_servers=()):
    """A Gateway on http_port (plus extra_servers), one route to destination ("a.local" or
    "b.local"), and ServiceEntries for both origins."""
    return [
        gateway_doc([(http_port, "HTTP")] + list(extra_servers)),
        {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
         "spec": {"hosts": ["*"], "gateways": ["edge"],
                  "http": [{"route": [{"destination": {"host": destination,
                                                       "port": {"number": 80}}}]}]}},
        service_entry_doc("a.local", a_port, name="a"),
        service_entry_doc("b.local", b_port, name="b"),
    ]


def get(sock, path="/echo"):
    sock.sendall(build_request(path, [("Host", "example.com")]))
    status, headers, _ = recv_one(sock)
    return status, header(headers, "x-origin")


def origin_of_new_request(port):
    s = connect(port)
    try:
        return get(s)[1]
    finally:
        s.close()


def generation(p):
    return stats(p)["config_generation"]


def test_file_change_reroutes_without_closing_connections(petrel, origin_factory):
    a, b = origin_factory(name="a"), origin_factory(name="b")
    port = free_port()
    p = petrel(config(port, "a.local", a.port, b.port), concurrency=1)
    client = connect(port)
    assert get(client) == (200, "a")
    gen = generation(p)

    p.write_config(config(port, "b.local", a.port, b.port))
    # The same keep-alive client connection sees the new route: it was not closed.
    wait_until(lambda: get(client) == (200, "b"), timeout=5, what="route to b after reload")
    assert generation(p) > gen
    assert stats(p)["config_reloads_accepted"] >= 1
    assert "config generation" in p.stderr() and "(files changed)" in p.stderr()

    # Back to a: the pooled upstream connection to a outlived both reloads.
    a_connections = a.connections
    p.write_config(config(port, "a.local", a.port, b.port))
    wait_until(lambda: get(client) == (200, "a"), timeout=5, what="route back to a")
    for _ in range(5):
        assert get(client) == (200, "a")
    assert a.connections == a_connections, "a reload closed a pooled upstream connection"
    client.close()


def test_bad_files_are_refused_and_the_running_config_stays(petrel, origin_factory):
    a, b = origin_factory(name="a"), origin_factory(name="b")
    port = free_port()
    p = petrel(config(port, "a.local", a.port, b.port), concurrency=1)
    assert origin_of_new_request(port) == "a"
    gen = generation(p)

    broken = config(port, "b.local", a.port, b.port)
    broken[1]["spec"]["http"][0]["timeout"] = "5 sec"  # bad duration
    broken[1]["spec"]["bogus"] = 1                    # unknown field
    p.write_config(broken)
    wait_until(lambda: stats(p)["config_reloads_refused"] >= 1, timeout=5,
               what="the broken set refused")
    err = p.stderr()
    assert "config reload (files changed) refused (2 errors)" in err, err[-2000:]
    assert "10-test.yaml:" in err and "spec.bogus: unknown field" in err, err[-2000:]
    assert "spec.http[0].timeout" in err, err[-2000:]
    # Still the old routing, same generation, for new and old connections alike.
    assert generation(p) == gen
    for _ in range(5):
        assert origin_of_new_request(port) == "a"

    p.write_config(config(port, "b.local", a.port, b.port))
    wait_until(lambda: origin_of_new_request(port) == "b", timeout=5, what="the fixed set")
    assert generation(p) == gen + 1


def test_sighup_reloads(petrel, origin_factory):
    a, b = origin_factory(name="a"), origin_factory(name="b")
    port = free_port()
    p = petrel(config(port, "a.local", a.port, b.port), concurrency=1)
    wait_until(lambda: "ready" in p.stderr(), timeout=5, what="the ready line")
    p.signal(signal.SIGHUP)
    wait_until(lambda: "(SIGHUP)" in p.stderr(), timeout=5, what="a reload on SIGHUP")
    assert "config generation" in p.stderr()
    assert origin_of_new_request(port) == "a"


def test_restart_only_settings_are_refused(petrel, origin_factory):
    a, b = origin_factory(name="a"), origin_factory(name="b")
    port = free_port()
    p = petrel(config(port, "a.local", a.port, b.port), concurrency=1)
    gen = generation(p)
    p.concurrency = 2
    p.write_config(config(port, "b.local", a.port, b.port))
    wait_until(lambda: stats(p)["config_reloads_refused"] >= 1, timeout=5, what="refusal")
    assert "spec.concurrency cannot change without a restart" in p.stderr()
    assert generation(p) == gen
    assert origin_of_new_request(port) == "a"


def test_docs_list_every_restart_only_field():
    """docs/operations.md's restart-only list names what restart_only_change() refuses, no
    more and no less (tracing's own settings are listed under `tracing`)."""
    root = Path(__file__).resolve().parents[2]
    code = (root / "proxy/main.c").read_text()
    body = code[code.index("static const char *restart_only_change(") :]
    body = body[: body.index("\n}\n")]
    in_code = set(re.findall(r"spec\.([A-Za-z]+(?:\.[A-Za-z]+)*)", body)) | {"tracing"}
    docs = (root / "docs/operations.md").read_text()
    section = docs[docs.index("These Proxy fields need a restart") :]
    section = section[: section.index("A reload is also ignored")]
    # Each bullet names fields before its first ":" or " (" (what follows explains them).
    in_docs = {
        name
        for line in section.splitlines()
        if line.startswith("- ")
        for name in re.findall(r"`([A-Za-z.]+)`", re.split(r":| \(", line)[0])
    }
    assert in_code == in_docs, (sorted(in_code - in_docs), sorted(in_docs - in_code))


def test_listeners_follow_the_gateway(petrel, origin_factory):
    a, b = origin_factory(name="a"), origin_factory(name="b")
    port, extra = free_port(), free_port()
    p = petrel(config(port, "a.local", a.port, b.port), concurrency=2)
    p.write_config(config(port, "a.local", a.port, b.port, extra_servers=[(extra, "HTTP")]))
    wait_until(lambda: _answers(extra), timeout=5, what="the new listener")
    assert origin_of_new_request(extra) == "a"
    kept = connect(port)
    assert get(kept) == (200, "a")

    p.write_config(config(port, "a.local", a.port, b.port))
    wait_until(lambda: _refused(extra), timeout=5, what="the removed listener closed")
    # The listener that stayed kept serving, on its open connection and new ones.
    assert get(kept) == (200, "a")
    assert origin_of_new_request(port) == "a"
    kept.close()


def _answers(port):
    try:
        return origin_of_new_request(port) is not None
    except OSError:
        return False


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_configmap_symlink_swap(petrel, origin_factory, tmp_path):
    """Kubernetes mounts a ConfigMap as ..<timestamp>/ directories, a ..data symlink to the
    current one and per-key symlinks through ..data; an update renames a new symlink over
    ..data. A watch on the files would miss it; Petrel watches the directory."""
    a, b = origin_factory(name="a"), origin_factory(name="b")
    port = free_port()
    p = petrel(config(port, "a.local", a.port, b.port), concurrency=1, start=False)
    cdir = p.config_dir
    names = sorted(os.listdir(cdir))

    def publish(version, docs):
        p.docs = docs
        d = os.path.join(cdir, "..%s" % version)
        os.mkdir(d)
        for name in names:
            src = os.path.join(cdir, name) if version == "v1" else os.path.join(cdir, "..v1", name)
            with open(src) as f:
                text = f.read()
            if name == "10-test.yaml":
                text = to_yaml(docs)
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        os.symlink("..%s" % version, os.path.join(cdir, "..data_tmp"))
        os.rename(os.path.join(cdir, "..data_tmp"), os.path.join(cdir, "..data"))

    publish("v1", p.docs)
    for name in names:
        os.remove(os.path.join(cdir, name))
        os.symlink(os.path.join("..data", name), os.path.join(cdir, name))
    p.start()
    assert origin_of_new_request(port) == "a"
    publish("v2", config(port, "b.local", a.port, b.port))
    wait_until(lambda: origin_of_new_request(port) == "b", timeout=5,
               what="the ConfigMap update picked up")


def test_reloads_under_load_lose_no_request(petrel, origin_factory):
    """50 reloads, 10 of them invalid, while four keep-alive clients send requests: every
    request is answered 200, and no client connection is closed by Petrel."""
    a, b = origin_factory(name="a"), origin_factory(name="b")
    port = free_port()
    p = petrel(config(port, "a.local", a.port, b.port), concurrency=2)
    stop = threading.Event()
    results = {"ok": 0, "failed": [], "seen": set()}
    lock = threading.Lock()

    def client():
        s = connect(port)
        deadline = time.monotonic() + 60
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                status, who = get(s)
                with lock:
                    if status == 200:
                        results["ok"] += 1
                        results["seen"].add(who)
                    else:
                        results["failed"].append(status)
        except Exception as e:  # a closed connection or a timeout is a lost request
            with lock:
                results["failed"].append(repr(e))
        finally:
            s.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    gen = generation(p)
    for i in range(50):
        docs = config(port, "b.local" if i % 2 else "a.local", a.port, b.port)
        if i % 5 == 4:
            docs[1]["spec"]["http"][0]["route"][0]["weight"] = -1  # invalid
        p.write_config(docs)
        time.sleep(0.15)  # pacing between edits; what is checked is counted below
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not results["failed"], results["failed"][:5]
    assert results["ok"] > 100, results["ok"]
    assert results["seen"] == {"a", "b"}
    st = stats(p)
    assert st["config_reloads_refused"] >= 1
    assert st["config_generation"] > gen
