#!/usr/bin/env bash
# Builds the GPU check bundle HERE, on a machine without a GPU, so that a lent GPU machine only
# has to run scripts/gpu_check.sh (docs/gpu-checks.md). That machine has CUDA 13 and PyTorch
# but none of Open MPI, yaml-cpp, spdlog, fmt, OpenBLAS, so we carry them:
#
#   .gpu/bin/     pptrain_cuda_tests, pptrain_bench_cuda, pptrain (stripped, sm_90)
#   .gpu/mpi/     Open MPI's plugins, help texts, mpirun and orted, and env.sh that points
#                 Open MPI at them (scripts/package_gpu_mpi.sh): MPI_Init fails without them
#   .gpu/lib/     every shared library they need that the GPU machine lacks (from ldd)
#   .gpu/lib/compat/  our libstdc++ and libgcc_s, used there ONLY if its own are too old
#   .gpu/cuda-libs.txt  the CUDA sonames NOT carried (cudart, cuBLAS, cuBLASLt, NCCL: PyTorch's
#                 wheels hold them there); gpu_check.sh finds them by these names
#   .gpu/MANIFEST.txt   commit, source hash, flags, sizes, glibc needs, embedded GPU code
#
# Not carried: glibc's parts (libc, libm, libpthread, libdl, librt, ld-linux: replacing the
# host's C library breaks every process), libcuda (the driver's; it must match the kernel
# module), and the CUDA libraries above (hundreds of MiB; the limit is 64 MiB).
# Usage: bash scripts/package_gpu_check.sh   (env: BUILD_DIR=build-gpu JOBS=<n>)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD_DIR:-build-gpu}
DEST=.gpu
LIMIT_MIB=62  # the device tool carries at most 64 MiB: this bundle plus the working tree
JOBS=${JOBS:-$(nproc)}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x $NVCC ]] || { echo "package_gpu_check: no nvcc ($NVCC)" >&2; exit 1; }
CUOBJDUMP=$(command -v cuobjdump || echo "$(dirname "$NVCC")/cuobjdump")

# Release, CUDA forced on, Hopper only (sm_90: the H200; one architecture keeps it small).
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPPTRAIN_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_TESTING=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target pptrain_cuda_tests pptrain_bench_cuda pptrain

BINS=("$BUILD/test/pptrain_cuda_tests" "$BUILD/apps/pptrain_bench_cuda" "$BUILD/apps/pptrain")
rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/lib/compat"
for b in "${BINS[@]}"; do
  install -m 755 "$b" "$DEST/bin/"
  strip --strip-unneeded "$DEST/bin/$(basename "$b")"
done
# MPI_Init needs Open MPI's plugins, and several ranks need mpirun: .gpu/mpi (+ env.sh).
bash scripts/package_gpu_mpi.sh "$DEST/mpi"
SCAN=("${BINS[@]}" "$DEST"/mpi/bin/* "$DEST"/mpi/lib/openmpi3/*.so "$DEST"/mpi/lib/pmix/*.so)

# Sort every library ldd lists (transitive ones included) into: glibc (skip), the C++ runtime
# (compat only), the driver (skip), CUDA from the wheels (record), everything else (carry).
declare -A carried=() cuda=()
while read -r name path; do
  case "$name" in
    NOTFOUND) echo "package_gpu_check: ldd finds no $path here" >&2; exit 1 ;;
    linux-vdso.so* | ld-linux*.so* | libc.so* | libm.so* | libmvec.so* | libpthread.so* | \
      libdl.so* | librt.so* | libutil.so* | libresolv.so*) ;;
    libstdc++.so* | libgcc_s.so*) cp -L "$path" "$DEST/lib/compat/$name" ;;
    libcuda.so* | libnvidia-*) ;;
    libcudart.so* | libcublas.so* | libcublasLt.so* | libnccl.so*) cuda[$name]=$path ;;
    *) [[ -n ${carried[$name]:-} ]] || { cp -L "$path" "$DEST/lib/$name"; carried[$name]=$path; } ;;
  esac
done < <(for b in "${SCAN[@]}"; do
  ldd "$b" | awk '/=> not found/ {print "NOTFOUND", $1; next} /=>/ {print $1, $3}'
done | sort -u)
chmod u+w "$DEST"/lib/*.so* "$DEST"/lib/compat/*.so* 2>/dev/null || true
strip --strip-unneeded "$DEST"/lib/*.so* "$DEST"/lib/compat/*.so* 2>/dev/null || true
printf '%s\n' "${!cuda[@]}" | sort >"$DEST/cuda-libs.txt"

# The newest symbol versions the carried files need from glibc and libstdc++: the GPU
# machine's must be at least these (gpu_check.sh compares and says so if not).
newest() { objdump -T "$DEST"/bin/* "$DEST"/lib/*.so* 2>/dev/null | grep -o "$1[0-9.]*" | sort -Vu | tail -1; }
src_hash=$(bash scripts/gpu_check.sh --source-hash)
{
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$( [[ -n $(git status --porcelain 2>/dev/null) ]] && echo ' (working tree had uncommitted changes)')"
  echo "source_hash: $src_hash"
  echo "cmake: -DCMAKE_BUILD_TYPE=Release -DPPTRAIN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90"
  echo "nvcc: $("$NVCC" --version | tail -1)"
  echo "compiler: $(c++ --version | head -1)"
  echo "needs: $(newest GLIBC_) $(newest GLIBCXX_) $(newest CXXABI_)"
  echo "cuda_libs_not_carried: $(tr '\n' ' ' <"$DEST/cuda-libs.txt")"
  # What GPU code is embedded: cuobjdump's list where the toolkit has it, else the nvcc flags.
  if [[ -x $CUOBJDUMP ]]; then
    echo "gpu_code_in_pptrain_cuda_tests: $("$CUOBJDUMP" --list-elf "$DEST/bin/pptrain_cuda_tests" |
      grep -o 'sm_[0-9a-z]*' | sort | uniq -c | awk '{printf "%s cubins x%s ", $2, $1}')"
  else
    echo "gpu_code (nvcc flags; no cuobjdump here): $(grep -o 'code=\[[^]]*\]' "$BUILD/build.ninja" | sort -u | tr '\n' ' ')"
  fi
  echo "needs_glibc_2.35_or_newer: $(for f in "$DEST"/bin/* "$DEST"/lib/*.so*; do
    objdump -T "$f" | grep -E 'GLIBC_2\.(3[5-9]|[4-9][0-9])' >/dev/null && printf '%s ' "${f#"$DEST"/}"; done)"
  echo "files:"
  (cd "$DEST" && find bin lib -type f -printf '  %p %s\n' | sort)
} >"$DEST/MANIFEST.txt"

# Libraries over 2 MiB travel xz-compressed (OpenBLAS: 36 -> 4 MiB); gpu_check.sh unpacks
# them with Python's lzma, which needs no tool on that machine.
python3 - "$DEST" >>"$DEST/MANIFEST.txt" <<'EOF'
import lzma, os, sys
packed = []
for root, _, files in os.walk(os.path.join(sys.argv[1], "lib")):
    for f in files:
        p = os.path.join(root, f)
        if os.path.getsize(p) > 2 << 20 and not f.endswith(".xz"):
            with open(p, "rb") as src, lzma.open(p + ".xz", "wb", preset=6) as dst:
                dst.write(src.read())
            os.remove(p)
            packed.append(os.path.relpath(p, sys.argv[1]))
print("xz_compressed:", " ".join(sorted(packed)))
EOF
size_kib=$(du -sk "$DEST" | cut -f1)
# The rest of what travels: tracked files and untracked ones git does not ignore.
tree_kib=$(( $(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null |
  awk '{s += $1} END {print s + 0}') / 1024 ))
cat "$DEST/MANIFEST.txt"
echo "bundle: $DEST is $((size_kib / 1024)) MiB ($size_kib KiB); with the working tree" \
  "($((tree_kib / 1024)) MiB) $(((size_kib + tree_kib) / 1024)) MiB travels (limit 64 MiB)"
if ((size_kib + tree_kib > LIMIT_MIB * 1024)); then
  echo "package_gpu_check: over $LIMIT_MIB MiB with the working tree: the device tool would refuse it" >&2
  exit 1
fi
echo "next: the GPU session runs  bash scripts/gpu_check.sh  with carry [\".gpu\"] (docs/gpu-checks.md)"
