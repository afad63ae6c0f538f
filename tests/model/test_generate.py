"""Tasks with a model (phi4si.model.generate): generate, inpaint and sequential with the exact free-field
drift (the Gaussian oracle dressed as a model, so the tasks sample the free field exactly up to the
integration error), their refusals, parse_mask's grammar and write_samples' ensemble files.

The judge is numpy: the free-field covariance C = (2K)^-1 (scaled to physical units), its Gaussian
conditional for inpainting, Var(m) = sum C / V^2 for every generation order.  Moments are compared
within 5 standard errors.
"""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest

from phi4si import Phi4Params, open_ensemble
from phi4si.errors import CheckpointError, OutputExistsError, ParameterError
from phi4si.interpolant.oracle import free_field_covariance, free_field_oracle
from phi4si.lattice import free_magnetisation_variance, free_propagator, power_spectrum
from phi4si.model import DriftModel
from phi4si.model.generate import generate, inpaint, parse_mask, sequential, write_samples

SHAPE, M2 = (4, 4), 0.5
V = 16
MEAN, SCALE = 0.3, 1.5
N = 6000            # samples of the statistical checks
ZMAX = 5.0


@pytest.fixture(scope="module")
def params():
    return Phi4Params(SHAPE, m2=M2, lam=0.0)


@pytest.fixture(scope="module")
def model(params):
    """Free field N(0, C) in normalised coordinates; physical phi = 1.5 x + 0.3."""
    return DriftModel(free_field_oracle(SHAPE, M2), params, mean=MEAN, scale=SCALE)


@pytest.fixture(scope="module")
def cov():
    """Physical covariance of the model's field."""
    return SCALE**2 * free_field_covariance(SHAPE, M2)


def _check_mean_and_variance(x, mu, C, zmax=ZMAX):
    """Sample mean and variance of the columns of x (n, k) against N(mu, C): within zmax standard errors."""
    n = len(x)
    var = np.diag(C)
    z_mean = (x.mean(0) - mu) / np.sqrt(var / n)
    z_var = (x.var(0, ddof=1) - var) / (var * math.sqrt(2.0 / (n - 1)))
    assert np.abs(z_mean).max() < zmax, z_mean
    assert np.abs(z_var).max() < zmax, z_var


def _check_power_spectrum(phi, zmax=ZMAX):
    """Per Fourier mode, <|phi~ - mean|^2>/V against the free propagator (chi^2_1 for p = -p, Exp otherwise)."""
    n = len(phi)
    G = SCALE**2 * free_propagator(SHAPE, M2)
    idx = np.indices(SHAPE)
    real = np.all((2 * idx) % np.array(SHAPE).reshape(-1, 1, 1) == 0, axis=0)
    z = (power_spectrum(phi - MEAN, 2).mean(0) - G) / (G * np.where(real, math.sqrt(2.0), 1.0) / math.sqrt(n))
    assert np.abs(z).max() < zmax, z


def _check_var_m(phi, zmax=ZMAX):
    n = len(phi)
    m = phi.reshape(n, -1).mean(1)
    exact = SCALE**2 * free_magnetisation_variance(SHAPE, M2)
    assert exact == pytest.approx(SCALE**2 * free_field_covariance(SHAPE, M2).sum() / V**2, rel=1e-12)
    assert abs(m.var(ddof=1) - exact) < zmax * exact * math.sqrt(2.0 / (n - 1)), (m.var(ddof=1), exact)
    assert abs(m.mean() - MEAN) < zmax * math.sqrt(exact / n)


# ------------------------------------------------------------------------------------------------ generate
def test_generate_shape_type_and_seeds(model):
    a = generate(model, 5, steps=6, seed=1)
    assert a.shape == (5, *SHAPE) and a.dtype == np.float64 and np.isfinite(a).all()
    assert np.array_equal(a, generate(model, 5, shape=SHAPE, steps=6, seed=1))
    assert not np.isclose(a, generate(model, 5, steps=6, seed=2)).any()
    # another solver: the same law, other numbers; another batch split: the same noise (4x4, see
    # test_solve.py), so the same samples up to the rounding of batched linear algebra
    assert not np.allclose(a, generate(model, 5, steps=6, seed=1, solver="rk4"))
    np.testing.assert_allclose(generate(model, 5, steps=6, seed=1, batch_size=2), a, rtol=0, atol=1e-12)


def test_generate_samples_the_free_field(model):
    phi = generate(model, N, steps=20, solver="rk4", seed=3, batch_size=N)
    _check_power_spectrum(phi)
    _check_var_m(phi)


@pytest.mark.parametrize("kw,err,match", [
    (dict(n=0), ParameterError, "n must be >= 1, got 0"),
    (dict(n=-1), ParameterError, "n must be >= 1"),
    (dict(shape=(8, 8)), CheckpointError, "defined on the lattice"),
    (dict(shape=(4, 4, 4)), CheckpointError, "defined on the lattice"),
    (dict(steps=0), ParameterError, "steps must be >= 1"),
    (dict(solver="midpoint"), ParameterError, "unknown solver"),
    (dict(sde=-1.0), ParameterError, "sde diffusion"),
    (dict(seed=-1), ParameterError, "seed must be"),
    (dict(batch_size=0), ParameterError, "batch_size must be"),
    (dict(grid_power=0.0), ParameterError, "grid_power must be"),
])
def test_generate_refuses(model, kw, err, match):
    kw = {"n": 3, **kw}
    with pytest.raises(err, match=match):
        generate(model, kw.pop("n"), **kw)


# ------------------------------------------------------------------------------------------------ inpaint
def _unknown():
    u = np.zeros(SHAPE, bool)
    u[1:3, 1:4] = True          # 6 unknown sites, 10 observed
    return u


def test_inpaint_keeps_observed_sites_bit_for_bit(model):
    rng = np.random.default_rng(0)
    data = rng.normal(MEAN, SCALE, size=(7, *SHAPE)) * (1 + 1e-9)      # values float32 cannot hold
    u = _unknown()
    out = inpaint(model, data, u, steps=5, seed=4, batch_size=3)
    assert out.shape == data.shape and out.dtype == np.float64
    assert np.array_equal(out[:, ~u], data[:, ~u])
    assert not np.isclose(out[:, u], data[:, u]).any()
    assert np.array_equal(out, inpaint(model, data, u, steps=5, seed=4, batch_size=3))
    assert not np.isclose(out[:, u], inpaint(model, data, u, steps=5, seed=5, batch_size=3)[:, u]).any()
    # a 0/1 mask is the same mask
    assert np.array_equal(out, inpaint(model, data, u.astype(int), steps=5, seed=4, batch_size=3))


def test_inpaint_is_the_exact_gaussian_conditional(model, cov):
    u = _unknown().ravel()
    o = ~u
    x_obs = np.random.default_rng(1).multivariate_normal(np.full(V, MEAN), cov)
    data = np.tile(x_obs.reshape(SHAPE), (N, 1, 1))
    out = inpaint(model, data, u.reshape(SHAPE), steps=20, solver="rk4", seed=2, batch_size=N)
    # exact law of phi_U | phi_O = x_O for N(MEAN, cov), with numpy
    K = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, u)]).T
    mu = MEAN + K @ (x_obs[o] - MEAN)
    C = cov[np.ix_(u, u)] - K @ cov[np.ix_(o, u)]
    got = out.reshape(N, V)[:, u]
    _check_mean_and_variance(got, mu, C)
    # the conditional variance is far below the prior's: a test that can tell them apart
    assert (np.diag(C) < 0.8 * np.diag(cov)[u]).all()
    se_c = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / N)
    assert np.abs((np.cov(got.T) - C) / se_c).max() < ZMAX + 0.5


@pytest.mark.parametrize("case,err,match", [
    ("no data", ParameterError, "n must be >= 1, got 0"),
    ("mask 3x3", ParameterError, r"mask shape \(3, 3\) does not match"),
    ("mask 4x4x1", ParameterError, "mask shape"),
    ("nan", ParameterError, "contain NaN or inf"),
    ("inf", ParameterError, "contain NaN or inf"),
    ("lattice 8x8", CheckpointError, "defined on the lattice"),
    ("steps 0", ParameterError, "steps must be >= 1"),
    ("empty mask", ParameterError, "no unknown site"),
])
def test_inpaint_refuses(model, case, err, match):
    data, u, kw = np.zeros((3, *SHAPE)), _unknown(), {}
    if case == "no data":
        data = np.zeros((0, *SHAPE))
    elif case == "mask 3x3":
        u = np.ones((3, 3), bool)
    elif case == "mask 4x4x1":
        u = np.ones((4, 4, 1), bool)
    elif case == "nan":
        data[1, 0, 0] = np.nan
    elif case == "inf":
        data[2, 3, 3] = -np.inf
    elif case == "lattice 8x8":
        data, u = np.zeros((3, 8, 8)), np.ones((8, 8), bool)
    elif case == "steps 0":
        kw = {"steps": 0}
    elif case == "empty mask":
        u = np.zeros(SHAPE, bool)
    with pytest.raises(err, match=match):
        inpaint(model, data, u, **{"steps": 2, **kw})


# ------------------------------------------------------------------------------------------------ sequential
ORDERS = [dict(order="raster", block=2), dict(order="reverse", block=(1, 4)), dict(order="random", block=2),
          dict(order="coarse_to_fine", levels=3), dict(order="coarse_to_fine")]


@pytest.mark.parametrize("kw", ORDERS, ids=lambda kw: kw["order"])
def test_sequential_samples_the_free_field_in_every_order(model, kw):
    phi = sequential(model, N, steps=10, solver="rk4", seed=6, batch_size=N, **kw)
    assert phi.shape == (N, *SHAPE)
    _check_var_m(phi)
    _check_power_spectrum(phi)


def test_sequential_seeds(model):
    kw = dict(order="random", block=2, steps=4)
    a = sequential(model, 4, seed=1, **kw)
    assert np.array_equal(a, sequential(model, 4, seed=1, **kw))
    assert np.array_equal(a, sequential(model, 4, seed=1, order_seed=1, **kw))   # the order's seed defaults to seed
    assert not np.isclose(a, sequential(model, 4, seed=2, **kw)).any()
    # another order with the same noise: other samples
    assert not np.allclose(a, sequential(model, 4, seed=1, order_seed=2, **kw))


def test_sequential_inpainting_keeps_observed_sites_and_samples_the_conditional(model, cov):
    obs = ~_unknown()
    x_obs = np.random.default_rng(3).multivariate_normal(np.full(V, MEAN), cov)
    data = np.tile(x_obs.reshape(SHAPE), (N, 1, 1)) * (1 + 1e-9)
    out = sequential(model, None, order="raster", block=2, steps=10, solver="rk4", seed=8, batch_size=N,
                     data=data, observed=obs)
    assert out.shape == data.shape
    assert np.array_equal(out[:, obs], data[:, obs])
    o, u = obs.ravel(), ~obs.ravel()
    K = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, u)]).T
    _check_mean_and_variance(out.reshape(N, V)[:, u], MEAN + K @ (data[0].ravel()[o] - MEAN),
                             cov[np.ix_(u, u)] - K @ cov[np.ix_(o, u)])


@pytest.mark.parametrize("kw,err,match", [
    (dict(n=0), ParameterError, "n must be >= 1"),
    (dict(data=np.zeros((0, *SHAPE))), ParameterError, "n must be >= 1"),
    (dict(observed=np.eye(4, dtype=bool)), ParameterError, "observed sites need the data"),
    (dict(shape=(8, 8)), CheckpointError, "defined on the lattice"),
    (dict(data=np.zeros((3, 2, 2))), CheckpointError, "defined on the lattice"),
    (dict(steps=0), ParameterError, "steps must be >= 1"),
    (dict(solver="leapfrog"), ParameterError, "unknown solver"),
    (dict(order="zigzag"), ParameterError, "unknown order 'zigzag'"),
    (dict(order="Raster"), ParameterError, "unknown order"),
    (dict(block=None), ParameterError, "needs block"),
    (dict(block=5), ParameterError, "does not fit"),
    (dict(block=0), ParameterError, "does not fit"),
    (dict(block=(2, 2, 2)), ParameterError, "does not fit"),
    (dict(levels=2), ParameterError, "does not use levels"),
    (dict(order="coarse_to_fine"), ParameterError, "does not use block"),
    (dict(order="coarse_to_fine", block=None, levels=4), ParameterError, "divisible by 8"),
    (dict(order="coarse_to_fine", block=None, levels=0), ParameterError, "coarse-to-fine with 0 levels"),
    (dict(data=np.zeros((3, *SHAPE)), observed=np.ones((3, 3), bool)), ParameterError, "mask has shape"),
    (dict(data=np.zeros((3, *SHAPE)), observed=np.ones(SHAPE, bool)), ParameterError, "no unknown site"),
    (dict(data=np.full((3, *SHAPE), np.nan), observed=np.eye(4, dtype=bool)), ParameterError, "NaN or inf"),
    (dict(data=np.full((3, *SHAPE), np.inf)), ParameterError, "NaN or inf"),
])
def test_sequential_refuses(model, kw, err, match):
    kw = {"n": 3, "order": "raster", "block": 2, "steps": 2, **kw}
    with pytest.raises(err, match=match):
        sequential(model, kw.pop("n"), **kw)


# ------------------------------------------------------------------------------------------------ parse_mask
def _sites(mask):
    return sorted(map(tuple, np.argwhere(mask).tolist()))


def test_parse_mask_block():
    m = parse_mask("block:2x3@1,0", (4, 4))
    assert m.dtype == bool and m.shape == (4, 4)
    assert _sites(m) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    # periodic wrap around both axes
    assert _sites(parse_mask("block:2x2@3,3", (4, 4))) == [(0, 0), (0, 3), (3, 0), (3, 3)]
    assert _sites(parse_mask("block:3@4", (6,))) == [(0,), (4,), (5,)]
    assert parse_mask("block:4x4@2,1", (4, 4)).all()
    assert parse_mask("block:2x1x2@0,1,1", (3, 3, 3)).sum() == 4
    assert _sites(parse_mask("block:1x1@0,5", (4, 8))) == [(0, 5)]


def test_parse_mask_random():
    a = parse_mask("random:0.3", (64, 64), seed=4)
    assert a.dtype == bool and a.shape == (64, 64)
    assert np.array_equal(a, parse_mask("random:0.3", (64, 64), seed=4))
    assert not np.array_equal(a, parse_mask("random:0.3", (64, 64), seed=5))
    f = a.mean()
    assert abs(f - 0.3) < 5 * math.sqrt(0.3 * 0.7 / a.size)
    assert parse_mask("random:1", (4, 4)).all()
    assert parse_mask("random:5e-1", (4, 4), seed=1).any()


def test_parse_mask_npy(tmp_path):
    want = np.zeros((4, 4), bool)
    want[0, 1] = want[3, 2] = True
    for name, arr in [("bool.npy", want), ("int.npy", want.astype(np.int64)), ("float.npy", want.astype(float))]:
        p = tmp_path / name
        np.save(p, arr)
        got = parse_mask(str(p), (4, 4))
        assert got.dtype == bool and np.array_equal(got, want)


@pytest.mark.parametrize("spec,match", [
    ("block:2x2@0", "give 2 sizes and 2 coordinates"),
    ("block:2@0,0", "give 2 sizes and 2 coordinates"),
    ("block:2x2x2@0,0,0", "give 2 sizes and 2 coordinates"),
    ("block:0x2@0,0", "does not fit"),
    ("block:5x2@0,0", "does not fit"),
    ("block:2x2@4,0", "does not fit"),
    ("block:2x2", "cannot parse mask"),
    ("block:2x2@-1,0", "cannot parse mask"),
    ("block:2.5x2@0,0", "cannot parse mask"),
    ("random:0", r"must be in \(0, 1\]"),
    ("random:1.5", r"must be in \(0, 1\]"),
    ("random:-0.2", r"must be in \(0, 1\]"),
    ("random:1e", "fraction"),
    ("random:nan", "cannot parse mask"),
    ("random:1e-9", "selected no site"),
    ("random:", "cannot parse mask"),
    ("square:2", "cannot parse mask"),
    ("", "cannot parse mask"),
])
def test_parse_mask_refuses(spec, match):
    with pytest.raises(ParameterError, match=match):
        parse_mask(spec, (4, 4))


@pytest.mark.parametrize("kind,match", [
    ("missing", "does not exist"),
    ("text", "not a readable .npy array"),
    ("pickle", "not a readable .npy array"),
    ("shape", r"has shape \(4, 5\), the lattice is \(4, 4\)"),
    ("values", "must hold booleans or 0/1"),
    ("nan", "must hold booleans or 0/1"),
    ("empty", "marks no site as unknown"),
])
def test_parse_mask_refuses_bad_files(tmp_path, kind, match):
    p = tmp_path / f"{kind}.npy"
    if kind == "text":
        p.write_text("not numpy\n")
    elif kind == "pickle":
        np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "shape":
        np.save(p, np.ones((4, 5), bool))
    elif kind == "values":
        np.save(p, np.full((4, 4), 2))
    elif kind == "nan":
        np.save(p, np.full((4, 4), np.nan))
    elif kind == "empty":
        np.save(p, np.zeros((4, 4), bool))
    with pytest.raises(ParameterError, match=match):
        parse_mask(str(p), (4, 4))


# ------------------------------------------------------------------------------------------------ write_samples
SAMPLER = {"sampler": "interpolant", "exact": False, "task": "generate"}


def _phi(n=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *SHAPE))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_write_samples_round_trip(tmp_path, params, dtype):
    phi = _phi()
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    out = write_samples(str(tmp_path / "g.h5"), phi, params, SAMPLER, {"command": "test", "wall_time": 1.5},
                        dtype=dtype)
    after = datetime.datetime.now(datetime.timezone.utc)
    assert out == tmp_path / "g.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]        # no temporary file left
    with open_ensemble(out, load=True) as ds:
        assert ds.phi.shape == (1, 6, *SHAPE) and ds.phi.dtype == np.dtype(dtype)
        assert np.array_equal(ds.phi.values[0], phi.astype(dtype))
        assert ds.m.shape == (1, 6)
        assert np.allclose(ds.m.values[0], phi.astype(dtype).reshape(6, -1).mean(1), rtol=0, atol=1e-6)
        assert (ds.accepted.values == 1).all() and (ds.dH.values == 0).all()
        a = ds.attrs
    assert a["n_done"] == 6 and a["params"] == params.to_dict() and a["sampler"] == SAMPLER
    run = a["run"]
    assert run["command"] == "test" and run["wall_time"] == 1.5 and "version" in run
    assert run["date"].endswith("+00:00")
    date = datetime.datetime.fromisoformat(run["date"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert before <= date <= after


def test_write_samples_refuses_an_existing_file(tmp_path, params):
    out = write_samples(tmp_path / "g.h5", _phi(seed=1), params, SAMPLER, {})
    old = out.read_bytes()
    with pytest.raises(OutputExistsError, match="exists"):
        write_samples(out, _phi(seed=2), params, SAMPLER, {})
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]
    # with overwrite the file is replaced
    write_samples(out, _phi(4, seed=2), params, SAMPLER, {}, overwrite=True)
    with open_ensemble(out, load=True) as ds:
        assert np.array_equal(ds.phi.values[0], _phi(4, seed=2).astype(np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_write_samples_refuses_non_finite_input(tmp_path, params, bad):
    phi = _phi()
    phi[3, 1, 2] = bad
    with pytest.raises(ParameterError, match="NaN or inf; nothing written"):
        write_samples(tmp_path / "g.h5", phi, params, SAMPLER, {})
    assert list(tmp_path.iterdir()) == []
    # nor is an existing file touched, even with overwrite
    out = write_samples(tmp_path / "old.h5", _phi(), params, SAMPLER, {})
    old = out.read_bytes()
    with pytest.raises(ParameterError, match="nothing written"):
        write_samples(out, phi, params, SAMPLER, {}, overwrite=True)
    assert out.read_bytes() == old


def test_write_samples_refuses_a_missing_folder(tmp_path, params):
    with pytest.raises(ParameterError, match="does not exist"):
        write_samples(tmp_path / "nope" / "g.h5", _phi(), params, SAMPLER, {})
    assert list(tmp_path.iterdir()) == []
