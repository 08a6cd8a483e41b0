#!/bin/sh
# check.sh: quick self-test of hello-server, run by "make check".
# Usage: sh check.sh ./hello-server
# Starts the server on a free port, queries it with curl (skipped if curl is
# missing), then stops it with SIGTERM and expects exit status 0.

server=${1:-./hello-server}
tmp=$(mktemp -d 2>/dev/null) || { tmp=./check.tmp.$$ && mkdir "$tmp"; } || exit 1
pid=
failures=0

cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup 0
trap 'exit 1' 1 2 15

fail() {
    echo "check: FAIL: $*"
    failures=$((failures + 1))
}

if ! command -v curl >/dev/null 2>&1; then
    echo "check: SKIP (curl not found)"
    exit 0
fi

"$server" --port 0 --name Check --pid-file "$tmp/pid" >"$tmp/out" 2>"$tmp/err" &
pid=$!

# Wait (up to ~10 s) for "listening on http://HOST:PORT/".
tries=0
until grep -q '^listening on http://' "$tmp/out" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "check: FAIL: server did not start"
        cat "$tmp/err"
        exit 1
    fi
    sleep 0.1 2>/dev/null || sleep 1
done
url=$(sed -n 's/^listening on //p' "$tmp/out")
echo "check: server at $url"

[ "$(cat "$tmp/pid")" = "$pid" ] || fail "pid file does not hold $pid"

body=$(curl -s "$url")
case $body in
*" Check!") echo "check: GET / -> $body" ;;
*) fail "GET / returned '$body'" ;;
esac

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(curl -s "${url}health")" = ok ] || fail "GET /health"
[ "$(code "${url}nope")" = 404 ] || fail "GET /nope is not 404"
[ "$(code -I "$url")" = 200 ] || fail "HEAD / is not 200"
[ "$(code -X POST "$url")" = 405 ] || fail "POST / is not 405"

kill -TERM "$pid"
wait "$pid"
status=$?
pid=
[ "$status" = 0 ] || fail "exit status after SIGTERM is $status"
[ ! -e "$tmp/pid" ] || fail "pid file left behind"

if [ "$failures" -gt 0 ]; then
    echo "check: $failures failure(s); server log:"
    cat "$tmp/err"
    exit 1
fi
echo "check: all passed"
