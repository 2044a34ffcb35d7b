#!/usr/bin/env bash
# The CUDA kernels' own source in the SIMT emulator (pptrain_cuda_tests_simt, docs/testing.md)
# once more under AddressSanitizer and the alignment check, in build-asan/: a kernel reading or
# writing past a tensor, or a vector access at a misaligned address (a GPU's "illegal address"
# and "misaligned address" faults), fails here with the kernel's name. About 4 minutes on 2
# cores (build 1.5, run 2). scripts/test.sh runs it after ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"   # CMake finds the CUDA headers through it
fi
# -Wno-maybe-uninitialized: GCC 12 misreads std::regex under ASan instrumentation.
sanitize="-fsanitize=address,alignment -fno-sanitize-recover=alignment -fno-omit-frame-pointer"
sanitize+=" -Wno-maybe-uninitialized"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DPPTRAIN_CUDA=OFF \
  -DCMAKE_CXX_FLAGS="$sanitize" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,alignment" >/dev/null
cmake --build build-asan --target pptrain_cuda_tests_simt -j "$(nproc)"
[ -x build-asan/test/pptrain_cuda_tests_simt ] || {
  echo "test_kernels_asan: no CUDA headers found, so no SIMT kernel tests to run" >&2; exit 1; }
build-asan/test/pptrain_cuda_tests_simt
