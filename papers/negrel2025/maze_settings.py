"""Maze planning: what validity, path length and time per plan cost with other solver settings.

    python papers/negrel2025/maze_settings.py --model negrel2025_work/maze.pt --n-plans 1000 \
        --settings heun:20:4 heun:10:4 heun:5:4 heun:20:1 euler:20:4 --out papers/negrel2025/results/maze_settings.json

Each setting SOLVER:STEPS:TRIES plans the same ``--n-plans`` pairs of random free points
(:func:`phi4si.tasks.maze.evaluate_plans`, seed ``--seed``); the first setting is the baseline
and every row reports its time per plan relative to it (same run, same machine).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--n-plans", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settings", nargs="+", default=["heun:20:4", "heun:10:4", "heun:5:4", "heun:20:1", "euler:20:4"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import torch

    from phi4si.tasks import maze as mz

    torch.set_num_threads(args.threads)
    model = mz.load_maze_model(args.model)
    rows = []
    for spec in args.settings:
        solver, steps, tries = spec.split(":")
        r = mz.evaluate_plans(model, args.n_plans, seed=args.seed, tries=int(tries), steps=int(steps), solver=solver)
        row = {"setting": spec, "n_valid": r["n_valid"], "length_ratio_median": r["length_ratio"]["median"],
               "length_ratio_q90": r["length_ratio"]["q90"], "k_mean": r["k"]["mean"],
               "k_values_searched_mean": r["k"]["k_values_searched_mean"],
               "needed_another_round": r["k"]["needed_another_round"],
               "samples_per_plan": r["k"]["samples_per_plan_mean"], "seconds_per_plan": r["seconds_per_plan"]}
        row["time_vs_baseline"] = row["seconds_per_plan"] / rows[0]["seconds_per_plan"] if rows else 1.0
        rows.append(row)
        print(f"{spec:>12}: valid {row['n_valid']}/{args.n_plans}  length/geodesic median {row['length_ratio_median']:.3f}"
              f"  k values {row['k_values_searched_mean']:.2f}  {1e3 * row['seconds_per_plan']:.1f} ms/plan"
              f"  ({row['time_vs_baseline']:.2f}x baseline)", flush=True)
    out = {"command": "python " + shlex.join([sys.argv[0], *(argv or sys.argv[1:])]),
           "model": str(Path(args.model).resolve()), "model_step": model.meta.get("step"), "n_plans": args.n_plans,
           "seed": args.seed, "threads": args.threads, "baseline": args.settings[0], "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
