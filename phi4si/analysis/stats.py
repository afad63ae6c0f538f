"""Autocorrelation-aware error analysis (Gamma method), via pyerrors.

The Gamma method (U. Wolff, Comput. Phys. Commun. 156 (2004) 143) estimates the
integrated autocorrelation time

    tau_int = 1/2 + sum_{t=1}^{W} Gamma(t) / Gamma(0)

with an automatic window W, and the error of a mean as sqrt(2 tau_int Var / N).
Derived quantities (ratios, differences, square roots of means) get their errors by
linear error propagation of the primary means.  We use the lattice community's
implementation, `pyerrors <https://github.com/fjosw/pyerrors>`_, rather than our own;
independent Markov chains enter as replicas of one ensemble.  ESS = N / (2 tau_int).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((4, 1000))          # 4 chains, 1000 steps
>>> obs = primary({"x": x})
>>> e = estimate(obs["x"])
>>> abs(e.value) < 4 * e.error
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

MAX_REPLICA = 64
MIN_REPLICA = 5
ENSEMBLE = "ens"


@dataclass
class Estimate:
    """A Monte Carlo estimate with its Gamma-method error.

    ``note`` says why, when the value or the error could not be computed (they are NaN
    then); None otherwise.
    """

    value: float
    error: float
    tau_int: float
    tau_int_error: float
    ess: float
    note: str | None = None

    def to_dict(self) -> dict:
        d = {"value": self.value, "error": self.error, "tau_int": self.tau_int,
             "tau_int_error": self.tau_int_error, "ess": self.ess}
        if self.note is not None:
            d["note"] = self.note
        return d

    def __str__(self):
        s = f"{self.value:.6g} +- {self.error:.2g}"
        return s if self.note is None else f"{s} ({self.note})"


def _fold(x: np.ndarray) -> np.ndarray:
    """Fold (chain, traj) series into at most MAX_REPLICA replicas; length-1 chains form one series."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    nc, nt = x.shape
    if nt < MIN_REPLICA:
        # too short for a per-chain autocorrelation analysis (pyerrors needs >= 5 per
        # replica): treated as independent samples (e.g. generated ensembles, one per chain)
        return x.T.reshape(1, -1)
    if nc > MAX_REPLICA:
        # average chains in groups at equal time: the group means are again stationary
        # series with the same autocorrelation, and means of primaries are unchanged
        groups = np.array_split(np.arange(nc), MAX_REPLICA)
        x = np.stack([x[g].mean(0) for g in groups])
    return x


def _pyerrors():
    import warnings

    with warnings.catch_warnings():  # pyerrors imports scipy.odr, deprecated in SciPy 1.17
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyerrors as pe
    return pe


def primary(series: dict) -> dict:
    """pyerrors observables from per-chain series ``{name: array (chain, traj)}``."""
    pe = _pyerrors()

    out = {}
    for name, x in series.items():
        f = _fold(x)
        if f.shape[1] < MIN_REPLICA:  # one replica (see _fold) of fewer than 5: too few for pyerrors
            raise ParameterError(f"need at least {MIN_REPLICA} measurements of {name} for an error estimate, "
                                 f"got {f.size}")
        out[name] = pe.Obs([r for r in f], [f"{ENSEMBLE}|r{i}" for i in range(f.shape[0])])
    return out


def estimate(obs, S: float = 2.0) -> Estimate:
    """Run the Gamma method on a (primary or derived) pyerrors observable.

    Never a silent NaN: where the value or the error cannot be computed, they are NaN and
    :attr:`Estimate.note` says why.
    """
    nan = float("nan")
    value = float(obs.value)
    if not math.isfinite(value):
        return Estimate(value, nan, nan, nan, nan, note="value not finite")
    if not all(np.isfinite(d).all() for d in obs.deltas.values()):
        # a derived observable whose linearisation is singular at the mean (e.g. a ratio
        # with a zero denominator): the Gamma method would only produce NaNs and warnings
        return Estimate(value, nan, nan, nan, nan,
                        note="error not computable: non-finite fluctuations (singular derivative at the mean)")
    obs.gamma_method(S=S)
    tau = float(obs.e_tauint.get(ENSEMBLE, 0.5)) if obs.e_tauint else 0.5
    dtau = float(obs.e_dtauint.get(ENSEMBLE, 0.0)) if obs.e_dtauint else 0.0
    n = sum(obs.shape.values())
    if not (math.isfinite(float(obs.dvalue)) and math.isfinite(tau)):
        return Estimate(value, nan, nan, nan, nan, note="error not computable: the Gamma method gave no finite error")
    tau = max(tau, 0.5)
    return Estimate(value, float(obs.dvalue), tau, dtau, n / (2.0 * tau))


def gamma(x, S: float = 2.0) -> Estimate:
    """Mean of per-chain series ``x`` (chain, traj) with its Gamma-method error."""
    return estimate(primary({"x": x})["x"], S=S)
