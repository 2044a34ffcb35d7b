#!/usr/bin/env python3
"""Pipeline benchmark: the demo model (configs/demo.yaml) on 1, 2 and 4 ranks with GPipe,
1F1B and zero-bubble ZB-H1, m = 4 and 16 micro-batches. Prints a markdown table of tokens/s
(median over the timed steps), the measured bubble (mean over ranks and timed steps, from
metrics.jsonl), the simulated bubble (`pptrain plan`, unit costs F=1, B=2, I=W=1) and rank
0's peak activation memory (host, from the run's log; rank 0 holds the most micro-batches).

usage: python3 scripts/bench_pipeline.py [--steps N] [--warmup N] [--ranks 1,2,4]
       [--schedules gpipe,1f1b,zb-h1] [--recompute none,selective,full]
       (interleaved and interleaved-zb run v=2: 2 ranks at most; after scripts/demo.sh, or
       scripts/build.sh and scripts/prepare_demo_data.sh)"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "apps", "pptrain")


def mpi_env():
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    return env


def overrides(ranks, schedule, m, extra):
    # The interleaved schedules run 2 chunks per rank (the demo's 4 blocks allow 2 ranks).
    v = 2 if schedule.startswith("interleaved") else 1
    sets = [f"pipeline.stages={ranks}", f"pipeline.schedule={schedule}", f"pipeline.micro_batches={m}",
            f"pipeline.virtual_stages={v}"] + extra
    return [arg for s in sets for arg in ("--set", s)]


def simulated_bubble(ranks, schedule, m):
    out = subprocess.run([BIN, "plan", "configs/demo.yaml"] + overrides(ranks, schedule, m, []),
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"bubble ([0-9.]+)%", out).group(1))


def measure(ranks, schedule, m, recompute, steps, warmup, run_dir):
    name = f"{schedule}_p{ranks}_m{m}_{recompute}"
    extra = [f"training.steps={steps + warmup}", "logging.every=1", "training.val_every=0",
             "training.sample_tokens=0", "data.val=", f"logging.dir={run_dir}", f"logging.name={name}",
             f"pipeline.recompute={recompute}"]
    # One rank may use both cores (mpirun would bind it to one); more ranks get one core each.
    bind = ["--bind-to", "none"] if ranks == 1 else []
    cmd = ["mpirun"] + bind + ["-np", str(ranks), BIN, "train", "configs/demo.yaml"] + overrides(ranks, schedule, m, extra)
    log = subprocess.run(cmd, cwd=ROOT, check=True, env=mpi_env(), capture_output=True, text=True).stdout
    with open(os.path.join(run_dir, name, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f][warmup:]
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in rows)
    bubbles = [statistics.mean(r["bubble_pct"]) for r in rows if "bubble_pct" in r]
    activations = re.search(r"host memory peaks on rank 0: .*?activations ([0-9.]+) MiB", log)
    return (tokens_per_s, (statistics.mean(bubbles) if bubbles else 0.0),
            float(activations.group(1)) if activations else float("nan"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ranks", default="1,2,4")
    parser.add_argument("--schedules", default="gpipe,1f1b,zb-h1")
    parser.add_argument("--recompute", default="none", help="pipeline.recompute values, comma-separated")
    args = parser.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run scripts/build.sh first")
    print("| ranks | schedule | m | recompute | tokens/s | measured bubble % | simulated bubble % "
          "| rank 0 activations MiB |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as run_dir:
        for ranks in (int(r) for r in args.ranks.split(",")):
            for schedule in args.schedules.split(","):
                for m in (4, 16):
                    for recompute in args.recompute.split(","):
                        tps, bubble, acts = measure(ranks, schedule, m, recompute, args.steps, args.warmup, run_dir)
                        sim = simulated_bubble(ranks, schedule, m) if ranks > 1 else 0.0
                        print(f"| {ranks} | {schedule} | {m} | {recompute} | {tps:.0f} | {bubble:.1f} | {sim:.1f} "
                              f"| {acts:.1f} |", flush=True)


if __name__ == "__main__":
    main()
