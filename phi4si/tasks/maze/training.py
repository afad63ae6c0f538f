"""The maze planner's network (torch): a trajectory file as training data (:func:`maze_data`),
training (:func:`train_maze`), loading (:func:`load_maze_model`) and the layout a model was
trained in (:func:`model_maze`).

The same interpolant core as the lattice and image tasks: the Hadamard interpolant over the
sequence axis, ``I = a * x0 + (1 - a) * x1`` with one time ``a_i`` per point of a trajectory
(shared by x and y), learned once by :func:`phi4si.model.train.train` on :func:`maze_data`.
Planning (:mod:`.planner`) is inpainting with that model (THEORY.md 4.3 and 7).

A tiny model trained for one step (plumbing, not quality):

>>> import os, tempfile
>>> from phi4si.model.train import TrainConfig
>>> from phi4si.tasks.maze.dataset import make_dataset, write_dataset
>>> cfg = TrainConfig(steps=1, batch_size=4, model="tiny", measure="maze", val_size=4, val_every=1)
>>> with tempfile.TemporaryDirectory() as tmp:
...     data = write_dataset(os.path.join(tmp, "maze.h5"), make_dataset(16, seed=0))
...     _ = train_maze(data, os.path.join(tmp, "maze.pt"), cfg, progress=False)
...     model = load_maze_model(os.path.join(tmp, "maze.pt"))
>>> model.channels, model.shape, model_maze(model).shape
(2, (50,), (9, 12))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import ParameterError
from .dataset import read_dataset
from .geometry import MAZE2D_LARGE, Maze

__all__ = ["MAZE_KIND", "reverse_in_time", "maze_data", "train_maze", "load_maze_model", "model_maze"]

MAZE_KIND = "maze"   # params["kind"] of a maze model's training data, checked by load_maze_model


def reverse_in_time(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Training augmentation: each trajectory (B, 2, n) read backwards with probability 1/2 (a
    path from s to g, reversed, is a path from g to s; planning pins both ends).

    >>> x = torch.arange(12.0).reshape(2, 2, 3)
    >>> y = reverse_in_time(x, torch.Generator().manual_seed(0))
    >>> all(torch.equal(a, b) or torch.equal(a.flip(-1), b) for a, b in zip(x, y))
    True
    """
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.reshape(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)


def maze_data(path, reverse: bool = True, val_fraction: float = 0.05):
    """The trajectories of a :func:`.dataset.write_dataset` file as training data for the 1-d U-Net:
    an :class:`~phi4si.model.data.ArrayData` of shape (N, 2, n) (channels x, y; the sequence is the
    lattice axis, non-periodic: zero padding), time-reversal augmentation when ``reverse``.
    The layout and the largest step between consecutive points (``step_max``, which bounds the
    k search of :func:`.planner.plan`) go into the checkpoint.

    >>> import os, tempfile
    >>> from phi4si.tasks.maze.dataset import make_dataset, write_dataset
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     data = maze_data(write_dataset(os.path.join(tmp, "maze.h5"), make_dataset(20, seed=0)))
    >>> data.channels, data.shape, data.n_train, data.n_val, data.params["kind"]
    (2, (50,), 19, 1, 'maze')
    >>> 0 < data.params["step_mean"] < data.params["step_max"] <= 0.6
    True
    """
    from ...model.data import ArrayData

    paths, attrs = read_dataset(path)
    layout = str(attrs.get("layout", MAZE2D_LARGE))
    Maze(layout)
    if paths.shape[1] < 3:
        raise ParameterError(f"{path}: paths of {paths.shape[1]} points; planning needs at least 3")
    step = np.linalg.norm(np.diff(paths.astype(np.float64), axis=1), axis=-1)
    src = str(Path(path).resolve())
    params = {"kind": MAZE_KIND, "layout": layout, "n_points": int(paths.shape[1]), "window": attrs.get("window"),
              "every": attrs.get("every"), "reverse": bool(reverse), "step_max": float(step.max()),
              "step_mean": float(step.mean()), "n_paths": int(len(paths)), "source": src}
    return ArrayData(np.transpose(paths, (0, 2, 1)), params, val_fraction=val_fraction,
                     augment=reverse_in_time if reverse else None, model_defaults={"padding": "zeros"}, source=src)


def train_maze(data_path, out, config=None, reverse: bool = True, **kw) -> dict:
    """Train a planner on a trajectory file (see :func:`phi4si.model.train.train`; the config defaults
    to the ``"maze"`` measure (diagonal, anchors, masks, hypercube) and the ``"maze"`` U-Net).
    The module docstring trains a tiny one."""
    from ...model.train import TrainConfig, train

    cfg = config if config is not None else TrainConfig(measure="maze", model="maze")
    return train(maze_data(data_path, reverse=reverse), out, cfg, **kw)


def load_maze_model(path, device="cpu", dtype=torch.float32):
    """Load a checkpoint written by :func:`train_maze` (refuses other checkpoints with a
    :class:`~phi4si.errors.CheckpointError`; the module docstring loads one).

    >>> load_maze_model("/nonexistent/maze.pt")
    Traceback (most recent call last):
    ...
    phi4si.errors.CheckpointError: /nonexistent/maze.pt: no such model file
    """
    from ...errors import CheckpointError
    from ...model.checkpoint import load_model

    model = load_model(path, device=device, dtype=dtype)
    if (model.lattice.get("params") or {}).get("kind") != MAZE_KIND:
        raise CheckpointError(f"{path}: not a maze model (it was trained on {model.lattice.get('params')})")
    return model


def model_maze(model) -> Maze:
    """The layout a maze model was trained in (``model.lattice["params"]["layout"]``) as a :class:`Maze`.

    >>> from types import SimpleNamespace
    >>> model_maze(SimpleNamespace(lattice={"params": {"layout": "OO#"}}))
    Maze(1x3, 2 free cells)
    """
    return Maze(model.lattice["params"]["layout"])
