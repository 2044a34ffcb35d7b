# Bad checkpoints and model files: each gives one clear error naming the file and the
# problem, exit 1, no crash, no hang, and no run output left behind. Model fixtures are in
# test/data/models (made by make_fixtures.py there); checkpoint corruptions are made here
# from a checkpoint of a 2-step run.
source "$(dirname "$0")/common.sh"
make_tiny_corpus
write_tiny_config
count=0

models="$PPTRAIN_SOURCE_DIR/test/data/models"
for f in "$models"/bad_*.bin; do
  check_error "$(basename "$f")" "$PPTRAIN_BIN" inspect "$f"
  count=$((count + 1))
done
check_error "llm.c model version 7 is not supported" "$PPTRAIN_BIN" export "$models/bad_version_7.bin" --format hf --out "$WORK/hf"
[ ! -e "$WORK/hf" ] || fail "a failed export left $WORK/hf behind"
count=$((count + 1))

"$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set training.steps=2 --set checkpoint.every=2 \
  --set logging.name=good > "$WORK/good.log" 2>&1 || { cat "$WORK/good.log"; fail "could not make a checkpoint"; }
good="$WORK/runs/good/checkpoints/step_00000002"
[ -f "$good/manifest.json" ] || fail "no checkpoint at $good"

corrupt() {  # corrupt NAME: a copy of the good checkpoint to damage; prints its path
  rm -rf "$WORK/ckpt/$1"; mkdir -p "$WORK/ckpt"; cp -r "$good" "$WORK/ckpt/$1"; echo "$WORK/ckpt/$1"
}
resume_fails() {  # resume_fails EXPECTED CHECKPOINT [more --set ...]
  local expect="$1" ckpt="$2"; shift 2
  check_error "$expect" "$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=2 \
    --set logging.name=resumed --set "checkpoint.resume=$ckpt" "$@"
  [ ! -e "$WORK/runs/resumed" ] || fail "a failed resume left $WORK/runs/resumed behind"
  count=$((count + 1))
}

c=$(corrupt bitflip)
python3 - "$c/stage0.safetensors" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x10
open(path, "wb").write(data)
PY
resume_fails "stage0.safetensors: CRC-32" "$c"
check_error "CRC-32" "$PPTRAIN_BIN" inspect "$c"
count=$((count + 1))

c=$(corrupt truncated); truncate -s -1000 "$c/stage0.safetensors"
resume_fails "stage0.safetensors: " "$c"
c=$(corrupt missing_file); rm "$c/stage0.safetensors"
resume_fails "stage0.safetensors: missing" "$c"
c=$(corrupt not_json); echo "{ this is not json" > "$c/manifest.json"
resume_fails "manifest.json: not valid JSON" "$c"
c=$(corrupt no_step); python3 -c "import json,sys; m=json.load(open(sys.argv[1])); del m['step']; json.dump(m, open(sys.argv[1],'w'))" "$c/manifest.json"
resume_fails "manifest lacks 'step'" "$c"
c=$(corrupt version); python3 -c "import json,sys; m=json.load(open(sys.argv[1])); m['version']=99; json.dump(m, open(sys.argv[1],'w'))" "$c/manifest.json"
resume_fails "checkpoint version 99 is not supported" "$c"
c=$(corrupt escape); python3 -c "import json,sys; m=json.load(open(sys.argv[1])); m['stages'][0]['file']='../../etc/passwd'; json.dump(m, open(sys.argv[1],'w'))" "$c/manifest.json"
resume_fails "must be a plain name" "$c"
c=$(corrupt no_manifest); rm "$c/manifest.json"
resume_fails "not a checkpoint (no readable manifest.json)" "$c"
resume_fails "checkpoint of another model" "$good" --set model.channels=32

# A file only one rank reads (stage 2 of a 4-stage checkpoint is read by rank 2 alone): that
# rank's error is the one reported, once, and every rank exits.
"$MPIEXEC" -np 4 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=4 --set model.n_layer=4 \
  --set training.steps=2 --set checkpoint.every=2 --set logging.name=good4 > "$WORK/good4.log" 2>&1 ||
  { cat "$WORK/good4.log"; fail "could not make a 4-stage checkpoint"; }
c="$WORK/ckpt/stage2_only"; rm -rf "$c"; cp -r "$WORK/runs/good4/checkpoints/step_00000002" "$c"
truncate -s -100 "$c/stage2.safetensors"
check_error "rank 2: $c/stage2.safetensors: " "$MPIEXEC" -np 4 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" \
  --set pipeline.stages=4 --set model.n_layer=4 --set logging.name=resumed4 --set "checkpoint.resume=$c"
[ ! -e "$WORK/runs/resumed4" ] || fail "a failed resume left $WORK/runs/resumed4 behind"
count=$((count + 1))
resume_fails "checkpoint.resume: no checkpoint directory" "$WORK/nowhere"
echo "$count bad checkpoints and model files rejected cleanly"
