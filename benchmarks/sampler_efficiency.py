#!/usr/bin/env python
"""Sampler efficiency near the transition: tau_int and ESS per second of |m| and m^2.

d = 2, L = 32 and 64, m2 = -4, lam = 4.572 (the paper's point, slightly on the broken side
of the transition).  Samplers (all exact, all through the package's driver
``phi4si.mcmc.run.sample_mcmc``, which writes an HDF5 ensemble):

* ``hmc``    plain HMC, leapfrog, 10 steps;
* ``fahmc``  Fourier-accelerated HMC, leapfrog, 10 steps, Fourier mass M_fa in --fa-masses
             (default 0.5, 1, 2; the best one is the headline, all are reported);
* ``mala``   Metropolis-adjusted Fourier-preconditioned Langevin, 10 steps per trajectory.

Fairness: every sampler does n_steps = 10 integrator/Langevin steps per trajectory (one stored
measurement), with its step size tuned during thermalisation by the driver's adaptation to the
sampler's default target acceptance (0.8 for hmc/fahmc, 0.7 for mala) and the driver's default
trajectory-length jitter; same chains, same seed scheme, and the same *wall-clock budget* per run
(a short pilot times each sampler's trajectories and sets n_therm + n_traj to fill the budget,
25 % of it thermalisation).  Each run is analysed with the Gamma method (phi4si.analysis.stats.gamma on
the (chain, traj) series); ESS/s = ESS / wall_time, where wall_time is the file attribute (the
whole run, thermalisation included; ESS per second of the measurement phase alone is also given).

Prints a table and writes ``benchmarks/results/sampler_efficiency.json``.

    python benchmarks/sampler_efficiency.py          # ~10 minutes on 2 cores
    python benchmarks/sampler_efficiency.py --quick  # ~1 minute smoke run (L = 32, short runs)
"""

from __future__ import annotations

import os
import sys

if "--omp-active" not in sys.argv:
    # numba's OpenMP workers busy-wait after each parallel region by default; FA-HMC and MALA
    # alternate numba regions with scipy.fft's own worker threads, which then compete with the
    # spinning threads (measured: 5 ms -> 100 ms per FA-HMC trajectory on 2 loaded cores).
    # Passive waiting removes that; it costs plain HMC a thread wake-up per parallel region.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save, threading_layer  # noqa: E402

from phi4si.lattice import Phi4Params  # noqa: E402
from phi4si.mcmc import make_sampler  # noqa: E402
from phi4si.mcmc.run import sample_mcmc  # noqa: E402
from phi4si.mcmc.settings import SAMPLER_SETTINGS  # noqa: E402
from phi4si.analysis.stats import gamma  # noqa: E402
from phi4si.store import open_ensemble  # noqa: E402

M2, LAM, N_STEPS = -4.0, 4.572, 10
THERM_FRACTION = 0.25


def mass_kw(name, mass) -> dict:
    """``{"mass": mass}`` for the samplers that use a mass; sample_mcmc refuses it for the others (hmc)."""
    return {"mass": mass} if "mass" in SAMPLER_SETTINGS[name] else {}


def pilot_seconds_per_traj(name, params, chains, mass, tmp):
    """Wall seconds per trajectory (all chains, driver overheads included) from a short driver run."""
    s = make_sampler(name, params, n_steps=N_STEPS, mass=mass)
    rng = np.random.default_rng(123)
    s.step(rng.standard_normal((chains, params.volume)), rng, s.default_eps)  # compile / warm up
    path = Path(tmp) / "pilot.h5"
    n = 0
    for n in (10, 40, 160):
        t0 = time.perf_counter()
        # half of it adapting the step size (a fixed default step can be far too large, and the
        # driver then stops a run whose chains accept nothing)
        sample_mcmc(params, path, sampler=name, chains=chains, n_traj=n, n_therm=n, every=0, seed=1,
                    progress=False, n_steps=N_STEPS, overwrite=True, **mass_kw(name, mass))
        dt = time.perf_counter() - t0
        if dt > 0.5:
            break
    return dt / (2 * n)


def run_one(name, L, mass, chains, budget, seed, tmp, max_traj):
    params = Phi4Params((L, L), M2, LAM)
    spt = pilot_seconds_per_traj(name, params, chains, mass, tmp)
    total = int(budget / spt)
    total = max(200, min(total, int(max_traj / (1 - THERM_FRACTION))))
    n_therm = int(THERM_FRACTION * total)
    n_traj = total - n_therm
    path = Path(tmp) / f"{name}_{mass}_{L}.h5"
    t0 = time.perf_counter()
    sample_mcmc(params, path, sampler=name, chains=chains, n_traj=n_traj, n_therm=n_therm, every=0, seed=seed,
                progress=False, n_steps=N_STEPS, overwrite=True, **mass_kw(name, mass))
    elapsed = time.perf_counter() - t0
    ds = open_ensemble(path, load=True)
    m = np.asarray(ds["m"].values, dtype=np.float64)
    attrs = dict(ds.attrs)
    ds.close()
    wall = float(attrs["wall_time"])
    meas_wall = wall * n_traj / (n_traj + n_therm)
    row = {"sampler": name, "L": L, "mass": mass if name != "hmc" else None, "chains": chains,
           "n_steps": N_STEPS, "n_therm": n_therm, "n_traj": n_traj, "eps": float(attrs["eps"]),
           "acceptance": float(attrs["acceptance"]), "wall_time": wall, "elapsed": elapsed,
           "pilot_seconds_per_traj": spt, "seconds_per_traj": wall / (n_traj + n_therm),
           "sampler_meta": attrs.get("sampler")}
    for lab, ser in (("abs_m", np.abs(m)), ("m2", m * m)):
        e = gamma(ser)
        row[lab] = {"value": e.value, "error": e.error, "tau_int": e.tau_int, "tau_int_error": e.tau_int_error,
                    "ess": e.ess, "ess_per_s": e.ess / wall, "ess_per_s_measurement": e.ess / meas_wall}
    return row


def label(row):
    return row["sampler"] + ("" if row["mass"] is None else f"(M={row['mass']:g})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="lattice sides (default 32 64; quick 32)")
    ap.add_argument("--fa-masses", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--mala-mass", type=float, default=1.0)
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--budget", type=float, nargs="+", default=None,
                    help="wall seconds per run, one per size (default 20 70; quick 5)")
    ap.add_argument("--max-traj", type=int, default=100000, help="cap on measured trajectories per run")
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--omp-active", action="store_true",
                    help="keep OpenMP's default busy-waiting (default: OMP_WAIT_POLICY=PASSIVE, see the source)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    sizes = args.sizes or ([32] if args.quick else [32, 64])
    budgets = args.budget or ([3.0] if args.quick else [20.0, 70.0])
    if len(budgets) == 1:
        budgets = budgets * len(sizes)
    configs = [("hmc", 1.0)] + [("fahmc", mm) for mm in args.fa_masses] + [("mala", args.mala_mass)]

    info = machine_info()
    print(f"{info['cpu']['model']}, {info['cores_usable']} cores, load average {info['loadavg_start'][0]:.2f}; "
          f"d=2 m2={M2} lam={LAM}, {args.chains} chains, n_steps={N_STEPS}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for L, budget in zip(sizes, budgets):
            for i, (name, mass) in enumerate(configs):
                row = run_one(name, L, mass, args.chains, budget, args.seed + 100 * i + L, tmp, args.max_traj)
                rows.append(row)
                print(f"L={L:3d} {label(row):<14} eps {row['eps']:.4f} acc {row['acceptance']:.2f} "
                      f"traj {row['n_therm']}+{row['n_traj']} wall {row['wall_time']:6.1f}s "
                      f"({1e3 * row['seconds_per_traj']:.2f} ms/traj) | "
                      f"|m| {row['abs_m']['value']:.4f}+-{row['abs_m']['error']:.4f} tau {row['abs_m']['tau_int']:7.2f} "
                      f"ESS/s {row['abs_m']['ess_per_s']:8.2f} | "
                      f"m2 {row['m2']['value']:.5f}+-{row['m2']['error']:.5f} tau {row['m2']['tau_int']:7.2f} "
                      f"ESS/s {row['m2']['ess_per_s']:8.2f}", flush=True)

    analysis = []
    for L in sizes:
        at = [r for r in rows if r["L"] == L]
        hmc = next(r for r in at if r["sampler"] == "hmc")
        fa = [r for r in at if r["sampler"] == "fahmc"]
        best = max(fa, key=lambda r: r["m2"]["ess_per_s"])
        a = {"L": L, "best_fa_mass": best["mass"],
             "fa_over_hmc_ess_per_s_m2": best["m2"]["ess_per_s"] / hmc["m2"]["ess_per_s"],
             "fa_over_hmc_ess_per_s_abs_m": best["abs_m"]["ess_per_s"] / hmc["abs_m"]["ess_per_s"],
             "hmc_over_fa_tau_m2": hmc["m2"]["tau_int"] / best["m2"]["tau_int"],
             "fa_over_hmc_cost_per_traj": best["seconds_per_traj"] / hmc["seconds_per_traj"],
             "fa_over_hmc_eps": best["eps"] / hmc["eps"]}
        for r in at:  # consistency of the estimates with HMC's (exact samplers must agree)
            r["z_vs_hmc"] = {k: (r[k]["value"] - hmc[k]["value"]) / math.hypot(r[k]["error"], hmc[k]["error"])
                             for k in ("abs_m", "m2")}
        analysis.append(a)
        print(f"L={L}: best FA-HMC mass {a['best_fa_mass']:g}: ESS/s(m^2) FA/HMC = {a['fa_over_hmc_ess_per_s_m2']:.2f} "
              f"(= tau ratio HMC/FA {a['hmc_over_fa_tau_m2']:.2f} / cost ratio FA/HMC {a['fa_over_hmc_cost_per_traj']:.1f})")
    info["threading_layer"] = threading_layer()
    data = {"benchmark": "sampler_efficiency", "quick": args.quick,
            "setup": {"d": 2, "m2": M2, "lam": LAM, "n_steps": N_STEPS, "integrator": "leapfrog", "chains": args.chains,
                      "budget_seconds_per_run": dict(zip(map(str, sizes), budgets)), "therm_fraction": THERM_FRACTION,
                      "fa_masses": args.fa_masses, "mala_mass": args.mala_mass, "seed": args.seed,
                      "adaptation": "driver default (log eps += (a - target)/(1 + t/10)^0.6 during thermalisation)"},
            "machine": info, "runs": rows, "analysis": analysis, "target": {"fa_over_hmc_ess_per_s_m2_at_L64": 3.0}}
    path = save("sampler_efficiency.json" if not args.quick else "sampler_efficiency_quick.json", data, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
