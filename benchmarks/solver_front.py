#!/usr/bin/env python
"""The error-versus-cost front of the ODE solvers of a trained model (issue 14, "fewer network
evaluations for the same answer").

For one trained model, every setting (solver x steps x time-grid power) generates the same ``--n``
configurations from the same noise (same seed and batch size: the ODE draws only the start noise),
and is compared with a reference solve of the same model from the same noise (RK4, ``--ref-steps``
steps, default 200):

* ``mse``: the mean squared difference of the final configurations (per site, physical units) -
  the discretisation error itself, without sampling noise;
* the shift of <|m|>, chi, U4 (Binder), xi_2 and <S>/V against the reference's, in units of the
  reference's statistical error (the samples are independent): a shift well below 1 is invisible in
  any study of this size;
* the momentum spectrum G(p) = <|phi~(p)|^2>/V at every momentum: the largest relative shift over all
  p, and the largest shift in units of its error.

Cost: network evaluations per sample (NFE, counted by a forward hook) and seconds per configuration
(wall time on this machine, one torch thread; the load average is recorded).  The front is the set
of settings that no other setting beats in both NFE and mse; ``recommended`` is the cheapest setting
whose every observable shift is below ``--tolerance`` reference errors (G(p): below twice that at every
momentum), also among the power grids alone (a default cannot carry one model's optimised grid), with
the ratios to today's default (Heun, 50 steps, grid power 1).  ``--reanalyse FILE`` recomputes the
front and the recommendation of a saved run.

Without ``--model`` a small model is trained first (``--train-minutes`` on an HMC ensemble at
L = ``--L``, m2 = -4, lam = 8; cached in ``--workdir``), so the script runs on a fresh machine.

Prints the table and writes ``benchmarks/results/solver_front_l{L}.json``.

    python benchmarks/solver_front.py                        # L = 8: ~4 min training + ~10 min
    python benchmarks/solver_front.py --model model.pt       # any trained lattice model
    python benchmarks/solver_front.py --quick                # ~1 min smoke run
    python benchmarks/solver_front.py --solvers euler heun rk4 ab2 ab3 ddim2 --optimise ab3:3 ab3:4 ab3:6 heun:3 ab2:4
                                                             # the committed run (~35 min)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402

DEFAULT = ("heun", 50, 1.0)
OBSERVABLES = ("abs_m", "chi", "binder", "xi2", "s")


def trained_model(args):
    """The model to study: --model, or a small one trained here (cached)."""
    from phi4si import Phi4Params, TrainConfig, load_model, sample_mcmc, train

    if args.model:
        return load_model(args.model), str(Path(args.model).resolve())
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    ck = work / f"small_l{args.L}_{args.train_minutes:g}min.pt"
    if not ck.exists():
        ens = work / f"hmc_l{args.L}.h5"
        if not ens.exists():
            sample_mcmc(Phi4Params((args.L, args.L), m2=-4.0, lam=8.0), ens, chains=4, n_traj=4000, n_therm=500,
                        every=4, seed=1, progress=False)
        print(f"training a small model for {args.train_minutes:g} minutes -> {ck}", flush=True)
        train(ens, ck, TrainConfig(minutes=args.train_minutes, steps=None, model="small", threads=1, seed=2,
                                       odd=True, amp="none"),
              progress=False)
    return load_model(ck), str(ck)


def spectrum(phi):
    """G(p) = <|phi~(p)|^2> / V at every momentum, and its standard error (independent samples)."""
    V = int(np.prod(phi.shape[1:]))
    pw = np.abs(np.fft.fftn(phi, axes=tuple(range(1, phi.ndim)))) ** 2 / V
    return pw.mean(0), pw.std(0, ddof=1) / np.sqrt(len(phi))


def observables(phi, params):
    from phi4si.analysis.observables import analyze_configs

    r = analyze_configs(phi, params)
    return {k: (float(r[k].value), float(r[k].error)) for k in OBSERVABLES}


class NFE:
    """Counts the network's batched forward calls (one evaluation of the drift on a batch)."""

    def __init__(self, net):
        self.calls = 0
        self.handle = net.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


def run_setting(model, n, solver, steps, power, seed, batch):
    from phi4si.model.generate import generate

    counter = NFE(model.net)
    t0, c0 = time.perf_counter(), time.process_time()
    phi = generate(model, n, steps=steps, solver=solver, seed=seed, batch_size=batch, grid_power=power)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    counter.handle.remove()
    batches = -(-n // batch)
    return phi, {"nfe": counter.calls / batches, "s_per_cfg": wall / n, "cpu_s_per_cfg": cpu / n}


def compare(phi, ref, ref_obs, ref_G, ref_Gerr, params):
    obs = observables(phi, params)
    G, _ = spectrum(phi)
    shifts = {k: (obs[k][0] - ref_obs[k][0]) / ref_obs[k][1] for k in OBSERVABLES}
    rel = np.abs(G - ref_G) / ref_G
    return {"mse": float(np.mean((phi - ref) ** 2)), "values": {k: obs[k][0] for k in OBSERVABLES},
            "shift_sigma": shifts, "G_max_rel_shift": float(rel.max()),
            "G_max_shift_sigma": float((np.abs(G - ref_G) / ref_Gerr).max())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="trained lattice model (default: train a small one)")
    ap.add_argument("--L", type=int, default=8, help="lattice side of the model trained here (default 8)")
    ap.add_argument("--train-minutes", type=float, default=4.0)
    ap.add_argument("--workdir", default=os.path.expanduser("~/.cache/phi4si-bench"))
    ap.add_argument("--n", type=int, default=2000, help="configurations per setting (default 2000)")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--ref-steps", type=int, default=200)
    ap.add_argument("--solvers", nargs="+", default=None)
    ap.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--powers", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--tolerance", type=float, default=0.5, help="allowed shift in reference errors (default 0.5)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--path-files", nargs="*", default=[], help="optimised grids to add (phi4si optimize-path)")
    ap.add_argument("--optimise", nargs="*", default=[], metavar="SOLVER:STEPS",
                    help="optimise the grid of these settings here (64 pilot samples of other noise) and add them")
    ap.add_argument("--reanalyse", default=None, metavar="FILE", help="recompute the front of a saved run and stop")
    ap.add_argument("--quick", action="store_true", help="n 200, reference RK4 50, steps 4 and 8, power 1")
    args = ap.parse_args(argv)
    if args.reanalyse:
        return reanalyse(args.reanalyse, args.tolerance)
    from phi4si.interpolant.integrate import ODE_SOLVERS

    if args.quick:
        args.n, args.batch, args.ref_steps, args.steps, args.powers = 200, 200, 50, [4, 8], [1.0]
        args.train_minutes = min(args.train_minutes, 0.5)
    torch.set_num_threads(1)
    info = machine_info()
    model, model_path = trained_model(args)
    model.net.eval()
    params = model.target_params()
    print(f"model {model_path}: lattice {model.shape}, params {params.to_dict()}", flush=True)
    cache = Path(args.workdir) / f"ref_{Path(model_path).stem}_n{args.n}_b{args.batch}_s{args.seed}_rk4x{args.ref_steps}.npz"
    if cache.exists() and args.model is None:      # the reference of a model trained here, from an earlier run
        z = np.load(cache)
        ref, ref_cost = z["phi"], {k: float(z[k]) for k in ("nfe", "s_per_cfg", "cpu_s_per_cfg")}
    else:
        ref, ref_cost = run_setting(model, args.n, "rk4", args.ref_steps, 1.0, args.seed, args.batch)
        if args.model is None:
            np.savez(cache, phi=ref, **ref_cost)
    ref_obs = observables(ref, params)
    ref_G, ref_Gerr = spectrum(ref)
    print(f"reference rk4 x {args.ref_steps}: {ref_cost['nfe']:.0f} NFE, "
          + ", ".join(f"{k} {v:.4g}({e:.2g})" for k, (v, e) in ref_obs.items()), flush=True)
    settings = [(s, k, p) for s in (args.solvers or ODE_SOLVERS) for k in args.steps for p in args.powers]
    if not args.quick:
        settings.append(DEFAULT)
    optimisations = []
    for spec in args.optimise:                # optimised grids, made here (pilot noise other than the test's)
        from phi4si.model.schedule import optimise_grid

        solver, steps = spec.split(":")
        t0 = time.perf_counter()
        r = optimise_grid(model, int(steps), solver, pilot=64, seed=args.seed + 100, ref_steps=64)
        print(f"optimised grid {solver} x {steps} in {time.perf_counter() - t0:.0f} s: held-out mse "
              f"{r['held_out']['mse']:.3g} vs {r['held_out']['mse_start']:.3g} (power {r['start_power']:g})", flush=True)
        settings.append((solver, int(steps), tuple(r["grid"])))
        optimisations.append({"solver": solver, "steps": int(steps), "seconds": time.perf_counter() - t0,
                              **{k: r[k] for k in ("grid", "start_power", "pilot", "held_out")}})
    for f in args.path_files:                # optimised grids (phi4si optimize-path): solver, steps, grid
        from phi4si.model.schedule import read_path_file

        doc = read_path_file(f, task="generate", shape=model.shape)
        settings.append((doc["solver"], int(doc["steps"]), tuple(doc["grid"])))
    rows = []
    head = f"{'solver':7s} {'steps':>5s} {'power':>5s} {'NFE':>5s} {'ms/cfg':>7s} {'mse':>9s} " + \
        " ".join(f"{k:>7s}" for k in OBSERVABLES) + f" {'G rel':>7s} {'G sig':>6s}"
    print(head)
    for solver, steps, power in settings:
        phi, cost = run_setting(model, args.n, solver, steps, power, args.seed, args.batch)
        c = compare(phi, ref, ref_obs, ref_G, ref_Gerr, params)
        row = {"solver": solver, "steps": steps, "grid_power": power if isinstance(power, float) else list(power),
               "optimised_grid": not isinstance(power, float), **cost, **c}
        rows.append(row)
        pw = f"{power:5.1f}" if isinstance(power, float) else "  opt"
        print(f"{solver:7s} {steps:5d} {pw} {cost['nfe']:5.0f} {1e3 * cost['s_per_cfg']:7.2f} {c['mse']:9.2e} "
              + " ".join(f"{c['shift_sigma'][k]:7.2f}" for k in OBSERVABLES)
              + f" {c['G_max_rel_shift']:7.3f} {c['G_max_shift_sigma']:6.2f}", flush=True)
    summary = report(rows, args.tolerance)
    L = model.shape[0]
    path = save(f"solver_front_l{L}{'_quick' if args.quick else ''}.json",
                {"benchmark": "solver_front", "quick": args.quick, "machine": info, "model": model_path,
                 "model_shape": list(model.shape), "params": params.to_dict(), "n": args.n, "batch": args.batch,
                 "seed": args.seed, "reference": {"solver": "rk4", "steps": args.ref_steps, **ref_cost,
                                                  "observables": ref_obs},
                 "tolerance_sigma": args.tolerance, "rows": rows, "optimisations": optimisations, **summary})
    print(f"wrote {path}")


def name(r) -> str:
    grid = "optimised grid" if r["optimised_grid"] else f"power {r['grid_power']:g}"
    return f"{r['solver']} x {r['steps']} ({grid})"


def report(rows, tolerance) -> dict:
    """Print the front and the recommendations; return them for the JSON file."""
    front = [r for r in rows if not any(q["nfe"] <= r["nfe"] and q["mse"] < r["mse"] for q in rows if q is not r)]
    default = next((r for r in rows if (r["solver"], r["steps"], r["grid_power"]) == DEFAULT), None)

    def ok(r):      # every shift, G(p) at every momentum included, below the tolerance in reference errors
        return all(abs(v) < tolerance for v in r["shift_sigma"].values()) and r["G_max_shift_sigma"] < 2 * tolerance

    print("\nfront (no setting has both fewer NFE and a smaller mse):")
    for r in sorted(front, key=lambda r: r["nfe"]):
        print(f"  {name(r)}: {r['nfe']:.0f} NFE, mse {r['mse']:.2e}")
    out = {"front": [name(r) for r in front]}
    for key, pool in (("recommended", rows), ("recommended_power_grid", [r for r in rows if not r["optimised_grid"]])):
        passing = sorted((r for r in pool if ok(r)), key=lambda r: (r["nfe"], r["mse"]))
        rec = passing[0] if passing else None
        out[key] = None if rec is None else name(rec)
        if rec is None:
            print(f"{key}: no setting passes the tolerance")
            continue
        line = (f"{key}: {name(rec)}, {rec['nfe']:.0f} NFE, largest shift "
                f"{max(abs(v) for v in rec['shift_sigma'].values()):.2f} sigma")
        if default is not None:
            ratio = {"nfe": default["nfe"] / rec["nfe"], "cfg_per_s": default["s_per_cfg"] / rec["s_per_cfg"]}
            out[key + "_vs_default"] = ratio
            line += (f"; against today's default heun x 50 ({default['nfe']:.0f} NFE): {ratio['nfe']:.1f}x fewer "
                     f"evaluations, {ratio['cfg_per_s']:.1f}x the configurations per second")
        print(line)
    return out


def reanalyse(path, tolerance):
    import json

    doc = json.loads(Path(path).read_text())
    doc.update(report(doc["rows"], tolerance), tolerance_sigma=tolerance)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"rewrote {path}")


if __name__ == "__main__":
    main()
