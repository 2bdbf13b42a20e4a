#!/usr/bin/env bash
# oms-producer → Kafka → omsctl tail: counts, eventIds, wire format, seeds,
# emit --json / --file, and the CLI's exit codes.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics roundtrip
check "topics create reports created" grep -q "$TOPIC_ORDERS *created" "$T/topics-create.out"
"$BIN/omsctl" topics create --file "$T/topics.yaml" >"$T/again.out" 2>&1
check "topics create twice is fine (exists)" grep -q "$TOPIC_ORDERS *exists" "$T/again.out"
"$BIN/omsctl" topics list >"$T/list.out"
check "topics list shows the topic with 6 partitions" grep -Eq "^$TOPIC_ORDERS +6 +1 +0" "$T/list.out"

# 10,000 simulated events
"$ABIN/oms-producer" simulate --rate max --count 10000 --seed 1234 --users 40 --products 15 \
    --record "$T/sent.jsonl" --json-summary >"$T/summary.json" 2>"$T/sim.err"
rc=$?
check "simulate exits 0" test $rc -eq 0
check "simulate delivered 10000" python3 -c '
import json,sys; s=json.load(open(sys.argv[1])); assert s["delivered"]==10000 and s["failed"]==0, s' "$T/summary.json"
check "record file has 10000 lines" test "$(wc -l <"$T/sent.jsonl")" -eq 10000

"$ABIN/omsctl" tail all --from-beginning --exit-at-end --format json >"$T/tail.jsonl" 2>"$T/tail.err"
check "tail --exit-at-end exits 0" test $? -eq 0
check "tail returns exactly 10000 events" test "$(wc -l <"$T/tail.jsonl")" -eq 10000
check "same set of eventIds" python3 - "$T/sent.jsonl" "$T/tail.jsonl" <<'PY'
import json, sys
sent = [json.loads(l)["eventId"] for l in open(sys.argv[1])]
got = [json.loads(l)["data"]["data"]["eventId"] for l in open(sys.argv[2])]
assert len(set(sent)) == 10000, len(set(sent))
assert sorted(sent) == sorted(got), (len(sent), len(got))
PY
check "tail frames carry positions and RealTimeEvent fields" python3 - "$T/tail.jsonl" "$T/sent.jsonl" <<'PY'
import json, sys, re
pos = {}
for l in open(sys.argv[2]):
    r = json.loads(l); pos[r["eventId"]] = "%s:%d:%d" % (r["topic"], r["partition"], r["offset"])
names = {"order_update", "inventory_update", "user_notification", "system_notification"}
for l in open(sys.argv[1]):
    f = json.loads(l)
    assert f["event"] in names, f
    rt = f["data"]
    assert rt["id"] == pos[rt["data"]["eventId"]], (rt["id"], pos[rt["data"]["eventId"]])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", rt["timestamp"]), rt
    assert rt["type"] in ("order_status", "inventory_update", "user_specific", "system_notification")
PY

# every record on the wire starts with C3 01 (raw, through kcat)
for t in $TOPIC_ORDERS $TOPIC_INVENTORY $TOPIC_NOTIFICATIONS; do
    kcat -C -b "$KAFKA_BROKERS" -t "$t" -e -q -f '%R%s' >>"$T/raw.bin"
done
check "every raw record starts with C3 01 (kcat)" python3 - "$T/raw.bin" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read(); i = n = 0
while i < len(b):
    (ln,) = struct.unpack(">i", b[i:i+4]); i += 4
    assert b[i:i+2] == b"\xc3\x01", (n, b[i:i+10].hex())
    i += ln; n += 1
assert n == 10000, n
PY

# same seed → same types, keys and payloads (ids and timestamps aside)
sig() {
    python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l); e.pop("eventId"); e.pop("occurredAt"); print(json.dumps(e, sort_keys=True))'
}
"$BIN/oms-producer" simulate --dry-run --print --rate max --count 3000 --seed 99 2>/dev/null | sig >"$T/seed-a"
"$BIN/oms-producer" simulate --dry-run --print --rate max --count 3000 --seed 99 2>/dev/null | sig >"$T/seed-b"
"$BIN/oms-producer" simulate --dry-run --print --rate max --count 3000 --seed 100 2>/dev/null | sig >"$T/seed-c"
check "same seed gives the same sequence" cmp -s "$T/seed-a" "$T/seed-b"
check "another seed gives another sequence" test "$(cmp -s "$T/seed-a" "$T/seed-c"; echo $?)" -ne 0
# and on the wire: a second topic set with the same seed holds the same events per key
first_orders=$TOPIC_ORDERS
cp "$T/tail.jsonl" "$T/tail-first.jsonl"
make_topics roundtrip-b
"$BIN/oms-producer" simulate --rate max --count 10000 --seed 1234 --users 40 --products 15 2>/dev/null
"$BIN/omsctl" tail all --from-beginning --exit-at-end --format json >"$T/tail-second.jsonl" 2>/dev/null
check "same seed on the wire: same keys, types and payloads per partition" python3 - "$T/tail-first.jsonl" "$T/tail-second.jsonl" <<'PY'
import json, sys
def load(p):
    out = {}
    for l in open(p):
        rt = json.loads(l)["data"]; d = dict(rt["data"])
        for k in ("eventId", "timestamp"): d.pop(k)
        topic, part, off = rt["id"].rsplit(":", 2)
        out.setdefault(topic.rsplit(".", 1)[1] + ":" + part, []).append(json.dumps(d, sort_keys=True))
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a == b, "sequences differ"
PY

# emit --json, then emit --file with a bad line in the middle
expect_exit 0 "emit --json sends one event" "$BIN/oms-producer" emit OrderCreated \
    --json '{"orderId":"emit-1","aliasId":"ORDER-2023-001","userId":1,"totalAmount":99.99,"status":"created"}'
"$BIN/omsctl" tail orders --from-beginning --exit-at-end --format json >"$T/emit.jsonl" 2>/dev/null
check "tail sees the emitted order" grep -q '"orderId":"emit-1"' "$T/emit.jsonl"
before=$(topic_count "$TOPIC_NOTIFICATIONS")
cat >"$T/bad.jsonl" <<'JSONL'
{"type":"UserNotification","userId":1,"title":"one","message":"first"}
{"type":"UserNotification","userId":1,"title":"two"}
# a comment line

{"type":"SystemNotification","title":"three","message":"third"}
JSONL
expect_exit 1 "emit --file with a bad line exits 1" "$BIN/oms-producer" emit --file "$T/bad.jsonl"
check "the bad line is reported with its number and reason" grep -q "bad.jsonl:2: message: required" "$T/last.err"
check "nothing was sent from the bad file" test "$(topic_count "$TOPIC_NOTIFICATIONS")" -eq "$before"
grep -v '"two"' "$T/bad.jsonl" | "$BIN/oms-producer" emit --file - >/dev/null 2>&1
check "emit --file - sends the good lines" test "$(topic_count "$TOPIC_NOTIFICATIONS")" -eq $((before + 2))
expect_exit 1 "--skip-bad sends the rest but still exits 1" "$BIN/oms-producer" emit --file "$T/bad.jsonl" --skip-bad
check "--skip-bad sent the two good lines" test "$(topic_count "$TOPIC_NOTIFICATIONS")" -eq $((before + 4))

# usage and failure exit codes
expect_exit 2 "unknown command exits 2" "$BIN/omsctl" frobnicate
expect_exit 2 "unknown flag exits 2" "$BIN/omsctl" tail --bogus orders
expect_exit 2 "emit with an unknown type exits 2" "$BIN/oms-producer" emit Nope --json '{}'
expect_exit 2 "simulate --rate abc exits 2" "$BIN/oms-producer" simulate --rate abc
expect_exit 1 "tail of a missing topic exits 1" "$BIN/omsctl" tail no-such-topic-xyz --exit-at-end
check "... and names the topic" grep -q "topic 'no-such-topic-xyz' does not exist" "$T/last.err"
expect_exit 0 "every command has --help" "$BIN/omsctl" tail --help
expect_exit 0 "oms-producer simulate --help" "$BIN/oms-producer" simulate --help
KAFKA_BROKERS=127.0.0.1:1 expect_exit 1 "unreachable kafka: topics list exits 1" "$BIN/omsctl" topics list
KAFKA_BROKERS=127.0.0.1:1 expect_exit 1 "unreachable kafka: emit exits 1" "$BIN/oms-producer" emit SystemNotification --json '{"title":"t","message":"m"}'
check "... and says so" grep -q "cannot reach kafka at '127.0.0.1:1'" "$T/last.err"
printf 'kafka:\n  topics:\n    notifications: no-such-topic-for-emit\n' >"$T/missing.yaml"
expect_exit 1 "emit to a missing topic exits 1" "$BIN/oms-producer" emit SystemNotification --config "$T/missing.yaml" --json '{"title":"t","message":"m"}'
check "... and names the topic and the fix" grep -q "topic 'no-such-topic-for-emit' does not exist (create it with 'omsctl topics create')" "$T/last.err"
