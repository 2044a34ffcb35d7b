#!/usr/bin/env bash
# Sets up a fresh machine, builds, prepares the demo corpus (the King James Bible, byte-level)
# and trains the demo model of configs/demo.yaml as a 2-rank pipeline under mpirun. Extra
# arguments go to `pptrain train`, e.g. `bash scripts/demo.sh --set training.steps=100`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/prepare_demo_data.sh
source scripts/mpi_env.sh
exec mpirun -np 2 build/apps/pptrain train configs/demo.yaml "$@"
