"""The ``phi4si`` command line.

    phi4si demo [--out DIR]                       small HMC run, analysis table and plots
    phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --sampler hmc ... --out FILE.h5
    phi4si analyze FILE.h5 [--json]
    phi4si plot FILE.h5 --out DIR
    phi4si train --data ENS.h5 --out MODEL.pt [--steps N | --minutes M] ...   train an interpolant
    phi4si generate --model MODEL.pt --n N --out FILE.h5 [--order ...]        samples -> ensemble file
    phi4si inpaint --model MODEL.pt --data ENS.h5 --mask SPEC --out FILE.h5   complete masked sites
    phi4si sample-neural --model MODEL.pt --method imh|block|hybrid|reweight [--h H --k K] --n N --out FILE.h5
                                                  exact sampling with the model (weights or Metropolis)
    phi4si image train|generate|inpaint|edit|evaluate ...   images (see phi4si.cli.tasks)
    phi4si maze dataset|train|plan|evaluate ...              maze planning (see phi4si.cli.tasks)

Errors in the input end with a one-line message and a non-zero exit status, before
anything on disk is touched.  The command line parses; :func:`phi4si.mcmc.run.sample_mcmc`
validates the sampler settings (so the Python API refuses exactly what the CLI refuses).
Output into a closed pipe (``phi4si analyze FILE | head -1``) ends quietly with status 141.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

from .. import __version__
from ..errors import Phi4siError


def _finite_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite: {s!r}")
    return v


def _pos_float(s):
    v = _finite_float(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {s!r}")
    return v


def _int(s):
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None


_int.__name__ = "integer"


def _int_at_least(lo):
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


def _device(s):
    if s == "cpu" or s == "cuda" or re.fullmatch(r"cuda:\d+", s):
        return s
    raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {s!r}")


_device.__name__ = "device"


def _block(s):
    """``--block 2`` or ``--block 2x4`` (one side per lattice direction)."""
    try:
        sides = [int(v) for v in s.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a block size (B or BxC): {s!r}") from None
    if any(v < 1 for v in sides):
        raise argparse.ArgumentTypeError(f"block sides must be >= 1: {s!r}")
    return sides[0] if len(sides) == 1 else tuple(sides)


_block.__name__ = "block size"

# Names the interpolant commands accept.  They are spelled out here so that ``phi4si --help`` does
# not import torch; tests/test_cli_interpolant.py keeps them equal to the library's own tuples.
SOLVERS = ("euler", "heun", "rk4")                      # phi4si.interpolant.integrate.SOLVERS
MODEL_PRESETS = ("tiny", "small", "medium", "large", "maze")     # phi4si.nn.unet._PRESETS
MEASURES = ("generation", "multitask", "curriculum")     # phi4si.interpolant.measures.preset_measure
PARAMETRISATIONS = ("b", "eta1", "eta0")                 # phi4si.interpolant.drifts.PARAMETRISATIONS
ORDERS = ("raster", "reverse", "random", "coarse_to_fine")


def _add_task_flags(p, what):
    """Flags shared by ``generate`` and ``inpaint``: integration, batching, output."""
    p.add_argument("--model", required=True, help="model checkpoint written by phi4si train")
    p.add_argument("--out", required=True, help="output HDF5 ensemble file")
    p.add_argument("--steps", type=_int, default=None,
                   help="integration steps (default 50; with --order: steps per block, default 20)")
    p.add_argument("--solver", choices=SOLVERS, default=None, help="ODE solver (default heun)")
    p.add_argument("--sde", type=_finite_float, default=None, metavar="EPS",
                   help="integrate the SDE with diffusion EPS >= 0 (Euler-Maruyama) instead of the ODE")
    p.add_argument("--grid-power", type=_pos_float, default=1.0, metavar="P",
                   help="time grid 1 - (1 - u)^P: P > 1 puts more steps near the data end (default 1)")
    p.add_argument("--order", choices=ORDERS, default=None,
                   help=f"{what} block by block in this order (sequential task)")
    p.add_argument("--block", type=_block, default=None, metavar="B",
                   help="block size for --order raster/reverse/random (B or BxC)")
    p.add_argument("--levels", type=_int, default=None, metavar="K",
                   help="levels of --order coarse_to_fine (default 3)")
    p.add_argument("--seed", type=_int, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=_int, default=512, help="configurations per batch (default 512)")
    p.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=_int_at_least(1), default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-progress", action="store_true")


def _add_train_flags(t, model="small", measure="multitask", measures=MEASURES):
    """Flags of every training command (phi4 ``train``, ``image train``, ``maze train``)."""
    t.add_argument("--out", required=True, help="model checkpoint to write (.pt)")
    t.add_argument("--steps", type=_int, default=None, help="optimisation steps")
    t.add_argument("--minutes", type=_finite_float, default=None, help="wall-clock limit in minutes")
    t.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda or cuda:N")
    t.add_argument("--batch-size", type=_int, default=128, help="batch size (default 128; split over DDP ranks)")
    t.add_argument("--lr", type=_finite_float, default=2e-3, help="peak learning rate (default 2e-3)")
    t.add_argument("--warmup", type=_int, default=100, help="linear warm-up steps (default 100)")
    t.add_argument("--model", choices=MODEL_PRESETS, default=model, help=f"U-Net preset (default {model})")
    t.add_argument("--net", action="append", default=None, metavar="KEY=VALUE",
                   help="override a U-Net field of the preset (repeatable), e.g. --net norm=group "
                        "--net linear_head=false --net channel_mult=1,2,2 (fields: phi4si.nn.UNetConfig)")
    t.add_argument("--param", choices=PARAMETRISATIONS, default="b", help="drift parametrisation (default b)")
    t.add_argument("--measure", choices=measures, default=measure, help=f"task measure (default {measure})")
    t.add_argument("--odd", action=argparse.BooleanOptionalAction, default=None,
                   help="exactly Z2-odd network (default: when the data have h = 0)")
    t.add_argument("--no-augment", action="store_true", help="no lattice-symmetry augmentation")
    t.add_argument("--ema", type=_finite_float, default=0.999, metavar="DECAY",
                   help="EMA decay of the weights used for inference, in [0, 1) (default 0.999)")
    t.add_argument("--seed", type=_int, default=0)
    t.add_argument("--threads", type=_int_at_least(1), default=None, help="torch CPU threads")
    t.add_argument("--val-every", type=_int, default=250, help="validation interval in steps (default 250)")
    t.add_argument("--checkpoint-every", type=_int, default=500, help="checkpoint interval in steps (default 500)")
    t.add_argument("--log", default=None, help="JSON-lines log (default: OUT.log, appended to)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    t.add_argument("--no-progress", action="store_true")


def _start(s):
    if s in ("pilot", "noise"):
        return s
    try:
        return _finite_float(s)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be pilot, noise or a number: {s!r}") from None


def _add_posterior_flags(p, required=False):
    """Reward flags: the task then samples the posterior exp(h sum phi + k sum phi^2) p(phi) with the
    prior model (reward transform, no retraining)."""
    p.add_argument("--h", type=_finite_float, default=None, help="applied field h of the posterior (reward b = h 1)")
    p.add_argument("--k", type=_finite_float, default=None, help="extra coupling k of the posterior (reward A = 2k Id)")
    p.add_argument("--a0", type=_finite_float, default=None,
                   help="start time of the posterior path, 0 < a0 < 1 (default 0.9, or below the bound of k > 0)")
    p.add_argument("--start", type=_start, default=None,
                   help="start mean: pilot (default: a pilot run's mean), noise (0) or a number (physical units)")
    p.add_argument("--pilot", type=_int, default=None, help="pilot-run size for --start pilot (default 256)")
    p.add_argument("--pilot-rounds", type=_int, default=None,
                   help="pilot runs for --start pilot, each started from the last (default 2)")


def _posterior(args, required=False):
    """The Posterior of the reward flags, or None (prior) when no reward flag is given."""
    from ..errors import ParameterError

    given = [f for f in ("h", "k", "a0", "start", "pilot", "pilot_rounds") if getattr(args, f, None) is not None]
    if not given:
        if required:
            raise ParameterError("give a reward: --h and/or --k (the prior is `phi4si generate`)")
        return None
    if args.h is None and args.k is None:
        raise ParameterError(f"{', '.join('--' + f.replace('_', '-') for f in given)} need a reward: --h and/or --k")
    return _posterior_settings(args, args.h or 0.0, args.k or 0.0)


def _posterior_settings(args, h, k):
    from ..errors import ParameterError
    from ..model.posterior import Posterior

    for flag in ("pilot", "pilot_rounds"):
        if getattr(args, flag) is not None and args.start not in (None, "pilot"):
            raise ParameterError(f"--{flag.replace('_', '-')} applies to --start pilot only")
    return Posterior(h=h, k=k, a0=args.a0, start="pilot" if args.start is None else args.start,
                     pilot=256 if args.pilot is None else args.pilot,
                     rounds=2 if args.pilot_rounds is None else args.pilot_rounds)


def build_parser() -> argparse.ArgumentParser:
    from ..mcmc import SAMPLERS

    ap = argparse.ArgumentParser(prog="phi4si", description="Lattice phi^4 sampling and multitask stochastic interpolants.")
    ap.add_argument("--version", action="version", version=f"phi4si {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    # sample-mcmc: flags are parsed here; their values are validated by sample_mcmc (one place
    # for the CLI and the Python API).  Lattice shape and the hopping form are CLI-only.
    s = sub.add_parser("sample-mcmc", help="generate a phi^4 ensemble with an exact MCMC sampler (HDF5)",
                       epilog="sampler-specific flags: hmc: --integrator --target-accept --no-adapt; "
                              "fahmc: --integrator --mass --target-accept --no-adapt; langevin: --mass; "
                              "mala: --mass --target-accept --no-adapt (others apply to every sampler); "
                              "a flag the chosen sampler does not use is an error")
    s.add_argument("--shape", type=_int_at_least(2), nargs="+", default=[8, 8], help="lattice sides (default 8 8)")
    s.add_argument("--m2", type=_finite_float, default=None, help="bare mass squared (default -4)")
    s.add_argument("--lam", type=_finite_float, default=None, help="quartic coupling (default 8)")
    s.add_argument("--h", type=_finite_float, default=0.0, help="applied field h (default 0)")
    s.add_argument("--k", type=_finite_float, default=0.0, help="extra quadratic coupling k (default 0)")
    s.add_argument("--kappa", type=_pos_float, default=None,
                   help="hopping parameter (hopping form, with --l; instead of --m2/--lam)")
    s.add_argument("--l", type=_finite_float, default=None, help="hopping-form quartic coupling (with --kappa)")
    s.add_argument("--sampler", choices=SAMPLERS, default="hmc")
    s.add_argument("--chains", type=_int, default=4, help="independent chains (default 4)")
    s.add_argument("--n-traj", type=_int, default=1000, help="measured trajectories per chain")
    s.add_argument("--n-therm", type=_int, default=200, help="thermalisation trajectories (eps adapted)")
    s.add_argument("--every", type=_int, default=1, help="store every N-th configuration (0: none)")
    s.add_argument("--eps", type=_finite_float, default=None, help="(initial) step size / Langevin dt")
    s.add_argument("--n-steps", type=_int, default=None, help="integration steps per trajectory")
    s.add_argument("--integrator", choices=("leapfrog", "omelyan"), default=None,
                   help="hmc, fahmc (default leapfrog)")
    s.add_argument("--mass", type=_finite_float, default=None,
                   help="Fourier mass M_fa (fahmc) / M (langevin, mala) (default 1)")
    s.add_argument("--target-accept", type=_finite_float, default=None,
                   help="acceptance the step-size adaptation aims at (hmc, fahmc, mala)")
    s.add_argument("--no-adapt", action="store_true", help="keep eps fixed during thermalisation (hmc, fahmc, mala)")
    s.add_argument("--jitter", type=_finite_float, default=None,
                   help="randomise eps per trajectory by +-jitter (relative; default 0.1 for hmc/fahmc, 0 otherwise)")
    s.add_argument("--seed", type=_int, default=0)
    s.add_argument("--out", required=True, help="output HDF5 file")
    s.add_argument("--resume", action="store_true", help="continue an interrupted (or shorter) run in --out")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="storage dtype of configurations")
    s.add_argument("--flush-seconds", type=_finite_float, default=5.0, help="checkpoint interval (seconds)")
    s.add_argument("--no-progress", action="store_true")

    a = sub.add_parser("analyze", help="observables with Gamma-method errors")
    a.add_argument("file")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--S", type=_pos_float, default=2.0, help="Gamma-method window parameter S (default 2)")

    p = sub.add_parser("plot", help="histogram, MC history, correlator, configurations (PNG)")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="output directory")

    t = sub.add_parser("train", help="train a multitask interpolant on an ensemble (model checkpoint .pt)",
                       epilog="--steps and --minutes may both be given (training stops at the first); with "
                              "neither, 2000 steps (with --resume: the checkpoint's own limit). --resume continues "
                              "--out bit-exactly (CPU, --steps): repeat the original command with --resume added "
                              "(--steps/--minutes, --device, --threads may change)")
    t.add_argument("--data", required=True, help="training ensemble (HDF5 file of sample-mcmc)")
    _add_train_flags(t)

    g = sub.add_parser("generate", help="samples of a trained model, written as an ensemble file",
                       epilog="the output is an ensemble file (one chain, one 'trajectory' per sample) that "
                              "analyze and plot read; it records the model, the solver settings and the seed")
    g.add_argument("--n", type=_int, required=True, help="number of configurations")
    g.add_argument("--shape", type=_int_at_least(2), nargs="+", default=None,
                   help="lattice sides (default: the training lattice)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="storage dtype (default float32)")
    _add_task_flags(g, "generate")
    _add_posterior_flags(g)

    i = sub.add_parser("inpaint", help="complete the masked sites of configurations from an ensemble file",
                       epilog="mask: block:RxC@I,J (periodic block at I,J), random:FRACTION (drawn with --seed) or "
                              "FILE.npy (boolean array of the lattice shape); True/1 = unknown, to be generated. "
                              "Observed sites are copied bit for bit (keep --dtype at the data's)")
    i.add_argument("--data", required=True, help="ensemble file whose configurations are completed")
    i.add_argument("--mask", required=True, help="unknown sites: block:RxC@I,J | random:FRACTION | FILE.npy")
    i.add_argument("--n", type=_int, default=None,
                   help="use the first N configurations (chain 0 first, then chain 1, ...; default all)")
    i.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="storage dtype (default: the data's)")
    _add_task_flags(i, "inpaint")
    _add_posterior_flags(i)

    q = sub.add_parser("posterior", help="posterior samples under a field h and/or coupling k with a prior model "
                                         "(reward transform, no retraining)",
                       epilog="without --data: generation (or sequential generation with --order); with --data and "
                              "--mask: posterior inpainting of those configurations. The posterior path starts at "
                              "a0 < 1 from a0 z + (1 - a0) m, m the start mean. The output records the posterior's "
                              "couplings (h, k), so analyze and sample-mcmc comparisons use the same action")
    q.add_argument("--n", type=_int, default=None, help="number of configurations (with --data: the first N)")
    q.add_argument("--shape", type=_int_at_least(2), nargs="+", default=None,
                   help="lattice sides (default: the training lattice)")
    q.add_argument("--data", default=None, help="ensemble file to inpaint under the posterior (needs --mask)")
    q.add_argument("--mask", default=None, help="unknown sites for --data: block:RxC@I,J | random:FRACTION | FILE.npy")
    q.add_argument("--dtype", choices=("float32", "float64"), default=None, help="storage dtype (default float32)")
    _add_task_flags(q, "generate")
    _add_posterior_flags(q)

    nm = sub.add_parser("sample-neural", help="exact sampling with a trained model: importance weights, independence "
                                              "Metropolis, neural block updates, hybrid with HMC",
                        epilog="reweight: N model samples with log-weights (analyze uses them); imh: CHAINS chains "
                               "of N steps through model proposals; block/hybrid: CHAINS chains of N sweeps, each "
                               "sweep regenerating --updates random blocks by inpainting (hybrid adds --hmc-traj "
                               "HMC trajectories). The target is exp(-S) with the training data's m2, lam plus the "
                               "rewards --h, --k. log q comes from the ODE with its divergence: exact (autograd, "
                               "~one network pass per moving site) or hutchinson (--probes)")
    nm.add_argument("--model", required=True, help="model checkpoint written by phi4si train")
    nm.add_argument("--method", required=True, choices=("reweight", "imh", "block", "hybrid"))
    nm.add_argument("--n", type=_int, required=True,
                    help="samples (reweight), steps per chain (imh) or sweeps per chain (block, hybrid)")
    nm.add_argument("--out", required=True, help="output HDF5 ensemble file")
    nm.add_argument("--h", type=_finite_float, default=0.0, help="applied field (reward b = h 1; default 0)")
    nm.add_argument("--k", type=_finite_float, default=0.0, help="extra coupling (reward A = 2k Id; default 0)")
    nm.add_argument("--proposal", choices=("prior", "posterior"), default="prior",
                    help="reweight/imh proposals: the model (prior, default) or its posterior drift under --h/--k "
                         "(reward transform; keeps the ESS up when the posterior sits in the prior's tail)")
    nm.add_argument("--a0", type=_finite_float, default=None, help="--proposal posterior: start time (default 0.9)")
    nm.add_argument("--start", type=_start, default=None,
                    help="--proposal posterior: start mean pilot (default), noise or a number")
    nm.add_argument("--pilot", type=_int, default=None, help="--proposal posterior: pilot-run size (default 256)")
    nm.add_argument("--pilot-rounds", type=_int, default=None, help="--proposal posterior: pilot runs (default 2)")
    nm.add_argument("--chains", type=_int, default=1, help="independent chains (imh, block, hybrid; default 1)")
    nm.add_argument("--steps", type=_int, default=10, help="ODE steps of the log-density flow (default 10)")
    nm.add_argument("--solver", choices=SOLVERS, default="rk4", help="ODE solver (default rk4)")
    nm.add_argument("--divergence", choices=("colored", "exact", "hutchinson"), default="colored",
                    help="divergence of the velocity: colored (default; Rademacher probes split by a lattice "
                         "colouring of period --period), exact (autograd trace) or hutchinson")
    nm.add_argument("--probes", type=_int, default=None,
                    help="probe draws per step (colored, hutchinson; default 1; >= 2 gives an error estimate)")
    nm.add_argument("--period", type=_int, default=None, help="colouring period of --divergence colored (default 4)")
    nm.add_argument("--float64", action="store_true", help="integrate the flow in double precision")
    nm.add_argument("--block", type=_block, default=None, metavar="B",
                    help="block size of block/hybrid updates (B or BxC; default 4)")
    nm.add_argument("--updates", type=_int, default=None, help="block updates per sweep (default 1)")
    nm.add_argument("--hmc-traj", type=_int, default=None, help="HMC trajectories per hybrid sweep (default 1)")
    nm.add_argument("--hmc-eps", type=_pos_float, default=None, help="HMC step size (default 0.1)")
    nm.add_argument("--hmc-steps", type=_int, default=None, help="HMC leapfrog steps (default 10)")
    nm.add_argument("--n-therm", type=_int, default=None, help="discarded sweeps (block, hybrid; default 0)")
    nm.add_argument("--seed", type=_int, default=0, help="random seed (default 0)")
    nm.add_argument("--batch-size", type=_int, default=256, help="configurations per flow batch (default 256)")
    nm.add_argument("--max-batch", type=_int, default=512,
                    help="network batch of the divergence's copies (default 512)")
    nm.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="storage dtype")
    nm.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda or cuda:N")
    nm.add_argument("--threads", type=_int_at_least(1), default=None, help="torch CPU threads")
    nm.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    nm.add_argument("--resume", action="store_true",
                    help="continue --out (written in chunks with its random state) up to --n; same settings")
    nm.add_argument("--no-progress", action="store_true")

    from .tasks import add_task_parsers

    add_task_parsers(sub)

    d = sub.add_parser("demo", help="a small HMC run (8x8, m2=-4, lam=8), its analysis and plots")
    d.add_argument("--out", default="phi4si-demo", help="output directory (default ./phi4si-demo)")
    d.add_argument("--n-traj", type=_int_at_least(10), default=500)
    return ap


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _params(args):
    """Phi4Params from the standard form (--m2, --lam) or the hopping form (--kappa with --l)."""
    from ..lattice.params import Phi4Params

    hop = [f for f, v in (("--kappa", args.kappa), ("--l", args.l)) if v is not None]
    std = [f for f, v in (("--m2", args.m2), ("--lam", args.lam)) if v is not None]
    if hop and std:
        raise Phi4siError(f"{_and(hop + std)} exclude each other: give either the standard form (--m2, --lam) "
                          "or the hopping form (--kappa with --l), not both")
    if not hop:
        return Phi4Params(tuple(args.shape), -4.0 if args.m2 is None else args.m2,
                          8.0 if args.lam is None else args.lam, args.h, args.k)
    if len(hop) == 1:
        missing = "--l" if args.l is None else "--kappa"
        raise Phi4siError(f"--kappa and --l go together (hopping form); {missing} is missing")
    if args.l < 0:
        raise Phi4siError(f"--l must be >= 0 (lam = l / kappa^2; the action is unbounded below otherwise); "
                          f"got --l {args.l}")
    try:
        return Phi4Params.from_hopping(args.shape, args.kappa, args.l, h=args.h, k=args.k)
    except Phi4siError as e:  # say it in the user's terms: which standard-form couplings they mean
        d = len(args.shape)
        raise Phi4siError(f"--kappa {args.kappa} --l {args.l} means m2={(1 - 2 * args.l) / args.kappa - 2 * d:.6g}, "
                          f"lam={args.l / args.kappa ** 2:.6g}: {e}") from None


def cmd_sample(args, argv):
    from ..mcmc.run import sample_mcmc

    params = _params(args)
    sample_mcmc(params, args.out, sampler=args.sampler, chains=args.chains, n_traj=args.n_traj, n_therm=args.n_therm,
                every=args.every, eps=args.eps, n_steps=args.n_steps, integrator=args.integrator, mass=args.mass,
                target_accept=args.target_accept, adapt=False if args.no_adapt else None, jitter=args.jitter,
                seed=args.seed, resume=args.resume, overwrite=args.overwrite, dtype=args.dtype,
                flush_seconds=args.flush_seconds, progress=not args.no_progress,
                command="phi4si " + shlex.join(argv))
    print(f"wrote {args.out}", file=sys.stderr)


def cmd_analyze(args):
    from ..analysis.report import analyze_file, format_table

    res = analyze_file(args.file, S=args.S)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))


def cmd_plot(args):
    from ..analysis.plot import plot_ensemble

    for path in plot_ensemble(args.file, args.out):
        print(path)


def cmd_demo(args):
    from ..analysis.report import analyze_file, format_table
    from ..lattice.params import Phi4Params
    from ..mcmc.run import sample_mcmc
    from ..analysis.plot import plot_ensemble

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise Phi4siError(f"demo output {out} exists and is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "hmc_8x8.h5"
    params = Phi4Params((8, 8), m2=-4.0, lam=8.0)
    print(f"HMC on 8x8 phi^4 (m2=-4, lam=8): 8 chains x {args.n_traj} trajectories -> {path}", file=sys.stderr)
    sample_mcmc(params, path, sampler="hmc", chains=8, n_traj=args.n_traj, n_therm=100, every=5, seed=1,
                overwrite=True, command="phi4si demo")
    print(format_table(analyze_file(path)))
    for p in plot_ensemble(path, out):
        print(f"plot: {p}")


def _check_out(out, overwrite, what="--out"):
    """Refuse an output before any work: exists without overwrite, a directory, no parent folder."""
    from ..io import prepare_output

    return prepare_output(out, overwrite, what=what)


def _same_file(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _check_device(device):
    from ..errors import ParameterError

    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ParameterError(f"--device {device}: torch sees no CUDA device (use --device cpu)")
        idx = int(device.split(":")[1]) if ":" in device else 0
        if idx >= torch.cuda.device_count():
            raise ParameterError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")


def cmd_train(args, argv):
    from ..errors import ParameterError

    if args.resume and args.overwrite:
        raise ParameterError("--resume and --overwrite exclude each other")
    out = Path(args.out)
    if out.is_dir():
        raise ParameterError(f"--out {out} is a directory")
    if _same_file(args.out, args.data):
        raise ParameterError("--out is the --data file")
    if not Path(args.data).exists():
        from ..errors import EnsembleFileError

        raise EnsembleFileError(f"{args.data}: no such file")
    _run_training(args.data, args, argv)


def _run_training(data, args, argv):
    """Build the TrainConfig from the training flags, train on ``data`` (a file or a TrainingData)."""
    from ..errors import ParameterError
    from ..model.train import TrainConfig, train

    out = Path(args.out)
    steps, minutes = args.steps, args.minutes
    if steps is None and minutes is None:
        steps = 2000
        if args.resume and out.exists():  # continue to the checkpoint's own limit
            old = _checkpoint_config(out)
            steps, minutes = old.get("steps"), old.get("minutes")
            if steps is None and minutes is None:
                steps = 2000
    cfg = TrainConfig(steps=steps, minutes=minutes, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                      ema=args.ema, param=args.param, measure=args.measure, model=args.model, odd=args.odd,
                      augment=not args.no_augment, seed=args.seed, val_every=args.val_every,
                      checkpoint_every=args.checkpoint_every, device=args.device, threads=args.threads,
                      model_overrides=_net_overrides(args.net))
    if args.warmup < 0:
        raise ParameterError(f"--warmup must be >= 0, got {args.warmup}")
    if args.seed < 0:
        raise ParameterError(f"--seed must be >= 0, got {args.seed}")
    res = train(data, out, cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                log_path=args.log, command="phi4si " + shlex.join(argv))
    last = res["history"][-1] if res["history"] else {}
    val = ", ".join(f"{k} {v:.4g}" for k, v in (last.get("val") or {}).items())
    print(f"wrote {out} (step {res['step']}, {res['wall_time']:.1f} s"
          + (f"; validation loss: {val}" if val else "") + ")", file=sys.stderr)


def _net_overrides(specs) -> dict:
    """``--net KEY=VALUE`` flags -> UNetConfig overrides (bool, int, float, comma tuple or string),
    checked against the preset so that a bad field or value fails before training starts."""
    import dataclasses

    from ..errors import ParameterError
    from ..nn.unet import UNetConfig

    names = {f.name for f in dataclasses.fields(UNetConfig)} - {"dim", "odd"}
    out = {}

    def conv(v):
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
        for t in (int, float):
            try:
                return t(v)
            except ValueError:
                pass
        return v

    for spec in specs or []:
        key, eq, val = spec.partition("=")
        if not eq or not key or not val:
            raise ParameterError(f"--net {spec!r}: use KEY=VALUE")
        if key not in names:
            raise ParameterError(f"--net {key}: not a U-Net field (choose from {', '.join(sorted(names))}; "
                                 "dim comes from the data, odd from --odd)")
        out[key] = tuple(conv(v) for v in val.split(",")) if "," in val else conv(val)
        if key in ("channel_mult", "a_features") and not isinstance(out[key], tuple):
            out[key] = (out[key],)
    try:
        UNetConfig(**out)
    except (TypeError, ValueError) as e:
        raise ParameterError(f"--net: {e}") from None
    return out


def _checkpoint_config(path) -> dict:
    """The train_config of a checkpoint ({} if unreadable: train() then reports the problem)."""
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        return dict(ck.get("train_config") or {})
    except Exception:  # noqa: BLE001 - train(resume=True) gives the clear error
        return {}


def _load_model(path, device):
    from ..errors import CheckpointError
    from ..model.checkpoint import load_model

    _check_device(device)
    try:
        return load_model(path, device=device)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - a checkpoint whose content does not fit its own config
        raise CheckpointError(f"{path}: damaged or incompatible phi4si checkpoint ({type(e).__name__}: {e})") from None


def _solve_settings(args, steps, solver) -> dict:
    """Apply --threads and return the solver keywords shared by generate and inpaint."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return dict(steps=steps, solver=solver, sde=args.sde or None, seed=args.seed, batch_size=args.batch_size,
                grid_power=args.grid_power, progress=not args.no_progress)


def _task_settings(args):
    """Validated steps, solver and the settings dict recorded in the output's sampler attributes."""
    from ..errors import ParameterError

    if args.order is None:
        for flag, v in (("--block", args.block), ("--levels", args.levels)):
            if v is not None:
                raise ParameterError(f"{flag} applies to sequential generation only; give --order too")
    elif args.order == "coarse_to_fine":
        if args.block is not None:
            raise ParameterError("--order coarse_to_fine does not use --block (it uses --levels)")
    else:
        if args.levels is not None:
            raise ParameterError(f"--order {args.order} does not use --levels (coarse_to_fine does)")
        if args.block is None:
            raise ParameterError(f"--order {args.order} needs --block B (block size)")
    steps = args.steps if args.steps is not None else (20 if args.order else 50)
    if steps < 1:
        raise ParameterError(f"--steps must be >= 1, got {steps}")
    if args.sde is not None and args.sde < 0:
        raise ParameterError(f"--sde must be >= 0, got {args.sde}")
    if args.sde and args.solver is not None:
        raise ParameterError("--solver applies to the ODE; with --sde > 0 the SDE is integrated by Euler-Maruyama "
                             "(leave --solver out)")
    if args.batch_size < 1:
        raise ParameterError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.seed < 0:
        raise ParameterError(f"--seed must be >= 0, got {args.seed}")
    solver = args.solver or "heun"
    levels = 3 if args.levels is None else args.levels
    rec = {"solver": "euler-maruyama" if args.sde else solver, "steps": steps, "sde": args.sde,
           "grid_power": args.grid_power, "batch_size": args.batch_size, "device": args.device}
    if args.order:
        rec.update(order=args.order, block=args.block if args.order != "coarse_to_fine" else None,
                   levels=levels if args.order == "coarse_to_fine" else None, steps_per="block")
    return steps, solver, levels, rec


def _check_order(args, shape, levels, observed=None):
    """Build the sequential path once, so a block or level count that does not fit fails here."""
    from ..errors import ParameterError
    from ..interpolant.paths import sequential_path

    try:
        sequential_path(shape, args.order, block=args.block, levels=levels, seed=args.seed, observed=observed)
    except ValueError as e:
        raise ParameterError(f"--order {args.order} on the lattice {tuple(shape)}: {e}") from None


def _model_record(model, path) -> dict:
    return {"model": str(Path(path).resolve()), "model_step": model.meta.get("step"),
            "model_version": model.meta.get("version"), "param": model.param,
            "family": getattr(model.family, "to_dict", lambda: None)(), "model_shape": list(model.shape),
            "model_params": model.lattice.get("params")}


def _posterior_record(post, model) -> dict:
    if post is None:
        return {}
    return {"posterior": {**post.describe(), "a0": post.start_time(model)}}


def cmd_posterior(args, argv):
    from ..errors import ParameterError

    _posterior(args, required=True)
    if args.data is not None:
        if args.mask is None:
            raise ParameterError("--data needs --mask (the sites to generate under the posterior)")
        if args.shape is not None:
            raise ParameterError("--shape does not apply with --data (the data's lattice is used)")
        return cmd_inpaint(args, argv)
    if args.mask is not None:
        raise ParameterError("--mask needs --data (the configurations to inpaint)")
    if args.n is None:
        raise ParameterError("--n is required without --data")
    args.dtype = args.dtype or "float32"
    return cmd_generate(args, argv)


def _output_params(model, shape, post=None):
    """The output's couplings: the model's training data's, with the posterior's h, k when sampling one
    (whose start time is checked here, against the feasibility bound of k > 0, before any work)."""
    from ..lattice.params import Phi4Params

    params = Phi4Params.from_dict({**model.lattice["params"], "shape": list(shape)})
    if post is None:
        return params
    post.start_time(model)
    return params.with_rewards(h=post.h, k=post.k)


def cmd_generate(args, argv):
    import time

    from ..errors import ParameterError

    if args.n < 1:
        raise ParameterError(f"--n must be >= 1, got {args.n}")
    steps, solver, levels, rec = _task_settings(args)
    out = _check_out(args.out, args.overwrite)
    model = _load_model(args.model, args.device)
    shape = model.check_shape(model.shape if args.shape is None else args.shape)
    if args.order:
        _check_order(args, shape, levels)
    post = _posterior(args)
    params = _output_params(model, shape, post)
    from ..model.generate import generate, sequential, write_samples

    common = dict(_solve_settings(args, steps, solver), posterior=post)
    t0 = time.perf_counter()
    if args.order:
        phi = sequential(model, args.n, order=args.order, block=args.block, levels=levels, shape=shape, **common)
    else:
        phi = generate(model, args.n, shape=shape, **common)
    wall = time.perf_counter() - t0
    sampler = {"sampler": "interpolant", "exact": False, "task": "sequential" if args.order else "generate",
               **rec, **_model_record(model, args.model), **_posterior_record(post, model)}
    run = {"seed": args.seed, "n": args.n, "shape": list(shape), "dtype": args.dtype,
           "command": "phi4si " + shlex.join(argv), "wall_time": wall}
    write_samples(out, phi, params, sampler, run, dtype=args.dtype, overwrite=args.overwrite)
    print(f"wrote {out} ({args.n} configurations {'x'.join(map(str, shape))}, {wall:.1f} s)", file=sys.stderr)


def cmd_sample_neural(args, argv):
    from ..model.density import FlowSettings
    from ..errors import ParameterError
    from ..model.exact import sample_neural

    m = args.method
    only = {"--block": ("block", "hybrid"), "--updates": ("block", "hybrid"), "--n-therm": ("block", "hybrid"),
            "--hmc-traj": ("hybrid",), "--hmc-eps": ("hybrid",), "--hmc-steps": ("hybrid",)}
    for flag, methods in only.items():
        if getattr(args, flag[2:].replace("-", "_")) is not None and m not in methods:
            raise ParameterError(f"{flag} applies to --method {' or '.join(methods)} only")
    proposal = None
    if args.proposal == "posterior":
        if m not in ("reweight", "imh"):
            raise ParameterError("--proposal posterior applies to --method reweight or imh only")
        if args.h == 0 and args.k == 0:
            raise ParameterError("--proposal posterior needs a reward: --h and/or --k")
        proposal = _posterior_settings(args, args.h, args.k)
    else:
        for flag in ("a0", "start", "pilot", "pilot_rounds"):
            if getattr(args, flag) is not None:
                raise ParameterError(f"--{flag.replace('_', '-')} applies to --proposal posterior only")
    if args.chains != 1 and m == "reweight":
        raise ParameterError("--chains applies to imh, block and hybrid (reweight draws independent samples)")
    if args.probes is not None and args.divergence == "exact":
        raise ParameterError("--probes applies to --divergence colored or hutchinson only")
    if args.period is not None and args.divergence != "colored":
        raise ParameterError("--period applies to --divergence colored only")
    for flag, v, lo in (("--n", args.n, 1), ("--chains", args.chains, 1), ("--steps", args.steps, 1),
                        ("--probes", args.probes, 1), ("--period", args.period, 1),
                        ("--batch-size", args.batch_size, 1),
                        ("--max-batch", args.max_batch, 1), ("--seed", args.seed, 0),
                        ("--updates", args.updates, 1), ("--hmc-traj", args.hmc_traj, 1),
                        ("--hmc-steps", args.hmc_steps, 1), ("--n-therm", args.n_therm, 0)):
        if v is not None and v < lo:
            raise ParameterError(f"{flag} must be >= {lo}, got {v}")
    fs = FlowSettings(steps=args.steps, solver=args.solver, divergence=args.divergence, probes=args.probes or 1,
                      period=args.period or 4, float64=args.float64, batch_size=args.batch_size, max_batch=args.max_batch)
    if args.resume and args.overwrite:
        raise ParameterError("--resume and --overwrite exclude each other")
    out = Path(args.out) if args.resume else _check_out(args.out, args.overwrite)
    model = _load_model(args.model, args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    opt = {k: v for k, v in dict(block=args.block, updates=args.updates, hmc_traj=args.hmc_traj, hmc_eps=args.hmc_eps,
                                 hmc_steps=args.hmc_steps, n_therm=args.n_therm).items() if v is not None}
    summary = sample_neural(model, m, out, args.n, h=args.h, k=args.k, chains=args.chains, fs=fs, seed=args.seed,
                            proposal=proposal,
                            dtype=args.dtype, overwrite=args.overwrite, resume=args.resume,
                            progress=not args.no_progress,
                            model_path=str(Path(args.model).resolve()), command="phi4si " + shlex.join(argv), **opt)
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()
             if k != "method" and v is not None]
    print(f"wrote {out} ({m}: {', '.join(parts)})", file=sys.stderr)


def _read_configs(path, n):
    """The first n configurations (chain 0 first, then chain 1, ...), their dtype and the file's attrs."""
    import numpy as np

    from ..errors import EnsembleFileError, ParameterError
    from ..store import open_ensemble

    with open_ensemble(path) as ds:
        if "phi" not in ds:
            raise EnsembleFileError(f"{path}: holds no configurations")
        phi = ds["phi"]
        n_chains, n_cfg = int(phi.sizes["chain"]), int(phi.sizes["cfg"])
        total = n_chains * n_cfg
        if total == 0:
            raise EnsembleFileError(f"{path}: holds no stored configurations (was it run with --every 0?)")
        if n is None:
            n = total
        if n > total:
            raise ParameterError(f"--n {n}: {path} holds only {total} configurations ({n_chains} chains x {n_cfg})")
        parts, need = [], n
        for c in range(n_chains):
            if need == 0:
                break
            k = min(need, n_cfg)
            parts.append(np.asarray(phi.isel(chain=c, cfg=slice(0, k)).values))
            need -= k
        data = np.concatenate(parts)
        return data, str(phi.dtype), dict(ds.attrs)


def cmd_inpaint(args, argv):
    import time

    import numpy as np

    from ..errors import EnsembleFileError, ParameterError

    if args.n is not None and args.n < 1:
        raise ParameterError(f"--n must be >= 1, got {args.n}")
    steps, solver, levels, rec = _task_settings(args)
    if _same_file(args.out, args.data):
        raise ParameterError("--out is the --data file; write the completed configurations to another file")
    out = _check_out(args.out, args.overwrite)
    if not Path(args.data).exists():
        raise EnsembleFileError(f"{args.data}: no such file")
    model = _load_model(args.model, args.device)
    data, data_dtype, attrs = _read_configs(args.data, args.n)
    shape = tuple(data.shape[1:])
    try:
        model.check_shape(shape)
    except Phi4siError as e:
        raise type(e)(f"{args.data} (lattice {'x'.join(map(str, shape))}): {e}") from None
    from ..model.generate import inpaint, parse_mask, sequential, write_samples

    unknown = parse_mask(args.mask, shape, seed=args.seed)
    if args.order:
        _check_order(args, shape, levels, observed=~unknown)
    dtype = args.dtype or (data_dtype if data_dtype in ("float32", "float64") else "float64")
    post = _posterior(args)
    params = _output_params(model, shape, post)
    mp, dp = dict(model.lattice.get("params") or {}), dict(attrs.get("params") or {})
    mp.pop("shape", None)
    dp.pop("shape", None)
    if mp != dp:
        print(f"phi4si inpaint: warning: the data ({dp}) and the model's training data ({mp}) have different "
              "couplings; the output records the model's", file=sys.stderr)
    common = dict(_solve_settings(args, steps, solver), posterior=post)
    t0 = time.perf_counter()
    if args.order:
        phi = sequential(model, None, order=args.order, block=args.block, levels=levels, shape=shape, data=data,
                         observed=~unknown, **common)
    else:
        phi = inpaint(model, data, unknown, **common)
    wall = time.perf_counter() - t0
    sampler = {"sampler": "interpolant", "exact": False, "task": "sequential_inpaint" if args.order else "inpaint",
               **rec, **_model_record(model, args.model), **_posterior_record(post, model), "mask": args.mask,
               "unknown": np.asarray(unknown, dtype=np.uint8).tolist(), "n_unknown": int(unknown.sum()),
               "data": str(Path(args.data).resolve()), "data_params": attrs.get("params"),
               "data_selection": "first n configurations, chain-major"}
    run = {"seed": args.seed, "n": len(data), "shape": list(shape), "dtype": dtype,
           "command": "phi4si " + shlex.join(argv), "wall_time": wall}
    write_samples(out, phi, params, sampler, run, dtype=dtype, overwrite=args.overwrite)
    print(f"wrote {out} ({len(data)} configurations, {int(unknown.sum())} of {unknown.size} sites inpainted, "
          f"{wall:.1f} s)", file=sys.stderr)


# A number with a leading minus in any notation (-1e-9, -.5, -2.5E+3, -inf): argparse alone
# takes only -5 and -.5 for values, and reads "--lam -1e-9" as a missing value
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)


def _value_options(ap) -> set:
    """Option strings (all subcommands) that take exactly one value."""
    opts = set()
    for act in ap._actions:
        if isinstance(act, argparse._SubParsersAction):
            for p in act.choices.values():
                opts |= _value_options(p)
        elif act.option_strings and act.nargs is None:
            opts.update(o for o in act.option_strings if o.startswith("--"))
    return opts


def _glue_negative_numbers(ap, argv):
    """``--lam -1e-9`` -> ``--lam=-1e-9`` for options that take one value."""
    opts = _value_options(ap)
    out = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out.extend(argv[i:])
            break
        if a in opts and i + 1 < len(argv) and _NEGATIVE_NUMBER.match(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def parse_args(argv):
    """Parse a ``phi4si`` command line (list of strings) into an argparse namespace."""
    ap = build_parser()
    return ap.parse_args(_glue_negative_numbers(ap, list(argv)))


def _stdout_to_devnull():
    """Point the process's stdout at /dev/null, so the interpreter's final flush of what is
    still buffered does not fail again (Python docs, "Note on SIGPIPE")."""
    if sys.stdout is not sys.__stdout__:  # a replaced stdout (tests, embedding): leave the fd alone
        return
    try:
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError):
        return
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            return _run(argv)
        finally:  # also after argparse's --help/--version, which ignore write errors themselves
            sys.stdout.flush()
    except BrokenPipeError:
        # the reader of our output went away (``phi4si analyze FILE | head -1``): stop
        # quietly, as a Unix filter killed by SIGPIPE would, with its status 128 + 13
        _stdout_to_devnull()
        return 141


def _run(argv) -> int:
    args = parse_args(argv)
    try:
        if args.cmd == "sample-mcmc":
            cmd_sample(args, argv)
        elif args.cmd == "analyze":
            cmd_analyze(args)
        elif args.cmd == "plot":
            cmd_plot(args)
        elif args.cmd == "demo":
            cmd_demo(args)
        elif args.cmd == "train":
            cmd_train(args, argv)
        elif args.cmd == "generate":
            cmd_generate(args, argv)
        elif args.cmd == "inpaint":
            cmd_inpaint(args, argv)
        elif args.cmd == "sample-neural":
            cmd_sample_neural(args, argv)
        elif args.cmd == "posterior":
            cmd_posterior(args, argv)
        elif args.cmd in ("image", "maze"):
            from .tasks import run_task

            run_task(args, argv)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
    except Phi4siError as e:
        print(f"phi4si {args.cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
