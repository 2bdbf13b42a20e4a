#!/usr/bin/env python3
"""The verdict of one failure drill (tests/drills/).

Compares what the producer had acknowledged (its --record file) with the
topics read back (`omsctl tail all --from-beginning --exit-at-end --format
json`), and what each WebSocket client received (tests/node/drill-client.js)
with what it was entitled to on the topics: a staff or admin client
subscribed to orders and inventory gets every order and inventory event and
every system notification; a customer gets the orders and notifications of its
user id and every system notification. Each by eventId, across reconnects.

Prints one row: produced, acknowledged, on the topic, delivered, lost,
duplicates, recovery time and the longest pause in deliveries; writes it as
JSON (--row). Exit 0 when nothing acknowledged is missing or doubled on the
topics, no client missed, doubled or received an event it was not entitled
to, and the projections compared equal (--projections 0).
"""
import argparse
import collections
import json
import sys


def load_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--tail", required=True)
    ap.add_argument("--clients", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--recovery", type=float, default=-1)
    ap.add_argument("--fault", type=int, nargs=2, default=[0, 0])
    ap.add_argument("--run", type=int, nargs=2, default=[0, 0])
    ap.add_argument("--projections", type=int, default=0)
    ap.add_argument("--row", required=True)
    ap.add_argument("--stalled", type=int, default=-1, help="index of the client that stopped reading")
    a = ap.parse_args()

    try:
        sim = json.load(open(a.sim))
    except (OSError, ValueError):
        sim = {}
    acked = [r["eventId"] for r in load_jsonl(a.record)]

    # the topics: eventId → count, and who may see each event
    on_topic = collections.Counter()
    staff_ids, user_ids, system_ids = set(), collections.defaultdict(set), set()
    for fr in load_jsonl(a.tail):
        ev = fr["event"]
        d = fr["data"]["data"]
        eid = d["eventId"]
        on_topic[eid] += 1
        if ev in ("order_update", "inventory_update"):
            staff_ids.add(eid)
        if ev == "order_update" or ev == "user_notification":
            user_ids[int(d["userId"])].add(eid)
        if ev == "system_notification":
            system_ids.add(eid)
            staff_ids.add(eid)

    acked_set = set(acked)
    lost_topic = [e for e in acked_set if on_topic[e] == 0]
    dup_topic = [e for e, n in on_topic.items() if n > 1]
    dup_acks = len(acked) - len(acked_set)

    delivered = lost = dups = leaked = 0
    worst = []
    stalled = None
    clients = load_jsonl(a.clients)
    reconnects = 0
    for c in clients:
        if c["role"] in ("staff", "admin"):
            want = staff_ids
        else:
            want = user_ids.get(int(c["userId"]), set()) | system_ids
        got = collections.Counter(c["ids"])
        delivered += len(c["ids"])
        c_lost = len(want - set(got))
        c_dups = sum(n - 1 for n in got.values() if n > 1)
        c_leak = len(set(got) - want)
        lost += c_lost
        dups += c_dups
        leaked += c_leak
        reconnects += max(0, c["connects"] - 1)
        if c_lost or c_dups or c_leak:
            worst.append((c_lost + c_dups + c_leak, c["i"], c["role"], c_lost, c_dups, c_leak))
        if c["i"] == a.stalled:
            stalled = {"lost": c_lost, "duplicates": c_dups, "leaked": c_leak,
                       "closes": c["closes"], "resumes": c["resumes"]}

    # the longest pause in deliveries (all clients together) while producing
    gap = 0.0
    try:
        s = json.load(open(a.summary))
        b = s["bucketMs"]
        hist = {int(k): v for k, v in s["hist"].items()}
        # from the first to the last delivery while the producer ran
        used = [k for k, v in hist.items() if v]
        first = max((a.run[0] - s["startedAt"]) // b, min(used))
        last = min((a.run[1] - s["startedAt"]) // b, max(used))
        run = 0
        for k in range(first, last + 1):
            run = run + 1 if hist.get(k, 0) == 0 else 0
            gap = max(gap, run * b / 1000.0)
    except (OSError, ValueError, KeyError):
        gap = -1

    row = {
        "drill": a.name,
        "produced": sim.get("sent", 0),
        "acknowledged": len(acked_set),
        "on_topic": sum(on_topic.values()),
        "clients": len(clients),
        "delivered": delivered,
        "lost": len(lost_topic) + lost,
        "duplicates": len(dup_topic) + dup_acks + dups,
        "lost_on_topic": len(lost_topic),
        "duplicates_on_topic": len(dup_topic),
        "lost_clients": lost,
        "duplicates_clients": dups,
        "not_entitled": leaked,
        "reconnects": reconnects,
        "recovery_s": round(a.recovery, 2),
        "max_pause_s": round(gap, 2),
        "fault_s": round((a.fault[1] - a.fault[0]) / 1000.0, 2),
        "projections_equal": a.projections == 0,
    }
    if stalled is not None:
        row["stalled_client"] = stalled
    with open(a.row, "w") as f:
        json.dump(row, f)
        f.write("\n")

    print("# %-14s produced %d acknowledged %d on-topic %d delivered %d lost %d duplicates %d "
          "recovery %.1f s max-pause %.2f s" % (a.name, row["produced"], row["acknowledged"],
                                                row["on_topic"], delivered, row["lost"],
                                                row["duplicates"], a.recovery, gap))
    print("# topic: %d acknowledged missing, %d doubled; clients: %d missed, %d doubled, %d not "
          "entitled, %d reconnects" % (len(lost_topic), len(dup_topic), lost, dups, leaked, reconnects))
    if stalled is not None:
        print("# the client that stopped reading: %s" % json.dumps(stalled))
    for w in sorted(worst, reverse=True)[:5]:
        print("#   client %d (%s): missed %d doubled %d not entitled %d" % w[1:])
    good = (not lost_topic and not dup_topic and dup_acks == 0 and lost == 0 and dups == 0
            and leaked == 0 and a.projections == 0 and len(acked_set) > 0)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
