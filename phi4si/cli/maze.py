"""``phi4si maze ...``: maze2d-large planning with the interpolant core (:mod:`phi4si.tasks.maze`).

    phi4si maze dataset   --out D.h5 [--n-windows N --seed S]       trajectories in maze2d-large
    phi4si maze train     --data D.h5 --out M.pt [--steps N]
    phi4si maze plan      --model M.pt --start X Y --goal X Y [--via X Y ...] --out P.json
    phi4si maze evaluate  --model M.pt --n-plans N --out R.json [--figure F.png]

Every command checks its input before anything on disk is touched; errors are one-line messages.
``maze plan`` exits with status 3 when it found no valid path (the JSON is written either way).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .training import check_train_flags, run_training
from .options import (add_train_flags, add_trained_model_flags, check_out, command_line, finite_float,
                      integer_at_least, prepare_run, task_record)

__all__ = ["add_parsers", "maze_dataset", "maze_train", "maze_plan", "maze_evaluate", "NO_VALID_PLAN"]

NO_VALID_PLAN = 3   # the exit status of ``maze plan`` without a valid path


def add_parsers(sub):
    mz = sub.add_parser("maze", help="maze2d-large planning: dataset, train, plan, evaluate")
    msub = mz.add_subparsers(dest="task", required=True)
    d = msub.add_parser("dataset", help="point-mass trajectories (noisy waypoint controller), windows -> HDF5")
    d.add_argument("--out", required=True, help="output HDF5 file")
    d.add_argument("--n-windows", type=integer_at_least(1), default=20000, help="windows of 300 steps (default 20000)")
    d.add_argument("--window", type=integer_at_least(2), default=300, help="window length in steps (default 300)")
    d.add_argument("--every", type=integer_at_least(1), default=6, help="subsampling (default 6 -> 50 points)")
    d.add_argument("--seed", type=integer_at_least(0), default=0, help="random seed (default 0)")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    d.set_defaults(func=maze_dataset)

    t = msub.add_parser("train", help="train the 1-D trajectory interpolant")
    t.add_argument("--data", required=True, help="trajectory file of phi4si maze dataset")
    t.add_argument("--reverse", action=argparse.BooleanOptionalAction, default=True,
                   help="augment with time-reversed trajectories (default on)")
    add_train_flags(t, model="maze", measure="maze", measures=("generation", "multitask", "maze"))
    t.set_defaults(func=maze_train)

    p = msub.add_parser("plan", help="plan a path between two points (optionally via waypoints)",
                        description="Plan a path by inpainting; exit status 3 when no valid path was found "
                                    "(the JSON is written either way).")
    add_trained_model_flags(p, out_help="output JSON with the plan", steps=20, batch_size=1024)
    p.add_argument("--start", type=finite_float, nargs=2, required=True, metavar=("X", "Y"),
                   help="start point: x = column, y = row coordinate, cells of side 1, row 0 on top "
                        "(maze2d-large: x in [0, 12], y in [0, 9])")
    p.add_argument("--goal", type=finite_float, nargs=2, required=True, metavar=("X", "Y"), help="goal point")
    p.add_argument("--via", type=finite_float, nargs=2, action="append", default=None, metavar=("X", "Y"),
                   help="waypoint the path must visit (repeatable, in order)")
    p.add_argument("--tries", type=integer_at_least(1), default=4, help="independent samples per k (default 4)")
    p.add_argument("--rounds", type=integer_at_least(1), default=2,
                   help="searches from k_min when no sample up to k_max is valid (default 2)")
    p.add_argument("--figure", default=None, help="draw the plan over the maze (PNG)")
    p.set_defaults(func=maze_plan)

    q = msub.add_parser("evaluate", help="plans between random free points: validity, length vs shortest, k, time")
    add_trained_model_flags(q, out_help="results JSON", steps=20, batch_size=1024)
    q.add_argument("--margin", type=finite_float, default=0.0,
                   help="keep the random points this far from their cell's sides, in [0, 0.5) (default 0)")
    q.add_argument("--n-plans", type=integer_at_least(1), default=1000, help="number of plans (default 1000)")
    q.add_argument("--tries", type=integer_at_least(1), default=4, help="independent samples per k (default 4)")
    q.add_argument("--rounds", type=integer_at_least(1), default=2,
                   help="searches from k_min when no sample up to k_max is valid (default 2)")
    q.add_argument("--figure", default=None, help="figure of example plans (PNG)")
    q.add_argument("--plans", default=None, help="also write every plan, start, goal and geodesic length (HDF5)")
    q.add_argument("--examples", type=integer_at_least(0), default=12, help="plans drawn in --figure (default 12)")
    q.set_defaults(func=maze_evaluate)
    return mz


def _model(args):
    """(model, maze) of --model, after the output, device and threads are checked."""
    from ..tasks import maze as mz

    prepare_run(args)
    model = mz.load_maze_model(args.model, device=args.device)
    return model, mz.model_maze(model)


def maze_dataset(args, argv):
    from ..tasks import maze as mz

    check_out(args.out, args.overwrite)
    t0 = time.perf_counter()
    data = mz.make_dataset(args.n_windows, args.seed, window=args.window, every=args.every)
    mz.write_dataset(args.out, data, meta={"command": command_line(argv), "seconds": time.perf_counter() - t0},
                     overwrite=args.overwrite)
    st = data["stats"]
    print(f"wrote {args.out}: {st['n_windows']} paths of {data['paths'].shape[1]} points "
          f"(dropped {st['n_dropped']} invalid windows), length {st['path_length_mean']:.2f} +- "
          f"{st['path_length_std']:.2f} cells, {time.perf_counter() - t0:.1f} s")


def maze_train(args, argv):
    from ..tasks import maze as mz

    check_train_flags(args)
    run_training(mz.maze_data(args.data, reverse=args.reverse), args, argv)


def _plan_figure(args, maze, res, s, g, via, shortest):
    from ..tasks.maze.figures import draw_maze

    ax = draw_maze(maze, starts=s, goals=g, title=f"k = {res.k[0]}, length {res.length[0]:.2f} "
                                                  f"(shortest {shortest:.2f})")
    p = res.paths[0]
    ax.plot(p[:, 0], p[:, 1], ".-", color="tab:blue" if res.valid[0] else "tab:orange", lw=1.2, ms=3)
    if via is not None:
        ax.scatter(via[:, 0], via[:, 1], marker="D", color="tab:purple", zorder=4, label="via")
    from ..io import save_figure

    save_figure(ax.figure, args.figure, dpi=110)


def maze_plan(args, argv):
    import numpy as np

    from ..io import write_json
    from ..tasks import maze as mz

    model, maze = _model(args)
    s, g = maze.check_points(args.start, "--start"), maze.check_points(args.goal, "--goal")
    via = None if not args.via else maze.check_points(args.via, "--via")
    res = mz.plan(model, s, g, via, tries=args.tries, steps=args.steps, solver=args.solver, seed=args.seed,
                  rounds=args.rounds, batch_size=args.batch_size)
    shortest = float(maze.shortest_path_length(s, g)) if via is None else float(
        maze.shortest_path_length(np.concatenate([s[None], via]), np.concatenate([via, g[None]])).sum())
    out = {**task_record(args, argv, task="plan", tries=args.tries), "start": s.tolist(), "goal": g.tolist(),
           "via": None if via is None else via.tolist(), "valid": bool(res.valid[0]), "k": int(res.k[0]),
           "k_min": int(res.k_min[0]), "samples": int(res.samples[0]), "rounds": int(res.rounds[0]),
           "length": float(res.length[0]), "shortest_length": shortest, "seconds": res.seconds,
           "path": res.paths[0].tolist()}
    write_json(args.out, out)
    print(f"{'valid' if res.valid[0] else 'INVALID'} plan: k = {res.k[0]} (searched from {res.k_min[0]}), length "
          f"{res.length[0]:.3f} (shortest {shortest:.3f}), {res.seconds:.2f} s -> {args.out}")
    if args.figure:
        _plan_figure(args, maze, res, s, g, via, shortest)
    return 0 if res.valid[0] else NO_VALID_PLAN


def maze_evaluate(args, argv):
    from ..io import write_json
    from ..tasks import maze as mz

    model, maze = _model(args)
    if args.plans:
        check_out(args.plans, args.overwrite)
    r = mz.evaluate_plans(model, args.n_plans, seed=args.seed, margin=args.margin, tries=args.tries,
                          steps=args.steps, solver=args.solver, rounds=args.rounds, batch_size=args.batch_size,
                          progress=None)
    out = {"command": command_line(argv), "model": str(Path(args.model).resolve()),
           "model_step": model.meta.get("step"), "train_wall_time": model.meta.get("wall_time"),
           **{k: v for k, v in r.items() if not k.startswith("_")}}
    write_json(args.out, out)
    if args.plans:
        mz.write_plans(args.plans, r["_plans"], r["_starts"], r["_goals"], r["_shortest"],
                       attrs={"command": out["command"], "model": out["model"], **r["settings"]},
                       overwrite=args.overwrite)
        print(f"plans: {args.plans}")
    lr, k = r["length_ratio"], r["k"]
    print(f"valid {r['n_valid']} / {r['n_plans']}; length / shortest: median {lr['median']:.3f}, q90 "
          f"{lr['q90']:.3f}; k mean {k['mean']:.1f}, k values searched mean {k['k_values_searched_mean']:.2f} "
          f"(max {k['k_values_searched_max']}); {1e3 * r['seconds_per_plan']:.1f} ms per plan -> {args.out}")
    if args.figure and args.examples:
        mz.plot_plans(args.figure, maze, r["_plans"], r["_starts"], r["_goals"], n=args.examples,
                      title=f"phi4si maze plans: {r['n_valid']} / {r['n_plans']} valid")
        print(f"figure: {args.figure}")
