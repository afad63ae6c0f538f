"""ODE solvers of phi4si.interpolant.integrate against exact flow maps of Gaussian targets.

For the free field N(0, C) on the generation path (alpha = a, beta = 1 - a, a = 1 - s) the law of
I(a) is N(0, a^2 + (1 - a)^2 C), and the probability-flow ODE dx/da = (a - (1 - a) C) Sigma^-1 x
scales every Fourier mode: x_p(a) = sqrt(a^2 + (1 - a)^2 C_p) z_p with z = x(a = 1) and
C_p = 1 / (2 (p_hat^2 + m2)) (C = (2K)^-1, THEORY.md section 1).  The empirical order of every
solver is the slope of log(error) between N and 2N steps.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from phi4si.errors import ParameterError
from phi4si.interpolant.drifts import Drift
from phi4si.interpolant.integrate import MULTISTEP, ODE_SOLVERS, SOLVERS, solve
from phi4si.interpolant.operators import FourierDiagonal, Hadamard
from phi4si.interpolant.oracle import free_field_oracle
from phi4si.interpolant.paths import FunctionPath, GenerationPath, InpaintPath, TablePath, sequential_path

SHAPE, M2 = (4, 4), 1.0
ORDER = {"euler": 1, "heun": 2, "rk4": 4, "ab2": 2, "ab3": 3, "ddim": 1, "ddim2": 2}
EVALS = {"euler": lambda n: n, "heun": lambda n: 2 * n, "rk4": lambda n: 4 * n,       # per path segment
         "ab2": lambda n: n, "ab3": lambda n: n + 1, "ddim": lambda n: n, "ddim2": lambda n: n}
TOL = 0.4             # |slope - order|: robust to the pre-asymptotic drift, fails for a wrong order


def p_hat2(shape):
    ks = np.meshgrid(*[2 * np.pi * np.arange(L) / L for L in shape], indexing="ij")
    return sum(4 * np.sin(k / 2) ** 2 for k in ks)


def exact_flow(z, a=0.0):
    Cp = torch.as_tensor(1.0 / (2.0 * (p_hat2(SHAPE) + M2)))
    dims = tuple(range(-len(SHAPE), 0))
    scale = torch.sqrt(a ** 2 + (1 - a) ** 2 * Cp)
    return torch.fft.ifftn(scale * torch.fft.fftn(z, dim=dims), dim=dims).real


def start(n=5, seed=1):
    return torch.randn(n, 1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def slope(drift, steps, path, x0, method, ref, **kw):
    e = [float((solve(drift, path, x0, n, method, **kw) - ref).abs().max()) for n in steps]
    return float(np.log2(e[0] / e[1])), e


@functools.lru_cache(maxsize=None)
def oracle():
    return free_field_oracle(SHAPE, M2)


def test_exact_flow_map_matches_the_oracle():
    orc = oracle()
    Cp = np.sort(1.0 / (2.0 * (p_hat2(SHAPE) + M2)).ravel())
    assert np.allclose(np.sort(np.linalg.eigvalsh(orc.C.numpy())), Cp, rtol=1e-12)
    z = start()
    x = solve(orc, GenerationPath(SHAPE), z, steps=256, method="rk4")
    assert float((x - exact_flow(z)).abs().max()) < 1e-9
    # halfway (a = 0.5) along a path that stops there
    half = FunctionPath(lambda s: 1 - 0.5 * s, SHAPE, dfn=lambda s: -0.5)
    x = solve(orc, half, z, steps=128, method="rk4")
    assert float((x - exact_flow(z, 0.5)).abs().max()) < 1e-9


@pytest.mark.parametrize("grid_power", [1.0, 2.0])
@pytest.mark.parametrize("method", ODE_SOLVERS)
def test_order_of_convergence_generation(method, grid_power):
    z = start()
    steps = (32, 64) if method == "rk4" else (64, 128)
    k, e = slope(oracle(), steps, GenerationPath(SHAPE), z, method, exact_flow(z), grid_power=grid_power)
    assert abs(k - ORDER[method]) < TOL, (method, grid_power, k, e)


@functools.lru_cache(maxsize=None)
def task(name):
    """(path, start, rk4 reference, pinned mask or None) of a task with breakpoints or pinned sites."""
    orc = oracle()
    unknown = torch.zeros(SHAPE, dtype=torch.bool)
    unknown[1:3, :3] = True
    if name == "sequential":
        path = sequential_path(SHAPE, "raster", block=2)
    elif name == "inpaint":
        path = InpaintPath(unknown)
    else:                                    # sequential generation of the unknown sites only
        path = sequential_path(SHAPE, "raster", block=2, observed=~unknown)
    x0 = path.start(start(), orc.sample(5, torch.Generator().manual_seed(2)))
    ref = solve(orc, path, x0, steps=512, method="rk4")
    pinned = None if name == "sequential" else (~unknown)[None, None].expand_as(x0)
    return path, x0, ref, pinned


@pytest.mark.parametrize("name", ["sequential", "inpaint", "sequential_observed"])
@pytest.mark.parametrize("method", ODE_SOLVERS)
def test_order_on_sequential_and_inpainting_paths(method, name):
    path, x0, ref, pinned = task(name)
    if name != "inpaint":
        assert len(path.breakpoints) == 5
    steps = (32, 64) if method == "rk4" else (64, 128)
    k, e = slope(oracle(), steps, path, x0, method, ref)
    assert abs(k - ORDER[method]) < TOL, (method, name, k, e)
    if pinned is not None:
        x = solve(oracle(), path, x0, steps=8, method=method)
        assert torch.equal(x[pinned], x0[pinned])              # bit-exact


class Counting(Drift):
    def __init__(self, drift):
        self.drift, self.family, self.calls = drift, drift.family, 0

    def b(self, x, a):
        self.calls += 1
        return self.drift.b(x, a)


@pytest.mark.parametrize("method", ODE_SOLVERS)
def test_evaluations_per_step(method):
    path = sequential_path(SHAPE, "raster", block=2)           # 4 segments
    for n in (1, 2, 7):
        d = Counting(oracle())
        solve(d, path, start(2), steps=n, method=method)
        assert d.calls == 4 * EVALS[method](n), (method, n, d.calls)


class PointMass(Drift):
    """Exact drift of a point-mass target mu: eta1 = mu, b = (x - mu) / a."""

    def __init__(self, mu):
        self.mu, self.family = mu, Hadamard()

    def b(self, x, a):
        return (x - self.mu) / a.clamp_min(1e-300)


@pytest.mark.parametrize("method", ["ddim", "ddim2"])
def test_ddim_is_exact_for_a_point_mass(method):
    mu = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(1, 1, *SHAPE)
    for n in (1, 3):
        x = solve(PointMass(mu), GenerationPath(SHAPE), start(), steps=n, method=method, grid_power=1.7)
        assert float((x - mu).abs().max()) < 1e-13


def fourier_paths():
    """Per-mode paths of the FourierDiagonal family (a(p) even in p): curved a(p) = (1 - s)^k_p, and
    coarse-to-fine (low modes in s < 1/2, high modes after: a breakpoint).  The free-field modes
    decouple, so the end point is the exact flow map of the generation path for both."""
    high = p_hat2(SHAPE) > 4.5                                  # not 4: p_hat2 is even only to round-off
    k = np.where(high, 2.0, 1.0)
    curved = FunctionPath(lambda s: (1 - s) ** k, SHAPE, dfn=lambda s: -k * (1 - s) ** (k - 1))
    table = TablePath([0.0, 0.5, 1.0], np.stack([np.ones(SHAPE), high.astype(float), np.zeros(SHAPE)]))
    return {"curved": curved, "coarse_to_fine": table}


@pytest.mark.parametrize("grid_power", [1.0, 2.0])
@pytest.mark.parametrize("name", ["curved", "coarse_to_fine"])
@pytest.mark.parametrize("method", ODE_SOLVERS)
def test_order_with_a_fourier_family(method, name, grid_power):
    orc = free_field_oracle(SHAPE, M2, family=FourierDiagonal(ndim=2))
    z = start()
    steps = (32, 64) if method == "rk4" else (64, 128)
    k, e = slope(orc, steps, fourier_paths()[name], z, method, exact_flow(z), grid_power=grid_power)
    assert abs(k - ORDER[method]) < TOL, (method, name, grid_power, k, e)


def test_ddim_steps_exactly_in_a():
    """On a path linear in s 'ddim' is 'euler'; on a curved one it is not (it steps exactly in a)."""
    orc = free_field_oracle(SHAPE, M2, family=FourierDiagonal(ndim=2))
    z = start()
    ddim, euler = (solve(orc, GenerationPath(SHAPE), z, 8, m) for m in ("ddim", "euler"))
    assert float((ddim - euler).abs().max()) < 1e-8          # euler evaluates 1e-9 h inside the step
    ddim, euler = (solve(orc, fourier_paths()["curved"], z, 8, m) for m in ("ddim", "euler"))
    assert float((ddim - euler).abs().max()) > 1e-3


def test_unknown_solver_is_refused():
    for bad in ("ab4", "RK4", "", "dpm"):
        with pytest.raises(ParameterError, match="unknown solver"):
            solve(oracle(), GenerationPath(SHAPE), start(1), steps=2, method=bad)


def test_solver_tuples():
    assert SOLVERS == ("euler", "heun", "rk4")
    assert ODE_SOLVERS == SOLVERS + MULTISTEP and set(MULTISTEP) == {"ab2", "ab3", "ddim", "ddim2"}


def test_settings_accept_multistep_only_for_generation():
    from phi4si.model.density import FlowSettings
    from phi4si.model.solve import SolveSettings

    for m in ODE_SOLVERS:
        assert SolveSettings(solver=m).solver == m
    with pytest.raises(ParameterError, match="unknown solver"):
        SolveSettings(solver="ab4")
    with pytest.raises(ParameterError, match="unknown solver"):
        FlowSettings(solver="ab2")
    assert FlowSettings(solver="rk4").solver == "rk4"


def test_cli_task_flags_offer_the_multistep_solvers():
    import argparse

    from phi4si.cli import options

    assert options.ODE_SOLVERS == ODE_SOLVERS and options.SOLVERS == SOLVERS
    p = argparse.ArgumentParser()
    options.add_task_flags(p, "generate")
    assert p.parse_args(["--model", "m", "--out", "o", "--solver", "ab3"]).solver == "ab3"
