#!/usr/bin/python3
"""RFC 9113 error paths of the registry's h2c endpoint, with a scripted raw
client: frames are built with hyperframe/hpack (Debian's python3-h2 stack)
or by hand when they must be malformed, and sent on a plain socket.

usage: api_h2_conformance.py PORT     (prints TAP)

Each case opens its own connection and asserts what RFC 9113 requires:
connection errors end with GOAWAY and the right code, stream errors with
RST_STREAM, and the connection survives a stream error."""
import socket
import struct
import sys
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PORT = int(sys.argv[1])
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x9
NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
         5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 9: "COMPRESSION_ERROR",
         11: "ENHANCE_YOUR_CALM"}

n_tests = 0
n_failed = 0


def ok(cond, name, why=""):
    global n_tests, n_failed
    n_tests += 1
    if not cond:
        n_failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n_tests, name))
    if not cond and why:
        print("#   " + why)
    sys.stdout.flush()
    return cond


def raw_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream & 0x7fffffff) + payload


def settings_payload(pairs):
    return b"".join(struct.pack(">HI", k, v) for k, v in pairs)


class Conn:
    def __init__(self, settings=(), preface=True, window=None):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.closed = False
        self.server_settings = {}
        if preface:
            self.send_raw(PREFACE + raw_frame(4, 0, 0, settings_payload(settings)))
            if window:
                self.send(WindowUpdateFrame(0, window_increment=window))

    def send_raw(self, data):
        try:
            self.s.sendall(data)
        except OSError:
            self.closed = True

    def send(self, frame):
        self.send_raw(frame.serialize())

    def headers(self, stream, hdrs, end_stream=True, end_headers=True):
        block = self.enc.encode(hdrs)
        flags = (0x1 if end_stream else 0) | (0x4 if end_headers else 0)
        self.send_raw(raw_frame(1, flags, stream, block))
        return block

    def request(self, stream, path="/health", method="GET", extra=(), end_stream=True):
        hdrs = [(":method", method), (":scheme", "http"), (":path", path),
                (":authority", "127.0.0.1")] + list(extra)
        return self.headers(stream, hdrs, end_stream)

    def read_frame(self, timeout):
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    head, body = self.buf[:9], self.buf[9:9 + length]
                    self.buf = self.buf[9 + length:]
                    f, _ = Frame.parse_frame_header(memoryview(head))
                    f.parse_body(memoryview(body))
                    if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                        self.server_settings.update(f.settings)
                    return f
            left = end - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.s.settimeout(left)
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return None
            self.buf += data

    def frames(self, timeout=3.0, ack=True):
        """Yields frames until close or timeout, acknowledging SETTINGS and PING."""
        end = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.0, end - time.monotonic()))
            if f is None:
                return
            if ack and isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                self.send(SettingsFrame(0, flags=["ACK"]))
            if ack and isinstance(f, PingFrame) and "ACK" not in f.flags:
                self.send(PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]))
            yield f

    def goaway(self, timeout=3.0):
        """The error code of the next GOAWAY (None if none came)."""
        for f in self.frames(timeout):
            if isinstance(f, GoAwayFrame):
                return f.error_code
        return None

    def rst_or_goaway(self, stream, timeout=3.0):
        """('rst'|'goaway', code) for the stream, or (None, None)."""
        for f in self.frames(timeout):
            if isinstance(f, RstStreamFrame) and f.stream_id == stream:
                return "rst", f.error_code
            if isinstance(f, GoAwayFrame):
                return "goaway", f.error_code
        return None, None

    def response(self, stream, timeout=3.0, open_window=False):
        """(status, headers dict, body bytes, ended) of one stream."""
        status, hdrs, body, ended = None, {}, b"", False
        for f in self.frames(timeout):
            if f.stream_id != stream:
                continue
            if isinstance(f, HeadersFrame):
                for k, v in self.dec.decode(f.data):
                    hdrs[k] = v
                status = int(hdrs.get(":status", "0"))
            elif isinstance(f, DataFrame):
                body += f.data
                if open_window and f.data:
                    self.send(WindowUpdateFrame(0, window_increment=len(f.data)))
                    self.send(WindowUpdateFrame(stream, window_increment=len(f.data)))
            elif isinstance(f, RstStreamFrame):
                return status, hdrs, body, False
            if "END_STREAM" in f.flags:
                ended = True
                return status, hdrs, body, ended
        return status, hdrs, body, ended

    def alive(self, stream):
        """A request on `stream` still gets an answer."""
        self.request(stream)
        status, _, _, ended = self.response(stream)
        return status in (200, 503) and ended

    def http1_head(self, timeout=3.0):
        """An HTTP/1.1 response head (the 101 of an upgrade); what follows stays in buf."""
        end = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf and time.monotonic() < end:
            self.s.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def close(self):
        self.s.close()


def code_is(got, want):
    return got == want, "got %s, want %s" % (NAMES.get(got, got), NAMES.get(want, want))


# ---- happy path, PING, SETTINGS -------------------------------------------------

c = Conn()
c.request(1)
status, hdrs, body, ended = c.response(1)
ok(status in (200, 503) and ended, "GET /health over h2c prior knowledge")
ok(c.server_settings.get(3) == 100, "server SETTINGS: MAX_CONCURRENT_STREAMS 100",
   str(c.server_settings))
ok(c.server_settings.get(6, 0) >= 8192, "server SETTINGS: MAX_HEADER_LIST_SIZE announced",
   str(c.server_settings))
ok(all(k in hdrs for k in ("date", "server", "etag", "cache-control", "content-length")),
   "response carries date, server, etag, cache-control, content-length", str(hdrs))
c.send(PingFrame(0, opaque_data=b"12345678"))
pong = next((f for f in c.frames() if isinstance(f, PingFrame) and "ACK" in f.flags), None)
ok(pong is not None and pong.opaque_data == b"12345678", "PING answered with ACK, same data")
c.send_raw(raw_frame(0xfa, 0, 0, b"whatever"))
ok(c.alive(3), "an unknown frame type is ignored (RFC 9113 §4.1)")
c.close()

# ---- preface -------------------------------------------------------------------

c = Conn(preface=False)
c.send_raw(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + raw_frame(4, 0, 0))
got_h2 = any(isinstance(f, HeadersFrame) for f in c.frames(3))
ok(c.closed and not got_h2, "bad preface: connection closed, nothing served")
c.close()

c = Conn(preface=False)
c.send_raw(PREFACE + PingFrame(0, opaque_data=b"xxxxxxxx").serialize())
ok(*code_is(c.goaway(), PROTOCOL_ERROR), )
print("#   (preface not followed by SETTINGS -> GOAWAY PROTOCOL_ERROR)")
c.close()

# ---- frames on the wrong stream ----------------------------------------------------

cases = [
    ("DATA on stream 0", raw_frame(0, 1, 0, b"x"), PROTOCOL_ERROR),
    ("HEADERS on stream 0", raw_frame(1, 5, 0, b"\x82"), PROTOCOL_ERROR),
    ("SETTINGS on stream 1", raw_frame(4, 0, 1), PROTOCOL_ERROR),
    ("PING on stream 1", raw_frame(6, 0, 1, b"12345678"), PROTOCOL_ERROR),
    ("GOAWAY on stream 1", raw_frame(7, 0, 1, b"\0\0\0\0\0\0\0\0"), PROTOCOL_ERROR),
    ("RST_STREAM on stream 0", raw_frame(3, 0, 0, b"\0\0\0\0"), PROTOCOL_ERROR),
    ("WINDOW_UPDATE 0 on stream 0", raw_frame(8, 0, 0, b"\0\0\0\0"), PROTOCOL_ERROR),
    ("CONTINUATION without HEADERS", raw_frame(9, 4, 1, b"\x82"), PROTOCOL_ERROR),
    ("HEADERS on an even (server) stream", raw_frame(1, 5, 2, b"\x82\x86\x84"), PROTOCOL_ERROR),
    ("PING of 7 bytes", raw_frame(6, 0, 0, b"1234567"), FRAME_SIZE_ERROR),
    ("DATA on an idle stream", raw_frame(0, 1, 5, b"x"), PROTOCOL_ERROR),
]
for name, data, want in cases:
    c = Conn()
    c.send_raw(data)
    got = c.goaway()
    ok(*code_is(got, want))
    print("#   (%s -> GOAWAY %s)" % (name, NAMES[want]))
    c.close()

c = Conn()
c.send_raw(raw_frame(0, 0, 1, b"x" * 16385))
ok(*code_is(c.goaway(), FRAME_SIZE_ERROR))
print("#   (frame over SETTINGS_MAX_FRAME_SIZE -> GOAWAY FRAME_SIZE_ERROR)")
c.close()

c = Conn()
c.request(3)
c.response(3)
c.request(1)  # stream IDs must increase
ok(*code_is(c.goaway(), PROTOCOL_ERROR))
print("#   (a stream ID lower than one already used -> GOAWAY PROTOCOL_ERROR)")
c.close()

# ---- SETTINGS values ---------------------------------------------------------------

cases = [
    ("ENABLE_PUSH = 2", settings_payload([(2, 2)]), PROTOCOL_ERROR),
    ("INITIAL_WINDOW_SIZE = 2^31", settings_payload([(4, 2 ** 31)]), FLOW_CONTROL_ERROR),
    ("MAX_FRAME_SIZE = 16383", settings_payload([(5, 16383)]), PROTOCOL_ERROR),
    ("MAX_FRAME_SIZE = 2^24", settings_payload([(5, 2 ** 24)]), PROTOCOL_ERROR),
    ("SETTINGS of 5 bytes", b"\0\x03\0\0\0", FRAME_SIZE_ERROR),
]
for name, payload, want in cases:
    c = Conn()
    c.send_raw(raw_frame(4, 0, 0, payload))
    ok(*code_is(c.goaway(), want))
    print("#   (SETTINGS %s -> GOAWAY %s)" % (name, NAMES[want]))
    c.close()
c = Conn()
c.send_raw(raw_frame(4, 1, 0, settings_payload([(3, 1)])))
ok(*code_is(c.goaway(), FRAME_SIZE_ERROR))
print("#   (SETTINGS ACK with a payload -> GOAWAY FRAME_SIZE_ERROR)")
c.close()
c = Conn()
c.send_raw(raw_frame(4, 0, 0, settings_payload([(0x99, 7)])))
ok(c.alive(1), "an unknown SETTINGS identifier is ignored")
c.close()

# ---- header validation: stream errors, the connection lives on -------------------------


def malformed(name, send):
    """send(conn) makes stream 1 malformed: RST_STREAM PROTOCOL_ERROR, and
    the connection still serves stream 3."""
    c = Conn()
    send(c)
    kind, code = c.rst_or_goaway(1)
    ok(kind == "rst" and code == PROTOCOL_ERROR, "%s -> RST_STREAM PROTOCOL_ERROR" % name,
       "got %s %s" % (kind, NAMES.get(code, code)))
    ok(c.alive(3), "%s: the connection lives on" % name)
    c.close()


base = [(":method", "GET"), (":scheme", "http"), (":path", "/health"), (":authority", "h")]
cases = [
    ("uppercase header name", base + [("X-Upper", "1")]),
    ("connection: keep-alive", base + [("connection", "keep-alive")]),
    ("transfer-encoding: chunked", base + [("transfer-encoding", "chunked")]),
    ("keep-alive: 5", base + [("keep-alive", "5")]),
    ("proxy-connection", base + [("proxy-connection", "keep-alive")]),
    ("upgrade: h2c", base + [("upgrade", "h2c")]),
    ("te: gzip", base + [("te", "gzip")]),
    ("missing :path", [(":method", "GET"), (":scheme", "http"), (":authority", "h")]),
    ("missing :method", [(":scheme", "http"), (":path", "/"), (":authority", "h")]),
    ("missing :scheme", [(":method", "GET"), (":path", "/"), (":authority", "h")]),
    ("duplicate :path", base + [(":path", "/x")]),
    ("duplicate :method", [(":method", "GET")] + base),
    ("pseudo-header after a regular one", base[:3] + [("accept", "*/*"), (":authority", "h")]),
    ("unknown pseudo-header :foo", base + [(":foo", "bar")]),
    ("response pseudo-header :status", base + [(":status", "200")]),
    ("empty :path", [(":method", "GET"), (":scheme", "http"), (":path", ""),
                     (":authority", "h")]),
]
for name, hdrs in cases:
    malformed(name, lambda c, hdrs=hdrs: c.headers(1, hdrs))

c = Conn()
c.headers(1, base + [("te", "trailers")])
status, _, _, ended = c.response(1)
ok(status in (200, 503) and ended, "te: trailers is allowed")
c.close()

# The server checks these rules itself (api/h2_check.c), with nghttp2's
# own checks off: the cases nghttp2 used to judge, one by one.
get = [(":method", "GET"), (":scheme", "http"), (":path", "/health")]
cases = [
    ("no :authority and no host", get),
    ("space in :path", [(":method", "GET"), (":scheme", "http"), (":path", "/a b"),
                        (":authority", "h")]),
    ("space in :method", [(":method", "G T"), (":scheme", "http"), (":path", "/"),
                          (":authority", "h")]),
    ("empty :method", [(":method", ""), (":scheme", "http"), (":path", "/"), (":authority", "h")]),
    ("space in :authority", get + [(":authority", "a b")]),
    ("empty :authority", get + [(":authority", "")]),
    (":scheme not starting with a letter", [(":method", "GET"), (":scheme", "1http"),
                                            (":path", "/"), (":authority", "h")]),
    ("duplicate :scheme", base + [(":scheme", "http")]),
    ("duplicate :authority", base + [(":authority", "h")]),
    (":protocol (no extended CONNECT)", base + [(":protocol", "websocket")]),
    ("http :path not starting with /", [(":method", "GET"), (":scheme", "http"),
                                        (":path", "health"), (":authority", "h")]),
    ("* :path on GET", [(":method", "GET"), (":scheme", "http"), (":path", "*"),
                        (":authority", "h")]),
    ("CONNECT without :authority", [(":method", "CONNECT")]),
    ("CONNECT with :path", [(":method", "CONNECT"), (":authority", "h:1"), (":path", "/")]),
    ("two host fields", get + [("host", "h"), ("host", "h")]),
    ("empty host", get + [("host", "")]),
    ("content-length not a number", base + [("content-length", "12a")]),
    ("two content-length fields", base + [("content-length", "0"), ("content-length", "0")]),
    ("pseudo-header name with an uppercase letter", base + [(":Path", "/")]),
]
for name, hdrs in cases:
    malformed(name, lambda c, hdrs=hdrs: c.headers(1, hdrs))

# Bad characters in a regular field (§8.2.1): malformed too.
for name, extra in [("control character in a value", [("x-bad", "a\x01b")]),
                    ("value with a trailing space", [("x-pad", "v ")]),
                    ("value with a leading tab", [("x-tab", "\tv")]),
                    ("'@' in a field name", [("x@y", "1")])]:
    malformed(name, lambda c, extra=extra: c.headers(1, base + extra))
c = Conn()
c.headers(1, base + [("x-ok", "a b\tc"), ("x-empty", "")])
status, _, _, ended = c.response(1)
ok(status in (200, 503) and ended, "inner whitespace and empty values are fine")
c.close()
# A HEAD whose :path is over the limit before its :method arrives: 414, no body.
c = Conn()
c.headers(1, [(":path", "/" + "a" * 9000), (":method", "HEAD"), (":scheme", "http"),
              (":authority", "h")])
status, hdrs, body, ended = c.response(1)
ok(status == 414 and body == b"" and ended, "HEAD with a long :path first: 414 without a body",
   "got %r, %d body bytes" % (status, len(body)))
c.close()
# A method RFC 9110 does not define: 501 (§9.1); OPTIONS *: 405 with Allow.
for method, path, want, allow in [("FOO", "/health", 501, None), ("get", "/health", 501, None),
                                  ("OPTIONS", "*", 405, "GET, HEAD, POST")]:
    c = Conn()
    c.request(1, path=path, method=method)
    status, hdrs, _, ended = c.response(1)
    ok(status == want and ended and hdrs.get("allow") == allow,
       "%s %s -> %d%s" % (method, path, want, ", Allow: " + allow if allow else ""),
       "got %r, allow %r" % (status, hdrs.get("allow")))
    c.close()
c = Conn()
c.headers(1, get + [("host", "127.0.0.1")])
status, _, _, ended = c.response(1)
ok(status in (200, 503) and ended, "host instead of :authority is enough")
c.close()

# Content against content-length, and trailers (RFC 9113 §8.1).
post = [(":method", "POST"), (":scheme", "http"), (":path", "/cache/refresh"),
        (":authority", "h")]
for name, length, data in [("DATA shorter than content-length", "5", b"abc"),
                           ("DATA longer than content-length", "2", b"abc")]:
    def send(c, length=length, data=data):
        c.headers(1, post + [("content-length", length)], end_stream=False)
        c.send_raw(raw_frame(0, 1, 1, data))
    malformed(name, send)
c = Conn()
c.headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/health"),
              (":authority", "h"), ("content-length", "3")], end_stream=False)
c.send_raw(raw_frame(0, 1, 1, b"abc"))
status, _, _, ended = c.response(1)
ok(status == 405 and ended, "DATA matching content-length: the request is answered (405)",
   "got %r" % (status,))
c.close()
for name, trailer, end in [("pseudo-header in trailers", [(":path", "/x")], True),
                           ("trailers without END_STREAM", [("x-t", "1")], False)]:
    def send(c, trailer=trailer, end=end):
        c.headers(1, post, end_stream=False)
        c.send_raw(raw_frame(0, 0, 1, b"ab"))
        c.headers(1, trailer, end_stream=end)
    malformed(name, send)

# ---- WINDOW_UPDATE and flow control ---------------------------------------------------

c = Conn(settings=[(4, 0)])  # window 0: the response waits
c.request(1, "/services")
next((f for f in c.frames(1) if isinstance(f, HeadersFrame)), None)
c.send_raw(raw_frame(8, 0, 1, b"\0\0\0\0"))
kind, code = c.rst_or_goaway(1)
# A stream error; RFC 9113 §5.4.1 lets an endpoint treat it as a connection
# error, which is what nghttp2 does here.
ok(kind in ("rst", "goaway") and code == PROTOCOL_ERROR, "WINDOW_UPDATE 0 on a stream -> "
   "PROTOCOL_ERROR (%s)" % kind, "got %s %s" % (kind, NAMES.get(code, code)))
c.close()

c = Conn(settings=[(4, 2 ** 31 - 1)])
c.request(1, "/services")
c.response(1)
c.send(WindowUpdateFrame(0, window_increment=2 ** 31 - 1))
ok(*code_is(c.goaway(), FLOW_CONTROL_ERROR))
print("#   (connection window over 2^31-1 -> GOAWAY FLOW_CONTROL_ERROR)")
c.close()

c = Conn(settings=[(4, 16)])
c.request(1, "/services")
status, hdrs, body, ended, biggest = None, {}, b"", False, 0
window = 16
violated = False
end = time.monotonic() + 10
for f in c.frames(10):
    if f.stream_id != 1:
        continue
    if isinstance(f, HeadersFrame):
        hdrs = dict(c.dec.decode(f.data))
        status = int(hdrs[":status"])
    if isinstance(f, DataFrame):
        biggest = max(biggest, len(f.data))
        if len(f.data) > window:
            violated = True
        window -= len(f.data)
        body += f.data
        if window == 0:
            c.send(WindowUpdateFrame(1, window_increment=16))
            window += 16
    if "END_STREAM" in f.flags:
        ended = True
        break
ok(status == 200 and ended and len(body) == int(hdrs.get("content-length", -1)),
   "flow control: 16-byte window, the whole body arrives as the client opens it",
   "status %s ended %s body %d of %s" % (status, ended, len(body), hdrs.get("content-length")))
ok(not violated and biggest <= 16, "flow control: no DATA frame ever exceeds the window")
c.close()

# ---- DATA on closed streams ------------------------------------------------------------

c = Conn()
c.request(1)
c.response(1)
c.send(DataFrame(1, b"late", flags=["END_STREAM"]))
kind, code = c.rst_or_goaway(1)
ok(code == STREAM_CLOSED, "DATA on a closed stream -> STREAM_CLOSED (%s)" % kind,
   "got %s %s" % (kind, NAMES.get(code, code)))
c.close()

c = Conn(settings=[(4, 0)])  # the answer is held: stream half-closed (remote)
c.request(1, "/services")
next((f for f in c.frames(1) if isinstance(f, HeadersFrame)), None)
c.send(DataFrame(1, b"more"))
kind, code = c.rst_or_goaway(1)
ok(code == STREAM_CLOSED, "DATA on a half-closed (remote) stream -> STREAM_CLOSED (%s)" % kind,
   "got %s %s" % (kind, NAMES.get(code, code)))
c.close()

# A lower stream ID in the same read as the higher one is still caught.
c = Conn()
blk5 = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/health"),
                     (":authority", "127.0.0.1")])
blk3 = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/health"),
                     (":authority", "127.0.0.1")])
c.send_raw(raw_frame(1, 5, 5, blk5) + raw_frame(1, 5, 3, blk3))
ok(*code_is(c.goaway(), PROTOCOL_ERROR))
print("#   (HEADERS 5 then 3 in one write -> GOAWAY PROTOCOL_ERROR)")
c.close()

# The highest stream ID there is (2^31 - 1) is served, and the server lives on.
c = Conn()
c.request(0x7fffffff)
status, _, _, ended = c.response(0x7fffffff)
c.close()
c = Conn()
ok(status in (200, 503) and ended and c.alive(1),
   "stream 2^31-1 is answered and the server keeps serving", "status %s" % status)
c.close()

# nghttp2 forgets closed streams (api/http2.c keeps two bits per recent
# stream instead): the verdicts must stay those of RFC 9113 §5.1.
c = Conn()
c.request(1)
c.response(1)
c.request(1)
ok(*code_is(c.goaway(), STREAM_CLOSED))
print("#   (HEADERS on a stream closed after END_STREAM -> GOAWAY STREAM_CLOSED)")
c.close()

c = Conn()
c.request(1, extra=[("x-Upper", "1")], end_stream=False)  # malformed: we reset it
kind, code = c.rst_or_goaway(1)
c.send(DataFrame(1, b"in flight"))
c.headers(1, [("x-trailer", "1")], end_stream=True)
ok(kind == "rst" and c.alive(3) and not c.closed,
   "DATA and trailers on a stream we reset while the client was sending are ignored",
   "got %s %s" % (kind, NAMES.get(code, code)))
c.close()

c = Conn(settings=[(4, 1 << 20)], window=1 << 24)
for sid in range(1, 2 * 300, 2):  # more streams than the server remembers
    c.request(sid)
    c.response(sid)
c.send(DataFrame(1, b"very late"))
ok(c.alive(2 * 300 + 1), "after 300 streams, DATA on the first (forgotten) is ignored")
c.send(DataFrame(2 * 300 + 1, b"late"))
ok(*code_is(c.goaway(), STREAM_CLOSED))
print("#   (... and DATA on the last one -> GOAWAY STREAM_CLOSED)")
c.close()

# ---- limits ----------------------------------------------------------------------------

# 101 streams held open by a zero window: the one over the limit is refused.
c = Conn(settings=[(4, 0)])
for f in c.frames(0.5):  # let the server see our SETTINGS ACK its own
    pass
for i in range(101):
    c.request(1 + 2 * i, "/services")
refused = None
for f in c.frames(3):
    if isinstance(f, RstStreamFrame):
        refused = ("rst", f.stream_id, f.error_code)
        break
    if isinstance(f, GoAwayFrame):
        refused = ("goaway", f.last_stream_id, f.error_code)
        break
ok(refused is not None and refused[2] in (REFUSED_STREAM, PROTOCOL_ERROR) and
   (refused[0] == "goaway" or refused[1] == 201),
   "stream 101 over MAX_CONCURRENT_STREAMS 100 -> refused (RST REFUSED_STREAM/PROTOCOL_ERROR)",
   "got %s" % (refused,))
c.close()

# Before the client acknowledges our SETTINGS, nghttp2 refuses a stream
# over the limit with RST_STREAM. Trailers the client had in flight on it
# are ignored (RFC 9113 §5.1), even once a higher stream has opened.
c = Conn(settings=[(4, 0)])
for i in range(101):
    c.request(1 + 2 * i, "/services")
rst = next((f for f in c.frames(3, ack=False)
            if isinstance(f, (RstStreamFrame, GoAwayFrame))), None)
c.send(RstStreamFrame(1, error_code=0x8))  # CANCEL: a slot frees
c.request(203, "/health")
c.headers(201, [("x-trailer", "1")], end_stream=True)
c.send(PingFrame(0, opaque_data=b"refused1"))
pong = next((f for f in c.frames(3, ack=False) if isinstance(f, GoAwayFrame) or
             (isinstance(f, PingFrame) and "ACK" in f.flags)), None)
ok(isinstance(rst, RstStreamFrame) and rst.stream_id == 201 and isinstance(pong, PingFrame),
   "trailers on a refused stream are ignored after a higher stream opened",
   "refusal %r, then %r" % (rst, pong))
c.close()

# A header list over MAX_HEADER_LIST_SIZE: 431 (or a reset), never served.
c = Conn(window=2 ** 30)
limit = c.server_settings.get(6, 65536)
for f in c.frames(0.3):
    pass
limit = c.server_settings.get(6, limit)
big = [("x-big-%d" % i, "v" * 4000) for i in range(limit // 4000 + 2)]
block = c.enc.encode(base + big)
chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
c.send_raw(raw_frame(1, 1 if len(chunks) > 1 else 5, 1, chunks[0]))
for i, ch in enumerate(chunks[1:]):
    c.send_raw(raw_frame(9, 4 if i == len(chunks) - 2 else 0, 1, ch))
status, _, _, _ = c.response(1)
kind, code = (None, None)
if status is None:
    kind, code = c.rst_or_goaway(1, 1)
ok(status == 431 or kind in ("rst", "goaway"),
   "header list over %d bytes (CONTINUATIONs) -> 431 / RST / GOAWAY, not served" % limit,
   "status %s, %s %s" % (status, kind, code))
c.close()

# Request content over 1 MiB: 413 and the stream reset with NO_ERROR.
c = Conn()
c.request(1, "/cache/clear", "POST", [("content-length", "2000000")], end_stream=False)
status, _, _, _ = c.response(1)
ok(status == 413, "content-length over 1 MiB -> 413", "status %s" % status)
kind, code = c.rst_or_goaway(1, 1)
ok((kind, code) == ("rst", NO_ERROR), "... then RST_STREAM(NO_ERROR): stop sending the content",
   "%s %s" % (kind, code))
c.close()

# A request refused at its HEADERS (414) gets RST_STREAM(NO_ERROR) so the
# client stops sending its content, unless that content already ended in
# the same read: then the stream is closed, and no frame may follow it.
c = Conn()
block = c.enc.encode([(":method", "POST"), (":scheme", "http"), (":path", "/" + "x" * 9000),
                      (":authority", "127.0.0.1")])
c.send_raw(raw_frame(1, 0x4, 1, block) + raw_frame(0, 0x1, 1, b"ab"))
status, rst = None, None
for f in c.frames(1.5):
    if isinstance(f, HeadersFrame) and f.stream_id == 1:
        status = dict(c.dec.decode(f.data)).get(":status")
    if isinstance(f, RstStreamFrame) and f.stream_id == 1:
        rst = f.error_code
ok(status == "414" and rst is None,
   "refused at HEADERS, content ended in the same read: 414 and no RST_STREAM on the closed stream",
   "status %s, RST %s" % (status, rst))
c.close()

# ---- response header compression (RFC 7541) ------------------------------------------
# The server's HPACK encoder (api/hpack.c) indexes its fields. The decoder
# here keeps its table across the connection, as a client's does, and
# raises on any index the two tables disagree on.


def blocks(c, paths, first=1):
    """(header block bytes, decoded headers) per request, one at a time."""
    out = []
    for i, path in enumerate(paths):
        sid = first + 2 * i
        c.request(sid, path=path)
        block, hdrs = b"", None
        for f in c.frames(3):
            if isinstance(f, HeadersFrame) and f.stream_id == sid:
                block = f.data
                try:
                    hdrs = dict(c.dec.decode(f.data))
                except Exception as e:  # hpack's errors
                    hdrs = {"error": repr(e)}
            if f.stream_id == sid and "END_STREAM" in f.flags:
                break
        out.append((block, hdrs))
    return out


def same_fields(a, b):
    return a is not None and b is not None and \
        {k: v for k, v in a.items() if k != "date"} == {k: v for k, v in b.items() if k != "date"}


# A change to the cache between the requests changes ETags: try again.
BIG = [(4, 1 << 20)]  # INITIAL_WINDOW_SIZE: /services twice must not stall
for attempt in range(5):
    c = Conn(settings=BIG, window=1 << 24)
    got = blocks(c, ["/services", "/health", "/health", "/nope", "/services"])
    # (and a new second would add a Date literal to a block)
    if len({h.get("x-registry-index") for _, h in got if h}) == 1 and \
            len({h.get("date") for _, h in got if h}) == 1:
        break
    c.close()
ok(all(h and ":status" in h and "error" not in h for _, h in got),
   "five answers on one connection all decode", repr([h for _, h in got]))
ok(same_fields(got[1][1], got[2][1]) and len(got[2][0]) <= len(got[2][1]) + 1,
   "a repeated answer is indexed (about a byte per field)",
   "%d bytes for %d fields" % (len(got[2][0]), len(got[2][1] or {})))
ok(same_fields(got[0][1], got[4][1]) and len(got[4][0]) <= len(got[4][1]) + 1,
   "an answer repeated after other paths' is still indexed",
   "%d bytes for %d fields" % (len(got[4][0]), len(got[4][1] or {})))
ok(got[3][1] and got[3][1].get(":status") == "404" and "content-length" in got[3][1],
   "a 404 in between decodes with its own fields", repr(got[3][1]))
c.close()

c = Conn(settings=[(1, 0)] + BIG, window=1 << 24)  # SETTINGS_HEADER_TABLE_SIZE = 0
c.dec.max_allowed_table_size = 0
got = blocks(c, ["/health", "/health", "/services"])
ok(all(h and "error" not in h and "etag" in h for _, h in got) and
   got[0][0][:1] == b"\x20" and len(got[1][0]) > 50,
   "HEADER_TABLE_SIZE 0: a size update to 0 first, then literals only", repr(got[0][0][:4]))
c.close()

c = Conn(settings=BIG, window=1 << 24)
got = blocks(c, ["/health", "/services"])
c.send_raw(raw_frame(4, 0, 0, settings_payload([(1, 100)])))
c.dec.max_allowed_table_size = 100
later = blocks(c, ["/health", "/health"], first=5)
ok(all(h and "error" not in h for _, h in got + later) and same_fields(got[0][1], later[1][1]) and
   later[0][0][:1] and later[0][0][0] & 0xe0 == 0x20 and c.dec.header_table_size <= 100,
   "HEADER_TABLE_SIZE lowered to 100 mid-connection: a size update, then answers decode",
   repr((later[0][0][:4], c.dec.header_table_size)))
c.close()

# ---- HTTP/1.1 Upgrade: h2c ----------------------------------------------------------

# After the 101 the server sends its SETTINGS and the HEADERS of stream 1,
# but holds stream 1's DATA until the client's preface: clients read the
# 101 into a fixed buffer (curl: 32 KiB) and choke on a large body behind it.
c = Conn(preface=False)
c.send_raw(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           b"HTTP2-Settings: AAIAAAAA\r\n\r\n")  # ENABLE_PUSH = 0
head = c.http1_head()
ok(head.startswith(b"HTTP/1.1 101 "), "upgrade: 101 Switching Protocols", repr(head[:40]))
early = [f for f in c.frames(0.5, ack=False)]
ok(any(isinstance(f, SettingsFrame) for f in early) and
   any(isinstance(f, HeadersFrame) and f.stream_id == 1 for f in early),
   "upgrade: server SETTINGS and stream 1's HEADERS come at once",
   repr([type(f).__name__ for f in early]))
ok(not any(isinstance(f, DataFrame) for f in early),
   "upgrade: no DATA before the client's preface",
   repr([type(f).__name__ for f in early]))
for f in early:
    if isinstance(f, HeadersFrame):
        c.dec.decode(f.data)
c.send_raw(PREFACE + raw_frame(4, 0, 0))
body, ended = b"", False
for f in c.frames(3):
    if isinstance(f, DataFrame) and f.stream_id == 1:
        body += f.data
        if "END_STREAM" in f.flags:
            ended = True
            break
ok(ended and body.startswith(b"{") and b'"status"' in body,
   "upgrade: the body follows the preface, whole", repr(body[:60]))
c.close()

# The same for an event stream, and its Last-Event-ID travels with the
# upgrade: an id newer than the cache asks for a resync_required first.
c = Conn(preface=False)
c.send_raw(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           b"HTTP2-Settings: AAIAAAAA\r\nLast-Event-ID: 999999999\r\n\r\n")
head = c.http1_head()
early = [f for f in c.frames(0.5, ack=False)]
ok(head.startswith(b"HTTP/1.1 101 ") and not any(isinstance(f, DataFrame) for f in early),
   "upgrade to an event stream: no DATA before the client's preface",
   repr((head[:20], [type(f).__name__ for f in early])))
c.send_raw(PREFACE + raw_frame(4, 0, 0))
body = b""
for f in c.frames(3):
    if isinstance(f, DataFrame) and f.stream_id == 1:
        body += f.data
        if b"\n\n" in body:
            break
ok(b"event: resync_required" in body,
   "upgrade to an event stream: Last-Event-ID honoured (resync_required)", repr(body[:80]))
c.close()

# HTTP2-Settings is the client's first SETTINGS: a table size there counts.
c = Conn(preface=False)
c.send_raw(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           b"HTTP2-Settings: AAEAAAAA\r\n\r\n")  # HEADER_TABLE_SIZE 0
head = c.http1_head()
c.send_raw(PREFACE + raw_frame(4, 0, 0, settings_payload([(1, 0)])))
c.dec.max_allowed_table_size = 0
block, hdrs = b"", None
for f in c.frames(3):
    if isinstance(f, HeadersFrame) and f.stream_id == 1:
        block = f.data
        hdrs = dict(c.dec.decode(f.data))
        break
ok(head.startswith(b"HTTP/1.1 101 ") and block[:1] == b"\x20" and hdrs and "etag" in hdrs,
   "upgrade with HEADER_TABLE_SIZE 0 in HTTP2-Settings: stream 1's block starts with the update",
   repr((head[:20], block[:4])))
c.close()

# ---- request fields and content ----------------------------------------------------

# The 100-field limit counts regular fields, as HTTP/1.1 does: four
# pseudo-headers plus 100 fields pass, 101 fields get 431.
for nfields, want in ((100, 200), (101, 431)):
    c = Conn()
    c.request(1, extra=[("x-f%d" % i, "v") for i in range(nfields)])
    status, _, _, _ = c.response(1)
    ok(status == want, "%d header fields besides the pseudo-headers: %d" % (nfields, want),
       "got %s" % status)
    c.close()

def with_current_tag(send, want):
    """Stream 3's status after send(conn, tag), tag being what stream 1's
    GET /services answered. The swarm is shared, so the tag may move between
    the two: up to five tries, until the status is `want`."""
    got = None
    for attempt in range(5):
        c = Conn()
        c.request(1, path="/services")
        _, hdrs, _, _ = c.response(1)
        send(c, hdrs.get("etag", ""))
        got, _, _, _ = c.response(3)
        c.close()
        if got == want:
            break
    return got


# Repeated If-None-Match fields are one list (RFC 9110 §5.3).
got = with_current_tag(lambda c, tag: c.request(
    3, path="/services", extra=[("if-none-match", '"other"'), ("if-none-match", tag)]), 304)
ok(got == 304, "two if-none-match fields, the current tag in the second: 304", repr(got))

# A list over the server's bound is refused, not dropped: dropped, a POST
# would act that a matching tag should stop.
c = Conn()
c.request(1, path="/services", extra=[("if-none-match", '"%s"' % ("a" * 1100))])
status, _, _, _ = c.response(1)
ok(status == 431, "if-none-match over 1 KiB: 431", repr(status))
c.close()


# Trailers are counted, never merged into the request (RFC 9110 §6.5.1): an
# if-none-match there does not make a 304.
def trailer_tag(c, tag):
    c.request(3, path="/services", end_stream=False)
    c.headers(3, [("if-none-match", tag), ("x-t", "1")], end_stream=True)


got = with_current_tag(trailer_tag, 200)
ok(got == 200, "if-none-match in trailers is not a precondition: 200", repr(got))

# Expect: 100-continue (RFC 9110 §10.1.1): a 100 comes before the content,
# then the final answer once it arrived.
c = Conn()
c.request(1, path="/cache/stats", method="POST", end_stream=False,
          extra=[("content-length", "5"), ("expect", "100-continue")])
first = None
for f in c.frames(2):
    if isinstance(f, HeadersFrame) and f.stream_id == 1:
        first = dict(c.dec.decode(f.data)).get(":status")
        break
ok(first == "100", "Expect: 100-continue: a 100 HEADERS before any content", repr(first))
c.send(DataFrame(1, data=b"hello", flags=["END_STREAM"]))
status, _, _, ended = c.response(1)
ok(status == 405 and ended, "... then the final answer once the content is in", repr(status))
c.close()

print("1..%d" % n_tests)
sys.exit(1 if n_failed else 0)
