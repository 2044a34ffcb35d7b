# scripts/plot.py draws a run's loss curves and one step of its pipeline as PNG files, and
# reads the traces as the executor meant them: each rank's busy share of a traced step equals
# the complement of the bubble the run logged for that step (both from the same clock), and a
# simulated step's (`pptrain plan --trace`) mean busy share is the plan's 1 - bubble. Bad
# input is one error line and exit 1.
source "$(dirname "$0")/common.sh"
PLOT="python3 $PPTRAIN_SOURCE_DIR/scripts/plot.py"
make_tiny_corpus
write_tiny_config
"$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set logging.name=traced --set training.steps=6 \
  --set logging.every=1 --set logging.trace=true --set pipeline.stages=2 --set pipeline.schedule=zb-h1 \
  --set pipeline.micro_batches=4 --set training.val_every=3 > "$WORK/train.log" 2>&1 ||
  { cat "$WORK/train.log"; fail "the traced run failed"; }
run="$WORK/runs/traced"
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$1 is not a PNG"; }

$PLOT timeline "$run" --step 4 > "$WORK/timeline.txt" || { cat "$WORK/timeline.txt"; fail "plot.py timeline failed"; }
cat "$WORK/timeline.txt"
is_png "$run/timeline.png"
python3 - "$WORK/timeline.txt" "$run/metrics.jsonl" <<'PY' || fail "the timeline's busy shares are not the run's bubble"
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("traced: step 4,"))
busy = [float(x) for x in line.split("busy % ")[1].split()]
logged = next(r for r in map(json.loads, open(sys.argv[2])) if r["step"] == 4)["bubble_pct"]
worst = max(abs(b - (100 - p)) for b, p in zip(busy, logged))
print(f"step 4 (after a validation): busy {busy} %, 100 - logged bubble {[round(100 - p, 1) for p in logged]} %: at most {worst:.2f} points apart")
assert len(busy) == 2 and worst < 1.0
PY

"$PPTRAIN_BIN" plan "$WORK/tiny.yaml" --set pipeline.stages=2 --set pipeline.schedule=zb-h1 \
  --set pipeline.micro_batches=4 --trace "$WORK/plan.json" > /dev/null || fail "pptrain plan --trace failed"
$PLOT timeline "$run" "$WORK/plan.json" --out "$WORK/both.png" > "$WORK/both.txt" ||
  { cat "$WORK/both.txt"; fail "plot.py timeline of a run and a plan failed"; }
is_png "$WORK/both.png"
python3 - "$WORK/both.txt" "$WORK/plan.json" <<'PY' || fail "the simulated step's busy shares are not the plan's bubble"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0].startswith("traced: step 6,"), "the last traced step is the default"
busy = [float(x) for x in next(l for l in lines if l.startswith("plan.json: simulated step")).split("busy % ")[1].split()]
bubble = float(json.load(open(sys.argv[2]))["otherData"]["bubble"])
print(f"simulated: mean busy {sum(busy) / len(busy):.2f} %, plan's 1 - bubble {100 * (1 - bubble):.2f} %")
assert abs(sum(busy) / len(busy) - 100 * (1 - bubble)) < 0.1
PY

$PLOT loss "$run" > "$WORK/loss.txt" || { cat "$WORK/loss.txt"; fail "plot.py loss failed"; }
is_png "$run/loss.png"
last=$(tail -1 "$run/metrics.jsonl" | python3 -c 'import json, sys; r = json.load(sys.stdin)
print("last step {}, loss {:.4f}, val {:.4f}, bubble {:.1f}%, peak {:.1f} MiB".format(r["step"], r["loss"],
      r["val_loss"], sum(r["bubble_pct"]) / len(r["bubble_pct"]), max(r["peak_mib"])))')
grep -q "traced: 6 steps logged, $last" "$WORK/loss.txt" || { cat "$WORK/loss.txt"; fail "plot.py loss did not read the run's last step ($last)"; }
echo "loss: $last"

plot_error() {  # plot_error EXPECTED ARGS...: one error line naming the problem, exit 1
  local expect=$1; shift
  local rc=0
  $PLOT "$@" > "$WORK/out.txt" 2> "$WORK/err.txt" || rc=$?
  [ "$rc" -eq 1 ] && [ "$(wc -l < "$WORK/err.txt")" -eq 1 ] && grep -q "^plot.py: error: .*$expect" "$WORK/err.txt" ||
    { cat "$WORK/err.txt"; fail "plot.py $* (exit $rc) did not say '$expect'"; }
  echo "ok: $(cat "$WORK/err.txt")"
}
plot_error "the trace holds steps 1-6" timeline "$run" --step 7
plot_error "no trace-rank<N>.json in it" timeline "$WORK/data"
plot_error "no metrics.jsonl" loss "$WORK/data"
echo "not json" > "$WORK/bad.json"
plot_error "not a Chrome trace" timeline "$WORK/bad.json"
echo "plot.py drew the loss curves and the timelines"
