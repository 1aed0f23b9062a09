#!/usr/bin/env bash
# Service-discovery DNS benchmark: Shoal's `dns serve`, dnsmasq and unbound in one run, with the
# same data set (100 services: `svcN` → one VIP, `tasks.svcN` → 3 task addresses) and the same
# query mix (half `svcN A`, half `tasks.svcN A`), served from loopback.
#   saturating: dnsperf -c 10 -q 100 for SECONDS, median of RUNS; pinned (server on CPU 0,
#     dnsperf on CPU 1) and unpinned; server CPU per query from /proc/PID/stat.
#   fixed rate: dnsperf -Q 20000 -v, latency of every response → p50 and p99.
# Usage (root): bench/dns.sh [SECONDS per run, default 8] [RUNS per figure, default 3]
#   SERVERS="shoal unbound" bench/dns.sh 4 1   measures only the servers named (quick runs; the
#   committed table always comes from a run of all of them).
# Servers run one after another, each alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
runs=${2:-3}
servers=${SERVERS:-"shoal dnsmasq unbound unbound-2t"}
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

need=""
for p in dnsperf dnsmasq unbound python3 util-linux; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    # The packages' services must not start on install: this bench starts its own servers.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq $need >/dev/null
fi
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + $$ % 20000))

# --- the data set, once per server's format ----------------------------------------------
python3 - "$work" "$port" <<'EOF'
import json, random, sys
work, port = sys.argv[1], int(sys.argv[2])
services = []
hosts, unbound = [], []
for n in range(100):
    vip = f"10.1.{n}.2"
    tasks = [f"10.1.{n}.{10 + i}" for i in range(3)]
    services.append({"name": f"svc{n}", "mode": "vip", "vip": vip,
                     "tasks": [{"slot": i + 1, "id": f"t{n}x{i}", "address": a} for i, a in enumerate(tasks)]})
    hosts.append(f"{vip} svc{n}")
    hosts += [f"{a} tasks.svc{n}" for a in tasks]
    unbound.append(f'    local-data: "svc{n}. 600 IN A {vip}"')
    unbound += [f'    local-data: "tasks.svc{n}. 600 IN A {a}"' for a in tasks]
config = {"networks": {"bench": services}, "sandboxes": {"bench": ["bench"]},
          "listeners": [{"address": "127.0.0.1", "port": port, "sandbox": "bench"}],
          "upstreams": ["127.0.0.1:9"]}
open(f"{work}/shoal.json", "w").write(json.dumps(config))
open(f"{work}/hosts", "w").write("\n".join(hosts) + "\n")
open(f"{work}/unbound.conf", "w").write(f"""server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    chroot: ""
    username: ""
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: NUM_THREADS
    so-reuseport: yes
    access-control: 127.0.0.0/8 allow
    do-ip6: no
    local-zone: "." transparent
{chr(10).join(unbound)}
remote-control:
    control-enable: no
""")
random.seed(1)
with open(f"{work}/queries", "w") as out:
    for _ in range(20000):
        n = random.randrange(100)
        out.write(f"svc{n} A\n" if random.random() < 0.5 else f"tasks.svc{n} A\n")
EOF

start_server() {  # name cpus → sets server_pid, waits until it answers
    local name=$1 cpus=$2 pin=()
    [ "$cpus" = all ] || pin=(taskset -c "$cpus")
    case $name in
        shoal) "${pin[@]}" "$shoal" dns serve --config "$work/shoal.json" >"$work/server.log" 2>&1 & ;;
        dnsmasq) "${pin[@]}" dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$work/hosts" \
                    --listen-address=127.0.0.1 --bind-interfaces --port="$port" --no-negcache --log-facility=- \
                    --user=root >"$work/server.log" 2>&1 & ;;
        unbound|unbound-2t)
            local threads=1; [ "$name" = unbound-2t ] && threads=2
            sed "s/NUM_THREADS/$threads/" "$work/unbound.conf" >"$work/unbound-$threads.conf"
            "${pin[@]}" unbound -d -c "$work/unbound-$threads.conf" >"$work/server.log" 2>&1 & ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
        if python3 - "$port" <<'PROBE' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
s.sendto(bytes.fromhex("abcd01000001000000000000") + b"\x04svc1\x00\x00\x01\x00\x01", ("127.0.0.1", int(sys.argv[1])))
sys.exit(0 if len(s.recv(512)) > 12 else 1)
PROBE
        sleep 0.1
    done
    echo "$name did not answer on 127.0.0.1:$port" >&2; cat "$work/server.log" >&2; exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

dnsperf_once() {  # seconds extra-args… → dnsperf's report
    local length=$1; shift
    dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -l "$length" "$@"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }

median() { python3 -c "import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

saturate() {  # dnsperf-cpus → "qps us-per-query" (medians over runs)
    local rates=() costs=()
    for _ in $(seq "$runs"); do
        local before after report
        before=$(cpu_ticks)
        if [ "$1" = all ]; then report=$(dnsperf_once "$seconds" -c 10 -q 100)
        else report=$(taskset -c "$1" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -l "$seconds" -c 10 -q 100); fi
        after=$(cpu_ticks)
        local completed qps
        completed=$(awk '/Queries completed:/ {print $3}' <<<"$report")
        qps=$(awk '/Queries per second:/ {print $4}' <<<"$report")
        rates+=("$qps")
        costs+=("$(python3 -c "print(($after - $before) / $(getconf CLK_TCK) / max($completed, 1) * 1e6)")")
    done
    echo "$(median "${rates[@]}") $(median "${costs[@]}")"
}

latency() {  # → "p50-ms p99-ms lost" at 20k queries/s
    taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -l "$seconds" -c 10 -q 100 -Q 20000 -v \
        | python3 -c '
import sys
lat, lost = [], 0
for line in sys.stdin:
    parts = line.split()
    if len(parts) >= 2 and parts[0] == ">":
        if parts[1] in ("T", "I"): lost += 1
        else: lat.append(float(parts[-1]))
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
print(f"{pick(0.50):.3f} {pick(0.99):.3f} {lost}")'
}

declare -A pinned unpinned lat
for name in $servers; do
    cpus=0; [ "$name" = unbound-2t ] && cpus=all
    start_server "$name" "$cpus"
    pinned[$name]=$( [ "$cpus" = all ] && echo "- -" || saturate 1)
    lat[$name]=$( [ "$cpus" = all ] && echo "- - -" || latency)
    stop_server
    start_server "$name" all
    unpinned[$name]=$(saturate all)
    stop_server
    echo "$name: pinned ${pinned[$name]} unpinned ${unpinned[$name]} latency ${lat[$name]}" >&2
done

ratio() { python3 -c "import sys
a, b = sys.argv[1], sys.argv[2]
print('-' if '-' in (a, b) else f'{float(a) / float(b):.2f}x')" "$1" "$2"; }

echo
echo "DNS, $seconds s runs, median of $runs; 100 services, half svcN and half tasks.svcN (A), from loopback"
echo
echo "| server | pinned q/s | CPU µs/query | unpinned q/s | p50 ms @20k | p99 ms @20k | lost @20k | pinned vs dnsmasq | pinned vs unbound |"
echo "|---|---|---|---|---|---|---|---|---|"
for name in $servers; do
    read -r pq pc <<<"${pinned[$name]}"
    read -r uq _ <<<"${unpinned[$name]}"
    read -r p50 p99 lost <<<"${lat[$name]}"
    vs_dnsmasq=$( [ -n "${pinned[dnsmasq]:-}" ] && ratio "$pq" "${pinned[dnsmasq]%% *}" || echo -)
    vs_unbound=$( [ -n "${pinned[unbound]:-}" ] && ratio "$pq" "${pinned[unbound]%% *}" || echo -)
    round() { [ "$1" = - ] && echo - || printf %.0f "$1"; }
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$name" "$(round "$pq")" "$( [ "$pc" = - ] && echo - || printf %.2f "$pc")" \
        "$(round "$uq")" "$p50" "$p99" "$lost" "$vs_dnsmasq" "$vs_unbound"
done
