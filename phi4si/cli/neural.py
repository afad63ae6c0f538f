"""``phi4si sample-neural``: exact sampling with a trained lattice model (importance weights,
independence Metropolis, neural block updates, hybrid with HMC; :func:`phi4si.model.exact.sample_neural`).

What stays here is what only a command line has: flags of ``--proposal posterior`` without it, a
``--path`` file beside ``--steps``/``--solver``, the quadrature a resumed file was written with, and
the run under ``torchrun`` (reweight and imh share their proposal batches among the processes, see
:mod:`phi4si.model.ranks`).
"""

from __future__ import annotations

import sys

from .model import model_file, posterior_settings, z2_record
from .options import (DTYPES, QUADRATURES, SOLVERS, add_progress_flags, add_z2_flag, block_size, command_line, device,
                      finite_float, flag_terms, given, integer, integer_at_least, load_model, positive_float,
                      posterior_start)

__all__ = ["add_parsers", "cmd_sample_neural"]

NEURAL_KEYWORDS = ("n", "chains", "steps", "solver", "divergence", "probes", "period", "batch_size", "max_batch",
                   "block", "window", "updates", "hmc_traj", "hmc_eps", "hmc_steps", "n_therm", "seed", "method", "z2",
                   "quadrature")


def add_parsers(sub):
    _add_sample_neural_parser(sub)


def _add_sample_neural_parser(sub):
    nm = sub.add_parser("sample-neural", help="exact sampling with a trained model: importance weights, independence "
                                              "Metropolis, neural block updates, hybrid with HMC",
                        epilog="reweight: N model samples with log-weights (analyze uses them); imh: CHAINS chains "
                               "of N steps through model proposals; block/hybrid: CHAINS chains of N sweeps, each "
                               "sweep regenerating --updates random blocks by inpainting (hybrid adds --hmc-traj "
                               "HMC trajectories). The target is exp(-S) with the training data's m2, lam plus the "
                               "rewards --h, --k. log q comes from the ODE with its divergence: colored (the "
                               "default: --probes x --period^d network passes per evaluation), exact (autograd, ~one "
                               "pass per moving site) or hutchinson (--probes passes); --quadrature says where along "
                               "each step it is evaluated")
    nm.add_argument("--model", required=True, help="model checkpoint written by phi4si train")
    nm.add_argument("--method", required=True, choices=("reweight", "imh", "block", "hybrid"))
    nm.add_argument("--n", type=integer, required=True,
                    help="samples (reweight), steps per chain (imh) or sweeps per chain (block, hybrid)")
    nm.add_argument("--out", required=True, help="output HDF5 ensemble file")
    nm.add_argument("--h", type=finite_float, default=0.0, help="applied field (reward b = h 1; default 0)")
    nm.add_argument("--k", type=finite_float, default=0.0, help="extra coupling (reward A = 2k Id; default 0)")
    nm.add_argument("--proposal", choices=("prior", "posterior"), default="prior",
                    help="reweight/imh proposals: the model (prior, default) or its posterior drift under --h/--k "
                         "(reward transform; keeps the ESS up when the posterior sits in the prior's tail)")
    nm.add_argument("--a0", type=finite_float, default=None, help="--proposal posterior: start time (default as phi4si posterior)")
    nm.add_argument("--start", type=posterior_start, default=None,
                    help="--proposal posterior: start mean pilot (default), noise or a number")
    nm.add_argument("--pilot", type=integer, default=None, help="--proposal posterior: pilot-run size (default as phi4si posterior)")
    nm.add_argument("--pilot-rounds", type=integer, default=None, help="--proposal posterior: pilot runs (default as phi4si posterior)")
    nm.add_argument("--chains", type=integer, default=1, help="independent chains (imh, block, hybrid; default 1)")
    nm.add_argument("--steps", type=integer, default=10, help="ODE steps of the log-density flow (default 10)")
    nm.add_argument("--solver", choices=SOLVERS, default="rk4", help="ODE solver (default rk4)")
    nm.add_argument("--divergence", choices=("colored", "exact", "hutchinson"), default="colored",
                    help="divergence of the velocity: colored (default; Rademacher probes split by a lattice "
                         "colouring of period --period), exact (autograd trace) or hutchinson")
    nm.add_argument("--probes", type=integer, default=None,
                    help="probe draws per step (colored, hutchinson; default 1; >= 2 gives an error estimate)")
    nm.add_argument("--period", type=integer, default=None, help="colouring period of --divergence colored (default 4)")
    nm.add_argument("--quadrature", choices=QUADRATURES, default=None,
                    help="where the divergence is taken: at 2 (gauss2, the default) or 1 (gauss1) Gauss points per "
                         "step on the trajectory's Hermite interpolant, or at every solver stage (stages, the default "
                         "before 2026-12); the same configurations; gauss2 has RK4's order at half its divergence "
                         "evaluations")
    nm.add_argument("--path", default=None, metavar="FILE",
                    help="an optimised time grid for the flow (phi4si optimize-path --task generate with an RK "
                         "solver); its solver and steps replace --solver and --steps")
    nm.add_argument("--float64", action="store_true", help="integrate the flow in double precision")
    nm.add_argument("--block", type=block_size, default=None, metavar="B",
                    help="block size of block/hybrid updates (B or BxC; default 4)")
    nm.add_argument("--shape", type=integer_at_least(2), nargs="+", default=None, help="lattice (default the model's)")
    nm.add_argument("--window", type=block_size, default=None, metavar="W",
                    help="run each block's conditional flow on a W (or WxV) window around it: exact for any "
                         "window, the cost of the window at any volume (block, hybrid; default the whole lattice)")
    nm.add_argument("--updates", type=integer, default=None, help="block updates per sweep (default 1)")
    nm.add_argument("--hmc-traj", type=integer, default=None, help="HMC trajectories per hybrid sweep (default 1)")
    nm.add_argument("--hmc-eps", type=positive_float, default=None, help="HMC step size (default 0.1)")
    nm.add_argument("--hmc-steps", type=integer, default=None, help="HMC leapfrog steps (default 10)")
    nm.add_argument("--n-therm", type=integer, default=None, help="discarded sweeps (block, hybrid; default 0)")
    nm.add_argument("--seed", type=integer, default=0, help="random seed (default 0)")
    nm.add_argument("--batch-size", type=integer, default=256, help="configurations per flow batch (default 256)")
    nm.add_argument("--max-batch", type=integer, default=512,
                    help="network batch of the divergence's copies (default 512)")
    add_z2_flag(nm)
    nm.add_argument("--dtype", choices=DTYPES, default="float32", help="storage dtype")
    nm.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda or cuda:N")
    nm.add_argument("--threads", type=integer_at_least(1), default=None, help="torch CPU threads")
    nm.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    nm.add_argument("--resume", action="store_true",
                    help="continue --out (written in chunks with its random state) up to --n; same settings")
    add_progress_flags(nm)
    nm.set_defaults(func=cmd_sample_neural)


def _proposal(args):
    """The Posterior of ``--proposal posterior`` (None for the prior); its flags without it are refused."""
    from ..errors import ParameterError

    if args.proposal == "posterior":
        if args.h == 0 and args.k == 0:
            raise ParameterError("--proposal posterior needs a reward: --h and/or --k")
        return posterior_settings(args, args.h, args.k)
    for flag in ("a0", "start", "pilot", "pilot_rounds"):
        if getattr(args, flag) is not None:
            raise ParameterError(f"--{flag.replace('_', '-')} applies to --proposal posterior only")
    return None


def _neural_terms():
    return flag_terms(*NEURAL_KEYWORDS, posterior="--proposal posterior")


def _neural_path(args) -> dict:
    """steps, solver and grid of the log-density flow from ``--path FILE`` (a generation grid, RK solver)."""
    from ..errors import ParameterError
    from ..interpolant.integrate import SOLVERS
    from ..model.schedule import read_path_file

    if args.steps != 10 or args.solver != "rk4":
        raise ParameterError("--steps and --solver do not apply with --path (the path file fixes them)")
    doc = read_path_file(args.path, task="generate")
    if doc["solver"] not in SOLVERS:
        raise ParameterError(f"{args.path} is a grid for {doc['solver']!r}; the log-density flow integrates with "
                             f"a Runge-Kutta solver ({', '.join(SOLVERS)}): optimise one with --solver rk4")
    return {"steps": int(doc["steps"]), "solver": doc["solver"], "grid_power": tuple(doc["grid"])}


def _quadrature(args) -> str:
    """--quadrature, else on --resume the file's own (an older file's: density.LEGACY_FLOW), else the default."""
    from ..model.density import FlowSettings, recorded_flow

    flow = recorded_flow(args.out) if args.resume and args.quadrature is None else None
    return args.quadrature or (flow or {}).get("quadrature") or FlowSettings.quadrature


def cmd_sample_neural(args, argv):
    from ..io import prepare_output
    from ..model.density import FlowSettings
    from ..model.device import set_threads
    from ..model.exact import sample_neural

    proposal = _proposal(args)
    flow = {"steps": args.steps, "solver": args.solver}
    if args.path is not None:
        flow = _neural_path(args)
    with _neural_terms():
        fs = FlowSettings(**flow, divergence=args.divergence, float64=args.float64, batch_size=args.batch_size,
                          max_batch=args.max_batch, z2=args.z2,
                          **given(args, "probes", "period"), quadrature=_quadrature(args))
    out = prepare_output(args.out, args.overwrite, resume=args.resume, what="--out")
    from ..model.ranks import current

    ranks = current(args.device, "phi4si sample-neural")   # (first: under torchrun on CUDA, this rank's GPU)
    model = load_model(args.model, args.device)
    z2_record(args, model, proposal, NEURAL_KEYWORDS)     # a refused --z2 before anything runs
    set_threads(args.threads)
    with _neural_terms():
        summary = sample_neural(model, args.method, out, args.n, h=args.h, k=args.k, chains=args.chains, fs=fs,
                                seed=args.seed, posterior=proposal, dtype=args.dtype, overwrite=args.overwrite,
                                resume=args.resume, progress=args.progress,
                                model_path=model_file(args.model), command=command_line(argv), ranks=ranks,
                                **given(args, "block", "window", "updates", "hmc_traj", "hmc_eps", "hmc_steps", "n_therm", "shape"))
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()
             if k != "method" and v is not None] + ([f"{ranks.world} processes"] if ranks.world > 1 else [])
    if ranks.leader:
        print(f"wrote {out} ({args.method}: {', '.join(parts)})", file=sys.stderr)
    ranks.close()
