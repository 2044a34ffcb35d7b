# A pipelined run equals the single-process run with the same global batch: GPipe, 1F1B,
# interleaved 1F1B (v=2) and the zero-bubble zb-h1, interleaved-zb and zbv (v=2, V placement: the
# tied embedding's two copies on rank 0) on p = 2 and 4
# ranks with m = p and 2p+1 micro-batches, and 1F1B with 2 data-parallel replicas; the loss
# at every step and every parameter after 5 steps, within fp32 round-off. The zero-bubble
# schedules also equal 1f1b and interleaved bitwise: the same kernels in the same order per
# parameter, only the W halves run later; so does pipeline.recompute: full or selective. Every run's
# memory peaks, on every rank, are exactly what the memory plan said.
#
# Tolerance, and why: each stage runs the same kernels on the same data in the same order
# as the single process (micro-batches are accumulated in increasing order by every
# schedule), so stage-local gradients are bitwise equal. Three sums are ordered differently:
# the tied embedding's gradient (two partial sums added, instead of one accumulator), the
# squared grad norm (summed per stage, then across ranks) and, with replicas, the sum of
# their gradients (two partial sums instead of one accumulator). These differ by
# a few fp32 ulps (~1e-7 relative), and 5 AdamW steps carry such differences through
# m/sqrt(v) without amplifying them beyond ~1e-6. So: losses within 1e-6 relative,
# parameters within 1e-5 relative (L2 per tensor); a wrong gradient, a dropped micro-batch
# or a missing tied-embedding sum is off by 1e-2 or more.
source "$(dirname "$0")/common.sh"
make_tiny_corpus
cat > "$WORK/eq.yaml" <<YAML
model: {vocab_size: 256, seq_len: 16, n_layer: 8, n_head: 2, channels: 16}
pipeline: {micro_batch_size: 2}
training: {steps: 5, lr: 1.0e-2, warmup_steps: 2, sample_tokens: 0}
data: {train: "$WORK/data/train_*.bin"}
logging: {dir: "$WORK/runs", every: 1}
runtime: {threads: 1, timeout_s: 60}
YAML
compare="python3 $(dirname "$0")/compare_runs.py"
run() {  # run NAME NP OVERRIDES...
  local name="$1" np="$2"; shift 2
  "$MPIEXEC" -np "$np" "$PPTRAIN_BIN" train "$WORK/eq.yaml" --set "logging.name=$name" \
    --save-params "$WORK/params/$name" "$@" > "$WORK/$name.log" 2>&1 ||
    { cat "$WORK/$name.log"; fail "run $name failed"; }
  # Every rank's measured memory peaks equal `pptrain plan`'s (runtime/memory_plan.h).
  grep -q "peaks are as planned" "$WORK/$name.log" ||
    { grep "memory" "$WORK/$name.log"; fail "run $name: memory peaks differ from the plan"; }
}
checked=0
for p in 2 4; do
  for m in $p $((2 * p + 1)); do
    run "ref_m$m" 1 --set "pipeline.micro_batches=$m"
    for schedule in gpipe 1f1b interleaved zb-h1 interleaved-zb zbv; do
      v=1; [[ $schedule == interleaved* || $schedule == zbv ]] && v=2
      name="${schedule}_p${p}_m${m}"
      run "$name" "$p" --set "pipeline.micro_batches=$m" --set "pipeline.stages=$p" \
        --set "pipeline.schedule=$schedule" --set "pipeline.virtual_stages=$v"
      echo -n "$name vs single process: "
      $compare "$WORK/runs/ref_m$m" "$WORK/params/ref_m$m" "$WORK/runs/$name" "$WORK/params/$name" 1e-6 1e-5 ||
        fail "$name differs from the single-process run"
      checked=$((checked + 1))
    done
    for pair in zb-h1:1f1b interleaved-zb:interleaved; do
      zb=${pair%:*}_p${p}_m$m whole=${pair#*:}_p${p}_m$m
      echo -n "$zb vs $whole, bitwise: "
      $compare "$WORK/runs/$whole" "$WORK/params/$whole" "$WORK/runs/$zb" "$WORK/params/$zb" 0 0 ||
        fail "$zb differs from $whole"
    done
  done
done
# The zbv schedule as a user CSV (`pptrain plan --csv`, PyTorch's format) with
# pipeline.placement: vee runs bitwise as zbv; without the placement it is refused, naming the
# first action on the wrong rank.
"$PPTRAIN_BIN" plan "$WORK/eq.yaml" --set pipeline.micro_batches=5 --set pipeline.stages=2 \
  --set pipeline.schedule=zbv --set pipeline.virtual_stages=2 --csv "$WORK/zbv.csv" > /dev/null ||
  fail "pptrain plan --csv of zbv failed"
run zbv_csv_p2_m5 2 --set pipeline.micro_batches=5 --set pipeline.stages=2 --set "pipeline.schedule=csv:$WORK/zbv.csv" \
  --set pipeline.virtual_stages=2 --set pipeline.placement=vee
echo -n "zbv as a CSV with placement vee vs zbv, bitwise: "
$compare "$WORK/runs/zbv_p2_m5" "$WORK/params/zbv_p2_m5" "$WORK/runs/zbv_csv_p2_m5" "$WORK/params/zbv_csv_p2_m5" 0 0 ||
  fail "the zbv CSV differs from zbv"
check_error "action '3F0' in the list of rank 0: stage 3 lives on rank 1, not on rank 0 (loop placement" \
  "$PPTRAIN_BIN" plan "$WORK/eq.yaml" --set pipeline.micro_batches=5 --set pipeline.stages=2 \
  --set "pipeline.schedule=csv:$WORK/zbv.csv" --set pipeline.virtual_stages=2

# partition: profile times the layers on every rank at start-up and partitions their mean:
# the run equals the single process like any partition, logs the times, and its config.yaml
# records them (so a rerun from it partitions the same way without measuring).
run profile_p2_m5 2 --set pipeline.micro_batches=5 --set pipeline.stages=2 --set pipeline.partition=profile
echo -n "profile_p2_m5 vs single process: "
$compare "$WORK/runs/ref_m5" "$WORK/params/ref_m5" "$WORK/runs/profile_p2_m5" "$WORK/params/profile_p2_m5" 1e-6 1e-5 ||
  fail "the profile-partitioned run differs from the single-process run"
grep -q "partition profile: embedding .* ms, block .* ms, head .* ms .*mean of 2 rank(s)" "$WORK/profile_p2_m5.log" ||
  { cat "$WORK/profile_p2_m5.log"; fail "no partition profile line"; }
grep -Eq "^  layer_costs: \[([0-9.e+-]+, ){9}[0-9.e+-]+\]$" "$WORK/runs/profile_p2_m5/config.yaml" ||
  { grep layer_costs "$WORK/runs/profile_p2_m5/config.yaml"; fail "config.yaml does not record the 10 layer costs"; }
"$PPTRAIN_BIN" plan "$WORK/runs/profile_p2_m5/config.yaml" | grep -q "^partition (profile):" ||
  fail "pptrain plan does not take the recorded layer costs back"
echo "profile_p2_m5: logged its layer times, and config.yaml records all 10"

# pipeline.memory_limit_gib steers a cost-based partition: under 0.0004 GiB (0.41 MiB) the
# flops split 2,3,3,2 (rank 1 holds 0.5 MiB) becomes 2,2,2,4; the run equals the single process,
# and every rank's measured peaks are as planned, so under the limit.
"$PPTRAIN_BIN" plan "$WORK/eq.yaml" --set pipeline.micro_batches=9 --set pipeline.stages=4 \
  --set pipeline.partition=flops --set pipeline.memory_limit_gib=0.0004 > "$WORK/plan_limit.txt" ||
  fail "pptrain plan with a memory limit failed"
grep -q "(pipeline.memory_limit_gib): layers per stage 2, 2, 2, 4 (without the limit 2, 3, 3, 2)" "$WORK/plan_limit.txt" ||
  { cat "$WORK/plan_limit.txt"; fail "the memory limit did not move the split"; }
run limit_p4_m9 4 --set pipeline.micro_batches=9 --set pipeline.stages=4 --set pipeline.partition=flops \
  --set pipeline.memory_limit_gib=0.0004
echo -n "limit_p4_m9 vs single process: "
$compare "$WORK/runs/ref_m9" "$WORK/params/ref_m9" "$WORK/runs/limit_p4_m9" "$WORK/params/limit_p4_m9" 1e-6 1e-5 ||
  fail "the memory-limited run differs from the single-process run"
python3 - "$WORK/runs/limit_p4_m9/metrics.jsonl" <<'PY' || fail "a rank's peak is over the memory limit"
import json, sys
peaks = [json.loads(l) for l in open(sys.argv[1])][-1]["peak_mib"]
print(f"limit_p4_m9 peak_mib {['%.3f' % x for x in peaks]}, limit {0.0004 * 1024:.3f} MiB")
assert len(peaks) == 4 and max(peaks) <= 0.0004 * 1024
PY

# metrics.jsonl reports each pipeline rank's peak memory per logged step: p figures, the
# largest of them the plan's largest rank.
"$PPTRAIN_BIN" plan "$WORK/eq.yaml" --set pipeline.micro_batches=9 --set pipeline.stages=4 \
  --set pipeline.schedule=zbv --set pipeline.virtual_stages=2 > "$WORK/plan_zbv.txt" ||
  fail "pptrain plan of the zbv run failed"
python3 - "$WORK/runs/zbv_p4_m9/metrics.jsonl" "$WORK/plan_zbv.txt" <<'PY' || fail "peak_mib in metrics.jsonl is off"
import json, re, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
planned = float(re.search(r"^largest: rank \d+ with ([0-9.]+) MiB", open(sys.argv[2]).read(), re.M).group(1))
peaks = last["peak_mib"]
print(f"zbv_p4_m9 peak_mib {['%.2f' % x for x in peaks]}, plan's largest rank {planned} MiB")
assert len(peaks) == 4 and abs(max(peaks) - planned) < 0.05
PY

# pipeline.recompute: full keeps only each block's output and recomputes the block in its
# backward (twice under a split backward: for I and for W); selective keeps all but ln1, ln2
# and the GELU output and remakes those for the weight gradients: bitwise the same run.
for spec in 1f1b:4:9:full zb-h1:2:5:full interleaved:2:5:full 1f1b:4:9:selective zb-h1:2:5:selective \
            zbv:2:5:selective; do
  IFS=: read -r schedule p m recompute <<< "$spec"
  v=1; [[ $schedule == interleaved* || $schedule == zbv ]] && v=2
  base="${schedule}_p${p}_m${m}"
  run "${base}_$recompute" "$p" --set "pipeline.micro_batches=$m" --set "pipeline.stages=$p" \
    --set "pipeline.schedule=$schedule" --set "pipeline.virtual_stages=$v" --set "pipeline.recompute=$recompute"
  echo -n "${base} with recompute $recompute vs without, bitwise: "
  $compare "$WORK/runs/$base" "$WORK/params/$base" "$WORK/runs/${base}_$recompute" "$WORK/params/${base}_$recompute" 0 0 ||
    fail "${base} with pipeline.recompute $recompute differs"
done
# The trace of a zb-h1 run holds every I and W it ran (timed), rank 0 logs their median
# times, and `pptrain plan --costs` simulates with them.
run zb_traced 2 --set pipeline.micro_batches=3 --set pipeline.stages=2 --set pipeline.schedule=zb-h1 \
  --set logging.trace=true
costs=$(sed -n 's/.*median ms): \([^ ]*\) (pptrain plan --costs.*/\1/p' "$WORK/zb_traced.log")
[[ $costs == F=*,I=*,W=* ]] || { cat "$WORK/zb_traced.log"; fail "no median action times in the zb-h1 log"; }
python3 - "$WORK/runs/zb_traced" <<'PY' || fail "the zb-h1 traces miss I or W actions"
import json, sys
for rank in (0, 1):
    events = json.load(open(f"{sys.argv[1]}/trace-rank{rank}.json"))["traceEvents"]
    names = [e["name"] for e in events if e.get("cat") == "compute" and "dur" in e]
    counts = {k: sum(1 for n in names if n.rstrip("0123456789").endswith(k)) for k in "FIWB"}
    # 5 steps x 3 micro-batches of each, and no whole backward.
    assert counts == {"F": 15, "I": 15, "W": 15, "B": 0}, (rank, counts)
print("zb-h1 traces: 15 F, 15 I, 15 W per rank, no B")
PY
"$PPTRAIN_BIN" plan "$WORK/eq.yaml" --set pipeline.stages=2 --set pipeline.schedule=zb-h1 --costs "$costs" |
  grep "simulated with" || fail "pptrain plan --costs $costs failed"
# --costs run:DIR takes each stage's medians from the traces themselves, for any schedule
# on the same stages; another stage count is refused with the reason.
"$PPTRAIN_BIN" plan "$WORK/eq.yaml" --set pipeline.stages=2 --set pipeline.micro_batches=8 \
  --costs "run:$WORK/runs/zb_traced" --compare > "$WORK/plan_run_costs.txt" ||
  { cat "$WORK/plan_run_costs.txt"; fail "pptrain plan --costs run: failed"; }
grep -q "simulated with measured per-stage costs (stage: F/I/W) 0: " "$WORK/plan_run_costs.txt" &&
  grep -q "  zb-h1                | 1 | " "$WORK/plan_run_costs.txt" ||
  { cat "$WORK/plan_run_costs.txt"; fail "pptrain plan --costs run: did not simulate with the traced stages"; }
check_error "no forward of stage 2 in its traces: per-stage costs need the same stages" \
  "$PPTRAIN_BIN" plan "$WORK/eq.yaml" --set pipeline.stages=4 --costs "run:$WORK/runs/zb_traced"
check_error "no trace-rank<N>.json in it" "$PPTRAIN_BIN" plan "$WORK/eq.yaml" --costs "run:$WORK"

# Data parallel: 2 replicas of a 2-stage pipeline (1F1B, and zbv with m=3) with m
# micro-batches each equal one process with 2m micro-batches (the replica's micro-batch index
# is folded into the global one); and their gradient sums bucket by bucket during the last
# backward equal one sum after the step, bitwise.
for spec in 1f1b:1:2 1f1b:1:3 zbv:2:3; do
  IFS=: read -r schedule v m <<< "$spec"
  [ -f "$WORK/runs/ref_m$((2 * m))/metrics.jsonl" ] || run "ref_m$((2 * m))" 1 --set "pipeline.micro_batches=$((2 * m))"
  name="${schedule}_p2_dp2_m$m"
  run "$name" 4 --set "pipeline.micro_batches=$m" --set pipeline.stages=2 --set parallel.data=2 \
    --set "pipeline.schedule=$schedule" --set "pipeline.virtual_stages=$v"
  echo -n "$name vs single process with m=$((2 * m)): "
  $compare "$WORK/runs/ref_m$((2 * m))" "$WORK/params/ref_m$((2 * m))" "$WORK/runs/$name" "$WORK/params/$name" 1e-6 1e-5 ||
    fail "$name differs from the single-process run"
  checked=$((checked + 1))
  # The replicas' gradient sums started bucket by bucket during the last backward (one layer
  # a bucket here; the default 25 MiB makes one bucket of this tiny stage) add the same
  # numbers as one sum after the step: bitwise the same training (runtime/grad_reduction.h).
  for variant in parallel.grad_bucket_mib=0 parallel.overlap_grad_reduce=false; do
    run "${name}_${variant#parallel.}" 4 --set "pipeline.micro_batches=$m" --set pipeline.stages=2 \
      --set parallel.data=2 --set "pipeline.schedule=$schedule" --set "pipeline.virtual_stages=$v" --set "$variant"
    echo -n "$name with $variant, bitwise: "
    $compare "$WORK/runs/$name" "$WORK/params/$name" "$WORK/runs/${name}_${variant#parallel.}" \
      "$WORK/params/${name}_${variant#parallel.}" 0 0 || fail "$name with $variant differs"
  done
done
echo "$checked pipelined layouts equal the single-process run"
