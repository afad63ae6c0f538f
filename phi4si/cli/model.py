"""``phi4si train``, ``generate``, ``inpaint``, ``posterior`` and ``superres``: the trained lattice model and its
tasks (its exact samplers, ``sample-neural``, are :mod:`~phi4si.cli.neural`).

The commands parse and print; :mod:`phi4si.model` validates (settings, orders, blocks, methods).
What stays here is what only a command line has: flags that the chosen sub-mode would ignore
(``--block`` without ``--order``, ``--solver`` with ``--sde`` > 0), the choice between generation and sequential generation, the reading of the input
file and the output's record of the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .options import (DTYPES, GENERATE_DEFAULTS, ODE_SOLVERS, add_posterior_flags, add_run_flags, add_task_flags,
                      add_train_flags, check_out, command_line, flag_terms, given, integer, integer_at_least,
                      load_model)
from .training import check_train_flags, run_training

__all__ = ["add_parsers", "cmd_train", "cmd_generate", "cmd_inpaint", "cmd_posterior", "cmd_superres", "posterior_settings",
           "model_file", "z2_record"]

# the library keywords of the task commands' flags, for refusals said in flag terms
TASK_KEYWORDS = ("n", "steps", "sde", "seed", "batch_size", "order", "block", "levels", "z2")


def add_parsers(sub):
    _add_train_parser(sub)
    _add_task_parsers(sub)


def _add_train_parser(sub):
    t = sub.add_parser("train", help="train a multitask interpolant on an ensemble (model checkpoint .pt)",
                       epilog="--steps and --minutes may both be given (training stops at the first); with "
                              "neither, 2000 steps (with --resume: the checkpoint's own limit). --resume continues "
                              "--out bit-exactly (CPU, --steps): repeat the original command with --resume added "
                              "(--steps/--minutes, --device, --threads may change)")
    t.add_argument("--data", required=True, help="training ensemble (HDF5 file of sample-mcmc)")
    t.add_argument("--reference", default=None, metavar="FILE",
                   help="an ensemble of the training couplings (e.g. an independent HMC run): at each validation "
                        "the EMA model's samples are compared with it (phi4si compare: <|m|>, chi, U4, xi_2, <S>/V, "
                        "<phi^2>, <phi^4>, G(p), the m histogram) and the result logged under 'reference'")
    t.add_argument("--reference-n", type=integer_at_least(8), default=256,
                   help="samples generated for each --reference comparison (default 256)")
    t.add_argument("--family", choices=("hadamard", "haar", "fourier"), default="hadamard",
                   help="operator family: hadamard (per-site time, default), haar (wavelet coordinates, block "
                        "averages pinned: super-resolution and coarse-to-fine generation, phi4si.tasks.superres) or "
                        "fourier (a time per momentum: generation from low to high momenta, --measure momenta)")
    add_train_flags(t, init=True)
    t.set_defaults(func=cmd_train)


def _add_task_parsers(sub):
    g = sub.add_parser("generate", help="samples of a trained model, written as an ensemble file",
                       epilog="the output is an ensemble file (one chain, one 'trajectory' per sample) that "
                              "analyze and plot read; it records the model, the solver settings and the seed")
    g.add_argument("--n", type=integer, required=True, help="number of configurations")
    g.add_argument("--shape", type=integer_at_least(2), nargs="+", default=None,
                   help="lattice sides (default: the training lattice)")
    g.add_argument("--dtype", choices=DTYPES, default="float32", help="storage dtype (default float32)")
    add_task_flags(g, "generate")
    add_posterior_flags(g)
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("inpaint", help="complete the masked sites of configurations from an ensemble file",
                       epilog="mask: block:RxC@I,J (periodic block at I,J), random:FRACTION (drawn with --seed) or "
                              "FILE.npy (boolean array of the lattice shape); True/1 = unknown, to be generated. "
                              "Observed sites are copied bit for bit (keep --dtype at the data's)")
    i.add_argument("--data", required=True, help="ensemble file whose configurations are completed")
    i.add_argument("--mask", required=True, help="unknown sites: block:RxC@I,J | random:FRACTION | FILE.npy")
    i.add_argument("--n", type=integer, default=None,
                   help="use the first N configurations (chain 0 first, then chain 1, ...; default all)")
    i.add_argument("--dtype", choices=DTYPES, default=None, help="storage dtype (default: the data's)")
    add_task_flags(i, "inpaint")
    add_posterior_flags(i)
    i.set_defaults(func=cmd_inpaint)

    q = sub.add_parser("posterior", help="posterior samples under a field h and/or coupling k with a prior model "
                                         "(reward transform, no retraining)",
                       epilog="without --data: generation (or sequential generation with --order); with --data and "
                              "--mask: posterior inpainting of those configurations. The posterior path starts at "
                              "a0 < 1 from a0 z + (1 - a0) m, m the start mean. The output records the posterior's "
                              "couplings (h, k), so analyze and sample-mcmc comparisons use the same action")
    q.add_argument("--n", type=integer, default=None, help="number of configurations (with --data: the first N)")
    q.add_argument("--shape", type=integer_at_least(2), nargs="+", default=None,
                   help="lattice sides (default: the training lattice)")
    q.add_argument("--data", default=None, help="ensemble file to inpaint under the posterior (needs --mask)")
    q.add_argument("--mask", default=None, help="unknown sites for --data: block:RxC@I,J | random:FRACTION | FILE.npy")
    q.add_argument("--dtype", choices=DTYPES, default=None, help="storage dtype (default float32)")
    add_task_flags(q, "generate")
    add_posterior_flags(q)
    q.set_defaults(func=cmd_posterior)

    r = sub.add_parser("superres", help="fine configurations given block-averaged ones, with a model of the Haar family "
                                        "(super-resolution: the inverse of a blocking step)",
                       epilog="--data holds the coarse configurations (the fine lattice is --factor times larger); with "
                              "--fine it holds fine ones, blocked by --factor first (a check of the model against the "
                              "data the blocks came from). The block averages of every output equal the input to "
                              "round-off. Train the model with phi4si train --family haar (--measure scales)")
    r.add_argument("--model", required=True, help="model checkpoint of the Haar family (phi4si train --family haar)")
    r.add_argument("--data", required=True, help="ensemble file of coarse configurations (fine ones with --fine)")
    r.add_argument("--factor", type=integer, required=True, metavar="B", help="block side: 2, 4, ... (a power of two "
                   "up to 2^levels of the model's family)")
    r.add_argument("--fine", action="store_true", help="--data holds fine configurations: block them by --factor first")
    r.add_argument("--scale-by-scale", action="store_true",
                   help="the details level by level, coarsest first (--steps per level), instead of all at once")
    r.add_argument("--n", type=integer, default=None,
                   help="use the first N configurations (chain 0 first, then chain 1, ...; default all)")
    r.add_argument("--out", required=True, help="output HDF5 ensemble file")
    r.add_argument("--steps", type=integer, default=20, help="integration steps (per level with --scale-by-scale; "
                                                             "default 20)")
    r.add_argument("--solver", choices=ODE_SOLVERS, default="heun", help="ODE solver (default heun)")
    r.add_argument("--dtype", choices=DTYPES, default="float32", help="storage dtype (default float32)")
    add_run_flags(r, "continue --out up to the input's count; same settings")
    r.set_defaults(func=cmd_superres)


# ------------------------------------------------------------------------------------------------ train
def cmd_train(args, argv):
    from ..errors import EnsembleFileError

    check_train_flags(args)
    for flag, path in (("--data", args.data), ("--reference", args.reference)):
        if path is not None and not Path(path).exists():
            raise EnsembleFileError(f"{flag} {path}: no such file")
    run_training(args.data, args, argv)


# ------------------------------------------------------------------------------------------------ posterior flags
def _posterior(args, required=False):
    """The Posterior of the reward flags, or None (prior) when no reward flag is given."""
    from ..errors import ParameterError

    given_flags = [f for f in ("h", "k", "a0", "start", "pilot", "pilot_rounds") if getattr(args, f, None) is not None]
    if not given_flags:
        if required:
            raise ParameterError("give a reward: --h and/or --k (the prior is `phi4si generate`)")
        return None
    if args.h is None and args.k is None:
        raise ParameterError(f"{', '.join('--' + f.replace('_', '-') for f in given_flags)} need a reward: "
                             "--h and/or --k")
    return posterior_settings(args, args.h or 0.0, args.k or 0.0)


def posterior_settings(args, h, k):
    from ..errors import ParameterError
    from ..model.posterior import Posterior

    for flag in ("pilot", "pilot_rounds"):
        if getattr(args, flag) is not None and args.start not in (None, "pilot"):
            raise ParameterError(f"--{flag.replace('_', '-')} applies to --start pilot only")
    given = {"pilot": args.pilot, "rounds": args.pilot_rounds}
    return Posterior(h=h, k=k, a0=args.a0, start="pilot" if args.start is None else args.start,
                     **{key: v for key, v in given.items() if v is not None})


def _posterior_record(post, model) -> dict:
    if post is None:
        return {}
    return {"posterior": {**post.describe(), "a0": post.start_time(model)}}


def _output_params(model, shape, post=None):
    """The output's couplings: the model's training data's, with the posterior's h, k when sampling one
    (whose start time is checked here, against the feasibility bound of k > 0, before any work)."""
    from ..lattice.params import Phi4Params

    params = Phi4Params.from_dict({**model.lattice["params"], "shape": list(shape)})
    if post is None:
        return params
    post.start_time(model)
    return params.with_rewards(h=post.h, k=post.k)


# ------------------------------------------------------------------------------------------------ generate, inpaint
def model_file(model_arg) -> str:
    """The model file a --model argument names (a path, or a shipped model's file), absolute."""
    from ..model.shipped import resolve

    return str(Path(resolve(model_arg)).resolve())


def _model_record(model, path) -> dict:
    return {"model": model_file(path), "model_step": model.meta.get("step"),
            "model_version": model.meta.get("version"), "param": model.param,
            "family": getattr(model.family, "to_dict", lambda: None)(), "model_shape": list(model.shape),
            "model_params": model.lattice.get("params")}


def _task_settings(args):
    """The solver keywords of a task and the settings recorded in the output's sampler attributes.

    Refused here: only what a command line can get wrong on its own (a flag of the sequential task
    without ``--order``, ``--solver`` with the SDE); the values are the library's to validate."""
    from ..errors import ParameterError

    if args.order is None:
        for flag, v in (("--block", args.block), ("--levels", args.levels)):
            if v is not None:
                raise ParameterError(f"{flag} applies to sequential generation only; give --order too")
    if args.sde is not None and args.sde > 0 and args.solver is not None:
        raise ParameterError("--solver applies to the ODE; with --sde > 0 the SDE is integrated by Euler-Maruyama "
                             "(leave --solver out)")
    solver_default, steps_default = GENERATE_DEFAULTS
    steps = args.steps if args.steps is not None else (20 if args.order else 50 if args.sde else steps_default)
    solver = args.solver or ("heun" if args.order else solver_default)
    rec = {"solver": "euler-maruyama" if args.sde else solver, "steps": steps, "sde": args.sde,
           "grid_power": args.grid_power, "batch_size": args.batch_size, "device": args.device}
    if args.order:
        c2f = args.order in ("coarse_to_fine", "low_to_high")
        rec.update(order=args.order, block=None if c2f else args.block,
                   levels=((3 if args.order == "coarse_to_fine" else 4) if args.levels is None else args.levels)
                   if c2f else None, steps_per="block")
    solve = dict(steps=steps, solver=solver, sde=args.sde or None, seed=args.seed, batch_size=args.batch_size,
                 grid_power=args.grid_power, progress=args.progress, z2=args.z2)
    return solve, rec


def z2_record(args, model, post, keywords=TASK_KEYWORDS) -> dict:
    """What the output records of --z2: the mode asked for and what it resolved to for this model
    and task ('sign', 'none', or 'odd' for an exactly odd network); a refusal is said in flag terms."""
    from ..model.z2 import applied

    with flag_terms(*keywords):
        return {"z2": args.z2, "z2_applied": applied(model, args.z2, 0.0 if post is None else post.h)}


def _with_path(args, solve, rec, task, shape):
    """Settings from ``--path FILE`` (an optimised grid with its solver and steps), when given."""
    if args.path is None:
        return
    from .schedule import path_settings

    ps = path_settings(args, task, shape)
    solve.update(ps)
    rec.update(steps=ps["steps"], solver=ps["solver"], grid_power=list(ps["grid_power"]),
               path=str(Path(args.path).resolve()))


def _run_task(args, task, *data, **keywords):
    """``task`` (generate, inpaint or sequential) with --threads applied and refusals in flag terms."""
    from ..model.device import set_threads

    set_threads(args.threads)
    if args.order:
        keywords.update(order=args.order, **given(args, "block", "levels"))
    with flag_terms(*TASK_KEYWORDS):
        return task(*data, **keywords)


def cmd_generate(args, argv):
    solve, rec = _task_settings(args)
    check_out(args.out, args.overwrite, resume=args.resume)
    ranks = _ranks(args, "phi4si generate")        # (first: under torchrun on CUDA it picks this rank's GPU)
    model = load_model(args.model, args.device)
    shape = model.check_shape(model.shape if args.shape is None else args.shape)
    post = _posterior(args)
    params = _output_params(model, shape, post)
    _with_path(args, solve, rec, "sequential" if args.order else "generate", shape)
    from ..model.generate import generate, sequential

    sampler = {"sampler": "interpolant", "exact": False, "task": "sequential" if args.order else "generate",
               **rec, **_model_record(model, args.model), **_posterior_record(post, model),
               **z2_record(args, model, post)}
    run = {"seed": args.seed, "shape": list(shape), "command": command_line(argv), "processes": ranks.world}
    with _sample_file(args, params, args.n, sampler, run, args.dtype, ranks) as f:
        _run_task(args, sequential if args.order else generate, model, args.n, shape=shape, **solve, posterior=post,
                  output=f)
    _wrote(ranks, f"wrote {f.out} ({args.n} configurations {'x'.join(map(str, shape))}, {f.wall_time:.1f} s"
                  f"{f', {ranks.world} processes' if ranks.world > 1 else ''})")


def _sample_file(args, params, n, sampler, run, dtype, ranks):
    """The task's output file (batch by batch, resumable: :class:`~phi4si.model.output.SampleFile`),
    written by rank 0 under torchrun (:class:`~phi4si.model.ranks.Output`)."""
    from ..model.output import SampleFile
    from ..model.ranks import Output

    def make():
        with flag_terms("n"):
            return SampleFile(args.out, params, n, sampler, run, dtype=dtype, overwrite=args.overwrite,
                              resume=args.resume, what="--out")
    return Output(ranks, make)


def _ranks(args, what):
    """The processes of this command (torchrun: several; the run records how many)."""
    from ..model.ranks import current

    return current(args.device, what)


def _wrote(ranks, message):
    if ranks.leader:
        print(message, file=sys.stderr)
    ranks.close()


def _read_configs(path, n):
    """The first n configurations (chain 0 first, then chain 1, ...), their dtype and the file's attrs."""
    import numpy as np

    from ..errors import EnsembleFileError, ParameterError
    from ..store import open_ensemble

    with open_ensemble(path) as ds:
        if "phi" not in ds:
            raise EnsembleFileError(f"{path}: holds no configurations")
        phi = ds["phi"]
        n_chains, n_cfg = int(phi.sizes["chain"]), int(phi.sizes["cfg"])
        total = n_chains * n_cfg
        if total == 0:
            raise EnsembleFileError(f"{path}: holds no stored configurations (was it run with --every 0?)")
        if n is None:
            n = total
        if n > total:
            raise ParameterError(f"--n {n}: {path} holds only {total} configurations ({n_chains} chains x {n_cfg})")
        parts, need = [], n
        for c in range(n_chains):
            if need == 0:
                break
            k = min(need, n_cfg)
            parts.append(np.asarray(phi.isel(chain=c, cfg=slice(0, k)).values))
            need -= k
        data = np.concatenate(parts)
        return data, str(phi.dtype), dict(ds.attrs)


def _task_input(args, what="inpaint"):
    """(output path, model, data, data dtype, data attrs) of ``inpaint`` or ``superres``, every file checked."""
    from ..errors import EnsembleFileError, ParameterError, Phi4siError
    from ..io import same_file

    if args.n is not None and args.n < 1:  # how many configurations of --data: read here, not by the library
        raise ParameterError(f"--n must be >= 1, got {args.n}")
    if same_file(args.out, args.data):
        raise ParameterError(f"--out is the --data file; write the {what} configurations to another file")
    out = check_out(args.out, args.overwrite, resume=args.resume)
    if not Path(args.data).exists():
        raise EnsembleFileError(f"{args.data}: no such file")
    model = load_model(args.model, args.device)
    data, data_dtype, attrs = _read_configs(args.data, args.n)
    shape = tuple(data.shape[1:])
    if what == "inpaint":
        try:
            model.check_shape(shape)
        except Phi4siError as e:
            raise type(e)(f"{args.data} (lattice {'x'.join(map(str, shape))}): {e}") from None
    return out, model, data, data_dtype, attrs


def _warn_couplings(model, attrs, what="inpaint"):
    mp, dp = dict(model.lattice.get("params") or {}), dict(attrs.get("params") or {})
    mp.pop("shape", None)
    dp.pop("shape", None)
    if mp != dp:
        print(f"phi4si {what}: warning: the data ({dp}) and the model's training data ({mp}) have different "
              "couplings; the output records the model's", file=sys.stderr)


def cmd_inpaint(args, argv):
    import numpy as np

    solve, rec = _task_settings(args)
    ranks = _ranks(args, "phi4si inpaint")         # (first: under torchrun on CUDA it picks this rank's GPU)
    out, model, data, data_dtype, attrs = _task_input(args)
    shape = tuple(data.shape[1:])
    from ..model.generate import inpaint, parse_mask, sequential

    unknown = parse_mask(args.mask, shape, seed=args.seed)
    dtype = args.dtype or (data_dtype if data_dtype in DTYPES else "float64")
    post = _posterior(args)
    params = _output_params(model, shape, post)
    _warn_couplings(model, attrs)
    _with_path(args, solve, rec, "sequential" if args.order else "inpaint", shape)
    sampler = {"sampler": "interpolant", "exact": False, "task": "sequential_inpaint" if args.order else "inpaint",
               **rec, **_model_record(model, args.model), **_posterior_record(post, model),
               **z2_record(args, model, post), "mask": args.mask,
               "unknown": np.asarray(unknown, dtype=np.uint8).tolist(), "n_unknown": int(unknown.sum()),
               "data": str(Path(args.data).resolve()), "data_params": attrs.get("params"),
               "data_selection": "first n configurations, chain-major"}
    run = {"seed": args.seed, "shape": list(shape), "command": command_line(argv), "processes": ranks.world}
    with _sample_file(args, params, len(data), sampler, run, dtype, ranks) as f:
        if args.order:
            _run_task(args, sequential, model, None, shape=shape, data=data, observed=~unknown, **solve,
                      posterior=post, output=f)
        else:
            _run_task(args, inpaint, model, data, unknown, **solve, posterior=post, output=f)
    _wrote(ranks, f"wrote {out} ({len(data)} configurations, {int(unknown.sum())} of {unknown.size} sites "
                  f"inpainted, {f.wall_time:.1f} s)")


def cmd_posterior(args, argv):
    from ..errors import ParameterError

    _posterior(args, required=True)
    if args.data is not None:
        if args.mask is None:
            raise ParameterError("--data needs --mask (the sites to generate under the posterior)")
        if args.shape is not None:
            raise ParameterError("--shape does not apply with --data (the data's lattice is used)")
        return cmd_inpaint(args, argv)
    if args.mask is not None:
        raise ParameterError("--mask needs --data (the configurations to inpaint)")
    if args.n is None:
        raise ParameterError("--n is required without --data")
    args.dtype = args.dtype or "float32"
    return cmd_generate(args, argv)


def cmd_superres(args, argv):
    from ..model.device import set_threads
    from ..model.solve import SolveSettings
    from ..tasks.superres import block_average, superres_shape, superresolve

    ranks = _ranks(args, "phi4si superres")        # (first: under torchrun on CUDA it picks this rank's GPU)
    out, model, data, _, attrs = _task_input(args, "superres")
    with flag_terms("factor", "steps", "seed", "batch_size", "z2"):   # every refusal before the output file
        coarse = block_average(data, args.factor) if args.fine else data
        shape = superres_shape(model, coarse.shape[1:], args.factor)
        SolveSettings(args.steps, args.solver, None, args.seed, args.batch_size, z2=args.z2)
    params = _output_params(model, shape)
    _warn_couplings(model, attrs, "superres")
    sampler = {"sampler": "interpolant", "exact": False, "task": "superres", "factor": args.factor,
               "scale_by_scale": bool(args.scale_by_scale), "input": "fine, blocked" if args.fine else "coarse",
               "solver": args.solver, "steps": args.steps, "steps_per": "level" if args.scale_by_scale else "path",
               "batch_size": args.batch_size, "device": args.device, **_model_record(model, args.model),
               **z2_record(args, model, None), "data": str(Path(args.data).resolve()),
               "data_params": attrs.get("params"), "data_selection": "first n configurations, chain-major"}
    run = {"seed": args.seed, "shape": list(shape), "command": command_line(argv), "processes": ranks.world}
    set_threads(args.threads)
    with _sample_file(args, params, len(coarse), sampler, run, args.dtype, ranks) as f:
        with flag_terms("factor", "steps", "seed", "batch_size", "z2"):
            superresolve(model, coarse, args.factor, steps=args.steps, solver=args.solver, seed=args.seed,
                         scale_by_scale=args.scale_by_scale, batch_size=args.batch_size, z2=args.z2,
                         progress=args.progress, output=f)
    _wrote(ranks, f"wrote {out} ({len(coarse)} configurations {'x'.join(map(str, shape))} from blocks of side "
                  f"{args.factor}, {f.wall_time:.1f} s)")
