"""tests/e2e/test_58_fd_limits.py -- running out of file descriptors, end to end.

Petrel started under `prlimit --nofile=SOFT:HARD` raises its soft limit to the hard one and
warns when maxConnections cannot fit. With more idle clients than descriptors: accepting
pauses (no spin: the CPU stays low), the refusals are logged once per interval and counted
(/stats and Prometheus), the connections already open keep being answered, the admin port
answers, accepting resumes by itself once the clients go, and SIGTERM exits promptly.
"""

import re
import socket
import time

from netutil import (CLOCK_TICKS, build_request, connect, cpu_ticks, free_port, header,
                     recv_one, wait_until)
from petrel import simple_config, stats

LIMIT = 128


def soft_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        m = re.search(r"^Max open files\s+(\d+)\s+(\d+)", f.read(), re.M)
    return int(m.group(1))


def get(sock):
    sock.sendall(build_request("/echo", [("Host", "example.com")]))
    status, hdrs, _ = recv_one(sock, timeout=5)
    return status, header(hdrs, "x-origin")


def prom(p, name):
    st, body = p.admin_get("/stats/prometheus")
    assert st == 200
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    assert m, name
    return int(m.group(1))


def test_soft_limit_raised_and_max_connections_checked(petrel, origin):
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
               command_prefix=["prlimit", "--nofile=64:%d" % LIMIT, "--"])
    assert soft_limit(p.pid) == LIMIT
    assert ("spec.maxConnections 10000 does not fit in the descriptor limit %d" % LIMIT
            in p.stderr()), p.stderr()


def start_limited(petrel, origin):
    """A petrel with LIMIT descriptors; returns it and its HTTP port."""
    port = free_port()
    p = petrel(simple_config(http_port=port, upstream_port=origin.port), concurrency=2,
               command_prefix=["prlimit", "--nofile=%d:%d" % (LIMIT, LIMIT), "--"],
               proxy_spec={"maxConnections": 100})
    return p, port


def exhaust(p, port):
    """More idle clients than descriptors: the kernel completes each handshake, Petrel takes
    what fits and leaves the rest waiting (or closes them: refused). Returns the sockets."""
    extra = []
    for _ in range(LIMIT + 20):
        extra.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    wait_until(lambda: stats(p)["downstream_cx_fd_exhausted"] >= 1, timeout=10,
               what="an accept refused for lack of descriptors")
    return extra


def test_sigterm_while_out_of_descriptors_exits_promptly(petrel, origin):
    p, port = start_limited(petrel, origin)
    extra = exhaust(p, port)
    try:
        t0 = time.monotonic()
        p.stop_and_check(timeout=10)
        assert time.monotonic() - t0 < 5
    finally:
        for s in extra:
            s.close()


def test_out_of_descriptors_pauses_accepting_and_recovers(petrel, origin):
    p, port = start_limited(petrel, origin)
    held = [connect(port) for _ in range(10)]
    extra = []
    try:
        for s in held:
            assert get(s) == (200, "origin")
        extra = exhaust(p, port)
        # No spin: while the clients stay, Petrel's CPU stays low (2 s window).
        before, t0 = cpu_ticks(p.pid), time.monotonic()
        time.sleep(2)
        used = (cpu_ticks(p.pid) - before) / CLOCK_TICKS / (time.monotonic() - t0)
        assert used < 0.25, "petrel used %.0f%% CPU while out of descriptors" % (used * 100)
        # Connections already open are still served, and the admin port answers.
        for s in held:
            assert get(s) == (200, "origin")
        assert prom(p, "petrel_downstream_cx_fd_exhausted_total") >= 1
        lines = re.findall(r"cannot accept connections: Too many open files.*", p.stderr())
        assert 1 <= len(lines) <= 2, lines  # logged once per 10 s, not per attempt
        assert "descriptor limit %d, the last 32 kept in reserve" % LIMIT in lines[0]
        # The extra clients leave: new clients are served again, without any nudge.
        for s in extra:
            s.close()
        extra = []

        def served():
            try:
                s = connect(port, timeout=2)
                try:
                    return get(s) == (200, "origin")
                finally:
                    s.close()
            except OSError:
                return False
        wait_until(served, timeout=15, interval=0.2, what="a new client served again")
    finally:
        for s in held + extra:
            s.close()
    t0 = time.monotonic()
    p.stop_and_check(timeout=10)
    assert time.monotonic() - t0 < 5
