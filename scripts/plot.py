#!/usr/bin/env python3
"""Pictures of pptrain runs, as PNG files (DESIGN.md section 11).

  python3 scripts/plot.py loss RUN_DIR [RUN_DIR ...] [--out FILE]
  python3 scripts/plot.py timeline SOURCE [SOURCE ...] [--step N] [--out FILE]

loss: each run's metrics.jsonl against the step, one colour per run: the training loss (and
the validation loss where the run measured it), the learning rate, the gradient norm,
tokens/s, the bubble (mean over the pipeline ranks) and the peak memory (the largest
pipeline rank). Default output: RUN_DIR/loss.png for one run, loss.png for several.

timeline: one step of a pipeline, one row per rank, each forward (F), backward (B), input
gradient (I) and weight gradient (W) a box labelled with its micro-batch (a rank holding two
stages shows the second in a lighter shade), waits for messages as thin grey bars under the
row, the gradient sums and optimizer step in red. A SOURCE is a run directory holding
trace-rank<N>.json (a run with logging.trace: true keeps its first 20 steps) or the file
`pptrain plan --trace FILE` writes (a simulated step, in cost units); several SOURCEs are
drawn one above the other, so a measured and a simulated step can be compared. --step picks
the step of a run (default: the last one traced). The ranks' clocks are aligned where every
rank leaves the step's loss and grad-norm sums ("step synced"), which they do within a wait's
polling interval (at most 2 ms). Default output: timeline.png beside the first SOURCE.

Each picture also prints a line per panel; the timeline's gives each rank's busy share of the
step (the complement of the bubble that metrics.jsonl records).
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

KIND_COLOURS = {"F": "#4c72b0", "B": "#55a868", "I": "#dd8452", "W": "#8172b3"}
ACTION = re.compile(r"^(\d+)(F|B|I|W)(\d+)$")


def fail(message):
    print(f"plot.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def pyplot():
    try:
        import matplotlib
    except ImportError:
        fail("matplotlib is not installed: python3 -m pip install matplotlib (scripts/setup.sh does)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ---- loss curves ----

def read_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        fail(f"{run_dir}: no metrics.jsonl (is it a run directory, runs/<name>?)")
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                fail(f"{path}:{number}: not a JSON line ({e.msg})")
    if not rows:
        fail(f"{path}: no steps logged yet")
    return rows


def moving_average(values):
    """Centred mean over about 1/40 of the run (at least 5 steps): no lag behind the raw curve."""
    half = max(2, len(values) // 80)
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half):i + half + 1]
        out.append(sum(window) / len(window))
    return out


def plot_loss(args):
    plt = pyplot()
    runs = [(os.path.basename(os.path.normpath(d)), read_metrics(d)) for d in args.runs]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharex=True)
    scalar = lambda key: lambda r: r.get(key)
    listed = lambda key, of: lambda r: of(r[key]) if r.get(key) else None  # per pipeline rank
    # (axes, title, value of a metrics row or None, moving average on long runs)
    panels = [(axes[0][0], "loss", scalar("loss"), True), (axes[0][1], "learning rate", scalar("lr"), False),
              (axes[0][2], "gradient norm", scalar("grad_norm"), True),
              (axes[1][0], "tokens/s", scalar("tokens_per_s"), True),
              (axes[1][1], "bubble % (mean over pipeline ranks)", listed("bubble_pct", statistics.mean), True),
              (axes[1][2], "peak memory MiB (largest pipeline rank)", listed("peak_mib", max), False)]
    for i, (name, rows) in enumerate(runs):
        colour = f"C{i}"
        for ax, title, value, smooth in panels:
            points = [(r["step"], v) for r in rows for v in [value(r)] if v is not None and math.isfinite(v)]
            if not points:
                continue
            label = name if ax is axes[0][0] else None
            if smooth and len(points) > 50:
                # Long runs: the raw values faint, their moving average over them.
                ax.plot(*zip(*points), color=colour, lw=0.6, alpha=0.3)
                ax.plot([p[0] for p in points], moving_average([p[1] for p in points]), color=colour, lw=1.4,
                        label=label)
            else:
                ax.plot(*zip(*points), color=colour, lw=1.2, label=label)
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        if val:
            axes[0][0].plot(*zip(*val), "o--", color=colour, ms=4, lw=1, label=f"{name} (val)")
        last = rows[-1]
        text = f"{name}: {len(rows)} steps logged, last step {last['step']}, loss {last['loss']:.4f}"
        if val:
            text += f", val {val[-1][1]:.4f}"
        for title, value, unit in (("bubble", panels[4][2], "%"), ("peak", panels[5][2], " MiB")):
            if value(last) is not None:
                text += f", {title} {value(last):.1f}{unit}"
        print(text)
    for ax, title, _, _ in panels:
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("step")
    fig.tight_layout()
    out = args.out or (os.path.join(args.runs[0], "loss.png") if len(args.runs) == 1 else "loss.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


# ---- pipeline timeline ----

def read_trace(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: not a Chrome trace ({e})")
    if not isinstance(doc, dict) or "traceEvents" not in doc:
        fail(f"{path}: not a Chrome trace (no traceEvents)")
    return doc


def load_source(source):
    """(label, simulated, {rank: [event]}) with every event's ts and dur in microseconds."""
    if os.path.isdir(source):
        files = sorted(glob.glob(os.path.join(source, "trace-rank*.json")))
        if not files:
            fail(f"{source}: no trace-rank<N>.json in it (train with --set logging.trace=true)")
        docs = [read_trace(f) for f in files]
    elif os.path.isfile(source):
        docs = [read_trace(source)]
    else:
        fail(f"{source}: no such run directory or trace file")
    ranks = {}
    for doc in docs:
        for e in doc["traceEvents"]:
            if e.get("ph") == "X":
                ranks.setdefault(e["pid"], []).append(e)
    if not ranks:
        fail(f"{source}: the trace holds no events")
    simulated = any("makespan" in doc.get("otherData", {}) for doc in docs)
    return os.path.basename(os.path.normpath(source)), simulated, ranks


def split_steps(events):
    """A measured rank's events cut into steps. They are in the order the executor recorded
    them (each when it ended), so a step's last is its "reduce + optimizer", which began
    before the "step synced" instant recorded inside it."""
    steps, current = [], []
    for e in events:
        current.append(e)
        if e["name"] == "reduce + optimizer":
            steps.append(current)
            current = []
    return steps


def one_step(source, ranks, simulated, step):
    """{rank: (events, origin)} of the chosen step and its number (None for a simulated one)."""
    if simulated:
        return {r: (ev, 0.0) for r, ev in ranks.items()}, None
    per_rank = {r: split_steps(ev) for r, ev in ranks.items()}
    traced = min(len(s) for s in per_rank.values())
    if traced == 0:
        fail(f"{source}: no complete step traced")
    chosen = traced if step is None else step
    if not 1 <= chosen <= traced:
        fail(f"{source}: --step {step}: the trace holds steps 1-{traced}")
    picked = {}
    for r, steps in per_rank.items():
        events = steps[chosen - 1]
        synced = [e["ts"] for e in events if e["name"] == "step synced"]
        # The step's instant common to all ranks, or (a trace of one rank) its first event.
        origin = synced[0] if synced else events[0]["ts"]
        picked[r] = (events, origin)
    return picked, chosen


def busy_share(events):
    """Compute time over the span from the step's first event to its gradient sums."""
    start = min(e["ts"] for e in events)
    end = next((e["ts"] for e in events if e["name"] == "reduce + optimizer"),
               max(e["ts"] + e["dur"] for e in events))
    busy = sum(e["dur"] for e in events if ACTION.match(e["name"]))
    return busy / (end - start) if end > start else 0.0


def draw_timeline(ax, label, simulated, picked, step):
    scale = 1000.0  # microseconds to ms; a simulated trace's unit cost is 1000 of them
    ranks = sorted(picked)
    stages = {r: sorted({int(ACTION.match(e["name"]).group(1)) for e in picked[r][0] if ACTION.match(e["name"])})
              for r in ranks}
    lo = min(e["ts"] - picked[r][1] for r in ranks for e in picked[r][0])
    hi = max(e["ts"] + e["dur"] - picked[r][1] for r in ranks for e in picked[r][0])
    min_label_width = (hi - lo) / scale / 90  # narrower boxes stay unlabelled
    for row, r in enumerate(ranks):
        events, origin = picked[r]
        y = -row
        for e in events:
            x, w = (e["ts"] - origin - lo) / scale, e["dur"] / scale
            m = ACTION.match(e["name"])
            if m:
                stage, kind, mb = int(m.group(1)), m.group(2), m.group(3)
                shade = 1.0 if stages[r].index(stage) == 0 else 0.55
                ax.broken_barh([(x, w)], (y - 0.35, 0.7), facecolors=KIND_COLOURS[kind], alpha=shade,
                               edgecolor="white", linewidth=0.5)
                if w >= min_label_width:
                    ax.text(x + w / 2, y, mb, ha="center", va="center", fontsize=7, color="white", clip_on=True)
            elif e["name"] == "reduce + optimizer":
                ax.broken_barh([(x, w)], (y - 0.35, 0.7), facecolors="#c44e52", alpha=0.5)
            elif e["name"].startswith("wait") and w > 0:
                ax.broken_barh([(x, w)], (y - 0.48, 0.1), facecolors="#999999")
    ax.set_yticks([-row for row in range(len(ranks))])
    ax.set_yticklabels([f"rank {r}" + (f" (stages {', '.join(map(str, stages[r]))})" if len(stages[r]) > 1 else
                                        f" (stage {stages[r][0]})" if stages[r] else "") for r in ranks], fontsize=8)
    ax.set_xlabel("cost units" if simulated else "ms")
    ax.grid(axis="x", alpha=0.3)
    shares = [busy_share(picked[r][0]) for r in ranks]
    what = "simulated step" if simulated else f"step {step}"
    ax.set_title(f"{label}: {what}; busy " + ", ".join(f"{100 * s:.0f}%" for s in shares), fontsize=10)
    print(f"{label}: {what}, ranks {', '.join(map(str, ranks))}, busy % "
          + " ".join(f"{100 * s:.1f}" for s in shares))


def plot_timeline(args):
    plt = pyplot()
    sources = [load_source(s) for s in args.sources]
    heights = [max(1.5, 0.55 * len(ranks) + 1.0) for _, _, ranks in sources]
    fig, axes = plt.subplots(len(sources), 1, figsize=(13, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (label, simulated, ranks), source in zip(axes[:, 0], sources, args.sources):
        picked, step = one_step(source, ranks, simulated, args.step)
        draw_timeline(ax, label, simulated, picked, step)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in KIND_COLOURS.values()]
    handles += [plt.Rectangle((0, 0), 1, 1, color="#c44e52", alpha=0.5), plt.Rectangle((0, 0), 1, 1, color="#999999")]
    fig.legend(handles, ["forward", "backward", "input gradient", "weight gradient", "sums + optimizer", "wait"],
               loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    first = args.sources[0]
    out = args.out or os.path.join(first if os.path.isdir(first) else os.path.dirname(first) or ".", "timeline.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description="Loss curves and pipeline timelines of pptrain runs, as PNG.")
    sub = parser.add_subparsers(dest="command", required=True)
    loss = sub.add_parser("loss", help="loss, learning rate, tokens/s and gradient norm of runs")
    loss.add_argument("runs", nargs="+", metavar="RUN_DIR")
    loss.add_argument("--out", help="PNG to write")
    timeline = sub.add_parser("timeline", help="one step of a pipeline, measured or simulated")
    timeline.add_argument("sources", nargs="+", metavar="SOURCE", help="run directory or trace file")
    timeline.add_argument("--step", type=int, help="which traced step (default: the last)")
    timeline.add_argument("--out", help="PNG to write")
    args = parser.parse_args()
    if args.command == "loss":
        plot_loss(args)
    else:
        plot_timeline(args)


if __name__ == "__main__":
    main()
