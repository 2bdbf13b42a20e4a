#!/usr/bin/env bash
# The web console end to end: omsd (ASan build, --dev) serves web/, headless
# Chromium (Debian's package) driven by playwright-core loads it, connects,
# subscribes, sees events, broadcasts, survives an omsd restart. The node
# test starts and restarts omsd itself. Screenshots: $T/console-*.png.
. "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ] || [ ! -d tests/node/node_modules/playwright-core ]; then
    not_ok "chromium and playwright-core are installed (run 'make deps')"
    exit 0
fi

check "topics created" make_topics console
PORT=$(free_port)
export JWT_SECRET="test-secret-test-secret-test-secret-0123"

# the console from a copy of web/, with decoys for the traversal test: a
# secret next to the root, a symlink to it and a hidden file inside
cp -r web "$T/web"
echo "SECRET outside the web root" >"$T/secret.txt"
ln -s "$T/secret.txt" "$T/web/escape.txt"
echo "SECRET hidden file" >"$T/web/.hidden"

cat >>"$T/omsd.yaml" <<YAML
server:
  port: $PORT
  host: 127.0.0.1
  web_root: $T/web
  compression: true
log:
  format: json
projections:
  enabled: false
YAML
expect_exit 0 "omsd -t accepts the test configuration" "$ABIN/omsd" -t --config "$T/omsd.yaml"

(cd tests/node && OMS_PORT=$PORT OMSD_BIN=$ABIN/omsd OMSD_CONFIG=$T/omsd.yaml OUT=$T BIN=$BIN \
    CHROMIUM=$CHROMIUM TOPIC_ORDERS=$TOPIC_ORDERS TOPIC_NOTIFICATIONS=$TOPIC_NOTIFICATIONS \
    timeout 300 node --test --test-reporter=tap console.test.js) >"$T/node.tap" 2>&1
rc=$?
grep -E '^(not )?ok ' "$T/node.tap"
grep -B2 -A30 '^not ok' "$T/node.tap" | sed 's/^/# /' | head -80
[ "$rc" -eq 124 ] && not_ok "the console test finished within 300 s"

# whatever happened, no omsd of this test is left running
if [ -f "$T/omsd.pids" ]; then
    while read -r p; do
        if kill -0 "$p" 2>/dev/null; then
            not_ok "omsd $p was stopped by the test"
            kill -9 "$p" 2>/dev/null
        fi
    done <"$T/omsd.pids"
fi
check "omsd was started and restarted" test "$(wc -l <"$T/omsd.pids" 2>/dev/null || echo 0)" -ge 2
check "a screenshot of the connected page was saved" test -s "$T/console-customer.png"
if cat "$T"/omsd-*.log 2>/dev/null | grep -qE "AddressSanitizer|LeakSanitizer|runtime error"; then
    not_ok "omsd ran clean under ASan/UBSan"
    grep -h -A20 -E "AddressSanitizer|LeakSanitizer|runtime error" "$T"/omsd-*.log | head -40 | sed 's/^/# /'
else
    ok "omsd ran clean under ASan/UBSan"
fi
