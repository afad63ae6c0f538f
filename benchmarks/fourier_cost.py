#!/usr/bin/env python
"""Cost of the Fourier-accelerated samplers against plain HMC, and of the FFT routes they could take.

Per lattice side L (d = 2, m2 = -4, lam = 4.572, 16 chains, 10 steps per trajectory), in one process,
interleaved block by block (A B C ... A B C ...) so that load from other processes hits all alike:

* ``hmc``          phi4si's numba HMC (phi4si.mcmc.hmc.HMC.step): one trajectory of 10 leapfrog steps;
* ``fahmc``        FA-HMC with the compiled kernels (engine "numba": in-kernel FFTs, parallel over chains);
* ``fahmc_scipy``  FA-HMC on the reference path (engine "scipy": batched scipy.fft pairs from Python);
* ``mala``, ``mala_scipy``  10 MALA steps, the two engines;
* FFT pairs (one forward + one inverse real FFT of every chain, times a kernel): ``pair_scipy``
  (scipy.fft, batched, 2 workers), ``pair_rocket`` (numpy.fft inside a numba prange over chains:
  what the kernels do) and ``pair_pyfftw`` (FFTW plans, FFTW_MEASURE, 2 threads; only when pyfftw is
  installed: it is not a dependency).

Prints seconds per trajectory (pairs: per pair), ns per site, the ratio to ``hmc`` and writes
``benchmarks/results/fourier_cost.json``.  Run on an otherwise idle machine (the load average is
recorded).

    python benchmarks/fourier_cost.py                 # L = 32, 64, 128, 256: ~3 min
    python benchmarks/fourier_cost.py --L 32 --repeats 3   # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numba as nb
import numpy as np
import scipy.fft as sfft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save, threading_layer  # noqa: E402

from phi4si.lattice import Phi4Params  # noqa: E402
from phi4si.mcmc.fourier import MALA, FourierHMC  # noqa: E402
from phi4si.mcmc.hmc import HMC  # noqa: E402


@nb.njit(parallel=True, cache=True)
def _rocket_pair(xs, mult, out):
    for c in nb.prange(xs.shape[0]):
        X = np.fft.rfftn(xs[c])
        out[c] = np.fft.irfftn(X * mult, s=(xs.shape[1], xs.shape[2]))


def runners(L: int, chains: int, n_steps: int):
    p = Phi4Params((L, L), m2=-4.0, lam=4.572)
    rng = np.random.default_rng(0)
    phi0 = 0.8 * rng.standard_normal((chains, p.volume))
    out = {}

    def sampler_runner(s, eps):
        phi = phi0.copy()
        r = np.random.default_rng(1)
        return lambda: s.step(phi, r, eps)

    out["hmc"] = sampler_runner(HMC(p, n_steps=n_steps), 0.05)
    out["fahmc"] = sampler_runner(FourierHMC(p, n_steps=n_steps, mass=1.0), 0.03)
    out["fahmc_scipy"] = sampler_runner(FourierHMC(p, n_steps=n_steps, mass=1.0, engine="scipy"), 0.03)
    out["mala"] = sampler_runner(MALA(p, n_steps=n_steps, mass=1.0), 0.02)
    out["mala_scipy"] = sampler_runner(MALA(p, n_steps=n_steps, mass=1.0, engine="scipy"), 0.02)

    xs = phi0.reshape(chains, L, L).copy()
    mult = 1.0 / (1.0 + np.random.default_rng(2).random((L, L // 2 + 1)))
    res = np.empty_like(xs)
    out["pair_scipy"] = lambda: sfft.irfftn(sfft.rfftn(xs, axes=(1, 2), workers=2) * mult, s=(L, L), axes=(1, 2),
                                            workers=2)
    out["pair_rocket"] = lambda: _rocket_pair(xs, mult, res)
    try:
        import pyfftw

        a = pyfftw.empty_aligned((chains, L, L), dtype="float64")
        b = pyfftw.empty_aligned((chains, L, L // 2 + 1), dtype="complex128")
        fw = pyfftw.FFTW(a, b, axes=(1, 2), threads=2, flags=("FFTW_MEASURE",))
        bw = pyfftw.FFTW(b, a, axes=(1, 2), direction="FFTW_BACKWARD", threads=2, flags=("FFTW_MEASURE",))
        a[...] = xs

        def pf():
            fw()
            b[...] *= mult
            bw()
        out["pair_pyfftw"] = pf
    except ImportError:
        pass
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--n-steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7, help="interleaved blocks per runner (median reported)")
    ap.add_argument("--seconds", type=float, default=0.4, help="target seconds per block")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    info = machine_info()
    rows = []
    for L in args.L:
        rs = runners(L, args.chains, args.n_steps)
        reps = {}
        for name, f in rs.items():                     # warm-up (compilation) and calls per block
            f()
            t0 = time.perf_counter()
            f()
            dt = time.perf_counter() - t0
            reps[name] = max(1, int(args.seconds / max(dt, 1e-6)))
        times = {name: [] for name in rs}
        for _ in range(args.repeats):
            for name, f in rs.items():
                t0 = time.perf_counter()
                for _ in range(reps[name]):
                    f()
                times[name].append((time.perf_counter() - t0) / reps[name])
        sites = args.chains * L * L
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, t in med.items():
            rows.append({"L": L, "runner": name, "seconds": t, "ns_per_site": t / sites * 1e9,
                         "ratio_to_hmc": t / med["hmc"], "spread": [min(times[name]), max(times[name])]})
            print(f"L={L:4d} {name:12s} {t * 1e3:9.3f} ms  {t / sites * 1e9:8.2f} ns/site  "
                  f"{t / med['hmc']:6.2f} x hmc", flush=True)
    data = {"benchmark": "fourier_cost", "chains": args.chains, "n_steps": args.n_steps, "repeats": args.repeats,
            "rows": rows, "machine": info, "threading_layer": threading_layer()}
    path = save("fourier_cost.json" if args.out is None else args.out, data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
