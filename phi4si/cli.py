"""The ``phi4si`` command line.

    phi4si demo [--out DIR]                       small HMC run, analysis table and plots
    phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --sampler hmc ... --out FILE.h5
    phi4si analyze FILE.h5 [--json]
    phi4si plot FILE.h5 --out DIR

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

from . import __version__
from .errors import Phi4siError


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


def build_parser() -> argparse.ArgumentParser:
    from .mcmc import SAMPLERS

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

    d = sub.add_parser("demo", help="a small HMC run (8x8, m2=-4, lam=8), its analysis and plots")
    d.add_argument("--out", default="phi4si-demo", help="output directory (default ./phi4si-demo)")
    d.add_argument("--n-traj", type=_int_at_least(10), default=500)
    return ap


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _params(args):
    """Phi4Params from the standard form (--m2, --lam) or the hopping form (--kappa with --l)."""
    from .lattice.params import Phi4Params

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
    from .mcmc.run import sample_mcmc

    params = _params(args)
    sample_mcmc(params, args.out, sampler=args.sampler, chains=args.chains, n_traj=args.n_traj, n_therm=args.n_therm,
                every=args.every, eps=args.eps, n_steps=args.n_steps, integrator=args.integrator, mass=args.mass,
                target_accept=args.target_accept, adapt=False if args.no_adapt else None, jitter=args.jitter,
                seed=args.seed, resume=args.resume, overwrite=args.overwrite, dtype=args.dtype,
                flush_seconds=args.flush_seconds, progress=not args.no_progress,
                command="phi4si " + shlex.join(argv))
    print(f"wrote {args.out}", file=sys.stderr)


def cmd_analyze(args):
    from .analysis import analyze_file, format_table

    res = analyze_file(args.file, S=args.S)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))


def cmd_plot(args):
    from .plot import plot_ensemble

    for path in plot_ensemble(args.file, args.out):
        print(path)


def cmd_demo(args):
    from .analysis import analyze_file, format_table
    from .lattice.params import Phi4Params
    from .mcmc.run import sample_mcmc
    from .plot import plot_ensemble

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
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
    except Phi4siError as e:
        print(f"phi4si {args.cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
