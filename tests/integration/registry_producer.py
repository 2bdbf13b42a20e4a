#!/usr/bin/env python3
"""The independent producer of the schema registry test (0985): Python
confluent-kafka with its AvroSerializer and SchemaRegistryClient (schemas
registered by that client, TopicNameStrategy), plain JSON records from the
same client, and hand-made bad records. Shares no code with oms.

Every delivered record is written to OUT as the frame omsd should push for it
({"data": {"id": "TOPIC:P:O", "data": {eventType, timestamp, fields...}}}),
which is also what projections_ref.py folds.

  registry_producer.py main    --registry URL --prefix P --out FILE [--seed S] [--count N]
  registry_producer.py bad     --registry URL --prefix P --out FILE
  registry_producer.py outage  --registry URL --prefix P --out FILE --phase before|cached|new
                               [--state FILE]

Environment: KAFKA_BROKERS. Schemas: the .avsc files of schemas/ (v1), a v2
of OrderStatusChanged that adds an optional field and a v3 that removes one.
"""
import argparse
import copy
import datetime
import io
import json
import os
import random
import struct
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
import fastavro

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load(name):
    with open(os.path.join(ROOT, "schemas", name + ".v1.avsc")) as f:
        return json.load(f)


V1 = {t: load(f) for t, f in [("OrderCreated", "order_created"),
                                ("OrderStatusChanged", "order_status_changed"),
                                ("InventoryChanged", "inventory_changed"),
                                ("UserNotification", "user_notification"),
                                ("SystemNotification", "system_notification")]}
# a newer writer: one more optional field, which the reader does not know
OSC_V2 = copy.deepcopy(V1["OrderStatusChanged"])
OSC_V2["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
# an older or slimmer writer: no "message", which the reader fills with its default
OSC_V3 = copy.deepcopy(V1["OrderStatusChanged"])
OSC_V3["fields"] = [f for f in OSC_V3["fields"] if f["name"] != "message"]

TOPIC_OF = {"OrderCreated": "orders", "OrderStatusChanged": "orders",
            "InventoryChanged": "inventory", "UserNotification": "notifications",
            "SystemNotification": "notifications"}


def iso(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def uuid7(ms):
    r = random.getrandbits(74)
    v = (ms << 80) | (0x7 << 76) | ((r >> 62) << 64) | (0x2 << 62) | (r & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


def key_of(ev):
    t = ev["type"]
    if t in ("OrderCreated", "OrderStatusChanged"):
        return ev["orderId"]
    if t == "InventoryChanged":
        return str(ev["productId"])
    if t == "UserNotification":
        return str(ev["userId"])
    return "*"


def expected_data(ev, schema):
    """The RealTimeEvent data omsd must push: the reader's fields, as the
    writer wrote them (a field the writer lacks gets the reader's default)."""
    names = {f["name"] for f in schema["fields"]}
    d = {"eventId": ev["eventId"], "eventType": ev["type"], "timestamp": iso(ev["occurredAt"]),
         "source": ev["source"]}
    for k, v in ev.items():
        if k in ("eventId", "type", "occurredAt", "source", "traceId", "channel", "data"):
            continue
        if k not in names:
            continue
        if v is not None:
            d[k] = v
    return d


class Out:
    def __init__(self, path):
        self.f = open(path, "a")
        self.failed = 0

    def report(self, expected):
        def cb(err, msg):
            if err is not None:
                self.failed += 1
                print("delivery failed: %s" % err, file=sys.stderr)
                return
            pos = "%s:%d:%d" % (msg.topic(), msg.partition(), msg.offset())
            if expected is not None:
                self.f.write(json.dumps({"data": {"id": pos, "data": expected}}) + "\n")
            else:
                self.f.write(json.dumps({"bad": pos}) + "\n")
        return cb


def make_events(n, seed):
    rnd = random.Random(seed)
    now = int(datetime.datetime.now(tz=datetime.timezone.utc).timestamp() * 1000)
    evs = []
    for i in range(n):
        ms = now + i
        oid = "ord-py-%d-%d" % (seed, i)
        uid = 1 + i % 3
        items = [{"productId": 1 + (i + k) % 7, "productName": "Product %d" % (1 + (i + k) % 7),
                  "quantity": 1 + k, "price": 10.25 * (k + 1)} for k in range(1 + i % 2)]
        evs.append({"eventId": uuid7(ms), "type": "OrderCreated", "occurredAt": ms,
                    "source": "py-orders", "traceId": None, "orderId": oid,
                    "aliasId": "A-%d" % i, "userId": uid, "status": "created",
                    "totalAmount": round(sum(x["price"] * x["quantity"] for x in items), 2),
                    "items": items, "message": "first" if i % 2 else None})
        for st, prev in (("confirmed", "created"), ("shipped", "confirmed")):
            ms += 1
            evs.append({"eventId": uuid7(ms), "type": "OrderStatusChanged", "occurredAt": ms,
                        "source": "py-orders", "traceId": "t-%d" % i, "orderId": oid,
                        "aliasId": "A-%d" % i, "userId": uid, "status": st,
                        "previousStatus": prev, "message": "now %s" % st,
                        "channel": "web"})
        pid = 1 + i % 7
        q = rnd.randint(0, 40)
        evs.append({"eventId": uuid7(ms + 1), "type": "InventoryChanged", "occurredAt": ms + 1,
                    "source": "py-stock", "traceId": None, "productId": pid,
                    "productName": "Product %d" % pid, "quantity": q, "threshold": 10,
                    "status": "out_of_stock" if q == 0 else "low_stock" if q < 10 else "in_stock",
                    "delta": -1})
        if i % 3 == 0:
            evs.append({"eventId": uuid7(ms + 2), "type": "SystemNotification",
                        "occurredAt": ms + 2, "source": "py-ops", "traceId": None,
                        "title": "Maintenance %d" % i, "message": "soon", "severity": "info",
                        "data": None})
        if i % 4 == 0:
            evs.append({"eventId": uuid7(ms + 3), "type": "UserNotification",
                        "occurredAt": ms + 3, "source": "py-ops", "traceId": None,
                        "userId": uid, "title": "Hello %d" % i, "message": "hi",
                        "data": json.dumps({"n": i})})
    return evs


def avro_record(ev, schema):
    names = [f["name"] for f in schema["fields"]]
    return {k: ev.get(k) for k in names}


def json_record(ev, rfc3339):
    j = {k: v for k, v in ev.items() if k != "channel" and v is not None}
    if rfc3339:
        j["occurredAt"] = iso(ev["occurredAt"])
    if "data" in j and isinstance(j["data"], str):
        j["data"] = json.loads(j["data"])
    return j


def cmd_main(a):
    sr = SchemaRegistryClient({"url": a.registry})
    p = Producer({"bootstrap.servers": os.environ["KAFKA_BROKERS"], "enable.idempotence": True,
                  "linger.ms": 5})
    out = Out(a.out)
    sers = {}

    def ser(schema):
        k = json.dumps(schema, sort_keys=True)
        if k not in sers:
            sers[k] = AvroSerializer(sr, json.dumps(schema), conf={"auto.register.schemas": True})
        return sers[k]

    evs = make_events(a.count, a.seed)
    osc = 0
    for i, ev in enumerate(evs):
        t = ev["type"]
        topic = "%s.%s" % (a.prefix, TOPIC_OF[t])
        schema = V1[t]
        # the formats, mixed on every topic: Avro through the registry (three
        # writer versions of OrderStatusChanged), and JSON from this client
        if t == "OrderStatusChanged":
            schema = (V1[t], OSC_V2, OSC_V3)[osc % 3]
            osc += 1
        as_json = t in ("InventoryChanged", "UserNotification") and i % 2 == 0
        if as_json:
            value = json.dumps(json_record(ev, rfc3339=i % 4 == 0)).encode()
            expected = expected_data(ev, V1[t])
        else:
            ctx = SerializationContext(topic, MessageField.VALUE)
            value = ser(schema)(avro_record(ev, schema), ctx)
            expected = expected_data(ev, schema)
        p.produce(topic, key=key_of(ev).encode(), value=value, on_delivery=out.report(expected))
        p.poll(0)
    left = p.flush(30)
    out.f.close()
    print(json.dumps({"sent": len(evs), "failed": out.failed, "undelivered": left}))
    return 0 if out.failed == 0 and left == 0 else 1


def cmd_bad(a):
    sr = SchemaRegistryClient({"url": a.registry})
    p = Producer({"bootstrap.servers": os.environ["KAFKA_BROKERS"]})
    topic = "%s.inventory" % a.prefix
    subject = topic + "-value"
    sid = sr.register_schema(subject, Schema(json.dumps(V1["InventoryChanged"]), "AVRO"))
    ev = make_events(1, 7)[3]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(V1["InventoryChanged"]),
                               avro_record(ev, V1["InventoryChanged"]))
    good = buf.getvalue()
    out = Out(a.out)
    bad = [
        ("unknown schema id", b"\x00" + struct.pack(">I", 987654321) + good),
        ("corrupted body", b"\x00" + struct.pack(">I", sid) + good[:len(good) // 2]),
        ("wrong magic byte", b"\x07" + struct.pack(">I", sid) + good),
    ]
    for why, value in bad:
        p.produce(topic, key=b"bad", value=value, on_delivery=out.report(None))
    p.flush(30)
    out.f.close()
    return 0 if out.failed == 0 else 1


def cmd_outage(a):
    """before: register v1 and the v2 writer (while the registry runs) and
    produce with v1 (omsd caches its id); cached: produce v1 records (the
    registry is down: their id is cached); new: records framed with the v2 id
    omsd never saw (they must wait for the registry)."""
    state = json.load(open(a.state)) if os.path.exists(a.state) else {}
    topic = "%s.orders" % a.prefix
    if a.phase == "before":
        sr = SchemaRegistryClient({"url": a.registry})
        subject = topic + "-value"
        state["v1"] = sr.register_schema(subject, Schema(json.dumps(V1["OrderStatusChanged"]),
                                                         "AVRO"))
        state["oc"] = sr.register_schema(subject, Schema(json.dumps(V1["OrderCreated"]), "AVRO"))
        state["v2"] = sr.register_schema(subject, Schema(json.dumps(OSC_V2), "AVRO"))
        json.dump(state, open(a.state, "w"))
    # hand framing: the ids are known, the registry is not needed to write
    p = Producer({"bootstrap.servers": os.environ["KAFKA_BROKERS"], "enable.idempotence": True})
    out = Out(a.out)
    # before: orders created and confirmed (ids omsd then caches); new: the
    # same orders shipped, written with the v2 id omsd never saw; cached: more
    # orders created and confirmed with the cached ids
    evs = make_events(a.count, 12 if a.phase == "cached" else 11)
    picked = []
    for e in evs:
        if e["type"] == "OrderCreated":
            if a.phase != "new":
                picked.append(e)
        elif e["type"] == "OrderStatusChanged":
            if (e["status"] == "shipped") == (a.phase == "new"):
                picked.append(e)
    for ev in picked:
        if ev["type"] == "OrderCreated":
            schema, sid = V1["OrderCreated"], state["oc"]
        elif a.phase == "new":
            schema, sid = OSC_V2, state["v2"]
        else:
            schema, sid = V1["OrderStatusChanged"], state["v1"]
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), avro_record(ev, schema))
        value = b"\x00" + struct.pack(">I", sid) + buf.getvalue()
        p.produce(topic, key=key_of(ev).encode(), value=value,
                  on_delivery=out.report(expected_data(ev, schema)))
    left = p.flush(30)
    out.f.close()
    return 0 if out.failed == 0 and left == 0 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["main", "bad", "outage"])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--phase", choices=["before", "cached", "new"])
    ap.add_argument("--state")
    a = ap.parse_args()
    return {"main": cmd_main, "bad": cmd_bad, "outage": cmd_outage}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
