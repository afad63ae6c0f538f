"""``phi4si sample-mcmc``, ``analyze``, ``compare`` and ``plot``: exact MCMC ensembles and what is read from them.

The flags of sample-mcmc are parsed here; their values are validated by
:func:`phi4si.mcmc.run.sample_mcmc` (one place for the command line and the Python API).  The
lattice shape and the hopping form (``--kappa`` with ``--l``) are the command line's own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import Phi4siError
from .options import DTYPES, add_progress_flags, command_line, finite_float, integer, integer_at_least, positive_float

__all__ = ["add_parsers", "cmd_sample", "cmd_analyze", "cmd_compare", "cmd_plot"]


def add_parsers(sub):
    from ..mcmc import SAMPLERS

    s = sub.add_parser("sample-mcmc", help="generate a phi^4 ensemble with an exact MCMC sampler (HDF5)",
                       epilog="sampler-specific flags: hmc: --integrator --target-accept --no-adapt; "
                              "hmc/fahmc: --traj-length; fahmc: --integrator --mass --target-accept --no-adapt --kernel; "
                              "langevin: --mass --kernel; mala: --mass --target-accept --no-adapt --kernel (others apply to every sampler); "
                              "a flag the chosen sampler does not use is an error")
    s.add_argument("--shape", type=integer_at_least(2), nargs="+", default=[8, 8], help="lattice sides (default 8 8)")
    s.add_argument("--m2", type=finite_float, default=None, help="bare mass squared (default -4)")
    s.add_argument("--lam", type=finite_float, default=None, help="quartic coupling (default 8)")
    s.add_argument("--h", type=finite_float, default=0.0, help="applied field h (default 0)")
    s.add_argument("--k", type=finite_float, default=0.0, help="extra quadratic coupling k (default 0)")
    s.add_argument("--kappa", type=positive_float, default=None,
                   help="hopping parameter (hopping form, with --l; instead of --m2/--lam)")
    s.add_argument("--l", type=finite_float, default=None, help="hopping-form quartic coupling (with --kappa)")
    s.add_argument("--sampler", choices=SAMPLERS, default="hmc",
                   help="hmc (default), fahmc (Fourier-accelerated HMC), mala (Metropolis-adjusted preconditioned "
                        "Langevin) - exact; langevin (unadjusted, O(dt) bias)")
    s.add_argument("--chains", type=integer, default=4, help="independent chains (default 4)")
    s.add_argument("--n-traj", type=integer, default=1000, help="measured trajectories per chain (default 1000)")
    s.add_argument("--n-therm", type=integer, default=200,
                   help="thermalisation trajectories, eps adapted, not stored (default 200)")
    s.add_argument("--every", type=integer, default=1,
                   help="store every N-th configuration (default 1; 0: none, only the measurements)")
    s.add_argument("--eps", type=finite_float, default=None, help="(initial) step size / Langevin dt")
    s.add_argument("--n-steps", type=integer, default=None, help="integration steps per trajectory")
    s.add_argument("--integrator", choices=("leapfrog", "omelyan"), default=None,
                   help="hmc, fahmc (default leapfrog)")
    s.add_argument("--mass", type=finite_float, default=None,
                   help="Fourier mass M_fa (fahmc) / M (langevin, mala) (default 1)")
    s.add_argument("--kernel", choices=("lattice", "measured"), default=None,
                   help="kinetic kernel (fahmc) / mobility (langevin, mala): lattice p_hat^2 + M^2 (default) or "
                        "measured: 1/G(p) measured during thermalisation, frozen at n_therm/2, recorded in the file")
    s.add_argument("--traj-length", type=_traj_length, default=None, metavar="T|auto",
                   help="trajectory length (hmc, fahmc): the steps follow eps (round(T/eps)); auto: the quarter "
                        "period of the slowest mode, from G(p) measured during thermalisation")
    s.add_argument("--target-accept", type=finite_float, default=None,
                   help="acceptance the step-size adaptation aims at (hmc, fahmc, mala)")
    s.add_argument("--no-adapt", action="store_true", help="keep eps fixed during thermalisation (hmc, fahmc, mala)")
    s.add_argument("--jitter", type=finite_float, default=None,
                   help="randomise eps per trajectory by +-jitter (relative; default 0.1 for hmc/fahmc, 0 otherwise)")
    s.add_argument("--seed", type=integer, default=0,
                   help="seed of the run's random stream (PCG64, stored in the file so --resume continues it; default 0)")
    s.add_argument("--out", required=True, help="output HDF5 file")
    s.add_argument("--resume", action="store_true", help="continue an interrupted (or shorter) run in --out")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.add_argument("--dtype", choices=DTYPES, default="float64", help="storage dtype of configurations")
    s.add_argument("--flush-seconds", type=finite_float, default=5.0, help="checkpoint interval (seconds)")
    add_progress_flags(s)
    s.set_defaults(func=cmd_sample)

    a = sub.add_parser("analyze", help="observables with Gamma-method errors")
    a.add_argument("file", nargs="+", metavar="FILE",
                   help="an ensemble file, or several parts of one ensemble (same couplings, sampler and length, "
                        "different seeds): analysed as one, their chains together")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--S", type=positive_float, default=2.0, help="Gamma-method window parameter S (default 2)")
    a.set_defaults(func=cmd_analyze)

    c = sub.add_parser("compare", help="every observable of ensembles against a reference: deviations, z-scores, "
                                       "G(p), C(t), m histograms",
                       description="Compare ensemble files with the first (the reference, e.g. a long HMC run): "
                                   "<m>, <|m|>, chi, U4, xi_2, <S>/V, <phi^2>, <phi^4> with errors, relative "
                                   "deviations and z-scores; the momentum spectrum G(p) on every momentum orbit and "
                                   "C(t); the total-variation distance of the m histograms beside its null level. "
                                   "Importance weights of reweighted files are applied.")
    c.add_argument("files", nargs="+", metavar="FILE", help="reference first, then the ensembles to judge")
    c.add_argument("--label", action="append", default=None, metavar="NAME",
                   help="a name per file, in order (default: the file names)")
    c.add_argument("--out", default=None, metavar="DIR",
                   help="also write compare.md, compare.json and overlaid plots (PNG) into DIR")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    c.add_argument("--S", type=positive_float, default=2.0, help="Gamma-method window parameter S (default 2)")
    c.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="histogram, MC history, correlator, configurations (PNG)")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reference", default=None, metavar="REF",
                   help="an ensemble of the same couplings (e.g. HMC) overlaid on FILE: compare_hist_m.png, "
                        "compare_spectrum.png, compare_correlator.png")
    p.set_defaults(func=cmd_plot)


def _traj_length(text: str):
    """``auto`` or a finite number (its range is checked by sample_mcmc)."""
    return "auto" if text == "auto" else finite_float(text)


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
                kernel=args.kernel, traj_length=args.traj_length,
                seed=args.seed, resume=args.resume, overwrite=args.overwrite, dtype=args.dtype,
                flush_seconds=args.flush_seconds, progress=args.progress, command=command_line(argv))
    print(f"wrote {args.out}", file=sys.stderr)


def cmd_analyze(args, argv):
    from ..analysis.report import analyze_file, format_table

    if len({str(Path(f).resolve()) for f in args.file}) != len(args.file):
        raise Phi4siError("a file is given twice")
    res = analyze_file(args.file[0] if len(args.file) == 1 else args.file, S=args.S)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))


def cmd_compare(args, argv):
    from ..analysis.compare import compare
    from ..analysis.plot import output_folder
    from ..io import atomic_write, write_json

    if len(args.files) < 2:
        raise Phi4siError("compare needs a reference file and at least one file to compare with it")
    if len({str(Path(f).resolve()) for f in args.files}) != len(args.files):
        raise Phi4siError("a file is given twice")
    if args.label is not None and len(args.label) != len(args.files):
        raise Phi4siError(f"{len(args.label)} --label for {len(args.files)} files: give one per file, or none")
    labels = args.label or [Path(f).name if Path(f).name not in [Path(g).name for g in args.files if g != f] else f
                            for f in args.files]
    out = output_folder(args.out) if args.out is not None else None     # refused before the (slow) analysis
    c = compare(args.files, labels=labels, S=args.S)
    doc = c.to_dict()
    print(json.dumps(doc, indent=1) if args.json else c.table())
    if out is not None:
        table = c.table() + "\n"
        written = [atomic_write(out / "compare.md", lambda tmp: Path(tmp).write_text(table)),
                   write_json(out / "compare.json", doc)]
        written += c.plot(out)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)


def cmd_plot(args, argv):
    from ..analysis.plot import plot_ensemble

    overlay = None
    if args.reference is not None:               # (other couplings: refused before any figure)
        from pathlib import Path

        from ..analysis.compare import compare

        overlay = compare([args.reference, args.file],
                          labels=[f"reference ({Path(args.reference).name})", Path(args.file).name])
    written = plot_ensemble(args.file, args.out)
    if overlay is not None:
        written += overlay.plot(args.out)
    for path in written:
        print(path)
