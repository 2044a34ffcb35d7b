#!/usr/bin/env bash
# Registers and spills of each kernel in the given .cu files, as ptxas reports them for one
# architecture (default sm_90): the check to run after changing a kernel, since a spill or a
# register count past 128 / 255 changes how many warps an SM holds. No GPU needed.
#   bash scripts/kernel_registers.sh kernels/cuda/attention_*.cu        [ARCH=80]
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${ARCH:-90}"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
[[ $# -gt 0 ]] || { echo "usage: $0 FILE.cu..." >&2; exit 2; }
for f in "$@"; do
  "$nvcc" -I. -Ilib -O3 -DNDEBUG -std=c++17 "--generate-code=arch=compute_$arch,code=sm_$arch" \
    -x cu -c "$f" -o /dev/null -Xptxas -v 2>&1 |
    awk -v file="$f" '
      /Compiling entry function/ { match($0, /\047[^\047]+\047/); name = substr($0, RSTART + 1, RLENGTH - 2) }
      /bytes spill stores/ { spill = $0; sub(/.*stack frame, /, "", spill); sub(/ spill stores.*/, "", spill) }
      /Used [0-9]+ registers/ && name != "" {
        match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
        print regs "\t" spill "\t" name; name = "" }' |
    while IFS=$'\t' read -r regs spill name; do
      printf '%-4s regs  spill %-9s %s  (%s)\n' "$regs" "$spill" \
        "$(echo "$name" | c++filt | sed -E 's/pptrain::kernels::cuda::(\(anonymous namespace\)::)?//g; s/\(.*//')" \
        "$(basename "$f")"
    done
done
