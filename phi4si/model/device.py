"""Where the model side runs: the torch device, the number of CPU threads, and the processes of a
DDP run under ``torchrun``.

One home for the two settings every command of the model side takes (``--device``, ``--threads``),
so that the trainer, the tasks and the exact samplers check and apply them the same way.

>>> check_device("cpu")
device(type='cpu')
>>> check_device("tpu")
Traceback (most recent call last):
...
phi4si.errors.ParameterError: device must be cpu, cuda or cuda:N, got 'tpu'
"""

from __future__ import annotations

import os
import re

import torch

from ..errors import ParameterError

__all__ = ["check_device", "set_threads", "free_threads", "init_distributed", "close_distributed"]


def check_device(device) -> torch.device:
    """The torch device named by ``device`` ('cpu', 'cuda' or 'cuda:N'), refused with a
    :class:`~phi4si.errors.ParameterError` when it is malformed or torch sees no such CUDA device."""
    name = str(device)
    if not (name == "cpu" or name == "cuda" or re.fullmatch(r"cuda:\d+", name)):
        raise ParameterError(f"device must be cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(f"--device {name}: torch sees no CUDA device (use --device cpu)")
        idx = int(name.split(":")[1]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise ParameterError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch CPU threads (None: torch's choice, one per usable core).  With None on a
    machine that is already busy (the load average leaves fewer free cores than torch would use), a
    one-line warning on standard error suggests ``--threads`` (on a loaded 2-core machine two torch
    threads can be several times slower than one); the choice itself is not changed, so that a run
    and its resume compute alike.  On small models one thread per process is often as fast as two
    (see :mod:`phi4si.nn.unet`)."""
    if threads is None:
        n = free_threads()
        if n < torch.get_num_threads():
            import sys

            print(f"phi4si: warning: the machine is busy (load {os.getloadavg()[0]:.1f} on {_cores()} cores) and torch "
                  f"uses {torch.get_num_threads()} threads; --threads {n} is often much faster here", file=sys.stderr)
        return
    if isinstance(threads, bool) or int(threads) != threads or int(threads) < 1:
        raise ParameterError(f"threads must be an integer >= 1, got {threads}")
    torch.set_num_threads(int(threads))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def free_threads() -> int:
    """Usable cores minus the 1-minute load average (rounded), at least 1.

    >>> free_threads() >= 1
    True
    """
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return _cores()
    return max(1, int(_cores() - load + 0.5))


def init_distributed(device: str = "cpu"):
    """(rank, world, local_rank, owned) from torchrun's environment, initialising the process group
    (nccl for CUDA training, gloo for CPU training or when PHI4SI_DDP_BACKEND=gloo); ``owned``:
    this call created the group, so :func:`close_distributed` destroys it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0, False
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        backend = os.environ.get("PHI4SI_DDP_BACKEND") or ("nccl" if device.startswith("cuda") else "gloo")
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owned


def close_distributed(owned: bool) -> None:
    """End a DDP run cleanly: wait until every rank (rank 0 writes the checkpoint) is done, then
    destroy the process group if init_distributed created it.  Without this the ranks leave at different
    moments with gloo's threads still attached, and a rank can die in C++ ("terminate called
    without an active exception", SIGABRT) after all the work is done."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()
    if owned:
        dist.destroy_process_group()


def check_compile_backend(backend) -> None:
    """Refuse a ``torch.compile`` backend torch does not know (None: no compilation).  "inductor" is the
    one that generates kernels (Triton on CUDA, C++ on CPU: it needs a C compiler); "aot_eager" traces
    the graph and its backward without generating code (a cheap check of the compiled path)."""
    if backend is None:
        return
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        from ..errors import ParameterError

        raise ParameterError(f"compile must be a torch.compile backend (e.g. inductor, aot_eager), got {backend!r}")
