#!/usr/bin/env python3
"""Independent reference for the Postgres projections (DESIGN §3.4).

Folds the events read back from Kafka (the frames of
`omsctl tail all --from-beginning --exit-at-end --format json`) into the
expected read models, one partition at a time in offset order, and compares
them with the tables (read with psql). Shares no code with omsd.

  projections_ref.py compare TAIL.json   # exit 0 when the tables equal the fold
  projections_ref.py dump                # the tables, sorted, for a before/after diff
  projections_ref.py rejected TAIL.json  # positions the fold skips (orphan status changes)

psql connection: DATABASE_HOST, DATABASE_PORT, DATABASE_USER, DATABASE_NAME.
Rules:
  OrderCreated        the order's row is the event's fields; one history row
  OrderStatusChanged  status, updated_at, position move; one history row; an
                      order that does not exist yet: the event is rejected
  InventoryChanged    the product's row is the last event's fields
  User/SystemNotification  one row per eventId, the last event's fields
"""
import json
import os
import subprocess
import sys

SEP = "\x1f"


def psql(sql):
    cmd = ["psql", "-X", "-q", "-At", "-F", SEP,
           "-h", os.environ.get("DATABASE_HOST", "127.0.0.1"),
           "-p", os.environ.get("DATABASE_PORT", "5432"),
           "-U", os.environ.get("DATABASE_USER", "postgres"),
           "-d", os.environ["DATABASE_NAME"], "-c", sql]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split(SEP) for line in out.splitlines() if line]


ISO = "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


def tables():
    orders = {r[0]: (r[1], int(r[2]), r[3], round(float(r[4]), 6), r[5], r[6], r[7], r[8])
              for r in psql("SELECT order_id, alias_id, user_id, status, total_amount, %s, %s, "
                            "position, jsonb_array_length(items) FROM orders"
                            % (ISO % "created_at", ISO % "updated_at"))}
    hist_rows = psql("SELECT order_id, position, status, %s FROM order_status_history"
                     % (ISO % "occurred_at"))
    history = [tuple(r) for r in hist_rows]
    inventory = {int(r[0]): (r[1], int(r[2]), int(r[3]), r[4], r[5], r[6])
                 for r in psql("SELECT product_id, product_name, quantity, threshold, status, "
                               "%s, position FROM inventory" % (ISO % "updated_at"))}
    notes = {r[0]: (r[1], r[2], r[3], r[4], r[5], r[6], r[7])
             for r in psql("SELECT event_id, kind, coalesce(user_id::text, ''), title, message, "
                           "coalesce(severity, ''), %s, position FROM notifications"
                           % (ISO % "occurred_at"))}
    return orders, history, inventory, notes


def fold(path):
    parts = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            frame = json.loads(line)
            rt = frame["data"]
            topic, p, o = rt["id"].rsplit(":", 2)
            parts.setdefault((topic, int(p)), []).append((int(o), rt["id"], rt["data"]))
    orders, history, inventory, notes, rejected = {}, [], {}, {}, []
    for key in sorted(parts):
        for _, pos, d in sorted(parts[key], key=lambda x: x[0]):
            t = d["eventType"]
            ts = d["timestamp"]
            if t == "OrderCreated":
                st = d.get("status") or "created"
                orders[d["orderId"]] = [d["aliasId"], int(d["userId"]), st,
                                        round(float(d["totalAmount"]), 6), ts, ts, pos,
                                        str(len(d.get("items") or []))]
                history.append((d["orderId"], pos, st, ts))
            elif t == "OrderStatusChanged":
                row = orders.get(d["orderId"])
                if row is None:
                    rejected.append(pos)
                    continue
                row[2], row[5], row[6] = d["status"], ts, pos
                history.append((d["orderId"], pos, d["status"], ts))
            elif t == "InventoryChanged":
                inventory[int(d["productId"])] = (d["productName"], int(d["quantity"]),
                                                  int(d["threshold"]), d["status"], ts, pos)
            elif t in ("UserNotification", "SystemNotification"):
                user = t == "UserNotification"
                notes[d["eventId"]] = ("user" if user else "system",
                                       str(d["userId"]) if user else "", d["title"],
                                       d["message"], "" if user else d.get("severity", ""),
                                       ts, pos)
    orders = {k: tuple(v) for k, v in orders.items()}
    return orders, history, inventory, notes, rejected


def diff(name, want, got, out):
    if want == got:
        return 0
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    wrong = [k for k in want if k in got and want[k] != got[k]]
    out.append("%s: %d expected, %d in the table; %d missing, %d extra, %d different"
               % (name, len(want), len(got), len(missing), len(extra), len(wrong)))
    for k in missing[:3]:
        out.append("  missing %r: %r" % (k, want[k]))
    for k in extra[:3]:
        out.append("  extra %r: %r" % (k, got[k]))
    for k in wrong[:5]:
        out.append("  %r: expected %r, table %r" % (k, want[k], got[k]))
    return 1


def compare(path):
    w_orders, w_hist, w_inv, w_notes, rejected = fold(path)
    g_orders, g_hist, g_inv, g_notes = tables()
    out = []
    bad = diff("orders", w_orders, g_orders, out)
    bad += diff("inventory", w_inv, g_inv, out)
    bad += diff("notifications", w_notes, g_notes, out)
    if len(set(g_hist)) != len(g_hist):
        out.append("order_status_history: duplicate rows")
        bad += 1
    hw = {(h[0], h[1]): h for h in w_hist}
    hg = {(h[0], h[1]): h for h in g_hist}
    if len(hw) != len(w_hist):
        out.append("reference: duplicate history positions")
        bad += 1
    bad += diff("order_status_history", hw, hg, out)
    print("reference: %d orders, %d status events, %d products, %d notifications, %d rejected"
          % (len(w_orders), len(w_hist), len(w_inv), len(w_notes), len(rejected)))
    print("tables:    %d orders, %d history rows, %d products, %d notifications"
          % (len(g_orders), len(g_hist), len(g_inv), len(g_notes)))
    for line in out:
        print(line)
    return 1 if bad else 0


def dump():
    for sql in ("SELECT order_id, alias_id, user_id, status, total_amount, items, created_at, "
                "updated_at, position FROM orders ORDER BY order_id",
                "SELECT order_id, status, occurred_at, position, event_id FROM "
                "order_status_history ORDER BY order_id, position",
                "SELECT * FROM inventory ORDER BY product_id",
                "SELECT * FROM notifications ORDER BY event_id"):
        for r in psql(sql):
            print("|".join(r))
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "compare":
        return compare(sys.argv[2])
    if len(sys.argv) == 2 and sys.argv[1] == "dump":
        return dump()
    if len(sys.argv) == 3 and sys.argv[1] == "rejected":
        for pos in fold(sys.argv[2])[4]:
            print(pos)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
