#!/usr/bin/env python
"""HMC throughput: site-updates per second of phi4si's numba HMC against a batched torch baseline.

A *site-update* is one force evaluation on one lattice site; a leapfrog trajectory of
n steps costs n + 1 force evaluations per site (``HMC.forces_per_trajectory``), so

    rate = chains * V * (n_steps + 1) / (seconds per trajectory of all chains).

Setup (the paper's point): d = 2, m2 = -4, lam = 4.572, leapfrog, 10 steps, eps = 0.07,
L = 16, 32, 64.  Runners, measured in the same process and interleaved block by block
(A B C A B C ...) so that load from other processes on a shared machine hits all of them alike:

* ``numba``          phi4si.mcmc.hmc.HMC.step: fused padded-layout sweeps, momenta drawn in the kernel;
* ``numba_npmom``    the same kernel fed with numpy ``rng.standard_normal`` momenta (shows the RNG cost);
* ``numba_before``   the pre-optimisation algorithm (separate hop-sum / force / kick / drift loops over
                     flat arrays, numpy momenta), rebuilt here from the original code for reference;
* ``torch``          the way the paper's notebooks write it: float32 batch (chains, L, L), torch.roll
                     nearest neighbours, analytic force, out-of-place leapfrog, Metropolis accept/reject,
                     ``torch.set_num_threads(2)``; tried at two batch sizes, the faster one is the baseline;
* ``torch_autograd`` the same with the force from autograd of the action (as notebooks often do).

Prints a table and writes ``benchmarks/results/hmc_throughput.json``.  A timed *benchmark*,
not a test: run it by hand, ideally on an otherwise idle machine.

    python benchmarks/hmc_throughput.py            # ~3 minutes
    python benchmarks/hmc_throughput.py --quick    # ~1 minute smoke run
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numba as nb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpuinfo, machine_info, save, threading_layer  # noqa: E402

from phi4si.lattice import Phi4Params  # noqa: E402
from phi4si.lattice.kernels import action_with, force_into  # noqa: E402
from phi4si.mcmc.hmc import HMC, hmc_batch  # noqa: E402

M2, LAM, N_STEPS, EPS = -4.0, 4.572, 10, 0.07

# Floating-point work of the hot loops per site-update (counted in the generated AVX2 code of
# phi4si.lattice.kernels.md_pass_2d; an FMA counts 2): kick = 3 add (hop) + 1 mul (x^2) + 4 FMA
# (force polynomial and p += w F) = 12 flops, drift
# x += a p = 1 FMA = 2 flops.  The two measuring sweeps per trajectory (S, |p|^2) and the
# momentum generation add work that is not counted.
FLOPS_PER_SITE_UPDATE = 14
# Memory operations per site-update in the same loops (8-byte words): kick loads x at 5 places
# and p, stores p; drift loads x and p, stores x.
LOADS_PER_SITE_UPDATE, STORES_PER_SITE_UPDATE = 8, 2


# ------------------------------------------------------------------------------------------
# reference: the pre-optimisation numba HMC (as in the first commit of phi4si.mcmc.hmc)
# ------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def _before_md(x, p, f, eps, n_steps, shape, c, lam, h):
    V = x.shape[0]
    force_into(x, f, shape, c, lam, h)
    w = 0.5 * eps
    for i in range(V):
        p[i] += w * f[i]
    for s in range(n_steps):
        for i in range(V):
            x[i] += eps * p[i]
        force_into(x, f, shape, c, lam, h)
        w = eps if s < n_steps - 1 else 0.5 * eps
        for i in range(V):
            p[i] += w * f[i]


@nb.njit(cache=True, parallel=True)
def _before_hmc_batch(phi, mom, u, eps, n_steps, shape, c, lam, h, acc, dH):
    nc, V = phi.shape
    for ci in nb.prange(nc):
        x = phi[ci].copy()
        p = mom[ci]
        f = np.empty(V)
        k0 = 0.0
        for i in range(V):
            k0 += p[i] * p[i]
        h0 = 0.5 * k0 + action_with(x, f, shape, c, lam, h)
        _before_md(x, p, f, eps, n_steps, shape, c, lam, h)
        k1 = 0.0
        for i in range(V):
            k1 += p[i] * p[i]
        dh = 0.5 * k1 + action_with(x, f, shape, c, lam, h) - h0
        dH[ci] = dh
        if u[ci] < math.exp(-dh):
            acc[ci] = 1.0
            for i in range(V):
                phi[ci, i] = x[i]
        else:
            acc[ci] = 0.0


# ------------------------------------------------------------------------------------------
# runners: each has .run(k) doing k trajectories of all its chains, .chains, .V, .accept
# ------------------------------------------------------------------------------------------


class NumbaRunner:
    def __init__(self, L, chains, variant="numba", seed=0):
        self.name = variant
        self.params = Phi4Params((L, L), M2, LAM)
        self.hmc = HMC(self.params, N_STEPS, "leapfrog")
        self.rng = np.random.default_rng(seed)
        self.phi = self.rng.standard_normal((chains, L * L))
        self.chains, self.V = chains, L * L
        self.variant = variant
        self.acc = []

    def run(self, k):
        p, hm = self.params, self.hmc
        for _ in range(k):
            if self.variant == "numba":
                acc, _ = hm.step(self.phi, self.rng, EPS)
            else:
                n = self.chains
                mom = self.rng.standard_normal(self.phi.shape)
                u = self.rng.random(n)
                acc, dH = np.empty(n), np.empty(n)
                if self.variant == "numba_npmom":
                    hmc_batch(self.phi, mom, u, EPS, N_STEPS, 0, hm._shape, p.mass_term, p.lam, p.h, acc, dH)
                else:
                    _before_hmc_batch(self.phi, mom, u, EPS, N_STEPS, hm._shape, p.mass_term, p.lam, p.h, acc, dH)
            self.acc.append(float(acc.mean()))


class TorchRunner:
    """Batched float32 HMC with torch.roll, as in the paper's notebooks (analytic or autograd force)."""

    def __init__(self, L, chains, autograd=False, seed=0, threads=2):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.name = "torch_autograd" if autograd else "torch"
        self.autograd = autograd
        self.chains, self.V = chains, L * L
        self.m2eff = 2 * 2 + M2  # 2d + m2
        self.gen = torch.Generator().manual_seed(seed)
        self.phi = torch.randn(chains, L, L, generator=self.gen, dtype=torch.float32)
        self.acc = []

    def action(self, phi):
        t = self.torch
        dens = self.m2eff * phi**2 + LAM * phi**4
        for mu in (1, 2):
            dens = dens - 2.0 * phi * t.roll(phi, -1, mu)
        return dens.sum(dim=(1, 2))

    def force(self, phi):
        t = self.torch
        if self.autograd:
            with t.enable_grad():
                x = phi.detach().requires_grad_(True)
                (g,) = t.autograd.grad(self.action(x).sum(), x)
            return -g
        hop = t.roll(phi, 1, 1) + t.roll(phi, -1, 1) + t.roll(phi, 1, 2) + t.roll(phi, -1, 2)
        return 2.0 * hop - 2.0 * self.m2eff * phi - 4.0 * LAM * phi**3

    def trajectory(self):
        t = self.torch
        phi = self.phi
        p = t.randn(phi.shape, generator=self.gen, dtype=phi.dtype)
        h0 = 0.5 * (p * p).sum(dim=(1, 2)) + self.action(phi)
        x = phi
        p = p + 0.5 * EPS * self.force(x)
        for s in range(N_STEPS):
            x = x + EPS * p
            w = EPS if s < N_STEPS - 1 else 0.5 * EPS
            p = p + w * self.force(x)
        h1 = 0.5 * (p * p).sum(dim=(1, 2)) + self.action(x)
        u = t.rand(phi.shape[0], generator=self.gen, dtype=phi.dtype)
        acc = u < t.exp(h0 - h1)
        self.phi = t.where(acc[:, None, None], x, phi)
        self.acc.append(float(acc.float().mean()))

    def run(self, k):
        with self.torch.no_grad():
            for _ in range(k):
                self.trajectory()


def rate(runner, seconds):
    """Site-updates per second over ~``seconds`` (whole trajectories)."""
    work = runner.chains * runner.V * (N_STEPS + 1)
    t0 = time.perf_counter()
    runner.run(1)
    dt = time.perf_counter() - t0
    k = max(1, int(seconds / max(dt, 1e-6)) - 1)
    t0 = time.perf_counter()
    runner.run(k)
    dt += time.perf_counter() - t0
    return work * (k + 1) / dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--chains", type=int, default=None,
                    help="numba chains (default max(64, 65536 / V): >= 32 per core and >= 64k sites per trajectory)")
    ap.add_argument("--blocks", type=int, default=None, help="measurement blocks per runner (default 7, quick 2)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per block (default 1.5, quick 0.4)")
    ap.add_argument("--threads", type=int, default=2, help="threads for numba and torch (default 2)")
    ap.add_argument("--no-autograd", action="store_true", help="skip the torch autograd variant")
    ap.add_argument("--out", default=None, help="JSON output (default benchmarks/results/hmc_throughput.json)")
    args = ap.parse_args(argv)
    blocks = args.blocks or (2 if args.quick else 7)
    seconds = args.seconds or (0.4 if args.quick else 1.5)
    nb.set_num_threads(min(args.threads, nb.config.NUMBA_NUM_THREADS))

    info = machine_info()
    cpu = cpuinfo()
    print(f"{cpu['model']}, {info['cores_usable']} cores usable, {cpu['simd_bits']}-bit SIMD, "
          f"numba {info['numba']} ({nb.get_num_threads()} threads), torch {info['torch']}, "
          f"load average {info['loadavg_start'][0]:.2f}")
    results = []
    for L in args.sizes:
        V = L * L
        chains = args.chains or max(64, 2**16 // V)
        torch_batches = sorted({chains, max(chains, 2**20 // V)})
        runners = [NumbaRunner(L, chains, "numba"), NumbaRunner(L, chains, "numba_npmom"),
                   NumbaRunner(L, chains, "numba_before")]
        runners += [TorchRunner(L, b, threads=args.threads) for b in torch_batches]
        if not args.no_autograd:
            runners.append(TorchRunner(L, torch_batches[-1], autograd=True, threads=args.threads))
        for r in runners:  # compile, warm up, thermalise a little
            r.run(3 if args.quick else 10)
        rates = {id(r): [] for r in runners}
        for _ in range(blocks):
            for r in runners:
                rates[id(r)].append(rate(r, seconds))
        rows = []
        for r in runners:
            v = rates[id(r)]
            rows.append({"runner": r.name, "chains": r.chains, "L": L, "V": V,
                         "site_updates_per_s_best": max(v), "site_updates_per_s_median": statistics.median(v),
                         "site_updates_per_s_blocks": v, "acceptance": float(np.mean(r.acc[-20:]))})
        best = {}
        for row in rows:
            if row["runner"] not in best or row["site_updates_per_s_median"] > best[row["runner"]]["site_updates_per_s_median"]:
                best[row["runner"]] = row
        nbm, tch = best["numba"], best["torch"]
        summary = {
            "L": L,
            "numba_median": nbm["site_updates_per_s_median"], "numba_best": nbm["site_updates_per_s_best"],
            "torch_median": tch["site_updates_per_s_median"], "torch_best": tch["site_updates_per_s_best"],
            "torch_chains": tch["chains"],
            "ratio_median": nbm["site_updates_per_s_median"] / tch["site_updates_per_s_median"],
            "ratio_best": nbm["site_updates_per_s_best"] / tch["site_updates_per_s_best"],
            "speedup_vs_before_median": nbm["site_updates_per_s_median"] / best["numba_before"]["site_updates_per_s_median"],
        }
        results.append({"summary": summary, "runners": rows})
        print(f"\nL = {L}  (V = {V}, leapfrog {N_STEPS} steps, eps {EPS}; site-updates/s: median / best of {blocks} blocks)")
        for row in rows:
            print(f"  {row['runner']:<15} chains {row['chains']:>6}  {row['site_updates_per_s_median']:10.3e}  "
                  f"{row['site_updates_per_s_best']:10.3e}   acc {row['acceptance']:.2f}")
        print(f"  numba / torch = {summary['ratio_median']:.1f}x (median), {summary['ratio_best']:.1f}x (best); "
              f"numba / before = {summary['speedup_vs_before_median']:.1f}x")

    # ---- distance from the machine's peak ----
    ghz = (cpu["mhz"] or 0.0) / 1000.0
    cores = min(args.threads, info["cores_usable"])
    lanes = cpu["simd_bits"] // 64
    fma_units = 2  # assumption: two FMA pipes per core (Zen 2/3/4, Skylake and later)
    peak = cores * ghz * 1e9 * lanes * fma_units * 2 if ghz else None
    # L1 bound of the hot loops: <= 2 vector loads and 1 vector store per cycle per core
    l1_bound = cores * ghz * 1e9 * min(2 * lanes / LOADS_PER_SITE_UPDATE, lanes / STORES_PER_SITE_UPDATE) if ghz else None
    roof = {"flops_per_site_update": FLOPS_PER_SITE_UPDATE, "loads_per_site_update": LOADS_PER_SITE_UPDATE,
            "stores_per_site_update": STORES_PER_SITE_UPDATE, "ghz_nominal": ghz, "cores": cores,
            "simd_lanes_fp64": lanes, "fma_units_per_core_assumed": fma_units, "peak_fp64_flops": peak,
            "l1_bound_site_updates_per_s": l1_bound,
            "notes": ("clock = 'cpu MHz' of /proc/cpuinfo (nominal; a VM does not show turbo); peak = cores x GHz x "
                      "fp64 lanes x 2 FMA units x 2 flops; L1 bound assumes 2 vector loads + 1 vector store per "
                      "cycle per core")}
    print(f"\npeak estimate: {cores} cores x {ghz:.2f} GHz x {lanes} fp64 lanes x {fma_units} FMA x 2 = "
          f"{(peak or 0) / 1e9:.1f} GFLOP/s; L1 load/store bound {((l1_bound or 0) / 1e9):.2f} G site-updates/s")
    for res in results:
        s = res["summary"]
        if peak:
            s["gflops_median"] = s["numba_median"] * FLOPS_PER_SITE_UPDATE / 1e9
            s["fraction_of_peak_flops"] = s["numba_median"] * FLOPS_PER_SITE_UPDATE / peak
            s["fraction_of_l1_bound"] = s["numba_median"] / l1_bound
            print(f"  L={s['L']}: {s['gflops_median']:.1f} GFLOP/s = {100 * s['fraction_of_peak_flops']:.0f}% of fp64 peak, "
                  f"{100 * s['fraction_of_l1_bound']:.0f}% of the L1 load/store bound")
    info["threading_layer"] = threading_layer()
    data = {"benchmark": "hmc_throughput", "quick": args.quick,
            "setup": {"d": 2, "m2": M2, "lam": LAM, "integrator": "leapfrog", "n_steps": N_STEPS, "eps": EPS,
                      "numba_chains": args.chains or "max(64, 65536 / V)", "threads": args.threads, "blocks": blocks,
                      "seconds_per_block": seconds, "dtype_numba": "float64", "dtype_torch": "float32"},
            "machine": info, "roofline": roof, "results": results,
            "targets": {"numba_at_L32": 1e9, "ratio_vs_torch": 10.0}}
    path = save("hmc_throughput.json" if not args.quick else "hmc_throughput_quick.json", data, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
