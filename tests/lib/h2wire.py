"""tests/lib/h2wire.py -- HTTP/2 clients for the tests: python3-h2 and raw frames.

    c = H2Client(port)                       # python3-h2 on a socket, preface sent
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, req_headers("/x", port), end_stream=True); c.flush()
    status, headers, body = c.response(sid)

    r = RawH2(port)                          # bytes as the test writes them (preface sent)
    r.send(headers_frame(1, block([(b":method", b"GET"), ...]), END_STREAM | END_HEADERS))
    r.read_until(lambda: r.goaway() or r.reset(1) or r.status(1))

H2Client is for well-formed traffic and what h2 can be told to send with its checks off;
RawH2 is for what h2 refuses to produce (bad HPACK, bad frames, floods). Its HPACK encoder
writes literals without Huffman coding (and never indexes unless told), so a test says
exactly which bytes go out; responses are decoded with hpack's Decoder.
"""

import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack

from netutil import connect

H2_READ_TIMEOUT = 5.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 9113 §6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# error codes (RFC 9113 §7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)


class H2Client:
    """A python3-h2 client on a raw socket: sends frames as told, reads events until a
    condition holds or the deadline passes."""

    def __init__(self, port, validate=True):
        self.sock = connect(port)
        self.sock.settimeout(0.5)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=validate,
                                        normalize_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.events = []
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def read_until(self, done, timeout=H2_READ_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline and not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            try:
                self.events += self.conn.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                self.events.append(e)  # kept for the assertion message
                self.closed = True
                break
            self.flush()
        return done()

    def of(self, kind, stream_id=None):
        return [e for e in self.events if isinstance(e, kind) and
                (stream_id is None or getattr(e, "stream_id", None) == stream_id)]

    def response(self, stream_id):
        """(status, headers dict, body) once the stream ended; None otherwise."""
        if not self.read_until(lambda: self.of(h2.events.StreamEnded, stream_id) or
                               self.of(h2.events.StreamReset, stream_id)):
            return None
        if self.of(h2.events.StreamReset, stream_id):
            return None
        hs = dict(self.of(h2.events.ResponseReceived, stream_id)[0].headers)
        body = b"".join(e.data for e in self.of(h2.events.DataReceived, stream_id))
        return int(hs[":status"]), hs, body

    def close(self):
        self.sock.close()


def req_headers(path, port, method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "web.local:%d" % port),
            (":path", path)] + list(extra)


# --- raw frames ---------------------------------------------------------------------------

def frame(ftype, flags, stream_id, payload=b""):
    """One frame: the 9-byte header (length, type, flags, stream id) and the payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream_id) + payload


def settings_frame(entries=(), flags=0):
    return frame(SETTINGS, flags, 0, b"".join(struct.pack(">HI", k, v) for k, v in entries))


def headers_frame(stream_id, block_bytes, flags=END_HEADERS | END_STREAM):
    return frame(HEADERS, flags, stream_id, block_bytes)


def header_frames(stream_id, block_bytes, end_stream=True, size=16000):
    """A header block split into HEADERS and as many CONTINUATION frames as it takes."""
    pieces = [block_bytes[i:i + size] for i in range(0, len(block_bytes), size)] or [b""]
    out = frame(HEADERS, END_STREAM if end_stream else 0, stream_id, pieces[0])
    for piece in pieces[1:]:
        out += frame(CONTINUATION, 0, stream_id, piece)
    # END_HEADERS on the last frame of the block
    last = len(out) - 9 - len(pieces[-1])
    return out[:last + 4] + bytes([out[last + 4] | END_HEADERS]) + out[last + 5:]


def data_frame(stream_id, data, flags=0):
    return frame(DATA, flags, stream_id, data)


def rst_frame(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def window_update_frame(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def priority_frame(stream_id, depends_on=0, weight=15):
    return frame(PRIORITY, 0, stream_id, struct.pack(">IB", depends_on, weight))


def ping_frame(opaque=b"12345678", flags=0):
    return frame(PING, flags, 0, opaque)


def hpack_int(value, prefix_bits, first_byte_flags=0):
    """An HPACK integer (RFC 7541 §5.1) with its prefix's leading flag bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s):
    s = s.encode() if isinstance(s, str) else s
    return hpack_int(len(s), 7) + s


def literal(name, value, indexed=False):
    """A literal field with a literal name, not Huffman coded: without indexing, or with
    incremental indexing (it then enters the decoder's dynamic table)."""
    return (b"\x40" if indexed else b"\x00") + hpack_str(name) + hpack_str(value)


def indexed(index):
    """A field from the static (1..61) or dynamic (62..) table."""
    return hpack_int(index, 7, 0x80)


def table_size_update(size):
    return hpack_int(size, 5, 0x20)


def block(fields):
    """A header block of literals without indexing, in the order given (names and values
    as given: upper case, duplicates and bad bytes included)."""
    return b"".join(literal(n, v) for n, v in fields)


def request_fields(path, method="GET", authority="web.local", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", authority),
            (":path", path)] + list(extra)


class RawH2:
    """A socket that has sent the client preface and an empty SETTINGS frame; the test sends
    whatever bytes it likes. Frames received are parsed into self.frames as (type, flags,
    stream id, payload); response HEADERS are decoded in order into self.statuses.
    rcvbuf sets SO_RCVBUF before connecting: a client that reads nothing then fills the
    server's side quickly, as one on a slow link would."""

    def __init__(self, port, ack_settings=True, rcvbuf=None):
        if rcvbuf is None:
            self.sock = connect(port)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(10)
            self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.buf = b""
        self.frames = []
        self.statuses = {}
        self.closed = False
        self.ack_settings = ack_settings
        self.decoder = hpack.Decoder()
        self.sock.sendall(PREFACE + settings_frame())

    def send(self, data):
        """Sends data; False if the server closed the connection before all of it went."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _parse(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            self.frames.append((ftype, flags, sid, payload))
            if ftype == SETTINGS and not flags & ACK and self.ack_settings:
                self.send(settings_frame(flags=ACK))
            if ftype == HEADERS:
                fields = dict(self.decoder.decode(payload))
                if ":status" in fields:
                    self.statuses.setdefault(sid, int(fields[":status"]))

    def read_until(self, done, timeout=H2_READ_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not done() and not self.closed and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            self.buf += data
            self._parse()
        return done()

    def goaway(self):
        """The error code of the first GOAWAY received, or None."""
        for ftype, _, _, payload in self.frames:
            if ftype == GOAWAY:
                return int.from_bytes(payload[4:8], "big")
        return None

    def reset(self, stream_id):
        """The error code of the first RST_STREAM received on stream_id, or None."""
        for ftype, _, sid, payload in self.frames:
            if ftype == RST_STREAM and sid == stream_id:
                return int.from_bytes(payload[:4], "big")
        return None

    def status(self, stream_id):
        return self.statuses.get(stream_id)

    def close(self):
        self.sock.close()
