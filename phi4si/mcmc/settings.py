"""The settings of a sampling run, checked before anything runs: every value of
:func:`~phi4si.mcmc.run.sample_mcmc` (:func:`check_settings`, the one place: the command line only
forwards), which sampler uses which optional setting (:data:`SAMPLER_SETTINGS`), and whether the run
can fit: memory for the chains and the flush buffer, disk for the file (:func:`check_resources`).

>>> check_settings("hmc", chains=2, n_traj=10, n_therm=0, every=1, seed=0, n_steps=None, dtype="float64",
...                eps=None, integrator=None, mass=None, target_accept=None, adapt=None, jitter=None,
...                flush_seconds=5.0, max_trajectories=None)["chains"]
2
>>> check_settings("langevin", chains=2, n_traj=10, n_therm=0, every=1, seed=0, n_steps=None, dtype="float64",
...                eps=None, integrator="omelyan", mass=None, target_accept=None, adapt=None, jitter=None,
...                flush_seconds=5.0, max_trajectories=None)
Traceback (most recent call last):
...
phi4si.errors.ParameterError: sampler langevin does not use integrator (--integrator); leave it out (settings by sampler -- hmc: --integrator, --target-accept, --no-adapt, --traj-length; fahmc: --integrator, --mass, --target-accept, --no-adapt, --kernel, --traj-length; langevin: --mass, --kernel; mala: --mass, --target-accept, --no-adapt, --kernel; all samplers: --eps, --n-steps, --jitter)
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from .. import resources
from ..errors import ParameterError
from ..lattice.params import Phi4Params
from . import SAMPLERS
from .hmc import INTEGRATORS
from .kernel import KERNELS, MIN_THERM

__all__ = ["DTYPES", "SAMPLER_SETTINGS", "check_settings", "check_resources"]

DTYPES = ("float32", "float64")


# Optional settings that only some samplers use (None: not given, the sampler's default).  A
# setting the chosen sampler does not use is refused rather than silently ignored.  eps,
# n_steps and jitter apply to every sampler (for langevin: dt, updates per trajectory).
SAMPLER_SETTINGS = {
    "hmc": ("integrator", "target_accept", "adapt", "traj_length"),
    "fahmc": ("integrator", "mass", "target_accept", "adapt", "kernel", "traj_length"),
    "langevin": ("mass", "kernel"),
    "mala": ("mass", "target_accept", "adapt", "kernel"),
}
_FLAGS = {"adapt": "--no-adapt"}  # command-line spellings that are not --name-with-dashes


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _name(name: str) -> str:
    """How errors name a setting: the keyword of :func:`sample_mcmc` and the flag of the CLI."""
    return f"{name} ({_flag(name)})"


def _check_int(name, v, lo):
    # integers only (as on the command line): no bools, floats or strings, even integral ones
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ParameterError(f"{_name(name)} must be an integer >= {lo}, got {v!r}")
    if v < lo:
        raise ParameterError(f"{_name(name)} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _check_float(name, v, what="finite and > 0", ok=lambda x: x > 0):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ParameterError(f"{_name(name)} must be a real number, got {v!r}")
    v = float(v)
    if not (math.isfinite(v) and ok(v)):
        raise ParameterError(f"{_name(name)} must be {what}, got {v!r}")
    return v


def check_settings(sampler, *, chains, n_traj, n_therm, every, seed, n_steps, dtype, eps, integrator, mass,
                    target_accept, adapt, jitter, flush_seconds, max_trajectories, kernel=None, traj_length=None):
    """Validate and normalise every setting of :func:`sample_mcmc` (the one place; the CLI forwards).
    ``kernel``: "lattice" (p_hat^2 + M^2) or "measured"; ``traj_length``: a trajectory length T > 0 (then
    n_steps = round(T / eps) follows eps) or "auto" (the slowest mode's quarter period, measured:
    :mod:`phi4si.mcmc.kernel`)."""
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise ParameterError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    out = {"chains": _check_int("chains", chains, 1), "n_traj": _check_int("n_traj", n_traj, 1),
           "n_therm": _check_int("n_therm", n_therm, 0), "every": _check_int("every", every, 0),
           "seed": _check_int("seed", seed, 0),
           "n_steps": None if n_steps is None else _check_int("n_steps", n_steps, 1),
           "max_trajectories": None if max_trajectories is None else _check_int("max_trajectories",
                                                                                 max_trajectories, 0),
           "flush_seconds": _check_float("flush_seconds", flush_seconds),
           "eps": None if eps is None else _check_float("eps", eps),
           "mass": None if mass is None else _check_float("mass", mass),
           "jitter": None if jitter is None else _check_float("jitter", jitter, "in [0, 1)", lambda x: 0 <= x < 1)}
    if dtype not in DTYPES:
        raise ParameterError(f"{_name('dtype')} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if integrator is not None and integrator not in INTEGRATORS:
        raise ParameterError(f"unknown {_name('integrator')} {integrator!r}; choose from {', '.join(INTEGRATORS)}")
    if target_accept is not None:
        # "target acceptance" is spelled out: the rate the step-size adaptation aims at
        if isinstance(target_accept, bool) or not isinstance(target_accept, numbers.Real) \
                or not 0.0 < float(target_accept) < 1.0:
            raise ParameterError(f"target acceptance {_name('target_accept')} must be in (0, 1), got {target_accept!r}")
        target_accept = float(target_accept)
    if adapt is not None and not isinstance(adapt, (bool, np.bool_)):
        raise ParameterError(f"{_name('adapt')} must be True or False, got {adapt!r}")
    if kernel is not None and kernel not in KERNELS:
        raise ParameterError(f"unknown {_name('kernel')} {kernel!r}; choose from {', '.join(KERNELS)}")
    if traj_length is not None and traj_length != "auto":
        traj_length = _check_float("traj_length", traj_length, "'auto' or finite and > 0")
        if n_steps is not None:
            raise ParameterError(f"{_name('traj_length')} sets the number of steps (round(T / eps)); leave out "
                                 f"{_name('n_steps')}")
    if (kernel == "measured" or traj_length == "auto") and out["n_therm"] < MIN_THERM:
        what = "kernel 'measured'" if kernel == "measured" else "traj_length 'auto'"
        raise ParameterError(f"{what} measures G(p) during thermalisation (trajectories [n_therm/4, n_therm/2)) "
                             f"and needs {_name('n_therm')} >= {MIN_THERM}, got {out['n_therm']}")
    given = {"integrator": integrator, "mass": mass, "target_accept": target_accept, "adapt": adapt,
             "kernel": kernel, "traj_length": traj_length}
    unused = [k for k, v in given.items() if v is not None and k not in SAMPLER_SETTINGS[sampler]]
    if unused:
        table = "; ".join(f"{s}: {', '.join(_flag(k) for k in ks)}" for s, ks in SAMPLER_SETTINGS.items())
        raise ParameterError(f"sampler {sampler} does not use {' or '.join(_name(k) for k in unused)}; leave "
                             f"{'it' if len(unused) == 1 else 'them'} out "
                             f"(settings by sampler -- {table}; all samplers: --eps, --n-steps, --jitter)")
    out.update(dtype=dtype, integrator=integrator, target_accept=target_accept, kernel=kernel, traj_length=traj_length,
               adapt=None if adapt is None else bool(adapt))
    return out


# float64 arrays of (chains, V) a sampler holds at its peak (the fields, the momenta or proposal, the
# forces and the FFT temporaries of one step; HMC's momenta and padded copies live per chain in the kernel)
_ARRAYS = {"hmc": 3, "fahmc": 9, "langevin": 7, "mala": 9}
# the flush buffer holds flush_seconds of stored configurations, so its size depends on the speed: at most
# 2e4 trajectories/s (the driver's own numpy calls per trajectory), and 5e8 site-updates/s per core (the
# numba HMC's measured 1e9/s on 2 cores, benchmarks/README.md; FA-HMC and MALA are slower)
_MAX_TRAJ_PER_SECOND = 2e4
_SITE_UPDATES_PER_CORE_SECOND = 5e8


def check_resources(params: Phi4Params, sampler: str, cfg: dict, out, *, resume: bool, overwrite: bool):
    """Refuse, before anything is allocated or written, a run whose memory or file cannot fit this machine.

    Memory: the sampler's (chains, V) float64 arrays (:data:`_ARRAYS`) plus the stored configurations
    buffered between two flushes (flush_seconds of trajectories at the kernels' measured speed, times two for
    the stacking copy at the flush).  Disk: every stored configuration and the per-trajectory scalars,
    uncompressed (random float fields barely compress), against the free space of the output folder plus the
    file it replaces or continues.  Lattice dimension: the kernels take any d, so d is limited by memory (a
    d-dimensional lattice has >= 2^d sites) and by numpy's array rank (the stored (chain, traj, *shape)).
    """
    d, V, chains = params.d, params.volume, cfg["chains"]
    if d + 2 > _MAXDIMS:
        raise ParameterError(f"a {d}-dimensional lattice is not supported: the stored configurations are "
                             f"(chain, trajectory, *shape) arrays and numpy allows {_MAXDIMS} dimensions, so d <= "
                             f"{_MAXDIMS - 2}; lower the number of --shape sides")
    item = np.dtype(cfg["dtype"]).itemsize
    n_steps = cfg["n_steps"] or 10  # every sampler's default_n_steps
    per_traj = chains * V * (n_steps + 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    rate = min(_MAX_TRAJ_PER_SECOND, _SITE_UPDATES_PER_CORE_SECOND * cores / per_traj)
    every, n_traj = cfg["every"], cfg["n_traj"]
    n_stored = 0 if every == 0 else -(-n_traj // every)
    n_buf = min(n_stored, max(1, math.ceil(rate * cfg["flush_seconds"] / max(every, 1))))
    fields = _ARRAYS[sampler] * chains * V * 8
    buffer = 2 * n_buf * chains * V * item
    need = fields + buffer
    have = resources.physical_memory()
    if have is not None and need > have:
        what = f"--chains (now {chains}) or the lattice --shape ({V} sites)"
        if n_buf > 1 and buffer > fields:
            what = f"--flush-seconds (now {cfg['flush_seconds']:g}), raise --every (store fewer configurations), or {what}"
        raise ParameterError(f"this run needs about {resources.format_bytes(need)} of memory ({resources.format_bytes(fields)} for the {chains} chains' "
                             f"fields, momenta and forces on {V} sites, {resources.format_bytes(buffer)} for the configurations "
                             f"buffered between flushes) but the machine has {resources.format_bytes(have)}; lower {what}")
    disk = n_stored * chains * V * item + n_traj * chains * (5 + d) * 8 + 2 * chains * V * 8
    free = resources.free_space(out, replacing=resume or overwrite)
    if free is None:
        return
    folder = os.path.dirname(os.path.abspath(os.fspath(out)))
    if disk > free:
        raise ParameterError(f"the ensemble file will need about {resources.format_bytes(disk)} ({n_stored} stored configurations of "
                             f"{chains} chains x {V} sites in {cfg['dtype']}, plus {n_traj} trajectories of scalars) "
                             f"but {folder} has {resources.format_bytes(free)} free; lower --n-traj, raise --every (0 stores no "
                             "configurations) or write elsewhere (--out)")


_MAXDIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
