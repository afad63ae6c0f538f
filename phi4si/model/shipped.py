"""Trained models that ship with phi4si, loadable by name (the repository's ``data/models/``).

``data/models/manifest.json`` lists every shipped model: its file, lattice and couplings, the
command that made it (``data/models/rebuild.sh`` makes them all again), the training data and
seed, the wall time, the quality measured against an independent HMC ensemble (the command and the
result file of that measurement too) and the file's SHA-256.  A shipped file is a *weights-only*
checkpoint (:func:`export_weights`): the EMA network and everything a model needs to run, without
the optimiser state and random streams that only ``train --resume`` uses, so that it stays small.

* :func:`shipped`          the manifest: ``{name: entry}``;
* :func:`resolve`          a model argument (an existing file, or a shipped model's name) as a path;
  :func:`phi4si.load_model` and every ``--model`` flag go through it, so ``load_model("l16")`` and
  ``phi4si generate --model l16 ...`` work from any directory;
* :func:`export_weights`   a training checkpoint as a weights-only one (what a model needs to
  generate, give its log-density and be evaluated, bit for bit the same drift);
* :func:`manifest_entry`   the manifest entry of an exported file.

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

__all__ = ["MODELS_DIR", "shipped", "resolve", "export_weights", "manifest_entry", "quality_of", "sha256"]

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
# what a weights-only checkpoint keeps of a training checkpoint (the rest only serves train --resume)
KEPT = ("format", "version", "model_config", "ema_state", "family", "param", "measure", "normalisation",
        "lattice", "data", "train_config", "step", "wall_time", "history", "init")


def _manifest_path() -> Path:
    return MODELS_DIR / "manifest.json"


def shipped() -> dict:
    """``{name: entry}`` of the models in ``data/models/manifest.json`` (empty when this copy of phi4si
    has no ``data/models``, e.g. a wheel installed without the repository)."""
    p = _manifest_path()
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


def export_weights(checkpoint, out) -> Path:
    """Write the weights-only copy of a training ``checkpoint`` to ``out`` (the EMA weights and the
    model's description; :func:`~phi4si.model.checkpoint.load_model` reads it like the original and
    gives the same drift bit for bit; ``train --resume`` refuses it).  Returns ``out``.

    >>> import os, tempfile
    >>> from phi4si import Phi4Params, TrainConfig, load_model, sample_mcmc, train
    >>> d = tempfile.mkdtemp()
    >>> ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(d, "e.h5"), chains=2, n_traj=40,
    ...                   n_therm=10, progress=False)
    >>> _ = train(ens, os.path.join(d, "m.pt"), TrainConfig(steps=2, model="tiny", batch_size=4), progress=False)
    >>> small = export_weights(os.path.join(d, "m.pt"), os.path.join(d, "w.pt"))
    >>> os.path.getsize(small) < os.path.getsize(os.path.join(d, "m.pt"))
    True
    >>> a, b = load_model(os.path.join(d, "m.pt")), load_model(small)
    >>> all(bool((p == q).all()) for p, q in zip(a.net.parameters(), b.net.parameters()))
    True
    """
    import torch

    from .checkpoint import read_checkpoint

    ck = read_checkpoint(checkpoint)
    if ck.get("ema_state") is None:
        raise CheckpointError(f"{checkpoint}: has no EMA weights to export")
    small = {k: ck[k] for k in KEPT if k in ck}
    small["weights_only"] = True
    small["exported_from"] = {"file": Path(checkpoint).name, "sha256": sha256(checkpoint)}
    small["ema_state"] = {k: v.detach().clone().contiguous() for k, v in ck["ema_state"].items()}
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(small, tmp)
    tmp.replace(out)
    return out


def manifest_entry(file, **fields) -> dict:
    """The manifest entry of the exported model ``file`` (in ``data/models``): lattice, couplings,
    network, training steps and wall time read from the file, its size and SHA-256, and ``fields``
    (command, data, seed, quality, ...) as given."""
    from .checkpoint import read_checkpoint

    f = Path(file)
    ck = read_checkpoint(f)
    lat = ck["lattice"]
    p = lat.get("params", {})
    return {"file": f.name, "shape": list(lat["shape"]), "m2": p.get("m2"), "lam": p.get("lam"),
            "network": ck["train_config"].get("model"), "odd": bool(ck["model_config"].get("odd", False)),
            "steps": ck.get("step"), "train_wall_time_s": ck.get("wall_time"), "bytes": f.stat().st_size,
            "sha256": sha256(f), **fields}


def quality_of(result) -> dict:
    """The quality summary of a model from a ``benchmarks/generation_speed.py`` result file (its first
    run): per observable the model's and HMC's value with errors, the relative deviation and the
    z-score; for the momentum spectrum G(p) the largest |z| and relative deviation over all momenta;
    the settings and the reference ensemble they were measured with."""
    doc = json.loads(Path(result).read_text())
    row = doc["rows"][0]
    keep = ("gen", "gen_err", "ref", "ref_err", "rel_dev", "z")
    return {"settings": {k: row[k] for k in ("solver", "steps", "z2_applied")}, "n": doc["n"],
            "reference": {"file": Path(doc["ref"]).name, "n": doc["ref_n"]},
            "observables": {k: {q: v[q] for q in keep} for k, v in row["observables"].items()},
            "G_p": {"max_abs_z": row["G"]["max_abs_z"], "max_rel_dev": row["G"]["max_rel_dev"]},
            "result": f"benchmarks/results/{Path(result).name}"}


def _main(argv=None):
    """``python -m phi4si.model.shipped export CHECKPOINT NAME`` and ``... entry NAME JSON``: what
    data/models/rebuild.sh runs (the manifest entry is merged into data/models/manifest.json)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m phi4si.model.shipped")
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("export", help="write data/models/NAME.pt from a training checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("name")
    m = sub.add_parser("entry", help="write NAME's manifest entry (fields given as a JSON object)")
    m.add_argument("name")
    m.add_argument("fields", help="JSON object: command, data, seed, ...")
    m.add_argument("--quality", metavar="RESULT", help="a benchmarks/generation_speed.py result file of the model "
                                                       "(its first run) for the entry's quality")
    args = ap.parse_args(argv)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    if args.what == "export":
        print(f"wrote {export_weights(args.checkpoint, MODELS_DIR / (args.name + '.pt'))}")
        return
    doc = json.loads(_manifest_path().read_text()) if _manifest_path().is_file() else {"models": {}}
    fields = json.loads(args.fields)
    if args.quality:
        fields["quality"] = quality_of(args.quality)
    doc["models"][args.name] = manifest_entry(MODELS_DIR / (args.name + ".pt"), **fields)
    doc["models"] = dict(sorted(doc["models"].items()))
    _manifest_path().write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote the entry of {args.name} in {_manifest_path()}")


if __name__ == "__main__":
    _main()
