"""Train small, generate large, with numbers: why a model trained at L = 16 is biased at L = 32 and
what a short fine-tune at L = 32 changes (issue: the paper's own point at L = 32).

Three measurements:

* **Receptive field.**  The sensitivity of the drift at one site to the field elsewhere,
  |d b_c / d phi_x| (autograd, on a lattice large enough that nothing wraps: 4x the model's
  training side), averaged over noise inputs at times a in --times, as a function of the distance
  |x - c| (the largest of the two axis distances, periodic).  Reported: the radius holding 50 %,
  90 %, 99 % of the summed sensitivity and the largest radius reached at all (the network's
  hard receptive field, from its convolutions and pooling levels), against the correlation length
  xi_2 of the HMC ensembles at both sizes.
* **Which momenta are wrong.**  From ``benchmarks/generation_speed.py`` result files of runs at
  L = 32 (``--gen LABEL=FILE``): the relative deviation of the momentum spectrum G(p) from HMC per
  momentum orbit, split into the momenta that exist on the L = 16 lattice (all components even
  multiples of 2 pi / 32) and those that do not (the new, longer wavelengths among them).
* **The pooling pyramid.**  The side of the coarsest level of the U-Net at L = 16 and L = 32
  against xi_2: how many correlation lengths the coarsest feature map spans.

    python papers/negrel2025/l32_transfer.py --model l16 --ref16 l16_ref.h5 --ref32 l32_ref.h5 \\
        --gen l16_at_32=papers/negrel2025/results/l32_generation.json --out papers/negrel2025/results/l32_transfer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def sensitivity(model, side: int, times, n: int = 8, seed: int = 0) -> np.ndarray:
    """Mean |d b_c / d phi_x| over ``n`` noise inputs and the ``times`` (generation path: every site
    at the same a), c the centre of a side x side lattice, as a (side, side) array."""
    gen = torch.Generator().manual_seed(seed)
    out = np.zeros((side, side))
    c = side // 2
    for a in times:
        x = torch.randn(n, 1, side, side, generator=gen, requires_grad=True)
        av = torch.full_like(x, float(a))
        b = model.net(x, model.family.features(av))
        b[:, 0, c, c].sum().backward()
        out += x.grad.abs().mean(0)[0].numpy()
    return out / len(times)


def radii(sens: np.ndarray, fractions=(0.5, 0.9, 0.99)) -> dict:
    side = sens.shape[0]
    c = side // 2
    d = np.arange(side) - c
    r = np.maximum(np.abs(d)[:, None], np.abs(d)[None, :])
    total = sens.sum()
    per_r = np.bincount(r.ravel(), weights=sens.ravel())
    cum = np.cumsum(per_r) / total
    out = {f"r{int(f * 100)}": int(np.searchsorted(cum, f)) for f in fractions}
    nz = r[sens > sens.max() * 1e-7]
    out["r_max"] = int(nz.max())
    out["side"] = side
    out["profile"] = (per_r / total).tolist()
    return out


def xi2(path) -> tuple[float, float]:
    from phi4si.analysis.report import analyze_file

    r = analyze_file(path)
    return float(r["xi2"]["value"]), float(r["xi2"]["error"])


def momenta(gen_file) -> dict:
    doc = json.loads(Path(gen_file).read_text())
    labels = np.asarray(doc["momentum_orbits"])
    L = doc["shape"][0]
    on16 = np.all(labels % 2 == 0, axis=1)            # components n_i even: a momentum of the L/2 lattice
    ref = np.asarray(doc["ref_G"])
    out = {}
    for row in doc["rows"]:
        G = np.asarray(row["G"]["gen"])
        z = np.asarray(row["G"]["z"])
        rel = G / ref - 1
        p2 = (4 * np.sin(np.pi * labels / L) ** 2).sum(1)
        order = np.argsort(p2)
        out[row["spec"]] = {
            "lowest": [{"n": labels[i].tolist(), "p_hat2": float(p2[i]), "rel_dev": float(rel[i]), "z": float(z[i]),
                        "on_L16": bool(on16[i])} for i in order[:6]],
            "max_abs_rel_on_L16": float(np.abs(rel[on16]).max()),
            "max_abs_rel_new": float(np.abs(rel[~on16]).max()),
            "max_abs_rel_new_low": float(np.abs(rel[~on16 & (p2 < p2[on16 & (p2 > 0)].min())]).max()),
            "observables": {k: v["rel_dev"] for k, v in row["observables"].items()},
        }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the L = 16 model (a checkpoint or a shipped name)")
    ap.add_argument("--ref16", required=True)
    ap.add_argument("--ref32", required=True)
    ap.add_argument("--gen", action="append", default=[], metavar="LABEL=FILE",
                    help="generation_speed.py results at L = 32")
    ap.add_argument("--times", type=float, nargs="+", default=[0.25, 0.5, 0.75, 0.95])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from phi4si.model import load_model

    model = load_model(args.model)
    model.net.eval()
    L = model.shape[0]
    rf = radii(sensitivity(model, 4 * L, args.times))
    levels = len(model.net.config.channel_mult)
    x16, x32 = xi2(args.ref16), xi2(args.ref32)
    res = {"model": args.model, "train_side": L, "times": args.times, "receptive_field": rf,
           "xi2": {"L16": x16, "L32": x32}, "pooling_levels": levels,
           "coarsest_side": {"L16": L // 2 ** (levels - 1), "L32": 2 * L // 2 ** (levels - 1)},
           "momenta": {lab: momenta(f) for lab, f in (g.split("=", 1) for g in args.gen)},
           "command": " ".join(sys.argv)}
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"receptive field of {args.model} (trained at L = {L}): 50/90/99 % of |db_c/dphi| within "
          f"r = {rf['r50']}/{rf['r90']}/{rf['r99']}, nothing beyond r = {rf['r_max']} (L/2 at L = 32: 16)")
    print(f"xi_2: L = 16 {x16[0]:.3f}({x16[1]:.2g}), L = 32 {x32[0]:.3f}({x32[1]:.2g}); pooling levels {levels}, "
          f"coarsest map {res['coarsest_side']}")
    for lab, m in res["momenta"].items():
        for spec, v in m.items():
            print(f"{lab} {spec}: max |G/G_HMC - 1| on L = 16 momenta {v['max_abs_rel_on_L16']:.3f}, on new momenta "
                  f"{v['max_abs_rel_new']:.3f} (below the lowest L = 16 momentum {v['max_abs_rel_new_low']:.3f}); "
                  + ", ".join(f"{k} {x:+.3f}" for k, x in v["observables"].items()))
            for q in v["lowest"]:
                print(f"    n = {q['n']} p^2 = {q['p_hat2']:.4f} G rel {q['rel_dev']:+.3f} (z {q['z']:+.1f})"
                      f"{' (on L=16)' if q['on_L16'] else ''}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
