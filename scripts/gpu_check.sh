#!/usr/bin/env bash
# The one prepared GPU check (docs/gpu-checks.md, shared/GPU_CHECKS.md). Runs ON the lent GPU
# machine, from the repo root, over the bundle that scripts/package_gpu_check.sh built here:
#     bash scripts/gpu_check.sh            (device tool: carry [".gpu"], timeout_s 480)
# Steps, each under its own `timeout`, none stopping the others:
#   1. find the CUDA libraries the bundle does not carry (PyTorch's nvidia wheels, torch/lib,
#      the toolkit) and check every bundled binary loads; print the GPU
#   2. the [cuda] kernel tests vs their CPU twins: console log and a JUnit copy; where some
#      failed, the tests of their files again under compute-sanitizer's memcheck
#   3. pptrain_bench_cuda: time per kernel, the summed step, tokens/s, MFU
#   4. scripts/torch_reference.py: the same model in PyTorch on the same GPU (eager if
#      torch.compile fails or runs out of time)
#   5. scripts/gpu_check_training.sh: `pptrain train` on the GPU: fp32 parity with the CPU
#      backend, a bf16 run, GPT-2 124M throughput next to PyTorch's, and 2 and 4 ranks
#      sharing the GPU through MPI staging (NOT RUN where the machine has no mpirun)
# and prints a summary table last. Logs go to $OUT (default ./gpu-out); the device tool
# returns at most 8 files, so the training logs travel as one archive.
# Exit: 0 every check that ran passed (NOT RUN rows are not verified); 1 a check failed or
# timed out; 2 the bundle is missing or does not load; 77 no GPU (nothing was verified).
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2

# A hash of the sources the bundle is built from; package_gpu_check.sh records it, and here
# a different value means the binaries are not those of the tree being checked.
source_hash() {
  find kernels lib apps test/cuda test/support test/CMakeLists.txt CMakeLists.txt -type f \
    \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name CMakeLists.txt \) \
    -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
if [[ ${1:-} == --source-hash ]]; then source_hash; exit 0; fi

OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-470}  # all steps together: the run must end well under 8 minutes
T_TESTS=${T_TESTS:-100} T_JUNIT=${T_JUNIT:-60} T_BENCH=${T_BENCH:-100}
T_SANITIZE=${T_SANITIZE:-60} T_TORCH=${T_TORCH:-150} T_EAGER=${T_EAGER:-60} T_TRAIN=${T_TRAIN:-200} T_TRAIN_STEP=${T_TRAIN_STEP:-90}
ENV_LOG=$OUT/env.txt
ROWS=() FAILED=0 BUNDLE_BROKEN=0 GPU=0

row() { ROWS+=("| $1 | $2 | $3 |"); }
log() { echo "$*" | tee -a "$ENV_LOG"; }
: >"$ENV_LOG"

# run_step LOG TIMEOUT CMD...: runs CMD under `timeout` (capped by what is left of BUDGET_S),
# output to the terminal and LOG; sets RC (124: timed out; 125: no time left to start it).
run_step() {
  local logf=$1 t=$2; shift 2
  local left=$((BUDGET_S - SECONDS))
  ((t > left)) && t=$left
  if ((t < 10)); then
    echo "not started: the time budget ($BUDGET_S s) is spent" | tee "$logf"; RC=125; return
  fi
  echo "== $* (timeout ${t}s)" | tee "$logf"
  timeout -k 10 "$t" "$@" 2>&1 | tee -a "$logf"
  RC=${PIPESTATUS[0]}
  ((RC == 137)) && RC=124
  echo "== exit $RC after $SECONDS s in total" | tee -a "$logf"
}

# verdict NAME FIGURE: turns RC into a row; 77 is the binaries' "no GPU" (never a pass).
verdict() {
  case $RC in
    0) row "$1" PASS "$2" ;;
    77) if ((GPU)); then  # nvidia-smi sees a GPU that the program does not: a failure
          row "$1" "FAIL (sees no GPU)" "nvidia-smi lists one; driver/runtime mismatch? (env.txt)"; FAILED=1
        else
          row "$1" "SKIPPED (exit 77)" "${3:-nothing measured}"
        fi ;;
    124) row "$1" TIMEOUT "$2"; FAILED=1 ;;
    125) row "$1" "NOT RUN (time budget)" "-"; FAILED=1 ;;
    *) row "$1" "FAIL (exit $RC)" "$2"; FAILED=1 ;;
  esac
}

# ---- 1. the GPU, the bundle, the CUDA libraries ----
log "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), OUT=$OUT"
gpu_list=$(timeout 20 nvidia-smi -L 2>&1) && [[ $gpu_list == *GPU* ]] && GPU=1
log "nvidia-smi -L: ${gpu_list:-nothing}"
if ((GPU)); then
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
    --format=csv >>"$ENV_LOG" 2>&1
  row "GPU" "present" "$(echo "$gpu_list" | head -1 | cut -c1-60)"
else
  row "GPU" "NONE" "nvidia-smi finds no GPU: every GPU check below is skipped"
fi

BINS=(pptrain_cuda_tests pptrain_bench_cuda pptrain)
BUNDLE_LD=""
if [[ ! -f .gpu/MANIFEST.txt ]]; then
  row "bundle loads" "FAIL" ".gpu/ missing: run scripts/package_gpu_check.sh here first, carry [\".gpu\"]"
  BUNDLE_BROKEN=1
else
  cat .gpu/MANIFEST.txt >>"$ENV_LOG"
  # The libraries package_gpu_check.sh compressed (the tool carries at most 64 MiB).
  python3 - <<'EOF' 2>&1 | tee -a "$ENV_LOG"
import glob, lzma, os
for p in glob.glob(".gpu/lib/**/*.xz", recursive=True):
    if not os.path.exists(p[:-3]):
        with lzma.open(p) as src, open(p[:-3], "wb") as dst:
            dst.write(src.read())
        print("unpacked", p[:-3])
EOF
  built_hash=$(awk '/^source_hash:/ {print $2}' .gpu/MANIFEST.txt)
  now_hash=$(source_hash)
  if [[ $built_hash == "$now_hash" ]]; then
    row "bundle matches sources" PASS "source hash $now_hash, commit $(grep "^commit:" .gpu/MANIFEST.txt | cut -c9-16)"
  else
    row "bundle matches sources" "WARN (stale)" "bundle $built_hash, tree $now_hash: results are the bundle's"
  fi
  # Where the CUDA libraries the bundle needs but does not carry live on this machine.
  mapfile -t cand < <(timeout 60 python3 - <<'EOF' 2>/dev/null
import glob, importlib.util, os
try:
    import nvidia  # namespace package of NVIDIA's wheels (nvidia/cu13/lib, nvidia/cublas/lib, ...)
    for base in nvidia.__path__:
        for d in sorted(glob.glob(os.path.join(base, "*", "lib")) + glob.glob(os.path.join(base, "*", "*", "lib"))):
            print(d)
except Exception:
    pass
spec = importlib.util.find_spec("torch")  # torch/lib, without importing torch
if spec and spec.origin:
    print(os.path.join(os.path.dirname(spec.origin), "lib"))
EOF
  )
  cand+=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
  dirs=("$PWD/.gpu/lib") cuda_found=0
  while read -r soname; do
    [[ -z $soname ]] && continue
    found=""
    for d in "${cand[@]}"; do [[ -e $d/$soname ]] && { found=$d; break; }; done
    if [[ -n $found ]]; then
      [[ " ${dirs[*]} " == *" $found "* ]] || dirs+=("$found")
      log "cuda lib: $soname -> $found"; cuda_found=$((cuda_found + 1))
    elif ldconfig -p 2>/dev/null | grep "$soname " >/dev/null; then  # no -q: pipefail + SIGPIPE
      log "cuda lib: $soname -> system (ldconfig)"; cuda_found=$((cuda_found + 1))
    else
      log "cuda lib: $soname NOT FOUND (looked in: ${cand[*]})"
    fi
  done <.gpu/cuda-libs.txt
  [[ -d /usr/local/nvidia/lib64 ]] && dirs+=(/usr/local/nvidia/lib64)  # the driver's libcuda
  BUNDLE_LD=$(IFS=:; echo "${dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # Our libstdc++ only if this machine's is older than the binaries need.
  missing() { for b in "${BINS[@]}"; do LD_LIBRARY_PATH=$BUNDLE_LD ldd ".gpu/bin/$b" 2>&1; done | grep 'not found' | sort -u; }
  miss=$(missing)
  if grep -qE 'GLIBCXX|CXXABI|GCC_' <<<"$miss"; then
    log "this machine's libstdc++ is too old for the bundle: using .gpu/lib/compat"
    BUNDLE_LD=$PWD/.gpu/lib/compat:$BUNDLE_LD
    miss=$(missing)
  fi
  log "LD_LIBRARY_PATH for the bundle: $BUNDLE_LD"
  for b in "${BINS[@]}"; do { echo "ldd $b:"; LD_LIBRARY_PATH=$BUNDLE_LD ldd ".gpu/bin/$b" 2>&1; } >>"$ENV_LOG"; done
  if [[ -n $miss ]]; then
    log "unresolved: $miss"
    row "bundle loads" FAIL "$(head -1 <<<"$miss" | sed 's/^[[:space:]]*//' | cut -c1-90) (env.txt)"
    BUNDLE_BROKEN=1
  elif ! LD_LIBRARY_PATH=$BUNDLE_LD timeout 20 .gpu/bin/pptrain --help >/dev/null 2>>"$ENV_LOG"; then
    row "bundle loads" FAIL "pptrain --help failed (env.txt)"; BUNDLE_BROKEN=1
  else
    carried=(.gpu/lib/*.so*)
    row "bundle loads" PASS "$cuda_found/$(wc -l <.gpu/cuda-libs.txt) CUDA libs found, ${#carried[@]} libs carried"
  fi
fi
run_bundled() { LD_LIBRARY_PATH=$BUNDLE_LD "$@"; }

# The test files whose test cases failed in a Catch2 console log: a failure's header block
# names its test case's location on a line of its own ("/.../test/cuda/test_cuda_x.cpp:12").
failed_test_files() {
  sed -n 's|^/.*/test/cuda/\(test_[a-z0-9_]*\)\.cpp:[0-9]*$|\1|p' "$1" | sort -u
}
sanitize_failed_tests() {
  local tool files spec=""
  tool=$(command -v compute-sanitizer || true)
  [[ -n $tool ]] || { [[ -x /usr/local/cuda/bin/compute-sanitizer ]] && tool=/usr/local/cuda/bin/compute-sanitizer; }
  mapfile -t files < <(failed_test_files "$OUT/cuda_tests.txt")
  if [[ -z $tool || ${#files[@]} -eq 0 ]]; then
    row "failed [cuda] tests under compute-sanitizer" "NOT RUN" \
      "$([[ -z $tool ]] && echo "no compute-sanitizer here" || echo "no failing test file found in cuda_tests.txt")"
    return
  fi
  for f in "${files[@]}"; do spec+="${spec:+,}[#$f]"; done
  run_step "$OUT/sanitizer.tmp" "$T_SANITIZE" env LD_LIBRARY_PATH="$BUNDLE_LD" "$tool" --tool memcheck \
    --print-limit 20 .gpu/bin/pptrain_cuda_tests -# "$spec"
  local summary
  summary=$(grep -m1 'ERROR SUMMARY' "$OUT/sanitizer.tmp" | sed 's/^=* *//')
  { echo; echo "==== compute-sanitizer memcheck of ${files[*]}"; cat "$OUT/sanitizer.tmp"; } >>"$OUT/cuda_tests.txt"
  rm -f "$OUT/sanitizer.tmp"
  row "failed [cuda] tests under compute-sanitizer" "memcheck" "${summary:-no summary (exit $RC)}: ${files[*]} (cuda_tests.txt)"
}
# Open MPI's plugins and mpirun from the bundle: MPI_Init (pptrain, the NCCL test) needs them.
if [[ -f .gpu/mpi/env.sh ]]; then
  source .gpu/mpi/env.sh
  log "Open MPI from the bundle: $(command -v mpirun)"
fi

# ---- 2. [cuda] kernel tests: console reporter, then a JUnit copy (Catch2 v2 takes one
# reporter per run, and the tests are seconds long) ----
if ((BUNDLE_BROKEN)); then
  row "[cuda] kernel tests vs CPU twins" "NOT RUN" "the bundle does not load"
else
  run_step "$OUT/cuda_tests.txt" "$T_TESTS" env LD_LIBRARY_PATH="$BUNDLE_LD" \
    .gpu/bin/pptrain_cuda_tests -r console -d yes
  tests_rc=$RC
  verdict "[cuda] kernel tests vs CPU twins" \
    "$(grep -E 'test cases|All tests passed' "$OUT/cuda_tests.txt" | tail -1 | cut -c1-90)" \
    "runner exited 77: no GPU visible"
  # A failing kernel test gets its file's tests rerun under compute-sanitizer's memcheck, so
  # one lease says where an out-of-bounds or misaligned access is (appended to cuda_tests.txt:
  # the device tool returns at most 8 files).
  if ((tests_rc != 0 && tests_rc != 77 && tests_rc != 124 && tests_rc != 125)); then
    sanitize_failed_tests
  fi
  # Catch2 ran to its end (its exit code is the number of failed assertions): JUnit copy too.
  if grep -qE 'test cases|All tests passed' "$OUT/cuda_tests.txt"; then
    run_step "$OUT/cuda_tests.junit.log" "$T_JUNIT" env LD_LIBRARY_PATH="$BUNDLE_LD" \
      .gpu/bin/pptrain_cuda_tests -r junit -o "$OUT/cuda_tests.junit.xml"
    rm -f "$OUT/cuda_tests.junit.log"  # its output went to the XML; keep the returned files few
    verdict "[cuda] JUnit copy" "cuda_tests.junit.xml"
  else
    row "[cuda] JUnit copy" "SKIPPED" "the console run did not run Catch2"
  fi
fi

# ---- 3. kernel benchmark ----
if ((BUNDLE_BROKEN)); then
  row "kernel benchmark (bf16, fp32)" "NOT RUN" "the bundle does not load"
else
  run_step "$OUT/bench_kernels.txt" "$T_BENCH" env LD_LIBRARY_PATH="$BUNDLE_LD" .gpu/bin/pptrain_bench_cuda
  fig=$(awk '/^STEP_SUMMARY/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%s%s %.1f ms/step %.0fk tok/s MFU %.1f%%", sep, v["dtype"], v["step_ms"],
      v["tokens_per_s"] / 1000, v["mfu_pct"]; sep = "; " }' "$OUT/bench_kernels.txt")
  verdict "kernel benchmark (bf16, fp32)" "${fig:-no step summary (bench_kernels.txt)}" "prints 'no GPU', exit 77"
  # The attention kernels' tile-shape sweep (bitwise-equal shapes; the ops use the defaults).
  shapes=$(sed -n 's/^fastest attention tile shapes: //p' "$OUT/bench_kernels.txt")
  if [[ -n $shapes ]]; then row "attention tile shapes, fastest (bf16)" "-" "$shapes"; fi
  # Ways to do a row's work faster than the default (the bench's 0-call alternatives, bf16).
  alts=$(awk '/^faster alternatives/ { n = 0; names = "" } /^  [^|]*: [0-9.]+ -> / { sub(/^  /, ""); names = names (n++ ? "; " : "") $0 }
    /^ALTERNATIVES_SUMMARY dtype=bf16/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "step with them %.2f ms, MFU %.1f%%: %s", v["step_ms"], v["mfu_pct"], (n ? names : "none") }' \
    "$OUT/bench_kernels.txt")
  if [[ -n $alts ]]; then row "faster alternatives to the defaults (bf16)" "-" "$alts"; fi
fi

# ---- 4. the PyTorch reference on the same GPU ----
torch_fig() { awk '/^TORCH_SUMMARY/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  printf "%s: %.1f ms/step %.0fk tok/s MFU %.1f%%", v["mode"], v["ms_per_step"], v["tokens_per_s"] / 1000,
    v["mfu_pct"] }' "$1"; }
export PYTHONUNBUFFERED=1
# TORCH_TOKENS_PER_S=<figure> skips this step and compares with an earlier run's figure (a
# rerun inside the same lease need not spend ~90 s compiling PyTorch again).
if [[ -n ${TORCH_TOKENS_PER_S:-} ]]; then
  row "PyTorch reference (torch.compile)" "SKIPPED" "earlier run's figure: $TORCH_TOKENS_PER_S tok/s"
  torch_rc=0
else
  run_step "$OUT/torch_reference.txt" "$T_TORCH" python3 scripts/torch_reference.py
  torch_rc=$RC
  fig=$(torch_fig "$OUT/torch_reference.txt")
  verdict "PyTorch reference (torch.compile)" "${fig:-see torch_reference.txt}" \
    "$(grep -m1 -E '^no (GPU|torch)' "$OUT/torch_reference.txt" | cut -c1-80)"
fi
if ((torch_rc != 0 && torch_rc != 77 && torch_rc != 125)); then  # compile failed or ran long: eager still gives a figure
  run_step "$OUT/torch_reference_eager.txt" "$T_EAGER" python3 scripts/torch_reference.py --no-compile --warmup 3
  fig=$(torch_fig "$OUT/torch_reference_eager.txt")
  verdict "PyTorch reference (eager fallback)" "${fig:-see torch_reference_eager.txt}"
fi

# ---- 5. the CUDA training path: parity, bf16 training, 124M throughput, shared-GPU ranks ----
if ((BUNDLE_BROKEN)); then
  row "CUDA training checks" "NOT RUN" "the bundle does not load"
elif ((!GPU)); then
  row "CUDA training checks" "SKIPPED" "no GPU: nothing measured"
else
  torch_tps=${TORCH_TOKENS_PER_S:-}
  [[ -n $torch_tps ]] || torch_tps=$(awk '/^TORCH_SUMMARY/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "tokens_per_s") print kv[2] } }' \
    "$OUT/torch_reference.txt" 2>/dev/null | tail -1)
  mpirun_bin=$(command -v mpirun || true)
  run_step "$OUT/training.txt" "$T_TRAIN" env OUT="$OUT" PPTRAIN="$PWD/.gpu/bin/pptrain" BUNDLE_LD="$BUNDLE_LD" \
    TORCH_TOKENS_PER_S="$torch_tps" MPIRUN="$mpirun_bin" T_STEP="$T_TRAIN_STEP" bash scripts/gpu_check_training.sh
  while IFS='|' read -r name result figure; do
    name=${name#GPU_ROW } name=${name% } result=${result# } result=${result% } figure=${figure# }
    row "$name" "$result" "$figure"
    [[ $result == FAIL* || $result == TIMEOUT* ]] && FAILED=1
  done < <(grep '^GPU_ROW ' "$OUT/training.txt")
  ((RC == 124)) && { row "CUDA training checks" TIMEOUT "after ${T_TRAIN}s (training.txt)"; FAILED=1; }
fi

# ---- summary, last ----
if ((BUNDLE_BROKEN)); then code=2; elif ((FAILED)); then code=1; elif ((!GPU)); then code=77; else code=0; fi
case $code in
  0) verdict_line="every check that ran PASSED (NOT RUN rows are not verified)" ;;
  1) verdict_line="a check FAILED or timed out: see the logs in $OUT" ;;
  2) verdict_line="the bundle is missing or does not load: nothing of pptrain ran" ;;
  77) verdict_line="no GPU here: NOTHING was verified (exit 77)" ;;
esac
{
  echo
  echo "## gpu_check summary ($SECONDS s, exit $code)"
  echo
  echo "| check | result | key figure |"
  echo "|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "$verdict_line"
} | tee "$OUT/summary.txt"
exit $code
