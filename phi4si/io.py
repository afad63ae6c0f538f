"""Output files: the rules every writer of phi4si follows, in one place.

* :func:`prepare_output` refuses an output before any work is done (exists without ``overwrite``,
  a directory, a missing folder, ``resume`` and ``overwrite`` together, a resume of nothing);
* :func:`atomic_write` writes a file under a temporary name in the same folder and renames it over
  the target, so a reader never sees half a file and an interrupted write leaves the old file;
* :func:`write_json` is the atomic write of a JSON document, :func:`save_figure` of a matplotlib figure;
* :func:`check_resume` refuses a resume whose settings differ from those the file was made with;
* :func:`utc_now` is the ``date`` every output records (UTC, ISO 8601);
* :func:`rng_to_json` / :func:`rng_from_json` carry a numpy PCG64 generator's exact state through
  a file, so a resumed run continues the random stream bit for bit;
* :func:`lock_output` makes a process the one writer of an output for a whole run (an OS lock):
  a second writer, a resume of a live run or an ``--overwrite`` of it is refused, naming the
  process that holds the file.

>>> import json, os, tempfile
>>> import numpy as np
>>> with tempfile.TemporaryDirectory() as d:
...     out = prepare_output(os.path.join(d, "r.json"))
...     _ = write_json(out, {"a": 1})
...     json.loads(out.read_text())
{'a': 1}
>>> rng = np.random.default_rng(5); _ = rng.random(3)
>>> rng_from_json(json.loads(json.dumps(rng_to_json(rng)))).random() == rng.random()
True
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import FileBusyError, OutputExistsError, OutputWriteError, ParameterError, Phi4siError, ResumeError

__all__ = ["prepare_output", "atomic_write", "write_json", "check_resume", "utc_now", "rng_to_json",
           "rng_from_json", "same_file", "lock_output", "temporary_name", "shown_name", "save_figure"]

# the system's refusals of a write (no space, a size limit or quota, read-only, no permission, I/O error)
WRITE_ERRNOS = {getattr(errno, n) for n in ("ENOSPC", "EFBIG", "EDQUOT", "EROFS", "EACCES", "EPERM", "EIO")
                if hasattr(errno, n)}
REPLACE_HINT = "pass --overwrite to replace it"
RESUME_HINT = "pass --overwrite to replace it or --resume to continue it"


def prepare_output(out, overwrite: bool = False, resume: bool = False, what: str = "output",
                   hint: str | None = None, resumable: bool = False) -> Path:
    """The output path, checked before any work: ``resume`` and ``overwrite`` exclude each other
    (:class:`~phi4si.errors.ParameterError`); a directory or a missing parent folder is refused
    (ParameterError); an existing file without ``overwrite`` or ``resume`` is refused
    (:class:`~phi4si.errors.OutputExistsError`, whose message ends with ``hint``: by default how to
    replace it, and with ``resumable`` how to continue it); ``resume`` of a missing file is refused
    (:class:`~phi4si.errors.ResumeError`).

    >>> prepare_output("/nonexistent-dir/x.h5")
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: output directory /nonexistent-dir does not exist
    """
    out = Path(out)
    if resume and overwrite:
        raise ParameterError("--resume and --overwrite exclude each other")
    if out.is_dir():
        raise ParameterError(f"{what} {out} is a directory")
    if not out.parent.is_dir():
        if out.parent.exists():
            raise ParameterError(f"output location {out.parent} is not a directory")
        raise ParameterError(f"output directory {out.parent} does not exist")
    if resume:
        if not out.exists():
            raise ResumeError(f"cannot resume: {out} does not exist")
    elif out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; {hint or (RESUME_HINT if resumable else REPLACE_HINT)}")
    _check_writable(out.parent)
    return out


def _check_writable(folder: Path) -> None:
    """Refuse a folder that cannot take a new file (read-only file system, no permission) before any
    work, by creating and removing a hidden probe file there."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".phi4si-", suffix=".probe")
    except OSError as e:
        raise ParameterError(f"cannot write into {folder}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


def temporary_name(path) -> Path:
    """The temporary file :func:`atomic_write` writes before renaming: hidden, in the target's folder
    (a rename within one file system is atomic) and named after this process (two writers never
    share one)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def shown_name(path) -> Path:
    """The output a temporary file stands for (``.NAME.PID.tmp`` -> ``NAME``), for messages."""
    path = Path(path)
    name = path.name
    while True:
        m = re.fullmatch(r"\.(.+)\.\d+\.tmp", name)
        if not m:
            return path.with_name(name)
        name = m.group(1)


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to write the file at a temporary name, then rename it to ``path``; if
    ``write`` fails (or is interrupted) the temporary file is removed and ``path`` is untouched.
    A write the system refuses (no space, a size limit, a read-only or failing disk) is an
    :class:`~phi4si.errors.OutputWriteError` naming the file."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if isinstance(e, Phi4siError) or e.errno not in WRITE_ERRNOS:
            raise
        kept = "the file as it was before is unchanged" if path.exists() else "nothing was written"
        raise OutputWriteError(f"{shown_name(path)}: writing failed ({e.strerror or e}); {kept}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_figure(fig, path, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)`` atomically (:func:`atomic_write`): a failed write (no space, a
    read-only folder) leaves no half-written image; the format comes from the suffix (png default)."""
    path = Path(path)
    fmt = kwargs.pop("format", path.suffix[1:].lower() or "png")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically (:func:`atomic_write`)."""
    text = json.dumps(obj, indent=1) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_resume(out, old: dict, new: dict, keys=None, label: str = "") -> None:
    """Refuse to resume ``out`` if a setting differs: for every key of ``keys`` (default: all of
    ``new``) ``old[key]`` must equal ``new[key]``; the error names the first that does not
    (``cannot resume OUT: LABELkey was OLD, now NEW``).

    >>> check_resume("f.h5", {"seed": 1}, {"seed": 2}, label="setting ")
    Traceback (most recent call last):
    ...
    phi4si.errors.ResumeError: cannot resume f.h5: setting seed was 1, now 2
    """
    for key in (new if keys is None else keys):
        if old.get(key) != new.get(key):
            raise ResumeError(f"cannot resume {out}: {label}{key} was {old.get(key)!r}, now {new.get(key)!r}")


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (the ``date`` of every output file)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def rng_to_json(rng: np.random.Generator) -> dict:
    """The exact state of a PCG64 ``numpy.random.Generator`` as JSON-able values."""
    st = rng.bit_generator.state
    return {"bit_generator": st["bit_generator"], "state": {k: str(v) for k, v in st["state"].items()},
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def rng_from_json(js: dict) -> np.random.Generator:
    """The generator whose state :func:`rng_to_json` recorded."""
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": js["bit_generator"],
                               "state": {k: int(v) for k, v in js["state"].items()},
                               "has_uint32": js["has_uint32"], "uinteger": js["uinteger"]}
    return rng


def same_file(a, b) -> bool:
    """Whether two paths name the same file (so that an output never overwrites its own input)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def lock_path(path) -> Path:
    """The lock file of an output: hidden, beside it (``.NAME.lock``), present only while a run holds it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def lock_output(path, what: str = "output"):
    """Hold an exclusive OS lock (``fcntl.flock``) on ``path``'s lock file for the ``with`` block: the
    one-writer rule of every long run.  A second writer is refused at once with
    :class:`~phi4si.errors.FileBusyError` naming the process that holds the lock (its pid and
    command line are in the lock file).  The lock goes with the process (a killed run leaves no
    stale lock, at most a stale lock file, which the next run reuses); the lock file is removed when
    the block ends.  Where the OS has no ``fcntl`` (Windows), nothing is locked.

    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "run.h5")
    >>> with lock_output(out):
    ...     os.path.exists(lock_path(out))
    True
    >>> os.path.exists(lock_path(out))
    False
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no POSIX locks
        yield
        return
    lp = lock_path(path)
    while True:
        fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise FileBusyError(f"{path} is being written by another process ({holder}); wait for it to end or "
                                f"stop it, or choose another {what}") from None
        try:                     # the file we locked may have been removed by its last holder: retry
            same = os.fstat(fd).st_ino == os.stat(lp).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}\n".encode())
        _remove_stale_temporaries(Path(path))
        yield
    finally:
        try:
            os.unlink(lp)        # while still holding the lock, so no one can lock the unlinked file unnoticed
        except FileNotFoundError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files (:func:`temporary_name`) a killed writer of ``path`` left behind:
    those whose process no longer exists (called with the lock held, so no live writer is lost)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-4].split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:       # alive, someone else's
            pass


def _holder(fd) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not yet written its name"
