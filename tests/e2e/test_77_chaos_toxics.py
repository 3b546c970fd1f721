"""Chaos proxies' TCP toxics (filters/chaos/toxics.c), measured against a toxic-free baseline.

Each test starts Petrel with the Toxiproxy-compatible API on (spec.chaosApi), makes a chaos proxy
in front of a real TCP echo server on 127.0.0.1 and checks what a toxic promises: latency within
5 ms of the baseline (jitter within its bounds), bandwidth within 10 %, slice sizes within the
slicer's bounds, a real RST, exactly N bytes then EOF, the toxicity ratio over 1,000 connections
within 5 points, and toxics that change under open connections. Times are monotonic, medians of
several samples against a baseline taken in the same test, so a loaded machine shifts both.
"""

import socket
import statistics
import time

import pytest

from chaos import ChaosApi, chaos_proxy_spec
from netutil import connect, free_port, recv_exact, recv_to_eof, wait_until


@pytest.fixture
def chaos(petrel, tcp_echo):
    api_port = free_port()
    p = petrel([], proxy_spec=chaos_proxy_spec(api_port))
    api = ChaosApi(api_port)
    api.echo = tcp_echo
    api.petrel = p
    return api


def rtt_ms(sock, payload=b"ping"):
    t0 = time.monotonic()
    sock.sendall(payload)
    recv_exact(sock, len(payload), 5.0)
    return (time.monotonic() - t0) * 1000.0


def rtts(port, n):
    """n round trips on one connection, in ms."""
    s = connect(port)
    try:
        return [rtt_ms(s) for _ in range(n)]
    finally:
        s.close()


def test_no_toxic_relays_both_ways(chaos):
    port = chaos.proxy("plain", chaos.echo.port)
    s = connect(port)
    data = bytes(range(256)) * 1024
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got, how = recv_to_eof(s, 10)
    s.close()
    assert got == data and how == "eof"


def test_latency_within_5ms(chaos):
    port = chaos.proxy("lat", chaos.echo.port)
    base = statistics.median(rtts(port, 30))
    chaos.toxic("lat", "latency", latency=50)
    added = statistics.median(rtts(port, 30)) - base
    assert abs(added - 50) <= 5, "added %.2f ms (baseline %.2f ms)" % (added, base)
    # Both directions add up.
    chaos.toxic("lat", "latency", stream="upstream", latency=20)
    added = statistics.median(rtts(port, 20)) - base
    assert abs(added - 70) <= 5, "added %.2f ms, both directions" % added


def test_latency_jitter_within_bounds(chaos):
    port = chaos.proxy("jit", chaos.echo.port)
    base = statistics.median(rtts(port, 20))
    chaos.toxic("jit", "latency", latency=60, jitter=20)
    samples = [r - base for r in rtts(port, 100)]
    # Never early; late only when the loaded machine stalls a process (a few samples).
    assert min(samples) >= 40 - 5, samples
    inside = [x for x in samples if x <= 80 + 5]
    assert len(inside) >= 90, samples
    # Uniform over 60 +- 20: a standard deviation of 11.5 ms, a mean of 60 (the mean of 90
    # samples varies by about 1.2 ms).
    assert statistics.pstdev(inside) >= 8, "too little jitter: %r" % samples
    assert abs(statistics.mean(inside) - 60) <= 5, samples


def test_bandwidth_within_10_percent(chaos):
    port = chaos.proxy("bw", chaos.echo.port)
    rate_kbps = 400  # KB/s, 1 KB = 1000 bytes
    chaos.toxic("bw", "bandwidth", rate=rate_kbps)
    n = 800_000  # 2 s at the rate
    s = connect(port)
    t0 = time.monotonic()
    s.sendall(b"x" * n)
    recv_exact(s, n, 20)
    secs = time.monotonic() - t0
    s.close()
    measured = n / secs / 1000
    assert abs(measured - rate_kbps) <= rate_kbps * 0.10, "%.1f KB/s" % measured


def test_slicer_sizes_within_bounds(chaos):
    port = chaos.proxy("slice", chaos.echo.port)
    chaos.toxic("slice", "slicer", average_size=100, size_variation=20, delay=30000)
    s = connect(port)
    s.sendall(b"y" * 600)
    sizes = []
    deadline = time.monotonic() + 10
    while sum(sizes) < 600 and time.monotonic() < deadline:
        s.settimeout(deadline - time.monotonic())
        sizes.append(len(s.recv(65536)))
    s.close()
    assert sum(sizes) == 600
    # Every slice but the last of a chunk is within 100 +- 20; the last holds what is left.
    assert len(sizes) >= 5, sizes
    assert all(80 <= n <= 120 for n in sizes[:-1]), sizes
    assert 1 <= sizes[-1] <= 120, sizes


def test_reset_peer_is_a_real_rst(chaos):
    port = chaos.proxy("rst", chaos.echo.port)
    chaos.toxic("rst", "reset_peer", timeout=150)
    s = connect(port)
    t0 = time.monotonic()
    rtt_ms(s)  # relays until the timeout
    with pytest.raises(ConnectionResetError):
        s.settimeout(5)
        while s.recv(65536):
            pass
    elapsed = (time.monotonic() - t0) * 1000
    s.close()
    assert elapsed >= 150 - 5, elapsed


def test_limit_data_exactly_n_bytes_then_close(chaos):
    port = chaos.proxy("limit", chaos.echo.port)
    chaos.toxic("limit", "limit_data", bytes=1000)
    s = connect(port)
    s.sendall(b"z" * 5000)
    got, how = recv_to_eof(s, 10)
    s.close()
    assert len(got) == 1000 and how == "eof"


def test_timeout_drops_then_closes(chaos):
    port = chaos.proxy("to", chaos.echo.port)
    chaos.toxic("to", "timeout", timeout=200)
    s = connect(port)
    t0 = time.monotonic()
    s.sendall(b"lost")
    got, how = recv_to_eof(s, 10)
    elapsed = (time.monotonic() - t0) * 1000
    s.close()
    assert got == b"" and how == "eof" and elapsed >= 200 - 5, (got, how, elapsed)


def test_timeout_zero_holds_until_removed(chaos):
    port = chaos.proxy("hold", chaos.echo.port)
    chaos.toxic("hold", "timeout", timeout=0)
    s = connect(port)
    s.sendall(b"dropped")
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(100)
    chaos.ok("DELETE", "/proxies/hold/toxics/timeout_downstream")
    # The open connection flows again; what was dropped stays dropped.
    assert wait_until(lambda: rtt_ms(s) is not None, timeout=5)
    s.close()


def test_slow_close_delays_the_end(chaos):
    port = chaos.proxy("slow", chaos.echo.port)
    chaos.toxic("slow", "slow_close", delay=300)
    s = connect(port)
    t0 = time.monotonic()
    s.sendall(b"bye")
    s.shutdown(socket.SHUT_WR)
    assert recv_exact(s, 3, 5) == b"bye"
    data_ms = (time.monotonic() - t0) * 1000
    got, how = recv_to_eof(s, 5)
    eof_ms = (time.monotonic() - t0) * 1000
    s.close()
    assert how == "eof" and data_ms < 150 and eof_ms >= 300 - 5, (data_ms, eof_ms)


def affected(port):
    """One connection: True when the limit_data 0 toxic ended it before the echo came back."""
    s = connect(port)
    try:
        s.sendall(b"x")
        s.shutdown(socket.SHUT_WR)
        got, _ = recv_to_eof(s, 5)
        return got == b""
    finally:
        s.close()


def test_toxicity_ratio_over_1000_connections(chaos):
    port = chaos.proxy("ratio", chaos.echo.port)
    chaos.toxic("ratio", "limit_data", toxicity=0.3, bytes=0)
    hits = sum(affected(port) for _ in range(1000))
    # 1000 draws at p = 0.3: mean 300, sd 14.5; +-75 is beyond 5 sd.
    assert 225 <= hits <= 375, "%d of 1000" % hits


def test_toxicity_zero_never_fires(chaos):
    port = chaos.proxy("never", chaos.echo.port)
    chaos.toxic("never", "limit_data", toxicity=0, bytes=0)
    assert not any(affected(port) for _ in range(300))


def test_toxics_change_open_connections(chaos):
    port = chaos.proxy("live", chaos.echo.port)
    s = connect(port)
    base = statistics.median([rtt_ms(s) for _ in range(10)])
    chaos.toxic("live", "latency", latency=80)
    slow = statistics.median([rtt_ms(s) for _ in range(5)])
    chaos.ok("DELETE", "/proxies/live/toxics/latency_downstream")
    fast = statistics.median([rtt_ms(s) for _ in range(10)])
    s.close()
    assert abs(slow - base - 80) <= 5, (base, slow)
    assert fast - base <= 5, (base, fast)


def test_disabled_proxy_refuses_and_closes(chaos):
    port = chaos.proxy("down", chaos.echo.port)
    s = connect(port)
    rtt_ms(s)
    chaos.ok("POST", "/proxies/down", {"enabled": False})
    got, how = recv_to_eof(s, 5)  # the open session ends
    s.close()
    with pytest.raises(ConnectionRefusedError):
        connect(port, timeout=2)
    p = chaos.ok("POST", "/proxies/down", {"enabled": True})
    assert p["enabled"] is True and p["listen"].endswith(":%d" % port)
    s = connect(port)
    rtt_ms(s)
    s.close()


def chaos_metric(chaos, name, proxy, toxic):
    status, body = chaos.petrel.admin_get("/stats/prometheus")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and 'proxy="%s",toxic="%s"' % (proxy, toxic) in line:
            return int(line.rsplit(" ", 1)[1])
    return None


def test_ttl_removes_the_toxic(chaos):
    port = chaos.proxy("ttl", chaos.echo.port)
    t0 = time.monotonic()
    t = chaos.ok("POST", "/proxies/ttl/toxics",
                 {"type": "latency", "attributes": {"latency": 60}, "ttl_ms": 600})
    assert t["ttl_ms"] == 600
    s = connect(port)
    assert rtt_ms(s) >= 55  # in force
    wait_until(lambda: chaos.ok("GET", "/proxies/ttl/toxics") == [], timeout=5, what="expiry")
    assert time.monotonic() - t0 >= 0.6 - 0.005
    assert statistics.median([rtt_ms(s) for _ in range(5)]) < 30  # the open session too
    s.close()


def test_max_hits_caps_the_blast_radius(chaos):
    port = chaos.proxy("cap", chaos.echo.port)
    chaos.ok("POST", "/proxies/cap/toxics",
             {"name": "cut", "type": "limit_data", "attributes": {"bytes": 0}, "max_hits": 5})
    assert sum(affected(port) for _ in range(30)) == 5
    assert chaos_metric(chaos, "petrel_chaos_toxic_hits_total", "cap", "cut") == 5


def test_dry_run_counts_and_affects_nothing(chaos):
    port = chaos.proxy("dry", chaos.echo.port)
    chaos.ok("POST", "/proxies/dry/toxics", {"name": "cut", "type": "limit_data",
                                             "attributes": {"bytes": 0}, "toxicity": 0.5,
                                             "dry_run": True})
    assert not any(affected(port) for _ in range(200))
    would = chaos_metric(chaos, "petrel_chaos_toxic_dry_run_hits_total", "dry", "cut")
    assert 70 <= would <= 130, would  # 200 connections at 0.5
    assert chaos_metric(chaos, "petrel_chaos_toxic_hits_total", "dry", "cut") == 0


def test_sessions_are_in_the_access_log_with_their_toxics(chaos):
    port = chaos.proxy("logged", chaos.echo.port)
    chaos.toxic("logged", "limit_data", bytes=0, name="cut")
    assert affected(port)
    chaos.ok("DELETE", "/proxies/logged/toxics/cut")
    assert not affected(port)
    lines = chaos.petrel.wait_access_log(2)
    # Envoy's TCP line: "- - TCP", no status, the flag and details, bytes received and sent
    # (past the toxics), the upstream, the chaos proxy as the route.
    hit = [l for l in lines if '"- - TCP" 0 FI chaos:cut 1 0 ' in l]
    clean = [l for l in lines if '"- - TCP" 0 - - 1 1 ' in l]
    assert len(hit) == 1 and len(clean) == 1, lines
    assert all(l.endswith(' "127.0.0.1:%d" - logged' % chaos.echo.port) for l in lines), lines
