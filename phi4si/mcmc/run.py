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
import sys
import time

import numpy as np

from .. import store
from .._version import __version__
from ..errors import ParameterError, ResumeError, SamplerDivergedError
from ..interrupts import graceful_stop, said
from ..io import check_resume, lock_output, prepare_output, rng_from_json, rng_to_json, temporary_name, utc_now
from ..lattice.params import Phi4Params
from . import make_sampler
from .kernel import TwoPointWindow, quarter_period, steps_for
from .settings import check_resources, check_settings


def sample_mcmc(params: Phi4Params, out, *, sampler: str = "hmc", chains: int = 4, n_traj: int = 1000,
                n_therm: int = 200, every: int = 1, eps: float | None = None, n_steps: int | None = None,
                integrator: str | None = None, mass: float | None = None, target_accept: float | None = None,
                adapt: bool | None = None, jitter: float | None = None, kernel: str | None = None,
                traj_length: float | str | None = None, seed: int = 0, resume: bool = False, overwrite: bool = False,
                dtype: str = "float64", flush_seconds: float = 5.0, progress: bool | None = None,
                command: str | None = None, max_trajectories: int | None = None):
    """Run a multi-chain MCMC and write (or continue) the ensemble file ``out``.

    Parameters mirror ``phi4si sample-mcmc``, and are validated here (the command line only
    parses and forwards them): a bad value raises :class:`~phi4si.errors.ParameterError`
    before any file is touched.  ``integrator``, ``mass``, ``target_accept`` and ``adapt``
    default to None (the sampler's default: leapfrog, 1.0, the sampler's target, True) and
    are refused for samplers that do not use them (see :data:`~phi4si.mcmc.settings.SAMPLER_SETTINGS`).
    ``jitter`` randomises eps per trajectory (see the module docstring).  ``kernel="measured"`` (fahmc,
    langevin, mala) and ``traj_length`` (hmc, fahmc: a length T, or "auto" for the slowest mode's quarter
    period) are described in :mod:`phi4si.mcmc.kernel`: G(p) is measured and frozen during thermalisation,
    and recorded in the file (attribute ``two_point``).  ``every`` thins
    the stored configurations (0 stores none); scalars are stored every trajectory.
    ``max_trajectories`` stops after that many trajectories of this call (therm +
    measured), for tests of resume.  ``command`` is recorded in the file (``run.command``;
    a resume appends ``{date, command, version, n_done, n_traj}`` to ``run.resumed``).
    Returns the path.

    >>> import os, tempfile
    >>> from phi4si.lattice import Phi4Params
    >>> out = os.path.join(tempfile.mkdtemp(), "ens.h5")
    >>> _ = sample_mcmc(Phi4Params((8, 8), -4.0, 8.0), out, n_traj=30, n_therm=10, seed=1, progress=False)
    >>> _ = sample_mcmc(Phi4Params((8, 8), -4.0, 8.0), out, n_traj=60, n_therm=10, seed=1, progress=False,
    ...                 resume=True)             # continue the same chains to 60 trajectories
    >>> from phi4si import open_ensemble
    >>> with open_ensemble(out) as ds:
    ...     ds.attrs["n_done"], ds.attrs["sampler"]["sampler"]
    (60, 'hmc')
    """
    # ---- validate everything before touching any file ----
    if not isinstance(params, Phi4Params):
        raise ParameterError("params must be a Phi4Params")
    cfg = check_settings(sampler, chains=chains, n_traj=n_traj, n_therm=n_therm, every=every, seed=seed,
                          n_steps=n_steps, dtype=dtype, eps=eps, integrator=integrator, mass=mass,
                          target_accept=target_accept, adapt=adapt, jitter=jitter, flush_seconds=flush_seconds,
                          max_trajectories=max_trajectories, kernel=kernel, traj_length=traj_length)
    check_resources(params, sampler, cfg, out, resume=resume, overwrite=overwrite)
    smp = make_sampler(sampler, params, n_steps=cfg["n_steps"], integrator=cfg["integrator"] or "leapfrog",
                       mass=1.0 if cfg["mass"] is None else cfg["mass"])
    if cfg["jitter"] is None:
        cfg["jitter"] = 0.1 if sampler in ("hmc", "fahmc") else 0.0
    adapt = True if cfg["adapt"] is None else cfg["adapt"]
    target = smp.default_target if cfg["target_accept"] is None else cfg["target_accept"]
    out = prepare_output(out, overwrite=overwrite, resume=resume, resumable=True)
    smeta = smp.meta()
    smeta.update({"target_accept": target if smp.adaptive else None, "adapt": bool(adapt and smp.adaptive),
                  "eps_initial": cfg["eps"] if cfg["eps"] is not None else smp.default_eps,
                  "exact": smp.exact, "jitter": cfg["jitter"]})
    if cfg["kernel"] is not None:
        smeta["kernel"] = cfg["kernel"]
    if cfg["traj_length"] is not None:
        smeta["traj_length"] = cfg["traj_length"]
    run = {**{k: cfg[k] for k in ("seed", "chains", "n_traj", "n_therm", "every")}, "dtype": dtype,
           "version": __version__, "command": command or "", "date": utc_now(), "start": "0.1 * gaussian(0,1)"}
    r = _Run(params, smp, cfg, out, adapt=adapt and smp.adaptive, target=target)
    with lock_output(out):               # one writer per file, for the whole run
        if resume:
            r.resume(run, smeta)
        else:
            r.create(run, smeta)
        r.run(progress)
    return out


class _Run:
    """The state of a sampling run (random stream, fields, step size, counters) and its steps:
    thermalisation with step-size adaptation, measurement, buffered writes with a resume state."""

    def __init__(self, params, smp, cfg: dict, out, adapt: bool, target: float):
        self.params, self.smp, self.cfg, self.out = params, smp, cfg, out
        self.adapt, self.target = adapt, target
        # a new run writes under a temporary name until its first flush: until then an existing file
        # (--overwrite) survives a failed or killed run, and no half-made file bears the final name
        self.tmp = None
        # a measured G(p) (kernel "measured", traj_length "auto"): phi4si.mcmc.kernel
        self.window = (TwoPointWindow(params.shape, cfg["n_therm"], cfg["chains"])
                       if cfg["kernel"] == "measured" or cfg["traj_length"] == "auto" else None)
        self.T = cfg["traj_length"] if cfg["traj_length"] != "auto" else None

    def _state(self, wall: float) -> dict:
        return _state(self.rng, self.eps, self.t_therm, self.acc_sum, self.t_meas, wall,
                      None if self.window is None else self.window.sums)

    def _freeze(self):
        """Freeze the measured G(p): the sampler's kernel and/or the trajectory length."""
        G = self.window.two_point(self.t_therm)
        if self.cfg["kernel"] == "measured":
            self.smp.set_two_point(G)
        if self.cfg["traj_length"] == "auto":
            self.T = quarter_period(G, getattr(self.smp, "M", 1.0))
        self.G = G

    def create(self, run: dict, smeta: dict):
        cfg, params = self.cfg, self.params
        self.rng = np.random.Generator(np.random.PCG64(cfg["seed"]))
        # a small random start: far-from-equilibrium starts (e.g. unit-variance noise at
        # lam = 8) leave MALA's explicit cubic term stuck with acceptance 0
        self.phi = 0.1 * self.rng.standard_normal((cfg["chains"], params.volume))
        self.eps = cfg["eps"] if cfg["eps"] is not None else self.smp.default_eps
        self.t_therm = self.t_meas = 0
        self.wall0 = self.acc_sum = 0.0
        self.tmp = temporary_name(self.out)
        store.create_ensemble(self.tmp, shape=params.shape, n_chains=cfg["chains"], dtype=cfg["dtype"],
                              params=params.to_dict(), sampler=smeta, run=run, state_phi=self.phi,
                              state=self._state(0.0))

    def resume(self, run: dict, smeta: dict):
        out, params, cfg = self.out, self.params, self.cfg
        attrs, state_phi, state = store.read_state(out)
        old_run, old_s = attrs["run"], attrs["sampler"]
        check_resume(out, old_run, run, keys=("seed", "chains", "n_therm", "every", "dtype"))
        if attrs["params"] != params.to_dict():
            raise ResumeError(f"cannot resume {out}: parameters differ ({attrs['params']} vs {params.to_dict()})")
        check_resume(out, old_s, smeta, keys=("sampler", "n_steps", "integrator", "mass", "target_accept", "adapt",
                                              "eps_initial", "jitter", "kernel", "traj_length"),
                     label="sampler setting ")
        if cfg["n_traj"] < state["n_done"]:
            raise ResumeError(f"cannot resume {out}: it already holds {state['n_done']} > n_traj={cfg['n_traj']} "
                              "trajectories")
        if store.repair(out):
            print(f"{out}: rewrote the file of an interrupted run into a clean file", file=sys.stderr)
        self.rng = rng_from_json(state["rng"])
        self.phi = np.ascontiguousarray(state_phi, dtype=np.float64).reshape(cfg["chains"], params.volume)
        self.eps = float(state["eps"])
        self.t_therm, self.t_meas = int(state["t_therm"]), int(state["n_done"])
        self.wall0, self.acc_sum = float(state["wall_time"]), float(state["acc_sum"])
        if self.window is not None:
            if "kernel" not in state:
                raise ResumeError(f"cannot resume {out}: its resume state has no two-point sums (/state/kernel)")
            self.window = TwoPointWindow(params.shape, cfg["n_therm"], cfg["chains"], sums=state["kernel"])
            if self.window.frozen(self.t_therm):
                self._freeze()
        # provenance: the original run's record stays; every resume is appended to it
        store.record_resume(out, old_run, {"date": run["date"], "command": run["command"], "version": __version__,
                                           "n_done": self.t_meas, "n_traj": cfg["n_traj"]}, n_traj=cfg["n_traj"])

    def flush(self):
        """Append buffered measurements, then the resume state (n_done last).  The writer refuses to
        write when the disk could not take it, and gives a new run its final name at the first flush
        (:class:`~phi4si.store.EnsembleWriter`)."""
        wall = self.wall0 + time.perf_counter() - self.t_start
        state = self._state(wall)
        buf = self.buf
        if buf.traj:
            self.writer.append(scalars=buf.scalars(), gp=buf.gp_array(), configs=buf.cfg_array(),
                               cfg_index=np.array(buf.cfg_idx, dtype=np.int64),
                               traj_index=np.array(buf.traj, dtype=np.int64), state_phi=self.phi, state=state)
        else:
            self.writer.append(scalars=None, state_phi=self.phi, state=state)
        buf.clear()
        self.last_flush = time.perf_counter()

    def finish(self):
        self.flush()
        summary = {"n_done": self.t_meas, "n_therm_done": self.t_therm, "eps": self.eps, "n_steps": self.smp.n_steps,
                   "wall_time": self.wall0 + time.perf_counter() - self.t_start,
                   "acceptance": self.acc_sum / self.t_meas if self.t_meas else float("nan")}
        if self.window is not None and self.window.frozen(self.t_therm):
            summary.update(two_point=self.G, two_point_window=[self.window.start, self.window.stop])
        if self.T is not None:
            summary["traj_length"] = self.T
        self.writer.close(summary)
        if self.bar is not None:
            self.bar.close()

    def trajectory(self) -> float:
        """One trajectory of every chain (thermalisation with adaptation, or a measurement); returns
        the acceptance averaged over chains."""
        from ..lattice import kernels

        cfg, params, rng = self.cfg, self.params, self.rng
        jitter = cfg["jitter"]
        if self.T is not None:                 # a fixed trajectory length: the steps follow eps
            self.smp.n_steps = steps_for(self.T, self.eps)
        step_eps = self.eps * (1.0 + jitter * (2.0 * rng.random() - 1.0)) if jitter else self.eps
        # an unstable step overflows to inf/NaN: detected just below, with a clear error
        # instead of numpy's overflow warnings
        with np.errstate(over="ignore", invalid="ignore"):
            acc, dH = self.smp.step(self.phi, rng, step_eps)
        if not np.isfinite(self.phi).all():
            bad = np.flatnonzero(~np.isfinite(self.phi).all(axis=1)).tolist()
            raise SamplerDivergedError(_diverged_message(bad, self.t_therm + self.t_meas, step_eps, self.t_meas,
                                                         self.out, self.smp.name))
        a = float(acc.mean())
        if self.smp.exact:
            self._watch(acc, dH, step_eps, adapting=self.adapt and self.t_therm < cfg["n_therm"])
        if self.t_therm < cfg["n_therm"]:
            t0 = 0
            if self.window is not None:
                self.window.observe(self.t_therm, self.phi)
                t0 = self.window.stop if self.t_therm >= self.window.stop else 0   # a new kernel: adapt anew
            self.t_therm += 1
            if self.window is not None and self.t_therm == self.window.stop:
                self._freeze()
            if self.adapt:
                gain = (1.0 + (self.t_therm - t0) / 10.0) ** 0.6
                self.eps = float(math.exp(math.log(self.eps) + (a - self.target) / gain))
        else:
            m, S, gp = kernels.measure_batch(self.phi, self.shape_arr, params.mass_term, params.lam, params.h,
                                             *self.phase)
            self.buf.add(self.t_meas, m, S, acc, dH, gp)
            every = cfg["every"]
            if every and self.t_meas % every == 0:
                self.buf.add_cfg(self.t_meas, self.phi.reshape((cfg["chains"],) + params.shape).astype(cfg["dtype"]))
            self.t_meas += 1
            self.acc_sum += a
        return a

    def _watch(self, acc, dH, step_eps, adapting: bool):
        """Exact samplers at a fixed step (measurement, or --no-adapt): refuse chains that are stuck, warn once
        about frozen ones (see :data:`STUCK_WINDOW`).  Only reads: no random numbers, no change to the run."""
        st = self.__dict__.setdefault("_guard", {"stuck": 0, "frozen": 0, "warned": False})
        if adapting:  # while the adaptation runs it is the remedy (it shrinks a hopeless eps ~e^-0.8 a step)
            st["stuck"] = st["frozen"] = 0
            return
        dH = np.asarray(dH, dtype=np.float64)
        hopeless = not np.any(acc) and not np.any(dH <= STUCK_DH)  # NaN <= x is False: NaN counts as hopeless
        st["stuck"] = st["stuck"] + 1 if hopeless else 0
        if st["stuck"] >= STUCK_WINDOW:
            raise SamplerDivergedError(
                f"sampler {self.smp.name} is stuck: no chain accepted any of the last {STUCK_WINDOW} trajectories "
                f"(dH not finite or > {STUCK_DH:g} on every chain, an acceptance probability below "
                f"{math.exp(-STUCK_DH):.0e}) at eps={step_eps:.4g}: the step is far too large for this model. The "
                f"{self.t_meas} measured trajectories before it are saved in {self.out}; start a new run (another "
                "--out, or --overwrite) with a much smaller --eps, or let the adaptation choose it (without "
                "--no-adapt, with enough --n-therm)")
        if not st["warned"]:
            st["frozen"] = st["frozen"] + 1 if bool(np.all(np.abs(dH) < FROZEN_DH)) else 0
            if st["frozen"] >= STUCK_WINDOW:
                st["warned"] = True
                print(f"phi4si sample-mcmc: warning: |dH| < {FROZEN_DH:g} on every chain for {STUCK_WINDOW} "
                      f"trajectories in a row at eps={step_eps:.4g}: the step is so small that the chains barely move "
                      "(acceptance 1 to machine precision) and the error bars of analyze will be far too small; use "
                      "a larger --eps (or let the adaptation choose it: drop --no-adapt)", file=sys.stderr)

    def run(self, progress: bool):
        """Trajectories until n_therm + n_traj (or max_trajectories in this call), flushing every
        flush_seconds; Ctrl-C and divergence write what was measured before they propagate."""
        cfg = self.cfg
        total = cfg["n_therm"] + cfg["n_traj"]
        cos_t, sin_t, strides = _phase(self.params)
        self.phase = (cos_t, sin_t, strides)
        self.shape_arr = np.array(self.params.shape, dtype=np.int64)
        self.buf = _Buffers()
        self.t_start = self.last_flush = time.perf_counter()
        n_this_call = 0
        self.bar = _progress(total, self.t_therm + self.t_meas, progress, self.smp.name)
        # a new run's file: the writer renames it at the first flush (and removes it if none comes)
        self.writer = store.EnsembleWriter(self.tmp or self.out, final=self.out if self.tmp else None)
        self.tmp = None
        stop = None
        try:
            with graceful_stop() as stop:
                while self.t_therm + self.t_meas < total and not stop.requested():
                    if cfg["max_trajectories"] is not None and n_this_call >= cfg["max_trajectories"]:
                        break
                    a = self.trajectory()
                    n_this_call += 1
                    if self.bar is not None:
                        self.bar.update(1)
                        self.bar.set_postfix(acc=f"{a:.2f}", eps=f"{self.eps:.4g}", refresh=False)
                    if time.perf_counter() - self.last_flush > cfg["flush_seconds"]:
                        self.flush()
            if stop.requested() and self.t_therm + self.t_meas < total:
                # between two trajectories: fields, random state and counters agree, so the resumed
                # run continues this one bit for bit
                self.finish()
                print(f"\n{stop.name}: stopped after trajectory {self.t_therm + self.t_meas} "
                      f"({self.t_meas} measured) with everything saved in {self.out}; continue with the same "
                      "command and --resume", file=sys.stderr)
                raise said()
        except KeyboardInterrupt:
            if stop is None or not stop.requested():
                # a second Ctrl-C, in the middle of a trajectory: the state in memory is half-updated,
                # so keep the file as of its last flush (consistent; at most flush_seconds of work lost)
                before_first = self.writer.final is not None   # before the first checkpoint: nothing to continue
                self.writer.abandon()      # (removes a file that never reached its name)
                if self.bar is not None:
                    self.bar.close()
                if before_first:
                    print("\ninterrupted before the first checkpoint; nothing written", file=sys.stderr)
                else:
                    print(f"\ninterrupted: {self.out} holds the run up to its last checkpoint; continue with "
                          "--resume", file=sys.stderr)
            raise said() from None
        except SamplerDivergedError:
            self.finish()
            raise
        except BaseException:
            self.writer.abandon()          # nothing durable yet: leave no file, keep the old one
            raise
        self.finish()


# Stuck and frozen chains of the exact samplers, checked at a fixed step (see _Run._watch).  Stuck: for
# STUCK_WINDOW trajectories in a row no chain accepted and every dH is NaN, inf or > STUCK_DH (acceptance
# probability < 2e-9): the chains will not move again.  A working run never trips it: HMC's dH is roughly
# N(mu, 2 mu) (<exp(-dH)> = 1), so even at 1% acceptance (mu ~ 13) P(dH > 20) ~ 0.1 per chain and
# trajectory, and 20 in a row on one chain has probability 1e-20.  Frozen (a warning): |dH| < FROZEN_DH on
# every chain for STUCK_WINDOW trajectories in a row: acceptance 1 to machine precision, a step far smaller
# than useful (a run at any sensible acceptance has |dH| of order 1e-3 to 1; at eps = 1e-12 HMC gives
# |dH| ~ 1e-20 and MALA, whose dH is round-off of S(y) - S(x), ~ 1e-10).
STUCK_WINDOW = 20
STUCK_DH = 20.0
FROZEN_DH = 1e-8


def _diverged_message(bad, traj, step_eps, n_meas, out, sampler):
    # --resume continues the saved (now non-finite) state and refuses a changed eps, so the
    # remedy is a new run; a smaller step with more steps keeps the trajectory length
    return (f"chains {bad} diverged (non-finite field) at trajectory {traj} with eps={step_eps:.4g}"
            + (" (the unadjusted Langevin step is unstable for large dt)" if sampler == "langevin" else "")
            + f"; the {n_meas} measured trajectories before it are saved in {out} and can be analysed, but the run"
            " cannot be continued with --resume (its saved state is non-finite, and resume keeps eps). Start a new"
            " run (another --out, or --overwrite) with a smaller --eps (e.g. half) and proportionally more"
            " --n-steps to keep the trajectory length")


def _state(rng, eps, t_therm, acc_sum, n_done, wall_time, kernel=None):
    return {"rng": rng_to_json(rng), "eps": float(eps), "t_therm": int(t_therm), "acc_sum": float(acc_sum),
            "n_done": int(n_done), "wall_time": float(wall_time), "kernel": kernel}


def _phase(params):
    from ..lattice.kernels import phase_tables

    return phase_tables(params.shape)


def _progress(total, initial, enabled, desc):
    from ..progress import bar

    return bar(total, f"sample-mcmc {desc}", unit="traj", initial=initial, enabled=enabled)


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
