"""Exact sampling with a trained model: reweighting, independence Metropolis, neural block updates
and a hybrid with HMC (THEORY.md section 6).

The model only makes sampling cheaper; every method below is exact for the target
p(phi) ~ exp(-S_{h,k}(phi)) (rewards ``h``, ``k`` included) as the number of samples grows:

* ``reweight`` - N model samples with importance log-weights log w = -S - log q; observables are
  self-normalised weighted means (ESS/N = (sum w)^2 / (N sum w^2)).
* ``imh``      - independence Metropolis with the model as proposal: a proposal phi' replaces the
  current phi with probability min(1, w(phi') / w(phi)).  Proposals are generated in batches and
  the chains then run through them; ``dH`` stores log w(phi) - log w(phi') (HMC's convention:
  acceptance min(1, exp(-dH))).
* ``block``    - Metropolis-Hastings by inpainting: pick a block B at a uniformly random (periodic)
  position, regenerate x_B with the rest fixed, accept with
      min(1, p(phi') q(x_B | x_rest) / (p(phi) q(x_B' | x_rest))),
  the conditional densities from the inpainting flow (forward for the new block, reverse for the
  old one).  Every chain updates ``updates`` blocks per sweep.
* ``hybrid``   - each sweep does the block updates and then ``hmc_traj`` HMC trajectories
  (both leave p invariant, so does their composition); HMC moves the long-wavelength modes the
  block proposals are poor at, the blocks decorrelate what HMC moves slowly.

Exactness holds up to the accuracy of log q (the augmented ODE's discretisation, and the
Hutchinson noise when it is used), which :mod:`phi4si.interpolant.likelihood` quantifies.

With the exact Gaussian oracle as the "model", independence Metropolis accepts almost every
proposal (the proposal is the target, up to the ODE's discretisation):

>>> import os, tempfile
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
>>> s = sample_neural(m, "imh", os.path.join(tempfile.mkdtemp(), "imh.h5"), 64, chains=2,
...                   fs=FlowSettings(steps=8, divergence="exact"))
>>> s["n_done"], s["acceptance"] > 0.9
(64, True)
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from .._version import __version__
from .blocks import block_size, block_update, random_blocks
from .density import LEGACY_FLOW, FlowSettings, sample
from ..errors import ParameterError, ResumeError
from ..interrupts import graceful_stop, said
from ..resources import torch_threads_kept
from ..io import check_resume, lock_output, prepare_output, rng_from_json, rng_to_json, utc_now
from ..analysis.weights import log_weights
from ..store import ConfigurationWriter

__all__ = ["METHODS", "METHOD_SETTINGS", "imh_chain", "random_blocks", "block_update", "sample_neural"]

METHODS = ("reweight", "imh", "block", "hybrid")


def imh_chain(log_w: np.ndarray, rng: np.random.Generator, current: np.ndarray | None = None, u=None):
    """Run independence-Metropolis chains through proposals with log-weights ``log_w`` (C, T).

    ``current``: log w of each chain's state before the first proposal (None: the first proposal
    is taken as the start); ``u``: the uniforms (C, T) of the accept tests (None: drawn from
    ``rng``, as ``rng.random((C, T))``).  Returns ``(index, accepted, dH)``, each (C, T): the proposal index
    (along T; -1 = still the start state) each chain holds after every step.

    >>> idx, acc, _ = imh_chain(np.log([[1.0, 2.0, 0.5]]), np.random.default_rng(0))
    >>> idx[0, :2].tolist(), acc[0, :2].tolist()
    ([0, 1], [True, True])
    """
    lw = np.asarray(log_w, dtype=np.float64)
    if lw.ndim != 2:
        raise ValueError("log_w must have shape (chains, proposals)")
    C, T = lw.shape
    idx = np.empty((C, T), dtype=np.int64)
    acc = np.empty((C, T), dtype=bool)
    dH = np.empty((C, T))
    u = np.log(rng.random((C, T)) if u is None else np.asarray(u, dtype=np.float64))
    if current is None:
        cur_lw, cur = lw[:, 0].copy(), np.zeros(C, dtype=np.int64)
        idx[:, 0], acc[:, 0], dH[:, 0] = 0, True, 0.0
        t0 = 1
    else:
        cur_lw, cur = np.asarray(current, dtype=np.float64).copy(), np.full(C, -1, dtype=np.int64)
        t0 = 0
    for t in range(t0, T):
        d = cur_lw - lw[:, t]
        a = u[:, t] < -d
        cur = np.where(a, t, cur)
        cur_lw = np.where(a, lw[:, t], cur_lw)
        idx[:, t], acc[:, t], dH[:, t] = cur, a, d
    return idx, acc, dH


# settings only some methods use: {name: (methods, default)}; given to another method they are refused
METHOD_SETTINGS = {"block": (("block", "hybrid"), 4), "updates": (("block", "hybrid"), 1),
                   "n_therm": (("block", "hybrid"), 0), "hmc_traj": (("hybrid",), 1),
                   "hmc_eps": (("hybrid",), 0.1), "hmc_steps": (("hybrid",), 10), "window": (("block", "hybrid"), None)}
# the smallest value of each integer setting
_AT_LEAST = {"n": 1, "chains": 1, "seed": 0, "updates": 1, "n_therm": 0, "hmc_traj": 1, "hmc_steps": 1}


def _integer(name, v):
    lo = _AT_LEAST[name]
    if isinstance(v, bool) or int(v) != v or int(v) < lo:
        raise ParameterError(f"{name} must be an integer >= {lo}, got {v}")
    return int(v)


def _check(method, n, chains, seed, dtype, posterior, method_settings: dict) -> dict:
    """The validated settings of :func:`sample_neural`: ``n``, ``chains``, ``seed`` and those of
    :data:`METHOD_SETTINGS` that ``method`` uses (None: the default); a setting given to a method
    that does not use it is refused, as is a posterior proposal for the block methods."""
    if method not in METHODS:
        raise ParameterError(f"unknown method {method!r} (choose from {METHODS})")
    for name, v in method_settings.items():
        methods = METHOD_SETTINGS[name][0]
        if v is not None and method not in methods:
            raise ParameterError(f"{name} applies to method {' or '.join(methods)} only, got method={method!r}")
    s = {"n": _integer("n", n), "chains": _integer("chains", chains), "seed": _integer("seed", seed)}
    if method == "reweight" and s["chains"] != 1:
        raise ParameterError("chains applies to method imh, block or hybrid only (reweight draws independent samples)")
    for name, (methods, default) in METHOD_SETTINGS.items():
        if method in methods:
            v = default if method_settings[name] is None else method_settings[name]
            s[name] = v if name in ("block", "hmc_eps", "window") else _integer(name, v)
    if "hmc_eps" in s and not (np.isfinite(s["hmc_eps"]) and s["hmc_eps"] > 0):
        raise ParameterError(f"hmc_eps must be a finite number > 0, got {s['hmc_eps']}")
    if dtype not in ("float32", "float64"):
        raise ParameterError(f"dtype must be float32 or float64, got {dtype!r}")
    if posterior is not None:
        from .posterior import Posterior

        if method not in ("reweight", "imh"):
            raise ParameterError("posterior applies to method reweight or imh only: the reweight and imh methods "
                                 "draw whole configurations from the model, block and hybrid regenerate blocks")
        if not isinstance(posterior, Posterior):
            raise ParameterError(f"posterior must be None or a phi4si.model.posterior.Posterior, "
                                 f"got {type(posterior).__name__}")
    return s


def sample_neural(model, method: str, out, n: int, *, h: float = 0.0, k: float = 0.0, chains: int = 1,
                  fs: FlowSettings = FlowSettings(), block=None, updates: int | None = None,
                  hmc_traj: int | None = None, hmc_eps: float | None = None, hmc_steps: int | None = None,
                  n_therm: int | None = None, window=None, shape=None, seed: int = 0, dtype: str = "float32", overwrite: bool = False,
                  resume: bool = False, progress: bool | None = None, model_path: str | None = None, flush_every: int = 10,
                  command: str | None = None, posterior=None, ranks=None) -> dict:
    """Run an exact sampler with ``model`` and write an ensemble file ``out``; returns a summary.

    ``n``: proposals (reweight), proposals per chain (imh) or sweeps per chain (block, hybrid)
    after ``n_therm`` discarded sweeps; ``chains``: independent chains (imh, block, hybrid).
    The block and hybrid chains start from raw model samples.  The target is exp(-S_{h,k}) with
    the training data's m2, lam (:meth:`~phi4si.model.TrainedModel.target_params`) on the lattice
    ``shape`` (default the model's; any shape the network admits: train small, sample exactly large).

    Settings of some methods only (None: the default in brackets; given to another method, refused):
    ``block`` (4; B or (B, C)), ``updates`` (1) block updates per sweep and ``n_therm`` (0) for
    block and hybrid; ``window`` (None: the whole lattice; W or (W, V): the conditional flow of each
    block on a window of these sides around it, :mod:`phi4si.model.window`, exact for any window) for
    block and hybrid; ``hmc_traj`` (1), ``hmc_eps`` (0.1) and ``hmc_steps`` (10) for hybrid.

    ``posterior``: None (the prior model) or a :class:`~phi4si.model.posterior.Posterior` for reweight and
    imh: proposals from the posterior drift of the reward transform (usually with the same h, k as the
    target; its start mean is resolved once by a pilot run, so the proposal law is fixed), which keeps
    the ESS high when the posterior sits in the prior's tail.  (It is the ``posterior`` of
    :func:`~phi4si.model.generate.generate`; the output records it as the sampler's ``proposal``.)

    The file is written in chunks (``fs.batch_size`` proposals, or ``flush_every`` sweeps) with the
    random state after each, so an interrupted run keeps what it wrote and ``resume=True`` continues
    it to ``n`` with the samples an uninterrupted run gives, bit for bit.

    ``ranks`` (:func:`phi4si.model.ranks.current` under torchrun): reweight and imh share each round
    of proposal chunks among the processes; rank 0 writes the file of a single process.
    """
    from .ranks import Ranks

    ranks = ranks or Ranks.single()
    if ranks.world > 1 and method not in ("reweight", "imh"):
        raise ParameterError(f"method {method!r} runs its chains in one process; under torchrun only reweight and "
                             "imh share their proposals out (run block or hybrid chains as separate jobs with "
                             "different seeds and analyze the files together)")
    s = _check(method, n, chains, seed, dtype, posterior, dict(block=block, updates=updates, n_therm=n_therm,
                                                               hmc_traj=hmc_traj, hmc_eps=hmc_eps, hmc_steps=hmc_steps,
                                                               window=window))
    out = prepare_output(out, overwrite=overwrite, resume=resume, resumable=True)
    params = model.target_params(h=h, k=k, shape=None if shape is None else model.check_shape(shape))
    if "block" in s:
        from .window import window_size

        s["block"] = list(block_size(s["block"], params.shape))
        w = window_size(s["window"], s["block"], params.shape)
        s["window"] = None if w is None else list(w)
    if posterior is not None and tuple(params.shape) != tuple(model.shape):
        raise ParameterError(f"posterior proposals run on the model's lattice {tuple(model.shape)}; shape "
                             f"{tuple(params.shape)} applies to the prior proposals and the block methods")
    if posterior is not None:
        from .generate import resolve_start

        posterior.start_time(model)
        posterior = resolve_start(model, posterior, steps=fs.steps, solver=fs.solver, seed=seed,
                                  batch_size=fs.batch_size)
    sampler = _sampler_record(model, method, fs, s, h, k, model_path, posterior)
    run = {"seed": int(seed), "n": s["n"], "version": __version__, "date": utc_now(),
           "command": command or "phi4si.model.exact.sample_neural"}
    t0 = time.time()
    C = 1 if method == "reweight" else s["chains"]
    run["processes"] = ranks.world
    with contextlib.ExitStack() as held:
        def open_run():
            held.enter_context(lock_output(out))    # one writer per file, for the whole run
            opened.append(_resume(out, s["n"], C, params, sampler, run, dtype, t0) if resume
                          else _start(model, method, out, C, params, fs, sampler, run, dtype, t0))
            return opened[0].snapshot()

        opened = []
        snap = ranks.shared(open_run)
        r = opened[0] if ranks.leader else _Run(rng_from_json(snap[0]), *snap[1:4], _Count(snap[4]), 0.0, t0)
        hmc = None
        if method == "hybrid":
            from ..mcmc.hmc import HMC

            hmc = HMC(params, n_steps=s["hmc_steps"])
        try:
            _run_chunks(model, method, r, s, params, fs, posterior, hmc, flush_every, progress, ranks)
        finally:
            if ranks.leader:
                r.writer.end({"n_done": r.writer.n, "wall_time": float(r.wall0 + time.time() - t0),
                              "eps": float(s["hmc_eps"] if hmc else 0.0)})
    if not ranks.leader:
        return {"method": method, "n_done": r.writer.n}
    summary = _summary(out, method, r.counts)
    summary["wall_time"] = r.wall0 + time.time() - t0
    return summary


def _sampler_record(model, method, fs, s, h, k, model_path, posterior) -> dict:
    """The ``sampler`` attribute of the output (what a resume must match)."""
    sampler = {"sampler": "neural", "method": method, "flow": fs.to_dict(), "model": model_path,
               "model_step": model.meta.get("step"), "reward": {"h": float(h), "k": float(k)},
               "chains": s["chains"]}
    if method in ("block", "hybrid"):
        sampler.update(block=s["block"], updates=s["updates"], n_therm=s["n_therm"], window=s["window"])
    if method == "hybrid":
        sampler.update(hmc_traj=s["hmc_traj"], hmc_eps=float(s["hmc_eps"]), hmc_steps=s["hmc_steps"])
    if posterior is not None:
        sampler["proposal"] = {**posterior.describe(), "a0": posterior.start_time(model)}
    return sampler


@dataclass
class _Run:
    """What a run carries from chunk to chunk and through a resume: the random stream, the chains'
    current states (and their log-weights, imh), the acceptance counts and the file's writer."""

    rng: np.random.Generator
    cur: np.ndarray
    cur_lw: np.ndarray | None
    counts: dict
    writer: ConfigurationWriter
    wall0: float
    t0: float

    def snapshot(self):
        """What another process needs to follow this run (:func:`sample_neural` under torchrun)."""
        return rng_to_json(self.rng), self.cur, self.cur_lw, self.counts, self.writer.n

    def state(self, log_w=None, rng=None) -> dict:
        """Resume state after the current chunk (the writer sets n_done itself); ``rng``: the random
        stream's state after that chunk as JSON (default: now)."""
        return {"rng": {"rng": rng or rng_to_json(self.rng), "log_w": None if log_w is None else list(map(float, log_w)),
                        "counts": self.counts},
                "wall_time": self.wall0 + time.time() - self.t0}


@dataclass
class _Count:
    """The file's sample count as a process that does not write it follows it."""

    n: int


def _start(model, method, out, C, params, fs, sampler, run, dtype, t0) -> _Run:
    """A new output file: the chains start from model samples (block, hybrid) or zeros (unused)."""
    rng = np.random.default_rng(int(run["seed"]))
    if method in ("block", "hybrid"):
        from .generate import generate

        cur = generate(model, C, params.shape, steps=fs.steps, solver="heun" if fs.solver == "euler" else fs.solver,
                       seed=int(rng.integers(0, 2**62)), batch_size=fs.batch_size)
    else:
        cur = np.zeros((C, *params.shape))
    st = {"rng": {"rng": rng_to_json(rng)}, "n_done": 0, "wall_time": 0.0}
    o = ConfigurationWriter.create(out, params, C, sampler, run, method == "reweight", dtype, cur, st)
    return _Run(rng, cur, None, {}, o, 0.0, t0)


def _resume(out, n, C, params, sampler, run, dtype, t0) -> _Run:
    """An existing output file, checked against the settings, continued from its saved state."""
    from .. import store

    store.repair(out)
    attrs, state_phi, state = store.read_state(out)
    old = dict(attrs["sampler"])
    if isinstance(old.get("flow"), dict):
        old["flow"] = {**LEGACY_FLOW, **old["flow"]}
    check_resume(out, old, sampler, keys=[k for k in sampler if k != "model"], label="sampler setting ")
    if attrs["params"] != params.to_dict():
        raise ResumeError(f"cannot resume {out}: parameters differ ({attrs['params']} vs {params.to_dict()})")
    if state["n_done"] > n:
        raise ResumeError(f"cannot resume {out}: it already holds {state['n_done']} > n={n} measurements")
    extra = state["rng"]
    cur = np.asarray(state_phi, dtype=np.float64).reshape(C, *params.shape)
    cur_lw = np.asarray(extra["log_w"], dtype=np.float64) if extra.get("log_w") is not None else None
    o = ConfigurationWriter(out, params, dtype, state["n_done"])
    store.record_resume(out, attrs["run"], {"date": run["date"], "command": run["command"],
                                            "version": __version__, "n_done": state["n_done"], "n": n}, n=n)
    return _Run(rng_from_json(extra["rng"]), cur, cur_lw, dict(extra.get("counts", {})), o,
                float(state["wall_time"]), t0)


def _run_chunks(model, method, r: _Run, s, params, fs, posterior, hmc, flush_every, progress, ranks):
    """Thermalise (block, hybrid; once per file), then write chunks until the file holds ``n``."""
    from ..progress import bar as progress_bar

    unit = {"reweight": "proposal", "imh": "step"}.get(method, "sweep")
    bar = progress_bar(s["n"], f"sample-neural {method}", unit=unit, initial=r.writer.n,
                       enabled=progress if ranks.leader else False)
    try:
        if method in ("block", "hybrid") and r.writer.n == 0 and not r.counts.get("thermalised"):
            for _ in range(s["n_therm"]):
                r.cur = _sweep(model, r.cur, params, (s["block"], s["window"]), s["updates"], hmc, s.get("hmc_traj"),
                               s.get("hmc_eps"), r.rng, fs, None)
            r.counts["thermalised"] = True
        with graceful_stop() as stop:     # Ctrl-C/SIGTERM: stop between two chunks (each one ends durable)
            while r.writer.n < s["n"] and not (ranks.any(stop.requested()) if ranks.world > 1 else stop.requested()):
                if method in ("reweight", "imh"):
                    _proposal_round(model, method, r, s["n"], params, fs, posterior, ranks)
                else:
                    _sweep_chunk(model, r, min(s["n"] - r.writer.n, flush_every), params, fs, s, hmc)
                if bar is not None:
                    bar.n = r.writer.n
                    bar.refresh()
        if r.writer.n < s["n"]:          # (a stop, here or in another process)
            if ranks.leader:
                print(f"\n{stop.name or 'SIGTERM'}: stopped after {r.writer.n} of {s['n']} with everything saved in "
                      f"{r.writer.path}; continue with the same command and --resume", file=sys.stderr)
            raise said()
    finally:
        if bar is not None:
            bar.close()


def _proposal_round(model, method, r: _Run, n, params, fs, posterior, ranks):
    """A round of proposal chunks (reweight: ``fs.batch_size`` model samples with their log-weights;
    imh: a batch shared out among the chains, which then run through their share), one chunk per
    process.  Every process draws each chunk's seed and accept uniforms from the one stream, in the
    order of a single process, and generates its own chunk; rank 0 writes them all in order."""
    C, plan, done = len(r.cur) if method == "imh" else 1, [], r.writer.n
    while len(plan) < ranks.world and done < n:
        T = min(n - done, fs.batch_size if method == "reweight" else max(1, fs.batch_size // C))
        seed = int(r.rng.integers(0, 2**62))
        plan.append((seed, T, r.rng.random((C, T)) if method == "imh" else None, rng_to_json(r.rng)))
        done += T
    mine = {}
    for j, (seed, T, _, _) in enumerate(plan):
        if ranks.owns(j):
            prop = sample(model, C * T, fs, params.shape, seed=seed, posterior=posterior)
            mine[j] = (prop.phi, prop.log_q)
    got = {j: v for part in ranks.gather(mine) or [] for j, v in part.items()}
    for j, (_, T, u, st) in enumerate(plan):
        if not ranks.leader:
            r.writer.n += T
            continue
        phi, lq = got[j]
        lw = log_weights(phi, lq, params)
        if method == "reweight":
            r.writer.append(phi[None], np.ones((1, T)), np.zeros((1, T)), lw[None], state=r.state(rng=st),
                            state_phi=np.zeros((1, params.volume)))
            continue
        lw = lw.reshape(C, T)
        idx, acc, dH = imh_chain(lw, r.rng, current=r.cur_lw, u=u)
        pool = phi.reshape(C, T, *params.shape)
        held = np.where((idx >= 0).reshape(C, T, *([1] * len(params.shape))),
                        pool[np.arange(C)[:, None], np.maximum(idx, 0)], r.cur[:, None])
        r.cur = held[:, -1].copy()
        r.cur_lw = np.where(idx[:, -1] >= 0, lw[np.arange(C), np.maximum(idx[:, -1], 0)], r.cur_lw)
        r.writer.append(held, acc.astype(float), dH, None, state=r.state(r.cur_lw, rng=st), state_phi=r.cur)


def _sweep_chunk(model, r: _Run, T, params, fs, s, hmc):
    """``T`` sweeps of block updates (and HMC trajectories, hybrid) of every chain."""
    res, accs, dHs = [], [], []
    for _ in range(T):
        r.cur, acc, dH = _sweep(model, r.cur, params, (s["block"], s["window"]), s["updates"], hmc, s.get("hmc_traj"),
                                s.get("hmc_eps"), r.rng, fs, r.counts, with_stats=True)
        res.append(r.cur.copy())
        accs.append(acc)
        dHs.append(dH)
    r.writer.append(np.stack(res, 1), np.stack(accs, 1), np.stack(dHs, 1), None, state=r.state(), state_phi=r.cur)


def _sweep(model, phi, params, block_window, updates, hmc, hmc_traj, hmc_eps, rng, fs, counts, with_stats=False):
    """``updates`` block updates (``block_window``: the block's sides and the window's, or None),
    then (hybrid) ``hmc_traj`` HMC trajectories, on every chain."""
    block, window = block_window
    C = len(phi)
    acc_s, dH = np.zeros(C), np.zeros(C)
    for _ in range(updates):
        phi, acc, la = block_update(model, phi, params, block, rng, fs, window)
        acc_s += acc
        dH = -la
    if counts is not None:
        counts["block_acc"] = counts.get("block_acc", 0.0) + float(acc_s.sum())
        counts["block_n"] = counts.get("block_n", 0) + C * updates
    if hmc is not None:
        flat = np.ascontiguousarray(phi.reshape(C, -1))
        for _ in range(hmc_traj):
            with torch_threads_kept():     # (numba's OpenMP layer would reset torch's thread count)
                a, _dh = hmc.step(flat, rng, hmc_eps)
            if counts is not None:
                counts["hmc_acc"] = counts.get("hmc_acc", 0.0) + float(np.sum(a))
                counts["hmc_n"] = counts.get("hmc_n", 0) + C
        phi = flat.reshape(phi.shape)
    if not np.isfinite(phi).all():
        raise FloatingPointError("the chains produced NaN/inf (HMC step size too large?)")
    return (phi, acc_s / updates, dH) if with_stats else phi


def _summary(out, method, counts):
    """Summary from the file (so that it covers resumed runs too), stored in its ``summary`` attribute."""
    from .. import store
    from ..analysis.observables import acceptance, ess_fraction

    with store.open_ensemble(out) as ds:                    # lazy: the configurations are not read
        acc = np.asarray(ds["accepted"].values)
        s = {"method": method, "n_done": int(acc.shape[1]), "chains": int(acc.shape[0])}
        if method == "reweight":
            s["ess_fraction"] = ess_fraction(ds["log_w"].values)
        elif method == "imh":
            s["acceptance"] = acceptance(acc, {"method": "imh"})
        else:
            s["acceptance_block"] = counts.get("block_acc", 0.0) / max(1, counts.get("block_n", 0))
            s["acceptance_hmc"] = (counts["hmc_acc"] / counts["hmc_n"]) if counts.get("hmc_n") else None
        if method != "reweight" and acc.shape[1] >= 5:
            from ..analysis.stats import gamma

            e = gamma(np.abs(np.asarray(ds["m"].values)))
            s["tau_int_abs_m"] = e.tau_int if np.isfinite(e.tau_int) else None
    acc_attr = s.get("acceptance", s.get("acceptance_block", 1.0))
    store.update_attrs(out, {"summary": json.dumps(s), "acceptance": float(acc_attr)})
    return s
