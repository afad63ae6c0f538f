#!/usr/bin/env python
"""Exact sampling with a trained interpolant against direct HMC (issue: exact sampling).

For one model (trained at h = 0) and HMC reference ensembles (prior and posterior at ``--h``):

1. draw ``--n`` model proposals with log q (augmented ODE, colored divergence by default);
2. prior:  raw model estimates, importance reweighting (ESS/N) and independence Metropolis
   (``--imh-chains`` chains through the same proposals: acceptance, tau_int);
3. posterior exp(h sum phi) from the same proposals (reweighting and IMH: no new model samples);
4. neural block Metropolis-Hastings and the hybrid with HMC (short runs: acceptance and estimates);
5. a timed HMC run in the same process (same machine state) for ESS per second.

Every estimate is written as an ensemble file under ``--workdir`` and analysed with
``phi4si.analyze`` (weighted files: self-normalised estimates, delta-method errors).  Agreement is
z = (x - x_HMC) / sqrt(err^2 + err_HMC^2) for <|m|>, chi, U4 (and <m> under h).  Efficiency is
compared as 1 / (err^2 * seconds), whose ratio between two methods is the ratio of their ESS per
second for that observable; "with training" adds the model's training wall time.

    python benchmarks/exact_sampling.py --model l8.pt --ref l8_ref.h5 --ref-h l8_ref_h005.h5 \\
        --label l8 --n 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine_info  # noqa: E402

KEYS = ("abs_m", "chi", "binder", "m")


def _est(res):
    return {k: {"value": res[k]["value"], "error": res[k]["error"], "tau_int": res[k]["tau_int"]} for k in KEYS}


def _z(a, b):
    out = {}
    for k in KEYS:
        x, y = a.get(k), b.get(k)
        if x is None or y is None or x["error"] is None or y["error"] is None:
            continue
        out[k] = (x["value"] - y["value"]) / float(np.hypot(x["error"], y["error"]))
    return out


def _write(path, params, phi, acc, dH, log_w, sampler):
    from phi4si.store import ConfigurationWriter

    st = {"rng": {}, "n_done": 0, "wall_time": 0.0}
    o = ConfigurationWriter.create(path, params, phi.shape[0], sampler, {"command": " ".join(sys.argv)},
                                   log_w is not None, "float32", phi[:, -1], st)
    o.append(phi, acc, dH, log_w, state=st)
    o.close({"n_done": phi.shape[1], "acceptance": float(np.mean(acc)), "eps": 0.0, "wall_time": 0.0})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", required=True, help="HMC ensemble at h = 0 (the truth)")
    ap.add_argument("--ref-h", default=None, help="HMC ensemble at h = --h")
    ap.add_argument("--h", type=float, default=0.05)
    ap.add_argument("--label", required=True)
    ap.add_argument("--n", type=int, default=2000, help="model proposals")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--solver", default="rk4")
    ap.add_argument("--divergence", default="colored")
    ap.add_argument("--probes", type=int, default=1)
    ap.add_argument("--period", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--imh-chains", type=int, default=4)
    ap.add_argument("--block", type=int, default=4)
    ap.add_argument("--block-chains", type=int, default=32)
    ap.add_argument("--block-sweeps", type=int, default=10)
    ap.add_argument("--hmc-seconds", type=float, default=30.0, help="length of the timed HMC baseline")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="ensemble files (default: a temporary directory)")
    args = ap.parse_args(argv)

    import tempfile

    import torch

    import phi4si
    from phi4si.model.density import FlowSettings, sample
    from phi4si.model import load_model
    from phi4si.model.exact import imh_chain, sample_neural
    from phi4si.analysis.observables import ess_fraction
    from phi4si.analysis.weights import log_weights

    torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="phi4si-exact-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    model = load_model(args.model)
    prior, post = model.target_params(), model.target_params(h=args.h)
    fs = FlowSettings(steps=args.steps, solver=args.solver, divergence=args.divergence, probes=args.probes,
                      period=args.period, batch_size=args.batch_size)
    train_s = float(model.meta.get("wall_time") or 0.0)
    rep = {"label": args.label, "machine": info, "model": str(Path(args.model).resolve()),
           "model_step": model.meta.get("step"), "train_seconds": train_s, "shape": list(model.shape),
           "params": prior.to_dict(), "h": args.h, "flow": fs.to_dict(), "n": args.n, "command": " ".join(sys.argv)}
    print(f"[{args.label}] proposals: {args.n} x {model.shape}, {fs}", flush=True)
    t0 = time.perf_counter()
    prop = sample(model, args.n, fs, seed=args.seed, progress=False)
    t_prop = time.perf_counter() - t0
    rep["seconds_per_proposal"] = t_prop / args.n
    rep["log_q_error_mean"] = float(np.nanmean(prop.log_q_error)) if np.isfinite(prop.log_q_error).any() else None
    base = {"sampler": "neural", "flow": fs.to_dict(), "model": rep["model"]}
    n = args.n
    C = args.imh_chains
    T = n // C
    rng = np.random.default_rng(args.seed + 1)
    ref = _est(phi4si.analyze(args.ref))
    ref_h = _est(phi4si.analyze(args.ref_h)) if args.ref_h else None
    rep["hmc_reference"] = {"prior": ref, "posterior": ref_h}
    for tag, params, truth in (("prior", prior, ref), ("posterior", post, ref_h)):
        lw = log_weights(prop.phi, prop.log_q, params)
        sec = {"ess_fraction": ess_fraction(lw), "log_w_std": float(lw.std())}
        p = work / f"{args.label}_{tag}_raw.h5"
        _write(p, params, prop.phi[None], np.ones((1, n)), np.zeros((1, n)), None, dict(base, method="raw"))
        sec["raw"] = _est(phi4si.analyze(p))
        p = work / f"{args.label}_{tag}_reweight.h5"
        _write(p, params, prop.phi[None], np.ones((1, n)), np.zeros((1, n)), lw[None], dict(base, method="reweight"))
        sec["reweight"] = _est(phi4si.analyze(p))
        idx, acc, dH = imh_chain(lw[:C * T].reshape(C, T), rng)
        chain = prop.phi[:C * T].reshape(C, T, *model.shape)[np.arange(C)[:, None], idx]
        p = work / f"{args.label}_{tag}_imh.h5"
        _write(p, params, chain, acc.astype(float), dH, None, dict(base, method="imh"))
        sec["imh"] = _est(phi4si.analyze(p))
        sec["imh_acceptance"] = float(acc[:, 1:].mean())
        if truth is not None:
            sec["z"] = {m: _z(sec[m], truth) for m in ("raw", "reweight", "imh")}
        rep[tag] = sec
        print(f"[{args.label}] {tag}: ESS/N {sec['ess_fraction']:.3f}, IMH acceptance {sec['imh_acceptance']:.3f}, "
              f"z {json.dumps(sec.get('z'), default=lambda v: round(v, 2))}", flush=True)

    # neural block MH and hybrid (short runs: acceptance and a consistency check)
    for method in ("block", "hybrid"):
        p = work / f"{args.label}_{method}.h5"
        t1 = time.perf_counter()
        hmc = dict(hmc_traj=1, hmc_eps=0.1, hmc_steps=10) if method == "hybrid" else {}  # block: no HMC settings
        s = sample_neural(model, method, p, args.block_sweeps, chains=args.block_chains, fs=fs, block=args.block,
                          updates=1, n_therm=0, seed=args.seed + 2, overwrite=True, **hmc)
        el = time.perf_counter() - t1
        r = _est(phi4si.analyze(p))
        rep[method] = {"summary": s, "estimates": r, "z": _z(r, ref), "seconds": el,
                       "seconds_per_update": el / (args.block_sweeps * args.block_chains)}
        print(f"[{args.label}] {method}: acceptance {s['acceptance_block']:.3f} "
              f"(hmc {s.get('acceptance_hmc')}), {el / (args.block_sweeps * args.block_chains):.3f} s/update",
              flush=True)

    # timed HMC baseline, same process: trajectories for about --hmc-seconds (first a short calibration)
    from phi4si.mcmc.run import sample_mcmc

    cal = work / f"{args.label}_hmc_cal.h5"
    t1 = time.perf_counter()
    sample_mcmc(prior, cal, sampler="hmc", chains=64, n_traj=200, n_therm=100, seed=5, progress=False, overwrite=True)
    per = (time.perf_counter() - t1) / 300
    n_traj = max(200, int(args.hmc_seconds / per))
    hp = work / f"{args.label}_hmc.h5"
    t1 = time.perf_counter()
    sample_mcmc(prior, hp, sampler="hmc", chains=64, n_traj=n_traj, n_therm=200, seed=6, progress=False,
                overwrite=True, every=max(1, n_traj // 2000))
    t_hmc = time.perf_counter() - t1
    hmc = _est(phi4si.analyze(hp))
    rep["hmc_timed"] = {"seconds": t_hmc, "n_traj": n_traj, "chains": 64, "estimates": hmc}
    eff = {}
    for k in ("abs_m", "chi"):
        h_rate = 1.0 / (hmc[k]["error"] ** 2 * t_hmc)
        row = {"hmc": h_rate}
        for m in ("reweight", "imh"):
            e = rep["prior"][m][k]["error"]
            row[m] = 1.0 / (e**2 * t_prop)
            row[m + "_with_training"] = 1.0 / (e**2 * (t_prop + train_s))
            row[m + "_ratio"] = row[m] / h_rate
            row[m + "_with_training_ratio"] = row[m + "_with_training"] / h_rate
        eff[k] = row
    rep["efficiency"] = eff
    print(f"[{args.label}] efficiency (neural / HMC, 1/(err^2 s)): "
          + ", ".join(f"{k}: reweight {v['reweight_ratio']:.3g}, imh {v['imh_ratio']:.3g}" for k, v in eff.items()),
          flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"exact_sampling_{args.label}.json"
    out.write_text(json.dumps(rep, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
