"""Parameters, action and force: validation, numba vs torch twins, hopping form, free field helpers."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from phi4si.errors import ParameterError
from phi4si.lattice import Phi4Params, action, force, free_propagator, p_hat2, power_spectrum
from phi4si.lattice.torch_ops import action_torch, force_torch

SHAPES = [(8, 8), (4, 6, 5), (7,), (2, 3), (2, 2), (3, 2, 2, 2)]


@pytest.mark.parametrize("shape", SHAPES)
def test_numba_equals_torch_twin(shape):
    p = Phi4Params(shape, m2=-1.3, lam=2.1, h=0.3, k=0.2)
    rng = np.random.default_rng(1)
    phi = rng.standard_normal((3,) + shape)
    t = torch.tensor(phi, requires_grad=True)
    S_t = action_torch(t, p)
    (g,) = torch.autograd.grad(S_t.sum(), t)
    np.testing.assert_allclose(action(phi, p), S_t.detach().numpy(), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(force(phi, p), force_torch(t, p).detach().numpy(), rtol=1e-12, atol=1e-10)
    # force is minus the gradient of the action (torch autograd of the twin)
    np.testing.assert_allclose(force(phi, p), -g.numpy(), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("shape", [(5, 4), (3, 3, 3), (6,)])
def test_action_against_direct_definition(shape):
    """S = sum_x [-2 sum_mu phi_x phi_{x+mu} + (2d+m2) phi^2 + lam phi^4] - h sum phi - k sum phi^2."""
    p = Phi4Params(shape, m2=0.7, lam=1.5, h=-0.2, k=0.4)
    phi = np.random.default_rng(2).standard_normal(shape)
    d = len(shape)
    kin = sum(np.sum(phi * np.roll(phi, -1, axis=mu)) for mu in range(d))
    S = -2 * kin + (2 * d + p.m2) * np.sum(phi**2) + p.lam * np.sum(phi**4) - p.h * phi.sum() - p.k * np.sum(phi**2)
    assert action(phi, p) == pytest.approx(S, rel=1e-12)


def test_free_action_is_quadratic_form():
    """For lam = 0, S = phi^T K phi with K = -Delta + m2, so the propagator is (2K)^-1."""
    shape = (4, 3)
    p = Phi4Params(shape, m2=0.5, lam=0.0)
    V = 12
    K = np.empty((V, V))
    eye = np.eye(V)
    for i in range(V):
        K[:, i] = -0.5 * force(eye[i].reshape(shape), p).ravel()
    np.testing.assert_allclose(K, K.T, atol=1e-14)
    ev = np.linalg.eigvalsh(K)
    np.testing.assert_allclose(np.sort(ev), np.sort((p_hat2(shape) + 0.5).ravel()), atol=1e-12)
    np.testing.assert_allclose(np.sort(1 / (2 * ev)), np.sort(free_propagator(shape, 0.5).ravel()), atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(shape=(8, 8), m2=1.0, lam=-0.1),
        dict(shape=(8, 8), m2=0.0, lam=0.0),
        dict(shape=(8, 8), m2=-1.0, lam=0.0),
        dict(shape=(8, 8), m2=1.0, lam=0.0, k=1.0),
        dict(shape=(8, 1), m2=1.0, lam=1.0),
        dict(shape=(), m2=1.0, lam=1.0),
        dict(shape=(8, 8), m2=float("nan"), lam=1.0),
        dict(shape=(8, 8), m2=1.0, lam=float("inf")),
        dict(shape=(8, 8), m2=1.0, lam=1.0, h=float("nan")),
        dict(shape=(8, 8), m2="x", lam=1.0),
        dict(shape=(8, 2.5), m2=1.0, lam=1.0),
    ],
)
def test_invalid_parameters_refused(kwargs):
    with pytest.raises(ParameterError):
        Phi4Params(**kwargs)


def test_bad_fields_and_free_masses_refused():
    p = Phi4Params((4, 4), m2=1.0, lam=0.0)
    for f in (action, force):
        with pytest.raises(ParameterError, match=r"does not end with the lattice shape \(4, 4\)"):
            f(np.zeros((2, 4, 5)), p)
    with pytest.raises(ParameterError, match="m2 > 0"):
        free_propagator((4, 4), 0.0)


@given(
    kappa=st.floats(0.01, 2.0),
    l=st.one_of(st.just(0.0), st.floats(1e-6, 5.0)),
    d=st.integers(1, 4),
)
@settings(max_examples=60, deadline=None)
def test_hopping_form_round_trip_and_action(kappa, l, d):
    shape = (3,) * d
    if l == 0 and (1 - 2 * l) / kappa - 2 * d <= 0:
        with pytest.raises(ParameterError):
            Phi4Params.from_hopping(shape, kappa, l)
        return
    p = Phi4Params.from_hopping(shape, kappa, l)
    k2, l2 = p.to_hopping()
    assert k2 == pytest.approx(kappa, rel=1e-9)
    assert l2 == pytest.approx(l, rel=1e-9, abs=1e-12)
    # the actions agree under phi = sqrt(kappa) p
    pf = np.random.default_rng(0).standard_normal(shape)
    hop = sum(np.sum(pf * np.roll(pf, -1, axis=mu)) for mu in range(d))
    S_hop = -2 * kappa * hop + (1 - 2 * l) * np.sum(pf**2) + l * np.sum(pf**4)
    assert action(math.sqrt(kappa) * pf, p) == pytest.approx(S_hop, rel=1e-9, abs=1e-9)


def test_power_spectrum_parseval():
    phi = np.random.default_rng(3).standard_normal((2, 4, 6))
    ps = power_spectrum(phi, 2)
    np.testing.assert_allclose(ps.sum(axis=(1, 2)), (phi**2).sum(axis=(1, 2)))


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, phi4si; print(int('torch' in sys.modules), int('numba' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0"]
