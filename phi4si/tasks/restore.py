"""Image restoration with one model of the corruption family: deblur, denoise, fill missing pixels,
and any mix of them (the paper's multichannel denoising, THEORY.md 8.1).

Observation model (data units, per image): a Gaussian blur B_s of s pixels (periodic), white noise of
standard deviation ``noise`` and a set of missing pixels M,

    y = B_s x + noise z   on the observed pixels,        y irrelevant on M.

In the model's units (x_n = (x - mean) / scale; B_s keeps constants, so it commutes with this map)
y_n is exactly the interpolant I = alpha x0 + beta x1 of :class:`~phi4si.interpolant.operators.
Corruption` at (s, sigma = noise / scale, m = 1_M) once the missing pixels are filled with fresh
N(0, 1) noise.  A model trained on eta1 with the ``restore`` measure therefore returns

    E[x1 | I = y] = the posterior mean (MMSE estimate) of the clean image,

for any mix of the channels, in one network evaluation (``n_mean`` > 1 averages over the filling
noise of the missing pixels, which the exact eta1 ignores).  This is what PSNR rewards.  Where a task
pins a channel (noise = 0, no blur: the observed pixels are exact) the observed pixels are returned
as given.

Baselines (:func:`baseline_restore`, scikit-image): Wiener (balance tuned), unsupervised Wiener
(self-tuned), Richardson-Lucy (iterations tuned; run on the image padded periodically by three sides
so that its zero-boundary convolution matches the periodic blur) for deblurring; total variation, wavelet
(BayesShrink) and Gaussian smoothing for denoising; for blur with missing pixels, a deblur then
biharmonic inpainting (and the reverse order).  :func:`tune_baseline` picks each one's parameter by
PSNR on validation images, never on the test images.

>>> import numpy as np
>>> x = np.zeros((1, 1, 16, 16)); x[..., 8, 8] = 1.0
>>> y = corrupt(x, blur=1.0, noise=0.0)
>>> round(float(y.sum()), 6), round(float(y.max()), 3)           # the blur keeps the total, spreads it
(1.0, 0.159)
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from ..interpolant.operators import Corruption
from .images import check_images, psnr, ssim

__all__ = ["TASKS", "BASELINE_METHODS", "corrupt", "restore", "point_spread", "baseline_restore", "tune_baseline",
           "check_corruption"]

TASKS = ("deblur", "denoise", "mixed")
#: method -> (parameter name, grid searched by :func:`tune_baseline`, task kinds it serves)
BASELINE_METHODS = {
    "wiener": ("balance", tuple(float(v) for v in np.logspace(-4, 0, 13)), ("deblur", "mixed")),
    "unsupervised_wiener": (None, (None,), ("deblur", "mixed")),
    "richardson_lucy": ("num_iter", (2, 5, 10, 20, 30, 50, 80, 120), ("deblur", "mixed")),
    "tv": ("weight", tuple(float(v) for v in np.logspace(-3, 0, 13)), ("denoise",)),
    "wavelet": ("sigma_factor", (0.5, 0.75, 1.0, 1.5, 2.0), ("denoise",)),
    "gaussian": ("sigma", (0.3, 0.5, 0.7, 1.0, 1.5), ("denoise",)),
}


def _per_image(v, n: int, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    a = np.full(n, float(a)) if a.ndim == 0 else a.reshape(-1)
    if a.shape != (n,):
        raise ParameterError(f"{what}: give one number or one per image ({n}), got shape {np.shape(v)}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ParameterError(f"{what} must be finite numbers >= 0, got {v}")
    return a


def _missing(missing, n: int, shape) -> np.ndarray:
    if missing is None:
        return np.zeros((n, *shape), bool)
    m = np.asarray(missing)
    if m.dtype != bool:
        raise ParameterError(f"missing must be a boolean mask (True = missing pixel), got dtype {m.dtype}")
    m = np.broadcast_to(m, (n, *shape)).copy() if m.shape == tuple(shape) else m
    if m.shape != (n, *shape):
        raise ParameterError(f"missing of shape {np.shape(missing)} does not fit {n} images of size {tuple(shape)}")
    if m.reshape(n, -1).all(1).any():
        raise ParameterError("some image has every pixel missing: nothing observed to restore from")
    return m


def check_corruption(blur, noise, n: int, s_max: float | None = None):
    """Per-image blur and noise arrays, refused with a clear error when negative, NaN, or (``s_max``) a
    blur beyond the range the model was trained on."""
    s, g = _per_image(blur, n, "blur"), _per_image(noise, n, "noise")
    if s_max is not None and (s > s_max).any():
        raise ParameterError(f"blur {s.max():g} pixels is beyond the model's trained range [0, {s_max:g}]")
    return s, g


def corrupt(images, blur=0.0, noise=0.0, missing=None, seed: int = 0) -> np.ndarray:
    """y = B_s x + noise z (data units, periodic Gaussian blur of ``blur`` pixels), 0 on ``missing``
    pixels; ``blur``, ``noise`` one number or one per image."""
    x = np.array(images, dtype=np.float64)
    if x.ndim != 4:
        raise ParameterError(f"images must be (N, C, H, W), got shape {x.shape}")
    n, shape = len(x), x.shape[2:]
    s, g = check_corruption(blur, noise, n)
    m = _missing(missing, n, shape)
    fam = Corruption(ndim=len(shape))
    y = fam.blur(torch.from_numpy(s), torch.from_numpy(x)).numpy()
    y = y + g[:, None, None, None] * np.random.default_rng(seed).standard_normal(x.shape)
    return np.where(m[:, None], 0.0, y)


def restore(model, observed, blur=0.0, noise=0.0, missing=None, seed: int = 0, n_mean: int = 1,
            batch_size: int = 256) -> np.ndarray:
    """E[x | y] for observations ``observed`` (N, C, H, W) (or (N, H, W)) made by :func:`corrupt` with
    ``blur``, ``noise`` (data units) and ``missing``, from a model trained with ``family='corruption'``
    (``phi4si image train --family corruption``); returns images in data units.

    With a stand-in for a trained model whose network returns eta1 = 0 (the data mean, in model units):

    >>> import types
    >>> net = lambda x, a: torch.zeros_like(x)
    >>> m = types.SimpleNamespace(family=Corruption(), param="eta1", net=net, mean=0.5, scale=0.25, channels=1,
    ...                           device="cpu", dtype=torch.float32, check_shape=lambda s: tuple(s),
    ...                           to_normalised=lambda v: (v - 0.5) / 0.25, to_physical=lambda v: v * 0.25 + 0.5)
    >>> float(restore(m, np.zeros((2, 1, 8, 8)), blur=1.0, noise=0.01).mean())
    0.5
    """
    fam = getattr(model, "family", None)
    if not isinstance(fam, Corruption) or getattr(model, "param", None) != "eta1":
        raise ParameterError(f"this model was trained without the corruption channels (family {fam!r}); train one "
                             f"with `phi4si image train --family corruption` (measure 'restore', param eta1)")
    y = check_images(model, observed, "observed images")
    n, shape = len(y), tuple(y.shape[2:])
    s, g = check_corruption(blur, noise, n, fam.s_max)
    sig = g / model.scale
    if (sig > fam.sigma_range[1]).any():
        raise ParameterError(f"noise {g.max():g} (data units) is beyond the model's trained range (sigma <= "
                             f"{fam.sigma_range[1] * model.scale:g})")
    m = _missing(missing, n, shape)
    if int(n_mean) < 1:
        raise ParameterError(f"n_mean must be >= 1, got {n_mean}")
    dt, dev = model.dtype, model.device
    yn = model.to_normalised(torch.from_numpy(y)).to(dt)
    a = Corruption.coordinates(n, shape, torch.from_numpy(s), torch.from_numpy(sig), torch.from_numpy(m), dtype=dt)
    mt = torch.from_numpy(m)[:, None]
    gen = torch.Generator().manual_seed(int(seed))
    out = torch.zeros(y.shape, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(int(n_mean)):
            z = torch.randn(y.shape, generator=gen, dtype=dt)
            I = torch.where(mt, z, yn)
            for i in range(0, n, int(batch_size)):
                sl = slice(i, i + int(batch_size))
                out[sl] += model.net(I[sl].to(dev), fam.features(a[sl]).to(dev)).double().cpu() / int(n_mean)
    res = model.to_physical(out).numpy()
    exact = ((s == 0) & (g == 0))[:, None, None, None] & ~m[:, None]
    return np.where(exact, y, res)


# ------------------------------------------------------------------------------------------------ baselines
def point_spread(blur: float, shape) -> np.ndarray:
    """The blur's point-spread function as an odd-sided kernel (centre = the pixel itself), cut from the
    periodic kernel of :func:`corrupt` on ``shape`` (sides <= the image's), for scikit-image."""
    shape = tuple(int(v) for v in shape)
    delta = np.zeros((1, 1, *shape))
    delta[(0, 0, *[0] * len(shape))] = 1.0
    k = corrupt(delta, blur)[0, 0]
    half = [min(int(np.ceil(4 * blur)) + 1, (L - 1) // 2) for L in shape]
    k = np.roll(k, half, axis=tuple(range(len(shape))))[tuple(slice(0, 2 * h + 1) for h in half)]
    return k / k.sum()


def _deblur(img, blur, method, param, rng):
    from skimage import restoration as R

    if blur == 0:
        return img
    psf = point_spread(blur, img.shape)
    if method == "wiener":
        return R.wiener(img, psf, balance=param, clip=False)
    if method == "unsupervised_wiener":
        return R.unsupervised_wiener(img, psf, clip=False, rng=rng)[0]
    if method == "richardson_lucy":
        # periodic padding by 3 image sides: its zero-boundary convolution then matches the periodic blur on the
        # image (the boundary's error creeps in by about a PSF radius per iteration; 1e-8 after 20 at blur 2)
        p = 3 * max(img.shape)
        big = np.pad(np.clip(img, 0, None), p, mode="wrap")
        return R.richardson_lucy(big, psf, num_iter=int(param), clip=False)[p:-p, p:-p]
    raise ParameterError(f"{method!r} is not a deblurring baseline")


def _denoise(img, noise, method, param):
    from scipy.ndimage import gaussian_filter
    from skimage import restoration as R

    if method == "tv":
        return R.denoise_tv_chambolle(img, weight=param)
    if method == "wavelet":
        return R.denoise_wavelet(img, sigma=max(noise, 1e-6) * param, method="BayesShrink", mode="soft",
                                 rescale_sigma=True)
    if method == "gaussian":
        return gaussian_filter(img, param, mode="wrap")
    raise ParameterError(f"{method!r} is not a denoising baseline")


def baseline_restore(observed, blur=0.0, noise=0.0, missing=None, method: str = "wiener", param=None,
                     order: str = "deblur_first", seed: int = 0) -> np.ndarray:
    """A classical restoration of grayscale observations (N, 1, H, W) (data units): ``method`` from
    :data:`BASELINE_METHODS` with its parameter ``param``; with ``missing`` pixels the image is also
    inpainted (scikit-image's biharmonic), after the deblurring (``order='deblur_first'``, the missing
    pixels filled with the observed mean for it) or before it (``'inpaint_first'``).

    >>> y = corrupt(np.full((1, 1, 8, 8), 0.5), blur=1.0)
    >>> float(np.abs(baseline_restore(y, 1.0, 0.0, method="wiener", param=1e-3) - 0.5).max()) < 1e-6
    True
    """
    from skimage.restoration import inpaint_biharmonic

    y = np.array(observed, dtype=np.float64)
    if y.ndim != 4 or y.shape[1] != 1:
        raise ParameterError(f"the baselines take grayscale images (N, 1, H, W), got shape {y.shape}")
    n, shape = len(y), y.shape[2:]
    if method not in BASELINE_METHODS:
        raise ParameterError(f"unknown baseline {method!r} (choose from {tuple(BASELINE_METHODS)})")
    if order not in ("deblur_first", "inpaint_first"):
        raise ParameterError(f"order must be 'deblur_first' or 'inpaint_first', got {order!r}")
    s, g = check_corruption(blur, noise, n)
    m = _missing(missing, n, shape)
    rng = np.random.default_rng(seed)
    deblurs = BASELINE_METHODS[method][2] != ("denoise",)
    out = np.empty_like(y)
    for i in range(n):
        img = y[i, 0].copy()
        if m[i].any():
            img[m[i]] = img[~m[i]].mean()
            if order == "inpaint_first":
                img = inpaint_biharmonic(img, m[i])
        img = _deblur(img, s[i], method, param, rng) if deblurs else _denoise(img, g[i], method, param)
        if m[i].any() and order == "deblur_first":
            img = inpaint_biharmonic(img, m[i])
        out[i, 0] = img
    return out


def tune_baseline(clean, observed, blur, noise, missing=None, method: str = "wiener", order: str = "deblur_first",
                  seed: int = 0) -> dict:
    """The parameter of ``method`` with the best mean PSNR on validation images ``clean`` (with their
    ``observed`` versions): ``{"param", "psnr", "grid": {param: psnr}}``."""
    grid = {}
    for p in BASELINE_METHODS[method][1]:
        est = baseline_restore(observed, blur, noise, missing, method, p, order, seed)
        grid[p] = float(psnr(clean, est).mean())
    best = max(grid, key=grid.get)
    return {"param": best, "psnr": grid[best], "grid": {str(k): v for k, v in grid.items()}}


def scores(clean, est) -> dict:
    """Mean PSNR and SSIM with their standard errors over the images."""
    p, q = psnr(clean, est), ssim(clean, est)
    se = lambda v: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")  # noqa: E731
    return {"psnr": float(p.mean()), "psnr_se": se(p), "ssim": float(q.mean()), "ssim_se": se(q)}
