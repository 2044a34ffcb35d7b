# Every config shipped in configs/ loads and plans without a GPU (`pptrain plan`), every rank's
# planned memory fits in 80 GiB (an A100/H100 80GB), and a config whose header says "on N
# GPUs" asks for N ranks (pipeline.stages x parallel.data); with replicas the plan tables
# the data-parallel gradient buckets.
source "$(dirname "$0")/common.sh"
checked=0
for cfg in "$PPTRAIN_SOURCE_DIR"/configs/*.yaml; do
  name=$(basename "$cfg")
  "$PPTRAIN_BIN" plan "$cfg" --fit 80 > "$WORK/plan.txt" 2>&1 || { cat "$WORK/plan.txt"; fail "$name does not plan, or does not fit 80 GiB"; }
  ranks=$(sed -n 's/^pipeline: .*data parallel [0-9]*: \([0-9]*\) ranks in all$/\1/p' "$WORK/plan.txt")
  [ -n "$ranks" ] || { cat "$WORK/plan.txt"; fail "$name: the plan names no rank count"; }
  gpus=$(sed -n '1s/.* on \([0-9]*\) GPUs\{0,1\}[ ,:].*/\1/p' "$cfg")
  if [ -n "$gpus" ] && [ "$gpus" != "$ranks" ]; then fail "$name says $gpus GPUs but asks for $ranks ranks"; fi
  echo "$name: $ranks rank(s)${gpus:+ = its $gpus GPUs}; $(grep '^largest:' "$WORK/plan.txt" | cut -d';' -f1)"
  checked=$((checked + 1))
done
[ "$checked" -ge 5 ] || fail "only $checked configs in configs/"
# With replicas the plan lists each stage's gradient sums: GPT-2 774M's stage 0 holds the
# embedding and 9 blocks of 75 MiB (fp32), so 9 buckets of one block at 25 MiB, and the
# embedding (its tied wte) summed after the step.
"$PPTRAIN_BIN" plan "$PPTRAIN_SOURCE_DIR/configs/gpt2-774m.yaml" > "$WORK/plan.txt"
grep -q "^data parallel: each stage's fp32 gradients summed over 2 replicas every step" "$WORK/plan.txt" &&
  grep -Eq "^ +0 \| 0-9 +\| +926\.2 \| +9 \| +75\.1 \| +250\.6$" "$WORK/plan.txt" ||
  { sed -n '/^data parallel/,$p' "$WORK/plan.txt"; fail "the plan does not list the gradient buckets"; }
sed -n '/^data parallel/,$p' "$WORK/plan.txt"
echo "$checked configs plan and fit"
