# Model formats end to end: a 2-stage pipeline trains the tiny model and saves its
# parameters; `pptrain export` turns them into a Hugging Face GPT-2 directory, and an
# independent numpy GPT-2 (hf_reference.py, plus transformers' GPT2LMHeadModel when torch and
# transformers are importable) must score the validation windows with pptrain's own final
# validation loss. llm.c files must survive export -> import -> export byte for byte.
#
# Which loss: the last line of metrics.jsonl has val_loss, evaluated after the last step on
# the first training.val_batches validation batches; --save-params writes the parameters
# after that same last step, so the two describe one model. metrics.jsonl keeps full
# precision (the console line rounds to 4 decimals).
source "$(dirname "$0")/common.sh"
command -v python3 > /dev/null || fail "python3 is needed (scripts/setup.sh)"
if ! python3 -c 'import numpy' 2> /dev/null; then
  python3 -m pip install --quiet numpy > "$WORK/pip.txt" 2>&1 ||
    { cat "$WORK/pip.txt"; fail "numpy is missing and pip could not install it"; }
fi

make_tiny_corpus
write_tiny_config
"$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=2 --set training.steps=10 \
  --set checkpoint.dir="$WORK/ck" --set checkpoint.every=5 --save-params "$WORK/params" > "$WORK/train.txt" 2>&1 || { cat "$WORK/train.txt"; fail "training exited non-zero"; }
run="$WORK/runs/tiny"
[ -f "$WORK/params/stage0.safetensors" ] && [ -f "$WORK/params/stage1.safetensors" ] ||
  fail "--save-params wrote no stage0/stage1 files: $(ls "$WORK/params")"

pp() { "$PPTRAIN_BIN" "$@" > "$WORK/cmd.txt" 2>&1 || { cat "$WORK/cmd.txt"; fail "pptrain $* exited non-zero"; }; }

# A --save-params dir needs the run's config for n_head; without it, one clear error.
if "$PPTRAIN_BIN" export "$WORK/params" --format hf --out "$WORK/hf" > "$WORK/err.txt" 2>&1; then
  fail "export of a --save-params dir without --config succeeded"
fi
grep -q "pass --config" "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "the error does not ask for --config"; }
[ "$(wc -l < "$WORK/err.txt")" -eq 1 ] || { cat "$WORK/err.txt"; fail "the error is not one line"; }

pp export "$WORK/params" --config "$run/config.yaml" --format hf --out "$WORK/hf"
pp inspect "$WORK/hf"
cat "$WORK/cmd.txt"
grep -q "Hugging Face GPT-2 export" "$WORK/cmd.txt" || fail "inspect did not recognise the HF export"

python3 "$PPTRAIN_SOURCE_DIR/test/integration/hf_reference.py" "$WORK/hf" --shards "$WORK/data/val_*.bin" \
  --seq-len 16 --batch-size 4 --batches 4 > "$WORK/ref.json" 2> "$WORK/ref.err" ||
  { cat "$WORK/ref.err"; fail "hf_reference.py failed"; }
python3 - "$run/metrics.jsonl" "$WORK/ref.json" <<'PY' || fail "the exported model's loss differs from pptrain's"
import json, sys
pptrain = [json.loads(l) for l in open(sys.argv[1])][-1]["val_loss"]
ref = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
ok = True
for name in ("numpy", "transformers"):
    if ref[name] is None:
        print(f"{name:>12}: not importable, skipped")
        continue
    rel = abs(ref[name] - pptrain) / abs(pptrain)
    print(f"{name:>12}: loss {ref[name]:.9f} vs pptrain {pptrain:.9f} over {ref['windows']} windows: "
          f"relative difference {rel:.2e} (limit 1e-4)")
    ok = ok and rel <= 1e-4
sys.exit(0 if ok else 1)
PY

# llm.c: export -> import -> export is byte-identical, in fp32 (v3) and bf16 (v5). The HF
# import pads wte back to 256 rows (= Vp here), so HF -> llm.c gives the same bytes too.
pp export "$WORK/params" --config "$run/config.yaml" --format llmc --out "$WORK/m3.bin"
pp export "$WORK/m3.bin" --format llmc --out "$WORK/m3_again.bin"
cmp "$WORK/m3.bin" "$WORK/m3_again.bin" || fail "llm.c v3 export -> import -> export changed bytes"
pp export "$WORK/hf" --format llmc --out "$WORK/m3_from_hf.bin"
cmp "$WORK/m3.bin" "$WORK/m3_from_hf.bin" || fail "HF -> llm.c v3 differs from the direct llm.c export"
pp export "$WORK/m3.bin" --format llmc-bf16 --out "$WORK/m5.bin"
pp export "$WORK/m5.bin" --format llmc-bf16 --out "$WORK/m5_again.bin"
cmp "$WORK/m5.bin" "$WORK/m5_again.bin" || fail "llm.c v5 export -> import -> export changed bytes"
[ "$(( $(stat -c %s "$WORK/m3.bin") - 1024 ))" -eq "$(( 2 * ($(stat -c %s "$WORK/m5.bin") - 1024) ))" ] ||
  fail "the bf16 file is not half the fp32 one's parameter bytes"
pp inspect "$WORK/m5.bin"
grep -q "version 5 (bf16 parameters)" "$WORK/cmd.txt" || { cat "$WORK/cmd.txt"; fail "inspect of the v5 file"; }
pp inspect "$WORK/params"
grep -q "stage1.safetensors" "$WORK/cmd.txt" || { cat "$WORK/cmd.txt"; fail "inspect of the --save-params dir"; }

# Checkpoints: the directory lists both, newest first; the last one holds the same parameters
# as --save-params (same bytes once exported); a flipped byte fails the CRC check.
pp inspect "$WORK/ck"
grep -A1 "newest first" "$WORK/cmd.txt" | grep -q "step_00000010" || { cat "$WORK/cmd.txt"; fail "inspect of the checkpoint dir"; }
pp inspect "$WORK/ck/step_00000010"
[ "$(grep -c "crc32 .* ok" "$WORK/cmd.txt")" -eq 2 ] || { cat "$WORK/cmd.txt"; fail "inspect of a checkpoint: CRCs"; }
pp export "$WORK/ck/step_00000010" --format llmc --out "$WORK/m3_from_ck.bin"
cmp "$WORK/m3.bin" "$WORK/m3_from_ck.bin" || fail "the checkpoint's parameters differ from --save-params'"
cp -r "$WORK/ck/step_00000010" "$WORK/bad_ck"
printf '\xff' | dd of="$WORK/bad_ck/stage1.safetensors" bs=1 seek=2000 conv=notrunc status=none
if "$PPTRAIN_BIN" inspect "$WORK/bad_ck" > "$WORK/bad.txt" 2> "$WORK/err.txt"; then fail "a corrupt checkpoint passed inspect"; fi
grep -q "stage1.safetensors: CRC-32 .* does not match" "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "CRC error message"; }
grep -q "CRC MISMATCH" "$WORK/bad.txt" || { cat "$WORK/bad.txt"; fail "inspect's table does not mark the bad file"; }

# A corrupt model file: one error line naming it, exit status 1.
set +e
"$PPTRAIN_BIN" inspect "$PPTRAIN_SOURCE_DIR/test/data/models/bad_version_7.bin" > "$WORK/err.txt" 2>&1
status=$?
set -e
[ "$status" -eq 1 ] || fail "inspect of a corrupt file exited $status, expected 1"
grep -q "bad_version_7.bin: llm.c model version 7 is not supported" "$WORK/err.txt" ||
  { cat "$WORK/err.txt"; fail "unexpected error message"; }
[ "$(wc -l < "$WORK/err.txt")" -eq 1 ] || { cat "$WORK/err.txt"; fail "the error is not one line"; }
echo "it_hf_export: ok"
