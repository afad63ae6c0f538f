"""Where the model side runs: the torch device and the number of CPU threads.

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

import re

import torch

from ..errors import ParameterError

__all__ = ["check_device", "set_threads"]


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
    """Use ``threads`` torch CPU threads (None: leave torch's choice).  On small models one thread
    per process is often as fast as two (see :mod:`phi4si.nn.unet`)."""
    if threads is None:
        return
    if isinstance(threads, bool) or int(threads) != threads or int(threads) < 1:
        raise ParameterError(f"threads must be an integer >= 1, got {threads}")
    torch.set_num_threads(int(threads))
