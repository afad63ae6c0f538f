"""phi4si.tasks.maze.dataset: training windows and their HDF5 files."""

from __future__ import annotations

import numpy as np
import pytest

from phi4si.errors import OutputExistsError, ParameterError
from phi4si.tasks.maze.controller import ControllerConfig
from phi4si.tasks.maze.dataset import make_dataset, read_dataset, write_dataset
from phi4si.tasks.maze.geometry import MAZE2D_LARGE


def test_make_dataset(maze):
    d = make_dataset(30, seed=3, n_agents=7)
    assert d["paths"].shape == (30, 50, 2) and d["paths"].dtype == np.float32
    assert maze.path_valid(d["paths"]).all()
    assert np.array_equal(d["paths"], make_dataset(30, seed=3, n_agents=7)["paths"])
    assert not np.allclose(d["paths"], make_dataset(30, seed=4, n_agents=7)["paths"])
    st = d["stats"]
    assert st["n_windows"] == 30 and st["n_cut"] == 30 + st["n_dropped"]
    assert 20 < st["path_length_mean"] < 30 and 0.08 < st["speed_mean"] <= 0.1
    assert d["window"] == 300 and d["every"] == 6 and d["controller"]["v_max"] == 1.0
    # the subsampled points are every 6th point of a dense window
    step = np.linalg.norm(np.diff(d["paths"], axis=1), axis=-1)
    assert step.max() <= 0.6 + 1e-5
    short = make_dataset(5, seed=0, window=60, every=3)
    assert short["paths"].shape == (5, 20, 2)


def test_make_dataset_drops_invalid_windows(maze):
    noisy = ControllerConfig(noise_std=10, kd=2, a_max=10, switch_radius=0.5)
    d = make_dataset(100, seed=0, config=noisy)
    st = d["stats"]
    assert st["n_dropped"] > 0 and st["frac_dropped"] == st["n_dropped"] / st["n_cut"]
    assert len(d["paths"]) == 100 and maze.path_valid(d["paths"]).all()


@pytest.mark.parametrize("kw, match", [
    (dict(n_windows=0), "n_windows must be >= 1"),
    (dict(every=7), "must divide window"),
    (dict(every=0), "every must be >= 1"),
    (dict(window=6, every=6), "at least 2 \\* every"),
    (dict(n_agents=0), "n_agents"),
])
def test_make_dataset_bad_arguments(kw, match):
    with pytest.raises(ParameterError, match=match):
        make_dataset(**(dict(n_windows=2, seed=0) | kw))


def test_write_read_round_trip(tmp_path):
    d = make_dataset(6, seed=1)
    out = write_dataset(tmp_path / "maze.h5", d, {"command": "phi4si maze-data --n 6", "note": "test"})
    paths, attrs = read_dataset(out)
    assert np.array_equal(paths, d["paths"]) and paths.dtype == np.float32
    assert attrs["kind"] == "maze-trajectories" and attrs["layout"] == MAZE2D_LARGE
    assert (attrs["window"], attrs["every"], attrs["seed"]) == (300, 6, 1)
    assert attrs["controller"] == d["controller"] and attrs["statistics"] == d["stats"]
    assert attrs["command"] == "phi4si maze-data --n 6" and attrs["meta"] == {"note": "test"}
    assert attrs["version"] and attrs["date"]
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind

    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_dataset(out, make_dataset(3, seed=2), {})
    assert out.read_bytes() == before
    write_dataset(out, make_dataset(3, seed=2), {}, overwrite=True)
    assert read_dataset(out)[0].shape == (3, 50, 2)

    with pytest.raises(ParameterError, match="does not exist"):
        write_dataset(tmp_path / "missing" / "maze.h5", d, {})
    with pytest.raises(ParameterError, match="make_dataset"):
        write_dataset(tmp_path / "x.h5", {"stats": {}}, {})


def test_read_bad_files(tmp_path):
    import h5py

    with pytest.raises(ParameterError, match="no such file"):
        read_dataset(tmp_path / "nope.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ParameterError, match="not an HDF5 file"):
        read_dataset(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["paths"] = np.zeros((2, 5, 2))
    with pytest.raises(ParameterError, match="not a maze trajectory dataset"):
        read_dataset(other)
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as f:
        f.attrs["kind"] = "maze-trajectories"
        f["paths"] = np.zeros((2, 5))
    with pytest.raises(ParameterError, match="expected \\(N, n, 2\\)"):
        read_dataset(broken)
