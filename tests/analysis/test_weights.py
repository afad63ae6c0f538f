"""Importance weights against the lattice action (phi4si.analysis.weights)."""

import numpy as np
import pytest

from phi4si.analysis.weights import ess_fraction, log_target, log_weights, weighted_mean
from phi4si.errors import ParameterError
from phi4si.lattice import Phi4Params, action


def test_log_weights_and_weighted_mean():
    params = Phi4Params((4, 4), m2=1.0, lam=0.5, h=0.2)
    phi = np.random.default_rng(0).normal(size=(6, 4, 4))
    log_q = np.linspace(-3.0, 3.0, 6)
    assert np.array_equal(log_target(phi, params), -action(phi, params))
    np.testing.assert_array_equal(log_weights(phi, log_q, params), -action(phi, params) - log_q)
    v, e = weighted_mean(np.arange(6.0), np.log([1.0, 1.0, 1.0, 1.0, 1.0, 5.0]))
    assert v == pytest.approx(35.0 / 10.0) and e > 0                  # (0 + 1 + 2 + 3 + 4 + 5 * 5) / 10
    assert ess_fraction(np.zeros(10)) == 1.0 and np.isnan(ess_fraction([0.0, np.inf]))


def test_non_finite_log_weights_are_refused():
    params = Phi4Params((4, 4), m2=1.0, lam=0.0)
    with pytest.raises(ParameterError, match="not finite"):
        log_weights(np.zeros((2, 4, 4)), np.array([0.0, np.inf]), params)
    with pytest.raises(ParameterError, match="NaN or inf"):
        weighted_mean(np.zeros(6), np.array([0.0, 0.0, np.nan, 0.0, 0.0, 0.0]))
