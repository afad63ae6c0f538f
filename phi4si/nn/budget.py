"""What a :class:`~phi4si.nn.unet.LatticeUNet` costs, without building it: its number of
parameters and the memory of one training step, so that a network or a batch that cannot fit is
refused before any allocation (:class:`~phi4si.nn.unet.UNetConfig` and the trainer's
``TrainConfig.validate`` use these).  Only the configuration's fields are read, so this module does not
import the network.

>>> from phi4si.nn.unet import LatticeUNet, count_parameters, preset
>>> estimate_parameters(preset("tiny")) == count_parameters(LatticeUNet(preset("tiny")))
True
"""

from __future__ import annotations

import math

__all__ = ["conv_shapes", "estimate_parameters", "estimate_training_memory", "check_training_memory"]


def conv_shapes(cfg) -> list[tuple[int, int, int, int]]:
    """``(cin, cout, kernel, level)`` of every convolution of ``LatticeUNet(cfg)`` (mirrors its __init__;
    level l works on sides / 2**l)."""
    nf = len(cfg.a_features) * cfg.a_channels
    ch = [cfg.base_channels * m for m in cfg.channel_mult]
    emb = cfg.base_channels
    out = [(nf, emb, 1, 0), (emb, emb, 1, 0), (cfg.in_channels + nf, ch[0], 3, 0)]

    def block(cin, cout, level):
        out.extend([(cin, cout, 3, level), (emb, 2 * cout, 1, level), (cout, cout, 3, level)])
        if cin != cout:
            out.append((cin, cout, 1, level))

    c = ch[0]
    for level, cl in enumerate(ch):
        for _ in range(cfg.n_res_blocks):
            block(c, cl, level)
            c = cl
    block(c, c, len(ch) - 1)
    for level in reversed(range(len(ch) - 1)):
        out.append((c, c, 3, level))
        for i in range(cfg.n_res_blocks):
            block(c + ch[level] if i == 0 else ch[level], ch[level], level)
        c = ch[level]
    out.append((c, cfg.out_channels, 3, 0))
    if cfg.linear_head:
        hh = cfg.head_hidden
        n_w = cfg.out_channels * cfg.in_channels * cfg.linear_kernel**cfg.dim
        out.extend([(nf, hh, 1, 0), (hh, hh, 1, 0), (hh, n_w + (0 if cfg.odd else cfg.out_channels), 1, 0)])
    return out


def estimate_parameters(cfg) -> int:
    """Number of trainable scalars of ``LatticeUNet(cfg)``, without building it (GroupNorm's few
    affine scalars left out).

    >>> from phi4si.nn.unet import LatticeUNet, count_parameters, preset
    >>> estimate_parameters(preset("tiny")) == count_parameters(LatticeUNet(preset("tiny")))
    True
    """
    return sum(k**cfg.dim * cin * cout + cout for cin, cout, k, _ in conv_shapes(cfg))


def estimate_training_memory(cfg, batch: int, sides) -> int:
    """Bytes a float32 training step of ``LatticeUNet(cfg)`` on ``batch`` samples of lattice ``sides`` holds,
    roughly: weights, gradients, AdamW's two moments and the EMA copy (5 x 4 bytes a parameter), and the
    activations autograd keeps, about four tensors (input, normalised, activated, output) per convolution
    output of cout x sites(level) per sample (the backward pass frees them as it goes)."""
    V = math.prod(int(s) for s in sides)
    acts = sum(cout * max(1, V // (2**cfg.dim) ** level) for _, cout, _, level in conv_shapes(cfg))
    return 20 * estimate_parameters(cfg) + 4 * 4 * batch * (acts + 4 * cfg.in_channels * V)


def check_training_memory(cfg, batch_size: int, device: str = "cpu", shape=None, what: str = "the model") -> None:
    """Refuse (:class:`~phi4si.errors.ParameterError`, naming the flags to lower) a training step of
    the U-Net ``cfg`` with ``batch_size`` on the lattice ``shape`` that needs more memory than
    ``device`` has (the machine's physical memory for 'cpu').  Without ``shape`` the smallest lattice
    the model admits (one side of ``size_multiple`` sites) is used: a lower bound, which still refuses
    hopeless batch sizes.

    >>> from phi4si.nn.unet import preset
    >>> check_training_memory(preset("tiny"), 8, "cpu", (8, 8))      # fits: no error
    """
    from ..errors import ParameterError
    from ..resources import format_bytes, physical_memory

    sides = tuple(shape) if shape is not None else (cfg.size_multiple,) * cfg.dim
    need = estimate_training_memory(cfg, int(batch_size), sides)
    if str(device).startswith("cuda"):
        import torch

        have, where = torch.cuda.get_device_properties(torch.device(device)).total_memory, device
    else:
        have, where = physical_memory(), "the machine"
    if have is not None and need > have:
        lattice = f"lattice {'x'.join(map(str, sides))}" + ("" if shape is not None else " (the smallest it admits)")
        raise ParameterError(f"a training step with batch_size (--batch-size) {batch_size} of {what} on the "
                             f"{lattice} needs about {format_bytes(need)} (activations of the batch, weights, "
                             f"gradients, AdamW and EMA) but {where} has {format_bytes(have)}; lower "
                             "--batch-size (or the model: --model, --net)")
