"""The MCMC driver: thermalise (adapting the step size), measure, write HDF5, resume.

:func:`sample_mcmc` is what ``phi4si sample-mcmc`` calls.  Reproducibility contract: the
only randomness is one ``numpy.random.Generator(PCG64(seed))``; its state, the chains'
float64 fields, the step size and the counters are checkpointed with every flush, so a
run resumed from any flush produces the same bits as an uninterrupted run.

Trajectory-length jitter: each trajectory uses eps (1 + j (2u - 1)), u uniform, the same
for all chains (default j = 0.1 for hmc and fahmc, 0 otherwise).  A fixed trajectory
length T stops mixing any mode whose frequency omega has omega T close to a multiple of
pi (Mackenzie 1989); the free-field tests hit exactly that without jitter.

Step-size adaptation (thermalisation only, exact samplers): after trajectory t,
``log eps += (a_t - target) / (1 + t/10)^0.6`` with a_t the acceptance averaged over
chains; the final eps is frozen for the measurement phase and recorded.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import store
from .._version import __version__
from ..errors import OutputExistsError, ParameterError, ResumeError, SamplerDivergedError
from ..lattice.params import Phi4Params
from . import SAMPLERS, make_sampler

DTYPES = ("float32", "float64")


def _check_int(name, v, lo):
    try:
        iv = int(v)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an integer, got {v!r}") from None
    if iv != v or iv < lo:
        raise ParameterError(f"{name} must be an integer >= {lo}, got {v!r}")
    return iv


def _rng_state_json(rng):
    st = rng.bit_generator.state
    return {"bit_generator": st["bit_generator"], "state": {k: str(v) for k, v in st["state"].items()},
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def _rng_from_json(js):
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": js["bit_generator"],
                               "state": {k: int(v) for k, v in js["state"].items()},
                               "has_uint32": js["has_uint32"], "uinteger": js["uinteger"]}
    return rng


def sample_mcmc(params: Phi4Params, out, *, sampler: str = "hmc", chains: int = 4, n_traj: int = 1000,
                n_therm: int = 200, every: int = 1, eps: float | None = None, n_steps: int | None = None,
                integrator: str = "leapfrog", mass: float = 1.0, target_accept: float | None = None,
                adapt: bool = True, jitter: float | None = None, seed: int = 0, resume: bool = False, overwrite: bool = False,
                dtype: str = "float64", flush_seconds: float = 5.0, progress: bool = True,
                command: str | None = None, max_trajectories: int | None = None):
    """Run a multi-chain MCMC and write (or continue) the ensemble file ``out``.

    Parameters mirror ``phi4si sample-mcmc``.  ``jitter`` randomises eps per trajectory
    (see the module docstring).  ``every`` thins the stored configurations
    (0 stores none); scalars are stored every trajectory.  ``max_trajectories`` stops
    after that many trajectories of this call (therm + measured), for tests of resume.
    Returns the path.

    >>> from phi4si.lattice import Phi4Params
    >>> sample_mcmc(Phi4Params((8, 8), -4.0, 8.0), "ens.h5", n_traj=100, seed=1)  # doctest: +SKIP
    """
    # ---- validate everything before touching any file ----
    if not isinstance(params, Phi4Params):
        raise ParameterError("params must be a Phi4Params")
    if sampler not in SAMPLERS:
        raise ParameterError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    chains = _check_int("chains", chains, 1)
    n_traj = _check_int("n_traj", n_traj, 1)
    n_therm = _check_int("n_therm", n_therm, 0)
    every = _check_int("every", every, 0)
    seed = _check_int("seed", seed, 0)
    if n_steps is not None:
        n_steps = _check_int("n_steps", n_steps, 1)
    if dtype not in DTYPES:
        raise ParameterError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if eps is not None:
        eps = float(eps)
        if not math.isfinite(eps) or eps <= 0:
            raise ParameterError(f"eps must be finite and > 0, got {eps}")
    smp = make_sampler(sampler, params, n_steps=n_steps, integrator=integrator, mass=mass)
    if jitter is None:
        jitter = 0.1 if sampler in ("hmc", "fahmc") else 0.0
    jitter = float(jitter)
    if not (0.0 <= jitter < 1.0):
        raise ParameterError(f"jitter must be in [0, 1), got {jitter}")
    target = smp.default_target if target_accept is None else float(target_accept)
    if smp.adaptive and not (0.0 < target < 1.0):
        raise ParameterError(f"target acceptance must be in (0, 1), got {target}")
    out = Path(out)
    if resume and overwrite:
        raise ParameterError("--resume and --overwrite exclude each other")
    if out.exists() and out.is_dir():
        raise ParameterError(f"output {out} is a directory")
    if not out.parent.exists():
        raise ParameterError(f"output directory {out.parent} does not exist")
    if not out.parent.is_dir():
        raise ParameterError(f"output location {out.parent} is not a directory")
    V = params.volume
    smeta = smp.meta()
    smeta.update({"target_accept": target if smp.adaptive else None, "adapt": bool(adapt and smp.adaptive),
                  "eps_initial": eps if eps is not None else smp.default_eps, "exact": getattr(smp, "exact", True),
                  "jitter": jitter})
    run = {"seed": seed, "chains": chains, "n_traj": n_traj, "n_therm": n_therm, "every": every, "dtype": dtype,
           "version": __version__, "command": command or "", "start": "0.1 * gaussian(0,1)"}

    if resume:
        if not out.exists():
            raise ResumeError(f"cannot resume: {out} does not exist")
        attrs, state_phi, state = store.read_state(out)
        old_run, old_s = attrs["run"], attrs["sampler"]
        for key in ("seed", "chains", "n_therm", "every", "dtype"):
            if old_run[key] != run[key]:
                raise ResumeError(f"cannot resume {out}: {key} was {old_run[key]!r}, now {run[key]!r}")
        if attrs["params"] != params.to_dict():
            raise ResumeError(f"cannot resume {out}: parameters differ ({attrs['params']} vs {params.to_dict()})")
        for key in ("sampler", "n_steps", "integrator", "mass", "target_accept", "adapt", "eps_initial", "jitter"):
            if old_s.get(key) != smeta.get(key):
                raise ResumeError(f"cannot resume {out}: sampler setting {key} was {old_s.get(key)!r}, now {smeta.get(key)!r}")
        if n_traj < state["n_done"]:
            raise ResumeError(f"cannot resume {out}: it already holds {state['n_done']} > n_traj={n_traj} trajectories")
        if store.repair(out):
            print(f"{out}: rewrote the file of an interrupted run into a clean file", file=sys.stderr)
        rng = _rng_from_json(state["rng"])
        phi = np.ascontiguousarray(state_phi, dtype=np.float64).reshape(chains, V)
        cur_eps = float(state["eps"])
        t_therm = int(state["t_therm"])
        t_meas = int(state["n_done"])
        wall0 = float(state["wall_time"])
        acc_sum = float(state["acc_sum"])
        if n_traj != old_run["n_traj"]:
            store.update_attrs(out, {"run": _json(dict(old_run, n_traj=n_traj))})
    else:
        if out.exists() and not overwrite:
            raise OutputExistsError(f"{out} exists; pass --overwrite to replace it or --resume to continue it")
        rng = np.random.Generator(np.random.PCG64(seed))
        # a small random start: far-from-equilibrium starts (e.g. unit-variance noise at
        # lam = 8) leave MALA's explicit cubic term stuck with acceptance 0
        phi = 0.1 * rng.standard_normal((chains, V))
        cur_eps = eps if eps is not None else smp.default_eps
        t_therm = 0
        t_meas = 0
        wall0 = 0.0
        acc_sum = 0.0
        store.create_ensemble(out, shape=params.shape, n_chains=chains, dtype=dtype, params=params.to_dict(),
                              sampler=smeta, run=run, state_phi=phi,
                              state=_state(rng, cur_eps, t_therm, acc_sum, 0, 0.0))

    do_adapt = adapt and smp.adaptive
    total = n_therm + n_traj
    done_now = t_therm + t_meas
    cos_t, sin_t, strides = _phase(params)
    shape_arr = np.array(params.shape, dtype=np.int64)
    from ..lattice import kernels

    buf = _Buffers()
    t_start = time.perf_counter()
    last_flush = t_start
    n_this_call = 0
    bar = _progress(total, done_now, progress, sampler)

    writer = store.EnsembleWriter(out)

    def flush():
        """Append buffered measurements, then the resume state (n_done last)."""
        nonlocal last_flush
        wall = wall0 + time.perf_counter() - t_start
        state = _state(rng, cur_eps, t_therm, acc_sum, t_meas, wall)
        if buf.traj:
            writer.append(scalars=buf.scalars(), gp=buf.gp_array(), configs=buf.cfg_array(),
                          cfg_index=np.array(buf.cfg_idx, dtype=np.int64),
                          traj_index=np.array(buf.traj, dtype=np.int64), state_phi=phi, state=state)
        else:
            writer.append(scalars=None, state_phi=phi, state=state)
        buf.clear()
        last_flush = time.perf_counter()

    def finish():
        flush()
        writer.close({"n_done": t_meas, "n_therm_done": t_therm, "eps": cur_eps,
                      "wall_time": wall0 + time.perf_counter() - t_start,
                      "acceptance": acc_sum / t_meas if t_meas else float("nan")})
        if bar is not None:
            bar.close()

    try:
        while t_therm + t_meas < total:
            if max_trajectories is not None and n_this_call >= max_trajectories:
                break
            step_eps = cur_eps * (1.0 + jitter * (2.0 * rng.random() - 1.0)) if jitter else cur_eps
            acc, dH = smp.step(phi, rng, step_eps)
            if not np.isfinite(phi).all():
                bad = np.flatnonzero(~np.isfinite(phi).all(axis=1)).tolist()
                raise SamplerDivergedError(
                    f"chains {bad} diverged (non-finite field) at trajectory {t_therm + t_meas} with eps={step_eps:.4g};"
                    f" {t_meas} measured trajectories before it are saved in {out}. Lower --eps"
                    + (" (the unadjusted Langevin step is unstable for large dt)" if sampler == "langevin" else ""))
            a = float(acc.mean())
            if t_therm < n_therm:
                t_therm += 1
                if do_adapt:
                    cur_eps = float(math.exp(math.log(cur_eps) + (a - target) / (1.0 + t_therm / 10.0) ** 0.6))
            else:
                m, S, gp = kernels.measure_batch(phi, shape_arr, params.mass_term, params.lam, params.h,
                                                 cos_t, sin_t, strides)
                buf.add(t_meas, m, S, acc, dH, gp)
                if every and t_meas % every == 0:
                    buf.add_cfg(t_meas, phi.reshape((chains,) + params.shape).astype(dtype))
                t_meas += 1
                acc_sum += a
            n_this_call += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(acc=f"{a:.2f}", eps=f"{cur_eps:.4g}", refresh=False)
            if time.perf_counter() - last_flush > flush_seconds:
                flush()
    except KeyboardInterrupt:
        finish()
        print(f"\ninterrupted: {t_meas} measured trajectories saved in {out}; continue with --resume",
              file=sys.stderr)
        raise
    except SamplerDivergedError:
        finish()
        raise
    except BaseException:
        writer.f.close()
        raise
    finish()
    return out


def _json(d):
    import json

    return json.dumps(d)


def _state(rng, eps, t_therm, acc_sum, n_done, wall_time):
    return {"rng": _rng_state_json(rng), "eps": float(eps), "t_therm": int(t_therm), "acc_sum": float(acc_sum),
            "n_done": int(n_done), "wall_time": float(wall_time)}


def _phase(params):
    from ..lattice.kernels import phase_tables

    return phase_tables(params.shape)


def _progress(total, initial, enabled, desc):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="traj", dynamic_ncols=True,
                disable=None if os.environ.get("PHI4SI_PROGRESS") is None else False)


class _Buffers:
    def __init__(self):
        self.clear()

    def clear(self):
        self.traj, self.m, self.S, self.acc, self.dH, self.gp = [], [], [], [], [], []
        self.cfg_idx, self.cfgs = [], []

    def add(self, t, m, S, acc, dH, gp):
        self.traj.append(t)
        self.m.append(m)
        self.S.append(S)
        self.acc.append(np.asarray(acc, dtype=np.float64))
        self.dH.append(np.asarray(dH, dtype=np.float64))
        self.gp.append(gp)

    def add_cfg(self, t, cfg):
        self.cfg_idx.append(t)
        self.cfgs.append(cfg)

    def scalars(self):
        return {"m": np.stack(self.m, 1), "S": np.stack(self.S, 1), "accepted": np.stack(self.acc, 1),
                "dH": np.stack(self.dH, 1)}

    def gp_array(self):
        return np.stack(self.gp, 1)

    def cfg_array(self):
        return np.stack(self.cfgs, 1) if self.cfgs else None
