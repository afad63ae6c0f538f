"""Training data from phi4si HDF5 ensembles: lazy, chunked reads and normalisation.

:class:`EnsembleData` reads the configurations ``phi (chain, cfg, *shape)`` of an ensemble file.
Small files (below ``max_memory_gb``) are read once into memory; larger ones are sampled chunk by
chunk (the file's own HDF5 chunks, ``(1, c, *shape)``): each refill reads ``chunks_per_refill``
random chunks and batches are drawn from that pool, so memory stays bounded whatever the file size.

Train/validation split: the last ``val_fraction`` of the configurations of every chain (a
contiguous tail, which limits the correlation between the two sets).

Normalisation: x = (phi - mean) / scale with scale = the standard deviation of phi over the
training set and mean = 0 when the prior is Z2-symmetric (h = 0; a nonzero mean would break the
symmetry the model may enforce), else the sample mean.  Both are stored in the checkpoint.

Other data (images, maze trajectories, any array) train through :class:`ArrayData`; the trainer
accepts any :class:`TrainingData`.

>>> import os, tempfile
>>> from phi4si import Phi4Params, sample_mcmc
>>> ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(tempfile.mkdtemp(), "e.h5"), chains=2,
...                   n_traj=40, n_therm=10, progress=False)
>>> data = EnsembleData(ens)
>>> data.n_train, data.n_val, data.mean        # per chain: the last 10 % are held out; h = 0: mean 0
(36, 4, 0.0)
>>> tuple(data.batch(8, torch.Generator().manual_seed(0)).shape)
(8, 1, 4, 4)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .. import store
from ..errors import EnsembleFileError, ParameterError

__all__ = ["TrainingData", "EnsembleData", "ArrayData"]


class TrainingData:
    """What :func:`phi4si.model.train.train` consumes: normalised batches and the facts a checkpoint records.

    Attributes: ``shape`` (spatial), ``channels``, ``params`` (a JSON-able dict describing the data,
    stored as the checkpoint's ``lattice.params``), ``mean``/``scale`` (x = (data - mean) / scale),
    ``symmetric`` (Z2-symmetric law: the trainer may enforce an odd model and flip signs),
    ``n_chains``, ``n_cfg``, ``n_train``, ``n_val``, ``attrs``, ``source`` (recorded path or name),
    ``model_defaults`` (U-Net fields the data imply, e.g. padding) and ``lattice_symmetries`` (the
    trainer augments with translations/reflections/rotations of the lattice).  Methods
    ``batch(n, gen)`` and ``validation(n, gen)`` return tensors (n, channels, *shape) and
    ``augment(x, gen)`` (identity unless overridden) transforms a training batch.
    """

    channels = 1
    model_defaults: dict = {}
    lattice_symmetries = False
    attrs: dict = {}

    @property
    def normalisation(self) -> dict:
        return {"mean": self.mean, "scale": self.scale}

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return x


class EnsembleData(TrainingData):
    """Configurations of an ensemble file as a source of normalised training batches."""

    lattice_symmetries = True

    def __init__(self, path, val_fraction: float = 0.1, max_memory_gb: float = 4.0, chunks_per_refill: int = 64,
                 symmetric: bool | None = None):
        import h5py

        self.path = Path(path)
        if not self.path.exists():
            raise EnsembleFileError(f"{self.path}: no such file")
        if not 0.0 <= val_fraction < 1.0:
            raise ParameterError(f"val_fraction must be in [0, 1), got {val_fraction}")
        store.verify_file(self.path)     # before any h5py open: truncated files would hang it
        try:
            f = h5py.File(self.path, "r", swmr=True)
        except OSError as e:
            raise EnsembleFileError(f"{self.path}: not a readable HDF5 ensemble ({e})") from None
        with f:
            if not isinstance(f.get("phi"), h5py.Dataset) or "params" not in f.attrs:
                raise EnsembleFileError(f"{self.path}: not a phi4si ensemble (no configurations 'phi')")
            # the shared checks of every reader (phi4si.store): shapes, readable committed data, NaN/inf
            store.verify_contents(f, self.path, strict=f.attrs.get("phi4si_format") == store.FORMAT)
            self.params = json.loads(f.attrs["params"])
            self.attrs = {k: (v if not isinstance(v, (bytes, np.bytes_)) else v.decode()) for k, v in f.attrs.items()}
            n_cfg = store.committed_configurations(f)
            ds = f["phi"]
            self.n_chains, self.shape = int(ds.shape[0]), tuple(int(s) for s in ds.shape[2:])
            self.chunk = int(ds.chunks[1]) if ds.chunks else 64
        if n_cfg < 2:
            raise EnsembleFileError(f"{self.path}: holds {n_cfg} configuration(s) per chain; training needs more "
                                    "(run sample-mcmc with more --n-traj or a smaller --every)")
        self.n_cfg = n_cfg
        self.n_val = int(round(val_fraction * n_cfg))
        if val_fraction > 0 and self.n_val == 0:
            self.n_val = 1
        self.n_train = n_cfg - self.n_val
        V = int(np.prod(self.shape))
        self.in_memory = self.n_chains * n_cfg * V * 4 <= max_memory_gb * 2**30
        self.chunks_per_refill = int(chunks_per_refill)
        self._pool = None
        if self.in_memory:
            with h5py.File(self.path, "r", swmr=True) as f:
                arr = np.asarray(f["phi"][:, :n_cfg], dtype=np.float32)
            if not np.isfinite(arr).all():
                raise EnsembleFileError(f"{self.path}: configurations contain NaN or inf")
            self._train = torch.from_numpy(np.ascontiguousarray(arr[:, :self.n_train].reshape(-1, *self.shape)))
            self._val = torch.from_numpy(np.ascontiguousarray(arr[:, self.n_train:].reshape(-1, *self.shape)))
            sample = self._train
        else:
            sample = self._read_random_chunks(torch.Generator().manual_seed(0), 32)
        h = float(self.params.get("h", 0.0))
        self.symmetric = (h == 0.0) if symmetric is None else bool(symmetric)
        mean = 0.0 if self.symmetric else float(sample.double().mean())
        scale = float((sample.double() - mean).pow(2).mean().sqrt())
        if not np.isfinite(scale) or scale <= 0:
            raise EnsembleFileError(f"{self.path}: the configurations have zero or undefined spread")
        self.mean, self.scale = mean, scale
        self.source = str(self.path.resolve())

    def _read_random_chunks(self, gen, k):
        import h5py

        out = []
        with h5py.File(self.path, "r", swmr=True) as f:
            ds = f["phi"]
            n_chunks = max(1, self.n_train // self.chunk)
            for _ in range(k):
                c = int(torch.randint(0, self.n_chains, (1,), generator=gen))
                j = int(torch.randint(0, n_chunks, (1,), generator=gen)) * self.chunk
                out.append(np.asarray(ds[c, j:min(j + self.chunk, self.n_train)], dtype=np.float32))
        return torch.from_numpy(np.concatenate(out).reshape(-1, *self.shape))

    def _normalise(self, phi):
        return ((phi - self.mean) / self.scale).unsqueeze(1)

    def batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n training configurations, normalised, shape (n, 1, *shape), drawn with ``gen``."""
        if self.in_memory:
            idx = torch.randint(0, self._train.shape[0], (n,), generator=gen)
            return self._normalise(self._train[idx])
        if self._pool is None or self._pool_used >= self._pool.shape[0]:
            self._pool = self._read_random_chunks(gen, self.chunks_per_refill)
            self._pool_used = 0
        idx = torch.randint(0, self._pool.shape[0], (n,), generator=gen)
        self._pool_used += n
        return self._normalise(self._pool[idx])

    def validation(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n validation configurations (held-out tail of every chain), normalised."""
        if self.n_val == 0:
            raise ValueError("no validation data (val_fraction = 0)")
        if self.in_memory:
            idx = torch.randint(0, self._val.shape[0], (n,), generator=gen)
            return self._normalise(self._val[idx])
        import h5py

        with h5py.File(self.path, "r", swmr=True) as f:
            arr = np.asarray(f["phi"][:, self.n_train:self.n_cfg], dtype=np.float32).reshape(-1, *self.shape)
        idx = torch.randint(0, arr.shape[0], (n,), generator=gen)
        return self._normalise(torch.from_numpy(arr)[idx])


class ArrayData(TrainingData):
    """An in-memory array ``(N, C, *shape)`` (images, trajectories, ...) as a training source.

    The last ``val_fraction`` of the samples are the validation set; ``mean``/``scale`` default to
    the mean and standard deviation over all training values (one pair for all channels, recorded
    in the checkpoint); ``augment`` is an optional callable ``(x, gen) -> x`` applied to training
    batches; ``params`` describes the data for the checkpoint; ``model_defaults`` are U-Net fields
    the data imply (``in_channels`` is always set from the array).

    >>> import torch
    >>> d = ArrayData(np.arange(40.0).reshape(10, 1, 4), params={"kind": "demo"}, val_fraction=0.2)
    >>> d.n_train, d.n_val, tuple(d.batch(3, torch.Generator().manual_seed(0)).shape)
    (8, 2, (3, 1, 4))
    """

    def __init__(self, array, params: dict, val_fraction: float = 0.1, mean: float | None = None,
                 scale: float | None = None, augment=None, model_defaults: dict | None = None,
                 source: str = "<array>"):
        arr = np.asarray(array, dtype=np.float32)
        if arr.ndim < 3:
            raise ValueError(f"ArrayData needs an array (N, C, *shape), got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("the training array contains NaN or inf")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n = arr.shape[0]
        n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
        n_val = max(n_val, 1) if val_fraction > 0 else 0
        if n - n_val < 1:
            raise ValueError(f"{n} samples leave nothing to train on with val_fraction={val_fraction}")
        self.channels, self.shape = int(arr.shape[1]), tuple(int(s) for s in arr.shape[2:])
        self.params, self.source, self._augment = dict(params), str(source), augment
        self.n_chains, self.n_cfg, self.n_train, self.n_val = 1, n, n - n_val, n_val
        self.attrs = {"sampler": str(self.params.get("kind", "array"))}
        self.symmetric = False
        self.model_defaults = {**(model_defaults or {}), "in_channels": self.channels}
        train = arr[: self.n_train].astype(np.float64)
        self.mean = float(train.mean()) if mean is None else float(mean)
        self.scale = float(np.sqrt(((train - self.mean) ** 2).mean())) if scale is None else float(scale)
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError("the training array has zero or undefined spread")
        self._train = torch.from_numpy(np.ascontiguousarray(arr[: self.n_train]))
        self._val = torch.from_numpy(np.ascontiguousarray(arr[self.n_train:]))

    def _pick(self, src, n, gen):
        return (src[torch.randint(0, src.shape[0], (n,), generator=gen)] - self.mean) / self.scale

    def batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return self._pick(self._train, n, gen)

    def validation(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.n_val == 0:
            raise ValueError("no validation data (val_fraction = 0)")
        return self._pick(self._val, n, gen)

    def augment(self, x, gen):
        return x if self._augment is None else self._augment(x, gen)
