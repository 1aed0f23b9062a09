#!/usr/bin/env bash
# Services on a 3-node lab (one manager, two workers), release build: how long
# `service create --replicas N --network front` takes until `service ls` shows N/N running,
# and how much longer until a task's DNS (127.0.0.11, inside its namespace) answers
# tasks.NAME with all N addresses (gossip carrying every endpoint to every node).
# Usage: bench/services.sh [REPLICAS, default 100]
set -euo pipefail
cd "$(dirname "$0")/.."
replicas=${1:-100}
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal
lab=bs$$
"$shoal" lab up --nodes 3 --name "$lab" >/dev/null
trap '"$shoal" lab down "$lab" >/dev/null' EXIT
export SHOAL_HOST=unix:///run/shoal/labs/$lab.d/n1.sock
"$shoal" network create front >/dev/null
now() { date +%s.%N; }
start=$(now)
"$shoal" service create --name many --replicas "$replicas" --network front -d -- sleep 100000 >/dev/null
for _ in $(seq 1200); do  # bounded: 120 s
    [ "$("$shoal" service ls | awk '/many/ {print $4}')" = "$replicas/$replicas" ] && break
    sleep 0.05
done
running=$(now)
task=$("$shoal" service ps many --no-trunc --filter desired-state=running | awk 'NR == 2 {print $1}')
for _ in $(seq 1200); do
    [ "$(ip netns exec "shoal-t-${task:0:12}" dig +short +tcp tasks.many @127.0.0.11 | wc -l)" = "$replicas" ] && break
    sleep 0.05
done
resolved=$(now)
python3 - "$replicas" "$start" "$running" "$resolved" <<'PY'
import sys
n, start, running, resolved = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"| {n} replicas | {running - start:.2f} s to {n}/{n} running | +{resolved - running:.2f} s until tasks.many has all {n} |")
PY
