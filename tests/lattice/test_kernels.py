"""The fused molecular-dynamics kernels and the keyed Gaussian numbers of phi4si.lattice.kernels."""

import numpy as np
import pytest

from phi4si.lattice import Phi4Params, action, force
from phi4si.lattice import kernels as K
from phi4si.mcmc.hmc import OMELYAN_LAMBDA


def _leapfrog(phi, p, params, eps, n):
    """Reference leapfrog with the plain action and force (flat (V,) arrays)."""
    x, q = phi.reshape(params.shape).copy(), p.reshape(params.shape).copy()
    q += 0.5 * eps * force(x, params)
    for s in range(n):
        x += eps * q
        q += (eps if s < n - 1 else 0.5 * eps) * force(x, params)
    return x.ravel(), q.ravel()


@pytest.mark.parametrize("shape", [(6,), (4, 5), (3, 4, 5), (2, 3, 2, 4)])
def test_row_layout_trajectory_equals_the_reference(shape):
    """md_trajectory (row-padded layout, every d; d = 3 unrolled) is leapfrog: same end point, S and |p|^2."""
    params = Phi4Params(shape, m2=-1.0, lam=1.3, h=0.2)
    rng = np.random.default_rng(0)
    V = params.volume
    phi, p = 0.5 * rng.standard_normal(V), rng.standard_normal(V)
    shp = np.array(shape, dtype=np.int64)
    Lr = shape[-1]
    xp = np.empty((V // Lr, Lr + 2))
    K.pad_rows(phi, xp)
    pp = p.reshape(V // Lr, Lr).copy()
    S0, S1, K1 = K.md_trajectory(xp, pp, np.empty(Lr), shp, K.row_neighbours(shp), params.mass_term, params.lam,
                                 params.h, 0.05, 7, 0, OMELYAN_LAMBDA)
    x = np.empty(V)
    K.unpad_rows(xp, x)
    xr, qr = _leapfrog(phi, p, params, 0.05, 7)
    np.testing.assert_allclose(x, xr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pp.ravel(), qr, rtol=1e-12, atol=1e-12)
    assert S0 == pytest.approx(float(action(phi.reshape(shape), params)), rel=1e-12)
    assert S1 == pytest.approx(float(action(x.reshape(shape), params)), rel=1e-12)
    assert K1 == pytest.approx(float((qr ** 2).sum()), rel=1e-12)


def test_gaussian_fill_is_a_pure_function_of_the_key():
    a, b = np.empty(10001), np.empty(10001)
    K.gaussian_fill(np.uint64(12345), a)
    K.gaussian_fill(np.uint64(12345), b)
    assert np.array_equal(a, b)
    K.gaussian_fill(np.uint64(12346), b)
    assert not np.array_equal(a, b)
    assert abs(a.mean()) < 0.05 and abs(a.var() - 1) < 0.05 and np.abs(a).max() < 8.6
    c = np.empty(10000)
    K.gaussian_fill(np.uint64(12345), c)  # an even length pairs numbers i and n/2 + i: another layout
    assert abs(c.mean()) < 0.05 and abs(c.var() - 1) < 0.05
