#!/usr/bin/env bash
# Counts what each extra frame costs the overlay's hot path in heap allocations and reference
# counting, with callgrind: two runs that differ only in the number of frames, compared call by
# call. Usage: bench/hotpath-allocations.sh [SMALL LARGE] (default 2000 12000). Needs root (the
# engine mode builds a lab). Exits non-zero if any extra frame allocates or retains, or if the
# control run — the switch plus one deliberate allocation per round — does not show as such.
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-2000}
large=${2:-12000}
build=.build-bench
touch bench/hotpath/Package.swift  # SwiftPM misses new files of a path dependency otherwise
swift build --package-path bench/hotpath --scratch-path "$build" -c release >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# valgrind 3.19 cannot read the DWARF 5 the toolchain emits; the symbol table is all callgrind
# needs to name functions, so count on a copy without debug sections.
binary=$work/OverlayHotPath
objcopy --strip-debug "$build/release/OverlayHotPath" "$binary"

# Sums callgrind's call counts per callee name over the whole program (all threads).
calls() {
    python3 - "$1" <<'PY'
import re, sys, collections
names, counts, callee = {}, collections.Counter(), None
# Names are compressed: "(id) name" the first time an id appears, in fn= or cfn= lines alike.
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.strip())
    if m and m.group(2): names[m.group(1)] = m.group(2)
    if line.startswith("cfn="):
        callee = names.get(m.group(1), "?")
    elif line.startswith("calls=") and callee:
        counts[callee] += int(line.split()[0][6:])
        callee = None
watch = ["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "swift_allocObject",
         "swift_retain", "swift_release", "swift_bridgeObjectRetain", "swift_bridgeObjectRelease",
         "swift_retain_n", "swift_release_n", "swift_beginAccess"]
for name in watch:
    print(name, sum(c for n, c in counts.items() if n == name or n.startswith(name + "'")))
PY
}

status=0
printf '%-8s %-26s %12s %12s %14s\n' mode function "N=$small" "N=$large" "per frame"
for mode in switch vip engine control; do
    for n in "$small" "$large"; do
        valgrind --tool=callgrind --callgrind-out-file="$work/$mode-$n.out" "$binary" "$mode" "$n" >"$work/$mode-$n.log" 2>&1 \
            || { cat "$work/$mode-$n.log"; exit 1; }
        calls "$work/$mode-$n.out" > "$work/$mode-$n.calls"
    done
    frames=$((large - small))
    [ "$mode" = engine ] || frames=$((3 * frames))
    while read -r name count_small; do
        count_large=$(awk -v n="$name" '$1 == n { print $2 }' "$work/$mode-$large.calls")
        per=$(python3 -c "print(f'{($count_large - $count_small) / $frames:.4f}')")
        printf '%-8s %-26s %12s %12s %14s\n' "$mode" "$name" "$count_small" "$count_large" "$per"
        # A cost paid per frame shows as 1.0 or more. Set-up and teardown around the loop are
        # the same in both runs except for timing (how often a wait loop polls, how frames
        # group into wake-ups), which moves totals by a few hundred calls either way: over
        # thousands of frames that stays far below 0.5.
        if [ "$mode" = control ]; then
            # One allocation per round is one per three decisions: the instrument must see it.
            if [ "$name" = malloc ] && ! python3 -c "import sys; sys.exit(0 if ($count_large - $count_small) / $frames > 0.3 else 1)"; then
                echo "control run: the deliberate allocation was not counted" >&2
                status=1
            fi
        elif ! python3 -c "import sys; sys.exit(0 if ($count_large - $count_small) / $frames < 0.5 else 1)"; then
            status=1
        fi
    done < "$work/$mode-$small.calls"
    grep -h "crossed\|decisions" "$work/$mode-$large.log"
done
exit $status
