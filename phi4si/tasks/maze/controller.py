"""The point-mass controller that makes the maze task's training trajectories: a noisy
waypoint follower under saturated PD control (:class:`ControllerConfig`), simulated exactly
against the walls by a numba loop (:func:`simulate`, :func:`.kernels.simulate_agents`).  numpy
and numba only.

Agents follow the centres of BFS cell paths (:meth:`.geometry.Maze.cell_path`), aiming at the
end of each straight run (:func:`waypoint_table`); a step that would enter a wall stops on the
wall face, so the dense trajectory never leaves the free region.

>>> x = simulate(2, 100, seed=0)
>>> x.shape, bool(Maze.large().path_valid(x, upsample=1).all())
((2, 100, 2), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError
from .checks import check_int
from .geometry import Maze
from .kernels import simulate_agents

__all__ = ["ControllerConfig", "simulate", "waypoint_table", "check_maze", "check_config"]


@dataclass(frozen=True)
class ControllerConfig:
    """Point-mass waypoint controller of :func:`simulate` (lengths in cells, time in the units of ``dt``).

    Each step: the desired velocity is ``v_des = kp (w - x)`` capped at ``v_max`` (w: the
    current waypoint), the acceleration ``a = kd (v_des - v) + noise_std * xi`` (xi standard
    normal, 2-d) capped at ``a_max``; then ``v += a dt`` (capped at ``v_max``) and
    ``x += v dt`` (semi-implicit Euler).  Equivalently a PD law ``kp kd (w - x) - kd v`` with a
    saturated velocity reference.  Within ``switch_radius`` of the waypoint the agent switches
    to the next one.

    Defaults: ``dt = 0.1``, ``kp = 2.5``, ``kd = 8``, ``a_max = 4``, ``v_max = 1``,
    ``noise_std = 1``, ``switch_radius = 0.3``, ``skip_straight = True``.  The cruise speed is
    ``v_max dt`` = 0.1 cell per step (mean speed with turns and noise 0.092), so a 300-step
    window covers ~26 cells.  The longest geodesic of maze2d-large between free-cell centres is
    13.5 cells (:meth:`.geometry.Maze.geodesic_diameter`); the agent follows cell centre lines, and the
    longest such route (19 cells, 7 turns, cell (3, 10) to (7, 1)) takes it ~187 steps, so
    every pair of cells can be joined within one window.  The agent stays on average 0.06 cell
    from the corridor centre lines (99% within 0.18) and slows to ~kp * switch_radius = 0.75
    cell/time before a turn, so the trajectory subsampled every 6 steps stays valid
    (:func:`.dataset.make_dataset` reports the dropped fraction: 0 in 20,000 windows with these
    defaults).

    Fields: ``dt`` time step (> 0); ``kp`` position gain (1/time, > 0); ``kd`` velocity gain
    (1/time, > 0); ``a_max`` maximal acceleration (cells/time^2, > 0); ``v_max`` maximal speed
    (cells/time, > 0, with ``v_max * dt <= 0.5``: less than half a cell per step);
    ``noise_std`` standard deviation of the acceleration noise per component (>= 0);
    ``switch_radius`` waypoint switching radius (cells, in (0, 0.5]); ``skip_straight``: aim at
    the end of each straight run of the cell path rather than at every cell centre.

    >>> ControllerConfig().v_max * ControllerConfig().dt
    0.1
    >>> ControllerConfig(v_max=-1)
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: ControllerConfig.v_max must be > 0, got -1.0
    """

    dt: float = 0.1
    kp: float = 2.5
    kd: float = 8.0
    a_max: float = 4.0
    v_max: float = 1.0
    noise_std: float = 1.0
    switch_radius: float = 0.3
    skip_straight: bool = True

    def __post_init__(self):
        for name in ("dt", "kp", "kd", "a_max", "v_max", "noise_std", "switch_radius"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ParameterError(f"ControllerConfig.{name} must be a real number, got {v!r}")
            v = float(v)
            if not math.isfinite(v):
                raise ParameterError(f"ControllerConfig.{name} must be finite, got {v}")
            if v < 0 or (v == 0 and name != "noise_std"):
                raise ParameterError(f"ControllerConfig.{name} must be {'>= 0' if name == 'noise_std' else '> 0'}, got {v}")
            object.__setattr__(self, name, v)
        if self.switch_radius > 0.5:
            raise ParameterError(f"ControllerConfig.switch_radius must be <= 0.5 cell (the agent switches inside the "
                                 f"waypoint's cell), got {self.switch_radius}")
        if self.v_max * self.dt > 0.5:
            raise ParameterError(f"ControllerConfig: a step may move v_max * dt = {self.v_max * self.dt:g} cells; "
                                 "keep it <= 0.5 (lower v_max or dt)")
        if not isinstance(self.skip_straight, (bool, np.bool_)):
            raise ParameterError(f"ControllerConfig.skip_straight must be True or False, got {self.skip_straight!r}")
        object.__setattr__(self, "skip_straight", bool(self.skip_straight))


def check_maze(maze) -> Maze:
    """``maze``, or the shared maze2d-large for None; anything else is refused.

    >>> check_maze(None) is Maze.large()
    True
    """
    if maze is None:
        return Maze.large()
    if not isinstance(maze, Maze):
        raise ParameterError(f"maze must be a Maze (or None for maze2d-large), got {type(maze).__name__}")
    return maze


def check_config(config) -> ControllerConfig:
    """``config`` if it is a :class:`ControllerConfig`, else :class:`ParameterError`.

    >>> check_config(ControllerConfig(kp=3.0)).kp
    3.0
    """
    if not isinstance(config, ControllerConfig):
        raise ParameterError(f"config must be a ControllerConfig, got {type(config).__name__}")
    return config


_START_MARGIN = 0.2   # agents start at rest, uniform in a free cell at least this far from its sides
_AGENT_BLOCK = 4096   # agents whose noise is drawn at once (bounds memory; part of the seed -> data map)


def waypoint_table(maze: Maze, skip_straight: bool = True) -> np.ndarray:
    """int (n, n): ``table[i, g]`` is the free cell (index in ``maze.free_cells``) an agent in cell
    i bound for cell g aims at next: the next cell of the BFS path (:attr:`.geometry.Maze.next_hop`)
    or, with ``skip_straight``, the last cell of the straight run that starts that path; -1 where
    g cannot be reached from i.

    >>> m = Maze("OOO\\nO#O")
    >>> int(waypoint_table(m, skip_straight=False)[0, 2]), int(waypoint_table(m)[0, 2])
    (1, 2)
    """
    nxt, cells = maze.next_hop, maze.free_cells
    if not skip_straight:
        return nxt.copy()
    goal = np.broadcast_to(np.arange(len(cells)), nxt.shape)
    reach = nxt >= 0
    w = np.where(reach, nxt, goal)
    step = cells[w] - cells[np.arange(len(cells))][:, None]
    for _ in range(max(maze.shape)):
        nw = nxt[w, goal]
        more = reach & (w != goal) & (cells[nw] - cells[w] == step).all(-1)
        if not more.any():
            break
        w = np.where(more, nw, w)
    return np.where(reach, w, -1)


def simulate(n_agents: int, n_steps: int, seed: int, config: ControllerConfig = ControllerConfig(),
             maze: Maze | None = None) -> np.ndarray:
    """Trajectories of independent point masses, float64 (n_agents, n_steps, 2) of (x, y).

    Each agent starts at rest at a uniform point of a free cell (``0.2`` from its sides) and
    repeatedly: picks a goal cell uniformly among the other free cells, follows the centres of
    the BFS cell path to it (:meth:`.geometry.Maze.cell_path`, without the centre of the cell it starts
    from; with ``config.skip_straight`` only the ends of straight runs), switching to the next
    centre within ``config.switch_radius``, under the controller of :class:`ControllerConfig`.
    Collisions: each step moves along the straight segment x -> x + v dt; if it would enter a
    wall (:meth:`.geometry.Maze.segments_enter_walls`) the agent stops on the wall face and loses the
    velocity component into it, so the dense trajectory never enters a wall.  Row ``t`` is
    the state before step ``t`` (row 0: the start).

    Deterministic given ``seed`` (``np.random.default_rng(seed)``: start points, first goals,
    then per block of agents the noise and goal draws), compiled with numba: ~1e6 agent-steps
    per second or more on one core.

    >>> x = simulate(3, 200, seed=1)
    >>> x.shape, bool(Maze.large().path_valid(x, upsample=1).all())
    ((3, 200, 2), True)
    """
    n_agents = check_int("n_agents", n_agents, 1)
    n_steps = check_int("n_steps", n_steps, 1)
    seed = check_int("seed", seed, 0)
    cfg, maze = check_config(config), check_maze(maze)
    rng = np.random.default_rng(seed)
    nodes = maze.free_cells
    n_free = len(nodes)
    x0 = maze.random_free_points(n_agents, rng, margin=_START_MARGIN)
    cell0 = maze.free_index[tuple(maze.cell_of(x0).T)]
    goal0 = (cell0 + 1 + rng.integers(max(n_free - 1, 1), size=n_agents)) % n_free if n_free > 1 else cell0
    waypoint = waypoint_table(maze, cfg.skip_straight)
    reach = waypoint[cell0, goal0] >= 0
    if not reach.all():  # disconnected layout: aim at the own cell until a reachable goal is drawn
        goal0 = np.where(reach, goal0, cell0)
        waypoint = np.where(waypoint >= 0, waypoint, np.arange(n_free)[:, None])
    centres = (nodes[:, ::-1] + 0.5).astype(np.float64)
    rects, ptr, idx = maze.wall_rects
    out = np.empty((n_agents, n_steps, 2))
    for a in range(0, n_agents, _AGENT_BLOCK):
        b = min(n_agents, a + _AGENT_BLOCK)
        noise = rng.standard_normal((b - a, n_steps, 2), dtype=np.float32)
        u = rng.random((b - a, n_steps))
        simulate_agents(x0[a:b], cell0[a:b], goal0[a:b], noise, u, centres, np.ascontiguousarray(waypoint),
                        rects, ptr, idx, maze.shape[0], maze.shape[1], cfg.dt, cfg.kp, cfg.kd, cfg.a_max,
                        cfg.v_max, cfg.noise_std, cfg.switch_radius, out[a:b])
    return out

