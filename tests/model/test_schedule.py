"""Optimised time grids (phi4si.model.schedule) and their path files on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phi4si.errors import ParameterError
from phi4si.interpolant.oracle import free_field_oracle
from phi4si.lattice import Phi4Params
from phi4si.model import DriftModel
from phi4si.model.generate import generate, inpaint, parse_mask
from phi4si.model.schedule import optimise_grid, read_path_file, write_path_file


@pytest.fixture(scope="module")
def oracle():
    return DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))


@pytest.mark.parametrize("solver", ["heun", "ab3"])
def test_the_optimised_grid_beats_every_power_grid_on_noise_it_never_saw(oracle, solver):
    r = optimise_grid(oracle, steps=4, solver=solver, pilot=32, ref_steps=64)
    assert r["grid"][0] == 0.0 and r["grid"][-1] == 1.0 and np.all(np.diff(r["grid"]) > 0)
    h = r["held_out"]
    assert h["mse"] < 0.8 * h["mse_start"], h          # measured: 5-9x smaller on the free field
    # and it reaches, with 4 steps, an accuracy the uniform grid needs more steps for
    ref = generate(oracle, 32, steps=64, solver="rk4", seed=1, batch_size=32)
    opt = generate(oracle, 32, steps=4, solver=solver, seed=1, batch_size=32, grid_power=r["grid"])
    uni5 = generate(oracle, 32, steps=5, solver=solver, seed=1, batch_size=32)
    assert np.mean((opt - ref) ** 2) < np.mean((uni5 - ref) ** 2)


def test_inpainting_grid_keeps_observed_sites_exactly(oracle):
    mask = parse_mask("block:2x2@1,1", (4, 4))
    r = optimise_grid(oracle, steps=3, solver="ab2", task="inpaint", mask=mask, pilot=16, ref_steps=32, maxfev=40)
    data = generate(oracle, 8, seed=3, steps=8)
    out = inpaint(oracle, data, mask, steps=3, solver="ab2", grid_power=r["grid"])
    assert np.array_equal(out[:, ~mask], data[:, ~mask])


def test_sequential_task_optimises_per_segment(oracle):
    r = optimise_grid(oracle, steps=2, solver="heun", task="sequential", order="raster", block=2, pilot=16,
                      ref_steps=16, maxfev=30)
    assert len(r["grid"]) == 3 and r["held_out"]["mse"] <= r["held_out"]["mse_start"]


def test_refusals(oracle):
    with pytest.raises(ParameterError, match="unknown task"):
        optimise_grid(oracle, steps=2, task="nope")
    with pytest.raises(ParameterError, match="needs the mask"):
        optimise_grid(oracle, steps=2, task="inpaint")
    with pytest.raises(ParameterError, match="needs an order"):
        optimise_grid(oracle, steps=2, task="sequential")
    with pytest.raises(ParameterError, match="unknown solver"):
        optimise_grid(oracle, steps=2, solver="rk5")
    with pytest.raises(ParameterError, match="steps must be >= 1"):
        optimise_grid(oracle, steps=0)
    with pytest.raises(ParameterError, match="needs 4 points"):
        generate(oracle, 2, steps=3, grid_power=[0.0, 0.5, 1.0])
    with pytest.raises(ParameterError, match="increase strictly"):
        generate(oracle, 2, steps=2, grid_power=[0.0, 0.7, 0.5])


def test_path_file_round_trip_and_bad_files(oracle, tmp_path):
    r = optimise_grid(oracle, steps=2, solver="heun", pilot=8, ref_steps=8, maxfev=10)
    f = write_path_file(tmp_path / "p.json", r, oracle, (4, 4), {"task": "generate"})
    doc = read_path_file(f, task="generate", shape=(4, 4))
    assert doc["grid"] == r["grid"] and doc["solver"] == "heun" and doc["steps"] == 2
    with pytest.raises(ParameterError, match="optimised for the task 'generate', not 'inpaint'"):
        read_path_file(f, task="inpaint")
    with pytest.raises(ParameterError, match="lattice"):
        read_path_file(f, shape=(8, 8))
    bad = tmp_path / "bad.json"
    for text, phrase in (("{", "not a phi4si path file"), ('{"format": "x"}', "not a phi4si path file"),
                         (json.dumps({**doc, "grid": [0, 2, 1]}), "damaged path file"),
                         (json.dumps({**doc, "steps": "x"}), "damaged")):
        bad.write_text(text)
        with pytest.raises(ParameterError, match=phrase):
            read_path_file(bad)
    with pytest.raises(ParameterError, match="no such path file"):
        read_path_file(tmp_path / "none.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from phi4si import TrainConfig, sample_mcmc, train

    d = tmp_path_factory.mktemp("sched")
    ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), d / "e.h5", chains=2, n_traj=40, n_therm=10, progress=False)
    train(ens, d / "m.pt", TrainConfig(steps=5, model="tiny", batch_size=8, threads=1), progress=False)
    return d / "m.pt"


def test_optimize_path_command_and_generate_with_path(tiny, tmp_path, cli):
    import h5py

    pf = tmp_path / "grid.json"
    rc, _, err = cli("optimize-path", "--model", tiny, "--steps", "3", "--solver", "ab2", "--pilot", "8",
                     "--ref-steps", "16", "--out", pf)
    assert rc == 0 and "held-out error" in err, err
    grid = json.loads(pf.read_text())["grid"]
    out = tmp_path / "g.h5"
    rc, _, err = cli("generate", "--model", tiny, "--n", "6", "--path", pf, "--out", out, "--no-progress")
    assert rc == 0, err
    with h5py.File(out) as f:
        s = json.loads(f.attrs["sampler"])
    assert (s["solver"], s["steps"], s["grid_power"]) == ("ab2", 3, grid) and s["path"] == str(pf.resolve())
    rc, _, err = cli("generate", "--model", tiny, "--n", "6", "--path", pf, "--steps", "4", "--out", tmp_path / "x.h5")
    assert rc == 1 and "--steps does not apply with --path" in err
    rc, _, err = cli("generate", "--model", tiny, "--n", "6", "--path", pf, "--order", "raster", "--block", "2",
                     "--out", tmp_path / "y.h5")
    assert rc == 1 and "not 'sequential'" in err
    rc, _, err = cli("inpaint", "--model", tiny, "--data", out, "--mask", "block:2x2@0,0", "--path", pf,
                     "--out", tmp_path / "z.h5")
    assert rc == 1 and "not 'inpaint'" in err


def test_sample_neural_takes_an_rk_grid_and_refuses_a_multistep_one(tiny, tmp_path, cli):
    rk = tmp_path / "rk.json"
    rc, _, err = cli("optimize-path", "--model", tiny, "--steps", "2", "--solver", "rk4", "--pilot", "8",
                     "--ref-steps", "8", "--out", rk)
    assert rc == 0, err
    args = ["sample-neural", "--model", tiny, "--method", "reweight", "--n", "8", "--batch-size", "4",
            "--no-progress"]
    rc, _, err = cli(*args, "--path", rk, "--out", tmp_path / "n.h5")
    assert rc == 0, err
    rc, _, err = cli(*args, "--path", rk, "--n", "12", "--resume", "--out", tmp_path / "n.h5")
    assert rc == 0, err
    ab = tmp_path / "ab.json"
    assert cli("optimize-path", "--model", tiny, "--steps", "2", "--solver", "ab2", "--pilot", "8", "--ref-steps", "8",
               "--out", ab)[0] == 0
    rc, _, err = cli(*args, "--path", ab, "--out", tmp_path / "m.h5")
    assert rc == 1 and "Runge-Kutta" in err, err


def test_optimize_path_refusals_leave_files_alone(tiny, tmp_path, cli):
    old = tmp_path / "old.json"
    old.write_text("keep")
    base = ["optimize-path", "--model", tiny, "--steps", "2", "--pilot", "8", "--ref-steps", "8"]
    for extra, status, phrase in ((["--task", "inpaint"], 1, "needs the mask"),
                                  (["--task", "sequential"], 1, "needs an order"),
                                  (["--order", "raster", "--block", "2"], 1, "order applies to task 'sequential' only"),
                                  (["--solver", "rk5"], 2, "invalid choice"),
                                  (["--steps", "0"], 1, "steps must be >= 1"),
                                  (["--pilot", "1"], 1, "pilot must be >= 2")):
        rc, _, err = cli(*base, *extra, "--overwrite", "--out", old)      # a failed --overwrite keeps the file
        assert rc == status and phrase in err, (extra, err)
    rc, _, err = cli(*base, "--out", old)
    assert rc == 1 and "exists" in err, err
    assert old.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
