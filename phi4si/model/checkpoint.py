"""A trained interpolant model: network + everything needed to use it (the checkpoint's content).

:func:`load_model` reads a checkpoint written by :mod:`phi4si.model.train` and returns a
:class:`TrainedModel`: the EMA network, the operator family, the drift parametrisation, the
normalisation of the data (x = (phi - mean) / scale), the lattice shape and action parameters of
the training data, and the package version.  ``model.drift()`` is the :class:`~phi4si.interpolant.
drifts.Drift` that every path and integrator consumes; it works in normalised coordinates, and
``to_physical``/``to_normalised`` convert at the boundary.

The network is fully convolutional, so the model can be evaluated on other lattice shapes
("train small, generate large") as long as the dimension matches and every side is a multiple of
the network's pooling factor; :meth:`TrainedModel.check_shape` raises a clear error otherwise.

>>> import os, tempfile
>>> from phi4si import Phi4Params, TrainConfig, sample_mcmc, train
>>> d = tempfile.mkdtemp()
>>> ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(d, "e.h5"), chains=2, n_traj=40, n_therm=10,
...                   progress=False)
>>> _ = train(ens, os.path.join(d, "m.pt"), TrainConfig(steps=2, model="tiny", batch_size=4), progress=False)
>>> m = load_model(os.path.join(d, "m.pt"))
>>> m.shape, m.param, m.target_params(h=0.1).h
((4, 4), 'b', 0.1)
>>> m.check_shape((8, 8))            # train small, generate large
(8, 8)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError

__all__ = ["TrainedModel", "DriftModel", "load_model", "read_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "phi4si-interpolant-1"


@dataclass
class TrainedModel:
    net: torch.nn.Module
    family: object
    param: str
    mean: float
    scale: float
    shape: tuple
    lattice: dict
    meta: dict = field(default_factory=dict)

    @property
    def device(self):
        return next(self.net.parameters()).device

    def __repr__(self):
        """One line: network, size, lattice, couplings, training - not the torch module tree."""
        p = (self.lattice or {}).get("params") or {}
        couplings = ", ".join(f"{k}={p[k]:g}" for k in ("m2", "lam", "h", "k") if isinstance(p.get(k), (int, float)))
        if self.net is None:
            net = (self.meta or {}).get("drift", "drift")
        else:
            cfg = getattr(self.net, "config", None)
            n = sum(int(t.numel()) for t in self.net.parameters())
            net = f"{getattr(cfg, 'name', None) or type(self.net).__name__}, {n:,} parameters"
        step = (self.meta or {}).get("step")
        return (f"{type(self).__name__}({net}; lattice {'x'.join(map(str, self.shape))}"
                + (f", {couplings}" if couplings else "") + f"; drift {self.param}"
                + (f"; trained {step} steps" if step is not None else "") + ")")

    @property
    def channels(self) -> int:
        """Field channels C of the network (1 for lattice fields; 1 or 3 for images; 2 for (x, y))."""
        return int(getattr(getattr(self.net, "config", None), "in_channels", 1))

    def drift(self):
        from ..interpolant.drifts import NeuralDrift

        return NeuralDrift(self.net, self.param, self.family)

    def check_shape(self, shape) -> tuple:
        """Validate a lattice shape for this model (same dimension, sides compatible with the net)."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != len(self.shape):
            raise CheckpointError(f"the model was trained on a {len(self.shape)}-d lattice {self.shape}; "
                                  f"cannot use it on the {len(shape)}-d shape {shape}")
        mult = int(getattr(getattr(self.net, "config", None), "size_multiple", 1) or 1)
        bad = [L for L in shape if L < 2 or L % mult]
        if bad:
            raise CheckpointError(f"lattice sides must be multiples of {mult} for this network "
                                  f"(its pooling depth); got shape {shape}")
        return shape

    def astype(self, dtype) -> "TrainedModel":
        """A copy of the model whose network computes in ``dtype`` (e.g. torch.float64 for
        log-densities); the original is left unchanged."""
        import copy

        if next(self.net.parameters()).dtype == dtype:
            return self
        return TrainedModel(net=copy.deepcopy(self.net).to(dtype=dtype), family=self.family, param=self.param,
                            mean=self.mean, scale=self.scale, shape=self.shape, lattice=self.lattice, meta=self.meta)

    @property
    def dtype(self):
        return next(self.net.parameters()).dtype

    def target_params(self, h: float = 0.0, k: float = 0.0, shape=None):
        """:class:`~phi4si.lattice.Phi4Params` of the training data's action (m2, lam) with the
        reward terms ``h``, ``k`` on ``shape`` (default: the training lattice): the target
        exp(-S_{h,k}) that exact sampling with this model aims at."""
        from ..lattice.params import Phi4Params

        p = self.lattice.get("params") or {}
        if "m2" not in p or "lam" not in p:
            raise CheckpointError("the checkpoint does not record the action parameters (m2, lam) of its data")
        h, k = float(h) + float(p.get("h", 0.0)), float(k) + float(p.get("k", 0.0))   # rewards add to the data's
        return Phi4Params(tuple(self.shape if shape is None else shape), m2=float(p["m2"]), lam=float(p["lam"]),
                          h=h, k=k)

    def to_physical(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.mean

    def to_normalised(self, phi: torch.Tensor) -> torch.Tensor:
        return (phi - self.mean) / self.scale


def load_model(path, device: str | torch.device = "cpu", ema: bool = True, dtype=torch.float32) -> TrainedModel:
    """Load a checkpoint written by :func:`phi4si.model.train.train`, or a shipped model by name
    (:mod:`phi4si.model.shipped`: ``load_model("l16")``), with the EMA weights by default, in
    ``dtype`` on ``device``; raises :class:`~phi4si.errors.CheckpointError` for a missing, foreign or
    damaged file.  The model's drift works in normalised coordinates x = (phi - mean) / scale
    (``to_physical``/``to_normalised`` convert); an example is in the module docstring.

    >>> load_model("no-such-model.pt")
    Traceback (most recent call last):
    ...
    phi4si.errors.CheckpointError: no-such-model.pt: no such model file
    """
    from ..interpolant.operators import family_from_dict
    from ..nn.unet import LatticeUNet, UNetConfig
    from .shipped import resolve

    path = resolve(path)
    ck = read_checkpoint(path)
    if not ema and ck.get("weights_only"):
        raise CheckpointError(f"{path}: a weights-only checkpoint holds the EMA weights only (load it with ema=True)")
    try:
        net = LatticeUNet(UNetConfig.from_dict(ck["model_config"]))
        net.load_state_dict(ck["ema_state"] if ema and ck.get("ema_state") is not None else ck["model_state"])
        family, param, norm = family_from_dict(ck["family"]), ck["param"], ck["normalisation"]
        shape, lattice = tuple(ck["lattice"]["shape"]), ck["lattice"]
    except Exception as e:  # noqa: BLE001 - any content that does not fit its own config is a damaged file
        raise CheckpointError(f"{path}: damaged or incompatible phi4si checkpoint ({type(e).__name__}: {e})") from None
    net = net.to(device=device, dtype=dtype).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return TrainedModel(net=net, family=family, param=param, mean=float(norm["mean"]),
                        scale=float(norm["scale"]), shape=shape, lattice=lattice,
                        meta={k: ck.get(k) for k in ("version", "train_config", "step", "wall_time", "history",
                                                      "data")})


def read_checkpoint(path, check_format: bool = True) -> dict:
    """The content (a dict) of a phi4si checkpoint file, read on the CPU; raises
    :class:`~phi4si.errors.CheckpointError` with one line saying what is wrong for a missing file, a
    directory, an empty, truncated or foreign file (``check_format=False``: any torch-saved dict is
    returned, and the caller judges its ``format``).  :func:`load_model` and ``train --resume`` read
    through it.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> _ = open(p, "wb").write(b"")
    >>> read_checkpoint(p)
    Traceback (most recent call last):
    ...
    phi4si.errors.CheckpointError: ...m.pt: empty file (0 bytes), not a readable torch checkpoint
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such model file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a readable torch checkpoint")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a readable torch checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        msg = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {msg}); "
                              "truncated or not a checkpoint") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path}: not a phi4si model checkpoint (a {type(ck).__name__}, not a dict)")
    if check_format and ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a phi4si model checkpoint (format {ck.get('format')!r})")
    return ck


class DriftModel(TrainedModel):
    """Any :class:`~phi4si.interpolant.drifts.Drift` (e.g. the exact Gaussian oracle) dressed as a
    trained model, so that generation, log-densities and the exact samplers can be run and tested
    with exact drifts.  ``params`` (a :class:`~phi4si.lattice.Phi4Params`) names the target action;
    ``mean``/``scale`` map the drift's coordinates to physical fields, phi = scale x + mean.

    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> p = Phi4Params((4, 4), m2=1.0, lam=0.0)
    >>> m = DriftModel(free_field_oracle((4, 4), 1.0), p)
    >>> m.shape, m.target_params().m2
    ((4, 4), 1.0)
    """

    def __init__(self, drift, params, mean: float = 0.0, scale: float = 1.0):
        super().__init__(net=None, family=drift.family, param="b", mean=float(mean), scale=float(scale),
                         shape=tuple(params.shape), lattice={"shape": list(params.shape), "params": params.to_dict(),
                                                              "d": params.d}, meta={"drift": type(drift).__name__})
        self._drift = drift

    @property
    def device(self):
        return torch.device("cpu")

    @property
    def dtype(self):
        return torch.float64

    def drift(self):
        return self._drift

    def astype(self, dtype):
        return self

    def check_shape(self, shape) -> tuple:
        shape = tuple(int(s) for s in shape)
        if shape != self.shape:
            raise CheckpointError(f"this drift is defined on the lattice {self.shape}, not {shape}")
        return shape
