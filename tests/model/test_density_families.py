"""Model log-density for the operator families other than Hadamard (THEORY.md 6 and 8.2).

The flow of a family alpha(a) = T^T diag(a) T is integrated in the coordinates c = T x, where its
velocity is da * (T b) and its divergence the weighted diagonal of the Jacobian of T b in c.  The judge
is the Gaussian oracle of the same family: log q must be the exact Gaussian (conditional) density of
the moving coordinates, for super-resolution (block sums pinned), scale-by-scale chains, coarse-to-fine
and low-to-high generation.  Before 2026-12 the divergence and the pinning were taken per site, which
is wrong as soon as a is not uniform (any conditional path of a Haar or Fourier model).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from phi4si.errors import ParameterError
from phi4si.interpolant.likelihood import flow_log_density
from phi4si.interpolant.operators import Corruption, FourierDiagonal, Haar, negated_momenta
from phi4si.interpolant.oracle import free_field_covariance, free_field_oracle
from phi4si.interpolant.paths import GenerationPath, InpaintPath, sequential_path
from phi4si.tasks.superres import coarse_to_fine_path, superres_path

SHAPE, M2 = (4, 4), 0.7
V = 16


def _dense_basis(fam, shape=SHAPE):
    eye = torch.eye(int(np.prod(shape)), dtype=torch.float64).reshape(-1, 1, *shape)
    return fam.basis(eye).reshape(len(eye), -1).T.numpy()          # T with c = T x (rows: coordinates)


def _gauss_logpdf(c, C):
    Ci = np.linalg.inv(C)
    return -0.5 * np.einsum("bi,ij,bj->b", c, Ci, c) - 0.5 * np.linalg.slogdet(C)[1] - 0.5 * c.shape[1] * np.log(2 * np.pi)


def _exact_conditional(fam, x, moving):
    """log N of the moving coordinates of x given the others, under the free field (coordinates T x)."""
    T = _dense_basis(fam)
    Cc = T @ free_field_covariance(SHAPE, M2) @ T.T
    c = x.reshape(len(x), -1) @ T.T
    u = moving.ravel()
    o = ~u
    if o.any():
        K = Cc[np.ix_(u, o)] @ np.linalg.inv(Cc[np.ix_(o, o)])
        mu, Cu = c[:, o] @ K.T, Cc[np.ix_(u, u)] - K @ Cc[np.ix_(o, u)]
    else:
        mu, Cu = 0.0, Cc
    return _gauss_logpdf(c[:, u] - mu, Cu)


def _noise(n, seed):
    return torch.randn(n, 1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("factor,chain", [(2, False), (4, False), (4, True)])
def test_superresolution_log_q_is_the_exact_conditional_of_the_details(factor, chain):
    fam = Haar(ndim=2, levels=2)
    orc = free_field_oracle(SHAPE, M2, fam)
    path = superres_path(fam, SHAPE, factor, scale_by_scale=chain)
    data = orc.sample(4, torch.Generator().manual_seed(1)).reshape(4, 1, *SHAPE)
    rev = flow_log_density(orc, path, data, steps=16, method="rk4", direction="reverse")
    start = fam.pin(rev.x, data, path.pinned().expand_as(data))          # noise details, the data's block sums
    fwd = flow_log_density(orc, path, start, steps=16, method="rk4")
    exact = _exact_conditional(fam, data.numpy(), ~path.pinned().numpy().reshape(SHAPE))
    assert np.allclose(rev.log_q.numpy(), exact, atol=1e-4)
    assert np.allclose(fwd.log_q.numpy(), exact, atol=1e-4)
    assert torch.allclose(fwd.x, data, atol=1e-5)                         # back to the same configurations
    keep = fam.coarse_mask(SHAPE, {2: 1, 4: 2}[factor])
    assert torch.allclose(fam.basis(fwd.x)[..., keep], fam.basis(data)[..., keep], atol=1e-12, rtol=0)
    assert int(rev.n_moving[0]) == V - int(keep.sum())


def test_coarse_to_fine_log_q_is_the_prior_density():
    fam = Haar(ndim=2, levels=2)
    orc = free_field_oracle(SHAPE, M2, fam)
    r = flow_log_density(orc, coarse_to_fine_path(fam, SHAPE), _noise(3, 2), steps=16, method="rk4")
    assert np.allclose(r.log_q.numpy(), _exact_conditional(fam, r.x.numpy(), np.ones(SHAPE, bool)), atol=1e-4)


@pytest.mark.parametrize("divergence", ["exact", "colored"])
def test_low_to_high_log_q_is_the_prior_density(divergence):
    fam = FourierDiagonal(ndim=2)
    orc = free_field_oracle(SHAPE, M2, fam)
    gen = torch.Generator().manual_seed(0)
    r = flow_log_density(orc, sequential_path(SHAPE, "low_to_high", levels=3), _noise(3, 3), steps=16,
                         method="rk4", divergence_method=divergence, period=2, probes=1, generator=gen)
    exact = _exact_conditional(fam, r.x.numpy(), np.ones(SHAPE, bool))
    # the free field is diagonal in momentum: the Jacobian is diagonal and the colored estimate exact too
    assert np.allclose(r.log_q.numpy(), exact, atol=1e-4)


def test_generation_of_every_family_has_the_same_log_q():
    """On the uniform path (a = t 1) alpha is t Id in every family: one density, whatever the basis."""
    z = _noise(2, 4)
    out = [flow_log_density(free_field_oracle(SHAPE, M2, fam), GenerationPath(SHAPE), z, steps=8, method="rk4")
           for fam in (None, Haar(ndim=2, levels=1), FourierDiagonal(ndim=2))]
    for r in out[1:]:
        assert torch.allclose(r.log_q, out[0].log_q, atol=1e-9)
        assert torch.allclose(r.x, out[0].x, atol=1e-9)


def test_refusals():
    corr = free_field_oracle(SHAPE, M2, Corruption(ndim=2))
    with pytest.raises(ParameterError, match="not diagonal in an orthonormal basis"):
        flow_log_density(corr, GenerationPath(SHAPE), _noise(1, 0), steps=2)
    fou = free_field_oracle(SHAPE, M2, FourierDiagonal(ndim=2))
    mask = torch.zeros(SHAPE, dtype=torch.bool)
    mask[0, 1] = True                                  # a(p) = 1 at p = (0, 1) only: not even in p
    with pytest.raises(ParameterError, match=r"a\(p\) = a\(-p\)"):
        flow_log_density(fou, InpaintPath(mask), _noise(1, 0), steps=2)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), seed=st.integers(0, 2**31 - 1))
def test_fourier_real_basis_is_orthonormal_and_diagonalises_even_a(shape, seed):
    shape = tuple(shape)
    fam = FourierDiagonal(ndim=len(shape))
    g = torch.Generator().manual_seed(seed)
    T = _dense_basis(fam, shape)
    assert np.allclose(T @ T.T, np.eye(len(T)), atol=1e-12)
    v = torch.randn(2, 1, *shape, dtype=torch.float64, generator=g)
    assert torch.allclose(fam.unbasis(fam.basis(v)), v, atol=1e-12)
    a = torch.rand(1, 1, *shape, dtype=torch.float64, generator=g)
    a = a + negated_momenta(a, len(shape))                                    # even in p
    fam.check_diagonal(a)
    assert torch.allclose(fam.alpha(a, v), fam.unbasis(a * fam.basis(v)), atol=1e-12)


def test_block_updates_refuse_a_model_that_is_not_per_site():
    from phi4si.lattice import Phi4Params
    from phi4si.model import DriftModel
    from phi4si.model.exact import block_update

    params = Phi4Params(SHAPE, m2=M2, lam=0.0)
    model = DriftModel(free_field_oracle(SHAPE, M2, Haar(ndim=2, levels=1)), params)
    phi = np.zeros((2, *SHAPE))
    with pytest.raises(ParameterError, match="needs a model of the hadamard family"):
        block_update(model, phi, params, 2, np.random.default_rng(0))
    assert not phi.any()
