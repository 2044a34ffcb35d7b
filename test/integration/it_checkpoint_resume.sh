# Checkpoints and resume:
#  1. a run stopped by SIGTERM (sent to every rank, as Slurm does) at some step k writes a
#     checkpoint and exits 0; resumed, it gives bitwise the same loss at every step as the
#     uninterrupted run, for p=1 and p=4 (SIGUSR1 to mpirun, which forwards it, for p=4);
#  2. the p=4 checkpoint resumed with p=2, p=1 and p=2 under zbv (two chunks per rank in a V)
#     matches within fp32 round-off;
#  3. kill -9 of a rank while checkpoints are being written (every step) leaves the previous
#     checkpoint loadable, and resume: auto picks it.
source "$(dirname "$0")/common.sh"
make_tiny_corpus
write_tiny_config
steps=100
cfg=(--set model.n_layer=4 --set model.channels=32 --set model.seq_len=32 --set "training.steps=$steps"
     --set logging.every=1 --set training.val_every=0 --set training.sample_tokens=0 --set data.val=)

launch() {  # launch NAME NP ARGS...: runs in the background, sets JOB_PID
  local name="$1" np="$2"; shift 2
  ( rc=0; "$MPIEXEC" -np "$np" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" "${cfg[@]}" \
      --set "logging.name=$name" "$@" >> "$WORK/$name.log" 2>&1 || rc=$?; echo "$rc" > "$WORK/$name.rc" ) &
  JOB_PID=$!
}
finish() {  # finish NAME: waits for the job; fails on a non-zero exit
  wait "$JOB_PID" || true
  [ "$(cat "$WORK/$1.rc")" = 0 ] || { cat "$WORK/$1.log"; fail "$1 exited $(cat "$WORK/$1.rc")"; }
}
losses() { python3 -c "import json,sys; [print(repr(json.loads(l)['loss'])) for l in open(sys.argv[1])]" "$1"; }
rank_pids() { for pid in $(pgrep -f "logging.name=$1"); do
    tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=' && echo "$pid"; done; }
wait_for_steps() {  # wait_for_steps NAME N
  for _ in $(seq 1 600); do
    [ -f "$WORK/runs/$1/metrics.jsonl" ] && [ "$(wc -l < "$WORK/runs/$1/metrics.jsonl")" -ge "$2" ] && return 0
    sleep 0.02
  done
  fail "$1: never reached step $2"
}

for p in 1 4; do
  launch "ref_p$p" "$p" --set "pipeline.stages=$p"; finish "ref_p$p"
  launch "stop_p$p" "$p" --set "pipeline.stages=$p" --set checkpoint.every=1000
  wait_for_steps "stop_p$p" 5
  if [ "$p" = 1 ]; then kill -TERM $(rank_pids stop_p1); else kill -USR1 "$(pgrep -f -o "mpiexec.*logging.name=stop_p4")"; fi
  finish "stop_p$p"
  grep -q "stopped by SIG.* after step" "$WORK/stop_p$p.log" || { cat "$WORK/stop_p$p.log"; fail "stop_p$p: no stop line"; }
  stopped_at=$(wc -l < "$WORK/runs/stop_p$p/metrics.jsonl")
  [ "$stopped_at" -lt "$steps" ] || fail "stop_p$p finished before the signal arrived"
  launch "stop_p$p" "$p" --set "pipeline.stages=$p" --set checkpoint.resume=auto; finish "stop_p$p"
  grep -q "resumed from .*step_0*$stopped_at after step $stopped_at" "$WORK/stop_p$p.log" || fail "stop_p$p did not resume from step $stopped_at"
  cmp <(losses "$WORK/runs/ref_p$p/metrics.jsonl") <(losses "$WORK/runs/stop_p$p/metrics.jsonl") ||
    fail "p=$p: stopped at $stopped_at and resumed, the losses differ from the uninterrupted run"
  echo "p=$p: stopped at step $stopped_at by a signal, resumed: all $steps losses bitwise equal"
done

# The p=4 checkpoint on other layouts: copy it into fresh run directories and resume.
ckpt=$(ls -d "$WORK"/runs/stop_p4/checkpoints/step_* | head -1)
for layout in 2:1f1b:1 1:1f1b:1 2:zbv:2; do
  IFS=: read -r p schedule v <<< "$layout"
  name="relayout_p${p}_$schedule"
  launch "$name" "$p" --set "pipeline.stages=$p" --set "pipeline.schedule=$schedule" \
    --set "pipeline.virtual_stages=$v" --set "checkpoint.resume=$ckpt"; finish "$name"
  echo -n "p=$p $schedule: "
  python3 - "$WORK/runs/ref_p4/metrics.jsonl" "$WORK/runs/$name/metrics.jsonl" <<'PY' || fail "p=4 -> p=$p $schedule resume differs"
import json, sys
ref = {json.loads(l)["step"]: json.loads(l)["loss"] for l in open(sys.argv[1])}
got = {json.loads(l)["step"]: json.loads(l)["loss"] for l in open(sys.argv[2])}
first = min(got)
rel = {s: abs(got[s] - ref[s]) / abs(ref[s]) for s in got}
at_first, early = rel[first], max(rel[s] for s in got if s < first + 20)
print(f"p=4 checkpoint resumed on this layout: {len(got)} steps, relative loss difference "
      f"{at_first:.1e} at the first resumed step, at most {early:.1e} over the first 20, "
      f"{max(rel.values()):.1e} over the run")
# Same arithmetic except the order of the tied-embedding and norm sums (see
# it_pipeline_equivalence.sh): round-off of ~1e-7 at the first resumed step. Training at lr
# 1e-2 amplifies it chaotically: p=1 (whose one stage sums both tied copies in one buffer)
# resumed from the checkpoints of steps 3-6 stayed within 4.4e-5 for 20 steps but reached
# 1.2e-3 to 2.4e-3 by steps 63-70, depending on the step it resumed from. So: the first step at 1e-5
# and the first 20 at 1e-3; a checkpoint missing or misplacing state is off by far more at
# once, and the whole run must still be finite and within 1e-1.
assert at_first < 1e-5, at_first
assert early < 1e-3, early
assert all(r < 1e-1 for r in rel.values()), max(rel.values())
PY
done

# The checkpoint records how many training sequences were read (the epoch sampler's place);
# a run resumed with another global batch (here twice the micro-batches) goes on from there,
# not from step x its own batch. A manifest without the field (older checkpoints) falls back.
k=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$ckpt/manifest.json")
read_seqs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['train_sequences'])" "$ckpt/manifest.json")
[ "$read_seqs" = $((k * 2 * 4)) ] || fail "the step-$k checkpoint records $read_seqs training sequences, not $k x 2 x 4"
launch wider_batch 1 --set pipeline.micro_batches=4 --set "checkpoint.resume=$ckpt" --set "training.steps=$((k + 2))"
finish wider_batch
grep -q "training data goes on at sequence $read_seqs (epoch 0)$" "$WORK/wider_batch.log" ||
  { cat "$WORK/wider_batch.log"; fail "a resume with another batch does not go on at sequence $read_seqs"; }
legacy="$WORK/legacy_ckpt"; cp -r "$ckpt" "$legacy"
python3 -c "import json,sys; m=json.load(open(sys.argv[1])); del m['train_sequences']; json.dump(m, open(sys.argv[1],'w'))" "$legacy/manifest.json"
launch legacy 1 --set "checkpoint.resume=$legacy" --set "training.steps=$((k + 1))"; finish legacy
grep -q "at sequence $((k * 8)) (epoch 0) (the checkpoint did not record it" "$WORK/legacy.log" ||
  { cat "$WORK/legacy.log"; fail "a manifest without train_sequences does not fall back to step x batch"; }
echo "checkpoints record the data position: resumed with twice the micro-batches at sequence $read_seqs"

# kill -9 while checkpoints are written every step, at several moments.
for attempt in 1 2 3 4 5; do
  name="crash$attempt"
  launch "$name" 2 --set pipeline.stages=2 --set checkpoint.every=1 --set checkpoint.keep=3
  wait_for_steps "$name" 3
  sleep "0.0$((attempt * 17 % 10))"
  kill -9 "$(rank_pids "$name" | head -1)"
  wait "$JOB_PID" || true
  for d in "$WORK/runs/$name"/checkpoints/step_*; do
    [ -f "$d/manifest.json" ] || fail "$name: $d has no manifest: a partial checkpoint looks complete"
  done
  launch "$name" 2 --set pipeline.stages=2 --set checkpoint.every=1 --set checkpoint.resume=auto \
    --set "training.steps=$steps"; finish "$name"
  grep -E "resumed from .*step_[0-9]+ after step [0-9]+" "$WORK/$name.log" | tail -1
done
