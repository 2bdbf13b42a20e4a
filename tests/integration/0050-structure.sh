#!/usr/bin/env bash
# The gateway's layering (cmd/omsd/conn.h): no circle of files calling each
# other in cmd/omsd; the core (conn.c xq.c http.c users.c frame.c age.c
# request.c) calls no dialect (plain.c socketio.c rest.c static.c) nor the
# lws glue (server.c workers.c); oms-producer serve and omsd share
# pkg/httpd; one load generator with a file per protocol.
. "$(dirname "$0")/lib.sh"

python3 "$ROOT/scripts/file-deps.py" "$ROOT/cmd/omsd" >"$T/deps.txt"
rc=$?
sed 's/^/#   /' "$T/deps.txt" | grep -E "circle" || true
check "no circle of files in cmd/omsd" test "$rc" -eq 0
core="conn.c xq.c http.c users.c frame.c age.c request.c"
upper="plain.c socketio.c rest.c static.c metrics.c server.c workers.c resume.c fanout.c main.c"
bad=""
for f in $core; do
    deps=$(awk -v f="$f" '$1 == f { for (i = 3; i <= NF; i++) print $i }' "$T/deps.txt")
    for u in $upper; do
        if printf '%s\n' $deps | grep -qx "$u"; then bad="$bad $f->$u"; fi
    done
done
check "the core calls no dialect nor the lws glue${bad:+ (${bad# })}" test -z "$bad"
# the checker itself finds a circle when there is one
mkdir -p "$T/circle"
printf 'void a_fn(void);\nvoid b_fn(void);\nvoid a_fn(void)\n{\n    b_fn();\n}\n' >"$T/circle/a.c"
printf 'void a_fn(void);\nvoid b_fn(void)\n{\n    a_fn();\n}\n' >"$T/circle/b.c"
expect_fail=0
python3 "$ROOT/scripts/file-deps.py" "$T/circle" >"$T/circle.txt" || expect_fail=1
check "the checker reports a circle it is shown" test "$expect_fail" -eq 1
check "... naming its files" grep -q "circle: a.c <-> b.c" "$T/circle.txt"
check "omsd and oms-producer serve HTTP through pkg/httpd" \
    sh -c "grep -l 'httpd/httpd.h' '$ROOT'/cmd/omsd/*.[ch] '$ROOT'/cmd/oms-producer/*.c | grep -q oms-producer"
check "one load generator, a file per protocol" test -d "$ROOT/tests/tools/oms-load" -a ! -e "$ROOT/tests/tools/oms-wsload.c" -a ! -e "$ROOT/tests/tools/oms-sioload.c"
