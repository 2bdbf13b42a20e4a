#!/usr/bin/env bash
# omsctl against the real stack and a running omsd: every command's success
# path and failure paths; replay's exactness (time, offsets, filters,
# republish); lag; completion.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics omsctl
PORT=$(free_port)
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
export OMS_URL="http://127.0.0.1:$PORT"
C="$ABIN/omsctl"
cat >>"$T/omsd.yaml" <<YAML
server:
  port: $PORT
  host: 127.0.0.1
projections:
  enabled: false
log:
  format: json
YAML
"$BIN/omsd" --config "$T/omsd.yaml" >"$T/omsd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; finish' EXIT
for _ in $(seq 1 100); do curl -sf "$OMS_URL/websocket/health" >/dev/null && break; sleep 0.1; done

# --- REST commands
expect_exit 0 "health: ok" "$C" health
check "health names kafka up" grep -q "^kafka *up" "$T/last.out"
check "... and its brokers: the token minted from JWT_SECRET sees the details" \
    grep -q "^kafka *up *$KAFKA_BROKERS" "$T/last.out"
env -u JWT_SECRET "$C" health >"$T/health-public.out" 2>&1
check "health without a token: the status only, saying details need a token" bash -c \
    "grep -q '^kafka *up *\$' '$T/health-public.out' && grep -q 'details need a staff or admin token' '$T/health-public.out'"
expect_exit 0 "health with a customer's token" "$C" health --token "$("$C" token --sub 5 --role customer)"
check "... the status only" bash -c "grep -q '^kafka *up *\$' '$T/last.out' && ! grep -q '$KAFKA_BROKERS' '$T/last.out'"
expect_exit 0 "health --json" "$C" health --json
check "health --json is JSON with status ok" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["status"]=="ok"' "$T/last.out"
OMS_URL=http://127.0.0.1:1 expect_exit 1 "health: unreachable omsd exits 1" "$C" health
check "... says what to do" grep -q "cannot reach omsd at 'http://127.0.0.1:1': connection refused (is omsd running? set --url or OMS_URL)" "$T/last.err"
expect_exit 2 "health: a --url that is not http exits 2" "$C" health --url ftp://x
expect_exit 0 "token mints a JWT" "$C" token --sub 7 --role staff --ttl 10m
tok=$(cat "$T/last.out")
check "the token has three parts" test "$(echo "$tok" | tr -cd . | wc -c)" -eq 2
expect_exit 0 "stats with a minted staff token" "$C" stats --token "$tok"
check "stats prints the table" grep -q "^TIME *CONNECTIONS" "$T/last.out"
check "... with the delivery age p50/p99" grep -qE "P50MS +P99MS$" "$T/last.out"
expect_exit 0 "stats with the admin token minted from JWT_SECRET" "$C" stats --json
expect_exit 1 "stats with a bad token exits 1" "$C" stats --token abc.def.ghi
check "... and says the token was refused" grep -q "omsd refused the token" "$T/last.err"
cust=$("$C" token --sub 3 --role customer)
expect_exit 1 "stats with a customer token: 403, exit 1" "$C" stats --token "$cust"
check "... not allowed" grep -q "not allowed" "$T/last.err"
expect_exit 2 "token with a bad role exits 2" "$C" token --sub 1 --role king
expect_exit 2 "token with a bad ttl exits 2" "$C" token --sub 1 --role admin --ttl soon
JWT_SECRET= expect_exit 2 "token without a secret exits 2" "$C" token --sub 1 --role admin

# a connected user for presence
(cd tests/node && node -e "
const WebSocket = require('ws');
const ws = new WebSocket('ws://127.0.0.1:$PORT/events?token=$cust');
ws.on('message', () => {}); setTimeout(() => ws.close(), 4000);
") &
client=$!
for _ in $(seq 1 50); do "$C" users get 3 >/dev/null 2>&1 && break; sleep 0.1; done
expect_exit 0 "users get: a connected user is online" "$C" users get 3
check "... one connection" grep -q "user 3 is online (1 connection)" "$T/last.out"
expect_exit 0 "users online lists them" "$C" users online
check "... with user 3" grep -Eq "^3 +1$" "$T/last.out"
expect_exit 1 "users get: an absent user exits 1" "$C" users get 999
expect_exit 2 "users get without an id exits 2" "$C" users get
expect_exit 2 "users get abc exits 2" "$C" users get abc
wait $client

expect_exit 0 "broadcast is accepted" "$C" broadcast --title "Maintenance" --message "at 22:00" --data '{"window":"2h"}'
check "... with an eventId" grep -Eq "^accepted: SystemNotification [0-9a-f-]{36} on $TOPIC_NOTIFICATIONS" "$T/last.out"
expect_exit 2 "broadcast without --title exits 2" "$C" broadcast --message x
expect_exit 2 "broadcast with bad --data JSON exits 2" "$C" broadcast --title t --message m --data '{'
expect_exit 0 "notify order-created" "$C" notify order-created --order-id cli-1 --alias-id A-1 --user-id 3 --total 755.32
expect_exit 0 "notify order-status" "$C" notify order-status --order-id cli-1 --alias-id A-1 --user-id 3 --status confirmed --previous-status created
expect_exit 0 "notify inventory-alert" "$C" notify inventory-alert --product-id 9 --product-name Widget --quantity 2 --threshold 5 --status low_stock
expect_exit 1 "notify with a bad status: 400, exit 1" "$C" notify inventory-alert --product-id 9 --product-name W --quantity 2 --threshold 5 --status bogus
check "... naming the field" grep -q "status: must be one of" "$T/last.err"
expect_exit 2 "notify with an unknown kind exits 2" "$C" notify order-teleported
expect_exit 2 "notify with a non-integer --user-id exits 2" "$C" notify order-created --order-id x --alias-id A --user-id abc --total 1
"$C" tail all --from-beginning --exit-at-end --format json >"$T/cli-tail.jsonl"
check "the broadcast and the notified events are on the topics" python3 - "$T/cli-tail.jsonl" <<'PY'
import json, sys
ev = [json.loads(l)["data"]["data"] for l in open(sys.argv[1])]
kinds = sorted(e["eventType"] for e in ev)
assert kinds == ["InventoryChanged", "OrderCreated", "OrderStatusChanged", "SystemNotification"], kinds
assert any(e.get("data") == {"window": "2h"} for e in ev)
PY
check "... the order's total printed in its shortest form, not 755.32000000000005" grep -q '"totalAmount":755.32,' "$T/cli-tail.jsonl"

# --- replay
"$BIN/oms-producer" simulate --rate 4000 --count 6000 --seed 11 --record "$T/sent.jsonl" >/dev/null 2>&1
check "6000 events produced" test "$(wc -l <"$T/sent.jsonl")" -eq 6000
read -r T_ISO < <(python3 - "$T/sent.jsonl" <<'PY'
import json, sys, datetime
ts = sorted(json.loads(l)["timestamp"] for l in open(sys.argv[1]))
t = ts[len(ts) // 2]
print(datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t % 1000))
PY
)
note "replay from $T_ISO"
expect_exit 0 "replay --from a time" "$C" replay --topic orders --topic inventory --topic notifications --from "$T_ISO" --output "$T/replay-time.jsonl"
check "replay --from T returns exactly the events at or after T" python3 - "$T/sent.jsonl" "$T/replay-time.jsonl" "$T_ISO" <<'PY'
import json, sys, datetime
t = int(datetime.datetime.strptime(sys.argv[3], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)
want = {json.loads(l)["eventId"] for l in open(sys.argv[1]) if json.loads(l)["timestamp"] >= t}
got = [json.loads(l)["data"]["data"]["eventId"] for l in open(sys.argv[2])]
assert len(got) == len(set(got)), "duplicates"
assert set(got) == want, (len(got), len(want))
PY
expect_exit 0 "replay --from/--to offsets of one partition" "$C" replay --topic orders --partition 2 --from 3 --to 7
check "... gives offsets 3..7 of partition 2" python3 - "$T/last.out" <<'PY'
import json, sys
offs = [int(json.loads(l)["data"]["id"].rsplit(":", 1)[1]) for l in open(sys.argv[1])]
parts = {json.loads(l)["data"]["id"].rsplit(":", 2)[1] for l in open(sys.argv[1])}
assert offs == [3, 4, 5, 6, 7] and parts == {"2"}, (offs, parts)
PY
expect_exit 0 "replay --filter" "$C" replay --topic orders --from beginning --filter type=OrderCreated,userId=3 --output "$T/filtered.jsonl"
"$C" replay --topic orders --from beginning --output "$T/all-orders.jsonl" 2>/dev/null
check "the filter keeps exactly the matching events" python3 - "$T/all-orders.jsonl" "$T/filtered.jsonl" <<'PY'
import json, sys
allev = [json.loads(l)["data"]["data"] for l in open(sys.argv[1])]
want = {e["eventId"] for e in allev if e["eventType"] == "OrderCreated" and e["userId"] == 3}
got = {json.loads(l)["data"]["data"]["eventId"] for l in open(sys.argv[2])}
assert want and got == want, (len(got), len(want))
PY
copy="$TOPIC_ORDERS.copy"
printf 'topics:\n  - name: %s\n    partitions: 3\n' "$copy" >"$T/copy-topics.yaml"
"$C" topics create --file "$T/copy-topics.yaml" >/dev/null
expect_exit 0 "replay --republish copies records" "$C" replay --topic orders --from beginning --republish "$copy"
"$C" tail "$copy" --from-beginning --exit-at-end --format json >"$T/copy.jsonl" 2>/dev/null
check "a tail of the copy sees the same eventIds" python3 - "$T/all-orders.jsonl" "$T/copy.jsonl" <<'PY'
import json, sys
a = sorted(json.loads(l)["data"]["data"]["eventId"] for l in open(sys.argv[1]))
b = sorted(json.loads(l)["data"]["data"]["eventId"] for l in open(sys.argv[2]))
assert a == b and a, (len(a), len(b))
PY
check "copies carry their source position in a header" bash -c "kcat -C -b '$KAFKA_BROKERS' -t '$copy' -e -q -f '%h\n' | grep -c 'oms.replay.source=$TOPIC_ORDERS:' | grep -qx '$(wc -l <"$T/all-orders.jsonl")'"
expect_exit 2 "replay with a bad time exits 2" "$C" replay --topic orders --from 2026-13-45T00:00:00Z
expect_exit 2 "replay without --from exits 2" "$C" replay --topic orders
expect_exit 1 "replay of an unknown topic exits 1" "$C" replay --topic nope-nope --from beginning
expect_exit 2 "replay with an unknown filter key exits 2" "$C" replay --topic orders --from beginning --filter colour=red

# --- lag
expect_exit 0 "lag of the projection group (nothing committed)" "$C" lag
check "... shows the partitions and a total" grep -q "total lag" "$T/last.out"
g="lagtest-$RANDOM"
timeout 20 kcat -b "$KAFKA_BROKERS" -G "$g" -X auto.offset.reset=earliest -X enable.auto.commit=true -e -q "$TOPIC_INVENTORY" >/dev/null 2>&1
expect_exit 0 "lag --json of a group that read everything" "$C" lag --group "$g" --topic "$TOPIC_INVENTORY" --json
check "... is 0" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["totalLag"]==0 and all(p["committed"]==p["end"] for p in d["partitions"]), d' "$T/last.out"
expect_exit 1 "lag of an unknown topic exits 1" "$C" lag --topic nope-nope

# --- habits
expect_exit 0 "completion bash" "$C" completion bash
check "the completion script is valid bash" bash -n "$T/last.out"
check "... and knows the commands" grep -q "replay lag topics schemas" "$T/last.out"
expect_exit 2 "completion zsh exits 2" "$C" completion zsh
for cmd in health stats users broadcast notify token tail replay lag topics schemas completion; do
    expect_exit 0 "omsctl $cmd --help" "$C" $cmd --help
done
expect_exit 2 "an unknown flag exits 2 with a hint" "$C" stats --frobnicate
check "... 'try omsctl stats --help'" grep -q "try 'omsctl stats --help'" "$T/last.err"
