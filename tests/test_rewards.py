"""The reward transform (THEORY.md section 5): the posterior drift built from the prior's equals the
exact posterior's drift for Gaussian priors (Gaussian oracle), to round-off, for random rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from phi4si.interpolant.oracle import GaussianOracle
from phi4si.interpolant.rewards import InfeasibleRewardError, PosteriorDrift, Reward, transform


def _prior(rng, V):
    M = rng.normal(size=(V, V))
    C = M @ M.T / V + 0.3 * np.eye(V)
    return rng.normal(size=V), C


def _posterior(mu, C, A, b):
    P = np.linalg.inv(C) - np.diag(A)
    Cp = np.linalg.inv(P)
    return Cp @ (np.linalg.solve(C, mu) + b), Cp


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), V=st.integers(1, 6), positive=st.booleans())
def test_posterior_drift_equals_exact_posterior_oracle(seed, V, positive):
    rng = np.random.default_rng(seed)
    mu, C = _prior(rng, V)
    a = rng.uniform(0.02, 0.95, size=V)
    A = -rng.exponential(1.0, size=V) * rng.integers(0, 2, size=V)          # negative semidefinite, some zeros
    if positive:                                                             # A > 0 where feasible (A sigma^2 < 1)
        sigma = a / (1 - a)
        A = rng.uniform(0, 0.9, size=V) / sigma**2
        A = np.minimum(A, 0.9 * np.linalg.eigvalsh(np.linalg.inv(C)).min())  # keep the posterior normalisable
    b = rng.normal(size=V)
    x = torch.from_numpy(rng.normal(size=(3, 1, V)))
    at = torch.from_numpy(a)[None, None]
    post = PosteriorDrift(GaussianOracle(mu, C, (V,)), Reward(torch.from_numpy(A)[None, None], torch.from_numpy(b)[None, None]))
    mp, Cp = _posterior(mu, C, A, b)
    exact = GaussianOracle(mp, Cp, (V,)).b(x, at)
    got = post.b(x, at)
    assert torch.allclose(got, exact, rtol=1e-8, atol=1e-8 * (1 + float(exact.abs().max())))


def test_linear_reward_is_the_shift():
    x = torch.randn(2, 1, 5, dtype=torch.float64)
    a = torch.rand(1, 1, 5, dtype=torch.float64) * 0.9
    b = torch.randn(1, 1, 5, dtype=torch.float64)
    a_r, x_r, _, _ = transform(Reward(0.0, b), x, a)
    assert torch.allclose(a_r.expand_as(x), a.expand_as(x))
    assert torch.allclose(x_r, x + a**2 / (1 - a) * b)


def test_composed_rewards_equal_the_summed_reward():
    rng = np.random.default_rng(1)
    mu, C = _prior(rng, 4)
    r1 = Reward(torch.tensor(-0.3), torch.tensor(0.2))
    r2 = Reward(torch.tensor(-0.5), torch.tensor(-0.7))
    x = torch.randn(2, 1, 4, dtype=torch.float64)
    a = torch.full((1, 1, 4), 0.4, dtype=torch.float64)
    orc = GaussianOracle(mu, C, (4,))
    twice = PosteriorDrift(PosteriorDrift(orc, r1), r2).b(x, a)
    once = PosteriorDrift(orc, r1 + r2).b(x, a)
    assert torch.allclose(twice, once, atol=1e-10)


def test_data_end_is_finite_and_equals_the_prior():
    rng = np.random.default_rng(2)
    mu, C = _prior(rng, 3)
    orc = GaussianOracle(mu, C, (3,))
    post = PosteriorDrift(orc, Reward(torch.tensor(-1.0), torch.tensor(0.5)))
    x = torch.randn(2, 1, 3, dtype=torch.float64)
    a0 = torch.zeros(1, 1, 3, dtype=torch.float64)
    assert torch.allclose(post.b(x, a0), orc.b(x, a0))


def test_feasibility_boundary_and_noise_end():
    A = torch.tensor([[[4.0, 0.0]]])                 # a <= 1/(1 + 2) = 1/3 on site 0
    r = Reward(A, torch.zeros(1, 1, 2))
    x = torch.zeros(1, 1, 2, dtype=torch.float64)
    transform(r, x, torch.tensor([[[0.33, 0.9]]], dtype=torch.float64))
    with pytest.raises(InfeasibleRewardError, match=r"flat indices \[0\].*0.3333"):
        transform(r, x, torch.tensor([[[0.34, 0.9]]], dtype=torch.float64))
    with pytest.raises(InfeasibleRewardError, match="noise end"):
        transform(Reward(0.0, 0.1), x, torch.ones(1, 1, 2, dtype=torch.float64))


def test_physical_reward_normalisation_leaves_the_posterior_unchanged():
    """Posterior of phi ~ N(m, s^2 C) under (h, k) equals the mapped posterior of y = (phi - m)/s."""
    rng = np.random.default_rng(3)
    _, C = _prior(rng, 3)
    m, s, h, k = 0.4, 1.7, 0.3, -0.6
    r = Reward.physical(h=h, k=k, mean=m, scale=s)
    # in y: prior N(0, C), reward A' y^2/2 + b' y
    my, Cy = _posterior(np.zeros(3), C, np.full(3, float(r.A)), np.full(3, float(r.b)))
    mphi, Cphi = _posterior(np.full(3, m), s**2 * C, np.full(3, 2 * k), np.full(3, h))
    assert np.allclose(m + s * my, mphi) and np.allclose(s**2 * Cy, Cphi)
