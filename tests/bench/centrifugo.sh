#!/usr/bin/env bash
# Centrifugo, the peer omsd is measured against (issue #16), kept under the
# state folder like the Kafka jars:
#   tests/bench/centrifugo.sh install
#       builds Centrifugo v$CENTRIFUGO_VERSION (default 6.9.1) with `go install`
#       into $OMS_STATE/bin when it is not there yet (the Go module proxy
#       serves it; a few minutes on 2 cores), prints the binary's path
#   tests/bench/centrifugo.sh config PORT BROKERS TOPIC GROUP [COMPRESSION]
#       prints a config (JSON) for 127.0.0.1:PORT: client tokens are HS256
#       with $JWT_SECRET, clients may subscribe to any channel without a
#       namespace, and a Kafka consumer in publication data mode publishes
#       each JSON record of TOPIC to the channels its `centrifugo-channels`
#       header names (consumer group GROUP). COMPRESSION `on` (default `off`)
#       sets websocket.compression: Centrifugo (gorilla/websocket) then
#       negotiates permessage-deflate with clients that offer it and deflates
#       every message to each of them (its writes are per connection) at
#       websocket.compression_level $CENTRIFUGO_COMPRESSION_LEVEL (1..9,
#       default 1, Centrifugo's) when the message is at least
#       websocket.compression_min_size $CENTRIFUGO_COMPRESSION_MIN_SIZE bytes
#       (default 0, Centrifugo's: every message)
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${CENTRIFUGO_VERSION:-6.9.1}
STATE=${OMS_STATE:-$PWD/.oms}
BIN=$STATE/bin/centrifugo

install() {
    # the version the binary was built from (go install leaves no -ldflags
    # version in it, so `centrifugo version` says v0.0.0): a stamp beside it
    if [ -x "$BIN" ] && [ "$(cat "$BIN.version" 2>/dev/null)" = "$VERSION" ]; then
        echo "$BIN"
        return 0
    fi
    local go
    go=$(command -v go || true)
    [ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
    [ -n "$go" ] || { echo "centrifugo: no Go toolchain (go) to build Centrifugo with" >&2; return 2; }
    mkdir -p "$STATE/bin"
    echo "centrifugo: building v$VERSION with $("$go" version | cut -d' ' -f3) (go install, a few minutes)" >&2
    GOBIN=$STATE/bin GOFLAGS=-mod=mod "$go" install "github.com/centrifugal/centrifugo/v6@v$VERSION" >&2
    echo "$VERSION" >"$BIN.version"
    echo "$BIN"
}

config() {
    local port=$1 brokers=$2 topic=$3 group=$4 comp=${5:-off}
    local level=${CENTRIFUGO_COMPRESSION_LEVEL:-1} min=${CENTRIFUGO_COMPRESSION_MIN_SIZE:-0}
    [ -n "${JWT_SECRET:-}" ] || { echo "centrifugo: JWT_SECRET is not set" >&2; return 2; }
    case $comp in
    on | off) ;;
    *) echo "centrifugo: COMPRESSION must be on or off, not '$comp'" >&2; return 2 ;;
    esac
    [[ $level =~ ^[1-9]$ ]] || { echo "centrifugo: CENTRIFUGO_COMPRESSION_LEVEL must be 1..9, not '$level'" >&2; return 2; }
    [[ $min =~ ^[0-9]{1,9}$ ]] || { echo "centrifugo: CENTRIFUGO_COMPRESSION_MIN_SIZE must be a byte count, not '$min'" >&2; return 2; }
    python3 - "$port" "$brokers" "$topic" "$group" "$comp" "$level" "$min" <<'PY'
import json, os, sys
port, brokers, topic, group, comp, level, min_size = sys.argv[1:]
print(json.dumps({
    "websocket": {"compression": comp == "on", "compression_level": int(level),
                  "compression_min_size": int(min_size)},
    "http_server": {"address": "127.0.0.1", "port": int(port)},
    "log": {"level": "warn"},
    "usage_stats": {"disabled": True},
    "client": {"token": {"hmac_secret_key": os.environ["JWT_SECRET"]}},
    "channel": {"without_namespace": {"allow_subscribe_for_client": True}},
    "consumers": [{
        "name": "oms", "enabled": True, "type": "kafka",
        "kafka": {
            "brokers": brokers.split(","), "topics": [topic], "consumer_group": group,
            "publication_data_mode": {"enabled": True, "channels_header": "centrifugo-channels"},
        },
    }],
}, indent=2))
PY
}

case ${1:-} in
install) install ;;
config) shift; [ $# -eq 4 ] || [ $# -eq 5 ] || { echo "usage: $0 config PORT BROKERS TOPIC GROUP [on|off]" >&2; exit 2; }; config "$@" ;;
*) echo "usage: $0 install | config PORT BROKERS TOPIC GROUP [on|off]" >&2; exit 2 ;;
esac
