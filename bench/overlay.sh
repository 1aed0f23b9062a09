#!/usr/bin/env bash
# Overlay data-plane benchmark: the same two lab nodes, the same underlay, five paths in one run:
#   (a) the bare underlay, (b) the Linux kernel's vxlan device, (c) Shoal's overlay daemon,
#   (d) wireguard-go, (e) nebula — iperf3 TCP with 1 and 4 streams, UDP 64-byte packets per
#   second, ping RTT; a table with ratios to the kernel vxlan device.
# Usage (root): bench/overlay.sh [SECONDS per run, default 5] [RUNS per figure, default 3]
#   PATHS="kernel-vxlan shoal" bench/overlay.sh 5 1   measures only the paths named (quick runs
#   while working on one of them; the committed table always comes from a run of all five).
#   PROFILE=/tmp/shoal.perf PATHS=shoal bench/overlay.sh 10 1   also records `perf record -a -g`
#   over the middle of the first single-stream TCP run of each path measured (perf report -i …).
# Paths run one after another (they would fight over UDP 4789 and the CPUs otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
runs=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

need=""
for p in iperf3 iputils-ping iproute2 ethtool wireguard-go wireguard-tools nebula python3; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null; fi
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal

lab=bench$$
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for ns in "shoal-$lab-n1-ep" "shoal-$lab-n2-ep"; do ip netns del "$ns" 2>/dev/null || true; done
    "$shoal" lab down "$lab" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"$shoal" lab up --bare --nodes 2 --name "$lab" >/dev/null 2>&1
n1=shoal-$lab-n1 n2=shoal-$lab-n2
u1=192.0.2.11 u2=192.0.2.12
run_in() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- measurements: each prints one number -----------------------------------------------
median() { python3 -c "import sys, statistics; v=[float(x) for x in sys.argv[1:]]; print(statistics.median(v))" "$@"; }

iperf_tcp() {  # client-ns server-ns server-ip streams → Gbit/s (median of runs)
    local values=()
    for _ in $(seq "$runs"); do
        run_in "$2" iperf3 -s -1 -B "$3" >/dev/null 2>&1 & local server=$!
        sleep 0.3
        local json
        json=$(run_in "$1" iperf3 -c "$3" -t "$seconds" -P "$4" -J 2>/dev/null || true)
        wait "$server" 2>/dev/null || true
        values+=("$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read() or "{}"); print(d.get("end",{}).get("sum_received",{}).get("bits_per_second",0)/1e9)' <<<"$json")")
    done
    median "${values[@]}"
}

iperf_udp_pps() {  # client-ns server-ns server-ip → received packets/s (median)
    local values=()
    for _ in $(seq "$runs"); do
        run_in "$2" iperf3 -s -1 -B "$3" >/dev/null 2>&1 & local server=$!
        sleep 0.3
        local json
        json=$(run_in "$1" iperf3 -c "$3" -u -l 64 -b 0 -t "$seconds" -J 2>/dev/null || true)
        wait "$server" 2>/dev/null || true
        values+=("$(python3 -c '
import json, sys
d = json.loads(sys.stdin.read() or "{}").get("end", {}).get("sum", {})
print((d.get("packets", 0) - d.get("lost_packets", 0)) / max(d.get("seconds", 1), 1e-9))' <<<"$json")")
    done
    median "${values[@]}"
}

ping_rtt() {  # ns target → average RTT in ms over 200 pings
    run_in "$1" ping -c 200 -i 0.005 -q "$2" 2>/dev/null | awk -F/ '/rtt/ { print $5 }'
}

declare -A result
paths=${PATHS:-underlay kernel-vxlan shoal wireguard-go nebula}
wanted() { [[ " $paths " == *" $1 "* ]]; }
measure() {  # name client-ns server-ns server-ip
    echo "measuring $1 …" >&2
    run_in "$2" ping -c 3 -i 0.2 -W 2 "$4" >/dev/null || { echo "$1: no connectivity" >&2; return 1; }
    local profiler=""
    if [ -n "${PROFILE:-}" ]; then
        command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
        ( sleep 1.5; perf record -a -g -o "$PROFILE.$1" -- sleep "$(( seconds > 4 ? seconds - 3 : 1 ))" >/dev/null 2>&1 ) &
        profiler=$!
    fi
    result[$1,tcp1]=$(iperf_tcp "$2" "$3" "$4" 1)
    if [ -n "$profiler" ]; then wait "$profiler"; fi
    result[$1,tcp4]=$(iperf_tcp "$2" "$3" "$4" 4)
    result[$1,pps]=$(iperf_udp_pps "$2" "$3" "$4")
    result[$1,rtt]=$(ping_rtt "$2" "$4")
}

# (a) bare underlay
if wanted underlay; then measure underlay "$n1" "$n2" "$u2"; fi

# (b) the kernel's vxlan device, VNI 42, port 4789, static FDB
if wanted kernel-vxlan; then
for side in 1 2; do
    ns=$n1 me=$u1 peer=$u2; [ $side = 2 ] && ns=$n2 me=$u2 peer=$u1
    ip -n "$ns" link add vx0 type vxlan id 42 dstport 4789 local "$me" nolearning
    ip -n "$ns" addr add "10.99.0.$side/24" dev vx0
    ip -n "$ns" link set vx0 mtu 1450 up
    bridge -n "$ns" fdb append 00:00:00:00:00:00 dev vx0 dst "$peer"
done
measure kernel-vxlan "$n1" "$n2" 10.99.0.2
ip -n "$n1" link del vx0; ip -n "$n2" link del vx0
fi

# (c) Shoal: one overlay daemon per node, one endpoint namespace per node
if wanted shoal; then
for side in 1 2; do
    ns=$n1 me=$u1 peer=$u2 other=3; [ $side = 2 ] && ns=$n2 me=$u2 peer=$u1 other=2
    ip netns add "shoal-$lab-n$side-ep"
    cat > "$work/n$side.json" <<JSON
{ "underlay": "$me",
  "networks": [{ "name": "bench", "vni": 4096, "subnet": "10.10.0.0/24" }],
  "local": [{ "network": "bench", "address": "10.10.0.$((side + 1))", "namespace": "shoal-$lab-n$side-ep" }],
  "remote": [{ "network": "bench", "address": "10.10.0.$other", "vtep": "$peer" }] }
JSON
    # Started directly, not through run_in: $! must be the daemon itself so that kill reaches it.
    ip netns exec "$ns" "$shoal" overlay run --config "$work/n$side.json" --control "$work/n$side.sock" >"$work/n$side.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 50); do [ -S "$work/n1.sock" ] && [ -S "$work/n2.sock" ] && break; sleep 0.1; done
measure shoal "shoal-$lab-n1-ep" "shoal-$lab-n2-ep" 10.10.0.3
for pid in "${pids[@]}"; do kill "$pid"; done; pids=(); sleep 0.5
fi

# (d) wireguard-go (distinct interface names: it keeps one control socket per name in /var/run)
if wanted wireguard-go; then
key1=$(wg genkey); key2=$(wg genkey)
for side in 1 2; do
    ns=$n1 dev=wga key=$key1 peerkey=$key2 peer=$u2 other=2; [ $side = 2 ] && ns=$n2 dev=wgb key=$key2 peerkey=$key1 peer=$u1 other=1
    WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 run_in "$ns" wireguard-go "$dev" >/dev/null 2>&1
    echo "$key" > "$work/wg$side.key"
    run_in "$ns" wg set "$dev" private-key "$work/wg$side.key" listen-port 51820 \
        peer "$(echo "$peerkey" | wg pubkey)" endpoint "$peer:51820" allowed-ips "10.98.0.$other/32"
    ip -n "$ns" addr add "10.98.0.$side/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
done
measure wireguard-go "$n1" "$n2" 10.98.0.2
ip -n "$n1" link del wga; ip -n "$n2" link del wgb
fi

# (e) nebula 1.6 (static host map, no lighthouse, any-any firewall)
if wanted nebula; then
( cd "$work" && nebula-cert ca -name bench >/dev/null \
  && nebula-cert sign -name a -ip 10.97.0.1/24 >/dev/null && nebula-cert sign -name b -ip 10.97.0.2/24 >/dev/null )
for side in 1 2; do
    ns=$n1 name=a peer=$u2 other=2; [ $side = 2 ] && ns=$n2 name=b peer=$u1 other=1
    cat > "$work/$name.yml" <<YAML
pki: { ca: $work/ca.crt, cert: $work/$name.crt, key: $work/$name.key }
static_host_map: { "10.97.0.$other": ["$peer:4242"] }
lighthouse: { am_lighthouse: false }
listen: { host: 0.0.0.0, port: 4242 }
punchy: { punch: false }
tun: { dev: nebula$side, mtu: 1300 }
logging: { level: error }
firewall:
  outbound: [{ port: any, proto: any, host: any }]
  inbound: [{ port: any, proto: any, host: any }]
YAML
    ip netns exec "$ns" nebula -config "$work/$name.yml" >"$work/nebula$side.log" 2>&1 &
    pids+=($!)
done
sleep 2
measure nebula "$n1" "$n2" 10.97.0.2 || true
fi

# --- the table ------------------------------------------------------------------------------
python3 - "$seconds" "$runs" "$(nproc)" "$(uname -r)" <<PY
import sys
seconds, runs, cores, kernel = sys.argv[1:5]
r = {}
$(for key in "${!result[@]}"; do echo "r['$key'] = float('${result[$key]}' or 0)"; done)
paths = [p for p in ["underlay", "kernel-vxlan", "shoal", "wireguard-go", "nebula"] if any(k.startswith(p + ",") for k in r)]
def cell(path, metric, fmt):
    value, base = r.get(f"{path},{metric}"), r.get(f"kernel-vxlan,{metric}")
    if value is None: return "n/a"
    ratio = f" ({value / base:.2f}x)" if base else ""
    return fmt.format(value) + ratio
print(f"iperf3 {seconds} s runs, median of {runs}; ping: 200 at 5 ms; {cores} cores, kernel {kernel}")
print()
print("| path | TCP 1 stream, Gbit/s | TCP 4 streams, Gbit/s | UDP 64 B, packets/s | ping RTT, ms |")
print("| --- | --- | --- | --- | --- |")
for p in paths:
    print(f"| {p} | {cell(p, 'tcp1', '{:.2f}')} | {cell(p, 'tcp4', '{:.2f}')} | {cell(p, 'pps', '{:,.0f}')} | {cell(p, 'rtt', '{:.3f}')} |")
print()
print("Ratios in parentheses are to the kernel vxlan device (for RTT, lower is better).")
PY
