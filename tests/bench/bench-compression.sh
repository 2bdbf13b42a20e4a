#!/usr/bin/env bash
# permessage-deflate, compressed once (issue #20): bytes on the wire per
# delivery and omsd's CPU per delivery, server.compression off and on, at
# BENCH_COMPRESSION_CONNS (1000 10000) admin connections subscribed to
# orders and inventory (Node's ws, tests/bench/ws-load.js, offering it), with the
# events of `oms-producer simulate --seed 7` at a rate that makes about
# BENCH_COMPRESSION_DELIVERIES (200,000) deliveries/s for
# BENCH_COMPRESSION_SECONDS (10). Bytes: omsd's oms_ws_sent_bytes_total
# (WebSocket data frames, headers included) / frames. CPU: utime+stime from
# before the first event to when deliveries stop. Loopback only.
set -eu
cd "$(dirname "$0")/../.."
NAME=compression
. tests/bench/subs-lib.sh
CONNS_LIST=${BENCH_COMPRESSION_CONNS:-1000 10000}
DPS=${BENCH_COMPRESSION_DELIVERIES:-200000}
SECS=${BENCH_COMPRESSION_SECONDS:-10}

for n in $CONNS_LIST; do
    rate=$((DPS / n))
    [ "$rate" -ge 1 ] || rate=1
    for comp in false true; do
        case="$n connections, compression $comp"
        start_omsd "$NAME" "  compression: $comp"
        rm -f "$T/c$n$comp.ready"
        node tests/bench/ws-load.js "$URL" "$n" on "$T/c$n$comp.ready" >"$T/c$n$comp.json" 2>"$T/c$n$comp.err" &
        LOAD_PID=$!
        for _ in $(seq 1200); do [ -f "$T/c$n$comp.ready" ] && break; sleep 0.1; done
        [ -f "$T/c$n$comp.ready" ] || { say "FAILED: clients not ready: $(cat "$T/c$n$comp.err")"; exit 1; }
        f0=$(metric oms_ws_sent_frames_total) b0=$(metric oms_ws_sent_bytes_total)
        z0=$(metric 'oms_ws_sent_frames_total{compressed="true"}')
        c0=$(cpu_ticks)
        t0=$(date +%s%N)
        OMS_CONFIG=$T/$NAME.yaml timeout 120 $BIN/oms-producer simulate --seed 7 --users 50 --products 20 \
            --rate "$rate" --duration "$SECS" --json-summary >"$T/c$n$comp.summary" 2>"$T/c$n$comp.perr"
        settle oms_ws_sent_frames_total 120
        c1=$(cpu_ticks)
        t1=$(date +%s%N)
        f1=$(metric oms_ws_sent_frames_total) b1=$(metric oms_ws_sent_bytes_total)
        z1=$(metric 'oms_ws_sent_frames_total{compressed="true"}')
        kill -INT "$LOAD_PID"
        wait "$LOAD_PID" || true
        LOAD_PID=""
        stop_omsd
        py "
import json
s = json.load(open('$T/c$n$comp.summary'))
cl = json.loads(open('$T/c$n$comp.json').read().strip().splitlines()[-1])
f = $f1 - $f0; b = $b1 - $b0; z = $z1 - $z0; cpu = ($c1 - $c0) / $TICK; secs = ($t1 - $t0) / 1e9
print('$NAME: %-34s %5d events at %d/s -> %8d frames (%3.0f%% compressed, %d of %d clients negotiated): %6.1f bytes per frame on the wire; omsd CPU %5.2f s = %5.2f us per delivery'
      % ('$case', s['delivered'], $rate, f, 100 * z / max(f, 1), cl['negotiated'], $n, b / max(f, 1), cpu, 1e6 * cpu / max(f, 1)))
print(json.dumps({'bench': 'compression', 'connections': $n, 'compression': '$comp' == 'true', 'events': s['delivered'],
                  'frames': f, 'compressed_frames': z, 'bytes_per_frame': round(b / max(f, 1), 1),
                  'negotiated': cl['negotiated'],
                  'cpu_s': round(cpu, 3), 'us_per_delivery': round(1e6 * cpu / max(f, 1), 3)}), file=open('$T/results.jsonl', 'a'))"
    done
done
