#!/usr/bin/env python
"""Raw generation against a long HMC ensemble: configurations per second and bias, for several
models and solver settings measured in one run (issue 14's headline target).

Each ``--run LABEL:SOLVER:STEPS[:GRID][:z2=MODE]`` generates ``--n`` configurations with the model
``--model LABEL=PATH`` (GRID: ``1`` (default) or ``pP`` for the power grid 1 - (1 - u)^P, ``opt``
for a grid optimised here by :func:`phi4si.model.schedule.optimise_grid` on 64 pilot samples of
other noise, or a path file written by ``phi4si optimize-path``; MODE: the ``z2`` of the task,
default auto).  Every run is compared with the HMC ensemble ``--ref`` on

* <|m|>, chi, U4 (Binder), xi_2 and <S>/V: value, error, bias against HMC and its z-score
  (generated samples are independent; HMC errors by the Gamma method);
* the momentum spectrum G(p) = <|phi~(p)|^2>/V at every momentum, averaged over the lattice's
  symmetry orbits of p (HMC errors by binning): the largest |z| and relative deviation over p;

and the cost: network evaluations per sample (a forward hook), seconds per configuration (one
torch thread, ``--threads``; a warm-up run first; the load average is recorded).  The first run is
the baseline (``--baseline`` chooses another): every run gets its speed-up against it, and
``passes`` says whether each of its biases is at most the baseline's plus twice the error of the
difference (equal bias within errors, or smaller), G(p) included at every momentum.

    python benchmarks/generation_speed.py --ref l16_ref.h5 --model base=l16.pt --model new=l16_one_pass.pt \\
        --run base:heun:20 --run new:ab3:6:opt --run new:heun:20 --out generation_speed_l16.json

``--device cuda`` runs the same comparison on a GPU (the timings then include the transfers of each
batch's result to the CPU, as ``phi4si generate`` does).  Writes ``benchmarks/results/<--out>``
and prints the table.
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
from solver_front import NFE  # noqa: E402

OBSERVABLES = ("abs_m", "chi", "binder", "xi2", "s")


RUN_OPTIONS = {"z2": "auto"}          # trailing NAME=VALUE fields of a --run and their defaults


def parse_run(spec: str, models: dict, options: dict = RUN_OPTIONS) -> dict:
    """LABEL:SOLVER:STEPS[:GRID][:NAME=VALUE...] as a dict; the NAME=VALUE fields are those of
    ``options`` (name -> default; proposal_cost.py adds its own)."""
    parts = spec.split(":")
    opts = dict(options)
    while parts and "=" in parts[-1]:
        name, _, value = parts.pop().partition("=")
        if name not in options:
            raise SystemExit(f"--run {spec!r}: unknown field {name!r} (choose from {sorted(options)})")
        opts[name] = value
    if len(parts) not in (3, 4) or parts[0] not in models:
        fields = "".join(f"[:{k}=...]" for k in options)
        raise SystemExit(f"--run {spec!r}: expected LABEL:SOLVER:STEPS[:GRID]{fields} with LABEL one of "
                         f"{sorted(models)}")
    grid = parts[3] if len(parts) == 4 else "1"
    return {"spec": spec, "label": parts[0], "solver": parts[1], "steps": int(parts[2]), "grid": grid, **opts}


def grid_of(run, model, seed, shape=None):
    """(grid_power argument, record) of a run's GRID field (optimised on the lattice ``shape``,
    default the model's)."""
    g = run["grid"]
    if g == "opt":
        from phi4si.model.schedule import optimise_grid

        t0 = time.perf_counter()
        r = optimise_grid(model, run["steps"], run["solver"], shape=shape, pilot=64, seed=seed + 100, ref_steps=64)
        return tuple(r["grid"]), {"optimised": True, "grid": list(r["grid"]), "seconds": time.perf_counter() - t0,
                                  "held_out": r["held_out"], "start_power": r["start_power"]}
    if g.startswith("p") or g.replace(".", "", 1).isdigit():
        p = float(g[1:] if g.startswith("p") else g)
        return p, {"optimised": False, "power": p}
    from phi4si.model.schedule import read_path_file

    doc = read_path_file(g, task="generate", shape=model.shape if shape is None else tuple(shape))
    if (doc["solver"], int(doc["steps"])) != (run["solver"], run["steps"]):
        raise SystemExit(f"{g} is a grid for {doc['solver']} x {doc['steps']}, not {run['solver']} x {run['steps']}")
    return tuple(doc["grid"]), {"optimised": True, "grid": list(doc["grid"]), "path_file": str(Path(g).resolve())}


def setup(ap, args, options: dict = RUN_OPTIONS):
    """Threads, device check, machine info, the models of ``--model LABEL=PATH``, the runs (with the
    NAME=VALUE fields of ``options``) and the baseline's spec (shared with proposal_cost.py)."""
    from phi4si.model import load_model

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    info = machine_info()
    info["device"] = {"type": args.device,
                      "name": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else None}
    models, paths = {}, {}
    for spec in args.model:
        label, _, path = spec.partition("=")
        models[label], paths[label] = load_model(path, args.device), str(Path(path).resolve())
    runs = [parse_run(s, models, options) for s in args.run]
    base_spec = args.baseline or runs[0]["spec"]
    if base_spec not in [r["spec"] for r in runs]:
        raise SystemExit(f"--baseline {base_spec!r} is not one of the --run specs")
    return info, models, paths, runs, base_spec


def orbits(shape):
    """Index of each momentum's symmetry orbit and the orbits' labels (phi4si.lattice.momentum_orbits)."""
    from phi4si.lattice import momentum_orbits

    return momentum_orbits(shape)


def spectrum(phi, orbit, n_orbits, bins=None):
    """G per orbit: mean and error (independent samples; with ``bins`` (chains, cfg) the error of
    ``bins`` bin means per chain, for a correlated Markov chain)."""
    from phi4si.lattice import orbit_spectrum

    counts = np.bincount(orbit.ravel(), minlength=n_orbits)
    per = orbit_spectrum(phi, orbit.shape)                     # (..., n_orbits), the orbits of orbits(shape)
    if bins is None:
        return per.mean(0), per.std(0, ddof=1) / np.sqrt(len(per)), counts
    chains, n = per.shape[:2]
    nb = n // bins
    means = per[:, : nb * bins].reshape(chains, bins, nb, -1).mean(2).reshape(chains * bins, -1)
    return per.reshape(-1, n_orbits).mean(0), means.std(0, ddof=1) / np.sqrt(len(means)), counts


def reference(path, orbit, n_orbits):
    import h5py

    from phi4si.analysis.report import analyze_file

    r = analyze_file(path)
    obs = {k: (float(r[k]["value"]), float(r[k]["error"])) for k in OBSERVABLES}
    with h5py.File(path, "r") as f:
        n = int(f["cfg"].shape[0])
        phi = np.asarray(f["phi"][:, :n], dtype=np.float64)
    G, Gerr, _ = spectrum(phi, orbit, n_orbits, bins=20)
    return obs, G, Gerr, int(phi.shape[0] * phi.shape[1]), {k: r[k].get("tau_int") for k in OBSERVABLES}


def generate_timed(model, n, solver, steps, grid, z2, seed, batch, shape=None):
    from phi4si.model.generate import generate

    generate(model, min(batch, 16), shape, steps=1, solver=solver, seed=seed + 1, batch_size=batch, z2=z2)  # warm-up
    counter = NFE(model.net)
    t0, c0 = time.perf_counter(), time.process_time()
    phi = generate(model, n, shape, steps=steps, solver=solver, seed=seed, batch_size=batch, grid_power=grid, z2=z2)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    counter.handle.remove()
    return phi, {"nfe": counter.calls / -(-n // batch), "seconds": wall, "cfg_per_s": n / wall, "cpu_s": cpu}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="long HMC ensemble at the models' lattice and couplings")
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--run", action="append", required=True, metavar="LABEL:SOLVER:STEPS[:GRID][:z2=MODE]")
    ap.add_argument("--baseline", default=None, help="the --run spec the speed-ups refer to (default the first)")
    ap.add_argument("--n", type=int, default=2000, help="configurations per run (default 2000)")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:i")
    ap.add_argument("--shape", type=int, nargs="+", default=None,
                    help="generate on this lattice (default the models'; train small, generate large)")
    ap.add_argument("--out", required=True, help="file name under benchmarks/results/, or a path (with a /)")
    args = ap.parse_args(argv)
    info, models, paths, runs, base_spec = setup(ap, args)
    shape = tuple(args.shape) if args.shape else next(iter(models.values())).shape
    params = next(iter(models.values())).target_params(shape=shape)
    orbit, labels = orbits(shape)
    ref_obs, ref_G, ref_Gerr, ref_n, ref_tau = reference(args.ref, orbit, len(labels))
    print(f"HMC reference {args.ref}: {ref_n} configurations, "
          + ", ".join(f"{k} {v:.5g}({e:.2g})" for k, (v, e) in ref_obs.items()), flush=True)
    from phi4si.analysis.observables import analyze_configs
    from phi4si.model.z2 import applied

    rows = []
    for run in runs:
        model = models[run["label"]]
        model.net.eval()
        grid, grid_rec = grid_of(run, model, args.seed, shape)
        phi, cost = generate_timed(model, args.n, run["solver"], run["steps"], grid, run["z2"], args.seed, args.batch,
                                   shape)
        r = analyze_configs(phi, params)
        obs = {}
        for k in OBSERVABLES:
            v, e = float(r[k].value), float(r[k].error)
            rv, re_ = ref_obs[k]
            obs[k] = {"gen": v, "gen_err": e, "ref": rv, "ref_err": re_, "bias": v - rv,
                      "bias_err": float(np.hypot(e, re_)), "z": (v - rv) / float(np.hypot(e, re_)),
                      "rel_dev": v / rv - 1.0}
        G, Gerr, _ = spectrum(phi, orbit, len(labels))
        zG = (G - ref_G) / np.hypot(Gerr, ref_Gerr)
        row = {**run, "grid": grid_rec, "model": paths[run["label"]],
               "z2_applied": applied(model, run["z2"]),
               **cost, "observables": obs,
               "G": {"gen": G.tolist(), "gen_err": Gerr.tolist(), "max_abs_z": float(np.abs(zG).max()),
                     "max_rel_dev": float(np.abs(G / ref_G - 1).max()), "z": zG.tolist()}}
        rows.append(row)
        print(f"{run['spec']:28s} {cost['nfe']:5.0f} NFE {cost['cfg_per_s']:7.2f} cfg/s  "
              + " ".join(f"{k} {obs[k]['z']:+5.2f}" for k in OBSERVABLES)
              + f"  G(p) max|z| {row['G']['max_abs_z']:.2f} max rel {row['G']['max_rel_dev']:.3f}", flush=True)
    base = next(r for r in rows if r["spec"] == base_spec)
    print(f"\nagainst the baseline {base_spec} ({base['cfg_per_s']:.2f} cfg/s, {base['nfe']:.0f} NFE):")
    for row in rows:
        row["speedup"] = row["cfg_per_s"] / base["cfg_per_s"]
        row["nfe_ratio"] = base["nfe"] / row["nfe"]
        checks = {}
        for k in OBSERVABLES:
            a, b = row["observables"][k], base["observables"][k]
            checks[k] = abs(a["bias"]) <= abs(b["bias"]) + 2 * float(np.hypot(a["gen_err"], b["gen_err"]))
        zb = np.abs(np.asarray(base["G"]["z"]))
        za = np.abs(np.asarray(row["G"]["z"]))
        err_diff = np.hypot(np.asarray(row["G"]["gen_err"]), np.asarray(base["G"]["gen_err"]))
        dG = np.abs(np.asarray(row["G"]["gen"]) - ref_G)
        dGb = np.abs(np.asarray(base["G"]["gen"]) - ref_G)
        checks["G(p)"] = bool(np.all(dG <= dGb + 2 * err_diff))
        row["checks"] = checks
        row["passes"] = all(checks.values())
        failed = [k for k, v in checks.items() if not v]
        print(f"  {row['spec']:28s} {row['speedup']:6.2f}x cfg/s, {row['nfe_ratio']:5.2f}x fewer NFE; bias "
              f"{'as small as the baseline' if row['passes'] else 'larger on ' + ', '.join(failed)}"
              f" (G(p) max|z| {float(za.max()):.2f} vs baseline {float(zb.max()):.2f})")
    info["loadavg_end"] = list(os.getloadavg())
    path = save(Path(args.out).name, {"benchmark": "generation_speed", "shape": list(shape), "machine": info, "ref": str(Path(args.ref).resolve()),
                           "ref_n": ref_n, "ref_tau_int": ref_tau, "params": params.to_dict(), "n": args.n,
                           "batch": args.batch, "seed": args.seed, "threads": args.threads, "baseline": base_spec,
                           "momentum_orbits": labels.tolist(), "ref_G": ref_G.tolist(), "ref_G_err": ref_Gerr.tolist(),
                           "models": paths, "rows": rows, "command": " ".join(sys.argv)},
                out=args.out if "/" in args.out else None)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
