"""Fine-tuning (``train --init``): the trained model a run starts from, checked against the run.

"Train small, fine-tune large": a fully convolutional model trained on one lattice is a good start
on a larger one.  :func:`read_init` reads the init model (a checkpoint or a shipped name), refuses a
run whose network settings contradict it, and gives the data the init's normalisation, so that the
network sees fields on the scale it was trained on.  The network (its U-Net configuration and EMA
weights), its Z2 oddness and its normalisation (mean, scale) are the init model's, so the run's
``model``, ``model_overrides``, ``family``, ``param`` and ``odd`` must agree with it (``odd=None``
takes it); the optimiser, the schedules and the EMA start afresh.  The checkpoint records the init's
file, SHA-256, step and lattice (``init``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ParameterError

__all__ = ["read_init"]


def read_init(cfg, data) -> dict | None:
    """The checkpoint a fine-tune (``cfg.init``) starts from, checked against ``cfg`` and the data's
    dimension and channels; the data take its normalisation.  None without ``init``."""
    from .checkpoint import read_checkpoint
    from .shipped import resolve, sha256

    if cfg.init is None:
        return None
    if not (isinstance(cfg.init, str) and cfg.init):
        raise ParameterError(f"init must be a model checkpoint or a shipped model's name, got {cfg.init!r}")
    path = resolve(cfg.init)
    ck = read_checkpoint(path)
    tc, mc = ck.get("train_config") or {}, ck["model_config"]
    for key, mine, theirs in (("model", cfg.model, tc.get("model")),
                              ("model_overrides", dict(cfg.model_overrides), dict(tc.get("model_overrides") or {})),
                              ("family", cfg.family, tc.get("family")), ("param", cfg.param, ck.get("param"))):
        if mine != theirs:
            raise ParameterError(f"init {cfg.init}: a fine-tune keeps the init model's network; its {key} is "
                                 f"{theirs!r}, not {mine!r}")
    if cfg.odd is not None and bool(cfg.odd) != bool(mc.get("odd")):
        raise ParameterError(f"init {cfg.init}: the init model is {'' if mc.get('odd') else 'not '}exactly Z2-odd; "
                             f"odd={cfg.odd} contradicts it (leave odd out)")
    if int(mc.get("dim", len(data.shape))) != len(data.shape) or int(mc.get("in_channels", 1)) != data.channels:
        raise ParameterError(f"init {cfg.init}: a {mc.get('dim')}-d model of {mc.get('in_channels', 1)} channel(s) "
                             f"cannot be fine-tuned on {len(data.shape)}-d data of {data.channels} channel(s)")
    norm = ck["normalisation"]
    data.mean, data.scale = float(norm["mean"]), float(norm["scale"])
    ck["init_record"] = {"init": cfg.init, "file": str(Path(path).resolve()), "sha256": sha256(path),
                         "step": ck.get("step"), "lattice": ck.get("lattice")}
    return ck
