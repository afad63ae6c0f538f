"""Observables of lattice phi^4 with autocorrelation-aware errors (THEORY.md section 2).

    m = (1/V) sum_x phi_x,   <|m|>, <m>, <m^2>
    chi  = V (<m^2> - <|m|>^2),   chi0 = V <m^2>
    U4   = 1 - <m^4> / (3 <m^2>^2)                      (Binder cumulant)
    G(x) = (1/V) sum_y <phi_y phi_{y+x}> - <m>^2       (connected two-point function)
    C(t) = sum_{x_perp} G(t, x_perp)                    (zero-momentum correlator)
    xi_2 = sqrt(G~(0)/G~(p_min) - 1) / (2 sin(pi/L))   (second-moment correlation length)
           with G~(0) = V(<m^2> - <m>^2) and G~(p_min) averaged over the directions of length L = L_0
    s    = <S>/V                                        (action density)

Errors: Gamma method via :mod:`phi4si.analysis.stats` (pyerrors) with independent chains as
replicas; derived quantities by linear error propagation.

>>> import os, tempfile
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.mcmc.run import sample_mcmc
>>> from phi4si.store import open_ensemble
>>> tmp = tempfile.TemporaryDirectory()
>>> path = sample_mcmc(Phi4Params((4, 4), m2=1.0, lam=0.0), os.path.join(tmp.name, "ens.h5"), chains=2, n_traj=200,
...                    n_therm=20, seed=1, progress=False)
>>> ds = open_ensemble(path)
>>> res = analyze_dataset(ds)
>>> ds.close(); tmp.cleanup()
>>> res["n_chains"], res["n_traj"]
(2, 200)
>>> abs(res["chi0"].value - 0.5) < 5 * res["chi0"].error      # free field: chi0 = 1 / (2 m2)
True
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import EnsembleFileError, ParameterError
from . import stats

KEYS = ("m", "abs_m", "m2", "chi", "chi0", "binder", "xi2", "s")


def derived(prim: dict, V: int, L: int):
    """pyerrors observables for every key in :data:`KEYS` from primaries m, abs_m, m2, m4, gp, s."""
    m, am, m2, m4, gp, s = (prim[k] for k in ("m", "abs_m", "m2", "m4", "gp", "s"))
    out = {"m": m, "abs_m": am, "m2": m2, "s": s}
    out["chi"] = V * (m2 - am * am)
    out["chi0"] = V * m2
    out["binder"] = 1 - m4 / (3 * m2 * m2)
    G0 = V * (m2 - m * m)
    ratio = G0 / gp
    if ratio.value > 1:
        # pyerrors also evaluates sqrt on every chain's (replica's) own means; these only
        # fill Obs.r_values and do not enter value or error.  A chain whose own ratio is < 1
        # gives NaN there with numpy's "invalid value encountered in scalar power" warning:
        # harmless, so exactly that floating-point warning is silenced, here only.
        with np.errstate(invalid="ignore"):
            out["xi2"] = (ratio - 1) ** 0.5 / (2 * math.sin(math.pi / L))
    else:
        out["xi2"] = None  # undefined (see XI2_UNDEFINED)
    return out


XI2_UNDEFINED = "undefined: G~(0)/G~(p_min) <= 1 (correlation length not resolved)"


def ess_fraction(log_w) -> float:
    """Kish's normalised effective sample size (sum w)^2 / (N sum w^2) of importance log-weights."""
    lw = np.asarray(log_w, dtype=np.float64).ravel()
    if lw.size == 0 or not np.isfinite(lw).all():
        return float("nan")
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / (lw.size * (w * w).sum()))


def weighted_primary(series: dict, log_w) -> dict:
    """Self-normalised importance-sampling means <O> = <w O>_q / <w>_q as pyerrors observables.

    Each is the ratio of two primaries (w O and w, with w = exp(log_w - max log_w)), so its error is
    the delta-method error of the self-normalised estimator, autocorrelations included.
    """
    lw = np.asarray(log_w, dtype=np.float64)
    if not np.isfinite(lw).all():
        raise ParameterError("importance log-weights contain NaN or inf")
    w = np.exp(lw - lw.max())
    prim = stats.primary(dict({k: w * v for k, v in series.items()}, w=w))
    return {k: prim[k] / prim["w"] for k in series}


def analyze_dataset(ds, S: float = 2.0) -> dict:
    """Observables with Gamma-method errors from an ensemble dataset (see :func:`phi4si.open_ensemble`).

    Returns ``{key: Estimate}`` for :data:`KEYS` plus ``"acceptance"`` (float) and counts.
    A file with importance log-weights ``log_w`` (a reweighting ensemble) gives self-normalised
    weighted estimates (:func:`weighted_primary`) and ``"ess_fraction"``.
    An estimate whose value or error is not computable is NaN with a ``note`` saying why.
    """
    shape = tuple(int(s) for s in ds.attrs["params"]["shape"])
    log_w = np.asarray(ds["log_w"].values, dtype=np.float64) if "log_w" in ds.variables else None
    res = _estimates(shape, np.asarray(ds["m"].values, dtype=np.float64), np.asarray(ds["gp"].values, dtype=np.float64),
                     np.asarray(ds["S"].values, dtype=np.float64), log_w, S)
    res["acceptance"] = acceptance(ds["accepted"].values, ds.attrs.get("sampler"))
    return res


def acceptance(accepted, sampler: dict | None) -> float:
    """The acceptance rate of an ensemble file, one definition for ``analyze``, the sampler's summary and
    the file's ``acceptance`` attribute: the mean of ``accepted`` (chain, traj), without the first entry
    of each chain for independence Metropolis (``method='imh'``: that entry is the chain's start, not a
    decision).  NaN when there is nothing to average.

    >>> acceptance(np.array([[1, 0, 1, 1]]), {"method": "imh"}), acceptance(np.array([[1, 0]]), {"sampler": "hmc"})
    (0.6666666666666666, 0.5)
    """
    acc = np.asarray(accepted, dtype=np.float64)
    if (sampler or {}).get("method") == "imh":
        acc = acc[:, 1:]
    return float(acc.mean()) if acc.size else float("nan")


def analyze_configs(phi, params, log_w=None, S: float = 2.0) -> dict:
    """:func:`analyze_dataset` for configurations in memory: ``phi`` (chain, traj, *shape) or (n, *shape)
    (independent samples, one chain), ``params`` a :class:`~phi4si.lattice.Phi4Params` (for S),
    optional importance log-weights (same leading shape) for self-normalised estimates.

    >>> import numpy as np
    >>> from phi4si.lattice import Phi4Params
    >>> r = analyze_configs(np.random.default_rng(0).normal(size=(100, 4, 4)), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> abs(r["m"].value) < 0.1
    True
    """
    from ..lattice import measure

    shape = tuple(int(s) for s in params.shape)
    phi = np.asarray(phi, dtype=np.float64)
    if phi.shape[-len(shape):] != shape:
        raise ParameterError(f"configurations of shape {phi.shape[-len(shape):]} for a lattice {shape}")
    if phi.ndim == len(shape) + 1:
        phi = phi[None]
    m, Sv, gp = measure(phi, params)
    if log_w is not None:
        log_w = np.asarray(log_w, dtype=np.float64).reshape(m.shape)
    return _estimates(shape, m, gp, Sv, log_w, S)


def _estimates(shape, m, gp_all, S_series, log_w, S):
    V = int(np.prod(shape))
    L = shape[0]
    dirs = [mu for mu, Lm in enumerate(shape) if Lm == L]
    series = {"m": m, "abs_m": np.abs(m), "m2": m**2, "m4": m**4, "gp": gp_all[..., dirs].mean(-1),
              "s": S_series / V}
    prim = weighted_primary(series, log_w) if log_w is not None else stats.primary(series)
    der = derived(prim, V, L)
    res = {}
    for k in KEYS:
        o = der[k]
        if o is None:
            nan = float("nan")
            res[k] = stats.Estimate(nan, nan, nan, nan, nan, note=XI2_UNDEFINED)
        else:
            res[k] = stats.estimate(o, S=S)
    if log_w is not None:
        res["ess_fraction"] = ess_fraction(log_w)
    res["n_chains"] = int(m.shape[0])
    res["n_traj"] = int(m.shape[1])
    return res


def timeslice_sums(phi: np.ndarray, d: int) -> np.ndarray:
    """Phi(t) = sum_{x_perp} phi(t, x_perp) along the first lattice axis; phi (..., L_0, ...)."""
    axes = tuple(range(phi.ndim - d + 1, phi.ndim))
    return phi.sum(axis=axes) if axes else phi


def correlator_primaries(phi: np.ndarray, d: int) -> np.ndarray:
    """Per configuration c_t = (1/V) sum_t' Phi(t') Phi(t'+t), shape (..., L_0)."""
    V = int(np.prod(phi.shape[phi.ndim - d:]))
    ts = timeslice_sums(np.asarray(phi, dtype=np.float64), d)
    ft = np.fft.fft(ts, axis=-1)
    return np.fft.ifft(ft.real**2 + ft.imag**2, axis=-1).real / V


def zero_momentum_correlator(ds, S: float = 2.0):
    """C(t) = sum_{x_perp} G(t, x_perp) with Gamma-method errors, from the stored configurations.

    Returns ``(t, value, error)`` arrays.  Uses ``C(t) = c_t - V_perp <m>^2``.
    """
    shape = tuple(int(s) for s in ds.attrs["params"]["shape"])
    d = len(shape)
    V = int(np.prod(shape))
    Vperp = V // shape[0]
    phi = np.asarray(ds["phi"].values, dtype=np.float64)
    if phi.shape[0] * phi.shape[1] < stats.MIN_REPLICA:
        raise EnsembleFileError(f"need at least {stats.MIN_REPLICA} stored configurations for C(t), "
                                f"the ensemble holds {phi.shape[0] * phi.shape[1]}")
    c = correlator_primaries(phi, d)  # (chain, cfg, L0)
    mcfg = phi.reshape(phi.shape[0], phi.shape[1], -1).mean(-1)
    series = {f"c{t}": c[..., t] for t in range(shape[0])}
    series["m"] = mcfg
    prim = stats.primary(series)
    vals, errs = [], []
    for t in range(shape[0]):
        e = stats.estimate(prim[f"c{t}"] - Vperp * prim["m"] * prim["m"], S=S)
        vals.append(e.value)
        errs.append(e.error)
    return np.arange(shape[0]), np.array(vals), np.array(errs)
