#!/usr/bin/env python3
"""Seeds a libFuzzer corpus for WireFuzz from a pcap of VXLAN traffic.

Each frame becomes two inputs: mode byte 0 + the whole underlay frame, and mode byte 1 + the
VXLAN payload (what a UDP socket on 4789 would read). Usage: seed-from-pcap.py PCAP DIR
"""
import os
import struct
import sys

pcap, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with open(pcap, "rb") as f:
    data = f.read()
magic = struct.unpack("<I", data[:4])[0]
endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
offset, count = 24, 0
while offset + 16 <= len(data):
    _, _, caplen, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
    frame = data[offset + 16:offset + 16 + caplen]
    offset += 16 + caplen
    for mode, body in ((0, frame), (1, frame[42:])):
        with open(os.path.join(out, f"seed-{count:03d}-{mode}"), "wb") as seed:
            seed.write(bytes([mode]) + body)
    count += 1
print(f"seeded {count * 2} inputs from {count} frames into {out}")
