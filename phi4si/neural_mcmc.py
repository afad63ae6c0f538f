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
from pathlib import Path

import numpy as np

from ._version import __version__
from .density import FlowSettings, conditional_log_prob, propose_block, sample
from .errors import OutputExistsError, ParameterError
from .reweight import log_target, log_weights

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


class _Out:
    """An ensemble file for chains of configurations (measurements computed here)."""

    def __init__(self, out, params, n_chains, sampler, run, weighted, dtype, first):
        from . import store

        self.params, self.dtype, self.n = params, dtype, 0
        state = {"rng": {}, "eps": 0.0, "t_therm": 0, "acc_sum": 0.0, "n_done": 0, "wall_time": 0.0}
        store.create_ensemble(out, shape=params.shape, n_chains=n_chains, dtype=dtype, params=params.to_dict(),
                              sampler=sampler, run=run, state_phi=first.reshape(n_chains, -1), state=state,
                              weighted=weighted)
        self.w = store.EnsembleWriter(out)
        self.acc_sum = 0.0

    def append(self, phi, accepted, dH, log_w=None, wall=0.0):
        """phi (C, T, *shape); accepted, dH, log_w (C, T)."""
        from .lattice import kernels

        C, T = phi.shape[:2]
        flat = np.ascontiguousarray(phi, dtype=np.float64).reshape(C * T, -1)
        cos_t, sin_t, strides = kernels.phase_tables(self.params.shape)
        p = self.params
        m, S, gp = kernels.measure_batch(flat, np.array(p.shape, dtype=np.int64), p.mass_term, p.lam, p.h,
                                         cos_t, sin_t, strides)
        scal = {"m": m.reshape(C, T), "S": S.reshape(C, T), "accepted": np.asarray(accepted, float),
                "dH": np.asarray(dH, float)}
        if log_w is not None:
            scal["log_w"] = np.asarray(log_w, float)
        self.acc_sum += float(np.asarray(accepted, float).sum())
        idx = np.arange(self.n, self.n + T, dtype=np.int64)
        state = {"rng": {}, "eps": 0.0, "t_therm": 0, "acc_sum": self.acc_sum, "wall_time": wall}
        self.w.append(scalars=scal, gp=gp.reshape(C, T, -1), configs=phi.astype(self.dtype), cfg_index=idx,
                      traj_index=idx, state_phi=flat.reshape(C, T, -1)[:, -1], state=state)
        self.n += T

    def close(self, attrs: dict):
        self.w.close(attrs)


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
    if dtype not in ("float32", "float64"):
        raise ParameterError(f"dtype must be float32 or float64, got {dtype!r}")


def sample_neural(model, method: str, out, n: int, *, h: float = 0.0, k: float = 0.0, chains: int = 1,
                  fs: FlowSettings = FlowSettings(), block=4, updates: int = 1, hmc_traj: int = 1,
                  hmc_eps: float = 0.1, hmc_steps: int = 10, n_therm: int = 0, seed: int = 0,
                  dtype: str = "float32", overwrite: bool = False, progress: bool = False,
                  model_path: str | None = None, flush_every: int = 10, command: str | None = None) -> dict:
    """Run an exact sampler with ``model`` and write an ensemble file ``out``; returns a summary.

    ``n``: proposals (reweight), proposals per chain (imh) or sweeps per chain (block, hybrid)
    after ``n_therm`` discarded sweeps; ``chains``: independent chains (imh, block, hybrid).
    The block and hybrid chains start from raw model samples.  The target is exp(-S_{h,k}) with
    the training data's m2, lam (:meth:`~phi4si.model.TrainedModel.target_params`).
    """
    _check(method, n, chains, updates, hmc_traj, hmc_eps, hmc_steps, dtype)
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.exists():
        raise ParameterError(f"output directory {out.parent} does not exist")
    params = model.target_params(h=h, k=k)
    if method in ("block", "hybrid"):
        _block_size(block, params.shape)
    rng = np.random.default_rng(int(seed))
    t0 = time.time()
    sampler = {"sampler": "neural", "method": method, "flow": fs.to_dict(), "model": model_path,
               "model_step": model.meta.get("step"), "reward": {"h": float(h), "k": float(k)}}
    if method in ("block", "hybrid"):
        sampler.update(block=list(_block_size(block, params.shape)), updates=int(updates))
    if method == "hybrid":
        sampler.update(hmc_traj=int(hmc_traj), hmc_eps=float(hmc_eps), hmc_steps=int(hmc_steps))
    run = {"seed": int(seed), "n": int(n), "chains": int(chains), "n_therm": int(n_therm), "version": __version__,
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command or "phi4si.neural_mcmc.sample_neural"}
    if method in ("reweight", "imh"):
        return _independent(model, method, out, int(n), int(chains), params, fs, rng, sampler, run, dtype, t0,
                            progress)
    return _blocks(model, method, out, int(n), int(chains), params, fs, rng, sampler, run, dtype, t0, block,
                   int(updates), int(hmc_traj), float(hmc_eps), int(hmc_steps), int(n_therm), progress,
                   max(1, int(flush_every)))


def _independent(model, method, out, n, chains, params, fs, rng, sampler, run, dtype, t0, progress):
    total = n if method == "reweight" else n * chains
    prop = sample(model, total, fs, seed=int(rng.integers(0, 2**62)), progress=progress)
    lw = log_weights(prop.phi, prop.log_q, params)
    t_gen = time.time() - t0
    from .observables import ess_fraction

    summary = {"method": method, "ess_fraction": ess_fraction(lw), "proposals": total,
               "log_q_error_mean": float(np.mean(prop.log_q_error)), "time_proposals": t_gen}
    if method == "reweight":
        C, phi, acc, dH, w = 1, prop.phi[None], np.ones((1, n)), np.zeros((1, n)), lw[None]
    else:
        C = chains
        lwc = lw.reshape(C, n)
        idx, accb, dH = imh_chain(lwc, rng)
        phi = prop.phi.reshape(C, n, *params.shape)[np.arange(C)[:, None], idx]
        acc, w = accb.astype(float), None
        summary["acceptance"] = float(accb[:, 1:].mean()) if n > 1 else float("nan")
    run = dict(run, wall_time=time.time() - t0)
    o = _Out(out, params, C, sampler, run, w is not None, dtype, phi[:, -1])
    o.append(phi, acc, dH, w, wall=time.time() - t0)
    o.close({"n_done": n, "wall_time": float(time.time() - t0),
               "acceptance": float(summary.get("acceptance", 1.0)), "eps": 0.0})
    _record(out, summary)
    summary["wall_time"] = time.time() - t0
    return summary


def _blocks(model, method, out, n, chains, params, fs, rng, sampler, run, dtype, t0, block, updates, hmc_traj,
            hmc_eps, hmc_steps, n_therm, progress, flush_every):
    from .generate import generate

    phi = generate(model, chains, steps=fs.steps, solver="heun" if fs.solver == "euler" else fs.solver,
                   seed=int(rng.integers(0, 2**62)), batch_size=fs.batch_size)
    hmc = None
    if method == "hybrid":
        from .mcmc.hmc import HMC

        hmc = HMC(params, n_steps=hmc_steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n + n_therm, desc=method, unit="sweep", dynamic_ncols=True)
    o = None
    buf_phi, buf_acc, buf_dH = [], [], []
    acc_block = acc_hmc = 0.0
    n_block = n_hmc = 0
    try:
        for sweep in range(n + n_therm):
            acc_s = np.zeros(chains)
            dH_s = np.zeros(chains)
            for _ in range(updates):
                phi, acc, la = block_update(model, phi, params, block, rng, fs)
                acc_s += acc
                dH_s = -la
                if sweep >= n_therm:
                    acc_block += acc.sum()
                    n_block += chains
            if hmc is not None:
                flat = np.ascontiguousarray(phi.reshape(chains, -1))
                for _ in range(hmc_traj):
                    a, _dh = hmc.step(flat, rng, hmc_eps)
                    if sweep >= n_therm:
                        acc_hmc += a.sum()
                        n_hmc += chains
                phi = flat.reshape(phi.shape)
            if not np.isfinite(phi).all():
                raise FloatingPointError(f"sweep {sweep}: the chains produced NaN/inf (HMC step size too large?)")
            if bar is not None:
                bar.update(1)
            if sweep < n_therm:
                continue
            buf_phi.append(phi.copy())
            buf_acc.append(acc_s / updates)
            buf_dH.append(dH_s)
            if len(buf_phi) >= flush_every or sweep == n + n_therm - 1:
                block_phi = np.stack(buf_phi, 1)
                if o is None:
                    o = _Out(out, params, chains, sampler, dict(run, wall_time=time.time() - t0), False, dtype,
                             block_phi[:, -1])
                o.append(block_phi, np.stack(buf_acc, 1), np.stack(buf_dH, 1), wall=time.time() - t0)
                buf_phi, buf_acc, buf_dH = [], [], []
    finally:
        if bar is not None:
            bar.close()
        if o is not None:
            o.close({"n_done": o.n, "wall_time": float(time.time() - t0),
                       "acceptance": float(acc_block / max(1, n_block)), "eps": float(hmc_eps if hmc else 0.0)})
    summary = {"method": method, "acceptance_block": float(acc_block / max(1, n_block)),
               "acceptance_hmc": float(acc_hmc / n_hmc) if n_hmc else None, "sweeps": n, "chains": chains}
    _record(out, summary)
    summary["wall_time"] = time.time() - t0
    return summary


def _record(out, summary):
    from . import store

    store.update_attrs(out, {"summary": json.dumps({k: v for k, v in summary.items()})})
