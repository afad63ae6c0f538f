"""Lattice momenta and the free-field propagator (THEORY.md section 1).

    p_mu = 2 pi n_mu / L_mu,   p_hat^2 = sum_mu 4 sin^2(p_mu / 2)
    free field (lam = 0):  < |phi~(p)|^2 > / V = 1 / (2 (m2 + p_hat^2)),   Var(m) = 1 / (2 m2 V)

Grids are returned in numpy's FFT layout (``np.fft.fftn`` order) or, with
``rfft=True``, in the half-spectrum layout of ``np.fft.rfftn`` over the last axis.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def p_hat2(shape, rfft: bool = False) -> np.ndarray:
    """Lattice momentum squared p_hat^2 on the FFT grid of ``shape``.

    >>> p_hat2((4,))
    array([0., 2., 4., 2.])
    """
    shape = tuple(int(s) for s in shape)
    axes = []
    for i, L in enumerate(shape):
        n = np.arange(L // 2 + 1) if (rfft and i == len(shape) - 1) else np.arange(L)
        axes.append(4.0 * np.sin(np.pi * n / L) ** 2)
    grids = np.meshgrid(*axes, indexing="ij")
    return np.sum(grids, axis=0)


def free_propagator(shape, m2: float) -> np.ndarray:
    """Exact free-field two-point function in momentum space, <|phi~(p)|^2>/V = 1/(2(m2 + p_hat^2)).

    >>> float(free_propagator((8, 8), 0.5)[0, 0])
    1.0
    """
    if m2 <= 0:
        raise ParameterError(f"the free field needs m2 > 0, got m2={m2}")
    return 1.0 / (2.0 * (m2 + p_hat2(shape)))


def free_magnetisation_variance(shape, m2: float) -> float:
    """Var(m) = 1/(2 m2 V) of the free field."""
    return 1.0 / (2.0 * m2 * float(np.prod(shape)))


def power_spectrum(phi: np.ndarray, ndim: int) -> np.ndarray:
    """|phi~(p)|^2 / V over the last ``ndim`` axes (any leading batch axes)."""
    axes = tuple(range(phi.ndim - ndim, phi.ndim))
    V = int(np.prod([phi.shape[a] for a in axes]))
    ft = np.fft.fftn(phi, axes=axes)
    return (ft.real**2 + ft.imag**2) / V
