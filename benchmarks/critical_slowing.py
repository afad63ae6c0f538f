#!/usr/bin/env python
"""Critical slowing down along a line of constant physics: tau_int vs L, the dynamic exponent z, ESS/s.

d = 2, m2 = -4, lam = 6.975, 5.276, 4.807, 4.572, 4.398 at L = 6, 12, 20, 32, 64: the line L/xi ~ 4 of
Gerdes et al. (arXiv:2207.00283), on which the correlation length grows with L.  Every sampler runs
through the package's driver (``phi4si.mcmc.run.sample_mcmc``) with its step size adapted during
thermalisation, 16 chains, and the same wall-clock budget per (sampler, L) (a pilot times its
trajectories; 25 % of the budget thermalises):

* ``hmc``           plain HMC, 10 leapfrog steps (the issue's baseline);
* ``hmc_auto``      plain HMC with ``traj_length="auto"``: T = the quarter period of the slowest mode
                    (G(p) measured in thermalisation), so the steps grow with xi -- tuned HMC;
* ``fahmc``         FA-HMC, lattice kernel p_hat^2 + M^2 (M = 0.5), 10 steps;
* ``fahmc_measured`` FA-HMC with ``kernel="measured"`` and ``traj_length="auto"``;
* ``mala``          MALA with the measured mobility D = 2 G, 10 steps per trajectory.

For each: tau_int (Gamma method) of m^2, |m| and G(p_min) (the lowest-momentum power, which sets xi_2),
cost per trajectory, ESS per second of m^2 (whole run, thermalisation included); z from a weighted
least-squares fit of log tau_int(m^2) = z log L + c over L >= 12 (L = 6 is far from the scaling
region), with its standard error; and whether <m^2>, <|m|> of each sampler agree with hmc's within
3 sigma.  Prints a table, writes ``benchmarks/results/critical_slowing.json`` and the log-log plot
``benchmarks/results/critical_slowing.png``.

    python benchmarks/critical_slowing.py            # ~12 minutes on 2 cores
    python benchmarks/critical_slowing.py --quick    # ~1 minute smoke run (L = 6, 12)
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see sampler_efficiency.py

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402

from phi4si.analysis.observables import analyze_dataset  # noqa: E402
from phi4si.analysis.stats import gamma  # noqa: E402
from phi4si.lattice import Phi4Params  # noqa: E402
from phi4si.mcmc.run import sample_mcmc  # noqa: E402
from phi4si.store import open_ensemble  # noqa: E402

M2 = -4.0
GERDES = {6: 6.975, 12: 5.276, 20: 4.807, 32: 4.572, 64: 4.398}    # Gerdes et al., L/xi ~ 4


def line_fit(points=GERDES, L_min=20):
    """lam(L) = lam_c + a / L (finite-size scaling with nu = 1, the 2d Ising class) fitted by least squares
    to the line's points with L >= ``L_min``: (lam_c, a).  Holding L/xi fixed means L ~ xi ~ |lam - lam_c|^-nu."""
    L = np.array([k for k in points if k >= L_min], dtype=float)
    lam = np.array([points[int(k)] for k in L])
    A = np.stack([np.ones_like(L), 1.0 / L], 1)
    (lam_c, a), *_ = np.linalg.lstsq(A, lam, rcond=None)
    return float(lam_c), float(a)


LAM_C, LINE_A = line_fit()
TUNING = Path(__file__).resolve().parent / "results" / "line_tuning.json"


def line():
    """The line's lam per L: Gerdes et al.'s points, L = 128 from ``--tune 128`` (results/line_tuning.json) or,
    before it, extrapolated by :func:`line_fit`."""
    out = {**GERDES, 128: round(LAM_C + LINE_A / 128, 3)}
    if TUNING.exists():
        import json

        out.update({int(k): v["lam"] for k, v in json.loads(TUNING.read_text())["tuned"].items()})
    return out


LINE = line()
BUDGET_SCALE = {6: 1, 12: 1, 20: 1, 32: 2, 64: 4, 128: 8}
SAMPLERS = {
    "hmc": dict(sampler="hmc", n_steps=10),
    "hmc_auto": dict(sampler="hmc", traj_length="auto"),
    "fahmc": dict(sampler="fahmc", n_steps=10, mass=0.5),
    "fahmc_measured": dict(sampler="fahmc", kernel="measured", traj_length="auto"),
    "mala": dict(sampler="mala", n_steps=10, kernel="measured"),
}
THERM_FRACTION = 0.25
CHAINS = 16


def seconds_per_traj(kw, params, tmp):
    """Wall seconds per trajectory from short driver runs (compiled first; half of each adapting eps)."""
    path = Path(tmp) / "pilot.h5"
    sample_mcmc(params, path, chains=CHAINS, n_traj=8, n_therm=8, every=0, seed=1, progress=False, overwrite=True, **kw)
    for n in (20, 80, 320):
        t0 = time.perf_counter()
        sample_mcmc(params, path, chains=CHAINS, n_traj=n, n_therm=n, every=0, seed=1, progress=False, overwrite=True,
                    **kw)
        dt = time.perf_counter() - t0
        if dt > 1.0:
            break
    return dt / (2 * n)


def run_one(name, L, budget, seed, tmp, lam=None):
    kw = SAMPLERS[name]
    lam = LINE[L] if lam is None else lam
    params = Phi4Params((L, L), M2, lam)
    spt = seconds_per_traj(kw, params, tmp)
    total = max(400, int(budget / spt))
    n_therm = int(THERM_FRACTION * total)
    path = Path(tmp) / f"{name}_{L}.h5"
    sample_mcmc(params, path, chains=CHAINS, n_traj=total - n_therm, n_therm=n_therm, every=0, seed=seed,
                progress=False, overwrite=True, **kw)
    with open_ensemble(path, load=True) as ds:
        m = np.asarray(ds["m"].values, dtype=np.float64)
        gp = np.asarray(ds["gp"].values, dtype=np.float64).mean(-1)
        a = dict(ds.attrs)
        obs = analyze_dataset(ds)
    wall = float(a["wall_time"])
    row = {"sampler": name, "L": L, "lam": lam, "settings": kw, "n_therm": n_therm, "n_traj": total - n_therm,
           "eps": float(a["eps"]), "n_steps": int(a["n_steps"]), "traj_length": a.get("traj_length"),
           "acceptance": float(a["acceptance"]), "wall_time": wall, "seconds_per_traj": wall / total}
    xi = obs["xi2"]
    row["xi2"] = {"value": float(xi.value), "error": float(xi.error)}
    row["L_over_xi2"] = L / float(xi.value) if xi.value > 0 else None
    for lab, ser in (("m2", m * m), ("abs_m", np.abs(m)), ("gp_min", gp)):
        e = gamma(ser)
        row[lab] = {"value": e.value, "error": e.error, "tau_int": e.tau_int, "tau_int_error": e.tau_int_error,
                    "ess_per_s": e.ess / wall}
    return row


def tune(L, budget, seed, tmp, target=4.0, tol=0.15, max_runs=3):
    """lam at ``L`` with L/xi_2 = ``target`` (m2 = -4), by hmc_auto runs of ``budget`` seconds: the first guess
    is :func:`line_fit`'s extrapolation; the next comes from xi_2 = A / (lam - lam_c) through the last run and
    the line's next smaller point (its xi_2 measured too), later ones by the secant in 1/xi_2 through the last two
    runs at L; stops when |L/xi_2 - target| < ``tol``.  Returns the record written to results/line_tuning.json."""
    prev = max(k for k in GERDES if k < L)
    a = run_one("hmc_auto", prev, budget / 2, seed, tmp, lam=GERDES[prev])
    steps = [{"L": prev, "lam": GERDES[prev], "xi2": a["xi2"], "L_over_xi2": a["L_over_xi2"]}]
    lam = round(LAM_C + LINE_A / L, 4)
    runs = []
    for _ in range(max_runs):
        r = run_one("hmc_auto", L, budget, seed, tmp, lam=lam)
        runs.append((lam, r["xi2"]["value"]))
        steps.append({"L": L, "lam": lam, "xi2": r["xi2"], "L_over_xi2": r["L_over_xi2"]})
        print(f"tune L={L}: lam={lam:.4f} xi2={r['xi2']['value']:.2f}+-{r['xi2']['error']:.2f} "
              f"L/xi2={r['L_over_xi2']:.3f}", flush=True)
        if abs(r["L_over_xi2"] - target) < tol:
            break
        xt = L / target
        if len(runs) == 1:          # xi = A / (lam - lam_c) through the anchor and this run
            (l1, x1), (l0, x0) = runs[0], (GERDES[prev], a["xi2"]["value"])
        else:                       # secant in 1/xi through the last two runs
            (l0, x0), (l1, x1) = runs[-2], runs[-1]
        lam = round(l1 + (1 / xt - 1 / x1) * (l1 - l0) / (1 / x1 - 1 / x0), 4)
    best = min(steps[1:], key=lambda s_: abs(s_["L_over_xi2"] - target))
    return {"lam": best["lam"], "L_over_xi2": best["L_over_xi2"], "xi2": best["xi2"], "steps": steps,
            "target": target, "tolerance": tol, "budget_seconds": budget}


def fit_z(rows, obs="m2", L_min=12, per_step=False):
    """Weighted least squares of log tau = z log L + c (weights from tau_int_error): (z, error of z).
    ``per_step``: tau in integrator steps (tau_int x n_steps), the cost in force evaluations."""
    k = (lambda r: r["n_steps"]) if per_step else (lambda r: 1)
    pts = [(r["L"], r[obs]["tau_int"] * k(r), r[obs]["tau_int_error"] * k(r)) for r in rows if r["L"] >= L_min]
    if len(pts) < 2:
        return None, None
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    w = 1.0 / np.maximum(np.array([p[2] / p[1] for p in pts]), 1e-3) ** 2
    A = np.stack([x, np.ones_like(x)], 1)
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    z, c = cov @ (A.T @ (w * y))
    chi2 = float(np.sum(w * (y - z * x - c) ** 2))
    dof = len(pts) - 2
    scale = max(1.0, chi2 / dof) if dof > 0 else 1.0          # inflate by the fit's scatter
    return float(z), float(math.sqrt(cov[0, 0] * scale))


def agree(rows):
    """Per (sampler, L): |<obs> - <obs>_hmc| / sqrt(err^2 + err_hmc^2) for m^2, |m| and xi_2 (where recorded)."""
    ref = {r["L"]: r for r in rows if r["sampler"] == "hmc"}
    out = []
    for r in rows:
        h = ref.get(r["L"])
        if h is None or r["sampler"] == "hmc":
            continue
        obs = [o for o in ("m2", "abs_m", "xi2") if o in r and o in h and math.isfinite(r[o]["value"] + h[o]["value"])]
        z = {o: abs(r[o]["value"] - h[o]["value"]) / math.hypot(r[o]["error"], h[o]["error"]) for o in obs}
        out.append({"sampler": r["sampler"], "L": r["L"], "z": z, "ok": all(v < 3 for v in z.values())})
    return out


def plot(rows, fits, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name in fits:
        rs = sorted((r for r in rows if r["sampler"] == name), key=lambda r: r["L"])
        if not rs:
            continue
        L = np.array([r["L"] for r in rs])
        t = np.array([r["m2"]["tau_int"] for r in rs])
        dt = np.array([r["m2"]["tau_int_error"] for r in rs])
        z, dz = fits[name]
        lab = name + (f"  z = {z:.2f} $\\pm$ {dz:.2f}" if z is not None else "")
        line = ax[0].errorbar(L, t, dt, marker="o", ls="none", capsize=3, label=lab)
        if z is not None:
            sel = L >= 12
            c = np.exp(np.mean(np.log(t[sel]) - z * np.log(L[sel])))
            xs = np.linspace(L[sel].min(), L.max(), 50)
            ax[0].plot(xs, c * xs**z, color=line[0].get_color(), lw=1)
        ax[1].plot(L, [r["m2"]["ess_per_s"] for r in rs], marker="o", label=name)
    for a, yl in zip(ax, (r"$\tau_{\rm int}(m^2)$ [trajectories]", r"ESS/s of $m^2$")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("L  (m2 = -4, L/xi ~ 4)")
        a.set_ylabel(yl)
        a.legend(fontsize=7)
    fig.suptitle("phi^4, d = 2, along L/xi ~ 4: critical slowing down and cost")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, choices=sorted(LINE))
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    ap.add_argument("--budget", type=float, default=8.0,
                    help="wall seconds per run at L <= 20 (x2 at 32, x4 at 64, x8 at 128)")
    ap.add_argument("--tune", type=int, default=None, metavar="L", choices=[128],
                    help="tune lam at this L so that L/xi_2 = 4 (hmc_auto runs of --budget x 8 seconds); writes "
                         "results/line_tuning.json, which later runs use")
    ap.add_argument("--merge", default=None, metavar="FILE",
                    help="add these runs to a results file's (a run with the same sampler and L replaces the old one)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=None)
    ap.add_argument("--from-json", default=None, metavar="FILE",
                    help="re-analyse the runs of a results file (no sampling): fits, checks, plot")
    args = ap.parse_args(argv)
    if args.from_json:
        import json

        old = json.loads(Path(args.from_json).read_text())
        return report(old["runs"], sorted({r["L"] for r in old["runs"]}), list(SAMPLERS), old["machine"],
                      old["setup"], Path(args.out or args.from_json), old["quick"])
    if args.tune:
        import json

        with tempfile.TemporaryDirectory() as tmp:
            rec = tune(args.tune, args.budget * BUDGET_SCALE[args.tune], args.seed, tmp)
        old = json.loads(TUNING.read_text()) if TUNING.exists() else {"tuned": {}}
        old["tuned"][str(args.tune)] = dict(rec, command="python benchmarks/critical_slowing.py " +
                                            " ".join(sys.argv[1:] if argv is None else argv),
                                            machine=machine_info())
        TUNING.write_text(json.dumps(old, indent=1))
        print(f"lam({args.tune}) = {rec['lam']} (L/xi2 = {rec['L_over_xi2']:.3f}); wrote {TUNING}")
        return None
    sizes = args.sizes or ([6, 12] if args.quick else sorted(LINE))
    budget = 2.0 if args.quick else args.budget
    info = machine_info()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for L in sizes:
            for name in args.samplers:
                b = budget * BUDGET_SCALE[L]
                r = run_one(name, L, b, args.seed, tmp)
                rows.append(r)
                print(f"L={L:3d} {name:15s} eps={r['eps']:.4f} steps={r['n_steps']:4d} acc={r['acceptance']:.2f} "
                      f"s/traj={r['seconds_per_traj']:.2e} tau(m2)={r['m2']['tau_int']:8.1f}+-{r['m2']['tau_int_error']:.1f} "
                      f"ESS/s(m2)={r['m2']['ess_per_s']:8.1f} L/xi2={r['L_over_xi2'] or float('nan'):.2f}", flush=True)
    info["loadavg_end_sampling"] = list(os.getloadavg())
    cmd = "python benchmarks/critical_slowing.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for r in rows:
        r["command"] = cmd
    if args.merge:
        import json

        old = json.loads(Path(args.merge).read_text())
        new = {(r["sampler"], r["L"]) for r in rows}
        rows = [r for r in old["runs"] if (r["sampler"], r["L"]) not in new] + rows
        rows.sort(key=lambda r: (r["L"], list(SAMPLERS).index(r["sampler"])))
        sizes = sorted({r["L"] for r in rows})
        args.samplers = list(SAMPLERS)
        info = {"this_run": info, "merged_into": old["machine"], "merged_into_setup": old["setup"]}
    setup = {"d": 2, "m2": M2, "line": LINE, "line_fit": {"lam_c": LAM_C, "a": LINE_A, "form": "lam = lam_c + a / L",
                                                           "fitted_to": {k: v for k, v in GERDES.items() if k >= 20}},
             "budget_scale": BUDGET_SCALE, "chains": CHAINS, "budget_seconds": budget,
             "therm_fraction": THERM_FRACTION, "samplers": SAMPLERS, "seed": args.seed,
             "z_fit": "weighted least squares of log tau_int(m^2) on log L, L >= 12 (in trajectories, and "
                      "in integrator steps: tau_int x n_steps)",
             "command": cmd}
    res = Path(__file__).resolve().parent / "results"
    out = Path(args.out or args.merge or res / ("critical_slowing_quick.json" if args.quick else "critical_slowing.json"))
    report(rows, sizes, args.samplers, info, setup, out, args.quick)


def report(rows, sizes, samplers, info, setup, out, quick):
    samplers = [s for s in samplers if any(r["sampler"] == s for r in rows)]
    fits = {name: fit_z([r for r in rows if r["sampler"] == name]) for name in samplers}
    fits_steps = {name: fit_z([r for r in rows if r["sampler"] == name], per_step=True) for name in samplers}
    checks = agree(rows)
    ratios = {}
    for L in sizes:
        by = {r["sampler"]: r["m2"]["ess_per_s"] for r in rows if r["L"] == L}
        if "hmc" in by:
            ratios[L] = {k: v / by["hmc"] for k, v in by.items()}
            if "hmc_auto" in by:
                ratios[L].update({f"{k}/hmc_auto": v / by["hmc_auto"] for k, v in by.items()})
    for name, (z, dz) in fits.items():
        zs, dzs = fits_steps[name]
        print(f"z({name}) = " + ("n/a" if z is None else f"{z:.2f} +- {dz:.2f} (trajectories), "
                                 f"{zs:.2f} +- {dzs:.2f} (integrator steps)"))
    for L, rr in ratios.items():
        print(f"L={L}: ESS/s(m2) ratios " + ", ".join(f"{k} {v:.2f}" for k, v in rr.items()))
    bad = [c for c in checks if not c["ok"]]
    print(f"observables agree with hmc within 3 sigma: {len(checks) - len(bad)}/{len(checks)}"
          + ("" if not bad else "; not: " + ", ".join(f"{c['sampler']}@{c['L']} {c['z']}" for c in bad)))
    save(out.name, {"benchmark": "critical_slowing", "quick": quick, "machine": info, "setup": setup,
               "runs": rows, "z": {k: {"z": v[0], "error": v[1]} for k, v in fits.items()},
               "z_steps": {k: {"z": v[0], "error": v[1]} for k, v in fits_steps.items()},
               "ess_ratio_vs_hmc": {str(k): v for k, v in ratios.items()}, "agreement": checks}, out=str(out))
    plot(rows, fits, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
