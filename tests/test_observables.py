"""Gamma-method errors against an AR(1) process, and observables against the exact free field."""

import math

import numpy as np
import pytest

from phi4si import stats
from phi4si.lattice import Phi4Params
from phi4si.mcmc.run import sample_mcmc
from phi4si.observables import analyze, zero_momentum_correlator
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
