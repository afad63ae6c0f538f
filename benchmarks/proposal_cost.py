#!/usr/bin/env python
"""Seconds per exact-sampling proposal (a configuration with its log q) at the same ESS/N, for
several models and log-density settings measured in one run (issue 14, "cheaper log q").

Each ``--run LABEL:SOLVER:STEPS[:GRID][:z2=MODE][:q=QUADRATURE][:period=P]`` draws ``--n``
proposals of the model ``--model LABEL=PATH`` with :func:`phi4si.model.density.sample` (colored
divergence with one probe, the default of ``sample-neural``; GRID ``1``, ``pP`` or ``opt``: a
generation grid optimised here on 64 pilot samples of other noise; MODE: the random global sign of
:mod:`phi4si.model.z2`, default auto; QUADRATURE of the divergence integral, default stages (see
:mod:`phi4si.interpolant.likelihood`); P the colouring period, default 4) and reports

* seconds per proposal (wall time, ``--threads`` torch threads, after a warm-up), network
  evaluations per proposal (configurations through the network: probes and stages included);
* the importance weights' ESS/N = (sum w)^2 / (N sum w^2), w = exp(-S - log q), with a bootstrap
  error, and the spread of log w;
* against the baseline (the first run, or ``--baseline``): the speed-up per proposal, and
  ``same_ess`` (ESS/N at least the baseline's minus twice the error of the difference).

    python benchmarks/proposal_cost.py --model base=l16.pt --model new=l16_one_pass.pt \\
        --run base:rk4:10 --run new:rk4:3:opt:z2=none --run new:rk4:3:opt:q=gauss2 --out proposal_cost_l16.json

Writes ``benchmarks/results/<--out>`` and prints the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from generation_speed import RUN_OPTIONS, grid_of, setup  # noqa: E402

OPTIONS = {**RUN_OPTIONS, "q": "stages", "period": "4"}


class Evaluations:
    """Counts the network's evaluations of single configurations (the batch size of every forward call)."""

    def __init__(self, net):
        self.samples = 0
        self.handle = net.register_forward_hook(self._hook)

    def _hook(self, _module, inputs, _output):
        self.samples += int(inputs[0].shape[0])


def ess_fraction(log_w, boot: int = 400, seed: int = 0):
    """ESS/N of self-normalised weights and its bootstrap standard error."""
    def frac(lw):
        w = np.exp(lw - lw.max())
        return float(w.sum() ** 2 / (len(w) * (w * w).sum()))

    rng = np.random.default_rng(seed)
    b = [frac(log_w[rng.integers(0, len(log_w), len(log_w))]) for _ in range(boot)]
    return frac(log_w), float(np.std(b, ddof=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--run", action="append", required=True,
                    metavar="LABEL:SOLVER:STEPS[:GRID][:z2=MODE][:q=QUADRATURE][:period=P]")
    ap.add_argument("--baseline", default=None)
    ap.add_argument("--n", type=int, default=384)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:i")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from phi4si.lattice import action
    from phi4si.model.density import FlowSettings, sample
    from phi4si.model.z2 import applied

    info, models, paths, runs, base_spec = setup(ap, args, OPTIONS)
    rows = []
    for run in runs:
        model = models[run["label"]]
        params = model.target_params()
        grid, grid_rec = grid_of(run, model, args.seed)
        fs = FlowSettings(steps=run["steps"], solver=run["solver"], grid_power=grid, batch_size=args.batch,
                          z2=run["z2"], quadrature=run["q"], period=int(run["period"]))
        sample(model, 4, FlowSettings(steps=1, solver=run["solver"], batch_size=4, z2=run["z2"]), seed=1)   # warm-up
        counter = Evaluations(model.net)
        t0 = time.perf_counter()
        prop = sample(model, args.n, fs, seed=args.seed)
        wall = time.perf_counter() - t0
        counter.handle.remove()
        log_w = -action(prop.phi, params) - prop.log_q
        ess, ess_err = ess_fraction(log_w)
        row = {**run, "grid": grid_rec, "model": paths[run["label"]],
               "z2_applied": applied(model, run["z2"]),
               "seconds": wall, "s_per_proposal": wall / args.n, "nfe_per_proposal": counter.samples / args.n,
               "ess_fraction": ess, "ess_fraction_err": ess_err, "log_w_std": float(np.std(log_w)),
               "log_q_noise_mean": float(np.mean(prop.log_q_error))}
        rows.append(row)
        print(f"{run['spec']:28s} {row['s_per_proposal']:7.3f} s/proposal {row['nfe_per_proposal']:7.1f} NFE  "
              f"ESS/N {ess:.3f}({ess_err:.3f})  std log w {row['log_w_std']:.2f}", flush=True)
    base = next(r for r in rows if r["spec"] == base_spec)
    print(f"\nagainst the baseline {base_spec} ({base['s_per_proposal']:.3f} s per proposal, ESS/N "
          f"{base['ess_fraction']:.3f}):")
    for row in rows:
        row["speedup"] = base["s_per_proposal"] / row["s_per_proposal"]
        row["same_ess"] = bool(row["ess_fraction"] >= base["ess_fraction"]
                               - 2 * float(np.hypot(row["ess_fraction_err"], base["ess_fraction_err"])))
        row["ess_per_second_ratio"] = (row["ess_fraction"] / row["s_per_proposal"]) / \
            (base["ess_fraction"] / base["s_per_proposal"])
        print(f"  {row['spec']:28s} {row['speedup']:6.2f}x fewer seconds per proposal, ESS/N "
              f"{'the same within errors or higher' if row['same_ess'] else 'lower'}; "
              f"{row['ess_per_second_ratio']:.2f}x the effective samples per second")
    info["loadavg_end"] = list(os.getloadavg())
    path = save(args.out, {"benchmark": "proposal_cost", "machine": info, "n": args.n, "batch": args.batch,
                           "seed": args.seed, "threads": args.threads, "baseline": base_spec, "models": paths,
                           "rows": rows, "command": " ".join(sys.argv)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
