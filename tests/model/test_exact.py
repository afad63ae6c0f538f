"""Exact sampling: model log-density (forward, reverse, conditional), divergence estimators,
importance weights, independence Metropolis and neural block Metropolis-Hastings.

The judge is the Gaussian oracle: with the exact free-field drift the flow's density is the target's
density, so log q must equal log N(x; 0, C) (and the conditional Gaussian for a block), importance
log-weights must be constant and block proposals always accepted.  With a deliberately *wrong*
oracle (another mass) the exact samplers must still reproduce the target's moments.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phi4si.model.density import FlowSettings, conditional_log_prob, log_prob, propose_block, sample
from phi4si.errors import OutputExistsError, ParameterError
from phi4si.interpolant.likelihood import colored_probes, divergence, flow_log_density, rademacher
from phi4si.interpolant.oracle import GaussianOracle, free_field_covariance, free_field_oracle, gaussian_conditional
from phi4si.interpolant.paths import GenerationPath, InpaintPath, sequential_path
from phi4si.lattice import Phi4Params
from phi4si.model import DriftModel
from phi4si.model.exact import block_update, imh_chain, random_blocks, sample_neural
from phi4si.analysis.weights import ess_fraction, log_target, log_weights, weighted_mean

SHAPE, M2 = (4, 4), 0.7
V = 16


def _gauss_logpdf(x, C):
    x = np.asarray(x).reshape(len(x), -1)
    Ci = np.linalg.inv(C)
    return (-0.5 * np.einsum("bi,ij,bj->b", x, Ci, x) - 0.5 * np.linalg.slogdet(C)[1]
            - 0.5 * x.shape[1] * np.log(2 * np.pi))


@pytest.fixture(scope="module")
def ff():
    return free_field_oracle(SHAPE, M2), free_field_covariance(SHAPE, M2)


def _noise(n, seed=0, shape=SHAPE):
    return torch.randn(n, 1, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- divergence estimators


def test_exact_divergence_equals_jacobian_trace():
    torch.manual_seed(0)
    W = torch.randn(V, V, dtype=torch.float64) / 4
    fn = lambda z: torch.tanh(z.reshape(len(z), -1) @ W.T).reshape(z.shape)  # noqa: E731
    x = _noise(3)
    wgt = torch.rand(3, 1, *SHAPE, dtype=torch.float64) * (torch.rand(3, 1, *SHAPE) > 0.3)
    _, est = divergence(fn, x, wgt, "exact", max_batch=7)          # several chunks of copies
    for i in range(3):
        J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0].reshape(-1), x[i]).reshape(V, V)
        assert float(est[0, i]) == pytest.approx(float((torch.diagonal(J) * wgt[i].reshape(-1)).sum()), abs=1e-12)


def test_hutchinson_divergence_is_unbiased():
    torch.manual_seed(1)
    W = torch.randn(V, V, dtype=torch.float64) / 4
    fn = lambda z: torch.tanh(z.reshape(len(z), -1) @ W.T).reshape(z.shape)  # noqa: E731
    x = _noise(2, 3)
    wgt = -torch.ones(1, 1, *SHAPE, dtype=torch.float64)
    _, exact = divergence(fn, x, wgt, "exact")
    _, est = divergence(fn, x, wgt, "hutchinson", eps=rademacher(4000, x, torch.Generator().manual_seed(2)))
    mean, se = est.mean(0), est.std(0) / np.sqrt(est.shape[0])
    assert bool(((mean - exact[0]).abs() < 4 * se).all())
    assert bool((se > 0).all())


def test_colored_divergence_is_exact_for_a_local_jacobian_and_unbiased_otherwise():
    torch.manual_seed(2)
    # nearest-neighbour coupling only: sites of one colour (period 2) never interact -> exact for any signs
    fn = lambda z: torch.tanh(z + 0.3 * torch.roll(z, 1, -1) - 0.2 * torch.roll(z, -1, -2))  # noqa: E731
    x = _noise(3, 7)
    wgt = -torch.rand(3, 1, *SHAPE, dtype=torch.float64)
    _, exact = divergence(fn, x, wgt, "exact")
    eps = colored_probes(3, 2, x, torch.Generator().manual_seed(0))
    assert eps.shape == (3 * 4, 3, 1, *SHAPE)
    assert torch.equal(eps.abs().reshape(3, 4, 3, -1).sum(1), torch.ones(3, 3, V, dtype=torch.float64))
    _, est = divergence(fn, x, wgt, "colored", eps=eps, groups=4)
    assert est.shape == (3, 3)
    assert torch.allclose(est, exact.expand(3, 3), atol=1e-12)
    # a dense Jacobian: still unbiased
    W = torch.randn(V, V, dtype=torch.float64) / 4
    dense = lambda z: torch.tanh(z.reshape(len(z), -1) @ W.T).reshape(z.shape)  # noqa: E731
    _, exact = divergence(dense, x, wgt, "exact")
    _, est = divergence(dense, x, wgt, "colored", eps=colored_probes(3000, 2, x, torch.Generator().manual_seed(1)),
                        groups=4)
    se = est.std(0) / np.sqrt(est.shape[0])
    assert bool(((est.mean(0) - exact[0]).abs() < 4 * se).all())
    with pytest.raises(ValueError, match="period"):
        colored_probes(1, 5, x)


def test_colored_log_q_matches_exact_on_the_oracle(ff):
    orc, C = ff
    z = _noise(4, 8)
    ex = flow_log_density(orc, GenerationPath(SHAPE), z, steps=10, method="rk4")
    col = flow_log_density(orc, GenerationPath(SHAPE), z, steps=10, method="rk4", divergence_method="colored",
                           probes=2, period=2, generator=torch.Generator().manual_seed(0))
    # the free-field drift's Jacobian decays with distance: small, honest error
    assert bool(((col.log_q - ex.log_q).abs() < 5 * col.div_error + 1e-9).all())
    assert float(col.div_error.max()) < 0.5
    # period^d probes >= moving sites: the exact trace is used (cheaper and exact)
    full = flow_log_density(orc, GenerationPath(SHAPE), z, steps=10, method="rk4", divergence_method="colored",
                            probes=1, period=4)
    assert torch.allclose(full.log_q, ex.log_q) and float(full.div_error.abs().max()) == 0.0


def test_divergence_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown divergence"):
        divergence(lambda z: z, _noise(1), torch.ones(1, 1, *SHAPE), "trace")
    with pytest.raises(ValueError, match="needs probes"):
        divergence(lambda z: z, _noise(1), torch.ones(1, 1, *SHAPE), "hutchinson")


# ---------------------------------------------------------------- log q with the oracle


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_log_q_converges_to_exact_density_at_solver_order(ff, method, order):
    orc, C = ff
    z = _noise(6)
    errs = []
    for steps in (20, 40):
        r = flow_log_density(orc, GenerationPath(SHAPE), z, steps=steps, method=method)
        errs.append(np.abs(r.log_q.numpy() - _gauss_logpdf(r.x.numpy(), C)).max())
    assert errs[1] < errs[0]
    assert order - 0.5 < np.log2(errs[0] / errs[1]) < order + 1.0   # pre-asymptotic: a bit above the order
    if method == "rk4":
        assert errs[1] < 1e-5


def test_forward_and_reverse_agree(ff):
    orc, C = ff
    z = _noise(5, 1)
    fwd = flow_log_density(orc, GenerationPath(SHAPE), z, steps=20, method="rk4")
    rev = flow_log_density(orc, GenerationPath(SHAPE), fwd.x, steps=20, method="rk4", direction="reverse")
    assert torch.allclose(rev.x, z, atol=1e-5)
    assert np.allclose(rev.log_q.numpy(), fwd.log_q.numpy(), atol=1e-4)
    assert np.allclose(rev.log_q.numpy(), _gauss_logpdf(fwd.x.numpy(), C), atol=1e-4)


# ---------------------------------------------------------------- quadrature of the divergence integral


@pytest.fixture(scope="module")
def mixture():
    """A two-component Gaussian mixture: a drift nonlinear in x, so the divergence varies along the
    trajectory (for a Gaussian it depends on s only), with its exact log-density."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    from phi4si.interpolant.oracle import MixtureOracle

    C = free_field_covariance(SHAPE, M2)
    w, means, covs = [0.3, 0.7], [np.full(V, 1.2), np.full(V, -0.8)], [C, 0.5 * C]
    mix = MixtureOracle(w, means, covs, SHAPE)

    def logpdf(x):
        x = np.asarray(x).reshape(len(x), -1)
        return logsumexp([np.log(wk) + multivariate_normal(mk, ck).logpdf(x) for wk, mk, ck in zip(w, means, covs)],
                         axis=0)

    return mix, logpdf


@pytest.mark.parametrize("quadrature,order", [("stages", 4), ("gauss2", 4), ("gauss1", 2)])
def test_quadrature_converges_at_its_order_on_a_nonlinear_drift(mixture, quadrature, order):
    mix, logpdf = mixture
    z = _noise(6, 7)
    errs = []
    for steps in (16, 32):
        r = flow_log_density(mix, GenerationPath(SHAPE), z, steps=steps, method="rk4", quadrature=quadrature)
        errs.append(np.abs(r.log_q.numpy() - logpdf(r.x.numpy())).max())
    assert order - 0.5 < np.log2(errs[0] / errs[1]) < order + 1.0
    if order == 4:
        assert errs[1] < 1e-4


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_quadrature_keeps_the_configurations_and_the_probes(mixture, direction):
    mix, _ = mixture
    x0 = _noise(4, 8)
    runs = {q: flow_log_density(mix, GenerationPath(SHAPE), x0, steps=5, method="rk4", direction=direction,
                                divergence_method="hutchinson", probes=2, generator=torch.Generator().manual_seed(1),
                                quadrature=q) for q in ("stages", "gauss2", "gauss1")}
    assert torch.equal(runs["stages"].x, runs["gauss2"].x) and torch.equal(runs["stages"].x, runs["gauss1"].x)
    for q in ("gauss2", "gauss1"):           # another log q (its accuracy: the convergence test above)
        assert not torch.equal(runs[q].log_q, runs["stages"].log_q)
        assert bool(torch.isfinite(runs[q].div_error).all() and (runs[q].div_error > 0).all())


def test_gauss_quadrature_forward_and_reverse_agree(mixture):
    mix, logpdf = mixture
    fwd = flow_log_density(mix, GenerationPath(SHAPE), _noise(5, 9), steps=20, method="rk4", quadrature="gauss2")
    rev = flow_log_density(mix, GenerationPath(SHAPE), fwd.x, steps=20, method="rk4", direction="reverse",
                           quadrature="gauss2")
    assert np.allclose(rev.log_q.numpy(), fwd.log_q.numpy(), atol=1e-3)
    assert np.allclose(rev.log_q.numpy(), logpdf(fwd.x.numpy()), atol=1e-3)


def test_gauss_quadrature_counts_half_the_divergence_evaluations(mixture):
    mix, _ = mixture
    calls = {"n": 0}

    class Counted:
        family = mix.family

        def b(self, x, a):
            calls["n"] += x.shape[0]
            return mix.b(x, a)

    out = {}
    for q in ("stages", "gauss2"):
        calls["n"] = 0
        flow_log_density(Counted(), GenerationPath(SHAPE), _noise(2, 3), steps=3, method="rk4",
                         divergence_method="colored", period=2, generator=torch.Generator().manual_seed(0),
                         quadrature=q)
        out[q] = calls["n"] // 2                    # network passes per configuration
    # colored, period 2 in 2-d: 4 probes; stages 3 x 4 x (1 + 4); gauss2 3 x (4 + 1 + 2 x (1 + 4))
    assert out == {"stages": 60, "gauss2": 45}


@pytest.mark.parametrize("quadrature", ["stages", "gauss2"])
@pytest.mark.parametrize("kind", ["block", "random", "batched"])
def test_conditional_log_q_is_the_gaussian_conditional(ff, kind, quadrature):
    orc, C = ff
    rng = np.random.default_rng(3)
    n = 4
    if kind == "block":
        masks = np.zeros((n, *SHAPE), bool)
        masks[:, 1:3, 0:3] = True
    elif kind == "random":
        masks = np.broadcast_to(rng.random(SHAPE) < 0.5, (n, *SHAPE)).copy()
    else:
        masks = random_blocks(SHAPE, 2, n, rng)
    data = orc.sample(n, torch.Generator().manual_seed(4)).reshape(n, 1, *SHAPE)
    path = InpaintPath(torch.from_numpy(masks), batched=True)
    rev = flow_log_density(orc, path, data, steps=20, method="rk4", direction="reverse", quadrature=quadrature)
    fwd = flow_log_density(orc, path, path.start(rev.x, data), steps=20, method="rk4", quadrature=quadrature)
    for i in range(n):
        u = masks[i].ravel()
        mu, Cu = gaussian_conditional(np.zeros(V), C, ~u, data[i].numpy().ravel()[~u])
        exact = _gauss_logpdf((data[i].numpy().ravel()[u] - mu)[None], Cu)[0]
        assert float(rev.log_q[i]) == pytest.approx(exact, abs=1e-4)
        assert float(fwd.log_q[i]) == pytest.approx(exact, abs=1e-4)
        assert int(rev.n_moving[i]) == u.sum()
    # the observed sites never moved, the block came back to the data
    assert torch.equal(fwd.x[torch.from_numpy(~masks)[:, None]], data[torch.from_numpy(~masks)[:, None]])
    assert torch.allclose(fwd.x, data, atol=1e-5)


def test_hutchinson_log_q_is_unbiased_with_honest_error(ff):
    orc, C = ff
    z = _noise(4, 5)
    exact = flow_log_density(orc, GenerationPath(SHAPE), z, steps=10, method="rk4")
    runs = [flow_log_density(orc, GenerationPath(SHAPE), z, steps=10, method="rk4", divergence_method="hutchinson",
                             probes=4, generator=torch.Generator().manual_seed(s)) for s in range(60)]
    lq = torch.stack([r.log_q for r in runs])                     # (60, 4)
    assert torch.allclose(runs[0].x, exact.x)                     # probes do not touch the trajectory
    dev = lq.mean(0) - exact.log_q
    se = lq.std(0) / np.sqrt(len(runs))
    assert bool((dev.abs() < 4 * se).all())
    reported = torch.stack([r.div_error for r in runs]).mean(0)
    ratio = reported / lq.std(0)
    assert bool(((ratio > 0.6) & (ratio < 1.6)).all())


def test_log_density_path_checks(ff):
    orc, _ = ff
    with pytest.raises(ValueError, match="data end"):
        from phi4si.interpolant.paths import FunctionPath

        flow_log_density(orc, FunctionPath(lambda s: 1 - 0.5 * s, SHAPE), _noise(1))
    with pytest.raises(ValueError, match="direction"):
        flow_log_density(orc, GenerationPath(SHAPE), _noise(1), direction="up")
    with pytest.raises(ValueError, match="does not match"):
        flow_log_density(orc, GenerationPath((4, 5)), _noise(1))
    with pytest.raises(ParameterError, match=r"unknown quadrature 'simpson' \(choose from \('stages', 'gauss1', "):
        flow_log_density(orc, GenerationPath(SHAPE), _noise(1), quadrature="simpson")


def test_sequential_path_log_q_is_exact(ff):
    orc, C = ff
    path = sequential_path(SHAPE, "raster", block=2)
    r = flow_log_density(orc, path, _noise(3, 6), steps=12, method="rk4")
    assert np.allclose(r.log_q.numpy(), _gauss_logpdf(r.x.numpy(), C), atol=1e-4)


# ---------------------------------------------------------------- physical units, weights


def _model(m2_model=M2, scale=1.0):
    C = free_field_covariance(SHAPE, m2_model) / scale**2
    params = Phi4Params(SHAPE, m2=M2, lam=0.0)
    return DriftModel(GaussianOracle(np.zeros(V), C, SHAPE), params, scale=scale), params


@pytest.mark.parametrize("scale", [1.0, 0.4])
def test_exact_model_has_constant_weights_and_always_accepts_blocks(scale):
    model, params = _model(scale=scale)
    fs = FlowSettings(steps=16)
    s = sample(model, 32, fs, seed=1)
    lw = log_weights(s.phi, s.log_q, params)
    assert lw.std() < 1e-4
    assert ess_fraction(lw) == pytest.approx(1.0, abs=1e-6)
    # -log Z of the free field: log w = log Z_target - ... = const = log sqrt(det 2 pi C) ...
    C = free_field_covariance(SHAPE, M2)
    assert lw.mean() == pytest.approx(0.5 * np.linalg.slogdet(2 * np.pi * C)[1], abs=1e-4)
    lq, _ = log_prob(model, s.phi, fs)
    assert np.allclose(lq, s.log_q, atol=1e-4)
    _, acc, la = block_update(model, s.phi, params, 2, np.random.default_rng(0), fs)
    assert np.abs(la).max() < 1e-4 and acc.all()


def test_reweighting_a_wrong_model_recovers_the_target():
    model, params = _model(m2_model=1.0)                         # narrower than the target
    s = sample(model, 3000, FlowSettings(steps=6, batch_size=1000), seed=2)
    lw = log_weights(s.phi, s.log_q, params)
    assert 0.05 < ess_fraction(lw) < 0.95
    m2_exact = float(free_field_covariance(SHAPE, M2).sum() / V**2)
    mag2 = s.phi.mean(axis=(1, 2)) ** 2
    raw = mag2.mean()
    val, err = weighted_mean(mag2, lw)
    assert abs(val - m2_exact) < 4 * err
    assert abs(raw - m2_exact) > 3 * err                          # the raw model is clearly wrong


def test_imh_chain_statistics():
    rng = np.random.default_rng(0)
    lw = rng.normal(size=(3, 4000))
    idx, acc, dH = imh_chain(lw, rng)
    # acceptance rule: accepted iff the held index changed to t
    t = np.arange(4000)
    assert np.array_equal(acc[:, 1:], idx[:, 1:] == t[1:])
    held = np.take_along_axis(lw, idx, 1)
    # the chain's stationary law is q w / Z: for log w ~ N(0,1) under q, log w of the held state is N(1, 1)
    assert held[:, 200:].mean() == pytest.approx(1.0, abs=0.15)
    idx2, acc2, _ = imh_chain(np.zeros((2, 5)), rng, current=np.zeros(2))
    assert acc2.all() and idx2[:, -1].tolist() == [4, 4]
    with pytest.raises(ValueError):
        imh_chain(np.zeros(5), rng)


def test_random_blocks_are_uniform_and_periodic():
    m = random_blocks((5, 4), (2, 3), 2000, np.random.default_rng(1))
    assert (m.sum(axis=(1, 2)) == 6).all()
    cover = m.mean(0)
    assert np.allclose(cover, 6 / 20, atol=0.05)
    with pytest.raises(ParameterError, match="does not fit"):
        random_blocks((4, 4), 5, 1, np.random.default_rng(0))


def _read(out):
    from phi4si.analysis.report import analyze_file

    return analyze_file(out)


@pytest.mark.parametrize("method", ["reweight", "imh", "block", pytest.param("hybrid", marks=pytest.mark.slow)])
def test_exact_samplers_reproduce_the_free_field_with_a_wrong_model(tmp_path, method):
    model, params = _model(m2_model=1.2)
    out = tmp_path / f"{method}.h5"
    kw = dict(reweight=dict(n=2000), imh=dict(n=500, chains=4),
              block=dict(n=60, chains=32, block=2, updates=1, n_therm=5),
              hybrid=dict(n=100, chains=16, block=2, updates=1, hmc_traj=1, hmc_eps=0.3, hmc_steps=5, n_therm=10))
    summary = sample_neural(model, method, out, fs=FlowSettings(steps=6, batch_size=1000), seed=3, **kw[method])
    res = _read(out)
    m2_exact = float(free_field_covariance(SHAPE, M2).sum() / V**2)
    e = res["m2"]
    assert abs(e["value"] - m2_exact) < 4 * e["error"], (method, e, m2_exact)
    if method == "reweight":
        assert 0.1 < res["ess_fraction"] < 1.0
        assert 0.1 < summary["ess_fraction"] < 1.0
    elif method == "imh":
        assert 0.2 < summary["acceptance"] < 1.0
    else:
        assert 0.2 < summary["acceptance_block"] < 1.0
    if method != "reweight":                  # one acceptance figure: summary, analyze and the file's attribute
        from phi4si.store import open_ensemble

        with open_ensemble(out) as ds:
            attr = ds.attrs["acceptance"]
        figure = summary.get("acceptance", summary.get("acceptance_block"))
        assert res["acceptance"] == pytest.approx(figure) and attr == pytest.approx(figure), (res["acceptance"], attr)
    with pytest.raises(OutputExistsError):
        sample_neural(model, method, out, **kw[method])


def test_sample_neural_bad_inputs(tmp_path):
    model, _ = _model()
    with pytest.raises(ParameterError, match="unknown method"):
        sample_neural(model, "gibbs", tmp_path / "a.h5", n=10)
    with pytest.raises(ParameterError, match="n must be"):
        sample_neural(model, "imh", tmp_path / "a.h5", n=0)
    with pytest.raises(ParameterError, match="does not fit"):
        sample_neural(model, "block", tmp_path / "a.h5", n=2, block=9)
    with pytest.raises(ParameterError, match="hmc_traj"):
        sample_neural(model, "hybrid", tmp_path / "a.h5", n=2, hmc_traj=0)
    with pytest.raises(ParameterError, match="does not exist"):
        sample_neural(model, "imh", tmp_path / "no" / "a.h5", n=2)
    with pytest.raises(ParameterError, match="unknown solver"):
        FlowSettings(solver="leapfrog")
    with pytest.raises(ParameterError, match="unknown divergence"):
        FlowSettings(divergence="trace")
    with pytest.raises(ParameterError, match="shape"):
        propose_block(model, np.zeros((2, *SHAPE)), np.zeros((3, 3), bool))
    with pytest.raises(ParameterError, match="unknown site"):
        conditional_log_prob(model, np.zeros((2, *SHAPE)), np.zeros(SHAPE, bool))
    with pytest.raises(ParameterError, match="NaN"):
        log_prob(model, np.full((1, *SHAPE), np.nan))
    assert not list(tmp_path.iterdir())                           # nothing written by a refused call


def test_posterior_target_from_the_prior_model(tmp_path):
    """Exact posterior under a field h from an h = 0 (free-field) model, by reweighting."""
    model, _ = _model()
    h = 0.3
    post = model.target_params(h=h)
    assert post.h == h and post.m2 == M2
    s = sample(model, 3000, FlowSettings(steps=6, batch_size=1000), seed=5)
    lw = log_weights(s.phi, s.log_q, post)
    C = free_field_covariance(SHAPE, M2)
    m_exact = float((C @ np.full(V, h)).mean())                   # posterior mean C b, b = h 1
    val, err = weighted_mean(s.phi.mean(axis=(1, 2)), lw)
    assert abs(val - m_exact) < 4 * err
    assert np.allclose(log_target(s.phi, post), log_target(s.phi, model.target_params()) + h * s.phi.sum((1, 2)))
    # quadratic reward k < 0: covariance (C^-1 - 2k)^-1
    kk = -0.3
    lw = log_weights(s.phi, s.log_q, model.target_params(k=kk))
    Ck = np.linalg.inv(np.linalg.inv(C) - 2 * kk * np.eye(V))
    val, err = weighted_mean(s.phi.mean(axis=(1, 2)) ** 2, lw)
    assert abs(val - Ck.sum() / V**2) < 4 * err


@pytest.mark.parametrize("method", ["reweight", "imh", "block", "hybrid"])
def test_sample_neural_resume_gives_the_same_bits(tmp_path, method):
    from phi4si import open_ensemble

    model, _ = _model(m2_model=1.2)
    fs = FlowSettings(steps=3, batch_size=4)
    kw = dict(reweight={}, imh=dict(chains=2), block=dict(chains=2, block=2, n_therm=1, flush_every=2),
              hybrid=dict(chains=2, block=2, hmc_eps=0.2, hmc_steps=3, flush_every=2))[method]
    full, part = tmp_path / "full.h5", tmp_path / "part.h5"
    sample_neural(model, method, full, 8, fs=fs, seed=4, **kw)
    sample_neural(model, method, part, 4, fs=fs, seed=4, **kw)
    s = sample_neural(model, method, part, 8, fs=fs, seed=4, resume=True, **kw)
    assert s["n_done"] == 8
    with open_ensemble(full, load=True) as a, open_ensemble(part, load=True) as b:
        for name in ("phi", "m", "accepted", "dH") + (("log_w",) if method == "reweight" else ()):
            assert np.array_equal(a[name].values, b[name].values), name
        assert len(b.attrs["run"]["resumed"]) == 1
    from phi4si.errors import ResumeError

    with pytest.raises(ResumeError, match="setting"):
        sample_neural(model, method, part, 10, fs=FlowSettings(steps=4, batch_size=4), seed=4, resume=True, **kw)
    with pytest.raises(ResumeError, match="already holds"):
        sample_neural(model, method, part, 6, fs=fs, seed=4, resume=True, **kw)
    with pytest.raises(ResumeError, match="does not exist"):
        sample_neural(model, method, tmp_path / "none.h5", 6, fs=fs, seed=4, resume=True, **kw)


def test_a_file_written_before_the_newer_flow_settings_resumes(tmp_path):
    """A file whose flow record lacks ``z2`` and ``quadrature`` (written before they existed) resumes
    with the settings that reproduce it, and refuses the others by name."""
    import json

    import h5py

    from phi4si.errors import ResumeError

    model, _ = _model(m2_model=1.2)
    fs = FlowSettings(steps=3, batch_size=4, z2="none", quadrature="stages")
    out = tmp_path / "old.h5"
    sample_neural(model, "reweight", out, 4, fs=fs, seed=4)
    with h5py.File(out, "r+") as f:
        sampler = json.loads(f.attrs["sampler"])
        for key in ("z2", "quadrature"):
            del sampler["flow"][key]
        f.attrs["sampler"] = json.dumps(sampler)
    with pytest.raises(ResumeError, match="flow was .*'quadrature': 'stages'.*, now .*'quadrature': 'gauss2'"):
        sample_neural(model, "reweight", out, 8, fs=FlowSettings(steps=3, batch_size=4, z2="none",
                                                                quadrature="gauss2"), seed=4, resume=True)
    assert sample_neural(model, "reweight", out, 8, fs=fs, seed=4, resume=True)["n_done"] == 8


def test_bad_settings_and_inputs_are_refused(tmp_path):
    from phi4si.interpolant.rewards import Reward
    from phi4si.errors import CheckpointError

    for kw, match in ((dict(probes=0), "probes"), (dict(period=0), "period"), (dict(batch_size=0), "batch_size"),
                      (dict(max_batch=0), "max_batch"), (dict(grid_power=0.0), "grid_power"),
                      (dict(steps=0), "steps")):
        with pytest.raises(ParameterError, match=match):
            FlowSettings(**kw)
    model, params = _model()
    with pytest.raises(CheckpointError, match="lattice"):
        model.check_shape((4, 5))
    with pytest.raises(ValueError, match="not finite"):
        log_weights(np.zeros((1, *SHAPE)), np.array([np.inf]), params)
    with pytest.raises(ValueError, match="NaN or inf"):
        from phi4si.analysis.observables import weighted_primary

        weighted_primary({"x": np.ones((1, 3))}, np.array([[0.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="finite"):
        Reward(np.nan, 0.0)
    with pytest.raises(ValueError, match="probes"):
        flow_log_density(model.drift(), GenerationPath(SHAPE), _noise(1), divergence_method="hutchinson", probes=0)
    with pytest.raises(ValueError, match="steps"):
        flow_log_density(model.drift(), GenerationPath(SHAPE), _noise(1), steps=0)
    broken = DriftModel(model.drift(), params)
    broken.lattice = {"shape": list(SHAPE), "params": {}}
    with pytest.raises(CheckpointError, match="m2, lam"):
        broken.target_params()


# ---------------------------------------------------------------- what the library refuses (the CLI forwards)
@pytest.mark.parametrize("method,kw,match", [
    ("reweight", dict(block=2), "block applies to method block or hybrid only"),
    ("imh", dict(updates=1), "updates applies to method block or hybrid only"),
    ("imh", dict(n_therm=0), "n_therm applies to method block or hybrid only"),
    ("block", dict(hmc_traj=1), "hmc_traj applies to method hybrid only"),
    ("block", dict(hmc_eps=0.1), "hmc_eps applies to method hybrid only"),
    ("reweight", dict(hmc_steps=10), "hmc_steps applies to method hybrid only"),
    ("reweight", dict(chains=2), "chains applies to method imh, block or hybrid only"),
    ("imh", dict(seed=-1), "seed must be an integer >= 0"),
    ("imh", dict(seed=True), "seed must be an integer >= 0"),
    ("imh", dict(chains=0), "chains must be an integer >= 1"),
    ("block", dict(n_therm=-1), "n_therm must be an integer >= 0"),
    ("block", dict(updates=0), "updates must be an integer >= 1"),
    ("hybrid", dict(hmc_steps=0), "hmc_steps must be an integer >= 1"),
    ("hybrid", dict(hmc_eps=float("inf")), "hmc_eps must be a finite number > 0"),
    ("imh", dict(dtype="float16"), "dtype must be float32 or float64"),
    ("reweight", dict(window=4), "window applies to method block or hybrid only"),
    ("block", dict(block=2, window=3), r"window 3: every side must be at least the block's plus 2"),
    ("hybrid", dict(window=5), r"at most the lattice's \(4, 4\)"),
])
def test_sample_neural_refuses_settings_before_writing(tmp_path, method, kw, match):
    model, _ = _model()
    with pytest.raises(ParameterError, match=match):
        sample_neural(model, method, tmp_path / "a.h5", 2, fs=FlowSettings(steps=2), **kw)
    assert not list(tmp_path.iterdir())


def test_sample_neural_posterior_is_for_reweight_and_imh(tmp_path):
    from phi4si.model.posterior import Posterior

    model, _ = _model()
    for method in ("block", "hybrid"):
        with pytest.raises(ParameterError, match="posterior applies to method reweight or imh only"):
            sample_neural(model, method, tmp_path / "a.h5", 2, posterior=Posterior(h=0.1))
    with pytest.raises(ParameterError, match="posterior must be None or a"):
        sample_neural(model, "imh", tmp_path / "a.h5", 2, posterior={"h": 0.1})
    assert not list(tmp_path.iterdir())


def test_sample_neural_method_settings_default_when_not_given(tmp_path):
    """A block run with nothing but the method records the defaults of METHOD_SETTINGS."""
    from phi4si import open_ensemble
    from phi4si.model.exact import METHOD_SETTINGS

    model, _ = _model()
    out = tmp_path / "h.h5"
    sample_neural(model, "hybrid", out, 1, fs=FlowSettings(steps=2), seed=1)
    with open_ensemble(out) as ds:
        s = ds.attrs["sampler"]
    assert {k: s[k] for k in METHOD_SETTINGS} == {"block": [4, 4], "updates": 1, "n_therm": 0, "hmc_traj": 1,
                                                  "hmc_eps": 0.1, "hmc_steps": 10, "window": None}


@pytest.mark.parametrize("kw,match", [
    (dict(divergence="exact", probes=2), "probes applies to divergence colored or hutchinson only"),
    (dict(divergence="exact", period=2), "period applies to divergence colored only"),
    (dict(divergence="hutchinson", period=8), "period applies to divergence colored only"),
    (dict(batch_size=0), "batch_size must be >= 1, got 0"),
    (dict(max_batch=0), "max_batch must be >= 1, got 0"),
    (dict(quadrature="gauss3"), r"unknown quadrature 'gauss3' \(choose from \('stages', 'gauss1', 'gauss2'\)\)"),
])
def test_flow_settings_refuse_what_the_divergence_does_not_use(kw, match):
    with pytest.raises(ParameterError, match=match):
        FlowSettings(**kw)


def test_flow_settings_accept_the_defaults_of_unused_settings():
    import dataclasses

    fs = FlowSettings(divergence="exact", probes=1, period=4)        # the defaults: nothing is ignored
    assert dataclasses.replace(fs, steps=3).steps == 3
    assert FlowSettings(**FlowSettings(divergence="hutchinson", probes=3).to_dict()).probes == 3


@pytest.mark.parametrize("kw,match", [
    (dict(order="coarse_to_fine", block=2), r"order='coarse_to_fine' does not use block="),
    (dict(order="raster", block=2, levels=2), r"order='raster' does not use levels="),
    (dict(order="random"), r"order='random' needs block=B"),
    (dict(order="snake", block=2), r"unknown order 'snake'"),
    (dict(order="raster", block=5), r"order='raster' on the lattice \(4, 4\): block .* does not fit"),
    (dict(order="coarse_to_fine", levels=4), r"on the lattice \(4, 4\): coarse-to-fine with 4 levels"),
])
def test_sequential_refuses_settings_its_order_does_not_use(kw, match):
    from phi4si.model.generate import sequential

    model, _ = _model()
    with pytest.raises(ParameterError, match=match):
        sequential(model, 2, steps=2, **kw)


# ------------------------------------------------------------------------------------------------ windows
def test_window_indices_cut_and_paste_are_periodic_and_touch_only_the_block():
    from phi4si.model.window import cut, paste, window_indices, window_size

    phi = np.arange(2 * 6 * 5, dtype=float).reshape(2, 6, 5)
    rows, mask = window_indices((6, 5), (2, 1), np.array([[5, 4], [0, 0]]), (4, 3))
    win = cut(phi, rows)
    assert win.shape == (2, 4, 3) and np.argwhere(mask).tolist() == [[1, 1], [2, 1]]
    assert rows[0][0].tolist() == [4, 5, 0, 1] and rows[0][1].tolist() == [3, 4, 0]
    assert np.array_equal(paste(phi, win, rows, mask), phi)            # a round trip changes nothing
    new = paste(phi, win + 100.0, rows, mask)
    changed = np.argwhere(new != phi)
    assert changed.tolist() == [[0, 0, 4], [0, 5, 4], [1, 0, 0], [1, 1, 0]]   # the blocks, wrapped
    assert window_size(None, (2, 2), (8, 8)) is None and window_size(8, (2, 2), (8, 8)) is None
    assert window_size((6, 4), (2, 2), (8, 8)) == (6, 4)
    for bad in (3, 9, (6,), True):
        with pytest.raises(ParameterError, match="window"):
            window_size(bad, (2, 2), (8, 8))


def test_windowed_block_updates_keep_the_target_exactly_with_a_proposal_of_the_window():
    """Chains started from the exact 8x8 free field, updated by 2x2 blocks whose proposal is a
    (wrong-mass) Gaussian flow on a periodic 4x4 window: a valid MH kernel, so the law stays the
    target, while the same proposals always accepted shrink the field's variance."""
    from phi4si.model.window import cut, paste, window_indices

    L, C, T = 8, 64, 80
    target = Phi4Params((L, L), m2=M2, lam=0.0)
    cov = free_field_covariance((L, L), M2)
    rng = np.random.default_rng(5)
    start = rng.multivariate_normal(np.zeros(L * L), cov, size=C).reshape(C, L, L)
    win_model = DriftModel(GaussianOracle(np.zeros(16), free_field_covariance((4, 4), 2.5), (4, 4)),
                           Phi4Params((4, 4), m2=2.5, lam=0.0))
    fs = FlowSettings(steps=4, divergence="exact", batch_size=C)
    phi, raw, accs, var, var_raw = start, start, [], [], []
    for t in range(T):
        phi, acc, _ = block_update(win_model, phi, target, 2, rng, fs, window=4)
        rows, mask = window_indices((L, L), (2, 2), rng.integers(0, L, (C, 2)), (4, 4))
        raw = paste(raw, propose_block(win_model, cut(raw, rows), mask, fs, seed=t).phi, rows, mask)
        accs.append(acc.mean())
        if t >= 10:
            var.append((phi ** 2).mean(axis=(1, 2)))
            var_raw.append((raw ** 2).mean(axis=(1, 2)))
    assert 0.1 < np.mean(accs) < 0.95, np.mean(accs)       # the proposal is wrong, and corrected
    per, per_raw = np.mean(var, 0), np.mean(var_raw, 0)   # per chain: independent estimates
    err = per.std(ddof=1) / np.sqrt(C)
    assert abs(per.mean() - cov[0, 0]) < 4 * err, (per.mean(), cov[0, 0], err)
    assert per_raw.mean() < cov[0, 0] - 10 * err, (per_raw.mean(), cov[0, 0], err)
