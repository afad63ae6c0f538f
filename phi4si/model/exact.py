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

>>> # m = load_model("model.pt")
>>> # sample_neural(m, "imh", "imh.h5", n=2000, chains=4, fs=FlowSettings(steps=10))
"""

from __future__ import annotations

import json
import time

import numpy as np

from .._version import __version__
from .density import FlowSettings, conditional_log_prob, propose_block, sample
from ..errors import ParameterError, ResumeError
from ..io import check_resume, prepare_output, rng_from_json, rng_to_json, utc_now
from ..analysis.weights import log_target, log_weights
from ..store import ConfigurationWriter

__all__ = ["METHODS", "imh_chain", "random_blocks", "block_update", "sample_neural"]

METHODS = ("reweight", "imh", "block", "hybrid")


def imh_chain(log_w: np.ndarray, rng: np.random.Generator, current: np.ndarray | None = None):
    """Run independence-Metropolis chains through proposals with log-weights ``log_w`` (C, T).

    ``current``: log w of each chain's state before the first proposal (None: the first proposal
    is taken as the start).  Returns ``(index, accepted, dH)``, each (C, T): the proposal index
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
    u = np.log(rng.random((C, T)))
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


def _block_size(block, shape):
    b = (int(block),) * len(shape) if np.isscalar(block) else tuple(int(v) for v in block)
    if len(b) != len(shape) or any(v < 1 or v > L for v, L in zip(b, shape)):
        raise ParameterError(f"block {block} does not fit the lattice {tuple(shape)}")
    return b


def random_blocks(shape, block, n: int, rng: np.random.Generator) -> np.ndarray:
    """n boolean masks (n, *shape): a block of sides ``block`` at a uniformly random periodic offset.

    >>> random_blocks((4, 4), 2, 3, np.random.default_rng(0)).sum(axis=(1, 2)).tolist()
    [4, 4, 4]
    """
    shape = tuple(shape)
    b = _block_size(block, shape)
    masks = np.zeros((n, *shape), dtype=bool)
    offs = np.stack([rng.integers(0, L, n) for L in shape], 1)
    for i in range(n):
        masks[(i,) + np.ix_(*[(np.arange(bs) + o) % L for bs, o, L in zip(b, offs[i], shape)])] = True
    return masks


def block_update(model, phi: np.ndarray, params, block, rng: np.random.Generator,
                 fs: FlowSettings = FlowSettings()):
    """One neural block Metropolis-Hastings update of every chain in ``phi`` (C, *shape).

    Returns ``(phi_new, accepted, log_alpha)``; ``phi`` is not modified.
    """
    phi = np.asarray(phi, dtype=np.float64)
    masks = random_blocks(phi.shape[1:], block, len(phi), rng)
    seed = int(rng.integers(0, 2**62))
    prop = propose_block(model, phi, masks, fs, seed=seed)
    lq_old, _ = conditional_log_prob(model, phi, masks, fs, seed=seed + 1)
    log_alpha = (log_target(prop.phi, params) - prop.log_q) - (log_target(phi, params) - lq_old)
    acc = np.log(rng.random(len(phi))) < log_alpha
    new = np.where(acc.reshape(-1, *([1] * (phi.ndim - 1))), prop.phi, phi)
    return new, acc, log_alpha


def _check(method, n, chains, updates, hmc_traj, hmc_eps, hmc_steps, dtype):
    if method not in METHODS:
        raise ParameterError(f"unknown method {method!r} (choose from {METHODS})")
    for name, v, lo in (("n", n, 1), ("chains", chains, 1), ("updates", updates, 1), ("hmc_traj", hmc_traj, 0),
                        ("hmc_steps", hmc_steps, 1)):
        if int(v) != v or int(v) < lo:
            raise ParameterError(f"{name} must be an integer >= {lo}, got {v}")
    if not (np.isfinite(hmc_eps) and hmc_eps > 0):
        raise ParameterError(f"hmc_eps must be a finite number > 0, got {hmc_eps}")
    if method == "hybrid" and hmc_traj < 1:
        raise ParameterError("the hybrid method needs hmc_traj >= 1")
    if method == "reweight" and chains != 1:
        raise ParameterError("reweight draws independent samples: chains must be 1")
    if dtype not in ("float32", "float64"):
        raise ParameterError(f"dtype must be float32 or float64, got {dtype!r}")


def sample_neural(model, method: str, out, n: int, *, h: float = 0.0, k: float = 0.0, chains: int = 1,
                  fs: FlowSettings = FlowSettings(), block=4, updates: int = 1, hmc_traj: int = 1,
                  hmc_eps: float = 0.1, hmc_steps: int = 10, n_therm: int = 0, seed: int = 0,
                  dtype: str = "float32", overwrite: bool = False, resume: bool = False, progress: bool = False,
                  model_path: str | None = None, flush_every: int = 10, command: str | None = None,
                  proposal=None) -> dict:
    """Run an exact sampler with ``model`` and write an ensemble file ``out``; returns a summary.

    ``n``: proposals (reweight), proposals per chain (imh) or sweeps per chain (block, hybrid)
    after ``n_therm`` discarded sweeps; ``chains``: independent chains (imh, block, hybrid).
    The block and hybrid chains start from raw model samples.  The target is exp(-S_{h,k}) with
    the training data's m2, lam (:meth:`~phi4si.model.TrainedModel.target_params`).

    ``proposal``: None (the prior model) or a :class:`~phi4si.model.posterior.Posterior` for reweight and imh:
    proposals from the posterior drift of the reward transform (usually with the same h, k as the
    target; its start mean is resolved once by a pilot run, so the proposal law is fixed), which keeps
    the ESS high when the posterior sits in the prior's tail.

    The file is written in chunks (``fs.batch_size`` proposals, or ``flush_every`` sweeps) with the
    random state after each, so an interrupted run keeps what it wrote and ``resume=True`` continues
    it to ``n`` with the same bits an uninterrupted run gives.
    """
    from .. import store

    _check(method, n, chains, updates, hmc_traj, hmc_eps, hmc_steps, dtype)
    n, chains, updates, hmc_traj, hmc_steps, n_therm = map(int, (n, chains, updates, hmc_traj, hmc_steps, n_therm))
    out = prepare_output(out, overwrite=overwrite, resume=resume, resumable=True)
    params = model.target_params(h=h, k=k)
    if method in ("block", "hybrid"):
        block = list(_block_size(block, params.shape))
    if proposal is not None:
        from .generate import resolve_start
        from .posterior import Posterior

        if method not in ("reweight", "imh"):
            raise ParameterError("a posterior proposal applies to the reweight and imh methods only")
        if not isinstance(proposal, Posterior):
            raise ParameterError(f"proposal must be None or a phi4si.model.posterior.Posterior, got {type(proposal).__name__}")
        proposal.start_time(model)
        proposal = resolve_start(model, proposal, steps=fs.steps, solver=fs.solver, seed=seed,
                                 batch_size=fs.batch_size)
    sampler = {"sampler": "neural", "method": method, "flow": fs.to_dict(), "model": model_path,
               "model_step": model.meta.get("step"), "reward": {"h": float(h), "k": float(k)}, "chains": chains}
    if method in ("block", "hybrid"):
        sampler.update(block=block, updates=updates, n_therm=n_therm)
    if method == "hybrid":
        sampler.update(hmc_traj=hmc_traj, hmc_eps=float(hmc_eps), hmc_steps=hmc_steps)
    if proposal is not None:
        sampler["proposal"] = {**proposal.describe(), "a0": proposal.start_time(model)}
    run = {"seed": int(seed), "n": n, "version": __version__, "date": utc_now(),
           "command": command or "phi4si.model.exact.sample_neural"}
    t0 = time.time()
    C = 1 if method == "reweight" else chains
    if resume:
        store.repair(out)
        attrs, state_phi, state = store.read_state(out)
        check_resume(out, attrs["sampler"], sampler, keys=[k for k in sampler if k != "model"], label="sampler setting ")
        if attrs["params"] != params.to_dict():
            raise ResumeError(f"cannot resume {out}: parameters differ ({attrs['params']} vs {params.to_dict()})")
        if state["n_done"] > n:
            raise ResumeError(f"cannot resume {out}: it already holds {state['n_done']} > n={n} measurements")
        extra = state["rng"]
        rng = rng_from_json(extra["rng"])
        wall0 = float(state["wall_time"])
        cur = np.asarray(state_phi, dtype=np.float64).reshape(C, *params.shape)
        cur_lw = np.asarray(extra["log_w"], dtype=np.float64) if extra.get("log_w") is not None else None
        counts = dict(extra.get("counts", {}))
        o = ConfigurationWriter(out, params, dtype, state["n_done"])
        store.record_resume(out, attrs["run"], {"date": run["date"], "command": run["command"],
                                                "version": __version__, "n_done": state["n_done"], "n": n}, n=n)
    else:
        rng = np.random.default_rng(int(seed))
        wall0, cur_lw, counts = 0.0, None, {}
        if method in ("block", "hybrid"):
            from .generate import generate

            cur = generate(model, C, steps=fs.steps, solver="heun" if fs.solver == "euler" else fs.solver,
                           seed=int(rng.integers(0, 2**62)), batch_size=fs.batch_size)
        else:
            cur = np.zeros((C, *params.shape))
        st = {"rng": {"rng": rng_to_json(rng)}, "n_done": 0, "wall_time": 0.0}
        o = ConfigurationWriter.create(out, params, C, sampler, run, method == "reweight", dtype, cur, st)

    hmc = None
    if method == "hybrid":
        from ..mcmc.hmc import HMC

        hmc = HMC(params, n_steps=hmc_steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=o.n, desc=method, dynamic_ncols=True)

    def state(extra_lw=None):
        """Resume state after the current chunk (the writer sets n_done itself)."""
        return {"rng": {"rng": rng_to_json(rng), "log_w": None if extra_lw is None else list(map(float, extra_lw)),
                        "counts": counts},
                "wall_time": wall0 + time.time() - t0}

    try:
        if method in ("block", "hybrid") and o.n == 0 and not counts.get("thermalised"):
            for _ in range(n_therm):
                cur = _sweep(model, cur, params, block, updates, hmc, hmc_traj, hmc_eps, rng, fs, None)
            counts["thermalised"] = True
        while o.n < n:
            if method == "reweight":
                T = min(n - o.n, fs.batch_size)
                prop = sample(model, T, fs, seed=int(rng.integers(0, 2**62)), posterior=proposal)
                lw = log_weights(prop.phi, prop.log_q, params)
                o.append(prop.phi[None], np.ones((1, T)), np.zeros((1, T)), lw[None], state=state(),
                         state_phi=np.zeros((1, params.volume)))
            elif method == "imh":
                T = min(n - o.n, max(1, fs.batch_size // C))
                prop = sample(model, C * T, fs, seed=int(rng.integers(0, 2**62)), posterior=proposal)
                lw = log_weights(prop.phi, prop.log_q, params).reshape(C, T)
                idx, acc, dH = imh_chain(lw, rng, current=cur_lw)
                pool = prop.phi.reshape(C, T, *params.shape)
                held = np.where((idx >= 0).reshape(C, T, *([1] * len(params.shape))),
                                pool[np.arange(C)[:, None], np.maximum(idx, 0)], cur[:, None])
                cur = held[:, -1].copy()
                cur_lw = np.where(idx[:, -1] >= 0, lw[np.arange(C), np.maximum(idx[:, -1], 0)], cur_lw)
                o.append(held, acc.astype(float), dH, None, state=state(cur_lw), state_phi=cur)
            else:
                T = min(n - o.n, flush_every)
                res, accs, dHs = [], [], []
                for _ in range(T):
                    cur, acc, dH = _sweep(model, cur, params, block, updates, hmc, hmc_traj, hmc_eps, rng, fs, counts,
                                          with_stats=True)
                    res.append(cur.copy())
                    accs.append(acc)
                    dHs.append(dH)
                o.append(np.stack(res, 1), np.stack(accs, 1), np.stack(dHs, 1), None, state=state(), state_phi=cur)
            if bar is not None:
                bar.n = o.n
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
        o.close({"n_done": o.n, "wall_time": float(wall0 + time.time() - t0), "eps": float(hmc_eps if hmc else 0.0)})
    summary = _summary(out, method, counts)
    summary["wall_time"] = wall0 + time.time() - t0
    return summary


def _sweep(model, phi, params, block, updates, hmc, hmc_traj, hmc_eps, rng, fs, counts, with_stats=False):
    """``updates`` block updates, then (hybrid) ``hmc_traj`` HMC trajectories, on every chain."""
    C = len(phi)
    acc_s, dH = np.zeros(C), np.zeros(C)
    for _ in range(updates):
        phi, acc, la = block_update(model, phi, params, block, rng, fs)
        acc_s += acc
        dH = -la
    if counts is not None:
        counts["block_acc"] = counts.get("block_acc", 0.0) + float(acc_s.sum())
        counts["block_n"] = counts.get("block_n", 0) + C * updates
    if hmc is not None:
        flat = np.ascontiguousarray(phi.reshape(C, -1))
        for _ in range(hmc_traj):
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
    from ..analysis.observables import ess_fraction

    with store.open_ensemble(out) as ds:                    # lazy: the configurations are not read
        acc = np.asarray(ds["accepted"].values)
        s = {"method": method, "n_done": int(acc.shape[1]), "chains": int(acc.shape[0])}
        if method == "reweight":
            s["ess_fraction"] = ess_fraction(ds["log_w"].values)
        elif method == "imh":
            s["acceptance"] = float(acc[:, 1:].mean()) if acc.shape[1] > 1 else float("nan")
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
