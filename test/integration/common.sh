# Shared by the integration tests: a scratch directory, a tiny corpus and config, and
# assertions that print what went wrong.
set -euo pipefail
: "${PPTRAIN_BIN:?set by ctest}" "${MPIEXEC:?set by ctest}" "${PPTRAIN_SOURCE_DIR:?set by ctest}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pptrain-it.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Each test's mpirun keeps its session directory under $WORK: tests run in parallel (ctest -j),
# and launches sharing /tmp/ompi.<host>.<uid> raced ("mkdir ... File exists", orte_init failed).
export OMPI_MCA_orte_tmpdir_base="$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }

# A byte-level corpus of repetitive English (160 KiB) in $WORK/data, 1/4 of it val.
make_tiny_corpus() {
  local text="$WORK/tiny.txt"
  for i in $(seq 1 400); do
    echo "In the beginning the quick brown fox jumped over the lazy dog, number $((i % 7)) of seven."
    echo "And the dog said unto the fox: run, for the evening and the morning were day $((i % 5))."
  done > "$text"
  while [ "$(wc -c < "$text")" -lt 163840 ]; do cat "$text" "$text" > "$text.2"; mv "$text.2" "$text"; done
  "$PPTRAIN_BIN" prepare --out "$WORK/data" --val-fraction 0.25 "$text" > /dev/null
}

# A tiny model config over that corpus; extra YAML lines may be appended by the caller.
write_tiny_config() {
  cat > "$WORK/tiny.yaml" <<YAML
model: {vocab_size: 256, seq_len: 16, n_layer: 2, n_head: 2, channels: 16}
pipeline: {micro_batches: 2, micro_batch_size: 4}
training: {steps: 30, lr: 1.0e-2, warmup_steps: 5, val_every: 10, val_batches: 4, sample_tokens: 20}
data: {train: "$WORK/data/train_*.bin", val: "$WORK/data/val_*.bin"}
logging: {dir: "$WORK/runs", every: 5}
runtime: {threads: 1}
YAML
}

# check_error EXPECTED_SUBSTRING COMMAND...: the command must exit 1 with exactly one
# "pptrain: error: ..." line containing the substring, and no crash. (mpirun adds its own
# banner about the non-zero exit; pptrain itself must say one line.)
check_error() {  # check_error EXPECTED_SUBSTRING COMMAND...
  local expect="$1"; shift
  local rc=0
  timeout 60 "$@" > "$WORK/stdout.txt" 2> "$WORK/stderr.txt" || rc=$?
  [ "$rc" -eq 1 ] || { cat "$WORK/stderr.txt"; fail "exit code $rc (expected 1) for: $*"; }
  local ours
  ours=$(grep '^pptrain' "$WORK/stderr.txt" || true)
  [ "$(grep -c '^pptrain' "$WORK/stderr.txt")" -eq 1 ] || { cat "$WORK/stderr.txt"; fail "not one error line: $*"; }
  [[ "$ours" == "pptrain: error: "* ]] || fail "error line lacks 'pptrain: error:': $ours"
  [[ "$ours" == *"$expect"* ]] || fail "expected '$expect' in: $ours"
  ! grep -qE 'terminate called|Segmentation|Aborted|core dumped' "$WORK/stderr.txt" ||
    { cat "$WORK/stderr.txt"; fail "crashed: $*"; }
  echo "ok: $ours"
}

