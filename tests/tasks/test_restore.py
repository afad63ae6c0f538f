"""The corruption family (THEORY.md 8.1): operators, the Gaussian oracle against the Wiener filter and
direct conditioning, the training measure, restoration with a trained model, baselines, refusals."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from phi4si.errors import ParameterError
from phi4si.interpolant.drifts import NeuralDrift
from phi4si.interpolant.measures import Corruptions, measure_from_dict, preset_measure
from phi4si.interpolant.operators import Corruption, family_from_dict
from phi4si.interpolant.oracle import GaussianOracle, free_field_covariance
from phi4si.lattice.fourier import free_propagator
from phi4si.tasks import restore as rs
from phi4si.tasks.images import load_images, psnr

SHAPE = (8, 8)


def _dense(fam, a, V):
    E = torch.eye(V, dtype=torch.float64).reshape(V, 1, *SHAPE)
    A = fam.alpha(a, E).reshape(V, V).T
    B = fam.beta(a, E).reshape(V, V).T
    return A, B


def test_family_operators_and_interpolant():
    fam = Corruption()
    V = 64
    miss = torch.zeros(SHAPE, dtype=torch.bool)
    miss[2:4, 5] = True
    a = Corruption.coordinates(1, SHAPE, blur=0.8, sigma=0.3, missing=miss, dtype=torch.float64)
    A, B = _dense(fam, a, V)
    m = miss.reshape(-1).double()
    assert torch.allclose(A, torch.diag(0.3 * (1 - m) + m))             # alpha: noise on observed, 1 on missing
    assert torch.allclose(B[m.bool()], torch.zeros(2, V, dtype=torch.float64))               # beta: nothing of x1 on missing pixels
    Bs = _dense(fam, Corruption.coordinates(1, SHAPE, blur=0.8, sigma=0.3, dtype=torch.float64), V)[1]
    assert torch.allclose(Bs, Bs.T, atol=1e-12)                          # a symmetric (isotropic, even) blur
    assert torch.allclose(Bs.sum(1), torch.ones(V, dtype=torch.float64))  # keeps constants
    x0, x1 = torch.randn(2, 1, *SHAPE, dtype=torch.float64).unbind(0)
    x0, x1 = x0[None], x1[None]
    I = fam.interpolate(x0, x1, a)
    assert torch.allclose(I.reshape(-1), A @ x0.reshape(-1) + B @ x1.reshape(-1))
    assert torch.equal(fam.interpolate(x0, x1, Corruption.coordinates(1, SHAPE, dtype=torch.float64)), x1)
    assert family_from_dict(fam.to_dict()).to_dict() == fam.to_dict()
    f = fam.features(a)
    assert f.shape == (1, 3, *SHAPE) and float(f.min()) >= 0 and float(f.max()) <= 1


def test_blur_is_the_gaussian_filter():
    """B_s against scipy's sampled Gaussian filter with periodic boundaries (s >= 1: aliasing is small)."""
    from scipy.ndimage import gaussian_filter

    x = np.random.default_rng(0).random((1, 1, 16, 16))
    for s in (1.0, 2.0):
        ref = gaussian_filter(x[0, 0], s, mode="wrap", truncate=6.0)
        assert np.abs(rs.corrupt(x, blur=s)[0, 0] - ref).max() < 3e-3


def test_oracle_deblur_is_the_wiener_filter():
    """Gaussian prior (free field, stationary): eta1 of the family equals the Wiener filter per mode."""
    m2, s, sig, mu = 0.7, 1.2, 0.2, 0.3
    C = free_field_covariance(SHAPE, m2)
    orc = GaussianOracle(np.full(64, mu), C, SHAPE, family=Corruption())
    y = torch.randn(3, 1, *SHAPE, dtype=torch.float64)
    a = Corruption.coordinates(3, SHAPE, blur=s, sigma=sig, dtype=torch.float64)
    eta1 = orc.etas(y, a)[1].numpy()
    c = free_propagator(SHAPE, m2)                                # spectrum of C on the FFT grid
    f2 = np.add.outer(np.fft.fftfreq(8) ** 2, np.fft.fftfreq(8) ** 2)
    t = np.exp(-2 * np.pi ** 2 * s * s * f2)
    Y = np.fft.fft2(y.numpy()[:, 0])
    M = np.zeros(SHAPE, complex)
    M[0, 0] = mu * 64
    W = M + c * t * (Y - t * M) / (sig ** 2 + t * t * c)
    np.testing.assert_allclose(eta1[:, 0], np.fft.ifft2(W).real, atol=1e-10)


def test_oracle_mixed_is_conditioning_on_the_observed_pixels():
    """With missing pixels (their values pure noise), eta1 = E[x1 | (B x1 + sig z)_observed]."""
    rng = np.random.default_rng(1)
    C = free_field_covariance(SHAPE, 0.5)
    mu = rng.normal(size=64) * 0.1
    fam = Corruption()
    miss = rng.random(SHAPE) < 0.4
    a = Corruption.coordinates(1, SHAPE, blur=0.7, sigma=0.15, missing=torch.from_numpy(miss), dtype=torch.float64)
    orc = GaussianOracle(mu, C, SHAPE, family=fam)
    y = torch.from_numpy(rng.normal(size=(2, 1, *SHAPE)))
    eta1 = orc.etas(y, a)[1].reshape(2, -1).numpy()
    B = _dense(fam, Corruption.coordinates(1, SHAPE, blur=0.7, dtype=torch.float64), 64)[1].numpy()
    o = ~miss.reshape(-1)
    S = (B @ C @ B.T)[np.ix_(o, o)] + 0.15 ** 2 * np.eye(o.sum())
    K = (C @ B.T)[:, o] @ np.linalg.inv(S)
    ref = mu + (y.reshape(2, -1).numpy()[:, o] - (B @ mu)[o]) @ K.T
    np.testing.assert_allclose(eta1, ref, atol=1e-10)
    y2 = y.clone()
    y2.reshape(2, -1)[:, torch.from_numpy(~o)] += 5.0                  # the missing pixels' values do not matter
    np.testing.assert_allclose(orc.etas(y2, a)[1].reshape(2, -1).numpy(), eta1, atol=1e-10)


def test_measure():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    m = Corruptions()
    a = m.sample(2000, SHAPE, g())
    assert a.shape == (2000, 3, *SHAPE) and torch.equal(a, m.sample(2000, SHAPE, g()))
    s, sig, miss = a[:, 0, 0, 0], a[:, 1, 0, 0], a[:, 2]
    assert abs(float((s == 0).double().mean()) - 0.2) < 0.03 and float(s.max()) <= 3.0
    assert float(sig.min()) >= 1e-3 and float(sig.max()) <= 1.0
    assert torch.equal(a[:, 0], s[:, None, None].expand(-1, *SHAPE))   # one blur per image
    has = miss.flatten(1).any(1).double().mean()
    assert 0.2 < float(has) < 0.35
    assert not Corruptions(p_mask=0.0).sample(100, SHAPE, g())[:, 2].any()
    assert measure_from_dict(m.to_dict()).to_dict() == m.to_dict()
    assert preset_measure("restore").to_dict() == m.to_dict()


@pytest.mark.parametrize("kw", [dict(s_max=0), dict(p_sharp=1.5), dict(sigma_range=(0, 1)), dict(sigma_range=(1, 0.5)),
                                dict(p_mask=-0.1)])
def test_measure_refusals(kw):
    with pytest.raises(ParameterError):
        Corruptions(**kw)


@pytest.mark.parametrize("kw", [dict(ndim=0), dict(s_max=-1.0), dict(sigma_range=(0.0, 1.0))])
def test_family_refusals(kw):
    with pytest.raises(ParameterError):
        Corruption(**kw)


def test_no_transport():
    with pytest.raises(ParameterError, match="no transport"):
        Corruption().velocity(torch.zeros(1, 3, *SHAPE), torch.zeros(1, 1, *SHAPE))
    with pytest.raises(ParameterError, match="restore"):
        NeuralDrift(lambda x, a: x, "eta1", Corruption())
    with pytest.raises(ParameterError, match="eta1"):
        Corruption().check_training("b", Corruptions())


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from phi4si.model.train import TrainConfig, train
    from phi4si.tasks.images import image_data

    out = tmp_path_factory.mktemp("restore") / "r.pt"
    cfg = TrainConfig(steps=3, family="corruption", param="eta1", measure="restore", model="tiny", val_every=3,
                      val_size=8, batch_size=8, checkpoint_every=3)
    train(image_data("digits16", n_test=300), out, cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def model(model_path):
    from phi4si.tasks.images import load_image_model

    return load_image_model(model_path)


def test_cli_deblur_denoise(cli, model_path, tmp_path):
    import h5py

    out = tmp_path / "d.h5"
    rc, _, err = cli("image", "deblur", "--model", model_path, "--blur", 1, "--noise", 0.02, "--mask", "random:0.3",
                     "--n", 4, "--out", out)
    assert rc == 0 and "PSNR" in err
    with h5py.File(out) as f:
        assert f["images"].shape == (4, 1, 16, 16) and {"observed", "original", "masks"} <= set(f)
        assert "phi4si" in f.attrs["scores"] and float(f.attrs["blur"]) == 1.0 and "deblur" in f.attrs["command"]
    rc, _, err = cli("image", "denoise", "--model", model_path, "--noise", 0.05, "--n", 2, "--out", tmp_path / "n.h5")
    assert rc == 0
    for args, match in ((("--blur", 9), "trained range"), (("--blur", -1), "blur"), (("--blur", 1, "--noise", 3), "noise"),
                        (("--blur", 1, "--mask", "block:40x40"), "")):
        bad = tmp_path / "bad.h5"
        rc, _, err = cli("image", "deblur", "--model", model_path, "--n", 2, "--out", bad, *args)
        assert rc != 0 and match in err and not bad.exists()
    rc, _, err = cli("image", "generate", "--model", model_path, "--n", 2, "--out", tmp_path / "g.h5")
    assert rc != 0 and "restore" in err and not (tmp_path / "g.h5").exists()


def test_digits16():
    x, info = load_images("digits16")
    assert x.shape == (1797, 1, 16, 16) and info["size"] == [16, 16] and x.min() >= 0 and x.max() <= 1


def test_restore_with_a_trained_model(model):
    x = load_images("digits16")[0][:6]
    miss = np.zeros((6, 16, 16), bool)
    miss[:, 4:8, 4:8] = True
    y = rs.corrupt(x, blur=1.0, noise=0.01, missing=miss, seed=1)
    out = rs.restore(model, y, 1.0, 0.01, miss, seed=2, n_mean=2)
    assert out.shape == x.shape and np.isfinite(out).all()
    assert np.array_equal(out, rs.restore(model, y, 1.0, 0.01, miss, seed=2, n_mean=2))   # seeded
    # a task that pins the observed channel (no blur, no noise): observed pixels come back bit for bit
    y0 = rs.corrupt(x, missing=miss)
    out0 = rs.restore(model, y0, 0.0, 0.0, miss)
    assert np.array_equal(out0[:, 0][~miss], x[:, 0][~miss].astype(np.float64))
    # per-image settings
    assert rs.restore(model, y, [1.0, 0.5, 0, 2, 1, 1], 0.01, miss).shape == x.shape


@pytest.mark.parametrize("kw,match", [
    (dict(blur=-1.0), "blur"), (dict(blur=float("nan")), "blur"), (dict(blur=4.0), "trained range"),
    (dict(noise=-0.1), "noise"), (dict(noise=5.0), "trained range"), (dict(blur=[1.0, 2.0]), "one per image"),
    (dict(missing=np.zeros((3, 3), bool)), "does not fit"), (dict(missing=np.ones((16, 16), bool)), "every pixel"),
    (dict(missing=np.zeros((16, 16))), "boolean"), (dict(n_mean=0), "n_mean"),
])
def test_restore_refusals(model, kw, match):
    y = load_images("digits16")[0][:3]
    args = dict(blur=1.0, noise=0.01)
    args.update(kw)
    with pytest.raises(ParameterError, match=match):
        rs.restore(model, y, **args)


def test_restore_refuses_a_model_without_the_channels():
    hadamard = types.SimpleNamespace(family=family_from_dict({"name": "hadamard"}), param="b")
    with pytest.raises(ParameterError, match="without the corruption channels"):
        rs.restore(hadamard, np.zeros((1, 1, 8, 8)), 1.0, 0.01)


def test_training_refusals(tmp_path):
    from phi4si.model.train import TrainConfig, train
    from phi4si.tasks.images import image_data

    d = image_data("digits", n_test=300)
    for kw, match in ((dict(family="corruption", param="b", measure="restore"), "eta1"),
                      (dict(family="corruption", param="eta1", measure="images"), "3 coordinate"),
                      (dict(family="hadamard", measure="restore"), "1 coordinate")):
        with pytest.raises(ParameterError, match=match):
            train(d, tmp_path / "never.pt", TrainConfig(steps=1, model="tiny", **kw), progress=False)
        assert not (tmp_path / "never.pt").exists()


def test_baselines():
    x = load_images("digits16")[0][:8].astype(np.float64)
    psf = rs.point_spread(1.5, (16, 16))
    assert psf.shape[0] % 2 == 1 and abs(psf.sum() - 1) < 1e-12 and np.allclose(psf, psf.T)
    assert psf.argmax() == psf.size // 2                                 # centred on the pixel itself
    y = rs.corrupt(x, blur=1.0, noise=0.01, seed=0)
    base = psnr(x, y).mean()
    for method in ("wiener", "unsupervised_wiener", "richardson_lucy"):
        t = rs.tune_baseline(x, y, 1.0, 0.01, method=method)
        assert t["psnr"] > base + 0.5, (method, t, base)            # each deblurs
    const = np.full((1, 1, 16, 16), 0.4)
    for method, p in (("richardson_lucy", 20), ("wiener", 1e-3)):   # periodic: a flat image stays flat
        assert np.abs(rs.baseline_restore(rs.corrupt(const, blur=2.0), 2.0, 0.0, method=method, param=p) - 0.4).max() < 1e-5
    yn = rs.corrupt(x, noise=0.1, seed=0)
    assert rs.tune_baseline(x, yn, 0.0, 0.1, method="tv")["psnr"] > psnr(x, yn).mean() + 1
    miss = np.zeros((8, 16, 16), bool)
    miss[:, 5:9, 5:9] = True
    ym = rs.corrupt(x, blur=1.0, noise=0.01, missing=miss)
    for order in ("deblur_first", "inpaint_first"):
        est = rs.baseline_restore(ym, 1.0, 0.01, miss, "wiener", 1e-2, order=order)
        assert np.isfinite(est).all() and psnr(x, est).mean() > psnr(x, ym).mean()
    with pytest.raises(ParameterError, match="unknown baseline"):
        rs.baseline_restore(y, 1.0, 0.01, method="magic")
    with pytest.raises(ParameterError, match="order"):
        rs.baseline_restore(y, 1.0, 0.01, method="wiener", param=1e-2, order="sideways")
