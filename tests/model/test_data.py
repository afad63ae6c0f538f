"""Training data (phi4si.model.data): EnsembleData on small HMC ensembles (in memory and chunk by chunk)
and ArrayData: held-out splits, normalisation against numpy, batches reproducible with a seeded
torch.Generator and drawn from the right part of the data, and the refusals of bad files."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from phi4si import Phi4Params, open_ensemble, sample_mcmc
from phi4si.errors import EnsembleFileError
from phi4si.model.data import ArrayData, EnsembleData

SHAPE = (4, 4)
SYM = Phi4Params(SHAPE, m2=1.0, lam=0.0)                 # Z2 symmetric: mean 0
FIELD = Phi4Params(SHAPE, m2=1.0, lam=0.5, h=0.4)        # a field h: the mean is the sample mean
N_TRAJ = 60


@pytest.fixture(scope="session")
def ensembles(tmp_path_factory):
    """Small ensembles (read-only: copy before changing): 2 chains of 60 stored configurations each,
    with and without a field, one with no stored configurations and one with a single one."""
    d = tmp_path_factory.mktemp("data")
    kw = dict(chains=2, every=1, n_therm=10, progress=False)
    sample_mcmc(SYM, d / "sym.h5", n_traj=N_TRAJ, seed=1, **kw)
    sample_mcmc(FIELD, d / "field.h5", n_traj=N_TRAJ, seed=2, **kw)
    sample_mcmc(SYM, d / "none.h5", n_traj=5, seed=3, **{**kw, "every": 0})
    sample_mcmc(SYM, d / "one.h5", n_traj=1, seed=4, **kw)
    return {k: d / f"{k}.h5" for k in ("sym", "field", "none", "one")}


def _phi(path):
    with h5py.File(path, "r") as f:
        return np.asarray(f["phi"][...])


def _rows(x):
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _member(rows, pool, atol=1e-5):
    """Whether every row is (to float32 rounding of the normalisation) one of the pool's rows."""
    d = np.abs(rows[:, None, :] - pool[None, :, :]).max(-1).min(1)
    return bool((d < atol).all())


# ------------------------------------------------------------------------------------------------ EnsembleData
@pytest.mark.parametrize("val,n_val", [(0.1, 6), (0.25, 15), (0.0, 0), (0.001, 1), (0.5, 30)])
def test_split_sizes(ensembles, val, n_val):
    d = EnsembleData(ensembles["sym"], val_fraction=val)
    assert (d.n_chains, d.n_cfg, d.shape) == (2, N_TRAJ, SHAPE)
    assert (d.n_val, d.n_train) == (n_val, N_TRAJ - n_val)
    assert d.in_memory and d.channels == 1 and d.lattice_symmetries
    if n_val == 0:
        with pytest.raises(ValueError, match="no validation data"):
            d.validation(4, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("val", [1.0, 1.5, -0.1])
def test_bad_val_fraction(ensembles, val):
    with pytest.raises(ValueError, match="val_fraction"):
        EnsembleData(ensembles["sym"], val_fraction=val)


def test_records_the_file(ensembles):
    d = EnsembleData(ensembles["field"])
    assert d.params == FIELD.to_dict()
    assert d.source == str(ensembles["field"].resolve())
    assert d.attrs["phi4si_format"] == "phi4si-ensemble/1"
    assert isinstance(d.attrs["sampler"], str)


def test_normalisation_of_a_symmetric_prior(ensembles):
    d = EnsembleData(ensembles["sym"], val_fraction=0.1)
    train = _phi(ensembles["sym"])[:, :d.n_train].astype(np.float32).astype(np.float64)
    assert d.symmetric and d.mean == 0.0
    assert d.scale == pytest.approx(np.sqrt((train**2).mean()), rel=1e-12)
    assert d.normalisation == {"mean": 0.0, "scale": d.scale}
    # forced asymmetric: the sample mean and the standard deviation around it
    a = EnsembleData(ensembles["sym"], val_fraction=0.1, symmetric=False)
    assert not a.symmetric
    assert a.mean == pytest.approx(train.mean(), rel=1e-10, abs=1e-14)
    assert a.scale == pytest.approx(train.std(), rel=1e-10)


def test_normalisation_with_a_field(ensembles):
    d = EnsembleData(ensembles["field"], val_fraction=0.25)
    train = _phi(ensembles["field"])[:, :d.n_train].astype(np.float32).astype(np.float64)
    assert not d.symmetric
    assert d.mean == pytest.approx(train.mean(), rel=1e-10) and d.mean > 0.05       # h > 0 pulls phi up
    assert d.scale == pytest.approx(train.std(), rel=1e-10)
    s = EnsembleData(ensembles["field"], val_fraction=0.25, symmetric=True)
    assert s.symmetric and s.mean == 0.0 and s.scale == pytest.approx(np.sqrt((train**2).mean()), rel=1e-10)


@pytest.mark.parametrize("memory", ["in memory", "chunked"])
def test_batches_are_reproducible_and_come_from_the_right_part(ensembles, memory):
    path = ensembles["field"]
    kw = dict(val_fraction=0.2, max_memory_gb=4.0 if memory == "in memory" else 1e-9, chunks_per_refill=3)
    d = EnsembleData(path, **kw)
    assert d.in_memory == (memory == "in memory")
    b = d.batch(32, torch.Generator().manual_seed(3))
    assert tuple(b.shape) == (32, 1, *SHAPE) and b.dtype == torch.float32
    assert torch.equal(b, EnsembleData(path, **kw).batch(32, torch.Generator().manual_seed(3)))
    assert not torch.equal(b, EnsembleData(path, **kw).batch(32, torch.Generator().manual_seed(4)))
    v = d.validation(16, torch.Generator().manual_seed(3))
    assert tuple(v.shape) == (16, 1, *SHAPE)
    assert torch.equal(v, EnsembleData(path, **kw).validation(16, torch.Generator().manual_seed(3)))
    # de-normalised, training batches are training configurations (the head of every chain) and
    # validation batches held-out ones (the tail): the split is by position, never mixed
    phi = _phi(path).astype(np.float32)
    train, held = _rows(phi[:, :d.n_train].reshape(-1, *SHAPE)), _rows(phi[:, d.n_train:].reshape(-1, *SHAPE))
    more = torch.cat([d.batch(32, torch.Generator().manual_seed(s)) for s in range(4)])
    assert _member(_rows(more.numpy()[:, 0] * d.scale + d.mean), train)
    assert _member(_rows(v.numpy()[:, 0] * d.scale + d.mean), held)
    assert not _member(_rows(v.numpy()[:1, 0] * d.scale + d.mean), train)


def test_chunked_normalisation_is_close_to_the_full_one(ensembles):
    full = EnsembleData(ensembles["field"], val_fraction=0.2)
    part = EnsembleData(ensembles["field"], val_fraction=0.2, max_memory_gb=1e-9)
    assert not part.in_memory
    assert part.mean == pytest.approx(full.mean, abs=0.25 * full.scale)
    assert 0.8 < part.scale / full.scale < 1.25


def _copy(ensembles, tmp_path, name="sym"):
    dst = tmp_path / f"{name}.h5"
    shutil.copy(ensembles[name], dst)
    return dst


@pytest.mark.parametrize("kind,match", [
    ("missing", "no such file"),
    ("text", "not a readable HDF5 ensemble"),
    ("directory", "not a readable HDF5 ensemble"),
    ("no phi", r"not a phi4si ensemble \(no configurations 'phi'\)"),
    ("no params", r"not a phi4si ensemble \(no configurations 'phi'\)"),
    ("none stored", r"holds 0 configuration\(s\) per chain"),
    ("one stored", r"holds 1 configuration\(s\) per chain"),
    ("nan", "contain NaN or inf"),
    ("zero spread", "zero or undefined spread"),
])
def test_refuses_bad_files(ensembles, tmp_path, kind, match):
    path = tmp_path / "bad.h5"
    if kind == "text":
        path.write_text("not hdf5\n")
    elif kind == "directory":
        path.mkdir()
    elif kind == "no phi":
        with h5py.File(path, "w") as f:
            f["x"] = np.zeros((2, 3))
            f.attrs["params"] = json.dumps(SYM.to_dict())
    elif kind == "no params":
        path = _copy(ensembles, tmp_path)
        with h5py.File(path, "r+") as f:
            del f.attrs["params"]
    elif kind == "none stored":
        path = ensembles["none"]
    elif kind == "one stored":
        path = ensembles["one"]
    elif kind == "nan":
        path = _copy(ensembles, tmp_path)
        with h5py.File(path, "r+") as f:
            f["phi"][1, 7, 2, 3] = np.nan
    elif kind == "zero spread":
        path = _copy(ensembles, tmp_path)
        with h5py.File(path, "r+") as f:
            f["phi"][...] = 0.0
    with pytest.raises(EnsembleFileError, match=match):
        EnsembleData(path)


def test_trains_only_on_committed_configurations(ensembles, tmp_path):
    """A run killed between writing a flush's data and the state that commits it (EnsembleWriter.append)
    leaves configurations past n_done in the file."""
    path = _copy(ensembles, tmp_path)
    with h5py.File(path, "r+") as f:
        n = f["cfg"].shape[0]
        f["cfg"].resize(n + 5, axis=0)
        f["cfg"][n:] = np.arange(n, n + 5)
        f["phi"].resize(n + 5, axis=1)
        f["phi"][:, n:] = 0.0
    with open_ensemble(path) as ds:
        committed = ds.sizes["cfg"]
    assert committed == N_TRAJ
    assert EnsembleData(path).n_cfg == committed


# ------------------------------------------------------------------------------------------------ ArrayData
def _array(n=10, c=1, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=(n, c, 4, 4)).astype(np.float32)


@pytest.mark.parametrize("n,val,n_val", [(10, 0.2, 2), (10, 0.1, 1), (10, 0.04, 1), (10, 0.0, 0), (40, 0.25, 10)])
def test_array_split_sizes(n, val, n_val):
    d = ArrayData(_array(n), params={"kind": "demo"}, val_fraction=val)
    assert (d.n_cfg, d.n_train, d.n_val, d.n_chains) == (n, n - n_val, n_val, 1)
    assert d.shape == (4, 4) and d.channels == 1 and not d.symmetric and not d.lattice_symmetries
    assert d.attrs == {"sampler": "demo"} and d.source == "<array>"


def test_array_normalisation_against_numpy():
    arr = _array(20, c=3)
    d = ArrayData(arr, params={}, val_fraction=0.25, model_defaults={"padding": "zeros"})
    train = arr[:15].astype(np.float64)
    assert d.mean == pytest.approx(train.mean(), rel=1e-12)
    assert d.scale == pytest.approx(train.std(), rel=1e-12)
    assert d.channels == 3 and d.model_defaults == {"padding": "zeros", "in_channels": 3}
    given = ArrayData(arr, params={}, mean=1.0, scale=4.0)
    assert (given.mean, given.scale) == (1.0, 4.0)
    b = given.batch(5, torch.Generator().manual_seed(0))
    assert _member(_rows(b.numpy() * 4.0 + 1.0), _rows(arr[:given.n_train]))


def test_array_batches_reproducible_and_split():
    arr = _array(12)
    d = ArrayData(arr, params={}, val_fraction=0.25)
    b = d.batch(20, torch.Generator().manual_seed(1))
    assert tuple(b.shape) == (20, 1, 4, 4)
    assert torch.equal(b, d.batch(20, torch.Generator().manual_seed(1)))
    assert not torch.equal(b, d.batch(20, torch.Generator().manual_seed(2)))
    v = d.validation(20, torch.Generator().manual_seed(1))
    assert _member(_rows(b.numpy() * d.scale + d.mean), _rows(arr[:9]))
    assert _member(_rows(v.numpy() * d.scale + d.mean), _rows(arr[9:]))
    with pytest.raises(ValueError, match="no validation data"):
        ArrayData(arr, params={}, val_fraction=0.0).validation(2, torch.Generator())


def test_array_augment():
    arr = _array(6)
    d = ArrayData(arr, params={}, augment=lambda x, g: -x)
    x = d.batch(3, torch.Generator().manual_seed(0))
    assert torch.equal(d.augment(x, torch.Generator()), -x)
    plain = ArrayData(arr, params={})
    assert plain.augment(x, torch.Generator()) is x


@pytest.mark.parametrize("arr,kw,match", [
    (np.zeros((10, 4)), {}, r"needs an array \(N, C, \*shape\)"),
    (np.full((10, 1, 4), np.nan), {}, "NaN or inf"),
    (np.ones((10, 1, 4)), {}, "zero or undefined spread"),
    (np.arange(40.0).reshape(10, 1, 4), {"val_fraction": 1.0}, "val_fraction"),
    (np.arange(4.0).reshape(1, 1, 4), {"val_fraction": 0.1}, "leave nothing to train on"),
    (np.arange(40.0).reshape(10, 1, 4), {"scale": 0.0}, "zero or undefined spread"),
])
def test_array_refusals(arr, kw, match):
    with pytest.raises(ValueError, match=match):
        ArrayData(arr, params={}, **kw)
