#!/usr/bin/env bash
# etcd vs baton: how fast a leader-held command is handed over when its holder dies or stops.
#
#   benches/etcd-compare.sh [ROUNDS]        # default 10 rounds per signal per system
#
# Both systems run three contenders for one name on loopback, each wrapping the same CMD
# (`cmd.sh NAME`: appends "start NAME $EPOCHREALTIME" to a log, then `exec sleep`):
#
#   etcd:       etcdctl --endpoints=… lock --ttl 1 bench -- cmd.sh eN     (one local etcd)
#   baton-etcd: baton exec --config kN.toml --group bench -- cmd.sh kN    (three nodes, with
#               [cluster] backend = "etcd" on the same etcd, lease_ttl_s = 1; issue 15)
#   baton:      baton exec --config bN.toml --group bench -- cmd.sh bN    (three nodes, defaults)
#
# SYSTEMS="etcd baton-etcd" (say) runs only those (default: all three, in that order, one
# etcd for the first two); BATON=path/to/baton uses that binary instead of building
# target/release/baton.
#
# Each round signals the current holder — SIGKILL, then (next round) SIGTERM — and measures from
# just before the kill(2) (bash's $EPOCHREALTIME) to the next holder's CMD writing its start
# line (its own $EPOCHREALTIME): the same clock, and the same CMD start-up cost on both sides.
# The signalled contender is then started again, and the next round waits until the cluster has
# settled (etcd: 1 s; baton: 1.5 s, more than the 500 ms a restarted node abstains from votes).
#
# The signal goes to the holder's process group (each contender is started with setsid):
#   - etcdctl runs CMD in its own group and, while CMD runs, catches SIGTERM and does nothing
#     with it (it only cancels a lock wait), so SIGTERM to etcdctl alone never releases the
#     lock; to the group, CMD exits, `cmd.Run()` returns and etcdctl unlocks — the kind stop.
#     SIGKILL to the group kills both; the lock goes when the session's lease (TTL 1 s,
#     raised by etcd to its minimum of 1.5 × election timeout) expires.
#   - baton exec runs CMD in a process group of its own, so the group signal reaches only
#     `baton exec`: SIGTERM makes it stop CMD, hand off and exit; SIGKILL kills it, the kernel
#     kills CMD (parent-death signal) and the survivors prove the death by a refused reconnect.
#
# Installs etcd from Debian's packages when missing (etcd-server, etcd-client: etcd 3.4 on
# bookworm), builds `baton` (cargo build --release -p baton-cli). Loopback only; everything it
# starts is killed on exit. Needs bash ≥ 5 ($EPOCHREALTIME), setsid (util-linux), awk.
set -euo pipefail

ROUNDS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/baton-etcd-compare.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    [ -f "$WORK/etcd.pid" ] && kill -KILL "$(cat "$WORK/etcd.pid")" 2>/dev/null || true
    # Any CMD still running (an etcd CMD orphaned by a lost wrapper, say): by the pid it logged.
    if [ -f "$WORK/starts.log" ]; then
        awk '{print $4}' "$WORK/starts.log" | while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
    fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    echo "== installing etcd (etcd-server, etcd-client)"
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client >/dev/null
fi
SYSTEMS=${SYSTEMS:-etcd baton-etcd baton}
runs() { [[ " $SYSTEMS " == *" $1 "* ]]; }
if [ -z "${BATON:-}" ]; then
    echo "== building baton"
    (cd "$ROOT" && cargo build --quiet --release -p baton-cli)
    BATON=${CARGO_TARGET_DIR:-$ROOT/target}/release/baton
fi

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

cat >"$WORK/cmd.sh" <<EOF
#!/usr/bin/env bash
echo "start \$1 \$EPOCHREALTIME \$\$" >> "$WORK/starts.log"
exec sleep 100000
EOF
chmod +x "$WORK/cmd.sh"
: >"$WORK/starts.log"

declare -A WRAPPER   # contender name -> wrapper pid (also its process group)

start_contender() { # name, then the wrapper's command line
    local name=$1
    shift
    setsid "$@" >>"$WORK/$name.log" 2>&1 </dev/null &
    WRAPPER[$name]=$!
    PIDS+=("$!")
    # No job-status chatter ("Killed") when we kill it; bash still reaps it.
    disown "$!"
}

wait_gone() { # pid
    local deadline=$((SECONDS + 10))
    while kill -0 "$1" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.005; done
}

last_start() { tail -n 1 "$WORK/starts.log"; }

# Waits until the log has more than $1 lines; prints the new last line.
wait_new_start() {
    local before=$1 deadline=$((SECONDS + 20)) lines
    while :; do
        mapfile -t lines <"$WORK/starts.log"
        if [ "${#lines[@]}" -gt "$before" ]; then
            echo "${lines[-1]}"
            return
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "no new holder within 20 s" >&2
            return 1
        fi
        sleep 0.002
    done
}

# Waits until some contender holds (a start line whose CMD is alive).
wait_holder() {
    local deadline=$((SECONDS + 20)) line pid
    while :; do
        line=$(last_start)
        pid=$(echo "$line" | awk '{print $4}')
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            echo "$line"
            return
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "no holder within 20 s" >&2
            return 1
        fi
        sleep 0.01
    done
}

# One system: rounds of SIGKILL and SIGTERM to the holder. $1 = system, $2 = settle seconds,
# $3 = function that (re)starts contender NAME.
experiment() {
    local sys=$1 settle=$2 restart=$3 round sig line holder count t0 t1 next
    for round in $(seq 1 "$ROUNDS"); do
        for sig in KILL TERM; do
            line=$(wait_holder)
            holder=$(echo "$line" | awk '{print $2}')
            count=$(wc -l <"$WORK/starts.log")
            t0=$EPOCHREALTIME
            kill "-$sig" -- "-${WRAPPER[$holder]}"
            line=$(wait_new_start "$count")
            t1=$(echo "$line" | awk '{print $3}')
            next=$(echo "$line" | awk '{print $2}')
            echo "$sys $sig $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) * 1000 }')" >>"$WORK/results"
            printf '  %-5s round %2d SIG%-4s %s -> %s  %s ms\n' "$sys" "$round" "$sig" "$holder" "$next" \
                "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }')"
            wait_gone "${WRAPPER[$holder]}"
            # A SIGKILLed etcdctl leaves nothing behind (its CMD was in the group); make sure.
            kill -KILL "$(grep " $holder " "$WORK/starts.log" | tail -n 1 | awk '{print $4}')" 2>/dev/null || true
            "$restart" "$holder"
            sleep "$settle"
        done
    done
}

# ---------------------------------------------------------------------------------- etcd
EPORT=$(free_port)
PPORT=$(free_port)
echo "== etcd $(etcd --version | head -n 1 | awk '{print $3}') on 127.0.0.1:$EPORT"
etcd --name bench --data-dir "$WORK/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$EPORT" --advertise-client-urls "http://127.0.0.1:$EPORT" \
    --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
    --initial-cluster "bench=http://127.0.0.1:$PPORT" >"$WORK/etcd.log" 2>&1 &
echo $! >"$WORK/etcd.pid"
disown "$!"
for _ in $(seq 1 100); do
    etcdctl --endpoints="127.0.0.1:$EPORT" endpoint health >/dev/null 2>&1 && break
    sleep 0.1
done

etcd_contender() {
    start_contender "$1" etcdctl --endpoints="127.0.0.1:$EPORT" lock --ttl 1 bench -- "$WORK/cmd.sh" "$1"
}
if runs etcd; then
    for n in e0 e1 e2; do
        etcd_contender "$n"
        sleep 0.2
    done
    echo "== etcd: $ROUNDS rounds of SIGKILL and SIGTERM to the holder's process group"
    experiment etcd 1 etcd_contender
    for n in e0 e1 e2; do kill -KILL -- "-${WRAPPER[$n]}" 2>/dev/null || true; done
fi

printf '%s' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/cluster.secret"

# Three node configs "$1"0..2 (the transport between them as always), extra TOML in $2.
baton_configs() {
    local p=$1 extra=$2 n m seeds
    declare -A port
    for n in "${p}0" "${p}1" "${p}2"; do port[$n]=$(free_port); done
    for n in "${p}0" "${p}1" "${p}2"; do
        seeds=""
        for m in "${p}0" "${p}1" "${p}2"; do
            [ "$m" = "$n" ] && continue
            seeds="$seeds\"$m@127.0.0.1:${port[$m]}\", "
        done
        cat >"$WORK/$n.toml" <<EOF
[node]
name = "$n"
listen = "127.0.0.1:${port[$n]}"

[cluster]
name = "bench-$p"
seeds = [${seeds%, }]
voters = ["${p}0", "${p}1", "${p}2"]
secret_file = "cluster.secret"
$extra

[[group]]
name = "bench"
policy = "oldest-running"
EOF
    done
}

baton_contender() {
    start_contender "$1" "$BATON" exec --config "$WORK/$1.toml" --group bench -- "$WORK/cmd.sh" "$1"
}

# ---------------------------------------------------------------------------- baton on etcd
if runs baton-etcd; then
    baton_configs k "backend = \"etcd\"

[etcd]
endpoints = [\"http://127.0.0.1:$EPORT\"]
lease_ttl_s = 1"
    echo "== baton exec on etcd (backend = \"etcd\"): 3 nodes"
    for n in k0 k1 k2; do baton_contender "$n"; done
    sleep 1.5
    echo "== baton-etcd: $ROUNDS rounds of SIGKILL and SIGTERM to the holder's process group"
    experiment baton-etcd 1.5 baton_contender
    for n in k0 k1 k2; do kill -KILL -- "-${WRAPPER[$n]}" 2>/dev/null || true; done
fi
kill -KILL "$(cat "$WORK/etcd.pid")" 2>/dev/null || true

# ---------------------------------------------------------------------------------- baton
if runs baton; then
baton_configs b ""
echo "== baton exec: 3 nodes"
for n in b0 b1 b2; do baton_contender "$n"; done
sleep 1.5
echo "== baton: $ROUNDS rounds of SIGKILL and SIGTERM to the holder's process group"
experiment baton 1.5 baton_contender
fi

# ---------------------------------------------------------------------------------- report
echo
echo "== from the signal to the next holder's CMD start (ms), $ROUNDS rounds each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
summary() { # system signal
    awk -v s="$1" -v g="$2" '$1 == s && $2 == g { print $3 }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "n=0"; exit }
            p50 = v[int((NR * 50 + 99) / 100)]; p99 = v[int((NR * 99 + 99) / 100)]
            printf "n=%d min %.2f p50 %.2f p99 %.2f max %.2f\n", NR, v[1], p50, p99, v[NR] }'
}
median() {
    awk -v s="$1" -v g="$2" '$1 == s && $2 == g { print $3 }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) print v[int((NR * 50 + 99) / 100)]; else print 0 }'
}
for sig in KILL TERM; do
    e=$(median etcd $sig)
    for sys in $SYSTEMS; do
        printf 'SIG%-4s %-10s %s\n' "$sig" "$sys" "$(summary "$sys" $sig)"
    done
    for sys in $SYSTEMS; do
        [ "$sys" = etcd ] && continue
        runs etcd || continue
        b=$(median "$sys" $sig)
        printf 'SIG%-4s median etcd / %s = %s\n' "$sig" "$sys" "$(awk -v e="$e" -v b="$b" 'BEGIN { if (b > 0) printf "%.1f×", e / b; else print "n/a" }')"
    done
done
