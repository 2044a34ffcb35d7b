#!/usr/bin/env python3
"""Regenerates the llm.c model-file fixtures in this directory, written independently of
pptrain's writer. llm.c model file: 256 little-endian int32 header [magic 20240326, version
(3 = fp32, 5 = bf16), maxT, V, L, NH, C, Vp, 0...], then the 16 tensors wte (Vp,C),
wpe (maxT,C), ln1w (L,C), ln1b, qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C), attprojb,
ln2w, ln2b, fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb, lnfw (C), lnfb (C).

The model is tiny (maxT 4, V 5, L 1, NH 2, C 4, Vp 8: 300 parameters) and parameter i has
the value (i % 17 - 8) / 16, exact in fp32 and bf16, so test/unit/test_formats.cpp can check
the values read and that pptrain writes back the same bytes. The bad_* files are a corpus
of bad inputs (each test checks its message; later fuzzing starts from them).
Run from anywhere: python3 make_fixtures.py"""
import os
import struct

MAXT, V, L, NH, C, VP = 4, 5, 1, 2, 4, 8


def num_params(maxT=MAXT, L=L, C=C, Vp=VP):
    return Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C


def model(magic=20240326, version=3, maxT=MAXT, V=V, L=L, NH=NH, C=C, Vp=VP, n=None, extra=b""):
    header = struct.pack("<256i", magic, version, maxT, V, L, NH, C, Vp, *([0] * 248))
    n = num_params(maxT, L, C, Vp) if n is None else n
    values = [(i % 17 - 8) / 16 for i in range(n)]
    if version == 5:  # bf16: the top half of the fp32 (exact for these values)
        body = b"".join(struct.pack("<f", v)[2:] for v in values)
    else:
        body = struct.pack("<%df" % n, *values)
    return header + body + extra


FIXTURES = {
    "valid_v3.bin": model(),
    "valid_v5.bin": model(version=5),
    "bad_magic.bin": model(magic=0x12345678),
    "bad_version_4.bin": model(version=4),
    "bad_version_7.bin": model(version=7),
    "bad_truncated.bin": model()[:-100],
    "bad_extra_bytes.bin": model(extra=b"\0" * 8),
    "bad_heads.bin": model(NH=3),                     # C 4 % NH 3 != 0
    "bad_padded_vocab.bin": model(V=9),               # Vp 8 < V 9
    "bad_zero_layers.bin": model(L=0),
    "bad_huge_sizes.bin": model(C=1 << 30, L=1 << 20, n=300),  # ~1e25 parameters
    "bad_short_header.bin": model()[:512],
    "bad_empty.bin": b"",
}

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for name, data in FIXTURES.items():
        with open(os.path.join(here, name), "wb") as f:
            f.write(data)
