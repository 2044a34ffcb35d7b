# model.init_from starts training from weights users bring: a run's final weights exported
# as an llm.c file (fp32, v3) and as a Hugging Face directory give, loaded back, exactly the
# validation loss the run ended with; a model of another shape is refused.
source "$(dirname "$0")/common.sh"
make_tiny_corpus
write_tiny_config
"$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set training.steps=6 --set checkpoint.every=6 \
  --set logging.name=first > "$WORK/first.log" 2>&1 || { cat "$WORK/first.log"; fail "first run failed"; }
final=$(grep -oE "val [0-9.]+$" "$WORK/first.log" | tail -1 | cut -d' ' -f2)
ckpt="$WORK/runs/first/checkpoints/step_00000006"
"$PPTRAIN_BIN" export "$ckpt" --format llmc --out "$WORK/model.bin" > /dev/null
"$PPTRAIN_BIN" export "$ckpt" --format hf --out "$WORK/hf" > /dev/null
for source in "$WORK/model.bin" "$WORK/hf" "$ckpt"; do
  "$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=2 --set training.steps=1 \
    --set "model.init_from=$source" --set logging.name=second > "$WORK/second.log" 2>&1 ||
    { cat "$WORK/second.log"; fail "init_from $source failed"; }
  start=$(grep -oE "^step 0 \| val [0-9.]+" "$WORK/second.log" | cut -d' ' -f5)
  [ "$start" = "$final" ] || fail "init_from $source: val loss $start, the first run ended at $final"
  echo "init_from $(basename "$source"): step-0 val loss $start = the first run's final $final"
done
check_error "has shape [" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set model.channels=32 \
  --set "model.init_from=$WORK/model.bin"
