"""The lattice phi^4 model: parameters, action and force (numba and torch), Fourier helpers.

>>> import numpy as np
>>> from phi4si.lattice import Phi4Params, action, force
>>> p = Phi4Params((8, 8), m2=-4.0, lam=8.0)
>>> phi = np.zeros((3, 8, 8))
>>> action(phi, p).shape, force(phi, p).shape
((3,), (3, 8, 8))
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..resources import torch_threads_kept
from .fourier import (free_magnetisation_variance, free_propagator, momentum_orbits, orbit_p_hat2, orbit_spectrum,
                      p_hat2, power_spectrum)
from .params import Phi4Params, validate_shape

__all__ = [
    "Phi4Params",
    "validate_shape",
    "action",
    "force",
    "measure",
    "p_hat2",
    "free_propagator",
    "free_magnetisation_variance",
    "power_spectrum",
    "momentum_orbits",
    "orbit_spectrum",
    "orbit_p_hat2",
]


def _flat(phi, params: Phi4Params):
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    d = params.d
    if phi.shape[phi.ndim - d:] != params.shape:
        raise ParameterError(f"field of shape {phi.shape} does not end with the lattice shape {params.shape}")
    lead = phi.shape[: phi.ndim - d]
    return phi.reshape(-1, params.volume), lead


def action(phi, params: Phi4Params) -> np.ndarray:
    """S(phi) (with the reward terms h, k) for fields of shape ``(..., *params.shape)``."""
    from . import kernels

    flat, lead = _flat(phi, params)
    shape = np.array(params.shape, dtype=np.int64)
    with torch_threads_kept():
        return kernels.action_batch(flat, shape, params.mass_term, params.lam, params.h).reshape(lead)


def measure(phi, params: Phi4Params):
    """Per-configuration (m, S, gp) for fields of shape ``(..., *params.shape)``: the magnetisation, the
    action (reward terms included) and |phi~(p_min e_mu)|^2 / V per direction (shape ``(..., d)``) - what
    ensemble files store for every measurement.

    >>> m, S, gp = measure(np.ones((2, 3, 4, 4)), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> m.shape, S.shape, gp.shape, float(m[0, 0])
    ((2, 3), (2, 3), (2, 3, 2), 1.0)
    """
    from . import kernels

    flat, lead = _flat(phi, params)
    cos_t, sin_t, strides = kernels.phase_tables(params.shape)
    with torch_threads_kept():
        m, S, gp = kernels.measure_batch(flat, np.array(params.shape, dtype=np.int64), params.mass_term,
                                         params.lam, params.h, cos_t, sin_t, strides)
    return m.reshape(lead), S.reshape(lead), gp.reshape(*lead, -1)


def force(phi, params: Phi4Params) -> np.ndarray:
    """F = -dS/dphi for fields of shape ``(..., *params.shape)``."""
    from . import kernels

    flat, lead = _flat(phi, params)
    out = np.empty_like(flat)
    with torch_threads_kept():
        kernels.force_batch(flat, out, np.array(params.shape, dtype=np.int64), params.mass_term, params.lam,
                            params.h)
    return out.reshape(np.shape(phi))
