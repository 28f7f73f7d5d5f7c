#!/usr/bin/python3
"""event_latency: time from `docker service update` returning to the change
being visible in GET /services/{name} (polled every millisecond over one
keep-alive connection), over N label updates on the real engine.

usage: event_latency.py BINARY [N]    (default N = 50)
Prints median, p99 and max, and the targets (median < 20 ms, p99 < 50 ms).
The registry runs with REFRESH_INTERVAL_SEC=3600 so only events can explain it.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 50
name = "srbench-%d" % os.getpid()

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, ROLE="service-registry", HOST="127.0.0.1", PORT=str(port),
           REFRESH_INTERVAL_SEC="3600", LOG_LEVEL="WARNING")
reg = subprocess.Popen([binary], env=env)


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


try:
    subprocess.run(["docker", "service", "create", "--detach", "--name", name, "--label",
                    "autoscaler.enabled=true", "--replicas", "0", "local/busybox:1", "sleep",
                    "1000000"], check=True, capture_output=True)
    deadline = time.time() + 15
    conn = None
    while time.time() < deadline:
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            if get(conn, "/services/" + name)[0] == 200:
                break
        except OSError:
            conn = None
        time.sleep(0.05)
    else:
        sys.exit("registry never listed the service")

    lat = []
    for i in range(n):
        value = str(10 + i)
        subprocess.run(["docker", "service", "update", "--detach", "--label-add",
                        "autoscaler.max=" + value, name], check=True, capture_output=True)
        t0 = time.perf_counter()
        while True:
            st, body = get(conn, "/services/" + name)
            if st == 200 and json.loads(body)["autoscaler"]["max_replicas"] == int(value):
                break
            if time.perf_counter() - t0 > 5:
                sys.exit("update %d not visible after 5 s" % i)
            time.sleep(0.001)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)]
    med = statistics.median(lat)
    print("event_latency: %d label updates" % n)
    print("  median %.1f ms (target < 20)  p99 %.1f ms (target < 50)  max %.1f ms" % (med, p99, lat[-1]))
    print("  targets %s" % ("met" if med < 20 and p99 < 50 else "NOT met"))
finally:
    subprocess.run(["docker", "service", "rm", name], capture_output=True)
    reg.terminate()
    reg.wait()
