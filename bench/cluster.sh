#!/usr/bin/env bash
# The cluster store through its API, beside etcd 3.4 (Debian's etcd-server), in one run:
# three etcd members on 127.0.0.1 and a three-manager Shoal lab, data of both under /var/tmp
# (the same disk, fsync on), one after the other.
#   - writes/s and p50/p99 with 1 and 64 closed-loop clients: etcd puts through its v3 JSON
#     gateway (`shoal raft bench --etcd`, as bench/raft.sh and ANCHORS.md measure it); Shoal
#     object writes through the API on the leader's socket (`shoal api-bench`: each client
#     rewrites its network's labels with the version it read, one Raft entry per write);
#   - failover: kill -9 of the leader under one writer, to the first write acknowledged
#     through a survivor (etcd: a put through a survivor's gateway; Shoal: an API write through
#     a surviving manager's socket, which forwards it to the new leader), over ROUNDS rounds.
# Usage: bench/cluster.sh [SECONDS per run, default 15] [RUNS per figure, default 3] [ROUNDS, default 7]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
runs=${2:-3}
rounds=${3:-7}

[ "$(id -u)" -eq 0 ] || { echo "run as root (the lab makes network namespaces)" >&2; exit 1; }
need=""
for p in etcd-server etcd-client python3; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
if [ -n "$need" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
# Debian starts an etcd service on install; it would hold the ports and the disk.
systemctl stop etcd 2>/dev/null || true
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal

work=$(mktemp -d /var/tmp/shoal-cluster-bench.XXXXXX)
lab="cb$$"
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    pids=()
    sleep 0.5
}
cleanup() {
    # The lab's own record sweeps what its daemons made; a daemon restarted here is not in it,
    # so its node's ingress sandbox is removed by name (the first 12 characters of its node ID).
    local ids
    ids=$("$shoal" -H "unix:///run/shoal/labs/$lab.d/n1.sock" node ls -q 2>/dev/null || true)
    ids="$ids $("$shoal" -H "unix:///run/shoal/labs/$lab.d/n2.sock" node ls -q 2>/dev/null || true)"
    stop_all
    "$shoal" lab down "$lab" >/dev/null 2>&1 || true
    for id in $ids; do
        ip netns list | grep -q "^shoal-ingress-${id:0:12}\b" && ip netns delete "shoal-ingress-${id:0:12}" || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
median() { python3 -c "import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
field() { python3 -c "import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# measure NAME CLIENTS COMMAND… → "rate p50 p99", medians over $runs runs of COMMAND --json
measure() {
    local name=$1 clients=$2; shift 2
    local rates=() p50s=() p99s=()
    for _ in $(seq "$runs"); do
        local line
        line=$("$@" --clients "$clients" --seconds "$seconds" --json)
        echo "  $name $clients clients: $line" >&2
        local rate
        rate=$(python3 -c "import json, sys; d = json.loads(sys.argv[1]); print(d.get('puts_per_second') or d.get('writes_per_second') or d.get('reads_per_second'))" "$line")
        rates+=("$rate"); p50s+=("$(field "$line" p50_ms)"); p99s+=("$(field "$line" p99_ms)")
    done
    echo "$(median "${rates[@]}") $(median "${p50s[@]}") $(median "${p99s[@]}")"
}

# --- etcd 3.4: three members, default heartbeat 100 ms / election 1 s, fsync on -------------
cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
start_etcd() {
    etcd --name "e$1" --data-dir "$work/etcd$1" \
        --listen-client-urls "http://127.0.0.1:${1}2379" --advertise-client-urls "http://127.0.0.1:${1}2379" \
        --listen-peer-urls "http://127.0.0.1:${1}2380" --initial-advertise-peer-urls "http://127.0.0.1:${1}2380" \
        --initial-cluster "$cluster" --initial-cluster-state "${2:-new}" --log-level error >>"$work/etcd$1.log" 2>&1 &
    pids+=($!)
    eval "etcd_pid_$1=$!"
}
for i in 1 2 3; do start_etcd $i; done
endpoints=127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379
etcd_leader() {
    ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]: print(s["Endpoint"].rsplit(":", 1)[1][0])' || true
}
leader=""
for _ in $(seq 100); do leader=$(etcd_leader); [ -n "$leader" ] && break; sleep 0.1; done
[ -n "$leader" ] || { echo "etcd did not elect a leader" >&2; exit 1; }
read -r etcd1 etcd1p50 etcd1p99 < <(measure etcd 1 "$shoal" raft bench --endpoints "127.0.0.1:${leader}2379" --etcd)
read -r etcd64 etcd64p50 etcd64p99 < <(measure etcd 64 "$shoal" raft bench --endpoints "127.0.0.1:${leader}2379" --etcd)

# etcd failover: one writer through a survivor's gateway, the leader killed after a second.
etcd_failovers=()
for round in $(seq "$rounds"); do
    leader=""
    for _ in $(seq 100); do leader=$(etcd_leader); [ -n "$leader" ] && break; sleep 0.1; done
    survivor=$(( leader % 3 + 1 ))
    pid_var=etcd_pid_$leader
    ms=$(python3 - "$survivor" "${!pid_var}" <<'PY'
import base64, json, os, signal, sys, time, urllib.request
survivor, victim = sys.argv[1], int(sys.argv[2])
url = f"http://127.0.0.1:{survivor}2379/v3/kv/put"
def put(n):
    body = json.dumps({"key": base64.b64encode(b"failover").decode(), "value": base64.b64encode(str(n).encode()).decode()}).encode()
    try:
        # A short timeout: a put sent to a member that waits for the dead leader is given up
        # and sent again, so the first acknowledged one is timed to within 0.25 s.
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=0.25) as response:
            return response.status == 200
    except Exception:
        return False
start, killed, n = time.monotonic(), None, 0
while time.monotonic() - start < 60:
    if killed is None and time.monotonic() - start >= 1:
        os.kill(victim, signal.SIGKILL); killed = time.monotonic()
    n += 1
    if put(n) and killed is not None:
        print(round((time.monotonic() - killed) * 1000)); break
PY
)
    echo "  etcd failover round $round: $ms ms" >&2
    etcd_failovers+=("$ms")
    start_etcd "$leader" existing
    sleep 2
done
stop_all

# --- Shoal: a three-manager lab, data on the same disk -------------------------------------
"$shoal" lab up --nodes 3 --managers 3 --name "$lab" --data-root "$work/shoal" >"$work/lab.log" 2>&1 \
    || { cat "$work/lab.log" >&2; exit 1; }
sockets=/run/shoal/labs/$lab.d
shoal_leader() {
    "$shoal" -H "unix://$sockets/n${1:-1}.sock" node ls --format json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    n = json.loads(line)
    if n["ManagerStatus"] == "Leader": print(n["Hostname"][1:])' || true
}
leader=$(shoal_leader)
[ -n "$leader" ] || { echo "no Shoal leader" >&2; exit 1; }
read -r shoal1 shoal1p50 shoal1p99 < <(measure shoal 1 "$shoal" api-bench -H "unix://$sockets/n$leader.sock")
read -r shoal64 shoal64p50 shoal64p99 < <(measure shoal 64 "$shoal" api-bench -H "unix://$sockets/n$leader.sock")
read -r reads1 reads1p50 reads1p99 < <(measure shoal-reads 1 "$shoal" api-bench -H "unix://$sockets/n$leader.sock" --reads)

# Shoal failover: one writer through a surviving manager's socket; the leader's daemon is
# killed (and restarted from its data directory before the next round).
shoal_failovers=()
for round in $(seq "$rounds"); do
    leader=""
    for _ in $(seq 100); do leader=$(shoal_leader 1); [ -z "$leader" ] && leader=$(shoal_leader 2); [ -n "$leader" ] && break; sleep 0.1; done
    survivor=$(( leader % 3 + 1 ))
    victim=$(pgrep -f -- "--socket $sockets/n$leader.sock" | head -1)
    mapfile -d '' command < "/proc/$victim/cmdline"
    line=$("$shoal" api-bench -H "unix://$sockets/n$survivor.sock" --failover --kill "$victim" --json)
    ms=$(field "$line" failover_ms)
    echo "  shoal failover round $round (n$leader killed, writes through n$survivor): $ms ms" >&2
    shoal_failovers+=("$ms")
    ip netns exec "shoal-$lab-n$leader" "${command[@]}" >>"$work/restarted-n$leader.log" 2>&1 &
    pids+=($!)
    # Bounded: 100 checks, 100 ms apart, until every manager is Leader or Reachable again.
    for _ in $(seq 100); do
        ready=$("$shoal" -H "unix://$sockets/n$survivor.sock" node ls --format json 2>/dev/null \
            | python3 -c 'import json, sys; print(sum(json.loads(l)["ManagerStatus"] in ("Leader", "Reachable") for l in sys.stdin))' || echo 0)
        [ "$ready" = 3 ] && break
        sleep 0.1
    done
    sleep 1
done

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
sorted() { printf '%s\n' "$@" | sort -n | tr '\n' ' '; }
cat <<TABLE

| clients | etcd 3.4 puts/s | p50 | p99 | Shoal API writes/s | p50 | p99 | Shoal / etcd |
| --- | --- | --- | --- | --- | --- | --- | --- |
| 1 | $etcd1 | $etcd1p50 ms | $etcd1p99 ms | $shoal1 | $shoal1p50 ms | $shoal1p99 ms | $(ratio "$shoal1" "$etcd1")× |
| 64 | $etcd64 | $etcd64p50 ms | $etcd64p99 ms | $shoal64 | $shoal64p50 ms | $shoal64p99 ms | $(ratio "$shoal64" "$etcd64")× |

Shoal linearizable reads through the API (GetNetwork, ReadIndex), 1 client: $reads1/s, p50 $reads1p50 ms, p99 $reads1p99 ms.

Failover, kill -9 of the leader to the first write acknowledged through a survivor, $rounds rounds, ms (sorted):
etcd $(sorted "${etcd_failovers[@]}")(median $(median "${etcd_failovers[@]}")); Shoal $(sorted "${shoal_failovers[@]}")(median $(median "${shoal_failovers[@]}"))
TABLE
