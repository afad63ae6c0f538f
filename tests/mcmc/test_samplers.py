"""Every sampler against the exact free field (THEORY.md section 1), integrator properties,
Langevin bias, and agreement of the exact samplers at an interacting point."""

import math

import numpy as np
import pytest

from phi4si.lattice import Phi4Params, free_propagator, p_hat2, power_spectrum
from phi4si.mcmc import make_sampler
from phi4si.mcmc.fourier import FourierHMC


def jittered(sampler, phi, rng, eps, jitter=0.2):
    """One update with eps drawn uniformly in eps (1 +- jitter), as the driver does: fixed
    trajectory lengths hit resonances (omega T = n pi for a free mode) where HMC does not mix."""
    return sampler.step(phi, rng, eps * (1 + jitter * (2 * rng.random() - 1)))


def run_spectrum(sampler, params, eps, chains=48, n_therm=60, n_meas=250, seed=0, jitter=0.2):
    """Per-chain averages of |phi~(p)|^2/V and of m^2 (chains are independent replicas)."""
    rng = np.random.default_rng(seed)
    phi = 0.4 * rng.standard_normal((chains, params.volume))  # near the free field's site variance
    for _ in range(n_therm):
        jittered(sampler, phi, rng, eps, jitter)
    ps = np.zeros((chains,) + params.shape)
    m2 = np.zeros(chains)
    acc = 0.0
    for _ in range(n_meas):
        a, _ = jittered(sampler, phi, rng, eps, jitter)
        acc += a.mean()
        f = phi.reshape((chains,) + params.shape)
        ps += power_spectrum(f, params.d)
        m2 += phi.mean(1) ** 2
    return ps / n_meas, m2 / n_meas, acc / n_meas


def assert_matches(per_chain, exact, zmax=4.5):
    """z-scores of chain-averaged estimates against exact values (errors from chain spread)."""
    mean = per_chain.mean(0)
    err = per_chain.std(0, ddof=1) / math.sqrt(per_chain.shape[0])
    z = (mean - exact) / err
    assert np.all(np.abs(z) < zmax), f"max |z| = {np.abs(z).max():.2f}"
    # and collectively: mean z^2 about 1 (loose: modes p and -p are not independent)
    assert np.mean(z**2) < 2.5, f"mean z^2 = {np.mean(z**2):.2f}"
    return z


CASES = [
    ("hmc", dict(n_steps=4), 0.14, {}),
    ("hmc", dict(n_steps=3, integrator="omelyan"), 0.19, {}),
    ("fahmc", dict(n_steps=6, mass=math.sqrt(0.3)), 0.058, {}),  # all modes at omega T ~ 1.5
    ("fahmc", dict(n_steps=6, mass=1.5, integrator="omelyan"), 0.1, {}),
    ("mala", dict(n_steps=4, mass=1.0), 0.05, {}),
]


@pytest.mark.parametrize("shape", [(6, 6), (4, 3, 4)], ids=["2d", "3d"])
@pytest.mark.parametrize("name,kw,eps,_", CASES, ids=[f"{c[0]}-{c[1].get('integrator', 'lf')}" for c in CASES])
def test_free_field_exact(name, kw, eps, _, shape):
    m2 = 0.3
    params = Phi4Params(shape, m2=m2, lam=0.0)
    s = make_sampler(name, params, **kw)
    ps, m2s, acc = run_spectrum(s, params, eps)
    assert acc > 0.3
    assert_matches(ps, free_propagator(shape, m2))
    # Var(m) = 1/(2 m2 V): <m^2> since <m> = 0
    var_exact = 1 / (2 * m2 * params.volume)
    z = (m2s.mean() - var_exact) / (m2s.std(ddof=1) / math.sqrt(len(m2s)))
    assert abs(z) < 4.5


@pytest.mark.parametrize("shape", [(6, 6), (10,)], ids=["2d", "1d"])
def test_free_field_reward_terms(shape):
    """h and k shift the free field exactly: mean h/(2(m2-k)), propagator 1/(2(m2 - k + p^2))."""
    m2, h, k = 0.6, 0.2, 0.25
    params = Phi4Params(shape, m2=m2, lam=0.0, h=h, k=k)
    s = make_sampler("hmc", params, n_steps=4)
    rng = np.random.default_rng(5)
    chains = 48
    phi = rng.standard_normal((chains, params.volume))
    for _ in range(60):
        jittered(s, phi, rng, 0.15)
    ms, cs = [], []
    for _ in range(250):
        jittered(s, phi, rng, 0.15)
        ms.append(phi.mean(1))
        f = phi.reshape((chains,) + shape) - h / (2 * (m2 - k))
        cs.append(power_spectrum(f, len(shape)))
    ms = np.array(ms).mean(0)
    z = (ms.mean() - h / (2 * (m2 - k))) / (ms.std(ddof=1) / math.sqrt(chains))
    assert abs(z) < 4.5
    assert_matches(np.array(cs).mean(0), free_propagator(shape, m2 - k))


def langevin_exact_variance(shape, m2, M, dt):
    """Stationary |phi~(p)|^2/V of the semi-implicit scheme for the free field (a linear AR(1) per mode)."""
    D = 1 / (p_hat2(shape) + M**2)
    a = (1 - 2 * dt * D * (m2 - M**2)) / (1 + 2 * dt)
    b2 = 2 * dt * D / (1 + 2 * dt) ** 2
    return b2 / (1 - a**2)


def test_langevin_free_field_discrete_law_and_bias_shrinks():
    shape, m2, M = (6, 6), 0.5, 1.2
    params = Phi4Params(shape, m2=m2, lam=0.0)
    exact = free_propagator(shape, m2)
    biases = []
    for dt in (0.2, 0.05):
        s = make_sampler("langevin", params, n_steps=3, mass=M)
        ps, _, _ = run_spectrum(s, params, dt, n_meas=300, seed=11, jitter=0.0)
        # the chain reproduces its own (biased) stationary law exactly ...
        pred = langevin_exact_variance(shape, m2, M, dt)
        assert_matches(ps, pred)
        biases.append(np.abs(pred / exact - 1).max())
        # ... and measurably differs from the target at large dt
        if dt == 0.2:
            z = (ps.mean(0) - exact) / (ps.std(0, ddof=1) / math.sqrt(ps.shape[0]))
            assert np.abs(z).max() > 5
    assert biases[1] < biases[0] / 2.5  # O(dt): 4x smaller dt, ~3-4x smaller bias
    # continuum limit of the scheme is the exact propagator
    np.testing.assert_allclose(langevin_exact_variance(shape, m2, M, 1e-7), exact, rtol=1e-5)


def thermal_config(params, seed=0):
    s = make_sampler("hmc", params, n_steps=10)
    rng = np.random.default_rng(seed)
    phi = 0.5 * rng.standard_normal((4, params.volume))
    for _ in range(30):
        s.step(phi, rng, 0.05)
    return phi, rng


@pytest.mark.parametrize("name,integrator", [("hmc", "leapfrog"), ("hmc", "omelyan"), ("fahmc", "leapfrog"),
                                             ("fahmc", "omelyan")])
def test_reversibility(name, integrator):
    params = Phi4Params((8, 8), m2=-4.0, lam=8.0)
    phi, rng = thermal_config(params)
    s = make_sampler(name, params, n_steps=20, integrator=integrator, mass=1.0)
    mom = rng.standard_normal(phi.shape)
    x1, p1 = s.integrate(phi, mom, 0.05)
    x2, p2 = s.integrate(x1, -p1, 0.05)
    assert np.abs(x1 - phi).max() > 0.1  # it moved
    np.testing.assert_allclose(x2, phi, atol=1e-10)
    np.testing.assert_allclose(-p2, mom, atol=1e-10)


@pytest.mark.parametrize("name,integrator", [("hmc", "leapfrog"), ("hmc", "omelyan"), ("fahmc", "leapfrog")])
def test_energy_violation_scales_as_eps_squared(name, integrator):
    params = Phi4Params((8, 8), m2=-4.0, lam=8.0)
    phi, rng = thermal_config(params, seed=1)
    s = make_sampler(name, params, integrator=integrator, mass=1.0)
    mom = rng.standard_normal(phi.shape)
    from phi4si.lattice import action

    def H(x, p):
        kin = s.kinetic(p) if isinstance(s, FourierHMC) else 0.5 * (p**2).sum(1)
        return kin + action(x.reshape((-1,) + params.shape), params)

    if isinstance(s, FourierHMC):  # momenta with covariance M
        mom = s._apply(mom, s._sqrtM)
    T = 0.5
    dh = []
    for n in (10, 20, 40):
        x, p = s.integrate(phi, mom, T / n, n_steps=n)
        dh.append(np.sqrt(np.mean((H(x, p) - H(phi, mom)) ** 2)))
    r1, r2 = dh[0] / dh[1], dh[1] / dh[2]
    assert 3.3 < r1 < 4.8 and 3.3 < r2 < 4.8, (dh, r1, r2)


@pytest.mark.slow
def test_interacting_agreement_long():
    _interacting(n_traj=3000)


def test_interacting_agreement():
    _interacting(n_traj=700)


def _interacting(n_traj):
    """hmc, hmc-omelyan, fahmc and mala agree on <|m|>, chi, U4, <S>/V at L = 8, m2 = -4, lam = 8."""
    import tempfile
    from pathlib import Path

    from phi4si.analysis.observables import analyze_dataset
    from phi4si.mcmc.run import sample_mcmc
    from phi4si.store import open_ensemble

    params = Phi4Params((8, 8), m2=-4.0, lam=8.0)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kw) in enumerate([("hmc", {}), ("hmc", dict(integrator="omelyan", n_steps=5)),
                                        ("fahmc", dict(mass=1.0)), ("mala", dict(n_steps=5))]):
            path = Path(tmp) / f"{i}.h5"
            sample_mcmc(params, path, sampler=name, chains=8, n_traj=n_traj, n_therm=100, every=0, seed=10 + i,
                        progress=False, **kw)
            ds = open_ensemble(path)
            res[f"{name}{i}"] = analyze_dataset(ds)
            ds.close()
    keys = ("abs_m", "chi", "binder", "s", "m2")
    names = list(res)
    for k in keys:
        for a in names:
            for b in names:
                if a < b:
                    ea, eb = res[a][k], res[b][k]
                    z = (ea.value - eb.value) / math.hypot(ea.error, eb.error)
                    assert abs(z) < 4.0, (k, a, b, ea, eb)
