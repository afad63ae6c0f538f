"""The compiled Fourier kernels (phi4si.mcmc.fourier_kernels) against the scipy reference path of the
same samplers, on odd and even sides and in d = 1, 2, 3; Parseval weights; refusals."""

from __future__ import annotations

import numpy as np
import pytest

from phi4si.errors import ParameterError
from phi4si.lattice import Phi4Params
from phi4si.mcmc.fourier import MALA, FourierHMC, Langevin
from phi4si.mcmc.fourier_kernels import parseval_weights

SHAPES = [(8, 8), (7, 9), (12,), (11,), (4, 5, 6)]


def _params(shape):
    return Phi4Params(shape, m2=-1.0, lam=1.0, h=0.1, k=0.05)


@pytest.mark.parametrize("shape", SHAPES)
def test_parseval_weights(shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2,) + shape)
    A, B = np.fft.rfftn(a), np.fft.rfftn(b)
    half = (parseval_weights(shape) * (A * B.conj()).real).sum() / a.size
    assert half == pytest.approx(float((a * b).sum()), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("integrator", ["leapfrog", "omelyan"])
@pytest.mark.parametrize("shape", SHAPES)
def test_fahmc_trajectory_equals_the_scipy_path(shape, integrator):
    p = _params(shape)
    ref = FourierHMC(p, n_steps=5, integrator=integrator, mass=0.7, engine="scipy")
    new = FourierHMC(p, n_steps=5, integrator=integrator, mass=0.7)
    rng = np.random.default_rng(1)
    phi = 0.5 * rng.standard_normal((3, p.volume))
    pi = ref._apply(rng.standard_normal(phi.shape), ref._sqrtM)
    x0, p0 = ref.integrate(phi, pi, 0.1)
    x1, p1 = new.integrate(phi, pi, 0.1)
    assert np.abs(x1 - x0).max() < 1e-12 and np.abs(p1 - p0).max() < 1e-12
    xi = ref._apply(pi, 1.0 / ref._sqrtM)
    _, _, dH = new._trajectories(phi, xi, 0.1, 5)
    dH_ref = ref.kinetic(p0) + ref._action(x0) - ref.kinetic(pi) - ref._action(phi)
    assert np.abs(dH - dH_ref).max() < 1e-10 * max(1.0, np.abs(dH_ref).max())


def _noisy_two_point(shape, seed=0):
    """A positive G(p) on the half grid, free-like with noise (a stand-in for a measured one)."""
    from phi4si.lattice.fourier import p_hat2

    ph2 = p_hat2(shape, rfft=True)
    return 1.0 / (2.0 * (ph2 + 0.7)) * np.exp(0.2 * np.random.default_rng(seed).standard_normal(ph2.shape))


@pytest.mark.parametrize("kernel", ["lattice", "measured"])
@pytest.mark.parametrize("cls, eps", [(FourierHMC, 0.1), (Langevin, 0.05), (MALA, 0.2)])
@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (11,), (3, 4, 5)])
def test_steps_equal_the_scipy_path(cls, eps, shape, kernel):
    """Same random numbers in the same order: the same chain, to round-off, with the same accept/reject
    (both kinetic kernels)."""
    p = _params(shape)
    G = _noisy_two_point(shape) if kernel == "measured" else None
    runs = []
    for engine in ("numba", "scipy"):
        s = cls(p, n_steps=4, mass=1.0, engine=engine, two_point=G)
        rng = np.random.default_rng(5)
        phi = 0.5 * np.random.default_rng(2).standard_normal((3, p.volume))
        accs, dHs = [], []
        for _ in range(6):
            acc, dH = s.step(phi, rng, eps)
            accs.append(acc)
            dHs.append(dH)
        runs.append((phi, np.array(accs), np.array(dHs)))
    (a, acc_a, dh_a), (b, acc_b, dh_b) = runs
    assert np.array_equal(acc_a, acc_b) and np.abs(a - b).max() < 1e-12
    if cls is not Langevin:
        assert 0 < acc_a.mean() and np.abs(dh_a - dh_b).max() < 1e-9


def test_bad_engine_refused():
    p = _params((4, 4))
    for cls in (FourierHMC, Langevin, MALA):
        with pytest.raises(ParameterError, match="engine"):
            cls(p, engine="cupy")


# ------------------------------------------------------------------------------------------------ measured kernel
def _gaussian_draws(shape, G_full, n, seed):
    """Exact draws of a Gaussian field with power spectrum G_full (full FFT grid)."""
    w = np.random.default_rng(seed).standard_normal((n,) + shape)
    axes = tuple(range(1, len(shape) + 1))
    return np.fft.ifftn(np.sqrt(G_full) * np.fft.fftn(w, axes=axes), axes=axes).real.reshape(n, -1)


@pytest.mark.parametrize("shape", [(6, 6), (4, 3, 4)], ids=["2d", "3d"])
def test_free_field_exact_with_a_measured_kernel(shape):
    """M ~ 1/G with G measured from 3000 configurations (noisy, so not the exact propagator): still
    the exact free field in every momentum mode, since any positive kernel keeps FA-HMC exact."""
    from test_samplers import assert_matches, run_spectrum

    from phi4si.lattice import free_propagator
    from phi4si.lattice.fourier import two_point_half

    m2 = 0.3
    p = Phi4Params(shape, m2=m2, lam=0.0)
    G = two_point_half(_gaussian_draws(shape, free_propagator(shape, m2), 3000, seed=4), shape)
    s = FourierHMC(p, n_steps=6, two_point=G)
    assert s.meta()["kernel"] == "measured" and not np.allclose(s.M, s.M.min())
    ps, _, acc = run_spectrum(s, p, 0.06)
    assert acc > 0.3
    assert_matches(ps, free_propagator(shape, m2))


@pytest.mark.parametrize("shape", [(6, 6), (3, 4, 4)], ids=["2d", "3d"])
def test_free_field_exact_for_mala_with_a_measured_kernel(shape):
    """MALA with D = 2 G, G measured from 3000 configurations: the exact free field in every mode.  With
    the exact propagator the measured kernel is the lattice kernel at M^2 = m2 (B = 0)."""
    from test_samplers import assert_matches, run_spectrum

    from phi4si.lattice import free_propagator
    from phi4si.lattice.fourier import two_point_half

    m2 = 0.3
    p = Phi4Params(shape, m2=m2, lam=0.0)
    G = two_point_half(_gaussian_draws(shape, free_propagator(shape, m2), 3000, seed=5), shape)
    s = MALA(p, n_steps=4, two_point=G)
    assert s.meta()["kernel"] == "measured" and np.abs(s._B).max() > 0.01
    ps, _, acc = run_spectrum(s, p, 0.3)
    assert acc > 0.3
    assert_matches(ps, free_propagator(shape, m2))
    exact = MALA(p, two_point=two_point_half(_gaussian_draws(shape, free_propagator(shape, m2), 2, 0), shape))
    exact.set_two_point(free_propagator(shape, m2)[..., : shape[-1] // 2 + 1])
    lattice = MALA(p, mass=m2**0.5)
    np.testing.assert_allclose(exact._B, 0.0, atol=1e-12)
    np.testing.assert_allclose(exact.D, lattice.D, rtol=1e-12)


@pytest.mark.parametrize("integrator", ["leapfrog", "omelyan"])
def test_measured_kernel_reversible_and_dH_of_order_eps_squared(integrator):
    from test_samplers import thermal_config

    from phi4si.lattice.fourier import two_point_half

    p = Phi4Params((8, 8), m2=-4.0, lam=8.0)
    phi, rng = thermal_config(p)
    s = FourierHMC(p, n_steps=20, integrator=integrator, two_point=two_point_half(phi, p.shape) + 0.05)
    mom = s._apply(rng.standard_normal(phi.shape), s._sqrtM)
    x1, p1 = s.integrate(phi, mom, 0.05)
    x2, p2 = s.integrate(x1, -p1, 0.05)
    assert np.abs(x1 - phi).max() > 0.1
    np.testing.assert_allclose(x2, phi, atol=1e-10)
    np.testing.assert_allclose(-p2, mom, atol=1e-10)
    T, dh = 0.5, []
    for n in (10, 20, 40):
        xi = s._apply(mom, 1.0 / s._sqrtM)
        _, _, d = s._trajectories(phi, xi, T / n, n)
        dh.append(np.sqrt(np.mean(d**2)))
    r1, r2 = dh[0] / dh[1], dh[1] / dh[2]
    lo, hi = (3.3, 4.8) if integrator == "leapfrog" else (3.0, 5.5)
    assert lo < r1 < hi and lo < r2 < hi, (dh, r1, r2)


@pytest.mark.parametrize("G, match", [(np.ones((8, 4)), "half-grid shape"), (np.zeros((8, 5)), "> 0"),
                                      (np.full((8, 5), np.nan), "finite")])
@pytest.mark.parametrize("cls", [FourierHMC, Langevin, MALA])
def test_bad_measured_kernels_refused(G, match, cls):
    s = cls(Phi4Params((8, 8), m2=1.0, lam=0.0))
    with pytest.raises(ParameterError, match=match):
        cls(Phi4Params((8, 8), m2=1.0, lam=0.0), two_point=G)
    D = getattr(s, "D", getattr(s, "M", None)).copy()
    with pytest.raises(ParameterError, match=match):
        s.set_two_point(G)
    assert s.two_point is None and np.array_equal(getattr(s, "D", getattr(s, "M", None)), D)  # unchanged
