"""``phi4si train``, ``generate`` and ``inpaint`` end to end on a tiny ensemble, and their refusals.

The commands run in-process (``phi4si.cli.main`` through the ``cli`` fixture of conftest.py) on
a 4x4 free field with the "tiny" U-Net trained for 30 steps: the point is the plumbing (flags,
files, metadata, exact observed sites, errors), not the quality of the samples.  Every refused
command must exit non-zero with a one-line error and leave existing files byte-identical.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from phi4si import Phi4Params, open_ensemble
from phi4si.mcmc.run import sample_mcmc
from phi4si.model import load_model
from phi4si.model.train import TrainConfig, train

PARAMS = Phi4Params((4, 4), m2=1.0, lam=0.0)
TRAIN = ("--model", "tiny", "--batch-size", "16", "--warmup", "5", "--threads", "1", "--no-progress")
Q = ("--steps", "3", "--no-progress")     # quick integration for generate/inpaint


@pytest.fixture(scope="module")
def ens(tmp_path_factory) -> Path:
    """4x4 free-field ensemble, 2 chains x 200 stored configurations (read-only)."""
    path = tmp_path_factory.mktemp("cli_si") / "free4x4.h5"
    sample_mcmc(PARAMS, path, chains=2, n_traj=200, n_therm=20, seed=5, progress=False)
    return path


@pytest.fixture(scope="module")
def model(ens, tmp_path_factory) -> Path:
    """A tiny, exactly Z2-odd model trained by the command line (read-only)."""
    from phi4si.cli import main

    out = tmp_path_factory.mktemp("cli_model") / "tiny.pt"
    assert main(["train", "--data", str(ens), "--out", str(out), "--steps", "30", *TRAIN, "--odd"]) == 0
    return out


@pytest.fixture(scope="module")
def pooled(ens, tmp_path_factory) -> Path:
    """A model with one pooling level (lattice sides must be even)."""
    out = tmp_path_factory.mktemp("cli_pooled") / "pooled.pt"
    train(ens, out, TrainConfig(steps=3, model="tiny", model_overrides={"channel_mult": (1, 2)}, batch_size=16,
                                val_size=16, threads=1), progress=False)
    return out


@pytest.fixture(scope="module")
def ens1d(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli_1d") / "free8.h5"
    sample_mcmc(Phi4Params((8,), m2=1.0, lam=0.0), path, chains=1, n_traj=20, n_therm=5, seed=1, progress=False)
    return path


def _data(path, n):
    """The first n configurations of an ensemble, chain 0 first (what inpaint --n N reads)."""
    with open_ensemble(path) as ds:
        phi = ds["phi"].values
    return phi.reshape(-1, *phi.shape[2:])[:n]


def _samples(path):
    with open_ensemble(path) as ds:
        return ds["phi"].values, dict(ds.attrs)


def _digest(path):
    p = Path(path)
    return p.read_bytes(), p.stat().st_mtime_ns


def _refused(res, match, code=None):
    rc, out, err = res
    assert rc != 0 and (code is None or rc == code), (rc, err)
    assert "Traceback" not in err, err
    assert re.search(match, err), err
    return err


# ------------------------------------------------------------------------------------------------
# the good paths
# ------------------------------------------------------------------------------------------------
def test_solver_and_choice_names_match_the_library():
    from phi4si.cli import options
    from phi4si.interpolant.drifts import PARAMETRISATIONS
    from phi4si.interpolant.integrate import SOLVERS
    from phi4si.interpolant.measures import preset_measure
    from phi4si.nn.unet import _PRESETS

    assert options.SOLVERS == SOLVERS and options.PARAMETRISATIONS == PARAMETRISATIONS
    assert options.MODEL_PRESETS == tuple(_PRESETS)
    from phi4si.model import posterior

    for name in ("DEFAULT_A0", "DEFAULT_A0_NEGATIVE_K", "DEFAULT_PILOT", "DEFAULT_ROUNDS"):
        assert getattr(options, name) == getattr(posterior, name), name
    from phi4si.model.generate import DEFAULT_SOLVER, DEFAULT_STEPS
    from phi4si.model.z2 import Z2_MODES

    assert options.GENERATE_DEFAULTS == (DEFAULT_SOLVER, DEFAULT_STEPS) and options.Z2_MODES == Z2_MODES
    from phi4si.interpolant.likelihood import QUADRATURES

    assert options.QUADRATURES == QUADRATURES
    for name in options.MEASURES:
        preset_measure(name)


def test_train_records_command(model, ens):
    ck = torch.load(model, weights_only=False)
    assert ck["step"] == 30 and ck["final"] is True
    assert ck["command"].startswith("phi4si train --data ") and "--steps 30" in ck["command"]
    cfg = ck["train_config"]
    assert (cfg["model"], cfg["batch_size"], cfg["warmup"], cfg["steps"], cfg["minutes"]) == ("tiny", 16, 5, 30, None)
    assert Path(str(model) + ".log").exists()


def test_generate_and_analyze(cli, model, tmp_path):
    out = tmp_path / "gen.h5"
    rc, _, err = cli("generate", "--model", model, "--n", "40", "--out", out, "--seed", "7", "--solver", "rk4", *Q)
    assert rc == 0, err
    phi, attrs = _samples(out)
    assert phi.shape == (1, 40, 4, 4) and phi.dtype == np.float32 and np.isfinite(phi).all()
    s, run = attrs["sampler"], attrs["run"]
    assert s["sampler"] == "interpolant" and s["exact"] is False and s["task"] == "generate"
    assert (s["solver"], s["steps"], s["sde"], s["grid_power"]) == ("rk4", 3, None, 1.0)
    assert s["model"] == str(model.resolve()) and s["model_step"] == 30
    assert attrs["params"] == PARAMS.to_dict()
    assert run["seed"] == 7 and run["command"].startswith("phi4si generate --model") and attrs["wall_time"] > 0
    assert attrs["n_done"] == 40
    # the same command with the same seed gives the same samples
    rc, _, _ = cli("generate", "--model", model, "--n", "40", "--out", tmp_path / "again.h5", "--seed", "7",
                   "--solver", "rk4", *Q)
    assert rc == 0 and np.array_equal(_samples(tmp_path / "again.h5")[0], phi)
    # analyze knows these are not exact samples, and says so instead of the Langevin note
    rc, table, err = cli("analyze", out)
    assert rc == 0, err
    assert "NOTE: raw samples of a trained interpolant, not exact" in table
    assert "Langevin" not in table and "acceptance" not in table
    assert "sampler interpolant (generate)" in table and "solver rk4" in table
    rc, js, _ = cli("analyze", out, "--json")
    assert rc == 0 and '"interpolant"' in js
    rc, listing, err = cli("plot", out, "--out", tmp_path / "plots")
    assert rc == 0, err
    assert sorted(Path(x).name for x in listing.split()) == ["configs.png", "correlator.png", "hist_m.png",
                                                            "history.png"]


def test_generate_sde_larger_lattice_float64(cli, model, tmp_path):
    out = tmp_path / "big.h5"
    rc, _, err = cli("generate", "--model", model, "--n", "8", "--out", out, "--shape", "6", "8", "--sde", "0.5",
                     "--dtype", "float64", "--grid-power", "2", "--batch-size", "3", *Q)
    assert rc == 0, err
    phi, attrs = _samples(out)
    assert phi.shape == (1, 8, 6, 8) and phi.dtype == np.float64
    assert attrs["params"] == dict(PARAMS.to_dict(), shape=[6, 8])
    s = attrs["sampler"]
    assert (s["solver"], s["sde"], s["grid_power"], s["batch_size"]) == ("euler-maruyama", 0.5, 2.0, 3)
    rc, table, _ = cli("analyze", out)
    assert rc == 0 and "sde 0.5" in table


@pytest.mark.parametrize("order", [("raster", "--block", "2"), ("reverse", "--block", "2x4"),
                                   ("random", "--block", "1"), ("coarse_to_fine", "--levels", "2")],
                         ids=lambda o: o[0])
def test_generate_sequential(cli, model, tmp_path, order):
    out = tmp_path / "seq.h5"
    rc, _, err = cli("generate", "--model", model, "--n", "6", "--out", out, "--order", *order, "--steps", "2",
                     "--no-progress")
    assert rc == 0, err
    phi, attrs = _samples(out)
    assert phi.shape == (1, 6, 4, 4) and np.isfinite(phi).all()
    s = attrs["sampler"]
    assert s["task"] == "sequential" and s["order"] == order[0] and s["steps"] == 2 and s["steps_per"] == "block"
    if order[0] == "coarse_to_fine":
        assert s["levels"] == 2 and s["block"] is None
    else:
        assert s["block"] is not None and s["levels"] is None
    rc, table, _ = cli("analyze", out)
    assert rc == 0 and "per block" in table


def _mask_npy(tmp_path, shape=(4, 4)):
    m = np.zeros(shape, bool)
    m[0, :] = True
    m[2, 1] = True
    path = tmp_path / "mask.npy"
    np.save(path, m)
    return path, m


@pytest.mark.parametrize("kind", ["block", "random", "npy", "npy01"])
def test_inpaint_keeps_observed_sites(cli, model, ens, tmp_path, kind):
    if kind == "block":
        spec, mask = "block:2x3@3,2", None
    elif kind == "random":
        spec, mask = "random:0.4", None
    else:
        path, mask = _mask_npy(tmp_path)
        if kind == "npy01":
            np.save(path, mask.astype(np.int64))
        spec = str(path)
    out = tmp_path / "inp.h5"
    n = 230   # more than one chain holds: chain 0 (200 configurations) and 30 of chain 1
    rc, _, err = cli("inpaint", "--model", model, "--data", ens, "--mask", spec, "--n", n, "--out", out,
                     "--seed", "3", *Q)
    assert rc == 0, err
    phi, attrs = _samples(out)
    data = _data(ens, n)
    s = attrs["sampler"]
    unknown = np.asarray(s["unknown"], bool)
    if kind == "block":   # rows 3, 0 (periodic) x columns 2, 3, 0
        expect = np.zeros((4, 4), bool)
        expect[np.ix_([3, 0], [2, 3, 0])] = True
        assert np.array_equal(unknown, expect)
    elif mask is not None:
        assert np.array_equal(unknown, mask)
    assert s["mask"] == spec and s["task"] == "inpaint" and s["n_unknown"] == unknown.sum()
    assert s["data"] == str(Path(ens).resolve())
    assert phi.shape == (1, n, 4, 4) and phi.dtype == data.dtype == np.float64
    assert np.array_equal(phi[0][:, ~unknown], data[:, ~unknown])      # bit for bit
    assert not np.array_equal(phi[0][:, unknown], data[:, unknown])
    assert np.isfinite(phi).all()
    rc, table, _ = cli("analyze", out)
    assert rc == 0 and "sampler interpolant (inpaint)" in table


def test_inpaint_sequential_and_default_n(cli, model, ens, tmp_path):
    out = tmp_path / "inp.h5"
    rc, _, err = cli("inpaint", "--model", model, "--data", ens, "--mask", "block:2x2@0,0", "--out", out,
                     "--order", "raster", "--block", "1", "--steps", "1", "--no-progress", "--dtype", "float32")
    assert rc == 0, err
    phi, attrs = _samples(out)
    data = _data(ens, 400)
    assert phi.shape == (1, 400, 4, 4) and phi.dtype == np.float32     # default: every configuration
    unknown = np.asarray(attrs["sampler"]["unknown"], bool)
    assert attrs["sampler"]["task"] == "sequential_inpaint" and unknown.sum() == 4
    assert np.array_equal(phi[0][:, ~unknown], data[:, ~unknown].astype(np.float32))


@pytest.mark.parametrize("order", [(), ("--order", "raster", "--block", "2")], ids=["inpaint", "sequential"])
def test_inpaint_other_lattice_size(cli, model, tmp_path, order):
    """A model trained on 4x4 completes 6x6 configurations (fully convolutional net)."""
    data = tmp_path / "e66.h5"
    sample_mcmc(Phi4Params((6, 6), m2=1.0, lam=0.0), data, chains=1, n_traj=10, n_therm=2, seed=1, progress=False)
    out = tmp_path / "o.h5"
    rc, _, err = cli("inpaint", "--model", model, "--data", data, "--mask", "block:3x2@4,5", "--out", out, *order, *Q)
    assert rc == 0, err
    phi, attrs = _samples(out)
    unknown = np.asarray(attrs["sampler"]["unknown"], bool)
    assert phi.shape == (1, 10, 6, 6) and unknown.shape == (6, 6) and attrs["params"]["shape"] == [6, 6]
    assert np.array_equal(phi[0][:, ~unknown], _data(data, 10)[:, ~unknown])


def test_inpaint_couplings_warning(cli, model, tmp_path):
    other = tmp_path / "other.h5"
    sample_mcmc(Phi4Params((4, 4), m2=2.0, lam=0.0), other, chains=1, n_traj=10, n_therm=2, seed=1,
                progress=False)
    rc, _, err = cli("inpaint", "--model", model, "--data", other, "--mask", "random:0.5", "--out",
                     tmp_path / "o.h5", *Q)
    assert rc == 0 and "warning: the data" in err
    assert _samples(tmp_path / "o.h5")[1]["params"]["m2"] == 1.0


def test_train_steps_and_minutes(cli, ens, tmp_path):
    out = tmp_path / "m.pt"
    rc, _, err = cli("train", "--data", ens, "--out", out, "--steps", "4", "--minutes", "10", *TRAIN)
    assert rc == 0, err
    ck = torch.load(out, weights_only=False)
    assert ck["step"] == 4 and ck["train_config"]["minutes"] == 10.0
    rc, _, err = cli("train", "--data", ens, "--out", tmp_path / "t.pt", "--minutes", "0.0001", *TRAIN)
    assert rc == 0, err
    assert torch.load(tmp_path / "t.pt", weights_only=False)["train_config"]["steps"] is None


def test_train_neither_steps_nor_minutes(cli, ens, tmp_path, monkeypatch):
    import phi4si.model.train as tr

    seen = {}
    monkeypatch.setattr(tr, "train", lambda data, out, cfg, **kw: seen.update(cfg=cfg, **kw) or
                        {"step": 0, "wall_time": 0.0, "history": []})
    rc, _, err = cli("train", "--data", ens, "--out", tmp_path / "m.pt", "--no-progress", "--odd", "--ema", "0.9",
                     "--param", "eta1", "--measure", "curriculum", "--no-augment", "--lr", "1e-3", "--seed", "4")
    assert rc == 0, err
    cfg = seen["cfg"]
    assert (cfg.steps, cfg.minutes) == (2000, None)
    assert (cfg.odd, cfg.ema, cfg.param, cfg.measure, cfg.augment, cfg.lr, cfg.seed) == \
        (True, 0.9, "eta1", "curriculum", False, 1e-3, 4)
    assert seen["command"].startswith("phi4si train") and seen["progress"] is False
    rc, _, _ = cli("train", "--data", ens, "--out", tmp_path / "m.pt", "--no-odd")
    assert rc == 0 and seen["cfg"].odd is False and seen["progress"] is None      # a bar only where someone watches (phi4si.progress)


def test_train_resume(cli, ens, tmp_path):
    """Interrupted run (API, 10 of 20 steps) continued by the CLI without --steps: it goes on to 20,
    bit-identical to an uninterrupted run; changed settings are refused, the file untouched."""
    cfg = TrainConfig(steps=20, model="tiny", batch_size=16, warmup=5, threads=1)
    out, ref = tmp_path / "m.pt", tmp_path / "ref.pt"
    train(ens, out, cfg, progress=False, max_steps_this_call=10)
    train(ens, ref, cfg, progress=False)
    before = _digest(out)
    _refused(cli("train", "--data", ens, "--out", out, "--resume", *TRAIN, "--lr", "1e-3"),
             r"^phi4si train: error: cannot resume .*setting lr was 0\.002, now 0\.001", code=1)
    assert _digest(out) == before
    rc, _, err = cli("train", "--data", ens, "--out", out, "--resume", *TRAIN)
    assert rc == 0, err
    a, b = torch.load(out, weights_only=False), torch.load(ref, weights_only=False)
    assert a["step"] == 20 and all(torch.equal(a["ema_state"][k], b["ema_state"][k]) for k in a["ema_state"])


# ------------------------------------------------------------------------------------------------
# refusals: clear one-line error, non-zero exit, existing files untouched
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def victim(tmp_path):
    """An existing output file that no refused command may change."""
    p = tmp_path / "victim.h5"
    p.write_bytes(b"precious")
    return p


def _bad_model(tmp_path, kind):
    if kind == "missing":
        return tmp_path / "nope.pt"
    p = tmp_path / "bad.pt"
    if kind == "text":
        p.write_text("hello\n")
    elif kind == "other":
        torch.save({"format": "something-else"}, p)
    elif kind == "damaged":
        ck = torch.load(_bad_model.model, weights_only=False)
        ck["ema_state"] = {"nonsense": torch.zeros(1)}
        torch.save(ck, p)
    return p


GEN_BAD = [
    (["--n", "0"], r"--n must be >= 1"),
    (["--n", "-3"], r"--n must be >= 1"),
    (["--n", "x"], r"--n: not an integer"),
    (["--n", "2", "--steps", "0"], r"--steps must be >= 1"),
    (["--n", "2", "--solver", "midpoint"], r"--solver: invalid choice"),
    (["--n", "2", "--sde", "-0.5"], r"--sde diffusion must be a finite number >= 0"),
    (["--n", "2", "--sde", "nan"], r"--sde: must be finite"),
    (["--n", "2", "--sde", "0.5", "--solver", "rk4"], r"--solver applies to the ODE"),
    (["--n", "2", "--grid-power", "0"], r"--grid-power: must be > 0"),
    (["--n", "2", "--batch-size", "0"], r"--batch-size must be >= 1"),
    (["--n", "2", "--seed", "-1"], r"--seed must be an integer >= 0"),
    (["--n", "2", "--shape", "4", "4", "4"], r"trained on a 2-d lattice"),
    (["--n", "2", "--shape", "8"], r"trained on a 2-d lattice"),
    (["--n", "2", "--shape", "1", "4"], r"--shape: must be >= 2"),
    (["--n", "2", "--order", "raster"], r"--order raster needs --block"),
    (["--n", "2", "--block", "2"], r"--block applies to sequential generation only"),
    (["--n", "2", "--levels", "2"], r"--levels applies to sequential generation only"),
    (["--n", "2", "--order", "raster", "--block", "5"], r"block .* does not fit"),
    (["--n", "2", "--order", "raster", "--block", "2x2x2"], r"block .* does not fit"),
    (["--n", "2", "--order", "raster", "--block", "0"], r"--block: block sides must be >= 1"),
    (["--n", "2", "--order", "coarse_to_fine", "--levels", "4"], r"coarse-to-fine with 4 levels"),
    (["--n", "2", "--order", "coarse_to_fine", "--block", "2"], r"does not use --block"),
    (["--n", "2", "--order", "snake", "--block", "2"], r"--order: invalid choice"),
    (["--n", "2", "--device", "tpu"], r"--device: must be cpu, cuda"),
    (["--n", "2", "--dtype", "float16"], r"--dtype: invalid choice"),
    (["--n", "2", "--z2", "flip"], r"--z2: invalid choice"),
    (["--n", "2", "--z2", "sign"], r"^phi4si generate: error: --z2 sign: this network is exactly Z2-odd already"),
    (["--n", "2", "--z2", "sign", "--h", "0.1"], r"--z2 sign needs a Z2-symmetric task, but the field h = 0.1"),
]


@pytest.mark.parametrize("args, match", GEN_BAD, ids=[" ".join(a) for a, _ in GEN_BAD])
def test_generate_refuses(cli, model, victim, args, match):
    before = _digest(victim)
    _refused(cli("generate", "--model", model, "--out", victim, "--overwrite", *args, "--no-progress"), match)
    assert _digest(victim) == before


@pytest.mark.parametrize("kind, match", [("missing", "no such model file"), ("text", "not a readable torch"),
                                         ("other", "not a phi4si model checkpoint"),
                                         ("damaged", "damaged or incompatible")])
def test_generate_bad_model(cli, model, victim, tmp_path, kind, match):
    _bad_model.model = model
    before = _digest(victim)
    _refused(cli("generate", "--model", _bad_model(tmp_path, kind), "--n", "2", "--out", victim, "--overwrite",
                 *Q), match, code=1)
    assert _digest(victim) == before


def test_generate_side_not_multiple_of_pooling(cli, pooled, victim, tmp_path):
    before = _digest(victim)
    _refused(cli("generate", "--model", pooled, "--n", "2", "--out", victim, "--overwrite", "--shape", "6", "5", *Q),
             r"multiples of 2", code=1)
    assert _digest(victim) == before
    rc, _, err = cli("generate", "--model", pooled, "--n", "2", "--out", tmp_path / "ok.h5", "--shape", "6", "8", *Q)
    assert rc == 0, err


def test_generate_out_exists(cli, model, victim, tmp_path):
    before = _digest(victim)
    _refused(cli("generate", "--model", model, "--n", "2", "--out", victim, *Q), r"exists; pass --overwrite", code=1)
    assert _digest(victim) == before
    _refused(cli("generate", "--model", model, "--n", "2", "--out", tmp_path / "no" / "x.h5", *Q),
             r"output directory .* does not exist", code=1)
    _refused(cli("generate", "--model", model, "--n", "2", "--out", tmp_path, "--overwrite", *Q), r"is a directory")
    rc, _, err = cli("generate", "--model", model, "--n", "2", "--out", victim, "--overwrite", *Q)
    assert rc == 0 and _samples(victim)[0].shape == (1, 2, 4, 4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(cli, model, ens, victim, tmp_path):
    before = _digest(victim)
    _refused(cli("generate", "--model", model, "--n", "2", "--out", victim, "--overwrite", "--device", "cuda", *Q),
             r"no CUDA device", code=1)
    _refused(cli("inpaint", "--model", model, "--data", ens, "--mask", "random:0.5", "--out", victim, "--overwrite",
                 "--device", "cuda:0", *Q), r"no CUDA device", code=1)
    _refused(cli("train", "--data", ens, "--out", tmp_path / "m.pt", "--steps", "2", "--device", "cuda", *TRAIN),
             r"no CUDA device", code=1)
    assert _digest(victim) == before and not (tmp_path / "m.pt").exists()


INPAINT_BAD = [
    (["--mask", "blob:3"], r"cannot parse mask 'blob:3'"),
    (["--mask", "block:2x2"], r"cannot parse mask"),
    (["--mask", "block:5x2@0,0"], r"does not fit the lattice"),
    (["--mask", "block:2x2@0,4"], r"does not fit the lattice"),
    (["--mask", "block:2x2x2@0,0,0"], r"give 2 sizes and 2 coordinates"),
    (["--mask", "random:0"], r"fraction must be in \(0, 1\]"),
    (["--mask", "random:1.5"], r"fraction must be in \(0, 1\]"),
    (["--mask", "random:abc"], r"fraction must be in|cannot parse mask"),
    (["--mask", "missing.npy"], r"mask file .* does not exist"),
    (["--mask", "random:0.5", "--n", "0"], r"--n must be >= 1"),
    (["--mask", "random:0.5", "--n", "401"], r"holds only 400 configurations"),
    (["--mask", "random:0.5", "--steps", "0"], r"--steps must be >= 1"),
    (["--mask", "random:0.5", "--solver", "x"], r"--solver: invalid choice"),
    (["--mask", "random:0.5", "--sde", "-1"], r"--sde diffusion must be a finite number >= 0"),
    (["--mask", "random:0.5", "--order", "random"], r"needs --block"),
]


@pytest.mark.parametrize("args, match", INPAINT_BAD, ids=[" ".join(a) for a, _ in INPAINT_BAD])
def test_inpaint_refuses(cli, model, ens, victim, args, match):
    before = _digest(victim)
    _refused(cli("inpaint", "--model", model, "--data", ens, "--out", victim, "--overwrite", *args, "--no-progress"),
             match)
    assert _digest(victim) == before


@pytest.mark.parametrize("kind, match", [("shape", r"mask file .* has shape \(4, 5\), the lattice is \(4, 4\)"),
                                         ("empty", r"marks no site as unknown"),
                                         ("values", r"must hold booleans or 0/1"),
                                         ("garbage", r"not a readable .npy array")])
def test_inpaint_bad_mask_file(cli, model, ens, victim, tmp_path, kind, match):
    p = tmp_path / "m.npy"
    if kind == "shape":
        _mask_npy(tmp_path, (4, 5))
    elif kind == "empty":
        np.save(p, np.zeros((4, 4), bool))
    elif kind == "values":
        np.save(p, np.full((4, 4), 2))
    else:
        p.write_text("not numpy")
    if kind == "shape":
        p = tmp_path / "mask.npy"
    before = _digest(victim)
    _refused(cli("inpaint", "--model", model, "--data", ens, "--mask", p, "--out", victim, "--overwrite", *Q), match,
             code=1)
    assert _digest(victim) == before


def test_inpaint_bad_data(cli, model, pooled, ens, ens1d, victim, tmp_path):
    before = _digest(victim)
    base = ("--mask", "random:0.5", "--out", victim, "--overwrite", *Q)
    _refused(cli("inpaint", "--model", model, "--data", ens1d, *base), r"free8.h5 \(lattice 8\).*2-d lattice", code=1)
    _refused(cli("inpaint", "--model", model, "--data", tmp_path / "none.h5", *base), r"no such file", code=1)
    text = tmp_path / "text.h5"
    text.write_text("no hdf5")
    _refused(cli("inpaint", "--model", model, "--data", text, *base), r"text.h5", code=1)
    odd = tmp_path / "odd.h5"   # a 4x5 lattice for a net that pools once
    sample_mcmc(Phi4Params((4, 5), m2=1.0, lam=0.0), odd, chains=1, n_traj=5, n_therm=1, seed=1, progress=False)
    _refused(cli("inpaint", "--model", pooled, "--data", odd, *base), r"multiples of 2", code=1)
    none = tmp_path / "none_stored.h5"
    sample_mcmc(PARAMS, none, chains=1, n_traj=5, n_therm=1, every=0, seed=1, progress=False)
    _refused(cli("inpaint", "--model", model, "--data", none, *base), r"no stored configurations", code=1)
    _refused(cli("inpaint", "--model", model, "--data", victim, "--mask", "random:0.5", "--out", victim,
                 "--overwrite", *Q), r"--out is the --data file", code=1)
    _refused(cli("inpaint", "--model", tmp_path / "nope.pt", "--data", ens, *base), r"no such model file", code=1)
    assert _digest(victim) == before


def test_train_refuses(cli, ens, model, tmp_path):
    out = tmp_path / "m.pt"
    shutil.copyfile(model, out)
    before = _digest(out)
    cases = [
        (["--steps", "2"], r"exists; pass --overwrite to replace it or --resume"),
        (["--steps", "2", "--resume", "--overwrite"], r"--resume and --overwrite exclude each other"),
        (["--steps", "0", "--overwrite"], r"steps must be >= 1"),
        (["--minutes", "-1", "--overwrite"], r"minutes must be > 0"),
        (["--minutes", "inf", "--overwrite"], r"--minutes: must be finite"),
        (["--steps", "2", "--lr", "0", "--overwrite"], r"lr must be a finite number > 0"),
        (["--steps", "2", "--ema", "1", "--overwrite"], r"ema must be in \[0, 1\)"),
        (["--steps", "2", "--batch-size", "0", "--overwrite"], r"batch_size must be >= 1"),
        (["--steps", "2", "--model", "huge", "--overwrite"], r"--model: invalid choice"),
        (["--steps", "2", "--measure", "x", "--overwrite"], r"--measure: invalid choice"),
        (["--steps", "2", "--param", "x", "--overwrite"], r"--param: invalid choice"),
        (["--steps", "2", "--resume", "--model", "small"], r"cannot resume .*setting model was 'tiny', now 'small'"),
    ]
    for args, match in cases:
        tr = TRAIN[2:] if "--model" in args else TRAIN      # TRAIN starts with --model tiny
        _refused(cli("train", "--data", ens, "--out", out, *tr, *args), match)
        assert _digest(out) == before, args
    # --resume without a checkpoint; data that are missing, not an ensemble, NaN; out is the data / a folder
    _refused(cli("train", "--data", ens, "--out", tmp_path / "new.pt", "--resume", *TRAIN), r"does not exist", code=1)
    assert not (tmp_path / "new.pt").exists()
    _refused(cli("train", "--data", tmp_path / "no.h5", "--out", tmp_path / "new.pt", "--steps", "2", *TRAIN),
             r"no\.h5: no such file", code=1)
    bad = tmp_path / "nan.h5"
    shutil.copyfile(ens, bad)
    with h5py.File(bad, "r+") as f:
        f["phi"][1, 2, 0, 3] = np.inf
    _refused(cli("train", "--data", bad, "--out", tmp_path / "new.pt", "--steps", "2", *TRAIN), r"NaN or inf", code=1)
    _refused(cli("train", "--data", bad, "--out", bad, "--steps", "2", "--overwrite", *TRAIN), r"--out is the --data")
    _refused(cli("train", "--data", ens, "--out", tmp_path, "--steps", "2", "--overwrite", *TRAIN), r"is a directory")
    assert not (tmp_path / "new.pt").exists()


def test_train_odd_needs_symmetric_data(cli, tmp_path):
    data = tmp_path / "h.h5"
    sample_mcmc(Phi4Params((4, 4), m2=1.0, lam=0.0, h=0.3), data, chains=1, n_traj=20, n_therm=2, seed=1,
                progress=False)
    _refused(cli("train", "--data", data, "--out", tmp_path / "m.pt", "--steps", "2", "--odd", *TRAIN),
             r"odd=True needs a Z2-symmetric prior", code=1)
    rc, _, err = cli("train", "--data", data, "--out", tmp_path / "m.pt", "--steps", "2", *TRAIN)
    assert rc == 0, err
    assert load_model(tmp_path / "m.pt").mean != 0.0     # h != 0: data mean subtracted, no odd symmetry


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from phi4si.cli import build_parser; build_parser(); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("eps", [None, 0.0, float("nan")])
def test_format_table_without_eps(ens, eps):
    from phi4si.analysis.report import analyze_file, format_table

    res = analyze_file(ens)
    res["eps"] = eps
    table = format_table(res)
    assert f"eps {'0' if eps == 0.0 else 'n/a'}" in table
    assert "NOTE" not in table        # an exact sampler: no note
    res["sampler"] = dict(res["sampler"], sampler="langevin", exact=False)
    assert "NOTE: unadjusted Langevin" in format_table(res)


# ---------------------------------------------------------------- sample-neural (exact sampling)

NQ = ("--steps", "2", "--no-progress")


@pytest.mark.parametrize("method,extra", [("reweight", ()), ("imh", ("--chains", "2")),
                                          ("block", ("--chains", "3", "--block", "2", "--updates", "2")),
                                          ("hybrid", ("--chains", "2", "--block", "2", "--hmc-eps", "0.2"))])
def test_sample_neural_methods(cli, model, tmp_path, method, extra):
    out = tmp_path / f"{method}.h5"
    rc, _, err = cli("sample-neural", "--model", model, "--method", method, "--n", "6", "--out", out, "--h", "0.1",
                     *extra, *NQ)
    assert rc == 0, err
    phi, attrs = _samples(out)
    s = attrs["sampler"]
    assert s["sampler"] == "neural" and s["method"] == method and s["reward"] == {"h": 0.1, "k": 0.0}
    assert attrs["params"]["h"] == 0.1 and attrs["run"]["command"].startswith("phi4si sample-neural")
    assert np.isfinite(phi).all() and phi.shape[1] == 6
    rc, table, _ = cli("analyze", out)
    assert rc == 0 and "sampler neural" in table
    if method == "reweight":
        with open_ensemble(out) as ds:
            assert "log_w" in ds and ds["log_w"].shape == (1, 6)
        assert "ESS/N" in table
    else:
        assert "acceptance" in table


def test_sample_neural_exact_divergence_float64(cli, model, tmp_path):
    out = tmp_path / "w.h5"
    rc, _, err = cli("sample-neural", "--model", model, "--method", "reweight", "--n", "3", "--out", out,
                     "--divergence", "exact", "--float64", "--solver", "heun", "--quadrature", "gauss2", *NQ)
    assert rc == 0, err
    flow = _samples(out)[1]["sampler"]["flow"]
    assert flow["divergence"] == "exact" and flow["quadrature"] == "gauss2"
    rc, _, err = cli("sample-neural", "--model", model, "--method", "reweight", "--n", "3", "--out",
                     tmp_path / "q.h5", "--quadrature", "simpson", *NQ)
    assert rc == 2 and "invalid choice: 'simpson'" in err and not (tmp_path / "q.h5").exists()


@pytest.mark.parametrize("args,match", [
    (("--method", "imh", "--probes", "2", "--divergence", "exact"), "--probes applies"),
    (("--method", "imh", "--period", "2", "--divergence", "hutchinson"), "--period applies"),
    (("--method", "imh", "--block", "2"), "--block applies"),
    (("--method", "block", "--hmc-eps", "0.1"), "--hmc-eps applies"),
    (("--method", "reweight", "--chains", "2"), "--chains applies"),
    (("--method", "block", "--block", "5"), "does not fit"),
    (("--method", "imh", "--n", "0"), "--n must be"),
    (("--method", "imh", "--steps", "0"), "--steps must be"),
    (("--method", "gibbs",), "invalid choice"),
    (("--method", "imh", "--divergence", "hutchinson", "--probes", "0"), "--probes must be"),
    (("--method", "imh", "--period", "0"), "--period must be"),
    (("--method", "imh", "--chains", "0"), "--chains must be"),
    (("--method", "imh", "--batch-size", "0"), "--batch-size must be"),
    (("--method", "imh", "--max-batch", "0"), "--max-batch must be"),
    (("--method", "block", "--updates", "0"), "--updates must be"),
    (("--method", "hybrid", "--hmc-traj", "0"), "--hmc-traj must be"),
    (("--method", "hybrid", "--hmc-steps", "0"), "--hmc-steps must be"),
    (("--method", "block", "--n-therm", "-1"), "--n-therm must be"),
    (("--method", "imh", "--seed", "-1"), "--seed must be"),
    (("--method", "imh", "--h", "nan"), "--h"),
])
def test_sample_neural_refuses(cli, model, victim, args, match):
    if "--n" not in args:
        args = args + ("--n", "2")
    before = _digest(victim)
    rc, _, err = cli("sample-neural", "--model", model, "--out", victim, "--overwrite", *args, "--no-progress")
    assert rc != 0 and match in err
    assert _digest(victim) == before


@pytest.fixture(scope="module")
def one_pass(ens, tmp_path_factory) -> Path:
    """A tiny one-pass model (--no-odd) of the symmetric free field."""
    from phi4si.cli import main

    out = tmp_path_factory.mktemp("cli_one_pass") / "one.pt"
    assert main(["train", "--data", str(ens), "--out", str(out), "--steps", "3", "--no-odd", *TRAIN]) == 0
    return out


def test_z2_records_and_modes(cli, model, one_pass, tmp_path):
    """--z2 auto resolves per model (odd network: 'odd', one-pass: 'sign'), --z2 none gives the
    network's own samples, and the output says both the mode and what it did."""
    runs = {}
    for name, m, z2 in (("odd", model, "auto"), ("one", one_pass, "auto"), ("none", one_pass, "none"),
                        ("sign", one_pass, "sign")):
        out = tmp_path / f"{name}.h5"
        rc, _, err = cli("generate", "--model", m, "--n", "8", "--out", out, "--z2", z2, *Q)
        assert rc == 0, err
        runs[name] = _samples(out)
    assert (runs["odd"][1]["sampler"]["z2"], runs["odd"][1]["sampler"]["z2_applied"]) == ("auto", "odd")
    assert runs["one"][1]["sampler"]["z2_applied"] == "sign" and runs["none"][1]["sampler"]["z2_applied"] == "none"
    assert np.array_equal(runs["one"][0], runs["sign"][0]) and not np.array_equal(runs["one"][0], runs["none"][0])
    out = tmp_path / "w.h5"
    rc, _, err = cli("sample-neural", "--model", one_pass, "--method", "reweight", "--n", "4", "--out", out, *NQ)
    assert rc == 0, err
    assert _samples(out)[1]["sampler"]["flow"]["z2"] == "auto"


def test_sample_neural_refuses_z2_sign_with_an_odd_network(cli, model, victim):
    before = _digest(victim)
    _refused(cli("sample-neural", "--model", model, "--method", "imh", "--n", "2", "--out", victim, "--overwrite",
                 "--z2", "sign", *NQ), r"--z2 sign: this network is exactly Z2-odd already", code=1)
    assert _digest(victim) == before


def test_sample_neural_refuses_existing_output_and_bad_model(cli, model, victim, tmp_path):
    before = _digest(victim)
    rc, _, err = cli("sample-neural", "--model", model, "--method", "imh", "--n", "2", "--out", victim, *NQ)
    assert rc == 1 and "exists" in err and _digest(victim) == before
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    rc, _, err = cli("sample-neural", "--model", bad, "--method", "imh", "--n", "2", "--out", tmp_path / "o.h5", *NQ)
    assert rc == 1 and "not a readable torch checkpoint" in err and not (tmp_path / "o.h5").exists()


def test_sample_neural_resume(cli, model, tmp_path):
    out = tmp_path / "imh.h5"
    base = ("sample-neural", "--model", model, "--method", "imh", "--chains", "2", "--out", out, "--batch-size", "4", *NQ)
    assert cli(*base, "--n", "2")[0] == 0
    rc, _, err = cli(*base, "--n", "4", "--resume")
    assert rc == 0, err
    phi, attrs = _samples(out)
    assert phi.shape[1] == 4 and len(attrs["run"]["resumed"]) == 1
    rc, _, err = cli(*base, "--n", "6", "--resume", "--overwrite")
    assert rc == 1 and "exclude" in err


def test_sample_neural_resume_keeps_the_files_quadrature(cli, model, tmp_path):
    """--resume without --quadrature continues with the file's own; a file written before the flag
    existed (no quadrature in its record) was integrated at the stages, and resumes so."""
    import json

    import h5py

    out = tmp_path / "old.h5"
    base = ("sample-neural", "--model", model, "--method", "reweight", "--out", out, "--batch-size", "2", *NQ)
    assert cli(*base, "--n", "2", "--quadrature", "stages")[0] == 0
    with h5py.File(out, "r+") as f:
        sampler = json.loads(f.attrs["sampler"])
        del sampler["flow"]["quadrature"]
        f.attrs["sampler"] = json.dumps(sampler)
    rc, _, err = cli(*base, "--n", "4", "--resume")
    assert rc == 0, err
    assert _samples(out)[0].shape[1] == 4
    rc, _, err = cli(*base, "--n", "6", "--resume", "--quadrature", "gauss2")
    assert rc == 1 and "'quadrature': 'stages'" in err


def test_sample_neural_hybrid_on_a_larger_lattice_with_windows(cli, model, tmp_path):
    """--shape: the exact block and hybrid samplers on a larger lattice than the model's; --window: the
    block's flow on a window (recorded); a window that does not fit is refused before anything is written."""
    out = tmp_path / "hy.h5"
    base = ("sample-neural", "--model", model, "--method", "hybrid", "--shape", "8", "8", "--block", "2",
            "--chains", "2", "--n", "2", "--hmc-steps", "2", *NQ)
    rc, _, err = cli(*base, "--window", "4", "--out", out)
    assert rc == 0, err
    phi, attrs = _samples(out)
    assert phi.shape[2:] == (8, 8) and attrs["params"]["shape"] == [8, 8] and attrs["sampler"]["window"] == [4, 4]
    rc, _, err = cli(*base, "--window", "3", "--out", tmp_path / "bad.h5")
    assert rc == 1 and "--window 3: every side must be at least the block's plus 2" in err
    assert not (tmp_path / "bad.h5").exists()


def test_sample_neural_resume_of_a_missing_file(cli, model, tmp_path):
    out = tmp_path / "none.h5"
    rc, _, err = cli("sample-neural", "--model", model, "--method", "imh", "--n", "2", "--out", out, "--resume", *NQ)
    assert rc == 1 and "does not exist" in err and not out.exists()


# ---------------------------------------------------------------- train --net (architecture overrides)
def test_train_net_overrides_reach_the_checkpoint(cli, ens, tmp_path):
    out = tmp_path / "gn.pt"
    rc, _, err = cli("train", "--data", ens, "--out", out, "--steps", "2", *TRAIN, "--net", "norm=group",
                     "--net", "linear_head=false", "--net", "channel_mult=1")
    assert rc == 0, err
    ck = torch.load(out, map_location="cpu", weights_only=False)
    assert ck["model_config"]["norm"] == "group" and ck["model_config"]["linear_head"] is False
    assert tuple(ck["model_config"]["channel_mult"]) == (1,)
    assert load_model(out).net.config.norm == "group"


@pytest.mark.parametrize("spec,match", [("norm", "KEY=VALUE"), ("width=3", "not a U-Net field"),
                                        ("odd=true", "odd from --odd"), ("norm=batch", "norm must be one of")])
def test_train_net_refusals(cli, ens, tmp_path, spec, match):
    victim = tmp_path / "keep.pt"
    victim.write_bytes(b"precious")
    _refused(cli("train", "--data", ens, "--out", victim, "--overwrite", "--steps", "2", *TRAIN, "--net", spec), match)
    assert victim.read_bytes() == b"precious"
