#!/usr/bin/env bash
# A Confluent-compatible Schema Registry for local runs and tests: Apicurio
# Registry 2.6 (Quarkus, JVM) with in-memory storage, its Confluent API under
# /apis/ccompat/v7. scripts/deps.sh fetches it from Maven Central into
# $OMS_STATE/registry/app; stack.sh (REGISTRY=1) and the tests run it here.
#
#   registry.sh start DIR PORT [persist]
#                                start one on 127.0.0.1:PORT, pid and log in DIR;
#                                waits until it answers (idempotent). With
#                                "persist" its schemas live in an H2 file in DIR
#                                and survive a restart (outage tests)
#   registry.sh stop DIR         stop the one started with DIR (if any)
#   registry.sh running DIR      exit 0 when it runs; prints its port
#   registry.sh url PORT         the base URL clients use
#
# Its data lives in memory unless "persist": a restart then forgets every
# schema (ids start again).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$(realpath -m "${OMS_STATE:-$ROOT/.oms}")"
APP="$STATE/registry/app"
HOST=127.0.0.1
START_TIMEOUT="${REGISTRY_START_TIMEOUT:-180}"

die() { echo "registry: $*" >&2; exit 1; }
usage() { die "usage: registry.sh start DIR PORT [persist] | stop DIR | running DIR | url PORT"; }

url() { echo "http://$HOST:$1/apis/ccompat/v7"; }

runner_jar() {
  local j
  j="$(ls "$APP"/apicurio-registry-app-*-runner.jar 2>/dev/null | head -n 1)"
  [ -n "$j" ] || die "Apicurio Registry is not installed in $APP: run scripts/deps.sh (make deps)"
  echo "$j"
}

# Prints the pid of the registry started with DIR, or fails.
pid_of() {
  local dir="$1" pid cmd
  [ -f "$dir/registry.pid" ] || return 1
  pid="$(cat "$dir/registry.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *apicurio-registry-app* ]] || return 1
  echo "$pid"
}

answers() {
  curl -fsS -m 2 -o /dev/null "$(url "$1")/subjects" 2>/dev/null
}

cmd_start() {
  local dir="$1" port="$2" persist="${3:-}" pid jar i db=()
  [[ "$port" =~ ^[0-9]+$ ]] || die "port '$port' is not a number"
  mkdir -p "$dir"
  if pid="$(pid_of "$dir")"; then
    [ "$(cat "$dir/registry.port" 2>/dev/null)" = "$port" ] \
      || die "a registry already runs from $dir on port $(cat "$dir/registry.port"), not $port: stop it first"
  else
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
      die "port $port is already in use by another process (set REGISTRY_PORT to choose another)"
    fi
    jar="$(runner_jar)"
    dir="$(realpath -m "$dir")"
    # the in-memory storage is H2 too: a file URL keeps it on disk
    [ "$persist" = persist ] && db=(env "REGISTRY_DATASOURCE_URL=jdbc:h2:file:$dir/db")
    # Quarkus reads its settings from system properties. The JVM is kept
    # small: a test registry holds a handful of schemas.
    (cd "$dir" && exec "${db[@]}" setsid java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dquarkus.http.host="$HOST" -Dquarkus.http.port="$port" \
        -Dquarkus.log.level=WARN -Dquarkus.banner.enabled=false \
        -jar "$jar" </dev/null >"$dir/registry.log" 2>&1) &
    pid=$!
    echo "$pid" >"$dir/registry.pid"
    echo "$port" >"$dir/registry.port"
  fi
  for ((i = 0; i < START_TIMEOUT * 5; i++)); do
    answers "$port" && return 0
    if ! pid_of "$dir" >/dev/null; then
      tail -n 30 "$dir/registry.log" >&2 || true
      die "the registry exited during start-up (log above: $dir/registry.log)"
    fi
    sleep 0.2
  done
  tail -n 30 "$dir/registry.log" >&2 || true
  die "the registry did not answer on $HOST:$port within $START_TIMEOUT s"
}

cmd_stop() {
  local dir="$1" pid i
  if pid="$(pid_of "$dir")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      [ -e "/proc/$pid" ] || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/registry.pid" "$dir/registry.port"
}

main() {
  [ "$#" -ge 1 ] || usage
  case "$1" in
    start) [ "$#" -eq 3 ] || [ "$#" -eq 4 ] || usage; cmd_start "$2" "$3" "${4:-}" ;;
    stop) [ "$#" -eq 2 ] || usage; cmd_stop "$2" ;;
    running) [ "$#" -eq 2 ] || usage; pid_of "$2" >/dev/null && cat "$2/registry.port" ;;
    url) [ "$#" -eq 2 ] || usage; url "$2" ;;
    *) usage ;;
  esac
}

main "$@"
