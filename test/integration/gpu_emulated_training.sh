# The GPU training path (runtime.device: cuda) in a build whose CUDA backend is emulated on
# host memory (PPTRAIN_CUDA=EMULATE, docs/testing.md): CudaStageModel, the executor moving
# "device" memory, GPU placement, the transport choice and HostStagingTransport (several
# ranks sharing the GPU) all run as on a GPU, over the CPU twins. It shows the path's logic (layouts, offsets, bf16 storage, optimizer, pipeline
# hand-offs), not the CUDA kernels, which only a GPU runs (docs/gpu-results.md).
source "$(dirname "$0")/common.sh"
make_tiny_corpus
write_tiny_config
compare="python3 $(dirname "$0")/compare_runs.py"
run() {  # run NAME NP OVERRIDES...
  local name="$1" np="$2"; shift 2
  "$MPIEXEC" -np "$np" "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set "logging.name=$name" \
    --set training.steps=8 --set logging.every=1 --save-params "$WORK/params/$name" "$@" \
    > "$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log"; fail "run $name failed"; }
  # Every rank's GPU (or, for the CPU run, host) memory peaks are the memory plan's.
  grep -q "peaks are as planned" "$WORK/$name.log" ||
    { grep "memory" "$WORK/$name.log"; fail "run $name: memory peaks differ from the plan"; }
}
run cpu 1
run gpu_fp32 1 --set runtime.device=cuda --set runtime.precision=fp32
grep -q "compute: GPU 0: emulated" "$WORK/gpu_fp32.log" || { cat "$WORK/gpu_fp32.log"; fail "the run did not use the (emulated) GPU"; }
echo -n "emulated GPU fp32 vs CPU: "
$compare "$WORK/runs/cpu" "$WORK/params/cpu" "$WORK/runs/gpu_fp32" "$WORK/params/gpu_fp32" 1e-6 1e-5 ||
  fail "the GPU path in fp32 differs from the CPU backend"

run gpu_p2 2 --set runtime.device=cuda --set runtime.precision=fp32 --set pipeline.stages=2
grep -q "transport: mpi" "$WORK/gpu_p2.log" || { cat "$WORK/gpu_p2.log"; fail "2 ranks on one GPU did not choose mpi"; }
echo -n "emulated GPU, 2-stage pipeline vs 1 rank: "
$compare "$WORK/runs/gpu_fp32" "$WORK/params/gpu_fp32" "$WORK/runs/gpu_p2" "$WORK/params/gpu_p2" 1e-6 1e-5 ||
  fail "the GPU pipeline differs from the single-rank GPU run"

# Checkpoints move between backends: the GPU run's step-4 checkpoint (device layout, written in
# table order) resumed on the CPU ends where the GPU run ended.
run gpu_ckpt 1 --set runtime.device=cuda --set checkpoint.every=4
ckpt=$(ls -d "$WORK"/runs/gpu_ckpt/checkpoints/step_*4 | head -1)
[ -n "$ckpt" ] || fail "no step-4 checkpoint from the GPU run"
run cpu_resumed 1 --set "checkpoint.resume=$ckpt"
grep -q "resumed from .*step_0*4 after step 4" "$WORK/cpu_resumed.log" || { cat "$WORK/cpu_resumed.log"; fail "the CPU run did not resume"; }
python3 - "$WORK/runs/gpu_ckpt/metrics.jsonl" "$WORK/runs/cpu_resumed/metrics.jsonl" <<'PY' || fail "GPU checkpoint resumed on the CPU differs"
import json, sys
gpu = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[1]))}
cpu = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[2]))}
steps = sorted(s for s in cpu if s > 4)
worst = max(abs(cpu[s] - gpu[s]) / abs(gpu[s]) for s in steps)
print(f"emulated GPU checkpoint resumed on the CPU: steps {steps[0]}-{steps[-1]}, max relative loss difference {worst:.1e}")
assert len(steps) == 4 and worst < 1e-6
PY

# 4 ranks sharing the GPU (HostStagingTransport), against one rank of the same 4-layer model.
run gpu_l4 1 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=4
run gpu_p4 4 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=4 \
  --set pipeline.stages=4
echo -n "emulated GPU, 4-stage pipeline vs 1 rank: "
$compare "$WORK/runs/gpu_l4" "$WORK/params/gpu_l4" "$WORK/runs/gpu_p4" "$WORK/params/gpu_p4" 1e-6 1e-5 ||
  fail "the 4-rank GPU pipeline differs from the single-rank GPU run"

# Zero-bubble: the CUDA stage model's split backward (I, then W later) gives bitwise what
# 1F1B's whole backwards give, in fp32 on 4 ranks and in bf16 on 2.
run gpu_p4_zb 4 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=4 \
  --set pipeline.stages=4 --set pipeline.schedule=zb-h1
echo -n "emulated GPU, 4-stage zb-h1 vs 1f1b, bitwise: "
$compare "$WORK/runs/gpu_p4" "$WORK/params/gpu_p4" "$WORK/runs/gpu_p4_zb" "$WORK/params/gpu_p4_zb" 0 0 ||
  fail "zb-h1 on the GPU path differs from 1f1b"
# partition: profile on the GPU path: the layers timed on the device at start-up (their
# memory is not training's: the run's peaks are still as planned), equal to one rank.
run gpu_p2_profile 2 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=4 \
  --set pipeline.stages=2 --set pipeline.partition=profile
echo -n "emulated GPU, 2 ranks partitioned by profile vs 1 rank: "
$compare "$WORK/runs/gpu_l4" "$WORK/params/gpu_l4" "$WORK/runs/gpu_p2_profile" "$WORK/params/gpu_p2_profile" 1e-6 1e-5 ||
  fail "the profile-partitioned GPU pipeline differs from the single-rank GPU run"
# zbv: two chunks per rank in a V, the tied embedding's copies both on rank 0 (summed there,
# not all-reduced); equal to one rank within fp32 round-off, as every pipeline is.
run gpu_p2_zbv 2 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=4 \
  --set pipeline.stages=2 --set pipeline.schedule=zbv --set pipeline.virtual_stages=2
echo -n "emulated GPU, 2-rank zbv vs 1 rank: "
$compare "$WORK/runs/gpu_l4" "$WORK/params/gpu_l4" "$WORK/runs/gpu_p2_zbv" "$WORK/params/gpu_p2_zbv" 1e-6 1e-5 ||
  fail "zbv on the GPU path differs from the single-rank GPU run"
# Data parallel on the GPU path: 2 replicas of a 2-stage zb-h1 pipeline (their gradient sums
# through host staging, one layer a bucket, started by each stage's last W) equal one rank with
# the same global batch, and bitwise the same replicas summing once after the step.
run gpu_p2_dp2 4 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=2 \
  --set pipeline.stages=2 --set parallel.data=2 --set pipeline.schedule=zb-h1 --set parallel.grad_bucket_mib=0 \
  --set logging.trace=true
# On a GPU rank the compute actions are timed by marks in the compute stream
# (model/stream_clock.h), made times at the end of the step's schedule: every one must lie in
# its step, after the last step's sums and before this one's, and the logged bubble is theirs.
python3 - "$WORK/runs/gpu_p2_dp2" <<'PY' || fail "the GPU-timed trace is not the steps' actions"
import glob, json, os, re, sys
rows = [json.loads(l) for l in open(os.path.join(sys.argv[1], "metrics.jsonl"))]
for path in sorted(glob.glob(os.path.join(sys.argv[1], "trace-rank*.json"))):
    rank = int(re.search(r"rank(\d+)", path).group(1))
    replica = rank % 2  # world rank = pipeline rank x 2 + replica; the log has replica 0's bubbles
    events = [e for e in json.load(open(path))["traceEvents"] if e["ph"] == "X"]
    step, begin, busy, last_end = 0, None, 0.0, 0.0
    for e in events:  # in the order recorded: a step ends with its "reduce + optimizer"
        begin = e["ts"] if begin is None else min(begin, e["ts"])  # the step's first event
        if e["name"] == "reduce + optimizer":
            span = e["ts"] - begin
            logged = rows[step]["bubble_pct"][rank // 2]
            assert replica == 1 or abs(100 * (1 - busy / span) - logged) < 1.0, (path, step, busy, span, logged)
            step, begin, busy, last_end = step + 1, None, 0.0, e["ts"] + e["dur"]
        elif e["cat"] == "compute":
            assert e["dur"] > 0 and e["ts"] >= last_end, (path, step, e)
            busy += e["dur"]
    assert step == len(rows), (path, step)
print(f"emulated GPU: every rank's GPU-timed actions lie in their steps, {step} steps, bubble as logged")
PY
grep -q "data parallel: gradients summed over 2 replicas; rank 0's stage 0: buckets of layers 2, 1 during" \
  "$WORK/gpu_p2_dp2.log" || { grep "data parallel" "$WORK/gpu_p2_dp2.log"; fail "the replicas did not use one bucket a layer"; }
echo -n "emulated GPU, 2 replicas of a 2-stage zb-h1 pipeline vs 1 rank: "
$compare "$WORK/runs/gpu_l4" "$WORK/params/gpu_l4" "$WORK/runs/gpu_p2_dp2" "$WORK/params/gpu_p2_dp2" 1e-6 1e-5 ||
  fail "the data-parallel GPU pipeline differs from the single-rank GPU run"
run gpu_p2_dp2_after 4 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=2 \
  --set pipeline.stages=2 --set parallel.data=2 --set pipeline.schedule=zb-h1 --set parallel.overlap_grad_reduce=false
echo -n "emulated GPU, replicas' sums in buckets during the last W vs after the step, bitwise: "
$compare "$WORK/runs/gpu_p2_dp2_after" "$WORK/params/gpu_p2_dp2_after" "$WORK/runs/gpu_p2_dp2" "$WORK/params/gpu_p2_dp2" 0 0 ||
  fail "bucketed data-parallel sums differ from one sum after the step on the GPU path"
run gpu_bf16_p2 2 --set runtime.device=cuda --set runtime.precision=bf16 --set pipeline.stages=2 \
  --set pipeline.micro_batches=3
run gpu_bf16_p2_zb 2 --set runtime.device=cuda --set runtime.precision=bf16 --set pipeline.stages=2 \
  --set pipeline.micro_batches=3 --set pipeline.schedule=zb-h1
echo -n "emulated GPU bf16, 2-stage zb-h1 vs 1f1b, bitwise: "
$compare "$WORK/runs/gpu_bf16_p2" "$WORK/params/gpu_bf16_p2" "$WORK/runs/gpu_bf16_p2_zb" "$WORK/params/gpu_bf16_p2_zb" 0 0 ||
  fail "zb-h1 on the GPU path in bf16 differs from 1f1b"
# Recompute: a bf16 stash that keeps only block outputs, recomputed for the backward (for I and
# again for W under zb-h1), gives bitwise the run that keeps every activation.
run gpu_bf16_p2_recompute 2 --set runtime.device=cuda --set runtime.precision=bf16 \
  --set pipeline.stages=2 --set pipeline.micro_batches=3 --set pipeline.recompute=full
run gpu_bf16_p2_zb_recompute 2 --set runtime.device=cuda --set runtime.precision=bf16 \
  --set pipeline.stages=2 --set pipeline.micro_batches=3 --set pipeline.schedule=zb-h1 \
  --set pipeline.recompute=full
for name in gpu_bf16_p2 gpu_bf16_p2_zb; do
  echo -n "emulated GPU bf16, $name with recompute full vs without, bitwise: "
  $compare "$WORK/runs/$name" "$WORK/params/$name" "$WORK/runs/${name}_recompute" "$WORK/params/${name}_recompute" 0 0 ||
    fail "$name with pipeline.recompute full differs on the GPU path"
done
# Selective keeps all but ln1, ln2 and the GELU output, remade for the weight gradients: in
# fp32 the same run (its forward's GELU is its own kernel, which in fp32 equals the emulated
# cuBLASLt epilogue; in bf16 the epilogue rounds once where the kernel rounds twice, so there
# the [cuda] test compares with GELU fusion off on both sides).
run gpu_p4_zb_selective 4 --set runtime.device=cuda --set model.n_layer=4 --set pipeline.micro_batches=4 \
  --set pipeline.stages=4 --set pipeline.schedule=zb-h1 --set pipeline.recompute=selective
echo -n "emulated GPU, 4-stage zb-h1 with recompute selective vs without, bitwise: "
$compare "$WORK/runs/gpu_p4_zb" "$WORK/params/gpu_p4_zb" "$WORK/runs/gpu_p4_zb_selective" \
  "$WORK/params/gpu_p4_zb_selective" 0 0 || fail "zb-h1 with pipeline.recompute selective differs on the GPU path"

run gpu_bf16 1 --set runtime.device=cuda --set runtime.precision=bf16
# bf16 times the attention kernels' tile shapes at start-up and logs what it kept.
grep "attention tile shapes (" "$WORK/gpu_bf16.log" ||
  fail "the bf16 run did not report the attention tile shapes it timed"
python3 - "$WORK/runs/gpu_bf16/metrics.jsonl" "$WORK/runs/gpu_fp32/metrics.jsonl" <<'PY' || fail "bf16 training is off"
import json, math, sys
bf16 = [json.loads(l)["loss"] for l in open(sys.argv[1])]
fp32 = [json.loads(l)["loss"] for l in open(sys.argv[2])]
print(f"emulated GPU bf16: loss {bf16[0]:.4f} -> {bf16[-1]:.4f} (fp32 {fp32[0]:.4f} -> {fp32[-1]:.4f})")
assert all(math.isfinite(x) for x in bf16), "non-finite loss"
assert bf16[-1] < bf16[0] - 0.5, "the loss did not fall"
assert abs(bf16[-1] - fp32[-1]) / fp32[-1] < 0.05, "bf16 and fp32 disagree by more than 5%"
PY
# A run whose memory plan exceeds the GPU's free memory stops before allocating, naming the
# rank and the figures (the emulated GPU reports PPTRAIN_EMULATED_GPU_GIB free).
PPTRAIN_EMULATED_GPU_GIB=0.0001 check_error "pipeline rank 0 needs" \
  "$MPIEXEC" -np 1 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set runtime.device=cuda --set logging.name=too_big
grep -q "GPU 0 has 0.00 GiB free" "$WORK/stderr.txt" || fail "the error does not say how much the GPU has free"
echo "the GPU path trains: fp32 equals the CPU backend, 2- and 4-rank GPU pipelines through host staging equal 1 rank, so do zbv and 2 replicas, zb-h1 equals 1f1b, bf16 follows fp32"
