#!/usr/bin/env bash
# Configures and builds pptrain into build/ (Release). CUDA parts are built when nvcc is
# found; pass PPTRAIN_CUDA=OFF (or ON) in the environment to choose.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPPTRAIN_CUDA="${PPTRAIN_CUDA:-AUTO}"
cmake --build build -j "$jobs"
