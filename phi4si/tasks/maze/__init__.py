"""Maze planning (Negrel et al. 2025, section 5.3): the D4RL maze2d-large layout, point-mass
trajectories, path validity, exact geodesic distances, and a planner that inpaints paths with an
interpolant model.

Modules, lowest first (each imports only those above it):

* :mod:`.checks` -- the argument checks every module shares (integers, arrays of (x, y) points);
* :mod:`.kernels` -- the numba loops: exact segment-versus-wall-rectangle tests, geodesics
  through corners, the point-mass simulation;
* :mod:`.geometry` -- the layout (:data:`MAZE2D_LARGE`), :class:`Maze` (free points and cells,
  exact segment and path validity, BFS cell paths, exact geodesics), :func:`path_length`;
* :mod:`.controller` -- the noisy waypoint controller (:class:`ControllerConfig`) and
  :func:`simulate`;
* :mod:`.dataset` -- training windows cut from simulated trajectories (:func:`make_dataset`)
  and their HDF5 files (:func:`write_dataset`, :func:`read_dataset`);
* :mod:`.training` -- the network side: a trajectory file as training data (:func:`maze_data`),
  :func:`train_maze`, :func:`load_maze_model`, :func:`model_maze`;
* :mod:`.planner` -- :func:`plan` (inpainting with a k search), :class:`Plans`,
  :func:`evaluate_plans`, :func:`write_plans`;
* :mod:`.figures` -- :func:`draw_maze` (the maze with paths and markers) and :func:`plot_plans`.

Why this cut: the modules follow what they need.  checks, kernels, geometry, controller and
dataset use numpy, numba and h5py only, so making and checking trajectories (and
``import phi4si.tasks.maze.geometry``) never imports torch; torch enters with :mod:`.training`
(the trajectory file becomes an :class:`~phi4si.model.data.ArrayData`, a checkpoint becomes a
model) and :mod:`.planner`; matplotlib only with :mod:`.figures`, which imports the geometry
(never the other way round).  The datasets are split from the training side for the same reason: the
``maze dataset`` command needs no torch.  The names below are loaded on first use, so importing
this package costs nothing until one of them is asked for.

>>> from phi4si.tasks.maze import Maze, simulate
>>> maze = Maze.large()
>>> maze.shape, len(maze.free_cells)
((9, 12), 46)
>>> bool(maze.path_valid(simulate(2, 120, seed=3), upsample=1).all())
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .controller import ControllerConfig, simulate
    from .dataset import DATASET_KIND, make_dataset, read_dataset, write_dataset
    from .figures import plot_plans
    from .geometry import MAZE2D_LARGE, TOL, Maze, path_length
    from .planner import Plans, evaluate_plans, plan, write_plans
    from .training import MAZE_KIND, load_maze_model, maze_data, model_maze, train_maze

# name -> the module that defines it
_EXPORTS = {
    "MAZE2D_LARGE": "geometry", "TOL": "geometry", "Maze": "geometry", "path_length": "geometry",
    "ControllerConfig": "controller", "simulate": "controller",
    "DATASET_KIND": "dataset", "make_dataset": "dataset", "write_dataset": "dataset", "read_dataset": "dataset",
    "MAZE_KIND": "training", "maze_data": "training", "train_maze": "training", "load_maze_model": "training",
    "model_maze": "training",
    "Plans": "planner", "plan": "planner", "evaluate_plans": "planner", "write_plans": "planner",
    "plot_plans": "figures",
    "draw_maze": "figures",
}

__all__ = [
    "MAZE2D_LARGE",
    "Maze",
    "ControllerConfig",
    "simulate",
    "path_length",
    "make_dataset",
    "write_dataset",
    "read_dataset",
    "maze_data",
    "train_maze",
    "load_maze_model",
    "model_maze",
    "Plans",
    "plan",
    "evaluate_plans",
    "plot_plans",
    "draw_maze",
    "write_plans",
]


def __getattr__(name):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
