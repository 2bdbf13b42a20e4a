#!/usr/bin/env bash
# The failure drills of tests/drills/, short (about 2.5 minutes): a 3-broker
# cluster and a PostgreSQL of their own on free ports, then broker-kill,
# omsd-kill and pg-stop, each with 200 WebSocket clients and the producer at
# 200 events/s. The slow-client drill needs a minute of stall and runs in
# `make drills` only (with the full versions of the others).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${OMS_TEST_OUT:-$ROOT/build/test-output/0960-drills-short}")
mkdir -p "$out"
OMS_TEST_OUTPUT_DIR=$out exec bash "$ROOT/tests/drills/run.sh" --short
