"""Trained models (phi4si.model.checkpoint): load_model on tiny checkpoints (3 training steps), the
model's shape checks, dtype copies, target action, normalisation maps, and the refusals of missing,
foreign and damaged files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from phi4si import Phi4Params, sample_mcmc
from phi4si.errors import CheckpointError
from phi4si.interpolant.oracle import free_field_oracle
from phi4si.model import CHECKPOINT_FORMAT, DriftModel, TrainedModel, load_model
from phi4si.model.data import EnsembleData
from phi4si.model.generate import generate
from phi4si.model.train import TrainConfig, train

SHAPE = (4, 4)
PARAMS = Phi4Params(SHAPE, m2=1.0, lam=0.5, h=0.2, k=-0.1)     # h != 0: a mean to normalise by


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(steps=3, model="tiny", batch_size=8, val_every=2, val_size=8, warmup=1,
                                 checkpoint_every=1000), **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(ensemble, checkpoint of the tiny U-Net, checkpoint with one pooling level) - read-only."""
    d = tmp_path_factory.mktemp("ckpt")
    ens = sample_mcmc(PARAMS, d / "ens.h5", chains=2, n_traj=40, n_therm=10, every=1, seed=5, progress=False)
    train(ens, d / "tiny.pt", _config(), progress=False)
    train(ens, d / "pooled.pt", _config(model_overrides={"channel_mult": (1, 2)}), progress=False)
    return ens, d / "tiny.pt", d / "pooled.pt"


@pytest.fixture(scope="module")
def model(trained):
    return load_model(trained[1])


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# ------------------------------------------------------------------------------------------------ load_model
def test_load_model_content(trained, model):
    ens, ck_path, _ = trained
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    data = EnsembleData(ens, val_fraction=0.1)
    assert isinstance(model, TrainedModel)
    assert model.shape == SHAPE and model.param == "b" and model.channels == 1
    assert type(model.family).__name__ == "Hadamard"
    assert model.lattice == {"shape": [4, 4], "params": PARAMS.to_dict(), "d": 2}
    assert not data.symmetric
    assert model.mean == pytest.approx(data.mean, rel=1e-12) and model.mean != 0.0
    assert model.scale == pytest.approx(data.scale, rel=1e-12)
    assert model.meta["step"] == 3 and model.meta["version"] == ck["version"]
    assert model.meta["train_config"]["model"] == "tiny"
    assert model.dtype == torch.float32 and model.device == torch.device("cpu")
    assert not model.net.training
    assert not any(p.requires_grad for p in model.net.parameters())
    # EMA weights by default, the raw weights with ema=False
    for name, ema in (("ema_state", True), ("model_state", False)):
        got = load_model(ck_path, ema=ema).net.state_dict()
        assert all(torch.equal(got[k], ck[name][k].to(got[k].dtype)) for k in got)


def test_load_model_in_float64(trained, model):
    m64 = load_model(trained[1], dtype=torch.float64)
    assert m64.dtype == torch.float64
    x = torch.randn(3, 1, *SHAPE, generator=torch.Generator().manual_seed(0))
    a = torch.full((3, 1, *SHAPE), 0.5)
    b32 = model.drift().b(x, a)
    b64 = m64.drift().b(x.double(), a.double())
    assert b64.dtype == torch.float64
    torch.testing.assert_close(b64.float(), b32, rtol=1e-4, atol=1e-5)


def test_trained_model_generates_on_its_lattice_and_larger_ones(model):
    a = generate(model, 3, steps=3, seed=1)
    assert a.shape == (3, *SHAPE) and np.isfinite(a).all()
    assert np.array_equal(a, generate(model, 3, steps=3, seed=1))
    assert generate(model, 2, shape=(8, 6), steps=2).shape == (2, 8, 6)     # fully convolutional


# ------------------------------------------------------------------------------------------------ check_shape
def test_check_shape(trained, model):
    assert model.check_shape((4, 4)) == (4, 4)
    assert model.check_shape([5, np.int64(7)]) == (5, 7)          # no pooling: any side >= 2
    pooled = load_model(trained[2])
    assert pooled.check_shape((6, 8)) == (6, 8)
    for shape in ((4, 4, 4), (8,), ()):
        for m in (model, pooled):
            with pytest.raises(CheckpointError, match="trained on a 2-d lattice"):
                m.check_shape(shape)
    for shape in ((5, 4), (4, 7), (3, 3)):
        with pytest.raises(CheckpointError, match="multiples of 2"):
            pooled.check_shape(shape)
    with pytest.raises(CheckpointError, match="multiples of 1"):
        model.check_shape((1, 4))                                  # a side of 1 is no lattice
    with pytest.raises(CheckpointError, match="multiples of 2"):
        generate(pooled, 2, shape=(4, 5), steps=2)


# ------------------------------------------------------------------------------------------------ astype
def test_astype_float64_leaves_the_original_unchanged(model):
    before = _state(model.net)
    m64 = model.astype(torch.float64)
    assert m64 is not model and m64.net is not model.net
    assert m64.dtype == torch.float64 and model.dtype == torch.float32
    after = model.net.state_dict()
    assert before.keys() == after.keys()
    assert all(after[k].dtype == before[k].dtype and torch.equal(after[k], before[k]) for k in before)
    assert all(torch.equal(v, before[k].to(v.dtype)) for k, v in m64.net.state_dict().items())
    assert (m64.mean, m64.scale, m64.shape, m64.lattice, m64.param) == (model.mean, model.scale, model.shape,
                                                                        model.lattice, model.param)
    assert model.astype(torch.float32) is model
    # the copy's weights are its own: changing them leaves the original alone
    with torch.no_grad():
        next(m64.net.parameters()).add_(1.0)
    assert all(torch.equal(model.net.state_dict()[k], before[k]) for k in before)


# ------------------------------------------------------------------------------------------------ target_params
def test_target_params_adds_the_rewards_to_the_data(model):
    p = model.target_params()
    assert isinstance(p, Phi4Params)
    assert (p.shape, p.m2, p.lam, p.h, p.k) == (SHAPE, 1.0, 0.5, 0.2, -0.1)
    q = model.target_params(h=0.1, k=0.05, shape=(8, 8))
    assert q.shape == (8, 8) and (q.m2, q.lam) == (1.0, 0.5)
    assert q.h == pytest.approx(0.3, abs=1e-15) and q.k == pytest.approx(-0.05, abs=1e-15)
    free = DriftModel(free_field_oracle(SHAPE, 0.7), Phi4Params(SHAPE, m2=0.7, lam=0.0))
    r = free.target_params(h=-0.2, k=0.3)
    assert (r.m2, r.lam, r.h, r.k) == (0.7, 0.0, -0.2, 0.3)


@pytest.mark.parametrize("lattice", [{"shape": [4, 4]}, {"shape": [4, 4], "params": {"m2": 1.0}},
                                     {"shape": [4, 4], "params": None}])
def test_target_params_needs_the_action(model, lattice):
    with pytest.raises(CheckpointError, match="does not record the action parameters"):
        dataclasses.replace(model, lattice=lattice).target_params()


# ------------------------------------------------------------------------------------------------ normalisation
def test_physical_and_normalised_coordinates(model):
    x = torch.randn(5, 1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.to_physical(model.to_normalised(x)), x, rtol=0, atol=1e-14)
    torch.testing.assert_close(model.to_normalised(model.to_physical(x)), x, rtol=0, atol=1e-14)
    torch.testing.assert_close(model.to_physical(x), x * model.scale + model.mean, rtol=0, atol=0)
    # where every step is exact in floating point (dyadic fields, scale 2, mean 1/4) the round trip is bit for bit
    m = DriftModel(free_field_oracle(SHAPE, 1.0), Phi4Params(SHAPE, m2=1.0, lam=0.0), mean=0.25, scale=2.0)
    d = torch.randint(-256, 256, (5, 1, *SHAPE), generator=torch.Generator().manual_seed(2)).double() / 64
    assert torch.equal(m.to_physical(m.to_normalised(d)), d)
    assert torch.equal(m.to_normalised(torch.full((2,), 2.25, dtype=torch.float64)), torch.full((2,), 1.0,
                                                                                                   dtype=torch.float64))


# ------------------------------------------------------------------------------------------------ refusals
def _damage(ck_path, tmp_path, change):
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    change(ck)
    out = tmp_path / "damaged.pt"
    torch.save(ck, out)
    return out


def _bad_shapes(ck):
    for state in ("model_state", "ema_state"):
        k = next(iter(ck[state]))
        ck[state][k] = torch.zeros(3, 3, 3)


@pytest.mark.parametrize("kind,match", [
    ("missing", "no such model file"),
    ("text", "not a readable torch checkpoint"),
    ("directory", "not a readable torch checkpoint"),
    ("truncated", "not a readable torch checkpoint"),
    ("foreign dict", "not a phi4si model checkpoint"),
    ("list", "not a phi4si model checkpoint"),
    ("other format", "not a phi4si model checkpoint"),
    ("no weights", "damaged or incompatible phi4si checkpoint"),
    ("weights of another net", "damaged or incompatible phi4si checkpoint"),
    ("unknown net field", "damaged or incompatible phi4si checkpoint"),
    ("no normalisation", "damaged or incompatible phi4si checkpoint"),
    ("no lattice", "damaged or incompatible phi4si checkpoint"),
    ("unknown family", "damaged or incompatible phi4si checkpoint"),
])
def test_load_model_refuses(trained, tmp_path, kind, match):
    ck_path = trained[1]
    path = tmp_path / "bad.pt"
    if kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "directory":
        path.mkdir()
    elif kind == "truncated":
        raw = ck_path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "foreign dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "other format":
        path = _damage(ck_path, tmp_path, lambda ck: ck.update(format="phi4si-interpolant-0"))
    elif kind == "no weights":
        path = _damage(ck_path, tmp_path, lambda ck: (ck.pop("model_state"), ck.pop("ema_state")))
    elif kind == "weights of another net":
        path = _damage(ck_path, tmp_path, _bad_shapes)
    elif kind == "unknown net field":
        path = _damage(ck_path, tmp_path, lambda ck: ck["model_config"].update(wings=2))
    elif kind == "no normalisation":
        path = _damage(ck_path, tmp_path, lambda ck: ck.pop("normalisation"))
    elif kind == "no lattice":
        path = _damage(ck_path, tmp_path, lambda ck: ck.pop("lattice"))
    elif kind == "unknown family":
        path = _damage(ck_path, tmp_path, lambda ck: ck.update(family={"name": "no-such-family"}))
    with pytest.raises(CheckpointError, match=match):
        load_model(path)


def test_checkpoint_format_constant(trained):
    ck = torch.load(trained[1], map_location="cpu", weights_only=False)
    assert ck["format"] == CHECKPOINT_FORMAT == "phi4si-interpolant-1"
