"""Images with the interpolant core: one model for inpainting, sequential generation and editing.

The Hadamard interpolant (THEORY.md 4.1) on pixels: I = a * x0 + (1 - a) * x1 with a per-pixel
time a (shared by the channels of a pixel), learned by the same trainer as the phi^4 fields
(:func:`phi4si.model.train.train` with an :class:`~phi4si.model.data.ArrayData` source) on the non-periodic
U-Net (``padding="zeros"``), and used through the same paths and integrators:

* generation:            a: 1 -> 0 on every pixel;
* inpainting:            a: 1 -> 0 on masked pixels, observed pixels fixed (THEORY 4.3);
* noisy observations:    y = x + sigma z is the state (1 - a_o) y at a_o = sigma' / (1 + sigma')
  (sigma' = sigma / scale in the model's units).  Stage 1 moves the masked pixels with the observed
  ones held at a_o: a sample of the masked pixels given y.  Stage 2 takes the observed pixels from
  a_o to 0 with the SDE whose diffusion is eps = a |a'| / (1 - a): the time reversal of the
  forward noising y_r = x + r z (r = a / (1 - a), a Brownian motion in r^2), whose transition
  from the state is the exact conditional law of x given y (``denoise="sample"``); ``"mean"``
  returns E[x | ...] from one drift evaluation, ``"keep"`` the noisy observations.
* sequential generation: blocks of pixels move 1 -> 0 one after another, in any order;
* editing:               re-mask a region of an image and regenerate it, any number of times.

Data (:func:`load_images`): the 8x8 digits bundled with scikit-learn (the default, ``"digits"``),
a folder of PNG/JPEG files, a ``.npy`` array or an HDF5 dataset (``file.h5:name``); grayscale or
RGB, values mapped to [0, 1].  :func:`split` holds out test images deterministically.  Metrics
(:func:`psnr`, :func:`ssim`) are scikit-image's; baselines (:func:`baseline_fill`) are
scikit-image's biharmonic inpainting, the per-image mean of the observed pixels and the nearest
observed pixel.

>>> x, info = load_images("digits")
>>> x.shape, info["channels"], float(x.max())
((1797, 1, 8, 8), 1, 1.0)
"""

# layout: the image task end to end (data, masks, the four tasks, metrics and baselines, figures,
# the output file) in one module, in sections; each section is short and uses the shared core.
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..errors import ParameterError
from ..interpolant import masks as _masks
from ..io import atomic_write, prepare_output, utc_now
from ..model.solve import SolveSettings, solve_batches
from ..seeds import numpy_rng, stream_seed

__all__ = ["load_images", "split", "image_data", "train_images", "load_image_model", "held_out_images", "generate_images",
           "sequential_images", "inpaint_images", "edit_images", "random_masks", "block_masks", "parse_image_mask",
           "psnr", "ssim", "baseline_fill", "BASELINES", "evaluate_inpainting", "plot_grid", "plot_samples", "write_images"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# ------------------------------------------------------------------------------------------------ data
def _to_unit(arr: np.ndarray, what: str) -> np.ndarray:
    """Integer images -> [0, 1] by their type's range; float images must already lie in [0, 1]."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0:
            raise ParameterError(f"{what}: integer images must be non-negative")
        top = np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.unsignedinteger) else \
            (255 if arr.max() <= 255 else 65535)
        return (arr.astype(np.float64) / top).astype(np.float32)
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ParameterError(f"{what}: the images contain NaN or inf")
    if arr.min() < 0 or arr.max() > 1:
        raise ParameterError(f"{what}: float images must lie in [0, 1] (got [{arr.min():.3g}, {arr.max():.3g}]); "
                             f"rescale them or store them as uint8")
    return arr


def _channels_first(arr: np.ndarray, what: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) or (N, C, H, W) with C in {1, 3} -> (N, C, H, W)."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4:
        if arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
            return np.moveaxis(arr, -1, 1)
        if arr.shape[1] in (1, 3):
            return arr
        if arr.shape[-1] in (1, 3):
            return np.moveaxis(arr, -1, 1)
    raise ParameterError(f"{what}: expected images of shape (N, H, W), (N, H, W, C) or (N, C, H, W) with "
                         f"C = 1 (grayscale) or 3 (RGB), got {arr.shape}")


#: Built-in image sources: scikit-learn's digits at 8x8 and upsampled 2x and 4x (for blurs of 1-2 pixels).
DIGITS = {"digits": 1, "digits16": 2, "digits32": 4}


_DIGITS_CACHE: dict = {}


def _digits(source):
    """The built-in digits at one of the :data:`DIGITS` sizes, computed once per process."""
    if source not in _DIGITS_CACHE:
        from scipy.ndimage import zoom
        from sklearn.datasets import load_digits

        d, k = load_digits(), DIGITS[source]
        x = (d.images / 16.0)[:, None]
        if k > 1:      # cubic-spline upsampling (per image), clipped back to [0, 1]
            x = np.clip(zoom(x, (1, 1, k, k), order=3, mode="nearest", grid_mode=True), 0.0, 1.0)
        _DIGITS_CACHE[source] = (x.astype(np.float32), tuple(d.target.astype(int).tolist()))
    return _DIGITS_CACHE[source]


def load_images(source: str = "digits") -> tuple[np.ndarray, dict]:
    """Images as float32 (N, C, H, W) in [0, 1] and a description of where they came from.

    ``source``: ``"digits"`` (scikit-learn's 1797 8x8 digits, values 0..16 -> /16), ``"digits16"``,
    ``"digits32"`` (the same upsampled 2x, 4x by cubic splines, clipped to [0, 1]), a folder of
    PNG/JPEG files (sorted by name; all the same size; RGB if any file is colour, else grayscale),
    ``FILE.npy`` or ``FILE.h5:DATASET`` / ``FILE.hdf5:DATASET`` (uint8 -> /255, or floats in [0, 1]).

    >>> x, info = load_images("digits")
    >>> info["source"], x.dtype.name
    ('digits', 'float32')
    """
    source = str(source)
    if source in DIGITS:
        x, labels = _digits(source)
        k = DIGITS[source]
        return x.copy(), {"source": source, "n": int(len(x)), "channels": 1, "size": [8 * k, 8 * k],
                          "labels": list(labels)}
    m = re.match(r"^(.*\.(?:h5|hdf5)):(.+)$", source)
    path = Path(m.group(1) if m else source)
    if not path.exists():
        raise ParameterError(f"image source {source!r}: no such file or folder (use 'digits', a folder of "
                             f"PNG/JPEG files, FILE.npy or FILE.h5:DATASET)")
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise ParameterError(f"{path}: no PNG/JPEG files in this folder")
        imgs = []
        for f in files:
            try:
                with Image.open(f) as im:
                    imgs.append(im.convert("RGB") if im.mode not in ("L", "1", "I;16", "I") else im.convert("L"))
            except OSError as e:
                raise ParameterError(f"{f}: not a readable image ({e})") from None
        sizes = {im.size for im in imgs}
        if len(sizes) > 1:
            odd = next(f for f, im in zip(files, imgs) if im.size != imgs[0].size)
            raise ParameterError(f"{path}: images differ in size ({sorted(sizes)}; e.g. {odd.name}); resize them "
                                 f"to one size first")
        rgb = any(im.mode == "RGB" for im in imgs)
        arr = np.stack([np.asarray(im.convert("RGB") if rgb else im, dtype=np.uint8) for im in imgs])
        x = _channels_first(_to_unit(arr, str(path)), str(path))
    elif path.suffix == ".npy" and not m:
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ParameterError(f"{path}: not a readable .npy array ({e})") from None
        x = _channels_first(_to_unit(arr, str(path)), str(path))
    elif m:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if m.group(2) not in f:
                    raise ParameterError(f"{path}: no dataset {m.group(2)!r} (it has {sorted(f.keys())})")
                arr = np.asarray(f[m.group(2)])
        except OSError as e:
            raise ParameterError(f"{path}: not a readable HDF5 file ({e})") from None
        x = _channels_first(_to_unit(arr, source), source)
    else:
        raise ParameterError(f"image source {source!r}: use 'digits', a folder of PNG/JPEG files, FILE.npy or "
                             f"FILE.h5:DATASET")
    if len(x) < 2:
        raise ParameterError(f"{source}: need at least 2 images, got {len(x)}")
    return np.ascontiguousarray(x), {"source": str(path.resolve()) + (f":{m.group(2)}" if m else ""),
                                     "n": int(len(x)), "channels": int(x.shape[1]), "size": list(x.shape[2:])}


def split(n: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, test) index arrays: a permutation of range(n) by ``seed``, the first
    ``n_test`` for testing.

    >>> tr, te = split(10, 3, seed=1)
    >>> len(tr), len(te), sorted(np.concatenate([tr, te]).tolist()) == list(range(10))
    (7, 3, True)
    """
    if not 0 <= int(n_test) < int(n):
        raise ParameterError(f"n_test must be in [0, {n}) to leave training images, got {n_test}")
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    return np.sort(perm[int(n_test):]), np.sort(perm[: int(n_test)])


def image_data(source: str = "digits", n_test: int = 300, split_seed: int = 0, val_fraction: float = 0.05,
               padding: str = "zeros"):
    """The training :class:`~phi4si.model.data.ArrayData` of ``source`` without its ``n_test`` held-out
    images; the split and the source are recorded in its params (hence in the checkpoint)."""
    from ..model.data import ArrayData

    x, info = load_images(source)
    tr, _ = split(len(x), n_test, split_seed)
    info = {k: v for k, v in info.items() if k != "labels"}
    params = {"kind": "images", **info, "n_test": int(n_test), "split_seed": int(split_seed), "value_range": [0, 1]}
    return ArrayData(x[tr], params, val_fraction=val_fraction, model_defaults={"padding": padding},
                     source=info["source"])


def train_images(source, out, config=None, n_test: int = 300, split_seed: int = 0, padding: str = "zeros", **kw):
    """Train an image model (see :func:`phi4si.model.train.train`; ``config.measure`` defaults to the
    ``"images"`` preset: generation, masks with noisy observations, blocks, hypercube)."""
    from ..model.train import TrainConfig, train

    cfg = config if config is not None else TrainConfig(measure="images", model="medium")
    return train(image_data(source, n_test, split_seed, padding=padding), out, cfg, **kw)


def load_image_model(path, device="cpu", dtype=torch.float32):
    """Load a checkpoint written by :func:`train_images` (refuses other checkpoints)."""
    from ..errors import CheckpointError
    from ..model.checkpoint import load_model

    model = load_model(path, device=device, dtype=dtype)
    if (model.lattice.get("params") or {}).get("kind") != "images":
        raise CheckpointError(f"{path}: not an image model (it was trained on {model.lattice.get('params')})")
    return model


def held_out_images(model) -> np.ndarray:
    """The held-out images of the model's training source (the split recorded in the checkpoint)."""
    p = model.lattice["params"]
    src = "digits" if p["source"] == "digits" else p["source"]
    x, _ = load_images(src)
    _, te = split(len(x), p["n_test"], p["split_seed"])
    return x[te]


# ------------------------------------------------------------------------------------------------ masks
def random_masks(n: int, shape, fraction: float, seed: int = 0) -> np.ndarray:
    """n independent masks (True = unknown): each pixel unknown with probability ``fraction``
    (at least one unknown pixel per mask).

    >>> random_masks(2, (8, 8), 0.7, seed=0).shape
    (2, 8, 8)
    """
    return _masks.random_masks(n, shape, fraction, seed)


def block_masks(n: int, shape, size, seed: int | None = 0, at=None) -> np.ndarray:
    """n square/rectangular block masks of ``size`` (int or (h, w)) inside the image (no wrapping),
    at ``at`` = (i, j) or, with at=None, at a uniformly random position per mask.

    >>> block_masks(1, (8, 8), 4, at=(2, 2))[0].sum()
    np.int64(16)
    """
    return _masks.block_masks(n, shape, size, seed, at, periodic=False)


def parse_image_mask(spec: str, n: int, shape, seed: int = 0) -> np.ndarray:
    """Masks (n, H, W) from ``random:F`` (one random mask per image), ``block:HxW`` (a random
    position per image), ``block:HxW@I,J`` (fixed) or ``FILE.npy`` ((H, W) or (n, H, W) booleans):
    :func:`phi4si.interpolant.masks.parse_mask` with blocks inside the images, one mask per image.

    >>> parse_image_mask("block:2x3@1,0", 1, (4, 4))[0].astype(int)[1]
    array([1, 1, 1, 0])
    """
    return _masks.parse_mask(spec, shape, periodic=False, n=n, seed=seed)


# ------------------------------------------------------------------------------------------------ tasks
def observe(images, masks, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The observation of ``images`` (N, C, H, W) through ``masks`` (N, H, W; True = unknown) with
    Gaussian noise of standard deviation ``noise`` on the observed pixels: y = x + noise z there, 0 on
    the unknown pixels (what :func:`inpaint_images` and the baselines are given).

    >>> y = observe(np.ones((1, 1, 2, 2)), np.array([[[True, False], [False, False]]]), 0.0,
    ...             np.random.default_rng(0))
    >>> y[0, 0].tolist()
    [[0.0, 1.0], [1.0, 1.0]]
    """
    noise = float(noise)
    if not (np.isfinite(noise) and noise >= 0):
        raise ParameterError(f"noise must be a finite number >= 0, got {noise}")
    masks = np.asarray(masks, dtype=bool)
    y = images + noise * rng.standard_normal(np.shape(images)) * ~masks[:, None]
    return np.where(masks[:, None], 0.0, y)


def check_images(model, images, what="images") -> np.ndarray:
    x = np.array(images, dtype=np.float64)
    C = model.channels
    if x.ndim == 3 and C == 1:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != C:
        raise ParameterError(f"{what}: the model works on {C}-channel images (N, {C}, H, W), got shape {x.shape}")
    model.check_shape(x.shape[2:])
    if not np.isfinite(x).all():
        raise ParameterError(f"{what} contain NaN or inf")
    return x


def generate_images(model, n: int, shape=None, steps: int = 50, solver: str = "heun", seed: int = 0,
                    batch_size: int = 256) -> np.ndarray:
    """n images (n, C, H, W) in data units from noise (a: 1 -> 0 on every pixel)."""
    from ..interpolant.paths import GenerationPath

    shape = model.check_shape(model.shape if shape is None else shape)
    x = solve_batches(model, n, shape, lambda z, i, b: z, GenerationPath(shape),
                      SolveSettings(steps, solver, None, seed, batch_size))
    return model.to_physical(x).numpy()


def sequential_images(model, n: int, order: str = "raster", block: int = 4, shape=None, steps: int = 20,
                      solver: str = "heun", seed: int = 0, order_seed: int | None = None,
                      batch_size: int = 256) -> np.ndarray:
    """Block-by-block generation: blocks of ``block`` x ``block`` pixels move 1 -> 0 one after
    another in ``order`` ('raster', 'reverse', 'random', 'coarse_to_fine'); ``steps`` per block."""
    from ..interpolant.paths import sequential_path

    shape = model.check_shape(model.shape if shape is None else shape)
    path = sequential_path(shape, order, block=block, seed=seed if order_seed is None else order_seed)
    x = solve_batches(model, n, shape, lambda z, i, b: z, path, SolveSettings(steps, solver, None, seed, batch_size))
    return model.to_physical(x).numpy()


def inpaint_images(model, images, masks, noise: float = 0.0, steps: int = 50, solver: str = "heun", seed: int = 0,
                   denoise: str = "sample", denoise_steps: int = 20, batch_size: int = 256) -> np.ndarray:
    """Complete ``images`` (N, C, H, W) (or (N, H, W) for grayscale) in data units on the pixels where
    ``masks`` ((H, W) or (N, H, W), True = unknown) is True.

    ``noise`` = 0: observed pixels are exact and returned bit for bit.  ``noise`` = sigma > 0: the
    observed pixels are y = x + sigma z (data units); the masked pixels are sampled given y, and the
    observed ones are then denoised by ``denoise``: 'sample' (exact conditional SDE, see the module
    docstring), 'mean' (E[x | y, completed pixels]) or 'keep' (return y).

    With the exact drift of a Gaussian "image" model (a trained one: :func:`load_image_model`):

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.model import DriftModel
    >>> model = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0), mean=0.5, scale=0.2)
    >>> x = np.full((2, 1, 4, 4), 0.5)
    >>> hole = block_masks(1, (4, 4), 2, at=(1, 1))[0]
    >>> out = inpaint_images(model, x, hole, steps=5)
    >>> bool((out[:, 0, ~hole] == 0.5).all()), bool((out[:, 0, hole] != 0.5).all())   # observed pixels kept
    (True, True)
    >>> inpaint_images(model, x, random_masks(2, (4, 4), 0.7), noise=0.01, steps=5, denoise_steps=5).shape
    (2, 1, 4, 4)
    """
    from ..interpolant.paths import InpaintPath

    x = check_images(model, images)
    N, shape = len(x), tuple(x.shape[2:])
    m = np.asarray(masks, dtype=bool)
    m = np.broadcast_to(m, (N, *shape)).copy() if m.shape == shape else m
    if m.shape != (N, *shape):
        raise ParameterError(f"masks of shape {np.shape(masks)} do not fit {N} images of size {shape}: give "
                             f"(H, W) or (N, H, W)")
    if not m.reshape(N, -1).any(1).all():
        raise ParameterError("some mask has no unknown pixel: nothing to inpaint")
    if not (np.isfinite(noise) and noise >= 0):
        raise ParameterError(f"noise must be a finite number >= 0, got {noise}")
    if denoise not in ("sample", "mean", "keep"):
        raise ParameterError(f"denoise must be 'sample', 'mean' or 'keep', got {denoise!r}")
    sig = float(noise) / model.scale
    a_obs = sig / (1.0 + sig)
    xn = model.to_normalised(torch.from_numpy(x))
    mt = torch.from_numpy(m)[:, None]
    # stage 1: masked pixels 1 -> 0 with the observed ones held at a_obs (state (1 - a_obs) y)
    start = lambda z, i, b: torch.where(mt[i:i + b], z.double(), (1 - a_obs) * xn[i:i + b])  # noqa: E731
    path = lambda i, b: InpaintPath(m[i:i + b], batched=True, a_observed=a_obs)  # noqa: E731
    out = solve_batches(model, N, shape, start, path, SolveSettings(steps, solver, None, seed, batch_size))
    if a_obs > 0 and denoise != "keep":
        out = torch.where(mt, out, (1 - a_obs) * xn)
        if denoise == "mean":
            drift = model.drift()
            with torch.no_grad():
                a = (a_obs * (~mt)).to(model.dtype)
                eta1 = torch.cat([drift.etas(out[i:i + batch_size].to(model.device, model.dtype),
                                             a[i:i + batch_size].to(model.device))[1].double().cpu()
                                  for i in range(0, N, batch_size)])
            out = torch.where(mt, out, eta1)
        else:
            # stage 2: observed pixels a_obs -> 0, completed pixels pinned; eps = a|a'|/(1-a) = c(s) a(s)
            obs = ~m
            p2 = lambda i, b: InpaintPath(obs[i:i + b], batched=True)  # noqa: E731
            scaled = _StartScaled(p2, a_obs)
            c = lambda s: a_obs / (1.0 - a_obs * (1.0 - s))  # noqa: E731
            done = out
            out = solve_batches(model, N, shape, lambda z, i, b: done[i:i + b], scaled,
                                SolveSettings(denoise_steps, "euler", c, stream_seed(seed, "denoise"), batch_size))
    res = model.to_physical(out).numpy()
    if a_obs == 0 or denoise == "keep":
        res[~np.broadcast_to(m[:, None], res.shape)] = x[~np.broadcast_to(m[:, None], x.shape)]
    return res


class _StartScaled:
    """Per-batch paths a = a0 * p(i, b).a(s) (StartAt of each batch's path)."""

    def __init__(self, paths, a0):
        self.paths, self.a0 = paths, a0

    def __call__(self, i, b):
        from ..interpolant.paths import StartAt

        return StartAt(self.paths(i, b), self.a0)


def edit_images(model, image, regions, steps: int = 50, solver: str = "heun", seed: int = 0) -> np.ndarray:
    """Edit one image several times in a row: for each region (bool (H, W), True = regenerate) the
    region is re-masked and inpainted given the current image.  Returns (len(regions) + 1, C, H, W):
    the image and every edit; pixels outside a region are kept bit for bit at that edit."""
    x = check_images(model, np.asarray(image)[None], "image")
    out = [x[0]]
    for k, r in enumerate(regions):
        r = np.asarray(r, bool)
        if r.shape != tuple(x.shape[2:]):
            raise ParameterError(f"edit region {k} has shape {r.shape}, the image is {tuple(x.shape[2:])}")
        out.append(inpaint_images(model, out[-1][None], r, steps=steps, solver=solver, seed=stream_seed(seed, "edit", k))[0])
    return np.stack(out)


# ------------------------------------------------------------------------------------------------ metrics
def psnr(ref, est) -> np.ndarray:
    """Peak signal-to-noise ratio per image (dB), scikit-image's, data range 1 (images clipped to [0, 1]).

    >>> float(psnr(np.zeros((1, 1, 4, 4)), np.full((1, 1, 4, 4), 0.1))[0])
    20.0
    """
    from skimage.metrics import peak_signal_noise_ratio

    r, e = np.clip(np.asarray(ref, float), 0, 1), np.clip(np.asarray(est, float), 0, 1)
    return np.array([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(r, e)])


def ssim(ref, est) -> np.ndarray:
    """Structural similarity per image, scikit-image's (Gaussian-free 7x7 window, or the largest odd
    window that fits), data range 1, channels averaged; images clipped to [0, 1].

    >>> float(ssim(np.ones((1, 1, 8, 8)) * 0.5, np.ones((1, 1, 8, 8)) * 0.5)[0])
    1.0
    """
    from skimage.metrics import structural_similarity

    r, e = np.clip(np.asarray(ref, float), 0, 1), np.clip(np.asarray(est, float), 0, 1)
    win = min(7, min(r.shape[2:]) - (1 - min(r.shape[2:]) % 2))
    return np.array([structural_similarity(a, b, data_range=1.0, channel_axis=0, win_size=win) for a, b in zip(r, e)])


BASELINES = ("biharmonic", "mean", "nearest")


def baseline_fill(images, masks, method: str = "biharmonic") -> np.ndarray:
    """Classical inpainting of (N, C, H, W) images on the masked pixels: 'biharmonic'
    (scikit-image's ``inpaint_biharmonic``), 'mean' (the image's mean observed value per channel)
    or 'nearest' (the value of the nearest observed pixel).

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4) / 16; m = np.zeros((1, 4, 4), bool); m[0, 0, 0] = True
    >>> float(baseline_fill(x, m, "nearest")[0, 0, 0, 0]) in (1 / 16, 4 / 16)
    True
    """
    from scipy.ndimage import distance_transform_edt

    x = np.asarray(images, dtype=np.float64)
    m = np.asarray(masks, dtype=bool)
    if method not in BASELINES:
        raise ParameterError(f"unknown baseline {method!r} (choose from {BASELINES})")
    out = x.copy()
    for k in range(len(x)):
        if method == "biharmonic":
            from skimage.restoration import inpaint_biharmonic

            out[k] = inpaint_biharmonic(x[k], m[k], channel_axis=0)
        elif method == "mean":
            for c in range(x.shape[1]):
                out[k, c][m[k]] = x[k, c][~m[k]].mean() if (~m[k]).any() else 0.5
        else:
            if (~m[k]).any():
                idx = distance_transform_edt(m[k], return_distances=False, return_indices=True)
                out[k] = x[k][:, idx[0], idx[1]]
    return out


def evaluate_inpainting(model, images, tasks: dict, seed: int = 0, steps: int = 50, n_mean: int = 0,
                        batch_size: int = 256, progress=None) -> dict:
    """PSNR/SSIM of phi4si and the baselines on held-out ``images`` for each task.

    ``tasks``: name -> dict(mask=spec for :func:`parse_image_mask`, noise=sigma).  The observed
    pixels given to every method carry the same Gaussian noise (drawn with ``seed``).  phi4si is
    scored on one sample per image ("phi4si") and, with ``n_mean > 0``, on the mean of ``n_mean``
    samples ("phi4si_mean", the posterior-mean estimate).  Returns per-task means, standard errors
    and per-image arrays."""
    x = check_images(model, images)
    N, shape = len(x), tuple(x.shape[2:])
    observed = {}
    for t, (name, task) in enumerate(tasks.items()):       # every task's masks and noise checked before any work
        try:
            masks = parse_image_mask(task["mask"], N, shape, stream_seed(seed, "evaluate", t, 0))
            observed[name] = (masks, observe(x, masks, float(task.get("noise", 0.0)),
                                             numpy_rng(seed, "evaluate", t, 1)))
        except ParameterError as e:
            raise ParameterError(f"task {name!r}: {e}") from None
    res = {}
    for t, (name, task) in enumerate(tasks.items()):
        masks, y_masked = observed[name]
        sigma = float(task.get("noise", 0.0))
        t0 = time.perf_counter()
        est = {"phi4si": inpaint_images(model, y_masked, masks, noise=sigma, steps=steps, seed=stream_seed(seed, "evaluate", t, 2),
                                        batch_size=batch_size)}
        wall = time.perf_counter() - t0
        if n_mean > 0:
            reps = [inpaint_images(model, y_masked, masks, noise=sigma, steps=steps, seed=stream_seed(seed, "evaluate", t, 3, r),
                                   batch_size=batch_size) for r in range(n_mean)]
            est["phi4si_mean"] = np.mean(reps, axis=0)
        for b in BASELINES:
            est[b] = baseline_fill(y_masked, masks, b)
        est["degraded"] = y_masked
        scores = {}
        for k, e in est.items():
            p, s = psnr(x, e), ssim(x, e)
            scores[k] = {"psnr": float(p.mean()), "psnr_err": float(p.std(ddof=1) / np.sqrt(N)),
                         "ssim": float(s.mean()), "ssim_err": float(s.std(ddof=1) / np.sqrt(N)),
                         "psnr_per_image": p.round(4).tolist(), "ssim_per_image": s.round(5).tolist()}
        d_psnr = psnr(x, est["phi4si"]) - psnr(x, est["biharmonic"])
        d_ssim = ssim(x, est["phi4si"]) - ssim(x, est["biharmonic"])
        res[name] = {"mask": task["mask"], "noise": sigma, "n_images": N, "scores": scores,
                     "phi4si_minus_biharmonic": {"psnr": float(d_psnr.mean()),
                                                 "psnr_err": float(d_psnr.std(ddof=1) / np.sqrt(N)),
                                                 "ssim": float(d_ssim.mean()),
                                                 "ssim_err": float(d_ssim.std(ddof=1) / np.sqrt(N))},
                     "seconds_per_image": wall / N, "_est": est, "_masks": masks, "_observed": y_masked}
        if progress:
            progress(name, res[name])
    return res


def _rgb(img):
    img = np.clip(np.moveaxis(np.asarray(img, float), 0, -1), 0, 1)
    return np.repeat(img, 3, -1) if img.shape[-1] == 1 else img


def _save(fig, path, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    from ..io import save_figure

    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_grid(path, columns: dict, masks=None, n: int = 8, title: str = ""):
    """Figure grid, one row per image and one column per entry of ``columns`` (name -> images
    (N, C, H, W)); with ``masks`` a "masked" column after the first shows its images with the
    unknown pixels in pink.  Writes ``path`` (PNG/PDF) and returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(columns)
    if masks is not None:
        names.insert(1, "masked")
    n = min(n, len(columns[names[0]]))
    fig, axes = plt.subplots(n, len(names), figsize=(1.3 * len(names), 1.3 * n + 0.4), squeeze=False)
    for r in range(n):
        for c, name in enumerate(names):
            rgb = _rgb(columns[names[0]][r] if name == "masked" else columns[name][r])
            if name == "masked":
                rgb = np.where(np.asarray(masks[r], bool)[..., None], np.array([1.0, 0.6, 0.8]), rgb)
            axes[r, c].imshow(rgb, interpolation="nearest")
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(name, fontsize=8)
    return _save(fig, path, title)


def plot_samples(path, images, ncol: int = 8, title: str = ""):
    """Images (N, C, H, W) on a grid of ``ncol`` columns; writes ``path`` and returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, min(n, ncol), figsize=(1.1 * min(n, ncol), 1.1 * nrow + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < n:
            ax.imshow(_rgb(images[k]), interpolation="nearest")
        ax.set_axis_off()
    return _save(fig, path, title)


def write_images(out, images, attrs: dict, extra: dict | None = None, overwrite: bool = False) -> Path:
    """HDF5 output: dataset ``images`` (N, C, H, W) float32 in data units, optional extra datasets
    (masks, observed, ...), and attrs recording how it was made (JSON values, version, date)."""
    import h5py

    out = prepare_output(out, overwrite)
    images = np.asarray(images, dtype=np.float32)
    if not np.isfinite(images).all():
        raise ParameterError("generated images contain NaN or inf; nothing written")

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=images, compression="gzip")
            for k, v in (extra or {}).items():
                f.create_dataset(k, data=np.asarray(v), compression="gzip")
            for k, v in attrs.items():
                f.attrs[k] = json.dumps(v) if not isinstance(v, str) else v
            f.attrs["version"] = __version__
            f.attrs["date"] = utc_now()

    atomic_write(out, write)
    return out
