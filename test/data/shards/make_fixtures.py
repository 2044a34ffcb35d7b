#!/usr/bin/env python3
"""Regenerates the bad-shard fixtures in this directory (llm.c token shard format:
256 little-endian int32 header [magic 20240520, version 1, token count], then uint16 tokens).
test/unit/test_data.cpp opens each one and checks its error message; the set is also a
corpus of bad inputs for later fuzzing. Run from anywhere: python3 make_fixtures.py"""
import os
import struct


def shard(magic=20240520, version=1, n=None, tokens=(), extra=b""):
    tokens = list(tokens)
    n = len(tokens) if n is None else n
    header = struct.pack("<256i", magic, version, n, *([0] * 253))
    return header + struct.pack("<%dH" % len(tokens), *tokens) + extra


FIXTURES = {
    "valid.bin": shard(tokens=range(8)),
    "bad_magic.bin": shard(magic=12345, tokens=range(4)),
    "wrong_version.bin": shard(version=2, tokens=range(4)),
    "truncated.bin": shard(n=1000, tokens=range(10)),          # 1044 of 3024 bytes
    "trailing_bytes.bin": shard(tokens=range(4), extra=b"\0" * 6),
    "out_of_vocab.bin": shard(tokens=[50256 if i == 17 else i for i in range(20)]),
    "short_header.bin": shard()[:100],                          # cut inside the header
    "empty.bin": b"",
}

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for name, data in FIXTURES.items():
        with open(os.path.join(here, name), "wb") as f:
            f.write(data)
