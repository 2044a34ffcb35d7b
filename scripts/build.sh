#!/usr/bin/env bash
# Configures and builds pptrain into build/ (Release). CUDA parts are built when nvcc is
# found; pass PPTRAIN_CUDA=OFF (or ON) in the environment to choose.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
jobs=$(nproc)
# BUILD_DIR and PPTRAIN_CUDA select another build: scripts/test.sh also builds build-emu with
# PPTRAIN_CUDA=EMULATE (the GPU path over host memory, docs/testing.md).
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPPTRAIN_CUDA="${PPTRAIN_CUDA:-AUTO}"
cmake --build "$build_dir" -j "$jobs"
