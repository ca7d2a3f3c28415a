#!/usr/bin/env bash
# Soak test (docs/reliability.md): a release build of Ladder under mixed traffic at a fixed rate for a
# bounded time — sign-ins, TOTP step-ups, refreshes, introspections, code replays, refresh-token
# reuse, and admin reads through the CLI — then the invariants: no 5xx and no failed operation, every
# code exchanged at most once, every refresh family consistent, audit rows = security events the
# client saw, the audit chain intact, RSS growth and p99 within bounds. Exits non-zero on a violation.
#
#   tests/soak/run.sh                          # SQLite, 60 s at 20 operations/s
#   tests/soak/run.sh --postgres --duration 300
#
# --postgres uses $SOAK_DATABASE_URL, else $LADDER_TEST_DATABASE_URL, else the CI database, in a
# fresh schema dropped afterwards. Environment: CARGO_TARGET_DIR, SOAK_PORT (default 18090).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=60
RATE=20
POSTGRES=0
BUILD=1
PROFILE=release
MAX_P99_MS=2000
MAX_RSS_GROWTH_MIB=64
PORT=${SOAK_PORT:-18090}

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF
Options:
  --duration SECONDS       traffic time (default $DURATION)
  --rate N                 operations started per second (default $RATE)
  --postgres               run on PostgreSQL instead of SQLite
  --max-p99-ms MS          p99 bound per operation (default $MAX_P99_MS)
  --max-rss-growth-mib N   RSS growth bound, last quarter over first (default $MAX_RSS_GROWTH_MIB)
  --no-build               use the binaries already built
  --debug                  use a debug build (a quick smoke run; latencies are not meaningful)
EOF
}

while (($# > 0)); do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --postgres) POSTGRES=1; shift ;;
        --max-p99-ms) MAX_P99_MS=$2; shift 2 ;;
        --max-rss-growth-mib) MAX_RSS_GROWTH_MIB=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --debug) PROFILE=debug; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[soak] %s\n' "$*"; }
die() { printf '[soak] error: %s\n' "$*" >&2; exit 1; }

BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE
if [ "$BUILD" = 1 ]; then
    log "building ladder and ladder-bench ($PROFILE)"
    flags=(--quiet -p ladder -p ladder-bench)
    [ "$PROFILE" = release ] && flags+=(--release)
    (cd "$ROOT" && cargo build "${flags[@]}") || die "build failed"
fi
LADDER=$BIN/ladder
DRIVER=$BIN/ladder-bench
[ -x "$LADDER" ] && [ -x "$DRIVER" ] || die "missing $LADDER or $DRIVER (build first)"

WORK=$(mktemp -d)
SERVER_PID=""
ADMIN_PID=""
PG_URL=""
PG_SCHEMA=""
cleanup() {
    for pid in $ADMIN_PID $SERVER_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_SCHEMA" ]; then
        psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

export LADDER_SERVER_KEY
LADDER_SERVER_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
if [ "$POSTGRES" = 1 ]; then
    PG_URL=${SOAK_DATABASE_URL:-${LADDER_TEST_DATABASE_URL:-postgres://ladder:ladder@127.0.0.1:5432/ladder_test}}
    command -v psql >/dev/null || die "--postgres needs psql to create a fresh schema"
    PG_SCHEMA="ladder_soak_$$"
    psql "$PG_URL" -qc "CREATE SCHEMA $PG_SCHEMA" >/dev/null || die "cannot create a schema in $PG_URL"
    case "$PG_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
    export LADDER_DATABASE__URL="${PG_URL}${sep}options=-csearch_path%3D$PG_SCHEMA"
    DB_LABEL=PostgreSQL
else
    export LADDER_DATABASE__URL="sqlite://$WORK/ladder.db"
    DB_LABEL=SQLite
fi
export LADDER_METRICS__BIND=""
ISSUER="http://127.0.0.1:$PORT"
CONFIG=(--config "$ROOT/config/ladder.toml")
ladder() { "$LADDER" "${CONFIG[@]}" "$@" </dev/null; }

log "preparing the database ($DB_LABEL)"
ladder migrate >/dev/null || die "migrate failed"
add_users() { # prefix count
    seq 1 "$2" | xargs -P 2 -I{} sh -c "printf '%s' 'soak-password-$$' | '$LADDER' ${CONFIG[*]} user add '$1-{}' --password-stdin >/dev/null" \
        || die "creating $1 users failed"
    seq 1 "$2" | sed "s/^/$1-/; s/\$/:soak-password-$$/"
}
add_users user 32 >"$WORK/users.txt"
# Each TOTP step is accepted once per user: enough users for one step-up in 20 operations.
STEP_USERS=$(awk -v r="$RATE" 'BEGIN { n = int(r * 30 / 20 * 1.5) + 4; print (n < 8 ? 8 : n) }')
add_users step "$STEP_USERS" >"$WORK/step-users.txt"
CLIENT_JSON=$(ladder client add --name soak --redirect-uri http://127.0.0.1:9/cb \
    --grant-type authorization_code --grant-type refresh_token --json)
CLIENT_ID=$(printf '%s' "$CLIENT_JSON" | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
CLIENT_SECRET=$(printf '%s' "$CLIENT_JSON" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')
[ -n "$CLIENT_ID" ] && [ -n "$CLIENT_SECRET" ] || die "client add printed no credentials"
# `=`: a generated secret may begin with `-`, which would otherwise read as an option.
CLIENT=(--issuer "$ISSUER" --client-id="$CLIENT_ID" --client-secret="$CLIENT_SECRET" --redirect-uri http://127.0.0.1:9/cb)

RUST_LOG=warn "$LADDER" "${CONFIG[@]}" serve --bind "127.0.0.1:$PORT" --issuer "$ISSUER" >"$WORK/ladder.log" 2>&1 </dev/null &
SERVER_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$WORK/ladder.log" >&2; die "ladder exited at start"; }
    sleep 0.2
done

log "enrolling TOTP for $STEP_USERS users"
"$DRIVER" enrol-totp "${CLIENT[@]}" --users "$WORK/step-users.txt" --out "$WORK/totp-users.jsonl" --concurrency 4 >/dev/null \
    || die "TOTP enrolment failed"
BEFORE_SEQ=$(ladder audit export --format jsonl | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\).*/\1/p')

# Admin reads alongside the traffic, through the CLI (its own connection to the same database).
(
    reads=0 failed=0
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        for cmd in "client list" "user list" "keys list" "audit export --since 1m"; do
            # shellcheck disable=SC2086
            if ladder $cmd >/dev/null 2>>"$WORK/admin.err"; then reads=$((reads + 1)); else failed=$((failed + 1)); fi
        done
        echo "$reads $failed" >"$WORK/admin.count"
        sleep 1
    done
) &
ADMIN_PID=$!

log "soak: $DURATION s at $RATE operations/s on $DB_LABEL"
FAILED=0
"$DRIVER" soak "${CLIENT[@]}" --users "$WORK/users.txt" --totp-users "$WORK/totp-users.jsonl" \
    --duration "$DURATION" --rate "$RATE" --server-pid "$SERVER_PID" --max-p99-ms "$MAX_P99_MS" \
    --max-rss-growth-mib "$MAX_RSS_GROWTH_MIB" --report "$WORK/report.json" || FAILED=1
kill "$ADMIN_PID" 2>/dev/null || true
wait "$ADMIN_PID" 2>/dev/null || true
ADMIN_PID=""
read -r ADMIN_READS ADMIN_FAILED <"$WORK/admin.count" || { ADMIN_READS=0; ADMIN_FAILED=0; }
log "admin reads (CLI): $ADMIN_READS ok, $ADMIN_FAILED failed"
if [ "$ADMIN_FAILED" != 0 ] || [ "$ADMIN_READS" = 0 ]; then
    head -n 5 "$WORK/admin.err" >&2
    FAILED=1
fi

kill -0 "$SERVER_PID" 2>/dev/null || { log "VIOLATION: the server died"; FAILED=1; }
if [ -f "$WORK/report.json" ]; then
    ladder audit export --format jsonl >"$WORK/audit.jsonl" || FAILED=1
    "$DRIVER" soak-check --report "$WORK/report.json" --audit "$WORK/audit.jsonl" --after-seq "${BEFORE_SEQ:-0}" || FAILED=1
fi
if VERIFY=$(ladder audit verify 2>&1); then
    log "audit verify: $VERIFY"
else
    log "VIOLATION: audit verify: $VERIFY"
    FAILED=1
fi
if grep -q "database is locked" "$WORK/ladder.log"; then
    log "VIOLATION: \"database is locked\" in the server log"
    FAILED=1
fi

if [ "$FAILED" = 0 ]; then
    log "PASS ($DB_LABEL, $DURATION s at $RATE/s)"
else
    log "FAIL ($DB_LABEL); server log tail:"
    tail -n 20 "$WORK/ladder.log" >&2
    exit 1
fi
