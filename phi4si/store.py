"""HDF5 ensemble files: the schema, incremental writing, resume state, and ``open_ensemble``.

Layout (netCDF-4 compatible: every variable has dimension scales, so the file also opens
with ``xarray.open_dataset(path, engine="h5netcdf")``)::

    /chain (chain)           chain index                       dimension scale
    /traj  (traj)            trajectory index (unlimited)      dimension scale
    /cfg   (cfg)             trajectory index of each stored configuration (unlimited)
    /x0, /x1, ... (x_mu)     lattice coordinates               dimension scales
    /dir   (dir)             lattice direction mu
    /m, /S, /accepted, /dH  (chain, traj)       per-trajectory scalars
    /gp    (chain, traj, dir)                   |phi~(p_min e_mu)|^2 / V per trajectory
    /phi   (chain, cfg, x0, ...)               configurations (every ``every``-th
                                               trajectory; chunked, gzip, float32 or float64)
    /state/phi (chain, site), /state/rng, /state/counters   resume state (float64 fields,
                                               PCG64 state, n_done, t_therm, eps, acc_sum, wall_time)

Root attributes: ``phi4si_format``, ``params``/``sampler``/``run`` (JSON), ``version``,
and a summary written when a run ends: ``n_done`` (completed measured trajectories;
anything beyond it is ignored), ``eps`` (the tuned, frozen step size), ``acceptance``,
``wall_time``.  The authoritative live values are in ``/state/counters``.

The writer holds the file open in HDF5 SWMR mode, in which the file on disk is valid at
every instant; each flush appends, then writes the resume state with ``n_done`` last.  A
run killed at any moment (even by SIGKILL) leaves a file holding every completed
measurement up to the last flush; ``open_ensemble`` reads it (and live files) in SWMR
mode, and ``--resume`` first rewrites it into a clean file (:func:`repair`).
"""

# layout: the ensemble schema in one module: its writer, its readers, the resume state, the repair and
# the integrity checks share the private helpers that know the layout (_open, _read_state), so the
# schema has one home; a package split would make them public for no reader outside.
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np

from .errors import EnsembleFileError, FileBusyError, OutputWriteError
from .io import atomic_write, shown_name

FORMAT = "phi4si-ensemble/1"
SCALARS = ("m", "S", "accepted", "dH")
OPTIONAL_SCALARS = ("log_w",)   # importance log-weights of a reweighting ensemble (phi4si sample-neural)


def _scalars(f) -> tuple:
    """The per-trajectory scalar datasets of an open file: SCALARS plus the optional ones present."""
    return SCALARS + tuple(k for k in OPTIONAL_SCALARS if k in f)


def _h5():
    import h5py

    return h5py


def _open(path, mode, **kw):
    h5py = _h5()
    try:
        return h5py.File(path, mode, **kw)
    except FileNotFoundError:
        raise EnsembleFileError(f"{path}: no such file") from None
    except OSError as e:
        msg = str(e)
        if "lock" in msg or "already open" in msg:
            raise FileBusyError(f"{path}: file is open in another process ({msg})") from None
        raise EnsembleFileError(f"{path}: cannot open as HDF5 ({e}); the file is not an ensemble or is corrupted") from None


def check_ensemble(path) -> dict:
    """Root attributes of an ensemble file, with the live counters (``n_done``, ``eps``,
    ``wall_time``, ``acceptance``) taken from the resume state; raises :class:`EnsembleFileError`
    for a missing, truncated, foreign or damaged file (:func:`verify_file`, :func:`verify_contents`)."""
    with open_verified(path) as f:
        attrs = read_attrs(f)
        if "state" in f and "counters" in f["state"]:
            _, st = _read_state(f, path)
            attrs["n_done"] = st["n_done"]
            attrs["eps"] = st["eps"]
            attrs["wall_time"] = st["wall_time"]
            if (attrs.get("sampler") or {}).get("sampler") != "neural":
                # MCMC files count accepted trajectories in the state; the neural samplers do not (their
                # acceptance, written with the run's summary, is the one phi4si analyze reports)
                attrs["acceptance"] = st["acc_sum"] / st["n_done"] if st["n_done"] else float("nan")
        return attrs


# ------------------------------------------------------------------------------------------ file checks
# Every reader (check_ensemble / open_ensemble, read_state, repair, phi4si.model.data.EnsembleData)
# goes through open_verified: the file-level checks below run on the raw bytes *before* h5py opens
# the file (an HDF5 SWMR read of a truncated file retries its metadata reads for many minutes), then
# the schema and the committed data are checked on the open file.

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
READ_ALL_BYTES = 16 * 2**20    # datasets up to this size are read in full; larger: first and last chunk
_UNDEFINED = {2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}


def verify_file(path) -> Path:
    """Check, on its bytes alone and in microseconds, that ``path`` is a complete HDF5 file: a regular,
    non-empty file with the HDF5 signature (at offset 0, or 512, 1024, ... after a user block) and at
    least as long as the end-of-file address its superblock records (a shorter file was cut short).
    Raises :class:`EnsembleFileError` saying what is wrong; returns the path.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> _ = open(p, "wb").write(b"not hdf5")
    >>> verify_file(p)
    Traceback (most recent call last):
    ...
    phi4si.errors.EnsembleFileError: ...x.h5: not a readable HDF5 ensemble (no HDF5 signature in its 8 bytes)
    """

    p = Path(path)
    if not p.exists():
        raise EnsembleFileError(f"{path}: no such file")
    if p.is_dir():
        raise EnsembleFileError(f"{path}: is a directory, not a readable HDF5 ensemble")
    if not p.is_file():
        raise EnsembleFileError(f"{path}: not a regular file, not a readable HDF5 ensemble")
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise EnsembleFileError(f"{path}: empty file (0 bytes), not a readable HDF5 ensemble")
            base, off = None, 0
            while off + 8 <= size:
                fh.seek(off)
                if fh.read(8) == HDF5_SIGNATURE:
                    base = off
                    break
                off = 512 if off == 0 else 2 * off
            if base is None:
                raise EnsembleFileError(f"{path}: not a readable HDF5 ensemble (no HDF5 signature in its {size} bytes)")
            fh.seek(base)
            sb = fh.read(200)
            size = os.fstat(fh.fileno()).st_size   # after the superblock: a live file only grows
    except OSError as e:
        if isinstance(e, EnsembleFileError):
            raise
        raise EnsembleFileError(f"{path}: cannot read ({e.strerror or e})") from None
    eof = _superblock_eof(path, sb, size)
    if size < eof:
        raise EnsembleFileError(f"{path}: truncated HDF5 file: {size} of its {eof} bytes; not a readable HDF5 "
                                "ensemble (an incomplete copy or download? copy it again)")
    return p


def _superblock_eof(path, sb: bytes, size: int) -> int:
    """The end-of-file address an HDF5 superblock (its first bytes ``sb``) records."""
    import struct

    trunc = f"{path}: truncated HDF5 file ({size} bytes); not a readable HDF5 ensemble (an incomplete copy or download?)"
    if len(sb) < 9:
        raise EnsembleFileError(trunc)
    version = sb[8]
    if version in (0, 1):
        # signature(8) version, free-space, root-group, reserved, shared-header versions, size of offsets,
        # size of lengths, reserved (8 x 1) leaf K, internal K (2 x 2) flags(4) [v1: indexed K(2) reserved(2)],
        # then base address, free-space info address, end-of-file address, driver info address (O each)
        o, start = (sb[13] if len(sb) > 13 else 0), (24 if version == 0 else 28)
    elif version in (2, 3):
        # signature(8) version(1) size of offsets(1) size of lengths(1) flags(1), then base address,
        # superblock-extension address, end-of-file address, root object header address (O each), checksum(4)
        o, start = (sb[9] if len(sb) > 9 else 0), 12
    else:
        raise EnsembleFileError(f"{path}: not a readable HDF5 ensemble (unknown HDF5 superblock version {version})")
    if o not in _UNDEFINED:
        raise EnsembleFileError(f"{path}: not a readable HDF5 ensemble (damaged superblock: size of offsets {o})")
    if len(sb) < start + 3 * o:
        raise EnsembleFileError(trunc)
    fmt = {2: "<H", 4: "<I", 8: "<Q"}[o]
    eof = struct.unpack(fmt, sb[start + 2 * o:start + 3 * o])[0]
    if eof == _UNDEFINED[o]:
        raise EnsembleFileError(f"{path}: not a readable HDF5 ensemble (damaged superblock: no end-of-file address)")
    return eof


def open_verified(path, strict: bool = True):
    """The one way readers open an ensemble: :func:`verify_file`, then an h5py read (SWMR first,
    so live files and files of killed runs open too), then :func:`verify_contents`.  Returns the
    open ``h5py.File`` (use it in a ``with``); raises :class:`EnsembleFileError`."""
    verify_file(path)
    f = _open_read(path)
    try:
        verify_contents(f, path, strict=strict)
    except BaseException:
        f.close()
        raise
    return f


def verify_contents(f, path, strict: bool = True):
    """Check an open ensemble: the schema (``strict``: the ``phi4si_format`` attribute and every
    dataset; otherwise only the datasets present), consistent shapes, and the committed data (the
    first ``n_done`` trajectories): readable, and the fields and measurements finite.  Datasets up to
    :data:`READ_ALL_BYTES` are read in full (chunk by chunk); larger ones only their first and last
    chunk of every chain, so that a 1 GB ensemble still opens in a fraction of a second."""
    h5py = _h5()
    if strict:
        if f.attrs.get("phi4si_format") != FORMAT:
            raise EnsembleFileError(f"{path}: not a phi4si ensemble file (format attribute missing or unknown)")
        missing = [k for k in ("chain", "traj", "cfg") + SCALARS + ("gp", "phi") if not isinstance(f.get(k), h5py.Dataset)]
        if missing:
            raise EnsembleFileError(f"{path}: damaged phi4si ensemble file: dataset(s) {', '.join(missing)} missing")
        for k in ("params", "sampler", "run"):
            try:
                json.loads(f.attrs[k])
            except (KeyError, TypeError, ValueError):
                raise EnsembleFileError(f"{path}: damaged phi4si ensemble file: attribute {k!r} missing or not JSON") from None
    state = None
    if "state" in f:
        for k in ("phi", "rng", "counters"):
            if not isinstance(f["state"].get(k), h5py.Dataset):
                raise EnsembleFileError(f"{path}: damaged phi4si ensemble file: dataset state/{k} missing")
        _check_finite(f, "state/phi", path, None, "the resume state")
        state_phi, state = _read_state(f, path)
        if not np.isfinite(np.array([state[k] for k in COUNTERS], dtype=float)).all():
            raise EnsembleFileError(f"{path}: the resume state's counters /state/counters contain NaN or inf; "
                                    "the file is damaged")
    C = int(f["chain"].shape[0]) if "chain" in f else (int(f["phi"].shape[0]) if "phi" in f else None)
    T = int(f["traj"].shape[0]) if "traj" in f else None
    n = T if state is None else state["n_done"]

    def bad(msg):
        raise EnsembleFileError(f"{path}: damaged phi4si ensemble file: {msg}")

    if state is not None and (n < 0 or (T is not None and T < n)):
        bad(f"the resume state counts {n} trajectories, /traj holds {T}")
    for k in _scalars(f) + ("gp",):
        if k not in f:
            continue
        sh = f[k].shape
        if C is not None and (len(sh) < 2 or sh[0] != C or (n is not None and sh[1] < n)):
            bad(f"/{k} has shape {sh}, expected ({C}, >= {n}{', d' if k == 'gp' else ''})")
    if state is not None and C is not None and f["state/phi"].shape[0] != C:
        bad(f"/state/phi has shape {f['state/phi'].shape} for {C} chains")
    ncfg = None
    if "phi" in f:
        sh = f["phi"].shape
        if len(sh) < 2 or (C is not None and sh[0] != C):
            bad(f"/phi has shape {sh} for {C} chains")
        try:
            pshape = tuple(json.loads(f.attrs["params"])["shape"]) if "params" in f.attrs else None
        except (TypeError, ValueError, KeyError):
            pshape = None
            if strict:
                bad("the params attribute has no lattice shape")
        if pshape is not None and tuple(sh[2:]) != pshape:
            bad(f"/phi has shape {sh}, but the lattice is {pshape}")
        ncfg = committed_configurations(f, path)
        if "cfg" in f and f["cfg"].shape[0] < ncfg or sh[1] < ncfg:
            bad(f"/phi holds {sh[1]} configurations per chain, /cfg {f['cfg'].shape[0] if 'cfg' in f else '?'}")
    for k in ("m", "S", "accepted", "gp"):
        if k in f and n is not None:
            _check_finite(f, k, path, n, "the measurements")
    for k in ("dH",) + tuple(x for x in OPTIONAL_SCALARS if x in f):
        if k in f and n is not None:
            _check_finite(f, k, path, n, None)
    if "traj" in f and n is not None:
        _check_finite(f, "traj", path, n, None, axis=0)
    if "phi" in f and ncfg is not None:
        _check_finite(f, "phi", path, ncfg, "the configurations", cfg=f["cfg"] if "cfg" in f else None)


def _check_finite(f, name, path, n, what, axis=1, cfg=None):
    """Read dataset ``name`` (its first ``n`` entries along ``axis``; all if None) within the read budget and
    refuse it if it cannot be read or (``what`` given) holds NaN or inf."""
    ds = f[name]
    sh = ds.shape
    if n is None or len(sh) <= axis:
        n, axis = (sh[0] if sh else 0), 0
    if n == 0 or 0 in sh:
        return
    row = int(np.prod(sh[axis + 1:], dtype=np.int64)) * ds.dtype.itemsize
    outer = int(np.prod(sh[:axis], dtype=np.int64))
    step = int(ds.chunks[axis]) if ds.chunks else n
    step = max(1, step)
    if outer * n * row <= READ_ALL_BYTES:
        blocks = [(0, n)]
    else:                                       # first and last chunk along the axis
        last = (n - 1) // step * step
        blocks = [(0, min(n, step))] + ([(last, n)] if last > 0 else [])
    n_nan = n_inf = 0
    first = None
    for a, b in blocks:
        sel = (slice(None),) * axis + (slice(a, b),)
        try:
            x = ds[sel]
        except (OSError, RuntimeError, ValueError) as e:
            raise EnsembleFileError(f"{path}: cannot read /{name} (entries {a}..{b - 1}): {e}; the file is damaged") from None
        if what is None or x.dtype.kind not in "fc":
            continue
        fin = np.isfinite(x)
        if not fin.all():
            n_nan += int(np.isnan(x).sum())
            n_inf += int((~fin).sum()) - int(np.isnan(x).sum())
            if first is None:
                idx = np.argwhere(~fin)[0]
                first = tuple(int(i) for i in idx[:axis + 1])
                first = first[:axis] + (first[axis] + a,) if axis else (first[0] + a,)
    if n_nan or n_inf:
        counts = " and ".join(s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if s)
        if name == "state/phi":
            where = f"first in chain {first[0]}"
        elif name == "phi":
            t = f" = trajectory {int(cfg[first[1]])}" if cfg is not None else ""
            where = f"first at chain {first[0]}, configuration {first[1]}{t}"
        else:
            where = f"first at chain {first[0]}, trajectory {first[1]}"
        raise EnsembleFileError(f"{path}: {what} /{name} contain NaN or inf ({counts} values, {where}); "
                                "the file is damaged")


def read_attrs(f) -> dict:
    out = {}
    for k, v in f.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if k in ("params", "sampler", "run", "extra"):
            v = json.loads(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


COUNTERS = ("n_done", "t_therm", "eps", "acc_sum", "wall_time")
RNG_BYTES = 2048


def create_ensemble(path, *, shape, n_chains, dtype, params: dict, sampler: dict, run: dict, state_phi, state: dict,
                    extra: dict | None = None, weighted: bool = False):
    """Create a new, empty ensemble file atomically (:func:`phi4si.io.atomic_write`).

    ``state`` holds the resume state: ``rng`` (JSON-able dict) and the :data:`COUNTERS`.
    The file uses the HDF5 >= 1.10 format so that it can be written in SWMR mode, which
    keeps it consistent on disk at every instant (see :class:`EnsembleWriter`).
    ``weighted=True`` adds the per-measurement importance log-weights ``log_w`` (chain, traj):
    analyses then use self-normalised weighted means.
    """
    image = _image(shape, n_chains, dtype, params, sampler, run, state_phi, state, extra, weighted)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(image))


def _image(*args) -> bytes:
    """The bytes of a new ensemble file (:func:`_create` into memory): the disk sees one plain write,
    whose failure is a clean OSError (HDF5 can crash closing a file whose writes failed)."""
    import io

    buf = io.BytesIO()
    _create(buf, *args)
    return buf.getvalue()


def _create(tmp, shape, n_chains, dtype, params, sampler, run, state_phi, state, extra, weighted):
    h5py = _h5()
    d = len(shape)
    with h5py.File(tmp, "w", libver="latest") as f:
        f.attrs["phi4si_format"] = FORMAT
        f.attrs["params"] = json.dumps(params)
        f.attrs["sampler"] = json.dumps(sampler)
        f.attrs["run"] = json.dumps(run)
        f.attrs["extra"] = json.dumps(extra or {})
        f.attrs["version"] = run.get("version", "")
        for k in ("n_done", "wall_time", "acceptance", "eps"):
            f.attrs[k] = 0 if k == "n_done" else float("nan") if k == "acceptance" else float(state.get(k, 0.0))
        scales = {}
        scales["chain"] = f.create_dataset("chain", data=np.arange(n_chains, dtype=np.int64))
        scales["traj"] = f.create_dataset("traj", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
        scales["cfg"] = f.create_dataset("cfg", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
        scales["dir"] = f.create_dataset("dir", data=np.arange(d, dtype=np.int64))
        for mu, L in enumerate(shape):
            scales[f"x{mu}"] = f.create_dataset(f"x{mu}", data=np.arange(L, dtype=np.int64))
        for name, ds in scales.items():
            ds.make_scale(name)
        tchunk = max(1, min(1024, 2**20 // max(1, n_chains)))
        for name in SCALARS + (("log_w",) if weighted else ()):
            ds = f.create_dataset(name, shape=(n_chains, 0), maxshape=(n_chains, None), dtype=np.float64,
                                  chunks=(n_chains, tchunk))
            _attach(ds, scales, ("chain", "traj"))
        ds = f.create_dataset("gp", shape=(n_chains, 0, d), maxshape=(n_chains, None, d), dtype=np.float64,
                              chunks=(n_chains, tchunk, d))
        _attach(ds, scales, ("chain", "traj", "dir"))
        V = int(np.prod(shape))
        ccfg = max(1, min(64, 2**17 // V))
        ds = f.create_dataset("phi", shape=(n_chains, 0) + tuple(shape), maxshape=(n_chains, None) + tuple(shape),
                              dtype=np.dtype(dtype), chunks=(1, ccfg) + tuple(shape), compression="gzip",
                              compression_opts=4, shuffle=True)
        _attach(ds, scales, ("chain", "cfg") + tuple(f"x{mu}" for mu in range(d)))
        ds.attrs["long_name"] = "field configurations phi_x"
        g = f.create_group("state")
        g.create_dataset("phi", data=np.asarray(state_phi, dtype=np.float64))
        g.create_dataset("rng", data=np.zeros(1, dtype=f"S{RNG_BYTES}"))
        if state.get("generator") is not None:   # a torch generator's state (generated samples): its own bytes
            g.create_dataset("generator", data=np.asarray(state["generator"], dtype=np.uint8))
        if state.get("kernel") is not None:      # the sums of a measured two-point function (phi4si.mcmc.kernel)
            g.create_dataset("kernel", data=np.asarray(state["kernel"], dtype=np.float64))
        c = g.create_dataset("counters", data=np.zeros(len(COUNTERS)))
        c.attrs["names"] = json.dumps(COUNTERS)
        _write_state(g, None, state)


def _attach(ds, scales, dims):
    for i, name in enumerate(dims):
        ds.dims[i].attach_scale(scales[name])


def _write_state(g, state_phi, state: dict):
    if state_phi is not None:
        g["phi"][...] = state_phi
    rng = json.dumps(state["rng"]).encode()
    if len(rng) > RNG_BYTES:  # pragma: no cover - PCG64 states are ~200 bytes
        raise EnsembleFileError("random-generator state too large to store")
    g["rng"][0] = rng
    if state.get("generator") is not None:
        g["generator"][...] = np.asarray(state["generator"], dtype=np.uint8)
    if state.get("kernel") is not None:
        g["kernel"][...] = np.asarray(state["kernel"], dtype=np.float64)
    g["counters"][...] = np.array([float(state.get(k, 0.0)) for k in COUNTERS])


def committed_configurations(f, path=None) -> int:
    """How many stored configurations per chain of an open file the writer has committed: those of
    the trajectories below ``n_done`` (a run killed between a flush's data and its state leaves rows
    past it, which every reader ignores).  Files without a resume state count every row."""
    n = int(f["cfg"].shape[0]) if "cfg" in f else int(f["phi"].shape[1])
    if "state" in f and "counters" in f["state"] and "cfg" in f:
        n_done = _read_state(f, path)[1]["n_done"]
        n = min(n, int(np.searchsorted(f["cfg"][:n], n_done)))
    return n


def _read_state(f, path=None) -> tuple[np.ndarray, dict]:
    g = f["state"]
    try:
        names = json.loads(g["counters"].attrs["names"])
        vals = g["counters"][...]
        state = {k: float(v) for k, v in zip(names, vals)}
        missing = [k for k in COUNTERS if k not in state]
        if missing:
            raise KeyError(", ".join(missing))
        if not np.isfinite([state[k] for k in ("n_done", "t_therm")]).all():
            raise ValueError("non-finite counters")
        for k in ("n_done", "t_therm"):
            state[k] = int(state[k])
        state["rng"] = json.loads(bytes(g["rng"][0]).rstrip(b"\0").decode())
        if "generator" in g:
            state["generator"] = g["generator"][...]
        if "kernel" in g:
            state["kernel"] = g["kernel"][...]
        phi = g["phi"][...]
    except (KeyError, OSError, RuntimeError, TypeError, ValueError) as e:  # JSON and decode errors are ValueErrors
        raise EnsembleFileError(f"{path or f.filename}: damaged resume state /state ({type(e).__name__}: {e})") from None
    return phi, state


def _open_read(path):
    """Open for reading; SWMR read first, so live runs and files of killed runs open too."""
    h5py = _h5()
    try:
        return h5py.File(path, "r", swmr=True)
    except FileNotFoundError:
        raise EnsembleFileError(f"{path}: no such file") from None
    except OSError:
        return _open(path, "r")


def read_state(path):
    """Return ``(attrs, state_phi, state)`` of an ensemble for resuming (``state`` has the counters and rng);
    a truncated, foreign or damaged file (NaN in its fields or counters included) raises
    :class:`EnsembleFileError` before anything is written."""
    verify_file(path)
    with _open_read(path) as f:
        if f.attrs.get("phi4si_format") != FORMAT or "state" not in f:
            raise EnsembleFileError(f"{path}: not a resumable phi4si ensemble file")
        verify_contents(f, path)
        attrs = read_attrs(f)
        phi, state = _read_state(f, path)
    return attrs, phi, state


def repair(path):
    """Rewrite the file of a killed run (HDF5 marks it 'open for writing') into a clean file.

    Reads every completed measurement in SWMR mode, writes a fresh file next to it and
    renames it over the original.  Called by ``--resume``; returns True if a repair was needed.
    """
    h5py = _h5()
    verify_file(path)
    try:
        with h5py.File(path, "r+"):
            return False
    except OSError as e:
        if "already open for write" not in str(e):
            raise EnsembleFileError(f"{path}: cannot open for writing ({e})") from None
    with open_verified(path) as f:
        attrs = read_attrs(f)
        phi_state, state = _read_state(f, path)
        n = state["n_done"]
        data = {k: f[k][:, :n] for k in _scalars(f)}
        gp = f["gp"][:, :n]
        cfg = f["cfg"][...]
        ncfg = int(np.searchsorted(cfg, n))
        cfg = cfg[:ncfg]
        configs = f["phi"][:, :ncfg]
        shape = tuple(attrs["params"]["shape"])
        n_chains = f["chain"].shape[0]
        dtype = f["phi"].dtype
    st0 = dict(state, n_done=0)

    def write(fixed):
        Path(fixed).write_bytes(_image(shape, n_chains, dtype, attrs["params"], attrs["sampler"], attrs["run"],
                                       phi_state, st0, attrs.get("extra"), "log_w" in data))
        w = EnsembleWriter(fixed)
        w.append(scalars=data, gp=gp, configs=configs, cfg_index=cfg, traj_index=np.arange(n), state_phi=phi_state,
                 state=state)
        w.close()

    atomic_write(path, write)
    return True


def record_resume(path, old_run: dict, entry: dict, **updates):
    """Provenance of a resumed run: the original ``run`` record stays, ``entry`` (date, command,
    version, counts) is appended to its ``resumed`` list and ``updates`` (e.g. the new target
    length) are applied."""
    resumed = list(old_run.get("resumed", [])) + [entry]
    update_attrs(path, {"run": json.dumps(dict(old_run, resumed=resumed, **updates))})


def update_attrs(path, attrs: dict):
    """Set root attributes of a (closed) ensemble file."""
    with _WriteGuard(path, "its data are as they were"):
        with _open(path, "r+") as f:
            for k, v in attrs.items():
                f.attrs[k] = v


_DAMAGED: list[str] = []      # files whose HDF5 write failed in this process
_KEPT: list = []              # their handles (and the failed writes' exceptions), kept alive on purpose


def damaged() -> list[str]:
    """The files whose write failed in this process.  HDF5 cannot recover from a write that fails
    half-way: its open handles stay in a state where closing them, even at interpreter exit, can crash
    the process (a segmentation fault).  A program that saw :class:`~phi4si.errors.OutputWriteError`
    should therefore end without closing them (the command line ends with ``os._exit``); the files
    on disk keep what their last completed append made durable (SWMR)."""
    return list(_DAMAGED)


class _WriteGuard:
    """Around every HDF5 write of an output: a write the system refuses (no space, a size limit, a
    read-only or failing disk) becomes one :class:`~phi4si.errors.OutputWriteError` naming the output,
    the system's reason and what the file keeps (``kept``).  HDF5 reports such a failure in many
    places: in the exception, often only in an earlier one of its chain, and from h5py's handles as
    they are freed ("Exception ignored in ... __dealloc__", through ``sys.unraisablehook``); those
    reports are collected for the reason instead of printed, and after a failure they stay silenced
    (the damaged handles complain again when Python frees them; see :func:`damaged`)."""

    def __init__(self, path, kept: str):
        self.path, self.kept, self.seen = path, kept, []

    def __enter__(self):
        import io
        import sys

        self.previous, self.stderr = sys.unraisablehook, sys.stderr
        sys.unraisablehook = self._hook
        sys.stderr = self.captured = io.StringIO()   # (Cython prints a freed handle's error to sys.stderr first)
        return self

    def _hook(self, u):
        if _is_h5py_report(u):
            self.seen.append(str(u.exc_value))
        else:
            self.previous(u)

    def __exit__(self, kind, e, tb):
        import sys

        sys.unraisablehook, sys.stderr = self.previous, self.stderr
        text = self.captured.getvalue()
        if e is None or getattr(e, "guarded", False) or not isinstance(e, (OSError, RuntimeError)):
            if text:                         # a write that went through (or was said by an inner guard):
                sys.stderr.write(text)       # whatever it printed is printed
            return False
        self.seen.append(text)
        _silence_h5py_reports()
        _DAMAGED.append(str(self.path))
        _KEPT.append(e)    # its traceback holds the damaged handles: never freed, so they never complain
        err = OutputWriteError(f"{shown_name(self.path)}: writing failed ({self._reason(e)}); {self.kept}")
        err.guarded = True
        raise err from None

    def _reason(self, e) -> str:
        import re

        chain, cause = [], e
        while cause is not None:
            chain.append(cause)
            cause = cause.__context__
        for text in [str(c) for c in chain] + self.seen:
            m = re.search(r"error message = '([^']+)'", text)
            if m:
                return m.group(1)
        for c in chain:
            if getattr(c, "strerror", None):
                return c.strerror
        return (str(e).splitlines() or [type(e).__name__])[0]


def _is_h5py_report(u) -> bool:
    return "h5py" in repr(getattr(u, "object", "")) or "ref count" in str(getattr(u, "exc_value", ""))


def _silence_h5py_reports():
    import sys

    if getattr(sys.unraisablehook, "_phi4si", False):
        return
    previous = sys.unraisablehook

    def hook(u):
        if not _is_h5py_report(u):
            previous(u)

    hook._phi4si = True
    sys.unraisablehook = hook


class EnsembleWriter:
    """Appends measurements to an ensemble file held open in HDF5 SWMR-write mode.

    In SWMR mode HDF5 orders its metadata writes so that the file on disk is a valid file
    at every instant: a run killed at any moment (even by SIGKILL) leaves every
    measurement of the last completed flush readable.  Each :meth:`append` writes the new
    data, then the resume state, then the counters (``n_done`` last), then flushes.
    Readers (``open_ensemble``) may open the file while it is being written.

    ``final``: the file at ``path`` is a new run's temporary file (:func:`phi4si.io.temporary_name`);
    the first append renames it to ``final`` once its data are durable, so a run that fails or is
    killed before its first checkpoint leaves an existing ``final`` as it was and no half-made file
    under that name.  Before every append the free space of the folder is compared with what the
    append writes (:class:`~phi4si.errors.DiskFullError` before any byte: HDF5 cannot recover from
    a write that fails half-way, it leaves a damaged file and closing it can crash the process).
    """

    # room kept free beyond an append's raw size, for HDF5's metadata and the chunk index
    SPACE_MARGIN = 256 * 1024

    def __init__(self, path, final=None):
        self.path = Path(path)
        self.final = None if final is None else Path(final)
        self.broken = False
        self.f = _open(path, "r+", libver="latest")
        self.f.swmr_mode = True

    def append(self, *, scalars: dict | None, gp=None, configs=None, cfg_index=None, traj_index=None,
               state_phi=None, state: dict):
        if self.broken:
            raise OutputWriteError(f"{self.final or self.path}: an earlier write failed; nothing more is written")
        n_done = int(self.f["state"]["counters"][COUNTERS.index("n_done")])
        kept = ("nothing was written" if self.final is not None else
                f"the file holds the run up to measurement {n_done}, intact; free space and continue with --resume")
        self._check_space(kept, scalars, gp, configs, state_phi)
        try:
            with _WriteGuard(self.final or self.path, kept):
                self._append(n_done, scalars, gp, configs, cfg_index, traj_index, state_phi, state)
        except OutputWriteError:
            self.broken = True
            self.abandon()
            raise
        if self.final is not None:         # the first durable checkpoint: the run takes the final name
            os.replace(self.path, self.final)   # (the open file follows its inode)
            self.path, self.final = self.final, None

    def _append(self, n_done, scalars, gp, configs, cfg_index, traj_index, state_phi, state):
        f = self.f
        g = f["state"]
        if traj_index is not None and len(traj_index):
            t = len(traj_index)
            _truncate(f, n_done)
            for name in _scalars(f):
                ds = f[name]
                ds.resize(n_done + t, axis=1)
                ds[:, n_done:] = scalars[name]
            f["gp"].resize(n_done + t, axis=1)
            f["gp"][:, n_done:] = gp
            f["traj"].resize(n_done + t, axis=0)
            f["traj"][n_done:] = traj_index
            if cfg_index is not None and len(cfg_index):
                nc0 = f["cfg"].shape[0]
                c = len(cfg_index)
                f["cfg"].resize(nc0 + c, axis=0)
                f["cfg"][nc0:] = cfg_index
                f["phi"].resize(nc0 + c, axis=1)
                f["phi"][:, nc0:] = configs
            n_done += t
        f.flush()  # data before the state that commits it
        _write_state(g, state_phi, dict(state, n_done=n_done))
        # and the state out of HDF5's cache at once: until the next append's flush its parts (phi, rng, counters)
        # would otherwise reach the file in the cache's order, and a SIGKILL in between could leave new
        # counters with an old field (a resume that diverges; seen once under load in CI).  The state is one
        # slot, so a kill *during* these writes can still mix them: a two-slot state is the real fix.
        f.flush()
        f.flush()

    def _check_space(self, kept, scalars, gp, configs, state_phi):
        """Refuse an append the disk cannot take, before HDF5 writes a byte: compare the free space with
        its raw size (plus :attr:`SPACE_MARGIN`), then reserve that room behind the file's end
        (``posix_fallocate``), so that a full disk, a quota or a file-size limit shows up here, as one
        clean error, and not half-way through HDF5's write (HDF5 truncates the unused room at its flush)."""
        import shutil

        from .errors import DiskFullError
        from .resources import format_bytes

        arrays = list((scalars or {}).values()) + [gp, configs, state_phi]
        need = sum(np.asarray(a).nbytes for a in arrays if a is not None) + self.SPACE_MARGIN
        name = self.final or self.path
        free = shutil.disk_usage(self.path.parent).free
        if free < need:
            raise DiskFullError(f"{name}: the disk is nearly full ({format_bytes(free)} free, the next checkpoint "
                                f"needs about {format_bytes(need)}); stopped before writing it, so {kept}")
        if not hasattr(os, "posix_fallocate"):  # pragma: no cover - macOS, Windows: the free-space check only
            return
        try:
            with open(self.path, "r+b") as fh:
                eof = _superblock_eof(self.path, fh.read(200), os.fstat(fh.fileno()).st_size)
                os.posix_fallocate(fh.fileno(), eof, need)
        except OSError as e:
            if isinstance(e, EnsembleFileError) or e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return               # a file system without fallocate (or an odd superblock): HDF5 will tell
            raise DiskFullError(f"{name}: cannot reserve room for the next checkpoint ({e.strerror}, "
                                f"{format_bytes(need)}); stopped before writing it, so {kept}") from None

    def close(self, summary: dict | None = None):
        """Leave SWMR mode and record summary attributes (acceptance, wall_time, eps, n_done)."""
        if self.broken:
            return
        try:
            with _WriteGuard(self.path, "its measurements up to the last checkpoint are intact; --resume repairs it"):
                self.f.close()
                if summary:
                    with _open(self.path, "r+") as f:
                        for k, v in summary.items():
                            f.attrs[k] = v
        except OutputWriteError:
            self.broken = True
            raise

    def abandon(self):
        """Stop writing without a clean close: the file keeps what its last append made durable.  After a
        failed write the HDF5 handle is left alone (closing it can crash the process; see :func:`damaged`),
        and a file that never reached its final name is removed."""
        if self.broken:
            _KEPT.append(self.f)
        else:
            self.f.close()
        if self.final is not None:
            self.path.unlink(missing_ok=True)


class ConfigurationWriter:
    """Write chains of configurations (C, T, *shape) to an ensemble file, computing the per-measurement
    scalars (m, S, gp) from them: the writer of every sampler that produces configurations rather than
    trajectories (generated samples, ``phi4si sample-neural``).  :meth:`create` makes a new file,
    the constructor reopens one (to resume it after ``n_done`` measurements)."""

    def __init__(self, out, params, dtype, n_done=0, final=None):
        self.params, self.dtype, self.n = params, dtype, int(n_done)
        self.w = EnsembleWriter(out, final)

    @classmethod
    def create(cls, out, params, n_chains, sampler, run, weighted, dtype, first, state):
        """A new file for ``out``, written under a temporary name until the first append (see
        :class:`EnsembleWriter`'s ``final``)."""
        from .io import temporary_name

        tmp = temporary_name(out)
        create_ensemble(tmp, shape=params.shape, n_chains=n_chains, dtype=dtype, params=params.to_dict(),
                        sampler=sampler, run=run, state_phi=np.reshape(first, (n_chains, -1)), state=state,
                        weighted=weighted)
        try:
            return cls(tmp, params, dtype, final=out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @property
    def path(self) -> Path:
        """Where the file is now (its temporary name until the first append)."""
        return self.w.path

    def discard(self):
        """Stop without a clean close (:meth:`EnsembleWriter.abandon`): a file that never reached its final
        name (nothing was appended) is removed."""
        self.w.abandon()

    def end(self, attrs: dict):
        """The end of a run: :meth:`close` with ``attrs``, or :meth:`discard` when nothing was appended
        (no file appears, an existing one stays as it was)."""
        if self.w.final is not None:
            self.discard()
        else:
            self.close(attrs)

    def append(self, phi, accepted, dH, log_w=None, *, state, state_phi=None):
        """phi (C, T, *shape); accepted, dH, log_w (C, T); ``state`` the resume state after them."""
        from .lattice import measure

        C, T = phi.shape[:2]
        m, S, gp = measure(phi, self.params)
        scal = {"m": m, "S": S, "accepted": np.asarray(accepted, float), "dH": np.asarray(dH, float)}
        if log_w is not None:
            scal["log_w"] = np.asarray(log_w, float)
        idx = np.arange(self.n, self.n + T, dtype=np.int64)
        sp = np.asarray(phi[:, -1], dtype=np.float64).reshape(C, -1) if state_phi is None else np.reshape(state_phi, (C, -1))
        self.w.append(scalars=scal, gp=gp, configs=phi.astype(self.dtype), cfg_index=idx,
                      traj_index=idx, state_phi=sp, state=state)
        self.n += T

    def close(self, attrs: dict):
        self.w.close(attrs)



def _truncate(f, n_done):
    """Drop anything written beyond ``n_done`` by a flush that was interrupted."""
    if f["traj"].shape[0] > n_done:
        for name in _scalars(f) + ("gp",):
            f[name].resize(n_done, axis=1)
        f["traj"].resize(n_done, axis=0)
    cfg = f["cfg"][...]
    keep = int(np.searchsorted(cfg, n_done)) if len(cfg) else 0
    if f["cfg"].shape[0] > keep:
        f["cfg"].resize(keep, axis=0)
        f["phi"].resize(keep, axis=1)


def open_ensemble(path, load: bool = False, chunks=None):
    """Open an ensemble as an :class:`xarray.Dataset` (lazy unless ``load``; with ``chunks`` - e.g.
    ``{}`` for the file's own HDF5 chunks - its arrays are dask arrays, read block by block when computed).

    Close it (``ds.close()`` or ``with open_ensemble(p) as ds:``) when done: while it
    is open, a sampler still writing the file postpones its checkpoints.

    Dimensions: ``chain``, ``traj`` (per-trajectory scalars ``m``, ``S``, ``accepted``,
    ``dH``, ``gp``), ``cfg`` (stored configurations ``phi``; coordinate = trajectory
    index), ``x0 ... x{d-1}``, ``dir``.  Attributes: ``params``, ``sampler``, ``run`` as
    dicts, ``n_done``, ``eps``, ``acceptance``, ``wall_time``, ``version``.  Only
    completed measurements (the first ``n_done`` trajectories) are exposed.  A list of paths opens the
    parts of one ensemble as one (:func:`open_ensembles`).

    >>> import os, tempfile
    >>> from phi4si import Phi4Params, sample_mcmc
    >>> path = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(tempfile.mkdtemp(), "e.h5"), chains=2,
    ...                    n_traj=20, n_therm=5, every=2, progress=False)
    >>> with open_ensemble(path) as ds:
    ...     dict(ds.sizes)["traj"], ds.phi.dims, ds.attrs["params"]["lam"]
    (20, ('chain', 'cfg', 'x0', 'x1'), 1.0)
    """
    import xarray as xr

    if isinstance(path, (list, tuple)):
        return open_ensembles(path, load=load)
    attrs = check_ensemble(path)
    try:
        orig = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", driver_kwds={"swmr": True},
                               chunks=chunks)
    except Exception as e:  # pragma: no cover - depends on h5netcdf internals
        raise EnsembleFileError(f"{path}: cannot read as an ensemble ({e})") from None
    raw = orig.drop_vars([v for v in orig.variables if str(v).startswith("state")], errors="ignore")
    n = int(attrs["n_done"])
    ncfg = int(np.searchsorted(raw["cfg"].values, n))
    ds = raw.isel(traj=slice(0, n), cfg=slice(0, ncfg))
    ds.attrs = attrs
    ds.set_close(orig.close)  # closing the view closes the file (a running sampler waits for it)
    if load:
        ds = ds.load()
        ds.close()
    return ds


def open_ensembles(paths, load: bool = False):
    """The parts of one ensemble - files of the same lattice, couplings, sampler settings and length,
    made with different seeds (e.g. the jobs of a SLURM array: ``sample-mcmc ... --seed $TASK_ID``;
    numpy seeds every PCG64 stream through a SeedSequence, so distinct seeds give independent
    streams) - as one dataset whose chains are all the parts' chains, in the order given.  Parts that
    differ in any of these, or share a seed (they would repeat each other's chains), are refused.
    Attributes: the first part's, with ``parts`` (the paths), ``wall_time`` summed and ``acceptance``
    averaged over the chains.  Unless ``load``, nothing is read: the arrays are dask arrays over the
    parts' HDF5 chunks (dask concatenates lazily, xarray alone would read every part into memory), and
    the files stay open until the dataset is closed (``with open_ensembles(...) as ds:``).

    >>> import os, tempfile
    >>> from phi4si import Phi4Params, sample_mcmc
    >>> d = tempfile.mkdtemp()
    >>> a, b = (sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(d, f"{s}.h5"), chains=2, n_traj=20,
    ...                     n_therm=5, seed=s, progress=False) for s in (1, 2))
    >>> with open_ensembles([a, b]) as ds:
    ...     ds.sizes["chain"], ds.attrs["parts"] == [str(a), str(b)]
    (4, True)
    """
    import xarray as xr

    paths = [Path(p) for p in paths]
    if not paths:
        raise EnsembleFileError("no ensemble files given")
    if len(paths) == 1:
        return open_ensemble(paths[0], load=load)
    if len({p.resolve() for p in paths}) != len(paths):
        raise EnsembleFileError("an ensemble file is given twice")
    parts = []

    def close_all():
        for d in parts:
            d.close()
    try:
        for p in paths:
            parts.append(open_ensemble(p, chunks={}))
        _check_parts(paths, parts)
        ds = xr.concat(parts, dim="chain", coords="minimal", compat="override", combine_attrs="override")
        if "chain" in ds.coords:
            ds = ds.assign_coords(chain=np.arange(ds.sizes["chain"]))
        chains = [d.sizes["chain"] for d in parts]
        acc = [float(d.attrs.get("acceptance", float("nan"))) for d in parts]
        ds.attrs = dict(parts[0].attrs, parts=[str(p) for p in paths],
                        wall_time=float(sum(float(d.attrs.get("wall_time") or 0.0) for d in parts)),
                        acceptance=float(np.dot(acc, chains) / sum(chains)))
    except BaseException:
        close_all()
        raise
    ds.set_close(close_all)
    if load:
        ds = ds.load()
        ds.close()
    return ds


def _check_parts(paths, parts):
    first, a0 = paths[0], parts[0].attrs
    seeds = {}
    for p, d in zip(paths, parts):
        at = d.attrs
        for key in ("params", "sampler"):
            if at.get(key) != a0.get(key):
                raise EnsembleFileError(f"{p}: its {key} differ from those of {first}: parts of one ensemble share "
                                        f"them ({at.get(key)} against {a0.get(key)})")
        for dim in ("traj", "cfg"):
            if d.sizes.get(dim, 0) != parts[0].sizes.get(dim, 0):
                raise EnsembleFileError(f"{p}: {d.sizes.get(dim, 0)} {dim} per chain against {parts[0].sizes.get(dim, 0)} "
                                        f"in {first}: parts of one ensemble have the same length (resume the shorter)")
        if "cfg" in d.coords and not np.array_equal(d["cfg"].values, parts[0]["cfg"].values):
            raise EnsembleFileError(f"{p}: stores other trajectories than {first} (--every differs)")
        seed = (at.get("run") or {}).get("seed")
        if seed in seeds:
            raise EnsembleFileError(f"{p} and {seeds[seed]} were made with the same seed {seed}: their chains repeat "
                                    "each other; give every part its own --seed")
        seeds[seed] = p
