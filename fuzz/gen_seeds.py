#!/usr/bin/env python3
"""Writes the seed corpus: corpus/<target>/seed-* (VSOA v2 packets, layout as
in src/frame.rs). Each fuzz input starts with one selector byte (decode: chunk
size and limit; handshake: 0 raw, 1 right-password hello, 2 wrong-password
hello), followed by the packets."""
import json, os, struct

SERVINFO, RPC, SUBSCRIBE, PINGECHO = 0x00, 0x01, 0x02, 0xFF
SET = 0x04

def packet(kind, seqno=0, flags=0, status=0, tunid=0, url=b"", param=b"", data=b""):
    body = len(url) + len(param) + len(data)
    pad = (4 - body % 4) % 4
    head = struct.pack(">BBBBIHHII", 0x29, kind, flags | (pad << 6), status,
                       seqno, tunid, len(url), len(param), len(data))
    return head + url + param + data + b"\0" * pad

hello = packet(SERVINFO, 1, param=json.dumps({"passwd": "fuzz"}).encode())
ping = packet(PINGECHO, 2)
rpc = packet(RPC, 3, flags=SET, url=b"/a/b", param=b'{"x":1}', data=b"\x01\x02\x03")
sub = packet(SUBSCRIBE, 4, param=json.dumps(["/a", "/b/c"]).encode())

seeds = {
    "decode": {
        "seed-servinfo": b"\x3f" + hello,          # chunk 64, TCP limit
        "seed-pingecho": b"\x00" + ping,           # chunk 1
        "seed-rpc": b"\x07" + rpc,                 # chunk 8
        "seed-subscribe": b"\x13" + sub,           # chunk 20
        "seed-all": b"\x02" + hello + ping + rpc + sub,
    },
    "handshake": {
        "seed-servinfo": b"\x00" + hello,          # raw: the hello itself
        "seed-pingecho": b"\x01" + ping,           # after a valid hello
        "seed-rpc": b"\x01" + rpc,
        "seed-subscribe": b"\x01" + sub,
        "seed-all": b"\x00" + hello + ping + rpc + sub,
        "seed-wrong-password": b"\x02" + ping + rpc,
    },
}

here = os.path.dirname(os.path.abspath(__file__))
for target, files in seeds.items():
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, blob in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)
        print(f"corpus/{target}/{name}: {len(blob)} bytes")
