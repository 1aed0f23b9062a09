#!/usr/bin/env python3
"""A stub upstream resolver for the forwarding tests: UDP on 127.0.0.1, prints its port, then
answers A queries for nonexistent.example with 198.51.100.77 and everything else with
NXDOMAIN. Exits after the number of seconds given (bounded)."""
import socket
import sys
import time

deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 30)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(0.2)
print(sock.getsockname()[1], flush=True)
while time.time() < deadline:
    try:
        query, peer = sock.recvfrom(4096)
    except socket.timeout:
        continue
    if len(query) < 17:
        continue
    position, labels = 12, []
    while position < len(query) and query[position] != 0:
        length = query[position]
        labels.append(query[position + 1:position + 1 + length].decode(errors="replace").lower())
        position += length + 1
    question_end = position + 5
    name, qtype = ".".join(labels), query[position + 1:position + 3]
    header = bytearray(query[:12])
    header[2] = 0x81  # QR, RD
    header[6:12] = b"\x00\x00\x00\x00\x00\x00"
    if name == "nonexistent.example" and qtype == b"\x00\x01":
        header[3] = 0x80  # RA, NOERROR
        header[7] = 1
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([198, 51, 100, 77])
    else:
        header[3] = 0x83  # RA, NXDOMAIN
        answer = b""
    sock.sendto(bytes(header[:4]) + b"\x00\x01" + bytes(header[6:]) + query[12:question_end] + answer, peer)
