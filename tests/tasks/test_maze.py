"""Maze planning task (phi4si.tasks.maze): geometry, validity, geodesics, trajectories, datasets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phi4si.errors import OutputExistsError, ParameterError
from phi4si.tasks.maze import (
    MAZE2D_LARGE,
    ControllerConfig,
    Maze,
    make_dataset,
    path_length,
    read_dataset,
    simulate,
    write_dataset,
)


@pytest.fixture(scope="module")
def maze():
    return Maze.large()


# ----------------------------------------------------------------------------- layout


def test_layout_parsing(maze):
    assert maze.shape == (9, 12)
    assert maze.walls.dtype == bool and maze.walls[0].all() and maze.walls[:, 0].all()
    assert len(maze.free_cells) == MAZE2D_LARGE.count("O") == 46
    assert not maze.walls[tuple(maze.free_cells.T)].any()
    assert maze.walls[2, 3] and not maze.walls[1, 1]
    with pytest.raises(ValueError):  # read-only: the cached tables depend on it
        maze.walls[1, 1] = True
    small = Maze("""
        ####
        #OO#
        ####
    """)  # indentation and blank lines are ignored
    assert small.shape == (3, 4) and small.free_cells.tolist() == [[1, 1], [1, 2]]
    assert Maze.large() is Maze.large() and Maze().layout == maze.layout


@pytest.mark.parametrize("layout, match", [
    ("", "empty"),
    ("#O#\n#X#", r"character 'X' at column 1"),
    ("#O#\n#O", "not rectangular"),
    ("###\n###", "no free cell"),
    (42, "must be a string"),
])
def test_bad_layouts(layout, match):
    with pytest.raises(ParameterError, match=match):
        Maze(layout)


# ----------------------------------------------------------------------------- points


def test_cell_of_and_is_free(maze):
    assert maze.cell_of([[1.5, 2.5], [0.0, 0.0], [12.0, 9.0], [4.0, 1.0]]).tolist() == [[2, 1], [0, 0], [8, 11], [1, 4]]
    assert maze.cell_of(np.zeros((3, 4, 2))).shape == (3, 4, 2)
    with pytest.raises(ParameterError, match="outside the maze"):
        maze.cell_of([12.5, 1.0])
    with pytest.raises(ParameterError, match="not finite"):
        maze.cell_of([np.nan, 1.0])
    pts = {
        (1.5, 1.5): True,     # centre of a free cell
        (3.5, 2.5): False,    # inside wall cell (2, 3)
        (5.0, 1.5): True,     # edge between free (1, 4) and wall (1, 5)
        (2.0, 2.0): True,     # corner of wall (2, 2) touching free cells
        (3.0, 2.5): False,    # seam between wall cells (2, 2) and (2, 3): inside the wall mass
        (1.0, 1.0): True,     # corner of free cell (1, 1)
        (-0.1, 1.5): False,   # outside the box
        (13.0, 1.0): False,
        (np.nan, 1.5): False,
        (1.0 - 1e-12, 2.5): True,   # inside wall (2, 0) by less than TOL, next to free (2, 1)
        (0.9, 2.5): False,
    }
    got = maze.is_free(np.array(list(pts)))
    assert got.tolist() == list(pts.values())
    assert maze.is_free(np.full((2, 3, 2), 1.5)).shape == (2, 3)
    with pytest.raises(ParameterError, match="last axis 2"):
        maze.is_free([1.0, 2.0, 3.0])


def test_check_points(maze):
    p = maze.check_points([[1.5, 1.5], [2.5, 3.5]], "start")
    assert p.dtype == np.float64 and p.shape == (2, 2)
    with pytest.raises(ParameterError, match=r"goal \(3\.5, 2\.5\) lies inside a wall cell \(row 2, col 3\); "
                                             r"pick a point in a free \('O'\) cell"):
        maze.check_points([3.5, 2.5], "goal")
    with pytest.raises(ParameterError, match=r"goal\[1\] \(13, 1\) lies outside the maze"):
        maze.check_points([[1.5, 1.5], [13.0, 1.0]], "goal")
    with pytest.raises(ParameterError, match=r"and 2 more"):
        maze.check_points(np.full((5, 2), 0.5))
    with pytest.raises(ParameterError, match="not finite"):
        maze.check_points([[1.5, 1.5], [np.inf, 1.5]])
    with pytest.raises(ParameterError, match="last axis 2"):
        maze.check_points([[1.5, 1.5, 1.5]])
    with pytest.raises(ParameterError, match="last axis 2"):
        maze.check_points(1.5)


def test_random_free_points(maze):
    rng = np.random.default_rng(1)
    p = maze.random_free_points(20_000, rng, margin=0.25)
    assert p.shape == (20_000, 2) and maze.is_free(p).all()
    frac = p - np.floor(p)
    assert frac.min() >= 0.25 and frac.max() <= 0.75
    cells = maze.cell_of(p)
    counts = np.bincount(maze._index[tuple(cells.T)], minlength=46)
    assert counts.min() > 300 and counts.max() < 600  # uniform over the 46 cells (mean 435)
    a = maze.random_free_points(5, np.random.default_rng(3))
    assert np.array_equal(a, maze.random_free_points(5, np.random.default_rng(3)))
    with pytest.raises(ParameterError, match="margin"):
        maze.random_free_points(3, rng, margin=0.5)
    with pytest.raises(ParameterError, match="Generator"):
        maze.random_free_points(3, 0)
    with pytest.raises(ParameterError, match="n must be >= 0"):
        maze.random_free_points(-1, rng)


def test_cell_path(maze):
    assert maze.cell_path((1, 1), (3, 2)).tolist() == [[1, 1], [2, 1], [3, 1], [3, 2]]
    assert maze.cell_path((5, 4), (5, 4)).tolist() == [[5, 4]]
    long = maze.cell_path((3, 10), (7, 1))
    assert len(long) == 20  # the longest BFS path: 19 moves
    assert (np.abs(np.diff(long, axis=0)).sum(1) == 1).all() and not maze.walls[tuple(long.T)].any()
    with pytest.raises(ParameterError, match="is a wall cell"):
        maze.cell_path((1, 1), (2, 3))
    with pytest.raises(ParameterError, match="outside"):
        maze.cell_path((1, 1), (9, 1))
    split = Maze("O#O")
    with pytest.raises(ParameterError, match="cannot be reached"):
        split.cell_path((0, 0), (0, 2))


# ----------------------------------------------------------------------------- segments and paths


def test_segments_enter_walls_hand_made(maze):
    cases = [
        ((1.5, 1.5), (6.5, 1.5), True),    # through wall cell (1, 5)
        ((1.0, 2.0), (1.0, 3.0), False),   # along the edge between wall (2, 0) and free (2, 1)
        ((2.0, 2.0), (4.0, 2.0), False),   # along the top edges of walls (2, 2), (2, 3)
        ((3.0, 2.0), (3.0, 3.0), True),    # along the seam between walls (2, 2) and (2, 3)
        ((1.5, 2.5), (2.5, 1.5), False),   # touches the corner (2, 2) of wall (2, 2) only
        ((1.5, 2.5), (2.6, 1.5), True),    # cuts that corner
        ((1.2, 1.2), (1.8, 1.8), False),   # inside a free cell
        ((3.5, 2.5), (3.5, 2.5), True),    # degenerate, inside a wall
        ((1.5, 1.5), (1.5, 1.5), False),   # degenerate, free
        ((1.0, 0.5), (4.0, 0.5), True),    # inside the border wall
        ((0.0, 0.5), (0.0, 8.5), True),    # along the box edge of the border walls
    ]
    p, q, want = (np.array([c[i] for c in cases]) for i in range(3))
    assert maze.segments_enter_walls(p, q).tolist() == want.tolist()
    assert maze.segments_enter_walls(q, p).tolist() == want.tolist()  # direction does not matter
    # broadcasting: one point against several
    assert maze.segments_enter_walls([1.5, 1.5], [[4.5, 1.5], [6.5, 1.5]]).tolist() == [False, True]
    with pytest.raises(ParameterError, match="not finite"):
        maze.segments_enter_walls([np.nan, 1.0], [1.5, 1.5])
    # an open 1 x 2 room: moving along the box edge of free cells is allowed, leaving the box is not
    room = Maze("OO")
    assert room.segments_enter_walls([[0.0, 0.0], [0.5, 0.5]], [[2.0, 0.0], [0.5, -0.5]]).tolist() == [False, True]


def test_path_valid_hand_made(maze):
    assert maze.path_valid([[1.5, 1.5], [4.5, 1.5]]) is True
    assert maze.path_valid([[1.5, 1.5], [1.5, 3.5]]) is True          # column 1, rows 1-3 free
    assert maze.path_valid([[4.5, 1.5], [6.5, 1.5]]) is False         # crosses wall (1, 5)
    assert maze.path_valid([[1.5, 1.5], [1.5, 3.5], [2.5, 3.5], [6.5, 3.5], [6.5, 1.5]]) is True
    assert maze.path_valid([[1.5, 2.5], [2.6, 1.5]]) is False         # cuts a wall corner
    assert maze.path_valid([[1.5, 1.5]]) is True                      # one point
    assert maze.path_valid([[1.5, 1.5], [np.nan, 1.5]]) is False
    assert maze.path_valid([[11.5, 1.5], [12.5, 1.5]]) is False       # leaves the maze
    got = maze.path_valid(np.array([[[1.5, 1.5], [4.5, 1.5]], [[4.5, 1.5], [6.5, 1.5]]]))
    assert got.dtype == bool and got.tolist() == [True, False]
    with pytest.raises(ParameterError, match="shape"):
        maze.path_valid(np.zeros((2, 3, 4, 2)))
    with pytest.raises(ParameterError, match="upsample"):
        maze.path_valid([[1.5, 1.5]], upsample=0)


def test_path_valid_upsample_equivalence(maze):
    rng = np.random.default_rng(7)
    start = maze.random_free_points(600, rng)
    paths = start[:, None] + np.cumsum(rng.normal(scale=0.2, size=(600, 10, 2)), axis=1)
    paths = np.clip(paths, 0, [12, 9])
    v1 = maze.path_valid(paths, upsample=1)
    assert 0.1 < v1.mean() < 0.9
    for up in (2, 6, 13):
        assert np.array_equal(maze.path_valid(paths, upsample=up), v1)
    # valid paths are free at every densely sampled point
    t = np.linspace(0, 1, 101)[:, None]
    dense = paths[v1][:, :-1, None] + t * (paths[v1][:, 1:, None] - paths[v1][:, :-1, None])
    assert maze.is_free(dense).all()


def test_path_length():
    assert path_length([[0, 0], [3, 4], [3, 5]]) == 6.0
    assert path_length(np.zeros((4, 1, 2))).tolist() == [0.0] * 4
    with pytest.raises(ParameterError):
        path_length([1.0, 2.0])


# ----------------------------------------------------------------------------- geodesics


def test_shortest_path_hand_made(maze):
    # mutually visible: straight distance
    assert maze.shortest_path_length([1.5, 1.5], [4.5, 1.5]) == 3.0
    assert maze.shortest_path_length([6.5, 1.5], [6.5, 5.5]) == 4.0
    # around the corner (2, 3) of wall (2, 2): sqrt(0.5^2 + 1.5^2) + sqrt(0.5^2 + 0.5^2)
    want = math.sqrt(2.5) + math.sqrt(0.5)
    assert maze.shortest_path_length([1.5, 1.5], [2.5, 3.5]) == pytest.approx(want, abs=1e-12)
    poly = maze.shortest_path([1.5, 1.5], [2.5, 3.5])
    assert poly.tolist() == [[1.5, 1.5], [2.0, 3.0], [2.5, 3.5]]
    # one wall corner in a 2 x 2 room with the bottom-left cell walled: via the corner (1, 1)
    room = Maze("OO\n#O")
    assert room.shortest_path_length([0.25, 0.75], [1.25, 1.75]) == pytest.approx(2 * math.sqrt(0.625), abs=1e-12)
    assert room.shortest_path_length([0.25, 0.75], [1.75, 0.25]) == pytest.approx(math.hypot(1.5, 0.5))
    # unreachable
    assert Maze("O#O").shortest_path_length([0.5, 0.5], [2.5, 0.5]) == np.inf
    with pytest.raises(ParameterError, match="cannot be reached"):
        Maze("O#O").shortest_path([0.5, 0.5], [2.5, 0.5])
    with pytest.raises(ParameterError, match=r"goal \(3\.5, 2\.5\) lies inside a wall cell"):
        maze.shortest_path_length([1.5, 1.5], [3.5, 2.5])


def test_shortest_path_properties(maze):
    rng = np.random.default_rng(11)
    s, g, h = (maze.random_free_points(400, rng) for _ in range(3))
    d_sg = maze.shortest_path_length(s, g)
    assert d_sg.shape == (400,) and np.isfinite(d_sg).all()
    assert np.allclose(d_sg, maze.shortest_path_length(g, s), rtol=0, atol=1e-9)
    assert (d_sg >= np.linalg.norm(s - g, axis=1) - 1e-12).all()
    assert (d_sg <= maze.shortest_path_length(s, h) + maze.shortest_path_length(h, g) + 1e-9).all()
    visible = ~maze.segments_enter_walls(s, g)
    assert visible.any() and np.allclose(d_sg[visible], np.linalg.norm(s - g, axis=1)[visible])
    # the returned polylines are valid and as long as the reported length
    for i in range(20):
        poly = maze.shortest_path(s[i], g[i])
        assert maze.path_valid(poly) and path_length(poly) == pytest.approx(d_sg[i], abs=1e-9)
    # no longer than the centre-line route of the BFS cell path
    cells = maze.free_cells[rng.integers(46, size=(100, 2))]
    centre = cells[..., ::-1] + 0.5
    bfs = np.array([len(maze.cell_path(a, b)) - 1 for a, b in cells])
    assert (maze.shortest_path_length(centre[:, 0], centre[:, 1]) <= bfs + 1e-9).all()
    # broadcasting: one start, a grid of goals
    assert maze.shortest_path_length([1.5, 1.5], centre.reshape(20, 10, 2)).shape == (20, 10)


def test_geodesic_diameter(maze):
    length, a, b = maze.geodesic_diameter()
    assert length == pytest.approx(13.5309, abs=1e-4) and {a, b} == {(7, 1), (7, 10)}


# ----------------------------------------------------------------------------- trajectories


def test_controller_config():
    cfg = ControllerConfig()
    assert cfg.v_max * cfg.dt == pytest.approx(0.1)
    assert ControllerConfig(kp=3).kp == 3.0
    for bad, match in [(dict(dt=0), "dt must be > 0"), (dict(noise_std=-1), "noise_std must be >= 0"),
                       (dict(kd=float("nan")), "finite"), (dict(a_max="1"), "real number"),
                       (dict(switch_radius=0.6), "switch_radius"), (dict(v_max=10), "v_max \\* dt"),
                       (dict(skip_straight=1), "skip_straight"), (dict(kp=True), "real number")]:
        with pytest.raises(ParameterError, match=match):
            ControllerConfig(**bad)


def test_simulate(maze):
    x = simulate(40, 600, seed=5)
    assert x.shape == (40, 600, 2) and x.dtype == np.float64
    assert np.array_equal(x, simulate(40, 600, seed=5))
    assert not np.allclose(x, simulate(40, 600, seed=6))
    # the dense trajectory never enters a wall
    assert maze.path_valid(x, upsample=1).all()
    assert not maze.segments_enter_walls(x[:, :-1], x[:, 1:]).any()
    cfg = ControllerConfig()
    step = np.linalg.norm(np.diff(x, axis=1), axis=-1)
    assert step.max() <= cfg.v_max * cfg.dt + 1e-12
    assert 0.08 < step[:, 100:].mean() <= 0.1  # cruise ~0.1 cell per step
    # agents travel: they visit many cells
    assert np.mean([len({tuple(c) for c in maze.cell_of(xa)}) for xa in x]) > 10
    # noisy, corner-cutting controllers still never enter walls (collisions are exact)
    wild = simulate(20, 500, seed=1, config=ControllerConfig(noise_std=30, kd=2, a_max=20, switch_radius=0.5))
    assert maze.path_valid(wild, upsample=1).all()
    # other layouts
    room = Maze("OOO\nO#O\nOOO")
    y = simulate(5, 300, seed=0, maze=room)
    assert room.path_valid(y, upsample=1).all()
    for kw, match in [(dict(n_agents=0), "n_agents"), (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"),
                      (dict(config={}), "ControllerConfig"), (dict(maze="large"), "Maze")]:
        args = dict(n_agents=2, n_steps=10, seed=0) | kw
        with pytest.raises(ParameterError, match=match):
            simulate(**args)


def test_simulate_skip_straight_off(maze):
    x = simulate(10, 400, seed=2, config=ControllerConfig(skip_straight=False))
    assert maze.path_valid(x, upsample=1).all()


# ----------------------------------------------------------------------------- datasets


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


# ----------------------------------------------------------------------------- plotting


def test_plot(maze):
    d = make_dataset(3, seed=0)
    ax = maze.plot(paths=d["paths"], starts=d["paths"][:, 0], goals=d["paths"][:, -1], title="maze")
    assert tuple(ax.get_ylim()) == (9.0, 0.0) and tuple(ax.get_xlim()) == (0.0, 12.0)
    assert ax.get_aspect() == 1.0 and ax.get_title() == "maze"
    assert len(ax.collections) == 4  # walls, paths, starts, goals
    ax2 = maze.plot(ax=ax.figure.add_subplot(2, 1, 2))
    assert ax2 is not ax and len(ax2.collections) == 1
    with pytest.raises(ParameterError, match="shape"):
        maze.plot(paths=np.zeros((2, 3, 3)))


# ----------------------------------------------------------------------------- the planner
@pytest.fixture(scope="module")
def tiny_maze_model(tmp_path_factory):
    """A tiny planner trained for a few steps on a small dataset (plumbing, not quality)."""
    from phi4si.model.train import TrainConfig
    from phi4si.tasks.maze import train_maze

    d = tmp_path_factory.mktemp("maze")
    write_dataset(d / "d.h5", make_dataset(64, seed=3))
    cfg = TrainConfig(steps=3, batch_size=8, model="tiny", measure="maze", val_size=8, val_every=3)
    train_maze(d / "d.h5", d / "m.pt", cfg, progress=False)
    return d


def test_maze_data_and_checkpoint(tiny_maze_model):
    import torch

    from phi4si.errors import CheckpointError
    from phi4si.tasks.maze import _reverse_in_time, load_maze_model, maze_data, model_maze

    data = maze_data(tiny_maze_model / "d.h5")
    paths, _ = read_dataset(tiny_maze_model / "d.h5")
    assert data.channels == 2 and data.shape == (50,) and data.n_train + data.n_val == 64
    assert data.params["step_max"] == pytest.approx(np.linalg.norm(np.diff(paths, axis=1), axis=-1).max(), rel=1e-6)
    x = torch.arange(24.0).reshape(4, 2, 3)
    y = _reverse_in_time(x, torch.Generator().manual_seed(0))
    for a, b in zip(x, y):
        assert torch.equal(a, b) or torch.equal(a.flip(-1), b)
    model = load_maze_model(tiny_maze_model / "m.pt")
    assert model.channels == 2 and model.shape == (50,) and model.net.config.padding == "zeros"
    assert model_maze(model).layout == MAZE2D_LARGE
    torch.save({"x": 1}, tiny_maze_model / "bad.pt")
    with pytest.raises(CheckpointError):
        load_maze_model(tiny_maze_model / "bad.pt")


def test_leg_indices():
    from phi4si.tasks.maze import _leg_indices

    idx = _leg_indices(np.array([2, 1, 3]), np.array([4.0, 1.0, 5.0]), 12)
    assert idx[0] == 0 and idx[-1] == 12 and (np.diff(idx) >= [2, 1, 3]).all()
    assert _leg_indices(np.array([1]), np.array([0.0]), 5).tolist() == [0, 5]


def test_plan_search(tiny_maze_model, maze):
    """Anchors are exact, the reported validity and length are those of the returned path, the
    search starts at k_min and stops at the first k with a valid sample (rerunning up to k - 1
    finds none)."""
    from phi4si.tasks.maze import load_maze_model, plan

    model = load_maze_model(tiny_maze_model / "m.pt")
    s = np.array([[1.5, 1.5], [2.5, 1.2], [6.5, 1.5], [10.5, 7.5]])
    g = np.array([[1.5, 1.9], [1.5, 2.5], [6.5, 3.5], [1.5, 7.5]])
    res = plan(model, s, g, tries=3, steps=3, seed=2)
    assert len(res) == 4 and res.k.shape == res.valid.shape == res.length.shape == (4,)
    step_max = model.lattice["params"]["step_max"]
    for i, p in enumerate(res.paths):
        assert p.shape == (res.k[i] + 1, 2)
        assert np.array_equal(p[0], s[i]) and np.array_equal(p[-1], g[i])
        assert res.valid[i] == maze.path_valid(p)
        assert res.length[i] == pytest.approx(path_length(p))
        assert res.k_min[i] >= max(2, math.ceil(np.linalg.norm(g[i] - s[i]) / step_max))
        assert res.samples[i] == 3 * (res.k[i] - res.k_min[i] + 1 + (res.rounds[i] - 1) * (50 - res.k_min[i]))
        assert res.rounds[i] == 1 or not res.valid[i] or res.rounds[i] == 2
        assert res.valid[i] or res.k[i] == 49
    again = plan(model, s, g, tries=3, steps=3, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(res.paths, again.paths))
    for i in range(len(s)):             # the sequential search (k_batch=1) stops at the first valid k
        one = plan(model, s[i], g[i], tries=3, steps=3, seed=2, k_batch=1, rounds=1)
        assert one.samples[0] == 3 * (one.k[0] - one.k_min[0] + 1)
        if one.valid[0] and one.k[0] > one.k_min[0]:
            earlier = plan(model, s[i], g[i], tries=3, steps=3, seed=2, k_max=int(one.k[0]) - 1, k_batch=1, rounds=1)
            assert not earlier.valid[0] and earlier.k[0] == one.k[0] - 1


def test_plan_via_waypoints(tiny_maze_model):
    from phi4si.tasks.maze import load_maze_model, plan

    model = load_maze_model(tiny_maze_model / "m.pt")
    via = np.array([[4.5, 3.5], [6.5, 5.5]])
    res = plan(model, [1.5, 1.5], [10.5, 7.5], via, tries=1, steps=2, k_min=30, k_max=31)
    p = res.paths[0]
    assert res.k[0] in (30, 31) and p.shape == (res.k[0] + 1, 2)
    hits = [int(np.flatnonzero((p == w).all(1))[0]) for w in via]
    assert 0 < hits[0] < hits[1] < res.k[0]


@pytest.mark.parametrize("kw, match", [
    (dict(starts=[3.5, 2.5]), "start .* inside a wall"),
    (dict(goals=[13.0, 1.0]), "goal .* outside the maze"),
    (dict(via=[[0.5, 0.5]]), r"waypoint\[0\] .* inside a wall"),
    (dict(via=np.full((2, 1, 1, 2), 1.5)), "via must be"),
    (dict(k_max=50), "k_max <= 49"),
    (dict(k_max=3), "split it into shorter plans"),
    (dict(tries=0), "tries"),
    (dict(rounds=0), "rounds"),
    (dict(k_batch=0), "k_batch"),
    (dict(k_min=0), "k_min"),
    (dict(batch_size=0), "batch_size"),
])
def test_plan_refusals(tiny_maze_model, kw, match):
    from phi4si.tasks.maze import load_maze_model, plan

    model = load_maze_model(tiny_maze_model / "m.pt")
    args = dict(starts=[1.5, 1.5], goals=[10.5, 7.5])
    args.update(kw)
    with pytest.raises(ParameterError, match=match):
        plan(model, args.pop("starts"), args.pop("goals"), **args)


def test_evaluate_plans_and_figure(tiny_maze_model, maze, tmp_path):
    from phi4si.tasks.maze import evaluate_plans, load_maze_model, plot_plans

    model = load_maze_model(tiny_maze_model / "m.pt")
    r = evaluate_plans(model, 5, seed=1, tries=1, steps=2, margin=0.1)
    assert r["n_plans"] == 5 and r["n_valid"] == int(r["_plans"].valid.sum())
    assert np.allclose(r["_shortest"], maze.shortest_path_length(r["_starts"], r["_goals"]))
    if r["n_valid"]:
        assert r["length_ratio"]["median"] >= 1.0 - 1e-9   # no path beats the geodesic
    assert plot_plans(tmp_path / "p.png", maze, r["_plans"], r["_starts"], r["_goals"], n=3).stat().st_size > 0


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


def test_docstring_examples():
    import doctest

    import phi4si.tasks.images
    import phi4si.tasks.maze

    for mod in (phi4si.tasks.maze, phi4si.tasks.images):
        assert doctest.testmod(mod).failed == 0, mod.__name__
