"""The reward transform (THEORY.md section 5): the posterior drift built from the prior's equals the
exact posterior's drift for Gaussian priors (Gaussian oracle), to round-off, for random rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from phi4si.interpolant.operators import FourierDiagonal, Hadamard
from phi4si.interpolant.oracle import GaussianOracle, free_field_oracle
from phi4si.errors import InfeasibleRewardError
from phi4si.interpolant.rewards import (PosteriorDrift, Reward, feasible_start, transform,
                                        transform_matrix)


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


def _neg_p(t):
    """t(-p) for t in FFT layout over all its axes."""
    for ax in range(t.ndim):
        t = np.roll(np.flip(t, axis=ax), 1, axis=ax)
    return t


def _dense(fam, diag, shape):
    """The V x V matrix of the family's diagonal operator ``diag``."""
    V = int(np.prod(shape))
    E = torch.eye(V, dtype=torch.float64).reshape(V, 1, *shape)
    return fam.alpha(torch.as_tensor(diag), E).reshape(V, V).T.numpy()


def _random_op(rng, V, centre):
    while True:
        M = centre * np.eye(V) + 0.3 * rng.normal(size=(V, V))
        if np.linalg.cond(M) < 50:
            return M


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), V=st.integers(1, 5), positive=st.booleans())
def test_matrix_transform_equals_exact_posterior_for_dense_operators(seed, V, positive):
    """Non-diagonal, non-commuting alpha and beta (not even beta = 1 - alpha), dense A and b."""
    rng = np.random.default_rng(seed)
    mu, C = _prior(rng, V)
    alpha, beta = _random_op(rng, V, 0.7), _random_op(rng, V, 0.5)
    N = rng.normal(size=(V, V))
    A = -N @ N.T / V                                                    # negative semidefinite
    if positive:                                                        # positive, inside both bounds
        G = np.linalg.solve(alpha, beta)
        bound = min(np.linalg.eigvalsh(G.T @ G).min(), np.linalg.eigvalsh(np.linalg.inv(C)).min())
        Q = np.linalg.qr(N)[0]
        A = Q @ np.diag(rng.uniform(0, 0.9, size=V) * bound) @ Q.T
    b = rng.normal(size=V)
    x = rng.normal(size=(3, V))
    prior = GaussianOracle(mu, C, (V,))
    ar, br, xr = transform_matrix(alpha, beta, A, b, x)
    assert torch.allclose(ar + br, torch.eye(V, dtype=torch.float64))
    got = prior.eta1_operators(xr, ar, br)
    exact = prior.posterior(A, b).eta1_operators(x, alpha, beta)
    assert torch.allclose(got, exact, rtol=1e-8, atol=1e-8 * (1 + float(exact.abs().max())))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shape=st.sampled_from([(4,), (5,), (6,), (3, 4), (4, 4)]),
       laplacian=st.booleans())
def test_fourier_diagonal_reward_equals_exact_posterior(seed, shape, laplacian):
    """Translation-invariant A (e.g. c Delta_lat) with Fourier-diagonal operators: per-mode formulas."""
    rng = np.random.default_rng(seed)
    V = int(np.prod(shape))
    mu, C = _prior(rng, V)
    fam = FourierDiagonal(ndim=len(shape))
    a = rng.uniform(0.02, 0.95, size=shape)
    a = 0.5 * (a + _neg_p(a))
    if laplacian:
        r = Reward.laplacian(rng.uniform(0.05, 1.0), shape, b=torch.from_numpy(rng.normal(size=shape))[None, None])
    else:
        Ap = -rng.exponential(1.0, size=shape) * rng.integers(0, 2, size=shape)
        r = Reward(torch.from_numpy(0.5 * (Ap + _neg_p(Ap))), torch.from_numpy(rng.normal(size=shape))[None, None],
                   "fourier")
    prior = GaussianOracle(mu, C, shape, fam)
    x = torch.from_numpy(rng.normal(size=(3, 1, *shape)))
    at = torch.from_numpy(a)[None, None]
    got = PosteriorDrift(prior, r).b(x, at)
    exact = prior.posterior(_dense(fam, r.A, shape), r.b.expand(1, 1, *shape).reshape(V).numpy()).b(x, at)
    assert torch.allclose(got, exact, rtol=1e-8, atol=1e-8 * (1 + float(exact.abs().max())))


def test_laplacian_reward_is_c_times_the_lattice_laplacian():
    x = torch.randn(2, 1, 4, 6, dtype=torch.float64)
    r = Reward.laplacian(0.7, (4, 6))
    lap = sum(torch.roll(x, s, dims=d) for d in (2, 3) for s in (1, -1)) - 4 * x
    assert torch.allclose(FourierDiagonal(2).alpha(r.A, x), 0.7 * lap)


def test_matrix_solver_agrees_with_the_diagonal_solver():
    rng = np.random.default_rng(5)
    a = rng.uniform(0.05, 0.9, size=4)
    A, b = -rng.exponential(size=4), rng.normal(size=4)
    x = rng.normal(size=(2, 4))
    ar, br, xr = transform_matrix(np.diag(a), np.diag(1 - a), np.diag(A), b, x)
    a_r, x_r, _, _ = transform(Reward(torch.from_numpy(A)[None, None], torch.from_numpy(b)[None, None]),
                               torch.from_numpy(x)[:, None], torch.from_numpy(a)[None, None])
    assert torch.allclose(torch.diagonal(ar), a_r.flatten()) and torch.allclose(xr, x_r[:, 0])


def test_feasibility_boundary_is_exactly_rho_squared_equals_A():
    A = 2.5
    edge = 1.0 / (1.0 + np.sqrt(A))                 # rho^2 = ((1 - a)/a)^2 = A here
    r = Reward(torch.tensor(A), torch.tensor(0.0))
    x = torch.zeros(1, 1, 3, dtype=torch.float64)
    transform(r, x, torch.full((1, 1, 3), edge - 1e-9, dtype=torch.float64))
    with pytest.raises(InfeasibleRewardError, match="3 site"):
        transform(r, x, torch.full((1, 1, 3), edge + 1e-9, dtype=torch.float64))
    assert feasible_start(r, margin=0.0) == pytest.approx(edge)
    assert feasible_start(Reward(-1.0, 0.3)) == 1.0
    with pytest.raises(InfeasibleRewardError, match="mode"):
        transform(Reward(torch.tensor([4.0, 0.0, 0.0, 0.0]), 0.0, "fourier"), torch.zeros(1, 1, 4, dtype=torch.float64),
                  torch.full((1, 1, 4), 0.5, dtype=torch.float64), FourierDiagonal(1))
    with pytest.raises(InfeasibleRewardError, match="non-positive eigenvalue"):
        transform_matrix(np.eye(2), 0.1 * np.eye(2), np.eye(2), np.zeros(2), np.zeros((1, 2)))


def test_bad_rewards_are_refused():
    with pytest.raises(ValueError, match="basis"):
        Reward(0.0, 0.0, "momentum")
    with pytest.raises(ValueError, match="A\\(p\\) = A\\(-p\\)"):
        Reward(torch.tensor([0.0, -1.0, -2.0, -3.0]), 0.0, "fourier")
    with pytest.raises(ValueError, match="fourier-diagonal but"):
        PosteriorDrift(free_field_oracle((4, 4), 1.0), Reward.laplacian(0.3, (4, 4)))
    with pytest.raises(ValueError, match="no common diagonal basis"):
        Reward(-torch.arange(16.0).reshape(1, 1, 4, 4), 0.0) + Reward.laplacian(0.3, (4, 4))
    with pytest.raises(ValueError, match="scale > 0"):
        Reward.physical(h=0.1, scale=0.0)
    with pytest.raises(ValueError, match="symmetric"):
        transform_matrix(np.eye(2), np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]]), np.zeros(2), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="not normalisable"):
        free_field_oracle((4,), 1.0).posterior(np.full(4, 10.0), 0.0)
    # a scalar A is diagonal in every basis: allowed with either family
    PosteriorDrift(free_field_oracle((4,), 1.0, FourierDiagonal(1)), Reward.physical(h=0.1, k=-0.2))
    assert isinstance(PosteriorDrift(free_field_oracle((4,), 1.0), Reward.physical(k=-0.2)).family, Hadamard)
