#!/usr/bin/env python
"""Seconds per neural block update on the whole lattice and on a window around the block
(:mod:`phi4si.model.window`), at several lattice sizes, measured in one run.

Each ``--run L:WINDOW:STEPS[:q=QUADRATURE][:div=DIVERGENCE]`` times ``--updates`` calls of
:func:`phi4si.model.exact.block_update` with ``--chains`` chains (one call updates one block of
every chain: a forward inpainting flow for the new block and a reverse one for the old), on
configurations of the lattice L x L (model samples; the cost does not depend on them), WINDOW
``full`` (the whole lattice) or a side W.  Reported: seconds per call, seconds per block update
(per call / chains) and the acceptance (meaningful only at the model's own couplings; the hybrid
study measures it properly).  The first run is the baseline of the speed-ups.  The load average is
recorded; one torch thread (``--threads``).

    python benchmarks/block_update_cost.py --model l16 --block 4 --chains 16 \\
        --run 16:full:10 --run 16:12:10 --run 32:full:10 --run 32:12:10 --run 64:12:10 --out block_update_cost.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402


def parse(spec):
    parts = spec.split(":")
    opts = {"q": "gauss2", "div": "exact"}
    while parts and "=" in parts[-1]:
        k, _, v = parts.pop().partition("=")
        if k not in opts:
            raise SystemExit(f"--run {spec!r}: unknown field {k!r}")
        opts[k] = v
    if len(parts) != 3:
        raise SystemExit(f"--run {spec!r}: expected L:WINDOW:STEPS[:q=...][:div=...]")
    return {"spec": spec, "L": int(parts[0]), "window": None if parts[1] == "full" else int(parts[1]),
            "steps": int(parts[2]), **opts}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a checkpoint or a shipped name")
    ap.add_argument("--run", action="append", required=True)
    ap.add_argument("--block", type=int, default=4)
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from phi4si.model import load_model
    from phi4si.model.density import FlowSettings
    from phi4si.model.exact import block_update
    from phi4si.model.generate import generate

    model = load_model(args.model)
    info = machine_info()
    rows = []
    for spec in args.run:
        run = parse(spec)
        L = run["L"]
        params = model.target_params(shape=(L, L))
        phi = generate(model, args.chains, (L, L), seed=args.seed)
        fs = FlowSettings(steps=run["steps"], solver="rk4", divergence=run["div"], quadrature=run["q"],
                          batch_size=args.chains)
        rng = np.random.default_rng(args.seed)
        block_update(model, phi, params, args.block, rng, fs, run["window"])        # warm-up
        t0 = time.perf_counter()
        acc = []
        for _ in range(args.updates):
            phi, a, _ = block_update(model, phi, params, args.block, rng, fs, run["window"])
            acc.append(a.mean())
        per_call = (time.perf_counter() - t0) / args.updates
        row = {**run, "seconds_per_call": per_call, "seconds_per_update": per_call / args.chains,
               "acceptance": float(np.mean(acc))}
        rows.append(row)
        print(f"{spec:24s} {per_call:8.3f} s per call of {args.chains} chains, {row['seconds_per_update']:7.4f} s "
              f"per {args.block}x{args.block} block update (acceptance {row['acceptance']:.2f})", flush=True)
    base = rows[0]
    for r in rows:
        r["speedup"] = base["seconds_per_update"] / r["seconds_per_update"]
    info["loadavg_end"] = list(os.getloadavg())
    path = save(Path(args.out).name, {"benchmark": "block_update_cost", "machine": info, "model": args.model,
                                      "block": args.block, "chains": args.chains, "updates": args.updates,
                                      "threads": args.threads, "rows": rows, "command": " ".join(sys.argv)},
                out=args.out if "/" in args.out else None)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
