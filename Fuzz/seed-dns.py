#!/usr/bin/env python3
"""Seeds the DNSFuzz corpus with well-formed queries (mode byte: bit 0 = over TCP).
Usage: seed-dns.py DIR"""
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def query(name, qtype=1, edns=None, ident=0x1234):
    body = bytes([ident >> 8, ident & 0xFF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1 if edns else 0])
    for label in name.split("."):
        body += bytes([len(label)]) + label.encode()
    body += bytes([0, qtype >> 8, qtype & 0xFF, 0, 1])
    if edns:
        body += bytes([0, 0, 41, edns >> 8, edns & 0xFF, 0, 0, 0, 0, 0, 0])
    return body

seeds = [query("my-web"), query("tasks.my-web", edns=1232), query("big", edns=4096), query("my-web", 28),
         query("3.1.0.10.in-addr.arpa", 12), query("_http._tcp.my-web", 33), query("example.org"),
         bytes([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1])]
for index, seed in enumerate(seeds):
    for mode in (0, 1):
        with open(os.path.join(out, f"seed-{index}-{mode}"), "wb") as f:
            f.write(bytes([mode]) + seed)
print(f"seeded {2 * len(seeds)} queries into {out}")
