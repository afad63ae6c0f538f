#!/usr/bin/env python
"""Generation from low to high momenta with a Fourier-family model (THEORY.md 8.3), against HMC.

d = 2, m2 = -4, lam = 4.572, L = 16: the HMC ensembles of benchmarks/superres.py (training seed 11,
reference seed 12), a medium U-Net of the Fourier family (alpha = F^-1 diag(a(p)) F) trained on the
``momenta`` measure (diagonal 50 %, momentum shells low to high 50 %), then

* ``generate``: the diagonal path (every mode at the same time), the model's plain generation;
* ``low_to_high``: ``sequential(order='low_to_high')``, the zero mode first, then the shells of |p_hat|
  (4 groups), each drawn given the lower ones;

each compared with the HMC reference by ``phi4si.analysis.compare`` (<|m|>, chi, U4, xi_2, <S>/V, G(p) on
every orbit, C(t), the m histogram).  Writes benchmarks/results/low_to_high_l16.json.

    python benchmarks/low_to_high.py --workdir W16 --train-minutes 20 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402
from superres import KEYS, ensembles, reference_halves, summary  # noqa: E402

from phi4si.analysis.compare import compare, configurations  # noqa: E402


def main(argv=None):
    from phi4si.model.checkpoint import load_model, read_checkpoint
    from phi4si.model.generate import generate, sequential
    from phi4si.model.train import TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--train-minutes", type=float, default=20.0)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=16, help="Heun steps (per shell for low_to_high)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    params, paths = ensembles(wd, 16)
    model_path = wd / "fourier16.pt"
    if args.train_minutes > 0:
        done = model_path.exists() and read_checkpoint(model_path).get("wall_time", 0) >= 60 * args.train_minutes * 0.98
        if not done:
            cfg = TrainConfig(minutes=args.train_minutes, steps=None, family="fourier", measure="momenta",
                              model="medium", batch_size=128, threads=args.threads, checkpoint_every=250,
                              val_every=500, seed=1)
            train(paths["train"], model_path, cfg, resume=model_path.exists(), progress=False)
    info = machine_info()
    model = load_model(model_path)
    ref, _ = reference_halves(paths["ref"], 1)
    sums, seconds = [configurations(ref, params, label="hmc", kind="exact (MCMC)")], {}
    for name in ("generate", "low_to_high"):
        t0 = time.perf_counter()
        x = generate(model, args.n, steps=args.steps, solver="heun", seed=3, progress=False) if name == "generate" \
            else sequential(model, args.n, order="low_to_high", steps=args.steps, seed=3, progress=False)
        seconds[name] = time.perf_counter() - t0
        sums.append(configurations(x, params, label=name))
    cmp = compare(sums)
    res = {s.label: dict(summary(cmp, s.label), seconds=seconds[s.label]) for s in sums[1:]}
    for k, r in res.items():
        sc = r["scalars"]
        print(f"{k:12s}", " ".join(f"{o} {100 * sc[o]['rel_dev']:+.1f}% (z {sc[o]['z']:+.1f})" for o in KEYS),
              f"| G(p) max |dev| {100 * r['G_p']['max_rel_dev']:.1f}%, max |z| {r['G_p']['max_z']:.1f}", flush=True)
    meta = model.meta or {}
    save("low_to_high_l16.json", {
        "benchmark": "low_to_high", "machine": info, "params": {"L": 16, "m2": -4.0, "lam": 4.572},
        "model": {"file": model_path.name, "step": meta.get("step"), "train_wall_time": meta.get("wall_time"),
                  "family": model.family.to_dict(), "measure": "momenta"},
        "n": args.n, "steps": args.steps, "solver": "heun", "results": res, "comparison": cmp.to_dict(),
        "command": "python benchmarks/low_to_high.py " + " ".join(sys.argv[1:] if argv is None else argv)})


if __name__ == "__main__":
    main()
