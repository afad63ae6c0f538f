"""Fixtures of the maze tests: the shared maze2d-large and a tiny planner trained once per session."""

from __future__ import annotations

import pytest

from phi4si.tasks.maze.geometry import Maze


@pytest.fixture(scope="session")
def maze():
    return Maze.large()


@pytest.fixture(scope="session")
def tiny_maze_model(tmp_path_factory):
    """A folder with a small dataset ``d.h5`` and a tiny planner ``m.pt`` trained on it for a few
    steps (plumbing, not quality)."""
    from phi4si.model.train import TrainConfig
    from phi4si.tasks.maze.dataset import make_dataset, write_dataset
    from phi4si.tasks.maze.training import train_maze

    d = tmp_path_factory.mktemp("maze")
    write_dataset(d / "d.h5", make_dataset(64, seed=3))
    cfg = TrainConfig(steps=3, batch_size=8, model="tiny", measure="maze", val_size=8, val_every=3)
    train_maze(d / "d.h5", d / "m.pt", cfg, progress=False)
    return d
