# Every config shipped in configs/ loads and plans without a GPU (`pptrain plan`), every rank's
# planned memory fits in 80 GiB (an A100/H100 80GB), and a config whose header says "on N
# GPUs" asks for N ranks (pipeline.stages x parallel.data).
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
echo "$checked configs plan and fit"
