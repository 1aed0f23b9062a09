#!/usr/bin/env bash
# Regenerates kernel-vxlan.pcap: real VXLAN traffic between two Linux kernel vxlan devices
# (VNI 42, port 4789, static FDB, no learning) in two throwaway namespaces, captured on the
# underlay. Frames: ARP request/reply, ICMP echo request/reply, a TCP exchange, a UDP datagram,
# each VXLAN-encapsulated. Checksum offload is off on the underlay so every checksum in the
# file is complete (with offload on, veth carries partial checksums). Run as root (needs ethtool); it removes what it creates.
set -euo pipefail
out=${1:-$(dirname "$0")/kernel-vxlan.pcap}
tag=fx$$
a=$tag-a b=$tag-b
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip -n "$a" link add u0 type veth peer name u0 netns "$b"
ip -n "$a" addr add 192.0.2.11/24 dev u0; ip -n "$a" link set u0 up
ip -n "$b" addr add 192.0.2.12/24 dev u0; ip -n "$b" link set u0 up
for side in a:11:12 b:12:11; do
  ns=${side%%:*}; rest=${side#*:}; me=${rest%%:*}; peer=${rest#*:}
  [ "$ns" = a ] && ns=$a || ns=$b
  ip netns exec "$ns" ethtool -K u0 tx off >/dev/null
  ip -n "$ns" link add vx0 type vxlan id 42 dstport 4789 local 192.0.2.$me nolearning
  ip -n "$ns" link set vx0 address 02:42:0a:0a:00:$((me - 9))
  ip -n "$ns" addr add 10.10.0.$((me - 9))/24 dev vx0
  ip -n "$ns" link set vx0 mtu 1450 up
  bridge -n "$ns" fdb append 00:00:00:00:00:00 dev vx0 dst 192.0.2.$peer
done
ip netns exec "$a" tcpdump -i u0 -w "$out" -U 'udp port 4789' 2>/dev/null &
dump=$!
sleep 1
ip netns exec "$a" ping -c 2 -W 1 10.10.0.3 >/dev/null
ip netns exec "$b" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.10.0.3", 8080)); s.listen(1); s.settimeout(5)
c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()' &
server=$!
sleep 0.5
ip netns exec "$a" python3 -c '
import socket
c = socket.create_connection(("10.10.0.3", 8080), timeout=5); c.sendall(b"hello shoal"); c.recv(100); c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"datagram", ("10.10.0.3", 9999))'
wait $server
sleep 1
kill $dump; wait $dump 2>/dev/null || true
tcpdump -nr "$out" 2>/dev/null | wc -l
