#!/usr/bin/env bash
# Raft benchmark: three local members each of etcd 3.4 (Debian's etcd-server) and of Shoal's
# Raft, one after the other, on 127.0.0.1, data on the same disk, fsync on (both defaults):
# committed puts/s and p50/p99 latency with 1 and 64 closed-loop clients (key 16 B, value 64 B),
# both through `shoal raft bench` — etcd through its v3 HTTP/JSON gateway (as ANCHORS.md
# measured it), Shoal through its own client protocol; clients talk to the leader. Then the
# failover time after kill -9 of Shoal's leader, over ROUNDS rounds.
# Usage: bench/raft.sh [SECONDS per run, default 15] [RUNS per figure, default 3] [ROUNDS, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
runs=${2:-3}
rounds=${3:-10}

need=""
for p in etcd-server etcd-client python3; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
if [ -n "$need" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "need root to install:$need" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
# Debian starts an etcd service on install; it would hold the ports and the disk.
systemctl stop etcd 2>/dev/null || true
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal

# Same disk for both: under /var/tmp (not a tmpfs).
work=$(mktemp -d /var/tmp/shoal-raft-bench.XXXXXX)
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    pids=()
    sleep 0.5
}
trap 'stop_all; rm -rf "$work"' EXIT
median() { python3 -c "import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
field() { python3 -c "import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# measure TARGET ENDPOINT CLIENTS [--etcd] → "puts/s p50 p99", medians over $runs runs
measure() {
    local name=$1 endpoint=$2 clients=$3; shift 3
    local rates=() p50s=() p99s=()
    for _ in $(seq "$runs"); do
        local line
        line=$("$shoal" raft bench --endpoints "$endpoint" --clients "$clients" --seconds "$seconds" --json "$@")
        echo "  $name $clients clients: $line" >&2
        rates+=("$(field "$line" puts_per_second)"); p50s+=("$(field "$line" p50_ms)"); p99s+=("$(field "$line" p99_ms)")
    done
    echo "$(median "${rates[@]}") $(median "${p50s[@]}") $(median "${p99s[@]}")"
}

# --- etcd 3.4: three members, default heartbeat 100 ms / election 1 s, fsync on -------------
cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
for i in 1 2 3; do
    etcd --name e$i --data-dir "$work/etcd$i" \
        --listen-client-urls http://127.0.0.1:${i}2379 --advertise-client-urls http://127.0.0.1:${i}2379 \
        --listen-peer-urls http://127.0.0.1:${i}2380 --initial-advertise-peer-urls http://127.0.0.1:${i}2380 \
        --initial-cluster "$cluster" --initial-cluster-state new --log-level error >"$work/etcd$i.log" 2>&1 &
    pids+=($!)
done
endpoints=127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379
leader=""
for _ in $(seq 100); do
    leader=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]: print(s["Endpoint"].replace("http://", ""))' || true)
    [ -n "$leader" ] && break
    sleep 0.1
done
[ -n "$leader" ] || { echo "etcd did not elect a leader" >&2; exit 1; }
echo "etcd leader at $leader" >&2
read -r etcd1 etcd1p50 etcd1p99 < <(measure etcd "$leader" 1 --etcd)
read -r etcd64 etcd64p50 etcd64p99 < <(measure etcd "$leader" 64 --etcd)
stop_all

# --- Shoal: three members, 50 ms ticks, election after 6-12 ticks, fsync on ----------------
peers="1=127.0.0.1:12377,2=127.0.0.1:22377,3=127.0.0.1:32377"
start_member() {
    "$shoal" raft serve --id "$1" --listen "127.0.0.1:${1}2377" --peers "$peers" --data-dir "$work/shoal$1" >>"$work/shoal$1.log" 2>&1 &
    pids+=($!)
    eval "member_pid_$1=$!"
}
for i in 1 2 3; do start_member $i; done
endpoints=127.0.0.1:12377,127.0.0.1:22377,127.0.0.1:32377
leader_info() { "$shoal" raft status --endpoints "$endpoints" --json | python3 -c '
import json, sys
for line in sys.stdin:
    s = json.loads(line)
    if s["role"] == "leader": print(s["id"], s["term"])'; }
for _ in $(seq 100); do [ -n "$(leader_info)" ] && break; sleep 0.1; done
read -r leader_id _ < <(leader_info)
echo "shoal leader is member $leader_id" >&2
read -r shoal1 shoal1p50 shoal1p99 < <(measure shoal "127.0.0.1:${leader_id}2377" 1)
read -r shoal64 shoal64p50 shoal64p99 < <(measure shoal "127.0.0.1:${leader_id}2377" 64)

# --- failover: kill -9 the leader under a light write load, time until another leads ----------
failovers=()
for round in $(seq "$rounds"); do
    "$shoal" raft load --endpoints "$endpoints" --seconds 3 --prefix "failover$round-" >"$work/load$round.log" 2>&1 &
    load=$!
    sleep 1
    read -r old_id old_term < <(leader_info)
    "$shoal" raft wait-leader --endpoints "$endpoints" --above-term "$old_term" --not "$old_id" >"$work/wait$round.log" &
    waiter=$!
    pid_var=member_pid_$old_id
    kill -9 "${!pid_var}"
    wait "$waiter"
    failovers+=("$(awk '{print $(NF-1)}' "$work/wait$round.log")")
    wait "$load" || { echo "round $round: load check failed: $(cat "$work/load$round.log")" >&2; exit 1; }
    grep -q "missing 0" "$work/load$round.log" || { echo "round $round lost writes" >&2; exit 1; }
    start_member "$old_id"
    sleep 1.5
done
stop_all
sorted=$(printf '%s\n' "${failovers[@]}" | sort -n | tr '\n' ' ')

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
cat <<TABLE

| clients | etcd 3.4 puts/s | p50 | p99 | Shoal puts/s | p50 | p99 | Shoal / etcd |
| --- | --- | --- | --- | --- | --- | --- | --- |
| 1 | $etcd1 | $etcd1p50 ms | $etcd1p99 ms | $shoal1 | $shoal1p50 ms | $shoal1p99 ms | $(ratio "$shoal1" "$etcd1")× |
| 64 | $etcd64 | $etcd64p50 ms | $etcd64p99 ms | $shoal64 | $shoal64p50 ms | $shoal64p99 ms | $(ratio "$shoal64" "$etcd64")× |

Shoal failover after kill -9 of the leader, $rounds rounds, ms (sorted): $sorted
median $(median "${failovers[@]}") ms; every acknowledged write of every round read back.
TABLE
