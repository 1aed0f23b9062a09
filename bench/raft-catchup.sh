#!/usr/bin/env bash
# A member far behind catches up by a chunked snapshot: three members on 127.0.0.1, one killed,
# ENTRIES puts committed without it (default 1,000,000), then it restarts; reports how long the
# fill and the catch-up took and how many snapshot chunks it received.
# Usage: bench/raft-catchup.sh [ENTRIES]
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${1:-1000000}
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal
work=$(mktemp -d /var/tmp/shoal-raft-catchup.XXXXXX)
pids=()
trap 'for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
peers="1=127.0.0.1:14377,2=127.0.0.1:24377,3=127.0.0.1:34377"
endpoints=127.0.0.1:14377,127.0.0.1:24377,127.0.0.1:34377
start() {
    "$shoal" raft serve --id "$1" --listen "127.0.0.1:${1}4377" --peers "$peers" --data-dir "$work/m$1" >>"$work/m$1.log" 2>&1 &
    pids+=($!)
    last_pid=$!
}
start 1; start 2; start 3; behind_pid=$last_pid
sleep 2
kill -9 "$behind_pid"
status() { "$shoal" raft status --endpoints "$endpoints" --json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    s = json.loads(line)
    print(s["id"], s["role"], s["commit"], s["applied"], s["snapshotIndex"], s["snapshotChunksReceived"], s["snapshotsInstalled"])'; }
"$shoal" raft put-many --endpoints 127.0.0.1:14377,127.0.0.1:24377 --count "$entries" --value-bytes 16
started=$(date +%s.%N)
start 3
while true; do
    commit=$(status | awk '$2 == "leader" {print $3}')
    line=$(status | awk '$1 == 3')
    applied=$(echo "$line" | awk '{print $4}')
    if [ -n "$commit" ] && [ -n "$applied" ] && [ "$applied" -ge "$commit" ]; then break; fi
    if python3 -c "import sys, time; sys.exit(0 if time.time() - float(sys.argv[1]) > 600 else 1)" "$started"; then
        echo "member 3 did not catch up in 600 s: $line" >&2; exit 1
    fi
    sleep 0.2
done
elapsed=$(python3 -c "import sys, time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$started")
read -r _ _ _ applied snapshot chunks installed <<<"$line"
echo "member 3 was $entries entries behind; caught up to index $applied in $elapsed s by $installed snapshot(s) at index $snapshot, in $chunks chunks"
