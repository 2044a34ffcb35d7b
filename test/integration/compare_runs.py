#!/usr/bin/env python3
"""Compares two training runs: per-step losses (metrics.jsonl) and final parameters
(the stage<S>.safetensors written by --save-params), tensor by tensor by name.

usage: compare_runs.py REF_RUN REF_PARAMS RUN PARAMS LOSS_TOL PARAM_TOL
Prints the largest relative differences; exits 1 if one exceeds its tolerance. A tensor
held by several stages (the tied wte) must match the reference in every copy.

One slice is compared in absolute terms: the key bias (the middle third of each qkvb).
In exact arithmetic its gradient is zero (softmax is unchanged when the same q.b is added
to every score of a query), so in fp32 it is pure round-off noise (~1e-9) that AdamW
normalises into steps of random sign; its values stay ~1e-6, while a real error in it
would be of the order of lr. It must stay within KEY_BIAS_ABS of the reference."""
import array
import glob
import json
import math
import os
import struct
import sys


KEY_BIAS_ABS = 1e-4  # noise is ~1e-6 after 5 steps; an error is ~lr = 1e-2


def read_losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line)["loss"] for line in f]


def read_params(params_dir):
    tensors = {}
    for path in sorted(glob.glob(os.path.join(params_dir, "stage*.safetensors"))):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            data = f.read()
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            values = array.array("f")
            values.frombytes(data[begin:end])
            tensors.setdefault(name, []).append(values)
    if not tensors:
        sys.exit(f"no stage*.safetensors in {params_dir}")
    return tensors


def relative_error(a, b):
    diff = sum((x - y) ** 2 for x, y in zip(a, b))
    ref = sum(y * y for y in b)
    return math.sqrt(diff / ref) if ref > 0 else math.sqrt(diff)


def main():
    ref_run, ref_params, run, params, loss_tol, param_tol = sys.argv[1:7]
    ref_losses, losses = read_losses(ref_run), read_losses(run)
    if len(ref_losses) != len(losses):
        sys.exit(f"{len(losses)} logged steps vs {len(ref_losses)} in the reference")
    loss_err = max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses))
    ref, got = read_params(ref_params), read_params(params)
    if set(ref) != set(got):
        sys.exit(f"tensor names differ: {sorted(set(ref) ^ set(got))}")
    param_err, worst, key_bias_err = 0.0, "", 0.0
    for name, copies in got.items():
        for values in copies:
            expected = ref[name][0]
            if name.endswith(".qkvb"):
                c = len(values) // 3
                key_bias_err = max(key_bias_err, max(abs(a - b) for a, b in zip(values[c:2 * c], expected[c:2 * c])))
                values, expected = values[:c] + values[2 * c:], expected[:c] + expected[2 * c:]
            err = relative_error(values, expected)
            if err >= param_err:
                param_err, worst = err, name
    print(f"max relative loss difference {loss_err:.2e} over {len(losses)} steps; "
          f"max relative parameter difference {param_err:.2e} ({worst}, {len(got)} tensors); "
          f"key bias within {key_bias_err:.1e}")
    if loss_err > float(loss_tol) or param_err > float(param_tol) or key_bias_err > KEY_BIAS_ABS:
        sys.exit(f"exceeds tolerance (loss {loss_tol}, parameters {param_tol})")


if __name__ == "__main__":
    main()
