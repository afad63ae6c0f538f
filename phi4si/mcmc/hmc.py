"""Hybrid (Hamiltonian) Monte Carlo for phi^4, numba-parallel over chains (THEORY.md section 3).

H(phi, pi) = 1/2 |pi|^2 + S(phi), pi ~ N(0, 1).  One trajectory: ``n_steps`` steps of
size ``eps`` of a reversible, volume-preserving integrator, then accept with
probability min(1, exp(-dH)).  Exact for any eps > 0.

Integrators (``integrator`` argument, integer codes in the kernels):

* ``"leapfrog"`` (0): kick eps/2 - drift eps - kick eps/2, one force per step;
* ``"omelyan"`` (1): the second-order minimum-norm integrator (Omelyan, Mryglod & Folk
  2003), velocity form kick(lambda eps) drift(eps/2) kick((1-2 lambda) eps)
  drift(eps/2) kick(lambda eps), lambda = 0.1931833275, two forces per step and an
  error constant about ten times smaller than leapfrog's.

Both give dH = O(eps^2) per trajectory of fixed length, and are reversible to round-off.

Implementation (for speed; see ``benchmarks/README.md``): each chain's field is copied into a
padded layout (:mod:`phi4si.lattice.kernels`, ``md_pass_2d`` for d = 2, ``md_pass``
otherwise) in which every integrator step is one fused, vectorised drift+force+kick sweep;
S(x_0) and S(x_T), |p_T|^2 come out of the first and last sweeps.  :meth:`HMC.step` draws
one uint64 key per chain from the caller's Generator and generates that chain's N(0, 1)
momenta inside the parallel kernel (:func:`~phi4si.lattice.kernels.gaussian_fill`), so a
run is a pure function of the Generator's state (reproducible and resumable) without a
single-threaded ``standard_normal`` on the critical path.  :func:`hmc_batch` keeps the
older interface that takes the momenta as an array.

>>> import numpy as np
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.mcmc.hmc import HMC
>>> s = HMC(Phi4Params((8, 8), m2=-4.0, lam=8.0), n_steps=10)
>>> phi = np.zeros((4, 64)); rng = np.random.default_rng(0)
>>> acc, dH = s.step(phi, rng, eps=0.1)
>>> acc.shape
(4,)
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..errors import ParameterError
from ..lattice.kernels import (block_rows, gaussian_fill, mask2d, md_trajectory, md_trajectory_2d, pad2d, pad2d_mom,
                               pad_rows, row_neighbours, sum_squares, unpad2d, unpad2d_mom, unpad_rows)
from ..lattice.params import Phi4Params

OMELYAN_LAMBDA = 0.1931833275037836
INTEGRATORS = {"leapfrog": 0, "omelyan": 1}


@nb.njit(cache=True, nogil=True)
def _md_chain(x, p, k0, u, eps, n_steps, integrator, shape, nbr, mask, c, lam, h, mode):
    """Molecular dynamics for one chain (flat field ``x``, flat momenta ``p``).

    ``mode`` 0: HMC -- Metropolis test with ``u`` against dH (``k0`` = |p_0|^2); on
    acceptance ``x`` is overwritten; returns (accepted, dH).  ``mode`` 1: plain MD -- ``x``
    and ``p`` are overwritten with the evolved values; returns (1, dH).
    d = 2 runs in the fully padded layout (:func:`~phi4si.lattice.kernels.md_pass_2d`),
    other d in the row-padded one (:func:`~phi4si.lattice.kernels.md_pass`).
    """
    d = shape.shape[0]
    if d == 2:
        L0 = shape[0]
        L1 = shape[1]
        xp = np.empty((L0 + 2) * (L1 + 2))
        pp = np.empty(L0 * (L1 + 2))
        pad2d(x, xp, L0, L1)
        pad2d_mom(p, pp, L0, L1)
        S0, S1, k1 = md_trajectory_2d(xp, pp, mask, L0, L1, block_rows(L1), c, lam, h, eps, n_steps,
                                      integrator, OMELYAN_LAMBDA)
        dh = 0.5 * (k1 - k0) + (S1 - S0)
        if mode == 1:
            unpad2d(xp, x, L0, L1)
            unpad2d_mom(pp, p, L0, L1)
            return 1.0, dh
        if u < math.exp(-dh):  # NaN dH is rejected
            unpad2d(xp, x, L0, L1)
            return 1.0, dh
        return 0.0, dh
    Lr = shape[d - 1]
    xr = np.empty((x.shape[0] // Lr, Lr + 2))
    hb = np.empty(Lr)
    pad_rows(x, xr)
    p2 = p.reshape(xr.shape[0], Lr)  # a view: p is evolved in place
    S0, S1, k1 = md_trajectory(xr, p2, hb, shape, nbr, c, lam, h, eps, n_steps, integrator, OMELYAN_LAMBDA)
    dh = 0.5 * (k1 - k0) + (S1 - S0)
    if mode == 1 or u < math.exp(-dh):  # NaN dH is rejected
        unpad_rows(xr, x)
        return 1.0, dh
    return 0.0, dh


@nb.njit(cache=True, nogil=True)
def _tables(shape):
    """Neighbour-row table (row layout) and real-column mask (d = 2 layout) for ``shape``."""
    d = shape.shape[0]
    if d == 2:
        return row_neighbours(shape), mask2d(shape[0], shape[1])
    return row_neighbours(shape), np.ones(1)


@nb.njit(cache=True, parallel=True)
def integrate_batch(phi, mom, eps, n_steps, integrator, shape, c, lam, h):
    """Molecular-dynamics evolution of every chain in place (no accept/reject); for tests."""
    nbr, mask = _tables(shape)
    for ci in nb.prange(phi.shape[0]):
        _md_chain(phi[ci], mom[ci], 0.0, 0.0, eps, n_steps, integrator, shape, nbr, mask, c, lam, h, 1)


@nb.njit(cache=True, parallel=True)
def hmc_batch(phi, mom, u, eps, n_steps, integrator, shape, c, lam, h, acc, dH):
    """One HMC trajectory for every chain (row of ``phi``), in place.

    ``mom`` holds the N(0,1) momenta (its content afterwards is unspecified), ``u``
    uniforms in [0, 1); ``acc`` and ``dH`` receive acceptance (0/1) and the energy violation.
    """
    nbr, mask = _tables(shape)
    for ci in nb.prange(phi.shape[0]):
        p = mom[ci]
        a, dh = _md_chain(phi[ci], p, sum_squares(p), u[ci], eps, n_steps, integrator, shape, nbr, mask,
                          c, lam, h, 0)
        acc[ci] = a
        dH[ci] = dh


@nb.njit(cache=True, parallel=True)
def hmc_batch_keys(phi, keys, u, eps, n_steps, integrator, shape, nbr, mask, c, lam, h, acc, dH):
    """Like :func:`hmc_batch`, but chain ``i`` draws its N(0,1) momenta inside the kernel as
    :func:`~phi4si.lattice.kernels.gaussian_fill` of ``keys[i]`` (in parallel; no momentum
    array crosses the Python boundary).  ``nbr, mask = _tables(shape)``."""
    nc, V = phi.shape
    for ci in nb.prange(nc):
        p = np.empty(V)
        gaussian_fill(keys[ci], p)
        a, dh = _md_chain(phi[ci], p, sum_squares(p), u[ci], eps, n_steps, integrator, shape, nbr, mask,
                          c, lam, h, 0)
        acc[ci] = a
        dH[ci] = dh


class HMC:
    """Plain HMC (unit mass) with leapfrog or Omelyan integration; see module docstring.  A
    :class:`~phi4si.mcmc.base.Sampler`."""

    name = "hmc"
    exact = True
    adaptive = True
    default_eps = 0.1
    default_n_steps = 10
    default_target = 0.8

    def __init__(self, params: Phi4Params, n_steps: int = 10, integrator: str = "leapfrog"):
        if integrator not in INTEGRATORS:
            raise ParameterError(f"unknown integrator {integrator!r}; choose from {sorted(INTEGRATORS)}")
        if int(n_steps) < 1:
            raise ParameterError(f"n_steps must be >= 1, got {n_steps}")
        self.params = params
        self.n_steps = int(n_steps)
        self.integrator = integrator
        self._shape = np.array(params.shape, dtype=np.int64)
        self._nbr, self._mask = _tables(self._shape)

    @property
    def forces_per_trajectory(self) -> int:
        """Force evaluations per trajectory (site-update count = this x V per chain)."""
        return self.n_steps * (1 if self.integrator == "leapfrog" else 2) + 1

    def meta(self) -> dict:
        return {"sampler": self.name, "n_steps": self.n_steps, "integrator": self.integrator}

    def step(self, phi: np.ndarray, rng: np.random.Generator, eps: float):
        """One trajectory on every chain of the flat batch ``phi`` (n, V), in place.

        Draws from ``rng``: one uint64 key per chain (the chain's momenta are
        ``gaussian_fill(key)``, generated in parallel inside the kernel), then one
        uniform per chain for the Metropolis test.  Same rng state, same bits.
        """
        n = phi.shape[0]
        keys = rng.integers(0, 2**64, size=n, dtype=np.uint64)
        u = rng.random(n)
        acc = np.empty(n)
        dH = np.empty(n)
        p = self.params
        hmc_batch_keys(phi, keys, u, float(eps), self.n_steps, INTEGRATORS[self.integrator], self._shape,
                       self._nbr, self._mask, p.mass_term, p.lam, p.h, acc, dH)
        return acc, dH

    def integrate(self, phi: np.ndarray, mom: np.ndarray, eps: float, n_steps: int | None = None):
        """Molecular dynamics only (copies returned); used for reversibility tests."""
        x = np.array(phi, dtype=np.float64, copy=True)
        q = np.array(mom, dtype=np.float64, copy=True)
        p = self.params
        integrate_batch(x, q, float(eps), self.n_steps if n_steps is None else int(n_steps),
                        INTEGRATORS[self.integrator], self._shape, p.mass_term, p.lam, p.h)
        return x, q
