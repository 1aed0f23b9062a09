#!/usr/bin/env bash
# Scheduler benchmark: a service of T replicas on N synthetic nodes, scheduled by the leader's
# real reconciliation pass (orchestrator, allocator, scheduler, reaper) with every pass
# committed to the real store state machine (encoded, applied as Raft applies it, no I/O) —
# from the service's creation to every assignment committed, as swarmkit's own benchmark
# measures (ANCHORS.md: 0.19 s, 2.26 s, 2.20 s, 19.7 s). Each figure is the median of RUNS.
# Every run also checks that all tasks were placed, evenly (most − fewest ≤ 1 per node) and
# only where the constraint allows. Go is not on this machine, so swarmkit's figures are
# ANCHORS.md's, measured on this kind of machine.
# Usage: bench/scheduler.sh [RUNS, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
row() {  # nodes tasks constrained swarmkit_seconds label
    local times=()
    for _ in $(seq "$runs"); do
        args=(--nodes "$1" --tasks "$2" --json)
        [ "$3" = yes ] && args+=(--constrained)
        line=$("$shoal" scheduler-bench "${args[@]}")
        times+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line")")
    done
    m=$(printf '%s\n' "${times[@]}" | median)
    python3 - "$5" "$m" "$4" "$2" <<'PY'
import sys
label, shoal, swarmkit, tasks = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"| {label} | {shoal:.3f} s ({tasks / shoal / 1000:.0f}k tasks/s) | {swarmkit:.2f} s | {swarmkit / shoal:.1f}× |")
PY
}
echo "| nodes / tasks | Shoal | swarmkit (ANCHORS.md) | ratio |"
echo "| --- | --- | --- | --- |"
row 1000 1000 no 0.19 "1k / 1k"
row 1000 10000 no 2.26 "1k / 10k"
row 1000 10000 yes 2.20 "1k / 10k, constraint on half the nodes"
row 1000 100000 no 19.7 "1k / 100k"
