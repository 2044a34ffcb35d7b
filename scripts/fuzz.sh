#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) into build-fuzz/ with clang, ASan and UBSan, and runs
# each for a bounded time: FUZZ_SECONDS (default 20) each, one after the other. Prints one
# line per target and exits 1 if any target found a crash, a leak, a timeout or an OOM; the
# input is then kept in build-fuzz/crashes/<target>/ with reproduce.txt beside it.
#   scripts/fuzz.sh                    all targets (scripts/test.sh runs this after ctest)
#   scripts/fuzz.sh config             the named targets only: config token_shard model_files
#   FUZZ_SECONDS=600 scripts/fuzz.sh   longer runs; the corpus in build-fuzz/corpus/ grows
# Seeds: fuzz/corpus/<target>/ (own seeds and regression inputs) and the test data, read only;
# fuzz/<target>.dict: the keys and syntax of its format.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
build=build-fuzz
all_targets=(config token_shard model_files)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# Per target: the largest input tried (bytes) and the seed directories after its own.
declare -A max_len=([config]=4096 [token_shard]=4096 [model_files]=8192)
declare -A seeds=(
  [config]="test/data/configs"
  [token_shard]="test/data/shards"
  [model_files]="test/data/models"
)

for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "fuzz: unknown target '$t' (targets: ${all_targets[*]})" >&2; exit 2; }
done
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (run scripts/setup.sh)" >&2; exit 1; }

start=$(date +%s)
# -O1 with line tables only: stack traces name file and line, and it compiles faster than -g.
# No -DNDEBUG: assertions in the libraries (nlohmann::json's among them) stay on.
mkdir -p "$build"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DPPTRAIN_FUZZ=ON -DPPTRAIN_CUDA=OFF \
  -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}" >"$build/build.log" 2>&1 ||
  { tail -n 50 "$build/build.log" >&2; exit 1; }
echo "fuzz: built ${targets[*]/#/fuzz_} in $(( $(date +%s) - start )) s; ${seconds} s each"

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
for t in "${targets[@]}"; do
  exe="$build/fuzz/fuzz_$t"
  corpus="$build/corpus/$t"            # new inputs that found coverage
  crashes="$build/crashes/$t"
  log="$build/logs/$t.log"
  mkdir -p "$corpus" "$crashes" "$build/logs"
  args=(-max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=5 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$crashes/")
  [ ! -f "fuzz/$t.dict" ] || args+=(-dict="fuzz/$t.dict")   # keys and syntax of its format
  dirs=("$corpus")   # libFuzzer writes to the first; the rest are read (git keeps no empty dir)
  for d in "fuzz/corpus/$t" ${seeds[$t]}; do [ ! -d "$d" ] || dirs+=("$d"); done
  rc=0
  # The outer timeout only guards against a wedged process; libFuzzer stops itself.
  timeout --kill-after=10 $(( seconds + 60 )) "$exe" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?

  # From libFuzzer's final stats, or its last status line when it stopped at a crash.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$( (grep -oE '^#[0-9]+' "$log" || true) | tail -n 1 | tr -d '#')
  cov=$( (grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" || true) | tail -n 1)
  corp=$( (grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" || true) | tail -n 1)
  line=$(printf '%-18s %9s execs  %-20s %-16s' "fuzz_$t" "${execs:-?}" "${cov:-cov: ?}" "${corp:-corp: ?}")
  if [ "$rc" -eq 0 ]; then
    echo "$line ok"
    continue
  fi
  failed=1
  unit=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
  what=$( (grep -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-zA-Z-]+|runtime error: .*|contract broken: .*' "$log" || true) | head -n 1 | cut -c1-120)
  echo "$line FAILED (exit $rc): ${what:-see $log}"
  if [ -n "$unit" ]; then
    cp "$log" "$crashes/$(basename "$unit").log"
    printf '# %s\n%s %s\n' "${what:-fuzz_$t failed}" "$exe" "$unit" >>"$crashes/reproduce.txt"
    echo "  input:     $unit"
    echo "  reproduce: $exe $unit   (log: $crashes/$(basename "$unit").log)"
  else
    echo "  no input was written; log: $log"
  fi
done
echo "fuzz: done in $(( $(date +%s) - start )) s"
exit "$failed"
