#!/usr/bin/env bash
# Connections to real clusters: secrets from files (JWT_SECRET_FILE,
# DATABASE_PASSWORD_FILE), DATABASE_URL, kafka.properties honoured by omsd,
# omsctl and oms-producer alike; known secret values never show in logs,
# --help, `omsd -t`, /websocket/stats, /websocket/health or /metrics; and a
# PostgreSQL that requires TLS (a throwaway cluster with its own CA) reached
# with sslmode=verify-full by omsctl and omsd.
. "$(dirname "$0")/lib.sh"

check "topics created" make_topics secrets
PORT=$(free_port)
tag=$RANDOM$RANDOM
S_JWT="jwt-TOPSECRET-$tag-0123456789abcdef0123"
S_PW="pw-TOPSECRET-$tag"
S_URL="url-TOPSECRET-$tag"
S_SASL="sasl-TOPSECRET-$tag"
printf '%s\n' "$S_JWT" >"$T/jwt-secret"
printf '%s\n' "$S_PW" >"$T/db-password"
chmod 600 "$T/jwt-secret" "$T/db-password"
unset JWT_SECRET DATABASE_PASSWORD
# the stack's own DATABASE_* stay set: DATABASE_URL must win over them
DB_URL="postgresql://postgres:$S_URL@127.0.0.1:$DATABASE_PORT/$DATABASE_NAME?application_name=omsd-url"

cat >>"$T/omsd.yaml" <<YAML
server:
  host: 127.0.0.1
  port: $PORT
log:
  format: json
  level: debug
YAML
# under make_topics' kafka: section
sed -i "1a\\  properties:\\n    client.id: \"oms-secrets-test\"\\n    sasl.password: \"$S_SASL\"" "$T/omsd.yaml"
leaks() { # FILE...: the secrets found in them, if any
    grep -l -e "$S_JWT" -e "$S_PW" -e "$S_URL" -e "$S_SASL" -e "TOPSECRET" "$@" 2>/dev/null
}

# ---- omsd ----------------------------------------------------------------------------------
export JWT_SECRET_FILE=$T/jwt-secret DATABASE_PASSWORD_FILE=$T/db-password DATABASE_URL=$DB_URL
"$BIN/omsd" -t --config "$T/omsd.yaml" >"$T/omsd-t.out" 2>&1
check "omsd -t accepts secret files, DATABASE_URL and kafka.properties" test $? -eq 0
"$BIN/omsd" --help >"$T/omsd-help.out" 2>&1
"$ABIN/omsd" --config "$T/omsd.yaml" >"$T/omsd.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/websocket/health" -o "$T/health.json" && break
    sleep 0.1
done
check "omsd is healthy: Postgres reached through DATABASE_URL" \
    python3 -c 'import json,sys; h=json.load(open(sys.argv[1])); sys.exit(h["dependencies"]["postgres"]["status"] != "up")' "$T/health.json"
n=$(psql -h 127.0.0.1 -p "$DATABASE_PORT" -U postgres -d "$DATABASE_NAME" -Atc \
    "select count(*) from pg_stat_activity where application_name = 'omsd-url'" 2>/dev/null)
check "the URL's parameters win (application_name=omsd-url seen by Postgres: ${n:-none})" test "${n:-0}" -ge 1

# omsctl reads the same secret file to mint its token
check "omsctl token signs with JWT_SECRET_FILE" bash -c "'$BIN/omsctl' token --sub 1 --role admin >'$T/token'"
TOKEN=$(cat "$T/token")
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/websocket/stats" -o "$T/stats.json"
check "omsd verifies that token: /websocket/stats answers" test -s "$T/stats.json"
check "health without a token: no brokers, error text or address" health_public "$T/health.json"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/websocket/health" \
    -o "$T/health-admin.json"
check "health with an admin token: the details" grep -q '"brokers"' "$T/health-admin.json"
curl -sf "http://127.0.0.1:$PORT/metrics" -o "$T/metrics.txt"
OMS_URL=http://127.0.0.1:$PORT "$BIN/omsctl" stats --json >"$T/omsctl-stats.out" 2>&1
check "omsctl stats works with the minted token" test -s "$T/omsctl-stats.out"
"$BIN/omsctl" --help >"$T/omsctl-help.out" 2>&1
"$BIN/oms-producer" --help >"$T/producer-help.out" 2>&1

# failures name the place, never the password
DATABASE_URL="postgresql://postgres:$S_URL@127.0.0.1:1/oms" "$BIN/omsctl" projections status \
    >"$T/pg-fail.out" 2>&1
check "omsctl fails on an unreachable DATABASE_URL" test $? -ne 0
check "... naming where: '127.0.0.1:1' database 'oms'" grep -q "'127.0.0.1:1' database 'oms'" "$T/pg-fail.out"
DATABASE_URL="postgresql://postgres:$S_URL@127.0.0.1:1/oms?sslmod=x" "$BIN/omsd" -t \
    --config "$T/omsd.yaml" >"$T/url-bad.out" 2>&1
check "omsd -t refuses a bad DATABASE_URL (exit 2)" test $? -eq 2
check "... with libpq's reason" grep -q 'database.url (or DATABASE_URL): invalid URI query parameter: "sslmod"' "$T/url-bad.out"
cp "$T/omsd.yaml" "$T/bad-param.yaml"
printf 'database:\n  params:\n    sslmod: require\n' >>"$T/bad-param.yaml"
expect_exit 2 "omsd -t refuses an unknown libpq parameter" "$BIN/omsd" -t --config "$T/bad-param.yaml"
check "... naming it" grep -q "database.params: 'sslmod' is not a libpq connection parameter" "$T/last.err"
JWT_SECRET_FILE=$T/missing expect_exit 2 "omsd -t refuses a missing JWT_SECRET_FILE" \
    "$BIN/omsd" -t --config "$T/omsd.yaml"
check "... naming it" grep -q "JWT_SECRET_FILE: cannot read '$T/missing': No such file or directory" "$T/last.err"
: >"$T/empty"
JWT_SECRET_FILE=$T/empty expect_exit 2 "omsd -t refuses an empty JWT_SECRET_FILE" \
    "$BIN/omsd" -t --config "$T/omsd.yaml"
JWT_SECRET=x expect_exit 2 "JWT_SECRET with JWT_SECRET_FILE is refused" "$BIN/omsd" -t --config "$T/omsd.yaml"
cp "$T/last.err" "$T/both.err"

kill -TERM "$pid"
wait "$pid"
check "omsd exit status 0 after SIGTERM" test $? -eq 0
found=$(leaks "$T"/omsd.log "$T"/omsd-t.out "$T"/omsd-help.out "$T"/stats.json "$T"/health.json \
    "$T"/health-admin.json \
    "$T"/metrics.txt "$T"/omsctl-stats.out "$T"/omsctl-help.out "$T"/producer-help.out \
    "$T"/pg-fail.out "$T"/url-bad.out "$T"/both.err)
check "no secret in logs, --help, omsd -t, stats, health, metrics or errors${found:+ (found in: $found)}" \
    test -z "$found"
check "the log is not empty (the check above saw something)" test "$(wc -l <"$T/omsd.log")" -gt 5

# ---- kafka.properties reach omsctl and oms-producer ---------------------------------------------
sed '/^    sasl.password:/a\    no.such.property: "1"' "$T/omsd.yaml" >"$T/bad-kafka.yaml"
expect_exit 1 "omsctl passes kafka.properties to librdkafka (an unknown one fails)" \
    "$BIN/omsctl" topics list --config "$T/bad-kafka.yaml"
check "... naming it" grep -q "no.such.property" "$T/last.err"
expect_exit 2 "oms-producer passes kafka.properties to librdkafka (an unknown one fails)" \
    "$BIN/oms-producer" emit SystemNotification --config "$T/bad-kafka.yaml" \
    --json '{"title":"t","message":"m"}'
check "... naming it" grep -q "no.such.property" "$T/last.err"
unset JWT_SECRET_FILE DATABASE_PASSWORD_FILE DATABASE_URL

# ---- PostgreSQL requiring TLS, sslmode=verify-full ----------------------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    ok "PostgreSQL over TLS # skip no PostgreSQL server binaries"
    exit 0
fi
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
P=$T/pgssl
mkdir -p "$P/sock"
# a CA, and the server's certificate for localhost signed by it; a second CA
# that signed nothing
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=oms test CA" -days 1 \
    -keyout "$P/ca.key" -out "$P/ca.crt" >/dev/null 2>&1
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=other CA" -days 1 \
    -keyout "$P/other.key" -out "$P/other.crt" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$P/server.key" \
    -out "$P/server.csr" >/dev/null 2>&1
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$P/san.ext"
openssl x509 -req -in "$P/server.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 1 -extfile "$P/san.ext" -out "$P/server.crt" >/dev/null 2>&1
chmod 600 "$P/server.key"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$P"; chmod 755 "$T"; fi
as_pg "$PGBIN/initdb" -D "$P/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$P/initdb.log" 2>&1
check "throwaway cluster initialised" test $? -eq 0
cat >"$P/data/pg_hba.conf" <<HBA
local     all all              trust
hostssl   all all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
HBA
PGSSL_PORT=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$P/data" -l "$P/pg.log" -w -t 30 \
    -o "-p $PGSSL_PORT -k '$P/sock' -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=$P/server.crt -c ssl_key_file=$P/server.key" \
    start >"$P/pg_ctl.out" 2>&1
check "PostgreSQL with ssl=on started on $PGSSL_PORT" test $? -eq 0
as_pg psql -h "$P/sock" -p "$PGSSL_PORT" -U postgres -qc "create database oms" >/dev/null 2>&1

pgconf() { # MODE ROOTCERT: the test's config with database.* for the TLS cluster
    cp "$T/base-ssl.yaml" "$T/ssl.yaml"
    cat >>"$T/ssl.yaml" <<YAML
database:
  host: localhost
  port: $PGSSL_PORT
  user: postgres
  name: oms
  sslmode: $1
  sslrootcert: $2
YAML
}
sed '/^server:/,$d' "$T/omsd.yaml" >"$T/base-ssl.yaml" # kafka: of make_topics and the properties
pg_env=(env -u DATABASE_HOST -u DATABASE_PORT -u DATABASE_USER -u DATABASE_NAME -u DATABASE_PASSWORD)

pgconf verify-full "$P/ca.crt"
expect_exit 0 "omsctl projections migrate over TLS with sslmode=verify-full" \
    "${pg_env[@]}" "$BIN/omsctl" projections migrate --config "$T/ssl.yaml"
pgconf disable "$P/ca.crt"
expect_exit 1 "without TLS the server refuses (sslmode=disable)" \
    "${pg_env[@]}" "$BIN/omsctl" projections migrate --config "$T/ssl.yaml"
check "... with pg_hba's reason" grep -q "no encryption" "$T/last.err"
pgconf verify-full "$P/other.crt"
expect_exit 1 "a server certificate from another CA is refused (verify-full)" \
    "${pg_env[@]}" "$BIN/omsctl" projections migrate --config "$T/ssl.yaml"
check "... as a verification failure" grep -q "certificate verify failed" "$T/last.err"
pgconf verify-full "$P/ca.crt"
sed -i 's/host: localhost/host: 127.0.0.1/' "$T/ssl.yaml"
printf '  params:\n    sslsni: "0"\n' >>"$T/ssl.yaml"
expect_exit 0 "verify-full matches the IP address SAN too; database.params pass through" \
    "${pg_env[@]}" "$BIN/omsctl" projections migrate --config "$T/ssl.yaml"

# omsd: projections over TLS
pgconf verify-full "$P/ca.crt"
cat >>"$T/ssl.yaml" <<YAML
server:
  host: 127.0.0.1
  port: $PORT
log:
  format: json
YAML
"${pg_env[@]}" JWT_SECRET="$S_JWT" "$BIN/omsd" --config "$T/ssl.yaml" >"$T/omsd-ssl.log" 2>&1 &
pid=$!
healthy=1
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/websocket/health" -o "$T/health-ssl.json" && { healthy=0; break; }
    sleep 0.1
done
check "omsd healthy with Postgres over TLS (projections included)" test "$healthy" -eq 0
ssl=$(as_pg psql -h "$P/sock" -p "$PGSSL_PORT" -U postgres -d oms -Atc \
    "select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) where s.ssl and a.application_name like 'omsd%'")
check "omsd's connections are encrypted (pg_stat_ssl: ${ssl:-none})" test "${ssl:-0}" -ge 1
kill -TERM "$pid"
wait "$pid"
check "omsd exit status 0 after SIGTERM" test $? -eq 0
as_pg "$PGBIN/pg_ctl" -D "$P/data" -m fast -w stop >/dev/null 2>&1
check "throwaway cluster stopped" test ! -e "$P/data/postmaster.pid"
