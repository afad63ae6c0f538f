#!/usr/bin/env python
"""Super-resolution of phi^4 configurations with a Haar-family model (THEORY.md 8.2), against HMC.

d = 2, m2 = -4, lam = 4.572, L = 16 or 32.  HMC training and reference ensembles (independent seeds), a model
of the Haar family (2 levels: blocks of side 2 and 4) trained on the training ensemble, then, from the block
averages of reference configurations that the comparison does not use (chains 32-63 of the reference; the
comparison uses chains 0-31, so the two are independent):

* ``superres_x2``, ``superres_x4``: fine configurations sampled given their blocks of side 2 (4), every detail
  at once (``phi4si.tasks.superres.superresolve``);
* ``chain_x4``: the same from blocks of side 4, scale by scale (L/4 -> L/2 -> L: the block averages of side 2
  are drawn first, then the finest details); ``chain_x4_level2`` compares those intermediate L/2 fields with
  the HMC configurations blocked by 2 (the bias of the first level of the chain);
* ``coarse_to_fine``: raw generation level by level from noise (``sequential(order='coarse_to_fine',
  levels=3)``: block sums of side 4, then the details of each level).

Each is compared with the HMC reference by ``phi4si.analysis.compare``: <|m|>, chi, U4, xi_2, <S>/V and every
other scalar (Gamma-method errors, relative deviation, z), G(p) on every momentum orbit, C(t), the m
histogram.  <|m|>, chi, U4 and G(0) of a super-resolved ensemble are those of its input blocks (block
averaging keeps the magnetisation), so they test only the input sample (the ``inputs`` row); xi_2, G(p) at
p != 0, C(t) and <S>/V test the details.  The block averages of every output are checked against the input.

    python benchmarks/superres.py --L 16 --workdir W16 --train-minutes 15          # trains W16/haar16.pt
    python benchmarks/superres.py --L 16 --workdir W16 --model W16/haar16s.pt --init W16/haar16.pt \
        --measure scales --lr 1e-3 --seed 6 --threads 1 --train-minutes 25        # fine-tune with 'scales'
    python benchmarks/superres.py --L 32 --workdir W32 --model W32/haar32.pt --init W16/haar16s.pt \
        --measure scales --lr 1e-3 --seed 5 --threads 1 --train-minutes 45        # train small, fine-tune large
    python benchmarks/superres.py --L 32 --workdir W32 --model haar32 --train-minutes 0 --threads 2  # the shipped one
(the runs of the results file trained with the equivalent ``phi4si train`` commands, which each checkpoint
records; ``--threads`` also sets the evaluation's threads; ``papers/negrel2025/l32.sh superres`` runs the L = 32
chain end to end, and its model ships as ``haar32``.)

Writes benchmarks/results/superres_l{L}.json.
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

from phi4si.analysis.compare import compare, configurations  # noqa: E402
from phi4si.lattice import Phi4Params  # noqa: E402
from phi4si.mcmc.run import sample_mcmc  # noqa: E402
from phi4si.store import open_ensemble  # noqa: E402
from phi4si.tasks.superres import block_average, superresolve  # noqa: E402

M2, LAM = -4.0, 4.572
KEYS = ("abs_m", "chi", "binder", "xi2", "s")
# (chains, trajectories, every, thermalisation, seed) of the HMC ensembles; L = 32 as papers/negrel2025/l32.sh
ENSEMBLES = {16: {"train": (64, 4000, 10, 1000, 11), "ref": (64, 8000, 20, 1000, 12)},
             32: {"train": (64, 80000, 40, 2000, 31), "ref": (64, 160000, 160, 2000, 32)}}


def ensembles(wd: Path, L: int):
    p = Phi4Params((L, L), M2, LAM)
    paths = {}
    for name, (chains, n_traj, every, n_therm, seed) in ENSEMBLES[L].items():
        f = wd / f"l{L}_{name}.h5"
        if not f.exists():
            sample_mcmc(p, f, chains=chains, n_traj=n_traj, n_therm=n_therm, every=every, seed=seed, progress=False,
                        dtype="float32")
        paths[name] = f
    return p, paths


def reference_halves(path, n, seed=0):
    """(chains 0-31 as chains, n configurations drawn at random from chains 32-63)."""
    with open_ensemble(path, load=True) as ds:
        x = np.asarray(ds["phi"].values, dtype=np.float64)
    half = x.shape[0] // 2
    rest = x[half:].reshape(-1, *x.shape[2:])
    return x[:half], rest[np.random.default_rng(seed).permutation(len(rest))[:n]]


def summary(cmp, label) -> dict:
    """The compact figures of one ensemble in a comparison (the full comparison is saved beside them)."""
    rows = {k: cmp.row(label, k) for k in KEYS}
    sp, cr, hi = cmp.spectra[label], cmp.correlators[label], cmp.histograms[label]
    return {"scalars": {k: {"value": r["value"], "error": r["error"], "ref": r["ref"], "ref_error": r["ref_error"],
                            "rel_dev": r["rel"], "z": r["z"]} for k, r in rows.items()},
            "G_p": {"orbits": len(sp["rel"]), "max_rel_dev": sp["max_rel"], "worst_orbit": sp["worst"],
                    "max_z": sp["max_z"], "n_z3": sp["n_z3"],
                    "max_rel_dev_p_nonzero": float(np.nanmax(np.abs(np.asarray(sp["rel"], float)[1:])))},
            "C_t_max_z": cr["max_z"], "m_hist_tv": hi["tv"], "m_hist_tv_null95": hi["null_95"]}


def main(argv=None):
    from phi4si.model.checkpoint import load_model, read_checkpoint
    from phi4si.model.generate import sequential
    from phi4si.model.train import TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--L", type=int, choices=(16, 32), default=16)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--model", default=None, help="model checkpoint (default WORKDIR/haarL.pt, trained here)")
    ap.add_argument("--train-minutes", type=float, default=15.0, help="train (or resume) the default model to "
                                                                      "this wall time first; 0: evaluate as is")
    ap.add_argument("--init", default=None, help="fine-tune this model (the L = 32 route: --init the L = 16 one)")
    ap.add_argument("--measure", default="multitask", help="training measure preset (scales: THEORY.md 4.2)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=16, help="Heun steps (per level for the chain and coarse-to-fine)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=(), help="tasks to leave out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    L = args.L
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    params, paths = ensembles(wd, L)
    model_path = Path(args.model) if args.model else wd / f"haar{L}.pt"
    if args.train_minutes > 0:
        done = model_path.exists() and read_checkpoint(model_path).get("wall_time", 0) >= 60 * args.train_minutes * 0.98
        if not done:
            cfg = TrainConfig(minutes=args.train_minutes, steps=None, family="haar", measure=args.measure,
                              model="medium", init=args.init, lr=args.lr, seed=args.seed,
                              batch_size=128, threads=args.threads, checkpoint_every=250, val_every=500)
            train(paths["train"], model_path, cfg, resume=model_path.exists(), progress=False)
    info = machine_info()
    model = load_model(model_path)
    ref, inputs = reference_halves(paths["ref"], args.n)
    half = Phi4Params((L // 2, L // 2), M2, LAM)        # an analysis vehicle for the blocked fields (no action)
    sums, sums2, checks, seconds = [configurations(ref, params, label="hmc", kind="exact (MCMC)")], \
        [configurations(block_average(ref.reshape(-1, L, L), 2).reshape(ref.shape[0], -1, L // 2, L // 2), half,
                        label="hmc_blocked2", kind="exact (MCMC)")], {}, {}
    sums.append(configurations(inputs, params, label="inputs", kind="exact (MCMC)"))
    tasks = [("superres_x2", 2, False), ("superres_x4", 4, False), ("chain_x4", 4, True)]
    for name, b, chain in tasks:
        if name in args.skip:
            continue
        t0 = time.perf_counter()
        coarse = block_average(inputs, b)
        fine = superresolve(model, coarse, b, steps=args.steps, solver="heun", seed=b + 10 * chain,
                            scale_by_scale=chain)
        seconds[name] = time.perf_counter() - t0
        checks[name] = float(np.abs(block_average(fine, b) - coarse).max())
        sums.append(configurations(fine, params, label=name))
        if chain:
            sums2.append(configurations(block_average(fine, 2), half, label=name + "_level2"))
    if "coarse_to_fine" not in args.skip:
        t0 = time.perf_counter()
        gen = sequential(model, args.n, order="coarse_to_fine", levels=3, steps=args.steps, seed=7, progress=False)
        seconds["coarse_to_fine"] = time.perf_counter() - t0
        sums.append(configurations(gen, params, label="coarse_to_fine"))
        sums2.append(configurations(block_average(gen, 2), half, label="coarse_to_fine_level2"))
    cmp, cmp2 = compare(sums), compare(sums2) if len(sums2) > 1 else None
    res = {s.label: dict(summary(cmp, s.label), seconds=seconds.get(s.label),
                         block_average_max_dev=checks.get(s.label)) for s in sums[1:]}
    if cmp2 is not None:
        for s in sums2[1:]:
            res[s.label] = summary(cmp2, s.label)
    for k, r in res.items():
        sc = r["scalars"]
        print(f"{k:24s}", " ".join(f"{o} {100 * sc[o]['rel_dev']:+.1f}% (z {sc[o]['z']:+.1f})" for o in KEYS
                                   if sc[o]["rel_dev"] is not None),
              f"| G(p) max |dev| {100 * r['G_p']['max_rel_dev']:.1f}% (p != 0: "
              f"{100 * r['G_p']['max_rel_dev_p_nonzero']:.1f}%), max |z| {r['G_p']['max_z']:.1f}", flush=True)
    meta = model.meta or {}
    save(f"superres_l{L}.json", {
        "benchmark": "superres", "machine": info, "params": {"L": L, "m2": M2, "lam": LAM},
        "ensembles": {k: {"chains_trajectories_every_therm_seed": v, "file": paths[k].name} for k, v in ENSEMBLES[L].items()},
        "model": {"file": model_path.name, "step": meta.get("step"), "train_wall_time": meta.get("wall_time"),
                  "command": meta.get("command"), "init": meta.get("init"), "family": model.family.to_dict()},
        "n": args.n, "steps": args.steps, "solver": "heun", "results": res,
        "comparison": cmp.to_dict(), "comparison_level2": None if cmp2 is None else cmp2.to_dict(),
        "command": "python benchmarks/superres.py " + " ".join(sys.argv[1:] if argv is None else argv)})


if __name__ == "__main__":
    main()
