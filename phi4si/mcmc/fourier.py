"""Fourier-accelerated samplers: FA-HMC, preconditioned Langevin and MALA (THEORY.md section 3).

All three (each a :class:`~phi4si.mcmc.base.Sampler`) use a kernel diagonal in momentum space
built from p_hat^2 (real, even in p, so real fields stay real).  ``engine="numba"`` (default) runs
whole trajectories and Langevin/MALA steps in compiled kernels with the FFTs inside, parallel over
chains (:mod:`phi4si.mcmc.fourier_kernels`); ``engine="scipy"`` is the reference path (batched,
threaded ``scipy.fft`` from Python, forces from the numba kernels), equal to it to round-off.

Fourier-accelerated HMC
    Mass M(p) = (p_hat^2 + M_fa^2) / (max_p p_hat^2 + M_fa^2) (the highest mode keeps unit
    mass, as in plain HMC); or the measured kernel M(p) = G_min / G(p) (``two_point=G``,
    :mod:`phi4si.mcmc.kernel`).  pi = F^-1[ sqrt(M) F xi ] ~ N(0, M), kinetic energy
    1/2 <pi, M^-1 pi>, drift phi += eps M^-1 pi.  For the free field with M_fa^2 = m2 every
    mode has the same frequency.  Exact through the Metropolis step.

Preconditioned Langevin (semi-implicit; biased by O(dt))
    dphi = -D grad S dt + sqrt(2 D) dW with mobility D(p) = 1/(p_hat^2 + M^2).  Write
    S = phi^T K' phi + S_rest with K' = -Delta + M^2 and treat K' implicitly:

        (1 + 2 dt) phi~' = phi~ - dt D g~ + sqrt(2 dt D) xi~,
        g = grad S_rest = 2 (m2 - k - M^2) phi + 4 lam phi^3 - h.

    For the free field with M^2 = m2 the chain is Gaussian with variance
    1/(2 (m2 + p_hat^2) (1 + dt)): the bias is the factor 1/(1 + dt).

    Measured kernel (``two_point=G``): K'(p) = 1/(2 G(p)), D = 2 G, and g = grad S - 2 K' phi, whose
    non-local part is applied in Fourier space (:meth:`Langevin.set_two_point`).

MALA
    The same update used as a Gaussian proposal y = mu(x) + C xi (C(p) =
    sqrt(2 dt D)/(1 + 2 dt)), accepted with min(1, exp(S(x) - S(y)) q(x|y)/q(y|x)): exact.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from ..errors import ParameterError
from ..lattice import kernels
from ..lattice.fourier import p_hat2
from ..lattice.params import Phi4Params
from . import fourier_kernels as fk
from .hmc import OMELYAN_LAMBDA, INTEGRATORS

ENGINES = ("numba", "scipy")
_NO_ROWS = np.empty((0, 0))


def _workers() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _check_two_point(G, shape, last_side: int) -> np.ndarray:
    G = np.array(G, dtype=np.float64)
    if G.shape != shape:
        raise ParameterError(f"two_point must have the rfft half-grid shape {shape}, got {G.shape}")
    if not (np.isfinite(G).all() and (G > 0).all()):
        raise ParameterError("two_point must be finite and > 0 at every momentum (a measured G(p) that is not "
                             "needs more configurations)")
    return _even(G, last_side)


def _even(G, last_side: int) -> np.ndarray:
    """G with G(p) and G(-p) averaged where both lie on the rfft half grid (the planes k_last = 0 and, for an
    even side, L/2): a kernel of real fields is even in p, and one that is not would not be real."""
    mirror = G
    for ax in range(G.ndim - 1):
        mirror = np.roll(np.flip(mirror, axis=ax), 1, axis=ax)        # index i -> -i mod L
    out = G.copy()
    for j in {0, last_side // 2} if last_side % 2 == 0 else {0}:   # the self-mirrored planes
        out[..., j] = 0.5 * (G[..., j] + mirror[..., j])
    return out


class _FourierBase:
    def __init__(self, params: Phi4Params, mass: float, engine: str = "numba"):
        mass = float(mass)
        if not math.isfinite(mass) or mass <= 0:
            raise ParameterError(f"Fourier mass parameter must be finite and > 0, got {mass}")
        if engine not in ENGINES:
            raise ParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        self.params = params
        self.mass = mass
        self._shape = np.array(params.shape, dtype=np.int64)
        self._axes = tuple(range(1, params.d + 1))
        self._ph2 = p_hat2(params.shape, rfft=True)
        self._workers = _workers()
        self._dims = tuple(int(L) for L in params.shape)
        self._wgt = fk.parseval_weights(params.shape)

    def _rfft(self, x):
        return sfft.rfftn(x, axes=self._axes, workers=self._workers)

    def _irfft(self, X):
        return sfft.irfftn(X, s=self.params.shape, axes=self._axes, workers=self._workers)

    def _apply(self, x_flat, mult):
        """Multiply a flat batch by a Fourier-diagonal kernel (``mult`` on the rfft grid)."""
        n = x_flat.shape[0]
        x = x_flat.reshape((n,) + self.params.shape)
        return self._irfft(self._rfft(x) * mult).reshape(n, -1)

    def _force(self, x):
        out = np.empty_like(x)
        p = self.params
        kernels.force_batch(x, out, self._shape, p.mass_term, p.lam, p.h)
        return out

    def _action(self, x):
        p = self.params
        return kernels.action_batch(x, self._shape, p.mass_term, p.lam, p.h)


class FourierHMC(_FourierBase):
    """HMC with a momentum-space mass M(p) proportional to p_hat^2 + M_fa^2.

    >>> import numpy as np
    >>> from phi4si.lattice import Phi4Params
    >>> s = FourierHMC(Phi4Params((8, 8), m2=1.0, lam=0.0), mass=1.0)
    >>> acc, dH = s.step(np.zeros((2, 64)), np.random.default_rng(1), eps=0.2)
    """

    name = "fahmc"
    exact = True
    adaptive = True
    default_eps = 0.2
    default_n_steps = 10
    default_target = 0.8

    def __init__(self, params: Phi4Params, n_steps: int = 10, integrator: str = "leapfrog", mass: float = 1.0,
                 engine: str = "numba", two_point=None):
        super().__init__(params, mass, engine)
        if integrator not in INTEGRATORS:
            raise ParameterError(f"unknown integrator {integrator!r}; choose from {sorted(INTEGRATORS)}")
        if int(n_steps) < 1:
            raise ParameterError(f"n_steps must be >= 1, got {n_steps}")
        self.n_steps = int(n_steps)
        self.integrator = integrator
        self.two_point = None
        m2 = self.mass**2
        self._set_mass((self._ph2 + m2) / (self._ph2.max() + m2))
        if two_point is not None:
            self.set_two_point(two_point)

    def _set_mass(self, M):
        self.M = M
        self._sqrtM = np.sqrt(M)
        self._invM = 1.0 / M

    def set_two_point(self, G):
        """Use the kinetic kernel of a measured two-point function: M(p) = G_min / G(p), i.e. M
        proportional to 1/G (the inverse covariance of the Gaussian part of the action: exact for it at
        any coupling, so every Gaussian mode moves with one frequency), the most massive mode at unit
        mass as with p_hat^2 + M_fa^2.  ``G``: positive, finite, on the rfft half grid of the lattice
        (:func:`phi4si.lattice.fourier.two_point_half`); ``mass`` is then unused."""
        G = _check_two_point(G, self._ph2.shape, self.params.shape[-1])
        self.two_point = G
        self._set_mass(G.min() / G)

    @property
    def forces_per_trajectory(self) -> int:
        return self.n_steps * (1 if self.integrator == "leapfrog" else 2) + 1

    def meta(self) -> dict:
        out = {"sampler": self.name, "n_steps": self.n_steps, "integrator": self.integrator, "mass": self.mass}
        if self.two_point is not None:
            out.update(kernel="measured", two_point=self.two_point.tolist())
        return out

    def kinetic(self, pi):
        return 0.5 * np.einsum("ij,ij->i", pi, self._apply(pi, self._invM))

    def integrate(self, phi, pi, eps, n_steps=None):
        """Molecular dynamics from (phi, pi) (copies returned)."""
        n = self.n_steps if n_steps is None else int(n_steps)
        if self.engine == "numba":
            xi = self._apply(np.asarray(pi, dtype=np.float64), 1.0 / self._sqrtM)   # pi = F^-1 sqrt(M) F xi
            x, p, _ = self._trajectories(np.array(phi, dtype=np.float64), xi, eps, n, with_momentum=True)
            return x, p
        return self._integrate_scipy(phi, pi, eps, n)

    def _trajectories(self, phi, xi, eps, n_steps, with_momentum=False):
        """(end fields, end momenta or None, dH) of the compiled trajectories from momenta F^-1 sqrt(M) F xi."""
        p = self.params
        x, dH = np.empty_like(phi), np.empty(phi.shape[0])
        mom = np.empty_like(phi) if with_momentum else _NO_ROWS
        fk.fahmc_trajectories(phi, xi, self._sqrtM, self._invM, self._wgt, self._shape, self._dims, p.mass_term,
                              p.lam, p.h, float(eps), int(n_steps),
                              fk.OMELYAN if self.integrator == "omelyan" else fk.LEAPFROG, OMELYAN_LAMBDA, x, mom, dH)
        return x, (mom if with_momentum else None), dH

    def _integrate_scipy(self, phi, pi, eps, n):
        x = np.array(phi, dtype=np.float64, copy=True)
        p = np.array(pi, dtype=np.float64, copy=True)
        drift = lambda w: x.__iadd__(w * self._apply(p, self._invM))  # noqa: E731
        if self.integrator == "leapfrog":
            p += 0.5 * eps * self._force(x)
            for s in range(n):
                drift(eps)
                p += (eps if s < n - 1 else 0.5 * eps) * self._force(x)
        else:
            lm = OMELYAN_LAMBDA
            p += lm * eps * self._force(x)
            for s in range(n):
                drift(0.5 * eps)
                p += (1 - 2 * lm) * eps * self._force(x)
                drift(0.5 * eps)
                p += (2 * lm * eps if s < n - 1 else lm * eps) * self._force(x)
        return x, p

    def step(self, phi, rng, eps):
        n = phi.shape[0]
        xi = rng.standard_normal(phi.shape)
        u = rng.random(n)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging trajectory gives inf/NaN: rejected
            if self.engine == "numba":
                x, _, dH = self._trajectories(phi, xi, eps, self.n_steps)
            else:
                pi = self._apply(xi, self._sqrtM)
                x, p = self._integrate_scipy(phi, pi, eps, self.n_steps)
                dH = self.kinetic(p) + self._action(x) - (self.kinetic(pi) + self._action(phi))
            acc = (u < np.exp(-dH)).astype(np.float64)
        phi[acc == 1.0] = x[acc == 1.0]
        return acc, dH


class _LangevinCore(_FourierBase):
    default_n_steps = 10

    def __init__(self, params: Phi4Params, n_steps: int = 10, mass: float = 1.0, engine: str = "numba",
                 two_point=None):
        super().__init__(params, mass, engine)
        if int(n_steps) < 1:
            raise ParameterError(f"n_steps must be >= 1, got {n_steps}")
        self.n_steps = int(n_steps)
        self.two_point = None
        self._set_mobility(1.0 / (self._ph2 + self.mass**2), np.zeros_like(self._ph2))
        if two_point is not None:
            self.set_two_point(two_point)

    def _set_mobility(self, D, B):
        self.D, self._B = D, B
        self._sqrtD = np.sqrt(D)

    def set_two_point(self, G):
        """Use the measured kinetic kernel: implicit part K'(p) = 1/(2 G(p)) (the Gaussian action of the
        measured covariance), mobility D = 1/K' = 2 G; the explicit gradient is then
        g~ = (4 lam phi^3 - h)~ + B phi~ with B(p) = 2 (p_hat^2 + m2 - k) - 1/G(p) (a = 0), which is
        grad S - 2 K' phi.  For the free field B = 0 and this is p_hat^2 + M^2 at M^2 = m2.  ``G`` as in
        :meth:`FourierHMC.set_two_point`; ``mass`` is then unused."""
        G = _check_two_point(G, self._ph2.shape, self.params.shape[-1])
        p = self.params
        self.two_point = G
        self._set_mobility(2.0 * G, 2.0 * (self._ph2 + p.m2 - p.k) - 1.0 / G)

    @property
    def forces_per_trajectory(self) -> int:
        return self.n_steps

    def meta(self) -> dict:
        out = {"sampler": self.name, "n_steps": self.n_steps, "mass": self.mass}
        if self.two_point is not None:
            out.update(kernel="measured", two_point=self.two_point.tolist())
        return out

    @property
    def _rest_linear(self) -> float:
        """a = 2 (m2 - k - M^2) (lattice kernel) or 0 (measured): the local linear coefficient of g (below)."""
        p = self.params
        return 0.0 if self.two_point is not None else 2.0 * (p.m2 - p.k - self.mass**2)

    def rest_grad(self, x):
        """The local part of g = grad S - 2 K' phi: a x + 4 lam x^3 - h (the rest, B phi~, is in Fourier space)."""
        p = self.params
        return self._rest_linear * x + 4.0 * p.lam * x**3 - p.h

    def mean(self, x, dt):
        """Deterministic part mu(x) of the semi-implicit update: F^-1 (phi~ - dt D g~) / (1 + 2 dt)."""
        n = x.shape[0]
        X = self._rfft(x.reshape((n,) + self.params.shape))
        g = self._rfft(self.rest_grad(x).reshape(X.shape[:1] + self.params.shape)) + self._B * X
        return self._irfft((X - dt * self.D * g) / (1.0 + 2.0 * dt)).reshape(n, -1)

    def noise(self, xi, dt):
        return self._apply(xi, math.sqrt(2.0 * dt) * self._sqrtD) / (1.0 + 2.0 * dt)


class Langevin(_LangevinCore):
    """Fourier-preconditioned semi-implicit Langevin (biased by O(dt); no accept step).

    >>> import numpy as np
    >>> from phi4si.lattice import Phi4Params
    >>> s = Langevin(Phi4Params((8, 8), m2=1.0, lam=0.0))
    >>> acc, dH = s.step(np.zeros((2, 64)), np.random.default_rng(1), eps=0.05)
    """

    name = "langevin"
    adaptive = False
    default_eps = 0.05
    default_target = None
    exact = False

    def step(self, phi, rng, eps):
        n = phi.shape[0]
        if self.engine == "numba":
            p = self.params
            xi = rng.standard_normal((self.n_steps,) + phi.shape)     # the scipy path's draws, in its order
            fk.langevin_steps(phi, xi, self.D, self._B, self._sqrtD, self._dims, self._rest_linear, p.lam, p.h,
                              float(eps), self.n_steps)
            return np.ones(n), np.full(n, np.nan)
        for _ in range(self.n_steps):
            xi = rng.standard_normal(phi.shape)
            phi[...] = self.mean(phi, eps) + self.noise(xi, eps)
        return np.ones(n), np.full(n, np.nan)


class MALA(_LangevinCore):
    """Metropolis-adjusted preconditioned Langevin: the Langevin update as a proposal (exact).

    >>> import numpy as np
    >>> from phi4si.lattice import Phi4Params
    >>> s = MALA(Phi4Params((8, 8), m2=1.0, lam=0.0))
    >>> acc, dH = s.step(np.zeros((2, 64)), np.random.default_rng(1), eps=0.2)
    """

    name = "mala"
    adaptive = True
    default_eps = 0.2
    default_target = 0.7
    exact = True

    def step(self, phi, rng, eps):
        n = phi.shape[0]
        if self.engine == "numba":
            p = self.params
            xi, u = np.empty((self.n_steps,) + phi.shape), np.empty((self.n_steps, n))
            for s in range(self.n_steps):                             # the scipy path's draws, in its order
                xi[s], u[s] = rng.standard_normal(phi.shape), rng.random(n)
            acc, dH = np.empty(n), np.empty(n)
            with np.errstate(over="ignore", invalid="ignore"):
                fk.mala_steps(phi, xi, u, self.D, self._B, self._sqrtD, self._wgt, self._shape, self._dims, p.mass_term,
                              self._rest_linear, p.lam, p.h, float(eps), self.n_steps, acc, dH)
            return acc, dH
        Cinv = (1.0 + 2.0 * eps) / (math.sqrt(2.0 * eps) * self._sqrtD)
        acc_tot = np.zeros(n)
        s_x = self._action(phi)
        for _ in range(self.n_steps):
            xi = rng.standard_normal(phi.shape)
            u = rng.random(n)
            with np.errstate(over="ignore", invalid="ignore"):  # diverging proposals give inf/NaN: rejected
                y = self.mean(phi, eps) + self.noise(xi, eps)
                s_y = self._action(y)
                back = self._apply(phi - self.mean(y, eps), Cinv)
                # log q(y|x) = -|xi|^2/2, log q(x|y) = -|C^-1 (x - mu(y))|^2/2 (same normalisation)
                dH = (s_y - s_x) + 0.5 * np.einsum("ij,ij->i", back, back) - 0.5 * np.einsum("ij,ij->i", xi, xi)
                acc = u < np.exp(-dH)
            phi[acc] = y[acc]
            s_x = np.where(acc, s_y, s_x)
            acc_tot += acc
        return acc_tot / self.n_steps, dH
