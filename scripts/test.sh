#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs every test (unit and MPI integration) via ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
source scripts/mpi_env.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
# The GPU training path with the CUDA backend emulated on host memory: its [cuda] tests and
# GPU-path training runs, which need no GPU (docs/testing.md).
BUILD_DIR=build-emu PPTRAIN_CUDA=EMULATE bash scripts/build.sh
ctest --test-dir build-emu --output-on-failure -j "$(nproc)" "$@"
bash scripts/test_kernels_asan.sh   # the kernels' source in the emulator under ASan: ~4 min
bash scripts/fuzz.sh   # libFuzzer targets, FUZZ_SECONDS (default 20) each: about 100 s with its build
