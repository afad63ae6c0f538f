"""Observables (phi4si.analysis.observables) against the exact free field; refusals of bad input."""

import math
import warnings

import numpy as np
import pytest

from phi4si.analysis import observables, stats
from phi4si.analysis.observables import analyze_configs, analyze_dataset, weighted_primary, zero_momentum_correlator
from phi4si.errors import EnsembleFileError, ParameterError
from phi4si.lattice import Phi4Params
from phi4si.mcmc.run import sample_mcmc
from phi4si.store import open_ensemble


@pytest.fixture(scope="module")
def free_ensemble(tmp_path_factory):
    path = tmp_path_factory.mktemp("free") / "free.h5"
    params = Phi4Params((8, 6), m2=0.5, lam=0.0)
    sample_mcmc(params, path, sampler="fahmc", mass=math.sqrt(0.5), eps=0.07, n_steps=6, chains=16, n_traj=600,
                n_therm=50, every=2, seed=3, progress=False)
    return path, params


def test_observables_free_field(free_ensemble):
    """chi0 = V <m^2> = 1/(2 m2); xi_2 = 1/sqrt(m2); U4 = 0 (Gaussian m); <S>/V = 1/2 (equipartition)."""
    path, params = free_ensemble
    ds = open_ensemble(path)
    r = analyze_dataset(ds)
    ds.close()
    m2 = params.m2
    checks = {"chi0": 1 / (2 * m2), "xi2": 1 / math.sqrt(m2), "binder": 0.0, "s": 0.5, "m": 0.0}
    for k, exact in checks.items():
        z = (r[k].value - exact) / r[k].error
        assert abs(z) < 4, (k, r[k], exact)
    # chi = V(<m^2> - <|m|>^2) = chi0 (1 - 2/pi) for Gaussian m
    z = (r["chi"].value - (1 - 2 / math.pi) / (2 * m2)) / r["chi"].error
    assert abs(z) < 4


def test_zero_momentum_correlator_free_field(free_ensemble):
    """C(t) = (1/L0) sum_p0 exp(i p0 t) / (2 (m2 + p0_hat^2))."""
    path, params = free_ensemble
    ds = open_ensemble(path)
    t, C, dC = zero_momentum_correlator(ds)
    ds.close()
    L0 = params.shape[0]
    p0 = 2 * np.pi * np.arange(L0) / L0
    exact = np.array([np.mean(np.cos(p0 * tt) / (2 * (params.m2 + 4 * np.sin(p0 / 2) ** 2))) for tt in t])
    z = (C - exact) / dC
    assert np.all(np.abs(z) < 4.5), z


def _primaries_one_chain_below_one(rng):
    """Per-chain primaries whose pooled G~(0)/G~(p_min) is > 1 while one chain's own ratio is < 1."""
    n = 400
    m = np.stack([rng.standard_normal(n), 0.1 * rng.standard_normal(n)])
    gp = np.stack([0.1 + 0.01 * rng.standard_normal(n), 0.5 + 0.01 * rng.standard_normal(n)])
    series = {"m": m, "abs_m": np.abs(m), "m2": m**2, "m4": m**4, "gp": gp, "s": rng.standard_normal((2, n))}
    return stats.primary(series)


def test_derived_observables_warn_nothing():
    """pyerrors evaluates xi_2 = sqrt(G0/gp - 1)/... also on each chain's means (replica values only,
    not used for the errors); a chain with G0/gp < 1 must not produce a RuntimeWarning."""
    prim = _primaries_one_chain_below_one(np.random.default_rng(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        der = observables.derived(prim, V=16, L=4)
        est = {k: stats.estimate(der[k]) for k in observables.KEYS}
    for k, e in est.items():
        assert math.isfinite(e.value) and math.isfinite(e.error) and e.error > 0 and e.note is None, (k, e)


def test_refusals_are_typed(tmp_path):
    params = Phi4Params((4, 4), m2=1.0, lam=0.0)
    with pytest.raises(ParameterError, match="configurations of shape"):
        analyze_configs(np.zeros((10, 4, 5)), params)
    with pytest.raises(ParameterError, match="NaN or inf"):
        weighted_primary({"x": np.ones((1, 6))}, np.array([[0.0, np.nan, 0, 0, 0, 0]]))
    path = sample_mcmc(params, tmp_path / "e.h5", chains=2, n_traj=4, n_therm=0, every=2, progress=False)
    ds = open_ensemble(path)
    try:
        with pytest.raises(EnsembleFileError, match="need at least 5 stored configurations for C.t., the ensemble "
                                                    "holds 4"):
            zero_momentum_correlator(ds)
    finally:
        ds.close()
