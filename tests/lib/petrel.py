"""tests/lib/petrel.py -- runs the petrel binary under test with a generated config.

    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    p = Petrel(tmp_path, docs, concurrency=2)
    p.start()                  # returns once GET http://127.0.0.1:<admin>/ready answers 200
    ... drive p.port ...
    p.stop_and_check()         # SIGTERM; asserts exit status 0 and no sanitizer report

The binary is $PETREL_BIN (the Makefile's e2e target sets it), else build/petrel. The config
directory holds 00-proxy.yaml (the Petrel `Proxy` doc: bindAddress 127.0.0.1, an ephemeral
adminPort, concurrency, accessLog in the work dir) and 10-test.yaml (the docs the test gives, as
dicts or YAML strings). Output goes to files in the work dir, never to pipes that could fill up.

Docs that carry their own Proxy doc (a bundled config such as config/examples/petrel.yaml,
its fixed ports swapped for free ones by with_free_ports()) are written as they are, and the
admin port is the one they name.

Helpers the test files share: need_petrel() (skip, or fail under PETREL_BIN, without a
binary), stats(p) / parse_stats(body) (the admin /stats counters as a dict), and
wait_log(p, n) (the access-log lines once there are n, failing after a timeout).
"""

import os
import re
import signal
import subprocess
import time

import yaml

from netutil import free_port, http_request, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Substrings of a sanitizer report on stderr. Any one of them fails the test.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "AddressSanitizer:",
    "UndefinedBehaviorSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

ISTIO = "networking.istio.io/v1"


def petrel_bin():
    """The binary under test: $PETREL_BIN, else <repo>/build/petrel."""
    return os.environ.get("PETREL_BIN") or os.path.join(REPO, "build", "petrel")


_sanitized = {}


def is_sanitizer_build():
    """True when the binary under test carries a sanitizer runtime: RSS and timing budgets do
    not apply to it (ASan's quarantine alone holds up to 256 MB of freed memory)."""
    b = petrel_bin()
    if b not in _sanitized:
        with open(b, "rb") as f:
            data = f.read()
        _sanitized[b] = b"__asan_init" in data or b"__tsan_init" in data
    return _sanitized[b]


def need_petrel():
    """Skips the calling test when the binary is missing; fails it when PETREL_BIN names
    one that is not executable (a broken `make e2e` must not pass as all-skipped)."""
    import pytest  # here, not at the top: tests/bench uses this module without pytest

    b = petrel_bin()
    if not os.access(b, os.X_OK):
        if os.environ.get("PETREL_BIN"):
            pytest.fail("PETREL_BIN=%s is not an executable" % b)
        pytest.skip("petrel binary not built (%s); run `make e2e`" % b)


def parse_stats(body):
    """{name: int} from the admin /stats body (`name: value` per line)."""
    out = {}
    for line in body.decode().splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip().lstrip("-").isdigit():
            out[name.strip()] = int(value.strip())
    return out


def stats(p):
    """Petrel p's /stats counters as a dict of ints (asserts the admin port answers 200)."""
    st, body = p.admin_get("/stats")
    assert st == 200, body
    return parse_stats(body)


def wait_log(p, n, timeout=5.0):
    """The access-log lines of p once there are at least n (fails after timeout)."""
    wait_until(lambda: len(p.access_log_lines()) >= n, timeout, what="%d access log lines" % n)
    return p.access_log_lines()


def to_yaml(docs):
    """A multi-document YAML string from dicts (dumped in key order) and YAML strings."""
    parts = []
    for d in docs:
        if isinstance(d, str):
            parts.append(d.strip("\n") + "\n")
        else:
            parts.append(yaml.safe_dump(d, sort_keys=False, default_flow_style=False))
    return "---\n".join(parts)


def proxy_doc(admin_port, access_log, concurrency=2, bind="127.0.0.1", **spec):
    """The Petrel bootstrap document; extra keyword arguments become spec fields."""
    s = {"bindAddress": bind, "adminPort": admin_port, "concurrency": concurrency,
         "accessLog": str(access_log)}
    if "sidecar" in spec:  # a sidecar's default is Istio's fixed 15090 and 15021: off here
        s.update({"prometheusPort": 0, "healthPort": 0})
    s.update(spec)
    return {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "proxy"},
            "spec": s}


def gateway_doc(servers, name="edge"):
    """servers: a list of (port, protocol) pairs, e.g. [(8080, "HTTP"), (9000, "TCP")]."""
    return {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": name},
            "spec": {"servers": [
                {"port": {"number": port, "name": "%s-%d" % (proto.lower(), port), "protocol": proto},
                 "hosts": ["*"]} for port, proto in servers]}}


def service_entry_doc(host, endpoint_ports, port=80, protocol="HTTP", name=None, address="127.0.0.1"):
    """A STATIC MESH_EXTERNAL ServiceEntry for host:port whose endpoints are address:p for each
    p in endpoint_ports (an int or a list)."""
    if isinstance(endpoint_ports, int):
        endpoint_ports = [endpoint_ports]
    pname = protocol.lower()
    return {"apiVersion": ISTIO, "kind": "ServiceEntry",
            "metadata": {"name": name or host.replace(".", "-")},
            "spec": {"hosts": [host],
                     "ports": [{"number": port, "name": pname, "protocol": protocol}],
                     "resolution": "STATIC", "location": "MESH_EXTERNAL",
                     "endpoints": [{"address": address, "ports": {pname: p}} for p in endpoint_ports]}}


def simple_config(http_port, upstream_port, tcp_port=None, tcp_upstream_port=None,
                  upstream_host="web.local", tcp_host="echo.local", http_route=None, name="web"):
    """One Gateway ("edge") with an HTTP server on http_port (and a TCP server on tcp_port),
    one VirtualService routing all HTTP to upstream_host:80 (and tcp_port to tcp_host:7), and
    the ServiceEntries putting those on 127.0.0.1:upstream_port (an int or a list of ports, one
    endpoint each) and 127.0.0.1:tcp_upstream_port. http_route, a dict, is merged into the HTTP
    route (e.g. {"timeout": "1s", "retries": {...}}). Returns the list of docs."""
    servers = [(http_port, "HTTP")]
    if tcp_port is not None:
        servers.append((tcp_port, "TCP"))
    route = {"route": [{"destination": {"host": upstream_host, "port": {"number": 80}}}]}
    route.update(http_route or {})
    vs_spec = {"hosts": ["*"], "gateways": ["edge"], "http": [route]}
    docs = [gateway_doc(servers)]
    if tcp_port is not None:
        vs_spec["tcp"] = [{"match": [{"port": tcp_port}],
                           "route": [{"destination": {"host": tcp_host, "port": {"number": 7}}}]}]
    docs.append({"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
                 "spec": vs_spec})
    docs.append(service_entry_doc(upstream_host, upstream_port, name=name))
    if tcp_port is not None:
        docs.append(service_entry_doc(tcp_host, tcp_upstream_port, port=7, protocol="TCP",
                                      name=tcp_host.replace(".", "-")))
    return docs


def with_free_ports(text, ports):
    """text (a config) with each port number in ports, as a whole word, replaced by a free
    ephemeral port; returns (new text, {old: new}). Fails if text lacks one of them."""
    mapping = {}
    for old in ports:
        assert re.search(r"\b%d\b" % old, text), "the config no longer uses port %d" % old
        mapping[old] = free_port()
        text = re.sub(r"\b%d\b" % old, str(mapping[old]), text)
    return text, mapping


def proxy_spec_of(docs):
    """The spec of the Proxy doc among docs (dicts or YAML strings), or None."""
    for d in docs:
        for doc in (yaml.safe_load_all(d) if isinstance(d, str) else [d]):
            if isinstance(doc, dict) and doc.get("kind") == "Proxy":
                return doc.get("spec") or {}
    return None


def gateway_ports(docs):
    """[(port, protocol)] of every Gateway server in docs (dicts or YAML strings)."""
    out = []
    for d in docs:
        for doc in (yaml.safe_load_all(d) if isinstance(d, str) else [d]):
            if isinstance(doc, dict) and doc.get("kind") == "Gateway":
                for s in (doc.get("spec") or {}).get("servers") or []:
                    p = s.get("port") or {}
                    out.append((int(p.get("number")), str(p.get("protocol", "HTTP")).upper()))
    return out


def sanitizer_report(text):
    """The first sanitizer marker found in text, or None."""
    for m in SANITIZER_MARKERS:
        if m in text:
            return m
    return None


def sanitized(pid):
    """True for a Petrel built with AddressSanitizer or ThreadSanitizer (make asan, make tsan):
    their shadow memory, redzones and quarantine are not Petrel's memory."""
    with open("/proc/%d/maps" % pid) as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def run_petrel(args, timeout=30, env=None):
    """Runs `petrel ARGS...` to completion; returns CompletedProcess (text stdout/stderr)."""
    return subprocess.run([petrel_bin()] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env)


class Petrel:
    """One petrel process with its own work dir, config dir and admin port."""

    def __init__(self, workdir, docs=(), concurrency=2, proxy_spec=None, binary=None, env=None,
                 extra_args=(), ready_timeout=15.0, command_prefix=()):
        self.workdir = str(workdir)
        self.config_dir = os.path.join(self.workdir, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self.admin_port = free_port()
        self.access_log = os.path.join(self.workdir, "access.log")
        self.stdout_path = os.path.join(self.workdir, "petrel.stdout")
        self.stderr_path = os.path.join(self.workdir, "petrel.stderr")
        self.concurrency = concurrency
        self.proxy_spec = dict(proxy_spec or {})
        self.binary = binary or petrel_bin()
        self.env = env
        self.extra_args = list(extra_args)
        self.command_prefix = list(command_prefix)  # e.g. ["taskset", "-c", "0"] (it execs)
        self.ready_timeout = ready_timeout
        self.proc = None
        self.returncode = None
        self.start_time = None
        self.ready_after = None  # seconds from spawn to the first 200 from /ready
        self.docs = list(docs)
        self.write_config(self.docs)

    # -- config ---------------------------------------------------------------------------
    def write_config(self, docs=None):
        """(Re)writes the config dir; each file is replaced atomically (write, then rename),
        so a running petrel's directory watch sees whole files only."""
        if docs is not None:
            self.docs = list(docs)
        own = proxy_spec_of(self.docs)
        if own is None:
            pdoc = proxy_doc(self.admin_port, self.access_log, self.concurrency, **self.proxy_spec)
            self._write("00-proxy.yaml", to_yaml([pdoc]))
        else:
            self.admin_port = own.get("adminPort", 15000)
        self._write("10-test.yaml", to_yaml(self.docs))

    def _write(self, name, text):
        tmp = os.path.join(self.workdir, "." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.config_dir, name))

    @property
    def ports(self):
        """The Gateway listener ports, in config order."""
        return [p for p, _ in gateway_ports(self.docs)]

    @property
    def port(self):
        """The first HTTP listener port."""
        for p, proto in gateway_ports(self.docs):
            if proto in ("HTTP", "HTTP2", "HTTPS", "GRPC", "GRPC-WEB"):
                return p
        raise LookupError("no HTTP server in the Gateway docs")

    @property
    def tcp_port(self):
        for p, proto in gateway_ports(self.docs):
            if proto in ("TCP", "TLS"):
                return p
        raise LookupError("no TCP server in the Gateway docs")

    @property
    def pid(self):
        return self.proc.pid

    # -- process --------------------------------------------------------------------------
    def start(self, wait=True):
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError("petrel binary %s not found (set PETREL_BIN)" % self.binary)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.start_time = time.monotonic()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command_prefix + [self.binary, "run", "-c", self.config_dir] + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=self.workdir)
        if wait:
            self.wait_ready()
        return self

    def admin_get(self, path, timeout=2.0):
        """(status, body bytes) of GET path on the admin port."""
        status, _, body = http_request(self.admin_port, "GET", path, timeout=timeout,
                                       host_header="127.0.0.1:%d" % self.admin_port)
        return status, body

    def wait_ready(self, timeout=None):
        """Polls /ready until it answers 200; fails at once if the process exits."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        interval = 0.005
        last = "no answer"
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise AssertionError("petrel exited with status %d before it was ready\n%s"
                                     % (rc, self.output_tail()))
            try:
                status, body = self.admin_get("/ready", timeout=1.0)
                if status == 200:
                    self.ready_after = time.monotonic() - self.start_time
                    return
                last = "status %d: %r" % (status, body[:200])
            except (OSError, ValueError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise AssertionError("petrel not ready after %.1f s (last: %s)\n%s"
                                     % (timeout or self.ready_timeout, last, self.output_tail()))
            time.sleep(interval)
            interval = min(interval * 2, 0.05)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM and wait; SIGKILL after timeout. Returns the exit status (negative for a
        signal) and a list of problems (empty when it exited 0 cleanly)."""
        problems = []
        if self.proc is None:
            return None, problems
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                problems.append("did not exit within %.0f s of SIGTERM (killed)" % timeout)
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        if self.returncode != 0:
            problems.append("exit status %d" % self.returncode)
        marker = sanitizer_report(self.stderr())
        if marker:
            problems.append("sanitizer report on stderr (%r)" % marker)
        return self.returncode, problems

    def stop_and_check(self, timeout=10.0):
        """stop(), then raise AssertionError with the output if anything was wrong."""
        _, problems = self.stop(timeout)
        if problems:
            raise AssertionError("petrel (%s): %s\n%s" % (self.workdir, "; ".join(problems),
                                                           self.output_tail(200)))

    def check_alive(self):
        """Raises if the process has died (e.g. crashed on the last request)."""
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError("petrel died with status %d\n%s" % (rc, self.output_tail()))

    # -- output ---------------------------------------------------------------------------
    def stdout(self):
        return _read_text(self.stdout_path)

    def stderr(self):
        return _read_text(self.stderr_path)

    def output_tail(self, lines=60):
        def tail(text):
            return "\n".join(text.splitlines()[-lines:])
        return "--- stdout ---\n%s\n--- stderr ---\n%s" % (tail(self.stdout()), tail(self.stderr()))

    def access_log_lines(self):
        return _read_text(self.access_log).splitlines()

    def wait_access_log(self, n, timeout=5.0):
        """Waits until the access log has at least n lines (it may be written after the
        response); returns the lines."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.access_log_lines()
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.01)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.stop_and_check()
        else:
            self.stop()  # do not hide the exception in flight


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
