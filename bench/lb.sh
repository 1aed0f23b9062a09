#!/usr/bin/env bash
# L4 load-balancing benchmark on a 2-node lab swarm: three nginx backends (return 200 "ok") on
# n2, the load from a client task on n1 across the overlay, wrk -t2 -c64, keep-alive and a new
# connection per request (`Connection: close`), in one run:
#   direct        wrk to one backend task's own address
#   shoal-vip     wrk to the service's VIP: balanced in n1's switch, round robin over 3
#   nft-dnat      wrk to a fake VIP that the kernel's nftables DNATs in the client's namespace,
#                 round robin over the 3 (`numgen inc mod 3`, kube-proxy's way)
#   shoal-ingress wrk from n1's own namespace to n1:8080, the published port (the routing mesh)
#   haproxy-2t    wrk to haproxy 2.6 (TCP mode, 2 threads, round robin over 3) in the client's
#                 namespace, the proxy the routing mesh is measured against
# Usage (root): bench/lb.sh [SECONDS per run, default 10] [RUNS per figure, default 3]
# Goals (issue 18): shoal-vip ≥ 0.95× direct, shoal-ingress ≥ 1.0× haproxy-2t, both columns.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
runs=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

need=""
for p in wrk haproxy nginx nftables curl; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    # The packages' services must not start on install: this bench starts its own.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq $need >/dev/null
fi
swift build -c release --product shoal >/dev/null
shoal=$PWD/.build/release/shoal

lab=lb$(( $$ % 100000 ))
work=$(mktemp -d /tmp/shoal-lb.XXXXXX)
chmod 755 "$work"
haproxy_pid=""
client_ns=""
cleanup() {
    [ -n "$haproxy_pid" ] && kill "$haproxy_pid" 2>/dev/null || true
    [ -n "$client_ns" ] && ip netns exec "$client_ns" nft delete table ip lbbench 2>/dev/null || true
    "$shoal" lab down "$lab" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$shoal" lab up --nodes 2 --name "$lab" >/dev/null
export SHOAL_HOST=unix:///run/shoal/labs/$lab.d/n1.sock
n1_ns=shoal-$lab-n1
n1_address=$(ip netns exec "$n1_ns" ip -o -4 addr show | awk '/192\.0\.2\./ { sub(/\/.*/, "", $4); print $4; exit }')

# nginx per task, in its own directory (pid file, temp paths), one worker, no access log.
cat > "$work/nginx.conf" <<'EOF'
worker_processes 1;
daemon off;
pid DIR/nginx.pid;
error_log DIR/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path DIR; proxy_temp_path DIR; fastcgi_temp_path DIR; uwsgi_temp_path DIR; scgi_temp_path DIR;
    server { listen 80 reuseport backlog=4096; keepalive_requests 1000000; location / { return 200 "ok"; } }
}
EOF
"$shoal" network create front >/dev/null
"$shoal" service create --name web --replicas 3 --network front --constraint node.hostname==n2 -p 8080:80 -- \
    sh -c "d=$work/\$(hostname); mkdir -p \$d; sed \"s|DIR|\$d|g\" $work/nginx.conf > \$d/nginx.conf; exec nginx -c \$d/nginx.conf" >/dev/null
"$shoal" service create --name client --network front --constraint node.hostname==n1 -- sleep 1000000 >/dev/null

client_task=$("$shoal" service ps --no-trunc --filter desired-state=running client | awk 'NR == 2 { print $1 }')
client_ns=shoal-t-${client_task:0:12}
vip=$("$shoal" service inspect web | grep -o '10\.0\.0\.[0-9]*' | head -1)
backends=()
for task in $("$shoal" service ps --no-trunc --filter desired-state=running web | awk 'NR > 1 { print $1 }'); do
    backends+=("$(ip netns exec "shoal-t-${task:0:12}" ip -o -4 addr show eth0 | grep -o '10\.0\.0\.[0-9]*' | head -1)")
done
[ "${#backends[@]}" -eq 3 ] || { echo "expected 3 backends, found ${backends[*]}" >&2; exit 1; }

# The kernel's VIP: DNAT in the client's namespace, as kube-proxy's nftables mode does.
fake_vip=10.0.0.250
ip netns exec "$client_ns" nft -f - <<EOF
table ip lbbench {
    chain out {
        type nat hook output priority -100;
        ip daddr $fake_vip tcp dport 80 dnat to numgen inc mod 3 map { 0 : ${backends[0]}, 1 : ${backends[1]}, 2 : ${backends[2]} }
    }
}
EOF

# haproxy 2.6, TCP mode, 2 threads, in the client's namespace (maxconn ≤ 8000: ANCHORS.md).
cat > "$work/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend in
    bind 127.0.0.1:9000
    default_backend out
backend out
    balance roundrobin
    server b1 ${backends[0]}:80
    server b2 ${backends[1]}:80
    server b3 ${backends[2]}:80
EOF
ip netns exec "$client_ns" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!

# Everything answers before anything is measured (bounded: 100 tries each).
check() {
    local ns=$1 url=$2
    for _ in $(seq 100); do
        [ "$(ip netns exec "$ns" curl -s --max-time 2 "$url" || true)" = ok ] && return 0
        sleep 0.2
    done
    echo "no answer from $url in $ns" >&2
    exit 1
}
check "$client_ns" "http://${backends[0]}/"
check "$client_ns" "http://$vip/"
check "$client_ns" "http://$fake_vip/"
check "$client_ns" "http://127.0.0.1:9000/"
check "$n1_ns" "http://$n1_address:8080/"

# One wrk run: requests/s and p99 latency.
measure() {
    local ns=$1 url=$2 mode=$3
    local header=()
    [ "$mode" = close ] && header=(-H "Connection: close")
    ip netns exec "$ns" wrk -t2 -c64 -d"${seconds}s" --latency "${header[@]}" "$url" > "$work/wrk.out" 2>&1
    python3 - "$work/wrk.out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", text)
print(f"{rate:.0f} {float(p99.group(1)) * scale:.2f} {'errors' if errors else 'ok'}")
EOF
}

# Median of `runs` measurements: "rate p99".
median() {
    local ns=$1 url=$2 mode=$3
    for _ in $(seq "$runs"); do measure "$ns" "$url" "$mode"; done | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'
}

declare -A result
targets="direct shoal-vip nft-dnat shoal-ingress haproxy-2t"
for target in $targets; do
    case $target in
        direct) ns=$client_ns url=http://${backends[0]}/ ;;
        shoal-vip) ns=$client_ns url=http://$vip/ ;;
        nft-dnat) ns=$client_ns url=http://$fake_vip/ ;;
        shoal-ingress) ns=$n1_ns url=http://$n1_address:8080/ ;;
        haproxy-2t) ns=$client_ns url=http://127.0.0.1:9000/ ;;
    esac
    for mode in keepalive close; do
        result[$target-$mode]=$(median "$ns" "$url" "$mode")
        echo "$target $mode: ${result[$target-$mode]}" >&2
    done
done

ratio() { python3 -c "print(f'{$1 / $2:.2f}×')"; }
echo
echo "bench/lb.sh $seconds $runs — wrk -t2 -c64, ${seconds} s, median of $runs; 3 nginx backends on n2, client on n1"
echo
echo "| target | keep-alive req/s | p99 ms | vs | new connection per request, req/s | p99 ms | vs |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for target in $targets; do
    read -r ka ka99 kaok <<< "${result[$target-keepalive]}"
    read -r nc nc99 ncok <<< "${result[$target-close]}"
    case $target in
        shoal-vip|nft-dnat) base=direct ;;
        shoal-ingress) base=haproxy-2t ;;
        *) base="" ;;
    esac
    if [ -n "$base" ]; then
        read -r bka _ _ <<< "${result[$base-keepalive]}"
        read -r bnc _ _ <<< "${result[$base-close]}"
        vka="$(ratio "$ka" "$bka") $base"; vnc="$(ratio "$nc" "$bnc") $base"
    else
        vka=""; vnc=""
    fi
    flag=""; [ "$kaok$ncok" = okok ] || flag=" (wrk saw errors)"
    echo "| $target$flag | $ka | $ka99 | $vka | $nc | $nc99 | $vnc |"
done
