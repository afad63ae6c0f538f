"""The one mask grammar (phi4si.interpolant.masks): periodic lattice masks and clipped per-image masks,
and the two front ends (phi4si.model.generate.parse_mask, phi4si.tasks.images.parse_image_mask)."""

import numpy as np
import pytest

from phi4si.errors import ParameterError
from phi4si.interpolant.masks import block_masks, parse_mask, random_masks
from phi4si.model.generate import parse_mask as lattice_mask
from phi4si.tasks.images import parse_image_mask


def test_periodic_blocks_wrap():
    m = parse_mask("block:3x2@3,3", (4, 4), periodic=True)
    assert m.shape == (4, 4) and m.sum() == 6
    assert m[[3, 0, 1]][:, [3, 0]].all()                          # rows 3, 0, 1 x columns 3, 0
    m3 = parse_mask("block:2x1x2@1,3,3", (4, 4, 4), periodic=True)
    assert m3.sum() == 4 and m3[1, 3, 3] and m3[2, 3, 0]
    assert np.array_equal(lattice_mask("block:3x2@3,3", (4, 4)), m)


def test_clipped_blocks_stay_inside():
    fixed = parse_mask("block:2x3@2,1", (4, 4), periodic=False, n=3)
    assert fixed.shape == (3, 4, 4) and (fixed == fixed[0]).all() and fixed[0, 2:, 1:].all() and fixed.sum() == 18
    moving = parse_mask("block:3x2", (6, 6), periodic=False, n=200, seed=4)
    assert (moving.reshape(200, -1).sum(1) == 6).all()
    rows, cols = moving.any(2), moving.any(1)
    assert all(np.ptp(np.flatnonzero(r)) == 2 for r in rows) and all(np.ptp(np.flatnonzero(c)) == 1 for c in cols)
    assert len({m.tobytes() for m in moving}) == 4 * 5                # every position drawn
    assert np.array_equal(moving, block_masks(200, (6, 6), (3, 2), seed=4, periodic=False))
    assert np.array_equal(moving, parse_image_mask("block:3x2", 200, (6, 6), seed=4))


def test_periodic_blocks_at_random_positions_wrap():
    m = parse_mask("block:3x3", (4, 4), periodic=True, n=100, seed=0)
    assert (m.reshape(100, -1).sum(1) == 9).all() and len({x.tobytes() for x in m}) == 16


def test_random_masks_shared_and_per_sample():
    one = parse_mask("random:0.3", (8, 8), periodic=True, seed=5)
    assert np.array_equal(one, np.random.default_rng(5).random((8, 8)) < 0.3)
    many = parse_mask("random:0.02", (3, 3), periodic=False, n=50, seed=1)
    assert many.reshape(50, -1).any(1).all()                          # an empty mask gets one site
    assert np.array_equal(many, random_masks(50, (3, 3), 0.02, seed=1))
    with pytest.raises(ParameterError, match="selected no site"):
        parse_mask("random:0.001", (3, 3), periodic=True, seed=0)


def test_mask_files(tmp_path):
    eye = tmp_path / "eye.npy"
    np.save(eye, np.eye(4, dtype=np.int64))
    assert np.array_equal(parse_mask(str(eye), (4, 4), periodic=True), np.eye(4, dtype=bool))
    per = parse_mask(str(eye), (4, 4), periodic=False, n=3)
    assert per.shape == (3, 4, 4) and (per == np.eye(4, dtype=bool)).all()
    stack = tmp_path / "stack.npy"
    np.save(stack, np.ones((3, 4, 4), bool))
    assert parse_mask(str(stack), (4, 4), periodic=False, n=3).all()
    with pytest.raises(ParameterError, match=r"has shape \(3, 4, 4\), the lattice is \(4, 4\)$"):
        parse_mask(str(stack), (4, 4), periodic=True)
    with pytest.raises(ParameterError, match="one per sample"):
        parse_mask(str(stack), (4, 4), periodic=False, n=2)
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((4, 4), bool))
    for kw in (dict(periodic=True), dict(periodic=False, n=2)):
        with pytest.raises(ParameterError, match="marks no site"):
            parse_mask(str(empty), (4, 4), **kw)
    junk = tmp_path / "junk.npy"
    junk.write_text("not numpy")
    with pytest.raises(ParameterError, match="not a readable .npy array"):
        parse_image_mask(str(junk), 1, (4, 4))


@pytest.mark.parametrize("spec, kw, match", [
    ("block:2x2", dict(periodic=True), r"cannot parse mask 'block:2x2': use block:RxC@I,J, random:FRACTION or FILE\.npy"),
    ("blob", dict(periodic=False, n=1), r"use random:FRACTION, block:HxW, block:HxW@I,J or FILE\.npy"),
    ("block:5x2@0,0", dict(periodic=True), r"mask 'block:5x2@0,0' does not fit the lattice \(4, 4\)"),
    ("block:2x2@0,4", dict(periodic=True), r"does not fit the lattice"),
    ("block:2x2@3,3", dict(periodic=False, n=1), r"mask 'block:2x2@3,3' does not fit images of size 4x4"),
    ("block:5x5", dict(periodic=False, n=1), r"does not fit images of size 4x4"),
    ("block:2x2x2@0,0,0", dict(periodic=True), r"give 2 sizes and 2 coordinates for the lattice \(4, 4\)"),
    ("block:2x2x2", dict(periodic=False, n=1), r"give 2 sizes for images"),
    ("random:0", dict(periodic=True), r"fraction must be in \(0, 1\], got 0\.0"),
    ("random:1.5", dict(periodic=False, n=1), r"fraction must be in \(0, 1\]"),
    ("random:1e", dict(periodic=True), r"the fraction is not a number"),
    ("missing.npy", dict(periodic=True), r"mask file missing\.npy does not exist"),
])
def test_refusals(spec, kw, match):
    with pytest.raises(ParameterError, match=match):
        parse_mask(spec, (4, 4), **kw)


def test_block_masks_from_numbers():
    with pytest.raises(ParameterError, match=r"block 2x5 at \(7, 0\) does not fit images of size 8x8"):
        block_masks(1, (8, 8), (2, 5), at=(7, 0), periodic=False)
    assert block_masks(1, (8, 8), (2, 5), at=(7, 6), periodic=True)[0, [7, 0]][:, [6, 7, 0, 1, 2]].all()
    with pytest.raises(ParameterError, match="mask fraction"):
        random_masks(1, (4, 4), 0.0)
