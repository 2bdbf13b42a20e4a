#!/usr/bin/env bash
# permessage-deflate, compressed once (issue #20): omsd A (compression on,
# compression_min_bytes 256, 64 KiB frame limit) and B (compression off),
# ASan builds; a raw client reading the frames on the wire, Node's ws and
# socket.io-client (tests/node/compression.test.js).
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics compression
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
PORT_A=$(free_port) PORT_B=$(free_port)
for inst in A:$PORT_A:true B:$PORT_B:false; do
    IFS=: read -r name port comp <<<"$inst"
    cp "$T/omsd.yaml" "$T/omsd-$name.yaml"
    cat >>"$T/omsd-$name.yaml" <<YAML
server:
  port: $port
  host: 127.0.0.1
  compression: $comp
  compression_min_bytes: 256
  max_frame_bytes: 65536
log:
  format: json
projections:
  enabled: false
YAML
done

expect_exit 0 "omsd -t accepts the compression keys" "$ABIN/omsd" -t --config "$T/omsd-A.yaml"
printf 'server:\n  compression: maybe\n' >"$T/bad.yaml"
expect_exit 2 "omsd -t refuses server.compression: maybe" "$ABIN/omsd" -t --config "$T/bad.yaml"
check "... and names the key" grep -q "server.compression" "$T/last.err"

check "instance A up" start_instance A
check "instance B up" start_instance B

(cd tests/node && OMS_PORT=$PORT_A PORT_A=$PORT_A PORT_B=$PORT_B BIN=$BIN OMS_CONFIG=$T/omsd.yaml T="$T" \
    timeout 300 node --test --test-force-exit --test-reporter=tap --test-concurrency=1 compression.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok |^# [0-9]+ order events' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
grep -qE '^ok ' "$T/node.tap" || { not_ok "node tests ran"; tail -20 "$T/node.tap" | sed 's/^/# /'; }

# pkg/ws/pmd.h's client side: oms-load (an lws client) offers it, inflates
# every event, and ends by itself (lws 4.1.6's own client extension, and
# this one before it passed uncompressed frames as "unknown", looped
# forever on omsd's uncompressed `connected`)
rm -f "$T/load.ready"
timeout 60 "$TOOLS/oms-load" --url "ws://127.0.0.1:$PORT_A/events" --connections 4 --subscribe orders \
    --compress --expect 80 --duration 30 --json --ready-file "$T/load.ready" >"$T/load.json" 2>"$T/load.err" &
LOADPID=$!
for _ in $(seq 1 100); do [ -s "$T/load.ready" ] && break; sleep 0.1; done
python3 -c '
import json
for i in range(20):
    print(json.dumps({"type": "OrderCreated", "orderId": "load-%d" % i, "aliasId": "L-%d" % i, "userId": 1,
                      "totalAmount": 10 + i, "status": "created",
                      "items": [{"productId": 1 + i, "productName": "Widget with a rather long product name",
                                 "quantity": 2, "price": 9.99}]}))' >"$T/load-orders.jsonl"
"$BIN/oms-producer" emit --file "$T/load-orders.jsonl" >"$T/load-emit.out" 2>&1
wait "$LOADPID"
check "oms-load --compress ends by itself (exit 0)" test $? -eq 0
load_ok() {
    python3 - "$T/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("# oms-load: %(negotiated)d of %(connections)d negotiated, %(events)d events, %(bytes)d bytes of JSON, %(wire_bytes)d on the wire" % r)
sys.exit(0 if r["negotiated"] == 4 and r["events"] == 80 and r["wire_bytes"] < r["bytes"] else 1)
PY
}
check "... negotiated on its 4 connections, got the 20 events each, fewer bytes on the wire than JSON" load_ok

stop_instances --all-running A B
