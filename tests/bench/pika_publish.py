#!/usr/bin/python3
"""Reference publisher for publish_throughput.sh: python3-pika (Debian's),
BlockingConnection with confirm_delivery, so every basic_publish waits for
its confirm (the simplest reliable client). Publishes the first N lines of
BODIES ("<routing key>\\t<body>", written by publish_throughput -d) to a
fresh durable topic exchange with a durable queue bound with "#", with the
registry's AMQP properties; prints confirmed msg/s (connecting excluded).

usage: pika_publish.py PORT USER PASSWORD BODIES [N]
"""
import sys
import time
import uuid

import pika

port, user, password, path = sys.argv[1:5]
limit = int(sys.argv[5]) if len(sys.argv) > 5 else None
msgs = []
with open(path, "rb") as f:
    for line in f:
        key, body = line.rstrip(b"\n").split(b"\t", 1)
        msgs.append((key.decode(), body))
        if limit is not None and len(msgs) >= limit:
            break

conn = pika.BlockingConnection(pika.ConnectionParameters(
    "127.0.0.1", int(port), "/", pika.PlainCredentials(user, password)))
ch = conn.channel()
tag = uuid.uuid4().hex[:8]
exchange, queue = "srbench-pika-" + tag, "srbench-pika-" + tag + "-q"
ch.exchange_declare(exchange, "topic", durable=True)
ch.queue_declare(queue, durable=True)
ch.queue_bind(queue, exchange, "#")
ch.confirm_delivery()

t0 = time.monotonic()
for i, (key, body) in enumerate(msgs):
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                 message_id="0123456789abcdef-%d" % (i + 1),
                                 timestamp=int(time.time()), app_id="service-registry")
    ch.basic_publish(exchange, key, body, props)  # raises if nacked or returned
dt = time.monotonic() - t0

held = ch.queue_declare(queue, durable=True, passive=True).method.message_count
ch.queue_delete(queue)
ch.exchange_delete(exchange)
conn.close()
if held != len(msgs):
    sys.exit("pika_publish: the queue held %d of %d messages" % (held, len(msgs)))
print("pika_msgs=%d\npika_secs=%.3f\npika_msgs_per_sec=%.0f" % (len(msgs), dt, len(msgs) / dt))
