#!/usr/bin/env python
"""Where the model side's time goes: a torch.profiler breakdown of one generation step (one network
evaluation of the drift, eval mode, no_grad) and one training step (forward, backward, AdamW, EMA) of
the lattice U-Net, by operator class.

Classes (by the aten operator names, self CPU time): convolution (``conv``, incl. its backward),
pooling/upsampling (``pool``, ``upsample``, ``interpolate``), normalisation (``norm``), elementwise
and activations (add, mul, silu, tanh, ...), optimiser (``_foreach``, ``addcdiv``, ``lerp`` in the
step), memory (copies, cat, empty) and the rest; "Python and dispatch" is the wall time minus all
operator self times (interpreter, module calls, dispatch overhead).  The Z2-odd option (``odd =
True``) runs the trunk on (x, -x): its cost is the ratio of the odd to the plain generation step.

Models: "small" at L = 8 and "medium" at L = 16 (``phi4si.nn.unet.preset``, random weights: the cost
does not depend on them), float32, batches 64, 256, 1024, torch threads 1 and 2; each measurement
is the median of ``--reps`` profiled repetitions after one warm-up.  Record the load average: on a
busy 2-core machine two threads are slower than one.  Then the levers of a faster network evaluation:
torch.compile (inductor) and channels-last memory format against eager, one evaluation at batch 256.

Prints a table and writes ``benchmarks/results/profile_model.json``.

    python benchmarks/profile_model.py              # ~4 min on 2 cores
    python benchmarks/profile_model.py --quick      # ~20 s
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402
from interpolant_throughput import Case  # noqa: E402

from phi4si.interpolant.drifts import NeuralDrift  # noqa: E402
from phi4si.interpolant.integrate import velocity  # noqa: E402
from phi4si.interpolant.paths import GenerationPath  # noqa: E402

CLASSES = [
    ("convolution", ("conv", "mkldnn_convolution", "slow_conv")),
    ("pooling/upsampling", ("pool", "upsample", "interpolate")),
    ("normalisation", ("norm",)),
    ("optimiser", ("_foreach", "addcdiv", "lerp", "adamw", "sqrt_")),
    ("memory", ("copy", "cat", "empty", "clone", "to_copy", "stack", "contiguous", "zeros", "fill_")),
    ("elementwise", ("add", "mul", "sub", "div", "silu", "sigmoid", "tanh", "gelu", "relu", "where", "neg", "exp",
                     "pow", "sum", "mean", "abs", "clamp", "sin", "cos", "threshold")),
]


def classify(name: str) -> str:
    n = name.lower()
    for cls, keys in CLASSES:
        if any(k in n for k in keys):
            return cls
    return "other ops"


def profile(fn, reps):
    """(median wall seconds, {class: median self seconds}) of ``fn()`` under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile as tprofile

    fn()                                   # warm-up (allocator, oneDNN primitive caches)
    walls, parts = [], []
    for _ in range(reps):
        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            fn()
            wall = time.perf_counter() - t0
        by = {}
        for ev in prof.key_averages():
            if ev.key.startswith("aten::") or ev.key.startswith("mkldnn"):
                by[classify(ev.key)] = by.get(classify(ev.key), 0.0) + ev.self_cpu_time_total * 1e-6
        walls.append(wall)
        parts.append(by)
    names = sorted({k for p in parts for k in p})
    med = {k: statistics.median(p.get(k, 0.0) for p in parts) for k in names}
    w = statistics.median(walls)
    med["Python and dispatch"] = max(0.0, w - sum(med.values()))
    return w, med


def measure_levers(threads: int, batch: int = 256, reps: int = 5) -> list:
    """One network evaluation (eval mode, inference_mode), eager against torch.compile (inductor,
    static shapes; compile time reported) and against channels-last tensors, same inputs, median of
    ``reps`` after one warm-up call."""
    torch.set_num_threads(threads)
    out = []
    for name, L, odd in (("small", 8, False), ("medium", 16, True)):
        case = Case(name, L, odd, torch.device("cpu"), 0, False)
        net = case.ema.eval()
        x, a = torch.randn(batch, 1, L, L), torch.rand(batch, 1, L, L)

        def timed(f, xx):
            with torch.inference_mode():
                f(xx, a)
                ts = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    f(xx, a)
                    ts.append(time.perf_counter() - t0)
            return statistics.median(ts)

        eager = timed(net, x)
        t0 = time.perf_counter()
        compiled = torch.compile(net, dynamic=False)
        with torch.inference_mode():
            compiled(x, a)
        compile_s = time.perf_counter() - t0
        comp = timed(compiled, x)
        cl = timed(net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last))
        row = {"model": name, "L": L, "odd": odd, "batch": batch, "threads": threads, "eager_s": eager,
               "compiled_s": comp, "compile_time_s": compile_s, "channels_last_s": cl,
               "compile_speedup": eager / comp, "channels_last_speedup": eager / cl}
        out.append(row)
        print(f"levers {name} L={L} odd={int(odd)} b={batch}: eager {eager * 1e3:.1f} ms; torch.compile "
              f"{comp * 1e3:.1f} ms ({eager / comp:.2f}x, {compile_s:.0f} s to compile); channels-last "
              f"{cl * 1e3:.1f} ms ({eager / cl:.2f}x)", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch 64 and 256, one thread, 1 repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-levers", action="store_true", help="skip the torch.compile / channels-last comparison")
    args = ap.parse_args(argv)
    batches = [64, 256] if args.quick else [64, 256, 1024]
    threads = [1] if args.quick else [1, 2]
    reps = 1 if args.quick else args.reps
    cases = [("small", 8), ("medium", 16)]
    info = machine_info()
    rows = []
    dev = torch.device("cpu")
    for name, L in cases:
        for odd in (False, True):
            case = Case(name, L, odd, dev, 0, False)
            drift = NeuralDrift(case.ema.eval(), "b", case.fam)
            path = GenerationPath(case.shape)
            for t in threads:
                torch.set_num_threads(t)
                for b in batches:
                    x = torch.randn(b, 1, L, L, generator=torch.Generator().manual_seed(1))

                    def gen_step():
                        with torch.no_grad():
                            velocity(drift, path, 0.5, x)

                    def train_step():
                        case.opt_step(*case.prep(b))

                    for kind, fn in (("generation step", gen_step), ("training step", train_step)):
                        if kind == "training step" and odd:
                            continue       # the odd option matters for evaluation cost; training shares it
                        wall, parts = profile(fn, reps)
                        rows.append({"model": name, "L": L, "odd": odd, "threads": t, "batch": b, "kind": kind,
                                     "wall_s": wall, "per_sample_ms": 1e3 * wall / b,
                                     "parts_s": parts, "parts_frac": {k: v / wall for k, v in parts.items()}})
                        top = sorted(parts.items(), key=lambda kv: -kv[1])[:4]
                        print(f"{name:6s} L={L:2d} odd={int(odd)} t={t} b={b:4d} {kind:15s} {wall * 1e3:8.1f} ms "
                              f"({1e3 * wall / b:.3f} ms/sample): "
                              + ", ".join(f"{k} {100 * v / wall:.0f}%" for k, v in top), flush=True)
    # the odd option's cost: ratio of odd to plain generation steps at equal settings
    odd_ratio = []
    for r in rows:
        if r["kind"] == "generation step" and r["odd"]:
            base = next(q for q in rows if q["kind"] == r["kind"] and not q["odd"] and
                        all(q[k] == r[k] for k in ("model", "L", "threads", "batch")))
            odd_ratio.append({k: r[k] for k in ("model", "L", "threads", "batch")} | {"odd_over_plain": r["wall_s"] / base["wall_s"]})
    print("\nZ2-odd generation step / plain generation step:")
    for r in odd_ratio:
        print(f"  {r['model']} L={r['L']} t={r['threads']} b={r['batch']}: {r['odd_over_plain']:.2f}x")
    levers = [] if args.no_levers else measure_levers(threads[0])
    path = save(f"profile_model{'_quick' if args.quick else ''}.json",
                {"benchmark": "profile_model", "quick": args.quick, "machine": info, "rows": rows,
                 "odd_over_plain": odd_ratio, "levers": levers}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
