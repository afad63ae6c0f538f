"""``python -m phi4si`` and the ``phi4si`` program: :func:`entry`."""

import sys


def entry() -> int:
    """The program: Ctrl-C handling first (so a signal while the command line's modules are imported
    is never a traceback, :func:`phi4si.interrupts.watch_start`), then :func:`phi4si.cli.main`; a
    signal that comes once the command is done no longer changes its exit status."""
    import signal

    from phi4si.interrupts import settle, watch_start

    watch_start()
    try:
        from phi4si.cli import main

        status = main()
        settle()      # a KeyboardInterrupt still due (phi4si.interrupts) would come after the work: drop it
    except KeyboardInterrupt:
        print("\nphi4si: interrupted", file=sys.stderr)
        status = 130
    for s in (signal.SIGINT, signal.SIGTERM):   # the work is over: a late signal only ends the exit
        signal.signal(s, signal.SIG_IGN)
    if status == 130:
        # Interrupted: a KeyboardInterrupt raised inside an import (e.g. torch's, during the start-up)
        # can leave the interpreter marked "unhandled KeyboardInterrupt", and its exit then kills the
        # process by SIGINT (status -2) after our one line.  Everything is written and closed by now.
        from phi4si.resources import exit_now

        exit_now(status)
    return status


if __name__ == "__main__":
    sys.exit(entry())
