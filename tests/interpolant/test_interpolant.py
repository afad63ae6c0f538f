"""Interpolant core against exact answers: the Gaussian oracle (THEORY.md 4.4), no training.

The oracle drift of a Gaussian target is affine in x, so the ODE flow map X(0) -> X(1) is affine:
pushing the zero vector and the V basis vectors through the integrator gives it exactly, and the
covariance of the generated samples is M M^T with no sampling noise.  Every integrator, path and
mask is checked that way; stochastic checks (SDE, mixtures) use many samples and error bars.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from phi4si.interpolant.drifts import b_from, etas_from_b, raw_from_b, score_from_b, NeuralDrift
from phi4si.interpolant.integrate import solve, solve_sde
from phi4si.interpolant.measures import (Diagonal, Hypercube, Masks, Mixture, Sequential, measure_from_dict,
                                         preset_measure)
from phi4si.interpolant.operators import FourierDiagonal, Hadamard, family_from_dict
from phi4si.interpolant.oracle import (GaussianOracle, MixtureOracle, free_field_covariance, free_field_oracle,
                                       gaussian_conditional)
from phi4si.interpolant.paths import (FunctionPath, GenerationPath, InpaintPath, SequentialPath, TablePath,
                                      sequential_path, time_grid)
from phi4si.lattice.fourier import free_propagator

SHAPE = (4, 4)
M2 = 0.5


@pytest.fixture(scope="module")
def oracle():
    return free_field_oracle(SHAPE, M2)


def flow_map(drift, path, steps, method, data=None):
    """(c, M): X(1) = c + M z for start noise z (flat), by pushing 0 and the basis vectors."""
    V = int(np.prod(path.shape))
    z = torch.cat([torch.zeros(1, V), torch.eye(V)]).to(torch.float64).reshape(V + 1, 1, *path.shape)
    x_start = path.start(z, None if data is None else data.expand_as(z))
    out = solve(drift, path, x_start, steps=steps, method=method).reshape(V + 1, V)
    return out[0].numpy(), (out[1:] - out[0]).numpy().T


def test_free_field_covariance_matches_propagator():
    C = free_field_covariance(SHAPE, M2)
    V = C.shape[0]
    F = np.fft.fft2(np.eye(V).reshape(V, *SHAPE), axes=(1, 2)).reshape(V, V)
    spec = np.real(np.diag(F @ C @ F.conj().T)) / V        # <|phi~(p)|^2>/V
    np.testing.assert_allclose(spec, free_propagator(SHAPE, M2).ravel(), rtol=1e-12)


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_generation_reproduces_propagator_at_solver_order(oracle, method, order):
    path = GenerationPath(SHAPE)
    errs = []
    for n in (16, 32, 64, 128):
        c, M = flow_map(oracle, path, n, method)
        assert np.abs(c).max() < 1e-12
        errs.append(np.abs(M @ M.T - oracle.C.numpy()).max())
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.diff(errs) < 0) and order - 0.2 < rates[-1] < order + 0.8, (errs, rates)
    if method == "rk4":
        assert errs[-1] < 1e-9


def test_generation_momentum_space(oracle):
    """<|phi~(p)|^2>/V of the generated law equals the exact propagator for every p."""
    c, M = flow_map(oracle, GenerationPath(SHAPE), 64, "rk4")
    V = M.shape[0]
    F = np.fft.fft2(np.eye(V).reshape(V, *SHAPE), axes=(1, 2)).reshape(V, V)
    spec = np.real(np.diag(F @ (M @ M.T) @ F.conj().T)) / V
    np.testing.assert_allclose(spec, free_propagator(SHAPE, M2).ravel(), rtol=1e-6)


@pytest.mark.parametrize("kind", ["block", "random"])
def test_inpainting_exact_conditional(oracle, kind):
    rng = np.random.default_rng(1)
    if kind == "block":
        unknown = np.zeros(SHAPE, bool)
        unknown[1:3, 0:3] = True
    else:
        unknown = rng.random(SHAPE) < 0.6
    data = oracle.sample(1, torch.Generator().manual_seed(3))
    path = InpaintPath(unknown)
    c, M = flow_map(oracle, path, 24, "rk4", data=data)
    u = unknown.ravel()
    mean, cov = gaussian_conditional(oracle.mu.numpy(), oracle.C.numpy(), ~u, data.numpy().ravel()[~u])
    np.testing.assert_allclose(c[u], mean, atol=1e-7)
    Mu = M[np.ix_(u, u)]
    np.testing.assert_allclose(Mu @ Mu.T, cov, atol=1e-7)
    # observed sites stay exactly fixed and ignore the noise
    np.testing.assert_array_equal(c[~u], data.numpy().ravel()[~u])
    assert np.all(M[~u] == 0)


@pytest.mark.parametrize("order,kw", [("raster", {"block": 2}), ("random", {"block": 2, "seed": 5}),
                                      ("reverse", {"block": (1, 4)}), ("coarse_to_fine", {"levels": 2})])
def test_sequential_generation_exact_joint(oracle, order, kw):
    path = sequential_path(SHAPE, order, **kw)
    assert path.breakpoints[0] == 0 and path.breakpoints[-1] == 1
    c, M = flow_map(oracle, path, 16, "rk4")
    np.testing.assert_allclose(M @ M.T, oracle.C.numpy(), atol=1e-6)


def test_sequential_with_observed_sites(oracle):
    observed = np.zeros(SHAPE, bool)
    observed[0] = True
    data = oracle.sample(1, torch.Generator().manual_seed(4))
    path = sequential_path(SHAPE, "raster", block=2, observed=observed)
    c, M = flow_map(oracle, path, 16, "rk4", data=data)
    u = ~observed.ravel()
    mean, cov = gaussian_conditional(oracle.mu.numpy(), oracle.C.numpy(), observed.ravel(), data.numpy().ravel()[~u])
    np.testing.assert_allclose(c[u], mean, atol=1e-6)
    np.testing.assert_allclose(M[np.ix_(u, u)] @ M[np.ix_(u, u)].T, cov, atol=1e-6)
    np.testing.assert_array_equal(c[~u], data.numpy().ravel()[~u])


def test_table_and_function_paths(oracle):
    # a two-stage table path: left half first, then the right half
    left = np.zeros(SHAPE)
    left[:, :2] = 1
    tab = np.stack([np.ones(SHAPE), 1 - left, np.zeros(SHAPE)])
    c, M = flow_map(oracle, TablePath([0, 0.5, 1], tab), 16, "rk4")
    np.testing.assert_allclose(M @ M.T, oracle.C.numpy(), atol=1e-6)
    # a smooth path with a different speed per site
    w = np.linspace(0, 1, 16).reshape(SHAPE)
    fp = FunctionPath(lambda s: (1 - s) * (1 + w * s), SHAPE)   # smooth, monotone, in [0, 1]
    c, M = flow_map(oracle, fp, 32, "rk4")
    np.testing.assert_allclose(M @ M.T, oracle.C.numpy(), atol=1e-5)


def test_fourier_diagonal_family_generation():
    """Scale-by-scale generation with alpha diagonal in momentum space (coarse modes first)."""
    fam = FourierDiagonal(ndim=2)
    orc = free_field_oracle(SHAPE, M2, family=fam)
    w = torch.as_tensor(np.fft.fftn(np.zeros(SHAPE)).real + free_propagator(SHAPE, 1.0) * 0 +
                        np.sqrt(np.sum(np.meshgrid(*[np.sin(np.pi * np.arange(L) / L) ** 2 for L in SHAPE],
                                                   indexing="ij"), axis=0)))
    fp = FunctionPath(lambda s: (1 - s) ** (1 + 2 * w.numpy()), SHAPE)   # even in p: real operators
    c, M = flow_map(orc, fp, 32, "rk4")
    np.testing.assert_allclose(M @ M.T, orc.C.numpy(), atol=1e-5)


def test_sde_reproduces_covariance():
    shape = (4,)
    orc = free_field_oracle(shape, 0.7)
    n = 40000
    g = torch.Generator().manual_seed(11)
    z = torch.randn(n, 1, 4, dtype=torch.float64, generator=g)
    x = solve_sde(orc, GenerationPath(shape), z, steps=200, eps=1.0, generator=g).reshape(n, 4).numpy()
    C = orc.C.numpy()
    emp = np.cov(x.T)
    err = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C ** 2) / n)
    # Euler-Maruyama has weak order 1: bias ~ 1/200 relative, well inside 5 sigma + 2 % here
    assert np.all(np.abs(emp - C) < 5 * err + 0.02 * np.abs(C).max()), (emp, C)
    assert np.all(np.abs(x.mean(0)) < 5 * np.sqrt(np.diag(C) / n))


def test_sde_keeps_observed_sites_fixed(oracle):
    unknown = np.zeros(SHAPE, bool)
    unknown[:2] = True
    data = oracle.sample(3, torch.Generator().manual_seed(2))
    path = InpaintPath(unknown)
    g = torch.Generator().manual_seed(0)
    x = solve_sde(oracle, path, path.start(torch.randn(3, 1, *SHAPE, dtype=torch.float64, generator=g), data),
                  steps=20, eps=2.0, generator=g)
    assert torch.equal(x[:, :, 2:], data[:, :, 2:])


def test_mixture_generation():
    shape = (3,)
    C = 0.3 * np.eye(3) + 0.05
    mix = MixtureOracle([0.3, 0.7], [np.full(3, 1.5), np.full(3, -1.0)], [C, C], shape)
    n = 10000
    g = torch.Generator().manual_seed(7)
    x = solve(mix, GenerationPath(shape), torch.randn(n, 1, 3, dtype=torch.float64, generator=g), steps=40,
              method="rk4").reshape(n, 3).numpy()
    first = x.sum(1) > 0.75
    frac = first.mean()
    assert abs(frac - 0.3) < 4 * np.sqrt(0.21 / n)
    np.testing.assert_allclose(x[first].mean(0), 1.5, atol=0.03)
    np.testing.assert_allclose(np.cov(x[first].T), C, atol=0.03)
    ref = mix.sample(n, g).reshape(n, 3).numpy()
    assert np.all(np.abs(x.mean(0) - ref.mean(0)) < 5 * np.sqrt(2 * ref.var(0) / n))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 0.99))
def test_parametrisations_and_score(seed, t):
    """b, eta0, eta1 convert into each other exactly; the score is -eta0/a = grad log p_I."""
    orc = free_field_oracle((3,), 0.8)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, 3, dtype=torch.float64, generator=g)
    a = (t + 0.5 * (1 - t) * torch.rand(2, 1, 3, dtype=torch.float64, generator=g)).clamp(1e-3, 0.999)
    eta0, eta1 = orc.etas(x, a)
    fam = Hadamard()
    torch.testing.assert_close(a * eta0 + (1 - a) * eta1, x, rtol=0, atol=1e-12)
    b = eta0 - eta1
    for p, raw in (("b", b), ("eta0", eta0), ("eta1", eta1)):
        torch.testing.assert_close(b_from(p, fam, x, a, raw), b, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(raw_from_b(p, fam, x, a, b), raw, rtol=1e-12, atol=1e-12)
    e0, e1 = etas_from_b(fam, x, a, b)
    torch.testing.assert_close(e0, eta0, rtol=0, atol=1e-12)
    xg = x.clone().requires_grad_(True)
    logp = orc.log_density_I(xg, a).sum()
    (grad,) = torch.autograd.grad(logp, xg)
    torch.testing.assert_close(score_from_b(fam, x, a, b), grad, rtol=1e-9, atol=1e-9)


def test_neural_drift_wrapper_uses_parametrisation(oracle):
    x = oracle.sample(2, torch.Generator().manual_seed(0))
    a = torch.full((2, 1, *SHAPE), 0.4, dtype=torch.float64)
    eta0, eta1 = oracle.etas(x, a)
    net = lambda xx, aa: oracle.etas(xx, aa)[1]
    torch.testing.assert_close(NeuralDrift(net, "eta1").b(x, a), eta0 - eta1)
    with pytest.raises(ValueError, match="parametrisation"):
        NeuralDrift(net, "velocity")


# ---------------------------------------------------------------- measures and paths -------------

def test_measures_support_and_reproducibility():
    shape = (8, 8)
    for m in [Diagonal(), Hypercube(), Hypercube(block=4), Sequential("blocks", (2, 4)),
              Sequential("coarse_to_fine", levels=3, random_order=False), Masks(), preset_measure("multitask"),
              preset_measure("curriculum"), preset_measure("generation")]:
        a1 = m.sample(64, shape, torch.Generator().manual_seed(5))
        a2 = m.sample(64, shape, torch.Generator().manual_seed(5))
        assert a1.shape == (64, 1, *shape) and torch.equal(a1, a2)
        assert bool(((a1 >= 0) & (a1 <= 1)).all())
        assert measure_from_dict(m.to_dict()).to_dict() == m.to_dict()
    a = Masks().sample(200, shape, torch.Generator().manual_seed(1))
    assert (a == 0).any() and (a > 0).any()
    a = Sequential("blocks", (2,)).sample(200, shape, torch.Generator().manual_seed(1))
    for row in a.reshape(200, -1):
        vals = torch.unique(row)
        assert len(vals[(vals > 0) & (vals < 1)]) <= 1          # at most one block in flight
        # the block in flight is a whole 2x2 block at a periodic offset: 4 sites or none
        assert int(((row > 0) & (row < 1)).sum()) in (0, 4)
    a = Diagonal().sample(100, shape, torch.Generator().manual_seed(1))
    assert torch.all(a.amax((1, 2, 3)) == a.amin((1, 2, 3)))


def test_mixture_curriculum():
    m = preset_measure("curriculum")
    a = m.sample(100, (4, 4), torch.Generator().manual_seed(0), progress=0.1)
    assert torch.all(a.amax((1, 2, 3)) == a.amin((1, 2, 3)))   # diagonal only early on
    a = m.sample(400, (4, 4), torch.Generator().manual_seed(0), progress=0.9)
    assert not torch.all(a.amax((1, 2, 3)) == a.amin((1, 2, 3)))


@pytest.mark.parametrize("bad", [
    lambda: Diagonal(0.5, 0.2), lambda: Hypercube(0), lambda: Sequential("spiral"), lambda: Sequential(blocks=(0,)),
    lambda: Masks(p_random=2), lambda: Mixture({}, []), lambda: Mixture({"d": Diagonal()}, [-1]),
    lambda: Mixture({"d": Diagonal()}, [(0.5, [1]), (0.2, [1])]), lambda: measure_from_dict({"name": "nope"}),
    lambda: preset_measure("nope"), lambda: family_from_dict({"name": "nope"}), lambda: FourierDiagonal(0),
])
def test_bad_measure_and_family_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_path_and_solver_errors(oracle):
    x = torch.zeros(1, 1, *SHAPE, dtype=torch.float64)
    with pytest.raises(ValueError, match="solver"):
        solve(oracle, GenerationPath(SHAPE), x, method="rk45")
    with pytest.raises(ValueError, match="does not match"):
        solve(oracle, GenerationPath((5, 5)), x)
    with pytest.raises(ValueError, match="NaN"):
        solve(oracle, GenerationPath(SHAPE), x * float("nan"))
    with pytest.raises(ValueError, match="steps"):
        solve(oracle, GenerationPath(SHAPE), x, steps=0)
    with pytest.raises(ValueError, match="eps"):
        solve_sde(oracle, GenerationPath(SHAPE), x, eps=-1.0)
    with pytest.raises(ValueError, match="nothing to inpaint"):
        InpaintPath(np.zeros(SHAPE, bool))
    with pytest.raises(ValueError, match="overlap"):
        SequentialPath([np.ones(SHAPE, bool), np.ones(SHAPE, bool)])
    with pytest.raises(ValueError, match="no group"):
        SequentialPath([np.eye(4, dtype=bool)])
    with pytest.raises(ValueError, match="mask has shape"):
        SequentialPath([np.ones(SHAPE, bool)], observed=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="pass the data"):
        InpaintPath(np.eye(4, dtype=bool)).start(x)
    with pytest.raises(ValueError, match="increase"):
        TablePath([0, 0.7, 0.5, 1], np.ones((4, *SHAPE)))
    with pytest.raises(ValueError, match="random"):
        sequential_path(SHAPE, "random", block=2)
    with pytest.raises(ValueError, match="divisible"):
        sequential_path((6, 6), "coarse_to_fine", levels=3)
    with pytest.raises(ValueError, match="power"):
        time_grid(GenerationPath(SHAPE), 4, power=0)


def test_divergence_is_reported():
    class Bad(GaussianOracle):
        def b(self, x, a):
            return x * float("inf")
    bad = Bad(np.zeros(4), np.eye(4), (4,))
    with pytest.raises(FloatingPointError, match="NaN/inf"):
        solve(bad, GenerationPath((4,)), torch.ones(1, 1, 4, dtype=torch.float64), steps=2)
