"""Tasks with a trained model, in physical units, and their output as phi4si ensembles.

* :func:`generate`   - samples from noise (a: 1 -> 0 on every site)
* :func:`inpaint`    - complete configurations given observed sites (observed sites stay
  exactly fixed); also "regenerate a block of an existing configuration"
* :func:`sequential` - blockwise generation in any order (raster, reverse, random,
  coarse_to_fine), optionally around observed sites
* :func:`parse_mask` - masks from ``block:RxC@I,J``, ``random:FRACTION`` or a ``.npy`` file
* :func:`write_samples` - write configurations in the HDF5 ensemble format of ``sample-mcmc``
  (one chain, one "trajectory" per sample, with m, S and the momentum-space observables), so
  ``phi4si analyze`` and ``phi4si plot`` work on generated ensembles.

Every function takes an explicit ``seed`` (same seed and settings, same samples on the same
backend) and works in batches of ``batch_size`` configurations.

>>> # m = load_model("model.pt"); phi = generate(m, 1000, steps=50, solver="heun", seed=1)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .errors import ParameterError

__all__ = ["generate", "inpaint", "sequential", "parse_mask", "write_samples"]


def _solve(drift, path, x_start, steps, solver, sde, gen, grid_power, callback):
    from .interpolant.integrate import solve, solve_sde

    if sde:
        return solve_sde(drift, path, x_start, steps=steps, eps=sde, generator=gen, grid_power=grid_power,
                         callback=callback)
    return solve(drift, path, x_start, steps=steps, method=solver, grid_power=grid_power, callback=callback)


def _check_common(n, steps, solver, sde, batch_size, grid_power=1.0):
    from .interpolant.integrate import SOLVERS

    if int(n) < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    if int(steps) < 1:
        raise ParameterError(f"steps must be >= 1, got {steps}")
    if solver not in SOLVERS:
        raise ParameterError(f"unknown solver {solver!r} (choose from {SOLVERS})")
    if sde is not None and not (np.isfinite(sde) and sde >= 0):
        raise ParameterError(f"sde diffusion must be a finite number >= 0, got {sde}")
    if int(batch_size) < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    if not (np.isfinite(grid_power) and grid_power > 0):
        raise ParameterError(f"grid_power must be a finite number > 0, got {grid_power}")


def solve_batches(model, n, shape, make_start, path, steps, solver, sde, seed, batch_size) -> torch.Tensor:
    """Transport ``n`` states along ``path`` with the model's drift, in batches; normalised
    float64 samples (n, C, *shape) on the CPU.  The one loop behind the image and maze tasks.

    ``make_start(noise, offset, size)`` turns a batch of standard normal noise (size, C, *shape)
    into the start states (e.g. noise on unknown sites, observations elsewhere); ``path`` is a
    Path or a callable ``(offset, size) -> Path`` (one mask per sample); ``sde`` is None (ODE), a
    diffusion eps >= 0 or a callable eps(s).  Same seed, same bits.

    >>> # x = solve_batches(model, 8, (8, 8), lambda z, i, b: z, GenerationPath((8, 8)), 20, "heun", None, 0, 256)
    """
    _check_common(n, steps, solver, sde if not callable(sde) else None, batch_size)
    gen = torch.Generator().manual_seed(int(seed))
    return _loop(model, model.drift(), int(n), tuple(shape), make_start, path, steps, solver, sde, gen,
                 int(batch_size), 1.0, None).double().cpu()


def _loop(model, drift, n, shape, make_start, path, steps, solver, sde, gen, batch_size, grid_power, bar):
    """Normalised samples (n, C, *shape) on the model's device, in batches (C = model.channels).
    ``path`` is a Path or a callable ``(offset, size) -> Path`` (one mask per sample)."""
    dev, dt, C = model.device, model.dtype, getattr(model, "channels", 1)
    out, done = [], 0
    while done < n:
        b = min(batch_size, n - done)
        noise = torch.randn((b, C, *shape), generator=gen)
        x_start = make_start(noise, done, b).to(device=dev, dtype=dt)
        p = path(done, b) if callable(path) else path
        out.append(_solve(drift, p, x_start, steps, solver, sde, gen, grid_power, None))
        done += b
        if bar is not None:
            bar.update(b)
    return torch.cat(out)


def _pilot_runner(model, drift, path, make_start, shape, steps, solver, sde, seed, batch_size, grid_power, cap=None):
    """``pilot_run(m, x1, round)`` for :func:`~phi4si.posterior.pilot_start`: m (at most ``cap``) normalised
    samples of the task on the posterior ``path`` (a StartAt), started with data part ``x1(b)``, each
    round with its own random stream."""
    def pilot_run(m, x1, r):
        g = torch.Generator().manual_seed(int(seed) + 7919 * (r + 1))
        lifted = lambda z, i, b: path.lift(make_start(z, i, b), x1(b))  # noqa: E731
        m = m if cap is None else min(m, cap)
        return _loop(model, drift, m, shape, lifted, path, steps, solver, sde, g, batch_size, grid_power, None).double()

    return pilot_run


def _run_batches(model, n, shape, make_start, path, steps, solver, sde, seed, batch_size, grid_power, progress,
                 posterior=None, site_average=False):
    """Run a task (``path``, start from ``make_start(noise, offset, size)``) for n samples; with a
    :class:`~phi4si.posterior.Posterior`, its drift, its start time a0 and its start point are used
    (``start='pilot'``: a pilot run with its own random stream supplies the data part of the start,
    see :func:`~phi4si.posterior.pilot_start`).  ``site_average``: the task's law is translation
    invariant (generation without observed sites).  Returns physical configurations."""
    from .posterior import _setup, pilot_start

    drift, run_path = _setup(model, path, posterior)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n), desc="generate", unit="cfg", dynamic_ncols=True)
    try:
        start = make_start
        if posterior is not None:
            # with data, the pilot uses the first samples' data (at most n of them)
            pilot_run = _pilot_runner(model, drift, run_path, make_start, shape, steps, solver, sde, seed, batch_size,
                                      grid_power, None if site_average else int(n))
            x1 = pilot_start(model, posterior, pilot_run, site_average, seed)
            start = lambda z, i, b: run_path.lift(make_start(z, i, b), x1(b))  # noqa: E731
        gen = torch.Generator().manual_seed(int(seed))
        x = _loop(model, drift, int(n), shape, start, run_path, steps, solver, sde, gen, batch_size, grid_power, bar)
    finally:
        if bar is not None:
            bar.close()
    return model.to_physical(x.double()).cpu().numpy()[:, 0]


def generate(model, n: int, shape=None, steps: int = 50, solver: str = "heun", sde: float | None = None,
             seed: int = 0, batch_size: int = 512, grid_power: float = 1.0, progress: bool = False,
             posterior=None) -> np.ndarray:
    """n configurations (physical units, shape (n, *shape)) from noise; ``shape`` defaults to the
    training lattice (any compatible shape works: train small, generate large).  With ``posterior``
    (a :class:`~phi4si.posterior.Posterior`), samples of the posterior under its field h and
    coupling k, from the same model."""
    from .interpolant.paths import GenerationPath

    shape = model.check_shape(model.shape if shape is None else shape)
    _check_common(n, steps, solver, sde, batch_size, grid_power)
    path = GenerationPath(shape)
    return _run_batches(model, int(n), shape, lambda z, i, b: z, path, steps, solver, sde, seed, batch_size,
                        grid_power, progress, posterior, site_average=True)


def inpaint(model, data, unknown, steps: int = 50, solver: str = "heun", sde: float | None = None, seed: int = 0,
            batch_size: int = 512, grid_power: float = 1.0, progress: bool = False, posterior=None) -> np.ndarray:
    """Complete each configuration of ``data`` (n, *shape) on the ``unknown`` sites (bool mask of
    the lattice shape); observed sites are returned exactly as given.  With ``posterior``, the
    completion follows the posterior's conditional law (posterior inpainting)."""
    from .interpolant.paths import InpaintPath

    data = np.asarray(data, dtype=np.float64)
    shape = model.check_shape(data.shape[1:])
    unknown = np.asarray(unknown, dtype=bool)
    if unknown.shape != shape:
        raise ParameterError(f"mask shape {unknown.shape} does not match the configurations' shape {shape}")
    if not np.isfinite(data).all():
        raise ParameterError("the configurations to inpaint contain NaN or inf")
    _check_common(len(data), steps, solver, sde, batch_size, grid_power)
    path = InpaintPath(unknown)
    xd = model.to_normalised(torch.from_numpy(data)).unsqueeze(1)
    out = _run_batches(model, len(data), shape, lambda z, i, b: path.start(z.double(), xd[i:i + b]), path, steps,
                       solver, sde, seed, batch_size, grid_power, progress, posterior)
    out[:, ~unknown] = data[:, ~unknown]       # bit-exact observed sites (float32 round trips otherwise)
    return out


def sequential(model, n: int, order: str = "raster", block=None, levels: int = 3, shape=None, steps: int = 20,
               solver: str = "heun", sde: float | None = None, seed: int = 0, order_seed: int | None = None,
               data=None, observed=None, batch_size: int = 512, grid_power: float = 1.0,
               progress: bool = False, posterior=None) -> np.ndarray:
    """Blockwise generation in ``order`` ('raster', 'reverse', 'random', 'coarse_to_fine'), ``steps``
    per block; with ``data``/``observed`` the observed sites are kept (sequential inpainting); with
    ``posterior``, posterior sequential generation."""
    from .interpolant.paths import sequential_path

    shape = model.check_shape(np.shape(data)[1:] if data is not None else (model.shape if shape is None else shape))
    _check_common(n if data is None else len(data), steps, solver, sde, batch_size, grid_power)
    path = sequential_path(shape, order, block=block, levels=levels, seed=order_seed if order_seed is not None else seed,
                           observed=observed)
    if data is None:
        if observed is not None:
            raise ParameterError("observed sites need the data they come from")
        start = lambda z, i, b: z  # noqa: E731
        count = int(n)
    else:
        data = np.asarray(data, dtype=np.float64)
        xd = model.to_normalised(torch.from_numpy(data)).unsqueeze(1)
        start = lambda z, i, b: path.start(z.double(), xd[i:i + b])  # noqa: E731
        count = len(data)
    out = _run_batches(model, count, shape, start, path, steps, solver, sde, seed, batch_size, grid_power, progress,
                       posterior, site_average=data is None)
    if data is not None and observed is not None:
        obs = np.asarray(observed, bool)
        out[:, obs] = data[:, obs]
    return out


_BLOCK = re.compile(r"^block:(\d+(?:x\d+)*)@(\d+(?:,\d+)*)$")
_RANDOM = re.compile(r"^random:([0-9.eE+-]+)$")


def parse_mask(spec: str, shape, seed: int = 0) -> np.ndarray:
    """Boolean mask of UNKNOWN sites from a spec.

    * ``block:RxC@I,J`` - an R x C block (any d: ``AxBxC@I,J,K``) starting at (I, J), periodic;
    * ``random:F``      - each site unknown with probability F (0 < F <= 1), drawn with ``seed``;
    * ``FILE.npy``      - a boolean (or 0/1) array of the lattice shape, True/1 = unknown.

    >>> parse_mask("block:2x3@1,0", (4, 4)).astype(int)
    array([[0, 0, 0, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    shape = tuple(int(s) for s in shape)
    d = len(shape)
    m = _BLOCK.match(spec)
    if m:
        size = [int(v) for v in m.group(1).split("x")]
        at = [int(v) for v in m.group(2).split(",")]
        if len(size) != d or len(at) != d:
            raise ParameterError(f"mask {spec!r}: give {d} sizes and {d} coordinates for the lattice {shape}")
        if any(s < 1 or s > L for s, L in zip(size, shape)) or any(i >= L for i, L in zip(at, shape)):
            raise ParameterError(f"mask {spec!r} does not fit the lattice {shape}")
        mask = np.zeros(shape, bool)
        idx = np.ix_(*[(np.arange(s) + i) % L for s, i, L in zip(size, at, shape)])
        mask[idx] = True
        return mask
    m = _RANDOM.match(spec)
    if m:
        try:
            f = float(m.group(1))
        except ValueError:
            f = float("nan")
        if not 0 < f <= 1:
            raise ParameterError(f"mask {spec!r}: the fraction must be in (0, 1]")
        mask = np.random.default_rng(seed).random(shape) < f
        if not mask.any():
            raise ParameterError(f"mask {spec!r} selected no site (seed {seed}); use a larger fraction")
        return mask
    if spec.endswith(".npy"):
        p = Path(spec)
        if not p.exists():
            raise ParameterError(f"mask file {spec} does not exist")
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ParameterError(f"mask file {spec}: not a readable .npy array ({e})") from None
        if arr.shape != shape:
            raise ParameterError(f"mask file {spec} has shape {arr.shape}, the lattice is {shape}")
        if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
            raise ParameterError(f"mask file {spec} must hold booleans or 0/1")
        arr = arr.astype(bool)
        if not arr.any():
            raise ParameterError(f"mask file {spec} marks no site as unknown")
        return arr
    raise ParameterError(f"cannot parse mask {spec!r}: use block:RxC@I,J, random:FRACTION or FILE.npy")


def write_samples(out, phi: np.ndarray, params, sampler: dict, run: dict, dtype: str = "float32",
                  overwrite: bool = False) -> Path:
    """Write configurations (n, *shape) as an ensemble file (1 chain, n measurements)."""
    from . import store

    out = store.check_output(out, overwrite)
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    n = phi.shape[0]
    if not np.isfinite(phi).all():
        raise ParameterError("generated configurations contain NaN or inf; nothing written")
    run = dict(run, version=__version__, date=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    state = {"rng": {}, "eps": 0.0, "t_therm": 0, "acc_sum": float(n), "n_done": 0, "wall_time": run.get("wall_time", 0.0)}
    w = store.ConfigurationWriter.create(out, params, 1, sampler, run, False, dtype, phi[-1:], state)
    try:
        w.append(phi[None], np.ones((1, n)), np.zeros((1, n)), state=state)
    finally:
        w.close({"n_done": n, "wall_time": float(run.get("wall_time", 0.0)), "acceptance": 1.0, "eps": 0.0})
    return out
