"""Every sampler satisfies the Sampler protocol of phi4si.mcmc.base, and its contract."""

import json

import numpy as np
import pytest

from phi4si.lattice import Phi4Params
from phi4si.mcmc import SAMPLERS, make_sampler
from phi4si.mcmc.base import Sampler
from phi4si.mcmc.fourier import MALA, FourierHMC, Langevin
from phi4si.mcmc.hmc import HMC

CLASSES = {"hmc": HMC, "fahmc": FourierHMC, "langevin": Langevin, "mala": MALA}
PARAMS = Phi4Params((4, 4), m2=-1.0, lam=1.0)


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_satisfies_the_protocol(name):
    s = make_sampler(name, PARAMS)
    assert isinstance(s, Sampler) and type(s) is CLASSES[name]
    assert s.name == name and s.meta()["sampler"] == name
    json.dumps(s.meta())                                             # JSON-ready
    assert isinstance(s.exact, bool) and isinstance(s.adaptive, bool)
    assert s.exact == (name != "langevin")
    assert (s.default_target is None) == (not s.adaptive)
    if s.adaptive:
        assert 0 < s.default_target < 1
    assert s.default_eps > 0 and s.default_n_steps >= 1 and s.n_steps == s.default_n_steps
    assert s.params is PARAMS and s.forces_per_trajectory >= s.n_steps


@pytest.mark.parametrize("name", SAMPLERS)
def test_step_contract(name):
    """In place on the caller's (n, V) float64 array, (accepted, dH) per chain, same rng state -> same bits."""
    s = make_sampler(name, PARAMS)
    rng = np.random.default_rng(0)
    phi = 0.1 * rng.standard_normal((3, PARAMS.volume))
    start = phi.copy()
    state = rng.bit_generator.state
    buf = phi
    acc, dH = s.step(phi, rng, s.default_eps)
    assert phi is buf and phi.dtype == np.float64 and phi.shape == (3, PARAMS.volume)
    for a in (acc, dH):
        assert isinstance(a, np.ndarray) and a.shape == (3,) and a.dtype == np.float64
    assert ((acc >= 0) & (acc <= 1)).all()
    if s.exact:
        assert np.isfinite(dH).all()
        moved = ~np.all(phi == start, axis=1)
        assert np.array_equal(moved, acc > 0)                        # a chain moves iff some test accepted
    else:
        assert (acc == 1).all() and np.isnan(dH).all()               # no Metropolis test
    again = start.copy()
    rng.bit_generator.state = state
    acc2, dH2 = s.step(again, rng, s.default_eps)
    assert np.array_equal(again, phi) and np.array_equal(acc2, acc) and np.array_equal(dH2, dH, equal_nan=True)


@pytest.mark.parametrize("name", ["hmc", "fahmc"])
def test_a_diverging_trajectory_is_rejected(name):
    s = make_sampler(name, PARAMS)
    phi = np.zeros((2, PARAMS.volume))
    acc, dH = s.step(phi, np.random.default_rng(1), 50.0)
    assert (acc == 0).all() and all(not np.isfinite(x) or x > 30 for x in dH), (acc, dH)
    assert (phi == 0).all()


def test_the_protocol_checks_members():
    class NoStep:
        name, exact, adaptive, default_eps, default_n_steps, default_target = "x", True, False, 0.1, 1, None
        params, n_steps, forces_per_trajectory = PARAMS, 1, 1

        def meta(self):
            return {"sampler": "x"}

    assert not isinstance(NoStep(), Sampler)
    NoStep.step = lambda self, phi, rng, eps: (np.ones(len(phi)), np.zeros(len(phi)))
    assert isinstance(NoStep(), Sampler)
