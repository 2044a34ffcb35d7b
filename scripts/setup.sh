#!/usr/bin/env bash
# Installs, from Debian's packages, everything pptrain's build, tests and demo need.
# Safe to re-run: it installs only what is missing, and runs `apt-get update` only then.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libopenmpi-dev openmpi-bin          # MPI: bootstrap and the CPU transport
  libopenblas-openmp-dev              # sgemm for the CPU kernels, sharing OpenMP's threads
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  catch2                              # unit tests (Catch2 v2)
  clang libclang-rt-14-dev libomp-dev # scripts/fuzz.sh: clang, its libFuzzer/ASan runtimes, OpenMP
  bible-kjv                           # the demo corpus: the King James Bible as text
)

python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy || echo "setup: pip could not install numpy (test/integration/hf_reference.py needs it)" >&2
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib ||
  echo "setup: pip could not install matplotlib (scripts/plot.py and its test need it)" >&2

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
