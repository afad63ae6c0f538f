"""Trained models that ship with phi4si, loadable by name (the repository's ``data/models/``).

``data/models/manifest.json`` lists every shipped model: its file, lattice and couplings, the
command that made it (``data/models/rebuild.sh`` makes them all again), the training data and
seed, the wall time, the quality measured against an independent HMC ensemble (the command and the
result file of that measurement too) and the file's SHA-256.  A shipped file is a *weights-only*
checkpoint (:func:`phi4si.model.export.export_weights`): the EMA network and everything a model
needs to run, without the optimiser state and random streams that only ``train --resume`` uses, so
that it stays small.  :mod:`phi4si.model.export` writes the files and their manifest entries.

* :func:`shipped`          the manifest: ``{name: entry}``;
* :func:`resolve`          a model argument (an existing file, or a shipped model's name) as a path;
  :func:`phi4si.load_model` and every ``--model`` flag go through it, so ``load_model("l16")`` and
  ``phi4si generate --model l16 ...`` work from any directory;
* :func:`sha256`           a file's SHA-256 (what the manifest records).

>>> sorted(shipped()) == sorted(json.loads((MODELS_DIR / "manifest.json").read_text())["models"])
True
>>> resolve("no-such-model")
Traceback (most recent call last):
...
phi4si.errors.CheckpointError: no-such-model: no such model file, and no shipped model of that name (shipped: ...)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import CheckpointError

__all__ = ["MODELS_DIR", "manifest_path", "shipped", "resolve", "sha256"]

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"


def manifest_path() -> Path:
    """data/models/manifest.json."""
    return MODELS_DIR / "manifest.json"


def shipped() -> dict:
    """``{name: entry}`` of the models in ``data/models/manifest.json`` (empty when this copy of phi4si
    has no ``data/models``, e.g. a wheel installed without the repository)."""
    p = manifest_path()
    if not p.is_file():
        return {}
    return dict(json.loads(p.read_text())["models"])


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve(model) -> Path:
    """The checkpoint file a model argument names: ``model`` itself when it exists (or looks like a
    path), else the shipped model of that name, whose SHA-256 is checked against the manifest."""
    p = Path(model)
    if p.exists() or p.suffix or len(p.parts) > 1:
        return p
    models = shipped()
    if str(model) not in models:
        names = ", ".join(sorted(models)) or f"none: {MODELS_DIR} is missing"
        raise CheckpointError(f"{model}: no such model file, and no shipped model of that name (shipped: {names})")
    entry = models[str(model)]
    f = MODELS_DIR / entry["file"]
    if not f.is_file():
        raise CheckpointError(f"shipped model {model!r}: its file {f} is missing (rebuild it with "
                              f"bash data/models/rebuild.sh {model})")
    if sha256(f) != entry["sha256"]:
        raise CheckpointError(f"shipped model {model!r}: {f} does not match the manifest's SHA-256 (changed or "
                              f"damaged; rebuild it with bash data/models/rebuild.sh {model})")
    return f
