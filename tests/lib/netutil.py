"""tests/lib/netutil.py -- small network and process helpers for Petrel's end-to-end tests.

Standard library only. Everything binds or connects to 127.0.0.1; nothing uses a fixed port.

  ports and waits     free_port, wait_until, wait_for_port
  raw client sockets  connect (TCP_NODELAY), read_to_close, timed_read_to_close, recv_exact,
                      recv_to_eof, exchange (send, read until close), raw_request
  HTTP/1 on the wire  build_request, parse_head, parse_responses, recv_responses, recv_one,
                      header, http_request
  bodies              pattern_bytes / pattern_ok (generated bodies), sha256_hex
  process probes      rss_kb, cpu_ticks, open_fds
"""

import hashlib
import os
import socket
import subprocess
import time

LOCALHOST = "127.0.0.1"


_handed_out = set()


def free_port():
    """Returns a TCP port that was free on 127.0.0.1 a moment ago (bind to 0, read, close).

    There is a window in which another process can take it; our own servers avoid it by
    binding to port 0 themselves, this is for ports that must be written into a config file.
    The kernel may offer a port it just offered again once it is closed, so a port already
    handed out by this process is skipped: two calls for one config never get the same port.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOCALHOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh ephemeral port in 100 tries")


def wait_until(predicate, timeout=10.0, interval=0.01, what="condition"):
    """Polls predicate() until it returns a true value, which is returned; raises
    TimeoutError after timeout seconds. The interval grows to at most 0.1 s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


def wait_for_port(port, timeout=10.0, host=LOCALHOST):
    """Waits until something accepts TCP connections on host:port."""

    def try_connect():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return wait_until(try_connect, timeout, what="port %d to accept" % port)


def connect(port, timeout=10.0, host=LOCALHOST):
    """A client connection to host:port with TCP_NODELAY set (small writes leave at once)."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_to_close(s, timeout):
    """Reads until the peer closes (FIN or RST) or timeout passes. Returns (bytes, closed)."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return bytes(out), False
        except OSError:  # reset: closed, keep what arrived before it
            return bytes(out), True
        if not chunk:
            return bytes(out), True
        out += chunk


def timed_read_to_close(s, timeout, send=b""):
    """Sends send (when given), then read_to_close(s, timeout). Returns (bytes, closed,
    seconds from just before the send to the close or the timeout)."""
    t0 = time.monotonic()
    if send:
        s.sendall(send)
    got, closed = read_to_close(s, timeout)
    return got, closed, time.monotonic() - t0


def exchange(port, data, timeout=5.0, ignore_send_errors=True):
    """Sends data on a fresh connection, reads until close (read_to_close). Returns (bytes
    received, closed by peer, seconds from send to close). Send errors are ignored by default
    (the peer may close early: the point is what came back); ignore_send_errors=False lets
    them propagate."""
    s = connect(port, timeout)
    try:
        t0 = time.monotonic()
        try:
            s.sendall(data)
        except OSError:
            if not ignore_send_errors:
                raise
        got, closed = read_to_close(s, timeout)
        return got, closed, time.monotonic() - t0
    finally:
        s.close()


def recv_exact(sock, n, timeout):
    """Exactly n bytes; raises TimeoutError after timeout, EOFError if the peer closes first."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("got %d of %d bytes in %.1f s" % (len(buf), n, timeout))
        sock.settimeout(left)
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_to_eof(sock, timeout):
    """Every byte until the peer closes: (bytes, how) where how is "eof" or "reset"; raises
    TimeoutError when neither comes within timeout."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no EOF within %.1f s (%d bytes so far: %r)"
                               % (timeout, len(buf), bytes(buf[:200])))
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return bytes(buf), "reset"
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk


def raw_request(port, data, timeout=5.0, host=LOCALHOST, shutdown_write=False, max_bytes=64 << 20):
    """Sends data as-is to host:port and returns every byte received until the peer closes
    or timeout seconds have passed in total (whichever comes first).

    For malformed-input tests: send errors (the peer closed early) are ignored, since the
    point is what came back. With shutdown_write the write side is closed after sending.
    """
    deadline = time.monotonic() + timeout
    out = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            if data:
                s.sendall(data)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while len(out) < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:  # reset by peer: return what we have
                break
            if not chunk:
                break
            out += chunk
    return bytes(out)


def build_request(target="/", headers=(), method="GET", body=b"", version="HTTP/1.1"):
    """The bytes of a request written exactly as given: no header is added or reordered."""
    req = "%s %s %s\r\n" % (method, target, version)
    req += "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
    return req.encode("latin-1") + body


def parse_head(head):
    """(status, reason, headers) from a response head without its final CRLFCRLF (bytes);
    headers is a list of (name, value) str pairs. Raises ValueError when it does not parse."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError("bad status line %r" % lines[0])
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("bad header line %r" % line)
        headers.append((name, value.strip(" \t")))
    return int(parts[1]), (parts[2] if len(parts) > 2 else ""), headers


class Incomplete(ValueError):
    """The bytes end inside a response."""


def parse_responses(data, no_body=False, strict=False):
    """Splits raw bytes holding zero or more HTTP/1.x responses into a list of
    (status, reason, headers, body, trailers) tuples; headers and trailers are lists of
    (name, value) str pairs in received order. Bodies are framed by chunked encoding,
    Content-Length, or the end of data. 1xx, 204 and 304 have no body; no_body=True treats
    every response as the answer to HEAD. Raises ValueError on bytes that do not parse.

    An incomplete last response is returned with what is there, unless strict, which raises
    Incomplete instead (a body framed by the end of data is always incomplete when strict)."""
    res = []
    pos = 0
    n = len(data)
    while pos < n:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            raise Incomplete("incomplete response head at offset %d: %r" % (pos, data[pos:pos + 200]))
        status, reason, headers = parse_head(data[pos:end])
        pos = end + 4
        hmap = {k.lower(): v for k, v in headers}
        body = b""
        trailers = []
        complete = True
        if no_body or status < 200 or status in (204, 304):
            pass
        elif "chunked" in hmap.get("transfer-encoding", "").lower():
            chunks = []
            complete = False
            while True:
                le = data.find(b"\r\n", pos)
                if le < 0:
                    pos = n
                    break
                size = int(data[pos:le].split(b";")[0].strip(), 16)
                pos = le + 2
                if size == 0:
                    while True:  # trailers up to the empty line
                        le = data.find(b"\r\n", pos)
                        if le < 0:
                            pos = n
                            break
                        line = data[pos:le].decode("latin-1")
                        pos = le + 2
                        if not line:
                            complete = True
                            break
                        name, _, value = line.partition(":")
                        trailers.append((name, value.strip(" \t")))
                    break
                chunks.append(data[pos:pos + size])
                if pos + size + 2 > n:
                    pos = n
                    break
                pos += size + 2
            body = b"".join(chunks)
        elif "content-length" in hmap:
            cl = int(hmap["content-length"])
            body = data[pos:pos + cl]
            complete = len(body) == cl
            pos += cl
        else:
            body = data[pos:]
            pos = n
            complete = False
        if strict and not complete:
            raise Incomplete("response %d is incomplete" % len(res))
        res.append((status, reason, headers, body, trailers))
    return res


def recv_responses(sock, count, timeout=10.0, no_body=False):
    """Reads from sock until count complete responses (1xx included) have arrived, or EOF;
    returns the parsed list (which has fewer entries if the peer closed early)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        try:
            r = parse_responses(buf, no_body=no_body, strict=True)
            if len(r) >= count:
                return r
        except Incomplete:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("%d responses not complete after %.1f s: %r" % (count, timeout, buf[:300]))
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return parse_responses(buf, no_body=no_body)
        buf += chunk


def recv_one(s, timeout=10.0):
    """Reads exactly one complete response from a keep-alive socket: (status, headers, body).
    Fails (AssertionError) on a second response in the same read, a close first, or timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        try:
            resps = parse_responses(buf, strict=True)
            if resps:
                assert len(resps) == 1, "more than one response: %r" % buf[:300]
                st, _, hs, body, _ = resps[0]
                return st, hs, body
        except Incomplete:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no complete response after %.1f s: %r" % (timeout, buf[:300]))
        s.settimeout(left)
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a complete response: %r" % buf[:300])
        buf += chunk


def header(headers, name, default=None):
    """The first value of header name (case-insensitive) in a list of (name, value) pairs."""
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


def http_request(port, method="GET", path="/", headers=None, body=b"", host=LOCALHOST, timeout=10.0,
                 host_header="example.com"):
    """One request on a fresh connection with `Connection: close`; returns
    (status, headers, body) with headers as a list of (name, value) pairs. The request is
    written by hand, so headers go out exactly as given (order and case kept)."""
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if "host" not in names:
        hdrs.insert(0, ("Host", host_header))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    if "connection" not in names:
        hdrs.append(("Connection", "close"))
    req = "%s %s HTTP/1.1\r\n" % (method, path)
    req += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs) + "\r\n"
    raw = raw_request(port, req.encode("latin-1") + body, timeout=timeout, host=host)
    resps = [r for r in parse_responses(raw, no_body=(method == "HEAD")) if r[0] >= 200 or r[0] == 101]
    if not resps:
        raise ValueError("no response (got %r)" % raw[:200])
    status, _, rh, rb, _ = resps[0]
    return status, rh, rb


# A byte pattern whose byte at stream offset k is k % 251, so any slice of a long generated
# body can be checked in place. 251 is prime, so the pattern does not align with chunk sizes.
_PATTERN_LEN = 251 * 261  # 65511 bytes: a whole number of periods
PATTERN_BLOCK = bytes(i % 251 for i in range(_PATTERN_LEN))


def pattern_bytes(offset, n):
    """The n bytes of the generated-body pattern starting at stream offset offset."""
    out = bytearray()
    start = offset % 251
    while len(out) < n:
        take = min(n - len(out), _PATTERN_LEN - start)
        out += PATTERN_BLOCK[start:start + take]
        start = (start + take) % 251
    return bytes(out)


def pattern_ok(data, offset=0):
    """True when data equals the pattern starting at offset."""
    return data == pattern_bytes(offset, len(data))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def rss_kb(pid):
    """The resident set size of process pid in KiB (VmRSS from /proc/<pid>/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError("no VmRSS for pid %d" % pid)


def cpu_ticks(pid):
    """utime + stime of pid in clock ticks (from /proc/<pid>/stat), all threads included."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    # the command name may contain spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    """The number of open file descriptors of pid (for leak checks), those on /dev/null left
    out: libuv opens /dev/null once per loop, at the loop's first TCP handle (its reserve
    against EMFILE), so a worker that had no connection yet adds one the first time it gets
    one, and a leak check whose baseline was taken before that would count it."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "/dev/null"
        except OSError:
            pass  # closed meanwhile
    return n


def fd_targets(pid):
    """What each open descriptor of pid is ("socket:[1234]", a path, ...), by descriptor
    number: the detail a failed leak check reports."""
    out = []
    for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            out.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
        except OSError:
            pass  # closed meanwhile
    return out


def tcp_keepalive_timers(port):
    """The `ss -tno` lines of established connections to 127.0.0.1:port whose socket runs a
    TCP keepalive timer (SO_KEEPALIVE set), e.g. "timer:(keepalive,9min59sec,0)"."""
    out = subprocess.run(["ss", "-tno", "state", "established", "dst", "127.0.0.1:%d" % port],
                         capture_output=True, text=True, timeout=10).stdout
    return [line for line in out.splitlines() if "timer:(keepalive" in line]
