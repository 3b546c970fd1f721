#!/usr/bin/python3
"""tests/bench/bench.py -- Petrel, HAProxy and nginx side by side (run by `make bench`).

One upstream (nginx, one worker, serving a 0 B and a 1 KiB file with keep-alive) and three
reverse proxies in front of it, each with one worker/thread and keep-alive to the upstream:
Petrel (concurrency 1, $PETREL_BIN), HAProxy (nbthread 1), nginx (worker_processes 1). The
proxies are pinned to CPU 0; the upstream and the load generators to CPU 1. The cases run
interleaved (direct, petrel, haproxy, nginx, then again, BENCH_ROUNDS times) and each figure is
the median over the rounds:

  - requests/s at saturation: wrk -t1 -c50 -dBENCH_DURATION s, 0 B and 1 KiB bodies
  - p50/p99 latency at a fixed 1000 req/s over 10 keep-alive connections (tests/bench/ratecli.c,
    open loop, latency from each request's due time)
  - TLS termination beside HAProxy with the same certificate: req/s over keep-alive TLS and new
    handshakes/s (BENCH_TLS=0 skips it)
  - proxy CPU per 1000 requests (utime+stime from /proc/<pid>/stat around the 0 B wrk run)
  - idle RSS (after start) and peak RSS during the wrk runs (VmRSS)
  - sidecar to sidecar: p50/p99 at the fixed rate from an app in one pod (network namespace)
    to nginx in another, through both pods' Petrel sidecars with Istio's traffic capture, with
    mTLS and in plaintext, beside one sidecar and none; each sidecar's CPU per 1000 requests
    (needs root; BENCH_MESH=0 skips it, about 30 s a round)
  - the TCP relay (Gateway TCP route, chaos proxies) beside a direct connection and HAProxy in
    TCP mode: MB/s of a 64 KiB loop, proxy CPU per round trip and 1-byte round trips
    (tests/bench/relaycli.c), with all processes on one CPU, split over two, and unpinned
    (BENCH_CHAOS=0 skips it)
  - time from spawning the proxy to its first 200 response
  - this Petrel against a base (BENCH_BASE, a git ref, built by build_base in a temporary git
    worktree under build/bench-base/ with that commit's own Makefile): the same config file,
    BENCH_AB_ROUNDS (6) rounds alternating the two, ratios this / base of the medians of
    requests/s, CPU and user time per request at saturation and p99 at the fixed rate; skipped,
    with the reason printed and written, when BENCH_BASE is empty or the base does not build
  - idle keep-alive client connections: BENCH_IDLE_CONNS (10,000) opened one after another, one
    GET each, then idle: RSS growth per connection, for Petrel (and the base), HAProxy, nginx
  - after a burst of BENCH_BURST (2,000) concurrent requests: the upstream connections each
    proxy still holds, and its RSS growth per client connection, 1, 5 and 15 s later
    (BENCH_MANY=0 skips these two)
  - BENCH_PERF=1: `perf record -g` on this Petrel at saturation (top 25 symbols by self time)
    and syscalls per request by `strace -c`
  - BENCH_CALLGRIND=1: user-space instructions per request of this Petrel's worker thread (and
    the base's, and HAProxy's for the HTTP/2 cases) under callgrind for HTTP/1.1, h2c, h2 over
    TLS and gRPC (BENCH_CALLGRIND_N requests, 5,000), a measure the machine's other load does
    not move
  - HTTP/2 (BENCH_H2=0 skips it): h2c with prior knowledge, h2 over TLS (ALPN, the TLS
    part's certificate) and gRPC unary (a pre-framed protobuf body, `te: trailers`) through
    Petrel (as configured by default, and with its access log off, the work the peers do
    here), HAProxy (`proto h2` on both sides) and nginx (`http2` listeners; proxy_pass over
    HTTP/1.1, grpc_pass over h2c) to an HTTP/2 origin (nginx, h2c and TLS, gRPC answered
    from a file): requests/s at saturation and CPU per request (h2load -c10 -m10), p50/p99 at
    RATE (h2load --rps and its per-request log), interleaved like the rest; then RSS per idle
    HTTP/2 connection (BENCH_H2_IDLE_CONNS, 2,000, h2c, one finished stream each). A proxy or
    case that does not answer HTTP/2 (curl, or a python3-grpcio call for gRPC) is reported as
    not run with the reason; so is the sidecar-to-sidecar HTTP/2 hop, not measured yet

Writes docs/benchmarks.md (or $BENCH_OUT). Needs wrk, haproxy, nginx (`make deps`) and cc; the
HTTP/2 part also h2load (nghttp2-client), python3-h2 and python3-grpcio.
A proxy that does not start or answer is reported as not run; the others still run. Every
process started here is killed at the end, also on error or Ctrl-C.
Environment: PETREL_BIN, BENCH_ROUNDS (3), BENCH_DURATION (5), BENCH_RATE (1000),
BENCH_TARGETS (direct,petrel,haproxy,nginx), BENCH_OUT, BENCH_KEEP=1 (keep the tmp dir),
BENCH_SCALE, BENCH_TLS, BENCH_MESH, BENCH_CHAOS, BENCH_MANY (1: set to 0 to skip that part),
BENCH_BASE, BENCH_AB_ROUNDS, BENCH_IDLE_CONNS, BENCH_BURST, BENCH_PERF, BENCH_CALLGRIND,
BENCH_CALLGRIND_N, BENCH_H2,
BENCH_H2_IDLE_CONNS. The soft RLIMIT_NOFILE is
raised to the hard one for this script and every process it starts.
"""

import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import certs  # noqa: E402
from netns import Mesh, usable as netns_usable  # noqa: E402
from netutil import (CLOCK_TICKS, Incomplete, cpu_ticks, free_port, http_request,  # noqa: E402
                     parse_responses, recv_one, rss_kb, wait_for_port, wait_until)
from petrel import (ISTIO, Petrel, gateway_doc, petrel_bin, service_entry_doc,  # noqa: E402
                    simple_config, to_yaml)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
RATE_CONNS = 10
RATE_SECONDS = max(3, DURATION)
# This Petrel against the one built from BENCH_BASE (a git ref; empty: not compared).
BASE_REF = os.environ.get("BENCH_BASE", "")
AB_ROUNDS = int(os.environ.get("BENCH_AB_ROUNDS", "6"))
BASE_BUILD_TIMEOUT = 1200
# Idle keep-alive client connections, and a burst of concurrent requests (BENCH_MANY=0 skips).
IDLE_CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "10000"))
IDLE_TIMEOUT = 120
BURST = int(os.environ.get("BENCH_BURST", "2000"))
BURST_TIMEOUT = 60
BURST_SAMPLES = (1, 5, 15)  # seconds after the burst's last response
# petrel_bare, petrel_telemetry and petrel_policies are Petrel with other configs (see
# petrel_variant): the cost of telemetry and of the resilience policies, in the same run.
TARGETS = [t for t in os.environ.get(
    "BENCH_TARGETS",
    "direct,petrel,haproxy,nginx,petrel_bare,petrel_telemetry,petrel_policies").split(",") if t]
OUT = os.environ.get("BENCH_OUT") or os.path.join(REPO, "docs", "benchmarks.md")
NAMES = {"direct": "direct (no proxy)", "petrel": "Petrel", "haproxy": "HAProxy", "nginx": "nginx",
         "petrel_bare": "Petrel, telemetry off", "petrel_telemetry": "Petrel, metrics + tracing 1 %",
         "petrel_policies": "Petrel + retries, 10 % mirror, outlier detection",
         "petrel_base": "Petrel at BENCH_BASE",
         "petrel_nolog": "Petrel, access log off (as the peers run here)"}

KEEP_MARKER = "<!-- written by hand below: make bench keeps this part -->"

NCPU = os.cpu_count() or 1
PROXY_CPU = "0"
LOAD_CPU = "1" if NCPU > 1 else "0"

PROCS = []  # every Popen started here, killed in cleanup()
CLEANUPS = []  # what else cleanup() undoes (a mesh's namespaces and capture rules)


def log(msg):
    print("bench: " + msg, flush=True)


def pinned(cpu, argv):
    return ["taskset", "-c", cpu] + argv


def spawn(argv, workdir, name):
    out = open(os.path.join(workdir, name + ".out"), "wb")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         cwd=workdir)
    out.close()
    PROCS.append(p)
    return p


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 5
    for p in PROCS:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for undo in list(CLEANUPS):
        undo()


def first_response(port, path, proc, timeout=15.0):
    """Polls GET path until it answers 200; returns the seconds since now."""
    t0 = time.monotonic()
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("exited with status %d" % proc.returncode)
        try:
            st, _, _ = http_request(port, "GET", path, timeout=2, host_header="127.0.0.1:%d" % port)
            if st == 200:
                return time.monotonic() - t0
        except (OSError, ValueError):
            pass
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("no 200 from port %d within %.0f s" % (port, timeout))
        time.sleep(0.002)


# -- configs ---------------------------------------------------------------------------------

NGINX_COMMON = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/{name}.pid;
error_log {dir}/{name}.error.log warn;
events {{ worker_connections {conns}; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/{name}-tmp/body;
    proxy_temp_path {dir}/{name}-tmp/proxy;
    fastcgi_temp_path {dir}/{name}-tmp/fastcgi;
    uwsgi_temp_path {dir}/{name}-tmp/uwsgi;
    scgi_temp_path {dir}/{name}-tmp/scgi;
{body}
}}
"""


def nginx_upstream_conf(d, port):
    body = """    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/www;
        location / {{ }}
        location = /v1/traces {{ return 200; }}
    }}""".format(port=port, dir=d)
    return NGINX_COMMON.format(dir=d, name="upstream", body=body, conns=8192)


def nginx_proxy_conf(d, port, up, name="nginx", conns=8192):
    body = """    upstream backend {{
        server 127.0.0.1:{up};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""".format(port=port, up=up)
    return NGINX_COMMON.format(dir=d, name=name, body=body, conns=conns)


def haproxy_conf(port, up, maxconn=4096):
    # no strict-limits: a container's hard descriptor limit may be below the 2 × maxconn that
    # HAProxy reserves; it then runs with a warning instead of refusing to start.
    return """global
    nbthread 1
    maxconn {maxconn}
    no strict-limits

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    server up 127.0.0.1:{up} maxconn 1000
""".format(port=port, up=up, maxconn=maxconn)


def start_nginx(d, name, conf, cpu):
    os.makedirs(os.path.join(d, name + "-tmp"), exist_ok=True)
    path = os.path.join(d, name + ".conf")
    with open(path, "w") as f:
        f.write(conf)
    return spawn(pinned(cpu, ["nginx", "-e", os.path.join(d, name + ".error.log"), "-p", d, "-c", path]), d, name)


def start_haproxy(d, port, up, name="haproxy", maxconn=4096):
    path = os.path.join(d, name + ".cfg")
    with open(path, "w") as f:
        f.write(haproxy_conf(port, up, maxconn))
    return spawn(pinned(PROXY_CPU, ["haproxy", "-db", "-f", path]), d, name)


# -- measurements ----------------------------------------------------------------------------

class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except (OSError, ValueError):
                return
            self.done.wait(0.1)

    def stop(self):
        self.done.set()
        self.join()
        return self.peak


def parse_wrk(text):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["sock_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def run_wrk(port, path, pid, host=None):
    """wrk at saturation; with pid, also that process's CPU and peak RSS during the run."""
    sampler = None
    if pid:
        t0 = cpu_ticks(pid)
        sampler = RssSampler(pid)
        sampler.start()
    extra = ["-H", "Host: %s" % host] if host else []
    out = subprocess.run(pinned(LOAD_CPU, ["wrk", "-t1", "-c50", "-d%ds" % DURATION] + extra +
                                          ["http://127.0.0.1:%d%s" % (port, path)]),
                         capture_output=True, text=True, timeout=DURATION + 60)
    r = parse_wrk(out.stdout)
    if pid:
        r["cpu_s"] = (cpu_ticks(pid) - t0) / CLOCK_TICKS
        r["rss_peak_kb"] = sampler.stop()
    if r["rps"] is None:
        raise RuntimeError("wrk failed: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
    return r


def run_rate(ratecli, port, path):
    out = subprocess.run(pinned(LOAD_CPU, [ratecli, "127.0.0.1", str(port), path, str(RATE),
                                           str(RATE_CONNS), str(RATE_SECONDS), "1"]),
                         capture_output=True, text=True, timeout=RATE_SECONDS + 60)
    try:
        return json.loads(out.stdout)
    except ValueError:
        raise RuntimeError("ratecli failed (%d): %s %s" % (out.returncode, out.stdout[-300:], out.stderr[-300:]))


def build_ratecli(d):
    exe = os.path.join(d, "ratecli")
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-o", exe, os.path.join(HERE, "ratecli.c")], check=True)
    return exe


def build_relaycli(d):
    exe = os.path.join(d, "relaycli")
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-pthread", "-o", exe,
                    os.path.join(HERE, "relaycli.c")], check=True)
    return exe


CHAOS_PATHS = [("direct", "direct (no proxy)"), ("tcp", "Gateway TCP route (relay, no L4 filter)"),
               ("plain", "chaos proxy, no toxic"),
               ("idle", "chaos proxy, a latency toxic at toxicity 0"),
               ("haproxy", "HAProxy, TCP mode"),
               ("copy", "simplest relay: blocking read/write, a thread per direction"),
               ("splice", "simplest relay, zero-copy: splice(2) through a pipe")]
# Where each process runs. A relayed round trip wakes two processes more than a direct one, and
# on a VM a wakeup across CPUs (an IPI to a vCPU that may be descheduled by the host) costs
# tens of µs, so the placement decides much of what is measured; each layout is reported.
CHAOS_LAYOUTS = [("one", "all on CPU %s" % LOAD_CPU, LOAD_CPU, LOAD_CPU),
                 ("split", "proxy on CPU %s, echo server and client on CPU %s"
                  % (PROXY_CPU, LOAD_CPU), PROXY_CPU, LOAD_CPU),
                 ("free", "unpinned", None, None)]
CHAOS_LOOP_SECONDS = 2
CHAOS_PINGS = 5000


def set_affinity(pid, cpu):
    """Pins every thread of pid on cpu (None: all CPUs); threads made later inherit it."""
    cpus = set(range(NCPU)) if cpu is None else {int(cpu)}
    for tid in os.listdir("/proc/%d/task" % pid):
        os.sched_setaffinity(int(tid), cpus)


def chaos_relay(d):
    """The TCP relay beside a direct connection to a C echo server (tests/bench/relaycli.c) and
    beside HAProxy in TCP mode: payload MB/s of a 64 KiB write-and-read-back loop on one
    connection, the proxy's CPU time per 64 KiB round trip, and 1-byte round trips, in each of
    CHAOS_LAYOUTS (the processes are re-pinned between layouts). Medians and ranges over ROUNDS
    interleaved rounds."""
    exe = build_relaycli(d)
    echo = subprocess.Popen([exe, "echo"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    PROCS.append(echo)
    echo_port = int(echo.stdout.readline())
    api_port = free_port()
    # A Gateway TCP route to the same echo server: the relay without any L4 filter.
    docs = simple_config(http_port=free_port(), upstream_port=echo_port, tcp_port=free_port(),
                         tcp_upstream_port=echo_port)
    p = Petrel(os.path.join(d, "chaos"), docs, concurrency=1,
               proxy_spec={"chaosApi": {"port": api_port}, "accessLog": ""})
    p.start()
    PROCS.append(p.proc)
    haproxy_port = free_port()
    cfg = os.path.join(d, "haproxy-tcp.cfg")
    with open(cfg, "w") as f:
        f.write("global\n    nbthread 1\n    no strict-limits\n\ndefaults\n    mode tcp\n"
                "    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n"
                "listen relay\n    bind 127.0.0.1:%d\n    server echo 127.0.0.1:%d\n"
                % (haproxy_port, echo_port))
    haproxy = spawn(["haproxy", "-db", "-f", cfg], d, "haproxy-tcp")
    # The floor for any relay: relaycli's own, with no event loop (a copy through user space,
    # or none).
    floors = {}
    for how in ("copy", "splice"):
        floors[how] = subprocess.Popen([exe, "relay", str(echo_port), how],
                                       stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        PROCS.append(floors[how])

    def api(path, body):
        status, _, out = http_request(api_port, "POST", path, body=json.dumps(body).encode(),
                                      host_header="127.0.0.1")
        if status not in (200, 201):
            raise RuntimeError("chaos API %s: %d %r" % (path, status, out[:200]))
        return json.loads(out)

    ports = {"direct": echo_port, "tcp": p.tcp_port, "haproxy": haproxy_port}
    proxy_pid = {"tcp": p.proc.pid, "plain": p.proc.pid, "idle": p.proc.pid,
                 "haproxy": haproxy.pid}
    for how, proc in floors.items():
        ports[how] = int(proc.stdout.readline())
        proxy_pid[how] = proc.pid
    for name in ("plain", "idle"):
        made = api("/proxies", {"name": name, "listen": "127.0.0.1:0",
                                "upstream": "127.0.0.1:%d" % echo_port})
        ports[name] = int(made["listen"].rsplit(":", 1)[1])
    api("/proxies/idle/toxics", {"type": "latency", "toxicity": 0, "attributes": {"latency": 100}})
    wait_for_port(haproxy_port)
    raw = {lay: {k: {"mbps": [], "cpu": [], "p50": [], "p99": []} for k, _ in CHAOS_PATHS}
           for lay, _, _, _ in CHAOS_LAYOUTS}
    for _ in range(ROUNDS):
        for lay, _, proxy_cpu, load_cpu in CHAOS_LAYOUTS:
            for pid in set(proxy_pid.values()):
                set_affinity(pid, proxy_cpu)
            set_affinity(echo.pid, load_cpu)

            def client(argv):
                argv = [exe] + argv
                return subprocess.run(argv if load_cpu is None else pinned(load_cpu, argv),
                                      capture_output=True, text=True, timeout=30,
                                      check=True).stdout.split()

            for key, _ in CHAOS_PATHS:
                pid = proxy_pid.get(key)
                ticks = cpu_ticks(pid) if pid else 0
                mbps = float(client(["loop", str(ports[key]), str(CHAOS_LOOP_SECONDS)])[1])
                r = raw[lay][key]
                r["mbps"].append(mbps)
                if pid:
                    trips = mbps * 1e6 * CHAOS_LOOP_SECONDS / 65536
                    r["cpu"].append((cpu_ticks(pid) - ticks) / CLOCK_TICKS * 1e6 / trips)
                f = client(["ping", str(ports[key]), str(CHAOS_PINGS)])
                r["p50"].append(float(f[1]))
                r["p99"].append(float(f[3]))
    p.stop()
    return raw


def chaos_report(raw):
    lines = ["", "TCP relay (proxy/relay.c: Gateway TCP routes, TLS, upgrades, chaos proxies; "
             "docs/chaos.md) beside a direct connection to a C echo server "
             "(tests/bench/relaycli.c) and beside HAProxy in TCP mode, the proxies with one "
             "worker: payload MB/s of a loop writing 64 KiB and reading it back on one "
             "connection for %d s, the proxy's CPU time per 64 KiB round trip, and %d round "
             "trips of 1 byte. Median of %d rounds, [min–max] beside:" % (
                 CHAOS_LOOP_SECONDS, CHAOS_PINGS, len(raw["one"]["direct"]["mbps"]))]

    def spread(xs, fmt):
        return ("%s [%s–%s]" % (fmt, fmt, fmt)).format(median(xs), min(xs), max(xs))

    for lay, label, _, _ in CHAOS_LAYOUTS:
        d = raw[lay]["direct"]
        lines += ["", label[0].upper() + label[1:] + ":", "",
                  "| path | MB/s, 64 KiB loop | × direct | proxy CPU µs / round trip | p50 µs "
                  "| added p50 µs | p99 µs |", "|---|---:|---:|---:|---:|---:|---:|"]
        for key, name in CHAOS_PATHS:
            c = raw[lay][key]
            lines.append("| %s | %s | %.2f× | %s | %s | %s | %.1f |" % (
                name, spread(c["mbps"], "{:,.0f}"), median(c["mbps"]) / median(d["mbps"]),
                spread(c["cpu"], "{:.1f}") if c["cpu"] else "–", spread(c["p50"], "{:.1f}"),
                "–" if key == "direct" else "%+.1f" % (median(c["p50"]) - median(d["p50"])),
                median(c["p99"])))
    return lines


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def version(argv, pattern):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            m = re.search(pattern, p.stdout + p.stderr)
            return m.group(1) if m else "?"
        except OSError:
            return "?"

    return {
        "nproc": NCPU, "cpu": model, "kernel": platform.release(),
        "haproxy": version(["haproxy", "-v"], r"version (\S+)"),
        "nginx": version(["nginx", "-v"], r"nginx/(\S+)"),
        "wrk": version(["wrk", "--version"], r"wrk (\S+)"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": "%.2f %.2f %.2f" % os.getloadavg(),
    }


# -- routing scale ---------------------------------------------------------------------------

SCALE_ROUTES = (1, 10000)


def routes_config(http_port, up_port, n):
    """n VirtualServices, one host each (h0.bench.local ...), all to the upstream, besides
    simple_config's catch-all "*" one."""
    docs = simple_config(http_port, up_port)
    gateway, catch_all, se = docs[0], docs[1], docs[2]
    vss = [{"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "r%d" % i},
            "spec": {"hosts": ["h%d.bench.local" % i], "gateways": ["edge"],
                     "http": [{"match": [{"uri": {"prefix": "/"}}],
                               "route": [{"destination": {"host": "web.local",
                                                          "port": {"number": 80}}}]}]}}
           for i in range(n)]
    return [gateway] + vss + [catch_all, se]


def routing_scale(d, up_port):
    """Compile time of a config with 10,000 routes (petrel validate, wall clock, against the
    same with one route), and saturation req/s and CPU per request through Petrel with 1 and
    10,000 routes, asking for the last host, interleaved over the rounds."""
    res = {}
    runs = {}
    for n in SCALE_ROUTES:
        port = free_port()
        p = Petrel(os.path.join(d, "scale%d" % n), routes_config(port, up_port, n), concurrency=1,
                   command_prefix=["taskset", "-c", PROXY_CPU])
        times, parse, compile_ = [], [], []
        for _ in range(5):
            t0 = time.monotonic()
            r = subprocess.run([p.binary, "validate", p.config_dir], check=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            times.append((time.monotonic() - t0) * 1000)
            # "(parsed in X ms, checked and compiled in Y ms)"
            m = re.search(r"parsed in ([0-9.]+) ms, checked and compiled in ([0-9.]+) ms", r.stdout)
            parse.append(float(m.group(1)))
            compile_.append(float(m.group(2)))
        res[n] = {"validate_ms": median(times), "parse_ms": median(parse),
                  "compile_ms": median(compile_), "rps": [], "cpu": []}
        p.start(wait=False)
        PROCS.append(p.proc)
        first_response(port, "/0b", p.proc)
        runs[n] = (p, port)
    for _ in range(ROUNDS):
        for n in SCALE_ROUTES:
            p, port = runs[n]
            w = run_wrk(port, "/0b", p.proc.pid, host="h%d.bench.local" % (n - 1))
            if w["non2xx"] or w["sock_errors"]:
                raise RuntimeError("%d routes: %d non-2xx, %d socket errors"
                                   % (n, w["non2xx"], w["sock_errors"]))
            res[n]["rps"].append(w["rps"])
            res[n]["cpu"].append(w["cpu_s"] * 1000 / (w["requests"] / 1000))
            log("routes %5d: %8.0f req/s, cpu %.1f ms/1k" % (n, w["rps"], res[n]["cpu"][-1]))
    for n in SCALE_ROUTES:
        runs[n][0].proc.terminate()
        res[n]["rps"] = median(res[n]["rps"])
        res[n]["cpu"] = median(res[n]["cpu"])
    return res


def petrel_variant(target, port, up_port):
    """(docs, proxy_spec) of a Petrel target. petrel: the plain route with Petrel's defaults
    (Istio metrics and the access log on); petrel_bare: the same with every per-request record
    off; petrel_telemetry: metrics and tracing at 1 % to an OTLP collector (the upstream nginx
    answers POST /v1/traces), no access log; petrel_policies: the plain route plus retries, a
    10 % mirror (to the same upstream under another name) and outlier detection."""
    docs = simple_config(port, up_port)
    if target == "petrel_bare":
        return docs, {"metrics": False, "accessLog": ""}
    if target == "petrel_telemetry":
        return docs, {"accessLog": "", "tracing": {
            "sampling": 1.0, "otlp": {"address": "127.0.0.1:%d" % up_port}}}
    if target == "petrel_policies":
        docs = simple_config(port, up_port, http_route={
            "retries": {"attempts": 2, "retryOn": "5xx,connect-failure"},
            "mirror": {"host": "mirror.local", "port": {"number": 80}},
            "mirrorPercentage": {"value": 10}})
        docs.append(service_entry_doc("mirror.local", up_port, name="mirror"))
        docs.append({"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "web"},
                     "spec": {"host": "web.local", "trafficPolicy": {"outlierDetection": {
                         "consecutive5xxErrors": 5, "interval": "10s",
                         "baseEjectionTime": "30s"}}}})
    return docs, {}


def tls_certificate(d):
    """One self-signed P-256 certificate for every proxy, made once per run: (cert, key,
    haproxy's cert+key)."""
    crt, key, both = (os.path.join(d, n) for n in ("tls.crt", "tls.key", "tls.pem"))
    if os.path.exists(both):
        return crt, key, both
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=bench.local",
                    "-addext", "subjectAltName=DNS:bench.local", "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=30)
    with open(both, "w") as f:
        f.write(open(crt).read() + open(key).read())
    return crt, key, both


def tls_termination(d, up_port):
    """TLS termination, Petrel (Gateway HTTPS) beside HAProxy (`bind ... ssl crt`) with the same
    certificate: requests/s over keep-alive TLS connections, and new handshakes/s (every request
    on a new connection, `Connection: close`), interleaved over the rounds."""
    crt, key, both = tls_certificate(d)
    procs, ports = {}, {}
    port = free_port()
    docs = simple_config(port, up_port)
    docs[0]["spec"]["servers"][0]["port"]["protocol"] = "HTTPS"
    docs[0]["spec"]["servers"][0]["tls"] = {"serverCertificate": crt, "privateKey": key}
    p = Petrel(os.path.join(d, "petrel-tls"), docs, concurrency=1,
               command_prefix=["taskset", "-c", PROXY_CPU])
    p.start(wait=False)
    PROCS.append(p.proc)
    procs["petrel"], ports["petrel"] = p.proc, port
    port = free_port()
    cfg = os.path.join(d, "haproxy-tls.cfg")
    with open(cfg, "w") as f:
        f.write(haproxy_conf(port, up_port).replace(
            "bind 127.0.0.1:%d" % port, "bind 127.0.0.1:%d ssl crt %s alpn http/1.1" % (port, both)))
    procs["haproxy"] = spawn(pinned(PROXY_CPU, ["haproxy", "-db", "-f", cfg]), d, "haproxy-tls")
    ports["haproxy"] = port
    for t in procs:
        deadline = time.monotonic() + 15
        while subprocess.run(["curl", "-sk", "-o", "/dev/null", "--max-time", "2",
                              "https://127.0.0.1:%d/0b" % ports[t]]).returncode != 0:
            if time.monotonic() > deadline or procs[t].poll() is not None:
                raise RuntimeError("%s: no HTTPS answer" % t)
            time.sleep(0.1)
    res = {t: {"rps": [], "hs": [], "cpu": []} for t in procs}
    for _ in range(ROUNDS):
        for t in procs:
            url = "https://127.0.0.1:%d/0b" % ports[t]
            w = run_wrk_url(url, procs[t].pid)
            h = run_wrk_url(url, procs[t].pid, ["-H", "Connection: close"])
            for r in (w, h):
                if r["non2xx"] or r["sock_errors"]:
                    raise RuntimeError("%s over TLS: %d non-2xx, %d socket errors"
                                       % (t, r["non2xx"], r["sock_errors"]))
            res[t]["rps"].append(w["rps"])
            res[t]["hs"].append(h["rps"])
            res[t]["cpu"].append(w["cpu_s"] * 1000 / (w["requests"] / 1000))
            log("tls %-8s %8.0f req/s keep-alive, %7.0f handshakes/s" % (t, w["rps"], h["rps"]))
    for t in procs:
        procs[t].terminate()
    return {t: {k: median(v) for k, v in m.items()} for t, m in res.items()}


def run_wrk_url(url, pid, extra=()):
    """wrk at saturation on a full URL (https), with that process's CPU during the run."""
    c0 = cpu_ticks(pid)
    out = subprocess.run(pinned(LOAD_CPU, ["wrk", "-t1", "-c50", "-d%ds" % DURATION] + list(extra) +
                                [url]), capture_output=True, text=True, timeout=DURATION + 60)
    r = parse_wrk(out.stdout)
    r["cpu_s"] = (cpu_ticks(pid) - c0) / CLOCK_TICKS
    if "rps" not in r:
        raise RuntimeError("wrk failed: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
    return r


# -- HTTP/2 ------------------------------------------------------------------------------------

# h2load's load at saturation (connections × concurrent streams) and at the fixed rate (RATE
# spread over the same connections: --rps is per connection).
H2_CONNS = 10
H2_STREAMS = 10
H2_IDLE_CONNS = int(os.environ.get("BENCH_H2_IDLE_CONNS", "2000"))
H2_IDLE_TIMEOUT = 120
H2_READY_TIMEOUT = 15
# A gRPC unary call as h2load sends it: a pre-framed protobuf body (RFC-less gRPC framing: one
# byte compressed flag, four bytes length, then the message; here field 1, a 2-byte string).
GRPC_PATH = "/bench.Echo/Unary"
GRPC_REQUEST = b"\x00\x00\x00\x00\x04\x0a\x02yo"
GRPC_REPLY = b"\x0a\x02hi"  # the message the origin answers, unframed
H2_CASES = [
    # key, label, URL scheme, path
    ("h2c", "h2c (prior knowledge), 0 B", "http", "/0b"),
    ("h2tls", "h2 over TLS (ALPN), 0 B", "https", "/0b"),
    ("grpc", "gRPC unary over h2c", "http", GRPC_PATH),
    # The upstream codec alone: an HTTP/1.1 client (its direct row: the HTTP/1 upstream).
    ("h1_h2c", "HTTP/1.1 client, h2c upstream, 0 B", "http", "/0b"),
]
# petrel_nolog: Petrel without its access log, the work HAProxy and nginx do here (neither
# logs in this bench; all three keep their counters).
H2_TARGETS = ["direct", "petrel", "petrel_nolog", "haproxy", "nginx"]
# What each proxy speaks to the upstream in each case (nginx proxies HTTP/2 only to gRPC
# upstreams, grpc_pass; proxy_pass speaks HTTP/1.x).
H2_UPSTREAM = {"petrel": {"h2c": "h2c", "h2tls": "h2c", "grpc": "h2c", "h1_h2c": "h2c"},
               "petrel_nolog": {"h2c": "h2c", "h2tls": "h2c", "grpc": "h2c", "h1_h2c": "h2c"},
               "haproxy": {"h2c": "h2c", "h2tls": "h2c", "grpc": "h2c", "h1_h2c": "h2c"},
               "nginx": {"h2c": "HTTP/1.1", "h2tls": "HTTP/1.1", "grpc": "h2c (grpc_pass)",
                         "h1_h2c": "–"}}
H2_SKIP = {("h1_h2c", "nginx"): "nginx's proxy_pass speaks only HTTP/1.x to an upstream",
           # RFC 9112 allows the empty reason phrase; h2load's parser does not.
           ("h1_h2c", "haproxy"): "HAProxy answers an HTTP/1.1 client with `HTTP/1.1 200 ` (no "
                                  "reason phrase) for an HTTP/2 upstream, and h2load --h1 counts "
                                  "every such response as failed"}


def h2_origin_conf(d, h2c_port, tls_port, crt, key):
    """The HTTP/2 origin: nginx serving h2c with prior knowledge (a cleartext `http2` listener
    in nginx 1.22 speaks only that) and h2 over TLS, the 0 B file, and a gRPC unary method
    answered from a file: the framed reply, `content-type: application/grpc` and the trailer
    `grpc-status: 0` (nginx serves a file to a POST through `error_page 405 =200`). The
    mirror makes it read the whole request before it answers, as a gRPC server does: answered
    early, it reset the stream whose request was still arriving, and nginx's grpc_pass failed
    the next request on that connection ("upstream sent frame for unknown stream")."""
    body = """    server {{
        listen 127.0.0.1:{h2c} http2 backlog=4096;
        listen 127.0.0.1:{tls} ssl http2 backlog=4096;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {dir}/www;
        location / {{ }}
        location {grpc_dir} {{
            types {{ }}
            default_type application/grpc;
            add_trailer grpc-status 0 always;
            error_page 405 =200 $uri;
            mirror /read-body;
            mirror_request_body on;
        }}
        location = /read-body {{
            internal;
            return 204;
        }}
    }}""".format(h2c=h2c_port, tls=tls_port, crt=crt, key=key, dir=d,
                 grpc_dir=GRPC_PATH.rsplit("/", 1)[0] + "/")
    return NGINX_COMMON.format(dir=d, name="h2-origin", body=body, conns=8192)


def nginx_h2_conf(d, h2c_port, tls_port, crt, key, up, origin, name="nginx-h2", conns=8192):
    """nginx taking HTTP/2 (h2c and TLS): proxy_pass over HTTP/1.1 to the HTTP/1 upstream,
    grpc_pass over h2c to the origin for the gRPC method."""
    body = """    upstream backend {{
        server 127.0.0.1:{up};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    upstream grpc_backend {{
        server 127.0.0.1:{origin};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{h2c} http2 backlog=4096;
        listen 127.0.0.1:{tls} ssl http2 backlog=4096;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location {grpc_dir} {{
            grpc_pass grpc://grpc_backend;
        }}
    }}""".format(up=up, origin=origin, h2c=h2c_port, tls=tls_port, crt=crt, key=key,
                 grpc_dir=GRPC_PATH.rsplit("/", 1)[0] + "/")
    return NGINX_COMMON.format(dir=d, name=name, body=body, conns=conns)


def haproxy_h2_conf(ports, pem, origin):
    """HAProxy taking h2c (`proto h2` on the bind line) and h2 over TLS (ALPN h2), and speaking
    h2c to the origin (`proto h2` on the server line)."""
    return """global
    nbthread 1
    maxconn 8192
    no strict-limits

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always

frontend fe_h2c
    bind 127.0.0.1:{h2c} proto h2
    default_backend be

frontend fe_tls
    bind 127.0.0.1:{tls} ssl crt {pem} alpn h2
    default_backend be

backend be
    server origin 127.0.0.1:{origin} proto h2 maxconn 1000
""".format(h2c=ports["h2c"], tls=ports["h2tls"], pem=pem, origin=origin)


def petrel_h2_docs(h2c_port, tls_port, crt, key, origin):
    """A Gateway HTTP server (h2c with prior knowledge) and an HTTPS one (ALPN h2), the gRPC
    method routed to a ServiceEntry of protocol GRPC and the rest to one of protocol HTTP2,
    both the origin."""
    docs = [gateway_doc([(h2c_port, "HTTP"), (tls_port, "HTTPS")])]
    docs[0]["spec"]["servers"][1]["tls"] = {"serverCertificate": crt, "privateKey": key}
    docs.append({"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "h2"},
                 "spec": {"hosts": ["*"], "gateways": ["edge"], "http": [
                     {"match": [{"uri": {"prefix": GRPC_PATH.rsplit("/", 1)[0] + "/"}}],
                      "route": [{"destination": {"host": "grpc.local", "port": {"number": 80}}}]},
                     {"route": [{"destination": {"host": "web-h2.local",
                                                 "port": {"number": 80}}}]}]}})
    docs.append(service_entry_doc("web-h2.local", origin, protocol="HTTP2"))
    docs.append(service_entry_doc("grpc.local", origin, protocol="GRPC"))
    return docs


def h2_probe(case, port):
    """None when the listener on port answers this case as it should, else why not: curl for
    h2c (prior knowledge), TLS (ALPN must choose h2) and HTTP/1.1 (the origin behind speaks
    only HTTP/2, so a 200 means the proxy spoke it), a real gRPC client (python3-grpcio, a raw
    unary call) for gRPC."""
    if case == "grpc":
        try:
            import grpc
        except ImportError:
            return "python3-grpcio is not installed"
        ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        try:
            call = ch.unary_unary(GRPC_PATH, request_serializer=None, response_deserializer=None)
            reply = call(GRPC_REQUEST[5:], timeout=2)
        except grpc.RpcError as e:
            return "gRPC call: %s %s" % (e.code().name, e.details())
        finally:
            ch.close()
        return None if reply == GRPC_REPLY else "gRPC call: reply %r" % reply
    scheme = "https" if case == "h2tls" else "http"
    flag, version = {"h2c": ("--http2-prior-knowledge", "2"), "h2tls": ("--http2", "2"),
                     "h1_h2c": ("--http1.1", "1.1")}[case]
    r = subprocess.run(["curl", "-sk", flag, "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "--max-time", "2", "%s://127.0.0.1:%d/0b" % (scheme, port)],
                       capture_output=True, text=True, timeout=10)
    if r.stdout == "200 " + version:
        return None
    if r.returncode:
        return "curl %s: exit %d (%s)" % (flag, r.returncode, r.stderr.strip()[-120:] or
                                          "no HTTP/2 answer")
    status, version = (r.stdout.split() + ["?", "?"])[:2]
    return "curl %s: status %s over HTTP/%s" % (flag, status, version)


def h2_wait(proc, ports, cases):
    """{case: None or the reason it fails} once every case answers, or at H2_READY_TIMEOUT,
    or when proc exits."""
    deadline = time.monotonic() + H2_READY_TIMEOUT
    while True:
        why = {case: h2_probe(case, ports[case]) for case in cases}
        if not any(why.values()):
            return why
        if proc is not None and proc.poll() is not None:
            return {case: "exited with status %d" % proc.returncode for case in why}
        if time.monotonic() > deadline:
            return why
        time.sleep(0.1)


def parse_h2load(text):
    r = {"rps": None, "requests": 0, "bad": 0, "proto": None}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    if m:
        r["requests"] = int(m.group(1))
        r["bad"] = sum(int(x) for x in m.groups()[1:])
    m = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        r["bad"] += sum(int(x) for x in m.groups())
    m = re.search(r"Application protocol: (\S+)", text)
    if m:
        r["proto"] = m.group(1)
    return r


def run_h2load(case, port, pid, d, rate=False):
    """h2load on one case: at saturation (H2_CONNS connections × H2_STREAMS streams, or
    50 HTTP/1.1 connections, for DURATION s), or at RATE req/s (--rps per connection, 1 s warm-up, RATE_SECONDS s) with
    p50/p99 from its per-request log. With pid, that process's CPU during the run."""
    _, _, scheme, path = next(c for c in H2_CASES if c[0] == case)
    # An HTTP/1.1 client gets wrk's load at saturation (50 connections) and ratecli's at the
    # fixed rate, one request at a time on each connection.
    h1 = case == "h1_h2c"
    conns = 50 if h1 and not rate else H2_CONNS
    argv = ["h2load", "-t1", "-c%d" % conns, "-m%d" % (1 if h1 else H2_STREAMS)]
    if h1:
        argv.append("--h1")
    if case == "grpc":
        body = os.path.join(d, "grpc-request.bin")
        with open(body, "wb") as f:
            f.write(GRPC_REQUEST)
        argv += ["-d", body, "-H", "te: trailers", "-H", "content-type: application/grpc"]
    log_file = os.path.join(d, "h2load-latency.log")
    if rate:  # --rps is per connection
        argv += ["--rps=%g" % (RATE / H2_CONNS), "--warm-up-time=1", "-D", str(RATE_SECONDS),
                 "--log-file=" + log_file]
    else:
        argv += ["-D", str(DURATION)]
    t0 = cpu_ticks(pid) if pid else 0
    out = subprocess.run(pinned(LOAD_CPU, argv + ["%s://127.0.0.1:%d%s" % (scheme, port, path)]),
                         capture_output=True, text=True, timeout=max(DURATION, RATE_SECONDS) + 60)
    r = parse_h2load(out.stdout)
    if r["rps"] is None or not r["requests"]:
        raise RuntimeError("h2load failed (%d): %s %s" % (out.returncode, out.stdout[-300:],
                                                          out.stderr[-300:]))
    want = ("http/1.1",) if h1 else ("h2", "h2c")
    if r["proto"] not in want:
        raise RuntimeError("h2load spoke %s, not %s" % (r["proto"], want[0]))
    if pid:
        r["cpu_ms_per_1k"] = (cpu_ticks(pid) - t0) / CLOCK_TICKS * 1000 / (r["requests"] / 1000)
    if rate:
        with open(log_file) as f:  # start µs, status, µs to the end of the response
            lat = sorted(int(line.split()[2]) for line in f if line.strip())
        r["p50_ms"] = lat[len(lat) // 2] / 1000
        r["p99_ms"] = lat[min(len(lat) - 1, len(lat) * 99 // 100)] / 1000
    return r


def open_idle_h2(port, n, deadline):
    """n HTTP/2 connections (h2c, prior knowledge; python3-h2) opened one after another, each
    with one GET whose stream has ended before the next opens; returns them open and idle."""
    import h2.config
    import h2.connection
    import h2.events
    socks = []
    try:
        for i in range(n):
            if time.monotonic() > deadline:
                raise RuntimeError("only %d of %d connections within the time" % (i, n))
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            c.initiate_connection()
            c.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                               (":authority", "bench.local"), (":path", "/0b")], end_stream=True)
            s.sendall(c.data_to_send())
            status, ended = None, False
            while not ended:
                data = s.recv(65536)
                if not data:
                    raise RuntimeError("connection %d closed before its response" % i)
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = dict(ev.headers).get(b":status")
                    elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                        raise RuntimeError("connection %d: %s" % (i, ev))
                    elif isinstance(ev, h2.events.StreamEnded):
                        ended = True
                s.sendall(c.data_to_send())  # SETTINGS ACK, WINDOW_UPDATEs
            if status != b"200":
                raise RuntimeError("connection %d: status %s" % (i, status))
    except (OSError, ValueError, RuntimeError) as e:
        close_all(socks)
        raise RuntimeError("HTTP/2 connection %d of %d: %s" % (len(socks), n, e))
    return socks


def h2_ports():
    """{case: port} of a new proxy instance: gRPC shares the
    h2c listener, and so does HTTP/1.1 (a Gateway HTTP server takes both)."""
    ports = {"h2c": free_port(), "h2tls": free_port()}
    ports["grpc"] = ports["h1_h2c"] = ports["h2c"]
    return ports


def h2_start(t, d, ports, origin, up_port, crt, key, pem):
    """Target t (petrel, haproxy, nginx) on ports (h2_ports), pinned to PROXY_CPU: its
    process, or a RuntimeError with the reason."""
    if t in ("petrel", "petrel_nolog"):
        p = Petrel(tempfile.mkdtemp(prefix="petrel-h2-", dir=d),
                   petrel_h2_docs(ports["h2c"], ports["h2tls"], crt, key, origin), concurrency=1,
                   proxy_spec={"accessLog": ""} if t == "petrel_nolog" else None,
                   command_prefix=["taskset", "-c", PROXY_CPU])
        p.start(wait=False)
        PROCS.append(p.proc)
        try:
            p.wait_ready()
        except AssertionError as e:
            raise RuntimeError(str(e).splitlines()[0])
        return p.proc
    if t == "haproxy":
        cfg = os.path.join(d, "haproxy-h2.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_h2_conf(ports, pem, origin))
        return spawn(pinned(PROXY_CPU, ["haproxy", "-db", "-f", cfg]), d, "haproxy-h2")
    name = "nginx-h2-%d" % ports["h2c"]
    return start_nginx(d, name, nginx_h2_conf(d, ports["h2c"], ports["h2tls"], crt, key, up_port,
                                              origin, name=name), PROXY_CPU)


def h2_origin(d):
    """The HTTP/2 origin (h2_origin_conf) started on CPU LOAD_CPU with the gRPC method's reply
    in place: (crt, key, pem, h2c port, TLS port, its process)."""
    crt, key, pem = tls_certificate(d)
    origin, origin_tls = free_port(), free_port()
    www = os.path.join(d, "www", GRPC_PATH.strip("/").rsplit("/", 1)[0])
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(d, "www", GRPC_PATH.strip("/")), "wb") as f:
        f.write(struct.pack(">BI", 0, len(GRPC_REPLY)) + GRPC_REPLY)
    proc = start_nginx(d, "h2-origin", h2_origin_conf(d, origin, origin_tls, crt, key), LOAD_CPU)
    return crt, key, pem, origin, origin_tls, proc


# BENCH_CALLGRIND=1: requests per case under callgrind (slow: about 1,000 req/s).
CALLGRIND_N = int(os.environ.get("BENCH_CALLGRIND_N", "5000"))
CALLGRIND_CASES = ("h1", "h2c", "h2tls", "grpc")
CALLGRIND_H1 = "HTTP/1.1 keep-alive, 0 B (the main table's config, `h2load --h1 -c50`)"


def callgrind_ir(path):
    """The total instructions (Ir) a callgrind output file counted."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("%s has no total" % path)


def callgrind_load(d, case, port):
    """CALLGRIND_N requests of case (h1 or an H2_CASES case) to port, every one answered."""
    h1 = case == "h1"
    _, _, scheme, path = ("h1", "", "http", "/0b") if h1 else next(
        c for c in H2_CASES if c[0] == case)
    argv = (["h2load", "--h1", "-t1", "-c50", "-m1"] if h1 else
            ["h2load", "-t1", "-c%d" % H2_CONNS, "-m%d" % H2_STREAMS])
    argv += ["-n", str(CALLGRIND_N)]
    if case == "grpc":
        body = os.path.join(d, "grpc-request.bin")
        with open(body, "wb") as f:
            f.write(GRPC_REQUEST)
        argv += ["-d", body, "-H", "te: trailers", "-H", "content-type: application/grpc"]
    r = parse_h2load(subprocess.run(argv + ["%s://127.0.0.1:%d%s" % (scheme, port, path)],
                                    capture_output=True, text=True, timeout=900).stdout)
    if r["requests"] != CALLGRIND_N or r["bad"]:
        raise RuntimeError("%s: %d of %d requests succeeded" % (case, r["requests"], CALLGRIND_N))


def instructions(d, up_port, base_bin):
    """User-space instructions per request of Petrel's worker thread (callgrind, counted only
    inside worker_main) for HTTP/1.1 on the main table's config and the HTTP/2 cases at h2load
    -c10 -m10, CALLGRIND_N requests each: this Petrel, the base when there is one, and HAProxy
    (its one thread, counted from when it answers to the end of the load) for the HTTP/2
    cases. Unlike CPU time, the count does not move with what else the machine runs, so a
    change of a few percent shows on a noisy VM. {case: {target: Ir}}."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind not found (Debian: valgrind)")
    crt, key, pem, origin, _, origin_proc = h2_origin(d)
    bins = [("petrel", petrel_bin())] + ([("petrel_base", base_bin)] if base_bin else [])
    out = {}
    try:
        for case in CALLGRIND_CASES:
            h1 = case == "h1"
            for t, binary in bins + ([] if h1 else [("haproxy", None)]):
                ports = h2_ports()
                cg = os.path.join(d, "callgrind.%s.%s" % (t, case))
                valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg]
                if t == "haproxy":
                    cfg = os.path.join(d, "haproxy-cg.cfg")
                    with open(cfg, "w") as f:
                        f.write(haproxy_h2_conf(ports, pem, origin))
                    proc = spawn(valgrind + ["haproxy", "-db", "-f", cfg], d, "haproxy-cg")
                    try:
                        why = h2_wait(proc, ports, [case])[case]
                        if why:
                            raise RuntimeError("HAProxy %s: %s" % (case, why))
                        # counted from here: the start and the probes are left out
                        subprocess.run(["callgrind_control", "-z", str(proc.pid)],
                                       capture_output=True, timeout=60)
                        callgrind_load(d, case, ports[case])
                        subprocess.run(["callgrind_control", "-d", str(proc.pid)],
                                       capture_output=True, timeout=60)
                    finally:
                        stop(proc)
                    cg += ".1"  # the dump's file
                else:
                    docs, spec = (petrel_variant("petrel", ports["h2c"], up_port) if h1 else
                                  (petrel_h2_docs(ports["h2c"], ports["h2tls"], crt, key, origin),
                                   None))
                    p = Petrel(tempfile.mkdtemp(prefix="petrel-cg-", dir=d), docs, concurrency=1,
                               proxy_spec=spec, binary=binary,
                               command_prefix=valgrind + ["--collect-atstart=no",
                                                          "--toggle-collect=worker_main"])
                    p.start(wait=False)
                    PROCS.append(p.proc)
                    try:
                        p.wait_ready(timeout=120)
                        callgrind_load(d, case, ports["h2c" if h1 else case])
                    finally:
                        p.stop(timeout=60)  # callgrind writes its file as the process exits
                out.setdefault(case, {})[t] = callgrind_ir(cg) / CALLGRIND_N
                log("callgrind %-5s %-12s %8.0f instructions per request" % (
                    case, t, out[case][t]))
    finally:
        stop(origin_proc)
    return out


def instructions_report(ir):
    lines = ["", "Instructions per request (`BENCH_CALLGRIND=1`): callgrind on Petrel's worker "
             "thread (`--toggle-collect=worker_main`, user space only) under `h2load -c%d -m%d "
             "-n%d` through the HTTP/2 part's Petrel config (a Gateway with an h2c and an HTTPS "
             "server, routes to the HTTP/2 origin), HTTP/1.1 as noted; HAProxy (`nbthread 1`, "
             "the HTTP/2 part's config) counted on its thread from its first answer "
             "(`callgrind_control -z`) to the end of the same load, HTTP/2 cases only; a count "
             "that the machine's other load does not move:" % (H2_CONNS, H2_STREAMS, CALLGRIND_N),
             ""]
    has_base = any("petrel_base" in v for v in ir.values())
    lines += ["| | this Petrel |" + (" the base | this × the base |" if has_base else "") +
              " HAProxy | this × HAProxy |",
              "|---|---:|" + ("---:|---:|" if has_base else "") + "---:|---:|"]
    for case in CALLGRIND_CASES:
        if case not in ir:
            continue
        label = CALLGRIND_H1 if case == "h1" else next(c[1] for c in H2_CASES if c[0] == case)
        row = "| %s | %s |" % (label, "{:,.0f}".format(ir[case]["petrel"]))
        if has_base and "petrel_base" in ir[case]:
            row += " %s | %.2f× |" % ("{:,.0f}".format(ir[case]["petrel_base"]),
                                      ir[case]["petrel"] / ir[case]["petrel_base"])
        elif has_base:
            row += " – | – |"
        if "haproxy" in ir[case]:
            row += " %s | %.2f× |" % ("{:,.0f}".format(ir[case]["haproxy"]),
                                      ir[case]["petrel"] / ir[case]["haproxy"])
        else:
            row += " – | – |"
        lines.append(row)
    return lines


def http2_part(d, up_port):
    """HTTP/2 through Petrel, HAProxy (`proto h2` both sides) and nginx (HTTP/1.1 or
    grpc_pass to the upstream), beside a direct connection to the origin (to the HTTP/1
    upstream for the HTTP/1.1 client): for each of H2_CASES,
    requests/s at saturation and CPU per 1000 requests (h2load), p50/p99 at RATE req/s, over
    ROUNDS interleaved rounds; then bytes of RSS per idle HTTP/2 connection on a fresh
    instance of each proxy. A target or case that does not answer HTTP/2 as it should is
    reported as not run, with the reason; the others still run."""
    if shutil.which("h2load") is None:
        raise RuntimeError("h2load not found (Debian: nghttp2-client)")
    crt, key, pem, origin, origin_tls, origin_proc = h2_origin(d)
    res = {"not_run": {}, "raw": {}, "idle": {}}
    procs, ports = {}, {}
    for t in H2_TARGETS:
        if t == "direct":
            procs[t], ports[t] = origin_proc, {"h2c": origin, "h2tls": origin_tls, "grpc": origin,
                                               "h1_h2c": up_port}
        else:
            ports[t] = h2_ports()
            try:
                procs[t] = h2_start(t, d, ports[t], origin, up_port, crt, key, pem)
            except (RuntimeError, OSError) as e:
                for case, _, _, _ in H2_CASES:
                    res["not_run"][(case, t)] = str(e)
                continue
        res["not_run"].update((k, why) for k, why in H2_SKIP.items() if k[1] == t)
        why = h2_wait(procs[t], ports[t], [case for case, _, _, _ in H2_CASES
                                           if (case, t) not in H2_SKIP])
        for case, reason in why.items():
            if reason:
                res["not_run"][(case, t)] = reason
                log("http2 %s %s not run: %s" % (case, t, reason))
        if t == "direct" and any(why.values()):
            raise RuntimeError("the HTTP/2 origin does not answer: %s" % why)
    live = [(case, t) for case, _, _, _ in H2_CASES for t in H2_TARGETS
            if t in procs and (case, t) not in res["not_run"]]
    raw = {k: {"rps": [], "cpu_ms_per_1k": [], "p50_ms": [], "p99_ms": []} for k in live}
    for r in range(ROUNDS):
        for case, t in live:
            pid = procs[t].pid if t != "direct" else None
            try:
                w = run_h2load(case, ports[t][case], pid, d)
                lat = run_h2load(case, ports[t][case], None, d, rate=True)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                res["not_run"][(case, t)] = "round %d: %s" % (r + 1, e)
                log("http2 %s %s round %d failed: %s" % (case, t, r + 1, e))
                continue
            for x in (w, lat):
                if x["bad"]:
                    res["not_run"][(case, t)] = "round %d: %d requests failed or not 2xx" % (
                        r + 1, x["bad"])
            m = raw[(case, t)]
            m["rps"].append(w["rps"])
            if pid:
                m["cpu_ms_per_1k"].append(w["cpu_ms_per_1k"])
            m["p50_ms"].append(lat["p50_ms"])
            m["p99_ms"].append(lat["p99_ms"])
            log("round %d http2 %-5s %-8s %8.0f req/s  p50 %.3f ms p99 %.3f ms%s" % (
                r + 1, case, t, w["rps"], lat["p50_ms"], lat["p99_ms"],
                "  cpu %.1f ms/1k" % w["cpu_ms_per_1k"] if pid else ""))
    res["raw"] = {k: {m: median(v) for m, v in ms.items()} for k, ms in raw.items()
                  if k not in res["not_run"]}
    for t, p in procs.items():
        if t != "direct":
            stop(p)
    # Memory per idle HTTP/2 connection, each proxy fresh (nothing pooled or cached yet).
    for t in H2_TARGETS[1:]:
        if ("h2c", t) in res["not_run"] or t == "petrel_nolog":  # the log holds no memory
            continue
        fresh = h2_ports()
        try:
            proc = h2_start(t, d, fresh, origin, up_port, crt, key, pem)
            try:
                why = h2_wait(proc, fresh, ["h2c"])["h2c"]
                if why:
                    raise RuntimeError(why)
                before = settled_rss_kb(proc.pid)
                socks = open_idle_h2(fresh["h2c"], H2_IDLE_CONNS,
                                     time.monotonic() + H2_IDLE_TIMEOUT)
                try:
                    after = settled_rss_kb(proc.pid)
                    if proc.poll() is not None:
                        raise RuntimeError("exited with status %d" % proc.returncode)
                finally:
                    close_all(socks)
            finally:
                stop(proc)
        except (RuntimeError, OSError, ImportError) as e:
            res["idle"][t] = {"why": str(e)}
            log("http2 idle %s not measured: %s" % (t, e))
            continue
        res["idle"][t] = {"bytes": (after - before) * 1024 / H2_IDLE_CONNS, "before_kb": before,
                          "after_kb": after}
        log("http2 idle %-8s %d connections: RSS %d -> %d KiB, %.0f B per connection" % (
            t, H2_IDLE_CONNS, before, after, res["idle"][t]["bytes"]))
    stop(origin_proc)
    return res


# -- sidecar to sidecar ----------------------------------------------------------------------

# Two pods (network namespaces, tests/lib/netns.py) with Istio's traffic capture: the client in
# pod "a", nginx in pod "b". One nginx port per path, so the paths run side by side through the
# same two sidecars and the rounds interleave them.
MESH_PODS = {"a": "10.79.0.10", "b": "10.79.0.11"}
MESH_PATHS = [
    # key, label, port, service VIP (None: the client dials pod b itself, uncaptured)
    ("direct", "pod to pod, no sidecar", 9091, None),
    ("one_hop", "one sidecar (A's outbound), plaintext", 9090, "10.96.79.3"),
    ("plain", "two sidecars, plaintext (DISABLE)", 9081, "10.96.79.2"),
    ("mtls", "two sidecars, mTLS (ISTIO_MUTUAL, STRICT), HTTP/2 between them", 9080,
     "10.96.79.1"),
    ("mtls_h1", "two sidecars, mTLS, HTTP/1.1 between them (DO_NOT_UPGRADE)", 9082,
     "10.96.79.4"),
]
MESH_MTLS = ("mtls", "mtls_h1")
MESH_PROXY_UID = 1337
MESH_TIMEOUT = 30  # seconds for any one step of the set-up


def mesh_sidecar_docs(pod, d, identity):
    """The sidecar config of pod a (the client: a ServiceEntry per captured path, the mTLS one
    with DestinationRule ISTIO_MUTUAL, the others DISABLE) or pod b (the server: STRICT
    mesh-wide, DISABLE on the plaintext port by a workload policy's portLevelMtls). No access
    log (Istio's default); Istio's metrics on."""
    proxy = {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "sidecar"},
             "spec": {"adminPort": 15000, "concurrency": 1, "accessLog": "",
                      "prometheusPort": 0, "healthPort": 0,
                      "sidecar": {"protocolDetectionTimeout": "1s"},
                      "workload": {"name": "bench-" + pod, "namespace": "default",
                                   "serviceAccount": pod, "labels": {"app": "bench-" + pod}},
                      "identity": identity}}
    docs = [proxy]
    if pod == "a":
        for key, _, port, vip in MESH_PATHS:
            if vip is None:
                continue
            host = key.replace("_", "-") + ".bench"
            docs.append({"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": host},
                         "spec": {"hosts": [host], "addresses": [vip], "location": "MESH_INTERNAL",
                                  "resolution": "STATIC",
                                  "ports": [{"number": port, "name": "http", "protocol": "HTTP"}],
                                  "endpoints": [{"address": MESH_PODS["b"]}]}})
            policy = {"tls": {"mode": "ISTIO_MUTUAL" if key in MESH_MTLS else "DISABLE"}}
            if key == "mtls_h1":  # the hop as Istio's default (meshConfig) makes it
                policy["connectionPool"] = {"http": {"h2UpgradePolicy": "DO_NOT_UPGRADE"}}
            docs.append({"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": host},
                         "spec": {"host": host, "trafficPolicy": policy}})
    else:
        plain_port = next(port for key, _, port, _ in MESH_PATHS if key == "plain")
        docs.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                     "metadata": {"name": "default", "namespace": "istio-system"},
                     "spec": {"mtls": {"mode": "STRICT"}}})
        docs.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                     "metadata": {"name": "bench-b", "namespace": "default"},
                     "spec": {"selector": {"matchLabels": {"app": "bench-b"}},
                              "mtls": {"mode": "UNSET"},
                              "portLevelMtls": {str(plain_port): {"mode": "DISABLE"}}}})
    with open(os.path.join(d, "sidecar.yaml"), "w") as f:
        f.write(to_yaml(docs))


def nginx_mesh_upstream_conf(d):
    body = "\n".join("""    server {{
        listen 0.0.0.0:{port} backlog=4096;
        root {dir}/www;
        location / {{ }}
    }}""".format(port=port, dir=d) for _, _, port, _ in MESH_PATHS)
    return NGINX_COMMON.format(dir=d, name="mesh-upstream", body=body, conns=8192)


def mesh_requests_by_security(mesh):
    """Pod b's sidecar's inbound requests (Istio's istio_requests_total, reporter="destination")
    by how they came: "mtls" (connection_security_policy mutual_tls with pod a's SPIFFE
    principal), "plaintext" (any other policy), or "mtls from <principal>"."""
    text = mesh.run("b", "curl", "-s", "--max-time", "5",
                    "http://127.0.0.1:15000/stats/prometheus").stdout
    counts = {}
    for line in text.splitlines():
        if line.startswith("istio_requests_total{") and 'reporter="destination"' in line:
            policy = re.search(r'connection_security_policy="([^"]*)"', line)
            principal = re.search(r'source_principal="([^"]*)"', line)
            if not policy or policy.group(1) != "mutual_tls":
                how = "plaintext"
            elif principal and principal.group(1) == "cluster.local/ns/default/sa/a":
                how = "mtls"
            else:
                how = "mtls from %s" % (principal.group(1) if principal else "?")
            counts[how] = counts.get(how, 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


def start_mesh(mesh, d):
    """Pods a and b with capture, a sidecar each (uid 1337, CPU PROXY_CPU) and nginx in b (CPU
    LOAD_CPU), every path answering from pod a; returns (sidecars, every process by name, each
    path's (address, port), pod b's inbound requests by security so far)."""
    root = os.path.join(d, "mesh")
    os.makedirs(root)
    os.chmod(d, 0o755)  # the sidecars run as uid 1337 and read their files here
    os.chmod(root, 0o755)
    binary = os.path.join(root, "petrel")
    shutil.copy(petrel_bin(), binary)
    os.chmod(binary, 0o755)
    ca = certs.make_ca(root, "mesh-ca")
    for pod, ip in MESH_PODS.items():
        mesh.add_pod(pod, ip)
    direct_port = next(port for key, _, port, _ in MESH_PATHS if key == "direct")
    one_hop_port = next(port for key, _, port, _ in MESH_PATHS if key == "one_hop")
    # a: the direct path's port is not captured outbound; b: neither the direct nor the
    # one-hop path's port is captured inbound (plus the script's default exclusions).
    mesh.capture("a", "-o", str(direct_port))
    mesh.capture("b", "-d", "15090,15021,15020,%d,%d" % (direct_port, one_hop_port))
    sidecars = {}
    for pod in MESH_PODS:
        pod_dir = os.path.join(root, pod)
        os.makedirs(os.path.join(pod_dir, "config"))
        os.chmod(pod_dir, 0o755)
        os.chmod(os.path.join(pod_dir, "config"), 0o755)
        identity = certs.workload_identity(root, pod, ca,
                                           "spiffe://cluster.local/ns/default/sa/" + pod)
        mesh_sidecar_docs(pod, os.path.join(pod_dir, "config"), identity)
        sidecars[pod] = mesh.popen(pod, ["taskset", "-c", PROXY_CPU, binary, "run", "-c",
                                         os.path.join(pod_dir, "config")],
                                   uid=MESH_PROXY_UID, log_dir=pod_dir, name="petrel")
    os.makedirs(os.path.join(d, "mesh-upstream-tmp"), exist_ok=True)
    conf = os.path.join(d, "mesh-upstream.conf")
    with open(conf, "w") as f:
        f.write(nginx_mesh_upstream_conf(d))
    nginx = mesh.popen("b", ["taskset", "-c", LOAD_CPU, "nginx", "-e",
                             os.path.join(d, "mesh-upstream.error.log"), "-p", d, "-c", conf],
                       log_dir=root, name="nginx")

    def status(pod, url):
        r = mesh.run(pod, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     "--max-time", "2", url, check=False)
        return r.stdout.strip()

    def wait_for(what, check, procs):
        deadline = time.monotonic() + MESH_TIMEOUT
        while not check():
            for name, p in procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s exited with status %d" % (name, p.returncode))
            if time.monotonic() > deadline:
                raise RuntimeError("%s: not within %d s" % (what, MESH_TIMEOUT))
            time.sleep(0.05)

    everyone = {"nginx": nginx, "sidecar a": sidecars["a"], "sidecar b": sidecars["b"]}
    for pod in MESH_PODS:
        wait_for("sidecar %s ready" % pod,
                 lambda pod=pod: status(pod, "http://127.0.0.1:15000/ready") == "200", everyone)
    targets = {}
    for key, _, port, vip in MESH_PATHS:
        targets[key] = (vip or MESH_PODS["b"], port)
        url = "http://%s:%d/0b" % targets[key]
        wait_for("200 from %s" % url, lambda url=url: status("a", url) == "200", everyone)
    for pod, p in sidecars.items():
        with open("/proc/%d/comm" % p.pid) as f:
            comm = f.read().strip()
        if comm != "petrel":  # the CPU figures read this pid
            raise RuntimeError("sidecar %s's pid runs %s, not petrel" % (pod, comm))
    # The paths are what they say: b's inbound saw one mTLS and one plaintext request.
    seen = mesh_requests_by_security(mesh)
    if seen.get("mtls", 0) < 1 or seen.get("plaintext", 0) < 1:
        raise RuntimeError("pod b's sidecar did not see both mTLS from pod a and plaintext: "
                           "%s" % seen)
    before = seen
    log("mesh: pods a %s, b %s; sidecars pid %d, %d (CPU %s), nginx and client on CPU %s" % (
        MESH_PODS["a"], MESH_PODS["b"], sidecars["a"].pid, sidecars["b"].pid, PROXY_CPU,
        LOAD_CPU))
    return sidecars, everyone, targets, before


def mesh_hops(d, ratecli):
    """p50/p99 at RATE req/s from an app in pod a to nginx in pod b: straight across the
    bridge, through a's sidecar only, through both sidecars in plaintext and with mTLS (a's
    outbound ISTIO_MUTUAL with its SPIFFE certificate, b's inbound STRICT verifying it), and
    each sidecar's CPU per 1000 requests at that rate; interleaved over the rounds. The mesh
    (namespaces, veths, capture rules, processes) is removed before returning, also on error."""
    mesh = Mesh("pb")
    CLEANUPS.append(mesh.close)
    try:
        sidecars, everyone, targets, before = start_mesh(mesh, d)

        raw = {key: {"p50": [], "p99": [], "cpu_a": [], "cpu_b": [], "errors": 0, "completed": 0}
               for key, _, _, _ in MESH_PATHS}
        for _ in range(ROUNDS):
            for key, _, _, _ in MESH_PATHS:
                ip, port = targets[key]
                ticks = {pod: cpu_ticks(p.pid) for pod, p in sidecars.items()}
                out = mesh.run("a", "taskset", "-c", LOAD_CPU, ratecli, ip, str(port), "/0b",
                               str(RATE), str(RATE_CONNS), str(RATE_SECONDS), "1", check=False,
                               timeout=RATE_SECONDS + 60)
                try:
                    lat = json.loads(out.stdout)
                except ValueError:
                    raise RuntimeError("ratecli failed in pod a (%d): %s %s" % (
                        out.returncode, out.stdout[-300:], out.stderr[-300:]))
                m = raw[key]
                m["errors"] += lat["errors"]
                m["completed"] += lat["completed"]
                m["p50"].append(lat["latency_us"]["p50"] / 1000)
                m["p99"].append(lat["latency_us"]["p99"] / 1000)
                for pod, p in sidecars.items():
                    # every request of the run, warm-up included, against the CPU of the run
                    used = (cpu_ticks(p.pid) - ticks[pod]) / CLOCK_TICKS
                    if lat["completed"]:
                        m["cpu_" + pod].append(used * 1000 / (lat["completed"] / 1000))
                log("mesh %-8s p50 %.3f ms p99 %.3f ms  cpu a %.1f b %.1f ms/1k%s" % (
                    key, m["p50"][-1], m["p99"][-1], m["cpu_a"][-1] if m["cpu_a"] else 0,
                    m["cpu_b"][-1] if m["cpu_b"] else 0,
                    "  %d errors" % lat["errors"] if lat["errors"] else ""))
        after = mesh_requests_by_security(mesh)
        for name, p in everyone.items():
            if p.poll() is not None:
                raise RuntimeError("%s exited during the run" % name)
        res = {key: {k: (median(v) if isinstance(v, list) else v) for k, v in m.items()}
               for key, m in raw.items()}
        # A sidecar a path does not cross still burns a little CPU (timers, metrics): shown
        # as not crossed rather than as a figure.
        for key, _, _, _ in MESH_PATHS:
            if key == "direct":
                res[key]["cpu_a"] = res[key]["cpu_b"] = None
            elif key == "one_hop":
                res[key]["cpu_b"] = None
        # Every request of the two-sidecar paths crossed b's inbound the way its path says.
        inbound = {how: after.get(how, 0) - before.get(how, 0) for how in after}
        want = {"mtls": sum(res[k]["completed"] for k in MESH_MTLS),
                "plaintext": res["plain"]["completed"]}
        if set(how for how, n in inbound.items() if n) != set(want):
            raise RuntimeError("pod b's sidecar counted %s inbound requests, the client %s"
                               % (inbound, want))
        res["inbound"], res["inbound_want"] = inbound, want
        return res
    finally:
        mesh.close()
        CLEANUPS.remove(mesh.close)


# -- this Petrel against a base ---------------------------------------------------------------

def git(*args):
    return subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True,
                          timeout=120)


def this_version():
    """HEAD's commit, and whether the tracked files that go into the binary (all but tests/ and
    docs/) differ from it: what PETREL_BIN was built from, when it was built from this tree."""
    head = git("rev-parse", "HEAD").stdout.strip()
    dirty = git("diff", "--quiet", "HEAD", "--", ".", ":(exclude)tests",
                ":(exclude)docs").returncode != 0
    return head, dirty


def build_base(ref):
    """Builds petrel at git ref with that commit's own Makefile, in a temporary worktree under
    build/bench-base/ that is removed afterwards; returns (binary, commit). A binary already
    built for that commit is reused. Raises RuntimeError with the reason when it cannot."""
    r = git("rev-parse", "--verify", "--quiet", ref + "^{commit}")
    if r.returncode != 0:
        raise RuntimeError("BENCH_BASE=%s is not a commit in %s" % (ref, REPO))
    commit = r.stdout.strip()
    out = os.path.join(REPO, "build", "bench-base", commit[:12])
    binary = os.path.join(out, "petrel")
    if os.access(binary, os.X_OK):
        log("base %s: reusing %s" % (commit[:12], binary))
        return binary, commit
    src = os.path.join(out, "src")
    os.makedirs(out, exist_ok=True)
    if os.path.exists(src):  # left by an interrupted build
        git("worktree", "remove", "--force", src)
        shutil.rmtree(src, ignore_errors=True)
        git("worktree", "prune")
    r = git("worktree", "add", "--detach", "--force", src, commit)
    if r.returncode != 0:
        raise RuntimeError("git worktree add %s failed: %s" % (commit[:12], r.stderr.strip()))
    # `make bench` runs this script: its command-line variables and jobserver must not leak
    # into the base's own make.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    build_log = os.path.join(out, "build.log")
    log("base %s: building in %s (log %s)" % (commit[:12], src, build_log))
    try:
        with open(build_log, "w") as f:
            b = subprocess.run(["make", "-C", src, "-j2", "all"], stdout=f,
                               stderr=subprocess.STDOUT, env=env, timeout=BASE_BUILD_TIMEOUT)
        built = os.path.join(src, "build", "petrel")
        if b.returncode != 0 or not os.access(built, os.X_OK):
            raise RuntimeError("`make all` at %s failed (exit %d); see %s"
                               % (commit[:12], b.returncode, build_log))
        shutil.copy(built, binary + ".tmp")
        os.rename(binary + ".tmp", binary)
    except subprocess.TimeoutExpired:
        raise RuntimeError("`make all` at %s took over %d s" % (commit[:12], BASE_BUILD_TIMEOUT))
    finally:
        git("worktree", "remove", "--force", src)
        shutil.rmtree(src, ignore_errors=True)
    return binary, commit


def cpu_split(pid):
    """(utime, stime) of pid in clock ticks, all threads (netutil.cpu_ticks gives the sum)."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]), int(fields[12])


AB_METRICS = [
    # key, header, format, higher is better
    ("rps", "req/s 0 B", "{:,.0f}", True),
    ("cpu_us", "CPU µs / req", "{:.2f}", False),
    ("user_us", "user µs / req", "{:.2f}", False),
    ("p99_ms", "p99 ms @%d/s" % RATE, "{:.3f}", False),
]


def against_base(d, up_port, ratecli, base_bin):
    """This Petrel and the base one, one after the other on the same config file (the default
    `petrel` target's) and port, AB_ROUNDS rounds, the order swapped every round (A B, B A, ...)
    so that a drift of the machine weighs on both alike. Each run is a fresh process: wrk at
    saturation (requests/s, CPU and user time per request), then ratecli at RATE (p99). Returns
    {"base"|"this": medians} plus "ratios" (this / base of the medians) and "spread" (the
    lowest and highest per-round ratio)."""
    port = free_port()
    docs, spec = petrel_variant("petrel", port, up_port)
    p = Petrel(os.path.join(d, "ab"), docs, concurrency=1, proxy_spec=spec,
               command_prefix=["taskset", "-c", PROXY_CPU])
    bins = {"base": base_bin, "this": petrel_bin()}
    raw = {who: {k: [] for k, _, _, _ in AB_METRICS} for who in bins}
    for r in range(AB_ROUNDS):
        for who in (("base", "this") if r % 2 == 0 else ("this", "base")):
            p.binary = bins[who]
            open(p.access_log, "w").close()
            p.start(wait=False)
            PROCS.append(p.proc)
            try:
                first_response(port, "/0b", p.proc)
                u0, s0 = cpu_split(p.proc.pid)
                w = run_wrk(port, "/0b", None)
                u1, s1 = cpu_split(p.proc.pid)
                lat = run_rate(ratecli, port, "/0b")
            except RuntimeError as e:
                said = [line for line in p.stderr().splitlines() if line.strip()]
                raise RuntimeError("%s Petrel (%s) on the config file this one runs: %s%s" % (
                    who, bins[who], e, "; its last error line: " + said[-1] if said else ""))
            finally:
                p.stop()
            if w["non2xx"] or w["sock_errors"] or lat["errors"]:
                raise RuntimeError("%s Petrel: %d non-2xx, %d socket errors, %d errors at fixed "
                                   "rate" % (who, w["non2xx"], w["sock_errors"], lat["errors"]))
            m = raw[who]
            m["rps"].append(w["rps"])
            m["cpu_us"].append((u1 - u0 + s1 - s0) / CLOCK_TICKS * 1e6 / w["requests"])
            m["user_us"].append((u1 - u0) / CLOCK_TICKS * 1e6 / w["requests"])
            m["p99_ms"].append(lat["latency_us"]["p99"] / 1000)
            log("base round %d %-4s %8.0f req/s  cpu %.2f µs/req  user %.2f µs/req  p99 %.3f ms"
                % (r + 1, who, m["rps"][-1], m["cpu_us"][-1], m["user_us"][-1], m["p99_ms"][-1]))
    res = {who: {k: median(v) for k, v in m.items()} for who, m in raw.items()}
    res["ratios"] = {k: res["this"][k] / res["base"][k] for k, _, _, _ in AB_METRICS}
    res["spread"] = {}
    for k, _, _, _ in AB_METRICS:
        per_round = [a / b for a, b in zip(raw["this"][k], raw["base"][k])]
        res["spread"][k] = (min(per_round), max(per_round))
    return res


# -- many connections --------------------------------------------------------------------------

REQUEST = b"GET /0b HTTP/1.1\r\nHost: bench.local\r\n\r\n"


def raise_fd_limit():
    """Raises the soft RLIMIT_NOFILE to the hard one for this script and so for every process
    it starts (raising the hard one needs CAP_SYS_RESOURCE, which a container may not have):
    the idle and burst tests hold a descriptor per connection in the client and in the proxy.
    Returns the limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return sys.maxsize if hard == resource.RLIM_INFINITY else hard


def settled_rss_kb(pid, timeout=3.0):
    """VmRSS once two samples 0.2 s apart agree (or after timeout): what is left after the
    process has handled the last event."""
    last = rss_kb(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_kb(pid)
        if now == last:
            break
        last = now
    return last


def upstream_conns(pid, up_port):
    """ESTABLISHED TCP connections of process pid to up_port (its sockets in /proc/<pid>/fd
    matched by inode with /proc/net/tcp)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            # sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if fields[3] == "01" and int(fields[2].split(":")[1], 16) == up_port \
                    and fields[9] in inodes:
                n += 1
    return n


def close_all(socks):
    for s in socks:
        s.close()


def open_idle(port, n, deadline):
    """n keep-alive connections opened one after another, one GET each whose response is read
    before the next opens; returns them open and idle."""
    socks = []
    try:
        for i in range(n):
            if time.monotonic() > deadline:
                raise RuntimeError("only %d of %d connections within the time" % (i, n))
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            s.sendall(REQUEST)
            st, _, _ = recv_one(s)
            if st != 200:
                raise RuntimeError("connection %d: status %d" % (i, st))
    except (OSError, AssertionError, TimeoutError, ValueError) as e:
        close_all(socks)
        raise RuntimeError("connection %d of %d: %s" % (len(socks), n, e))
    except RuntimeError:
        close_all(socks)
        raise
    return socks


def open_burst(port, n, deadline):
    """n connections opened at once, each sending one GET as soon as it is connected, all
    responses read concurrently; returns them open and idle."""
    sel = selectors.DefaultSelector()
    socks, bufs = [], {}
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE)
        pending = n
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%d of %d responses missing at the deadline" % (pending, n))
            for key, events in sel.select(min(left, 1.0)):
                s = key.fileobj
                if events & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise RuntimeError("connect: %s" % os.strerror(err))
                    s.send(REQUEST)  # 40 bytes into an empty socket buffer
                    bufs[s] = b""
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(65536)
                if not data:
                    raise RuntimeError("a connection closed before its response")
                bufs[s] += data
                try:
                    resp = parse_responses(bufs[s], strict=True)
                except Incomplete:
                    continue
                if resp:
                    if resp[0][0] != 200:
                        raise RuntimeError("status %d" % resp[0][0])
                    sel.unregister(s)
                    pending -= 1
    except (OSError, ValueError, RuntimeError) as e:
        close_all(socks)
        raise RuntimeError("burst of %d: %s" % (n, e))
    finally:
        sel.close()
    return socks


def many_room():
    """HAProxy's maxconn and nginx's worker_connections for the idle and burst tests: room for
    the most client and upstream connections either holds, twice over: HAProxy stops pooling
    idle server connections once its descriptors in use pass a share of those it reserved for
    maxconn (tune.pool-low-fd-ratio and pool-high-fd-ratio, 20 and 25 %)."""
    return 2 * max(IDLE_CONNS, 2 * BURST) + 100


def start_fresh(t, d, up_port, base_bin):
    """A new instance of target t (petrel, petrel_base, haproxy, nginx), answering on its port:
    (proc, port)."""
    port = free_port()
    if t.startswith("petrel"):
        docs, spec = petrel_variant("petrel", port, up_port)
        p = Petrel(tempfile.mkdtemp(prefix=t + "-", dir=d), docs, concurrency=1, proxy_spec=spec,
                   binary=base_bin if t == "petrel_base" else None,
                   command_prefix=["taskset", "-c", PROXY_CPU])
        p.start(wait=False)
        PROCS.append(p.proc)
        proc = p.proc
    elif t == "haproxy":
        proc = start_haproxy(d, port, up_port, name="haproxy-many", maxconn=many_room())
    else:
        proc = start_nginx(d, "nginx-many", nginx_proxy_conf(d, port, up_port, name="nginx-many",
                                                             conns=many_room()), PROXY_CPU)
    first_response(port, "/0b", proc)
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def idle_memory(d, up_port, base_bin, targets):
    """Bytes of RSS per idle keep-alive client connection: IDLE_CONNS connections opened one
    after another on a fresh instance, one GET each, then idle; (RSS after - RSS before) / n."""
    res = {}
    for t in targets:
        proc, port = start_fresh(t, d, up_port, base_bin)
        try:
            before = settled_rss_kb(proc.pid)
            t0 = time.monotonic()
            socks = open_idle(port, IDLE_CONNS, t0 + IDLE_TIMEOUT)
            opened = time.monotonic() - t0
            try:
                after = settled_rss_kb(proc.pid)
                if proc.poll() is not None:
                    raise RuntimeError("exited with status %d" % proc.returncode)
            finally:
                close_all(socks)
        finally:
            stop(proc)
        res[t] = {"bytes": (after - before) * 1024 / IDLE_CONNS, "before_kb": before,
                  "after_kb": after}
        log("idle %-12s %d connections in %.1f s: RSS %d -> %d KiB, %.0f B per connection"
            % (t, IDLE_CONNS, opened, before, after, res[t]["bytes"]))
    return res


def burst_after(d, up_port, base_bin, targets):
    """BURST concurrent requests on a fresh instance, then the upstream connections it still
    holds and its RSS growth per client connection at BURST_SAMPLES seconds after the last
    response (the client connections stay open and idle)."""
    res = {}
    for t in targets:
        proc, port = start_fresh(t, d, up_port, base_bin)
        try:
            before = settled_rss_kb(proc.pid)
            t0 = time.monotonic()
            socks = open_burst(port, BURST, t0 + BURST_TIMEOUT)
            done = time.monotonic()
            try:
                samples = []
                for at in BURST_SAMPLES:
                    time.sleep(max(0.0, done + at - time.monotonic()))
                    if proc.poll() is not None:
                        raise RuntimeError("exited with status %d" % proc.returncode)
                    samples.append((at, upstream_conns(proc.pid, up_port),
                                    (rss_kb(proc.pid) - before) * 1024 / BURST))
            finally:
                close_all(socks)
        finally:
            stop(proc)
        res[t] = {"seconds": done - t0, "samples": samples}
        log("burst %-12s %d requests in %.2f s; " % (t, BURST, done - t0) + ", ".join(
            "+%d s: %d upstream, %.0f B/conn" % s for s in samples))
    return res


# -- profile -----------------------------------------------------------------------------------

PERF_TOP = 25


def traced(pid, tid):
    with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
        return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f)


def profile(d, up_port):
    """This Petrel at saturation (wrk 0 B): `perf record -g` (cpu-clock, so it works without
    hardware counters) for DURATION s and the top PERF_TOP symbols by self time; then
    `strace -c` on every thread over another wrk run, for syscalls per request. Returns
    (result, reasons it could not do a part)."""
    res, why = {}, []
    proc, port = start_fresh("petrel", d, up_port, None)
    try:
        if shutil.which("perf") is None:
            why.append("perf is not installed (Debian: linux-perf)")
        else:
            data = os.path.join(d, "perf.data")
            wrk = subprocess.Popen(pinned(LOAD_CPU, ["wrk", "-t1", "-c50", "-d%ds" % (DURATION + 2),
                                                     "http://127.0.0.1:%d/0b" % port]),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            PROCS.append(wrk)
            rec = subprocess.run(["perf", "record", "-e", "cpu-clock", "-g", "-p", str(proc.pid),
                                  "-o", data, "--", "sleep", str(DURATION)],
                                 capture_output=True, text=True, timeout=DURATION + 60)
            wrk.wait(DURATION + 60)
            rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "-g", "none",
                                  "--sort", "dso,sym", "--stdio"],
                                 capture_output=True, text=True, timeout=300)
            rows = []
            for line in rep.stdout.splitlines():
                m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.+?)\s*$", line)
                if m:
                    rows.append((float(m.group(1)), m.group(2), m.group(3) == "k", m.group(4)))
            if rec.returncode != 0 or not rows:
                why.append("perf record did not work here (exit %d): %s" % (
                    rec.returncode, (rec.stderr.strip() or rep.stderr.strip())[-300:]))
            else:
                res["top"] = rows[:PERF_TOP]
                res["user_pct"] = sum(r[0] for r in rows if not r[2])
        if shutil.which("strace") is None:
            why.append("strace is not installed")
        else:
            out = os.path.join(d, "strace.txt")
            tids = os.listdir("/proc/%d/task" % proc.pid)
            st = subprocess.Popen(["strace", "-c", "-o", out] + [a for t in tids for a in ("-p", t)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            PROCS.append(st)
            wait_until(lambda: all(traced(proc.pid, t) for t in tids), 10, what="strace to attach")
            w = run_wrk(port, "/0b", None)
            st.send_signal(signal.SIGINT)
            st.wait(30)
            with open(out) as f:
                text = f.read()
            calls = {}
            for line in text.splitlines():
                f = line.split()
                # % time, seconds, usecs/call, calls, [errors,] syscall
                if len(f) >= 5 and f[3].isdigit() and f[-1] not in ("total",):
                    calls[f[-1]] = int(f[3])
            if not calls or not w["requests"]:
                why.append("strace -c counted nothing: %s" % text[-300:])
            else:
                res["syscalls_per_req"] = sum(calls.values()) / w["requests"]
                res["syscalls"] = sorted(((n / w["requests"], name) for name, n in calls.items()),
                                         reverse=True)[:8]
                res["strace_rps"] = w["rps"]
    finally:
        stop(proc)
    return res, why


# -- report ----------------------------------------------------------------------------------

METRICS = [
    # key, header, format, higher is better
    ("rps_0", "req/s 0 B", "{:,.0f}", True),
    ("rps_1k", "req/s 1 KiB", "{:,.0f}", True),
    ("p50_ms", "p50 ms @%d/s" % RATE, "{:.3f}", False),
    ("p99_ms", "p99 ms @%d/s" % RATE, "{:.3f}", False),
    ("cpu_ms_per_1k", "CPU ms / 1k req", "{:.1f}", False),
    ("rss_idle_mb", "idle RSS MiB", "{:.1f}", False),
    ("rss_load_mb", "RSS under load MiB", "{:.1f}", False),
    ("start_ms", "start → first 200 ms", "{:.0f}", False),
]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(raw):
    """raw[target][metric] = [per-round values] -> medians."""
    return {t: {k: median(v) for k, v in m.items()} for t, m in raw.items()}


def write_report(info, res, notes, elapsed, scale=None, tls=None, mesh=None, chaos=None,
                 against=None, many=None, prof=None, h2=None, ir=None):
    def cell(t, key, fmt):
        v = res.get(t, {}).get(key)
        return fmt.format(v) if v is not None else "–"

    def ratio(t, base, key):
        a, b = res.get(t, {}).get(key), res.get(base, {}).get(key)
        if a is None or not b:
            return "–"
        return "%.2f×" % (a / b)

    cols = [t for t in TARGETS]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (tests/bench/bench.py) down to the analysis. Each figure is the",
        "median of %d interleaved rounds. Proxies (one worker/thread each, keep-alive to the" % ROUNDS,
        "upstream) are pinned to CPU %s; the upstream nginx (one worker, static 0 B / 1 KiB files) and" % PROXY_CPU,
        "the load generators share CPU %s, so at saturation the load side can be the limit: compare" % LOAD_CPU,
        "the proxies with each other and read *direct* as the upstream's own ceiling.",
        "",
        "- machine: %s CPUs, %s, kernel %s; load average before the run %s (anything above 0"
        " means other work shared the CPUs)" % (info["nproc"], info["cpu"], info["kernel"], info["load"]),
        "- software: HAProxy %s, nginx %s, wrk %s; run %s, took %.0f s" % (
            info["haproxy"], info["nginx"], info["wrk"], info["date"], elapsed),
        "- saturation: `wrk -t1 -c50 -d%ds http://127.0.0.1:PORT/{0b,1k}` (keep-alive)" % DURATION,
        "- latency: `ratecli` (tests/bench/ratecli.c), %d req/s open loop over %d keep-alive "
        "connections for %d s after 1 s warm-up, 0 B body, latency from each request's due time" % (
            RATE, RATE_CONNS, RATE_SECONDS),
        "- CPU: proxy utime+stime over the 0 B wrk run / requests served; RSS: VmRSS after start"
        " (idle) and its peak during the wrk runs",
        "",
        "| | " + " | ".join(h for _, h, _, _ in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for t in cols:
        lines.append("| %s | " % NAMES[t] + " | ".join(cell(t, k, f) for k, _, f, _ in METRICS) + " |")
    lines += ["", "Ratios (× HAProxy / × direct; for req/s higher is better, for the rest lower is better):",
              "", "| | " + " | ".join(h for _, h, _, _ in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for t in cols:
        if t == "direct":
            continue
        lines.append("| %s | " % NAMES[t] + " | ".join(
            "%s / %s" % (ratio(t, "haproxy", k), ratio(t, "direct", k)) for k, _, _, _ in METRICS) + " |")
    if scale:
        lo, hi = SCALE_ROUTES
        lines += ["", "Routing scale (Petrel alone): a config of N VirtualServices with one host "
                  "each; `petrel validate` wall time (process start, parse, validate, compile) and "
                  "the two phases it reports (YAML parsing by libyaml; checking, compiling, "
                  "indexing and the /config_dump JSON), and wrk at saturation asking for the "
                  "last host:", "",
                  "| routes | validate ms | parse ms | compile ms | req/s 0 B | CPU ms / 1k req |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for n in SCALE_ROUTES:
            lines.append("| %s | %.1f | %.1f | %.1f | %s | %.1f |" % (
                "{:,}".format(n), scale[n]["validate_ms"], scale[n]["parse_ms"],
                scale[n]["compile_ms"], "{:,.0f}".format(scale[n]["rps"]), scale[n]["cpu"]))
        lines.append("| %s vs %s | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× |" % (
            "{:,}".format(hi), lo, scale[hi]["validate_ms"] / scale[lo]["validate_ms"],
            scale[hi]["parse_ms"] / max(scale[lo]["parse_ms"], 0.01),
            scale[hi]["compile_ms"] / max(scale[lo]["compile_ms"], 0.01),
            scale[hi]["rps"] / scale[lo]["rps"], scale[hi]["cpu"] / scale[lo]["cpu"]))
    variants = [(t, base) for t, base in (("petrel_telemetry", "petrel_bare"),
                                          ("petrel_policies", "petrel")) if t in res and base in res]
    if variants:
        lines += ["", "Petrel's own costs, in the same run: telemetry (Istio metrics and tracing at "
                  "1 % sampling, exported as OTLP) against the same route with every per-request "
                  "record off; the resilience policies (retries, a 10 % mirror, outlier detection) "
                  "against the plain route. Ratios, lower is better except for req/s:", "",
                  "| | against | req/s 0 B | p99 ms @%d/s | CPU ms / 1k req |" % RATE,
                  "|---|---|---:|---:|---:|"]
        for t, base in variants:
            lines.append("| %s | %s | %s | %s | %s |" % (
                NAMES[t], NAMES[base], ratio(t, base, "rps_0"), ratio(t, base, "p99_ms"),
                ratio(t, base, "cpu_ms_per_1k")))
    if tls:
        lines += ["", "TLS termination (same self-signed P-256 certificate; Petrel: Gateway HTTPS "
                  "server, HAProxy: `bind ... ssl crt`): `wrk -t1 -c50` over TLS keep-alive "
                  "connections, and with `Connection: close` (a full handshake per request, "
                  "TLS 1.3 by default):", "",
                  "| | req/s 0 B over TLS | new handshakes/s | CPU ms / 1k req (keep-alive) |",
                  "|---|---:|---:|---:|"]
        for t in ("petrel", "haproxy"):
            if t in tls:
                lines.append("| %s | {:,.0f} | {:,.0f} | {:.1f} |".format(
                    tls[t]["rps"], tls[t]["hs"], tls[t]["cpu"]) % NAMES[t])
    if h2:
        lines += http2_report(h2)
    if ir:
        lines += instructions_report(ir)
    if against:
        lines += base_report(against)
    if many:
        lines += many_report(many)
    if prof:
        lines += profile_report(*prof)
    if mesh:
        lines += mesh_report(mesh)
    if chaos:
        lines += chaos_report(chaos)
    if notes:
        lines += ["", "Notes:", ""] + ["- " + n for n in notes]
    lines.append("")
    # Everything from KEEP_MARKER on is written by hand (analysis, profiles) and survives reruns.
    kept = ""
    if os.path.exists(OUT):
        with open(OUT) as f:
            old = f.read()
        if KEEP_MARKER in old:
            kept = old[old.index(KEEP_MARKER):]
    if kept:
        lines.append(kept.rstrip("\n"))
        lines.append("")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    return "\n".join(lines)


def http2_report(h2):
    """The HTTP/2 tables: each case through each proxy, the ratios of Petrel to its peers, and
    the memory per idle HTTP/2 connection; a line for each target or case not run."""
    lines = ["", "HTTP/2 (BENCH_H2=0 skips it). The origin is one nginx (one worker, CPU %s) "
             "speaking h2c with prior knowledge and h2 over TLS, serving the 0 B file and a gRPC "
             "unary method from a file (the framed reply, `grpc-status: 0` in trailers). "
             "Saturation: `h2load -t1 -c%d -m%d -D%d` (%d connections × %d concurrent streams); "
             "gRPC adds `-d` with a pre-framed protobuf request and `-H 'te: trailers' -H "
             "'content-type: application/grpc'`. Latency: `h2load --rps=%g` per connection, "
             "%d req/s in all, %d s after 1 s warm-up; p50/p99 of h2load's per-request log "
             "(from each request's send, not its due time). CPU: proxy utime+stime over the "
             "saturation run / requests. *direct* is the origin itself. *upstream*: what the "
             "proxy speaks to the upstream (nginx's proxy_pass speaks HTTP/1.1, to the HTTP/1 "
             "nginx of the tables above; only grpc_pass speaks HTTP/2). The last case measures "
             "the upstream side alone: an HTTP/1.1 client (`h2load --h1`, 50 connections at "
             "saturation, %d at the fixed rate, one request at a time on each) through the "
             "proxy to the h2c origin; its *direct* row is the HTTP/1 upstream:" % (
                 LOAD_CPU, H2_CONNS, H2_STREAMS, DURATION, H2_CONNS, H2_STREAMS,
                 RATE / H2_CONNS, RATE, RATE_SECONDS, H2_CONNS), "",
             "| | upstream | req/s | CPU ms / 1k req | p50 ms @%d/s | p99 ms @%d/s |" % (
                 RATE, RATE), "|---|---|---:|---:|---:|---:|"]
    reasons = []
    for case, label, _, _ in H2_CASES:
        for t in H2_TARGETS:
            upstream = "–" if t == "direct" else H2_UPSTREAM[t][case]
            r = h2["raw"].get((case, t))
            if r is None:
                why = h2["not_run"].get((case, t), "not started")
                reasons.append("%s, %s: not run: %s" % (NAMES[t], label, why))
                lines.append("| %s, %s | %s | not run | – | – | – |" % (label, NAMES[t], upstream))
                continue
            lines.append("| %s, %s | %s | {:,.0f} | %s | {:.3f} | {:.3f} |".format(
                r["rps"], r["p50_ms"], r["p99_ms"]) % (
                    label, NAMES[t], upstream,
                    "–" if r["cpu_ms_per_1k"] is None else "%.1f" % r["cpu_ms_per_1k"]))
    ratios = []
    for case, label, _, _ in H2_CASES:
        peers = [h2["raw"][(case, t)] for t in ("haproxy", "nginx") if (case, t) in h2["raw"]]
        for t, how in (("petrel", ""), ("petrel_nolog", ", access log off")):
            mine = h2["raw"].get((case, t))
            if mine and peers:
                ratios.append("| %s%s | %.2f× | %.2f× |" % (
                    label, how, mine["rps"] / max(p["rps"] for p in peers),
                    mine["cpu_ms_per_1k"] / min(p["cpu_ms_per_1k"] for p in peers)))
    if ratios:
        lines += ["", "Petrel against the better peer in each case (targets: req/s ≥ 1.00×, "
                  "CPU ≤ 1.00×):", "",
                  "| | req/s × the better peer's | CPU / req × the lower peer's |",
                  "|---|---:|---:|"] + ratios
    if h2["idle"]:
        lines += ["", "Idle HTTP/2 connections: %s h2c connections opened one after another on a "
                  "fresh instance (python3-h2), one `GET /0b` stream each, ended, then the "
                  "connection left open and idle; RSS after minus RSS before, per connection:" % (
                      "{:,}".format(H2_IDLE_CONNS)), "",
                  "| | bytes per idle HTTP/2 connection | RSS before KiB | RSS after KiB |",
                  "|---|---:|---:|---:|"]
        for t, r in h2["idle"].items():
            if "why" in r:
                lines.append("| %s | not run | – | – |" % NAMES[t])
                reasons.append("%s, idle HTTP/2 connections: not run: %s" % (NAMES[t], r["why"]))
            else:
                lines.append("| %s | {:,.0f} | {:,} | {:,} |".format(
                    r["bytes"], r["before_kb"], r["after_kb"]) % NAMES[t])
    lines += [""] + ["- " + r for r in reasons]
    return lines


def base_report(base):
    """The this-against-base table, or the line saying why there is none."""
    if "skipped" in base:
        return ["", "This Petrel against a base: not measured (%s)." % base["skipped"]]
    this = base["this_commit"][:12] + (" with uncommitted changes" if base["this_dirty"] else "")
    same = base["this_commit"] == base["base_commit"] and not base["this_dirty"]
    lines = ["", "This Petrel (`%s`) against the base, `BENCH_BASE=%s` (`%s`%s), built with that "
             "commit's own Makefile: one config file (the *Petrel* row's) for both, %d rounds with "
             "the order swapped every round (base first, then this first, ...), each run a fresh "
             "process: `wrk -t1 -c50 -d%ds` (requests/s; CPU = utime+stime, user = utime of the "
             "proxy process, per request), then `ratecli` at %d req/s (p99). Ratio this / base of "
             "the medians, with the lowest and highest per-round ratio; acceptance: CPU ≤ 1.02×, "
             "req/s ≥ 0.98×, p99 no worse:" % (
                 this, base["ref"], base["base_commit"][:12],
                 ", the same commit: this run checks the harness, any ratio off 1.00× is noise"
                 if same else "", AB_ROUNDS, DURATION, RATE), "",
             "| | " + " | ".join(h for _, h, _, _ in AB_METRICS) + " |",
             "|---|" + "---:|" * len(AB_METRICS)]
    for who in ("base", "this"):
        lines.append("| %s | " % who + " | ".join(
            f.format(base[who][k]) for k, _, f, _ in AB_METRICS) + " |")
    lines.append("| this / base | " + " | ".join(
        "%.3f× (%.2f–%.2f)" % ((base["ratios"][k],) + base["spread"][k])
        for k, _, _, _ in AB_METRICS) + " |")
    return lines


def many_report(many):
    lines = []
    idle, burst = many.get("idle"), many.get("burst")
    if idle:
        lines += ["", "Idle keep-alive client connections: %s connections opened one after another "
                  "on a fresh instance, one `GET /0b` each (response read), then idle; RSS after "
                  "minus RSS before, per connection. HAProxy (maxconn) and nginx "
                  "(worker_connections) get room for %s connections and allocate their "
                  "connection tables at start, before the first sample, so the delta leaves those "
                  "out; Petrel allocates per connection:" % (
                      "{:,}".format(IDLE_CONNS), "{:,}".format(many_room())), "",
                  "| | bytes per idle connection | RSS before KiB | RSS after KiB |",
                  "|---|---:|---:|---:|"]
        for t, r in idle.items():
            lines.append("| %s | {:,.0f} | {:,} | {:,} |".format(
                r["bytes"], r["before_kb"], r["after_kb"]) % NAMES[t])
    if burst:
        lines += ["", "After a burst: %s connections opened at once on a fresh instance, each "
                  "sending one `GET /0b` as soon as it is connected; then, with the client "
                  "connections left open and idle, the ESTABLISHED connections from the proxy to "
                  "the upstream (its sockets in /proc/PID/fd matched with /proc/net/tcp) and its "
                  "RSS growth per client connection, %s s after the last response (*burst s*: from "
                  "the first connect to the last response; HAProxy's server line has `maxconn "
                  "1000`, so it queues beyond that; nginx keeps at most 128 idle upstream "
                  "connections, `keepalive 128`):" % (
                      "{:,}".format(BURST), ", ".join("+%d" % s for s in BURST_SAMPLES)), "",
                  "| | burst s | " + " | ".join("upstream +%d s" % s for s in BURST_SAMPLES) +
                  " | " + " | ".join("B / client conn +%d s" % s for s in BURST_SAMPLES) + " |",
                  "|---|---:|" + "---:|" * (2 * len(BURST_SAMPLES))]
        for t, r in burst.items():
            lines.append("| %s | %.2f | " % (NAMES[t], r["seconds"]) +
                         " | ".join("{:,}".format(s[1]) for s in r["samples"]) + " | " +
                         " | ".join("{:,.0f}".format(s[2]) for s in r["samples"]) + " |")
    return lines


def profile_report(prof, why):
    lines = []
    if prof.get("top"):
        lines += ["", "Profile of this Petrel at saturation (`perf record -e cpu-clock -g` on the "
                  "process for %d s of `wrk -t1 -c50`, 0 B; `perf report --no-children --sort "
                  "dso,sym`): user space (`[.]`) is %.1f %% of the samples; the top %d symbols by "
                  "self time:" % (DURATION, prof["user_pct"], PERF_TOP), "",
                  "| self % | object | symbol |", "|---:|---|---|"]
        for pct, dso, kernel, sym in prof["top"]:
            lines.append("| %.2f | %s | %s`%s` |" % (pct, dso, "[k] " if kernel else "",
                                                     sym.replace("|", "\\|")))
    if prof.get("syscalls_per_req"):
        lines += ["", "Syscalls per proxied request (`strace -c` on every thread over `wrk -t1 "
                  "-c50 -d%ds`, which strace slows to %s req/s): %.2f; the most frequent, per "
                  "request: %s." % (DURATION, "{:,.0f}".format(prof["strace_rps"]),
                                   prof["syscalls_per_req"],
                                   ", ".join("%s %.2f" % (name, n) for n, name in prof["syscalls"]))]
    for w in why:
        lines += ["", "Profile: " + w + "."]
    return lines


def mesh_report(mesh):
    """The sidecar-to-sidecar table: each path's latency, each sidecar's CPU, and the cost of
    mTLS as ratios to the same two hops in plaintext."""
    def ms(v, fmt="{:.3f}"):
        return fmt.format(v) if v is not None else "–"

    def ratio(key, base, k):
        a, b = mesh[key].get(k), mesh[base].get(k)
        return "%.2f×" % (a / b) if a is not None and b else "–"

    lines = ["", "Sidecar to sidecar (two pods as network namespaces with Istio's traffic capture, "
             "a Petrel sidecar as uid 1337 in each on CPU %s, the client and nginx on CPU %s): "
             "`ratecli` at %d req/s over %d keep-alive connections for %d s from an app in pod A "
             "to nginx in pod B. mTLS is A's DestinationRule `ISTIO_MUTUAL` and B's "
             "PeerAuthentication `STRICT` checking A's SPIFFE certificate, on connections the "
             "sidecars keep alive (the cost per request, not per handshake); CPU is each "
             "sidecar's utime+stime per 1000 requests at that rate:" % (
                 PROXY_CPU, LOAD_CPU, RATE, RATE_CONNS, RATE_SECONDS), "",
             "| path | p50 ms @%d/s | p99 ms @%d/s | CPU ms / 1k req, sidecar A | "
             "CPU ms / 1k req, sidecar B |" % (RATE, RATE), "|---|---:|---:|---:|---:|"]
    for key, label, _, _ in MESH_PATHS:
        if key in mesh:
            m = mesh[key]
            lines.append("| %s | %s | %s | %s | %s |" % (
                label, ms(m["p50"]), ms(m["p99"]), ms(m["cpu_a"], "{:.1f}"),
                ms(m["cpu_b"], "{:.1f}")))
    if "mtls" in mesh and "plain" in mesh:
        lines.append("| mTLS × plaintext | %s | %s | %s | %s |" % tuple(
            ratio("mtls", "plain", k) for k in ("p50", "p99", "cpu_a", "cpu_b")))
    if "mtls" in mesh and "mtls_h1" in mesh:
        lines.append("| mTLS: HTTP/2 × HTTP/1.1 between the sidecars | %s | %s | %s | %s |" % tuple(
            ratio("mtls", "mtls_h1", k) for k in ("p50", "p99", "cpu_a", "cpu_b")))
    return lines


# -- main ------------------------------------------------------------------------------------

def main():
    for tool in ("wrk", "haproxy", "nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s not found (run `make deps`)" % tool)
    started = time.monotonic()
    d = tempfile.mkdtemp(prefix="petrel-bench-")
    notes = []
    if NCPU < 2:
        notes.append("only one CPU: proxies, upstream and load generators all share CPU 0")
    try:
        fd_limit = raise_fd_limit()
        info = machine()
        # Built first, so that the build does not share the CPUs with a measurement.
        base = None
        base_bin = None
        if not BASE_REF:
            base = {"skipped": "BENCH_BASE is empty"}
        elif "petrel" not in TARGETS:
            base = {"skipped": "petrel is not in BENCH_TARGETS"}
        else:
            try:
                base_bin, base_commit = build_base(BASE_REF)
                head, dirty = this_version()
                base = {"ref": BASE_REF, "base_commit": base_commit, "this_commit": head,
                        "this_dirty": dirty}
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                base = {"skipped": "the base was not built: %s" % e}
        if "skipped" in base:
            log("this against the base: not measured (%s)" % base["skipped"])
        ratecli = build_ratecli(d)
        www = os.path.join(d, "www")
        os.makedirs(www)
        open(os.path.join(www, "0b"), "wb").close()
        with open(os.path.join(www, "1k"), "wb") as f:
            f.write(b"x" * 1024)

        up_port = free_port()
        up = start_nginx(d, "upstream", nginx_upstream_conf(d, up_port), LOAD_CPU)
        first_response(up_port, "/0b", up)
        log("upstream nginx on %d (CPU %s)" % (up_port, LOAD_CPU))

        ports, pids, raw = {}, {}, {}
        for t in TARGETS:
            raw[t] = {k: [] for k, _, _, _ in METRICS}
            try:
                if t == "direct":
                    ports[t], pids[t] = up_port, None
                    continue
                port = free_port()
                t0 = time.monotonic()
                if t.startswith("petrel"):
                    docs, spec = petrel_variant(t, port, up_port)
                    p = Petrel(os.path.join(d, t), docs, concurrency=1, proxy_spec=spec,
                               command_prefix=["taskset", "-c", PROXY_CPU])
                    p.start(wait=False)
                    PROCS.append(p.proc)
                    proc = p.proc
                elif t == "haproxy":
                    proc = start_haproxy(d, port, up_port)
                else:
                    proc = start_nginx(d, "nginx", nginx_proxy_conf(d, port, up_port), PROXY_CPU)
                first_response(port, "/0b", proc)
                raw[t]["start_ms"].append((time.monotonic() - t0) * 1000)
                raw[t]["rss_idle_mb"].append(rss_kb(proc.pid) / 1024)
                ports[t], pids[t] = port, proc.pid
                log("%s on %d (pid %d, CPU %s)" % (t, port, proc.pid, PROXY_CPU))
            except (RuntimeError, OSError) as e:
                notes.append("%s not run: %s" % (NAMES[t], e))
                log("%s not run: %s" % (t, e))
        live = [t for t in TARGETS if t in ports]

        for r in range(ROUNDS):
            for t in live:
                try:
                    pid = pids[t]
                    w0 = run_wrk(ports[t], "/0b", pid)
                    w1 = run_wrk(ports[t], "/1k", pid)
                    lat = run_rate(ratecli, ports[t], "/0b")
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                    notes.append("%s round %d failed: %s" % (NAMES[t], r + 1, e))
                    log("%s round %d failed: %s" % (t, r + 1, e))
                    continue
                for w in (w0, w1):
                    if w["non2xx"] or w["sock_errors"]:
                        notes.append("%s round %d: %d non-2xx responses, %d socket errors"
                                     % (NAMES[t], r + 1, w["non2xx"], w["sock_errors"]))
                if lat["errors"]:
                    notes.append("%s round %d: %d errors at fixed rate" % (NAMES[t], r + 1, lat["errors"]))
                m = raw[t]
                m["rps_0"].append(w0["rps"])
                m["rps_1k"].append(w1["rps"])
                m["p50_ms"].append(lat["latency_us"]["p50"] / 1000)
                m["p99_ms"].append(lat["latency_us"]["p99"] / 1000)
                if pid:
                    if w0["requests"]:
                        m["cpu_ms_per_1k"].append(w0["cpu_s"] * 1000 / (w0["requests"] / 1000))
                    m["rss_load_mb"].append(max(w0["rss_peak_kb"], w1["rss_peak_kb"]) / 1024)
                log("round %d %-8s %8.0f req/s (0 B) %8.0f req/s (1 KiB)  p50 %.3f ms p99 %.3f ms%s" % (
                    r + 1, t, w0["rps"], w1["rps"], lat["latency_us"]["p50"] / 1000,
                    lat["latency_us"]["p99"] / 1000,
                    "  cpu %.1f ms/1k" % m["cpu_ms_per_1k"][-1] if pid and m["cpu_ms_per_1k"] else ""))
        for t in live:
            if t != "direct" and subprocess.Popen.poll(next(p for p in PROCS if p.pid == pids[t])) is not None:
                notes.append("%s exited during the run" % NAMES[t])
        if base_bin:
            try:
                base.update(against_base(d, up_port, ratecli, base_bin))
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                base = {"skipped": str(e)}  # written in the table's place
                log("this against the base not measured: %s" % e)
        many = {}
        many_targets = [t for t in ("petrel", "petrel_base", "haproxy", "nginx")
                        if t in TARGETS or (t == "petrel_base" and base_bin)]
        if os.environ.get("BENCH_MANY", "1") == "1" and many_targets:
            if fd_limit < IDLE_CONNS + 1000:
                notes.append("connections not measured: the descriptor limit is %d" % fd_limit)
                log(notes[-1])
            else:
                for part, fn in (("idle", idle_memory), ("burst", burst_after)):
                    try:
                        many[part] = fn(d, up_port, base_bin, many_targets)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        notes.append("%s connections not measured: %s" % (part, e))
                        log("%s connections not measured: %s" % (part, e))
        prof = None
        if os.environ.get("BENCH_PERF") == "1" and "petrel" in TARGETS:
            try:
                prof = profile(d, up_port)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                prof = ({}, ["not measured: %s" % e])
            for w in prof[1]:
                log("profile: %s" % w)
        scale = None
        if "petrel" in ports and os.environ.get("BENCH_SCALE", "1") == "1":
            try:
                scale = routing_scale(d, up_port)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                notes.append("routing scale not measured: %s" % e)
        tls = None
        if "petrel" in ports and os.environ.get("BENCH_TLS", "1") == "1":
            try:
                tls = tls_termination(d, up_port)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                notes.append("TLS termination not measured: %s" % e)
        ir = None
        if os.environ.get("BENCH_CALLGRIND") == "1" and "petrel" in TARGETS:
            try:
                ir = instructions(d, up_port, base_bin)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                notes.append("instructions per request not measured: %s" % e)
                log(notes[-1])
        h2 = None
        if os.environ.get("BENCH_H2", "1") == "1":
            try:
                h2 = http2_part(d, up_port)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                notes.append("HTTP/2 not measured: %s" % e)
                log("HTTP/2 not measured: %s" % e)
        mesh = None
        if os.environ.get("BENCH_MESH", "1") == "1":
            why_not = netns_usable()
            if why_not:
                notes.append("sidecar to sidecar not measured: %s" % why_not)
            else:
                try:
                    mesh = mesh_hops(d, ratecli)
                    for key, label, _, _ in MESH_PATHS:
                        if mesh[key]["errors"]:
                            notes.append("sidecar to sidecar, %s: %d errors at fixed rate"
                                         % (label, mesh[key]["errors"]))
                    log("mesh: pod B's sidecar counted %s inbound requests, the client %s"
                        % (mesh["inbound"], mesh["inbound_want"]))
                    if any(mesh["inbound"].get(how) != n for how, n in mesh["inbound_want"].items()):
                        notes.append("sidecar to sidecar: pod B's sidecar counted %s inbound "
                                     "requests, the client %s" % (mesh["inbound"],
                                                                  mesh["inbound_want"]))
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    notes.append("sidecar to sidecar not measured: %s" % e)
                    log("mesh not measured: %s" % e)
        chaos = None
        if os.environ.get("BENCH_CHAOS", "1") == "1":
            try:
                chaos = chaos_relay(d)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
                notes.append("chaos relay not measured: %s" % e)
        report = write_report(info, summarize(raw), notes, time.monotonic() - started, scale, tls,
                              mesh, chaos, base, many, prof, h2, ir)
        print(report)
        log("wrote %s" % OUT)
    finally:
        cleanup()
        if os.environ.get("BENCH_KEEP") == "1":
            log("kept %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally: clean up
    main()
