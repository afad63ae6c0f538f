"""Posterior sampling with a prior model (phi4si.model.posterior): end to end with the Gaussian oracle as the
model (exact posterior mean and covariance for the free field under h and k < 0; posterior inpainting
and sequential generation; the start-point bias against its exact Gaussian formula), the CLI
``phi4si posterior`` and its refusals."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from phi4si import Phi4Params, open_ensemble
from phi4si.errors import ParameterError
from phi4si.model.generate import generate, inpaint, sequential
from phi4si.interpolant.integrate import solve
from phi4si.interpolant.oracle import free_field_oracle, gaussian_conditional
from phi4si.interpolant.paths import GenerationPath, StartAt
from phi4si.interpolant.rewards import PosteriorDrift, Reward
from phi4si.model import DriftModel
from phi4si.model.generate import sample_posterior
from phi4si.model.posterior import Posterior, posterior_drift

SHAPE, M2 = (4, 4), 0.5
V = 16


@pytest.fixture(scope="module")
def oracle_model():
    """The free field's exact drift dressed as a model, in normalised coordinates with mean 0.3 and
    scale 1.5 (so the reward mapping to the model's coordinates is exercised)."""
    orc = free_field_oracle(SHAPE, M2)
    return orc, DriftModel(orc, Phi4Params(SHAPE, m2=M2, lam=0.0), mean=0.3, scale=1.5)


def _exact(orc, h, k, mean=0.3, scale=1.5):
    """Exact physical posterior (mean, covariance) of phi = scale y + mean, y ~ N(0, C)."""
    C = scale**2 * orc.C.numpy()
    P = np.linalg.inv(C) - 2 * k * np.eye(V)
    Cp = np.linalg.inv(P)
    return Cp @ (np.linalg.solve(C, np.full(V, mean)) + h), Cp


def _check_moments(phi, mu, C, zmax=4.5):
    x = phi.reshape(len(phi), -1)
    n = len(x)
    se = np.sqrt(np.diag(C) / n)
    assert np.abs((x.mean(0) - mu) / se).max() < zmax, (x.mean(0), mu)
    Ce = np.cov(x.T)
    se_c = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / n)   # Gaussian standard error of the covariance
    assert np.abs((Ce - C) / se_c).max() < zmax + 0.5


@pytest.mark.parametrize("h,k", [(0.3, 0.0), (0.0, -0.4), (0.2, -0.25)])
def test_oracle_posterior_generation_matches_the_exact_posterior(oracle_model, h, k):
    orc, model = oracle_model
    phi = generate(model, 3000, steps=30, solver="rk4", seed=1, batch_size=1000,
                   posterior=Posterior(h=h, k=k, a0=0.99))
    _check_moments(phi, *_exact(orc, h, k))


def test_start_bias_is_the_gaussian_formula(oracle_model):
    """Started from x = a0 z + (1 - a0) m, the ODE (affine for a Gaussian target) maps the start mean
    to the final mean; per mode the exact flow gives mu - T (1 - a0)(mu - m), T = sqrt(c / (a0^2 +
    (1 - a0)^2 c)), c the mode's posterior variance.  For a uniform h only the zero mode moves."""
    orc, _ = oracle_model
    h = 0.2
    post = PosteriorDrift(orc, Reward(torch.tensor(0.0), torch.tensor(h)))
    c = 1.0 / (2 * M2)                                   # zero-mode variance of N(0, (2K)^-1)
    mu0 = h / (2 * M2)                                   # posterior mean per site
    for a0 in (0.5, 0.9, 0.99):
        d = 1 - a0
        T = math.sqrt(c / (a0**2 + d**2 * c))
        for m in (0.0, 0.5 * mu0):
            path = StartAt(GenerationPath(SHAPE), a0)
            x = solve(post, path, path.lift(torch.zeros(1, 1, *SHAPE, dtype=torch.float64), m), steps=200,
                      method="rk4")
            got = float(x.mean())
            assert got == pytest.approx(mu0 - T * d * (mu0 - m), rel=1e-7, abs=1e-10)


def test_pilot_start_removes_the_first_order_bias(oracle_model):
    orc, model = oracle_model
    mu, _ = _exact(orc, 0.4, 0.0)
    noise = generate(model, 2000, steps=20, solver="rk4", seed=3, batch_size=1000,
                     posterior=Posterior(h=0.4, a0=0.8, start="noise"))
    pilot = generate(model, 2000, steps=20, solver="rk4", seed=3, batch_size=1000,
                     posterior=Posterior(h=0.4, a0=0.8, start="pilot", pilot=2000))
    given = generate(model, 2000, steps=20, solver="rk4", seed=3, batch_size=1000,
                     posterior=Posterior(h=0.4, a0=0.8, start=float(mu.mean())))
    err = lambda p: abs(p.mean() - mu.mean())             # noqa: E731
    assert err(noise) > 5 * err(given) and err(pilot) < 0.3 * err(noise)


def test_pilot_samples_fix_the_start_variance_too(oracle_model):
    """A start mean alone leaves the zero mode's variance short by a0^2 / (a0^2 + (1 - a0)^2 c) (here
    -16%); drawing the start's data part from the pilot samples removes that to second order."""
    orc, model = oracle_model
    mu, C = _exact(orc, 0.3, 0.0)
    var_exact = C.sum() / V**2                     # variance of the lattice mean m
    a0 = 0.7
    kw = dict(steps=20, solver="rk4", seed=6, batch_size=1000)
    mean_only = generate(model, 3000, posterior=Posterior(h=0.3, a0=a0, start=float(mu.mean())), **kw)
    pilot = generate(model, 3000, posterior=Posterior(h=0.3, a0=a0, start="pilot", pilot=1000, rounds=1), **kw)
    c = C.sum() / V / 1.5**2                       # zero-mode variance in normalised units
    ratio = lambda p: p.reshape(len(p), -1).mean(1).var() / var_exact   # noqa: E731
    assert ratio(mean_only) == pytest.approx(a0**2 / (a0**2 + (1 - a0) ** 2 * c), abs=0.08)
    assert abs(ratio(pilot) - 1) < 0.08
    # mean: the pilot (from noise) is off by T (1 - a0) (mu - 0.3) in the zero mode, the main run by the square
    Td = (1 - a0) / math.sqrt(a0**2 + (1 - a0) ** 2 * c)
    assert pilot.mean() == pytest.approx(0.3 + (mu.mean() - 0.3) * (1 - Td**2), abs=0.03)
    # each further pilot round multiplies the error by T (1 - a0) again
    three = generate(model, 3000, posterior=Posterior(h=0.3, a0=a0, start="pilot", pilot=1000, rounds=3), **kw)
    assert three.mean() == pytest.approx(0.3 + (mu.mean() - 0.3) * (1 - Td**4), abs=0.03)


def test_oracle_posterior_inpainting_is_the_exact_conditional(oracle_model):
    orc, model = oracle_model
    h, k = 0.3, -0.3
    mu, C = _exact(orc, h, k)
    unknown = np.zeros(SHAPE, bool)
    unknown[1:3, 1:4] = True
    x_obs = np.random.default_rng(0).normal(size=V) + 0.3
    data = np.tile(x_obs.reshape(SHAPE), (3000, 1, 1))
    phi = inpaint(model, data, unknown, steps=30, solver="rk4", seed=2, batch_size=1000,
                  posterior=Posterior(h=h, k=k, a0=0.99))
    assert np.array_equal(phi[:, ~unknown], data[:, ~unknown])
    cm, cc = gaussian_conditional(mu, C, ~unknown.ravel(), x_obs[~unknown.ravel()])
    _check_moments(phi[:, unknown], cm, cc)


def test_oracle_posterior_sequential_generation(oracle_model):
    orc, model = oracle_model
    phi = sequential(model, 3000, order="random", block=2, steps=15, solver="rk4", seed=4, batch_size=1000,
                     posterior=Posterior(h=0.3, k=-0.2, a0=0.99))
    _check_moments(phi, *_exact(orc, 0.3, -0.2))


def test_positive_k_starts_below_the_feasibility_bound(oracle_model):
    orc, model = oracle_model
    post = Posterior(k=0.1)
    bound = 1 / (1 + math.sqrt(2 * 0.1 * 1.5**2))
    assert post.start_time(model) == pytest.approx(bound - 1e-3)
    with pytest.raises(ParameterError, match="exists only for a <="):
        Posterior(k=0.1, a0=0.9).start_time(model)
    # far from the noise end the start approximation is poor: with start="noise" the final mean is off by
    # exactly T (1 - a0) mu in the zero mode (Gaussian formula above, normalised units), here ~ 2/3 of mu
    a0 = post.start_time(model)
    phi = sample_posterior(model, 4000, k=0.1, h=0.1, start="noise", steps=30, solver="rk4", seed=5, batch_size=1000)
    mu, C = _exact(orc, 0.1, 0.1)
    mu_y, c = (mu.mean() - 0.3) / 1.5, C.sum() / V / 1.5**2
    T = math.sqrt(c / (a0**2 + (1 - a0) ** 2 * c))
    se = math.sqrt(C.sum() / V**2 / 4000)
    assert abs(phi.mean() - (0.3 + 1.5 * mu_y * (1 - T * (1 - a0)))) < 4 * se
    assert T * (1 - a0) > 0.5


def test_posterior_drift_of_a_model_maps_the_reward(oracle_model):
    orc, model = oracle_model
    d = posterior_drift(model, h=0.2, k=-0.1)
    r = d.reward
    assert float(r.A) == pytest.approx(1.5**2 * -0.2) and float(r.b) == pytest.approx(1.5 * (-0.2 * 0.3 + 0.2))


@pytest.mark.parametrize("kw,match", [
    (dict(h=float("nan")), "h must be a finite"), (dict(k=float("inf")), "k must be a finite"),
    (dict(h=0.1, a0=1.0), "a0 must be in"), (dict(h=0.1, a0=0.0), "a0 must be in"),
    (dict(h=0.1, start="middle"), "start must be one of"), (dict(h=0.1, start=float("nan")), "start mean must be"),
    (dict(h=0.1, pilot=1), "pilot run size"), (dict(h=0.1, rounds=0), "pilot rounds"),
])
def test_bad_posterior_settings_are_refused(kw, match):
    with pytest.raises(ParameterError, match=match):
        Posterior(**kw)


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny trained model and its training ensemble (4x4 free field)."""
    from phi4si.cli import main
    from phi4si.mcmc.run import sample_mcmc

    d = tmp_path_factory.mktemp("post_cli")
    ens = d / "free.h5"
    sample_mcmc(Phi4Params(SHAPE, m2=1.0, lam=0.0), ens, chains=2, n_traj=100, n_therm=20, seed=5, progress=False)
    out = d / "tiny.pt"
    assert main(["train", "--data", str(ens), "--out", str(out), "--steps", "20", "--model", "tiny", "--batch-size",
                 "16", "--warmup", "5", "--threads", "1", "--no-progress"]) == 0
    return out, ens


def test_cli_posterior_generate_and_inpaint(cli, tiny, tmp_path):
    model, ens = tiny
    out = tmp_path / "post.h5"
    rc, _, err = cli("posterior", "--model", model, "--h", "0.2", "--k", "-0.1", "--n", "12", "--out", out,
                     "--steps", "3", "--pilot", "4", "--no-progress")
    assert rc == 0, err
    with open_ensemble(out) as ds:
        attrs = dict(ds.attrs)
        assert ds["phi"].shape[1] == 12 and np.isfinite(ds["phi"].values).all()
    assert attrs["params"]["h"] == 0.2 and attrs["params"]["k"] == -0.1
    assert attrs["sampler"]["posterior"]["a0"] == 0.999 and attrs["sampler"]["posterior"]["start"] == "pilot"   # k < 0
    assert attrs["run"]["command"].startswith("phi4si posterior")
    out2 = tmp_path / "post_inp.h5"
    rc, _, err = cli("posterior", "--model", model, "--h", "0.2", "--data", ens, "--mask", "block:2x2@1,1",
                     "--n", "5", "--out", out2, "--steps", "3", "--start", "noise", "--a0", "0.95", "--no-progress")
    assert rc == 0, err
    with open_ensemble(out2) as ds:
        assert ds["phi"].shape[1] == 5 and ds.attrs["sampler"]["task"] == "inpaint"
        assert ds.attrs["sampler"]["posterior"]["a0"] == 0.95
    # the same flags on generate (sequential posterior generation)
    out3 = tmp_path / "post_seq.h5"
    rc, _, err = cli("generate", "--model", model, "--h", "0.1", "--n", "4", "--out", out3, "--order", "raster",
                     "--block", "2", "--steps", "2", "--start", "0.05", "--no-progress")
    assert rc == 0, err


@pytest.mark.parametrize("args,match", [
    ((), "give a reward"),
    (("--a0", "0.9"), "need a reward"),
    (("--h", "0.1", "--a0", "1.5"), "a0 must be in"),
    (("--h", "0.1", "--start", "sideways"), "pilot, noise or a number"),
    (("--h", "0.1", "--start", "noise", "--pilot", "8"), "--pilot applies to --start pilot"),
    (("--h", "0.1", "--pilot", "1"), "pilot run size"),
    (("--h", "0.1", "--pilot-rounds", "0"), "pilot rounds must be"),
    (("--h", "0.1", "--start", "0.2", "--pilot-rounds", "2"), "--pilot-rounds applies to --start pilot"),
    (("--pilot-rounds", "2"), "--pilot-rounds need a reward"),
    (("--k", "0.2", "--a0", "0.95"), "exists only for a <="),
    (("--h", "0.1", "--mask", "block:2x2@0,0"), "--mask needs --data"),
    (("--h", "0.1", "--data", "DATA"), "--data needs --mask"),
    (("--h", "nan"), "must be finite"),
])
def test_cli_posterior_refusals_keep_existing_output(cli, tiny, tmp_path, args, match):
    model, ens = tiny
    victim = tmp_path / "keep.h5"
    victim.write_bytes(b"precious")
    args = tuple(str(ens) if a == "DATA" else a for a in args)
    n = () if "--data" in args else ("--n", "3")
    rc, _, err = cli("posterior", "--model", model, *n, "--out", victim, "--overwrite", *args, "--steps", "2",
                     "--no-progress")
    assert rc != 0 and "Traceback" not in err and re.search(match, err), err
    assert victim.read_bytes() == b"precious"


# ------------------------------------------------------------------------ posterior proposals, exact
def _affine_map(drift, path, shape):
    """The ODE map X(1) = M X(0) + c of an affine drift (Gaussian oracle), by pushing basis vectors."""
    n = int(np.prod(shape))
    zero = torch.zeros(1, 1, *shape, dtype=torch.float64)
    c = solve(drift, path, zero, steps=60, method="rk4").reshape(n)
    E = torch.eye(n, dtype=torch.float64).reshape(n, 1, *shape)
    M = (solve(drift, path, E, steps=60, method="rk4").reshape(n, n) - c).T
    return M.numpy(), c.numpy()


def test_posterior_proposal_log_q_is_the_exact_density_of_its_law(oracle_model):
    """Start N((1 - a0) m, a0^2) at a0, affine flow: the proposal law is Gaussian, known exactly."""
    from phi4si.model import density
    from phi4si.model.density import FlowSettings

    _, model = oracle_model
    post = Posterior(h=0.3, k=-0.2, a0=0.8, start=0.6)
    fs = FlowSettings(steps=60, solver="rk4", divergence="exact", float64=True, batch_size=32)
    prop = density.sample(model, 32, fs, seed=1, posterior=post)
    drift, path, mean = density._generation(model, SHAPE, post)
    M, c = _affine_map(drift, path, SHAPE)
    mu_y = M @ np.full(V, (1 - 0.8) * mean) + c
    Cy = 0.64 * M @ M.T
    y = (prop.phi.reshape(32, V) - 0.3) / 1.5
    r = y - mu_y
    exact = (-0.5 * np.einsum("ni,ij,nj->n", r, np.linalg.inv(Cy), r) - 0.5 * np.linalg.slogdet(2 * np.pi * Cy)[1]
             - V * math.log(1.5))
    assert np.allclose(prop.log_q, exact, atol=1e-6)
    back, _ = density.log_prob(model, prop.phi, fs, posterior=post)       # reverse flow, same density
    assert np.allclose(back, prop.log_q, atol=1e-6)
    with pytest.raises(ParameterError, match="fixed start mean"):
        density.sample(model, 2, fs, posterior=Posterior(h=0.3))


def test_posterior_proposal_raises_the_ess_and_stays_exact(oracle_model, tmp_path):
    """Strong field: prior proposals have a poor ESS, posterior proposals a good one; both weighted
    means are the exact posterior mean (the weights correct the start approximation)."""
    from phi4si.analysis.report import analyze_file
    from phi4si.model.density import FlowSettings
    from phi4si.model.exact import sample_neural

    orc, _ = oracle_model
    model = DriftModel(orc, Phi4Params(SHAPE, m2=M2, lam=0.0))      # the model's law is the target's prior
    h = 0.3                                      # posterior <m> 1.7 prior standard deviations away
    fs = FlowSettings(steps=8, solver="rk4", divergence="exact", batch_size=400)
    mu, _ = _exact(orc, h, 0.0, mean=0.0, scale=1.0)
    res = {}
    for name, prop in (("prior", None), ("posterior", Posterior(h=h, a0=0.9))):
        out = tmp_path / f"{name}.h5"
        summary = sample_neural(model, "reweight", out, 500, h=h, fs=fs, seed=2, posterior=prop)
        r = analyze_file(out)
        res[name] = (summary, r)
        assert abs(r["m"]["value"] - mu.mean()) < 4 * r["m"]["error"] + 1e-3, (name, r["m"], mu.mean())
    assert res["posterior"][1]["ess_fraction"] > 0.9 > 2 * res["prior"][1]["ess_fraction"]
    with open_ensemble(tmp_path / "posterior.h5") as ds:
        assert ds.attrs["sampler"]["proposal"]["a0"] == 0.9
        assert isinstance(ds.attrs["sampler"]["proposal"]["start"], float)
    with pytest.raises(ParameterError, match="reweight and imh"):
        sample_neural(model, "block", tmp_path / "b.h5", 2, h=h, fs=fs, posterior=Posterior(h=h))


def test_cli_sample_neural_posterior_proposal(cli, tiny, tmp_path):
    model, _ = tiny
    out = tmp_path / "rw.h5"
    rc, _, err = cli("sample-neural", "--model", model, "--method", "imh", "--n", "4", "--chains", "2", "--out", out,
                     "--h", "0.2", "--proposal", "posterior", "--a0", "0.95", "--start", "noise", "--steps", "2",
                     "--divergence", "exact", "--no-progress")
    assert rc == 0, err
    with open_ensemble(out) as ds:
        assert ds.attrs["sampler"]["proposal"]["a0"] == 0.95 and ds["m"].shape == (2, 4)


@pytest.mark.parametrize("args,match", [
    (("--method", "reweight", "--proposal", "posterior"), "needs a reward"),
    (("--method", "block", "--proposal", "posterior", "--h", "0.1"), "reweight or imh only"),
    (("--method", "reweight", "--a0", "0.9", "--h", "0.1"), "--a0 applies to --proposal posterior"),
    (("--method", "reweight", "--start", "noise"), "--start applies to --proposal posterior"),
    (("--method", "imh", "--pilot-rounds", "3"), "--pilot-rounds applies to --proposal posterior"),
    (("--method", "reweight", "--proposal", "posterior", "--h", "0.1", "--start", "noise", "--pilot", "9"),
     "--pilot applies to --start pilot"),
    (("--method", "reweight", "--proposal", "posterior", "--h", "0.1", "--a0", "2"), "a0 must be in"),
    (("--method", "reweight", "--proposal", "posterior", "--h", "0.1", "--shape", "8", "8"),
     "posterior proposals run on the model's lattice"),
])
def test_cli_sample_neural_proposal_refusals(cli, tiny, tmp_path, args, match):
    model, _ = tiny
    victim = tmp_path / "keep.h5"
    victim.write_bytes(b"precious")
    rc, _, err = cli("sample-neural", "--model", model, "--n", "2", "--out", victim, "--overwrite", *args,
                     "--no-progress")
    assert rc != 0 and "Traceback" not in err and re.search(match, err), err
    assert victim.read_bytes() == b"precious"


def test_default_start_time_sits_next_to_the_noise_end_for_a_negative_k():
    """k < 0: no singularity at a = 1, a0 = 0.999 by default; the transform is finite there even with
    a field h, and the Gaussian oracle's posterior zero mode comes out right from a noise start."""
    from phi4si.interpolant.oracle import GaussianOracle, free_field_covariance
    from phi4si.model.posterior import DEFAULT_A0, DEFAULT_A0_NEGATIVE_K

    C = free_field_covariance((4, 4), 0.005)            # a soft zero mode, as near a transition
    model = DriftModel(GaussianOracle(np.zeros(16), C, (4, 4)), Phi4Params((4, 4), m2=0.005, lam=0.0))
    assert Posterior(k=-0.2).start_time(model) == DEFAULT_A0_NEGATIVE_K == 0.999
    assert Posterior(h=0.1, k=-0.2).start_time(model) == 0.999
    assert Posterior(h=0.001).start_time(model) == Posterior(k=0.0).start_time(model) == DEFAULT_A0
    k = -0.01                                         # posterior zero mode: variance 1/(m2 - 2k) = 40 per mode
    Ck = np.linalg.inv(np.linalg.inv(C) - 2 * k * np.eye(16))
    exact = Ck.sum() / 256                            # variance of the magnetisation under the posterior
    for a0, tol in ((None, 0.08), (0.9, None)):
        phi = sample_posterior(model, 4000, k=k, a0=a0, start="noise", steps=24, solver="rk4", seed=2)
        var = float(phi.reshape(len(phi), -1).mean(1).var())
        if tol is not None:
            assert abs(var / exact - 1) < tol, (a0, var, exact)
        else:                                            # the old default start loses part of the zero mode
            assert var / exact - 1 < -0.15, (a0, var, exact)


def test_default_start_time_of_a_field_keeps_the_reach_bounded():
    """k >= 0: a0 = DEFAULT_A0 while the reach stays <= REACH_TARGET, else lowered to where it is
    REACH_TARGET, never below A0_FLOOR; a given a0 is kept."""
    from phi4si.interpolant.oracle import free_field_oracle
    from phi4si.model.posterior import A0_FLOOR, DEFAULT_A0, REACH_TARGET

    model = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
    small, mid, big = Posterior(h=0.01), Posterior(h=0.03), Posterior(h=0.2)
    assert small.start_time(model) == DEFAULT_A0 and small.reach(model, DEFAULT_A0) <= REACH_TARGET
    a0 = mid.start_time(model)
    assert A0_FLOOR < a0 < DEFAULT_A0 and abs(mid.reach(model, a0) - REACH_TARGET) < 1e-6
    assert big.start_time(model) == A0_FLOOR
    assert Posterior(h=0.2, a0=0.97).start_time(model) == 0.97
