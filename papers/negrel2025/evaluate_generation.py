"""Compare a trained model's raw generated ensemble with an HMC ensemble (issue: phi^4 targets).

For each generation setting (solver:steps, or sde<eps>:steps) the script generates N
configurations, writes them as a phi4si ensemble (so ``phi4si analyze`` works on them), and
compares with the reference file (phi4si.analysis.compare, what ``phi4si compare`` prints) on <|m|>,
chi, U4, xi_2, <m^2>, <S>/V, <phi^2> (values with Gamma-method errors, relative deviation, z-score),
the momentum spectrum G(p) on every orbit, the histogram of m (total-variation distance with its null
level, and the Kolmogorov-Smirnov statistic) and G(x) along one axis.

    python papers/negrel2025/evaluate_generation.py --model l8.pt --ref l8_ref.h5 --n 20000 \
        --settings heun:20 heun:50 rk4:20 euler:100 sde1:100 --out results/l8_eval.json

``--shape 32 32`` evaluates the model on a larger lattice than it was trained on (train small,
generate large); the reference must then be an HMC ensemble at that shape.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OBS = ("abs_m", "chi", "binder", "xi2", "m2", "s", "phi2")


def _m_series(path):
    import h5py

    with h5py.File(path, "r") as f:
        n = int(f.attrs["n_done"])
        return np.asarray(f["m"][:, :n]).ravel()


def _G_axis(path, max_cfg=20000):
    import h5py

    with h5py.File(path, "r") as f:
        n = int(f["cfg"].shape[0])
        phi = np.asarray(f["phi"][:, :n], dtype=np.float64)
    phi = phi.reshape(-1, *phi.shape[2:])[:max_cfg]
    d = phi.ndim - 1
    axes = tuple(range(1, d + 1))
    ft = np.fft.fftn(phi, axes=axes)
    corr = np.fft.ifftn(np.abs(ft) ** 2, axes=axes).real / np.prod(phi.shape[1:])
    m = phi.mean(axis=axes)
    G = corr - (m ** 2)[(...,) + (None,) * d]          # per-config, subtract m^2 (connected, |m| trick not needed)
    line = G[(slice(None), slice(None)) + (0,) * (d - 1)]
    L = phi.shape[1]
    g = line[:, : L // 2 + 1]
    return g.mean(0), g.std(0) / np.sqrt(len(g))


def _ref_configs(path, n):
    """n configurations of the reference file, spread over chains and time (for inpainting)."""
    import h5py

    with h5py.File(path, "r") as f:
        nc = int(f["cfg"].shape[0])
        phi = np.asarray(f["phi"][:, :nc], dtype=np.float64)
    flat = phi.reshape(-1, *phi.shape[2:])
    if len(flat) < n:
        raise SystemExit(f"{path} holds {len(flat)} configurations, fewer than --n {n}")
    idx = np.random.default_rng(0).choice(len(flat), n, replace=False)
    return flat[np.sort(idx)]


def compare(gen_path, ref_path) -> dict:
    """The generated file against the reference through :func:`phi4si.analysis.compare.compare` (every
    observable, G(p) on every momentum orbit, the m-histogram distance and its null level), in this
    script's JSON layout (plus G along one axis and the Kolmogorov-Smirnov statistic of m)."""
    from scipy.stats import ks_2samp

    from phi4si.analysis.compare import compare as compare_ensembles

    c = compare_ensembles([ref_path, gen_path], labels=["ref", "gen"])
    out = {}
    for r in c.rows:
        if r["key"] not in OBS:
            continue
        ok = np.isfinite(r["value"]) and np.isfinite(r["ref"])
        out[r["key"]] = {"gen": r["value"] if ok else None, "gen_err": r["error"], "ref": r["ref"] if ok else None,
                         "ref_err": r["ref_error"], "rel_dev": r["value"] / r["ref"] - 1.0 if ok and r["ref"] else None,
                         "z": r["z"] if np.isfinite(r["z"]) else None}
    h = c.histograms["gen"]
    out["hist_m"] = {"tv": h["tv"], "tv_null_mean": h["null_mean"], "tv_null_95": h["null_95"],
                     "ks": float(ks_2samp(_m_series(gen_path), _m_series(ref_path)).statistic)}
    sp = c.spectra["gen"]
    labels, G, Ge = c.summaries[1].spectrum
    out["G_p"] = {"orbits": labels.tolist(), "gen": G.tolist(), "gen_err": Ge.tolist(),
                  "ref": c.reference.spectrum[1].tolist(), "ref_err": c.reference.spectrum[2].tolist(),
                  "max_rel_dev": sp["max_rel"], "max_z": sp["max_z"], "n_z3": sp["n_z3"], "worst": sp["worst"]}
    Gg, Gge = _G_axis(gen_path)
    Gr, Gre = _G_axis(ref_path)
    out["G"] = {"gen": Gg.tolist(), "gen_err": Gge.tolist(), "ref": Gr.tolist(), "ref_err": Gre.tolist(),
                "max_z": float(np.max(np.abs(Gg - Gr) / np.hypot(Gge, Gre)))}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", required=True, help="HMC ensemble to compare with")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--settings", nargs="+", default=["heun:20", "heun:50", "rk4:20", "euler:100"],
                    help="[TASK/]SOLVER:STEPS with SOLVER euler|heun|rk4 or sdeEPS (e.g. sde1:100); TASK "
                         "seq=ORDER,BLOCK (seq=coarse_to_fine,LEVELS) for sequential generation, "
                         "inpaint=MASK (block:4x4@2,2, random:0.5) to complete reference configurations; "
                         "no TASK = generation from noise")
    ap.add_argument("--grid-power", type=float, default=1.0)
    ap.add_argument("--shape", type=int, nargs="+")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="JSON results")
    ap.add_argument("--keep", help="directory to keep the generated ensembles in")
    args = ap.parse_args(argv)

    import torch

    from phi4si.model.generate import generate, inpaint, parse_mask, sequential, write_samples
    from phi4si.lattice import Phi4Params
    from phi4si.model import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    shape = tuple(args.shape) if args.shape else model.shape
    params = Phi4Params.from_dict({**model.lattice["params"], "shape": list(shape)})
    res = {"model": str(Path(args.model).resolve()), "ref": str(Path(args.ref).resolve()), "n": args.n,
           "shape": list(shape), "train_shape": list(model.shape), "model_step": model.meta.get("step"),
           "train_wall_time": model.meta.get("wall_time"), "train_config": model.meta.get("train_config"),
           "command": " ".join(sys.argv), "runs": []}
    tmpdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    tmpdir.mkdir(parents=True, exist_ok=True)
    ref_phi = None
    for s in args.settings:
        task, _, solv = s.rpartition("/")
        name, steps = solv.split(":")
        steps = int(steps)
        sde = float(name[3:]) if name.startswith("sde") else None
        solver = "euler" if sde is not None else name
        t0 = time.perf_counter()
        kw = dict(steps=steps, solver=solver, sde=sde, seed=args.seed, batch_size=args.batch_size,
                  grid_power=args.grid_power)
        if task.startswith("seq="):                      # seq=ORDER,BLOCK  (coarse_to_fine: seq=coarse_to_fine,LEVELS)
            order, arg = task[4:].split(",")
            extra = {"levels": int(arg)} if order == "coarse_to_fine" else {"block": int(arg)}
            phi = sequential(model, args.n, order=order, shape=shape, **extra, **kw)
        elif task.startswith("inpaint="):               # inpaint=MASKSPEC on reference configurations
            if ref_phi is None:
                ref_phi = _ref_configs(args.ref, args.n)
            mask = parse_mask(task[8:], shape, seed=args.seed)
            phi = inpaint(model, ref_phi, mask, **kw)
        else:
            phi = generate(model, args.n, shape=shape, **kw)
        dt = time.perf_counter() - t0
        path = tmpdir / ("gen_" + "".join(ch if ch.isalnum() else "_" for ch in s) + ".h5")
        write_samples(path, phi, params, {"sampler": "interpolant", "exact": False, "task": task or "generate",
                                          "solver": solver, "steps": steps, "sde": sde},
                      {"seed": args.seed, "wall_time": dt}, overwrite=True)
        c = compare(path, args.ref)
        res["runs"].append({"setting": s, "seconds": dt, "cfg_per_s": args.n / dt, **c})
        print(f"{s:>24}  {dt:6.1f}s  " + "  ".join(
            f"{k}={c[k]['gen']:.4g}({c[k]['rel_dev'] * 100:+.1f}%, z={c[k]['z']:+.1f})" for k in ("abs_m", "chi", "binder", "xi2")
            if c[k].get("rel_dev") is not None) + f"  TV(m)={c['hist_m']['tv']:.3f} (null {c['hist_m']['tv_null_mean']:.3f})",
              flush=True)
    ref = res["runs"][0]
    print("reference: " + "  ".join(f"{k}={ref[k]['ref']:.4g}+-{ref[k]['ref_err']:.2g}" for k in ("abs_m", "chi", "binder", "xi2")))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
