"""Importance weights of model samples against the lattice action (THEORY.md section 6).

With the target's unnormalised log-density log p = -S_{h,k}(phi) (rewards included, see
:class:`~phi4si.lattice.Phi4Params`) and the model density q of a configuration,

    log w = -S_{h,k}(phi) - log q(phi),     ESS/N = (sum w)^2 / (N sum w^2),
    <O> = sum w O / sum w                     (self-normalised, exact as N -> infinity).

The error of <O> is the delta-method error of the ratio of the two means (w O and w); files
written by ``phi4si sample-neural --method reweight`` carry ``log_w`` and ``phi4si analyze``
applies exactly this (:func:`phi4si.analysis.observables.weighted_primary`); :func:`weighted_mean` does
the same for one observable from arrays.

>>> import numpy as np
>>> log_w = np.log([1.0, 1.0, 2.0])
>>> round(ess_fraction(log_w), 4)                 # (4)^2 / (3 * 6)
0.8889
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from .observables import ess_fraction, weighted_primary

__all__ = ["log_target", "log_weights", "ess_fraction", "weighted_mean"]


def log_target(phi, params) -> np.ndarray:
    """log p(phi) = -S_{h,k}(phi) up to the normalisation, for fields (..., *params.shape)."""
    from ..lattice import action

    return -action(phi, params)


def log_weights(phi, log_q, params) -> np.ndarray:
    """log w = -S_{h,k}(phi) - log q(phi) (unnormalised): self-normalised weighted means with
    w / sum w estimate expectations under exp(-S_{h,k}) / Z from samples of q.

    >>> from phi4si.lattice import Phi4Params, action
    >>> p = Phi4Params((2, 2), m2=1.0, lam=0.0)
    >>> phi = np.zeros((2, 2, 2))
    >>> log_weights(phi, -action(phi, p), p).tolist()      # q = exp(-S): equal weights
    [0.0, 0.0]
    """
    lw = log_target(phi, params) - np.asarray(log_q, dtype=np.float64)
    if not np.isfinite(lw).all():
        raise ParameterError("importance log-weights are not finite (log q or the action overflowed)")
    return lw


def weighted_mean(values, log_w):
    """Self-normalised weighted mean of ``values`` (N,) with its delta-method error (iid samples;
    the Gamma method needs N >= 5).

    >>> v, e = weighted_mean(np.array([0.0, 1.0] * 5), np.log([1.0, 3.0] * 5))
    >>> round(v, 3)
    0.75
    """
    from . import stats

    x = np.asarray(values, dtype=np.float64)[None]
    obs = weighted_primary({"x": x}, np.asarray(log_w, dtype=np.float64)[None])["x"]
    e = stats.estimate(obs)
    return e.value, e.error
