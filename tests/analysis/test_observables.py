"""Gamma-method errors against an AR(1) process, and observables against the exact free field."""

import math
import warnings

import numpy as np
import pytest

from phi4si.analysis import observables, stats
from phi4si.analysis.report import format_table
from phi4si.lattice import Phi4Params
from phi4si.mcmc.run import sample_mcmc
from phi4si.analysis.observables import analyze, zero_momentum_correlator
from phi4si.store import open_ensemble


def ar1(rng, n_chains, n, rho):
    x = np.empty((n_chains, n))
    x[:, 0] = rng.standard_normal(n_chains) / math.sqrt(1 - rho**2)
    e = rng.standard_normal((n_chains, n))
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_gamma_method_on_ar1(rho):
    """AR(1): tau_int = (1 + rho) / (2 (1 - rho)); the error bar covers the true mean at the right rate."""
    rng = np.random.default_rng(42)
    tau_exact = (1 + rho) / (2 * (1 - rho))
    taus, zs = [], []
    for _ in range(20):
        x = ar1(rng, 4, 4000, rho)
        e = stats.gamma(x)
        taus.append(e.tau_int)
        zs.append(e.value / e.error)
        # the error is sqrt(2 tau Var / N), Var = 1 / (1 - rho^2)
    assert np.mean(taus) == pytest.approx(tau_exact, rel=0.08)
    assert np.std(zs) == pytest.approx(1.0, abs=0.35)
    assert e.ess == pytest.approx(16000 / (2 * e.tau_int))


def test_gamma_many_chains_and_single_samples():
    rng = np.random.default_rng(0)
    x = ar1(rng, 300, 200, 0.7)  # folded into 64 replicas
    e = stats.gamma(x)
    assert e.tau_int == pytest.approx(0.85 / 0.3 * 1.0, rel=0.2)
    y = rng.standard_normal((500, 1))  # independent samples, e.g. a generated ensemble
    e = stats.gamma(y)
    assert e.tau_int == pytest.approx(0.5, abs=0.15)
    assert e.error == pytest.approx(1 / math.sqrt(500), rel=0.15)


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
    r = analyze(ds)
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


def test_uncomputable_error_is_reported_not_nan():
    """An observable whose error cannot be computed gets error NaN *and* a note saying why."""
    pe = stats._pyerrors()
    x = stats.primary({"x": np.random.default_rng(0).standard_normal((2, 100))})["x"]
    bad = pe.derived_observable(lambda v, **kw: v[0] * 0 + 1.0, [x], man_grad=[np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = stats.estimate(bad)
    assert e.value == 1.0 and math.isnan(e.error) and "error not computable" in e.note
    assert e.to_dict()["note"] == e.note
    assert "note" not in stats.estimate(x).to_dict()  # the usual case: no note


def test_table_says_why_an_error_is_missing():
    ok = {"value": 1.0, "error": 0.1, "tau_int": 0.7, "tau_int_error": 0.1, "ess": 100.0}
    res = {k: dict(ok) for k in observables.KEYS}
    res["chi"] = dict(ok, error=None, note="error not computable: non-finite fluctuations")
    res["xi2"] = {"value": None, "error": None, "tau_int": None, "tau_int_error": None, "ess": None,
                  "note": "undefined: G~(0)/G~(p_min) <= 1"}
    res.update(params={"shape": [4, 4], "m2": -4.0, "lam": 8.0, "h": 0.0, "k": 0.0}, sampler={"sampler": "hmc"},
               n_chains=2, n_traj=20, acceptance=0.8, eps=0.1)
    lines = format_table(res).splitlines()
    chi = next(ln for ln in lines if ln.startswith("chi "))
    assert "n/a" in chi and "non-finite fluctuations" in chi, chi
    xi = next(ln for ln in lines if ln.startswith("xi_2"))
    assert "n/a" in xi and "G~(0)/G~(p_min) <= 1" in xi, xi
    assert "nan" not in format_table(res).lower()
