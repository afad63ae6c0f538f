"""The batched solve loop of every model task (phi4si.model.solve): SolveSettings' validation and record,
the noise stream of solve_batches (same seed -> same bits; how the batch split enters), and run_task
with the exact free-field drift (the Gaussian oracle dressed as a model): the transport map it
integrates must push N(0, Id) to the free field exactly, up to the solver's error.

Because the oracle's drift is linear in x (zero mean), the map x(a=0) = T z is linear: solving from
the V basis vectors gives T, and T T^T must be the free-field covariance (a deterministic check, with
the order of each solver); generated samples must have the free propagator as their variance per
Fourier mode (a statistical check, 5 standard errors).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phi4si.errors import ParameterError
from phi4si.interpolant.oracle import free_field_covariance, free_field_oracle
from phi4si.interpolant.paths import GenerationPath
from phi4si.lattice import Phi4Params, free_propagator, power_spectrum
from phi4si.model import DriftModel
from phi4si.model.solve import SolveSettings, run_task, solve_batches

SHAPE, M2 = (4, 4), 0.5
V = 16
MEAN, SCALE = 0.3, 1.5


@pytest.fixture(scope="module")
def model():
    """The free field's exact drift as a model whose physical field is phi = 1.5 x + 0.3."""
    return DriftModel(free_field_oracle(SHAPE, M2), Phi4Params(SHAPE, m2=M2, lam=0.0), mean=MEAN, scale=SCALE)


def _noise_start(z, i, b):
    return z


# ------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("kw,match", [
    (dict(steps=0), "steps must be >= 1, got 0"),
    (dict(steps=-3), "steps must be >= 1"),
    (dict(steps=2.5), "steps must be >= 1"),
    (dict(steps=True), "steps must be >= 1"),
    (dict(solver="rk5"), "unknown solver 'rk5'"),
    (dict(solver="RK4"), "unknown solver"),
    (dict(sde=-0.1), "sde diffusion must be a finite number >= 0"),
    (dict(sde=float("nan")), "sde diffusion must be a finite number >= 0"),
    (dict(sde=float("inf")), "sde diffusion must be a finite number >= 0"),
    (dict(sde="0.5"), "sde diffusion"),
    (dict(batch_size=0), "batch_size must be >= 1, got 0"),
    (dict(batch_size=1.0), "batch_size must be >= 1"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(seed=1.5), "seed must be an integer >= 0"),
    (dict(seed=False), "seed must be an integer >= 0"),
    (dict(grid_power=0), "grid_power must be a finite number > 0, got 0"),
    (dict(grid_power=-1.0), "grid_power must be a finite number > 0"),
    (dict(grid_power=float("inf")), "grid_power must be a finite number > 0"),
    (dict(grid_power=float("nan")), "grid_power must be a finite number > 0"),
])
def test_settings_refuse_bad_values(kw, match):
    with pytest.raises(ParameterError, match=match):
        SolveSettings(**kw)


def test_settings_accept_the_edges():
    SolveSettings(steps=1, batch_size=1, seed=0, sde=0.0, grid_power=0.25)
    SolveSettings(steps=np.int64(3), batch_size=np.int32(2), seed=np.uint8(7))
    SolveSettings(sde=lambda s: 0.1 * s)
    for solver in ("euler", "heun", "rk4"):
        assert SolveSettings(solver=solver).solver == solver


def test_settings_record():
    rec = SolveSettings(steps=7, solver="rk4", seed=3, batch_size=9, grid_power=2.0, progress=True).record()
    assert rec == {"steps": 7, "solver": "rk4", "sde": None, "seed": 3, "batch_size": 9, "grid_power": 2.0, "z2": "auto"}
    # an SDE is integrated by Euler-Maruyama whatever the solver; sde = 0 is the ODE
    assert SolveSettings(solver="rk4", sde=0.5).record()["solver"] == "euler-maruyama"
    assert SolveSettings(solver="rk4", sde=0.5).record()["sde"] == 0.5
    assert SolveSettings(solver="heun", sde=0.0).record()["solver"] == "heun"

    def my_eps(s):
        return 0.2 * s

    rec = SolveSettings(sde=my_eps).record()
    assert rec["sde"] == "my_eps" and rec["solver"] == "euler-maruyama"
    assert "progress" not in rec


def test_settings_are_frozen():
    s = SolveSettings()
    with pytest.raises(AttributeError):
        s.steps = 3


# ------------------------------------------------------------------------------------------------ noise stream
def _solve(model, n, **kw):
    return solve_batches(model, n, SHAPE, _noise_start, GenerationPath(SHAPE), SolveSettings(**{"steps": 4, **kw}))


def test_solve_batches_shape_and_type(model):
    x = _solve(model, 5, seed=1)
    assert tuple(x.shape) == (5, 1, *SHAPE) and x.dtype == torch.float64 and x.device.type == "cpu"
    assert bool(torch.isfinite(x).all())


@pytest.mark.parametrize("n", [0, -2])
def test_solve_batches_refuses_no_samples(model, n):
    with pytest.raises(ParameterError, match="n must be >= 1"):
        _solve(model, n)


@pytest.mark.parametrize("sde", [None, 0.5])
def test_same_seed_same_bits_other_seed_other_bits(model, sde):
    a = _solve(model, 9, seed=11, batch_size=4, sde=sde)
    b = _solve(model, 9, seed=11, batch_size=4, sde=sde)
    c = _solve(model, 9, seed=12, batch_size=4, sde=sde)
    assert torch.equal(a, b)
    assert not torch.isclose(a, c).any()


def _start_noise(model, n, shape, batch_size, seed=5):
    """The start noise solve_batches hands to make_start, batch after batch, concatenated."""
    got = []

    def record(z, i, b):
        assert z.shape[0] == b and i == sum(len(g) for g in got)
        got.append(z.clone())
        return z

    x = solve_batches(model, n, shape, record, GenerationPath(shape), SolveSettings(steps=2, seed=seed,
                                                                                    batch_size=batch_size))
    return torch.cat(got), x


def test_batch_split_leaves_the_ode_noise_unchanged_on_4x4(model):
    """What holds: one generator draws each batch's start noise in order, and on a 4x4 lattice (16
    values per sample) torch's randn gives the same numbers drawn in pieces as drawn at once, so
    batch sizes 4, 5, 7 and n give the same start noise (bit for bit) and, for the ODE, the same
    samples up to the rounding of batched linear algebra (not bit for bit)."""
    z_all, x_all = _start_noise(model, 13, SHAPE, 13)
    assert torch.equal(z_all, torch.randn((13, 1, *SHAPE), generator=torch.Generator().manual_seed(5)))
    for bs in (4, 5, 7):
        z, x = _start_noise(model, 13, SHAPE, bs)
        assert torch.equal(z, z_all)
        torch.testing.assert_close(x, x_all, rtol=0, atol=1e-12)


def test_batch_split_changes_the_sde_noise(model):
    """What does not hold for the SDE: each batch draws its start noise and then its per-step noise,
    so another batch split hands different noise to the same sample (same law, other bits)."""
    a = _solve(model, 8, seed=2, sde=0.5, batch_size=4)
    b = _solve(model, 8, seed=2, sde=0.5, batch_size=8)
    assert torch.equal(a, _solve(model, 8, seed=2, sde=0.5, batch_size=4))
    assert not torch.allclose(a, b)


def test_batch_split_changes_the_noise_when_a_batch_is_not_a_multiple_of_16_values():
    """Nor does split invariance hold on every lattice: torch's CPU randn draws in blocks of 16 values
    (a shorter tail is redrawn), so on 3x3 (9 values per sample) batches of 4 and 5 give other start
    noise than one batch of 12.  The same seed and the same batch size always give the same bits."""
    shape = (3, 3)
    m = DriftModel(free_field_oracle(shape, M2), Phi4Params(shape, m2=M2, lam=0.0))
    z12, x12 = _start_noise(m, 12, shape, 12)
    z4, _ = _start_noise(m, 12, shape, 4)
    z5, _ = _start_noise(m, 12, shape, 5)
    assert not torch.equal(z4, z12) and not torch.equal(z5, z12)
    z12b, x12b = _start_noise(m, 12, shape, 12)
    assert torch.equal(z12, z12b) and torch.equal(x12, x12b)


# ------------------------------------------------------------------------------------------------ physics
def _transport_covariance(model, solver, steps, grid_power=1.0):
    """T T^T of the linear map z -> x(a = 0) that run_task integrates, in normalised units: the
    start states are the V basis vectors (the noise is ignored)."""
    E = torch.eye(V, dtype=torch.float64).reshape(V, 1, *SHAPE)
    phi = run_task(model, V, SHAPE, lambda z, i, b: E[i:i + b], GenerationPath(SHAPE),
                   SolveSettings(steps=steps, solver=solver, grid_power=grid_power, batch_size=6))
    T = ((phi - MEAN) / SCALE).reshape(V, V).T
    return T @ T.T


def _rel_err(model, solver, steps, grid_power=1.0):
    C = free_field_covariance(SHAPE, M2)
    return np.abs(_transport_covariance(model, solver, steps, grid_power) - C).max() / np.abs(C).max()


def test_rk4_transport_map_gives_the_free_field_covariance(model):
    assert _rel_err(model, "rk4", 32) < 1e-6
    assert _rel_err(model, "rk4", 32, grid_power=2.0) < 1e-6


@pytest.mark.parametrize("solver,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_each_solver_converges_with_its_order(model, solver, order):
    """Doubling the steps divides the covariance error by about 2^order (16 -> 32 steps): the
    solver asked for is the one used."""
    e16, e32 = _rel_err(model, solver, 16), _rel_err(model, solver, 32)
    observed = math.log2(e16 / e32)
    if order == 4:
        assert observed > 3.5, (e16, e32)
    else:
        assert abs(observed - order) < 0.35, (e16, e32)


def test_generated_free_field_has_the_free_propagator_per_mode(model):
    """4000 samples (rk4, 20 steps): <|phi~(p) - 0.3 V delta_p0|^2>/V = 1.5^2 / (2 (m2 + p_hat^2)) per mode
    within 5 standard errors (|phi~|^2/V is G chi^2_1 for the real modes p = -p, G Exp(1) otherwise),
    and the mean field 0.3."""
    n = 4000
    phi = run_task(model, n, SHAPE, _noise_start, GenerationPath(SHAPE),
                   SolveSettings(steps=20, solver="rk4", seed=7, batch_size=n), site_average=True)
    assert phi.shape == (n, *SHAPE) and phi.dtype == np.float64
    G = SCALE**2 * free_propagator(SHAPE, M2)
    ps = power_spectrum(phi - MEAN, 2)
    idx = np.indices(SHAPE)
    real = np.all((2 * idx) % np.array(SHAPE).reshape(-1, 1, 1) == 0, axis=0)     # p = -p
    se = G * np.where(real, math.sqrt(2.0), 1.0) / math.sqrt(n)
    z = (ps.mean(0) - G) / se
    assert np.abs(z).max() < 5, z
    # the sample spread matches too (a check of the standard error used above)
    assert np.allclose(ps.std(0) / (G * np.where(real, math.sqrt(2.0), 1.0)), 1.0, atol=0.15)
    m = phi.reshape(n, -1).mean(1)
    assert abs(m.mean() - MEAN) < 5 * math.sqrt(G[0, 0] / V / n)
