#!/usr/bin/env bash
# Scheduler benchmark: a service of T replicas on N synthetic nodes, scheduled by the leader's
# real reconciliation pass (orchestrator, allocator, scheduler, reaper) with every pass
# committed to the real store state machine (encoded, applied as Raft applies it, no I/O) —
# from the service's creation to every assignment committed, as swarmkit's own benchmark
# measures (ANCHORS.md: 0.19 s, 2.26 s, 2.20 s, 19.7 s). Each figure is the median of RUNS.
# Every run also checks that all tasks were placed, evenly (most − fewest ≤ 1 per node) and
# only where the constraint allows.
# swarmkit's own benchmarks run beside it in the same run when SWARMKIT_GIT names a git
# directory of moby/swarmkit holding tag v2.1.1 (its vendor/ makes the build offline; Go comes
# from Debian's golang-go, installed when missing); without it the swarmkit column is
# ANCHORS.md's figures, measured on this kind of machine.
# Usage: [SWARMKIT_GIT=/path/to/swarmkit.git] bench/scheduler.sh [RUNS, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal

# swarmkit's benchmark NAME in seconds: the mean of RUNS iterations (-benchtime RUNSx).
swarmkit=""
if [ -n "${SWARMKIT_GIT:-}" ]; then
    command -v go >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; }
    swarmkit=$(mktemp -d /var/tmp/swarmkit.XXXXXX)
    trap 'rm -rf "$swarmkit"' EXIT
    git --git-dir "$SWARMKIT_GIT" archive v2.1.1 | tar -x -C "$swarmkit"
fi
swarmkit_seconds() {  # BenchmarkName fallback
    if [ -z "$swarmkit" ]; then echo "$2"; return; fi
    (cd "$swarmkit" && GOFLAGS=-mod=vendor GOPATH=/var/tmp/go-bench-cache GOCACHE=/var/tmp/go-bench-cache/build \
        go test -run '^$' -bench "^$1\$" -benchtime "${runs}x" ./manager/scheduler/ 2>/dev/null) \
        | awk -v name="$1" '$1 ~ name { print $3 / 1e9 }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
row() {  # nodes tasks constrained swarmkit_benchmark swarmkit_fallback_seconds label
    local times=() theirs
    theirs=$(swarmkit_seconds "$4" "$5")
    for _ in $(seq "$runs"); do
        args=(--nodes "$1" --tasks "$2" --json)
        [ "$3" = yes ] && args+=(--constrained)
        line=$("$shoal" scheduler-bench "${args[@]}")
        times+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line")")
    done
    m=$(printf '%s\n' "${times[@]}" | median)
    python3 - "$6" "$m" "$theirs" "$2" <<'PY'
import sys
label, shoal, swarmkit, tasks = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"| {label} | {shoal:.3f} s ({tasks / shoal / 1000:.0f}k tasks/s) | {swarmkit:.2f} s | {swarmkit / shoal:.1f}× |")
PY
}
echo "| nodes / tasks | Shoal | swarmkit v2.1.1 ($([ -n "$swarmkit" ] && echo "same run, $(go version | awk '{print $3}')" || echo "ANCHORS.md")) | ratio |"
echo "| --- | --- | --- | --- |"
row 1000 1000 no BenchmarkScheduler1kNodes1kTasks 0.19 "1k / 1k"
row 1000 10000 no BenchmarkScheduler1kNodes10kTasks 2.26 "1k / 10k"
row 1000 10000 yes BenchmarkSchedulerConstraints1kNodes10kTasks 2.20 "1k / 10k, constrained (Shoal: a label on half the nodes; swarmkit: a network plugin on a third)"
row 1000 100000 no BenchmarkScheduler1kNodes100kTasks 19.7 "1k / 100k"
