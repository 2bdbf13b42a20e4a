#!/usr/bin/env bash
# Installs what oms needs to build, test and run its local stack (idempotent):
#   1. missing Debian packages (apt-get update only when something is missing;
#      chromium is the browser of the web console's tests; clang and its
#      runtime libraries build the libFuzzer targets of tests/fuzz);
#   2. the Apache Kafka broker jars from Maven Central into $OMS_STATE/kafka/libs
#      (re-fetched only when scripts/kafka-pom.xml changes);
#   3. Apicurio Registry (a Confluent-compatible schema registry, Quarkus on
#      the JVM) from Maven Central into $OMS_STATE/registry/app, run by
#      scripts/registry.sh (REGISTRY=1 stack.sh up, the tests);
#   4. Python tools from PyPI into the venv $OMS_STATE/venv (kubernetes-validate,
#      which checks deploy/k8s offline; confluent-kafka with its Avro
#      serializer and registry client, the tests' independent producer;
#      nginx-light above runs deploy/nginx);
#   5. the alert sinks of the tests (tests/integration/0990-alerts.sh): Mailpit
#      (an SMTP server with an HTTP API) built with Go into $OMS_STATE/bin, and
#      Bugsink (a Sentry-compatible server) with gunicorn into the same venv.
# Fast (well under a second) when everything is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${OMS_STATE:-$ROOT/.oms}"
POM="$ROOT/scripts/kafka-pom.xml"
LIBS="$STATE/kafka/libs"
STAMP="$STATE/kafka/libs.stamp"

PACKAGES=(
  build-essential pkg-config
  librdkafka-dev libavro-dev libwebsockets-dev libev-dev libjansson-dev libjwt-dev
  libpq-dev libyaml-dev libcmocka-dev libcurl4-openssl-dev uuid-dev
  postgresql kcat
  openjdk-17-jre-headless maven
  ca-certificates curl procps psmisc iproute2 unzip time
  chromium
  nginx-light python3-venv
  clang libclang-rt-14-dev
)

# The end-to-end tests drive omsd with Node client libraries; machines that
# already have a Node.js keep theirs.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

log() { echo "deps: $*"; }
die() { echo "deps: $*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "not root and sudo is missing: cannot run '$*'"
  fi
}

# Prints the packages of PACKAGES that are not fully installed.
missing_packages() {
  local installed
  installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null \
               | awk '$2 == "installed" { print $1 }')" || true
  local p
  for p in "${PACKAGES[@]}"; do
    grep -qxF "$p" <<<"$installed" || echo "$p"
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  log "installing ${#missing[@]} Debian package(s): ${missing[*]}"
  local t0=$SECONDS
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null >"${TMPDIR:-/tmp}/oms-deps-apt.log" 2>&1 \
    || { tail -n 30 "${TMPDIR:-/tmp}/oms-deps-apt.log" >&2; die "apt-get install failed (full log: ${TMPDIR:-/tmp}/oms-deps-apt.log)"; }
  mapfile -t missing < <(missing_packages)
  [ "${#missing[@]}" -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
  log "Debian packages installed in $((SECONDS - t0)) s"
}

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }

install_kafka_jars() {
  [ -f "$POM" ] || die "missing $POM"
  local sum
  sum="$(pom_sum)"
  if [ -d "$LIBS" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (the maven package should provide it)"
  log "fetching the Kafka jars with Maven into $LIBS"
  local t0=$SECONDS tmp="$LIBS.tmp"
  mkdir -p "$STATE/kafka"
  rm -rf "$tmp"
  local mlog="$STATE/logs/deps-mvn.log"
  mkdir -p "$STATE/logs"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime </dev/null >"$mlog" 2>&1; then
    tail -n 40 "$mlog" >&2
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed (full log: $mlog)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar in $tmp after mvn"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  echo "$sum" >"$STAMP"
  log "$(find "$LIBS" -name '*.jar' | wc -l) jars fetched in $((SECONDS - t0)) s"
}

# Apicurio Registry 2.6: Maven Central has it as the "all" zip of
# apicurio-registry-app (the Quarkus runner jar plus its lib/ folder); the
# default storage is in-memory. Re-fetched only when the version changes.
REGISTRY_VERSION=2.6.13.Final
install_registry() {
  local dir="$STATE/registry" stamp="$STATE/registry/app.stamp"
  if [ -f "$dir/app/apicurio-registry-app-$REGISTRY_VERSION-runner.jar" ] \
     && [ "$(cat "$stamp" 2>/dev/null)" = "$REGISTRY_VERSION" ]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (the maven package should provide it)"
  log "fetching Apicurio Registry $REGISTRY_VERSION with Maven into $dir/app"
  local t0=$SECONDS tmp="$dir/app.tmp" mlog="$STATE/logs/deps-registry-mvn.log"
  mkdir -p "$dir" "$STATE/logs"
  rm -rf "$tmp"
  if ! mvn -q -B -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
        -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:zip:all" \
        -DoutputDirectory="$tmp" </dev/null >"$mlog" 2>&1; then
    tail -n 40 "$mlog" >&2
    rm -rf "$tmp"
    die "mvn could not fetch io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:zip:all (full log: $mlog)"
  fi
  unzip -q -o "$tmp/apicurio-registry-app-$REGISTRY_VERSION-all.zip" -d "$tmp/app" \
    || die "cannot unpack the Apicurio Registry zip"
  [ -f "$tmp/app/apicurio-registry-app-$REGISTRY_VERSION-runner.jar" ] \
    || die "no runner jar in the Apicurio Registry zip"
  rm -rf "$dir/app"
  mv "$tmp/app" "$dir/app"
  rm -rf "$tmp"
  echo "$REGISTRY_VERSION" >"$stamp"
  log "Apicurio Registry fetched in $((SECONDS - t0)) s"
}

# tests/node: the client libraries of the end-to-end tests (ws, and
# playwright-core driving Debian's chromium), from the npm registry, pinned
# by package-lock.json.
install_node_modules() {
  local dir="$ROOT/tests/node" sum
  [ -f "$dir/package-lock.json" ] || return 0
  sum="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$dir/node_modules/.oms-stamp" ] && [ "$(cat "$dir/node_modules/.oms-stamp")" = "$sum" ]; then
    return 0
  fi
  log "installing the test clients' npm packages into tests/node/node_modules"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null) || die "npm ci failed in tests/node"
  echo "$sum" >"$dir/node_modules/.oms-stamp"
}

# Python tools, pinned, in a venv of Debian's python3 (PEP 668: never into
# the system's site-packages). Re-installed only when the pins change.
PY_TOOLS=(kubernetes-validate==1.37.0)
install_python_tools() {
  local venv="$STATE/venv" want
  want="${PY_TOOLS[*]}"
  if [ -x "$venv/bin/python3" ] && [ "$(cat "$venv/.oms-stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "installing ${PY_TOOLS[*]} into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" || die "python3 -m venv failed (python3-venv missing?)"
  "$venv/bin/pip" install -q --disable-pip-version-check "${PY_TOOLS[@]}" </dev/null \
    || die "pip install ${PY_TOOLS[*]} failed"
  echo "$want" >"$venv/.oms-stamp"
}

# The schema registry test's independent producer: confluent-kafka with its
# Avro serializer (fastavro) and registry client, on top of the venv above,
# with a stamp of its own (the venv's stamp stays what it was).
PY_TEST_TOOLS=('confluent-kafka[avro,schemaregistry]==2.12.2')
install_python_test_tools() {
  local venv="$STATE/venv" want
  want="${PY_TEST_TOOLS[*]}"
  if [ "$(cat "$venv/.oms-stamp-test-tools" 2>/dev/null)" = "$want" ] \
     && "$venv/bin/python3" -c 'import confluent_kafka, fastavro' 2>/dev/null; then
    return 0
  fi
  log "installing ${PY_TEST_TOOLS[*]} into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${PY_TEST_TOOLS[@]}" </dev/null \
    || die "pip install ${PY_TEST_TOOLS[*]} failed"
  echo "$want" >"$venv/.oms-stamp-test-tools"
}

# The test sinks of the alerts (issue #18). Added to the venv of
# install_python_tools rather than to PY_TOOLS, so that the venv is not
# rebuilt for them; a stamp of their own says when the pins changed.
MAILPIT_VERSION=v1.33.1
ALERT_PY_TOOLS=(bugsink==2.6.2) # pins its own gunicorn (26.2.*)
install_alert_sinks() {
  local bin="$STATE/bin" venv="$STATE/venv" want
  if [ ! -x "$bin/mailpit" ] || [ "$(cat "$bin/mailpit.version" 2>/dev/null)" != "$MAILPIT_VERSION" ]; then
    local go
    go="$(command -v go || true)"
    [ -n "$go" ] || go=/usr/local/go/bin/go
    [ -x "$go" ] || die "go not found (needed to build mailpit $MAILPIT_VERSION; install Go or put it on PATH)"
    log "building mailpit $MAILPIT_VERSION into $bin"
    mkdir -p "$bin" "$STATE/logs"
    local gotmp="$STATE/go"
    GOBIN="$bin" GOPATH="$gotmp/path" GOCACHE="$gotmp/cache" GOFLAGS=-modcacherw \
      "$go" install "github.com/axllent/mailpit@$MAILPIT_VERSION" </dev/null >"$STATE/logs/deps-go.log" 2>&1 \
      || { tail -n 20 "$STATE/logs/deps-go.log" >&2; die "go install mailpit failed (full log: $STATE/logs/deps-go.log)"; }
    echo "$MAILPIT_VERSION" >"$bin/mailpit.version"
  fi
  want="${ALERT_PY_TOOLS[*]}"
  if [ ! -x "$venv/bin/bugsink-manage" ] || [ "$(cat "$venv/.oms-alerts-stamp" 2>/dev/null)" != "$want" ]; then
    log "installing ${ALERT_PY_TOOLS[*]} into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${ALERT_PY_TOOLS[@]}" </dev/null \
      || die "pip install ${ALERT_PY_TOOLS[*]} failed"
    echo "$want" >"$venv/.oms-alerts-stamp"
  fi
}

main() {
  [ "$#" -eq 0 ] || die "usage: deps.sh (no arguments; honours OMS_STATE)"
  install_packages
  install_kafka_jars
  install_registry
  install_python_tools
  install_python_test_tools
  install_alert_sinks
  install_node_modules
  log "all dependencies present"
}

main "$@"
