"""The processes of one task under ``torchrun``: who computes which batch, and how the batches
reach the one output file.

``torchrun --nproc_per_node N phi4si generate ...`` (and ``posterior``, ``inpaint``, ``sample-neural
--method reweight|imh``) runs N copies of the command.  They share the work by batches: batch j
(0, 1, 2, ... in the order a single process would run them) is solved by rank j mod N, in rounds of
N batches.  Every rank replays the cheap random draws of *every* batch (the start noise, the
posterior start's pilot draws, the z2 signs, the proposal seeds) and solves only its own, so each
batch sees exactly the random numbers it sees in a single process: the file written under torchrun
holds the samples of the one-process run with the same seed and batch size, whatever N (bit for
bit on the CPU; on GPUs up to the kernels' own non-determinism).  Rank 0 alone opens, locks and
writes the output; after each round it gathers the other ranks' batches (``gather_object``, over
gloo on CPU or nccl on CUDA) and writes them in order with the random state after each, so
``--resume`` works as in one process - with any number of processes.  A Ctrl-C or SIGTERM seen by
any rank stops all of them after the same round.

Why torch.distributed and not Dask: the model side already runs DDP training on it (one launcher,
``torchrun``, for training and sampling, with a GPU per rank), and the work is a static split of
batches with no scheduling to do.  The MCMC side (``sample-mcmc --part``) needs no engine at all:
its parts are plain jobs (a SLURM array) with recorded seed streams, read together by ``analyze``.

>>> r = Ranks.single()
>>> r.world, r.owns(3), r.gather([1, 2])
(1, True, [[1, 2]])
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, Phi4siError

__all__ = ["Ranks", "current", "Output", "Follower"]


@dataclass(frozen=True)
class Ranks:
    """Rank ``rank`` of ``world`` processes (``world == 1``: a plain run); ``owned``: this object
    initialised the process group (so :meth:`close` destroys it)."""

    rank: int = 0
    world: int = 1
    owned: bool = False
    device: str = "cpu"

    @classmethod
    def single(cls) -> "Ranks":
        return cls()

    @property
    def leader(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    def owns(self, j: int) -> bool:
        """Whether batch ``j`` is solved here."""
        return int(j) % self.world == self.rank

    # ------------------------------------------------------------------------------------------ collectives
    def gather(self, obj):
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world if self.leader else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.leader else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank (e.g. a stop request)."""
        return any(self.all_gather(bool(flag))) if self.world > 1 else bool(flag)

    def shared(self, make):
        """``make()`` run on rank 0 only, its result on every rank; an error there is raised on every
        rank (the same message), so that no rank waits forever for a leader that failed."""
        if self.world == 1:
            return make()
        result, error = None, None
        if self.leader:
            try:
                result = make()
            except Phi4siError as e:
                error = (type(e), str(e))
        result, error = self.broadcast((result, error))
        if error is not None:
            if self.leader:
                raise error[0](error[1])
            raise error[0](f"rank 0: {error[1]}")
        return result

    def close(self) -> None:
        """The end of a torchrun task: wait for every rank, then leave the group."""
        if self.world > 1:
            from .device import close_distributed

            close_distributed(self.owned)


def current(device: str = "cpu", what: str = "this task") -> Ranks:
    """The :class:`Ranks` of this process: from torchrun's environment (WORLD_SIZE > 1: the process
    group is initialised, gloo on CPU and nccl on CUDA, one GPU per local rank), else a single
    process.  Refused: a world larger than one without RANK (not launched by torchrun).

    >>> current().world
    1
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks.single()
    if "RANK" not in os.environ:
        raise ParameterError(f"WORLD_SIZE={world} without RANK: launch {what} with torchrun")
    from .device import init_distributed

    if str(device).startswith("cuda"):             # this rank's GPU before nccl starts (and before the model loads)
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    rank, world, _, owned = init_distributed(device)
    return Ranks(rank=rank, world=world, owned=owned, device=str(device))


class Follower:
    """What a rank other than 0 holds in place of the output file: where the run starts (``done``
    samples and the noise stream's state after them, as rank 0 read them) and a ``write`` that
    drops the batch (rank 0 writes it)."""

    def __init__(self, out, done: int, generator_state, n: int):
        self.out, self.done, self.n = out, int(done), int(n)
        self.generator_state = None if generator_state is None else np.asarray(generator_state, np.uint8)
        self.wall_time = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, phi, generator_state) -> None:
        self.done += len(phi)

    def stopped(self, signal_name: str) -> None:
        pass


class Output:
    """The output of a task on every rank, as a context manager: on rank 0 the file ``make()``
    returns (a :class:`~phi4si.model.output.SampleFile`, opened and locked there only), elsewhere a
    :class:`Follower` that starts where the file does; either carries ``ranks`` for
    :func:`~phi4si.model.solve.run_task`.  A refusal while rank 0 opens the file is raised on every
    rank.  With one process this is the file itself."""

    def __init__(self, ranks: Ranks, make):
        self.ranks, self.make, self.file = ranks, make, None

    def __enter__(self):
        def open_file():
            f = self.make()
            f.__enter__()
            self.file = f
            return str(f.out), f.done, f.generator_state, f.n

        out, done, state, n = self.ranks.shared(open_file)
        target = self.file if self.ranks.leader else Follower(out, done, state, n)
        target.ranks = self.ranks
        return target

    def __exit__(self, *exc):
        if self.file is not None:
            return self.file.__exit__(*exc)
        return False
