"""Training the drift of an operator interpolant (THEORY.md 4.2) on a phi4si ensemble.

Loss (simulation-free regression), with x1 the normalised data, x0 ~ N(0, Id), a ~ nu:

    L = E_{a ~ nu} E_{x0, x1} [ sum_x w_x |net(I, a)_x - target_x|^2 / sum_x w_x ],
    I = alpha(a) x0 + beta(a) x1,  target = x0 - x1 (b) | x1 (eta1) | x0 (eta0),  w_x = [a_x > 0]

Sites with a_x = 0 are known data: the velocity there is never used (da = 0 on them along every
path), so they are left out of the loss, which removes the irreducible noise of x0 at those sites.

The trainer: AdamW, linear warm-up then cosine decay, EMA weights (used for inference), gradient
clipping, bf16 autocast where the hardware has it (:mod:`phi4si.model.defaults`), lattice-symmetry augmentation of the data (translations,
reflections, rotations of square lattices, and the field flip when the prior is Z2 symmetric),
validation loss per task family (each component of the measure, on a fixed held-out set),
a tqdm progress bar, a JSON-lines log, checkpoints written atomically, bit-exact resume on CPU
with ``--steps`` (time-limited runs resume exactly too, but where they stop depends on the clock),
a clear error on a NaN/inf loss, and DDP under ``torchrun`` (gloo on CPU, nccl on CUDA).

``phi4si train --data ens.h5 --out model.pt --steps 2000 --model small`` runs
``train("ens.h5", "model.pt", TrainConfig(steps=2000, model="small"))`` (a runnable example is in
:func:`train`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .._version import __version__
from ..errors import ParameterError, ResumeError, TrainingDivergedError
from ..interrupts import graceful_stop, said
from ..io import atomic_write, check_resume, lock_output, prepare_output
from ..seeds import torch_generator
from .device import check_compile_backend, close_distributed, init_distributed, set_threads
from .checkpoint import CHECKPOINT_FORMAT
from .defaults import legacy_config, resolve_defaults
from .finetune import read_init

__all__ = ["TrainConfig", "train"]


@dataclass
class TrainConfig:
    """Every setting of a training run (recorded in the checkpoint).

    ``steps`` or ``minutes`` bound the run (both: whichever comes first; the schedules follow
    the steps when given, else the elapsed fraction of ``minutes``).  ``model`` is a U-Net preset
    name and ``model_overrides`` replaces fields of it; ``odd`` (default: a one-pass network) and ``amp``
    (default: bfloat16 where native) are resolved when the run starts (:mod:`phi4si.model.defaults`).  ``measure`` is a preset
    name of :func:`~phi4si.interpolant.measures.preset_measure` or a measure dict.  ``init``
    fine-tunes a trained model (what it keeps and checks: :mod:`phi4si.model.finetune`).
    """

    steps: int | None = 2000
    minutes: float | None = None
    batch_size: int = 128
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup: int = 100
    weight_decay: float = 1e-4
    ema: float = 0.999
    grad_clip: float = 1.0
    param: str = "b"
    family: str = "hadamard"
    measure: str | dict = "multitask"
    model: str = "small"
    model_overrides: dict = field(default_factory=dict)
    odd: bool | None = None
    augment: bool = True
    seed: int = 0
    val_fraction: float = 0.1
    val_every: int = 250
    val_size: int = 512
    checkpoint_every: int = 500
    device: str = "cpu"
    amp: str = "auto"            # "auto" (bf16 where native: phi4si.model.defaults), "bf16", "none"
    threads: int | None = None
    compile: str | None = None   # torch.compile backend of the training forward ("inductor"; None: eager)
    init: str | None = None      # fine-tune: start from this model's EMA weights (a checkpoint or a shipped name)

    def validate(self, shape=None, channels: int = 1):
        """Check every setting; with the data's lattice ``shape`` (and field ``channels``) also refuse a
        batch and model whose training step cannot fit in memory.  Without ``shape`` that check uses the
        smallest lattice the model admits (one side of ``size_multiple`` sites): a lower bound, which
        still refuses hopeless batch sizes."""
        from ..interpolant.drifts import PARAMETRISATIONS

        if self.steps is None and self.minutes is None:
            raise ParameterError("give steps or minutes (or both)")
        if self.steps is not None and int(self.steps) < 1:
            raise ParameterError(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ParameterError(f"minutes must be > 0, got {self.minutes}")
        for k in ("batch_size", "val_every", "val_size", "checkpoint_every"):
            if int(getattr(self, k)) < 1:
                raise ParameterError(f"{k} must be >= 1, got {getattr(self, k)}")
        for k in ("lr", "weight_decay", "grad_clip"):
            v = getattr(self, k)
            if not (math.isfinite(v) and v >= 0) or (k == "lr" and v == 0):
                raise ParameterError(f"{k} must be a finite number{' > 0' if k == 'lr' else ' >= 0'}, got {v}")
        if not 0 <= self.ema < 1:
            raise ParameterError(f"ema must be in [0, 1), got {self.ema}")
        if self.param not in PARAMETRISATIONS:
            raise ParameterError(f"param must be one of {PARAMETRISATIONS}, got {self.param!r}")
        check_compile_backend(self.compile)
        if self.amp not in ("auto", "bf16", "none"):
            raise ParameterError(f"amp must be 'auto', 'bf16' or 'none', got {self.amp!r}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ParameterError(f"device must be 'cpu' or 'cuda[:i]', got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ParameterError("device 'cuda' requested but torch sees no CUDA device")
        if int(self.warmup) < 0 or int(self.seed) < 0:
            raise ParameterError(f"warmup and seed must be >= 0, got {self.warmup}, {self.seed}")
        if not 0 <= self.val_fraction < 1:
            raise ParameterError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        from ..nn.budget import check_training_memory
        from ..nn.unet import preset
        try:        # preset refuses a model whose weights alone cannot fit
            mcfg = preset(self.model, **{**self.model_overrides, "in_channels": int(channels),
                                         **({"dim": len(shape)} if shape is not None else {})})
        except TypeError:                            # an unknown override: refused later, by the U-Net build
            return
        check_training_memory(mcfg, self.batch_size, self.device, shape, what=f"model {self.model!r}")

# ------------------------------------------------------------------------------------------------
def _lr_factor(progress: float, step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _loss(net, family, param, x0, x1, a, amp_ctx):
    I = family.interpolate(x0, x1, a)
    target = {"b": x0 - x1, "eta1": x1, "eta0": x0}[param]
    with amp_ctx:
        out = net(I, family.features(a))
    w = family.loss_weight(a, x1)      # per coordinate of the family's basis (before 2026-12-07: per site)
    per = (family.residual_power(out.float() - target) * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1.0)
    return per.mean()


def _build(cfg: TrainConfig, data, device, init: dict | None = None):
    """(shape, family, measure, odd, U-Net config) of a run, checked against the data (and, for a
    fine-tune, taken from the ``init`` checkpoint)."""
    from ..interpolant.measures import measure_from_dict, preset_measure
    from ..interpolant.operators import family_from_dict
    from ..nn.unet import UNetConfig, preset

    shape = data.shape
    measure = preset_measure(cfg.measure) if isinstance(cfg.measure, str) else measure_from_dict(cfg.measure)
    fam = family_from_dict({"name": cfg.family, "ndim": len(shape)}).check_training(cfg.param, measure)
    odd = bool(cfg.odd)          # resolved by phi4si.model.defaults (init's oddness for a fine-tune)
    if odd and not data.symmetric:
        raise ParameterError("odd=True needs a Z2-symmetric prior (h = 0 data)")
    mcfg = UNetConfig.from_dict(init["model_config"]) if init else \
        preset(cfg.model, dim=len(shape), **{**data.model_defaults, **cfg.model_overrides, "odd": odd,
                                             "in_channels": data.channels, **fam.unet_overrides()})
    if len(shape) not in (1, 2):
        raise ParameterError(f"the lattice U-Net supports d = 1 or 2; the data are {len(shape)}-d {shape}")
    if any(L % mcfg.size_multiple for L in shape):
        raise ParameterError(f"lattice {shape}: every side must be a multiple of {mcfg.size_multiple} for model "
                             f"{cfg.model!r} (choose a shallower preset or override channel_mult)")
    return shape, fam, measure, odd, mcfg


class _Trainer:
    """The state of one training run (network, EMA copy, optimiser, random streams, counters) and
    its steps; :func:`train` drives it.  Rank 0 of a DDP run writes the checkpoint and the log."""

    def __init__(self, data, out: Path, cfg: TrainConfig, rank: int, world: int, device, command: str, init=None):
        from ..nn.unet import LatticeUNet

        self.data, self.out, self.cfg, self.rank, self.world, self.device = data, out, cfg, rank, world, device
        self.shape, self.fam, self.measure, self.odd, self.mcfg = _build(cfg, data, device, init)
        torch.manual_seed(cfg.seed)
        self.net = LatticeUNet(self.mcfg).to(device)
        if init is not None:                 # a fine-tune starts from the init model's EMA weights
            self.net.load_state_dict(init["ema_state"])
        self.init_record = init["init_record"] if init is not None else None
        self.ema = copy.deepcopy(self.net).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # each rank's four streams: children of SeedSequence(seed) (phi4si.seeds, stream "train")
        self.gens = {name: torch_generator(cfg.seed, "train", rank, i)
                     for i, name in enumerate(("data", "noise", "measure", "augment"))}
        self.step, self.wall0, self.history, self.wall = 0, 0.0, [], 0.0
        self.command = command
        self.lattice = {"shape": list(self.shape), "params": data.params, "d": len(self.shape)}
        self.data_meta = {"path": data.source, "n_chains": data.n_chains, "n_cfg": data.n_cfg,
                          "n_train": data.n_train, "n_val": data.n_val, "sampler": data.attrs.get("sampler", "")}
        use_amp = cfg.amp == "bf16" or (device.type == "cuda" and cfg.amp == "auto")   # bf16 on CPU when asked
        self.amp_ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext())
        self.local_batch = max(1, cfg.batch_size // world)
        self.model = self.net
        self.val = {}

    def resume(self, ck: dict):
        """Continue the checkpoint ``ck`` of ``out`` (:func:`_resumable`): same settings (except the run
        length, device and intervals), same data; weights, optimiser, random streams and counters restored."""
        out, data, cfg = self.out, self.data, self.cfg
        now = asdict(cfg)
        check_resume(out, legacy_config(ck["train_config"], ck["model_config"]), now, label="setting ",
                     keys=[k for k in now if k not in ("steps", "minutes", "device", "threads", "checkpoint_every",
                                                       "val_every", "compile")])
        if ck["lattice"]["params"] != data.params or list(ck["lattice"]["shape"]) != list(self.shape):
            raise ResumeError(f"cannot resume {out}: it was trained on different data ({ck['lattice']})")
        self.net.load_state_dict(ck["model_state"])
        self.ema.load_state_dict(ck["ema_state"])
        self.opt.load_state_dict(ck["optimizer"])
        for k, g in self.gens.items():
            g.set_state(ck["rng"][k])
        self.step, self.wall0, self.history = int(ck["step"]), float(ck["wall_time"]), list(ck.get("history", []))
        if (ck["normalisation"]["mean"], ck["normalisation"]["scale"]) != (data.mean, data.scale) or \
                ck["data"].get("n_cfg") != data.n_cfg or ck["data"].get("n_chains") != data.n_chains:
            raise ResumeError(f"cannot resume {out}: the data file differs from the one it was trained on "
                              f"({ck['data'].get('path')}: {ck['data'].get('n_chains')} chains x {ck['data'].get('n_cfg')} "
                              f"configurations, scale {ck['normalisation']['scale']:.6g})")

    def wrap_model(self):
        """The module the training step calls: the network, in DDP over ranks, then compiled if asked."""
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.compile is not None:
            self.model = torch.compile(self.model, backend=self.cfg.compile)

    def make_validation_sets(self):
        """Fixed validation sets, one per task family (component of the measure)."""
        from ..interpolant.measures import Mixture

        m, cfg = self.measure, self.cfg
        comps = m.components if isinstance(m, Mixture) else {m.name: m}
        if self.data.n_val:
            vg = torch.Generator().manual_seed(12345)
            for name, comp in comps.items():
                x1 = self.data.validation(cfg.val_size, vg)
                self.val[name] = (torch.randn(x1.shape, generator=vg), x1,
                                  comp.sample(cfg.val_size, self.shape, vg, progress=1.0))

    def validate(self) -> dict:
        """The EMA network's loss on each validation set."""
        self.ema.eval()
        res, dev = {}, self.device
        with torch.no_grad():
            for name, (x0, x1, a) in self.val.items():
                tot = 0.0
                for i in range(0, x1.shape[0], 256):
                    sl = slice(i, i + 256)
                    tot += float(_loss(self.ema, self.fam, self.cfg.param, x0[sl].to(dev), x1[sl].to(dev),
                                       a[sl].to(dev), self.amp_ctx)) * x1[sl].shape[0]
                res[name] = tot / x1.shape[0]
        return res

    def checkpoint(self, final: bool = False):
        """Write the checkpoint atomically (rank 0 only)."""
        if self.rank != 0:
            return
        ck = {"format": CHECKPOINT_FORMAT, "version": __version__, "model_config": self.mcfg.to_dict(),
              "model_state": self.net.state_dict(), "ema_state": self.ema.state_dict(),
              "optimizer": self.opt.state_dict(), "family": self.fam.to_dict(), "param": self.cfg.param,
              "measure": self.measure.to_dict(), "normalisation": {"mean": self.data.mean, "scale": self.data.scale},
              "lattice": self.lattice, "data": self.data_meta, "train_config": asdict(self.cfg), "step": self.step,
              "wall_time": self.wall, "rng": {k: g.get_state() for k, g in self.gens.items()}, "history": self.history,
              "command": self.command, "world_size": self.world, "final": final, "init": self.init_record}
        import io

        buf = io.BytesIO()        # serialised in memory first: a failed write is a plain OSError (torch's
        torch.save(ck, buf)       # zip writer reports it as "unexpected pos") and leaves no partial file
        data = buf.getvalue()
        atomic_write(self.out, lambda tmp: Path(tmp).write_bytes(data))

    def finished(self) -> bool:
        cfg = self.cfg
        return (cfg.steps is not None and self.step >= cfg.steps) or \
            (cfg.minutes is not None and self.wall >= 60.0 * cfg.minutes)

    def agree(self, stop: bool) -> bool:
        """Every rank stops at the same step (clocks differ between ranks)."""
        if self.world > 1:
            import torch.distributed as dist

            flag = torch.tensor([1.0 if stop else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item() > 0)
        return stop

    def progress(self) -> float:
        """Fraction of the run done (steps, or the clock for time-limited runs; the larger of both)."""
        cfg = self.cfg
        prog = self.step / cfg.steps if cfg.steps is not None else self.wall / (60.0 * cfg.minutes)
        if cfg.steps is not None and cfg.minutes is not None:
            prog = max(prog, self.wall / (60.0 * cfg.minutes))
        return prog

    def train_step(self, prog: float) -> tuple[float, float, float]:
        """One optimisation step on a fresh batch; returns (lr, loss, gradient norm)."""
        from ..nn.augment import random_symmetry

        cfg, data, gens, dev = self.cfg, self.data, self.gens, self.device
        lr = cfg.lr * _lr_factor(prog, self.step, cfg)
        for gparam in self.opt.param_groups:
            gparam["lr"] = lr
        x1 = data.batch(self.local_batch, gens["data"])
        if cfg.augment and data.lattice_symmetries:
            x1 = random_symmetry([x1], gens["augment"], fields=[0], flip_sign=data.symmetric)[0]
        elif cfg.augment:
            x1 = data.augment(x1, gens["augment"])
        a = self.measure.sample(self.local_batch, self.shape, gens["measure"], progress=prog)
        x0 = torch.randn(x1.shape, generator=gens["noise"])
        self.net.train()
        loss = _loss(self.model, self.fam, cfg.param, x0.to(dev), x1.to(dev), a.to(dev), self.amp_ctx)
        if not torch.isfinite(loss):
            # this run has a checkpoint if it resumed from one (wall0 > 0) or wrote a periodic one
            last = self.step - self.step % cfg.checkpoint_every
            kept = (f"the last good checkpoint is {self.out}" + (f" (step {last})" if last > 0 and self.wall0 == 0 else "")
                    if last > 0 or self.wall0 > 0 else
                    f"no checkpoint was written (the first is due at step {cfg.checkpoint_every})"
                    + (f"; the existing {self.out} is left as it was" if self.out.exists() else ""))
            raise TrainingDivergedError(f"loss is {float(loss.detach())} at step {self.step}: lower --lr (now {cfg.lr}) "
                                        f"or check the data; {kept}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)) if cfg.grad_clip else 0.0
        self.opt.step()
        with torch.no_grad():
            decay = min(cfg.ema, (1 + self.step) / (10 + self.step))
            for pe, p in zip(self.ema.parameters(), self.net.parameters()):
                pe.lerp_(p, 1 - decay)
            for be, b in zip(self.ema.buffers(), self.net.buffers()):
                be.copy_(b)
        self.step += 1
        return lr, float(loss.detach()), gnorm


def _resumable(out: Path) -> dict:
    """The training checkpoint ``out`` that a resume continues (refused: not phi4si's, weights-only)."""
    from .checkpoint import read_checkpoint   # one-line CheckpointError for unreadable files
    ck = read_checkpoint(out, check_format=False)
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise ResumeError(f"cannot resume {out}: not a phi4si model checkpoint")
    if ck.get("weights_only"):
        raise ResumeError(f"cannot resume {out}: a weights-only checkpoint (phi4si.model.export.export_weights) "
                          "has no optimiser state or random streams; resume the training checkpoint it came from")
    return ck


def train(data, out, config: TrainConfig | None = None, *, resume: bool = False, overwrite: bool = False,
          progress: bool | None = None, log_path=None, command: str = "", max_steps_this_call: int | None = None,
          reference=None) -> dict:
    """Train a model on ``data`` (an ensemble file, or any :class:`~phi4si.model.data.TrainingData` such as
    :class:`~phi4si.model.data.ArrayData`); write the checkpoint ``out``; return a summary.

    ``resume=True`` continues ``out`` (same data, same config) bit-exactly on CPU.
    ``max_steps_this_call`` stops early (tests of resume).  ``reference``: a
    :class:`~phi4si.model.watch.ReferenceCheck` whose comparison of the EMA model with an ensemble of
    the target is logged (``"reference"``) at each validation (rank 0).

    >>> import tempfile, os
    >>> from phi4si import Phi4Params, sample_mcmc
    >>> d = tempfile.mkdtemp()
    >>> ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(d, "e.h5"), chains=2, n_traj=40, n_therm=10,
    ...                   progress=False)
    >>> res = train(ens, os.path.join(d, "m.pt"), TrainConfig(steps=2, model="tiny", batch_size=4, val_every=2),
    ...             progress=False)
    >>> res["step"], os.path.exists(os.path.join(d, "m.pt"))
    (2, True)
    """
    from .data import EnsembleData, TrainingData

    cfg = copy.deepcopy(config) if config is not None else TrainConfig()
    cfg.validate()
    out = Path(out)
    rank, world, local_rank, owned_group = init_distributed(cfg.device)
    if cfg.device.startswith("cuda") and world > 1:
        cfg.device = f"cuda:{local_rank}"
    device = torch.device(cfg.device)
    if device.type == "cuda" and world > 1:
        torch.cuda.set_device(device)     # NCCL collectives (all_reduce, barrier) use the current device
    if cfg.threads:
        set_threads(cfg.threads)
    prepare_output(out, overwrite=overwrite, resume=resume, resumable=True)
    if log_path is not None:
        prepare_output(log_path, overwrite=True, what="--log")     # a file in an existing, writable folder

    data = data if isinstance(data, TrainingData) else EnsembleData(data, val_fraction=cfg.val_fraction)
    cfg.validate(shape=data.shape, channels=data.channels)     # the memory of a step on the data's lattice
    init = read_init(cfg, data)                                  # a fine-tune: the network it starts from
    with lock_output(out) if rank == 0 else contextlib.nullcontext():   # rank 0 is the one writer
        ck = _resumable(out) if resume else None
        resolve_defaults(cfg, data, init, ck)                    # odd, amp: phi4si.model.defaults
        tr = _Trainer(data, out, cfg, rank, world, device, command, init)
        if resume:
            tr.resume(ck)
        tr.wrap_model()
        tr.make_validation_sets()
        if reference is not None:
            reference.check_data({**data.params, "shape": list(tr.shape)})
        tr.reference = reference if rank == 0 else None
        _loop(tr, progress, log_path, max_steps_this_call, owned_group)
    return {"step": tr.step, "wall_time": tr.wall, "history": tr.history, "out": str(out), "shape": tr.shape,
            "normalisation": data.normalisation, "odd": tr.odd}


def _drop_log_after(log_path: Path, step: int) -> None:
    """On resume from ``step``: drop the log lines of steps after it (a run killed after its last
    checkpoint logged steps that the resumed run does again), so every step is logged once."""
    if not log_path.is_file():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            s = json.loads(line).get("step")
        except (ValueError, AttributeError):
            s = None
        if s is None or s <= step:
            keep.append(line)
    text = "".join(ln + "\n" for ln in keep)
    atomic_write(log_path, lambda tmp: Path(tmp).write_text(text))


def _loop(tr: _Trainer, progress: bool, log_path, max_steps_this_call, owned_group):
    """Run ``tr`` until its limit: log, validate, checkpoint.  Ctrl-C or SIGTERM stops after the
    current step with a checkpoint of that step (the resumed run continues bit for bit); a second
    one stops at once and keeps the last checkpoint."""
    cfg, out = tr.cfg, tr.out
    log_path = Path(log_path or out.with_suffix(out.suffix + ".log"))
    if tr.rank == 0 and tr.step > 0:
        _drop_log_after(log_path, tr.step)
    log_f = open(log_path, "a") if tr.rank == 0 else None
    from ..progress import bar as progress_bar

    timed = cfg.steps is None and cfg.minutes is not None       # --minutes only: a bar over the time budget
    bar = progress_bar(int(60 * cfg.minutes) if timed else cfg.steps, "train", unit="s" if timed else "step",
                       initial=int(tr.wall0) if timed else tr.step, enabled=progress) if tr.rank == 0 else None
    t0 = time.perf_counter()
    tr.wall = tr.wall0
    n_this, loss_ema, stop = 0, None, None

    def limit():
        return tr.finished() or (max_steps_this_call is not None and n_this >= max_steps_this_call)

    try:
        with graceful_stop() as stop:
            while not tr.agree(limit() or stop.requested()):
                lr, lv, gnorm = tr.train_step(tr.progress())
                n_this += 1
                tr.wall = tr.wall0 + time.perf_counter() - t0
                loss_ema = lv if loss_ema is None else 0.98 * loss_ema + 0.02 * lv
                rec = None
                if tr.step % cfg.val_every == 0 or limit():
                    rec = {"step": tr.step, "wall": round(tr.wall, 2), "lr": lr, "loss": loss_ema,
                           "grad_norm": gnorm, "val": tr.validate() if tr.val else {}}
                    if getattr(tr, "reference", None) is not None:
                        from .checkpoint import TrainedModel

                        rec["reference"] = tr.reference(TrainedModel(tr.ema, tr.fam, cfg.param, tr.data.mean,
                                                                     tr.data.scale, tuple(tr.shape), tr.lattice))
                    tr.history.append(rec)
                if log_f is not None and (rec is not None or tr.step % 50 == 0):
                    log_f.write(json.dumps(rec or {"step": tr.step, "wall": round(tr.wall, 2), "lr": lr, "loss": lv,
                                                   "grad_norm": gnorm}) + "\n")
                    log_f.flush()
                if bar is not None:
                    bar.update(min(int(tr.wall), bar.total) - bar.n if timed else 1)
                    bar.set_postfix(step=tr.step, loss=f"{loss_ema:.4f}", refresh=False)
                if tr.step % cfg.checkpoint_every == 0:
                    tr.checkpoint()
        tr.checkpoint(final=tr.finished())
        if tr.world > 1:         # release DDP's reducer (it holds gloo work objects) before the group goes
            import gc

            tr.model = None
            gc.collect()
            close_distributed(owned_group)
        if stop.requested() and not limit():
            if tr.rank == 0:
                print(f"\n{stop.name}: stopped after step {tr.step}; {out} holds that step's checkpoint; continue "
                      "with the same command and --resume", file=sys.stderr)
            raise said()
    except KeyboardInterrupt:
        if (stop is None or not stop.requested()) and tr.rank == 0:
            # a second signal, in the middle of a step: keep the last checkpoint (consistent)
            print(f"\ninterrupted: {out} holds the last checkpoint; continue with --resume", file=sys.stderr)
        raise said() from None
    finally:
        if bar is not None:
            bar.close()
        if log_f is not None:
            log_f.close()
