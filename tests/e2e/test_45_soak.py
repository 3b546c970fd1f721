"""tests/e2e/test_45_soak.py -- many requests through one Petrel, and nothing drifts.

Mixed sizes (0 B to 256 KiB responses, 10 % POSTs with 1..16 KiB bodies), keep-alive and new
connections (every tenth request says `Connection: close`), 10 % mirrored, retries on 5xx, a
reload every PETREL_SOAK_RELOAD_SECONDS, and an nginx upstream that answers 503 to 1 % of the
requests at random. The load is tests/soak/soakcli.c (16 connections). Checked at the end:

- every request got a complete response, and each non-200 is a 503 that the access log flags
  URX (the upstream's 503 three times in a row: retries exhausted);
- Petrel's RSS at the end of the load within 5 % of its RSS after warm-up (the first half: under
  load, RSS rises in a few steps to its high-water mark -- the stream caches, the malloc arenas
  of both workers -- over the first ~100,000 requests, and then stays; a leak keeps growing),
  unless it is built with AddressSanitizer;
- its descriptors back to their count before the load once the pools' idle time passed;
- the counters agree: requests sent = /stats downstream_rq_total = access-log lines, and the
  statuses in /stats and the access log equal the client's.

PETREL_SOAK_REQUESTS sets the size: 100,000 by default (the short form, in `make test`);
`make soak` runs 1,000,000 with a reload every 10 s (docs/testing.md).
"""

import collections
import json
import os
import shutil
import subprocess
import threading

import pytest

from netutil import (build_request, connect, free_port, header, http_request, open_fds, read_to_close,
                     recv_one, rss_kb, wait_for_port, wait_until)
from petrel import ISTIO, gateway_doc, sanitized, service_entry_doc, simple_config, stats
from upstream import EarlyAnswerOrigin

HERE = os.path.dirname(os.path.abspath(__file__))
REQUESTS = int(os.environ.get("PETREL_SOAK_REQUESTS", "100000"))
RELOAD_SECONDS = float(os.environ.get("PETREL_SOAK_RELOAD_SECONDS", "0.5"))
WARMUP = 2000
CONNS = 16
SIZES = (0, 1024, 16384, 262144)

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    split_clients "${{request_id}}" $soak_fail {{ 1% "1"; * ""; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/www;
        if ($soak_fail) {{ return 503; }}
        location /s/ {{ }}
        location = /post {{ client_max_body_size 1m; return 200 "posted\\n"; }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path):
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        pytest.skip("nginx not installed (make deps installs it)")
    d = tmp_path / "nginx"
    (d / "tmp").mkdir(parents=True)
    (d / "www" / "s").mkdir(parents=True)
    for n in SIZES:
        (d / "www" / "s" / str(n)).write_bytes(b"x" * n)
    port = free_port()
    (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, port=port))
    proc = subprocess.Popen([exe, "-p", str(d), "-c", str(d / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def soakcli(tmp_path):
    exe = str(tmp_path / "soakcli")
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", exe,
                    os.path.join(HERE, "..", "soak", "soakcli.c")], check=True)
    return exe


def soak_docs(http_port, upstream_port, generation):
    """The soak's config; generation goes into a response header, so every reload changes it."""
    route = {"route": [{"destination": {"host": "web.local", "port": {"number": 80}}}],
             "timeout": "10s",
             "retries": {"attempts": 2, "retryOn": "5xx"},
             "mirror": {"host": "shadow.local", "port": {"number": 80}},
             "mirrorPercentage": {"value": 10.0},
             "headers": {"response": {"set": {"x-soak-generation": str(generation)}}}}
    vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "soak"},
          "spec": {"hosts": ["*"], "gateways": ["edge"], "http": [route]}}
    return [gateway_doc([(http_port, "HTTP")]), vs,
            service_entry_doc("web.local", upstream_port, name="web"),
            service_entry_doc("shadow.local", upstream_port, name="shadow")]


def pools_idle(p):
    """Waits until Petrel holds no upstream or mirror connection (upstreamIdleTimeout is 3 s)."""
    wait_until(lambda: (lambda st: st["upstream_cx_active"] == 0 and st["mirror_active"] == 0)(stats(p)),
               15, what="the upstream pools empty")


def line_count(path):
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def access_log_counts(path):
    """{(status, flags): lines} of the access log, read line by line (it may be large)."""
    counts = collections.Counter()
    with open(path) as f:
        for line in f:
            # '[time] "METHOD PATH PROTO" STATUS FLAGS ...'
            fields = line.split('" ', 1)[1].split(" ", 2)
            counts[(fields[0], fields[1])] += 1
    return counts


def test_soak(petrel, nginx, soakcli):
    http_port = free_port()
    p = petrel(soak_docs(http_port, nginx, 0), concurrency=2,
               proxy_spec={"upstreamIdleTimeout": "3s"})
    # A warm-up run opens what stays open (the access log, the workers' spare descriptors);
    # once its pooled connections have idled out, the descriptors are the baseline.
    warm = subprocess.run([soakcli, str(http_port), str(WARMUP), str(CONNS)], capture_output=True,
                          text=True, timeout=120)
    assert warm.returncode == 0, warm
    assert set(json.loads(warm.stdout.splitlines()[-1])["errors"].values()) == {0}, warm.stdout
    pools_idle(p)
    fds_before = open_fds(p.pid)
    rss_start = rss_kb(p.pid)
    st0 = stats(p)
    reloads = {"n": 0}
    stop = threading.Event()

    def reloader():
        while not stop.wait(RELOAD_SECONDS):
            reloads["n"] += 1
            p.write_config(soak_docs(http_port, nginx, reloads["n"]))

    t = threading.Thread(target=reloader, daemon=True)
    load = subprocess.Popen([soakcli, str(http_port), str(REQUESTS), str(CONNS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t.start()
    rss = []  # (responses so far, Petrel's RSS in KiB)
    result = None
    try:
        for line in load.stdout:
            if line.startswith("progress "):
                rss.append((int(line.split()[1]), rss_kb(p.pid)))
            elif line.startswith("{"):
                result = json.loads(line)
        load.wait(60)
    finally:
        stop.set()
        t.join(10)
        if load.poll() is None:
            load.kill()
            load.wait()
    err = load.stderr.read()
    assert load.returncode == 0 and result, "soakcli failed (%s): %s" % (load.returncode, err[-2000:])
    rss_end = rss_kb(p.pid)
    warm = [kb for done, kb in rss if done >= REQUESTS // 2]
    rss_warm = warm[0] if warm else rss_end
    report = {"requests": REQUESTS, "seconds": result["seconds"],
              "rps": round(REQUESTS / result["seconds"]), "statuses": result["statuses"],
              "errors": result["errors"], "reloads": reloads["n"], "rss_kb_start": rss_start,
              "rss_kb_after_warmup": rss_warm, "rss_kb_max": max([kb for _, kb in rss] + [rss_end]),
              "rss_kb_end": rss_end, "fds_before": fds_before, "fds_after_load": open_fds(p.pid)}

    # every request answered, every failure explained
    assert result["sent"] == REQUESTS
    assert result["errors"] == {k: 0 for k in result["errors"]}, err[-2000:]
    assert result["responses"] == REQUESTS
    assert set(result["statuses"]) <= {"200", "503"}, result["statuses"]
    client_503 = result["statuses"].get("503", 0)
    # memory and descriptors
    if not sanitized(p.pid):  # a sanitizer's quarantine keeps freed memory resident on purpose
        assert abs(rss_end - rss_warm) <= rss_warm * 0.05, report
    pools_idle(p)
    # The counters drop before the closes' callbacks have run: the descriptors follow shortly.
    try:
        wait_until(lambda: open_fds(p.pid) <= fds_before, 5, what="descriptors back to baseline")
    finally:
        report["fds_pools_idle"] = open_fds(p.pid)
    assert report["fds_pools_idle"] <= fds_before, report
    # counters: each one's growth over the measured run
    # A line the log writer was too far behind for is dropped and counted (docs/operations.md).
    wait_until(lambda: line_count(p.access_log) + stats(p)["access_log_dropped"] >= WARMUP + REQUESTS,
               15, what="the access log written")
    dropped = stats(p)["access_log_dropped"]
    st = stats(p)
    st = {k: v - st0.get(k, 0) for k, v in st.items()}
    log = access_log_counts(p.access_log)  # the warm-up's lines too
    report.update(access_log_lines=sum(log.values()), access_log_dropped=dropped,
                  retries=st["retries_status"], mirrored=st["mirror_requests"])
    print("soak:", json.dumps(report))
    assert sum(log.values()) + dropped == WARMUP + REQUESTS, report
    assert st["downstream_rq_total"] == REQUESTS, st
    assert st["downstream_rq_2xx"] == result["statuses"]["200"], (st, result)
    assert st["downstream_rq_5xx"] == client_503, (st, result)
    # every 503 a client saw is the upstream's, after the retries ran out
    assert set(log) <= {("200", "-"), ("503", "URX")}, log
    assert log[("503", "URX")] <= client_503, log
    assert st["retries_exhausted"] == client_503, st
    assert st["retries_status"] > 0.005 * REQUESTS, st
    assert 0.05 * REQUESTS <= st["mirror_requests"] <= 0.15 * REQUESTS, st
    assert st["mirror_requests"] == st["mirror_responses"] + st["mirror_failed"] + st["mirror_abandoned"], st
    assert stats(p)["config_reloads_refused"] == 0
    # Every config written was taken: the watcher may fold writes that come close together
    # into one reload (a slow, sanitized build folds more), so the check is that the last one
    # written is the one in force. Each write replaces two files (the Proxy's and the mesh's),
    # and a watch event between the two renames makes two reloads of one write.
    def generation_served():
        _, headers, _ = http_request(http_port, "GET", "/s/")  # any answer through the route
        return header(headers, "x-soak-generation") == str(reloads["n"])
    wait_until(generation_served, 30, what="the config of reload %d in force" % reloads["n"])
    assert 1 <= stats(p)["config_reloads_accepted"] <= 2 * reloads["n"]


def test_response_before_the_request_body_keeps_the_connection(petrel):
    origin = EarlyAnswerOrigin()
    try:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
        cut = []
        for i in range(10):
            s = connect(p.port)
            try:
                # the response comes before the body is sent: a client that streams a large
                # upload sees this order
                s.sendall(b"POST /post HTTP/1.1\r\nHost: soak.local\r\nContent-Length: 4000\r\n\r\n")
                status, headers, _ = recv_one(s, 5.0)
                assert status == 200
                if header(headers, "connection", "").lower() == "close":
                    continue  # a close said aloud is fine
                try:
                    s.sendall(b"y" * 4000)
                    s.sendall(build_request("/next", [("Host", "soak.local")]))
                    assert recv_one(s, 5.0)[0] == 200
                except (OSError, AssertionError) as e:
                    cut.append((i, repr(e)[:100]))
            finally:
                s.close()
        assert cut == [], "%d of 10 keep-alive connections cut after the response: %s" % (len(cut), cut[:3])
        assert origin.requests == 20
    finally:
        origin.stop()


@pytest.mark.parametrize("framing", [("Content-Length", "1048576"), ("Transfer-Encoding", "chunked")],
                         ids=["over-the-drop-bound", "chunked"])
def test_response_before_a_long_body_says_connection_close(petrel, framing):
    # A body longer than Petrel drops after an early response (256 KiB), or of unknown length:
    # the response says the connection ends, and it does.
    origin = EarlyAnswerOrigin()
    try:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
        s = connect(p.port)
        try:
            s.sendall(b"POST /post HTTP/1.1\r\nHost: soak.local\r\n%s: %s\r\n\r\n"
                      % (framing[0].encode(), framing[1].encode()))
            status, headers, _ = recv_one(s, 5.0)
            assert status == 200
            assert header(headers, "connection", "").lower() == "close", headers
            got, closed = read_to_close(s, 5.0)
            assert got == b"" and closed
        finally:
            s.close()
    finally:
        origin.stop()
