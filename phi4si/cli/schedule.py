"""``phi4si optimize-path``: an optimised time grid for one model, task and solver, as a path file
that ``generate``, ``inpaint`` and ``posterior`` take with ``--path FILE``
(:mod:`phi4si.model.schedule`)."""

from __future__ import annotations

import sys

from .options import ODE_SOLVERS, ORDERS, block_size, check_out, command_line, device, flag_terms, integer, \
    integer_at_least, load_model

__all__ = ["add_parsers", "cmd_optimize_path", "path_settings"]


def add_parsers(sub):
    p = sub.add_parser("optimize-path", help="optimise the time grid of a task for a trained model (a path file for "
                                             "--path)",
                       epilog="the grid of --steps steps of --solver that minimises the measured discretisation error "
                              "(mean squared difference to an RK4 solve of --ref-steps steps from the same noise) on "
                              "--pilot samples; a second batch checks it. Tasks: generate; inpaint with --mask; "
                              "sequential with --order (and --block or --levels, optionally --mask)")
    p.add_argument("--model", required=True, help="model checkpoint written by phi4si train")
    p.add_argument("--out", required=True, help="path file to write (JSON)")
    p.add_argument("--task", choices=("generate", "inpaint", "sequential"), default="generate")
    p.add_argument("--solver", choices=ODE_SOLVERS, default="ab3", help="ODE solver (default ab3)")
    p.add_argument("--steps", type=integer, required=True, help="solver steps (per segment of the path)")
    p.add_argument("--shape", type=integer_at_least(2), nargs="+", default=None, help="lattice (default the model's)")
    p.add_argument("--mask", default=None, help="unknown sites (inpaint): block:RxC@I,J | random:FRACTION | FILE.npy")
    p.add_argument("--order", choices=ORDERS, default=None, help="order of the sequential task")
    p.add_argument("--block", type=block_size, default=None, metavar="B")
    p.add_argument("--levels", type=integer, default=None, metavar="K")
    p.add_argument("--pilot", type=integer, default=64, help="pilot samples (default 64)")
    p.add_argument("--ref-steps", type=integer, default=64, help="RK4 steps of the reference solve (default 64)")
    p.add_argument("--seed", type=integer, default=0, help="seed of the pilot noise (default 0)")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--threads", type=integer_at_least(1), default=None)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_optimize_path)


def cmd_optimize_path(args, argv):
    from ..model.device import set_threads
    from ..model.generate import parse_mask
    from ..model.schedule import optimise_grid, write_path_file

    out = check_out(args.out, args.overwrite)
    model = load_model(args.model, args.device)
    set_threads(args.threads)
    shape = model.check_shape(model.shape if args.shape is None else args.shape)
    mask = None if args.mask is None else parse_mask(args.mask, shape, seed=args.seed)
    with flag_terms("steps", "solver", "pilot", "ref_steps", "order", "block", "levels", "mask"):
        r = optimise_grid(model, args.steps, args.solver, args.task, shape=shape, mask=mask, order=args.order,
                          block=args.block, levels=args.levels, pilot=args.pilot, seed=args.seed,
                          ref_steps=args.ref_steps)
    write_path_file(out, r, model, shape, {"task": args.task, **_task_spec(args)}, command_line(argv))
    h = r["held_out"]
    print(f"wrote {out} ({args.solver} x {args.steps}: held-out error {h['mse']:.3g} vs {h['mse_start']:.3g} on the "
          f"best power grid (P = {r['start_power']:g}), {h['mse_start'] / max(h['mse'], 1e-300):.2g}x smaller)",
          file=sys.stderr)


def _task_spec(args) -> dict:
    """What of a task a path file records and a run with ``--path`` must share (as JSON holds it)."""
    spec = {key: getattr(args, key, None) for key in ("order", "block", "levels", "mask")}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}


def path_settings(args, task: str, shape) -> dict:
    """steps, solver and grid of ``--path FILE`` for a task command (its own --steps, --solver and
    --grid-power are refused: the file fixes them)."""
    from ..errors import ParameterError
    from ..model.schedule import read_path_file

    for flag, v, default in (("--steps", args.steps, None), ("--solver", args.solver, None),
                             ("--grid-power", args.grid_power, 1.0), ("--sde", args.sde, None)):
        if v != default:
            raise ParameterError(f"{flag} does not apply with --path (the path file fixes the solver, steps and grid)")
    doc = read_path_file(args.path, task=task, shape=shape)
    made = doc["task"]
    for key, mine in _task_spec(args).items():
        if made.get(key) != mine:
            raise ParameterError(f"{args.path} was optimised with {key} {made.get(key)!r}, this run has {mine!r}")
    return {"steps": int(doc["steps"]), "solver": doc["solver"], "grid_power": tuple(doc["grid"])}
