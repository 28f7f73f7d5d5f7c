#!/usr/bin/python3
"""Clients for the watch tests (issue 8): SSE over httpx and raw sockets,
long-polls over HTTP/2 (h2) and many raw sockets, a Prometheus text-format
checker. Each subcommand prints one JSON object on stdout; the shell
scripts make the Docker changes and assert on it.

Every wait has a deadline; nothing sleeps to synchronise."""
import argparse
import json
import re
import selectors
import socket
import subprocess
import sys
import time
from datetime import datetime

import h2.config
import h2.connection
import h2.events
import httpx


def log(*a):
    print("#", *a, file=sys.stderr, flush=True)


# ---- SSE parsing (WHATWG "Server-sent events" 9.2.6, enough for tests) ----

class SSEParser:
    def __init__(self):
        self.buf = b""
        self.cur = {}
        self.data = []
        self.comments = []

    def feed(self, chunk):
        """Returns the events completed by chunk: dicts id/event/data."""
        out = []
        self.buf += chunk
        while True:
            m = re.search(rb"\r\n|\r(?!$)|\n", self.buf)
            if not m:
                break
            line = self.buf[:m.start()].decode()
            self.buf = self.buf[m.end():]
            if line == "":
                if self.data or self.cur:
                    ev = dict(self.cur)
                    ev["data"] = "\n".join(self.data)
                    out.append(ev)
                self.cur, self.data = {}, []
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                self.data.append(value)
            elif name in ("id", "event", "retry"):
                self.cur[name] = value
        return out


def ts_of(body):
    """The event body's timestamp (RFC 3339, ms) as Unix seconds."""
    t = json.loads(body)["timestamp"]
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=__import__("datetime").timezone.utc).timestamp()


def http_get(port, path, timeout=5):
    with httpx.Client(timeout=timeout) as c:
        return c.get(f"http://127.0.0.1:{port}{path}")


def metric(port, name_labels):
    """A sample of /metrics by its exact name{labels}, or None."""
    body = http_get(port, "/metrics").text
    for line in body.splitlines():
        if line.startswith(name_labels + " "):
            return float(line.split(" ")[-1])
    return None


def wait_metric(port, name_labels, want, deadline):
    end = time.time() + deadline
    while time.time() < end:
        v = metric(port, name_labels)
        if v == want:
            return True
        time.sleep(0.02)
    log(f"{name_labels} = {metric(port, name_labels)}, want {want}")
    return False


def run(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


# ---- SSE with httpx -------------------------------------------------------

def sse_httpx(port, path, headers, until, deadline, on_open=None):
    """Reads events until until(events) is true or the deadline passes.
    on_open() runs once the response head arrived (the client is
    registered by then)."""
    events, parser = [], SSEParser()
    end = time.time() + deadline
    with httpx.Client(timeout=httpx.Timeout(deadline, read=1.0)) as c:
        with c.stream("GET", f"http://127.0.0.1:{port}{path}", headers=headers) as r:
            head = {"status": r.status_code, "type": r.headers.get("content-type"),
                    "index": r.headers.get("x-registry-index")}
            if on_open:
                on_open()
            it = r.iter_raw()
            while time.time() < end and not until(events):
                try:
                    chunk = next(it)
                except (httpx.ReadTimeout, StopIteration):
                    if time.time() >= end:
                        break
                    continue
                events.extend(parser.feed(chunk))
    return head, events, parser.comments


def cmd_sse_resume(a):
    """Session 1 reads events of the service, disconnects, changes happen,
    session 2 resumes with Last-Event-ID. A reference curl -N stream runs
    throughout and sees every revision."""
    ref = subprocess.Popen(["curl", "-sN", f"http://127.0.0.1:{a.port}/events/stream"],
                           stdout=subprocess.PIPE)
    ok_ref = wait_metric(a.port, 'swarm_registry_watchers{kind="sse"}', 1, 5)
    mine = lambda evs: [e for e in evs if a.name in e["data"]]
    n = [0]

    def change():
        n[0] += 1
        run(f"docker service update --detach --label-add w.step={n[0]} {a.name}")

    def first_open():
        change()
        change()
    head1, ev1, _ = sse_httpx(a.port, "/events/stream", {}, lambda e: len(mine(e)) >= 2, 15,
                              first_open)
    # Disconnected: two more changes happen while nobody listens.
    change()
    change()
    target = 4
    def got_all(events):
        return any(f"w.step\":\"{target}\"" in e["data"] for e in events)
    last = ev1[-1]["id"] if ev1 else "0"
    head2, ev2, _ = sse_httpx(a.port, "/events/stream", {"Last-Event-ID": last}, got_all, 15)
    # The reference stream: every event up to the last one session 2 saw.
    stop_at = int(ev2[-1]["id"]) if ev2 else 0
    refp, refev, end = SSEParser(), [], time.time() + 10
    sel = selectors.DefaultSelector()
    sel.register(ref.stdout, selectors.EVENT_READ)
    while time.time() < end and not any(int(e["id"]) >= stop_at for e in refev):
        if sel.select(0.2):
            refev.extend(refp.feed(ref.stdout.read1(65536)))
    ref.kill()
    ref.wait()
    ids1 = [int(e["id"]) for e in ev1]
    ids2 = [int(e["id"]) for e in ev2]
    refids = [int(e["id"]) for e in refev]
    lo = ids1[0] if ids1 else 0
    refwin = [i for i in refids if lo <= i <= stop_at]
    print(json.dumps({
        "ref_registered": ok_ref, "status1": head1["status"], "type1": head1["type"],
        "status2": head2["status"], "ids1": ids1, "ids2": ids2, "ref": refwin,
        "ref_contiguous": refwin == list(range(lo, stop_at + 1)) if refwin else False,
        "union_is_ref": sorted(ids1 + ids2) == refwin,
        "no_duplicates": len(set(ids1 + ids2)) == len(ids1 + ids2),
        "steps": [json.loads(e["data"])["service"]["labels"].get("w.step")
                  for e in ev1 + ev2 if e.get("event") == "service.updated"
                  and a.name in e["data"]],
    }))


def cmd_sse_resync(a):
    """Resume from a revision the ring no longer holds."""
    def until(evs):
        return len(evs) >= 2
    changed = [False]

    def on_open():
        if not changed[0]:
            changed[0] = True
            run(f"docker service update --detach --label-add w.after=1 {a.name}")
    head, evs, _ = sse_httpx(a.port, "/events/stream", {"Last-Event-ID": str(a.since)}, until,
                             15, on_open)
    first = evs[0] if evs else {}
    body = json.loads(first.get("data", "{}") or "{}")
    print(json.dumps({
        "status": head["status"], "index": head["index"],
        "first_event": first.get("event"), "first_id": first.get("id"),
        "first_body_event": body.get("event"),
        "first_has_service": any(s.get("name") == a.name for s in body.get("services", [])),
        "first_cache_version": body.get("cache_version"),
        "next_event": evs[1].get("event") if len(evs) > 1 else None,
        "next_id": evs[1].get("id") if len(evs) > 1 else None,
        "next_names_service": a.name in evs[1]["data"] if len(evs) > 1 else False,
    }))


def cmd_sse_heartbeat(a):
    t0 = time.time()
    times = []
    with socket.create_connection(("127.0.0.1", a.port), timeout=5) as s:
        s.sendall(b"GET /events/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = b""
        end = t0 + a.seconds
        while time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            while b": heartbeat\n\n" in buf:
                buf = buf.replace(b": heartbeat\n\n", b"", 1)
                times.append(round(time.time() - t0, 3))
    print(json.dumps({"heartbeats": times, "head": buf.split(b"\r\n")[0].decode()}))


# ---- HTTP/2 ---------------------------------------------------------------

class H2:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}  # id -> {"status", "headers", "data", "ended", "t_end"}

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def get(self, path, extra=()):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                     (":authority", "t")] + list(extra), end_stream=True)
        self.flush()
        self.streams[sid] = {"status": None, "headers": {}, "data": b"", "ended": False}
        return sid

    def reset(self, sid):
        self.conn.reset_stream(sid)
        self.flush()

    def pump(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        if not data:
            return False
        for ev in self.conn.receive_data(data):
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and st is not None:
                st["headers"] = {k.decode(): v.decode() for k, v in ev.headers}
                st["status"] = int(st["headers"][":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if st is not None:
                    st["data"] += ev.data
            elif isinstance(ev, h2.events.StreamEnded) and st is not None:
                st["ended"] = True
                st["t_end"] = time.time()
        self.flush()
        return True

    def until(self, cond, deadline):
        end = time.time() + deadline
        while time.time() < end and not cond():
            if not self.pump(0.05):
                break
        return cond()


def cmd_h2_longpoll(a):
    """n long-polls on one h2 connection, one reset while parked, a second
    connection closed while parked, then one change wakes the rest."""
    idx = int(http_get(a.port, f"/services/{a.name}").headers["x-registry-index"])
    c = H2(a.port)
    sids = [c.get(f"/services/{a.name}?index={idx}&wait=30s") for _ in range(a.n)]
    gone = H2(a.port)
    for _ in range(10):
        gone.get(f"/services/{a.name}?index={idx}&wait=30s")
    gone.flush()
    parked = wait_metric(a.port, 'swarm_registry_watchers{kind="longpoll"}', a.n + 10, 10)
    c.reset(sids[0])
    gone.sock.close()  # a client that goes away while parked
    dropped = wait_metric(a.port, 'swarm_registry_watchers{kind="longpoll"}', a.n - 1, 5)
    early = sum(1 for s in sids[1:] if c.streams[s]["ended"])
    t0 = time.time()
    run(f"docker service update --detach --label-add w.h2=1 {a.name}")
    t_visible = time.time()
    done = c.until(lambda: all(c.streams[s]["ended"] for s in sids[1:]), 10)
    ans = [c.streams[s] for s in sids[1:]]
    indexes = {s["headers"].get("x-registry-index") for s in ans}
    bodies_ok = all(s["status"] == 200 and b'"w.h2":"1"' in s["data"] for s in ans)
    # The server is still fine afterwards, on the same connection.
    sid = c.get(f"/services/{a.name}")
    c.until(lambda: c.streams[sid]["ended"], 5)
    print(json.dumps({
        "parked": parked, "dropped_after_reset_and_close": dropped, "early": early,
        "all_answered": done, "bodies_ok": bodies_ok, "indexes": sorted(indexes),
        "old_index": idx,
        "max_after_update_ms": round((max(s.get("t_end", 1e18) for s in ans) - t_visible) * 1000),
        "update_cmd_ms": round((t_visible - t0) * 1000),
        "after_status": c.streams[sid]["status"],
    }))


def cmd_h2_sse(a):
    """Two SSE streams on one h2 connection (one filtered); a change reaches
    both; one is reset and the other keeps going."""
    c = H2(a.port)
    s_all = c.get("/events/stream")
    s_met = c.get("/events/stream?types=metrics.%23")
    s_svc = c.get("/events/stream?types=service.*")
    registered = wait_metric(a.port, 'swarm_registry_watchers{kind="sse"}', 3, 5)
    run(f"docker service update --detach --label-add w.sse=1 {a.name}")
    name = a.name.encode()
    c.until(lambda: name in c.streams[s_all]["data"] and name in c.streams[s_svc]["data"], 10)
    c.reset(s_all)
    gone = wait_metric(a.port, 'swarm_registry_watchers{kind="sse"}', 2, 5)
    run(f"docker service update --detach --label-add w.sse=2 {a.name}")
    c.until(lambda: b'"w.sse":"2"' in c.streams[s_svc]["data"], 10)
    evs_svc = SSEParser().feed(c.streams[s_svc]["data"])
    print(json.dumps({
        "registered": registered, "status": c.streams[s_svc]["status"],
        "type": c.streams[s_svc]["headers"].get("content-type"),
        "index_header": c.streams[s_svc]["headers"].get("x-registry-index"),
        "all_got_it": name in c.streams[s_all]["data"],
        "filtered_metrics_only": all(e.get("event", "").startswith("metrics.")
                                     for e in SSEParser().feed(c.streams[s_met]["data"])),
        "svc_events": [e.get("event") for e in evs_svc],
        "svc_steps": [json.loads(e["data"])["service"]["labels"].get("w.sse") for e in evs_svc
                      if a.name in e["data"]],
        "reset_dropped": gone,
    }))


# ---- many watchers on raw sockets -----------------------------------------

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cmd_many(a):
    """a.n raw HTTP/1.1 connections, all watching (SSE or long-poll); RSS
    before/after; one change; when each socket saw it.

    Timing: the trigger is a docker service update; "entered the cache" is
    the event's own timestamp (set by the cache when it committed the
    change, ms precision, same clock). A socket's receive time is the
    return time of the epoll_wait that first reported it readable (taken
    before any socket of that batch is processed, so our own processing of
    1000 sockets does not count against the server)."""
    port, name = a.port, a.name
    idx = int(http_get(port, f"/services/{name}").headers["x-registry-index"])
    # A witness stream gives the change's commit timestamp.
    witness = subprocess.Popen(["curl", "-sN", f"http://127.0.0.1:{port}/events/stream"],
                               stdout=subprocess.PIPE)
    wait_metric(port, 'swarm_registry_watchers{kind="sse"}', 1, 5)
    rss0 = rss_kb(a.pid)
    if a.mode == "sse":
        req = b"GET /events/stream?types=service.* HTTP/1.1\r\nHost: t\r\n\r\n"
        gauge, want = 'swarm_registry_watchers{kind="sse"}', a.n + 1
    else:
        req = f"GET /services/{name}?index={idx}&wait=60s HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        gauge, want = 'swarm_registry_watchers{kind="longpoll"}', a.n
    sel = selectors.EpollSelector()
    socks = []
    for i in range(a.n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        s.sendall(req)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, i)
    ready = wait_metric(port, gauge, want, 30)
    # SSE: the response heads arrive first; read them away.
    bufs = [b""] * a.n
    head_end = time.time() + 5
    if a.mode == "sse":
        heads = 0
        while heads < a.n and time.time() < head_end:
            for key, _ in sel.select(0.1):
                i = key.data
                bufs[i] += socks[i].recv(65536)
                if b"\r\n\r\n" in bufs[i] and bufs[i].find(b"\r\n\r\n") == len(bufs[i]) - 4:
                    heads += 1
        bufs = [b""] * a.n
    rss1 = rss_kb(a.pid)
    got = [None] * a.n
    t0 = time.time()
    run(f"docker service update --detach --label-add w.many={int(t0)} {name}")
    end = time.time() + 10
    marker = b"w.many"
    while time.time() < end and any(g is None for g in got):
        batch = sel.select(0.1)
        now = time.time()
        for key, _ in batch:
            i = key.data
            try:
                chunk = socks[i].recv(65536)
            except BlockingIOError:
                continue
            bufs[i] += chunk
            if got[i] is None and marker in bufs[i]:
                got[i] = now
            if not chunk:
                sel.unregister(socks[i])
    # The witness: the commit time of the change.
    wp, wev, wend = SSEParser(), [], time.time() + 5
    wsel = selectors.DefaultSelector()
    wsel.register(witness.stdout, selectors.EVENT_READ)
    commit = None
    while time.time() < wend and commit is None:
        if wsel.select(0.1):
            for e in wp.feed(witness.stdout.read1(65536)):
                if b"w.many" in e["data"].encode() and name in e["data"]:
                    commit = ts_of(e["data"])
    witness.kill()
    witness.wait()
    lat = sorted((g - commit) * 1000 for g in got if g is not None) if commit else []
    for s in socks:
        s.close()
    print(json.dumps({
        "mode": a.mode, "n": a.n, "ready": ready, "received": sum(g is not None for g in got),
        "rss_before_kb": rss0, "rss_after_kb": rss1, "rss_delta_kb": rss1 - rss0,
        "lat_ms_max": round(lat[-1], 1) if lat else None,
        "lat_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
        "lat_ms_min": round(lat[0], 1) if lat else None,
        "trigger_to_commit_ms": round((commit - t0) * 1000, 1) if commit else None,
    }))


# ---- slow SSE reader ---------------------------------------------------------

def cmd_slow(a):
    """An SSE client that does not read while lots of events are produced;
    then it reads everything: the stream is well formed and holds a
    resync_required."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", a.port))
    s.sendall(b"GET /events/stream HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_metric(a.port, 'swarm_registry_watchers{kind="sse"}', 1, 5)
    rss0 = rss_kb(a.pid)
    t_end = time.time() + 60
    rounds = 0
    while rounds < a.rounds and time.time() < t_end:
        http_post(a.port, "/cache/clear")
        http_post(a.port, "/cache/refresh")
        rounds += 1
    overruns = metric(a.port, "swarm_registry_sse_overruns_total")
    rss1 = rss_kb(a.pid)
    # Now read everything until the stream goes quiet. A client that follows
    # the protocol (take the state of resync_required, apply what follows)
    # must end up with the registry's current service list.
    s.settimeout(1)
    p = SSEParser()
    evs = []
    head = b""
    end = time.time() + 30
    while time.time() < end:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            break  # quiet for 1 s: caught up
        if not chunk:
            break
        if b"\r\n\r\n" not in head:
            head += chunk
            if b"\r\n\r\n" not in head:
                continue
            head, _, chunk = head.partition(b"\r\n\r\n")
            head += b"\r\n\r\n"
        evs.extend(p.feed(chunk))
    s.close()
    state = None
    for e in evs:
        body = json.loads(e["data"])
        if e.get("event") in ("resync_required", "services.updated"):
            state = {x["name"] for x in body["services"]}
        elif state is not None and e.get("event") == "service.removed":
            state.discard(body["service"]["name"])
        elif state is not None and e.get("event") in ("service.added", "service.updated"):
            state.add(body["service"]["name"])
    truth = {x["name"] for x in http_get(a.port, "/services").json()["services"]}
    ids = [int(e["id"]) for e in evs if "id" in e]
    print(json.dumps({
        "rounds": rounds, "overruns": overruns, "events": len(evs),
        "first": [(e.get("id"), e.get("event"), len(e["data"])) for e in evs[:4]],
        "resync": sum(e.get("event") == "resync_required" for e in evs),
        "well_formed": all("id" in e and "event" in e and e["data"].startswith("{")
                           for e in evs),
        "ids_increasing": ids == sorted(set(ids)),
        "state_matches": state == truth, "services": len(truth),
        "rss_before_kb": rss0, "rss_after_kb": rss1,
    }))


def http_post(port, path):
    with httpx.Client(timeout=30) as c:
        return c.post(f"http://127.0.0.1:{port}{path}")


# ---- Prometheus text format check --------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (\S+)$")


def prom_check(text):
    """Problems with a text format 0.0.4 body (empty list = fine), and the
    samples as {name{labels}: value}."""
    problems, samples, families, cur, typ = [], {}, set(), None, None
    if not text.endswith("\n"):
        problems.append("no final newline")
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            cur = line.split(" ")[2]
            if cur in families:
                problems.append(f"{n}: family {cur} twice")
            families.add(cur)
            typ = None
        elif line.startswith("# TYPE "):
            _, _, name, t = line.split(" ", 3)
            if name != cur:
                problems.append(f"{n}: TYPE {name} not after its HELP")
            if t not in ("counter", "gauge", "histogram", "summary", "untyped"):
                problems.append(f"{n}: bad type {t}")
            if t == "counter" and not name.endswith("_total"):
                problems.append(f"{n}: counter {name} without _total")
            typ = t
        elif line.startswith("#") or line == "":
            continue
        else:
            m = SAMPLE.match(line)
            if not m:
                problems.append(f"{n}: bad sample line {line!r}")
                continue
            name = m.group(1)
            if typ == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    if name == cur + suffix:
                        name = cur
            if name != cur or typ is None:
                problems.append(f"{n}: {m.group(1)} outside its family")
            v = m.group(3)
            if v not in ("NaN", "+Inf", "-Inf"):
                try:
                    float(v)
                except ValueError:
                    problems.append(f"{n}: bad value {v}")
                    continue
            samples[m.group(1) + (m.group(2) or "")] = float(v)
    problems += histogram_problems(samples)
    return problems, samples


def histogram_problems(samples):
    """Each histogram series: buckets never decrease as le grows, and the
    +Inf bucket equals _count."""
    problems, series = [], {}
    for key, v in samples.items():
        m = re.match(r'^(\w+)_bucket\{(.*),le="([^"]+)"\}$', key)
        if m:
            series.setdefault((m.group(1), m.group(2)), []).append((float(m.group(3)), v))
    for (name, labels), buckets in series.items():
        buckets.sort()
        counts = [c for _, c in buckets]
        if counts != sorted(counts):
            problems.append(f"{name}{{{labels}}}: buckets decrease")
        if buckets[-1][0] != float("inf"):
            problems.append(f"{name}{{{labels}}}: no +Inf bucket")
        elif samples.get(f"{name}_count{{{labels}}}") != buckets[-1][1]:
            problems.append(f"{name}{{{labels}}}: +Inf bucket is not _count")
    return problems


def cmd_prom_check(a):
    r = http_get(a.port, "/metrics")
    problems, samples = prom_check(r.text)
    print(json.dumps({"status": r.status_code, "type": r.headers.get("content-type"),
                      "problems": problems[:10], "samples": samples}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--mode", default="sse")
    ap.add_argument("--since", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args()
    {"sse-resume": cmd_sse_resume, "sse-resync": cmd_sse_resync,
     "sse-heartbeat": cmd_sse_heartbeat, "h2-longpoll": cmd_h2_longpoll,
     "h2-sse": cmd_h2_sse, "many": cmd_many, "slow": cmd_slow,
     "prom-check": cmd_prom_check}[a.cmd](a)


if __name__ == "__main__":
    main()
