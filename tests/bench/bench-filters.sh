#!/usr/bin/env bash
# Subscription filters (issue #20): omsd's CPU per delivery with
# BENCH_FILTER_CONNS (10,000) staff connections subscribed to inventory,
#   a. without a filter: every event goes to every connection
#      (BENCH_FILTER_EVENTS_ALL events, 200);
#   b. with BENCH_FILTERS (1,000) distinct filters {"productId": P}, P =
#      1 + index % 1,000, so an event goes to 10 connections
#      (BENCH_FILTER_EVENTS events, 20,000, products 1..1,000 in turn);
#   c. the same events with the connections subscribed to orders only: what
#      an event costs omsd before any connection (read, decode, serialize,
#      history, hand-over), to set b against.
# Compression off here: its cost is BENCH=compression's. Then the router
# alone (tests/tools/oms-filter-bench): ns per event to choose recipients,
# without a filter, with the 1,000 indexed filters, and with 1,000
# comparison-only filters (tested for every event).
# CPU: utime+stime of omsd from before the first event to when deliveries
# stop. Loopback only; a few minutes at most.
set -eu
cd "$(dirname "$0")/../.."
NAME=filters
. tests/bench/subs-lib.sh
CONNS=${BENCH_FILTER_CONNS:-10000}
NF=${BENCH_FILTERS:-1000}
EA=${BENCH_FILTER_EVENTS_ALL:-200}
EB=${BENCH_FILTER_EVENTS:-20000}

events_file() { # N FILE: inventory events for products 1..NF in turn
    py "
import json
with open('$2', 'w') as f:
    for i in range($1):
        p = 1 + i % $NF
        f.write(json.dumps({'type': 'InventoryChanged', 'productId': p, 'productName': 'Product %d' % p,
                            'quantity': i % 50, 'threshold': 10, 'status': 'in_stock', 'delta': -1}) + '\n')"
}

# run CASE EVENTS LOAD_OPTIONS...
run() {
    local case=$1 ev=$2
    shift 2
    local sub=inventory
    [ "${1:-}" = "--orders-only" ] && { sub=orders; shift; }
    load_start "$case" "$CONNS" --role staff --subscribe "$sub" "$@"
    events_file "$ev" "$T/$case.jsonl"
    local d0 c0 d1 c1 t0 t1
    d0=$(metric 'oms_events_delivered_total')
    c0=$(cpu_ticks)
    t0=$(date +%s%N)
    OMS_CONFIG=$T/$NAME.yaml $BIN/oms-producer emit --file "$T/$case.jsonl" >"$T/$case.emit" 2>&1
    settle oms_events_delivered_total 120
    c1=$(cpu_ticks)
    t1=$(date +%s%N)
    d1=$(metric 'oms_events_delivered_total')
    load_stop
    py "
d = $d1 - $d0; cpu = ($c1 - $c0) / $TICK; secs = ($t1 - $t0) / 1e9
print('$NAME: %-28s %6d events -> %9d deliveries in %5.1f s; omsd CPU %5.2f s: %6.2f us per delivery, %7.1f us per event'
      % ('$case', $ev, d, secs, cpu, 1e6 * cpu / max(d, 1), 1e6 * cpu / $ev))
print('{\"bench\": \"filters\", \"case\": \"$case\", \"connections\": $CONNS, \"events\": $ev, \"deliveries\": %d, \"cpu_s\": %.3f, \"us_per_delivery\": %.3f, \"us_per_event\": %.2f}'
      % (d, cpu, 1e6 * cpu / max(d, 1), 1e6 * cpu / $ev), file=open('$T/results.jsonl', 'a'))"
}

start_omsd "$NAME" "  compression: false"
say "$CONNS staff connections subscribed to inventory; omsd $(nproc) threads by default"
run "no filter" "$EA"
run "$NF distinct filters" "$EB" --filter-products "$NF"
run "no inventory subscriber" "$EB" --orders-only
stop_omsd

# the router alone (no sockets): choosing the recipients of an event
build/tests/tools/oms-filter-bench "$CONNS" "$NF" 1000000 | sed 's/^oms-filter-bench/filters: router/'
