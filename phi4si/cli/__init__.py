"""The ``phi4si`` command line.

    phi4si demo [--out DIR]                       small HMC run, analysis table and plots
    phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --sampler hmc ... --out FILE.h5
    phi4si analyze FILE.h5 [--json]
    phi4si compare REF.h5 FILE.h5 [...] [--out DIR]  every observable against a reference, with z-scores
    phi4si plot FILE.h5 --out DIR
    phi4si train --data ENS.h5 --out MODEL.pt [--steps N | --minutes M] ...   train an interpolant
    phi4si generate --model MODEL.pt --n N --out FILE.h5 [--order ...]        samples -> ensemble file
    phi4si inpaint --model MODEL.pt --data ENS.h5 --mask SPEC --out FILE.h5   complete masked sites
    phi4si sample-neural --model MODEL.pt --method imh|block|hybrid|reweight [--h H --k K] --n N --out FILE.h5
                                                  exact sampling with the model (weights or Metropolis)
    phi4si models [--json]                        the shipped trained models (--model NAME works everywhere)
    phi4si image train|generate|inpaint|edit|evaluate ...   images (see phi4si.cli.images)
    phi4si maze dataset|train|plan|evaluate ...              maze planning (see phi4si.cli.maze)

Errors in the input end with a one-line message and a non-zero exit status, before anything on
disk is touched: 2 for what argparse refuses (a malformed value, a missing flag), 1 for a
:class:`~phi4si.errors.Phi4siError` (``phi4si CMD: error: ...``), 130 on Ctrl-C; ``maze plan``
exits with 3 when it found no valid path.  Output into a closed pipe (``phi4si analyze FILE |
head -1``) ends quietly with status 141.

The command line parses and prints; the library validates, so the Python API refuses exactly
what the command line refuses (:func:`phi4si.mcmc.run.sample_mcmc`, the tasks of
:mod:`phi4si.model.generate`, :func:`phi4si.model.exact.sample_neural` and the settings they take).
A refusal of the library names its keywords; the commands say them as flags
(:func:`~phi4si.cli.options.flag_terms`).  Only what a command line can get wrong on its own is
refused here: flags that the chosen sub-mode would ignore, files given twice.

Layout: one module per command family, each with ``add_parsers(sub)`` that adds its subcommands
and binds each to its function with ``set_defaults(func=...)``, which :func:`main` calls as
``func(args, argv)`` (no dispatch chain to keep in step with the parsers):

* :mod:`~phi4si.cli.mcmc`   sample-mcmc, analyze, compare, plot
* :mod:`~phi4si.cli.demo`   demo
* :mod:`~phi4si.cli.model`  train, generate, inpaint, posterior
* :mod:`~phi4si.cli.neural` sample-neural
* :mod:`~phi4si.cli.schedule` optimize-path (optimised time grids for ``--path``)
* :mod:`~phi4si.cli.images` image train|generate|inpaint|edit|evaluate
* :mod:`~phi4si.cli.maze`   maze dataset|train|plan|evaluate
* :mod:`~phi4si.cli.training` what the three ``train`` commands share (checks, TrainConfig from the flags)
* :mod:`~phi4si.cli.options` what they share (argument types, flag groups, name tuples, helpers);
  it imports no other module of the package's command line, so the imports form a tree.

No module imports torch (or the library's heavy parts) at import time, so ``phi4si --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from .._version import __version__
from ..errors import Phi4siError
from . import demo, images, maze, mcmc, model, neural, schedule, shipped

__all__ = ["main", "build_parser", "parse_args"]

# the order of the subcommands in ``phi4si --help``
FAMILIES = (mcmc, model, neural, shipped, schedule, images, maze, demo)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="phi4si",
                                 description="Lattice phi^4 sampling and multitask stochastic interpolants.")
    ap.add_argument("--version", action="version", version=f"phi4si {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for family in FAMILIES:
        family.add_parsers(sub)
    return ap


# A number with a leading minus in any notation (-1e-9, -.5, -2.5E+3, -inf): argparse alone
# takes only -5 and -.5 for values, and reads "--lam -1e-9" as a missing value
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)


def _value_options(parsers) -> set:
    """Option strings of ``parsers`` (the chain of the command being parsed) that take exactly one value."""
    return {o for p in parsers for act in p._actions if act.option_strings and act.nargs is None
            for o in act.option_strings if o.startswith("--")}


def _command_chain(ap, argv) -> list:
    """The parsers of the (sub)command named in ``argv``: ``phi4si maze plan ...`` -> [phi4si, maze, plan]."""
    chain = [ap]
    for a in argv:
        subs = [act for act in chain[-1]._actions if isinstance(act, argparse._SubParsersAction)]
        if subs and a in subs[0].choices:
            chain.append(subs[0].choices[a])
    return chain


def _glue_negative_numbers(ap, argv):
    """``--lam -1e-9`` -> ``--lam=-1e-9`` for the options of this command that take one value (an
    option of two values, ``maze plan --start -100 1.5``, is left to argparse)."""
    opts = _value_options(_command_chain(ap, argv))
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
    argv = list(argv)
    for p in _command_chain(ap, argv):
        # argparse's own test for "a negative number, not an option" knows only -5 and -.5; with this
        # one a value of several numbers may be written -1e2 too (maze plan --start -1e2 1.5)
        p._negative_number_matcher = _NEGATIVE_NUMBER
    return ap.parse_args(_glue_negative_numbers(ap, argv))


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
    """Run ``phi4si ARGV...``; returns the exit status (argparse's own errors exit with 2)."""
    from ..interrupts import watch_start

    global _PROGRAM
    if argv is None:        # the program itself (not a call from Python): Ctrl-C during the start-up
        watch_start()       # is never swallowed (phi4si.interrupts)
        _PROGRAM = True
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            return _run(argv)
        finally:  # also after argparse's --help/--version, which ignore write errors themselves
            sys.stdout.flush()
    except KeyboardInterrupt:      # while the command line was being read
        print("\nphi4si: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (``phi4si analyze FILE | head -1``): stop
        # quietly, as a Unix filter killed by SIGPIPE would, with its status 128 + 13
        _stdout_to_devnull()
        return 141


_PROGRAM = False      # main() runs as the phi4si program (not called from Python)


def _end_if_damaged(status: int) -> None:
    """After a failed HDF5 write, end now: closing the damaged handles (even at interpreter exit) can
    crash the process (:func:`phi4si.store.damaged`); what is on disk is already consistent."""
    store = sys.modules.get("phi4si.store")
    if not _PROGRAM or store is None or not store.damaged():
        return
    from ..resources import exit_now

    exit_now(status)


def _run(argv) -> int:
    from ..interrupts import pending, was_said

    args = parse_args(argv)
    try:
        status = args.func(args, argv)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
    except Phi4siError as e:
        print(f"phi4si {args.cmd}: error: {e}", file=sys.stderr)
        _end_if_damaged(1)
        return 1
    except BrokenPipeError:
        raise                 # the reader went away: main() ends quietly
    except OSError as e:      # a write (or read) the system refused: no space, read-only, a size limit, I/O error
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"phi4si {args.cmd}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        if not was_said(e):     # the run did not say where it stopped (e.g. during its start-up)
            print(f"\nphi4si {args.cmd}: interrupted", file=sys.stderr)
        return 130
    if pending():           # a signal whose KeyboardInterrupt Python swallowed (in a finaliser)
        print(f"phi4si {args.cmd}: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
