#!/usr/bin/python3
"""Raw clients for the API limit tests (tests/integration/api_limits.sh,
api_shutdown.sh). Each mode prints one JSON line with what it saw; the shell
scripts assert on it.

  concurrent PORT N         N connections at once (half HTTP/1.1, half h2c),
                            one request each, all read concurrently
  slowloris PORT            one header byte every 200 ms while a normal client
                            polls /health; when was the slow one dropped?
  h2slowhead PORT SECONDS   h2 slowloris: a header block in 1-byte CONTINUATIONs
  h2overlap, h2slowbody, h1slowbody PORT SECONDS
                            request content that is slow or always pending:
                            the header timeout is not the content's
  nonreading PORT PID PROTO pipeline requests without reading (h1 or h2) for
                            3 s; the server's RSS before and after
  shutdown PORT PID         in-flight h2 response (tiny window), half-sent
                            HTTP/1.1 head, idle keep-alive; SIGTERM; then what
                            each one got
"""
import json
import os
import re
import selectors
import signal
import socket
import struct
import sys
import time

import hpack
from hyperframe.frame import (DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def raw_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def h2_hello(window=None):
    out = PREFACE
    if window is None:
        out += raw_frame(4, 0, 0, struct.pack(">HI", 4, 2 ** 31 - 1))
        out += WindowUpdateFrame(0, window_increment=2 ** 31 - 1 - 65535).serialize()
    else:
        out += raw_frame(4, 0, 0, struct.pack(">HI", 4, window))
    return out


def h2_request(enc, stream, path="/health", end_stream=True):
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", path),
                        (":authority", "127.0.0.1")])
    return raw_frame(1, 0x4 | (0x1 if end_stream else 0), stream, block)


class FrameReader:
    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            f, _ = Frame.parse_frame_header(memoryview(self.buf[:9]))
            f.parse_body(memoryview(self.buf[9:9 + n]))
            self.buf = self.buf[9 + n:]
            out.append(f)
        return out


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def server_drained(port, sock):
    """The server-side socket of `sock` has no unread bytes (/proc/net/tcp)."""
    mine = sock.getsockname()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            lport = int(parts[1].split(":")[1], 16)
            rport = int(parts[2].split(":")[1], 16)
            if lport == port and rport == mine:
                return int(parts[4].split(":")[1], 16) == 0
    return False


def h1_complete(buf):
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].decode("latin1").lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return len(buf) >= end + 4 + int(line.split(":")[1])
    return True


def concurrent(port, n):
    sel = selectors.DefaultSelector()
    conns = []
    opened = 0
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        h2 = i % 2 == 1
        if h2:
            enc = hpack.Encoder()
            out = h2_hello() + h2_request(enc, 1, "/services")
        else:
            out = b"GET /services HTTP/1.1\r\nHost: t\r\n\r\n"
        c = {"s": s, "h2": h2, "out": out, "in": b"", "done": False, "fr": FrameReader(),
             "dec": hpack.Decoder(), "status": None, "body": 0}
        conns.append(c)
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, c)
        opened += 1
    deadline = time.monotonic() + 30
    left = n
    peak_open = 0
    while left and time.monotonic() < deadline:
        peak_open = max(peak_open, sum(1 for c in conns if not c["done"]))
        for key, ev in sel.select(1):
            c = key.data
            s = c["s"]
            if ev & selectors.EVENT_WRITE and c["out"]:
                try:
                    k = s.send(c["out"])
                    c["out"] = c["out"][k:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    c["done"] = True
                if not c["out"] and not c["done"]:
                    sel.modify(s, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ and not c["done"]:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    c["done"] = True
                elif c["h2"]:
                    for f in c["fr"].feed(data):
                        if isinstance(f, HeadersFrame) and f.stream_id == 1:
                            c["status"] = int(dict(c["dec"].decode(f.data))[":status"])
                        if isinstance(f, DataFrame) and f.stream_id == 1:
                            c["body"] += len(f.data)
                            if "END_STREAM" in f.flags:
                                c["done"] = True
                else:
                    c["in"] += data
                    if h1_complete(c["in"]):
                        c["status"] = int(c["in"][9:12])
                        c["done"] = True
            if c["done"]:
                sel.unregister(s)
                left -= 1
    ok = sum(1 for c in conns if c["status"] == 200 and c["done"])
    for c in conns:
        c["s"].close()
    print(json.dumps({"opened": opened, "answered_200": ok, "h1": n - n // 2, "h2": n // 2,
                      "peak_open": peak_open}))


def slowloris(port):
    slow = socket.create_connection(("127.0.0.1", port))
    head = b"GET /services HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
    t0 = time.monotonic()
    dropped_at, got, served = None, b"", 0
    i = 0
    slow.settimeout(0.2)
    while time.monotonic() - t0 < 30 and dropped_at is None:
        try:
            slow.send(head[i % len(head):i % len(head) + 1])
        except OSError:
            dropped_at = time.monotonic() - t0
            break
        i += 1
        try:
            data = slow.recv(4096)
            got += data
            if not data:
                dropped_at = time.monotonic() - t0
        except socket.timeout:
            pass
        except OSError:
            dropped_at = time.monotonic() - t0
        # A normal client, served meanwhile.
        n = socket.create_connection(("127.0.0.1", port), timeout=2)
        n.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        r = b""
        try:
            while True:
                d = n.recv(65536)
                if not d:
                    break
                r += d
        except OSError:
            pass
        n.close()
        served += r.startswith(b"HTTP/1.1 ")
    print(json.dumps({"dropped_after": dropped_at, "status": got[9:12].decode() if got else None,
                      "normal_served": served, "bytes_sent": i}))


def lingerer(port):
    """Gets a 400 (the server closes after it), then keeps sending a byte
    every 0.3 s: the lingering close must still end. Reports when the
    server had closed for good (a send or recv failed: RST)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"BAD\x01 / HTTP/1.1\r\nHost: t\r\n\r\n")
    s.settimeout(0.3)
    got, t0, closed_at = b"", None, None
    while t0 is None or time.monotonic() - t0 < 20:
        try:
            d = s.recv(65536)
            got += d
            if not d and t0 is None:
                t0 = time.monotonic()  # the response is complete: write side shut
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic()
            break
        if t0 is None:
            continue
        try:
            s.send(b"x")
        except OSError:
            closed_at = time.monotonic()
            break
        time.sleep(0.3)
    s.close()
    print(json.dumps({"status": got[9:12].decode() if got else None,
                      "closed_after": None if closed_at is None else round(closed_at - t0, 2)}))


def zerowindow(port):
    """h2 with SETTINGS_INITIAL_WINDOW_SIZE 0: GET /services, then PINGs
    but never a WINDOW_UPDATE. Reports the HEADERS and when the server
    gave up the response: RST_STREAM on it, or GOAWAY / close, in seconds
    after the request."""
    enc = hpack.Encoder()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(h2_hello(window=0) + raw_frame(4, 1, 0) + h2_request(enc, 1, "/services"))
    t0, rd = time.monotonic(), FrameReader()
    s.settimeout(0.5)
    res = {"headers": False, "data_bytes": 0, "goaway_after": None, "closed_after": None,
           "rst": None, "rst_after": None}
    while time.monotonic() - t0 < 20 and res["closed_after"] is None and res["rst"] is None:
        try:
            d = s.recv(65536)
            if not d:
                res["closed_after"] = round(time.monotonic() - t0, 2)
            for f in rd.feed(d):
                if isinstance(f, HeadersFrame):
                    res["headers"] = True
                elif isinstance(f, DataFrame):
                    res["data_bytes"] += len(f.data)
                elif isinstance(f, GoAwayFrame) and res["goaway_after"] is None:
                    res["goaway_after"] = round(time.monotonic() - t0, 2)
                elif isinstance(f, RstStreamFrame) and f.stream_id == 1:
                    res["rst"], res["rst_after"] = f.error_code, round(time.monotonic() - t0, 2)
        except socket.timeout:
            pass
        except OSError:
            res["closed_after"] = round(time.monotonic() - t0, 2)
        try:
            s.sendall(raw_frame(6, 0, 0, b"12345678"))  # PING: alive, still not reading
        except OSError:
            if res["closed_after"] is None:
                res["closed_after"] = round(time.monotonic() - t0, 2)
    s.close()
    print(json.dumps(res))


def recv_some(s):
    """Bytes read; None on a timeout; b"" once the server closed (or reset)."""
    try:
        return s.recv(65536)
    except socket.timeout:
        return None
    except OSError:
        return b""


def read_frames(s, rd, dec):
    """The frames one read brought ([] on a timeout; None once the server
    closed), each HEADERS frame's block decoded into its `fields` dict."""
    d = recv_some(s)
    if d is None:
        return []
    if not d:
        return None
    fs = rd.feed(d)
    for f in fs:
        if isinstance(f, HeadersFrame):
            f.fields = dict(dec.decode(f.data))
    return fs


def note_goaway(f, res, t0):
    """Records a GOAWAY's code and time (since t0) in res; True if f is one."""
    if not isinstance(f, GoAwayFrame):
        return False
    res["goaway"] = f.error_code
    res["goaway_after"] = round(time.monotonic() - t0, 2)
    return True


def watch_stream1(s, res, timeout, done):
    """Reads until the server closes, `timeout` passes or done(res): notes
    stream 1's status and END_STREAM, a GOAWAY's code, and the close."""
    res.update({"status": None, "end_stream": False, "goaway": None, "closed": False})
    rd, dec = FrameReader(), hpack.Decoder()
    dec.max_allowed_table_size = 65536
    s.settimeout(0.5)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and not done(res):
        d = recv_some(s)
        if d is None:
            continue
        if not d:
            res["closed"] = True
            return
        for f in rd.feed(d):
            if isinstance(f, HeadersFrame) and f.stream_id == 1:
                res["status"] = int(dict(dec.decode(f.data))[":status"])
            elif isinstance(f, GoAwayFrame):
                res["goaway"] = f.error_code
            if f.stream_id == 1 and "END_STREAM" in f.flags:
                res["end_stream"] = True


def continuations(port, size, chunk):
    """GET /health with `size` bytes of x-big-N fields (8000 bytes each, no
    Huffman), the block cut into HEADERS + CONTINUATION frames of `chunk`
    bytes. Reports the response status, or the GOAWAY's error code, and the
    frame count."""
    enc = hpack.Encoder()
    big = [("x-big-%d" % i, "a" * min(8000, size - i * 8000)) for i in range((size + 7999) // 8000)]
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/health"),
                        (":authority", "127.0.0.1")] + big, huffman=False)
    parts = [block[i:i + chunk] for i in range(0, len(block), chunk)]
    out = h2_hello() + raw_frame(4, 1, 0)
    for i, p in enumerate(parts):
        flags = (0x4 if i == len(parts) - 1 else 0) | (0x1 if i == 0 else 0)
        out += raw_frame(1 if i == 0 else 9, flags, 1, p)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(out)
    res = {"frames": len(parts)}
    watch_stream1(s, res, 5, lambda r: r["status"] is not None or r["goaway"] is not None)
    s.close()
    print(json.dumps(res))


def halfclose(port):
    """h2: POST /cache/refresh (answered once the refresh is done), then
    shutdown(SHUT_WR) at once. Reports the status that still arrives."""
    enc = hpack.Encoder()
    block = enc.encode([(":method", "POST"), (":scheme", "http"), (":path", "/cache/refresh"),
                        (":authority", "127.0.0.1")])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(h2_hello() + raw_frame(4, 1, 0) + raw_frame(1, 0x5, 1, block))
    s.shutdown(socket.SHUT_WR)
    res = {}
    watch_stream1(s, res, 10, lambda r: False)  # until the server closes
    s.close()
    print(json.dumps(res))


def halfclose_big(port, n):
    """h2 with a small receive buffer: n x GET /metrics (~50 KB each) and
    shutdown(SHUT_WR) in one go, then a pause so the server meets the EOF
    while its output is still queued, then read. Reports how many streams
    ended with all the bytes their content-length announced."""
    enc = hpack.Encoder()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    out = h2_hello() + raw_frame(4, 1, 0)
    for i in range(n):
        out += h2_request(enc, 1 + 2 * i, "/metrics")
    s.sendall(out)
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.5)
    s.settimeout(5)
    rd, dec = FrameReader(), hpack.Decoder()
    want, got, ended = {}, {}, 0
    while True:
        try:
            d = s.recv(65536)
        except OSError:
            break
        if not d:
            break
        for f in rd.feed(d):
            if isinstance(f, HeadersFrame):
                want[f.stream_id] = int(dict(dec.decode(f.data)).get("content-length", -1))
            elif isinstance(f, DataFrame):
                got[f.stream_id] = got.get(f.stream_id, 0) + len(f.data)
            if "END_STREAM" in getattr(f, "flags", ()) and got.get(f.stream_id) == want.get(f.stream_id):
                ended += 1
    s.close()
    print(json.dumps({"requests": n, "complete": ended, "bytes": sum(got.values())}))


def halfclose_waiting(port):
    """h2: an event stream (1) and a long-poll (5), then shutdown(SHUT_WR):
    both are given up, as on HTTP/1.1. Reports the RST_STREAM codes and how
    soon the server closed."""
    enc = hpack.Encoder()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(h2_hello() + raw_frame(4, 1, 0) + h2_request(enc, 1, "/events/stream") +
              h2_request(enc, 3, "/services"))
    s.settimeout(5)
    rd, dec = FrameReader(), hpack.Decoder()
    index = None
    while index is None:  # the revision /services answers at
        for f in rd.feed(s.recv(65536)):
            if isinstance(f, HeadersFrame):
                h = dict(dec.decode(f.data))
                if f.stream_id == 3:
                    index = h.get("x-registry-index")
    s.sendall(h2_request(enc, 5, "/services?index=%s&wait=60s" % index))
    time.sleep(0.3)  # parked
    t0 = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    rst, closed_after = {}, None
    while closed_after is None and time.monotonic() - t0 < 10:
        d = recv_some(s)
        if d is None:
            continue
        if not d:
            closed_after = round(time.monotonic() - t0, 2)
        for f in rd.feed(d):
            if isinstance(f, RstStreamFrame):
                rst[str(f.stream_id)] = f.error_code
    s.close()
    print(json.dumps({"rst": rst, "closed_after": closed_after}))


def halfclose_nowindow(port):
    """h2 with SETTINGS_INITIAL_WINDOW_SIZE 0: GET /health, then
    shutdown(SHUT_WR). The response can never be sent (no WINDOW_UPDATE can
    come any more). Reports how soon the server closed."""
    enc = hpack.Encoder()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(h2_hello(window=0) + raw_frame(4, 1, 0) + h2_request(enc, 1, "/health"))
    time.sleep(0.2)  # the request is in before the EOF
    s.settimeout(0.2)
    t0 = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    closed_after = None
    while closed_after is None and time.monotonic() - t0 < 10:
        d = recv_some(s)
        if d is not None and not d:
            closed_after = round(time.monotonic() - t0, 2)
    s.close()
    print(json.dumps({"closed_after": closed_after}))


def stalledstream(port, seconds):
    """h2 with SETTINGS_INITIAL_WINDOW_SIZE 0: GET /metrics on stream 1 is
    never given a window, while GET /health on new streams (each given its
    window) keeps the connection busy. Reports stream 1's RST_STREAM code
    and when it came, how many others were answered, and any GOAWAY."""
    enc, dec = hpack.Encoder(), hpack.Decoder()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(h2_hello(window=0) + raw_frame(4, 1, 0) +
              WindowUpdateFrame(0, window_increment=2 ** 30).serialize() +
              h2_request(enc, 1, "/metrics"))
    s.settimeout(0.2)
    rd, t0, sid = FrameReader(), time.monotonic(), 3
    res = {"rst1": None, "rst1_after": None, "answered": 0, "goaway": None}
    next_req = t0
    while time.monotonic() - t0 < seconds and res["rst1"] is None:
        if time.monotonic() >= next_req:
            s.sendall(h2_request(enc, sid, "/health") +
                      WindowUpdateFrame(sid, window_increment=2 ** 20).serialize())
            sid += 2
            next_req += 0.4
        fs = read_frames(s, rd, dec)
        if fs is None:
            break
        for f in fs:
            if isinstance(f, RstStreamFrame) and f.stream_id == 1:
                res["rst1"] = f.error_code
                res["rst1_after"] = round(time.monotonic() - t0, 2)
            elif isinstance(f, GoAwayFrame):
                res["goaway"] = f.error_code
            elif f.stream_id > 1 and "END_STREAM" in getattr(f, "flags", ()):
                res["answered"] += 1
    s.close()
    print(json.dumps(res))


def h2overlap(port, seconds):
    """h2: GET /health with content, always one request open: every 0.2 s
    one packet ends stream N (its DATA) and opens stream N+2 (HEADERS, no
    END_STREAM). Each head is complete at once, so the header timeout must
    never fire. Reports how many were answered and any GOAWAY."""
    enc, dec = hpack.Encoder(), hpack.Decoder()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(h2_hello() + raw_frame(4, 1, 0) + h2_request(enc, 1, end_stream=False))
    s.settimeout(0.2)
    rd, t0, sid = FrameReader(), time.monotonic(), 1
    res = {"answered": 0, "goaway": None, "goaway_after": None}
    next_at = t0 + 0.2
    while time.monotonic() - t0 < seconds and res["goaway"] is None:
        if time.monotonic() >= next_at:
            s.sendall(raw_frame(0, 0x1, sid, b"x") + h2_request(enc, sid + 2, end_stream=False))
            sid += 2
            next_at += 0.2
        fs = read_frames(s, rd, dec)
        if fs is None:
            break
        for f in fs:
            if not note_goaway(f, res, t0) and "END_STREAM" in getattr(f, "flags", ()):
                res["answered"] += 1
    s.close()
    print(json.dumps(res))


def h2slowhead(port, seconds):
    """h2 slowloris: after one answered request, a header block dribbled in
    one-byte CONTINUATION frames every 0.2 s. Reports the GOAWAY's code and
    when it came (counted from the block's first byte)."""
    enc = hpack.Encoder()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(h2_hello() + raw_frame(4, 1, 0) + h2_request(enc, 1))
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/health"),
                        (":authority", "127.0.0.1"), ("x-slow", "a" * 200)], huffman=False)
    time.sleep(0.3)  # stream 1 answered: the connection is in use
    s.sendall(raw_frame(1, 0x1, 3, block[:1]))
    s.settimeout(0.2)
    rd, t0, i = FrameReader(), time.monotonic(), 1
    res = {"goaway": None, "goaway_after": None}
    while time.monotonic() - t0 < seconds and i < len(block) and res["goaway"] is None:
        try:
            s.sendall(raw_frame(9, 0, 3, block[i:i + 1]))
        except OSError:
            break
        i += 1
        fs = read_frames(s, rd, hpack.Decoder())
        if fs is None:
            break
        for f in fs:
            note_goaway(f, res, t0)
    s.close()
    print(json.dumps(res))


def h2slowbody(port, seconds):
    """h2: an event stream on stream 1, then POST /cache/clear on stream 3
    announcing 2 bytes of content and sending 1. Reports stream 3's status
    and RST_STREAM code and when they came, whether stream 1 was cut (RST,
    GOAWAY or close) within `seconds`, and whether a GET on stream 5 is
    answered afterwards."""
    enc, dec = hpack.Encoder(), hpack.Decoder()
    s = socket.create_connection(("127.0.0.1", port))
    sse = h2_request(enc, 1, "/events/stream")  # (blocks encoded in wire order)
    post = enc.encode([(":method", "POST"), (":scheme", "http"), (":path", "/cache/clear"),
                       (":authority", "127.0.0.1"), ("content-length", "2")])
    s.sendall(h2_hello() + raw_frame(4, 1, 0) + sse + raw_frame(1, 0x4, 3, post) +
              raw_frame(0, 0, 3, b"x"))
    s.settimeout(0.2)
    rd, t0 = FrameReader(), time.monotonic()
    res = {"status3": None, "status3_after": None, "rst3": None, "cut1": None,
           "status5": None}
    asked5 = False
    while time.monotonic() - t0 < seconds:
        if res["rst3"] is not None and not asked5:
            s.sendall(h2_request(enc, 5, "/health"))
            asked5 = True
        if res["status5"] is not None:
            break
        fs = read_frames(s, rd, dec)
        if fs is None:
            res["cut1"] = "closed"
            break
        for f in fs:
            if isinstance(f, HeadersFrame):
                st = int(f.fields.get(":status"))
                if f.stream_id == 3:
                    res["status3"] = st
                    res["status3_after"] = round(time.monotonic() - t0, 2)
                elif f.stream_id == 5:
                    res["status5"] = st
            elif isinstance(f, RstStreamFrame) and f.stream_id == 3:
                res["rst3"] = f.error_code
            elif isinstance(f, RstStreamFrame) and f.stream_id == 1:
                res["cut1"] = "rst"
            elif isinstance(f, GoAwayFrame):
                res["cut1"] = "goaway"
    s.close()
    print(json.dumps(res))


def h1slowbody(port, seconds):
    """HTTP/1.1 POST /cache/clear announcing 10 bytes of content, sending 3:
    it is answered at once (no endpoint reads content). Reports every status
    line that came and when the server closed (it must not answer twice)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /cache/clear HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    got, closed = read_until_close(s, seconds)
    statuses = h1_statuses(got)
    print(json.dumps({"statuses": statuses, "closed_after": closed}))


def read_until_close(s, seconds):
    """(bytes read, seconds until the server closed or None) within `seconds`;
    closes s."""
    s.settimeout(0.2)
    t0, got, closed = time.monotonic(), b"", None
    while time.monotonic() - t0 < seconds:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            d = b""
        if not d:
            closed = round(time.monotonic() - t0, 2)
            break
        got += d
    s.close()
    return got, closed


def h1_statuses(data):
    """The status codes of the HTTP/1.1 responses in `data` (bodies are JSON
    without a final CRLF, so a status line may follow one directly)."""
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def h1twobodies(port, seconds):
    """HTTP/1.1: POST /cache/stats (405, answered at once) announcing 10
    bytes, 3 sent; 1.5 s later the other 7 plus a second such POST with 3 of
    its 10. The second's content has its own clock: reports when the server
    closed (from the second request) and the statuses."""
    post = b"POST /cache/stats HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(post + b"abc")
    time.sleep(1.5)
    s.sendall(b"defghij" + post + b"abc")
    got, closed = read_until_close(s, seconds)
    statuses = h1_statuses(got)
    print(json.dumps({"statuses": statuses, "closed_after": closed}))


def nonreading(port, pid, proto):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = rss_kb(pid)
    if proto == "h2":
        enc = hpack.Encoder()
        s.sendall(h2_hello(65535))
        unit = None
    else:
        unit = b"GET /services HTTP/1.1\r\nHost: t\r\n\r\n" * 64
    s.setblocking(False)
    sent, stream = 0, 1
    t0 = time.monotonic()
    pending = b""
    while time.monotonic() - t0 < 3:
        if not pending:
            if unit is not None:
                pending = unit
            else:
                pending = b"".join(h2_request(enc, stream + 2 * k, "/services") for k in range(64))
                stream += 128
                if stream > 2 ** 30:
                    break
        try:
            k = s.send(pending)
            sent += k
            pending = pending[k:]
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    after = rss_kb(pid)
    # Still alive and serving others?
    n = socket.create_connection(("127.0.0.1", port), timeout=3)
    n.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    served = n.recv(100).startswith(b"HTTP/1.1 ")
    n.close()
    s.close()
    print(json.dumps({"proto": proto, "sent": sent, "rss_before_kb": before,
                      "rss_after_kb": after, "others_served": served}))


def shutdown(port, pid):
    res = {}
    # h2, response held back by a 100-byte window. /health: its body is
    # always longer than that, whatever the engine runs (/services may be
    # an empty list).
    h2 = socket.create_connection(("127.0.0.1", port), timeout=5)
    enc, dec, fr = hpack.Encoder(), hpack.Decoder(), FrameReader()
    h2.sendall(h2_hello(100) + h2_request(enc, 1, "/health"))
    got, clen, end = 0, None, False
    t_end = time.monotonic() + 3
    while got < 100 and time.monotonic() < t_end:
        for f in fr.feed(h2.recv(65536)):
            if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                h2.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
            if isinstance(f, HeadersFrame) and f.stream_id == 1:
                clen = int(dict(dec.decode(f.data)).get("content-length", -1))
            if isinstance(f, DataFrame) and f.stream_id == 1:
                got += len(f.data)
    res["h2_before"] = got
    # HTTP/1.1: half a head; and an idle keep-alive connection.
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(b"GET /services HTTP/1.1\r\nHo")
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    r = b""
    while not h1_complete(r):
        r += idle.recv(65536)
    # The server must have read the half head before the signal: poll its
    # socket's receive queue (bytes in the kernel would be lost at stop).
    t_end = time.monotonic() + 3
    while not server_drained(port, half) and time.monotonic() < t_end:
        time.sleep(0.005)
    res["half_read_before_stop"] = server_drained(port, half)
    t_sig = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    # idle: closed promptly.
    idle.settimeout(3)
    try:
        res["idle_closed"] = idle.recv(100) == b""
    except OSError:
        res["idle_closed"] = True
    res["idle_closed_after"] = round(time.monotonic() - t_sig, 3)
    # h2: GOAWAY notice, then the response completes once the window opens.
    goaways = []
    h2.sendall(WindowUpdateFrame(0, window_increment=1 << 20).serialize() +
               WindowUpdateFrame(1, window_increment=1 << 20).serialize())
    h2.settimeout(3)
    try:
        while True:
            data = h2.recv(65536)
            if not data:
                break
            for f in fr.feed(data):
                if isinstance(f, GoAwayFrame):
                    goaways.append((f.last_stream_id, f.error_code))
                if isinstance(f, PingFrame) and "ACK" not in f.flags:
                    h2.sendall(PingFrame(0, opaque_data=f.opaque_data,
                                         flags=["ACK"]).serialize())
                if isinstance(f, DataFrame) and f.stream_id == 1:
                    got += len(f.data)
                    end = end or "END_STREAM" in f.flags
    except OSError:
        pass
    res["h2_goaways"] = goaways
    res["h2_body"] = got
    res["h2_content_length"] = clen
    res["h2_complete"] = end and got == clen
    # HTTP/1.1: finish the head: answered with Connection: close.
    try:
        half.sendall(b"st: t\r\n\r\n")
        half.settimeout(3)
        r = b""
        while not h1_complete(r):
            d = half.recv(65536)
            if not d:
                break
            r += d
        res["half_status"] = int(r[9:12]) if r else None
        res["half_connection_close"] = b"\r\nConnection: close\r\n" in r
    except OSError as e:
        res["half_status"] = str(e)
    print(json.dumps(res))


# mode -> the client and how to read its arguments after the port.
MODES = {
    "concurrent": (concurrent, int),
    "slowloris": (slowloris,),
    "lingerer": (lingerer,),
    "zerowindow": (zerowindow,),
    "continuations": (continuations, int, int),
    "halfclose": (halfclose,),
    "halfclose_big": (halfclose_big, int),
    "halfclose_waiting": (halfclose_waiting,),
    "halfclose_nowindow": (halfclose_nowindow,),
    "stalledstream": (stalledstream, float),
    "h2overlap": (h2overlap, float),
    "h2slowhead": (h2slowhead, float),
    "h2slowbody": (h2slowbody, float),
    "h1slowbody": (h1slowbody, float),
    "h1twobodies": (h1twobodies, float),
    "nonreading": (nonreading, int, str),
    "shutdown": (shutdown, int),
}

if __name__ == "__main__":
    fn, *convert = MODES[sys.argv[1]]
    fn(int(sys.argv[2]), *(c(a) for c, a in zip(convert, sys.argv[3:])))
