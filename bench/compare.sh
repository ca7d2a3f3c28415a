#!/usr/bin/env bash
# Ladder and node-oidc-provider side by side, on loopback, one server at a time (bench/README.md).
#
#   bench/compare.sh                      # SQLite, 2 alternating rounds, 5 s per workload
#   bench/compare.sh --postgres postgres://ladder:ladder@127.0.0.1:5432/ladder
#   bench/compare.sh --smoke              # Ladder only, every workload once for a second (CI)
#   bench/compare.sh --id-token-alg RS256 # both servers sign ID tokens RS256 (default ES256)
#
# Builds Ladder (release, feature bench-insecure-hashing) and the load driver, installs the peer's
# locked dependencies, creates users, clients and TOTP enrolments, then runs every workload against
# Ladder and against the peer, alternating, with the server pinned to one core and the driver to
# another (taskset, when there are two cores). Prints one table with the ratios and each server's
# peak RSS. Every step is bounded in time.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=5
CONCURRENCY=32
ROUNDS=2
STEPUP_USERS=2000
ID_TOKEN_ALG=ES256
POSTGRES=""
SMOKE=0
BUILD=1
PROFILE=release
FIXED_RATE=1
OUT=""
LADDER_PORT=${LADDER_PORT:-18080}
PEER_PORT=${PEER_PORT:-13000}

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF

Options:
  --duration S        measured seconds per workload (default $DURATION)
  --concurrency N     connections / workers (default $CONCURRENCY)
  --rounds N          alternating rounds per server (default $ROUNDS)
  --stepup-users N    users enrolled with TOTP for the step-up workload (default $STEPUP_USERS)
  --postgres URL      run Ladder on PostgreSQL (a fresh schema is created and dropped with psql)
  --id-token-alg ALG  ID token signatures on both servers: ES256 (default), RS256 or EdDSA
  --no-fixed-rate     skip the fixed-rate latency runs
  --no-build          use the binaries already built
  --debug             build and run the debug binaries (quicker to build; for --smoke in CI)
  --smoke             Ladder only, every workload once, briefly; fails only if a workload errors
  --out DIR           results directory (default bench/results/<date>)
Environment: CARGO_TARGET_DIR, LADDER_PORT ($LADDER_PORT), PEER_PORT ($PEER_PORT).
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --stepup-users) STEPUP_USERS=$2; shift 2 ;;
        --postgres) POSTGRES=$2; shift 2 ;;
        --id-token-alg) ID_TOKEN_ALG=$2; shift 2 ;;
        --no-fixed-rate) FIXED_RATE=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --debug) PROFILE=debug; shift ;;
        --smoke) SMOKE=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ "$SMOKE" = 1 ]; then
    DURATION=1; ROUNDS=1; STEPUP_USERS=40; FIXED_RATE=0
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in cargo curl openssl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
if [ "$SMOKE" = 0 ]; then
    command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed for the peer"
fi

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/$PROFILE
OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
WORK=$OUT/work
# A fresh database every run: users and clients of an earlier run in the same --out would clash.
rm -rf "$WORK"
mkdir -p "$WORK"
OUT=$(cd "$OUT" && pwd); WORK=$OUT/work

# Pinning: server on the last core, load on the one before (where taskset and two cores exist).
CORES=$(nproc 2>/dev/null || echo 1)
if command -v taskset >/dev/null && [ "$CORES" -ge 2 ]; then
    SRV_CORE=$((CORES - 1)); LOAD_CORE=$((CORES - 2))
    ON_SERVER=(taskset -c "$SRV_CORE"); ON_LOAD=(taskset -c "$LOAD_CORE")
    PINNING="server on core $SRV_CORE, load on core $LOAD_CORE"
else
    ON_SERVER=(); ON_LOAD=()
    PINNING="not pinned (taskset or a second core missing)"
fi

PIDS=()
PG_SCHEMA=""
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_SCHEMA" ]; then
        timeout 20 psql "$POSTGRES" -qc "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- build
if [ "$BUILD" = 1 ]; then
    log "building ladder ($PROFILE, bench-insecure-hashing) and ladder-bench"
    release=(); [ "$PROFILE" = release ] && release=(--release)
    # Two builds: built together, the driver's dependencies would change the server's symbol names,
    # and bench/symbol-order.txt would no longer lay out its code (bench/README.md, "Code layout").
    (cd "$ROOT" && timeout 1800 cargo build "${release[@]}" --quiet --features bench-insecure-hashing -p ladder \
        && timeout 1800 cargo build "${release[@]}" --quiet -p ladder-bench) \
        || die "build failed"
fi
LADDER=$BIN/ladder
DRIVER=$BIN/ladder-bench
[ -x "$LADDER" ] && [ -x "$DRIVER" ] || die "missing $LADDER or $DRIVER (build first)"

if [ "$SMOKE" = 0 ] && [ ! -d "$ROOT/bench/peer/node_modules/oidc-provider" ]; then
    log "installing the peer's locked dependencies (npm ci)"
    (cd "$ROOT/bench/peer" && timeout 300 npm ci --no-audit --no-fund >/dev/null) || die "npm ci failed"
fi

# ---------------------------------------------------------------- Ladder's data
export LADDER_SERVER_KEY
LADDER_SERVER_KEY=$(openssl rand 32 | base64 | tr '+/' '-_' | tr -d '=\n')
if [ -n "$POSTGRES" ]; then
    command -v psql >/dev/null || die "--postgres needs psql to create a fresh schema"
    PG_SCHEMA="ladder_bench_$$"
    timeout 20 psql "$POSTGRES" -qc "CREATE SCHEMA $PG_SCHEMA" >/dev/null || die "cannot create schema in $POSTGRES"
    case "$POSTGRES" in *\?*) sep='&' ;; *) sep='?' ;; esac
    export LADDER_DATABASE__URL="${POSTGRES}${sep}options=-csearch_path%3D$PG_SCHEMA"
    DB_LABEL="PostgreSQL"
else
    export LADDER_DATABASE__URL="sqlite://$WORK/ladder.db"
    DB_LABEL="SQLite"
fi
export LADDER_METRICS__BIND=""
# Every sign-in comes from 127.0.0.1; only failures count, but keep any stray one from locking the run.
export LADDER_LOGIN__MAX_FAILURES_PER_IP=1000000000
LADDER_ISSUER="http://127.0.0.1:$LADDER_PORT"
PEER_ISSUER="http://127.0.0.1:$PEER_PORT"
CONFIG=(--config "$ROOT/config/ladder.toml")

add_users() { # prefix count password insecure(0|1)
    local prefix=$1 count=$2 password=$3 insecure=$4
    seq 1 "$count" | timeout 600 xargs -P 2 -I{} sh -c \
        "printf '%s' '$password' | LADDER_SECURITY__BENCH_INSECURE_HASHING=$([ "$insecure" = 1 ] && echo true || echo false) \
         '$LADDER' ${CONFIG[*]} user add '$prefix-{}' --password-stdin >/dev/null 2>>'$WORK/user-add.err'" \
        || { grep -v '^\*\*\*' "$WORK/user-add.err" | grep . | tail -n 3 >&2; die "creating $prefix users failed"; }
    seq 1 "$count" | sed "s/^/$prefix-/; s/\$/:$password/"
}

log "preparing Ladder's database ($DB_LABEL)"
timeout 120 "$LADDER" "${CONFIG[@]}" migrate >/dev/null || die "migrate failed"
add_users fast 32 "fast-password-$$" 1 > "$WORK/users-fast.txt"
add_users prod 4 "prod-password-$$" 0 > "$WORK/users-argon2.txt"
add_users step "$STEPUP_USERS" "step-password-$$" 1 > "$WORK/users-step.txt"
add_client() { # name [client add options…]: prints "id secret"
    local name=$1 json id secret; shift
    json=$(timeout 60 "$LADDER" "${CONFIG[@]}" client add --name "$name" --redirect-uri http://127.0.0.1:9/cb "$@" --json) \
        || die "client add $name failed"
    id=$(printf '%s' "$json" | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
    secret=$(printf '%s' "$json" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')
    [ -n "$id" ] && [ -n "$secret" ] || die "client add $name printed no credentials"
    echo "$id $secret"
}
read -r LADDER_CLIENT_ID LADDER_CLIENT_SECRET < <(add_client bench --id-token-alg "$ID_TOKEN_ALG" \
    --grant-type client_credentials --grant-type authorization_code --grant-type refresh_token)
# client_credentials with the other access-token algorithms (the peer is restarted with ALG=… for these).
read -r RS_CLIENT_ID RS_CLIENT_SECRET < <(add_client bench-rs256 --access-token-alg RS256 --grant-type client_credentials)
read -r ED_CLIENT_ID ED_CLIENT_SECRET < <(add_client bench-eddsa --access-token-alg EdDSA --grant-type client_credentials)
seq 1 32 | sed 's/^/peer-user-/; s/$/:any/' > "$WORK/users-peer.txt"

# ---------------------------------------------------------------- servers
SERVER_PID=""
start_server() { # ladder|peer [the peer's access-token alg]
    local which=$1 peer_alg=${2:-ES256} url
    if [ "$which" = ladder ]; then
        "${ON_SERVER[@]}" "$LADDER" "${CONFIG[@]}" serve --bind "127.0.0.1:$LADDER_PORT" --issuer "$LADDER_ISSUER" \
            >>"$WORK/ladder.log" 2>&1 &
        url=$LADDER_ISSUER
    else
        (cd "$ROOT/bench/peer" && NODE_ENV=production ALG=$peer_alg ID_TOKEN_ALG=$ID_TOKEN_ALG FORMAT=jwt ROTATE_REFRESH=1 PORT=$PEER_PORT \
            exec "${ON_SERVER[@]}" node peer.js) >>"$WORK/peer.log" 2>&1 &
        url=$PEER_ISSUER
    fi
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$url/.well-known/openid-configuration" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "$which exited at start (see $WORK/$which.log)"
        sleep 0.2
    done
    die "$which did not answer within 20 s"
}

hwm_kb() { # the running server's peak RSS so far (kB)
    local hwm
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    echo "${hwm:-0}"
}

stop_server() { # prints the server's peak RSS (kB)
    local hwm
    hwm=$(hwm_kb)
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    echo "$hwm"
}

FAILED=0
drive() { # which name workload [extra args…]: one workload against the running server
    local which=$1 name=$2 workload=$3; shift 3
    local issuer id secret users extra=()
    if [ "$which" = ladder ]; then
        # AS_ID / AS_SECRET: another of Ladder's bench clients for this run.
        issuer=$LADDER_ISSUER; id=${AS_ID:-$LADDER_CLIENT_ID}; secret=${AS_SECRET:-$LADDER_CLIENT_SECRET}
    else
        issuer=$PEER_ISSUER; id=bench; secret=benchsecret-benchsecret-benchsecret; extra=(--offline-access)
    fi
    local limit=$((DURATION * 6 + 90))
    if ! timeout "$limit" "${ON_LOAD[@]}" "$DRIVER" run --issuer "$issuer" --client-id="$id" --client-secret="$secret" \
        --workload "$workload" --name "$name" --duration "$DURATION" --concurrency "$CONCURRENCY" \
        --server-pid "$SERVER_PID" --json "$OUT/$which.jsonl" "${extra[@]}" "$@" >>"$OUT/$which.txt" 2>&1; then
        log "  $which $name failed (see $OUT/$which.txt)"
        FAILED=1
    fi
    tail -n +2 "$OUT/$which.txt" | grep -v '^workload' | tail -n 4 | grep -F -- "$name" | head -1 | cut -c1-140 >&2 || true
}

run_ladder() {
    local w=$WORK
    drive ladder discovery discovery
    drive ladder jwks jwks
    drive ladder client-credentials client-credentials
    AS_ID=$RS_CLIENT_ID AS_SECRET=$RS_CLIENT_SECRET drive ladder client-credentials-rs256 client-credentials
    AS_ID=$ED_CLIENT_ID AS_SECRET=$ED_CLIENT_SECRET drive ladder client-credentials-eddsa client-credentials
    drive ladder code-exchange code-exchange --users "$w/users-fast.txt"
    drive ladder refresh refresh --users "$w/users-fast.txt"
    drive ladder introspect introspect --users "$w/users-fast.txt"
    drive ladder userinfo userinfo --users "$w/users-fast.txt"
    drive ladder login-fast login --users "$w/users-fast.txt"
    drive ladder stepup stepup --totp-users "$w/totp-users.jsonl" --warmup 0
    # The peak so far is that of the work both servers do (the peer has no step-up, but step-up
    # hashes nothing); production argon2 adds a 19 MiB working memory per hash at once.
    LADDER_RSS_SHARED=$(max "$(hwm_kb)" "$LADDER_RSS_SHARED")
    drive ladder login-argon2 login --users "$w/users-argon2.txt"
}

run_peer() {
    local w=$WORK
    drive peer discovery discovery
    drive peer jwks jwks
    drive peer client-credentials client-credentials
    drive peer code-exchange code-exchange --users "$w/users-peer.txt"
    drive peer refresh refresh --users "$w/users-peer.txt"
    drive peer introspect introspect --users "$w/users-peer.txt"
    drive peer userinfo userinfo --users "$w/users-peer.txt"
    drive peer login-fast login --users "$w/users-peer.txt"
}

# LADDER_RSS_SHARED: Ladder's peak without production-argon2 sign-ins (the work both servers do).
LADDER_RSS=0; LADDER_RSS_SHARED=0; PEER_RSS=0
max() { [ "$1" -gt "$2" ] && echo "$1" || echo "$2"; }
stop_ladder() { # stops Ladder; its peak counts in both figures unless it ran production-hash sign-ins
    local hwm; hwm=$(stop_server)
    LADDER_RSS=$(max "$hwm" "$LADDER_RSS")
    [ "${1:-}" = argon2 ] || LADDER_RSS_SHARED=$(max "$hwm" "$LADDER_RSS_SHARED")
}

# ---------------------------------------------------------------- argon2 limit, TOTP enrolment
log "argon2id limit on the server's core"
ARGON2=$(timeout 60 "${ON_SERVER[@]}" "$DRIVER" argon2-limit --duration 3 | sed -n 's/.*"verifies_per_sec":\([0-9.]*\).*/\1/p')
log "  ${ARGON2:-?} verifications/s"

log "enrolling $STEPUP_USERS users in TOTP through the sign-in flow"
start_server ladder
timeout 600 "${ON_LOAD[@]}" "$DRIVER" enrol-totp --issuer "$LADDER_ISSUER" --client-id="$LADDER_CLIENT_ID" \
    --client-secret="$LADDER_CLIENT_SECRET" --users "$WORK/users-step.txt" --out "$WORK/totp-users.jsonl" \
    --concurrency 8 >&2 || die "TOTP enrolment failed"
stop_ladder

# ---------------------------------------------------------------- rounds
for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS: Ladder ($DB_LABEL)"
    start_server ladder
    run_ladder
    stop_ladder argon2
    [ "$SMOKE" = 1 ] && continue
    log "round $round/$ROUNDS: peer (node-oidc-provider)"
    start_server peer
    run_peer
    PEER_RSS=$(max "$(stop_server)" "$PEER_RSS")
    for alg in RS256 EdDSA; do
        start_server peer "$alg"
        drive peer "client-credentials-$(echo "$alg" | tr '[:upper:]' '[:lower:]')" client-credentials
        PEER_RSS=$(max "$(stop_server)" "$PEER_RSS")
    done
done

if [ "$SMOKE" = 1 ]; then
    cat "$OUT/ladder.txt"
    [ "$FAILED" = 0 ] || die "a workload failed to run"
    if grep -v '"errors":0,' "$OUT/ladder.jsonl" >/dev/null; then die "a workload reported errors"; fi
    log "smoke run passed"
    exit 0
fi

# ---------------------------------------------------------------- fixed rate: the tail at half the max
if [ "$FIXED_RATE" = 1 ]; then
    for name in client-credentials login-fast; do
        rate=$("$DRIVER" half-rate --ladder "$OUT/ladder.jsonl" --peer "$OUT/peer.jsonl" --name "$name")
        log "fixed rate: $name at $rate/s on both servers"
        workload=$name; users=()
        [ "$name" = login-fast ] && workload=login
        start_server ladder
        [ "$name" = login-fast ] && users=(--users "$WORK/users-fast.txt")
        drive ladder "$name@rate" "$workload" --rate "$rate" "${users[@]}"
        stop_ladder
        start_server peer
        [ "$name" = login-fast ] && users=(--users "$WORK/users-peer.txt")
        drive peer "$name@rate" "$workload" --rate "$rate" "${users[@]}"
        PEER_RSS=$(max "$(stop_server)" "$PEER_RSS")
    done
fi

# ---------------------------------------------------------------- the table
{
    echo "Ladder ($DB_LABEL) against node-oidc-provider $(node -p "require('$ROOT/bench/peer/node_modules/oidc-provider/package.json').version" 2>/dev/null || echo '?') (node $(node --version 2>/dev/null))"
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $CORES cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $PINNING"
    echo "$CONCURRENCY connections, $DURATION s per workload, $ROUNDS alternating rounds (best round shown); argon2id m=19456,t=2,p=1: $(printf "%.1f" "${ARGON2:-0}") verifications/s on one core"
    echo
    "$DRIVER" compare --ladder "$OUT/ladder.jsonl" --peer "$OUT/peer.jsonl" ${ARGON2:+--argon2 "$ARGON2"} \
        --ladder-rss "$LADDER_RSS" --ladder-rss-shared "$LADDER_RSS_SHARED" --peer-rss "$PEER_RSS"
} | tee "$OUT/table.md"
log "results in $OUT (table.md, ladder.jsonl, peer.jsonl, raw tables in ladder.txt / peer.txt)"
[ "$FAILED" = 0 ] || log "some runs failed: see the .txt files"
