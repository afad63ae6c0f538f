"""``phi4si demo``: the paper's method end to end on 8x8 against HMC (:mod:`phi4si.demo`)."""

from __future__ import annotations

import sys

from .options import add_progress_flags, integer_at_least, positive_float

__all__ = ["add_parsers", "cmd_demo"]


def add_parsers(sub):
    d = sub.add_parser("demo", help="the paper's method on 8x8 in ~2 minutes: HMC, one model's tasks and posterior, "
                                    "exact reweighting, a table against HMC and a report",
                       description="HMC ground truth at h = 0 and h = 0.01 ... 0.1; the shipped 8x8 model (or one "
                                   "trained with --train): generation, inpainting, sequential generation, the "
                                   "posterior under h without retraining; exact reweighting and independence "
                                   "Metropolis; one table of every estimate beside HMC's, and OUT/report.md.")
    d.add_argument("--out", default="phi4si-demo", help="output directory (default ./phi4si-demo)")
    d.add_argument("--model", default="l8", help="shipped model name or checkpoint (8x8, m2=-4, lam=8; default l8)")
    d.add_argument("--train", action="store_true", help="train a small model first (--train-minutes) and use it")
    d.add_argument("--train-minutes", type=positive_float, default=4.0, help="training time with --train (default 4)")
    d.add_argument("--n", type=integer_at_least(8), default=2000, help="raw samples per task (default 2000)")
    d.add_argument("--n-exact", type=integer_at_least(8), default=384, help="proposals per exact run (default 384)")
    d.add_argument("--n-traj", type=integer_at_least(8), default=20000, help="HMC trajectories per chain (default 20000)")
    d.add_argument("--seed", type=integer_at_least(0), default=0)
    d.add_argument("--threads", type=integer_at_least(1), default=1, help="torch threads (default 1: small models)")
    add_progress_flags(d)
    d.set_defaults(func=cmd_demo)


def cmd_demo(args, argv):
    import torch

    from ..demo import DemoSettings, run_demo
    from ..errors import Phi4siError

    if args.train and args.model != "l8":
        raise Phi4siError("--train trains its own model; --model does not apply with it")
    torch.set_num_threads(args.threads)
    st = DemoSettings(model=args.model, train=args.train, train_minutes=args.train_minutes, n=args.n,
                      n_exact=args.n_exact, n_traj=args.n_traj, seed=args.seed, progress=args.progress)
    doc = run_demo(args.out, st)
    print(doc["table"])
    print(f"wrote {doc['report']} (table, figures and how to read them) and the ensembles in {args.out}",
          file=sys.stderr)
