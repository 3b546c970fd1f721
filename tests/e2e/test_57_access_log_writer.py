"""The access log written by its own thread (proxy/log_writer.c): every line reaches the file
whole after a normal stop (SIGTERM, SIGINT, /quitquitquit, with a reload on the way), lines of
two workers never interleave, and a file that takes nothing (a FIFO nobody reads, as a stalled
disk would) costs dropped lines, counted, never stalled requests or a hung stop."""

import http.client
import os
import re
import signal
import stat
import threading
import time

import pytest

from netutil import free_port, http_request, wait_until
from petrel import simple_config, stats

# Envoy's default text format as Petrel writes it (proxy/access_log.h); the path carries the
# request's number and the user agent a long known filler, so a line cut or mixed with another
# does not match.
FILLER = "f" * 1500
LINE = re.compile(r'^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /echo\?n=(\d+) HTTP/1\.1" '
                  r'200 - via_upstream 0 \d+ \d+ \d+ "-" "' + FILLER + r'" "[0-9a-f-]+" "[^"]+" '
                  r'"127\.0\.0\.1:\d+" outbound\|80\|\|web\.local web\.0$')


def send(port, numbers, errors):
    """GET /echo?n=<k> for each k on one keep-alive connection; failures go to errors."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for k in numbers:
            conn.request("GET", "/echo?n=%d" % k, headers={"User-Agent": FILLER})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append("request %d: status %d" % (k, resp.status))
    except (OSError, http.client.HTTPException) as e:
        errors.append("requests from %d: %r" % (numbers[0], e))
    finally:
        conn.close()


def send_concurrently(port, n, clients=8):
    """n requests over `clients` connections at once (SO_REUSEPORT spreads them over the
    workers); asserts that every one got its 200."""
    errors = []
    threads = [threading.Thread(target=send, args=(port, list(range(i, n, clients)), errors))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "requests still running after 120 s"
    assert not errors, errors[:5]


def numbers_of(lines):
    """The request numbers of lines; fails on any line that is not one whole line."""
    bad = [l[:120] + "..." for l in lines if not LINE.match(l)]
    assert not bad, "%d cut or mixed lines, e.g. %r" % (len(bad), bad[:3])
    return [int(LINE.match(l).group(1)) for l in lines]


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT", "quitquitquit"])
def test_every_line_is_written_whole_after_a_normal_stop(petrel, origin, stop):
    n = 600
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    send_concurrently(p.port, n // 2)
    p.signal(signal.SIGHUP)  # a reload on the way loses nothing either
    wait_until(lambda: "(SIGHUP)" in p.stderr(), timeout=10, what="the reload")
    send_concurrently(p.port, n // 2)
    assert stats(p)["access_log_dropped"] == 0
    if stop == "quitquitquit":
        assert http_request(p.admin_port, "POST", "/quitquitquit",
                            host_header="127.0.0.1:%d" % p.admin_port)[0] == 200
    else:
        p.signal(getattr(signal, stop))
    p.stop_and_check()
    numbers = numbers_of(p.access_log_lines())
    assert sorted(numbers) == sorted(list(range(n // 2)) * 2)


def stalled_fifo(tmp_path):
    """A FIFO held open for reading (so that petrel's open() returns) but not read."""
    path = str(tmp_path / "access.fifo")
    os.mkfifo(path)
    return path, os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def wait_streams_done(p):
    """Until every connection has ended (its lines are buffered or dropped by then)."""
    wait_until(lambda: stats(p)["downstream_cx_active"] == 0, timeout=10,
               what="connections to end")


def test_a_stalled_log_file_drops_lines_but_not_requests(petrel, origin, tmp_path):
    fifo, reader = stalled_fifo(tmp_path)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    try:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
                   concurrency=2, proxy_spec={"accessLog": fifo})
        # ~1.7 KB a line: 600 lines are more than the pipe (64 KiB) and both workers' buffers
        # (4 x 32 KiB each) hold, so the writer blocks and the workers must drop.
        n = 600
        send_concurrently(p.port, n)
        wait_streams_done(p)
        dropped = stats(p)["access_log_dropped"]
        assert dropped > 0
        _, _, prom = http_request(p.admin_port, "GET", "/stats/prometheus",
                                  host_header="127.0.0.1:%d" % p.admin_port)
        assert ("\npetrel_access_log_dropped_total %d\n" % dropped).encode() in prom
        # The file takes lines again: what was not dropped arrives whole, by the stop.
        os.set_blocking(reader, True)
        chunks = []
        drain = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(reader, 65536), b"")))
        drain.start()
        p.stop_and_check()
        drain.join(30)
        assert not drain.is_alive(), "the FIFO did not reach EOF after petrel exited"
    finally:
        os.close(reader)
    numbers = numbers_of(b"".join(chunks).decode().splitlines())
    assert len(numbers) + dropped == n
    assert len(set(numbers)) == len(numbers)


def test_a_stop_with_the_log_file_still_stalled_is_bounded(petrel, origin, tmp_path):
    fifo, reader = stalled_fifo(tmp_path)
    try:
        p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
                   concurrency=1, proxy_spec={"accessLog": fifo})
        send_concurrently(p.port, 300, clients=2)
        wait_streams_done(p)
        assert stats(p)["access_log_dropped"] > 0
        # The writer is stuck in write() for good: the stop gives up on it after a few seconds
        # (stop_and_check allows 10) and says what was lost.
        p.stop_and_check()
        assert re.search(r"access log .*: \d+ bytes of lines not written", p.stderr()), \
            p.output_tail()
    finally:
        os.close(reader)


def test_signals_during_the_stop_do_not_cut_it_short(petrel, origin):
    """Kubernetes sends SIGTERM after a preStop hook's /quitquitquit, and an impatient operator
    sends more: each one after the first is part of the same stop, and the last lines are
    still written. SIGTERMs go out every millisecond until the process has exited, so one
    lands in every phase of the stop, the final flush included."""
    n = 400
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port), concurrency=2)
    send_concurrently(p.port, n)
    assert http_request(p.admin_port, "POST", "/quitquitquit",
                        host_header="127.0.0.1:%d" % p.admin_port)[0] == 200
    deadline = time.monotonic() + 20
    while p.proc.poll() is None and time.monotonic() < deadline:
        try:
            p.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.001)
    p.stop_and_check()
    assert sorted(numbers_of(p.access_log_lines())) == list(range(n))
