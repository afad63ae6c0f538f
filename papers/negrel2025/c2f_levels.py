"""Where coarse-to-fine sequential generation goes wrong: the statistics of each sublattice level.

Coarse-to-fine generation (``sequential(order="coarse_to_fine", levels=K)``) draws the stride-2^(K-1)
sublattice first, with every other site still noise, then the finer levels given the coarser ones;
later levels never change the sites already drawn.  So the magnetisation of the stride-s sublattice
of the final configurations is exactly what the levels up to stride s produced, and comparing it
with the same sublattice of HMC configurations shows at which level the bias enters.

    python papers/negrel2025/c2f_levels.py --model l32 --ref WORK/l32_ref.h5 --n 600 \
        --run 3:heun:10 --run 2:heun:10 --out papers/negrel2025/results/l32_c2f_levels.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def sublattice_stats(phi, strides):
    """<|m_s|> with its error and chi_s = V_s Var(m_s) of the stride-s sublattice, per stride."""
    out = {}
    for s in strides:
        sub = phi[(slice(None),) + (slice(None, None, s),) * (phi.ndim - 1)]
        m = sub.reshape(len(sub), -1).mean(-1)
        out[s] = {"abs_m": float(np.abs(m).mean()), "abs_m_err": float(np.abs(m).std(ddof=1) / np.sqrt(len(m))),
                  "chi": float(m.var(ddof=1) * sub[0].size)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", required=True, help="HMC ensemble with stored configurations")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--run", action="append", required=True, metavar="LEVELS:SOLVER:STEPS")
    ap.add_argument("--ref-every", type=int, default=4, help="use every N-th stored reference configuration")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    import torch

    from phi4si import load_model, open_ensemble
    from phi4si.model.generate import sequential

    torch.set_num_threads(a.threads)
    with open_ensemble(a.ref) as ds:
        ref = np.asarray(ds["phi"].values[:, :: a.ref_every], dtype=np.float64)
    ref = ref.reshape(-1, *ref.shape[2:])
    model = load_model(a.model)
    levels_max = max(int(r.split(":")[0]) for r in a.run)
    strides = [2 ** i for i in range(levels_max)][::-1]
    doc = {"model": a.model, "ref": a.ref, "n": a.n, "ref_n": len(ref), "ref_stats": sublattice_stats(ref, strides),
           "runs": []}
    for spec in a.run:
        levels, solver, steps = spec.split(":")
        t0 = time.perf_counter()
        phi = sequential(model, a.n, order="coarse_to_fine", levels=int(levels), steps=int(steps), solver=solver,
                         seed=a.seed, batch_size=500)
        g = sublattice_stats(phi, strides)
        rel = {s: {"abs_m": g[s]["abs_m"] / doc["ref_stats"][s]["abs_m"] - 1,
                   "chi": g[s]["chi"] / doc["ref_stats"][s]["chi"] - 1} for s in strides}
        doc["runs"].append({"spec": spec, "stats": g, "rel": rel, "seconds": time.perf_counter() - t0})
        print(spec, "  ".join(f"stride {s}: |m| {100 * rel[s]['abs_m']:+.1f}% (+-{100 * g[s]['abs_m_err'] / g[s]['abs_m']:.1f}) "
                              f"chi {100 * rel[s]['chi']:+.1f}%" for s in strides), flush=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, default=str)


if __name__ == "__main__":
    main()
