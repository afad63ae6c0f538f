"""The batched solve loop every task with a trained model runs (generation, inpainting, sequential
generation, posterior sampling, images, maze plans), and its settings.

A task is a path in operator space (:mod:`phi4si.interpolant.paths`) and a start law; solving it
transports n start states x(a = 1) along the path with the model's drift to the data end,
``settings.batch_size`` states at a time, by an ODE solver (Euler, Heun, RK4) or, with
``settings.sde = eps``, by Euler-Maruyama on the SDE of diffusion eps.  One ``torch.Generator`` seeded with
``settings.seed`` draws every batch's noise in order, so the same seed and settings (batch size
included) give the same bits.  (Another batch size gives the same start noise only when every batch
holds a multiple of 16 values, torch's block of CPU normal draws, and other noise for the SDE; the
samples are then the same law, not the same bits.)

This module sits below :mod:`~phi4si.model.generate` and :mod:`~phi4si.model.exact` and above
:mod:`~phi4si.model.posterior`: a posterior task swaps in the posterior drift and the path from a0
(:func:`~phi4si.model.posterior.drift_and_path`) and, for ``start='pilot'``, first runs pilot
solves (:func:`pilot_runner`) whose samples supply the start's data part.

>>> import torch
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.interpolant.paths import GenerationPath
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
>>> x = solve_batches(m, 6, (4, 4), lambda z, i, b: z, GenerationPath((4, 4)), SolveSettings(steps=8, seed=1))
>>> tuple(x.shape), x.dtype
((6, 1, 4, 4), torch.float64)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Union

import numpy as np
import torch

from ..errors import ParameterError
from ..seeds import torch_generator

__all__ = ["SolveSettings", "solve", "solve_iter", "solve_loop", "solve_batches", "pilot_runner", "run_task", "progress_bar"]

SDE = Union[float, None, Callable]


@dataclass(frozen=True)
class SolveSettings:
    """How a task is integrated: ``steps`` of ``solver`` (``ODE_SOLVERS`` of
    :mod:`~phi4si.interpolant.integrate`) on the time grid 1 - (1 - u)^``grid_power`` (or the explicit
    grid ``grid_power`` = (u_0 = 0, ..., u_steps = 1), e.g. an optimised one), or with ``sde`` (a diffusion eps >= 0, or a callable eps(s)) the SDE
    by Euler-Maruyama; ``seed`` of the one noise stream; ``batch_size`` states per solve;
    ``progress``: a progress bar; ``z2``: the random global sign of a one-pass model of a symmetric
    prior (:mod:`~phi4si.model.z2`: 'auto', 'sign' or 'none').  Validated on construction
    (:class:`~phi4si.errors.ParameterError`).

    >>> SolveSettings(steps=20, solver="rk4").record()["solver"]
    'rk4'
    >>> SolveSettings(steps=0)
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: steps must be >= 1, got 0
    """

    steps: int = 50
    solver: str = "heun"
    sde: SDE = None
    seed: int = 0
    batch_size: int = 512
    grid_power: float = 1.0
    progress: bool | None = None
    z2: str = "auto"

    def __post_init__(self):
        from ..interpolant.integrate import ODE_SOLVERS
        from .z2 import check_mode

        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
                raise ParameterError(f"{name} must be >= 1, got {v}")
        if self.solver not in ODE_SOLVERS:
            raise ParameterError(f"unknown solver {self.solver!r} (choose from {ODE_SOLVERS})")
        if not callable(self.sde) and self.sde is not None and not (
                isinstance(self.sde, (int, float)) and math.isfinite(self.sde) and self.sde >= 0):
            raise ParameterError(f"sde diffusion must be a finite number >= 0, got {self.sde}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or int(self.seed) < 0:
            raise ParameterError(f"seed must be an integer >= 0, got {self.seed}")
        check_mode(self.z2)
        from ..interpolant.paths import check_grid

        object.__setattr__(self, "grid_power", check_grid(self.grid_power, self.steps))

    def record(self) -> dict:
        """What an output file records of these settings (the SDE's solver is 'euler-maruyama')."""
        d = asdict(self)
        d.pop("progress")
        if callable(self.sde):
            d["sde"] = getattr(self.sde, "__name__", "callable")
        d["solver"] = "euler-maruyama" if self.sde else self.solver
        return d


def solve(drift, path, x_start: torch.Tensor, settings: SolveSettings, generator: torch.Generator,
          callback=None) -> torch.Tensor:
    """One batch: x_start at the path's start transported to its end (ODE, or SDE when ``settings.sde``)."""
    from ..interpolant.integrate import solve as solve_ode, solve_sde

    if settings.sde:
        return solve_sde(drift, path, x_start, steps=settings.steps, eps=settings.sde, generator=generator,
                         grid_power=settings.grid_power, callback=callback)
    return solve_ode(drift, path, x_start, steps=settings.steps, method=settings.solver,
                     grid_power=settings.grid_power, callback=callback)


def solve_iter(model, drift, n: int, shape, make_start, path, settings: SolveSettings, generator: torch.Generator,
               bar=None, done: int = 0, sign: bool = False, owns=None):
    """Yield ``(offset, batch)`` for the samples ``done``..``n - 1``, ``settings.batch_size`` at a time:
    normalised batches (b, C, *shape) on the model's device (C = model.channels).
    ``make_start(noise, offset, size)`` turns standard normal noise of a batch into its start states;
    ``path`` is a Path or a callable ``(offset, size) -> Path`` (one mask per sample); every batch's
    noise comes from ``generator``, in order (a resumed run passes the state after sample ``done``).
    ``sign``: each sample gets a random global sign s after its noise (same generator), and is
    ``s * Flow(s * start)`` (:mod:`~phi4si.model.z2`).  ``owns(j)``: whether batch j (counted from
    ``done``) is solved here; for another's batch every random draw is made (noise, start, signs, the
    SDE's noise) and ``(offset, None)`` yielded (:mod:`~phi4si.model.ranks`)."""
    from .z2 import flip, signs

    dev, dt, C = model.device, model.dtype, getattr(model, "channels", 1)
    j = 0
    while done < n:
        b = min(settings.batch_size, n - done)
        noise = torch.randn((b, C, *shape), generator=generator)
        s = signs(b, generator) if sign else None
        x_start = make_start(noise, done, b).to(device=dev, dtype=dt)
        p = path(done, b) if callable(path) else path
        mine, j = owns is None or owns(j), j + 1
        if not mine:
            if settings.sde:
                from ..interpolant.integrate import skip_sde_noise

                skip_sde_noise(p, x_start, settings.steps, settings.grid_power, generator)
            if bar is not None:
                bar.update(b)
            yield done, None
            done += b
            continue
        if sign:
            x_start = flip(x_start, s)
        x = solve(drift, p, x_start, settings, generator)
        if sign:
            x = flip(x, s)
        if bar is not None:
            bar.update(b)
        yield done, x
        done += b


def solve_loop(model, drift, n: int, shape, make_start, path, settings: SolveSettings, generator: torch.Generator,
               bar=None, ranks=None) -> torch.Tensor:
    """Normalised samples (n, C, *shape) on the model's device: every batch of :func:`solve_iter`.
    ``ranks`` (a :class:`~phi4si.model.ranks.Ranks` of several processes): each solves its batches and
    every rank gets all of them (the samples of a single process)."""
    if ranks is None or ranks.world == 1:
        return torch.cat([x for _, x in solve_iter(model, drift, n, shape, make_start, path, settings, generator, bar)])
    mine = {o: x.cpu() for o, x in solve_iter(model, drift, n, shape, make_start, path, settings, generator, bar,
                                              owns=ranks.owns) if x is not None}
    every = {o: x for part in ranks.all_gather(mine) for o, x in part.items()}
    return torch.cat([every[o] for o in sorted(every)]).to(model.device)


def solve_batches(model, n: int, shape, make_start, path, settings: SolveSettings) -> torch.Tensor:
    """Transport ``n`` states along ``path`` with the model's drift; normalised float64 samples
    (n, C, *shape) on the CPU, from the noise stream of ``settings.seed`` (see :func:`solve_loop`).
    The loop behind the image and maze tasks."""
    if int(n) < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(int(settings.seed))
    return solve_loop(model, model.drift(), int(n), tuple(shape), make_start, path, settings, gen).double().cpu()


def pilot_runner(model, drift, path, make_start, shape, settings: SolveSettings, cap: int | None = None, ranks=None):
    """``pilot_run(m, x1, round)`` for :func:`~phi4si.model.posterior.pilot_start`: m (at most ``cap``)
    normalised samples of the task on the posterior ``path`` (a StartAt), started with data part
    ``x1(b)``, each round with its own random stream (shared out among ``ranks``, if several)."""
    def pilot_run(m, x1, r):
        g = torch_generator(settings.seed, "pilot", r)     # round r: its own stream (phi4si.seeds)
        lifted = lambda z, i, b: path.lift(make_start(z, i, b), x1(b))  # noqa: E731
        m = m if cap is None else min(m, cap)
        return solve_loop(model, drift, m, shape, lifted, path, settings, g, ranks=ranks).double()

    return pilot_run


def _rounds(batches, world: int, gen):
    """The batches of :func:`solve_iter` in rounds of ``world``: lists of (offset, x or None, the noise
    stream's state after the batch)."""
    rnd = []
    for offset, x in batches:
        rnd.append((offset, x, gen.get_state().numpy().copy()))
        if len(rnd) == world:
            yield rnd
            rnd = []
    if rnd:
        yield rnd


def _physical(model, batches, finish):
    """(offset, physical configurations (b, *shape) as numpy, completed by ``finish``) of each solved
    batch of :func:`solve_iter`; (offset, None) for another rank's."""
    for offset, x in batches:
        if x is None:
            yield offset, None
            continue
        phi = model.to_physical(x.double()).cpu().numpy()[:, 0]
        if finish is not None:
            finish(phi, offset)
        yield offset, phi


def _gathered(rnd, ranks, batch_size: int, n: int):
    """A round's batches (offset, phi, state) on rank 0, in order (one process: as they are).
    Several: each rank sends the batches it solved to rank 0; the others get empty placeholders of
    the batches' lengths, so that their ``output.done`` advances alike."""
    if ranks.world == 1:
        return rnd
    sent = {o: x for o, x, _ in rnd if x is not None}
    parts = ranks.gather(sent)
    if not ranks.leader:
        return [(o, np.empty((min(batch_size, n - o), 0)), st) for o, _, st in rnd]
    every = {o: x for part in parts for o, x in part.items()}
    return [(o, every[o], st) for o, _, st in rnd]


def progress_bar(enabled: bool | None, total: int, desc: str, initial: int = 0):
    """A bar over configurations (:func:`phi4si.progress.bar`: None unless wanted)."""
    from ..progress import bar

    return bar(total, desc, unit="cfg", initial=initial, enabled=enabled)


def run_task(model, n: int, shape, make_start, path, settings: SolveSettings, posterior=None,
             site_average: bool = False, finish=None, output=None, task: str = "generate"):
    """Physical configurations (n, *shape) of a task: ``path`` with start ``make_start(noise, offset,
    size)``.  With a :class:`~phi4si.model.posterior.Posterior`, its drift, start time a0 and start
    point are used (``start='pilot'``: pilot runs with their own random streams supply the data part
    of the start, see :func:`~phi4si.model.posterior.pilot_start`).  ``site_average``: the task's law
    is translation invariant (generation without observed sites).  ``finish(phi, offset)`` completes
    each physical batch in place (e.g. puts observed sites back bit for bit).  ``task`` labels the
    progress bar ('posterior ' is prefixed with a posterior).

    ``output`` (a :class:`~phi4si.model.output.SampleFile`, opened): every batch goes to the file as
    it is done, with the noise stream's state, and nothing is returned; the run starts after the
    file's ``done`` samples (a resume), and Ctrl-C or SIGTERM stop it between two batches
    (:class:`KeyboardInterrupt` once the file says how to continue).  ``settings.z2`` resolves with
    the posterior's field (:func:`~phi4si.model.z2.use_sign`; the pilot runs never flip).

    Under torchrun the ``output`` of every rank (:class:`~phi4si.model.ranks.Output`) carries the
    :class:`~phi4si.model.ranks.Ranks`: the batches (and the pilot runs' batches) are shared out, rank
    0 writes them all, in order, and the file is the one of a single process."""
    from ..interrupts import graceful_stop, said
    from .posterior import drift_and_path, pilot_start
    from .ranks import Ranks
    from .z2 import use_sign

    ranks = getattr(output, "ranks", None) or Ranks.single()
    sign = use_sign(model, settings.z2, 0.0 if posterior is None else posterior.h)
    drift, run_path = drift_and_path(model, path, posterior)
    done = 0 if output is None else output.done
    bar = progress_bar(settings.progress if ranks.leader else False, n,
                       task if posterior is None else f"posterior {task}", initial=done)
    try:
        with graceful_stop(output is not None) as stop:
            start = make_start
            if posterior is not None:
                # with data, the pilot uses the first samples' data (at most n of them)
                pilot_run = pilot_runner(model, drift, run_path, make_start, shape, settings,
                                         None if site_average else int(n), ranks)
                x1 = pilot_start(model, posterior, pilot_run, site_average, settings.seed)
                for k in range(0, done, settings.batch_size):   # a resume: replay the done batches' draws
                    x1(min(settings.batch_size, n - k))
                start = lambda z, i, b: run_path.lift(make_start(z, i, b), x1(b))  # noqa: E731
            gen = torch.Generator().manual_seed(int(settings.seed))
            if output is not None and output.generator_state is not None:
                gen.set_state(torch.from_numpy(np.asarray(output.generator_state, dtype=np.uint8)))
            if output is None:
                batches = solve_iter(model, drift, int(n), shape, start, run_path, settings, gen, bar, done, sign)
                x = model.to_physical(torch.cat([x for _, x in batches]).double()).cpu().numpy()[:, 0]
                if finish is not None:
                    finish(x, 0)
                return x
            batches = solve_iter(model, drift, int(n), shape, start, run_path, settings, gen, bar, done, sign,
                                 None if ranks.world == 1 else ranks.owns)
            for rnd in _rounds(_physical(model, batches, finish), ranks.world, gen):
                for offset, phi, state in _gathered(rnd, ranks, settings.batch_size, int(n)):
                    output.write(phi, state)
                if (stop.requested() if ranks.world == 1 else ranks.any(stop.requested())) and output.done < n:
                    output.stopped(stop.name or "SIGTERM")
                    raise said()
    finally:
        if bar is not None:
            bar.close()
    return None
