"""phi4si.tasks.maze.training: a trajectory file as training data, maze checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phi4si.errors import CheckpointError
from phi4si.tasks.maze.dataset import read_dataset
from phi4si.tasks.maze.geometry import MAZE2D_LARGE
from phi4si.tasks.maze.training import MAZE_KIND, load_maze_model, maze_data, model_maze, reverse_in_time


def test_maze_data_and_checkpoint(tiny_maze_model):
    data = maze_data(tiny_maze_model / "d.h5")
    paths, _ = read_dataset(tiny_maze_model / "d.h5")
    assert data.channels == 2 and data.shape == (50,) and data.n_train + data.n_val == 64
    assert data.params["kind"] == MAZE_KIND and data.params["layout"] == MAZE2D_LARGE
    ones = torch.ones(2, 2, 3)
    assert maze_data(tiny_maze_model / "d.h5", reverse=False).augment(ones, None) is ones   # no augmentation
    assert data.params["step_max"] == pytest.approx(np.linalg.norm(np.diff(paths, axis=1), axis=-1).max(), rel=1e-6)
    x = torch.arange(24.0).reshape(4, 2, 3)
    y = reverse_in_time(x, torch.Generator().manual_seed(0))
    for a, b in zip(x, y):
        assert torch.equal(a, b) or torch.equal(a.flip(-1), b)
    model = load_maze_model(tiny_maze_model / "m.pt")
    assert model.channels == 2 and model.shape == (50,) and model.net.config.padding == "zeros"
    assert model_maze(model).layout == MAZE2D_LARGE
    torch.save({"x": 1}, tiny_maze_model / "bad.pt")
    with pytest.raises(CheckpointError):
        load_maze_model(tiny_maze_model / "bad.pt")
