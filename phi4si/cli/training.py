"""Training from the command line: ``phi4si train``, ``image train`` and ``maze train`` share the
flags of :func:`~phi4si.cli.options.add_train_flags`, the refusals of :func:`check_train_flags` and
:func:`run_training`, which turns the flags into a :class:`~phi4si.model.train.TrainConfig` (validated
by the trainer, not here) and trains.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .options import command_line

__all__ = ["check_train_flags", "run_training"]


def check_train_flags(args):
    """The refusals every ``train`` command makes before reading its data."""
    from ..errors import ParameterError
    from ..io import same_file

    if args.resume and args.overwrite:
        raise ParameterError("--resume and --overwrite exclude each other")
    if Path(args.out).is_dir():
        raise ParameterError(f"--out {args.out} is a directory")
    if same_file(args.out, args.data):
        raise ParameterError("--out is the --data file")


def _init_config(init) -> dict:
    """The training settings recorded in the checkpoint (or shipped model) that --init names."""
    from ..model.checkpoint import read_checkpoint
    from ..model.shipped import resolve

    return dict(read_checkpoint(resolve(init)).get("train_config") or {})


def run_training(data, args, argv):
    """Build the TrainConfig from the training flags (validated by the trainer), train on ``data``
    (a file or a TrainingData) and say what was written."""
    from ..model.train import TrainConfig, train

    out = Path(args.out)
    steps, minutes = args.steps, args.minutes
    if steps is None and minutes is None:
        steps = 2000
        if args.resume and out.exists():  # continue to the checkpoint's own limit
            old = _checkpoint_config(out)
            steps, minutes = old.get("steps"), old.get("minutes")
            if steps is None and minutes is None:
                steps = 2000
    init = getattr(args, "init", None)
    model, overrides = args.model, _net_overrides(args.net)
    if init is not None and model is None:          # a fine-tune keeps the init model's network
        tc = _init_config(init)
        model = tc.get("model")
        overrides = overrides if args.net else dict(tc.get("model_overrides") or {})
    cfg = TrainConfig(steps=steps, minutes=minutes, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                      ema=args.ema, param=args.param, measure=args.measure, model=model or "small", odd=args.odd,
                      augment=not args.no_augment, seed=args.seed, val_every=args.val_every,
                      checkpoint_every=args.checkpoint_every, device=args.device, threads=args.threads,
                      model_overrides=overrides, init=init, amp=args.amp,
                      compile=args.compile, family=getattr(args, "family", None) or "hadamard")
    reference = None
    if getattr(args, "reference", None) is not None:
        from ..model.watch import ReferenceCheck

        reference = ReferenceCheck(args.reference, n=args.reference_n)
    res = train(data, out, cfg, resume=args.resume, overwrite=args.overwrite, progress=args.progress,
                log_path=args.log, command=command_line(argv), reference=reference)
    last = res["history"][-1] if res["history"] else {}
    val = ", ".join(f"{k} {v:.4g}" for k, v in (last.get("val") or {}).items())
    ref = last.get("reference") or {}
    vs = ", ".join(f"{k} {100 * ref[k]['rel']:+.1f} %" for k in ("abs_m", "chi", "s") if (ref.get(k) or {}).get("rel")
                   is not None)
    print(f"wrote {out} (step {res['step']}, {res['wall_time']:.1f} s"
          + (f"; validation loss: {val}" if val else "") + (f"; against {args.reference}: {vs}" if vs else "") + ")",
          file=sys.stderr)


def _net_value(v):
    """One ``--net`` value: bool, int, float or string."""
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def _net_overrides(specs) -> dict:
    """``--net KEY=VALUE`` flags -> UNetConfig overrides (bool, int, float, comma tuple or string),
    checked against the preset so that a bad field or value fails before training starts."""
    import dataclasses

    from ..errors import ParameterError
    from ..nn.unet import UNetConfig

    names = {f.name for f in dataclasses.fields(UNetConfig)} - {"dim", "odd"}
    out = {}
    for spec in specs or []:
        key, eq, val = spec.partition("=")
        if not eq or not key or not val:
            raise ParameterError(f"--net {spec!r}: use KEY=VALUE")
        if key not in names:
            raise ParameterError(f"--net {key}: not a U-Net field (choose from {', '.join(sorted(names))}; "
                                 "dim comes from the data, odd from --odd)")
        out[key] = tuple(_net_value(v) for v in val.split(",")) if "," in val else _net_value(val)
        if key in ("channel_mult", "a_features") and not isinstance(out[key], tuple):
            out[key] = (out[key],)
    try:
        UNetConfig(**out)
    except (TypeError, ValueError) as e:
        raise ParameterError(f"--net: {e}") from None
    return out


def _checkpoint_config(path) -> dict:
    """The train_config of a checkpoint ({} if unreadable: train() then reports the problem)."""
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        return dict(ck.get("train_config") or {})
    except Exception:  # noqa: BLE001 - train(resume=True) gives the clear error
        return {}
