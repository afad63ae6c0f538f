#!/usr/bin/env python
"""Plain HMC before and after a change: the same timing in two source trees, interleaved, one run.

Issue 17 put the Fourier samplers, the measured kernel and ``traj_length`` into the driver that plain
HMC also goes through.  This script checks that plain HMC kept its throughput: it checks out a
reference commit (default: the parent of the first issue-17 commit) into a temporary git worktree and
times, in fresh subprocesses alternating reference / current (R C R C ...) so that load from other
processes hits both alike,

* ``kernel``: ``phi4si.mcmc.hmc.HMC.step`` on 16 chains (site-updates per second, as hmc_throughput.py);
* ``driver``: ``phi4si.mcmc.run.sample_mcmc`` with ``sampler="hmc"``, 10 steps, every trajectory measured
  (m, S, G(p)) and written to HDF5 -- wall seconds per trajectory as the user sees them.

d = 2, m2 = -4, lam = 4.572, eps = 0.07 (kernel) / adapted (driver), L = 32 and 64.  Reports the
median of the rounds and the ratio current / reference; writes benchmarks/results/hmc_before_after.json.

    python benchmarks/hmc_before_after.py                 # ~3 minutes
    python benchmarks/hmc_before_after.py --ref 7afb9bb^ --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine_info, save  # noqa: E402

REF = "7afb9bb^"        # the tree before the compiled Fourier kernels (issue 17's first commit)

TIMER = r"""
import json, sys, tempfile, time, os
import numpy as np
from phi4si.lattice import Phi4Params
from phi4si.mcmc.hmc import HMC
from phi4si.mcmc.run import sample_mcmc
L, what = int(sys.argv[1]), sys.argv[2]
p = Phi4Params((L, L), -4.0, 4.572)
if what == "kernel":
    hmc = HMC(p, 10, "leapfrog")
    rng = np.random.default_rng(0)
    phi = rng.standard_normal((16, L * L))
    hmc.step(phi, rng, 0.07)
    n, dt = 4, 0.0
    while dt < 1.0:
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            hmc.step(phi, rng, 0.07)
        dt = time.perf_counter() - t0
    print(json.dumps({"site_updates_per_s": 16 * L * L * 11 * n / dt}))
else:
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "e.h5")
        sample_mcmc(p, f, chains=16, n_traj=8, n_therm=8, seed=1, progress=False, n_steps=10)
        n = 200 if L <= 32 else 60
        t0 = time.perf_counter()
        sample_mcmc(p, f, chains=16, n_traj=n, n_therm=n // 4, seed=1, progress=False, n_steps=10, overwrite=True)
        dt = time.perf_counter() - t0
    print(json.dumps({"seconds_per_traj": dt / (n + n // 4)}))
"""


def time_in(tree: Path, cache: Path, L: int, what: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", TIMER, str(L), what], env=env, cwd=tree, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default=REF, help="git revision of the reference tree (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    args = ap.parse_args(argv)
    ref = subprocess.run(["git", "rev-parse", args.ref], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    cur = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    info = machine_info()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", str(wt), ref], cwd=ROOT, check=True, capture_output=True)
        trees = {"reference": wt, "current": ROOT}
        cache = {k: Path(tmp) / f"numba_{k}" for k in trees}
        try:
            for L in args.sizes:
                for what, key in (("kernel", "site_updates_per_s"), ("driver", "seconds_per_traj")):
                    for k, tree in trees.items():
                        time_in(tree, cache[k], L, what)               # compile (numba cache) first
                    vals = {k: [] for k in trees}
                    for _ in range(args.rounds):
                        for k, tree in trees.items():
                            vals[k].append(time_in(tree, cache[k], L, what)[key])
                    med = {k: statistics.median(v) for k, v in vals.items()}
                    ratio = med["current"] / med["reference"]
                    if key == "seconds_per_traj":
                        ratio = 1.0 / ratio                               # > 1: current is faster
                    rows.append({"L": L, "what": what, "metric": key, "rounds": vals, "median": med,
                                 "speed_current_over_reference": ratio})
                    print(f"L={L:3d} {what:6s} {key:20s} ref {med['reference']:.4g}  cur {med['current']:.4g}  "
                          f"speed cur/ref {ratio:.3f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True)
    info["loadavg_end"] = list(os.getloadavg())
    save("hmc_before_after.json", {"benchmark": "hmc_before_after", "machine": info,
                                   "reference": {"rev": args.ref, "commit": ref}, "current": cur, "results": rows,
                                   "command": "python benchmarks/hmc_before_after.py " +
                                              " ".join(sys.argv[1:] if argv is None else argv)})


if __name__ == "__main__":
    main()
