#!/usr/bin/env bash
# Alerts (issue #18, DESIGN §3.8): orders placed through `oms-producer serve`
# reach a real SMTP server (Mailpit: STARTTLS required, AUTH, its HTTP API
# reads the mail back) and a real Sentry-compatible server (Bugsink: gunicorn,
# its SQLite database shows what arrived), exactly once: across a crash
# between the send and the record, an SMTP server stopped for 20 s, and a
# burst of 500 orders in 10 s folded into digests. omsd's own errors (a DLQ
# record, a Postgres outage, a crash) arrive in Bugsink; a wrong Sentry key is
# reported clearly; a bad configuration exits 2. Everything on loopback; the
# shared Postgres is cut off through a proxy of the test's own, never stopped.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/proj_lib.sh"
HELPER="python3 $ROOT/tests/integration/alerts_helper.py"
MAILPIT=$OMS_STATE/bin/mailpit
VENV=$OMS_STATE/venv
PIDS=()
stop_pid() { [ -n "${1:-}" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
cleanup() {
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    [ -n "${SPID:-}" ] && stop_pid "$SPID"
    [ -n "${MPID:-}" ] && stop_pid "$MPID"
    [ -n "${GPID:-}" ] && stop_pid "$GPID"
    [ -n "${XPID:-}" ] && stop_pid "$XPID"
    proj_cleanup 2>/dev/null
    drop_db
    finish
}
proj_cleanup() { [ -n "${OMSD_PID:-}" ] && stop_omsd "$OMSD_PID" >/dev/null 2>&1; return 0; }
trap cleanup EXIT

# wait_for SECONDS COMMAND...: until the command succeeds
wait_for() {
    local t=$1
    shift
    for _ in $(seq 1 $((t * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# ---- configuration errors: exit 2, a clear message, no secret ------------------------------
export JWT_SECRET="test-secret-test-secret-test-secret-0123"
SENTRY_DSN="http://abc@127.0.0.1" expect_exit 2 "a DSN without a project id is refused (omsd -t)" \
    "$BIN/omsd" -t
check "... naming SENTRY_DSN" grep -q "SENTRY_DSN.*project id" "$T/last.err"
SENTRY_DSN="http://topsecretkey@127.0.0.1/x1" expect_exit 2 "a non-numeric project id is refused" "$BIN/omsd" -t
check "... without the key in the message" bash -c "! grep -q topsecretkey '$T/last.err'"
EMAIL_NOTIFICATIONS_ENABLED=true EMAIL_HOST=smtp.example.com expect_exit 2 \
    "e-mail on without recipients is refused" "$BIN/omsd" -t
check "... naming ORDER_NOTIFICATION_RECIPIENTS" grep -q ORDER_NOTIFICATION_RECIPIENTS "$T/last.err"
EMAIL_NOTIFICATIONS_ENABLED=true EMAIL_HOST=smtp.example.com ORDER_NOTIFICATION_RECIPIENTS="a@x.org,bad address" \
    EMAIL_FROM=oms@x.org expect_exit 2 "a bad recipient address is refused" "$BIN/omsd" -t
EMAIL_NOTIFICATIONS_ENABLED=true EMAIL_HOST=smtp.example.com ORDER_NOTIFICATION_RECIPIENTS=a@x.org \
    EMAIL_USER=me@x.org expect_exit 2 "EMAIL_USER without a password is refused" "$BIN/omsd" -t
EMAIL_TLS=maybe expect_exit 2 "EMAIL_TLS=maybe is refused" "$BIN/omsd" -t
printf 'alerts:\n  rules: "type=OrderCreated; type=Nope"\n' >"$T/badrules.yaml"
expect_exit 2 "an unknown event type in alerts.rules is refused" "$BIN/omsd" -t -c "$T/badrules.yaml"
check "... naming the rule" grep -q "rule 2: unknown event type 'Nope'" "$T/last.err"
EMAIL_NOTIFICATIONS_ENABLED=true EMAIL_HOST=smtp.example.com ORDER_NOTIFICATION_RECIPIENTS=a@x.org \
    EMAIL_USER=me@x.org EMAIL_PASSWORD=hunter2-secret SENTRY_DSN=http://k3y@127.0.0.1:1/7 \
    expect_exit 0 "a full alerts configuration is valid" "$BIN/omsd" -t
expect_exit 0 "omsd --help" "$BIN/omsd" --help
check "... names the alert variables" bash -c "for v in SENTRY_DSN EMAIL_NOTIFICATIONS_ENABLED \
    EMAIL_HOST EMAIL_PORT EMAIL_USER EMAIL_PASSWORD EMAIL_PASSWORD_FILE EMAIL_TLS EMAIL_FROM \
    ORDER_NOTIFICATION_RECIPIENTS; do grep -q \$v '$T/last.out' || exit 1; done"
expect_exit 2 "omsctl alerts without a subcommand is a usage error" "$BIN/omsctl" alerts
expect_exit 2 "omsctl alerts test without a sink says so" "$BIN/omsctl" alerts test

# ---- the servers -----------------------------------------------------------------------------
check "mailpit is installed (scripts/deps.sh)" test -x "$MAILPIT"
check "bugsink is installed (scripts/deps.sh)" test -x "$VENV/bin/bugsink-manage"

# a CA and a certificate for 127.0.0.1: STARTTLS verified against the CA
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=oms test CA" \
    -keyout "$T/ca.key" -out "$T/ca.crt" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$T/smtp.key" \
    -out "$T/smtp.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/san.ext"
check "a test CA signs the SMTP server's certificate" openssl x509 -req -in "$T/smtp.csr" \
    -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 -extfile "$T/san.ext" \
    -out "$T/smtp.crt"
SMTP_PASSWORD="mail-pass-$RANDOM$RANDOM"
printf 'alerts@oms.test:%s\n' "$(openssl passwd -apr1 "$SMTP_PASSWORD")" >"$T/smtp-auth"
printf '%s\n' "$SMTP_PASSWORD" >"$T/smtp-password"
chmod 600 "$T/smtp-password"
SMTP_PORT=$(free_port)
MAIL_HTTP=$(free_port)
MAILAPI=http://127.0.0.1:$MAIL_HTTP
# --ignore-duplicate-ids: a mail system that drops a repeated Message-ID
# (as Gmail does); what omsd sends twice after a crash shows in its log
start_mailpit() {
    "$MAILPIT" -d "$T/mailpit.db" -s "127.0.0.1:$SMTP_PORT" -l "127.0.0.1:$MAIL_HTTP" \
        --smtp-tls-cert "$T/smtp.crt" --smtp-tls-key "$T/smtp.key" --smtp-require-starttls \
        --smtp-auth-file "$T/smtp-auth" --ignore-duplicate-ids -m 100000 \
        --disable-version-check -q >>"$T/mailpit.log" 2>&1 &
    MPID=$!
    wait_for 20 curl -sf "$MAILAPI/api/v1/messages"
}
check "mailpit starts (SMTP $SMTP_PORT with STARTTLS and AUTH, API $MAIL_HTTP)" start_mailpit

BS=$T/bugsink
BS_PORT=$(free_port)
mkdir -p "$BS/data"
export PYTHONPATH=$BS DJANGO_SETTINGS_MODULE=bugsink_conf
"$VENV/bin/bugsink-create-conf" --template=local --host 127.0.0.1 --port "$BS_PORT" \
    -o "$BS/bugsink_conf.py" >"$T/bugsink-conf.log" 2>&1
cat >>"$BS/bugsink_conf.py" <<PY
DATABASES["default"]["NAME"] = "$BS/data/db.sqlite3"
DATABASES["snappea"]["NAME"] = "$BS/data/snappea.sqlite3"
BUGSINK["INGEST_STORE_BASE_DIR"] = "$BS/data/ingestion"
PY
check "bugsink: configuration and migrations" bash -c "('$VENV/bin/bugsink-manage' migrate -v0 && \
    '$VENV/bin/bugsink-manage' migrate snappea --database=snappea -v0) >'$T/bugsink-migrate.log' 2>&1"
"$VENV/bin/bugsink-manage" shell -c "
from projects.models import Project
from teams.models import Team
t = Team.objects.first() or Team.objects.create(name='oms')
print(Project.objects.create(name='oms', team=t).dsn)" 2>/dev/null | tail -n 1 >"$T/dsn"
DSN=$(cat "$T/dsn")
check "bugsink: a project and its DSN ($DSN)" grep -q "^http://[0-9a-f]*@127.0.0.1:$BS_PORT/[0-9]*$" "$T/dsn"
BSDB=$BS/data/db.sqlite3
"$VENV/bin/gunicorn" --bind "127.0.0.1:$BS_PORT" --workers 2 --chdir "$BS" \
    bugsink.wsgi:application >"$T/gunicorn.log" 2>&1 &
GPID=$!
check "bugsink (gunicorn) answers" wait_for 30 curl -s -o /dev/null "http://127.0.0.1:$BS_PORT/"

# ---- omsd with alerts ---------------------------------------------------------------------------
check "topics created" proj_config alerts
check "test database created" new_db
PGPROXY=$(free_port)
$HELPER proxy "$PGPROXY" "$DATABASE_HOST" "$DATABASE_PORT" >"$T/proxy.log" 2>&1 &
XPID=$!
PGREAL=$DATABASE_PORT
# omsd (and sql) reach Postgres through the proxy: stopping it is the outage
export DATABASE_HOST=127.0.0.1 DATABASE_PORT=$PGPROXY
check "the postgres proxy answers" wait_for 10 psql -X -q -At -h 127.0.0.1 -p "$PGPROXY" -U "$DATABASE_USER" -d "$DB" -c "SELECT 1"
# a group of this run's own: the default (omsd-alerts) would put every run on
# the shared Kafka in one group, and each run's instances starting and
# stopping would rebalance the others' consumers at moments no test chose
cat >>"$T/omsd.yaml" <<YAML
alerts:
  group: $GROUP-alerts
  start: beginning
  console_url: http://console.test/oms
  max_per_minute: 1000
  digest_interval_s: 4
  retry_max_s: 4
  crash_file: $T/omsd.crash
  email:
    from_name: "OMS Alertes – Café"
YAML
export SENTRY_DSN=$DSN EMAIL_NOTIFICATIONS_ENABLED=true EMAIL_HOST=127.0.0.1 EMAIL_PORT=$SMTP_PORT \
    EMAIL_USER=alerts@oms.test EMAIL_PASSWORD_FILE=$T/smtp-password EMAIL_TLS=starttls \
    EMAIL_FROM=alerts@oms.test ORDER_NOTIFICATION_RECIPIENTS="ops@oms.test, Boss@oms.test"
cat >>"$T/omsd.yaml" <<YAML
    ca_file: $T/ca.crt
YAML
RCPT="ops@oms.test,Boss@oms.test"

check "omsctl alerts test: both sinks answer" "$BIN/omsctl" alerts test

# TLS modes: implicit TLS (smtps) works; a server without STARTTLS is never
# used in plain text unless EMAIL_TLS=none says so
TLS_PORT=$(free_port)
PLAIN_PORT=$(free_port)
PLAIN_HTTP=$(free_port)
TLS_HTTP=$(free_port)
"$MAILPIT" -d "$T/mailpit-tls.db" -s "127.0.0.1:$TLS_PORT" -l "127.0.0.1:$TLS_HTTP" \
    --ui-tls-cert "$T/smtp.crt" --ui-tls-key "$T/smtp.key" \
    --smtp-tls-cert "$T/smtp.crt" --smtp-tls-key "$T/smtp.key" --smtp-require-tls \
    --smtp-auth-file "$T/smtp-auth" --disable-version-check -q >>"$T/mailpit-tls.log" 2>&1 &
PIDS+=($!)
"$MAILPIT" -d "$T/mailpit-plain.db" -s "127.0.0.1:$PLAIN_PORT" -l "127.0.0.1:$PLAIN_HTTP" \
    --smtp-auth-accept-any --smtp-auth-allow-insecure --disable-version-check -q \
    >>"$T/mailpit-plain.log" 2>&1 &
PIDS+=($!)
wait_for 20 bash -c "ss -Hltn 'sport = :$TLS_PORT' | grep -q . && ss -Hltn 'sport = :$TLS_HTTP' | grep -q . && ss -Hltn 'sport = :$PLAIN_PORT' | grep -q ."
SENTRY_DSN= EMAIL_PORT=$TLS_PORT EMAIL_TLS=tls expect_exit 0 "EMAIL_TLS=tls (smtps://) sends" "$BIN/omsctl" alerts test
SENTRY_DSN= EMAIL_PORT=$PLAIN_PORT EMAIL_TLS=starttls expect_exit 1 \
    "a server without STARTTLS: the send fails, nothing goes in plain text" "$BIN/omsctl" alerts test
check "... saying so" grep -q "does not offer STARTTLS" "$T/last.out"
plain_count() { curl -s "http://127.0.0.1:$PLAIN_HTTP/api/v1/messages" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
check "... and that server received nothing" [ "$(plain_count)" = 0 ]
SENTRY_DSN= EMAIL_PORT=$PLAIN_PORT EMAIL_TLS=none expect_exit 0 "EMAIL_TLS=none sends in plain text when asked" \
    "$BIN/omsctl" alerts test
check "... and it arrived" [ "$(plain_count)" = 1 ]
# Sentry over https: the certificate is verified (an HTTPS server signed by
# the test CA: refused with the system's CAs, trusted with alerts.sentry.ca_file)
EMAIL_NOTIFICATIONS_ENABLED=false SENTRY_DSN=https://k3y@127.0.0.1:$TLS_HTTP/1 expect_exit 1 \
    "sentry over https with an untrusted certificate fails" "$BIN/omsctl" alerts test
check "... saying why" grep -qi "certificate" "$T/last.out"
cp "$T/omsd.yaml" "$T/sentry-ca.yaml"
printf '  sentry:\n    ca_file: %s\n' "$T/ca.crt" >>"$T/sentry-ca.yaml"
EMAIL_NOTIFICATIONS_ENABLED=false SENTRY_DSN=https://k3y@127.0.0.1:$TLS_HTTP/1 "$BIN/omsctl" alerts test \
    --config "$T/sentry-ca.yaml" >"$T/last.out" 2>&1
check "... and gets through TLS with alerts.sentry.ca_file (the server answers)" \
    bash -c "grep -q '^sentry:' '$T/last.out' && ! grep -qi 'certificate\|ssl' '$T/last.out'"
SENTRY_DSN= EMAIL_PORT=$SMTP_PORT EMAIL_PASSWORD_FILE= EMAIL_PASSWORD=wrong-password expect_exit 1 \
    "a refused login fails" "$BIN/omsctl" alerts test
check "... naming EMAIL_USER and EMAIL_PASSWORD, not the password" bash -c "grep -q 'refused the login' '$T/last.out' && ! grep -q wrong-password '$T/last.out'"
check "omsctl alerts status shows both sinks, no secret" bash -c "'$BIN/omsctl' alerts status \
    >'$T/status.out' 2>&1; grep -q 'sentry: *http://127.0.0.1:$BS_PORT project' '$T/status.out' && \
    grep -q 'email: *127.0.0.1:$SMTP_PORT (starttls, auth)' '$T/status.out' && \
    ! grep -q '$SMTP_PASSWORD' '$T/status.out' && ! grep -q \"\$(cut -d/ -f3 '$T/dsn' | cut -d@ -f1)\" '$T/status.out'"
wait_for 10 bash -c "[ \"\$($HELPER count $MAILAPI $BSDB mails)\" = 1 ]"
check "... the test mail arrived" bash -c "[ \"\$($HELPER count $MAILAPI $BSDB mails)\" = 1 ]"
curl -s -X DELETE "$MAILAPI/api/v1/messages" >/dev/null

check "omsd starts with alerts on" start_omsd omsd
STAFF=$("$BIN/omsctl" token --sub 200 --role staff)
CUST=$("$BIN/omsctl" token --sub 7 --role customer)
SPORT=$(free_port)
ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 "$ABIN/oms-producer" serve --config "$T/omsd.yaml" \
    --port "$SPORT" --host 127.0.0.1 >>"$T/serve.log" 2>&1 &
SPID=$!
check "oms-producer serve starts" wait_for 30 curl -sf "http://127.0.0.1:$SPORT/health"
alerts_assigned() {
    health_get omsd staff | python3 -c 'import json,sys; a=json.load(sys.stdin)["dependencies"]["alerts"]; sys.exit(0 if a["assignedPartitions"] > 0 else 1)'
}
check "the alerting consumer joined its group" wait_for 60 alerts_assigned

# ---- 1. orders placed through serve reach both, with the right content ----------------------------
check "3 orders placed" $HELPER place "$SPORT" "$STAFF" "$CUST" 3 1 "$T/orders1.jsonl" 11
wait_for 60 bash -c "[ \"\$($HELPER count $MAILAPI $BSDB mails)\" -ge 3 ] && [ \"\$($HELPER count $MAILAPI $BSDB events)\" -ge 4 ]"
check "each order: one mail to every recipient and one Sentry event, right content" \
    $HELPER check-content "$T/orders1.jsonl" "$MAILAPI" "$BSDB" "$RCPT"
health_get omsd staff >"$T/health.json"
check "health shows each sink up (staff)" python3 -c "
import json; a = json.load(open('$T/health.json'))['dependencies']['alerts']
assert a['sinks']['sentry']['status'] == 'up' and a['sinks']['email']['status'] == 'up', a
assert a['required'] is False"
check "... and no secret" bash -c "! grep -q '$SMTP_PASSWORD' '$T/health.json' && ! grep -qF '$DSN' '$T/health.json'"
health_get omsd >"$T/health-public.json"
check "the public health shows no sink details" health_public "$T/health-public.json"
curl -s "http://127.0.0.1:$PORT_omsd/metrics" >"$T/metrics1.txt"
check "metrics count the notices sent" grep -q 'oms_alerts_sent_total{sink="email"} 3' "$T/metrics1.txt"

# ---- 2. a crash between the send and the record: none lost, none repeated ---------------------------
stop_omsd "$OMSD_PID"
OMS_ALERTS_FAULT=exit-after-send:2 start_omsd omsd
check "omsd restarted with OMS_ALERTS_FAULT=exit-after-send:2" test -n "$OMSD_PID"
CRASHED_PID=$OMSD_PID
check "3 more orders placed" $HELPER place "$SPORT" "$STAFF" "$CUST" 3 1 "$T/orders2.jsonl" 12
# dead (a zombie until waited for: kill -0 would still succeed) within 60 s
for _ in $(seq 1 300); do
    [ -e "/proc/$CRASHED_PID" ] && ! grep -q '^State:.*Z' "/proc/$CRASHED_PID/status" 2>/dev/null || break
    sleep 0.2
done
wait "$CRASHED_PID" 2>/dev/null
check "omsd was killed with SIGKILL right after the 2nd send, before recording it" [ $? -eq 137 ]
OMSD_PID=
check "omsd starts again" start_omsd omsd
wait_for 60 bash -c "grep -c 'alerts: notice sent' '$T/omsd.log' | grep -qx 6"
check "the notice sent but not recorded was sent again (same ids) after the restart" \
    bash -c "[ \$(grep -c 'alerts: notice sent' '$T/omsd.log') -eq 6 ]"
cat "$T/orders1.jsonl" "$T/orders2.jsonl" >"$T/orders12.jsonl"
check "every order once in Mailpit and in Bugsink: none lost, none repeated" \
    $HELPER check-once "$T/orders12.jsonl" "$MAILAPI" "$BSDB"
check "postgres records 6 notices sent" [ "$(sql "SELECT count(*) FROM alert_notices WHERE sent_at IS NOT NULL")" = 6 ]

# ---- 3. the SMTP server stopped for 20 s: the notices arrive after it is back ----------------------
stop_pid "$MPID"
MPID=
check "2 orders placed while the SMTP server is down" $HELPER place "$SPORT" "$STAFF" "$CUST" 2 1 "$T/orders3.jsonl" 13
sleep 20
health_get omsd staff >"$T/health-smtp-down.json"
check "health shows the e-mail sink down with the reason, notices held" python3 -c "
import json; a = json.load(open('$T/health-smtp-down.json'))['dependencies']['alerts']
e = a['sinks']['email']
assert e['status'] == 'down' and 'cannot send' in e['error'] and a['holding'], a"
curl -s "http://127.0.0.1:$PORT_omsd/metrics" >"$T/metrics-down.txt"
check "metrics count the retries" python3 -c "
import re; t = open('$T/metrics-down.txt').read()
assert int(re.search(r'oms_alerts_retried_total\{sink=\"email\"\} (\d+)', t).group(1)) >= 2
assert int(re.search(r'oms_alerts_failed_total\{sink=\"email\"\} (\d+)', t).group(1)) >= 2"
check "mailpit back" start_mailpit
cat "$T/orders12.jsonl" "$T/orders3.jsonl" >"$T/orders123.jsonl"
wait_for 60 $HELPER check-once "$T/orders123.jsonl" "$MAILAPI" "$BSDB"
check "the held notices arrived once the SMTP server was back, each once" \
    $HELPER check-once "$T/orders123.jsonl" "$MAILAPI" "$BSDB"

# ---- 3b. Sentry stopped for 10 s: held as well, then delivered once -------------------------------
start_bugsink() {
    "$VENV/bin/gunicorn" --bind "127.0.0.1:$BS_PORT" --workers 2 --chdir "$BS" \
        bugsink.wsgi:application >>"$T/gunicorn.log" 2>&1 &
    GPID=$!
    wait_for 30 curl -s -o /dev/null "http://127.0.0.1:$BS_PORT/"
}
stop_pid "$GPID"
GPID=
check "2 orders placed while Sentry is down" $HELPER place "$SPORT" "$STAFF" "$CUST" 2 1 "$T/orders3b.jsonl" 16
sleep 10
sentry_down() { health_get omsd staff | python3 -c 'import json,sys; a=json.load(sys.stdin)["dependencies"]["alerts"]; sys.exit(0 if a["sinks"]["sentry"]["status"] == "down" and a["holding"] else 1)'; }
check "health shows the Sentry sink down, notices held" sentry_down
check "bugsink back" start_bugsink
cat "$T/orders123.jsonl" "$T/orders3b.jsonl" >"$T/orders1233b.jsonl"
wait_for 60 $HELPER check-once "$T/orders1233b.jsonl" "$MAILAPI" "$BSDB"
check "the held notices reached Sentry once it was back, each once in both sinks" \
    $HELPER check-once "$T/orders1233b.jsonl" "$MAILAPI" "$BSDB"

# ---- 3c. two instances share the group: each order once -----------------------------------------
check "a second omsd joins the alerting group" start_omsd omsd2
OMSD2_PID=$OMSD_PID
OMSD_PID=$PID_omsd
two_assigned() {
    local a b
    a=$(health_get omsd staff | python3 -c 'import json,sys; print(json.load(sys.stdin)["dependencies"]["alerts"]["assignedPartitions"])')
    b=$(health_get omsd2 staff | python3 -c 'import json,sys; print(json.load(sys.stdin)["dependencies"]["alerts"]["assignedPartitions"])')
    [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((a + b)) -eq 6 ]
}
check "the two instances split the 6 partitions" wait_for 60 two_assigned
check "20 orders placed" $HELPER place "$SPORT" "$STAFF" "$CUST" 20 2 "$T/orders3c.jsonl" 17
cat "$T/orders1233b.jsonl" "$T/orders3c.jsonl" >"$T/orders-all.jsonl"
wait_for 60 $HELPER check-once "$T/orders-all.jsonl" "$MAILAPI" "$BSDB"
check "each of them once in both sinks" $HELPER check-once "$T/orders-all.jsonl" "$MAILAPI" "$BSDB"
check "... sent by both instances" bash -c "grep -q 'alerts: notice sent' '$T/omsd2.log'"
check "the second omsd stops cleanly" stop_omsd "$OMSD2_PID"

# ---- 4. 500 orders in 10 s: folded into digests that account for all of them -------------------------
stop_omsd "$OMSD_PID"
sed -i 's/^  max_per_minute: 1000$/  max_per_minute: 20/' "$T/omsd.yaml"
check "omsd restarted with max_per_minute 20" start_omsd omsd
sql "UPDATE alert_notices SET decided_at = decided_at - interval '2 minutes'" >/dev/null
curl -s -X DELETE "$MAILAPI/api/v1/messages" >/dev/null
before=$($HELPER count "$MAILAPI" "$BSDB" events)
check "500 orders placed in 10 s" $HELPER place "$SPORT" "$STAFF" "$CUST" 500 10 "$T/orders4.jsonl" 14
wait_for 90 $HELPER check-digest "$T/orders4.jsonl" "$MAILAPI" "$BSDB"
check "singles and digests account for each of the 500 exactly once (mail and sentry)" \
    $HELPER check-digest "$T/orders4.jsonl" "$MAILAPI" "$BSDB"
check "postgres: 20 single, 480 folded, every folded one in a sent digest" [ "$(sql "
    SELECT count(*) FILTER (WHERE mode = 'single') || ' ' || count(*) FILTER (WHERE mode = 'folded'
    AND digest_id IN (SELECT digest_id FROM alert_digests WHERE sent_at IS NOT NULL))
    FROM alert_notices WHERE decided_at > now() - interval '90 seconds'")" = "20 480" ]
curl -s "http://127.0.0.1:$PORT_omsd/metrics" >"$T/metrics-burst.txt"
check "metrics count the folded notices" grep -q '^oms_alerts_folded_total 480$' "$T/metrics-burst.txt"

# ---- 4b. rules: a cancelled order and a product out of stock alert too ----------------------------
stop_omsd "$OMSD_PID"
sed -i -e 's/^  max_per_minute: 20$/  max_per_minute: 1000/' \
    -e 's/^  start: beginning$/  start: beginning\n  rules: "type=OrderCreated; type=OrderStatusChanged status=cancelled; type=InventoryChanged status=out_of_stock"/' \
    "$T/omsd.yaml"
check "omsd restarted with rules for cancellations and stock-outs" start_omsd omsd
check "the alerting group now reads the inventory topic too" wait_for 60 bash -c "health_get() { curl -s -H 'Authorization: Bearer $STAFF' http://127.0.0.1:$PORT_omsd/websocket/health; }; \
    [ \"\$(health_get | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"dependencies\"][\"alerts\"][\"assignedPartitions\"])')\" = 12 ]"
check "an order cancelled" $HELPER cancel "$SPORT" "$STAFF" "$T/orders4.jsonl"
CANCELLED=$(python3 -c "import json; print(json.loads(open('$T/orders4.jsonl').readline())['aliasId'])")
check "a product sold out" bash -c "curl -sf -X POST -H 'Authorization: Bearer $STAFF' -H 'Content-Type: application/json' \
    --data '{\"quantity\": 1, \"productName\": \"Last one\"}' http://127.0.0.1:$SPORT/inventory/99/restock >/dev/null && \
    curl -sf -X POST -H 'Authorization: Bearer $CUST' -H 'Content-Type: application/json' \
    --data '{\"addressId\": 1, \"items\": [{\"productId\": 99, \"quantity\": 1, \"price\": 9.5}]}' \
    http://127.0.0.1:$SPORT/order/orders >/dev/null"
wait_for 30 $HELPER has-event "$BSDB" "Inventory alert triggered for product 99"
check "Sentry: the cancellation" $HELPER has-event "$BSDB" "Order status alert triggered for order $CANCELLED: cancelled"
check "Sentry: the stock-out" $HELPER has-event "$BSDB" "Inventory alert triggered for product 99 (Last one): out_of_stock"
check "mail: both" bash -c "curl -s '$MAILAPI/api/v1/messages' | grep -q 'Order $CANCELLED is cancelled' && \
    curl -s '$MAILAPI/api/v1/messages' | grep -q 'product 99 (Last one): out_of_stock'"
check "restocks and stock above zero raise nothing" [ "$($HELPER count-events "$BSDB" "Inventory alert")" = 1 ]

# ---- 5. omsd's own errors in Bugsink ----------------------------------------------------------------------
printf 'not an avro record' | kcat -P -b "$KAFKA_BROKERS" -t "$TOPIC_ORDERS" -p 0
wait_for 30 $HELPER has-event "$BSDB" "record copied to the dead-letter topic: $TOPIC_ORDERS:0:"
check "a DLQ record appears in Bugsink with its topic, partition, offset and reason" \
    bash -c "$HELPER has-event '$BSDB' 'record copied to the dead-letter topic: $TOPIC_ORDERS:0:' \
    'topic=$TOPIC_ORDERS' >'$T/dlq-event.json' && grep -q '\"partition\": \"0\"' '$T/dlq-event.json' \
    && grep -q '\"offset\"' '$T/dlq-event.json' && grep -q '\"reason\"' '$T/dlq-event.json'"
# a projection failure while Postgres answers (a table gone from under omsd)
sql "ALTER TABLE orders RENAME TO orders_away" >/dev/null
check "1 order placed while the orders table is away" $HELPER place "$SPORT" "$STAFF" "$CUST" 1 1 "$T/orders5.jsonl" 18
wait_for 30 $HELPER has-event "$BSDB" "projections cannot apply"
check "a projection failure appears in Bugsink" $HELPER has-event "$BSDB" "projections cannot apply"
sql "ALTER TABLE orders_away RENAME TO orders" >/dev/null
proj_up() { health_get omsd staff | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["dependencies"]["projections"]["status"] == "up" else 1)'; }
check "... once" [ "$($HELPER count-events "$BSDB" "projections cannot apply")" = 1 ]
check "the projections recover" wait_for 30 proj_up
stop_pid "$XPID"
XPID=
sleep 8
$HELPER proxy "$PGPROXY" 127.0.0.1 "$PGREAL" >>"$T/proxy.log" 2>&1 &
XPID=$!
wait_for 30 $HELPER has-event "$BSDB" "postgres unreachable"
check "a Postgres outage appears in Bugsink as omsd's own error" $HELPER has-event "$BSDB" "postgres unreachable"
check "... once for the whole outage, not per retry" [ "$($HELPER count-events "$BSDB" "postgres unreachable")" = 1 ]

# a crash: the signal handler records it, the next start reports it
kill -SEGV "$OMSD_PID"
wait "$OMSD_PID" 2>/dev/null
OMSD_PID=
check "a crash leaves a report file" test -s "$T/omsd.crash"
check "omsd starts after the crash" start_omsd omsd
wait_for 30 $HELPER has-event "$BSDB" "omsd crashed: SIGSEGV"
check "the crash appears in Bugsink at the next start" $HELPER has-event "$BSDB" "omsd crashed: SIGSEGV"
check "... and its file is gone" wait_for 10 test ! -e "$T/omsd.crash"
stop_omsd "$OMSD_PID"
OMSD_PID=

# ---- 6. a wrong Sentry key is reported clearly ----------------------------------------------------------
BADDSN=$(sed -E 's#//[0-9a-f]+@#//0123456789abcdef0123456789abcdef@#' "$T/dsn")
SENTRY_DSN=$BADDSN expect_exit 1 "omsctl alerts test with a wrong Sentry key fails" "$BIN/omsctl" alerts test
check "... saying the key was rejected, without the key" bash -c "grep -q 'sentry: FAILED: sentry at .* rejected the key (HTTP 403' '$T/last.out' && ! grep -q 0123456789abcdef0123456789abcdef '$T/last.out'"
SENTRY_DSN=$BADDSN start_omsd bad
check "omsd with a wrong Sentry key starts" test -n "$OMSD_PID"
check "1 order placed" $HELPER place "$SPORT" "$STAFF" "$CUST" 1 1 "$T/orders6.jsonl" 15
bad_reported() { health_get bad staff | grep -q 'rejected the key (HTTP 403'; }
check "its health says the key was rejected" wait_for 30 bad_reported
check "its log says so, without the key" bash -c "grep -q 'rejected the key' '$T/bad.log' && ! grep -q 0123456789abcdef0123456789abcdef '$T/bad.log'"
stop_omsd "$OMSD_PID"
OMSD_PID=

check "no SMTP password or DSN key in the logs, health, metrics or omsctl output" bash -c "! grep -l \
    -e '$SMTP_PASSWORD' -e \"\$(cut -d/ -f3 '$T/dsn' | cut -d@ -f1)\" '$T'/omsd.log '$T'/omsd2.log \
    '$T'/bad.log '$T'/health*.json '$T'/metrics*.txt '$T'/status.out '$T'/last.out '$T'/last.err"
stop_pid "$SPID"
SPID=
# every ASan omsd of the run: the second instance and any start moved aside too
check "omsd ran clean under ASan/UBSan (no leak at its exits)" asan_clean "$T/omsd.log" "$T/omsd2.log" \
    "$T/bad.log" $(ls "$T"/*-start[0-9].log 2>/dev/null)
check "oms-producer serve ran clean under ASan/UBSan" asan_clean "$T/serve.log"
