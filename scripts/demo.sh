#!/usr/bin/env bash
# make demo: the pipeline on this machine. Starts the stack, creates the
# topics, runs the domain simulation and the order/inventory services
# (oms-producer serve) in the background, prints a curl that creates an order,
# and follows the live event stream with omsctl tail until Ctrl-C (or
# DEMO_SECONDS).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
bash scripts/stack.sh up
eval "$(bash scripts/stack.sh env)"
unset OMS_CONFIG
$BIN/omsctl topics create --file configs/topics.yaml
mkdir -p "$OMS_STATE/logs"
port=${PORT:-3000}
serve_port=${SERVE_PORT:-3002}
# omsd and serve check the same tokens: one secret for both (omsd's sample
# tokens at /dev/tokens are signed with it)
if [ -z "${JWT_SECRET:-}" ]; then
    JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
fi
export JWT_SECRET
PORT=$port $BIN/omsd --dev >"$OMS_STATE/logs/demo-omsd.log" 2>&1 &
omsd=$!
serve=
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/websocket/health" >/dev/null 2>&1 && break
    kill -0 "$omsd" 2>/dev/null || { tail -5 "$OMS_STATE/logs/demo-omsd.log" >&2; echo "demo: omsd did not start" >&2; exit 1; }
    sleep 0.1
done
token_list=$(curl -sf "http://127.0.0.1:$port/dev/tokens" | grep -o '"role":"[a-z]*","userId":[0-9]*,"token":"[^"]*"')
tokens=$(echo "$token_list" |
    sed 's/"role":"\([a-z]*\)","userId":\([0-9]*\),"token":"\([^"]*\)"/  \1 (user \2): \3/')
token_of() { echo "$token_list" | grep "\"role\":\"$1\"" | head -n 1 | sed 's/.*"token":"\([^"]*\)"/\1/'; }
customer_token=$(token_of customer)
staff_token=$(token_of staff)
$BIN/oms-producer serve --port "$serve_port" --host 127.0.0.1 >"$OMS_STATE/logs/demo-serve.log" 2>&1 &
serve=$!
# serve first reads the order and inventory topics from the beginning
for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$serve_port/health" >/dev/null 2>&1 && break
    kill -0 "$serve" 2>/dev/null || { tail -5 "$OMS_STATE/logs/demo-serve.log" >&2; echo "demo: oms-producer serve did not start" >&2; kill "$omsd"; exit 1; }
    sleep 0.1
done
# product 100 of the demo: topped up to 12 (threshold 10), so that the order
# of the curl below (3 units) takes it under the threshold: a low-stock alert
demo_product=100
have=$(curl -s -H "Authorization: Bearer $staff_token" "http://127.0.0.1:$serve_port/inventory/$demo_product" |
    sed -n 's/.*"quantity":\([0-9]*\).*/\1/p')
if [ "${have:-0}" -lt 12 ]; then
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer $staff_token" -H 'Content-Type: application/json' \
        -d "{\"quantity\":$((12 - ${have:-0})),\"productName\":\"Demo Widget\",\"threshold\":10}" \
        "http://127.0.0.1:$serve_port/inventory/$demo_product/restock" ||
        echo "demo: could not stock product $demo_product (see $OMS_STATE/logs/demo-serve.log)" >&2
fi
order_qty=$(( ${have:-0} > 12 ? ${have:-0} - 9 : 3 ))
rate=${DEMO_RATE:-20}
$BIN/oms-producer simulate --rate "$rate" --duration 0 --users 20 --products 12 \
    >"$OMS_STATE/logs/demo-simulate.log" 2>&1 &
sim=$!
cleanup() {
    kill "$sim" 2>/dev/null || true
    wait "$sim" 2>/dev/null || true
    kill "$serve" 2>/dev/null || true
    wait "$serve" 2>/dev/null || true
    kill "$omsd" 2>/dev/null || true
    wait "$omsd" 2>/dev/null || true
    echo
    echo "demo: simulation, serve and omsd stopped (logs: $OMS_STATE/logs/demo-*.log)"
    echo "demo: the stack keeps running; stop it with 'make stack-down'"
}
trap cleanup EXIT
cat <<MSG

demo: Kafka at $KAFKA_BROKERS, PostgreSQL at $DATABASE_HOST:$DATABASE_PORT (db $DATABASE_NAME)
demo: omsd (dev mode) at http://127.0.0.1:$port — WebSocket ws://127.0.0.1:$port/events
demo: web console: open http://127.0.0.1:$port/ — pick a sample token, Connect, turn on Order Updates
demo: sample tokens (Authorization: Bearer TOKEN, or ws://127.0.0.1:$port/events?token=TOKEN):
$tokens
demo: try  curl -H "Authorization: Bearer <admin token>" http://127.0.0.1:$port/websocket/stats
demo: oms-producer simulate is emitting $rate events/s (orders, stock, notifications)
demo: the order and inventory services (oms-producer serve) at http://127.0.0.1:$serve_port
demo: create an order as the customer (user 3) — the staff token in the console sees it, with the
demo: low-stock alert of product $demo_product under Inventory (turn on Order Updates and Inventory):

  curl -X POST http://127.0.0.1:$serve_port/order/orders \\
    -H 'Authorization: Bearer $customer_token' \\
    -H 'Content-Type: application/json' \\
    -d '{"addressId": 1, "items": [{"productId": $demo_product, "quantity": $order_qty, "price": 19.99}]}'

demo: more stock:  curl -X POST http://127.0.0.1:$serve_port/inventory/$demo_product/restock -H 'Authorization: Bearer <staff token>' -H 'Content-Type: application/json' -d '{"quantity": 20}'
demo: following every event topic with 'omsctl tail all' — Ctrl-C to stop
demo: in another shell:  eval "\$(make -s stack-env)"; build/bin/omsctl topics list

MSG
if [ -n "${DEMO_SECONDS:-}" ]; then
    timeout "$DEMO_SECONDS" $BIN/omsctl tail all --format pretty || true
else
    $BIN/omsctl tail all --format pretty || true
fi
