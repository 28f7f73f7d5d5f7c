#!/usr/bin/python3
"""A fake Docker Engine API on a unix socket, for faults the real engine cannot
produce: an events stream cut in the middle of a JSON object, garbage lines,
events for service IDs that do not exist. Never used instead of the real engine.

usage: fake_docker.py SOCKET REQUEST_LOG

Scenario (by /events connection number):
  1: a garbage line, then half a JSON object, then the connection closes.
  2: an event for an unknown service id, then service B appears and its
     create event is sent; the stream then stays open.
Every request line is appended to REQUEST_LOG.
"""
import json
import os
import socketserver
import sys
import threading
import time
import urllib.parse

SOCK, LOG = sys.argv[1], sys.argv[2]
lock = threading.Lock()
events_conns = 0


def service(sid, name, index):
    return {
        "ID": sid, "Version": {"Index": index},
        "CreatedAt": "2026-01-01T00:00:00.000000000Z", "UpdatedAt": "2026-01-01T00:00:00.000000000Z",
        "Spec": {"Name": name, "Labels": {"autoscaler.enabled": "true"},
                 "TaskTemplate": {"ContainerSpec": {"Image": "local/busybox:1"}},
                 "Mode": {"Replicated": {"Replicas": 1}}},
        "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1, "CompletedTasks": 0},
    }


services = {"fakeaaaa": service("fakeaaaa", "fake-a", 10)}


def event(sid, name, action):
    now = time.time()
    return {"Type": "service", "Action": action, "Actor": {"ID": sid, "Attributes": {"name": name}},
            "scope": "swarm", "time": int(now), "timeNano": int(now * 1e9)}


class Handler(socketserver.StreamRequestHandler):
    def send(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.wfile.write(("HTTP/1.1 %d X\r\nApi-Version: 1.41\r\nContent-Type: %s\r\n"
                          "Content-Length: %d\r\n\r\n" % (status, ctype, len(data))).encode() + data)

    def chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def handle(self):
        global events_conns
        while True:
            line = self.rfile.readline()
            if not line:
                return
            while True:  # headers
                h = self.rfile.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
            method, target, _ = line.decode().split(" ", 2)
            with open(LOG, "a") as f:
                f.write("%s %s\n" % (method, target))
            u = urllib.parse.urlparse(target)
            path = u.path
            q = urllib.parse.parse_qs(u.query)
            if path.startswith("/v1."):
                path = "/" + path.split("/", 2)[2]
            if path == "/_ping":
                self.send(200, "OK", "text/plain")
            elif path == "/version":
                self.send(200, json.dumps({"Version": "fake-20.10", "ApiVersion": "1.41",
                                           "MinAPIVersion": "1.12"}))
            elif path == "/info":
                self.send(200, json.dumps({"Swarm": {"NodeID": "fakenode", "LocalNodeState": "active",
                                                     "ControlAvailable": True}}))
            elif path == "/services":
                flt = json.loads(q.get("filters", ["{}"])[0])
                ids = flt.get("id", {})
                ids = list(ids) if isinstance(ids, (dict, list)) else []
                with lock:
                    out = [s for sid, s in services.items() if not ids or sid in ids]
                self.send(200, json.dumps(out))
            elif path == "/events":
                with lock:
                    events_conns += 1
                    n = events_conns
                self.wfile.write(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: "
                                 b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                self.wfile.flush()
                if n == 1:
                    time.sleep(0.3)
                    self.chunk("this is not json\n")
                    whole = json.dumps(event("fakeaaaa", "fake-a", "update"))
                    self.chunk(whole[: len(whole) // 2])
                    time.sleep(0.2)
                    return  # cut mid-object: close without the last chunk
                time.sleep(0.3)
                self.chunk(json.dumps(event("nosuchid", "ghost", "update")) + "\n")
                time.sleep(0.3)
                with lock:
                    services["fakebbbb"] = service("fakebbbb", "fake-b", 11)
                e = json.dumps(event("fakebbbb", "fake-b", "create"))
                self.chunk(e[:10])  # one object split across two chunks
                time.sleep(0.05)
                self.chunk(e[10:] + "\n")
                while True:
                    time.sleep(1)
                    try:
                        self.wfile.flush()
                    except OSError:
                        return
            else:
                self.send(404, json.dumps({"message": "page not found"}))


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if os.path.exists(SOCK):
    os.unlink(SOCK)
Server(SOCK, Handler).serve_forever()
