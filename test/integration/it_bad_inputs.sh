# Every bad input gives exactly one clear error line, the expected message and exit 1:
# no stack trace, no crash, no hang. Bad configs come from test/data/configs/bad_*.yaml
# (their first line says what the error must contain), bad shards from test/data/shards.
source "$(dirname "$0")/common.sh"
count=0
cd "$PPTRAIN_SOURCE_DIR/test/data/configs"
for cfg in bad_*.yaml; do
  expect=$(head -1 "$cfg" | sed 's/^# expect: //')
  check_error "$expect" "$PPTRAIN_BIN" train "$cfg"
  count=$((count + 1))
done

make_tiny_corpus
write_tiny_config
shards="$PPTRAIN_SOURCE_DIR/test/data/shards"
check_error "bad magic 12345" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set "data.train=$shards/bad_magic.bin"
check_error "truncated" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set "data.train=$shards/truncated.bin"
check_error "version" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set "data.val=$shards/wrong_version.bin"
check_error "outside the model's vocabulary" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set "data.train=$shards/out_of_vocab.bin"
check_error "data.train: no file matches" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set "data.train=$WORK/nope/*.bin"
check_error "cannot read config" "$PPTRAIN_BIN" train "$WORK/missing.yaml"
check_error "--set training.steps=many" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set training.steps=many
check_error "pipeline.stages" "$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml"
# A schedule that deadlocks is refused by the validator at start-up, with the grid.
csv="$PPTRAIN_SOURCE_DIR/test/data/schedules/circular_wait.csv"
check_error "pipeline.schedule: csv:$csv (p=2, v=1, m=2): deadlock at step 2" \
  "$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=2 \
  --set pipeline.micro_batches=2 --set "pipeline.schedule=csv:$csv"
grep -q '^>>    2  \[0RECV_B0\]  \[1RECV_F1\]' "$WORK/stderr.txt" || { cat "$WORK/stderr.txt"; fail "no grid with the failing step"; }
check_error "deadlock at step 2" "$PPTRAIN_BIN" plan "$WORK/tiny.yaml" --set pipeline.stages=2 \
  --set pipeline.micro_batches=2 --set "pipeline.schedule=csv:$csv"
# A config that does not fit the memory given to `pptrain plan --fit` (pipeline.memory_limit_gib):
# the ranks over it; the same limit stops `pptrain train` on every rank before any allocation.
check_error "pipeline.memory_limit_gib: the memory plan puts rank 0 (" "$PPTRAIN_BIN" plan "$WORK/tiny.yaml" \
  --set pipeline.stages=2 --fit 0.0001
check_error "pipeline.memory_limit_gib: no split of the" "$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" \
  --set pipeline.stages=2 --set pipeline.partition=flops --set pipeline.memory_limit_gib=0.0001
"$PPTRAIN_BIN" plan "$WORK/tiny.yaml" --set pipeline.stages=2 --fit 1 | grep -q "^fits: every rank" ||
  fail "pptrain plan --fit 1 does not report that a tiny model fits"
# GPUs asked for where there are none (CI), or NCCL on the CPU: one line, before any work.
if ! nvidia-smi -L >/dev/null 2>&1; then
  check_error "runtime.device is cuda but" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set runtime.device=cuda
  check_error "rank 0: runtime.device is cuda but" "$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" \
    --set pipeline.stages=2 --set runtime.device=cuda
fi
check_error "nccl needs runtime.device cuda" "$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" \
  --set pipeline.stages=2 --set runtime.comm=nccl
[ ! -d "$WORK/runs" ] || fail "a failed launch left a run directory behind: $(ls "$WORK/runs")"
echo "$((count + 13)) bad inputs rejected cleanly"
