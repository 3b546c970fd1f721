"""tests/e2e/test_50_lifecycle.py -- Petrel's process lifecycle, end to end.

The real binary, real sockets: the CLI (--version, --help, usage errors), `petrel validate`
error reporting (file:line:col: path: message, every error in one run), `petrel run` refusing
a bad config or a busy port, the bundled example working as the README says (on ephemeral
ports), the SIGTERM drain (in-flight request finishes with `connection: close`, /ready 503,
listeners closed, idle keep-alive connections closed, drainTimeout enforced), the admin API,
worker threads with SO_REUSEPORT listeners, and two budgets: spawn-to-first-response and idle
RSS (the measured numbers are printed; run with -s to see them).
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from netutil import (connect, free_port, header, http_request, raw_request, recv_responses,
                     recv_to_eof, rss_kb, wait_for_port, wait_until)
from petrel import (ISTIO, REPO, is_sanitizer_build, need_petrel, petrel_bin, run_petrel,
                    sanitizer_report, simple_config, stats, to_yaml, with_free_ports)

EXAMPLES = os.path.join(REPO, "config", "examples")


# -- helpers local to this file ------------------------------------------------------------

def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def direct_config(port, body="ok\n", name="edge"):
    """A Gateway with one HTTP server and a VirtualService answering directly."""
    return [
        {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": name},
         "spec": {"servers": [{"port": {"number": port, "name": "http", "protocol": "HTTP"},
                               "hosts": ["*"]}]}},
        {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "direct"},
         "spec": {"hosts": ["*"], "gateways": [name],
                  "http": [{"directResponse": {"status": 200, "body": {"string": body}}}]}},
    ]


class Proc:
    """A `petrel run` started by hand (for configs the Petrel wrapper cannot write)."""

    def __init__(self, workdir, args):
        self.out = os.path.join(workdir, "stdout")
        self.err = os.path.join(workdir, "stderr")
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen([petrel_bin()] + args, stdin=subprocess.DEVNULL,
                                         stdout=o, stderr=e, cwd=workdir)

    def stderr(self):
        with open(self.err, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.out, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop_and_check(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("petrel did not exit within 10 s of SIGTERM\n" + self.stderr())
        assert self.proc.returncode == 0, "exit status %d\n%s" % (self.proc.returncode, self.stderr())
        assert sanitizer_report(self.stderr()) is None, self.stderr()


# -- 1. CLI -----------------------------------------------------------------------------------

def test_version():
    need_petrel()
    r = run_petrel(["--version"])
    assert r.returncode == 0
    assert re.fullmatch(r"petrel \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


def test_help():
    need_petrel()
    r = run_petrel(["--help"])
    assert r.returncode == 0
    assert r.stdout.startswith("usage: ")
    assert "petrel run -c" in r.stdout and "petrel validate" in r.stdout


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["run"], ["run", "-c"]])
def test_usage_errors_exit_2(args):
    need_petrel()
    r = run_petrel(args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "usage: " in r.stderr
    assert r.stdout == ""


# -- 2. validate ------------------------------------------------------------------------------

def test_validate_bundled_examples():
    need_petrel()
    r = run_petrel(["validate", EXAMPLES])
    assert r.returncode == 0, r.stderr
    assert "configuration valid" in r.stdout
    assert r.stderr == ""


# Each broken file has exactly one problem. expected: (line, allowed columns, field path, a
# fragment of the message). Columns are 1-based; a value error may point at the key or the value.
BROKEN = {
    "10-unknown-field.yaml": ("""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  servers:
  - port:
      number: 18080
      name: http
      protocol: HTTP
    hosts:
    - "*"
    bogus: 1
""", 13, {5}, "spec.servers[0].bogus", "unknown field"),
    "20-unknown-kind.yaml": ("""\
apiVersion: networking.istio.io/v1
kind: Gatewayz
metadata:
  name: x
""", 2, {1, 7}, "kind", "Gatewayz"),
    "30-port-zero.yaml": ("""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge2
spec:
  servers:
  - port:
      number: 0
      name: http
      protocol: HTTP
    hosts:
    - "*"
""", 8, {7, 15}, "spec.servers[0].port.number", "0"),
    "40-bad-duration.yaml": ("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec:
  hosts:
  - "*"
  gateways:
  - edge
  http:
  - route:
    - destination:
        host: web.local
        port:
          number: 80
    timeout: 5 sec
""", 16, {5, 14}, "spec.http[0].timeout", "5 sec"),
    "50-syntax.yaml": ("""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: a: b
spec:
  hosts: [x]
""", 4, {10}, None, "YAML"),
    "60-missing-required.yaml": ("""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se2
spec:
  location: MESH_EXTERNAL
  resolution: STATIC
""", 5, {1}, "spec.hosts", "required"),
}

ERR_RE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")


def error_lines(stderr):
    """{file basename: [(line, col, rest)]} for every `file:line:col: ...` line."""
    out = {}
    for line in stderr.splitlines():
        m = ERR_RE.match(line)
        if m:
            out.setdefault(os.path.basename(m["file"]), []).append(
                (int(m["line"]), int(m["col"]), m["rest"], m["file"]))
    return out


def check_broken_errors(stderr, names):
    errs = error_lines(stderr)
    assert sorted(errs) == sorted(names), stderr
    for name in names:
        _, line, cols, path, fragment = BROKEN[name]
        assert len(errs[name]) == 1, "want one error for %s:\n%s" % (name, stderr)
        eline, ecol, rest, _ = errs[name][0]
        assert eline == line and ecol in cols, "%s: got %d:%d, want %d:%s\n%s" % (
            name, eline, ecol, line, sorted(cols), stderr)
        if path is not None:
            assert rest.startswith(path + ": "), (name, rest)
            assert fragment in rest[len(path) + 2:], (name, rest)
        else:
            assert fragment in rest, (name, rest)
    return errs


def test_validate_reports_every_error_in_a_directory(tmp_path):
    need_petrel()
    d = tmp_path / "broken"
    for name, (text, *_rest) in BROKEN.items():
        write(str(d / name), text)
    r = run_petrel(["validate", str(d)])
    assert r.returncode == 1, r.stderr
    errs = check_broken_errors(r.stderr, list(BROKEN))
    # the file part names the file as found in the directory given
    for name, items in errs.items():
        assert items[0][3] == os.path.join(str(d), name), items
    assert "configuration valid" not in r.stdout


def test_validate_reports_errors_across_file_arguments(tmp_path):
    need_petrel()
    names = ["10-unknown-field.yaml", "40-bad-duration.yaml", "60-missing-required.yaml"]
    paths = []
    for name in names:
        write(str(tmp_path / name), BROKEN[name][0])
        paths.append(str(tmp_path / name))
    r = run_petrel(["validate"] + paths)
    assert r.returncode == 1, r.stderr
    check_broken_errors(r.stderr, names)


def test_validate_exact_error_line(tmp_path):
    need_petrel()
    path = str(tmp_path / "10-unknown-field.yaml")
    write(path, BROKEN["10-unknown-field.yaml"][0])
    r = run_petrel(["validate", path])
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == "%s:13:5: spec.servers[0].bogus: unknown field" % path


# -- 3. run with a bad config / busy port -------------------------------------------------------

def test_run_invalid_config_exits_1(tmp_path):
    need_petrel()
    d = tmp_path / "cfg"
    for name in ("10-unknown-field.yaml", "40-bad-duration.yaml"):
        write(str(d / name), BROKEN[name][0])
    r = run_petrel(["run", "-c", str(d)], timeout=15)
    assert r.returncode == 1, (r.returncode, r.stderr)
    check_broken_errors(r.stderr, ["10-unknown-field.yaml", "40-bad-duration.yaml"])


def _proxy_yaml(admin_port, concurrency=2, **spec):
    s = {"bindAddress": "127.0.0.1", "adminPort": admin_port, "concurrency": concurrency,
         "accessLog": ""}
    s.update(spec)
    return {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "p"},
            "spec": s}


@pytest.mark.parametrize("admin_port", ["ephemeral", 0])
def test_run_port_in_use_exits_1_naming_listener(tmp_path, admin_port):
    need_petrel()
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no SO_REUSEPORT: petrel cannot share
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        ap = free_port() if admin_port == "ephemeral" else 0
        write(str(tmp_path / "c.yaml"), to_yaml([_proxy_yaml(ap)] + direct_config(port)))
        r = run_petrel(["run", "-c", str(tmp_path / "c.yaml")], timeout=15)
    finally:
        busy.close()
    assert r.returncode == 1, "exit status %d (want 1)\n%s" % (r.returncode, r.stderr)
    assert sanitizer_report(r.stderr) is None, r.stderr
    # the listener is named: its Gateway server and its port
    assert "edge" in r.stderr and str(port) in r.stderr, r.stderr
    assert "address already in use" in r.stderr.lower(), r.stderr


def test_gateway_port_on_the_admin_port_refused_by_validate_and_run(tmp_path):
    """Found by `petrel validate`, and by `run` before it opens any listener (it used to fail
    at start with "address already in use")."""
    need_petrel()
    port = free_port()
    path = tmp_path / "c.yaml"
    write(str(path), to_yaml([_proxy_yaml(port)] + direct_config(port)))
    lines = path.read_text().splitlines()
    admin = next(i for i, ln in enumerate(lines, 1) if ln.strip().startswith("adminPort:"))
    number = next(i for i, ln in enumerate(lines, 1) if ln.strip() == "number: %d" % port)
    want = ("%s:%d:%d: spec.servers[0].port.number: port %d is also the Proxy's spec.adminPort "
            "(%s:%d:%d): two listeners cannot share a port"
            % (path, number, lines[number - 1].index("number") + 1, port, path, admin,
               lines[admin - 1].index("adminPort") + 1))
    v = run_petrel(["validate", str(path)])
    assert v.returncode == 1 and want in v.stderr.splitlines(), v.stderr
    r = run_petrel(["run", "-c", str(path)], timeout=15)
    assert r.returncode == 1 and want in r.stderr.splitlines(), r.stderr
    assert "configuration refused" in r.stderr and "address already in use" not in r.stderr.lower()


def test_run_without_admin_listener_drains_and_exits_0(tmp_path):
    """adminPort: 0 turns the admin listener off; SIGTERM must still drain and exit 0."""
    need_petrel()
    port = free_port()
    write(str(tmp_path / "c.yaml"), to_yaml([_proxy_yaml(0)] + direct_config(port, "no admin\n")))
    p = Proc(str(tmp_path), ["run", "-c", str(tmp_path / "c.yaml")])
    try:
        wait_for_port(port)
        # signal handlers are installed after the listeners open: wait for the ready line
        wait_until(lambda: " ready: " in p.stderr(), 5, what="the ready log line")
        st, _, body = http_request(port, "GET", "/")
        assert (st, body) == (200, b"no admin\n")
    finally:
        p.stop_and_check()


# -- 4. the bundled example, on ephemeral ports -------------------------------------------------

# A request the example's comments promise: `#   curl ARGS   -> STATUS ["BODY"]`.
PROMISE = re.compile(r'^#\s+(curl .*?)\s+->\s+(\d{3})\b(?:\s+"([^"]*)")?')


def test_bundled_example_does_what_its_comments_say(petrel):
    """Every curl command in config/examples/petrel.yaml's comments, run as written against
    the example (only its ports swapped for free ones), gets the status and body promised."""
    text = open(os.path.join(EXAMPLES, "petrel.yaml")).read()
    assert os.listdir(EXAMPLES) == ["petrel.yaml"], "a new example file needs a test"
    text, ports = with_free_ports(text, (8080, 9000, 15000))
    p = petrel([text])
    promises = [m.groups() for m in map(PROMISE.match, text.splitlines()) if m]
    assert len(promises) == 5, promises
    answers = {}
    for command, status, body in promises:
        r = subprocess.run(shlex.split(command) + ["-sS", "--max-time", "10"], capture_output=True,
                           timeout=20)
        assert r.returncode == 0, (command, r.stderr)
        head, _, got = r.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %s " % status.encode()), (command, head)
        if body is not None:
            assert got.decode().strip() == body, (command, got)
        answers[command] = got
    # /stats went through the upstream (the admin listener), and the header chose the route
    url = "http://127.0.0.1:%d" % ports[8080]
    assert b"downstream_rq_total" in answers["curl -i %s/stats" % url]
    assert answers["curl -i -H 'x-canary: 1' %s/" % url] != answers["curl -i %s/" % url]
    # the access log defaults to stdout: one line per HTTP request on the gateway
    wait_until(lambda: p.stdout().count('" 200 ') >= 3, 5, what="3 access log lines")
    log = p.stdout()
    assert '"GET / HTTP/1.1" 200' in log and '"GET /stats HTTP/1.1" 200' in log, log


# -- 5. SIGTERM drain ---------------------------------------------------------------------------

def test_sigterm_drains_in_flight_request(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    port = p.port
    # an idle keep-alive connection
    idle = connect(port, timeout=5.0)
    idle.sendall(b"GET /echo HTTP/1.1\r\nHost: example.com\r\n\r\n")
    (r0,) = recv_responses(idle, 1, timeout=5)
    assert r0[0] == 200
    # a request in flight (the origin answers after 1 s)
    busy = connect(port, timeout=5.0)
    busy.sendall(b"GET /delay/1000 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    origin.wait_requests(2, timeout=5)
    assert origin.requests[-1].path == "/delay/1000"

    t0 = time.monotonic()
    p.signal(signal.SIGTERM)

    # /ready answers 503 while the drain runs
    ready_seen = []

    def draining():
        try:
            st, body = p.admin_get("/ready", timeout=0.5)
        except (OSError, ValueError) as e:
            ready_seen.append(repr(e))
            return False
        ready_seen.append((st, body))
        return st == 503
    wait_until(draining, 0.8, what="/ready 503 during the drain (seen %r)" % ready_seen)
    st, body = p.admin_get("/ready", timeout=0.5)
    assert (st, body.strip()) == (503, b"DRAINING")

    # the idle keep-alive connection is closed at once
    assert recv_to_eof(idle, 0.8)[0] == b""
    idle.close()

    # new connections are refused while the in-flight request is still running
    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_until(refused, 0.5, what="new connections refused")
    assert time.monotonic() - t0 < 1.0, "checks ran past the origin's delay; they prove nothing"

    # the in-flight request completes, with connection: close, then the connection closes
    busy.settimeout(5)
    (resp,) = recv_responses(busy, 1, timeout=5)
    assert resp[0] == 200
    assert (header(resp[2], "connection") or "").lower() == "close", resp[2]
    assert recv_to_eof(busy, 2)[0] == b""
    busy.close()
    t_done = time.monotonic()
    assert t_done - t0 >= 0.8  # it really waited for the origin

    rc = p.proc.wait(timeout=3)
    assert rc == 0, p.output_tail()
    assert time.monotonic() - t_done < 1.0, "exit took %.2f s after the last response" % (
        time.monotonic() - t_done)


def test_drain_timeout_bounds_shutdown(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
               proxy_spec={"drainTimeout": "1s"})
    busy = connect(p.port, timeout=5.0)
    busy.sendall(b"GET /delay/10000 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    origin.wait_requests(1, timeout=5)
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    rc = p.proc.wait(timeout=6)
    elapsed = time.monotonic() - t0
    assert rc == 0, p.output_tail()
    assert 0.8 <= elapsed < 3.0, "exited %.2f s after SIGTERM with drainTimeout 1s" % elapsed
    # the client was not left hanging: its connection is closed (no 200 arrived)
    data, _ = recv_to_eof(busy, 2)
    assert not data.startswith(b"HTTP/1.1 200"), data[:200]
    busy.close()


# -- 6. admin API -------------------------------------------------------------------------------

def test_admin_ready_stats_and_errors(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    st, body = p.admin_get("/ready")
    assert (st, body.strip()) == (200, b"LIVE")
    st, body = p.admin_get("/no/such/path")
    assert st == 404
    st, _, _ = http_request(p.admin_port, "GET", "/quitquitquit", host_header="127.0.0.1")
    assert st == 405
    p.check_alive()

    before = stats(p)
    for name in ("downstream_rq_total", "downstream_cx_total", "upstream_cx_total"):
        assert name in before, sorted(before)
    n = 40
    for i in range(n):  # one connection each, so the kernel spreads them over both workers
        st, _, _ = http_request(p.port, "GET", "/echo?i=%d" % i)
        assert st == 200
    want = before["downstream_rq_total"] + n
    wait_until(lambda: stats(p)["downstream_rq_total"] >= want, 3, what="counter to reach %d" % want)
    after = stats(p)
    assert after["downstream_rq_total"] == want, (before, after)
    assert after["downstream_cx_total"] == before["downstream_cx_total"] + n
    assert len(origin.requests) == n


def test_admin_quitquitquit(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port))
    st, _, body = http_request(p.admin_port, "POST", "/quitquitquit", host_header="127.0.0.1")
    assert st == 200
    rc = p.proc.wait(timeout=5)
    assert rc == 0, p.output_tail()


# -- 7. workers ---------------------------------------------------------------------------------

def _listen_inodes(port):
    """Inodes of the IPv4 listening sockets on 127.0.0.1:port (from /proc/net/tcp)."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            ip, _, p = local.partition(":")
            if state == "0A" and int(p, 16) == port and ip == "0100007F":
                out.add(inode)
    return out


def _socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def test_two_workers_share_port_and_serve_concurrent_load(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    # two listening sockets on the HTTP port, both petrel's (one per worker, SO_REUSEPORT)
    mine = _socket_inodes(p.pid)
    listeners = _listen_inodes(p.port)
    assert len(listeners) == 2 and listeners <= mine, (listeners, mine)
    # and at least two threads besides the main one
    tasks = os.listdir("/proc/%d/task" % p.pid)
    assert len(tasks) >= 3, tasks

    n = 200
    lock = threading.Lock()
    results = []

    def one(i):
        st, h, body = http_request(p.port, "GET", "/echo?i=%d" % i, timeout=10)
        with lock:
            results.append((st, header(h, "x-origin")))

    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(max_workers=32) as ex:
        list(ex.map(one, range(n), timeout=30))
    assert time.monotonic() < deadline
    assert len(results) == n and all(r == (200, "origin") for r in results), \
        [r for r in results if r != (200, "origin")][:5]
    assert len(origin.requests) == n
    assert sorted(int(r.q("i")) for r in origin.requests) == list(range(n))
    # both workers' listeners are still there, and both are counted
    assert len(_listen_inodes(p.port)) == 2


# -- 8. start-to-first-response -----------------------------------------------------------------

def test_start_to_first_proxied_response(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2,
               start=False)
    port = p.port
    req = b"GET /echo HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    p.start(wait=False)
    t_spawn = p.start_time
    deadline = t_spawn + 10
    attempts = 0
    while True:
        attempts += 1
        try:
            raw = raw_request(port, req, timeout=2)
            if raw.startswith(b"HTTP/1.1 200 "):
                break
        except OSError:
            pass
        if p.proc.poll() is not None:
            raise AssertionError("petrel exited\n" + p.output_tail())
        if time.monotonic() > deadline:
            raise AssertionError("no proxied response within 10 s\n" + p.output_tail())
    elapsed = time.monotonic() - t_spawn
    print("\nstart-to-first-proxied-response: %.1f ms (%d attempts; target 10 ms)"
          % (elapsed * 1000, attempts))
    assert elapsed < 1.0, "%.1f ms" % (elapsed * 1000)
    assert origin.requests and origin.requests[0].path == "/echo"
    p.wait_ready()


def test_start_to_first_response_from_exec(petrel, origin, tmp_path):
    """The same budget measured from exec rather than from a Python spawn: tests/bench/startup.c
    reads CLOCK_MONOTONIC in its child just before execvp(petrel) and polls connect + GET every
    100 us. The tight figure (about 10 ms) is docs/benchmarks.md's; the bound here only catches
    a bad regression on a loaded 2-core machine."""
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2,
               start=False)
    harness = str(tmp_path / "startup")
    subprocess.run([os.environ.get("CC") or "cc", "-O2", "-o", harness,
                    os.path.join(REPO, "tests", "bench", "startup.c")], check=True)
    r = subprocess.run([harness, str(p.port), "example.com", "/echo", petrel_bin(), "run", "-c",
                        p.config_dir], capture_output=True, text=True, timeout=30,
                       cwd=p.workdir)
    m = re.search(r"^start-to-first-response-ms ([0-9.]+) attempts (\d+)$", r.stdout, re.M)
    assert r.returncode == 0 and m, r.stdout + r.stderr[-3000:]
    ms = float(m.group(1))
    print("\nstart-to-first-proxied-response from exec: %.2f ms (%s attempts; target 10 ms)"
          % (ms, m.group(2)))
    assert not sanitizer_report(r.stderr), r.stderr[-3000:]
    assert origin.requests and origin.requests[0].path == "/echo"
    if not is_sanitizer_build():
        assert ms < 250, "%.2f ms" % ms


# -- 9. idle RSS --------------------------------------------------------------------------------

def test_idle_rss(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=1)
    if is_sanitizer_build():
        pytest.skip("RSS budget does not apply to a sanitizer build")
    rss = rss_kb(p.pid)
    print("\nidle VmRSS, concurrency 1: %d KiB (target <= 4096 KiB)" % rss)
    assert rss <= 4096, "VmRSS %d KiB" % rss
    # Most of what that budget saves: without TLS in the config, OpenSSL is never loaded.
    with open("/proc/%d/maps" % p.pid) as f:
        maps = f.read()
    assert "libssl" not in maps and "libcrypto" not in maps


def test_openssl_loaded_only_for_tls_and_its_absence_refuses_a_tls_config(tmp_path):
    """petrel does not link OpenSSL (tls/openssl.c loads it for the first TLS context): with a
    broken libssl.so.3 first on the library path, a config without TLS still validates, and one
    with a TLS server is refused with the loader's reason."""
    from certs import make_ca, make_leaf
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "libssl.so.3").write_bytes(b"not a library")
    env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    plain, tls = tmp_path / "plain.yaml", tmp_path / "tls.yaml"
    plain.write_text(to_yaml(direct_config(free_port())))
    cert, key = make_leaf(str(tmp_path), "edge", make_ca(str(tmp_path), "ca"), ["example.com"],
                          client=False)
    tls.write_text(to_yaml([
        {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
         "spec": {"servers": [{"port": {"number": free_port(), "name": "https",
                                        "protocol": "HTTPS"}, "hosts": ["*"],
                               "tls": {"mode": "SIMPLE", "serverCertificate": cert,
                                       "privateKey": key}}]}}]))
    ok = run_petrel(["validate", str(plain)], env=env)
    assert ok.returncode == 0, ok.stderr
    bad = run_petrel(["validate", str(tls)], env=env)
    assert bad.returncode == 1, bad.stderr
    assert "cannot load OpenSSL: " in bad.stderr and str(libdir / "libssl.so.3") in bad.stderr, \
        bad.stderr
    # and with the system's OpenSSL the same config is valid
    good = run_petrel(["validate", str(tls)])
    assert good.returncode == 0, good.stderr
