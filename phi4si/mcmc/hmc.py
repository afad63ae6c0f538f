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
from ..lattice.kernels import action_with, force_into
from ..lattice.params import Phi4Params

OMELYAN_LAMBDA = 0.1931833275037836
INTEGRATORS = {"leapfrog": 0, "omelyan": 1}


@nb.njit(cache=True, nogil=True)
def integrate_md(x, p, f, eps, n_steps, integrator, shape, c, lam, h):
    """Integrate Hamilton's equations in place for ``n_steps`` steps; ``f`` is scratch."""
    V = x.shape[0]
    if integrator == 0:
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
    else:
        lm = OMELYAN_LAMBDA
        force_into(x, f, shape, c, lam, h)
        w = lm * eps
        for i in range(V):
            p[i] += w * f[i]
        half = 0.5 * eps
        mid = (1.0 - 2.0 * lm) * eps
        for s in range(n_steps):
            for i in range(V):
                x[i] += half * p[i]
            force_into(x, f, shape, c, lam, h)
            for i in range(V):
                p[i] += mid * f[i]
            for i in range(V):
                x[i] += half * p[i]
            force_into(x, f, shape, c, lam, h)
            w = 2.0 * lm * eps if s < n_steps - 1 else lm * eps
            for i in range(V):
                p[i] += w * f[i]


@nb.njit(cache=True, parallel=True)
def integrate_batch(phi, mom, eps, n_steps, integrator, shape, c, lam, h):
    """Molecular-dynamics evolution of every chain in place (no accept/reject); for tests."""
    for ci in nb.prange(phi.shape[0]):
        f = np.empty(phi.shape[1])
        integrate_md(phi[ci], mom[ci], f, eps, n_steps, integrator, shape, c, lam, h)


@nb.njit(cache=True, parallel=True)
def hmc_batch(phi, mom, u, eps, n_steps, integrator, shape, c, lam, h, acc, dH):
    """One HMC trajectory for every chain (row of ``phi``), in place.

    ``mom`` holds the N(0,1) momenta (overwritten), ``u`` uniforms in [0, 1);
    ``acc`` and ``dH`` receive acceptance (0/1) and the energy violation.
    """
    nc, V = phi.shape
    for ci in nb.prange(nc):
        x = phi[ci].copy()
        p = mom[ci]
        f = np.empty(V)
        k0 = 0.0
        for i in range(V):
            k0 += p[i] * p[i]
        h0 = 0.5 * k0 + action_with(x, f, shape, c, lam, h)
        integrate_md(x, p, f, eps, n_steps, integrator, shape, c, lam, h)
        k1 = 0.0
        for i in range(V):
            k1 += p[i] * p[i]
        dh = 0.5 * k1 + action_with(x, f, shape, c, lam, h) - h0
        dH[ci] = dh
        if u[ci] < math.exp(-dh):  # NaN dH is rejected
            acc[ci] = 1.0
            for i in range(V):
                phi[ci, i] = x[i]
        else:
            acc[ci] = 0.0


class HMC:
    """Plain HMC (unit mass) with leapfrog or Omelyan integration; see module docstring."""

    name = "hmc"
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

    @property
    def forces_per_trajectory(self) -> int:
        """Force evaluations per trajectory (site-update count = this x V per chain)."""
        return self.n_steps * (1 if self.integrator == "leapfrog" else 2) + 1

    def meta(self) -> dict:
        return {"sampler": self.name, "n_steps": self.n_steps, "integrator": self.integrator}

    def step(self, phi: np.ndarray, rng: np.random.Generator, eps: float):
        """One trajectory on every chain of the flat batch ``phi`` (n, V), in place."""
        n = phi.shape[0]
        mom = rng.standard_normal(phi.shape)
        u = rng.random(n)
        acc = np.empty(n)
        dH = np.empty(n)
        p = self.params
        hmc_batch(phi, mom, u, float(eps), self.n_steps, INTEGRATORS[self.integrator], self._shape,
                  p.mass_term, p.lam, p.h, acc, dH)
        return acc, dH

    def integrate(self, phi: np.ndarray, mom: np.ndarray, eps: float, n_steps: int | None = None):
        """Molecular dynamics only (copies returned); used for reversibility tests."""
        x = np.array(phi, dtype=np.float64, copy=True)
        q = np.array(mom, dtype=np.float64, copy=True)
        p = self.params
        integrate_batch(x, q, float(eps), self.n_steps if n_steps is None else int(n_steps),
                        INTEGRATORS[self.integrator], self._shape, p.mass_term, p.lam, p.h)
        return x, q
