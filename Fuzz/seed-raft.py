#!/usr/bin/env python3
"""Seeds the RaftFuzz corpus with well-formed messages of every kind (Message.encoded layout:
version, kind, from, to, term, logTerm, index, commit, rejectHint, context, reject, entries,
snapshot flag) and a small WAL segment. Usage: seed-raft.py DIR"""
import os
import struct
import sys
import zlib

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def entry(term, index, kind=0, data=b""):
    return struct.pack(">QQB", term, index, kind) + struct.pack(">I", len(data)) + data

def membership(voters, learners=()):
    return struct.pack(">I", len(voters)) + b"".join(struct.pack(">Q", v) for v in voters) + \
        struct.pack(">I", len(learners)) + b"".join(struct.pack(">Q", l) for l in learners)

def message(kind, frm=2, to=1, term=3, log_term=2, index=5, commit=4, hint=0, context=0, reject=0, entries=(), snapshot=None):
    body = bytes([1, kind]) + struct.pack(">8Q", frm, to, term, log_term, index, commit, hint, context) + bytes([reject])
    body += struct.pack(">I", len(entries)) + b"".join(entries)
    if snapshot is None:
        body += b"\x00"
    else:
        meta_index, meta_term, offset, total, data = snapshot
        body += b"\x01" + struct.pack(">QQ", meta_index, meta_term) + membership([1, 2, 3]) + \
            struct.pack(">QQ", offset, total) + struct.pack(">I", len(data)) + data
    return body

seeds = [message(kind) for kind in (0, 1, 2, 3, 5, 6, 7, 9, 10)]
seeds.append(message(4, entries=[entry(3, 6, 0, b"\x01\x00\x00\x00\x01k\x00\x00\x00\x01v"), entry(3, 7, 1, b"\x01" + struct.pack(">Q", 4))]))
seeds.append(message(4, index=3, log_term=1, entries=[entry(2, 4), entry(3, 5)]))
seeds.append(message(8, snapshot=(10, 2, 0, 8, b"\x00" * 8)))
# A WAL segment: an entry record and a hard-state record, each length | crc32c | body.
def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF
def record(body):
    return struct.pack(">II", len(body), crc32c(body)) + body
seeds.append(record(b"\x01" + entry(1, 1, 0, b"x")) + record(b"\x02" + struct.pack(">QQQ", 1, 1, 1)))
for number, seed in enumerate(seeds):
    with open(os.path.join(out, "seed-%02d" % number), "wb") as handle:
        handle.write(seed)
print("%d seeds" % len(seeds))
