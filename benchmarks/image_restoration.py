#!/usr/bin/env python
"""Image restoration with one corruption-family model (THEORY.md 8.1) against tuned scikit-image baselines.

Data: scikit-learn's digits upsampled to 16x16 (``digits16``): 8x8 is too small to blur by 1-2 pixels
meaningfully, the 1797 images are independent (patches of scikit-image's few natural images would share
their source image between the training and the test split), and they ship with the wheel.  300 held-out
test images (the model's split); the baselines' parameters are tuned by PSNR on 150 images of the
*training* split, never on the test images.

One model, trained once (``phi4si image train --data digits16 --family corruption``; resumable: the script
continues a checkpoint that has not reached its training budget), then per task, on the same corrupted
test images (periodic Gaussian blur of s pixels, noise std in data units, missing pixels):

* ``deblur_s1`` blur 1, noise 0.01;  ``deblur_s2`` blur 2, noise 0.01  (Wiener, unsupervised Wiener,
  Richardson-Lucy);
* ``denoise`` noise 0.1 (total variation, wavelet BayesShrink, Gaussian smoothing);
* ``mixed`` blur 1, noise 0.01 and 30 % of the pixels missing (each deblurring baseline, then biharmonic
  inpainting, and inpainting first then deblurring).

phi4si returns E[x | y] (one network evaluation; averaged over 4 fillings of the missing pixels for the
mixed task).  Reports mean PSNR / SSIM with standard errors, the paired difference to the best baseline,
and writes ``benchmarks/results/image_restoration.json`` and a figure grid per task
(``image_restoration_<task>.png``: clean, corrupted, each baseline, phi4si).

    python benchmarks/image_restoration.py --workdir W                 # trains ~25 min, then ~5 min
    python benchmarks/image_restoration.py --workdir W --train-minutes 0   # evaluate W/restore16.pt as is
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine_info, save  # noqa: E402

from phi4si.seeds import stream_seed  # noqa: E402
from phi4si.tasks import images as im  # noqa: E402
from phi4si.tasks import restore as rs  # noqa: E402

TASKS = {
    "deblur_s1": dict(blur=1.0, noise=0.01, missing=None),
    "deblur_s2": dict(blur=2.0, noise=0.01, missing=None),
    "denoise": dict(blur=0.0, noise=0.1, missing=None),
    "mixed": dict(blur=1.0, noise=0.01, missing=0.3),
}
N_VAL = 150


def train_model(path: Path, minutes: float, seed: int):
    from phi4si.model.checkpoint import read_checkpoint
    from phi4si.model.train import TrainConfig

    cfg = TrainConfig(minutes=minutes, steps=None, family="corruption", param="eta1", measure="restore",
                      model="medium", batch_size=128, seed=seed, threads=2, val_every=500, checkpoint_every=250)
    resume = path.exists()
    if resume:
        ck = read_checkpoint(path)
        if ck.get("done") or (ck.get("wall_time", 0) >= 60 * minutes * 0.98):
            return
    t0 = time.perf_counter()
    im.train_images("digits16", path, cfg, resume=resume, progress=False)
    print(f"trained {path} ({time.perf_counter() - t0:.0f} s this run)", flush=True)


def corrupted(x, task, seed):
    t = TASKS[task]
    miss = None if t["missing"] is None else im.random_masks(len(x), x.shape[2:], t["missing"],
                                                           seed=stream_seed(seed, "evaluate", 1))
    y = rs.corrupt(x, t["blur"], t["noise"], miss, seed=stream_seed(seed, "observation_noise"))
    return y, miss


def methods_for(task):
    kind = "denoise" if task == "denoise" else "deblur"
    ms = [m for m, (_, _, kinds) in rs.BASELINE_METHODS.items() if kind in kinds]
    if TASKS[task]["missing"] is None:
        return [(m, "deblur_first") for m in ms]
    return [(m, o) for m in ms for o in ("deblur_first", "inpaint_first")]


def run_task(model, task, x_test, x_val, seed):
    t = TASKS[task]
    y, miss = corrupted(x_test, task, seed)
    yv, missv = corrupted(x_val, task, seed + 1)
    row = {"setting": {k: v for k, v in t.items()}, "baselines": {}}
    est = {"clean": x_test, "corrupted": y}
    t0 = time.perf_counter()
    out = rs.restore(model, y, t["blur"], t["noise"], miss, seed=stream_seed(seed, "restore_fill"),
                     n_mean=1 if miss is None else 4)
    row["phi4si"] = dict(rs.scores(x_test, out), seconds=time.perf_counter() - t0)
    row["corrupted"] = rs.scores(x_test, y)
    for method, order in methods_for(task):
        name = method if miss is None else f"{method}+{order}"
        t0 = time.perf_counter()
        tuned = rs.tune_baseline(x_val, yv, t["blur"], t["noise"], missv, method, order, seed)
        b = rs.baseline_restore(y, t["blur"], t["noise"], miss, method, tuned["param"], order, seed)
        row["baselines"][name] = dict(rs.scores(x_test, b), tuned_on_validation=tuned,
                                      seconds=time.perf_counter() - t0)
        est[name] = b
    best = max(row["baselines"], key=lambda k: row["baselines"][k]["psnr"])
    bb = est[best]
    dp = im.psnr(x_test, out) - im.psnr(x_test, bb)
    ds = im.ssim(x_test, out) - im.ssim(x_test, bb)
    se = lambda v: float(v.std(ddof=1) / np.sqrt(len(v)))  # noqa: E731
    row["best_baseline"] = best
    row["phi4si_minus_best"] = {"psnr": float(dp.mean()), "psnr_se": se(dp), "ssim": float(ds.mean()), "ssim_se": se(ds)}
    best_ssim = max(row["baselines"], key=lambda k: row["baselines"][k]["ssim"])
    row["best_ssim_baseline"] = best_ssim
    row["target"] = {"psnr_plus_2dB": bool(dp.mean() >= 2.0),
                     "ssim_above_best": bool(row["phi4si"]["ssim"] > row["baselines"][best_ssim]["ssim"])}
    est["phi4si"] = out
    return row, est, miss


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True, help="folder of the trained model (restore16.pt)")
    ap.add_argument("--train-minutes", type=float, default=25.0, help="training budget (0: evaluate as is)")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=300)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    path = wd / "restore16.pt"
    if args.train_minutes > 0:
        train_model(path, args.train_minutes, args.seed)
    info = machine_info()
    model = im.load_image_model(path)
    x_all, _ = im.load_images("digits16")
    p = model.lattice["params"]
    train_idx, test_idx = im.split(len(x_all), p["n_test"], p["split_seed"])
    x_test = x_all[test_idx][: args.n_test].astype(np.float64)
    x_val = x_all[train_idx][np.random.default_rng(args.seed).permutation(len(train_idx))[:N_VAL]].astype(np.float64)
    res = {}
    for task in args.tasks:
        row, est, miss = run_task(model, task, x_test, x_val, args.seed)
        res[task] = row
        d = row["phi4si_minus_best"]
        print(f"{task:10s} phi4si {row['phi4si']['psnr']:.2f} dB / {row['phi4si']['ssim']:.3f}; best baseline "
              f"{row['best_baseline']} {row['baselines'][row['best_baseline']]['psnr']:.2f} dB; phi4si - best: "
              f"{d['psnr']:+.2f} +- {d['psnr_se']:.2f} dB, SSIM {d['ssim']:+.3f} +- {d['ssim_se']:.3f}", flush=True)
        im.plot_grid(RESULTS / f"image_restoration_{task}.png", est, masks=miss,
                     title=f"{task}: blur {TASKS[task]['blur']}, noise {TASKS[task]['noise']}, "
                           f"missing {TASKS[task]['missing'] or 0}")
    meta = model.meta or {}
    save("image_restoration.json", {
        "benchmark": "image_restoration", "machine": info, "data": "digits16 (scikit-learn digits, 2x cubic spline)",
        "n_test": len(x_test), "n_validation": N_VAL, "model": {"path": str(path), "step": meta.get("step"),
                                                               "train_wall_time": meta.get("wall_time"),
                                                               "family": model.family.to_dict()},
        "tasks": res,
        "command": "python benchmarks/image_restoration.py " + " ".join(sys.argv[1:] if argv is None else argv)})


if __name__ == "__main__":
    main()
