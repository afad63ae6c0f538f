"""What every command family of the ``phi4si`` command line shares: argument types, flag groups,
the names the interpolant commands accept, and the few helpers between parsing and the library.

* argument types (:func:`finite_float`, :func:`positive_float`, :func:`integer`,
  :func:`integer_at_least`, :func:`device`, :func:`block_size`, :func:`posterior_start`): argparse
  refuses a malformed value with exit status 2 and names the flag;
* flag groups (:func:`add_task_flags`, :func:`add_train_flags`, :func:`add_posterior_flags`,
  :func:`add_trained_model_flags`): one definition of the flags several commands take;
* name tuples (:data:`SOLVERS`, :data:`ODE_SOLVERS` (the solvers of ``generate``, ``inpaint`` and
  ``posterior``), :data:`MODEL_PRESETS`, ...): spelled out here so that ``phi4si --help`` does not
  import torch; tests/cli/test_cli_interpolant.py keeps them equal to the library's own;
* helpers: :func:`check_out` (the output check of :func:`phi4si.io.prepare_output`), :func:`load_model`,
  :func:`prepare_run` (output, device, threads: :mod:`phi4si.model.device`), :func:`task_record`,
  :func:`given` (the flags given, as keywords) and :func:`flag_terms`, which says a library refusal
  with the flags the user typed.

The module is called ``options`` rather than ``args`` because every command function already has a
parameter ``args`` (the parsed namespace); nothing here imports torch or the library at import time.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
from contextlib import contextmanager
from pathlib import Path

__all__ = ["finite_float", "positive_float", "integer", "integer_at_least", "device", "block_size",
           "posterior_start", "SOLVERS", "ODE_SOLVERS", "MODEL_PRESETS", "MEASURES", "PARAMETRISATIONS", "ORDERS",
           "DTYPES", "QUADRATURES",
           "add_task_flags", "add_run_flags", "add_train_flags", "add_posterior_flags", "add_trained_model_flags", "command_line",
           "task_record", "check_out", "load_model", "prepare_run", "given", "flag_terms", "reword"]


# ------------------------------------------------------------------------------------------------ types
def finite_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite: {s!r}")
    return v


def positive_float(s):
    v = finite_float(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {s!r}")
    return v


def integer(s):
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None


def integer_at_least(lo):
    def conv(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}: {s!r}")
        return v

    conv.__name__ = f"integer >= {lo}"
    return conv


def device(s):
    if s == "cpu" or s == "cuda" or re.fullmatch(r"cuda:\d+", s):
        return s
    raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {s!r}")


def block_size(s):
    """``--block 2`` or ``--block 2x4`` (one side per lattice direction)."""
    try:
        sides = [int(v) for v in s.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a block size (B or BxC): {s!r}") from None
    if any(v < 1 for v in sides):
        raise argparse.ArgumentTypeError(f"block sides must be >= 1: {s!r}")
    return sides[0] if len(sides) == 1 else tuple(sides)


def posterior_start(s):
    if s in ("pilot", "noise"):
        return s
    try:
        return finite_float(s)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be pilot, noise or a number: {s!r}") from None


# argparse names a type by its __name__ in some messages ("invalid device value")
device.__name__ = "device"
block_size.__name__ = "block size"

# ------------------------------------------------------------------------------------------------ names
SOLVERS = ("euler", "heun", "rk4")                      # phi4si.interpolant.integrate.SOLVERS
ODE_SOLVERS = SOLVERS + ("ab2", "ab3", "ddim", "ddim2")  # phi4si.interpolant.integrate.ODE_SOLVERS
MODEL_PRESETS = ("tiny", "small", "medium", "large", "maze")     # phi4si.nn.unet._PRESETS
MEASURES = ("generation", "multitask", "curriculum", "scales", "momenta")     # phi4si.interpolant.measures.preset_measure
PARAMETRISATIONS = ("b", "eta1", "eta0")                 # phi4si.interpolant.drifts.PARAMETRISATIONS
# posterior start defaults (phi4si.model.posterior), shown in --help
DEFAULT_A0, DEFAULT_A0_NEGATIVE_K, DEFAULT_PILOT, DEFAULT_ROUNDS = 0.95, 0.999, 256, 3
ORDERS = ("raster", "reverse", "random", "coarse_to_fine", "low_to_high")   # phi4si.model.generate.ORDERS
DTYPES = ("float32", "float64")
Z2_MODES = ("auto", "sign", "none")                      # phi4si.model.z2.Z2_MODES
QUADRATURES = ("stages", "gauss1", "gauss2")             # phi4si.interpolant.likelihood.QUADRATURES
GENERATE_DEFAULTS = ("ab3", 16)     # phi4si.model.generate.DEFAULT_SOLVER, DEFAULT_STEPS (no torch import here)


# ------------------------------------------------------------------------------------------------ flag groups
def add_z2_flag(p):
    """``--z2``: the random global sign of a one-pass model of a Z2-symmetric prior (phi4si.model.z2)."""
    p.add_argument("--z2", choices=Z2_MODES, default="auto",
                   help="Z2 symmetry by a random global sign per sample: auto (default: for a one-pass model, "
                        "trained with --no-odd, of an h = 0 prior, without a field h), sign (insist) or none "
                        "(the network's own law; the bits of runs made before this flag)")


def add_task_flags(p, what):
    """Flags shared by ``generate``, ``inpaint`` and ``posterior``: integration, batching, output."""
    p.add_argument("--model", required=True, help="model checkpoint written by phi4si train")
    p.add_argument("--out", required=True, help="output HDF5 ensemble file")
    p.add_argument("--steps", type=integer, default=None,
                   help="integration steps (default 16; with --sde 50; with --order: steps per block, default 20)")
    p.add_argument("--solver", choices=ODE_SOLVERS, default=None,
                   help="ODE solver (default ab3; with --order heun; before this default: heun with 50 steps)")
    p.add_argument("--sde", type=finite_float, default=None, metavar="EPS",
                   help="integrate the SDE with diffusion EPS >= 0 (Euler-Maruyama) instead of the ODE")
    p.add_argument("--grid-power", type=positive_float, default=1.0, metavar="P",
                   help="time grid 1 - (1 - u)^P: P > 1 puts more steps near the data end (default 1)")
    p.add_argument("--path", default=None, metavar="FILE",
                   help="an optimised time grid with its solver and steps (written by phi4si optimize-path)")
    p.add_argument("--order", choices=ORDERS, default=None,
                   help=f"{what} block by block in this order (sequential task)")
    p.add_argument("--block", type=block_size, default=None, metavar="B",
                   help="block size for --order raster/reverse/random (B or BxC)")
    p.add_argument("--levels", type=integer, default=None, metavar="K",
                   help="levels of --order coarse_to_fine (default 3) or momentum shells of low_to_high (default 4)")
    add_run_flags(p, "continue --out (written batch by batch with its noise stream) up to --n; same settings")


def add_run_flags(p, resume_help):
    """Flags of every command that runs a trained lattice model batch by batch into --out (the tasks of
    :func:`add_task_flags` and ``superres``): seed, batching, Z2, device, threads, overwrite/resume, progress."""
    p.add_argument("--seed", type=integer, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=integer, default=512, help="configurations per batch (default 512)")
    add_z2_flag(p)
    p.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=integer_at_least(1), default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--resume", action="store_true", help=resume_help)
    add_progress_flags(p)


def add_train_flags(t, model="small", measure="multitask", measures=MEASURES, init=False):
    """Flags of every training command (phi4 ``train``, ``image train``, ``maze train``); ``init``
    adds ``--init`` (fine-tune a trained model; ``--model`` then defaults to the init model's preset)."""
    t.add_argument("--out", required=True, help="model checkpoint to write (.pt)")
    t.add_argument("--steps", type=integer, default=None, help="optimisation steps")
    t.add_argument("--minutes", type=finite_float, default=None, help="wall-clock limit in minutes")
    t.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda or cuda:N")
    t.add_argument("--batch-size", type=integer, default=128, help="batch size (default 128; split over DDP ranks)")
    t.add_argument("--lr", type=finite_float, default=2e-3, help="peak learning rate (default 2e-3)")
    t.add_argument("--warmup", type=integer, default=100, help="linear warm-up steps (default 100)")
    if init:
        t.add_argument("--init", default=None, metavar="MODEL",
                       help="fine-tune this model (a checkpoint or a shipped name) on --data, e.g. on a larger "
                            "lattice: its network, Z2 oddness and normalisation are kept; optimiser and schedules "
                            "start afresh")
    t.add_argument("--model", choices=MODEL_PRESETS, default=None if init else model,
                   help=f"U-Net preset (default {model}" + ("; with --init: the init model's)" if init else ")"))
    t.add_argument("--net", action="append", default=None, metavar="KEY=VALUE",
                   help="override a U-Net field of the preset (repeatable), e.g. --net norm=group "
                        "--net linear_head=false --net channel_mult=1,2,2 (fields: phi4si.nn.UNetConfig)")
    t.add_argument("--param", choices=PARAMETRISATIONS, default="b", help="drift parametrisation (default b)")
    t.add_argument("--measure", choices=measures, default=measure, help=f"task measure (default {measure or 'by --family'})")
    t.add_argument("--odd", action=argparse.BooleanOptionalAction, default=None,
                   help="exactly odd network (b(-x) = -b(x)), two trunk passes, for data symmetric under x -> -x "
                        "(default: one pass; a symmetric prior is then sampled with a random global sign, see --z2; "
                        "before 2026-12: odd for symmetric lattice data)")
    t.add_argument("--no-augment", action="store_true",
                   help="no data augmentation (lattice fields: random translations, reflections, rotations and, for "
                        "a prior symmetric under phi -> -phi, the sign; other data: what its loader defines)")
    t.add_argument("--ema", type=finite_float, default=0.999, metavar="DECAY",
                   help="EMA decay of the weights used for inference, in [0, 1) (default 0.999)")
    t.add_argument("--seed", type=integer, default=0)
    t.add_argument("--threads", type=integer_at_least(1), default=None, help="torch CPU threads")
    t.add_argument("--amp", choices=("auto", "bf16", "none"), default="auto",
                   help="bfloat16 autocast of the network: auto (default: on CUDA and on CPUs with native bfloat16, "
                        "AVX512-BF16 or AMX; before 2026-12 CUDA only), bf16 (always) or none (float32)")
    t.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="torch.compile the training forward (backend, default inductor: worth it on a GPU, where the "
                        "first steps pay the compilation); a resume may switch it on or off")
    t.add_argument("--val-every", type=integer, default=250, help="validation interval in steps (default 250)")
    t.add_argument("--checkpoint-every", type=integer, default=500, help="checkpoint interval in steps (default 500)")
    t.add_argument("--log", default=None, help="JSON-lines log (default: OUT.log, appended to)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_progress_flags(t)


def add_progress_flags(p):
    """--progress / --no-progress (dest ``progress``: True, False, or None = a bar on terminals and in
    notebooks only, :mod:`phi4si.progress`)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                   help="show a progress bar even when standard error is not a terminal (default: on terminals only)")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")


def add_posterior_flags(p):
    """Reward flags: the task then samples the posterior exp(h sum phi + k sum phi^2) p(phi) with the
    prior model (reward transform, no retraining)."""
    p.add_argument("--h", type=finite_float, default=None, help="applied field h of the posterior (reward b = h 1)")
    p.add_argument("--k", type=finite_float, default=None, help="extra coupling k of the posterior (reward A = 2k Id)")
    p.add_argument("--a0", type=finite_float, default=None,
                   help=f"start time of the posterior path, 0 < a0 < 1 (default {DEFAULT_A0}; k > 0: below its bound; "
                        f"k < 0: {DEFAULT_A0_NEGATIVE_K})")
    p.add_argument("--start", type=posterior_start, default=None,
                   help="start mean: pilot (default: a pilot run's mean), noise (0) or a number (physical units)")
    p.add_argument("--pilot", type=integer, default=None,
                   help=f"pilot-run size for --start pilot (default {DEFAULT_PILOT})")
    p.add_argument("--pilot-rounds", type=integer, default=None,
                   help=f"pilot runs for --start pilot, each started from the last (default {DEFAULT_ROUNDS})")


def add_trained_model_flags(p, out_help="output HDF5 file", steps=50, batch_size=256):
    """Flags of the commands that run a trained image or maze model (``image generate``, ``maze plan``, ...)."""
    p.add_argument("--model", required=True, help="model checkpoint (phi4si image train / maze train)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--steps", type=integer_at_least(1), default=steps, help=f"integration steps (default {steps})")
    p.add_argument("--solver", choices=SOLVERS, default="heun", help="ODE solver (default heun)")
    p.add_argument("--seed", type=integer, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=integer_at_least(1), default=batch_size,
                   help=f"samples per batch (default {batch_size})")
    p.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=integer_at_least(1), default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


# ------------------------------------------------------------------------------------------------ helpers
def command_line(argv) -> str:
    """The command as an output records it."""
    return "phi4si " + shlex.join(argv)


def task_record(args, argv, **extra) -> dict:
    """What an image or maze output records of the command and its model settings."""
    return {"command": command_line(argv), "model": str(Path(args.model).resolve()), "steps": args.steps,
            "solver": args.solver, "seed": args.seed, **extra}


def check_out(out, overwrite, what="--out", resume=None) -> Path:
    """Refuse an output before any work: exists without overwrite, a directory, no parent folder;
    with ``resume`` (True or False: the command can continue its output), a resume of nothing."""
    from ..io import prepare_output

    return prepare_output(out, overwrite, resume=bool(resume), what=what, resumable=resume is not None)


def load_model(path, device):
    """The trained lattice model of a checkpoint, on ``device`` (checked first); every damaged or
    foreign checkpoint is a :class:`~phi4si.errors.CheckpointError` of the library's load_model."""
    from ..model.checkpoint import load_model as load
    from ..model.device import check_device

    check_device(device)
    return load(path, device=device)


def prepare_run(args):
    """Before an image or maze model runs: the output is checked, the device exists, --threads applies."""
    from ..model.device import check_device, set_threads

    check_out(args.out, args.overwrite)
    check_device(args.device)
    set_threads(args.threads)


def given(args, *names) -> dict:
    """``{name: value}`` of the flags among ``names`` that were given (not None): the keywords a
    library call receives only when the user chose them, so that it applies its own defaults and
    refuses a setting the chosen method does not use."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


# a keyword in a library message: "batch_size must ...", "order='raster' needs block=B", "got probes=2"
_KEYWORD = re.compile(r"(?<![\w.'-])([a-z_][a-z0-9_]*)=('[^']*'|[^\s,;:()]*)")
_LEADING = re.compile(r"^([a-z_][a-z0-9_]*)(?=[\s,:])")


def reword(message: str, flags: dict) -> str:
    """``message`` with the library keywords of ``flags`` (``{keyword: flag}``) said as flags: a
    leading keyword (``batch_size must be >= 1``) and every ``keyword=value`` (``order='raster'``
    -> ``--order raster``, ``block=`` -> ``--block``).

    >>> reword("order='raster' needs block=B (block size)", {"order": "--order", "block": "--block"})
    '--order raster needs --block B (block size)'
    >>> reword("batch_size must be >= 1, got 0", {"batch_size": "--batch-size"})
    '--batch-size must be >= 1, got 0'
    """
    def keyword(m):
        name, value = m.group(1), m.group(2).strip("'")
        if name not in flags:
            return m.group(0)
        return f"{flags[name]} {value}" if value else flags[name]

    message = _KEYWORD.sub(keyword, message)
    m = _LEADING.match(message)
    if m and m.group(1) in flags:
        message = flags[m.group(1)] + message[m.end():]
    return message


@contextmanager
def flag_terms(*keywords, **spelled):
    """Within this block a :class:`~phi4si.errors.ParameterError` of the library is re-raised with its
    keywords said as the command's flags (:func:`reword`): the library validates and names its
    keywords; the command line prints the refusal in the terms the user typed.  ``keywords`` are
    spelled ``--keyword-with-dashes``; ``spelled`` gives other spellings
    (``posterior="--proposal posterior"``)."""
    from ..errors import ParameterError

    flags = {k: "--" + k.replace("_", "-") for k in keywords}
    flags.update(spelled)
    try:
        yield
    except ParameterError as e:
        said = reword(str(e), flags)
        if said == str(e):
            raise
        raise ParameterError(said) from None
