"""The output file of a task with a trained model (generate, inpaint, sequential and posterior
generation), written batch by batch and resumable.

:class:`SampleFile` is what :func:`~phi4si.model.solve.run_task` hands each finished batch to: the
configurations go straight into an ensemble file (the format of ``sample-mcmc``, one chain, one
"trajectory" per sample, with m, S and G(p)), together with the state of the task's noise stream
after that batch, so that

* memory holds one batch, whatever ``n`` (a billion samples stream to disk, if the disk can take
  them: that is checked before the first batch);
* the file appears under its name only with its first batch durable (until then it is a hidden
  temporary file, and an existing file being replaced survives a failed or killed run);
* a run stopped by Ctrl-C or SIGTERM (between two batches) or killed keeps every batch it wrote,
  and ``resume=True`` continues the noise stream from the file: the resumed file holds the same
  samples as an uninterrupted run (same seed, batch size and settings; checked);
* one process at a time writes the file (:func:`phi4si.io.lock_output`).

>>> import os, tempfile
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> from phi4si.model.generate import generate
>>> p = Phi4Params((4, 4), m2=1.0, lam=0.0)
>>> m = DriftModel(free_field_oracle((4, 4), 1.0), p)
>>> out = os.path.join(tempfile.mkdtemp(), "gen.h5")
>>> with SampleFile(out, p, 5, {"sampler": "interpolant"}, {"seed": 1}) as f:
...     generate(m, 5, steps=8, seed=1, batch_size=2, output=f)
>>> from phi4si.store import open_ensemble
>>> with open_ensemble(out) as ds:
...     ds["phi"].shape, int(ds.attrs["n_done"])
((1, 5, 4, 4), 5)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .._version import __version__
from ..errors import ParameterError, ResumeError
from ..io import check_resume, lock_output, prepare_output, utc_now

__all__ = ["SampleFile"]

# run settings a resume must share with the file (n may grow: the run continues to the new n)
RESUME_KEYS = ("seed", "shape", "dtype")


class SampleFile:
    """The ensemble file ``out`` of ``n`` generated configurations on the lattice of ``params``
    (a :class:`~phi4si.lattice.Phi4Params`), used as a context manager around the task:

    ``sampler`` and ``run`` are the file's records (what made it; ``run`` gains version and date);
    ``overwrite`` replaces an existing file (only once the new one holds its first batch);
    ``resume`` continues an existing file of the same settings up to ``n``.  Inside the ``with``
    block :attr:`done` is the number of samples already in the file and :attr:`generator_state`
    the noise stream's state after them (None for a new file); the task calls :meth:`write` with
    every batch, in order; ``what`` names the output in refusals (e.g. ``--out``)."""

    def __init__(self, out, params, n: int, sampler: dict, run: dict, dtype: str = "float32",
                 overwrite: bool = False, resume: bool = False, what: str = "output"):
        self.out = prepare_output(out, overwrite, resume=resume, what=what, resumable=True)
        self.params, self.n, self.dtype, self.resume = params, int(n), str(dtype), resume
        if self.n < 1:
            raise ParameterError(f"n must be >= 1, got {n}")
        np.dtype(self.dtype)
        self.sampler = dict(sampler)
        self.run = dict(run, n=self.n, dtype=self.dtype, version=__version__, date=utc_now())
        self.done, self.generator_state = 0, None
        self.writer, self.wall0, self._lock, self._wall = None, 0.0, None, None
        self._check_disk(overwrite or resume)

    def _check_disk(self, replacing):
        """Refuse, before any work, a file the output's disk cannot take (configurations uncompressed:
        random float fields barely compress, plus the per-sample scalars)."""
        from ..resources import format_bytes, free_space

        V, d = self.params.volume, self.params.d
        need = self.n * (V * np.dtype(self.dtype).itemsize + (5 + d) * 8) + 2 * V * 8
        free = free_space(self.out, replacing)
        if free is not None and need > free:
            raise ParameterError(f"the output will need about {format_bytes(need)} ({self.n} configurations of {V} "
                                 f"sites in {self.dtype}) but {self.out.parent} has {format_bytes(free)} free; lower "
                                 "--n or write elsewhere (--out)")

    # ----------------------------------------------------------------------------------------- open, close
    def __enter__(self):
        self._lock = lock_output(self.out)
        self._lock.__enter__()               # one writer, for the whole run
        try:
            self._open()
        except BaseException:
            self._lock.__exit__(*sys.exc_info())
            raise
        self.t0 = time.perf_counter()
        return self

    def _open(self):
        from .. import store

        if not self.resume:
            import torch

            state = self._state(torch.Generator().get_state().numpy(), 0, 0.0)   # (the stream's state: fixed size)
            self.writer = store.ConfigurationWriter.create(self.out, self.params, 1, self.sampler, self.run, False,
                                                           self.dtype, np.zeros(self.params.volume), state)
            return
        store.repair(self.out)
        attrs, _, state = store.read_state(self.out)
        check_resume(self.out, attrs["sampler"], self.sampler, keys=[k for k in self.sampler if k != "model"],
                     label="setting ")
        check_resume(self.out, attrs["run"], self.run, keys=RESUME_KEYS)
        if attrs["params"] != self.params.to_dict():
            raise ResumeError(f"cannot resume {self.out}: parameters differ ({attrs['params']} vs "
                              f"{self.params.to_dict()})")
        if state.get("generator") is None or not len(state["generator"]):
            raise ResumeError(f"cannot resume {self.out}: it holds no noise-stream state (written whole, not by "
                              "a resumable task)")
        if state["n_done"] > self.n:
            raise ResumeError(f"cannot resume {self.out}: it already holds {state['n_done']} > n={self.n} samples")
        self.done, self.generator_state = int(state["n_done"]), np.asarray(state["generator"], np.uint8)
        self.wall0 = float(state["wall_time"])
        store.record_resume(self.out, attrs["run"], {"date": self.run["date"], "command": self.run.get("command"),
                                                     "version": __version__, "n_done": self.done, "n": self.n},
                            n=self.n)
        self.writer = store.ConfigurationWriter(self.out, self.params, self.dtype, self.done)

    def __exit__(self, *exc):
        self._wall = self.wall_time
        try:
            if self.writer is not None:      # (no file at all if nothing durable was written)
                self.writer.end({"n_done": self.writer.n, "wall_time": self._wall, "acceptance": 1.0, "eps": 0.0})
        finally:
            self._lock.__exit__(*exc)
        return False

    @property
    def wall_time(self) -> float:
        """Seconds of work in the file (resumed runs included), frozen when the ``with`` block ends."""
        return self._wall if self._wall is not None else self.wall0 + time.perf_counter() - self.t0

    def _state(self, generator, done: int, wall_time: float) -> dict:
        return {"rng": {}, "generator": np.asarray(generator, np.uint8), "eps": 0.0, "t_therm": 0,
                "acc_sum": float(done), "wall_time": wall_time}

    # ----------------------------------------------------------------------------------------- writing
    def write(self, phi: np.ndarray, generator_state) -> None:
        """Append a batch of configurations (b, *shape), physical units, and the noise stream's state
        after it (a torch generator's ``get_state()``); durable when this returns."""
        phi = np.ascontiguousarray(phi, dtype=np.float64)
        if not np.isfinite(phi).all():
            bad = int((~np.isfinite(phi)).reshape(len(phi), -1).any(axis=1).sum())
            raise ParameterError(f"{bad} of the configurations {self.done}..{self.done + len(phi) - 1} contain NaN or "
                                 f"inf; the file keeps the {self.done} before them")
        b = len(phi)
        state = self._state(generator_state, self.done + b, self.wall_time)
        self.writer.append(phi[None], np.ones((1, b)), np.zeros((1, b)), state=state, state_phi=phi[-1:])
        self.done += b

    def stopped(self, signal_name: str) -> None:
        """Say where a stopped run is and how to continue it (called between two batches)."""
        print(f"\n{signal_name}: stopped after {self.done} of {self.n} samples with everything saved in {self.out}; "
              "continue with the same command and --resume", file=sys.stderr)
