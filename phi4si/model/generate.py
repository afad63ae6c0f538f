"""Tasks with a trained model, in physical units, and their output as phi4si ensembles.

* :func:`generate`   - samples from noise (a: 1 -> 0 on every site)
* :func:`inpaint`    - complete configurations given observed sites (observed sites stay
  exactly fixed); also "regenerate a block of an existing configuration"
* :func:`sequential` - blockwise generation in any order (raster, reverse, random,
  coarse_to_fine), optionally around observed sites
* :func:`sample_posterior` - generation under a field h and a coupling k with the prior model
* :func:`resolve_start` - fix a posterior's start mean by a pilot run (for proposals with a fixed law)
* :func:`parse_mask` - masks from ``block:RxC@I,J``, ``random:FRACTION`` or a ``.npy`` file
* :func:`write_samples` - write configurations in the HDF5 ensemble format of ``sample-mcmc``
  (one chain, one "trajectory" per sample, with m, S and the momentum-space observables), so
  ``phi4si analyze`` and ``phi4si plot`` work on generated ensembles.

Every task returns its configurations, or, with ``output=`` (an open
:class:`~phi4si.model.output.SampleFile`), writes them batch by batch into that file (resumable,
memory for one batch) and returns None.  Every task takes its integration settings as keywords (``steps``, ``solver``, ``sde``, ``seed``,
``batch_size``, ``grid_power``, ``progress``, ``z2``: one :class:`~phi4si.model.solve.SolveSettings`,
validated before any work; ``z2`` is the random global sign of :mod:`~phi4si.model.z2`) and an optional ``posterior`` (:class:`~phi4si.model.posterior.Posterior`); the same
seed and settings give the same samples on the same backend.

>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
>>> generate(m, 3, steps=10, seed=1).shape
(3, 4, 4)
>>> phi = inpaint(m, np.zeros((2, 4, 4)), parse_mask("block:2x2@0,0", (4, 4)), steps=10)
>>> float(abs(phi[:, 2:, 2:]).max())
0.0
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..errors import ParameterError
from .posterior import DEFAULT_PILOT, DEFAULT_ROUNDS, Posterior, drift_and_path, pilot_start
from .solve import SolveSettings, pilot_runner, run_task

__all__ = ["ORDERS", "generate", "inpaint", "sequential", "sample_posterior", "resolve_start", "parse_mask", "write_samples"]


def _count(n) -> int:
    if int(n) < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    return int(n)


#: Default ODE solver and steps of :func:`generate` and :func:`inpaint` (``sequential``: Heun x 20 per
#: block): AB3 x 16 gives what Heun x 50 gives, within its errors, with 6x fewer network evaluations
#: (benchmarks/README.md, "The model side at L = 16"); Heun x 50 stays available by the keywords.
DEFAULT_SOLVER, DEFAULT_STEPS = "ab3", 16


def _default_steps(steps, sde):
    """``steps``, or the default: DEFAULT_STEPS for the ODE, 50 Euler-Maruyama steps for the SDE."""
    return (50 if sde else DEFAULT_STEPS) if steps is None else steps


def generate(model, n: int, shape=None, steps: int | None = None, solver: str = DEFAULT_SOLVER, sde: float | None = None,
             seed: int = 0, batch_size: int = 512, grid_power: float = 1.0, progress: bool | None = None,
             posterior: Posterior | None = None, output=None, z2: str = "auto") -> np.ndarray | None:
    """n configurations (physical units, shape (n, *shape)) from noise; ``shape`` defaults to the
    training lattice (any compatible shape works: train small, generate large).  With ``posterior``
    (a :class:`~phi4si.model.posterior.Posterior`), samples of the posterior under its field h and
    coupling k, from the same model.

    The generation path moves every site's time together, a_x: 1 -> 0, and x(1) = z ~ N(0, Id) is
    carried to the data end by dx/da = b(x, a) (the ODE; ``sde=eps`` adds the diffusion of the
    equivalent SDE).  With the exact drift of a free field the samples have its propagator:

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params, free_propagator
    >>> from phi4si.model import DriftModel
    >>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> phi = generate(m, 4000, steps=16, solver="rk4", seed=0)
    >>> phi.shape
    (4000, 4, 4)
    >>> bool(abs((phi ** 2).mean() / free_propagator((4, 4), 1.0).mean() - 1) < 0.03)   # <phi_x^2> = mean_p G(p)
    True
    """
    from ..interpolant.paths import GenerationPath

    shape = model.check_shape(model.shape if shape is None else shape)
    n = _count(n)
    settings = SolveSettings(_default_steps(steps, sde), solver, sde, seed, batch_size, grid_power, progress, z2)
    return run_task(model, n, shape, lambda z, i, b: z, GenerationPath(shape), settings, posterior, site_average=True,
                    output=output)


def inpaint(model, data, unknown, steps: int | None = None, solver: str = DEFAULT_SOLVER, sde: float | None = None,
            seed: int = 0, batch_size: int = 512, grid_power: float = 1.0, progress: bool | None = None,
            posterior: Posterior | None = None, output=None, z2: str = "auto") -> np.ndarray | None:
    """Complete each configuration of ``data`` (n, *shape) on the ``unknown`` sites (bool mask of
    the lattice shape); observed sites are returned exactly as given.  With ``posterior``, the
    completion follows the posterior's conditional law (posterior inpainting).

    The inpainting path keeps a_x = 0 on observed sites and moves a_x: 1 -> 0 on the unknown ones,
    so the result samples the model's conditional law p(phi_unknown | phi_observed):

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.model import DriftModel
    >>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> data = generate(m, 5, seed=1)
    >>> hole = parse_mask("block:2x2@1,1", (4, 4))
    >>> out = inpaint(m, data, hole, steps=10, seed=2)
    >>> bool((out[:, ~hole] == data[:, ~hole]).all()), bool((out[:, hole] != data[:, hole]).all())
    (True, True)
    """
    from ..interpolant.paths import InpaintPath

    data = np.asarray(data, dtype=np.float64)
    shape = model.check_shape(data.shape[1:])
    unknown = np.asarray(unknown, dtype=bool)
    if unknown.shape != shape:
        raise ParameterError(f"mask shape {unknown.shape} does not match the configurations' shape {shape}")
    if not np.isfinite(data).all():
        raise ParameterError("the configurations to inpaint contain NaN or inf")
    n = _count(len(data))
    settings = SolveSettings(_default_steps(steps, sde), solver, sde, seed, batch_size, grid_power, progress, z2)
    path = InpaintPath(unknown)
    xd = model.to_normalised(torch.from_numpy(data)).unsqueeze(1)

    def finish(phi, i):                      # bit-exact observed sites (float32 round trips otherwise)
        phi[:, ~unknown] = data[i:i + len(phi), ~unknown]

    return run_task(model, n, shape, lambda z, i, b: path.start(z.double(), xd[i:i + b]), path, settings, posterior,
                    finish=finish, output=output, task="inpaint")


#: Orders of :func:`sequential`.
ORDERS = ("raster", "reverse", "random", "coarse_to_fine", "low_to_high")


def sequential(model, n: int, order: str = "raster", block=None, levels: int | None = None, shape=None,
               steps: int = 20, solver: str = "heun", sde: float | None = None, seed: int = 0,
               order_seed: int | None = None, data=None, observed=None, batch_size: int = 512,
               grid_power: float = 1.0, progress: bool | None = None, posterior: Posterior | None = None,
               output=None, z2: str = "auto") -> np.ndarray | None:
    """Blockwise generation in ``order`` ('raster', 'reverse', 'random': blocks of size ``block``, B or
    (B, C), required; 'coarse_to_fine': nested sublattices, ``levels`` of them, default 3; 'low_to_high':
    momentum shells, the zero mode first, ``levels`` of them, default 4, for a model of the Fourier family,
    whose a is a(p): THEORY.md 8.3), ``steps`` per block; the setting the order does not use is refused.  With ``data``/``observed`` the observed
    sites are kept (sequential inpainting); with ``posterior``, posterior sequential generation.

    The sequential path runs the blocks' times one after the other (block k goes 1 -> 0 while the
    earlier ones are done and the later ones still noise), so each block is drawn from the model's
    conditional law given the blocks before it: the joint law is unchanged, whatever the order.

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params, free_magnetisation_variance
    >>> from phi4si.model import DriftModel
    >>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> phi = sequential(m, 3000, order="random", block=2, steps=8, solver="rk4", seed=0)
    >>> var_m = phi.mean(axis=(1, 2)).var()
    >>> bool(abs(var_m / free_magnetisation_variance((4, 4), 1.0) - 1) < 0.1)     # Var(m) = 1 / (2 m2 V)
    True
    """
    from ..interpolant.paths import sequential_path

    shape = model.check_shape(np.shape(data)[1:] if data is not None else (model.shape if shape is None else shape))
    count = _count(n if data is None else len(data))
    settings = SolveSettings(steps, solver, sde, seed, batch_size, grid_power, progress, z2)
    if order not in ORDERS:
        raise ParameterError(f"unknown order {order!r} (choose from {ORDERS})")
    fourier = getattr(getattr(model, "family", None), "name", None) == "fourier"
    if fourier != (order == "low_to_high"):
        raise ParameterError("order='low_to_high' (momentum shells) is the order of a model of the Fourier family, "
                             "whose a is a(p); " + (f"this model's family is {model.family!r}" if not fourier else
                                                    f"a Fourier model cannot take the site order {order!r}"))
    if order in ("coarse_to_fine", "low_to_high"):
        if block is not None:
            raise ParameterError(f"order={order!r} does not use block= (it uses levels=)")
        levels = (3 if order == "coarse_to_fine" else 4) if levels is None else levels
    elif levels is not None:
        raise ParameterError(f"order={order!r} does not use levels= (coarse_to_fine and low_to_high do)")
    elif block is None:
        raise ParameterError(f"order={order!r} needs block=B (block size)")
    try:
        path = sequential_path(shape, order, block=block, levels=levels,
                               seed=order_seed if order_seed is not None else seed, observed=observed)
    except ValueError as e:  # a block or a level count that does not fit the lattice
        raise ParameterError(f"order={order!r} on the lattice {shape}: {e}") from None
    if data is None:
        if observed is not None:
            raise ParameterError("observed sites need the data they come from")
        start = lambda z, i, b: z  # noqa: E731
    else:
        data = np.asarray(data, dtype=np.float64)
        xd = model.to_normalised(torch.from_numpy(data)).unsqueeze(1)
        start = lambda z, i, b: path.start(z.double(), xd[i:i + b])  # noqa: E731
    obs = None if data is None or observed is None else np.asarray(observed, bool)

    def put_back(phi, i):                    # observed sites bit for bit
        phi[:, obs] = data[i:i + len(phi), obs]

    return run_task(model, count, shape, start, path, settings, posterior, site_average=data is None,
                    finish=None if obs is None else put_back, output=output, task=f"sequential {order}")


def sample_posterior(model, n: int, h: float = 0.0, k: float = 0.0, a0: float | None = None, start="pilot",
                     pilot: int = DEFAULT_PILOT, rounds: int = DEFAULT_ROUNDS, **kwargs) -> np.ndarray:
    """n configurations (physical units) from the posterior exp(h sum phi + k sum phi^2) p(phi) with a
    prior model: :func:`generate` with ``posterior=Posterior(h, k, a0, start, pilot, rounds)``;
    ``kwargs`` go to it (shape, steps, solver, sde, seed, batch_size, grid_power, progress, z2).

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.model import DriftModel
    >>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> sample_posterior(m, 4, h=0.5, pilot=8, steps=10).shape
    (4, 4, 4)
    """
    return generate(model, n, posterior=Posterior(h=h, k=k, a0=a0, start=start, pilot=pilot, rounds=rounds),
                    **kwargs)


def resolve_start(model, posterior: Posterior, shape=None, steps: int = 20, solver: str = "heun", seed: int = 0,
                  batch_size: int = 512) -> Posterior:
    """The same posterior with its start mean fixed to a number (physical units): a pilot generation
    run (``posterior.pilot`` samples, seed ``seed``) for ``start='pilot'``, the model's mean for
    'noise'.  A proposal whose density enters importance weights or Metropolis ratios must not change
    between batches: resolve the start once, then use the result everywhere.

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.model import DriftModel
    >>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> isinstance(resolve_start(m, Posterior(h=0.5, pilot=8), steps=10).start, float)
    True
    """
    import dataclasses

    from ..interpolant.paths import GenerationPath

    if not isinstance(posterior.start, str):
        return posterior
    if posterior.start == "noise":
        return dataclasses.replace(posterior, start=float(model.mean))
    shape = model.check_shape(model.shape if shape is None else shape)
    drift, path = drift_and_path(model, GenerationPath(shape), posterior)
    settings = SolveSettings(steps=steps, solver=solver, seed=seed, batch_size=batch_size)
    run = pilot_runner(model, drift, path, lambda z, i, b: z, shape, settings)
    last = {}

    def pilot_run(m, x1, r):
        last["x"] = run(m, x1, r)
        return last["x"]

    pilot_start(model, posterior, pilot_run, True, seed)
    return dataclasses.replace(posterior, start=float(model.to_physical(last["x"]).mean()))


def parse_mask(spec: str, shape, seed: int = 0) -> np.ndarray:
    """Boolean mask of UNKNOWN sites of the lattice ``shape`` from a spec, one mask for every sample
    (:func:`phi4si.interpolant.masks.parse_mask` with periodic blocks):

    * ``block:RxC@I,J`` - an R x C block (any d: ``AxBxC@I,J,K``) starting at (I, J), periodic;
    * ``random:F``      - each site unknown with probability F (0 < F <= 1), drawn with ``seed``;
    * ``FILE.npy``      - a boolean (or 0/1) array of the lattice shape, True/1 = unknown.

    >>> parse_mask("block:2x3@1,0", (4, 4)).astype(int)
    array([[0, 0, 0, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    from ..interpolant.masks import parse_mask as parse

    return parse(spec, shape, periodic=True, seed=seed)


def write_samples(out, phi: np.ndarray, params, sampler: dict, run: dict, dtype: str = "float32",
                  overwrite: bool = False) -> Path:
    """Write configurations (n, *shape) as an ensemble file (1 chain, n measurements), complete or
    not at all: the file is written under a temporary name and renamed onto ``out`` when it is whole
    (an existing ``out`` survives a failed or killed write), by one writer at a time.  (A task run
    with ``output=SampleFile(...)`` writes batch by batch instead, and can be resumed.)"""
    from .. import store
    from ..io import lock_output, prepare_output, utc_now

    out = prepare_output(out, overwrite)
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    n = phi.shape[0]
    if not np.isfinite(phi).all():
        raise ParameterError("generated configurations contain NaN or inf; nothing written")
    run = dict(run, version=__version__, date=utc_now())
    state = {"rng": {}, "eps": 0.0, "t_therm": 0, "acc_sum": float(n), "n_done": 0, "wall_time": run.get("wall_time", 0.0)}
    with lock_output(out):
        w = store.ConfigurationWriter.create(out, params, 1, sampler, run, False, dtype, phi[-1:], state)
        try:
            w.append(phi[None], np.ones((1, n)), np.zeros((1, n)), state=state)
        except BaseException:
            w.discard()
            raise
        w.close({"n_done": n, "wall_time": float(run.get("wall_time", 0.0)), "acceptance": 1.0, "eps": 0.0})
    return out
