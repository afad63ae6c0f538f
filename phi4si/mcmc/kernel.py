"""The measured kinetic kernel and the tuned trajectory length (THEORY.md section 3, Fourier acceleration).

A run with ``kernel="measured"`` or ``traj_length="auto"`` measures the connected two-point function
G(p) during thermalisation, over the chains' trajectories ``[n_therm // 4, n_therm // 2)`` (the first
quarter is left to equilibrate), and freezes it at trajectory ``n_therm // 2``; the rest of the
thermalisation adapts the step size to it, and the measurement phase uses it unchanged, so every measured
trajectory is an exact update of one fixed Markov kernel.

* Measured kinetic kernel.  The Gaussian part of the action with the measured covariance is
  S_G = 1/2 sum_p |phi~(p)|^2 / (V G(p)).  FA-HMC takes the mass M(p) = G_min / G(p) (every Gaussian mode
  then has the same frequency omega = 1/sqrt(G_min), the stiffest mode keeps unit mass); the
  preconditioned Langevin and MALA take the mobility D(p) = 2 G(p) with the implicit part
  K'(p) = 1/(2 G(p)) (for the free field, G = 1/(2 (p_hat^2 + m2)): the same as p_hat^2 + M^2 at M^2 = m2).
* Trajectory length.  Mode p of the Gaussian part oscillates with omega_p^2 = 1 / (G(p) M(p)) (M = 1 for
  plain HMC); a quarter period pi / (2 omega) takes a Gaussian mode to an independent draw.  ``"auto"``
  sets T = pi / (2 omega_min), the quarter period of the slowest mode, and every trajectory then makes
  round(T / eps) steps (eps the unjittered step size; the jitter still varies T by +-jitter).

The sums behind G are part of the run's resume state (``/state/kernel`` in the ensemble file), so a run
resumed inside the window or after it rebuilds the same G to the last bit; a finished run also records
G as the file attribute ``two_point`` (rfft half grid) and the window in its sampler attributes.

>>> import numpy as np
>>> w = TwoPointWindow((4, 4), n_therm=8, chains=500)          # window: trajectories 2 and 3
>>> rng = np.random.default_rng(0)
>>> for t in range(4):
...     w.observe(t, rng.standard_normal((500, 16)))
>>> G = w.two_point(t_therm=4)
>>> G.shape, bool(np.allclose(G, 1.0, atol=0.15))  # white noise: G = 1
((4, 3), True)
>>> round(quarter_period(np.full((4, 3), 0.25)), 4)   # HMC, G = 1/4: omega = 2, T = pi/4
0.7854
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ..lattice.fourier import connected_two_point, fourier_sums

KERNELS = ("lattice", "measured")
MIN_THERM = 8   # the window needs a few trajectories: [n_therm // 4, n_therm // 2) holds >= 2


def half_shape(shape) -> tuple:
    """The rfft half grid of a lattice: the last axis cut to L // 2 + 1."""
    shape = tuple(int(s) for s in shape)
    return shape[:-1] + (shape[-1] // 2 + 1,)


class TwoPointWindow:
    """Running sums of |phi~(p)|^2 and phi~(p) over the window trajectories of all ``chains`` chains.

    ``sums`` (3, *half grid): sum |phi~|^2, sum Re phi~, sum Im phi~; the number of configurations in
    them follows from the trajectory counter, so the sums alone are the resume state."""

    def __init__(self, shape, n_therm: int, chains: int, sums=None):
        if n_therm < MIN_THERM:
            raise ParameterError(f"a measured kinetic kernel (or traj_length='auto') measures G(p) during "
                                 f"thermalisation and needs n_therm >= {MIN_THERM}; got n_therm={n_therm}")
        self.shape = tuple(int(s) for s in shape)
        self.chains = int(chains)
        self.start, self.stop = n_therm // 4, n_therm // 2
        self.sums = np.zeros((3,) + half_shape(self.shape)) if sums is None else np.array(sums, dtype=np.float64)
        if self.sums.shape != (3,) + half_shape(self.shape):
            raise ParameterError(f"two-point sums of shape {self.sums.shape} do not fit the lattice {self.shape}")

    def observe(self, t: int, phi) -> None:
        """Add the configurations after thermalisation trajectory ``t`` (0-based) if it is in the window."""
        if self.start <= t < self.stop:
            s2, s1, _ = fourier_sums(phi, self.shape)
            self.sums[0] += s2
            self.sums[1] += s1.real
            self.sums[2] += s1.imag

    def frozen(self, t_therm: int) -> bool:
        return t_therm >= self.stop

    def two_point(self, t_therm: int) -> np.ndarray:
        """Connected G(p) = <|phi~|^2>/V - |<phi~>|^2/V of the window so far (after ``t_therm`` trajectories)."""
        n_traj = min(max(t_therm - self.start, 0), self.stop - self.start)
        if n_traj == 0:
            raise ParameterError("no configuration of the two-point window has been observed yet")
        s2, re, im = self.sums
        return connected_two_point(s2, re + 1j * im, n_traj * self.chains, self.shape)

    def meta(self) -> dict:
        return {"two_point_window": [self.start, self.stop]}


def quarter_period(G, M=1.0) -> float:
    """T = pi / (2 omega_min), omega_p^2 = 1 / (G(p) M(p)): the quarter period of the slowest Gaussian mode
    of a sampler with mass M (a half-grid array, or 1 for plain HMC)."""
    return 0.5 * math.pi * math.sqrt(float(np.max(np.asarray(G) * np.asarray(M))))


def steps_for(traj_length: float, eps: float) -> int:
    """The number of steps of a trajectory of length ``traj_length`` at step size ``eps`` (at least 1)."""
    return max(1, int(round(traj_length / eps)))
