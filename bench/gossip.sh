#!/usr/bin/env bash
# Gossip at scale, in the simulator (virtual time, so 1,000 members fit on 2 cores): the
# figures of bench/gossip.md. Each run is replayable from its seed; any false dead declaration,
# missed detection, entry that never reached everyone, or partition that did not heal fails
# the script. Usage: bench/gossip.sh [MEMBERS] (default 1000; also runs 200 for memberlist's size).
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-1000}
swift build -c release --product shoal >/dev/null
shoal=.build/release/shoal
out=.build/gossip-bench
mkdir -p "$out"
run() {
    local name=$1; shift
    echo "== $name: shoal gossip simulate $*"
    "$shoal" gossip simulate "$@" | tee "$out/$name.txt"
}
run detection-200 detection --members 200 --steady 600 --kills 3 --seed 1
run detection-$members detection --members "$members" --steady 600 --kills 3 --seed 1
run propagation-$members propagation --members "$members" --entries 20 --seed 2
run partition-$members partition --members "$members" --partition-seconds 60 --seed 3
echo "gossip bench: all scenarios passed (outputs in $out)"
