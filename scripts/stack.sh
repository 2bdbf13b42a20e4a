#!/usr/bin/env bash
# The local oms stack: a single-node Kafka (KRaft, broker+controller) and a
# throwaway PostgreSQL cluster, both on 127.0.0.1 only, state under $OMS_STATE
# (default: <project>/.oms). Run scripts/deps.sh first.
#
#   stack.sh up            start what is not running yet (safe to run twice)
#   stack.sh down          stop what `up` started (data is kept)
#   stack.sh down --purge  stop, then delete the Kafka and PostgreSQL data and logs
#   stack.sh clean         same as down --purge
#   stack.sh env           print export lines for the stack (eval "$(stack.sh env)")
#   stack.sh status        what runs; exit 0 when both run, 1 otherwise
#
# Environment: OMS_STATE, KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093),
# PG_PORT (55432). PostgreSQL uses --auth=trust: it is a throwaway cluster that
# listens on loopback only, user postgres without a password.
#
# KAFKA_BROKERS_COUNT=N (2..9, default 1) runs N KRaft broker+controller nodes
# instead (a quorum of N controller voters): node i listens on KAFKA_PORT+2(i-1)
# and its controller on KAFKA_CONTROLLER_PORT+2(i-1), data under
# $OMS_STATE/kafka/cluster/node-i; internal topics get replication factor
# min(3, N) and the brokers default to that replication and
# min.insync.replicas=min(2, N). `up` starts the nodes that do not run (so it
# also restarts one that was killed); `env` prints the whole broker list;
# `down` and `status` see the cluster without the variable.
#
# REGISTRY=1 on `up` also starts a schema registry (Apicurio Registry,
# Confluent-compatible API, in-memory: scripts/registry.sh) on REGISTRY_PORT
# (18081); `env` then exports SCHEMA_REGISTRY_URL, `down` stops it, `status`
# shows it. Off unless asked: nothing needs it but Confluent-framed records.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$(realpath -m "${OMS_STATE:-$ROOT/.oms}")"
HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
PG_PORT="${PG_PORT:-55432}"
REGISTRY="${REGISTRY:-0}"
REGISTRY_PORT="${REGISTRY_PORT:-18081}"
DB_NAME=oms
START_TIMEOUT=60

LOGS="$STATE/logs"
RDIR="$STATE/registry/run"   # pid, port and log of the stack's registry
KDIR="$STATE/kafka"
KLIBS="$KDIR/libs"
KDATA="$KDIR/data"
KPROPS="$KDIR/server.properties"
KLOG4J="$KDIR/log4j2.yaml"
KPID="$STATE/kafka.pid"
KPORTS="$STATE/kafka.ports"   # "<broker port> <controller port>" of the running broker
PGPORTF="$STATE/pg.port"      # port of the running PostgreSQL
# PostgreSQL data lives in $STATE unless the postgres user cannot reach it (for
# example a clone under /root when we run as root) or the socket path would be
# too long; then it lives in this per-state folder instead.
PG_FALLBACK="/var/tmp/oms-pg-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)"
# The multi-node Kafka (KAFKA_BROKERS_COUNT > 1).
KAFKA_BROKERS_COUNT="${KAFKA_BROKERS_COUNT:-1}"
KCDIR="$KDIR/cluster"
KCPORTS="$STATE/kafka-cluster.ports"   # "<node> <broker port> <controller port>" per node

log() { echo "stack: $*"; }
err() { echo "stack: $*" >&2; }
die() { err "$*"; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
usage() { die "usage: stack.sh up | down [--purge] | clean | env | status"; }

# Milliseconds since the epoch, for timings.
now_ms() { date +%s%3N; }

# ---- helpers -------------------------------------------------------------

# Serialises up/down/clean of the same state folder.
lock_state() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.stack.lock"
  flock 9
}

# Prints the command line of a process, or fails when it does not exist.
proc_cmdline() {
  [ -r "/proc/$1/cmdline" ] || return 1
  local c
  c="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [ -n "$c" ] || return 1   # a zombie has an empty command line
  printf '%s\n' "$c"
}

# Fails when a TCP port is free on this machine; prints its listener otherwise.
port_taken() {
  local out
  out="$(ss -Hltnp "sport = :$1" 2>/dev/null)" || out="$(ss -Hltn "sport = :$1")"
  [ -n "$out" ] || return 1
  grep -o 'users:(([^)]*' <<<"$out" | head -n 1 | sed 's/users:((//' || true
}

check_port_free() { # <port> <env var name>
  local who
  if who="$(port_taken "$1")"; then
    err "port $1 is already in use by another process (set $2 to choose another)"
    [ -z "$who" ] || err "  listener: $who"
    return 1
  fi
}

# Kills a process (TERM, then KILL after <timeout> s) and waits for it to go.
stop_pid() { # <pid> <timeout s> <name>
  local pid="$1" limit=$(( $2 * 10 )) i=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while proc_cmdline "$pid" >/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge "$limit" ]; then
      err "$3 (pid $pid) did not stop in $2 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
}

# ---- Kafka ---------------------------------------------------------------

# Prints the pid of our running broker, or fails.
kafka_pid() {
  [ -f "$KPID" ] || return 1
  local pid cmd
  pid="$(cat "$KPID" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmd="$(proc_cmdline "$pid")" || return 1
  [[ "$cmd" == *"kafka.Kafka $KPROPS"* ]] || return 1
  echo "$pid"
}

# The broker port of the running broker (recorded at start), else KAFKA_PORT.
kafka_running_port() {
  local p
  if kafka_pid >/dev/null && [ -f "$KPORTS" ] && read -r p _ <"$KPORTS"; then echo "$p"; else echo "$KAFKA_PORT"; fi
}

# The port check first: kcat waits its whole timeout when nothing listens yet.
kafka_answers() {
  port_taken "$1" >/dev/null && timeout 10 kcat -b "$HOST:$1" -L -m 2 >/dev/null 2>&1
}

write_kafka_config() {
  mkdir -p "$KDIR" "$KDATA" "$LOGS"
  cat >"$KPROPS" <<EOF
# Generated by scripts/stack.sh: single-node KRaft broker+controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KDATA
num.partitions=6
# Topics are created explicitly (tests, demo, omsctl topics create): a typo is an error.
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
  cat >"$KLOG4J" <<EOF
# Generated by scripts/stack.sh.
Configuration:
  Appenders:
    File:
      name: F
      fileName: "$LOGS/kafka.log"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: F
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: kafka.network.RequestChannel\$
        level: WARN
      - name: kafka.authorizer.logger
        level: WARN
      - name: state.change.logger
        level: WARN
      - name: kafka.log.LogCleaner
        level: WARN
      - name: org.apache.kafka.storage.internals.log
        level: WARN
      - name: org.apache.kafka.common.config.AbstractConfig
        level: WARN
      - name: org.apache.kafka.common.utils.AppInfoParser
        level: WARN
EOF
}

# A random Kafka cluster id: 16 random bytes, URL-safe base64 without padding
# (what `StorageTool random-uuid` prints), not starting with '-'.
kafka_random_uuid() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" == -* ]] || break
  done
  echo "$id"
}

format_kafka_storage() {
  [ -f "$KDATA/meta.properties" ] && return 0
  local id
  id="$(kafka_random_uuid)"
  log "formatting Kafka storage (cluster id $id)"
  # controller.quorum.voters is set, so no --standalone.
  if ! java -Dlog4j2.configurationFile="$KLOG4J" -cp "$KLIBS/*" kafka.tools.StorageTool \
        format -t "$id" -c "$KPROPS" >"$LOGS/kafka-format.log" 2>&1 </dev/null; then
    cat "$LOGS/kafka-format.log" >&2
    die "formatting the Kafka storage failed"
  fi
  echo "$id" >"$KDIR/cluster.id"
}

# Starts the broker in the background (does not wait for it).
start_kafka() {
  [ -d "$KLIBS" ] && ls "$KLIBS"/kafka_2.13-*.jar >/dev/null 2>&1 \
    || die "the Kafka jars are missing in $KLIBS: run 'make deps' (scripts/deps.sh) first"
  command -v java >/dev/null 2>&1 || die "java not found: run 'make deps' first"
  command -v kcat >/dev/null 2>&1 || die "kcat not found: run 'make deps' first"
  write_kafka_config
  format_kafka_storage
  log "starting Kafka on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), log $LOGS/kafka.log"
  echo "=== $(date '+%F %T') start" >>"$LOGS/kafka.out"
  # a pid file left by a broker that was killed would be read as this one's
  # before the new pid is written ("exited during start-up")
  rm -f "$KPID"
  # bash -c writes its own pid, then execs java: the pid file names the JVM.
  # setsid: a new session, so the broker outlives this script and its terminal.
  # fd 9 (the state lock) is closed so that the broker does not hold it.
  (
    cd "$KDIR" || exit 1
    exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-start "$KPID" \
      java -Xms256m -Xmx1g -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KLOG4J" \
      -cp "$KLIBS/*" kafka.Kafka "$KPROPS"
  ) >>"$LOGS/kafka.out" 2>&1 </dev/null 9>&- &
  echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" >"$KPORTS"
}

kafka_log_tail() {
  err "---- tail of $LOGS/kafka.out"
  tail -n 20 "$LOGS/kafka.out" >&2 2>/dev/null || true
  err "---- tail of $LOGS/kafka.log"
  tail -n 30 "$LOGS/kafka.log" >&2 2>/dev/null || true
}

wait_kafka() {
  local port deadline pid
  port="$(kafka_running_port)"
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  # The pid file appears a moment after the background start.
  for _ in $(seq 50); do [ -s "$KPID" ] && break; sleep 0.1; done
  while :; do
    if ! pid="$(kafka_pid)"; then
      kafka_log_tail
      rm -f "$KPID" "$KPORTS"
      die "Kafka exited during start-up (logs above)"
    fi
    kafka_answers "$port" && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      kafka_log_tail
      stop_pid "$pid" 10 kafka
      rm -f "$KPID" "$KPORTS"
      die "Kafka did not answer on $HOST:$port within $START_TIMEOUT s (logs above)"
    fi
    sleep 0.2
  done
}

stop_kafka() {
  local pid
  if pid="$(kafka_pid)"; then
    log "stopping Kafka (pid $pid)"
    stop_pid "$pid" 60 kafka
  fi
  rm -f "$KPID" "$KPORTS"
}

# ---- Kafka, several nodes (KAFKA_BROKERS_COUNT > 1) -----------------------

kc_multi() { [ "$KAFKA_BROKERS_COUNT" != 1 ]; }

kc_check_count() {
  [[ "$KAFKA_BROKERS_COUNT" =~ ^[1-9]$ ]] || die "KAFKA_BROKERS_COUNT must be 1 to 9, not '$KAFKA_BROKERS_COUNT'"
}

kc_props() { echo "$KCDIR/node-$1/server.properties"; }
kc_pidfile() { echo "$STATE/kafka-$1.pid"; }

# The nodes of the cluster: from the ports file of a running (or killed)
# cluster, else from KAFKA_BROKERS_COUNT and the base ports. Prints
# "<node> <broker port> <controller port>" lines.
kc_nodes() {
  if [ -s "$KCPORTS" ]; then cat "$KCPORTS"; return; fi
  local i
  for i in $(seq 1 "$KAFKA_BROKERS_COUNT"); do
    echo "$i $((KAFKA_PORT + 2 * (i - 1))) $((KAFKA_CONTROLLER_PORT + 2 * (i - 1)))"
  done
}

# Prints the pid of node <i> when it runs, or fails.
kc_pid() {
  local f pid cmd
  f="$(kc_pidfile "$1")"
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmd="$(proc_cmdline "$pid")" || return 1
  [[ "$cmd" == *"kafka.Kafka $(kc_props "$1")"* ]] || return 1
  echo "$pid"
}

# Succeeds when any node of a cluster runs in this state folder.
kc_any_running() {
  local i _b _c
  [ -s "$KCPORTS" ] || return 1
  while read -r i _b _c; do kc_pid "$i" >/dev/null && return 0; done <"$KCPORTS"
  return 1
}

kc_broker_list() {
  local i b _c list=""
  while read -r i b _c; do list="${list:+$list,}$HOST:$b"; done < <(kc_nodes)
  echo "$list"
}

kc_write_config() { # <node> <broker port> <controller port> <voters> <n>
  local i="$1" b="$2" c="$3" voters="$4" n="$5" d rf isr
  d="$KCDIR/node-$i"
  rf=$(( n < 3 ? n : 3 ))
  isr=$(( n < 2 ? n : 2 ))
  mkdir -p "$d/data" "$LOGS"
  cat >"$(kc_props "$i")" <<EOF
# Generated by scripts/stack.sh: node $i of $n KRaft broker+controller nodes on loopback.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$b,CONTROLLER://$HOST:$c
advertised.listeners=PLAINTEXT://$HOST:$b
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=6
default.replication.factor=$rf
min.insync.replicas=$isr
# Topics are created explicitly (tests, demo, omsctl topics create): a typo is an error.
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
log.retention.hours=24
# A killed node is fenced (and leaves the in-sync replicas, which acks=all
# writes wait for) after this instead of the default 9 s: loopback heartbeats
# are not late.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
EOF
  # the single node's logging, to a file of this node
  sed -e "s|$LOGS/kafka.log|$LOGS/kafka-$i.log|" "$KLOG4J" >"$d/log4j2.yaml"
}

kc_format() { # <node> <cluster id>
  local d="$KCDIR/node-$1"
  [ -f "$d/data/meta.properties" ] && return 0
  if ! java -Dlog4j2.configurationFile="$d/log4j2.yaml" -cp "$KLIBS/*" kafka.tools.StorageTool \
        format -t "$2" -c "$(kc_props "$1")" >"$LOGS/kafka-$1-format.log" 2>&1 </dev/null; then
    cat "$LOGS/kafka-$1-format.log" >&2
    die "formatting the Kafka storage of node $1 failed"
  fi
}

kc_start_node() { # <node> <broker port> <controller port>
  local i="$1" d="$KCDIR/node-$1" pf
  pf="$(kc_pidfile "$i")"
  log "starting Kafka node $i on $HOST:$2 (controller $3), log $LOGS/kafka-$i.log"
  echo "=== $(date '+%F %T') start" >>"$LOGS/kafka-$i.out"
  rm -f "$pf" # a killed node's pid file is not this start's (see kafka start)
  (
    cd "$d" || exit 1
    exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-start "$pf" \
      java -Xms256m -Xmx768m -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$d/log4j2.yaml" \
      -cp "$KLIBS/*" kafka.Kafka "$(kc_props "$i")"
  ) >>"$LOGS/kafka-$i.out" 2>&1 </dev/null 9>&- &
}

# Starts the nodes that do not run; waits until every node answers.
kc_up() {
  [ -d "$KLIBS" ] && ls "$KLIBS"/kafka_2.13-*.jar >/dev/null 2>&1 \
    || die "the Kafka jars are missing in $KLIBS: run 'make deps' (scripts/deps.sh) first"
  command -v java >/dev/null 2>&1 || die "java not found: run 'make deps' first"
  command -v kcat >/dev/null 2>&1 || die "kcat not found: run 'make deps' first"
  local nodes n i b c voters="" id started="" bad=0 all=()
  if [ -s "$KCPORTS" ]; then
    n="$(wc -l <"$KCPORTS")"
    [ "$n" = "$KAFKA_BROKERS_COUNT" ] || die "a $n-node Kafka cluster is set up in this state folder, not $KAFKA_BROKERS_COUNT: run 'stack.sh down --purge' first"
    read -r _ b _ <"$KCPORTS"
    [ "$b" = "$KAFKA_PORT" ] || die "the Kafka cluster of this state folder uses port $b, not $KAFKA_PORT: run 'stack.sh down' first"
  fi
  nodes="$(kc_nodes)"
  n="$KAFKA_BROKERS_COUNT"
  while read -r i b c; do voters="${voters:+$voters,}$i@$HOST:$c"; all+=("$b" "$c"); done <<<"$nodes"
  [ "$(printf '%s\n' "${all[@]}" | sort -u | wc -l)" = "${#all[@]}" ] \
    || die "the Kafka node ports overlap (KAFKA_PORT $KAFKA_PORT, KAFKA_CONTROLLER_PORT $KAFKA_CONTROLLER_PORT; node i uses both plus 2(i-1))"
  while read -r i b c; do
    kc_pid "$i" >/dev/null && continue
    check_port_free "$b" KAFKA_PORT || bad=1
    check_port_free "$c" KAFKA_CONTROLLER_PORT || bad=1
  done <<<"$nodes"
  [ "$bad" = 0 ] || exit 1
  mkdir -p "$KCDIR" "$LOGS"
  write_kafka_config   # the single node's files: its log4j2.yaml is the template
  if [ -f "$KCDIR/cluster.id" ]; then id="$(cat "$KCDIR/cluster.id")"; else
    id="$(kafka_random_uuid)"
    echo "$id" >"$KCDIR/cluster.id"
    log "formatting the storage of $n Kafka nodes (cluster id $id)"
  fi
  printf '%s\n' "$nodes" >"$KCPORTS"
  while read -r i b c; do
    kc_pid "$i" >/dev/null && continue
    kc_write_config "$i" "$b" "$c" "$voters" "$n"
    kc_format "$i" "$id"
    kc_start_node "$i" "$b" "$c"
    started="$started $i"
  done <<<"$nodes"
  local deadline=$(( $(date +%s) + START_TIMEOUT * 2 )) pid left
  while :; do
    left=""
    while read -r i b c; do
      if ! pid="$(kc_pid "$i")"; then
        # the pid file appears a moment after the start
        [ -s "$(kc_pidfile "$i")" ] || { left="$left $i"; continue; }
        tail -n 30 "$LOGS/kafka-$i.out" "$LOGS/kafka-$i.log" >&2 2>/dev/null || true
        die "Kafka node $i exited during start-up (logs above)"
      fi
      kafka_answers "$b" || left="$left $i"
    done <<<"$nodes"
    # every node answers: done once the cluster's metadata lists them all
    if [ -z "$left" ]; then
      read -r _ b _ <<<"$nodes"
      timeout 10 kcat -b "$HOST:$b" -L -m 2 2>/dev/null | grep -q "^ *$n brokers:" && break
      left=" (registration)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for i in $left; do tail -n 30 "$LOGS/kafka-$i.log" >&2 2>/dev/null || true; done
      die "Kafka node(s)$left did not answer within $((START_TIMEOUT * 2)) s (logs above; 'stack.sh down' stops the others)"
    fi
    sleep 0.3
  done
  [ -z "$started" ] || log "Kafka nodes$started up: $(kc_broker_list)"
}

kc_down() {
  local i _b _c pid
  [ -s "$KCPORTS" ] || return 0
  while read -r i _b _c; do
    if pid="$(kc_pid "$i")"; then
      log "stopping Kafka node $i (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done <"$KCPORTS"
  while read -r i _b _c; do
    # the last nodes cannot finish a controlled shutdown once the quorum is
    # gone: they are killed after a shorter wait than a single node
    if pid="$(kc_pid "$i")"; then stop_pid "$pid" 20 "kafka node $i"; fi
    rm -f "$(kc_pidfile "$i")"
  done <"$KCPORTS"
  rm -f "$KCPORTS"
}

kc_status() {
  local rc=0 i b _c pid
  while read -r i b _c; do
    if pid="$(kc_pid "$i")"; then
      if kafka_answers "$b"; then
        echo "stack: kafka-$i   running   pid $pid  $HOST:$b"
      else
        echo "stack: kafka-$i   starting  pid $pid  $HOST:$b (not answering yet)"
        rc=1
      fi
    else
      echo "stack: kafka-$i   stopped             $HOST:$b"
      rc=1
    fi
  done <"$KCPORTS"
  return "$rc"
}

# ---- PostgreSQL ----------------------------------------------------------

pg_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "PostgreSQL server binaries not found: run 'make deps' first"
  echo "$d"
}

# Runs a PostgreSQL server command as the postgres user when we are root
# (initdb and postgres refuse to run as root), directly otherwise.
as_pg() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Where pgdata and pgsock live (see PG_FALLBACK).
pg_root() {
  if [ -d "$STATE/pgdata" ]; then echo "$STATE"; return; fi
  if [ -d "$PG_FALLBACK/pgdata" ]; then echo "$PG_FALLBACK"; return; fi
  local sock="$STATE/pgsock/.s.PGSQL.$PG_PORT"
  if [ "${#sock}" -gt 100 ]; then echo "$PG_FALLBACK"; return; fi
  if is_root && ! (cd / && runuser -u postgres -- test -x "$STATE" 2>/dev/null); then
    echo "$PG_FALLBACK"; return
  fi
  echo "$STATE"
}

# Prints the postmaster pid of our cluster when it runs, or fails.
pg_pid() {
  local data pid cmd
  data="$(pg_root)/pgdata"
  [ -f "$data/postmaster.pid" ] || return 1
  pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmd="$(proc_cmdline "$pid")" || return 1
  [[ "$cmd" == *postgres* && "$cmd" == *"$data"* ]] || return 1
  echo "$pid"
}

pg_running_port() {
  if pg_pid >/dev/null && [ -f "$PGPORTF" ]; then cat "$PGPORTF"; else echo "$PG_PORT"; fi
}

pg_answers() { "$(pg_bin)/pg_isready" -q -h "$HOST" -p "$1" -U postgres -d postgres -t 5; }

pg_log_file() {
  local root="$1"
  if [ "$root" = "$STATE" ]; then echo "$LOGS/postgres.log"; else echo "$root/postgres.log"; fi
}

init_pg() { # <pg root>
  local root="$1" bin data sock
  bin="$(pg_bin)"
  data="$root/pgdata"
  sock="$root/pgsock"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user: run 'make deps' (it installs postgresql) first"
    [ "$root" = "$STATE" ] || install -d -m 755 "$root"
    install -d -o postgres -g postgres -m 700 "$data"
    install -d -o postgres -g postgres -m 755 "$sock"
  else
    [ "$root" = "$STATE" ] || install -d -m 700 "$root"
    install -d -m 700 "$data"
    install -d -m 755 "$sock"
  fi
  [ -f "$data/PG_VERSION" ] && return 0
  log "initialising PostgreSQL in $data"
  if ! as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$LOGS/postgres-initdb.log" 2>&1 </dev/null; then
    cat "$LOGS/postgres-initdb.log" >&2
    die "initdb failed"
  fi
}

start_pg() {
  local root bin data sock logf
  root="$(pg_root)"
  bin="$(pg_bin)"
  data="$root/pgdata"
  sock="$root/pgsock"
  mkdir -p "$LOGS"
  if [ "$root" != "$STATE" ]; then
    if [ "$(printf '%s' "$STATE/pgsock/.s.PGSQL.$PG_PORT" | wc -c)" -gt 100 ]; then
      log "the socket path under $STATE would be too long: PostgreSQL data goes to $root"
    else
      log "the postgres user cannot reach $STATE: PostgreSQL data goes to $root"
    fi
  fi
  init_pg "$root"
  # A postmaster that was just killed may linger as a zombie for a moment and
  # then postgres refuses the stale postmaster.pid: give it time to go.
  local old i
  old="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
  if [[ "$old" =~ ^[0-9]+$ ]]; then
    for i in $(seq 50); do [ -e "/proc/$old" ] || break; sleep 0.1; done
    rm -f "$data/postmaster.pid"   # stale: pg_pid found no postmaster behind it
  fi
  logf="$(pg_log_file "$root")"
  touch "$logf"
  if is_root; then chown postgres:postgres "$logf"; fi
  [ "$logf" = "$LOGS/postgres.log" ] || ln -sfn "$logf" "$LOGS/postgres.log"
  log "starting PostgreSQL on $HOST:$PG_PORT, log $LOGS/postgres.log"
  if ! as_pg "$bin/pg_ctl" -D "$data" -l "$logf" -w -t "$START_TIMEOUT" \
        -o "-p $PG_PORT -k '$sock' -c listen_addresses=$HOST" start >/dev/null </dev/null 9>&-; then
    err "---- tail of $LOGS/postgres.log"
    tail -n 30 "$logf" >&2 || true
    die "PostgreSQL did not start (log above)"
  fi
  echo "$PG_PORT" >"$PGPORTF"
}

ensure_db() {
  local port bin
  port="$(pg_running_port)"
  bin="$(pg_bin)"
  local deadline=$(( $(date +%s) + START_TIMEOUT ))
  until pg_answers "$port"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "PostgreSQL does not answer on $HOST:$port"
    sleep 0.2
  done
  if [ -z "$("$bin/psql" -X -h "$HOST" -p "$port" -U postgres -d postgres -tAc \
              "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
    "$bin/psql" -X -q -h "$HOST" -p "$port" -U postgres -d postgres -c "CREATE DATABASE $DB_NAME" >/dev/null
    log "created database $DB_NAME"
  fi
}

stop_pg() {
  local root pid
  root="$(pg_root)"
  if pid="$(pg_pid)"; then
    log "stopping PostgreSQL (pid $pid)"
    if ! as_pg "$(pg_bin)/pg_ctl" -D "$root/pgdata" -m fast -w -t 60 stop >/dev/null 2>&1; then
      err "pg_ctl stop failed: signalling pid $pid"
      stop_pid "$pid" 30 postgres
    fi
  fi
  rm -f "$PGPORTF"
}

# ---- commands ------------------------------------------------------------

cmd_up() {
  kc_check_count
  lock_state
  local t0 kpid ppid need_kafka=1 need_pg=1 p
  t0="$(now_ms)"
  if kc_multi; then
    ! kafka_pid >/dev/null || die "a single-node Kafka runs in this state folder: run 'stack.sh down' first"
    cmd_up_cluster "$t0"
    return
  fi
  ! kc_any_running || die "a Kafka cluster of several nodes runs in this state folder: run 'stack.sh down' first"
  if kpid="$(kafka_pid)"; then
    need_kafka=0
    read -r p _ <"$KPORTS" 2>/dev/null || p="$KAFKA_PORT"
    [ "$p" = "$KAFKA_PORT" ] || die "Kafka already runs on port $p (pid $kpid), not $KAFKA_PORT: run 'stack.sh down' first"
  else
    rm -f "$KPID" "$KPORTS"
  fi
  if ppid="$(pg_pid)"; then
    need_pg=0
    p="$(pg_running_port)"
    [ "$p" = "$PG_PORT" ] || die "PostgreSQL already runs on port $p (pid $ppid), not $PG_PORT: run 'stack.sh down' first"
  else
    rm -f "$PGPORTF"
  fi

  # Check every port we need before starting anything.
  local bad=0
  if [ "$need_kafka" = 1 ]; then
    [ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT are both $KAFKA_PORT"
    check_port_free "$KAFKA_PORT" KAFKA_PORT || bad=1
    check_port_free "$KAFKA_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT || bad=1
  fi
  if [ "$need_pg" = 1 ]; then
    check_port_free "$PG_PORT" PG_PORT || bad=1
  fi
  [ "$bad" = 0 ] || exit 1

  mkdir -p "$LOGS"
  # Kafka's JVM starts in the background while PostgreSQL starts.
  [ "$need_kafka" = 1 ] && start_kafka
  [ "$need_pg" = 1 ] && start_pg
  ensure_db
  wait_kafka

  if [ "$need_kafka" = 0 ] && [ "$need_pg" = 0 ]; then
    log "already running: Kafka $HOST:$KAFKA_PORT (pid $kpid), PostgreSQL $HOST:$PG_PORT (pid $ppid)"
  else
    log "up in $(( $(now_ms) - t0 )) ms: Kafka $HOST:$KAFKA_PORT, PostgreSQL $HOST:$PG_PORT db $DB_NAME (eval \"\$(make -s stack-env)\")"
  fi
  up_registry
}

# REGISTRY=1: the schema registry too (idempotent).
up_registry() {
  [ "$REGISTRY" = 1 ] || return 0
  local t0 port
  t0="$(now_ms)"
  if port="$(bash "$ROOT/scripts/registry.sh" running "$RDIR" 2>/dev/null)"; then
    [ "$port" = "$REGISTRY_PORT" ] || die "the schema registry already runs on port $port, not $REGISTRY_PORT: run 'stack.sh down' first"
    return 0
  fi
  log "starting the schema registry (Apicurio) on $HOST:$REGISTRY_PORT, log $RDIR/registry.log"
  bash "$ROOT/scripts/registry.sh" start "$RDIR" "$REGISTRY_PORT" 9>&- \
    || die "the schema registry did not start"
  log "schema registry up in $(( $(now_ms) - t0 )) ms: $(bash "$ROOT/scripts/registry.sh" url "$REGISTRY_PORT")"
}

# up with KAFKA_BROKERS_COUNT > 1: the nodes that do not run, and PostgreSQL.
cmd_up_cluster() {
  local t0="$1" ppid p need_pg=1
  if ppid="$(pg_pid)"; then
    need_pg=0
    p="$(pg_running_port)"
    [ "$p" = "$PG_PORT" ] || die "PostgreSQL already runs on port $p (pid $ppid), not $PG_PORT: run 'stack.sh down' first"
  else
    rm -f "$PGPORTF"
    check_port_free "$PG_PORT" PG_PORT || exit 1
  fi
  mkdir -p "$LOGS"
  [ "$need_pg" = 1 ] && start_pg
  ensure_db
  kc_up
  log "up in $(( $(now_ms) - t0 )) ms: Kafka $(kc_broker_list), PostgreSQL $HOST:$PG_PORT db $DB_NAME (eval \"\$(make -s stack-env)\")"
  up_registry
}

cmd_down() {
  local purge=0
  case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) usage ;;
  esac
  [ "$#" -le 1 ] || usage
  if [ ! -d "$STATE" ]; then
    return 0
  fi
  lock_state
  if bash "$ROOT/scripts/registry.sh" running "$RDIR" >/dev/null 2>&1; then
    log "stopping the schema registry"
  fi
  bash "$ROOT/scripts/registry.sh" stop "$RDIR" || true
  stop_kafka
  kc_down
  stop_pg
  if [ "$purge" = 1 ]; then
    log "deleting the Kafka and PostgreSQL data and the logs"
    rm -rf "$KDATA" "$KDIR/cluster.id" "$KCDIR" "$STATE/pgdata" "$STATE/pgsock" "$PG_FALLBACK" "$LOGS"
  fi
}

# The broker list for env: the cluster's when one is set up (or asked for)
# and no single node runs, else the single node's.
kafka_env_brokers() {
  if ! kafka_pid >/dev/null && { [ -s "$KCPORTS" ] || kc_multi; }; then
    kc_broker_list
  else
    echo "$HOST:$(kafka_running_port)"
  fi
}

cmd_env() {
  cat <<EOF
export OMS_STATE=$(printf '%q' "$STATE")
export KAFKA_BROKERS=$(kafka_env_brokers)
export DATABASE_HOST=$HOST
export DATABASE_PORT=$(pg_running_port)
export DATABASE_USER=postgres
export DATABASE_PASSWORD=
export DATABASE_NAME=$DB_NAME
EOF
  local rport
  if rport="$(bash "$ROOT/scripts/registry.sh" running "$RDIR" 2>/dev/null)"; then
    echo "export SCHEMA_REGISTRY_URL=$(bash "$ROOT/scripts/registry.sh" url "$rport")"
  fi
}

cmd_status() {
  local rc=0 pid port
  if [ -s "$KCPORTS" ] && ! kafka_pid >/dev/null; then
    kc_status || rc=1
  elif pid="$(kafka_pid)"; then
    port="$(kafka_running_port)"
    if kafka_answers "$port"; then
      echo "stack: kafka     running   pid $pid  $HOST:$port"
    else
      echo "stack: kafka     starting  pid $pid  $HOST:$port (not answering yet)"
      rc=1
    fi
  else
    echo "stack: kafka     stopped"
    rc=1
  fi
  if pid="$(pg_pid)"; then
    port="$(pg_running_port)"
    if pg_answers "$port"; then
      echo "stack: postgres  running   pid $pid  $HOST:$port  data $(pg_root)/pgdata"
    else
      echo "stack: postgres  starting  pid $pid  $HOST:$port (not answering yet)"
      rc=1
    fi
  else
    echo "stack: postgres  stopped"
    rc=1
  fi
  local rport
  if rport="$(bash "$ROOT/scripts/registry.sh" running "$RDIR" 2>/dev/null)"; then
    echo "stack: registry  running   $(bash "$ROOT/scripts/registry.sh" url "$rport")"
  else
    echo "stack: registry  stopped"
    [ "$REGISTRY" != 1 ] || rc=1
  fi
  return "$rc"
}

main() {
  [ "$#" -ge 1 ] || usage
  local cmd="$1"
  shift
  case "$cmd" in
    up) [ "$#" -eq 0 ] || usage; cmd_up ;;
    down) cmd_down "$@" ;;
    clean) [ "$#" -eq 0 ] || usage; cmd_down --purge ;;
    env) [ "$#" -eq 0 ] || usage; cmd_env ;;
    status) [ "$#" -eq 0 ] || usage; cmd_status ;;
    *) usage ;;
  esac
}

main "$@"
