"""End-to-end validations of the image and maze tasks at a reduced budget (marked ``slow``: a few
minutes of CPU training each; run with ``python -m pytest -m slow tests/tasks/test_tasks_slow.py``).

The full-budget results are in papers/negrel2025 (images_digits.sh, maze_planning.sh); these
tests train the same models for fewer steps and check the issue's targets with margins that a
short run still has to meet."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_digits_inpainting_beats_biharmonic(tmp_path):
    from phi4si.tasks import images as im
    from phi4si.model.train import TrainConfig

    cfg = TrainConfig(steps=6000, model="medium", measure="images", threads=2, seed=0)
    im.train_images("digits", tmp_path / "d.pt", cfg, progress=False)
    model = im.load_image_model(tmp_path / "d.pt")
    x = im.held_out_images(model)[:100]
    res = im.evaluate_inpainting(model, x, {"random": {"mask": "random:0.7", "noise": 0.01},
                                            "block": {"mask": "block:4x4", "noise": 0.05}}, steps=30)
    d_rand, d_block = res["random"]["phi4si_minus_biharmonic"], res["block"]["phi4si_minus_biharmonic"]
    assert d_rand["psnr"] - 2 * d_rand["psnr_err"] > 3.0, d_rand
    assert d_block["ssim"] - 2 * d_block["ssim_err"] > 0.0, d_block


def test_maze_planning_is_valid_and_short(tmp_path):
    from phi4si.tasks import maze as mz
    from phi4si.model.train import TrainConfig

    mz.write_dataset(tmp_path / "m.h5", mz.make_dataset(20000, seed=0))
    cfg = TrainConfig(steps=3000, model="maze", measure="maze", threads=2, seed=0)
    mz.train_maze(tmp_path / "m.h5", tmp_path / "m.pt", cfg, progress=False)
    model = mz.load_maze_model(tmp_path / "m.pt")
    r = mz.evaluate_plans(model, 300, seed=1)
    assert r["valid_fraction"] >= 0.99, r["n_valid"]
    assert r["length_ratio"]["median"] < 1.2, r["length_ratio"]
    p = r["_plans"]
    assert np.all([mz.Maze.large().path_valid(q) == v for q, v in zip(p.paths, p.valid)])
