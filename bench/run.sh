#!/usr/bin/env bash
# The load benchmark (docs/PERFORMANCE.md). Builds release; in one run it
# measures
#   - the ceiling: a minimal actix-web hello-world on the same worker count;
#   - the peer: node-oidc-provider (installed from npm into a scratch directory),
#     client_credentials with ES256 JWT access tokens, and its JWKS;
#   - Tessera on the embedded defaults (SQLite, in-process cache) and on
#     PostgreSQL + Redis, every scenario;
# and prints each rate with its ratio to the ceiling and to the peer, the CPU
# every process spent per operation (the driver's too) and the resident memory.
#
# The driver is `wrk` (Debian package), with Lua scripts for the flows that
# change per request (bench/wrk/): it is several times faster than any server
# here, and each row shows its CPU per operation and flags a run where its core
# was above 90 % busy — then the row measured the driver, not the server.
#
#   bench/run.sh                         # 1 worker, 10 s per run, median of 3, both backends
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_BACKENDS=sqlite bench/run.sh   # a quick check
#   BENCH_TESSERA_BIN=/tmp/tessera-before bench/run.sh   # an earlier build
#   BENCH_PEER=0 bench/run.sh            # without node-oidc-provider
#   BENCH_PIPELINE=16 bench/run.sh       # pipelined GETs: the server, not wrk, saturates
#   BENCH_HALT_POLL=keep bench/run.sh    # leave a VM's guest halt polling as the machine has it
#   BENCH_PAIRS=15 BENCH_PAIR_SECONDS=2 bench/run.sh   # JWKS/discovery: more, shorter runs next to the ceiling
#
# Loopback only: every server binds 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
# JWKS and discovery: this many runs, each next to a run of the ceiling (below).
PAIRS=${BENCH_PAIRS:-9}
PAIR_SECONDS=${BENCH_PAIR_SECONDS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
WORKERS=${BENCH_WORKERS:-1}
BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
PEER=${BENCH_PEER:-1}
# HTTP/1.1 pipelining depth for the fixed-request scenarios (bench/wrk/static.lua).
export WRK_PIPELINE=${BENCH_PIPELINE:-1}
# A scenario named `name:rs256` runs `name` with a client that takes the OIDC
# default RS256 id_tokens; every other scenario uses an ES256 client (see
# docs/PERFORMANCE.md: one RSA-2048 signature costs as much as 28 ES256 ones).
SCENARIOS=${BENCH_SCENARIOS:-"jwks discovery client_credentials introspection userinfo refresh_token refresh_token:rs256 authorization_code authorization_code:rs256 password_sign_in"}
PG_ADMIN_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Connection parameters for the server only, e.g. BENCH_PG_PARAMS=sslmode=disable.
PG_PARAMS=${BENCH_PG_PARAMS:-}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
PASSWORD="bench password for tessera"
REDIRECT=https://app.example/callback

command -v wrk >/dev/null || { echo "bench/run.sh needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release --locked --bin tessera --example hello >&2
# BENCH_TESSERA_BIN measures another build of the server (say, the commit before a
# change) against the same ceiling, peer and scripts.
BIN=${BENCH_TESSERA_BIN:-target/release/tessera}
HELLO=target/release/examples/hello

WORK=$(mktemp -d)
PIDS=()
# Guest halt polling. In a KVM guest, a core that goes idle halts; waking a
# thread on it then costs the waker an inter-processor interrupt and a VM exit.
# The driver idles between answers whenever the server is the slower side, so
# the server's `send` of every answer paid ≈ 9 µs of kernel time here to wake
# `wrk` (docs/PERFORMANCE.md, round 2 step 5) — a cost of where the driver
# runs, not of the server, and one bare metal does not charge. The kernel's
# answer is to poll briefly before halting (Documentation/virt/
# guest-halt-polling.rst, default 200 µs); some VMs boot with it off
# (haltpoll.guest_halt_poll_ns=0). The run restores the kernel default for its
# duration, for every server alike, and says so in the report;
# BENCH_HALT_POLL=keep leaves the machine as it is, BENCH_HALT_POLL=N sets N ns.
HALT_POLL_FILE=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HALT_POLL=${BENCH_HALT_POLL:-200000}
halt_poll_before=""
if [ "$HALT_POLL" != keep ] && [ -w "$HALT_POLL_FILE" ]; then
  halt_poll_before=$(cat "$HALT_POLL_FILE")
  echo "$HALT_POLL" > "$HALT_POLL_FILE"
fi
halt_poll_used=$(cat "$HALT_POLL_FILE" 2>/dev/null || echo "n/a (no cpuidle-haltpoll)")
cleanup() {
  for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
  [ -z "$halt_poll_before" ] || echo "$halt_poll_before" > "$HALT_POLL_FILE" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# With one worker, every server gets core 0 and the driver core 1.
server_cpus="0"; load_cpus="1"
if [ "$WORKERS" -gt 1 ] || [ "$(nproc)" -lt 2 ]; then server_cpus="0-$(($(nproc) - 1))"; load_cpus="$server_cpus"; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" && return 0; sleep 0.1; done; echo "never came up: $1" >&2; exit 1; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
record() { # label scenario json [rss_kib] [the paired ceiling round's json]
  python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["backend"]=sys.argv[1]; d["scenario"]=sys.argv[2]; d["rss_kib"]=int(sys.argv[4] or 0)
pair=json.loads(sys.argv[5] or "{}")
if pair: d["ceiling"]=pair
print(json.dumps(d))' "$1" "$2" "$3" "${4:-0}" "${5:-}" >> "$RESULTS"
}
# measure SCRIPT URL CPU-GROUPS [seconds]: one wrk run, one JSON line.
measure() {
  python3 bench/measure.py --cpus "$load_cpus" --seconds "${4:-$SECONDS_EACH}" \
    --connections "$CONNECTIONS" --script "$1" --url "$2" --cpu "server=$3" ${CPU_EXTRA:-}
}
# ceiling_now SECONDS: one run of the hello-world (kept up, idle, for the whole
# run), as its own GET whatever the scenario's request is.
ceiling_now() {
  (export WRK_METHOD=GET WRK_BODY="" WRK_AUTHORIZATION="" WRK_COOKIE=""
   measure bench/wrk/static.lua "$HELLO_URL" "$HELLO_PID" "$1")
}
# rounds LABEL SCENARIO SCRIPT URL PID: ROUNDS runs (after a 1 s warm-up for
# scripts that may repeat), each recorded; the report takes the median.
# With PAIRED set (the scenarios judged against the ceiling), PAIRS shorter runs
# instead, each next to a run of the ceiling recorded with it, the two in turn
# first (ABBA): on this machine the hello-world's rate moves by a third between
# two 2-second runs (docs/PERFORMANCE.md, round 2 step 6), so a ratio to a
# ceiling measured minutes earlier says as much about the machine as about the
# server, and the report takes the median of the pairs' ratios instead.
rounds() {
  local n=$ROUNDS seconds=$SECONDS_EACH
  if [ -n "${PAIRED:-}" ]; then n=$PAIRS seconds=$PAIR_SECONDS; fi
  if [ "$3" = bench/wrk/static.lua ]; then measure "$3" "$4" "$5" 1 >/dev/null; fi
  for round in $(seq 1 "$n"); do
    if [ -n "${TOKENS_OF_ROUND:-}" ]; then export WRK_TOKENS="$TOKENS_OF_ROUND.$round"; fi
    local pair="" result
    if [ -n "${PAIRED:-}" ] && [ $((round % 2)) = 1 ]; then pair=$(ceiling_now "$seconds"); fi
    result=$(measure "$3" "$4" "$5" "$seconds")
    if [ -n "${PAIRED:-}" ] && [ $((round % 2)) = 0 ]; then pair=$(ceiling_now "$seconds"); fi
    record "$1" "$2" "$result" "$(kib "$5" VmRSS)" "$pair"
  done
}
static() { # METHOD [BODY] [AUTHORIZATION] [COOKIE]
  export WRK_METHOD="$1" WRK_BODY="${2:-}" WRK_AUTHORIZATION="${3:-}" WRK_COOKIE="${4:-}"
}

# The ceiling: measured first, and again next to each round of the scenarios
# judged against it (JWKS, discovery).
port=$(free_port)
taskset -c "$server_cpus" "$HELLO" "127.0.0.1:$port" "$WORKERS" & PIDS+=($!)
HELLO_URL="http://127.0.0.1:$port/" HELLO_PID=${PIDS[-1]}
wait_for "$HELLO_URL"
static GET
rounds ceiling hello bench/wrk/static.lua "$HELLO_URL" "$HELLO_PID"

# The peer, on the same core(s) (Node.js runs one JavaScript thread).
if [ "$PEER" = 1 ]; then
  mkdir "$WORK/peer"
  cp bench/peer/oidc-provider.mjs "$WORK/peer/"
  echo '{"private":true,"type":"module"}' > "$WORK/peer/package.json"
  (cd "$WORK/peer" && npm install --silent --no-audit --no-fund oidc-provider@9 >&2)
  port=$(free_port)
  (cd "$WORK/peer" && NODE_ENV=production exec taskset -c "$server_cpus" node oidc-provider.mjs "$port" bench peer-secret-for-the-benchmark 2>/dev/null) & PIDS+=($!)
  wait_for "http://127.0.0.1:$port/.well-known/openid-configuration"
  peer_pid=$(pgrep -f "oidc-provider.mjs $port")
  static POST grant_type=client_credentials "Basic $(printf bench:peer-secret-for-the-benchmark | base64 -w0)"
  rounds peer client_credentials bench/wrk/static.lua "http://127.0.0.1:$port/token" "$peer_pid"
  static GET
  rounds peer jwks bench/wrk/static.lua "http://127.0.0.1:$port/jwks" "$peer_pid"
  kill "$peer_pid"
fi

for backend in $BACKENDS; do
  port=$(free_port)
  base="http://127.0.0.1:$port"
  env=(TESSERA_ISSUER="$base" TESSERA_BIND="127.0.0.1:$port" TESSERA_WORKERS="$WORKERS"
       TESSERA_KEYS_DIR="$WORK/keys-$backend"
       # Attempts in flight count against the limits until they succeed (the
       # throttle holds under parallel requests): room for every connection.
       TESSERA_LOGIN_MAX_FAILURES=1000 TESSERA_LOGIN_MAX_FAILURES_PER_IP=100000)
  CPU_EXTRA=""
  case "$backend" in
    sqlite) env+=(DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc") ;;
    postgres)
      db="tessera_bench_$(date +%s)"
      psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $db" >&2
      env+=(DATABASE_URL="${PG_ADMIN_URL%/*}/$db${PG_PARAMS:+?$PG_PARAMS}" REDIS_URL="$REDIS" TESSERA_CACHE_PREFIX="$db:")
      CPU_EXTRA="--cpu db=name:postgres --cpu cache=name:redis-server" ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
  env "${env[@]}" "$BIN" migrate >&2
  declare -A client_id secret
  for alg in ES256 RS256; do
    client=$(env "${env[@]}" "$BIN" client create --name "bench-$alg" --first-party --json \
      --redirect-uri "$REDIRECT" --scope "openid email offline_access" \
      --grant-type authorization_code --grant-type refresh_token --grant-type client_credentials \
      --id-token-alg "$alg")
    client_id[$alg]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client")
    secret[$alg]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client")
  done
  printf '%s' "$PASSWORD" | env "${env[@]}" "$BIN" user create --email bench@example.com --password-stdin >&2

  # Default logging: the access line of every request is part of what is measured.
  env "${env[@]}" taskset -c "$server_cpus" "$BIN" serve 2>"$WORK/server-$backend.log" & PIDS+=($!)
  pid=${PIDS[-1]}
  wait_for "$base/readyz"
  sleep 1
  record "$backend" idle '{"scenario":"idle"}' "$(kib "$pid" VmRSS)"
  for alg in ES256 RS256; do
    mkdir -p "$WORK/$backend-$alg"
    python3 bench/prepare.py "$base" "${client_id[$alg]}" "${secret[$alg]}" bench@example.com \
      "$PASSWORD" "$REDIRECT" $((CONNECTIONS * ROUNDS)) "$WORK/$backend-$alg"
    # One pool of refresh tokens per round: each token is used once.
    split -n "l/$ROUNDS" -d -a 1 "$WORK/$backend-$alg/refresh_tokens" "$WORK/$backend-$alg/refresh."
    for r in $(seq 1 "$ROUNDS"); do mv "$WORK/$backend-$alg/refresh.$((r - 1))" "$WORK/$backend-$alg/round.$r"; done
  done
  for scenario in $SCENARIOS; do
    alg=ES256
    case "$scenario" in *:rs256) alg=RS256 ;; esac
    p=$WORK/$backend-$alg/prepared.json
    get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$p" "$1"; }
    basic=$(get basic)
    script=bench/wrk/static.lua path=/
    unset TOKENS_OF_ROUND PAIRED
    case "${scenario%:rs256}" in
      jwks) static GET; path=/.well-known/jwks.json; PAIRED=1 ;;
      discovery) static GET; path=/.well-known/openid-configuration; PAIRED=1 ;;
      client_credentials) static POST grant_type=client_credentials "$basic"; path=/token ;;
      introspection) static POST "token=$(get service_token)" "$basic"; path=/introspect ;;
      userinfo) static GET "" "Bearer $(get user_token)"; path=/userinfo ;;
      password_sign_in) static POST "$(get login_body)" "" "$(get login_cookie)"; path=/login ;;
      refresh_token)
        script=bench/wrk/refresh.lua path=/token
        export WRK_AUTHORIZATION="$basic"; TOKENS_OF_ROUND="$WORK/$backend-$alg/round" ;;
      authorization_code)
        script=bench/wrk/code.lua path=/
        export WRK_AUTHORIZATION="$basic" WRK_COOKIE="$(get session_cookie)" \
          WRK_CLIENT_ID="${client_id[$alg]}" WRK_REDIRECT_URI="$REDIRECT" \
          WRK_VERIFIER="$(get verifier)" WRK_CHALLENGE="$(get challenge)" ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    rounds "$backend" "$scenario" "$script" "$base$path" "$pid"
  done
  record "$backend" peak '{"scenario":"peak"}' "$(kib "$pid" VmHWM)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE $db" >&2 || true; fi
done

echo "guest halt polling: $halt_poll_used ns${halt_poll_before:+ for this run (the machine had $halt_poll_before ns, restored after)}"
python3 bench/report.py "$RESULTS" "$WORKERS" "$CONNECTIONS" "$SECONDS_EACH" "$ROUNDS"
