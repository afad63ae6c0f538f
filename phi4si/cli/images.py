"""``phi4si image ...``: the interpolant core on images (:mod:`phi4si.tasks.images`).

    phi4si image train    --data digits --out M.pt [--steps N | --minutes M]    train on images
    phi4si image generate --model M.pt --n N --out F.h5 [--order raster --block 4]
    phi4si image inpaint  --model M.pt --mask random:0.7 --out F.h5 [--noise 0.01 --data SRC]
    phi4si image edit     --model M.pt --region block:3x3@1,1 --region ... --out F.h5
    phi4si image evaluate --model M.pt --out R.json [--figure G.png]    PSNR/SSIM vs baselines
    phi4si image train    --data digits16 --family corruption --out R.pt     a restoration model
    phi4si image deblur   --model R.pt --blur 1 --noise 0.01 [--mask random:0.3] --out F.h5
    phi4si image denoise  --model R.pt --noise 0.05 --out F.h5            (E[x | y], THEORY.md 8.1)

Every command checks its input before anything on disk is touched; errors are one-line messages.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .training import check_train_flags, run_training
from .options import (ORDERS, add_train_flags, add_trained_model_flags, command_line, finite_float, flag_terms,
                      integer_at_least, prepare_run, task_record)

__all__ = ["add_parsers", "image_train", "image_generate", "image_inpaint", "image_edit", "image_evaluate",
           "image_restore"]


def add_parsers(sub):
    im = sub.add_parser("image", help="images: train, generate, inpaint, edit, evaluate (PSNR/SSIM vs baselines)")
    isub = im.add_subparsers(dest="task", required=True)
    t = isub.add_parser("train", help="train an image interpolant (default data: scikit-learn's 8x8 digits)")
    t.add_argument("--data", default="digits",
                   help="digits (default), a folder of PNG/JPEG files, FILE.npy or FILE.h5:DATASET")
    t.add_argument("--n-test", type=integer_at_least(0), default=300, help="held-out test images (default 300)")
    t.add_argument("--split-seed", type=integer_at_least(0), default=0, help="seed of the train/test split (default 0)")
    t.add_argument("--padding", choices=("zeros", "reflect"), default="zeros", help="U-Net padding (default zeros)")
    t.add_argument("--family", choices=("hadamard", "corruption"), default="hadamard",
                   help="hadamard (default: generation, inpainting, editing) or corruption (deblur, denoise, missing "
                        "pixels; implies --measure restore --param eta1)")
    add_train_flags(t, model="medium", measure=None,
                    measures=("generation", "multitask", "curriculum", "images", "restore"))
    t.set_defaults(func=image_train)

    g = isub.add_parser("generate", help="images from noise, at once or block by block in any order")
    add_trained_model_flags(g)
    g.add_argument("--n", type=integer_at_least(1), default=16, help="number of images (default 16)")
    g.add_argument("--order", choices=ORDERS, default=None, help="generate block by block in this order")
    g.add_argument("--block", type=integer_at_least(1), default=None, help="block side for --order (default 4)")
    g.add_argument("--figure", default=None, help="also draw the images (PNG)")
    g.set_defaults(func=image_generate)

    i = isub.add_parser("inpaint", help="complete masked pixels (block or random masks, optional noisy observations)")
    add_trained_model_flags(i)
    i.add_argument("--mask", required=True, help="random:F | block:HxW | block:HxW@I,J | FILE.npy (True = unknown)")
    i.add_argument("--data", default=None, help="images to complete (default: the model's held-out test images)")
    i.add_argument("--n", type=integer_at_least(1), default=None,
                   help="number of images (default: 16, or all if fewer)")
    i.add_argument("--noise", type=finite_float, default=0.0,
                   help="std of Gaussian noise added to the observed pixels (data units; default 0)")
    i.add_argument("--denoise", choices=("sample", "mean", "keep"), default="sample",
                   help="observed pixels under --noise: exact conditional sample (default), posterior mean, keep")
    i.add_argument("--figure", default=None, help="also draw original, masked, phi4si, biharmonic (PNG)")
    i.set_defaults(func=image_inpaint)

    e = isub.add_parser("edit", help="re-mask a region and regenerate it, several times in a row")
    add_trained_model_flags(e)
    e.add_argument("--region", action="append", required=True,
                   help="block:HxW@I,J or FILE.npy (repeat for successive edits)")
    e.add_argument("--data", default=None, help="image source (default: the model's held-out test images)")
    e.add_argument("--index", type=integer_at_least(0), default=0, help="which image of --data (default 0)")
    e.add_argument("--figure", default=None, help="also draw the edits (PNG)")
    e.set_defaults(func=image_edit)

    v = isub.add_parser("evaluate", help="PSNR/SSIM of inpainting on held-out images vs biharmonic, mean, nearest")
    add_trained_model_flags(v, out_help="results JSON")
    v.add_argument("--n-images", type=integer_at_least(2), default=None,
                   help="held-out images to use (default: 300, or all of the test split if fewer)")
    v.add_argument("--random", type=finite_float, default=0.7, help="fraction of the random masks (default 0.7)")
    v.add_argument("--block", type=integer_at_least(1), default=4, help="side of the square block masks (default 4)")
    v.add_argument("--noise-random", type=finite_float, default=0.01, help="noise std, random masks (default 0.01)")
    v.add_argument("--noise-block", type=finite_float, default=0.05, help="noise std, block masks (default 0.05)")
    v.add_argument("--n-mean", type=integer_at_least(0), default=0,
                   help="also score the mean of this many samples per image (default 0: off)")
    v.add_argument("--figure", default=None, help="figure grid (PNG): original, masked, phi4si, biharmonic")
    v.set_defaults(func=image_evaluate)

    for name, hlp in (("deblur", "deblur noisy images (and fill missing pixels: --mask) with a corruption model"),
                      ("denoise", "denoise images (and fill missing pixels: --mask) with a corruption model")):
        r = isub.add_parser(name, help=hlp)
        add_trained_model_flags(r)
        if name == "deblur":
            r.add_argument("--blur", type=finite_float, required=True, help="std of the Gaussian blur in pixels")
        r.add_argument("--noise", type=finite_float, default=0.01 if name == "deblur" else None,
                       required=name == "denoise", help="std of the observation noise (data units)"
                                                        + (" (default 0.01)" if name == "deblur" else ""))
        r.add_argument("--mask", default=None, help="missing pixels too: random:F | block:HxW | block:HxW@I,J | FILE.npy")
        r.add_argument("--data", default=None,
                       help="clean images to corrupt and restore, with scores (default: the model's held-out images)")
        r.add_argument("--observed", default=None,
                       help="already corrupted images to restore (no scores); with --mask for their missing pixels")
        r.add_argument("--n", type=integer_at_least(1), default=None, help="number of images (default: 16, or all)")
        r.add_argument("--n-mean", type=integer_at_least(1), default=1,
                       help="average over this many fillings of the missing pixels (default 1)")
        r.add_argument("--figure", default=None,
                       help="also draw clean, corrupted, a baseline (unsupervised Wiener; wavelet without blur), phi4si")
        r.set_defaults(func=image_restore, **({"blur": 0.0} if name == "denoise" else {}))
    return im


def _model(args):
    """The image model of --model, after the output, device and threads are checked."""
    from ..tasks import images as im

    prepare_run(args)
    return im.load_image_model(args.model, device=args.device)


def _images_from(args, model, n):
    from ..errors import ParameterError
    from ..tasks.images import held_out_images, load_images

    x = held_out_images(model) if args.data is None else load_images(args.data)[0]
    if x.shape[1:] != (model.channels, *model.shape):
        raise ParameterError(f"--data images have shape {x.shape[1:]}, "
                             f"the model needs {(model.channels, *model.shape)}")
    n = min(16, len(x)) if n is None else n
    if n > len(x):
        raise ParameterError(f"asked for {n} images, the source has {len(x)}")
    return x[:n]


def image_train(args, argv):
    from ..errors import ParameterError
    from ..tasks import images as im

    check_train_flags(args)
    if args.family == "corruption":
        if args.measure not in (None, "restore"):
            raise ParameterError(f"--family corruption trains on the corruption channels: --measure restore, not "
                                 f"{args.measure!r}")
        args.measure, args.param = "restore", "eta1" if args.param == "b" else args.param
    args.measure = args.measure or "images"
    run_training(im.image_data(args.data, args.n_test, args.split_seed, padding=args.padding), args, argv)


def image_generate(args, argv):
    from ..errors import ParameterError
    from ..tasks import images as im

    model = _model(args)
    if args.order is None and args.block is not None:
        raise ParameterError("--block applies to block-by-block generation only; give --order too")
    if args.order is None:
        x = im.generate_images(model, args.n, steps=args.steps, solver=args.solver, seed=args.seed,
                               batch_size=args.batch_size)
    else:
        x = im.sequential_images(model, args.n, args.order, args.block or 4, steps=args.steps, solver=args.solver,
                                 seed=args.seed, batch_size=args.batch_size)
    im.write_images(args.out, x, task_record(args, argv, task="generate", order=args.order, block=args.block),
                    overwrite=args.overwrite)
    _wrote(args.out, len(x))
    if args.figure:
        im.plot_samples(args.figure, x, title="phi4si samples" + (f" ({args.order} blocks)" if args.order else ""))


def image_inpaint(args, argv):
    import numpy as np

    from ..seeds import numpy_rng
    from ..tasks import images as im

    model = _model(args)
    x = _images_from(args, model, args.n)
    masks = im.parse_image_mask(args.mask, len(x), model.shape, args.seed)
    with flag_terms("noise"):
        y = im.observe(x, masks, args.noise, numpy_rng(args.seed, "observation_noise"))
    out = im.inpaint_images(model, y, masks, noise=args.noise, steps=args.steps, solver=args.solver,
                            seed=args.seed, denoise=args.denoise, batch_size=args.batch_size)
    im.write_images(args.out, out, task_record(args, argv, task="inpaint", mask=args.mask, noise=args.noise,
                                          denoise=args.denoise),
                    extra={"masks": masks, "observed": y.astype(np.float32), "original": x}, overwrite=args.overwrite)
    _wrote(args.out, len(out))
    if args.figure:
        im.plot_grid(args.figure, {"original": x, "phi4si": out, "biharmonic": im.baseline_fill(y, masks)},
                     masks=masks, title=f"{args.mask}, noise {args.noise}")


def image_edit(args, argv):
    import numpy as np

    from ..tasks import images as im

    model = _model(args)
    x = _images_from(args, model, args.index + 1)[args.index]
    regions = [im.parse_image_mask(r, 1, model.shape, args.seed)[0] for r in args.region]
    out = im.edit_images(model, x, regions, steps=args.steps, solver=args.solver, seed=args.seed)
    im.write_images(args.out, out, task_record(args, argv, task="edit", regions=args.region, index=args.index),
                    extra={"regions": np.stack(regions)}, overwrite=args.overwrite)
    _wrote(args.out, len(out))
    if args.figure:
        im.plot_grid(args.figure, {"before": out[:-1], "edited": out[1:]}, masks=np.stack(regions),
                     title="successive edits (row k: edit k)")


def _fmt_scores(name, r):
    s = r["scores"]
    cells = "  ".join(f"{k} {v['psnr']:.2f} dB / {v['ssim']:.3f}" for k, v in s.items())
    return f"{name}: {cells}"


def _check_evaluate(args, model, n_test):
    from ..errors import ParameterError

    if args.n_images > n_test:
        raise ParameterError(f"--n-images {args.n_images}: the model's test split has {n_test} images")


def _evaluation_figures(args, x, res):
    from ..tasks import images as im

    for name, r in res.items():
        fig = Path(args.figure)
        fig = fig.with_name(f"{fig.stem}_{name}{fig.suffix}")
        im.plot_grid(fig, {"original": x, "phi4si": r["_est"]["phi4si"], "biharmonic": r["_est"]["biharmonic"]},
                     masks=r["_masks"], title=f"{name}: {r['mask']}, noise {r['noise']}")
        print(f"figure: {fig}")


def image_evaluate(args, argv):
    from ..io import write_json
    from ..tasks import images as im

    model = _model(args)
    x = im.held_out_images(model)
    if args.n_images is None:
        args.n_images = min(300, len(x))
    _check_evaluate(args, model, len(x))
    x = x[: args.n_images]
    tasks = {"random": {"mask": f"random:{args.random}", "noise": args.noise_random},
             "block": {"mask": f"block:{args.block}x{args.block}", "noise": args.noise_block}}
    t0 = time.perf_counter()
    res = im.evaluate_inpainting(model, x, tasks, seed=args.seed, steps=args.steps, n_mean=args.n_mean,
                                 batch_size=args.batch_size, progress=lambda n, r: print(_fmt_scores(n, r)))
    if args.figure:
        _evaluation_figures(args, x, res)
    out = {"command": command_line(argv), "model": str(Path(args.model).resolve()),
           "model_step": model.meta.get("step"), "train_wall_time": model.meta.get("wall_time"),
           "settings": {"n_images": args.n_images, "steps": args.steps, "solver": args.solver, "seed": args.seed,
                        "n_mean": args.n_mean}, "wall_time": time.perf_counter() - t0,
           "tasks": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in res.items()}}
    write_json(args.out, out)
    print(f"wrote {args.out}", file=sys.stderr)
    for name, r in res.items():
        d = r["phi4si_minus_biharmonic"]
        print(f"{name}: phi4si - biharmonic: PSNR {d['psnr']:+.2f} +- {d['psnr_err']:.2f} dB, "
              f"SSIM {d['ssim']:+.3f} +- {d['ssim_err']:.3f}")


def image_restore(args, argv):
    import numpy as np

    from ..errors import ParameterError
    from ..seeds import stream_seed
    from ..tasks import images as im
    from ..tasks import restore as rs

    if args.observed is not None and args.data is not None:
        raise ParameterError("give --data (clean images to corrupt) or --observed (corrupted ones), not both")
    model = _model(args)
    src = args.data if args.observed is None else args.observed
    x = _images_from(argparse.Namespace(data=src), model, args.n)
    missing = None if args.mask is None else im.parse_image_mask(args.mask, len(x), model.shape, args.seed)
    with flag_terms("blur", "noise"):     # restore refuses bad settings before anything is written
        y = x if args.observed is not None else rs.corrupt(x, args.blur, args.noise, missing,
                                                           seed=stream_seed(args.seed, "observation_noise"))
        out = rs.restore(model, y, args.blur, args.noise, missing, seed=stream_seed(args.seed, "restore_fill"), n_mean=args.n_mean,
                         batch_size=args.batch_size)
    extra = {"observed": y.astype(np.float32)}
    rec = task_record(args, argv, task=args.task, blur=args.blur, noise=args.noise, mask=args.mask, n_mean=args.n_mean)
    if args.observed is None:
        extra["original"] = x
        sc = rs.scores(x, out)
        rec["scores"] = {"phi4si": sc, "observed": rs.scores(x, y)}
        print(f"PSNR {sc['psnr']:.2f} dB, SSIM {sc['ssim']:.3f} (observed: {rec['scores']['observed']['psnr']:.2f} dB)",
              file=sys.stderr)
    if missing is not None:
        extra["masks"] = missing
    im.write_images(args.out, out, rec, extra=extra, overwrite=args.overwrite)
    _wrote(args.out, len(out))
    if args.figure:
        cols = {"clean": x} if args.observed is None else {}
        if args.blur > 0:
            base = {"unsup. Wiener": rs.baseline_restore(y, args.blur, args.noise, missing, "unsupervised_wiener",
                                                         seed=args.seed)}
        else:
            base = {"wavelet": rs.baseline_restore(y, 0.0, args.noise, missing, "wavelet", 1.0)}
        cols.update({"corrupted": y, **base, "phi4si": out})
        im.plot_grid(args.figure, cols, title=f"{args.task}: blur {args.blur}, noise {args.noise}, mask {args.mask}")


def _wrote(path, n):
    print(f"wrote {path} ({n} images)", file=sys.stderr)
