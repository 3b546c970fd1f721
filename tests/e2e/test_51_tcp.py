"""tests/e2e/test_51_tcp.py -- TCP routes (VirtualService `tcp:`), end to end.

Petrel relays bytes between a client and the route's upstream: both directions at once with
backpressure (1 MB each way on several connections), half-close in either direction
(client-first shutdown(SHUT_WR); a server-first protocol whose upstream sends a banner and
closes), and an unreachable upstream (the client is closed promptly, upstream_cx_connect_fail
counts it).
"""

import socket
import threading
import time

from netutil import connect, free_port, pattern_bytes, recv_exact, recv_to_eof, wait_until
from petrel import simple_config, stats
from upstream import BannerServer, SlowEcho


# -- helpers local to this file ------------------------------------------------------------

def wait_stat(p, name, want, timeout=3.0):
    """Waits until counter name reaches want, then returns its value (which may be higher)."""
    wait_until(lambda: stats(p).get(name, 0) >= want, timeout,
               what="%s >= %d (now %s)" % (name, want, stats(p).get(name)))
    return stats(p)[name]


# -- 10. bytes both ways, several connections ---------------------------------------------

def test_tcp_relays_1mb_both_ways_concurrently(proxied):
    p, echo = proxied.petrel, proxied.echo
    before = stats(p)
    n_conns = 6
    size = 1 << 20
    errors = []
    results = {}

    def one(i):
        try:
            s = connect(proxied.tcp_port)
            data = pattern_bytes(i * 7, size)  # a different offset per connection
            sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
            sender.start()  # send and receive at once: the relay must not deadlock
            got = recv_exact(s, size, timeout=20)
            sender.join(20)
            assert not sender.is_alive()
            results[i] = got == data
            # nothing beyond the echo: the connection is quiet until we close
            s.settimeout(0.05)
            try:
                extra = s.recv(10)
            except socket.timeout:
                extra = None
            results[i] = results[i] and extra is None
            s.close()
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append("conn %d: %r" % (i, e))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n_conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "relay hung"
    assert not errors, errors
    assert results == {i: True for i in range(n_conns)}
    wait_until(lambda: echo.bytes_received >= n_conns * size, 5, what="echo byte count")
    assert echo.connections == n_conns and echo.bytes_received == n_conns * size

    total = n_conns * size
    assert wait_stat(p, "tcp_cx_total", before["tcp_cx_total"] + n_conns) == \
        before["tcp_cx_total"] + n_conns
    assert wait_stat(p, "tcp_bytes_received", before["tcp_bytes_received"] + total) == \
        before["tcp_bytes_received"] + total
    assert wait_stat(p, "tcp_bytes_sent", before["tcp_bytes_sent"] + total) == \
        before["tcp_bytes_sent"] + total
    # every relay is torn down once the clients closed
    wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 5, what="tcp_cx_active back to 0")


# -- 11. half-close from the client ---------------------------------------------------------

def test_tcp_half_close_from_client(proxied):
    echo = proxied.echo
    data = pattern_bytes(3, 300_000)
    s = connect(proxied.tcp_port)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got, how = recv_to_eof(s, timeout=10)
    s.close()
    assert how == "eof"
    assert len(got) == len(data) and got == data
    # the upstream saw a clean EOF (a half-close, not a reset) after every byte
    wait_until(lambda: echo.half_closed == 1, 5, what="echo server to see the client's EOF")
    assert echo.connections == 1 and echo.bytes_received == len(data)


def test_tcp_half_close_keeps_the_other_direction_open(petrel, origin):
    """After the client's FIN the upstream can still talk: a slow echo arrives after it."""
    slow = SlowEcho(delay=0.3)
    try:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port,
                                 tcp_port=free_port(), tcp_upstream_port=slow.port))
        s = connect(p.tcp_port)
        s.sendall(b"hello after fin")
        s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        got, how = recv_to_eof(s, timeout=5)
        s.close()
        assert (got, how) == (b"hello after fin", "eof")
        assert time.monotonic() - t0 >= 0.25  # the reply really came after our FIN
    finally:
        slow.stop()


# -- 12. unreachable upstream -------------------------------------------------------------------

def test_tcp_upstream_connect_failure_closes_client(petrel, origin):
    dead_port = free_port()  # nothing listens there
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port,
                             tcp_port=free_port(), tcp_upstream_port=dead_port))
    before = stats(p).get("upstream_cx_connect_fail", 0)
    for i in range(2):
        s = connect(p.tcp_port)
        s.sendall(b"anyone there?")
        t0 = time.monotonic()
        got, how = recv_to_eof(s, timeout=3)  # raises on a hang
        elapsed = time.monotonic() - t0
        s.close()
        assert got == b"", got
        assert elapsed < 1.0, "client closed only after %.2f s" % elapsed
    assert wait_stat(p, "upstream_cx_connect_fail", before + 2) == before + 2
    wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 3, what="tcp_cx_active back to 0")
    p.check_alive()


# -- 13. upstream closes first (server-speaks-first) ---------------------------------------------

def test_tcp_upstream_banner_then_close(petrel, origin):
    banner = b"220 petrel-test ESMTP ready\r\n"
    srv = BannerServer(banner)
    try:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port,
                                 tcp_port=free_port(), tcp_upstream_port=srv.port))
        for _ in range(3):
            s = connect(p.tcp_port)
            # the client says nothing: the upstream speaks first, then closes
            got, how = recv_to_eof(s, timeout=5)
            assert (got, how) == (banner, "eof")
            s.close()
        assert srv.connections == 3
        wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 3, what="tcp_cx_active back to 0")
    finally:
        srv.stop()


def test_tcp_upstream_close_first_then_client_still_sends(petrel, origin):
    """The upstream's FIN reaches the client while the client keeps its side open; the client
    can still send (the upstream reads it), then closes: no hang, no leak."""
    banner = b"+OK hello\r\n"
    srv = BannerServer(banner)
    try:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port,
                                 tcp_port=free_port(), tcp_upstream_port=srv.port))
        s = connect(p.tcp_port)
        got, how = recv_to_eof(s, timeout=5)
        assert (got, how) == (banner, "eof")
        try:
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass  # the relay may already have closed the whole connection: also acceptable
        s.close()
        wait_until(lambda: stats(p)["tcp_cx_active"] == 0, 3, what="tcp_cx_active back to 0")
        p.check_alive()
    finally:
        srv.stop()
