#!/usr/bin/env bash
# omsctl order ID: the projection row, the status history and the events on
# the topic of an order the simulation produced, compared with the topic.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
trap 'proj_cleanup; finish' EXIT

check "topics created" proj_config order
check "test database created" new_db
start_omsd main
"$BIN/oms-producer" simulate --rate max --count 3000 --seed 21 >/dev/null 2>&1
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
expect_exit 1 "an unknown order exits 1" "$BIN/omsctl" order no-such-order
check "... and says so" grep -q "no order 'no-such-order'" "$T/last.err"
expect_exit 2 "order without an ID exits 2" "$BIN/omsctl" order
DATABASE_PORT=1 expect_exit 1 "order with postgres unreachable exits 1" "$BIN/omsctl" order "$id" --no-events
check "... naming the database settings" grep -q "DATABASE_HOST" "$T/last.err"
expect_exit 0 "order --help" "$BIN/omsctl" order --help
