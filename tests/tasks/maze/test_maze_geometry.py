"""phi4si.tasks.maze.geometry: layout, points and cells, segment and path validity, geodesics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phi4si.errors import ParameterError
from phi4si.tasks.maze.geometry import MAZE2D_LARGE, Maze, path_length


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
    counts = np.bincount(maze.free_index[tuple(cells.T)], minlength=46)
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
