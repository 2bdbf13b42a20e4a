#!/usr/bin/env bash
# oms-producer serve: the order and inventory services over HTTP. Orders
# created over HTTP reach a WebSocket client of omsd and the Postgres
# projections; refused requests emit nothing; the state is rebuilt from the
# log after a restart, and two serve processes converge. Real Kafka and
# Postgres, the ASan builds of serve and omsd, node's ws client.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
trap 'proj_cleanup; finish' EXIT

SERVE=$ABIN/oms-producer

# ---- command line ----------------------------------------------------------------
expect_exit 0 "serve --help" "$SERVE" serve --help
check "... lists the routes and every option" bash -c "for o in /order/orders /inventory/ --port \
    --host --brokers --config --schemas --help; do grep -q -- \"\$o\" '$T/last.out' || exit 1; done"
expect_exit 0 "oms-producer --help lists serve" "$SERVE" --help
check "... with its summary" grep -q "serve .*HTTP JSON API" "$T/last.out"
expect_exit 2 "an unknown option is a usage error" "$SERVE" serve --frobnicate
expect_exit 2 "--port 0 is a usage error" "$SERVE" serve --port 0
expect_exit 2 "--port 70000 is a usage error" "$SERVE" serve --port 70000
expect_exit 2 "an extra argument is a usage error" "$SERVE" serve extra
JWT_SECRET= expect_exit 2 "serve refuses to start without a JWT secret" "$SERVE" serve
check "... and names JWT_SECRET" grep -q "JWT_SECRET" "$T/last.err"
JWT_SECRET=short expect_exit 2 "serve refuses a secret under 32 bytes" "$SERVE" serve
check "... and says why" grep -q "at least 32 are required" "$T/last.err"
expect_exit 1 "serve fails when kafka is unreachable" timeout 30 "$SERVE" serve --brokers 127.0.0.1:1
check "... naming kafka" grep -q "cannot reach kafka" "$T/last.err"

check "topics created" proj_config serve
check "test database created" new_db
printf 'kafka:\n  topics:\n    orders: oms-t-none-%s.orders\n' "$RANDOM$RANDOM" >"$T/missing.yaml"
expect_exit 1 "serve fails when a topic does not exist" timeout 60 "$SERVE" serve --config "$T/missing.yaml"
check "... naming the topic" grep -q "oms-t-none-.*orders" "$T/last.err"

# start_serve NAME: the ASan serve on a port of its own, log $T/NAME.log
# (appended); sets SPID_NAME and SPORT_NAME; waits for /health
start_serve() {
    local name=$1 port pid
    for _ in 1 2 3; do
        port=$(free_port)
        ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
            "$SERVE" serve --config "$T/omsd.yaml" --port "$port" --host 127.0.0.1 \
            >>"$T/$name.log" 2>&1 &
        pid=$!
        eval "SPID_$name=$pid SPORT_$name=$port"
        for _ in $(seq 1 150); do
            curl -s -o /dev/null "http://127.0.0.1:$port/health" && return 0
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && return 1
        wait "$pid"
    done
    return 1
}

# call NAME METHOD PATH TOKEN [BODY]: the HTTP status on stdout, the body in $T/resp.json
call() {
    local port body=()
    eval "port=\$SPORT_$1"
    [ -n "${5:-}" ] && body=(--data-binary "$5")
    curl -s -o "$T/resp.json" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $4" \
        -H 'Content-Type: application/json' "${body[@]}" "http://127.0.0.1:$port$3"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/resp.json" "$1"; }

STAFF=$("$BIN/omsctl" token --sub 200 --role staff)
CUST=$("$BIN/omsctl" token --sub 7 --role customer)

check "omsd starts (projections into the test database)" start_omsd omsd
check "serve starts on an empty log" start_serve a
check "... and says it rebuilt an empty state" grep -q '"msg":"state rebuilt from the log","events":0' "$T/a.log"

# ---- end to end with node ----------------------------------------------------------
(cd tests/node && OMS_PORT=$PORT_omsd SERVE_PORT=$SPORT_a BIN=$BIN RESULT_FILE=$T/node-result.json \
    TOPIC_ORDERS=$TOPIC_ORDERS TOPIC_INVENTORY=$TOPIC_INVENTORY \
    timeout 300 node --test --test-reporter=tap serve.test.js) >"$T/node.tap" 2>&1
grep -E '^(not )?ok ' "$T/node.tap"
grep -E '^# (order answered|[0-9]+ sequential)' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
result() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/node-result.json" "$1"; }
FIRST=$(result firstOrder 2>/dev/null)
P1=$(result P1 2>/dev/null)
P1_LEFT=$(result p1 2>/dev/null)
check "node handed over the first order and the stock" test -n "$FIRST" -a -n "$P1_LEFT"

# ---- the projections show it ---------------------------------------------------------
check "the projections catch up" wait_caught_up 60
check "orders table: the first order, delivered, for user 7, 34.97" \
    test "$(sql "SELECT status, user_id, total_amount FROM orders WHERE order_id = '$FIRST'")" = "delivered|7|34.97"
check "order_status_history: created, confirmed, shipped, delivered" \
    test "$(sql "SELECT string_agg(status, ',' ORDER BY split_part(position, ':', 3)::bigint) FROM order_status_history WHERE order_id = '$FIRST'")" = "created,confirmed,shipped,delivered"
check "inventory table: product $P1 at the stock serve reports" \
    test "$(sql "SELECT quantity FROM inventory WHERE product_id = $P1")" = "$P1_LEFT"
check "inventory table: the name of product 502 given at restock" \
    test "$(sql "SELECT product_name FROM inventory WHERE product_id = 502")" = "Blue Mug"

# ---- limits the node client cannot reach ---------------------------------------------------
check "a path over 511 bytes: 414" test "$(call a GET "/inventory/$(printf '1%.0s' $(seq 1 600))" "$STAFF")" = 414
check "an Authorization header over 16 KiB: 401" \
    test "$(call a GET /inventory/1 "$(head -c 17000 /dev/zero | tr '\0' a)")" = 401
check "... saying it is too long" grep -q "too long" "$T/resp.json"
check "a chunked body without Content-Length: 411" test "$(curl -s -o "$T/resp.json" -w '%{http_code}' \
    -X POST -H "Authorization: Bearer $CUST" -H 'Content-Type: application/json' \
    -H 'Transfer-Encoding: chunked' --data-binary '{}' "http://127.0.0.1:$SPORT_a/order/orders")" = 411
check "a WebSocket upgrade is refused" bash -c "! curl -s -f -o /dev/null --max-time 3 \
    -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://127.0.0.1:$SPORT_a/order/orders"
check "serve still answers" test "$(call a GET "/inventory/$P1" "$CUST")" = 200

# ---- restart: the state comes back from the log ----------------------------------------
check "serve exits 0 on SIGTERM" stop_omsd "$SPID_a"
check "serve starts again" start_serve a
check "... rebuilt from the log" grep -q '"msg":"state rebuilt from the log","events":[1-9]' "$T/a.log"
check "after the restart the stock of $P1 is as it was ($P1_LEFT)" \
    test "$(call a GET "/inventory/$P1" "$CUST")" = 200 -a "$(field quantity)" = "$P1_LEFT"
check "after the restart the first order is still delivered" \
    test "$(call a GET "/order/orders/$FIRST" "$CUST")" = 200 -a "$(field status)" = delivered
check "the next order may take the whole stock ($P1_LEFT)" \
    test "$(call a POST /order/orders "$CUST" "{\"addressId\":1,\"items\":[{\"productId\":$P1,\"quantity\":$P1_LEFT,\"price\":2}]}")" = 201
check "... which leaves it out of stock" \
    test "$(call a GET "/inventory/$P1" "$CUST")" = 200 -a "$(field status)" = out_of_stock -a "$(field quantity)" = 0
check "... and one more is refused with 409" \
    test "$(call a POST /order/orders "$CUST" "{\"addressId\":1,\"items\":[{\"productId\":$P1,\"quantity\":1,\"price\":2}]}")" = 409

# ---- two serve processes converge ---------------------------------------------------------
check "a second serve starts" start_serve b
check "... and sees the same stock" \
    test "$(call b GET "/inventory/$P1" "$CUST")" = 200 -a "$(field quantity)" = 0
check "a restock through one" test "$(call a POST "/inventory/$P1/restock" "$STAFF" '{"quantity":5}')" = 200
seen_by_b() {
    for _ in $(seq 1 20); do
        [ "$(call b GET "/inventory/$P1" "$CUST")" = 200 ] && [ "$(field quantity)" = 5 ] && return 0
        sleep 0.1
    done
    return 1
}
check "... is seen by the other within 2 s" seen_by_b
check "an order through the other" \
    test "$(call b POST /order/orders "$CUST" "{\"addressId\":1,\"items\":[{\"productId\":$P1,\"quantity\":5,\"price\":2}]}")" = 201
ORDER_B=$(field orderId)
check "... is known to the first within 0.5 s" \
    bash -c "sleep 0.5; curl -sf -H 'Authorization: Bearer $CUST' http://127.0.0.1:$SPORT_a/order/orders/$ORDER_B >/dev/null"
check "... and the first refuses an order beyond the stock" \
    test "$(call a POST /order/orders "$CUST" "{\"addressId\":1,\"items\":[{\"productId\":$P1,\"quantity\":1,\"price\":2}]}")" = 409

check "serve b exits 0 on SIGTERM" stop_omsd "$SPID_b"
check "serve a exits 0 on SIGTERM" stop_omsd "$SPID_a"
check "omsd exits 0 on SIGTERM" stop_omsd "$PID_omsd"
check "serve and omsd ran clean under ASan/UBSan" asan_clean "$T/a.log" "$T/b.log" "$T/omsd.log"
