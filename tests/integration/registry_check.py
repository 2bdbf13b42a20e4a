#!/usr/bin/env python3
"""Checks of the schema registry test (0985) against what the independent
producer (registry_producer.py) says it wrote.

  registry_check.py frames EXPECTED ACTUAL [--ws-user N]
      every expected record is among the frames of ACTUAL (omsd's WebSocket
      frames, or `omsctl tail`'s) with the same position and, for every field
      the producer wrote, the same value; --ws-user: only what an admin with
      that user id receives (all orders and inventory, system notifications,
      its own user notifications)
  registry_check.py merge EXPECTED TAIL OUT
      EXPECTED plus the frames of TAIL at other positions (what oms-producer
      wrote), one frame per position, for projections_ref.py
  registry_check.py order ACTUAL
      positions increase per partition in ACTUAL (nothing out of order)
"""
import json
import sys


def read(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def same(want, got):
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and abs(float(want) - float(got)) < 1e-9
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(
            same(w, g) for w, g in zip(want, got))
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and same(v, got[k]) for k, v in want.items())
    return want == got


def frames(exp_path, act_path, ws_user):
    exp = [e for e in read(exp_path) if "data" in e]
    act = {}
    for f in read(act_path):
        rt = f.get("data")
        if isinstance(rt, dict) and "id" in rt:
            act[rt["id"]] = rt["data"]
    wanted = bad = 0
    for e in exp:
        pos, d = e["data"]["id"], e["data"]["data"]
        if ws_user is not None and d["eventType"] == "UserNotification" and d["userId"] != ws_user:
            continue
        wanted += 1
        got = act.get(pos)
        if got is None:
            bad += 1
            if bad <= 5:
                print("missing %s (%s)" % (pos, d["eventType"]))
        elif not same(d, got):
            bad += 1
            if bad <= 5:
                print("different at %s:\n  want %s\n  got  %s" % (pos, json.dumps(d),
                                                                 json.dumps(got)))
    print("%d expected, %d matched" % (wanted, wanted - bad))
    return 1 if bad or not wanted else 0


def merge(exp_path, tail_path, out_path):
    seen = set()
    with open(out_path, "w") as out:
        for e in read(exp_path):
            if "data" in e:
                seen.add(e["data"]["id"])
                out.write(json.dumps(e) + "\n")
        for f in read(tail_path):
            rt = f.get("data")
            if isinstance(rt, dict) and rt.get("id") and rt["id"] not in seen:
                seen.add(rt["id"])
                out.write(json.dumps(f) + "\n")
    return 0


def order(act_path):
    last = {}
    bad = 0
    for f in read(act_path):
        rt = f.get("data")
        if not (isinstance(rt, dict) and "id" in rt):
            continue
        topic, p, o = rt["id"].rsplit(":", 2)
        k = (topic, p)
        if k in last and int(o) <= last[k]:
            bad += 1
            print("out of order: %s after offset %d" % (rt["id"], last[k]))
        last[k] = int(o)
    return 1 if bad else 0


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "frames":
        user = int(a[4]) if len(a) == 5 and a[3] == "--ws-user" else None
        return frames(a[1], a[2], user)
    if len(a) == 4 and a[0] == "merge":
        return merge(a[1], a[2], a[3])
    if len(a) == 2 and a[0] == "order":
        return order(a[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
