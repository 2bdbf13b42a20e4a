#!/usr/bin/env bash
# The Confluent wire format and JSON records (issue #17), end to end on the
# real broker and a real schema registry (Apicurio, Confluent API):
#   - an independent producer (Python confluent-kafka: AvroSerializer and
#     SchemaRegistryClient, schemas registered by that client, OrderStatusChanged
#     also written with a version that adds an optional field and one that
#     removes one; JSON records from the same client) and oms-producer's three
#     formats, mixed on every topic: omsd pushes them to a WebSocket client with
#     the right payloads, the projections fold them equal to the independent
#     fold, omsctl tail and replay decode them;
#   - an unknown id, a corrupted body, a wrong magic byte: to the DLQ with the
#     reason, the stream goes on;
#   - a registry of the test's own, stopped: cached ids keep flowing, new ids
#     wait (nothing to the DLQ) and flow, in order, once it is back;
#   - omsctl schemas register|compat|list --registry, health and /metrics.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
PY=$OMS_STATE/venv/bin/python3
PRODUCER=$ROOT/tests/integration/registry_producer.py
CHECK=$ROOT/tests/integration/registry_check.py
OWN=$T/own-registry
COLLECT_PID=
cleanup() {
    [ -n "$COLLECT_PID" ] && kill "$COLLECT_PID" 2>/dev/null
    bash scripts/registry.sh stop "$OWN" 2>/dev/null
    proj_cleanup
    finish
}
trap cleanup EXIT
export PYTHONWARNINGS=ignore

# ---- the stack's registry (make test starts it; run alone, the test does) ----------
if [ -z "${SCHEMA_REGISTRY_URL:-}" ]; then
    REGISTRY=1 bash scripts/stack.sh up >"$T/stack-up.log" 2>&1
    eval "$(bash scripts/stack.sh env)"
fi
check "a schema registry answers (make stack-env exports it)" \
    curl -fsS -o /dev/null "${SCHEMA_REGISTRY_URL:-http://127.0.0.1:1}/subjects"
check "the python client is installed (scripts/deps.sh)" \
    "$PY" -c 'import confluent_kafka.schema_registry.avro, fastavro'

check "topics created" proj_config reg
cat >>"$T/omsd.yaml" <<YAML
schema_registry:
  url: $SCHEMA_REGISTRY_URL
  timeout_ms: 2000
YAML
check "test database created" new_db
check "omsd starts with the registry configured" start_omsd a
PREFIX=${TOPIC_ORDERS%.orders}
TOKEN=$("$BIN/omsctl" token --sub 1 --role admin)

# collect NAME PORT: a WebSocket client (admin, user 1) recording into $T/NAME.json
collect() {
    : >"$T/$1.json"
    (cd tests/node && OMS_PORT=$2 TOKEN=$TOKEN OUT=$T/$1.json exec node collect.js) \
        2>"$T/$1.err" &
    COLLECT_PID=$!
    for _ in $(seq 1 100); do
        grep -q '"ready"' "$T/$1.json" && return 0
        sleep 0.1
    done
    return 1
}
# wait_frames EXPECTED ACTUAL SECONDS: until every expected record was pushed
wait_frames() {
    local deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        python3 "$CHECK" frames "$1" "$2" --ws-user 1 >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    python3 "$CHECK" frames "$1" "$2" --ws-user 1 | sed 's/^/# /'
    return 1
}
check "a WebSocket client subscribes" collect ws "$PORT_a"

# ---- mixed formats from two producers -------------------------------------------
expect_exit 0 "the python producer (AvroSerializer v1, v2 +field, v3 -field; JSON) delivers" \
    "$PY" "$PRODUCER" main --registry "$SCHEMA_REGISTRY_URL" --prefix "$PREFIX" \
    --out "$T/expected.json" --count 30 --seed "$RANDOM"
for f in confluent json soe; do
    expect_exit 0 "oms-producer simulate --format $f delivers" \
        "$BIN/oms-producer" simulate --rate max --count 150 --seed 7 --format "$f"
done
check "the schemas are registered under TopicNameStrategy subjects" \
    bash -c "curl -fsS '$SCHEMA_REGISTRY_URL/subjects' | grep -q '\"$TOPIC_ORDERS-value\"'"
expect_exit 0 "the bad records are written" \
    "$PY" "$PRODUCER" bad --registry "$SCHEMA_REGISTRY_URL" --prefix "$PREFIX" \
    --out "$T/bad.json"
"$BIN/oms-producer" emit InventoryChanged --json \
    '{"productId":4242,"productName":"After bad","quantity":3,"threshold":1,"status":"low_stock"}' \
    >/dev/null 2>&1

check "omsd pushes every python record with the right payload" \
    wait_frames "$T/expected.json" "$T/ws.json" 60
check "... in order per partition" python3 "$CHECK" order "$T/ws.json"
check "... and the records of all three oms-producer formats" test \
    "$(grep -c '"source":"oms-producer"' "$T/ws.json")" -ge 300
check "the record after the bad ones is pushed" grep -q '"productId":4242' "$T/ws.json"

# ---- the DLQ --------------------------------------------------------------------
sleep 1
kcat -C -b "$KAFKA_BROKERS" -t "$TOPIC_DLQ" -e -q -f '%h\n' >"$T/dlq.txt" 2>/dev/null
grep "oms.stage=fanout" "$T/dlq.txt" >"$T/dlq-fanout.txt"
check "three records in the dlq from the fan-out" test "$(wc -l <"$T/dlq-fanout.txt")" = 3
check "... the unknown id, named" \
    grep -q "oms.error=schema id 987654321: unknown to the schema registry" "$T/dlq-fanout.txt"
check "... the corrupted body, with the field" \
    grep -q "oms.error=schema id [0-9]*: field '[a-zA-Z]*'" "$T/dlq-fanout.txt"
check "... the wrong magic byte" grep -q "oms.error=unknown wire format: first byte 07" \
    "$T/dlq-fanout.txt"
check "... each with its source topic" test \
    "$(grep -c "oms.source.topic=$TOPIC_INVENTORY" "$T/dlq-fanout.txt")" = 3
check "the projections sent the same three" test "$(grep -c "oms.stage=projection" "$T/dlq.txt")" = 3

# ---- projections, tail, replay ------------------------------------------------------
check "the projections catch up" wait_caught_up 120
timeout 60 "$BIN/omsctl" tail all --from-beginning --exit-at-end --format json \
    >"$T/tail.json" 2>"$T/tail.err"
check "omsctl tail decodes every python record" \
    python3 "$CHECK" frames "$T/expected.json" "$T/tail.json"
check "... and counts the three bad ones as undecodable" \
    grep -q "3 records could not be decoded" "$T/tail.err"
python3 "$CHECK" merge "$T/expected.json" "$T/tail.json" "$T/fold.json"
python3 "$REF" compare "$T/fold.json" >"$T/compare.out" 2>&1
rc=$?
sed 's/^/# /' "$T/compare.out"
check "the tables equal the independent fold" test "$rc" = 0
expect_exit 0 "omsctl replay of the orders" "$BIN/omsctl" replay --topic orders --from beginning \
    --output "$T/replay.json"
grep -E "\"id\": ?\"$TOPIC_ORDERS:" "$T/expected.json" >"$T/expected-orders.json"
check "... decodes every python order record" \
    python3 "$CHECK" frames "$T/expected-orders.json" "$T/replay.json"

# ---- omsctl schemas against the registry -------------------------------------------
expect_exit 0 "schemas list --registry" "$BIN/omsctl" schemas list --registry
check "... shows the orders subject and its versions" \
    grep -q "$TOPIC_ORDERS-value .*oms.events.OrderStatusChanged" "$T/last.out"
expect_exit 0 "schemas compat: ours against the newest registered versions" \
    "$BIN/omsctl" schemas compat --json
check "... every type is compatible" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r) == 5 and all(x["result"] == "compatible" for x in r), r' "$T/last.out"
cat >"$T/bad.avsc" <<'JSON'
{"type": "record", "name": "OrderCreated", "namespace": "oms.events",
 "fields": [{"name": "eventId", "type": "string"}, {"name": "orderId", "type": "long"}]}
JSON
mkdir -p "$T/badschemas" && cp "$T/bad.avsc" "$T/badschemas/order_created.v9.avsc"
expect_exit 1 "schemas compat fails for an incompatible schema" \
    "$BIN/omsctl" schemas compat --schemas "$T/badschemas"
check "... naming it" grep -q "OrderCreated .*incompatible" "$T/last.out"
expect_exit 0 "schemas register (the ids the registry has)" "$BIN/omsctl" schemas register --json
expect_exit 2 "--registry with check is a usage error" \
    "$BIN/omsctl" schemas check "$T/bad.avsc" --registry
expect_exit 1 "schemas compat with the registry unreachable fails" \
    "$BIN/omsctl" schemas compat --registry=http://127.0.0.1:1

# ---- health and metrics -------------------------------------------------------------
health_get a admin >"$T/health-admin.json"
check "health (admin) shows the registry up with its cache" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["dependencies"]["schemaRegistry"]
assert r["status"] == "up" and r["cachedSchemas"] >= 5 and r["url"], r' "$T/health-admin.json"
health_get a >"$T/health-public.json"
check "health without a token: the registry's status only" health_public "$T/health-public.json"
check "... it is there" grep -q '"schemaRegistry":{"status":"up"' "$T/health-public.json"
curl -s "http://127.0.0.1:$PORT_a/metrics" >"$T/metrics.txt"
check "/metrics: the registry is up" \
    grep -q '^oms_dependency_up{dependency="schema_registry"} 1' "$T/metrics.txt"
check "/metrics: the cached schemas" grep -qE '^oms_schema_registry_cached_schemas [1-9]' \
    "$T/metrics.txt"
check "/metrics: the unknown id" grep -qE '^oms_schema_registry_unknown_ids_total [1-9]' \
    "$T/metrics.txt"
kill "$COLLECT_PID" 2>/dev/null
wait "$COLLECT_PID" 2>/dev/null
COLLECT_PID=
check "omsd stops cleanly" stop_omsd "$PID_a"
check "omsd ran clean under ASan/UBSan" asan_clean "$T/a.log"

# ---- a registry of our own, stopped and started again ---------------------------
RPORT=$(free_port)
check "a registry of the test's own starts (port $RPORT)" \
    bash scripts/registry.sh start "$OWN" "$RPORT" persist
OWN_URL=$(bash scripts/registry.sh url "$RPORT")
export SCHEMA_REGISTRY_URL=$OWN_URL # the variable overrides the configuration
drop_db
check "topics of the outage created" proj_config regout
cat >>"$T/omsd.yaml" <<YAML
schema_registry:
  url: $OWN_URL
  timeout_ms: 1000
YAML
check "its database created" new_db
check "omsd b starts" start_omsd b
PREFIX=${TOPIC_ORDERS%.orders}
check "a WebSocket client subscribes to b" collect wsb "$PORT_b"
expect_exit 0 "records with the first ids" "$PY" "$PRODUCER" outage --phase before \
    --registry "$OWN_URL" --prefix "$PREFIX" --out "$T/out-before.json" --state "$T/ids.json" \
    --count 12
check "... are pushed (omsd caches their ids)" wait_frames "$T/out-before.json" "$T/wsb.json" 60
bash scripts/registry.sh stop "$OWN"
check "the registry is stopped" bash -c "! curl -fs -o /dev/null -m 2 '$OWN_URL/subjects'"
expect_exit 0 "records with an id omsd never saw, the registry down" \
    "$PY" "$PRODUCER" outage --phase new --registry "$OWN_URL" --prefix "$PREFIX" \
    --out "$T/out-new.json" --state "$T/ids.json" --count 12
expect_exit 0 "then records with cached ids" "$PY" "$PRODUCER" outage --phase cached \
    --registry "$OWN_URL" --prefix "$PREFIX" --out "$T/out-cached.json" --state "$T/ids.json" \
    --count 12
# cached records on partitions that hold no waiting record flow at once
python3 - "$T/out-new.json" "$T/out-cached.json" "$T/out-free.json" <<'PY'
import json, sys
held = {json.loads(l)["data"]["id"].rsplit(":", 1)[0] for l in open(sys.argv[1]) if l.strip()}
with open(sys.argv[3], "w") as out:
    for l in open(sys.argv[2]):
        if l.strip() and json.loads(l)["data"]["id"].rsplit(":", 1)[0] not in held:
            out.write(l)
PY
check "cached ids keep flowing while the registry is down" \
    test "$(wc -l <"$T/out-free.json")" -gt 0 -a "$(wc -l <"$T/out-new.json")" -gt 0
check "... (those pushed)" wait_frames "$T/out-free.json" "$T/wsb.json" 30
sleep 2
check "records with new ids wait: none pushed" test \
    "$(python3 "$CHECK" frames "$T/out-new.json" "$T/wsb.json" | tail -n 1 | cut -d' ' -f3)" = 0
check "... none in the dlq" test "$(kcat -C -b "$KAFKA_BROKERS" -t "$TOPIC_DLQ" -e -q -f 'x\n' \
    2>/dev/null | wc -l)" = 0
health_get b admin >"$T/health-down.json"
check "health shows the registry down, omsd still healthy" python3 -c '
import json, sys
h = json.load(open(sys.argv[1]))
r = h["dependencies"]["schemaRegistry"]
assert h["status"] == "ok" and r["status"] == "down" and r["error"], h' "$T/health-down.json"
check "/metrics counts the records waiting" bash -c \
    "curl -s http://127.0.0.1:$PORT_b/metrics | grep -qE '^oms_schema_registry_waits_total [1-9]'"
check "the registry starts again (its schemas kept)" \
    bash scripts/registry.sh start "$OWN" "$RPORT" persist
cat "$T/out-before.json" "$T/out-new.json" "$T/out-cached.json" >"$T/out-all.json"
check "then every record is pushed: nothing lost" wait_frames "$T/out-all.json" "$T/wsb.json" 60
check "... in order per partition" python3 "$CHECK" order "$T/wsb.json"
check "... nothing in the dlq" test "$(kcat -C -b "$KAFKA_BROKERS" -t "$TOPIC_DLQ" -e -q \
    -f 'x\n' 2>/dev/null | wc -l)" = 0
check "the projections catch up" wait_caught_up 120
python3 "$REF" compare "$T/out-all.json" >"$T/compare-b.out" 2>&1
rc=$?
sed 's/^/# /' "$T/compare-b.out"
check "... equal to the independent fold: nothing skipped" test "$rc" = 0
kill "$COLLECT_PID" 2>/dev/null
wait "$COLLECT_PID" 2>/dev/null
COLLECT_PID=
check "omsd b stops cleanly" stop_omsd "$PID_b"
check "omsd b ran clean under ASan/UBSan" asan_clean "$T/b.log"
