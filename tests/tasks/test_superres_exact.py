"""Exact super-resolution (phi4si.tasks.superres_exact): the independence-Metropolis chain in the fibre of
a coarse configuration targets the exact conditional law of the fine field, even with a wrong model.

The judge is the free field: given the block sums (pinned Haar coordinates) the details are Gaussian with a
known mean and covariance.  The proposals come from the Gaussian oracle at another mass (a wrong model with
an exact log q): their raw second moment of the details misses, the chains' final states must not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phi4si.errors import ParameterError
from phi4si.interpolant.operators import Hadamard, Haar
from phi4si.interpolant.oracle import free_field_covariance, free_field_oracle
from phi4si.lattice import Phi4Params
from phi4si.model import DriftModel
from phi4si.model.density import FlowSettings
from phi4si.tasks.superres import block_average
from phi4si.tasks.superres_exact import superres_metropolis, superres_proposals

SHAPE, M2, M2_WRONG = (4, 4), 1.0, 0.4
FS = FlowSettings(steps=6, divergence="exact", batch_size=512)


def _detail_moment(fam, factor, coarse):
    """E |d|^2 of the moving Haar coordinates given the pinned ones, under the free field at M2."""
    n = int(np.prod(SHAPE))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, *SHAPE)
    T = fam.basis(eye).reshape(n, -1).T.numpy()
    Cc = T @ free_field_covariance(SHAPE, M2) @ T.T
    keep = fam.coarse_mask(SHAPE, {2: 1, 4: 2}[factor]).numpy().ravel()
    x = np.kron(coarse, np.ones((factor, factor))).ravel()          # any field with these block averages
    c = T @ x
    u, o = ~keep, keep
    K = Cc[np.ix_(u, o)] @ np.linalg.inv(Cc[np.ix_(o, o)])
    mu, Cu = K @ c[o], Cc[np.ix_(u, u)] - K @ Cc[np.ix_(o, u)]
    return float(np.trace(Cu) + mu @ mu), T, u


@pytest.mark.parametrize("levels,factor", [(1, 2), (2, 4)])
def test_fibre_chains_reach_the_exact_conditional_with_a_wrong_model(levels, factor):
    fam = Haar(levels=levels)
    model = DriftModel(free_field_oracle(SHAPE, M2_WRONG, fam), Phi4Params(SHAPE, m2=M2, lam=0.0))
    coarse = np.random.default_rng(3).normal(0, 0.6, (SHAPE[0] // factor, SHAPE[1] // factor))
    exact, T, u = _detail_moment(fam, factor, coarse)
    n = 200                  # the proposals are wider than the target (lighter mass): w is bounded, the chain
    r = superres_metropolis(model, np.repeat(coarse[None], n, 0), factor, proposals=16, fs=FS, seed=1)  # mixes fast
    assert np.allclose(block_average(r.phi, factor), coarse, atol=1e-10)
    d2 = ((r.phi.reshape(n, -1) @ T.T)[:, u] ** 2).sum(1)
    raw = superres_proposals(model, np.repeat(coarse[None], n, 0), factor, fs=FS, seed=2).phi
    raw2 = ((raw.reshape(n, -1) @ T.T)[:, u] ** 2).sum(1)
    err, raw_err = d2.std() / np.sqrt(n), raw2.std() / np.sqrt(n)
    assert abs(d2.mean() - exact) < 4 * err, (d2.mean(), exact, err)
    assert abs(raw2.mean() - exact) > 3.5 * raw_err, (raw2.mean(), exact, raw_err)    # the proposals alone miss
    assert 0.5 < r.acceptance.mean() < 0.95 and np.all((r.ess_fraction > 0) & (r.ess_fraction <= 1))


def test_the_exact_oracle_proposes_with_constant_weights():
    """With the right model log w = -S - log q is constant in each fibre: every proposal is accepted."""
    fam = Haar(levels=1)
    model = DriftModel(free_field_oracle(SHAPE, M2, fam), Phi4Params(SHAPE, m2=M2, lam=0.0))
    coarse = np.random.default_rng(0).normal(0, 0.5, (3, 2, 2))
    r = superres_metropolis(model, coarse, 2, proposals=6, fs=FlowSettings(steps=24, divergence="exact"), seed=0)
    assert np.ptp(r.log_w, axis=1).max() < 1e-3 and r.acceptance.min() > 0.99 and r.ess_fraction.min() > 0.999


def test_bad_inputs_are_refused():
    good = DriftModel(free_field_oracle(SHAPE, M2, Haar(levels=1)), Phi4Params(SHAPE, m2=M2, lam=0.0))
    other = DriftModel(free_field_oracle(SHAPE, M2, Hadamard()), Phi4Params(SHAPE, m2=M2, lam=0.0))
    c = np.zeros((1, 2, 2))
    with pytest.raises(ParameterError, match="needs a model of the Haar family"):
        superres_metropolis(other, c, 2)
    with pytest.raises(ParameterError, match="proposals must be >= 1"):
        superres_proposals(good, c, 2, proposals=0)
    with pytest.raises(ParameterError, match="finite, non-empty"):
        superres_proposals(good, np.full((1, 2, 2), np.nan), 2)
    with pytest.raises(ParameterError, match="block factor 3"):
        superres_metropolis(good, c, 3)
    with pytest.raises(ParameterError, match=r"params are for the lattice \(8, 8\), the fine fields have \(4, 4\)"):
        superres_metropolis(good, c, 2, params=Phi4Params((8, 8), m2=M2, lam=0.0))
