"""``phi4si demo``: a small HMC run (8x8, m2=-4, lam=8), its analysis table and its plots."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import Phi4siError
from .options import integer_at_least

__all__ = ["add_parsers", "cmd_demo"]


def add_parsers(sub):
    d = sub.add_parser("demo", help="a small HMC run (8x8, m2=-4, lam=8), its analysis and plots")
    d.add_argument("--out", default="phi4si-demo", help="output directory (default ./phi4si-demo)")
    d.add_argument("--n-traj", type=integer_at_least(10), default=500)
    d.set_defaults(func=cmd_demo)


def cmd_demo(args, argv):
    from ..analysis.plot import plot_ensemble
    from ..analysis.report import analyze_file, format_table
    from ..lattice.params import Phi4Params
    from ..mcmc.run import sample_mcmc

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise Phi4siError(f"demo output {out} exists and is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "hmc_8x8.h5"
    params = Phi4Params((8, 8), m2=-4.0, lam=8.0)
    print(f"HMC on 8x8 phi^4 (m2=-4, lam=8): 8 chains x {args.n_traj} trajectories -> {path}", file=sys.stderr)
    sample_mcmc(params, path, sampler="hmc", chains=8, n_traj=args.n_traj, n_therm=100, every=5, seed=1,
                overwrite=True, command="phi4si demo")
    print(format_table(analyze_file(path)))
    for p in plot_ensemble(path, out):
        print(f"plot: {p}")
