"""``phi4si maze dataset / train / plan / evaluate``: outputs, refusals, existing files kept."""

from __future__ import annotations

import numpy as np
import pytest

from phi4si.tasks.maze.dataset import read_dataset


def test_maze_cli(tiny_maze_model, cli, tmp_path, maze):
    import json

    assert cli("maze", "dataset", "--out", tmp_path / "d.h5", "--n-windows", "40", "--seed", "1")[0] == 0
    assert read_dataset(tmp_path / "d.h5")[0].shape == (40, 50, 2)
    rc, _, err = cli("maze", "train", "--data", tmp_path / "d.h5", "--out", tmp_path / "m.pt", "--steps", "2",
                     "--model", "tiny", "--batch-size", "4", "--no-progress", "--val-every", "2")
    assert rc == 0, err
    m = tmp_path / "m.pt"
    rc, out, err = cli("maze", "plan", "--model", m, "--start", "1.5", "1.5", "--goal", "1.5", "2.5", "--steps", "2",
                       "--out", tmp_path / "p.json", "--figure", tmp_path / "p.png")
    assert rc in (0, 3), err
    p = json.loads((tmp_path / "p.json").read_text())
    assert p["path"][0] == [1.5, 1.5] and p["path"][-1] == [1.5, 2.5] and len(p["path"]) == p["k"] + 1
    assert p["valid"] == (rc == 0) and p["shortest_length"] == pytest.approx(1.0)
    rc, out, err = cli("maze", "plan", "--model", m, "--start", "1.5", "1.5", "--goal", "4.5", "1.5", "--via", "2.5",
                       "3.5", "--steps", "2", "--tries", "1", "--out", tmp_path / "v.json")
    assert rc in (0, 3), err
    assert [2.5, 3.5] in json.loads((tmp_path / "v.json").read_text())["path"]
    rc, out, err = cli("maze", "evaluate", "--model", m, "--n-plans", "3", "--tries", "1", "--steps", "2",
                       "--out", tmp_path / "e.json", "--figure", tmp_path / "e.png", "--examples", "2")
    assert rc == 0, err
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["n_plans"] == 3 and "length_ratio" in e and (tmp_path / "e.png").exists()
    rc, out, err = cli("maze", "evaluate", "--model", m, "--n-plans", "3", "--tries", "1", "--steps", "2",
                       "--out", tmp_path / "e.json", "--plans", tmp_path / "p.h5", "--overwrite")
    assert rc == 0, err
    import h5py

    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert f.attrs["kind"] == "maze-plans" and f["paths"].shape[0] == 3
        for p, k, s, g in zip(f["paths"][()], f["k"][()], f["starts"][()], f["goals"][()]):
            assert np.array_equal(p[0], s) and np.array_equal(p[k], g) and np.isnan(p[k + 1:]).all()
        assert np.allclose(f["shortest"][()], maze.shortest_path_length(f["starts"][()], f["goals"][()]))
    (tmp_path / "keep.h5").write_text("keep")
    rc, out, err = cli("maze", "evaluate", "--model", m, "--n-plans", "3", "--out", tmp_path / "e2.json",
                       "--plans", tmp_path / "keep.h5")
    assert rc != 0 and "exists" in err and (tmp_path / "keep.h5").read_text() == "keep"
    assert not (tmp_path / "e2.json").exists()


def test_maze_cli_flag_refusals(tiny_maze_model, cli, tmp_path):
    """Bad --rounds/--tries/--n-plans and dataset settings: a clear error, an existing --out kept."""
    out = tmp_path / "o.json"
    out.write_text("keep")
    m = tiny_maze_model / "m.pt"
    for args, code, match in [(["plan", "--start", "1.5", "1.5", "--goal", "2.5", "1.5", "--rounds", "0"], 2, "--rounds"),
                              (["evaluate", "--tries", "0"], 2, "--tries"),
                              (["evaluate", "--n-plans", "0"], 2, "--n-plans")]:
        rc, _, err = cli("maze", *args, "--model", m, "--out", out, "--overwrite")
        assert rc == code and match in err, err
    assert out.read_text() == "keep"
    d = tmp_path / "d.h5"
    d.write_text("keep")
    rc, _, err = cli("maze", "dataset", "--out", d, "--every", "7", "--n-windows", "4", "--overwrite")
    assert rc == 1 and "must divide window" in err, err
    rc, _, err = cli("maze", "dataset", "--out", d, "--n-windows", "4")
    assert rc == 1 and "exists" in err, err
    assert d.read_text() == "keep"


@pytest.mark.parametrize("args, match", [
    (["plan", "--start", "3.5", "2.5", "--goal", "1.5", "1.5"], "inside a wall"),
    (["plan", "--start", "1.5", "1.5", "--goal", "1.5", "1.5", "--via", "0.5", "0.5"], "inside a wall"),
    (["evaluate", "--margin", "0.7"], "margin"),
])
def test_maze_cli_refusals(tiny_maze_model, cli, tmp_path, args, match):
    out = tmp_path / "o.json"
    out.write_text("keep")
    rc, _, err = cli("maze", *args, "--model", tiny_maze_model / "m.pt", "--out", out, "--overwrite")
    assert rc != 0 and match in err, err
    rc, _, err = cli("maze", *args, "--model", tiny_maze_model / "m.pt", "--out", out)
    assert rc != 0 and out.read_text() == "keep"
    rc, _, err = cli("maze", "plan", "--model", tiny_maze_model / "d.h5", "--start", "1.5", "1.5", "--goal", "2.5",
                     "1.5", "--out", tmp_path / "x.json")
    assert rc != 0 and not (tmp_path / "x.json").exists()
