"""Gamma-method errors (phi4si.analysis.stats) against an AR(1) process; what it refuses or flags."""

import math
import warnings

import numpy as np
import pytest

from phi4si.analysis import stats
from phi4si.errors import ParameterError


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




@pytest.mark.parametrize("shape", [(1, 4), (2, 2), (4, 1)])
def test_too_few_measurements_are_refused(shape):
    """Fewer than 5 measurements in all (pyerrors' minimum): a clear ParameterError, not pyerrors' ValueError."""
    with pytest.raises(ParameterError, match=r"need at least 5 measurements of x for an error estimate, got 4"):
        stats.primary({"x": np.ones(shape)})
    assert stats.estimate(stats.primary({"x": np.arange(5.0)[None]})["x"]).value == 2.0
