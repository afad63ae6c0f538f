"""The k < 0 posterior bias: where it comes from, measured (issue: the paper's own point at L = 32).

The posterior under an extra coupling k < 0, p_k ~ exp(k sum phi^2) p, is sampled with the prior
model through the reward transform (phi4si.model.posterior) from a start time a0 < 1.  Two candidate
causes of a bias, separated here by one sweep:

* the start: the law of the interpolant at a0, a0 z + (1 - a0) x1 with x1 ~ p_k, is replaced by an
  approximation (``start=noise``: x1 = 0; ``pilot``: a pilot sample).  For k < 0 the transform has
  no singularity at the noise end (rho_r^2 = rho^2 + |A| > 0 for every a), so a0 can be taken as
  close to 1 as one likes: the start error vanishes like (1 - a0) (mean) and (1 - a0)^2 (variance)
  with ``noise``, at no cost in extrapolation (the reach of the transform stays bounded).
* the model: the prior drift evaluated at the transformed time a_r and field x_r.  At a given a the
  transform queries the prior drift at a_r < a (less noise) and a rescaled field; any error of the
  learned drift there enters the posterior samples directly.

For each k: HMC at that k (the truth), then posterior generation with a0 in --a0 (start
``pilot`` at the default a0 = 0.9 as the package does, and ``noise`` starts approaching 1), and
the prior model's own bias at k = 0 for scale; and the model's prior samples tilted exactly by
exp(k sum phi^2) (self-normalised weights): the posterior *of the model's prior law*.  Where the
generated posterior agrees with that tilt but not with HMC, its bias is the prior model's error
(its magnetisation distribution), carried over by the transform, not an error of the transform.  If the bias stays as a0 -> 1 with the start error
gone, it is the model's (the prior drift at the transformed arguments), not the start's.

    python papers/negrel2025/k_bias.py --model l16 --k -0.5 -0.25 --n 2000 --work WORKDIR \\
        --out papers/negrel2025/results/k_bias_l16.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

OBS = ("abs_m", "chi", "binder", "xi2", "s")


def hmc(params, path, seed):
    from phi4si.analysis.report import analyze_file
    from phi4si.mcmc.run import sample_mcmc

    if not Path(path).exists():
        sample_mcmc(params, path, chains=64, n_traj=20000, n_therm=1000, every=20, seed=seed, progress=False,
                    dtype="float32")
    r = analyze_file(path)
    return {k: (float(r[k]["value"]), float(r[k]["error"])) for k in OBS}


def measure(phi, params, log_w=None):
    from phi4si.analysis.observables import analyze_configs

    r = analyze_configs(phi, params, log_w=log_w)
    return {k: (float(r[k].value), float(r[k].error)) for k in OBS}


def compare(gen, ref):
    return {k: {"gen": g[0], "gen_err": g[1], "ref": ref[k][0], "ref_err": ref[k][1], "rel_dev": g[0] / ref[k][0] - 1,
                "z": (g[0] - ref[k][0]) / float(np.hypot(g[1], ref[k][1]))} for k, g in gen.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--k", type=float, nargs="+", default=[-0.5, -0.25])
    ap.add_argument("--a0", nargs="+", default=["0.9:pilot", "0.9:noise", "0.99:noise", "0.999:noise"],
                    metavar="A0:START")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-tilt", type=int, default=8000, help="prior model samples tilted by exp(k sum phi^2)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--solver", default="ab3")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", required=True, help="folder for the HMC ensembles (reused)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from phi4si.model import load_model
    from phi4si.model.generate import generate, sample_posterior

    model = load_model(args.model)
    L = model.shape[0]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    prior = model.target_params()
    ref0 = hmc(prior, work / f"hmc_l{L}_k0.h5", seed=40)
    prior_phi = generate(model, args.n_tilt, steps=args.steps, solver=args.solver, seed=args.seed + 7)
    rows.append({"k": 0.0, "a0": None, "start": None, "observables": compare(measure(prior_phi, prior), ref0)})
    print("k = 0 (prior): " + ", ".join(f"{o} {v['rel_dev']:+.3f} (z {v['z']:+.1f})"
                                         for o, v in rows[-1]["observables"].items()), flush=True)
    for i, k in enumerate(args.k):
        params = model.target_params(k=k)
        ref = hmc(params, work / f"hmc_l{L}_k{k:g}.h5", seed=41 + i)
        # the model's own prior law tilted exactly by exp(k sum phi^2): what the posterior of the model is
        log_w = k * (prior_phi.astype(np.float64) ** 2).reshape(len(prior_phi), -1).sum(1)
        w = np.exp(log_w - log_w.max())
        obs = compare(measure(prior_phi, params, log_w=log_w), ref)
        rows.append({"k": k, "a0": None, "start": "tilt of the model's prior samples",
                     "ess_fraction": float(w.sum() ** 2 / (len(w) * (w ** 2).sum())), "observables": obs})
        print(f"k = {k:g} model prior tilted by exp(k sum phi^2) (ESS/N {rows[-1]['ess_fraction']:.2f}): "
              + ", ".join(f"{o} {v['rel_dev']:+.3f} (z {v['z']:+.1f})" for o, v in obs.items()), flush=True)
        for spec in args.a0:
            a0, _, start = spec.partition(":")
            t0 = time.perf_counter()
            phi = sample_posterior(model, args.n, k=k, a0=float(a0), start=start or "pilot", steps=args.steps,
                                   solver=args.solver, seed=args.seed)
            obs = compare(measure(phi, params), ref)
            rows.append({"k": k, "a0": float(a0), "start": start or "pilot", "seconds": time.perf_counter() - t0,
                         "observables": obs})
            print(f"k = {k:g} a0 = {a0} {start}: " + ", ".join(f"{o} {v['rel_dev']:+.3f} (z {v['z']:+.1f})"
                                                            for o, v in obs.items()), flush=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "shape": list(model.shape), "n": args.n,
                                          "solver": args.solver, "steps": args.steps, "rows": rows,
                                          "command": " ".join(sys.argv)}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
