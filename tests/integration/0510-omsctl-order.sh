#!/usr/bin/env bash
# omsctl order ID: the projection row, the status history and the events on
# the topic of an order the simulation produced, compared with the topic; the
# same order named by its aliasId (ORD-...), an alias several orders share,
# and an order only the topic knows, found by either field.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
trap 'proj_cleanup; finish' EXIT

check "topics created" proj_config order
check "test database created" new_db
start_omsd main
"$BIN/oms-producer" simulate --rate max --count 3000 --seed 21 >/dev/null 2>&1
# two orders sharing one alias; a status change of an order never created
# (the projections send it to the dead letters: only the topic has it)
cat >"$T/extra.jsonl" <<'JSON'
{"type": "OrderCreated", "orderId": "dup-order-1", "aliasId": "ORD-DUP-1", "userId": 7, "totalAmount": 5, "status": "created"}
{"type": "OrderCreated", "orderId": "dup-order-2", "aliasId": "ORD-DUP-1", "userId": 8, "totalAmount": 6, "status": "created"}
{"type": "OrderStatusChanged", "orderId": "ghost-order-1", "aliasId": "ORD-GHOST-1", "userId": 9, "status": "shipped", "previousStatus": "confirmed"}
JSON
emit_extra() { "$BIN/oms-producer" emit --file "$T/extra.jsonl" >"$T/extra.out" 2>&1; }
check "two orders sharing an alias and an order never created emitted" emit_extra
check "the projections caught up" wait_caught_up 60
"$BIN/omsctl" tail orders --from-beginning --exit-at-end --format json >"$T/orders.jsonl" 2>/dev/null
id=$(python3 - "$T/orders.jsonl" <<'PY'
import json, sys, collections
n = collections.Counter(json.loads(l)["data"]["data"]["orderId"] for l in open(sys.argv[1]))
print(max(n, key=lambda k: (n[k], k)))
PY
)
note "order $id"
expect_exit 0 "omsctl order ID" "$BIN/omsctl" order "$id"
check "it shows the order and its history" grep -q "^order $id " "$T/last.out"
expect_exit 0 "omsctl order ID --json" "$BIN/omsctl" order "$id" --json
check "row, history and events agree with the topic" python3 - "$T/orders.jsonl" "$T/last.out" "$id" <<'PY'
import json, sys
oid = sys.argv[3]
evs = [json.loads(l)["data"] for l in open(sys.argv[1])]
mine = [e for e in evs if e["data"]["orderId"] == oid]
mine.sort(key=lambda e: int(e["id"].rsplit(":", 1)[1]))
got = json.load(open(sys.argv[2]))
assert got["order"]["orderId"] == oid
assert got["order"]["status"] == mine[-1]["data"]["status"], (got["order"]["status"], mine[-1]["data"]["status"])
assert got["order"]["position"] == mine[-1]["id"]
assert [h["status"] for h in got["history"]] == [e["data"]["status"] for e in mine]
assert [h["position"] for h in got["history"]] == [e["id"] for e in mine]
assert [e["data"]["eventId"] for e in got["events"]] == [e["data"]["eventId"] for e in mine]
PY
alias=$(python3 - "$T/orders.jsonl" "$id" <<'PY'
import json, sys
print(next(d["aliasId"] for d in (json.loads(l)["data"]["data"] for l in open(sys.argv[1]))
           if d["orderId"] == sys.argv[2]))
PY
)
note "alias $alias"
cp "$T/last.out" "$T/by-id.json"
expect_exit 0 "omsctl order ALIAS --json" "$BIN/omsctl" order "$alias" --json
check "the alias gives the same row, history and events as the orderId" \
    python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); assert a == b and a["events"], (a, b)' \
    "$T/by-id.json" "$T/last.out"
expect_exit 0 "omsctl order ALIAS" "$BIN/omsctl" order "$alias"
check "... shows the order by its orderId" grep -q "^order $id ($alias) " "$T/last.out"
expect_exit 1 "an unknown alias exits 1" "$BIN/omsctl" order ORD-99999999
check "... and says no order" grep -q "no order 'ORD-99999999'" "$T/last.err"
expect_exit 1 "an alias two orders share exits 1" "$BIN/omsctl" order ORD-DUP-1 --no-events
check "... naming both orders" grep -q "alias 'ORD-DUP-1' names 2 orders: dup-order-1, dup-order-2" "$T/last.err"
expect_exit 0 "an order only the topic knows, by its alias" "$BIN/omsctl" order ORD-GHOST-1 --json
check "... gives its event from the topic" python3 -c '
import json, sys
got = json.load(open(sys.argv[1]))
assert got["order"] is None and got["history"] == [], got
assert [(e["data"]["orderId"], e["data"]["aliasId"]) for e in got["events"]] == [("ghost-order-1", "ORD-GHOST-1")], got
' "$T/last.out"
cp "$T/last.out" "$T/ghost-by-alias.json"
expect_exit 0 "... and by its orderId, the same" "$BIN/omsctl" order ghost-order-1 --json
check "... the same events" cmp -s "$T/ghost-by-alias.json" "$T/last.out"
expect_exit 1 "an unknown order exits 1" "$BIN/omsctl" order no-such-order
check "... and says so" grep -q "no order 'no-such-order'" "$T/last.err"
expect_exit 2 "order without an ID exits 2" "$BIN/omsctl" order
DATABASE_PORT=1 expect_exit 1 "order with postgres unreachable exits 1" "$BIN/omsctl" order "$id" --no-events
check "... naming the database settings" grep -q "DATABASE_HOST" "$T/last.err"
expect_exit 0 "order --help" "$BIN/omsctl" order --help
check "... says an alias is accepted" grep -q "aliasId" "$T/last.out"
