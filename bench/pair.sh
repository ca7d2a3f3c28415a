#!/usr/bin/env bash
# Two builds of Ladder against each other, at the same time, on the same core (bench/README.md).
#
#   bench/pair.sh BIN_A BIN_B                        # sign-ins, 4 rounds of 6 s
#   bench/pair.sh BIN_A BIN_B --workload userinfo --rounds 6 --duration 5
#
# Both servers run pinned to one core, each loaded by its own driver on the other core, so a change
# in the host's speed (on a shared machine, up to half between minutes) slows both alike: the ratio
# of their rates is the ratio of their costs. The two slots are not quite equal (the same build in
# both measures 0.97-1.04), so the builds swap slots every round; use an even number of rounds. For
# closed-loop workloads only (not the pooled code-exchange and stepup), and ones whose driver needs
# well under half a core (not discovery or jwks).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2"); shift 2
WORKLOAD=login; ROUNDS=4; DURATION=6
while [ $# -gt 0 ]; do
    case $1 in
        --workload) WORKLOAD=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
DRIVER=${CARGO_TARGET_DIR:-$ROOT/target}/release/ladder-bench
[ -x "$DRIVER" ] || { echo "build the driver first: cargo build --release -p ladder-bench" >&2; exit 1; }
SERVER_CORE=(); DRIVER_CORE=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then SERVER_CORE=(taskset -c 1); DRIVER_CORE=(taskset -c 0); fi

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

export LADDER_METRICS__BIND="" LADDER_LOGIN__MAX_FAILURES_PER_IP=1000000000
LADDER_SERVER_KEY=$(openssl rand 32 | base64 | tr '+/' '-_' | tr -d '=\n')
export LADDER_SERVER_KEY

# start BIN PORT DIR: a fresh database with 32 low-cost users and a client, and the server on core 1.
start() {
    local bin=$1 port=$2 dir=$3 conf=(--config "$ROOT/config/ladder.toml")
    mkdir -p "$dir"
    export LADDER_DATABASE__URL="sqlite://$dir/ladder.db"
    "$bin" "${conf[@]}" migrate >/dev/null
    for i in $(seq 1 32); do
        printf pair-pw-123456 | LADDER_SECURITY__BENCH_INSECURE_HASHING=true \
            "$bin" "${conf[@]}" user add "pair-$i" --password-stdin >/dev/null 2>&1
        echo "pair-$i:pair-pw-123456"
    done >"$dir/users.txt"
    "$bin" "${conf[@]}" client add --name pair --id-token-alg ES256 --redirect-uri http://127.0.0.1:9/cb \
        --grant-type client_credentials --grant-type authorization_code --grant-type refresh_token --json >"$dir/client.json"
    "${SERVER_CORE[@]}" "$bin" "${conf[@]}" serve --bind "127.0.0.1:$port" --issuer "http://127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    PIDS+=("$(cat "$dir/pid")")
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/.well-known/openid-configuration" && return 0
        sleep 0.1
    done
    echo "the server on port $port did not start: $dir/server.log" >&2
    exit 1
}

# drive PORT DIR: the workload's line (rate is the 7th column).
drive() {
    local id secret
    id=$(sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p' "$2/client.json")
    secret=$(sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p' "$2/client.json")
    "${DRIVER_CORE[@]}" timeout $((DURATION + 60)) "$DRIVER" run --issuer "http://127.0.0.1:$1" --client-id="$id" \
        --client-secret="$secret" --workload "$WORKLOAD" --duration "$DURATION" --concurrency 32 \
        --server-pid "$(cat "$2/pid")" --users "$2/users.txt" 2>&1 | grep -E "^$WORKLOAD " | head -1
}

echo "workload $WORKLOAD, $ROUNDS rounds of ${DURATION}s; A=$A B=$B"
echo "round  A rate  A µs/op  B rate  B µs/op  B/A rate"
ratios=()
for r in $(seq 1 "$ROUNDS"); do
    dir=$WORK/$r
    if [ $((r % 2)) = 1 ]; then first=(A "$A" 18101); second=(B "$B" 18102); else first=(B "$B" 18101); second=(A "$A" 18102); fi
    start "${first[1]}" "${first[2]}" "$dir/${first[0]}"
    start "${second[1]}" "${second[2]}" "$dir/${second[0]}"
    drive "${first[2]}" "$dir/${first[0]}" >"$dir/${first[0]}.out" &
    waiting=$!
    drive "${second[2]}" "$dir/${second[0]}" >"$dir/${second[0]}.out"
    wait "$waiting"
    kill "$(cat "$dir/A/pid")" "$(cat "$dir/B/pid")" 2>/dev/null || true
    read -r ra ca < <(awk '{print $7, $NF}' "$dir/A.out")
    read -r rb cb < <(awk '{print $7, $NF}' "$dir/B.out")
    ratio=$(awk -v a="$ra" -v b="$rb" 'BEGIN { printf "%.3f", b / a }')
    ratios+=("$ratio")
    printf '%5d  %6s  %7s  %6s  %7s  %8s\n' "$r" "$ra" "$ca" "$rb" "$cb" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "median B/A: %.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
