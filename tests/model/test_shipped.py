"""Shipped models (data/models, phi4si.model.shipped): every model in the manifest loads by name,
matches its SHA-256 and generates at its lattice; the weights-only export gives the same drift; bad
names, damaged files and a resume of a weights-only checkpoint are refused clearly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from phi4si import Phi4Params, TrainConfig, generate, load_model, sample_mcmc, train
from phi4si.errors import CheckpointError, ResumeError
from phi4si.model import export, shipped

MODELS = sorted(shipped.shipped())


def test_the_manifest_lists_what_data_models_holds():
    files = {p.name for p in shipped.MODELS_DIR.glob("*.pt")}
    assert files == {shipped.shipped()[n]["file"] for n in MODELS}
    for name in MODELS:
        e = shipped.shipped()[name]
        assert e["bytes"] == (shipped.MODELS_DIR / e["file"]).stat().st_size <= 2 * 1024 * 1024
        for key in ("command", "data", "seed", "quality", "rebuild", "sha256", "train_wall_time_s"):
            assert key in e, (name, key)


@pytest.mark.parametrize("name", MODELS)
def test_each_shipped_model_loads_by_name_and_generates_at_its_lattice(name):
    e = shipped.shipped()[name]
    m = load_model(name)
    assert list(m.shape) == e["shape"] and m.target_params().lam == e["lam"] and m.target_params().m2 == e["m2"]
    phi = generate(m, 4, seed=0)
    assert phi.shape == (4, *e["shape"]) and np.isfinite(phi).all()
    # the field's scale is physical: |phi| of the order of HMC's (a mis-normalised model would not be)
    assert 0.05 < float(np.abs(phi).mean()) < 5.0
    r = repr(m)                                    # one line a notebook can print, not the torch module tree
    assert "\n" not in r and f"lattice {'x'.join(map(str, e['shape']))}" in r and f"lam={e['lam']:g}" in r, r


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("shipped")
    ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), d / "e.h5", chains=2, n_traj=40, n_therm=10, progress=False)
    train(ens, d / "m.pt", TrainConfig(steps=3, model="tiny", batch_size=4), progress=False)
    return d, ens


def test_export_keeps_the_drift_bit_for_bit_and_refuses_a_resume(trained):
    d, ens = trained
    small = export.export_weights(d / "m.pt", d / "w.pt")
    assert small.stat().st_size < (d / "m.pt").stat().st_size
    a, b = load_model(d / "m.pt"), load_model(small)
    assert np.array_equal(generate(a, 3, seed=1), generate(b, 3, seed=1))
    with pytest.raises(CheckpointError, match="weights-only checkpoint holds the EMA weights only"):
        load_model(small, ema=False)
    with pytest.raises(ResumeError, match="weights-only checkpoint .* resume the training checkpoint"):
        train(ens, small, TrainConfig(steps=4, model="tiny", batch_size=4), progress=False, resume=True)


def test_a_bad_name_or_a_damaged_shipped_file_is_refused(trained, tmp_path, monkeypatch):
    d, _ = trained
    with pytest.raises(CheckpointError, match="no-such: no such model file, and no shipped model of that name"):
        load_model("no-such")
    with pytest.raises(CheckpointError, match="no such model file"):
        load_model("no/such.pt")                 # a path is never taken for a name
    models = tmp_path / "models"
    models.mkdir()
    export.export_weights(d / "m.pt", models / "t4.pt")
    monkeypatch.setattr(shipped, "MODELS_DIR", models)
    entry = export.manifest_entry(models / "t4.pt", command="test")
    (models / "manifest.json").write_text(json.dumps({"models": {"t4": entry}}))
    assert load_model("t4").shape == (4, 4)
    raw = bytearray((models / "t4.pt").read_bytes())
    raw[-10] ^= 0xFF
    (models / "t4.pt").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match the manifest's SHA-256"):
        load_model("t4")
    (models / "t4.pt").unlink()
    with pytest.raises(CheckpointError, match="its file .* is missing"):
        load_model("t4")


def test_the_command_line_takes_a_shipped_name(cli, trained, tmp_path, monkeypatch):
    d, _ = trained
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(export.export_weights(d / "m.pt", tmp_path / "x.pt"), models / "t4.pt")
    monkeypatch.setattr(shipped, "MODELS_DIR", models)
    (models / "manifest.json").write_text(json.dumps({"models": {"t4": export.manifest_entry(models / "t4.pt")}}))
    out = tmp_path / "g.h5"
    rc, _, err = cli("generate", "--model", "t4", "--n", "2", "--out", out, "--no-progress")
    assert rc == 0, err
    assert out.exists()
    rc, _, err = cli("generate", "--model", "t5", "--n", "2", "--out", tmp_path / "h.h5", "--no-progress")
    assert rc != 0 and "t5: no such model file, and no shipped model of that name (shipped: t4)" in err
    assert not (tmp_path / "h.h5").exists()


def test_phi4si_models_lists_the_manifest(cli, trained, tmp_path, monkeypatch):
    d, _ = trained
    models = tmp_path / "models"
    models.mkdir()
    export.export_weights(d / "m.pt", models / "t4.pt")
    monkeypatch.setattr(shipped, "MODELS_DIR", models)
    q = {"observables": {"abs_m": {"gen": 1.0, "gen_err": 0.1, "ref": 1.1, "ref_err": 0.01, "rel_dev": -0.09,
                                   "z": -1.0}}, "G_p": {"max_abs_z": 2.5, "max_rel_dev": 0.1}}
    (models / "manifest.json").write_text(json.dumps({"models": {"t4": export.manifest_entry(models / "t4.pt",
                                                                                            quality=q)}}))
    rc, out, err = cli("models")
    assert rc == 0, err
    assert "t4" in out and "4x4" in out and "abs_m -9.0% (-1.0)" in out and "G(p) max|z| 2.5" in out
    rc, out, _ = cli("models", "--json")
    assert rc == 0 and json.loads(out)["t4"]["shape"] == [4, 4]
    monkeypatch.setattr(shipped, "MODELS_DIR", tmp_path / "none")
    rc, out, _ = cli("models")
    assert rc == 0 and "no shipped models" in out


@pytest.mark.parametrize("name", [n for n in MODELS if shipped.shipped()[n].get("task") == "superres"])
def test_each_shipped_superres_model_superresolves_by_name(name):
    from phi4si.tasks.superres import block_average, superresolve

    e = shipped.shipped()[name]
    m = load_model(name)
    assert m.family.name == e["family"] == "haar"
    coarse = block_average(generate(m, 3, seed=1, steps=4), 2)
    fine = superresolve(m, coarse, 2, steps=4, seed=0)
    assert fine.shape == (3, *e["shape"]) and np.isfinite(fine).all()
    np.testing.assert_allclose(block_average(fine, 2), coarse, atol=1e-10)   # the coarse fields are kept
    assert "superres_x2" in e["quality"]["tasks"] and e["quality"]["result"] == "benchmarks/results/superres_l32.json"
