#!/usr/bin/env python3
"""Seeds the APIFuzz corpus with well-formed store transactions (creates, updates with the
version read, removals, a refused one) written with a minimal protobuf encoder, so the fuzzer
starts from inputs the store accepts. Field numbers are those of Sources/ClusterAPI/Protos.
Usage: seed-api.py DIR"""
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def varint(value):
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])

def field(number, payload):
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload

def annotations(name, labels=()):
    body = field(1, name)
    for key, value in labels:
        body += field(2, field(1, key) + field(2, value))
    return body

def meta(version):
    return field(1, field(1, version))

def network(id, name, version=0):
    return field(1, id) + (field(2, meta(version)) if version else b"") + field(3, field(1, annotations(name)))

def service(id, name, version=0):
    return field(1, id) + (field(2, meta(version)) if version else b"") + field(3, field(1, annotations(name, [("a", "b")])))

def task(id, name):
    return field(1, id) + field(8, annotations(name, [("value", "v")]))

def action(kind, target_field, target):
    return field(1, kind) + field(target_field, target)

def transaction(*actions, proposer=1, request=1):
    body = b"".join(field(1, a) for a in actions)
    return body + field(2, proposer) + field(3, request) + field(4, field(1, 1_700_000_000))

seeds = {
    "create-network": transaction(action(1, 5, network("n2", "back"))),
    "create-service": transaction(action(1, 3, service("s2", "api"))),
    "update-service": transaction(action(2, 3, service("s1", "web2", version=1))),
    "stale-update": transaction(action(2, 3, service("s1", "web3", version=7))),
    "remove-network": transaction(action(3, 5, network("n1", "front"))),
    "name-clash": transaction(action(1, 3, service("s3", "WEB"))),
    "many": transaction(*[action(1, 4, task("t%d" % i, "k")) for i in range(8)]),
    "mixed-refused": transaction(action(1, 5, network("n3", "x")), action(2, 3, service("s1", "y", version=9))),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
