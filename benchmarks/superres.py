#!/usr/bin/env python
"""Super-resolution of phi^4 configurations with a Haar-family model (THEORY.md 8.2), against HMC.

d = 2, m2 = -4, lam = 4.572, L = 16.  HMC training and reference ensembles (independent seeds), a model
trained once on the training ensemble with ``family="haar"`` (2 levels) and the multitask measure (whose
coarse-to-fine component holds exactly the states "block sums pinned, details moving"), then:

* ``superres_x2`` / ``superres_x4``: the reference configurations blocked by 2 (4), and fine configurations
  sampled given the blocked ones (``phi4si.tasks.superres.superresolve``);
* ``coarse_to_fine``: raw generation level by level (block sums of side 4, then the details of each level).

Each is compared with the HMC reference: <|m|>, chi, xi_2, U4, <S>/V (Gamma-method errors, relative
deviation and z) and G(t) at every t.  The super-resolved samples share their coarse fields with the
reference, so the quoted z are conservative.  The block averages of every super-resolved sample are checked
to equal their input.  Writes benchmarks/results/superres_l16.json.

    python benchmarks/superres.py --workdir W --train-minutes 15     # ~20 minutes on 2 cores
    python benchmarks/superres.py --workdir W --train-minutes 0      # evaluate W/haar16.pt as is
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402

from phi4si.analysis.observables import analyze_configs, correlator_primaries  # noqa: E402
from phi4si.lattice import Phi4Params  # noqa: E402
from phi4si.mcmc.run import sample_mcmc  # noqa: E402
from phi4si.store import open_ensemble  # noqa: E402
from phi4si.tasks.superres import block_average, superresolve  # noqa: E402

L, M2, LAM = 16, -4.0, 4.572
KEYS = ("abs_m", "chi", "xi2", "binder", "s")


def ensembles(wd: Path):
    p = Phi4Params((L, L), M2, LAM)
    paths = {}
    for name, seed, every, n_traj in (("train", 11, 10, 4000), ("ref", 12, 20, 8000)):   # 25600 configurations each
        f = wd / f"l16_{name}.h5"
        if not f.exists():
            sample_mcmc(p, f, chains=64, n_traj=n_traj, n_therm=1000, every=every, seed=seed, progress=False,
                        dtype="float32")
        paths[name] = f
    return p, paths


def configs(path, n):
    with open_ensemble(path, load=True) as ds:
        x = np.asarray(ds["phi"].values, dtype=np.float64)
    x = x.reshape(-1, L, L)
    idx = np.random.default_rng(0).permutation(len(x))[:n]
    return x[idx]


def compare(phi, ref, params):
    a, b = analyze_configs(phi, params), analyze_configs(ref, params)
    out = {}
    for k in KEYS:
        va, vb = a[k], b[k]
        err = float(np.hypot(va.error, vb.error))
        out[k] = {"value": float(va.value), "error": float(va.error), "ref": float(vb.value), "ref_error": float(vb.error),
                  "rel_dev": float(va.value / vb.value - 1), "z": float((va.value - vb.value) / err) if err > 0 else None}
    ca, cb = correlator_primaries(phi[:, None] if phi.ndim == 3 else phi, 2), correlator_primaries(ref, 2)
    ga, gb = ca.reshape(-1, ca.shape[-1]).mean(0), cb.reshape(-1, cb.shape[-1]).mean(0)
    out["G_t_rel_dev"] = (ga / gb - 1).tolist()
    return out


def main(argv=None):
    from phi4si.model.checkpoint import load_model, read_checkpoint
    from phi4si.model.generate import sequential
    from phi4si.model.train import TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--train-minutes", type=float, default=15.0)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--out", default="superres_l16.json", help="results file name under benchmarks/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    params, paths = ensembles(wd)
    model_path = wd / "haar16.pt"
    if args.train_minutes > 0:
        done = model_path.exists() and read_checkpoint(model_path).get("wall_time", 0) >= 60 * args.train_minutes * 0.98
        if not done:
            cfg = TrainConfig(minutes=args.train_minutes, steps=None, family="haar", measure="multitask", model="medium",
                              batch_size=128, threads=2, checkpoint_every=250, val_every=500)
            train(paths["train"], model_path, cfg, resume=model_path.exists(), progress=False)
    info = machine_info()
    model = load_model(model_path)
    ref = configs(paths["ref"], args.n)
    res = {}
    for b in (2, 4):
        t0 = time.perf_counter()
        coarse = block_average(ref, b)
        fine = superresolve(model, coarse, b, steps=args.steps, solver="heun", seed=b)
        dev = float(np.abs(block_average(fine, b) - coarse).max())
        res[f"superres_x{b}"] = dict(compare(fine, ref, params), block_average_max_dev=dev,
                                     seconds=time.perf_counter() - t0)
    t0 = time.perf_counter()
    gen = sequential(model, args.n, order="coarse_to_fine", levels=3, steps=args.steps, seed=7, progress=False)
    res["coarse_to_fine"] = dict(compare(np.asarray(gen)[:, 0] if np.ndim(gen) == 4 else np.asarray(gen), ref, params),
                                 seconds=time.perf_counter() - t0)
    for k, r in res.items():
        print(k, " ".join(f"{o} {100 * r[o]['rel_dev']:+.1f}% (z {r[o]['z']:+.1f})" for o in KEYS),
              f"G(t) max |dev| {100 * np.nanmax(np.abs(r['G_t_rel_dev'])):.1f}%", flush=True)
    meta = model.meta or {}
    save(args.out, {"benchmark": "superres", "machine": info, "params": {"L": L, "m2": M2, "lam": LAM},
                               "model": {"step": meta.get("step"), "train_wall_time": meta.get("wall_time"),
                                         "family": model.family.to_dict()},
                               "n": args.n, "steps": args.steps, "results": res,
                               "command": "python benchmarks/superres.py " + " ".join(sys.argv[1:] if argv is None
                                                                                      else argv)})


if __name__ == "__main__":
    main()
