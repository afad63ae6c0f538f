"""Exact super-resolution at the paper's point (phi4si.tasks.superres_exact): acceptance and ESS of the
independence-Metropolis chains within each coarse field's fibre, and whether the chains remove the raw bias.

Coarse fields: the blocks of side ``--factor`` of N held-out HMC configurations (the reference ensemble's
last chains, spaced along them).  Each HMC configuration is itself one exact draw from p(fine | its blocks),
so the paired difference of an observable between the chains' final states and the HMC originals has mean
zero for an exact method; the raw proposals (the first proposal of each fibre) measure the model's bias.
Observables: <S>/V and the nearest-neighbour product <phi_x phi_x+mu> (both set by the details; the
magnetisation is fixed by the blocks).  Also the fibres' self-normalised importance estimate.

    python benchmarks/superres_exact.py --ref W32/l32_ref.h5 --model haar32 --n 16 --proposals 16

Writes benchmarks/results/superres_exact_l{L}.json (per fibre: acceptance, ESS/T, log-weight spread).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402

from phi4si.lattice import action  # noqa: E402
from phi4si.model.checkpoint import load_model  # noqa: E402
from phi4si.model.density import FlowSettings  # noqa: E402
from phi4si.store import open_ensemble  # noqa: E402
from phi4si.tasks.superres import block_average  # noqa: E402
from phi4si.tasks.superres_exact import superres_metropolis  # noqa: E402


def observables(phi, params):
    V = np.prod(phi.shape[1:])
    nn = sum((phi * np.roll(phi, 1, axis=1 + d)).reshape(len(phi), -1).mean(1) for d in range(phi.ndim - 1))
    return {"s": action(phi, params) / V, "nn": nn / (phi.ndim - 1)}


def paired(a, b):
    d = a - b
    return {"mean": float(d.mean()), "error": float(d.std(ddof=1) / np.sqrt(len(d))),
            "z": float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="HMC reference ensemble at the model's lattice")
    ap.add_argument("--model", default="haar32")
    ap.add_argument("--factor", type=int, default=2)
    ap.add_argument("--n", type=int, default=16, help="coarse configurations (fibres)")
    ap.add_argument("--proposals", type=int, default=16, help="proposals per fibre")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--solver", default="rk4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info()
    model = load_model(args.model)
    params = model.target_params()
    with open_ensemble(args.ref, load=True) as ds:
        x = np.asarray(ds["phi"].values, dtype=np.float64)
    rest = x[x.shape[0] // 2:]                                    # held-out chains, spaced along them
    pick = np.linspace(0, rest.shape[1] - 1, max(1, args.n // rest.shape[0] + 1)).astype(int)
    hmc = rest[:, pick].transpose(1, 0, *range(2, rest.ndim)).reshape(-1, *rest.shape[2:])[:args.n]
    coarse = block_average(hmc, args.factor)
    fs = FlowSettings(steps=args.steps, solver=args.solver, batch_size=64)
    t0 = time.perf_counter()
    r = superres_metropolis(model, coarse, args.factor, proposals=args.proposals, fs=fs, seed=args.seed)
    seconds = time.perf_counter() - t0
    assert np.allclose(block_average(r.phi, args.factor), coarse, atol=1e-8)
    w = np.exp(r.log_w - r.log_w.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    o_hmc = observables(hmc, params)
    o_all = {k: v.reshape(args.n, args.proposals)             # every proposal's; the chains end on r.index
             for k, v in observables(r.proposals.reshape(-1, *hmc.shape[1:]), params).items()}
    res = {}
    for k in o_hmc:
        res[k] = {"hmc": float(o_hmc[k].mean()),
                  "chain_minus_hmc": paired(o_all[k][np.arange(args.n), r.index], o_hmc[k]),
                  "raw_minus_hmc": paired(o_all[k][:, 0], o_hmc[k]),     # the first proposal: a plain draw
                  "weighted_minus_hmc": paired((w * o_all[k]).sum(1), o_hmc[k])}
        print(f"{k:3s} HMC {res[k]['hmc']:+.5f}  chain-HMC {res[k]['chain_minus_hmc']['mean']:+.5f} "
              f"(z {res[k]['chain_minus_hmc']['z']:+.1f})  raw-HMC {res[k]['raw_minus_hmc']['mean']:+.5f} "
              f"(z {res[k]['raw_minus_hmc']['z']:+.1f})  weighted-HMC {res[k]['weighted_minus_hmc']['mean']:+.5f} "
              f"(z {res[k]['weighted_minus_hmc']['z']:+.1f})", flush=True)
    print(f"acceptance {r.acceptance.mean():.3f}, ESS/T {r.ess_fraction.mean():.3f}, log w spread (std within a "
          f"fibre) {r.log_w.std(1).mean():.2f}, {seconds / (args.n * args.proposals):.2f} s per proposal")
    L = hmc.shape[1]
    save(f"superres_exact_l{L}.json", {
        "benchmark": "superres_exact", "machine": info, "model": str(args.model), "factor": args.factor,
        "n": args.n, "proposals": args.proposals, "flow": {"steps": args.steps, "solver": args.solver,
                                                          "divergence": fs.divergence},
        "reference": Path(args.ref).name, "results": res,
        "acceptance": r.acceptance.tolist(), "ess_fraction": r.ess_fraction.tolist(),
        "log_w_std": r.log_w.std(1).tolist(), "seconds": seconds,
        "seconds_per_proposal": seconds / (args.n * args.proposals),
        "command": "python benchmarks/superres_exact.py " + " ".join(sys.argv[1:] if argv is None else argv)})


if __name__ == "__main__":
    main()
