"""phi4si.tasks.images and ``phi4si image``: data, exact inpainting with noisy observations (Gaussian
oracle), editing, metrics, baselines, and refusals."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from phi4si.errors import OutputExistsError, ParameterError
from phi4si.tasks import images as im


# ------------------------------------------------------------------------------------------------ data
def test_digits_default_and_split():
    x, info = im.load_images("digits")
    assert x.shape == (1797, 1, 8, 8) and x.min() == 0 and x.max() == 1 and info["channels"] == 1
    tr, te = im.split(len(x), 300, seed=0)
    assert len(te) == 300 and len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 1797
    assert np.array_equal(im.split(len(x), 300, seed=0)[1], te)
    assert not np.array_equal(im.split(len(x), 300, seed=1)[1], te)
    with pytest.raises(ParameterError, match="n_test"):
        im.split(10, 10)


def test_image_folder_npy_h5(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (3, 8, 6), dtype=np.uint8)
    (tmp_path / "g").mkdir()
    for k, g in enumerate(gray):
        Image.fromarray(g, "L").save(tmp_path / "g" / f"{k}.png")
    x, info = im.load_images(str(tmp_path / "g"))
    assert x.shape == (3, 1, 8, 6) and np.allclose(x[:, 0] * 255, gray) and info["channels"] == 1
    (tmp_path / "c").mkdir()
    rgb = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    for k, g in enumerate(rgb):
        Image.fromarray(g, "RGB").save(tmp_path / "c" / f"{k}.png")
    Image.fromarray(gray[0], "L").resize((4, 4)).save(tmp_path / "c" / "2.png")     # a gray file among RGB
    x, _ = im.load_images(str(tmp_path / "c"))
    assert x.shape == (3, 3, 4, 4) and np.allclose(np.moveaxis(x[:2], 1, -1) * 255, rgb)
    np.save(tmp_path / "a.npy", rgb)                                                   # channels last
    assert im.load_images(str(tmp_path / "a.npy"))[0].shape == (2, 3, 4, 4)
    np.save(tmp_path / "f.npy", np.full((2, 5, 5), 0.25, np.float32))
    assert im.load_images(str(tmp_path / "f.npy"))[0].shape == (2, 1, 5, 5)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["imgs"] = gray
    assert im.load_images(f"{tmp_path / 'd.h5'}:imgs")[0].shape == (3, 1, 8, 6)


@pytest.mark.parametrize("make,match", [
    (lambda p: np.save(p / "x.npy", np.full((2, 4, 4), 2.0)), "must lie in"),
    (lambda p: np.save(p / "x.npy", np.zeros((2, 4, 4, 5))), "expected images"),
    (lambda p: np.save(p / "x.npy", np.full((2, 4, 4), np.nan)), "NaN"),
    (lambda p: np.save(p / "x.npy", np.zeros((1, 4, 4))), "at least 2"),
])
def test_bad_image_arrays(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(ParameterError, match=match):
        im.load_images(str(tmp_path / "x.npy"))


def test_bad_image_sources(tmp_path):
    from PIL import Image

    with pytest.raises(ParameterError, match="no such"):
        im.load_images(str(tmp_path / "none.npy"))
    (tmp_path / "e").mkdir()
    with pytest.raises(ParameterError, match="no PNG"):
        im.load_images(str(tmp_path / "e"))
    (tmp_path / "s").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "s" / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "s" / "b.png")
    with pytest.raises(ParameterError, match="differ in size"):
        im.load_images(str(tmp_path / "s"))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(ParameterError, match="no dataset"):
        im.load_images(f"{tmp_path / 'd.h5'}:y")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(ParameterError, match="use 'digits'"):
        im.load_images(str(tmp_path / "t.txt"))


# ------------------------------------------------------------------------------------------------ masks
def test_masks():
    m = im.random_masks(200, (8, 8), 0.7, seed=3)
    assert m.shape == (200, 8, 8) and abs(m.mean() - 0.7) < 0.02 and m.reshape(200, -1).any(1).all()
    assert np.array_equal(m, im.random_masks(200, (8, 8), 0.7, seed=3))
    b = im.block_masks(50, (8, 8), 4, seed=1)
    assert (b.reshape(50, -1).sum(1) == 16).all()
    rows = b.any(2)
    assert all(np.ptp(np.flatnonzero(r)) == 3 for r in rows)                # contiguous, no wrapping
    assert im.parse_image_mask("block:2x3@1,0", 2, (4, 4)).sum() == 12
    for spec, match in [("block:9x9", "does not fit"), ("block:2x2@7,7", "does not fit"), ("random:0", "fraction"),
                        ("random:1e", "not a number"), ("blob", "cannot parse"), ("nope.npy", "does not exist")]:
        with pytest.raises(ParameterError, match=match):
            im.parse_image_mask(spec, 1, (8, 8))


def test_mask_file(tmp_path):
    np.save(tmp_path / "m.npy", np.eye(4, dtype=bool))
    assert im.parse_image_mask(str(tmp_path / "m.npy"), 3, (4, 4)).shape == (3, 4, 4)
    np.save(tmp_path / "w.npy", np.ones((3, 3), bool))
    with pytest.raises(ParameterError, match="has shape"):
        im.parse_image_mask(str(tmp_path / "w.npy"), 3, (4, 4))


# ------------------------------------------------------------------------------------------------ oracle
def _oracle_model(shape=(3, 3), m2=0.7, mean=0.3, scale=1.5):
    from phi4si.interpolant.oracle import free_field_oracle
    from phi4si.lattice import Phi4Params
    from phi4si.model import DriftModel

    orc = free_field_oracle(shape, m2)
    return DriftModel(orc, Phi4Params(shape, m2=m2, lam=0.0), mean=mean, scale=scale), orc


def _gauss_posterior(orc, mean, scale, obs, y, sigma):
    """Exact law of phi = scale x + mean given y = phi + sigma z on the sites ``obs`` (x ~ N(0, C))."""
    C = scale ** 2 * orc.C.numpy()
    P = np.diag(obs.ravel().astype(float)) / sigma ** 2
    Cinv = np.linalg.inv(C)
    cov = np.linalg.inv(Cinv + P)
    mu = cov @ (Cinv @ np.full(len(C), mean) + P @ np.where(obs.ravel(), y.ravel(), 0.0))
    return mu, cov


@pytest.mark.parametrize("denoise", ["sample", "mean"])
def test_noisy_inpainting_is_the_exact_posterior(denoise):
    """Masked pixels sampled given noisy observations, observed pixels denoised: with exact drifts the
    output law is the Gaussian posterior (mean; full covariance for 'sample')."""
    model, orc = _oracle_model()
    mask = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]], bool)
    sigma, n = 0.4, 3000
    y = np.array([[0.0, 1.2, -0.8], [0.0, 0.0, 2.0], [0.5, -1.0, 0.0]])
    out = im.inpaint_images(model, np.broadcast_to(y, (n, 1, 3, 3)), mask, noise=sigma, steps=40, seed=1,
                            denoise=denoise, denoise_steps=200, batch_size=1000)[:, 0].reshape(n, -1)
    mu, cov = _gauss_posterior(orc, model.mean, model.scale, ~mask, y, sigma)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(out.mean(0) - mu) < 4.5 * se), (out.mean(0) - mu) / se
    if denoise == "sample":
        emp = np.cov(out.T)
        se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)
        assert np.all(np.abs(emp - cov) < 4.5 * se_cov + 1e-3), np.abs(emp - cov) / se_cov
    else:   # the observed pixels are conditional means: less spread than the posterior
        assert np.all(out[:, ~mask.ravel()].var(0) < np.diag(cov)[~mask.ravel()])


def test_noise_free_inpainting_keeps_pixels_and_keep_mode():
    model, _ = _oracle_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 1, 3, 3))
    masks = im.random_masks(5, (3, 3), 0.5, seed=2)
    out = im.inpaint_images(model, x, masks, steps=5)
    obs = ~masks[:, None]
    assert np.array_equal(out[obs], x[obs]) and not np.allclose(out[~obs], x[~obs])
    kept = im.inpaint_images(model, x, masks, noise=0.1, steps=5, denoise="keep")
    assert np.array_equal(kept[obs], x[obs])
    moved = im.inpaint_images(model, x, masks, noise=0.1, steps=5, denoise_steps=5)
    assert not np.allclose(moved[obs], x[obs])
    assert np.array_equal(out, im.inpaint_images(model, x, masks, steps=5))          # seeded


def test_bad_inpainting_input():
    model, _ = _oracle_model()
    x = np.zeros((2, 1, 3, 3))
    m = np.ones((3, 3), bool)
    for args, kw, match in [((np.zeros((2, 2, 3, 3)), m), {}, "1-channel"),
                            ((x, np.ones((4, 4), bool)), {}, "do not fit"),
                            ((x, np.zeros((3, 3), bool)), {}, "no unknown"),
                            ((x, m), {"noise": -1.0}, "noise"),
                            ((x, m), {"denoise": "blur"}, "denoise"),
                            ((np.full((2, 1, 3, 3), np.nan), m), {}, "NaN")]:
        with pytest.raises((ParameterError, Exception), match=match):
            im.inpaint_images(model, *args, **kw)


def test_editing_keeps_everything_outside_each_region():
    model, _ = _oracle_model()
    x0 = np.random.default_rng(1).normal(size=(1, 3, 3))
    regions = [np.zeros((3, 3), bool) for _ in range(3)]
    regions[0][0, 0] = regions[1][1:, 1:] = regions[2][:, 2] = True
    out = im.edit_images(model, x0, regions, steps=5)
    assert out.shape == (4, 1, 3, 3) and np.array_equal(out[0], x0)
    for k, r in enumerate(regions):
        assert np.array_equal(out[k + 1][:, ~r], out[k][:, ~r]) and not np.allclose(out[k + 1][:, r], out[k][:, r])
    with pytest.raises(ParameterError, match="region 0"):
        im.edit_images(model, x0, [np.ones((2, 2), bool)])


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_and_baselines():
    ramp = (np.add.outer(np.arange(8), np.arange(8)) / 16.0)[None, None]
    m = im.block_masks(1, (8, 8), 3, at=(2, 3))
    for method in im.BASELINES:
        f = im.baseline_fill(ramp, m, method)
        assert np.array_equal(f[0, 0][~m[0]], ramp[0, 0][~m[0]])
    assert np.allclose(im.baseline_fill(ramp, m, "biharmonic"), ramp, atol=1e-6)    # exact on linear images
    assert np.allclose(im.baseline_fill(ramp, m, "mean")[0, 0][m[0]], ramp[0, 0][~m[0]].mean())
    with np.errstate(divide="ignore"):
        assert np.isinf(im.psnr(ramp, ramp)[0])
    assert im.ssim(ramp, ramp)[0] == pytest.approx(1.0)
    assert im.psnr(ramp, ramp + 0.01)[0] == pytest.approx(40.0)
    with pytest.raises(ParameterError, match="baseline"):
        im.baseline_fill(ramp, m, "magic")


# ------------------------------------------------------------------------------------------------ trained
@pytest.fixture(scope="module")
def tiny_rgb_model(tmp_path_factory):
    """A tiny RGB model trained for a few steps on random 8x8 colour images (shapes and plumbing)."""
    from phi4si.model.train import TrainConfig

    d = tmp_path_factory.mktemp("img")
    np.save(d / "rgb.npy", np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    cfg = TrainConfig(steps=3, batch_size=8, model="tiny", measure="images", val_size=8, val_every=3)
    im.train_images(str(d / "rgb.npy"), d / "m.pt", cfg, n_test=10, progress=False)
    return d


def test_rgb_model_tasks(tiny_rgb_model):
    model = im.load_image_model(tiny_rgb_model / "m.pt")
    assert model.channels == 3 and model.net.config.padding == "zeros"
    assert model.lattice["params"]["n_test"] == 10
    test = im.held_out_images(model)
    assert test.shape == (10, 3, 8, 8)
    assert im.generate_images(model, 3, steps=2).shape == (3, 3, 8, 8)
    assert im.sequential_images(model, 2, "random", 4, steps=2).shape == (2, 3, 8, 8)
    out = im.inpaint_images(model, test[:4], im.random_masks(4, (8, 8), 0.7), noise=0.01, steps=2, denoise_steps=2)
    assert out.shape == (4, 3, 8, 8) and np.isfinite(out).all()
    with pytest.raises(ParameterError, match="3-channel"):
        im.inpaint_images(model, test[:2, :1], np.ones((8, 8), bool))
    with pytest.raises(ParameterError, match="order"):
        im.sequential_images(model, 2, "diagonal", 4)


def test_image_cli(tiny_rgb_model, cli, tmp_path):
    d = tiny_rgb_model
    m = str(d / "m.pt")
    rc, out, err = cli("image", "inpaint", "--model", m, "--mask", "block:4x4", "--noise", "0.05", "--n", "3",
                       "--steps", "2", "--out", tmp_path / "i.h5", "--figure", tmp_path / "i.png")
    assert rc == 0, err
    assert f"wrote {tmp_path / 'i.h5'} (3 images)" in err                # every command says what it wrote
    with h5py.File(tmp_path / "i.h5") as f:
        assert f["images"].shape == (3, 3, 8, 8) and f["masks"].shape == (3, 8, 8) and "command" in f.attrs
    assert (tmp_path / "i.png").stat().st_size > 0
    rc, out, err = cli("image", "evaluate", "--model", m, "--n-images", "4", "--steps", "2", "--out", tmp_path / "r.json")
    assert rc == 0, err
    import json

    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["tasks"]) == {"random", "block"} and "biharmonic" in r["tasks"]["random"]["scores"]
    assert f"wrote {tmp_path / 'r.json'}" in err
    rc, _, err = cli("image", "edit", "--model", m, "--region", "block:2x2@0,0", "--region", "block:3x3@4,4",
                     "--steps", "2", "--out", tmp_path / "e.h5")
    assert rc == 0 and f"wrote {tmp_path / 'e.h5'}" in err
    rc, _, err = cli("image", "generate", "--model", m, "--n", "2", "--order", "raster", "--block", "4", "--steps", "1",
                     "--out", tmp_path / "g.h5", "--figure", tmp_path / "g.png")
    assert rc == 0 and f"wrote {tmp_path / 'g.h5'} (2 images)" in err


@pytest.mark.parametrize("args,match", [
    (["inpaint", "--mask", "block:9x9"], "does not fit"),
    (["inpaint", "--mask", "random:0.5", "--n", "99"], "has 10"),
    (["inpaint", "--mask", "random:0.5", "--noise", "-1"], "noise"),
    (["evaluate", "--n-images", "50"], "test split has 10"),
    (["evaluate", "--block", "9"], "does not fit"),
    (["edit", "--region", "block:2x2@7,7"], "does not fit"),
    (["generate", "--block", "2"], "give --order"),
])
def test_image_cli_refusals(tiny_rgb_model, cli, tmp_path, args, match):
    out = tmp_path / "o.h5"
    out.write_text("keep")
    rc, _, err = cli("image", *args, "--model", tiny_rgb_model / "m.pt", "--out", out, "--overwrite")
    assert rc != 0 and match in err, err
    rc, _, err = cli("image", *args, "--model", tiny_rgb_model / "m.pt", "--out", out)
    assert rc != 0 and out.read_text() == "keep"


def test_image_train_refusals(cli, tmp_path):
    assert "no such" in cli("image", "train", "--data", tmp_path / "x.npy", "--out", tmp_path / "m.pt")[2]
    assert "directory" in cli("image", "train", "--out", tmp_path)[2]
    (tmp_path / "m.pt").write_text("keep")
    rc, _, err = cli("image", "train", "--out", tmp_path / "m.pt", "--steps", "1")
    assert rc != 0 and "exists" in err and (tmp_path / "m.pt").read_text() == "keep"


def test_write_images_refuses_existing(tmp_path):
    p = tmp_path / "o.h5"
    p.write_text("keep")
    with pytest.raises(OutputExistsError):
        im.write_images(p, np.zeros((1, 1, 2, 2)), {})
    with pytest.raises(ParameterError, match="NaN"):
        im.write_images(tmp_path / "n.h5", np.full((1, 1, 2, 2), np.nan), {})
    assert p.read_text() == "keep" and not (tmp_path / "n.h5").exists()


def test_non_image_checkpoint_refused(tmp_path):
    from phi4si.model.data import ArrayData
    from phi4si.errors import CheckpointError
    from phi4si.model.train import TrainConfig, train

    data = ArrayData(np.random.default_rng(0).normal(size=(20, 1, 4, 4)), {"kind": "demo"})
    train(data, tmp_path / "m.pt", TrainConfig(steps=1, batch_size=4, model="tiny", val_size=4), progress=False)
    with pytest.raises(CheckpointError, match="not an image model"):
        im.load_image_model(tmp_path / "m.pt")
    assert torch.load(tmp_path / "m.pt", weights_only=False)["data"]["path"] == "<array>"


def test_observe_noise_only_on_observed_pixels():
    x = np.ones((3, 1, 4, 4))
    masks = np.random.default_rng(0).random((3, 4, 4)) < 0.5
    y = im.observe(x, masks, 0.1, np.random.default_rng(1))
    assert (y[:, 0][masks] == 0).all()
    z = (y[:, 0][~masks] - 1.0) / 0.1
    assert z.std() > 0.3 and abs(z.mean()) < 1.0
    assert np.array_equal(im.observe(x, masks, 0.1, np.random.default_rng(1)), y)      # same stream, same bits
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="noise must be a finite number >= 0"):
            im.observe(x, masks, bad, np.random.default_rng(1))


@pytest.mark.parametrize("tasks,match", [
    ({"a": {"mask": "random:0.5", "noise": 0.0}, "b": {"mask": "random:0.5", "noise": -1.0}}, r"task 'b': noise"),
    ({"a": {"mask": "random:0.5"}, "b": {"mask": "block:9x9"}}, r"task 'b': mask 'block:9x9' does not fit"),
    ({"a": {"mask": "random:2"}}, r"task 'a': mask 'random:2': the fraction"),
])
def test_evaluate_refuses_every_task_before_any_work(tiny_rgb_model, tasks, match, monkeypatch):
    calls = []
    monkeypatch.setattr(im, "inpaint_images", lambda *a, **k: calls.append(1))
    model = im.load_image_model(tiny_rgb_model / "m.pt")
    x = im.held_out_images(model)[:2]
    with pytest.raises(ParameterError, match=match):
        im.evaluate_inpainting(model, x, tasks, steps=2)
    assert not calls          # the first task was not run before the second was found wrong
