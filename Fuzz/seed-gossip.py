#!/usr/bin/env python3
"""Seeds the GossipFuzz corpus with well-formed packets of every message kind (Codec.swift's
layout: version 1, then kind byte and big-endian fields; names are a length byte and UTF-8),
as datagrams, stream frames and plaintext envelopes. Byte 0 of each seed is the fuzzer's mode.
Usage: seed-gossip.py DIR"""
import os
import struct
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def name(text):
    data = text.encode()
    return bytes([len(data)]) + data

def address(ip, port=7946):
    return struct.pack(">IH", ip, port)

def member(who, status=0, incarnation=2, frm=None):
    return name(who) + address(0x0A000002) + struct.pack(">QB", incarnation, status) + name(frm or who)

def network(node, net="ov", joined=1, clock=5_000_000):
    return name(node) + name(net) + bytes([joined]) + struct.pack(">Q", clock)

def entry(key, owner="n2", clock=6_000_000, value=b"10.0.0.9"):
    body = name("ov") + name("endpoints") + name(key) + name(owner) + struct.pack(">Q", clock)
    return body + (b"\x01" + struct.pack(">I", len(value)) + value if value is not None else b"\x00")

messages = {
    "ping": b"\x01" + struct.pack(">I", 7) + name("n1"),
    "indirect": b"\x02" + struct.pack(">I", 8) + name("n3") + address(0x0A000003) + b"\x01",
    "ack": b"\x03" + struct.pack(">I", 7),
    "nack": b"\x04" + struct.pack(">I", 8),
    "alive": b"\x05" + member("n4"),
    "suspect-self": b"\x05" + member("n1", status=1, incarnation=1_000, frm="n2"),
    "dead": b"\x05" + member("n3", status=2, incarnation=1, frm="n2"),
    "left": b"\x05" + member("n2", status=3),
    "network": b"\x06" + network("n2"),
    "entry": b"\x07" + entry("t9"),
    "tombstone": b"\x07" + entry("t9", clock=7_000_000, value=None),
    "own-entry": b"\x07" + entry("t1", owner="n1", clock=9_000_000),
}
state = b"\x08" + b"\x00" + struct.pack(">Q", 8_000_000) + struct.pack(">I", 2) + member("n2") + member("n5") + \
    struct.pack(">I", 1) + network("n2") + struct.pack(">I", 1) + name("ov") + struct.pack(">I", 2) + entry("t2") + entry("t3", value=None)

def write(label, mode, payload):
    with open(os.path.join(out, f"seed-{label}-{mode}"), "wb") as f:
        f.write(bytes([mode]) + payload)

for label, body in messages.items():
    write(label, 0, b"\x01" + body)
    write(label + "-envelope", 2, b"\x01" + struct.pack(">Q", 42) + name("n2") + b"\x01" + body)
write("compound", 0, b"\x01" + b"".join(messages.values()))
write("state", 1, b"\x01" + state)
write("state-envelope", 3, b"\x01" + struct.pack(">Q", 43) + name("n2") + b"\x01" + state)
write("sealed-short", 4, b"\x02" + b"\x00" * 40)
