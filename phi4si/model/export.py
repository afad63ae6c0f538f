"""Weights-only checkpoints and the manifest entries of shipped models (data/models/rebuild.sh runs
``python -m phi4si.model.export``); :mod:`phi4si.model.shipped` reads the manifest.

* :func:`export_weights`   a training checkpoint as a weights-only one (what a model needs to
  generate, give its log-density and be evaluated: bit for bit the same drift);
* :func:`manifest_entry`   the manifest entry of an exported file;
* :func:`quality_of`       the quality summary of a ``benchmarks/generation_speed.py`` result (raw
  generation) or of a ``benchmarks/superres.py`` one (super-resolution models).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckpointError
from . import shipped
from .shipped import sha256

__all__ = ["export_weights", "manifest_entry", "quality_of", "KEPT"]

# what a weights-only checkpoint keeps of a training checkpoint (the rest only serves train --resume)
KEPT = ("format", "version", "model_config", "ema_state", "family", "param", "measure", "normalisation",
        "lattice", "data", "train_config", "step", "wall_time", "history", "init")


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
    run; a ``benchmarks/superres.py`` result gives the summary per super-resolution task instead): per
    observable the model's and HMC's value with errors, the relative deviation and the z-score; for the momentum spectrum G(p) the largest |z| and relative deviation over all momenta;
    the settings and the reference ensemble they were measured with."""
    doc = json.loads(Path(result).read_text())
    if doc.get("benchmark") == "superres":
        return _superres_quality(doc, result)
    row = doc["rows"][0]
    keep = ("gen", "gen_err", "ref", "ref_err", "rel_dev", "z")
    return {"settings": {k: row[k] for k in ("solver", "steps", "z2_applied")}, "n": doc["n"],
            "reference": {"file": Path(doc["ref"]).name, "n": doc["ref_n"]},
            "observables": {k: {q: v[q] for q in keep} for k, v in row["observables"].items()},
            "G_p": {"max_abs_z": row["G"]["max_abs_z"], "max_rel_dev": row["G"]["max_rel_dev"]},
            "result": f"benchmarks/results/{Path(result).name}"}


def _superres_quality(doc, result) -> dict:
    """The quality summary of a super-resolution model from a ``benchmarks/superres.py`` result: per
    task (x2, x4 all at once, the x4 chain, coarse-to-fine from nothing, ...) the observables of the
    generated fine fields against the reference ensemble, and the largest relative deviation of G(p)."""
    keep = ("value", "error", "ref", "ref_error", "rel_dev", "z")
    tasks = {name: {"observables": {k: {q: v[q] for q in keep} for k, v in row["scalars"].items()},
                    "G_p": {"max_abs_z": row["G_p"]["max_z"], "max_rel_dev": row["G_p"]["max_rel_dev"]}}
             for name, row in doc["results"].items() if name != "inputs"}
    return {"settings": {"solver": doc["solver"], "steps": doc["steps"], "task": "superres"}, "n": doc["n"],
            "reference": {"file": doc["ensembles"]["ref"]["file"]}, "tasks": tasks,
            "result": f"benchmarks/results/{Path(result).name}"}


def _main(argv=None):
    """``python -m phi4si.model.export export CHECKPOINT NAME`` and ``... entry NAME JSON``: what
    data/models/rebuild.sh runs (the manifest entry is merged into data/models/manifest.json)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m phi4si.model.export")
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("export", help="write data/models/NAME.pt from a training checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("name")
    m = sub.add_parser("entry", help="write NAME's manifest entry (fields given as a JSON object)")
    m.add_argument("name")
    m.add_argument("fields", help="JSON object: command, data, seed, ...")
    m.add_argument("--quality", metavar="RESULT", help="a benchmarks/generation_speed.py result file of the model "
                                                       "(its first run), or a benchmarks/superres.py one, for the "
                                                       "entry's quality")
    args = ap.parse_args(argv)
    shipped.MODELS_DIR.mkdir(parents=True, exist_ok=True)
    if args.what == "export":
        print(f"wrote {export_weights(args.checkpoint, shipped.MODELS_DIR / (args.name + '.pt'))}")
        return
    doc = json.loads(shipped.manifest_path().read_text()) if shipped.manifest_path().is_file() else {"models": {}}
    fields = json.loads(args.fields)
    if args.quality:
        fields["quality"] = quality_of(args.quality)
    doc["models"][args.name] = manifest_entry(shipped.MODELS_DIR / (args.name + ".pt"), **fields)
    doc["models"] = dict(sorted(doc["models"].items()))
    shipped.manifest_path().write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote the entry of {args.name} in {shipped.manifest_path()}")


if __name__ == "__main__":
    _main()
