"""The Haar family and lattice super-resolution (THEORY.md 8.2) on the Gaussian oracle: orthogonality,
exact conditional laws given block averages, coarse-to-fine generation, pinned coordinates, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phi4si.errors import ParameterError
from phi4si.interpolant.integrate import solve
from phi4si.interpolant.operators import FourierDiagonal, Haar, family_from_dict
from phi4si.interpolant.oracle import GaussianOracle, free_field_covariance
from phi4si.interpolant.paths import InpaintPath, sequential_path
from phi4si.lattice import Phi4Params
from phi4si.model import DriftModel
from phi4si.model.generate import sequential
from phi4si.tasks.superres import (block_average, block_fill, coarse_to_fine_path, haar_groups, superres_path,
                                   superresolve)

SHAPE = (8, 8)
V = 64


def _cov_ok(x, C):
    """Sample covariance of x (n, V) against C within sampling noise: E|S - C|_F^2 = (tr(C)^2 + |C|_F^2) / n
    for Gaussian samples (the ratio concentrates near 1 over V^2 entries; a wrong law gives >> 1)."""
    n = len(x)
    S = np.cov(x.T)
    r = np.linalg.norm(S - C) ** 2 / ((np.trace(C) ** 2 + np.linalg.norm(C) ** 2) / n)
    return r < 1.6, r


def _dense(f, n=V, shape=SHAPE):
    E = torch.eye(n, dtype=torch.float64).reshape(n, 1, *shape)
    return f(E).reshape(n, n).T


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_haar_is_orthogonal_and_block_sums_are_coordinates(levels):
    fam = Haar(levels=levels)
    H = _dense(fam.forward)
    assert torch.allclose(H @ H.T, torch.eye(V, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(_dense(fam.inverse), H.T, atol=1e-12)
    x = torch.randn(3, 1, *SHAPE, dtype=torch.float64)
    b = 2 ** levels
    c = fam.forward(x)[:, 0][:, fam.coarse_mask(SHAPE)].reshape(3, 8 // b, 8 // b)
    np.testing.assert_allclose(c.numpy() / b, block_average(x[:, 0].numpy(), b), atol=1e-12)   # b^(d/2) = b
    a = torch.rand(1, 1, *SHAPE, dtype=torch.float64)
    assert torch.allclose(fam.beta(a, x) + fam.alpha(a, x), x)
    assert family_from_dict(fam.to_dict()).to_dict() == fam.to_dict()
    assert sum(int(g.sum()) for g in haar_groups(fam, SHAPE)) == V


def _conditional(C, b):
    """Exact law of x ~ N(0, C) given its averages P x over blocks of side b."""
    P = np.stack([block_average(e.reshape(1, *SHAPE), b).ravel() for e in np.eye(V)], 1)
    K = C @ P.T @ np.linalg.inv(P @ C @ P.T)
    return K, C - K @ P @ C


@pytest.mark.parametrize("levels,b", [(1, 2), (2, 2), (2, 4)])
def test_oracle_drift_at_the_start_is_the_conditional_mean(levels, b):
    C = free_field_covariance(SHAPE, 0.6)
    fam = Haar(levels=levels)
    orc = GaussianOracle(np.zeros(V), C, SHAPE, family=fam)
    lev = int(np.log2(b))
    path = InpaintPath(~fam.coarse_mask(SHAPE, lev))
    coarse = np.random.default_rng(0).normal(size=(2, 8 // b, 8 // b)) * 0.3
    z = torch.randn(2, 1, *SHAPE, dtype=torch.float64)
    x0 = fam.interpolate(z, torch.from_numpy(block_fill(coarse, b))[:, None], path.a(0.0).double())
    eta1 = orc.etas(x0, path.a(0.0).double())[1][:, 0].reshape(2, -1).numpy()
    K, _ = _conditional(C, b)
    np.testing.assert_allclose(eta1, coarse.reshape(2, -1) @ K.T, atol=1e-10)


@pytest.mark.parametrize("levels,b,chain", [(1, 2, False), (2, 4, False), (2, 4, True)])
def test_superresolution_samples_the_exact_conditional_law(levels, b, chain):
    """All details at once, or level by level (4 -> 2 -> 1: the chain's intermediate block averages are drawn
    first): either way the exact conditional law of the fine field given its block averages."""
    C = free_field_covariance(SHAPE, 0.6)
    fam = Haar(levels=levels)
    model = DriftModel(GaussianOracle(np.zeros(V), C, SHAPE, family=fam), Phi4Params(SHAPE, m2=0.6, lam=0.0))
    n = 3000
    rng = np.random.default_rng(b)
    coarse = np.tile(rng.normal(size=(1, 8 // b, 8 // b)) * 0.4, (n, 1, 1))
    fine = superresolve(model, coarse, b, steps=10 if not chain else 6, solver="rk4", seed=3, scale_by_scale=chain)
    np.testing.assert_allclose(block_average(fine, b), coarse, atol=1e-10)         # the coarse field is kept
    K, Cc = _conditional(C, b)
    mean = coarse[0].ravel() @ K.T
    xs = fine.reshape(n, -1)
    se = np.sqrt(np.diag(Cc) / n)
    assert np.all(np.abs(xs.mean(0) - mean) < 5 * se + 1e-12)
    ok, r = _cov_ok(xs, Cc)
    assert ok, r
    assert not _cov_ok(xs, C)[0]                       # the prior's covariance is far off: the test can fail


def test_superresolution_path_pins_the_coarse_field_and_orders_the_levels():
    fam = Haar(levels=2)
    p = superres_path(fam, SHAPE, 4, scale_by_scale=True)
    keep = fam.coarse_mask(SHAPE, 2).numpy()
    lev2 = (fam.coarse_mask(SHAPE, 1) & ~fam.coarse_mask(SHAPE, 2)).numpy()
    a = p.a(0.25)[0, 0].numpy()                        # first half: the coarsest details move, the finest wait
    assert np.all(a[keep] == 0) and np.all((a[lev2] > 0) & (a[lev2] < 1)) and np.all(a[~keep & ~lev2] == 1)
    assert p.breakpoints == (0.0, 0.5, 1.0)
    assert isinstance(superres_path(fam, SHAPE, 4), InpaintPath)


def test_sequential_coarse_to_fine_with_a_haar_model_samples_the_prior():
    """``sequential(order='coarse_to_fine', levels=L+1)`` on a Haar model of L levels: in the in-place layout the
    nested sublattices are the block sums and the detail levels, so this is generation scale by scale."""
    C = free_field_covariance(SHAPE, 0.6)
    fam = Haar(levels=2)
    model = DriftModel(GaussianOracle(np.zeros(V), C, SHAPE, family=fam), Phi4Params(SHAPE, m2=0.6, lam=0.0))
    path = sequential_path(SHAPE, "coarse_to_fine", levels=3)
    assert all(torch.equal(g.bool(), h) for g, h in zip(path.groups, haar_groups(fam, SHAPE)))
    x = sequential(model, 3000, order="coarse_to_fine", levels=3, steps=5, solver="rk4", seed=2, z2="none")
    ok, r = _cov_ok(x.reshape(3000, -1), C)
    assert ok, r
    assert not _cov_ok(x.reshape(3000, -1), 1.2 * C)[0]


def test_coarse_to_fine_generation_samples_the_prior():
    C = free_field_covariance(SHAPE, 0.6)
    fam = Haar(levels=2)
    orc = GaussianOracle(np.zeros(V), C, SHAPE, family=fam)
    path = coarse_to_fine_path(fam, SHAPE)
    z = torch.randn(3000, 1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = solve(orc, path, path.start(z), steps=5, method="rk4")[:, 0].reshape(3000, -1).numpy()
    ok, r = _cov_ok(x, C)
    assert ok, r
    assert not _cov_ok(x, 1.2 * C)[0]


def test_pinned_coordinates_of_a_non_site_family_are_kept():
    """Pinned Fourier modes (a(p) = 0 along the path) keep their values; before 2026-12-07 the integrators
    reset the *sites* where a = 0 instead, which is wrong for every family that is not site-diagonal."""
    C = free_field_covariance(SHAPE, 0.6)
    fam = FourierDiagonal()
    orc = GaussianOracle(np.zeros(V), C, SHAPE, family=fam)
    keep = torch.zeros(SHAPE, dtype=torch.bool)
    keep[0, 0] = keep[0, 1] = keep[0, -1] = True                    # the zero mode and a pair +-p
    path = InpaintPath(~keep)
    data = torch.randn(4, 1, *SHAPE, dtype=torch.float64)
    z = torch.randn(4, 1, *SHAPE, dtype=torch.float64)
    x = solve(orc, path, fam.interpolate(z, data, path.a(0.0).double()), steps=6, method="heun")
    Fx, Fd = torch.fft.fft2(x[:, 0]), torch.fft.fft2(data[:, 0])
    assert torch.allclose(Fx[:, keep], Fd[:, keep], atol=1e-9)


def test_refusals():
    with pytest.raises(ParameterError):
        Haar(levels=0)
    with pytest.raises(ParameterError, match="divisible"):
        Haar(levels=2).forward(torch.zeros(1, 1, 6, 6))
    with pytest.raises(ParameterError, match="does not divide"):
        block_average(np.zeros((1, 6, 6)), 4)
    C = free_field_covariance(SHAPE, 0.6)
    model = DriftModel(GaussianOracle(np.zeros(V), C, SHAPE, family=Haar(levels=1)), Phi4Params(SHAPE, 0.6, 0.0))
    for factor in (3, 4, 1):
        with pytest.raises(ParameterError, match="block factor"):
            superresolve(model, np.zeros((1, 4, 4)), factor)
    with pytest.raises(ParameterError, match="finite"):
        superresolve(model, np.full((1, 4, 4), np.nan), 2)
    plain = DriftModel(GaussianOracle(np.zeros(V), C, SHAPE), Phi4Params(SHAPE, 0.6, 0.0))
    with pytest.raises(ParameterError, match="Haar family"):
        superresolve(plain, np.zeros((1, 4, 4)), 2)


@pytest.mark.parametrize("fam", [Haar(levels=1), Haar(levels=2), FourierDiagonal()], ids=repr)
def test_the_training_loss_weighs_the_coordinates_the_path_moves(fam):
    """The loss is sum_c w_c |(T r)_c|^2 in the family's basis T.  Parseval: with every weight 1 it is the
    site loss; a residual along a pinned coordinate (which the velocity alpha(da) b never sees) costs nothing,
    one along a moving coordinate does.  Before 2026-12-07 the weight of ``a``'s layout was applied to the
    residual in site space, which for Haar left the network's output at the block-sum sites untrained in
    super-resolution states although it enters every detail coefficient there."""
    r = torch.randn(3, 1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(fam.residual_power(r).sum(), (r ** 2).sum())
    keep = fam.coarse_mask(SHAPE, 1) if isinstance(fam, Haar) else torch.zeros(SHAPE, dtype=torch.bool)
    if not isinstance(fam, Haar):
        keep[0, 0] = keep[0, 1] = keep[0, -1] = True                 # the zero mode and a pair +-p
    a = (~keep).double()[None, None] * 0.5
    w = fam.loss_weight(a, r)
    e = torch.zeros(1, 1, *SHAPE, dtype=torch.float64)
    e[..., 0, 0] = 1.0                                               # a unit residual on coordinate (0, 0) ...
    e_moving = torch.zeros_like(e)
    e_moving[..., 1, 1] = 1.0                                        # ... and on a moving one
    to_sites = fam.inverse if isinstance(fam, Haar) else \
        (lambda c: torch.fft.ifftn(c, dim=(-2, -1), norm="ortho").real)
    pinned_dir, moving_dir = to_sites(e), to_sites(e_moving)
    if not isinstance(fam, Haar):           # a real field along the zero mode / along the mode pair (1, 1), (-1, -1)
        moving_dir = moving_dir + to_sites(torch.roll(torch.flip(e_moving, (-2, -1)), (1, 1), (-2, -1)))
    loss = lambda res: float((fam.residual_power(res) * w).sum())    # noqa: E731
    assert loss(r + 3 * pinned_dir) == pytest.approx(loss(r), abs=1e-9)
    assert loss(r + 3 * moving_dir) > loss(r) + 1.0


def test_momentum_shells_are_even_in_p_and_cover_every_mode():
    from phi4si.interpolant.partitions import momentum_shell_ids

    for shape, shells in (((8, 8), 4), ((6, 10), 3), ((16,), 5)):
        ids = momentum_shell_ids(shape, shells)
        neg = ids
        for ax, L in enumerate(shape):
            neg = np.take(neg, (-np.arange(L)) % L, axis=ax)
        assert np.array_equal(ids, neg)                                  # a(p) = a(-p)
        assert ids.flat[0] == 0 and (ids == 0).sum() == 1                # the zero mode alone first
        assert set(np.unique(ids)) == set(range(ids.max() + 1))
    with pytest.raises(ParameterError, match="shells >= 2"):
        momentum_shell_ids((8, 8), 1)


def test_low_to_high_generation_with_a_fourier_model_samples_the_prior():
    """Momentum shells from low to high (the zero mode, then |p_hat| bins) on the Gaussian oracle of the
    Fourier family: the joint law is the prior's, and each shell is kept while the later ones move."""
    C = free_field_covariance(SHAPE, 0.6)
    model = DriftModel(GaussianOracle(np.zeros(V), C, SHAPE, family=FourierDiagonal()),
                       Phi4Params(SHAPE, m2=0.6, lam=0.0))
    x = sequential(model, 3000, order="low_to_high", steps=5, solver="rk4", seed=2, z2="none")
    ok, r = _cov_ok(x.reshape(3000, -1), C)
    assert ok, r
    assert not _cov_ok(x.reshape(3000, -1), 1.2 * C)[0]
    with pytest.raises(ParameterError, match="Fourier family"):
        sequential(model, 4, order="coarse_to_fine", steps=2)
    hadamard = DriftModel(GaussianOracle(np.zeros(V), C, SHAPE), Phi4Params(SHAPE, m2=0.6, lam=0.0))
    with pytest.raises(ParameterError, match="Fourier family"):
        sequential(hadamard, 4, order="low_to_high", steps=2)


def test_the_fourier_family_refuses_measures_that_break_a_of_p_even():
    from phi4si.interpolant.measures import preset_measure

    fam = FourierDiagonal()
    assert fam.check_training("b", preset_measure("momenta")) is fam
    for name in ("multitask", "scales"):
        with pytest.raises(ParameterError, match="even in p"):
            fam.check_training("b", preset_measure(name))
    a = preset_measure("momenta").sample(64, SHAPE, torch.Generator().manual_seed(0))
    assert torch.equal(a, torch.flip(torch.roll(a, (-1, -1), (-2, -1)), (-2, -1)))      # a(p) = a(-p) per draw
