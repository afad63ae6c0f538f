#!/usr/bin/env python
"""Accuracy and cost of the model log-density log q for the settings exact sampling can use.

On ``--n`` generated configurations (same noise for every setting) the reference is RK4 with
``--ref-steps`` steps and the exact divergence; every other setting is compared with it by the
standard deviation and the mean of the difference in log q (a constant shift cancels in
self-normalised weights, the spread does not) and timed in the same process:

* ODE discretisation with the exact trace: RK4 5, Heun 10, Heun 20; RK4 5 with the divergence at
  2 Gauss points per step (``quadrature="gauss2"``, :mod:`phi4si.interpolant.likelihood`);
* divergence estimators with RK4 ``--ref-steps``: colored (period 2, 3, 4; 1 and 2 draws) and plain
  Hutchinson (1, 4, 16 probes) (left out with ``--ode-only``);
* ``--optimise SOLVER:STEPS ...``: those settings on a time grid optimised for the model's generation
  (:func:`phi4si.model.schedule.optimise_grid`, 64 pilot samples of other noise), exact trace, with
  the stage quadrature and with gauss2.

The spread of the importance log-weights log w = -S - log q on the same samples is printed for
scale.  Writes results/log_density_accuracy_LABEL.json.

    python benchmarks/log_density_accuracy.py --model l8.pt --label l8 --n 64
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--ref-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--optimise", nargs="*", default=[], metavar="SOLVER:STEPS",
                    help="add these settings on an optimised time grid (phi4si.model.schedule.optimise_grid of the "
                         "generation task, 64 pilot samples of other noise), with the exact trace")
    ap.add_argument("--ode-only", action="store_true", help="leave out the divergence estimators")
    args = ap.parse_args(argv)

    import torch

    from phi4si.interpolant.likelihood import flow_log_density
    from phi4si.interpolant.paths import GenerationPath
    from phi4si.model import load_model
    from phi4si.analysis.weights import log_weights

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    drift, path = model.drift(), GenerationPath(model.shape)
    z = torch.randn(args.n, 1, *model.shape, generator=torch.Generator().manual_seed(args.seed))

    def run(**kw):
        t = time.perf_counter()
        r = flow_log_density(drift, path, z, max_batch=512, generator=torch.Generator().manual_seed(args.seed + 1),
                             **kw)
        return r, time.perf_counter() - t

    ref, t_ref = run(steps=args.ref_steps, method="rk4")
    phi = model.to_physical(ref.x.double())[:, 0].numpy()
    lw = log_weights(phi, ref.log_q.double().numpy() - np.prod(model.shape) * np.log(model.scale),
                     model.target_params())
    rows = [{"setting": f"rk4 {args.ref_steps}, exact (reference)", "seconds": t_ref}]
    settings = [("rk4 5, exact", dict(steps=5, method="rk4")),
                ("heun 10, exact", dict(steps=10, method="heun")),
                ("heun 20, exact", dict(steps=20, method="heun")),
                ("rk4 5, exact, gauss2", dict(steps=5, method="rk4", quadrature="gauss2"))]
    for spec in args.optimise:
        from phi4si.model.schedule import optimise_grid

        solver, steps = spec.split(":")
        g = optimise_grid(model, int(steps), solver, pilot=64, seed=args.seed + 100, ref_steps=64)
        for q in ("stages", "gauss2"):
            settings.append((f"{solver} {steps} optimised grid, exact" + ("" if q == "stages" else f", {q}"),
                             dict(steps=int(steps), method=solver, grid_power=tuple(g["grid"]), quadrature=q)))
    for per, R in () if args.ode_only else ((2, 1), (3, 1), (4, 1), (4, 2)):
        settings.append((f"rk4 {args.ref_steps}, colored period {per} x {R}",
                         dict(steps=args.ref_steps, method="rk4", divergence_method="colored", period=per, probes=R)))
    for P in () if args.ode_only else (1, 4, 16):
        settings.append((f"rk4 {args.ref_steps}, hutchinson {P}",
                         dict(steps=args.ref_steps, method="rk4", divergence_method="hutchinson", probes=P)))
    for name, kw in settings:
        r, t = run(**kw)
        d = (r.log_q - ref.log_q).double().numpy()
        err = r.div_error.double().numpy()
        rows.append({"setting": name, "seconds": t, "cost_vs_reference": t / t_ref, "dlogq_std": float(d.std()),
                     "dlogq_mean": float(d.mean()), "max_dx": float((r.x - ref.x).abs().max()),
                     "reported_error_mean": float(err.mean()) if np.isfinite(err).all() else None})
        print(f"{name:40s} {t:7.1f} s  std {d.std():.4f}  mean {d.mean():+.4f}", flush=True)
    rep = {"label": args.label, "model": str(Path(args.model).resolve()), "n": args.n, "shape": list(model.shape),
           "log_w_std": float(lw.std()), "rows": rows, "machine": machine_info(), "command": " ".join(sys.argv)}
    print(f"spread of log w on these samples: {lw.std():.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"log_density_accuracy_{args.label}.json"
    out.write_text(json.dumps(rep, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
