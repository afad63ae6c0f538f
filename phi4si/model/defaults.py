"""The training settings whose default is resolved when a run starts: the Z2 oddness of the network
and the bfloat16 autocast (one home for both rules, and for reading checkpoints made under the
earlier rules).

* ``odd=None`` (the default): a one-pass network.  Sampling a Z2-symmetric prior then draws a random
  global sign per trajectory (:mod:`phi4si.model.z2`), which samples the symmetrised law exactly at
  one trunk pass per drift evaluation; the exact samplers' log q evaluates the symmetrised density.
  ``odd=True`` asks for the exactly odd network (two trunk passes, on x and -x).  Before 2026-12 the
  default was odd whenever the data have h = 0; benchmarks/README.md ("The model side at L = 16")
  measured the one-pass model as accurate at about half the cost of a step.
* ``amp="auto"`` (the default): bfloat16 autocast of the network where the hardware computes in
  bfloat16 natively (CUDA, or a CPU with AVX512-BF16 or AMX), float32 elsewhere.  The weights, the
  optimiser and the EMA copy stay float32.  Before 2026-12 ``auto`` meant float32 on any CPU.

A new run records the resolved values (``odd`` True or False, ``amp`` "bf16" or "none") in its
checkpoint.  A resumed run takes the checkpoint's values for settings left at their defaults, and an
older checkpoint's ``odd=None`` / ``amp="auto"`` are read under the rules they were made with, so
``--resume`` continues it bit for bit.  A fine-tune (``init``) keeps the init model's oddness.

>>> from types import SimpleNamespace
>>> cfg = SimpleNamespace(odd=None, amp="none", device="cpu")
>>> resolve_defaults(cfg, data=None)
>>> cfg.odd, cfg.amp
(False, 'none')
"""

from __future__ import annotations

import sys
from functools import lru_cache

__all__ = ["resolve_defaults", "legacy_config", "native_bf16"]


@lru_cache(maxsize=None)
def _cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (the avx512_bf16 or amx_bf16 flags of Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16(device: str) -> bool:
    """Whether ``amp="auto"`` means bfloat16 autocast on ``device`` ('cpu', 'cuda', 'cuda:N')."""
    return str(device).startswith("cuda") or _cpu_has_bf16()


def legacy_config(tc: dict, model_config: dict) -> dict:
    """A checkpoint's recorded training settings with the defaults it was made under resolved:
    ``odd=None`` is the network's recorded oddness, ``amp="auto"`` is float32 on CPU (bf16 on CUDA).
    Settings already resolved are returned unchanged."""
    tc = dict(tc)
    if tc.get("odd") is None:
        tc["odd"] = bool(model_config.get("odd"))
    if tc.get("amp", "auto") == "auto":
        tc["amp"] = "bf16" if str(tc.get("device", "cpu")).startswith("cuda") else "none"
    return tc


def resolve_defaults(cfg, data, init: dict | None = None, resumed: dict | None = None) -> None:
    """Fill ``cfg.odd`` and ``cfg.amp`` in place when left at their defaults (None, "auto"): from the
    checkpoint being resumed (``resumed``: its ``train_config`` and ``model_config``), else from the
    init model of a fine-tune (oddness), else by the rules above.  Explicit values are kept (a resume
    then checks them against the checkpoint)."""
    old = legacy_config(resumed["train_config"], resumed["model_config"]) if resumed else None
    if cfg.odd is None:
        cfg.odd = old["odd"] if old else bool(init["model_config"].get("odd")) if init else False
    if cfg.amp == "auto":
        cfg.amp = old["amp"] if old else ("bf16" if native_bf16(cfg.device) else "none")
