#!/usr/bin/env python
"""Interpolant throughput: training samples/s and generation configurations/s of the lattice U-Net.

Training (one optimisation step as in ``phi4si.model.train``): draw a batch x1 from a pool of synthetic
N(0, 1) "normalised data", apply a random lattice symmetry (``phi4si.nn.augment``), draw the
per-site times a from ``preset_measure("multitask")`` and x0 ~ N(0, 1) (the *prep* part), then
``phi4si.model.train._loss`` with the Hadamard family and parametrisation b (target x0 - x1, loss over
sites with a > 0), backward, gradient clipping at 1, AdamW (lr 2e-3, weight decay 1e-4) and the EMA
update of the weights (the *opt* part).  Rate = batch / (seconds per whole step), median of the
timed repetitions after warm-up steps.  The HDF5 data loader is not used (no I/O, no file).

Generation: ``phi4si.interpolant.integrate.solve`` of the probability-flow ODE along
``GenerationPath`` (a = 1 - s on every site) from N(0, 1) noise, with ``NeuralDrift`` around the
network (eval mode), under ``torch.no_grad()``, float32; Heun with 10 and 20 steps (2 network
evaluations per step) and Euler with 20 steps.  Rates: configurations/s = batch / seconds per
solve, network evaluations (NFE, one batched forward call, counted by a wrapper) per second, and
sample-evaluations/s = batch x NFE / s.  With ``odd = True`` one network evaluation runs the trunk
on (x, -x), i.e. twice the convolution work.

Models: ``phi4si.nn.unet.preset`` "small" at L = 8 and 16 and "medium" at L = 16, ``odd`` False
and True, random initialisation (the cost does not depend on the weights), float32.

On CPU every measurement is done with ``torch.set_num_threads(t)`` for each t in ``--threads``
(training) and ``--gen-threads`` (generation); all configurations of one thread count are timed
round by round (A B C ... A B C ...) so that load from other processes hits all of them alike.
Besides wall-clock time each repetition records the process CPU time: with one thread
cpu/wall < 1 means the process was waiting for a core (a loaded machine), and the CPU-time rate
is then the better estimate of the unloaded speed.  With ``--device cuda`` the timings are
bracketed by ``torch.cuda.synchronize()``; ``--amp`` runs the training forward pass under bf16
autocast (as ``phi4si train`` does on CUDA by default), generation stays float32.

Prints tables and writes ``benchmarks/results/interpolant_throughput.json``.

    python benchmarks/interpolant_throughput.py                       # ~3 min on 2 CPU cores
    python benchmarks/interpolant_throughput.py --quick               # ~10 s smoke run
    python benchmarks/interpolant_throughput.py --gen-threads 1 2     # adds 2-thread generation (~+1.5 min)
    python benchmarks/interpolant_throughput.py --device cuda --amp   # GPU
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402

from phi4si.interpolant.drifts import NeuralDrift  # noqa: E402
from phi4si.interpolant.integrate import solve  # noqa: E402
from phi4si.interpolant.measures import preset_measure  # noqa: E402
from phi4si.interpolant.operators import Hadamard  # noqa: E402
from phi4si.interpolant.paths import GenerationPath  # noqa: E402
from phi4si.nn.augment import random_symmetry  # noqa: E402
from phi4si.nn.unet import LatticeUNet, count_parameters, preset  # noqa: E402
from phi4si.model.train import TrainConfig, _loss  # noqa: E402

DEFAULT_MODELS = ["small:8", "small:16", "medium:16"]
DEFAULT_SOLVERS = ["heun:10", "heun:20", "euler:20"]
POOL = 2048  # synthetic "data" configurations per lattice size


def _med(v):
    return statistics.median(v) if v else float("nan")


class _Counted(torch.nn.Module):
    """The network with a call counter (NFE)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x, a):
        self.calls += 1
        return self.net(x, a)


class Case:
    """One (preset, L, odd) model with its optimiser, EMA copy, generators and synthetic data."""

    def __init__(self, name, L, odd, device, seed, amp):
        self.name, self.L, self.odd, self.device = name, L, odd, device
        self.shape = (L, L)
        torch.manual_seed(seed)
        self.cfg = preset(name, dim=2, odd=odd)
        self.net = LatticeUNet(self.cfg).to(device)
        self.params = count_parameters(self.net)
        self.ema = copy.deepcopy(self.net).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        tc = TrainConfig()
        self.tc = tc
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.fam = Hadamard()
        self.measure = preset_measure("multitask")
        self.gens = {k: torch.Generator().manual_seed(seed * 10 + i) for i, k in
                     enumerate(("data", "noise", "measure", "augment"))}
        self.pool = torch.randn(POOL, 1, L, L, generator=torch.Generator().manual_seed(seed + 99))
        self.amp_ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
        self.step_no = 0
        self.loss = float("nan")

    def prep(self, batch):
        idx = torch.randint(0, POOL, (batch,), generator=self.gens["data"])
        x1 = random_symmetry([self.pool[idx]], self.gens["augment"], fields=[0], flip_sign=True)[0]
        a = self.measure.sample(batch, self.shape, self.gens["measure"], progress=0.5)
        x0 = torch.randn(x1.shape, generator=self.gens["noise"])
        return x0.to(self.device), x1.to(self.device), a.to(self.device)

    def opt_step(self, x0, x1, a):
        tc = self.tc
        self.net.train()
        loss = _loss(self.net, self.fam, "b", x0, x1, a, self.amp_ctx())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), tc.grad_clip)
        self.opt.step()
        with torch.no_grad():
            decay = min(tc.ema, (1 + self.step_no) / (10 + self.step_no))
            for pe, p in zip(self.ema.parameters(), self.net.parameters()):
                pe.lerp_(p, 1 - decay)
            for be, b in zip(self.ema.buffers(), self.net.buffers()):
                be.copy_(b)
        self.step_no += 1
        return loss

    def label(self):
        return f"{self.name} L={self.L} odd={int(self.odd)}"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_train_step(case, batch):
    """(wall, cpu, wall_prep) seconds of one whole training step."""
    dev = case.device
    _sync(dev)
    w0, c0 = time.perf_counter(), time.process_time()
    x0, x1, a = case.prep(batch)
    _sync(dev)
    w1 = time.perf_counter()
    loss = case.opt_step(x0, x1, a)
    case.loss = float(loss.detach())  # like train.py (it reads the loss every step); syncs on CUDA
    _sync(dev)
    return time.perf_counter() - w0, time.process_time() - c0, w1 - w0


def time_generation(case, batch, method, steps, seed):
    """(wall, cpu, nfe, finite) of one full ODE generation of ``batch`` configurations."""
    dev = case.device
    counted = _Counted(case.ema).eval()
    drift = NeuralDrift(counted, "b", case.fam)
    path = GenerationPath(case.shape)
    x_start = torch.randn((batch, 1, *case.shape), generator=torch.Generator().manual_seed(seed)).to(dev)
    _sync(dev)
    w0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        x = solve(drift, path, x_start, steps=steps, method=method)
    _sync(dev)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return wall, cpu, counted.calls, bool(torch.isfinite(x).all())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~10 s smoke run (small L=8 only, 1 thread, short)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:i")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for the training forward pass")
    ap.add_argument("--models", nargs="+", default=None,
                    help=f"preset:L entries (default {' '.join(DEFAULT_MODELS)}; quick small:8)")
    ap.add_argument("--odd", nargs="+", type=int, choices=(0, 1), default=[0, 1], help="odd settings (default 0 1)")
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="torch threads for training (default 1 2 on CPU; quick 1; CUDA: current setting)")
    ap.add_argument("--gen-threads", type=int, nargs="+", default=None,
                    help="torch threads for generation (default 1; CUDA: current setting)")
    ap.add_argument("--batch", type=int, default=128, help="training batch (default 128)")
    ap.add_argument("--gen-batch", type=int, default=256, help="generation batch (default 256; quick 64)")
    ap.add_argument("--solvers", nargs="+", default=None,
                    help=f"method:steps entries (default {' '.join(DEFAULT_SOLVERS)}; quick heun:4 euler:4)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed training steps per case (default 2, quick 1)")
    ap.add_argument("--reps", type=int, default=None, help="timed training steps per case (default 5, quick 2)")
    ap.add_argument("--gen-reps", type=int, default=1, help="timed solves per case and solver (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON output (default benchmarks/results/interpolant_throughput.json)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    models = args.models or (["small:8"] if args.quick else DEFAULT_MODELS)
    solvers = args.solvers or (["heun:4", "euler:4"] if args.quick else DEFAULT_SOLVERS)
    solvers = [(m, int(s)) for m, s in (x.split(":") for x in solvers)]
    if device.type == "cuda":
        threads = args.threads or [torch.get_num_threads()]
        gen_threads = args.gen_threads or [torch.get_num_threads()]
    else:
        threads = args.threads or ([1] if args.quick else [1, 2])
        gen_threads = args.gen_threads or [1]
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    reps = args.reps or (2 if args.quick else 5)
    gen_batch = 64 if args.quick and args.gen_batch == 256 else args.gen_batch

    info = machine_info()
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else info["cpu"]["model"]
    info["device"] = {"type": device.type, "name": dev_name}
    info["nice"] = os.nice(0)  # scheduling priority of this process (19 = lowest)
    if device.type == "cuda":
        info["device"]["cuda"] = torch.version.cuda
        info["device"]["memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    print(f"{dev_name} ({device.type}), {info['cores_usable']} cores usable, torch {info['torch']}, "
          f"load average {info['loadavg_start'][0]:.2f}; train threads {threads}, generation threads {gen_threads}",
          flush=True)

    cases = []
    for i, spec in enumerate(models):
        name, L = spec.split(":")
        for odd in args.odd:
            cases.append(Case(name, int(L), bool(odd), device, args.seed + i, args.amp))

    # ---------------------------------------------------------------- training
    train_rows = []
    print(f"\ntraining: batch {args.batch}, {warmup} warm-up + {reps} timed steps per case, "
          f"{'bf16 autocast' if args.amp else 'float32'}; samples/s (wall, median) | cpu/wall | prep share")
    for t in threads:
        torch.set_num_threads(t)
        for c in cases:
            for _ in range(warmup):
                time_train_step(c, args.batch)
        rec = {id(c): [] for c in cases}
        for _ in range(reps):
            for c in cases:
                rec[id(c)].append(time_train_step(c, args.batch))
        for c in cases:
            v = rec[id(c)]
            wall, cpu, prep = [r[0] for r in v], [r[1] for r in v], [r[2] for r in v]
            row = {"model": c.name, "L": c.L, "odd": c.odd, "params": c.params, "threads": t,
                   "batch": args.batch, "amp": "bf16" if args.amp else "none",
                   "wall_s": wall, "cpu_s": cpu, "prep_s": prep,
                   "wall_s_median": _med(wall), "cpu_s_median": _med(cpu), "prep_s_median": _med(prep),
                   "samples_per_s": args.batch / _med(wall), "samples_per_s_best": args.batch / min(wall),
                   "samples_per_cpu_s": args.batch / _med(cpu), "cpu_over_wall": _med(cpu) / _med(wall),
                   "prep_fraction": _med(prep) / _med(wall), "loss_last": c.loss}
            train_rows.append(row)
            print(f"  threads {t}  {c.label():<22} {row['params']:>8,d} params  {row['samples_per_s']:8.1f} /s "
                  f"(best {row['samples_per_s_best']:7.1f})  cpu/wall {row['cpu_over_wall']:.2f}  "
                  f"prep {100 * row['prep_fraction']:4.1f} %", flush=True)

    # ---------------------------------------------------------------- generation
    gen_rows = []
    print(f"\ngeneration: batch {gen_batch}, GenerationPath, float32, no_grad, {args.gen_reps} timed solve(s) each; "
          f"cfg/s, NFE/s (wall)")
    for t in gen_threads:
        torch.set_num_threads(t)
        with torch.no_grad():  # warm-up: one network evaluation per case at the generation batch
            for c in cases:
                c.ema(torch.randn(gen_batch, 1, c.L, c.L, device=device), torch.full((gen_batch, 1, 1, 1), 0.5,
                                                                                     device=device))
        rec = {(id(c), s): [] for c in cases for s in solvers}
        for r in range(args.gen_reps):
            for method, steps in solvers:
                for c in cases:
                    rec[(id(c), (method, steps))].append(time_generation(c, gen_batch, method, steps, args.seed + r))
        for c in cases:
            for method, steps in solvers:
                v = rec[(id(c), (method, steps))]
                wall, cpu, nfe = [r[0] for r in v], [r[1] for r in v], v[0][2]
                w = _med(wall)
                row = {"model": c.name, "L": c.L, "odd": c.odd, "params": c.params, "threads": t, "batch": gen_batch,
                       "method": method, "steps": steps, "nfe": nfe, "wall_s": wall, "cpu_s": cpu,
                       "wall_s_median": w, "cpu_s_median": _med(cpu), "cfg_per_s": gen_batch / w,
                       "cfg_per_cpu_s": gen_batch / _med(cpu), "nfe_per_s": nfe / w,
                       "sample_evals_per_s": gen_batch * nfe / w, "cpu_over_wall": _med(cpu) / w,
                       "finite": all(r[3] for r in v)}
                gen_rows.append(row)
                print(f"  threads {t}  {c.label():<22} {method:>5} {steps:>3} steps  NFE {nfe:>3}  "
                      f"{row['cfg_per_s']:8.1f} cfg/s  {row['nfe_per_s']:6.2f} NFE/s  "
                      f"{row['sample_evals_per_s']:9.0f} sample-evals/s  cpu/wall {row['cpu_over_wall']:.2f}",
                      flush=True)

    data = {"benchmark": "interpolant_throughput", "quick": args.quick,
            "setup": {"device": str(device), "amp_train": "bf16" if args.amp else "none", "dtype": "float32",
                      "models": models, "odd": [bool(o) for o in args.odd], "train_threads": threads,
                      "gen_threads": gen_threads, "train_batch": args.batch, "gen_batch": gen_batch,
                      "warmup_steps": warmup, "timed_steps": reps, "gen_reps": args.gen_reps,
                      "solvers": [f"{m}:{s}" for m, s in solvers], "measure": "multitask", "family": "hadamard",
                      "param": "b", "data": "synthetic N(0,1) pool of 2048 per size, random lattice symmetry",
                      "optimizer": "AdamW lr 2e-3 wd 1e-4, grad clip 1, EMA 0.999 (train.py defaults)",
                      "path": "GenerationPath (a = 1 - s)", "seed": args.seed,
                      "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)},
            "machine": info, "train": train_rows, "generate": gen_rows}
    name = "interpolant_throughput_quick.json" if args.quick else "interpolant_throughput.json"
    path = save(name, data, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
