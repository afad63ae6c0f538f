"""The random global sign (phi4si.model.z2): one-pass symmetrisation of a model's law.

Checked on a Gaussian oracle whose target N(mu, C) is *not* symmetric (mu != 0), so the drift is not
odd and the sign has something to do: the symmetrised samples have the mixture's moments, their
log q is the mixture's exact log-density, inpainting keeps the observed sites and completes with
the mixture's conditional mean; the rule x = s Flow(s x_start) is checked bit for bit; refusals
and the 'auto' resolution on trained networks (one-pass: flips; odd: the old bits).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phi4si.errors import ParameterError
from phi4si.interpolant.oracle import GaussianOracle, free_field_covariance, gaussian_conditional
from phi4si.interpolant.paths import GenerationPath
from phi4si.lattice import Phi4Params
from phi4si.model import DriftModel
from phi4si.model.density import FlowSettings, log_prob, sample
from phi4si.model.generate import generate, inpaint
from phi4si.model.posterior import Posterior
from phi4si.model.solve import SolveSettings, solve
from phi4si.model.z2 import log_q, network_odd, use_sign

SHAPE = (4,)
MU = np.array([0.9, 0.6, 0.9, 0.3])
C = 0.5 * free_field_covariance(SHAPE, 1.0)


@pytest.fixture(scope="module")
def shifted():
    """The exact drift of N(MU, C): a 'model' whose law is not Z2-symmetric (its drift is not odd)."""
    return DriftModel(GaussianOracle(MU, C, SHAPE), Phi4Params(SHAPE, m2=1.0, lam=0.0))


def _mixture_log_density(phi):
    """log((N(phi; MU, C) + N(phi; -MU, C)) / 2), exactly."""
    Ci = np.linalg.inv(C)
    _, logdet = np.linalg.slogdet(C)
    norm = -0.5 * (len(MU) * math.log(2 * math.pi) + logdet)
    lp = [norm - 0.5 * np.einsum("ni,ij,nj->n", phi - s * MU, Ci, phi - s * MU) for s in (1, -1)]
    return np.logaddexp(*lp) - math.log(2)


def test_sign_rule_bit_for_bit(shifted):
    """Each sample is s * Flow(s * z) with z then s drawn from the task's one generator."""
    n, st = 7, SolveSettings(steps=6, solver="rk4", seed=3, batch_size=64)
    got = generate(shifted, n, steps=6, solver="rk4", seed=3, z2="sign")
    g = torch.Generator().manual_seed(3)
    z = torch.randn((n, 1, *SHAPE), generator=g)
    s = (1.0 - 2.0 * torch.randint(0, 2, (n,), generator=g).double()).reshape(-1, 1, 1)
    want = (s * solve(shifted.drift(), GenerationPath(SHAPE), (s * z).double(), st, g)).numpy()[:, 0]
    assert np.array_equal(got, want)
    assert {-1.0, 1.0} <= set(s.flatten().tolist())
    plain = generate(shifted, n, steps=6, solver="rk4", seed=3, z2="none")
    plus = s.flatten().numpy() > 0
    assert np.array_equal(got[plus], plain[plus])        # s = +1: the network's own sample, same noise


def test_sign_symmetrises_the_law(shifted):
    """Odd moments vanish and the second moments are the mixture's; without the sign: N(MU, C)."""
    n = 6000
    sym = generate(shifted, n, steps=16, solver="rk4", seed=0, z2="sign")
    own = generate(shifted, n, steps=16, solver="rk4", seed=0, z2="none")
    err = np.sqrt(np.diag(C) + MU**2) / math.sqrt(n)
    assert np.all(np.abs(sym.mean(0)) < 4 * err)
    assert np.all(np.abs(own.mean(0) - MU) < 4 * err)
    m = sym.mean(1)
    assert abs((m**3).mean()) < 4 * (m**3).std() / math.sqrt(n)
    second = np.einsum("ni,nj->ij", sym, sym) / n
    assert np.allclose(second, C + np.outer(MU, MU), atol=0.06)


def test_symmetrised_log_q_is_the_mixture_density(shifted):
    """log q_sym by the flow equals log((N(MU, C) + N(-MU, C)) / 2) at the samples and elsewhere;
    the forward (sample) and reverse (log_prob) flows agree."""
    fs = FlowSettings(steps=24, divergence="exact", z2="sign")
    prop = sample(shifted, 200, fs, seed=1)
    exact = _mixture_log_density(prop.phi)
    assert np.abs(prop.log_q - exact).max() < 2e-3
    lq, err = log_prob(shifted, prop.phi, fs)
    assert np.abs(lq - prop.log_q).max() < 2e-3 and np.all(err == 0)
    assert (prop.phi.mean(1) < 0).any() and (prop.phi.mean(1) > 0).any()
    phi = np.random.default_rng(2).normal(size=(50, *SHAPE))
    assert np.abs(log_prob(shifted, phi, fs)[0] - _mixture_log_density(phi)).max() < 2e-3
    plain, _ = log_prob(shifted, phi, FlowSettings(steps=24, divergence="exact", z2="none"))
    assert np.abs(plain - _mixture_log_density(phi)).max() > 0.1     # the test can tell the two apart


def test_sign_inpainting_keeps_observed_sites_and_completes_by_the_mixture(shifted):
    unknown = np.array([True, True, False, False])
    data = np.tile([[0.0, 0.0, 0.7, -0.2]], (4000, 1))
    out = inpaint(shifted, data, unknown, steps=12, solver="rk4", seed=4, z2="sign")
    assert np.array_equal(out[:, ~unknown], data[:, ~unknown])
    plus, _ = gaussian_conditional(MU, C, ~unknown, data[0, ~unknown])
    minus, cov = gaussian_conditional(-MU, C, ~unknown, data[0, ~unknown])   # mirror: -Cond(-x_obs)
    want = 0.5 * (np.asarray(plus) + np.asarray(minus))
    sd = np.sqrt(np.diag(np.asarray(cov)) + 0.25 * (np.asarray(plus) - np.asarray(minus)) ** 2)
    assert np.all(np.abs(out[:, unknown].mean(0) - want) < 4 * sd / math.sqrt(len(out)))


def test_log_q_combination():
    a, b = np.array([-3.0, 2.0]), np.array([-1.0, 2.0])
    assert np.allclose(log_q(a, b), np.log((np.exp(a) + np.exp(b)) / 2))
    lq, err = log_q(a, b, np.array([0.2, 0.2]), np.array([0.0, 0.2]))
    w = np.exp(a[0]) / (np.exp(a[0]) + np.exp(b[0]))
    assert np.allclose(err, [w * 0.2, 0.2 / math.sqrt(2)])


# ------------------------------------------------------------------------------------------------ refusals
def test_refusals(shifted):
    for bad in ("flip", "", None, "SIGN"):
        with pytest.raises(ParameterError, match="z2"):
            SolveSettings(z2=bad)
        with pytest.raises(ParameterError, match="z2"):
            FlowSettings(z2=bad)
    with pytest.raises(ParameterError, match="field h = 0.2 breaks the symmetry"):
        generate(shifted, 2, steps=2, z2="sign", posterior=Posterior(h=0.2, start=0.0))
    with pytest.raises(ParameterError, match="field h = 0.2 breaks the symmetry"):
        sample(shifted, 2, FlowSettings(steps=2, z2="sign"), posterior=Posterior(h=0.2, start=0.0))
    asym = DriftModel(GaussianOracle(MU, C, SHAPE), Phi4Params(SHAPE, m2=1.0, lam=0.0, h=0.1))
    with pytest.raises(ParameterError, match="not symmetric"):
        generate(asym, 2, steps=2, z2="sign")
    assert not use_sign(asym, "auto")


def test_h_posterior_auto_is_off(shifted):
    post = Posterior(h=0.3, start=0.0)
    a = generate(shifted, 5, steps=4, seed=2, posterior=post)
    b = generate(shifted, 5, steps=4, seed=2, posterior=post, z2="none")
    assert np.array_equal(a, b)


# ------------------------------------------------------------------------------------------------ trained networks
@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Tiny networks of a symmetric 4x4 prior: one-pass (--no-odd) and odd (the default for h = 0)."""
    from phi4si.mcmc.run import sample_mcmc
    from phi4si.model import load_model
    from phi4si.model.train import TrainConfig, train

    d = tmp_path_factory.mktemp("z2")
    ens = sample_mcmc(Phi4Params((4, 4), m2=-1.0, lam=1.0), d / "e.h5", chains=2, n_traj=60, n_therm=10, seed=1,
                      progress=False)
    out = {}
    for odd in (False, True):
        path = d / f"odd{odd}.pt"
        train(ens, path, TrainConfig(steps=3, model="tiny", batch_size=8, val_size=8, threads=1, odd=odd),
              progress=False)
        out[odd] = load_model(path)
    return out


def test_auto_on_trained_networks(nets):
    one, odd = nets[False], nets[True]
    assert network_odd(one) is False and network_odd(odd) is True
    assert use_sign(one) and not use_sign(odd) and not use_sign(one, "none")
    with pytest.raises(ParameterError, match="exactly Z2-odd already"):
        use_sign(odd, "sign")
    kw = dict(steps=3, seed=5)
    assert np.array_equal(generate(odd, 6, **kw), generate(odd, 6, **kw, z2="none"))    # the old bits
    auto, plain = generate(one, 6, **kw), generate(one, 6, **kw, z2="none")
    assert np.array_equal(auto, generate(one, 6, **kw, z2="sign")) and not np.array_equal(auto, plain)
    lq_auto, _ = log_prob(one, auto, FlowSettings(steps=3))
    assert np.allclose(lq_auto, log_prob(one, -auto, FlowSettings(steps=3))[0], atol=1e-9)   # q_sym is even
