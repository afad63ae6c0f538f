"""Random streams: every random number of a run comes from its one ``seed``.

A run's main stream is seeded with ``seed`` itself (numpy ``default_rng(seed)`` or
``torch.Generator().manual_seed(seed)``).  Every other stream it needs (the pilot runs of a posterior
task, the trainer's data, noise, measure and augmentation draws on each DDP rank, the noise added
to observed pixels, each pass of the maze planner, ...) is a child of ``numpy.random.SeedSequence(seed)``:
the stream named ``name`` with indices ``i, j, ...`` is

    SeedSequence(seed).spawn(...)[STREAMS[name]].spawn(...)[i].spawn(...)[j] ...

(computed directly as ``SeedSequence(seed, spawn_key=(STREAMS[name], i, j, ...))``, which is what
``spawn`` returns), so streams never overlap, whatever the seed, unlike ad hoc offsets such as
``seed + 7919 * r`` (seed 7919 of round 0 would be seed 0 of round 1).  The names and their keys are
the table :data:`STREAMS`; a new stream gets a new key, and an existing key never changes (it is part
of the map from a seed to the results).

>>> stream_seed(0, "pilot", 0) == stream_seed(0, "pilot", 0)
True
>>> len({stream_seed(s, "pilot", r) for s in range(50) for r in range(50)})   # no collisions
2500
>>> rng = numpy_rng(3, "observation_noise")
>>> float(rng.standard_normal()) == float(numpy_rng(3, "observation_noise").standard_normal())
True
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

__all__ = ["STREAMS", "stream_seed", "numpy_rng", "torch_generator"]

# name -> spawn key.  Never renumber: the key is part of the map from a seed to the results.
STREAMS = {
    "pilot": 1,              # posterior pilot runs, one per round (model.solve.pilot_runner)
    "pilot_draws": 2,        # which pilot sample and which translation each start uses (model.posterior)
    "train": 3,              # trainer streams: (rank, i) with i = data, noise, measure, augment (model.train)
    "observation_noise": 4,  # noise added to observed pixels (phi4si image inpaint, evaluate)
    "denoise": 5,            # second stage of noisy image inpainting (tasks.images)
    "edit": 6,               # successive image edits (tasks.images)
    "evaluate": 7,           # image evaluation: (task, what, repeat) (tasks.images)
    "plan_pass": 8,          # maze planner: each pass of solves (tasks.maze.planner)
    "block_reverse": 9,      # neural block MH: the reverse flow's probes (model.exact)
    "restore_fill": 10,      # image restoration: the N(0, 1) filling of missing pixels (tasks.restore)
}


def stream_seed(seed: int, name: str, *index: int) -> int:
    """A 63-bit integer seed of the stream ``name`` (with ``index``) of the run seeded ``seed``."""
    if name not in STREAMS:
        raise ParameterError(f"unknown random stream {name!r} (known: {', '.join(STREAMS)})")
    if isinstance(seed, bool) or int(seed) != seed or int(seed) < 0:
        raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=(STREAMS[name], *(int(i) for i in index)))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def numpy_rng(seed: int, name: str, *index: int) -> np.random.Generator:
    """A numpy Generator (PCG64) on the stream ``name`` of ``seed``."""
    return np.random.default_rng(stream_seed(seed, name, *index))


def torch_generator(seed: int, name: str, *index: int):
    """A CPU ``torch.Generator`` on the stream ``name`` of ``seed``."""
    import torch

    return torch.Generator().manual_seed(stream_seed(seed, name, *index))
