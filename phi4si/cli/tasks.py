"""``phi4si image ...`` and ``phi4si maze ...``: the interpolant core on images and maze planning.

    phi4si image train    --data digits --out M.pt [--steps N | --minutes M]    train on images
    phi4si image generate --model M.pt --n N --out F.h5 [--order raster --block 4]
    phi4si image inpaint  --model M.pt --mask random:0.7 --out F.h5 [--noise 0.01 --data SRC]
    phi4si image edit     --model M.pt --region block:3x3@1,1 --region ... --out F.h5
    phi4si image evaluate --model M.pt --out R.json [--figure G.png]    PSNR/SSIM vs baselines

    phi4si maze dataset   --out D.h5 [--n-windows N --seed S]       trajectories in maze2d-large
    phi4si maze train     --data D.h5 --out M.pt [--steps N]
    phi4si maze plan      --model M.pt --start X Y --goal X Y [--via X Y ...] --out P.json
    phi4si maze evaluate  --model M.pt --n-plans N --out R.json [--figure F.png]

Every command checks its input before anything on disk is touched; errors are one-line messages.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..io import write_json

__all__ = ["add_task_parsers", "run_task"]


def _common_model_flags(p, out_help="output HDF5 file", steps=50, batch_size=256):
    from . import SOLVERS, _device, _int, _int_at_least

    p.add_argument("--model", required=True, help="model checkpoint (phi4si image train / maze train)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--steps", type=_int_at_least(1), default=steps, help=f"integration steps (default {steps})")
    p.add_argument("--solver", choices=SOLVERS, default="heun", help="ODE solver (default heun)")
    p.add_argument("--seed", type=_int, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=batch_size,
                   help=f"samples per batch (default {batch_size})")
    p.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=_int_at_least(1), default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def add_task_parsers(sub):
    from . import ORDERS, _add_train_flags, _finite_float, _int_at_least

    im = sub.add_parser("image", help="images: train, generate, inpaint, edit, evaluate (PSNR/SSIM vs baselines)")
    isub = im.add_subparsers(dest="task", required=True)
    t = isub.add_parser("train", help="train an image interpolant (default data: scikit-learn's 8x8 digits)")
    t.add_argument("--data", default="digits",
                   help="digits (default), a folder of PNG/JPEG files, FILE.npy or FILE.h5:DATASET")
    t.add_argument("--n-test", type=_int_at_least(0), default=300, help="held-out test images (default 300)")
    t.add_argument("--split-seed", type=_int_at_least(0), default=0, help="seed of the train/test split (default 0)")
    t.add_argument("--padding", choices=("zeros", "reflect"), default="zeros", help="U-Net padding (default zeros)")
    _add_train_flags(t, model="medium", measure="images", measures=("generation", "multitask", "curriculum", "images"))

    g = isub.add_parser("generate", help="images from noise, at once or block by block in any order")
    _common_model_flags(g)
    g.add_argument("--n", type=_int_at_least(1), default=16, help="number of images (default 16)")
    g.add_argument("--order", choices=ORDERS, default=None, help="generate block by block in this order")
    g.add_argument("--block", type=_int_at_least(1), default=None, help="block side for --order (default 4)")
    g.add_argument("--figure", default=None, help="also draw the images (PNG)")

    i = isub.add_parser("inpaint", help="complete masked pixels (block or random masks, optional noisy observations)")
    _common_model_flags(i)
    i.add_argument("--mask", required=True, help="random:F | block:HxW | block:HxW@I,J | FILE.npy (True = unknown)")
    i.add_argument("--data", default=None, help="images to complete (default: the model's held-out test images)")
    i.add_argument("--n", type=_int_at_least(1), default=None, help="number of images (default: 16, or all if fewer)")
    i.add_argument("--noise", type=_finite_float, default=0.0,
                   help="std of Gaussian noise added to the observed pixels (data units; default 0)")
    i.add_argument("--denoise", choices=("sample", "mean", "keep"), default="sample",
                   help="observed pixels under --noise: exact conditional sample (default), posterior mean, keep")
    i.add_argument("--figure", default=None, help="also draw original, masked, phi4si, biharmonic (PNG)")

    e = isub.add_parser("edit", help="re-mask a region and regenerate it, several times in a row")
    _common_model_flags(e)
    e.add_argument("--region", action="append", required=True,
                   help="block:HxW@I,J or FILE.npy (repeat for successive edits)")
    e.add_argument("--data", default=None, help="image source (default: the model's held-out test images)")
    e.add_argument("--index", type=_int_at_least(0), default=0, help="which image of --data (default 0)")
    e.add_argument("--figure", default=None, help="also draw the edits (PNG)")

    v = isub.add_parser("evaluate", help="PSNR/SSIM of inpainting on held-out images vs biharmonic, mean, nearest")
    _common_model_flags(v, out_help="results JSON")
    v.add_argument("--n-images", type=_int_at_least(2), default=None,
                   help="held-out images to use (default: 300, or all of the test split if fewer)")
    v.add_argument("--random", type=_finite_float, default=0.7, help="fraction of the random masks (default 0.7)")
    v.add_argument("--block", type=_int_at_least(1), default=4, help="side of the square block masks (default 4)")
    v.add_argument("--noise-random", type=_finite_float, default=0.01, help="noise std, random masks (default 0.01)")
    v.add_argument("--noise-block", type=_finite_float, default=0.05, help="noise std, block masks (default 0.05)")
    v.add_argument("--n-mean", type=_int_at_least(0), default=0,
                   help="also score the mean of this many samples per image (default 0: off)")
    v.add_argument("--figure", default=None, help="figure grid (PNG): original, masked, phi4si, biharmonic")

    mz = sub.add_parser("maze", help="maze2d-large planning: dataset, train, plan, evaluate")
    msub = mz.add_subparsers(dest="task", required=True)
    d = msub.add_parser("dataset", help="point-mass trajectories (noisy waypoint controller), windows -> HDF5")
    d.add_argument("--out", required=True, help="output HDF5 file")
    d.add_argument("--n-windows", type=_int_at_least(1), default=20000, help="windows of 300 steps (default 20000)")
    d.add_argument("--window", type=_int_at_least(2), default=300, help="window length in steps (default 300)")
    d.add_argument("--every", type=_int_at_least(1), default=6, help="subsampling (default 6 -> 50 points)")
    d.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    t = msub.add_parser("train", help="train the 1-D trajectory interpolant")
    t.add_argument("--data", required=True, help="trajectory file of phi4si maze dataset")
    t.add_argument("--reverse", action=argparse.BooleanOptionalAction, default=True,
                   help="augment with time-reversed trajectories (default on)")
    _add_train_flags(t, model="maze", measure="maze", measures=("generation", "multitask", "maze"))

    p = msub.add_parser("plan", help="plan a path between two points (optionally via waypoints)",
                        description="Plan a path by inpainting; exit status 3 when no valid path was found "
                                    "(the JSON is written either way).")
    _common_model_flags(p, out_help="output JSON with the plan", steps=20, batch_size=1024)
    p.add_argument("--start", type=_finite_float, nargs=2, required=True, metavar=("X", "Y"),
                   help="start point: x = column, y = row coordinate, cells of side 1, row 0 on top "
                        "(maze2d-large: x in [0, 12], y in [0, 9])")
    p.add_argument("--goal", type=_finite_float, nargs=2, required=True, metavar=("X", "Y"), help="goal point")
    p.add_argument("--via", type=_finite_float, nargs=2, action="append", default=None, metavar=("X", "Y"),
                   help="waypoint the path must visit (repeatable, in order)")
    p.add_argument("--tries", type=_int_at_least(1), default=4, help="independent samples per k (default 4)")
    p.add_argument("--rounds", type=_int_at_least(1), default=2,
                   help="searches from k_min when no sample up to k_max is valid (default 2)")
    p.add_argument("--figure", default=None, help="draw the plan over the maze (PNG)")

    q = msub.add_parser("evaluate", help="plans between random free points: validity, length vs shortest, k, time")
    _common_model_flags(q, out_help="results JSON", steps=20, batch_size=1024)
    q.add_argument("--margin", type=_finite_float, default=0.0,
                   help="keep the random points this far from their cell's sides, in [0, 0.5) (default 0)")
    q.add_argument("--n-plans", type=_int_at_least(1), default=1000, help="number of plans (default 1000)")
    q.add_argument("--tries", type=_int_at_least(1), default=4, help="independent samples per k (default 4)")
    q.add_argument("--rounds", type=_int_at_least(1), default=2,
                   help="searches from k_min when no sample up to k_max is valid (default 2)")
    q.add_argument("--figure", default=None, help="figure of example plans (PNG)")
    q.add_argument("--plans", default=None, help="also write every plan, start, goal and geodesic length (HDF5)")
    q.add_argument("--examples", type=_int_at_least(0), default=12, help="plans drawn in --figure (default 12)")
    return im, mz


# ------------------------------------------------------------------------------------------------ image
def _setup(args):
    from . import _check_device, _check_out

    _check_out(args.out, args.overwrite)
    _check_device(args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _images_from(args, model, n):
    from ..errors import ParameterError
    from ..tasks.images import held_out_images, load_images

    x = held_out_images(model) if args.data is None else load_images(args.data)[0]
    if x.shape[1:] != (model.channels, *model.shape):
        raise ParameterError(f"--data images have shape {x.shape[1:]}, the model needs {(model.channels, *model.shape)}")
    n = min(16, len(x)) if n is None else n
    if n > len(x):
        raise ParameterError(f"asked for {n} images, the source has {len(x)}")
    return x[:n]


def _check_train_flags(args):
    """The refusals every task's ``train`` makes before reading its data."""
    from . import _same_file
    from ..errors import ParameterError

    if args.resume and args.overwrite:
        raise ParameterError("--resume and --overwrite exclude each other")
    if Path(args.out).is_dir():
        raise ParameterError(f"--out {args.out} is a directory")
    if _same_file(args.out, args.data):
        raise ParameterError("--out is the --data file")


def _record(args, argv, **extra):
    return {"command": "phi4si " + shlex.join(argv), "model": str(Path(args.model).resolve()), "steps": args.steps,
            "solver": args.solver, "seed": args.seed, **extra}


def cmd_image(args, argv):
    import numpy as np

    from ..errors import ParameterError
    from ..tasks import images as im

    if args.task == "train":
        from . import _run_training

        _check_train_flags(args)
        data = im.image_data(args.data, args.n_test, args.split_seed, padding=args.padding)
        _run_training(data, args, argv)
        return
    _setup(args)
    model = im.load_image_model(args.model, device=args.device)
    if args.task == "generate":
        if args.order is None and args.block is not None:
            raise ParameterError("--block applies to block-by-block generation only; give --order too")
        if args.order is None:
            x = im.generate_images(model, args.n, steps=args.steps, solver=args.solver, seed=args.seed,
                                   batch_size=args.batch_size)
        else:
            x = im.sequential_images(model, args.n, args.order, args.block or 4, steps=args.steps, solver=args.solver,
                                     seed=args.seed, batch_size=args.batch_size)
        im.write_images(args.out, x, _record(args, argv, task="generate", order=args.order, block=args.block),
                        overwrite=args.overwrite)
        if args.figure:
            im.plot_samples(args.figure, x, title="phi4si samples" + (f" ({args.order} blocks)" if args.order else ""))
    elif args.task == "inpaint":
        x = _images_from(args, model, args.n)
        masks = im.parse_image_mask(args.mask, len(x), model.shape, args.seed)
        if not args.noise >= 0:
            raise ParameterError(f"--noise must be >= 0, got {args.noise}")
        y = x + args.noise * np.random.default_rng(args.seed + 7).standard_normal(x.shape) * ~masks[:, None]
        y = np.where(masks[:, None], 0.0, y)
        out = im.inpaint_images(model, y, masks, noise=args.noise, steps=args.steps, solver=args.solver,
                                seed=args.seed, denoise=args.denoise, batch_size=args.batch_size)
        im.write_images(args.out, out, _record(args, argv, task="inpaint", mask=args.mask, noise=args.noise,
                                                denoise=args.denoise),
                        extra={"masks": masks, "observed": y.astype(np.float32), "original": x}, overwrite=args.overwrite)
        if args.figure:
            im.plot_grid(args.figure, {"original": x, "phi4si": out, "biharmonic": im.baseline_fill(y, masks)},
                         masks=masks, title=f"{args.mask}, noise {args.noise}")
    elif args.task == "edit":
        x = _images_from(args, model, args.index + 1)[args.index]
        regions = [im.parse_image_mask(r, 1, model.shape, args.seed)[0] for r in args.region]
        out = im.edit_images(model, x, regions, steps=args.steps, solver=args.solver, seed=args.seed)
        im.write_images(args.out, out, _record(args, argv, task="edit", regions=args.region, index=args.index),
                        extra={"regions": np.stack(regions)}, overwrite=args.overwrite)
        if args.figure:
            im.plot_grid(args.figure, {"before": out[:-1], "edited": out[1:]}, masks=np.stack(regions),
                         title="successive edits (row k: edit k)")
    elif args.task == "evaluate":
        cmd_image_evaluate(args, argv, model)


def _fmt_scores(name, r):
    s = r["scores"]
    cells = "  ".join(f"{k} {v['psnr']:.2f} dB / {v['ssim']:.3f}" for k, v in s.items())
    return f"{name}: {cells}"


def cmd_image_evaluate(args, argv, model):
    from ..errors import ParameterError
    from ..tasks import images as im

    x = im.held_out_images(model)
    if args.n_images is None:
        args.n_images = min(300, len(x))
    if args.n_images > len(x):
        raise ParameterError(f"--n-images {args.n_images}: the model's test split has {len(x)} images")
    if not 0 < args.random <= 1:
        raise ParameterError(f"--random must be in (0, 1], got {args.random}")
    if min(args.noise_random, args.noise_block) < 0:
        raise ParameterError("noise levels must be >= 0")
    if args.block > min(model.shape):
        raise ParameterError(f"--block {args.block} does not fit images of size {model.shape}")
    x = x[: args.n_images]
    tasks = {"random": {"mask": f"random:{args.random}", "noise": args.noise_random},
             "block": {"mask": f"block:{args.block}x{args.block}", "noise": args.noise_block}}
    t0 = time.perf_counter()
    res = im.evaluate_inpainting(model, x, tasks, seed=args.seed, steps=args.steps, n_mean=args.n_mean,
                                 batch_size=args.batch_size, progress=lambda n, r: print(_fmt_scores(n, r)))
    if args.figure:
        for name, r in res.items():
            fig = Path(args.figure)
            fig = fig.with_name(f"{fig.stem}_{name}{fig.suffix}")
            im.plot_grid(fig, {"original": x, "phi4si": r["_est"]["phi4si"], "biharmonic": r["_est"]["biharmonic"]},
                         masks=r["_masks"], title=f"{name}: {r['mask']}, noise {r['noise']}")
            print(f"figure: {fig}")
    out = {"command": "phi4si " + shlex.join(argv), "model": str(Path(args.model).resolve()),
           "model_step": model.meta.get("step"), "train_wall_time": model.meta.get("wall_time"),
           "settings": {"n_images": args.n_images, "steps": args.steps, "solver": args.solver, "seed": args.seed,
                        "n_mean": args.n_mean}, "wall_time": time.perf_counter() - t0,
           "tasks": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in res.items()}}
    write_json(args.out, out)
    for name, r in res.items():
        d = r["phi4si_minus_biharmonic"]
        print(f"{name}: phi4si - biharmonic: PSNR {d['psnr']:+.2f} +- {d['psnr_err']:.2f} dB, "
              f"SSIM {d['ssim']:+.3f} +- {d['ssim_err']:.3f}")


# ------------------------------------------------------------------------------------------------ maze
def cmd_maze(args, argv):
    import numpy as np

    from ..errors import ParameterError
    from ..tasks import maze as mz

    if args.task == "dataset":
        from . import _check_out

        _check_out(args.out, args.overwrite)
        t0 = time.perf_counter()
        data = mz.make_dataset(args.n_windows, args.seed, window=args.window, every=args.every)
        mz.write_dataset(args.out, data, meta={"command": "phi4si " + shlex.join(argv),
                                              "seconds": time.perf_counter() - t0}, overwrite=args.overwrite)
        st = data["stats"]
        print(f"wrote {args.out}: {st['n_windows']} paths of {data['paths'].shape[1]} points "
              f"(dropped {st['n_dropped']} invalid windows), length {st['path_length_mean']:.2f} +- "
              f"{st['path_length_std']:.2f} cells, {time.perf_counter() - t0:.1f} s")
        return
    if args.task == "train":
        from . import _run_training

        _check_train_flags(args)
        _run_training(mz.maze_data(args.data, reverse=args.reverse), args, argv)
        return
    _setup(args)
    model = mz.load_maze_model(args.model, device=args.device)
    maze = mz.model_maze(model)
    if args.task == "plan":
        s, g = maze.check_points(args.start, "--start"), maze.check_points(args.goal, "--goal")
        via = None if not args.via else maze.check_points(args.via, "--via")
        res = mz.plan(model, s, g, via, tries=args.tries, steps=args.steps, solver=args.solver, seed=args.seed,
                      rounds=args.rounds, batch_size=args.batch_size)
        shortest = float(maze.shortest_path_length(s, g)) if via is None else float(
            maze.shortest_path_length(np.concatenate([s[None], via]), np.concatenate([via, g[None]])).sum())
        out = {**_record(args, argv, task="plan", tries=args.tries), "start": s.tolist(), "goal": g.tolist(),
               "via": None if via is None else via.tolist(), "valid": bool(res.valid[0]), "k": int(res.k[0]),
               "k_min": int(res.k_min[0]), "samples": int(res.samples[0]), "rounds": int(res.rounds[0]),
               "length": float(res.length[0]),
               "shortest_length": shortest, "seconds": res.seconds, "path": res.paths[0].tolist()}
        write_json(args.out, out)
        print(f"{'valid' if res.valid[0] else 'INVALID'} plan: k = {res.k[0]} (searched from {res.k_min[0]}), length "
              f"{res.length[0]:.3f} (shortest {shortest:.3f}), {res.seconds:.2f} s -> {args.out}")
        if args.figure:
            ax = maze.plot(starts=s, goals=g, title=f"k = {res.k[0]}, length {res.length[0]:.2f} "
                                                     f"(shortest {shortest:.2f})")
            p = res.paths[0]
            ax.plot(p[:, 0], p[:, 1], ".-", color="tab:blue" if res.valid[0] else "tab:orange", lw=1.2, ms=3)
            if via is not None:
                ax.scatter(via[:, 0], via[:, 1], marker="D", color="tab:purple", zorder=4, label="via")
            ax.figure.savefig(args.figure, dpi=110)
        if not res.valid[0]:
            raise SystemExit(3)
    elif args.task == "evaluate":
        if not 0 <= args.margin < 0.5:
            raise ParameterError(f"--margin must be in [0, 0.5), got {args.margin}")
        if args.plans:
            from . import _check_out

            _check_out(args.plans, args.overwrite)
        r = mz.evaluate_plans(model, args.n_plans, seed=args.seed, margin=args.margin, tries=args.tries,
                              steps=args.steps, solver=args.solver, rounds=args.rounds, batch_size=args.batch_size,
                              progress=True)
        out = {"command": "phi4si " + shlex.join(argv), "model": str(Path(args.model).resolve()),
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


def run_task(args, argv):
    if args.cmd == "image":
        cmd_image(args, argv)
    else:
        cmd_maze(args, argv)
    sys.stdout.flush()
