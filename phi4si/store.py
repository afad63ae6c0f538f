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

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import EnsembleFileError, FileBusyError
from .io import atomic_write

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
    ``wall_time``, ``acceptance``) taken from the resume state; raises :class:`EnsembleFileError`."""
    with _open_read(path) as f:
        if f.attrs.get("phi4si_format") != FORMAT:
            raise EnsembleFileError(f"{path}: not a phi4si ensemble file (format attribute missing or unknown)")
        attrs = read_attrs(f)
        if "state" in f and "counters" in f["state"]:
            _, st = _read_state(f)
            attrs["n_done"] = st["n_done"]
            attrs["eps"] = st["eps"]
            attrs["wall_time"] = st["wall_time"]
            attrs["acceptance"] = st["acc_sum"] / st["n_done"] if st["n_done"] else float("nan")
        return attrs


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
    atomic_write(path, lambda tmp: _create(tmp, shape, n_chains, dtype, params, sampler, run, state_phi, state, extra,
                                           weighted))


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
    g["counters"][...] = np.array([float(state.get(k, 0.0)) for k in COUNTERS])


def committed_configurations(f) -> int:
    """How many stored configurations per chain of an open file the writer has committed: those of
    the trajectories below ``n_done`` (a run killed between a flush's data and its state leaves rows
    past it, which every reader ignores).  Files without a resume state count every row."""
    n = int(f["cfg"].shape[0]) if "cfg" in f else int(f["phi"].shape[1])
    if "state" in f and "counters" in f["state"] and "cfg" in f:
        n_done = _read_state(f)[1]["n_done"]
        n = min(n, int(np.searchsorted(f["cfg"][:n], n_done)))
    return n


def _read_state(f) -> tuple[np.ndarray, dict]:
    g = f["state"]
    names = json.loads(g["counters"].attrs["names"])
    vals = g["counters"][...]
    state = {k: float(v) for k, v in zip(names, vals)}
    for k in ("n_done", "t_therm"):
        state[k] = int(state[k])
    state["rng"] = json.loads(bytes(g["rng"][0]).rstrip(b"\0").decode())
    return g["phi"][...], state


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
    """Return ``(attrs, state_phi, state)`` of an ensemble for resuming (``state`` has the counters and rng)."""
    with _open_read(path) as f:
        if f.attrs.get("phi4si_format") != FORMAT or "state" not in f:
            raise EnsembleFileError(f"{path}: not a resumable phi4si ensemble file")
        attrs = read_attrs(f)
        phi, state = _read_state(f)
    return attrs, phi, state


def repair(path):
    """Rewrite the file of a killed run (HDF5 marks it 'open for writing') into a clean file.

    Reads every completed measurement in SWMR mode, writes a fresh file next to it and
    renames it over the original.  Called by ``--resume``; returns True if a repair was needed.
    """
    h5py = _h5()
    try:
        with h5py.File(path, "r+"):
            return False
    except OSError as e:
        if "already open for write" not in str(e):
            raise EnsembleFileError(f"{path}: cannot open for writing ({e})") from None
    with _open_read(path) as f:
        attrs = read_attrs(f)
        phi_state, state = _read_state(f)
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
        _create(fixed, shape, n_chains, dtype, attrs["params"], attrs["sampler"], attrs["run"], phi_state, st0,
                attrs.get("extra"), "log_w" in data)
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
    with _open(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v


class EnsembleWriter:
    """Appends measurements to an ensemble file held open in HDF5 SWMR-write mode.

    In SWMR mode HDF5 orders its metadata writes so that the file on disk is a valid file
    at every instant: a run killed at any moment (even by SIGKILL) leaves every
    measurement of the last completed flush readable.  Each :meth:`append` writes the new
    data, then the resume state, then the counters (``n_done`` last), then flushes.
    Readers (``open_ensemble``) may open the file while it is being written.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.f = _open(path, "r+", libver="latest")
        self.f.swmr_mode = True

    def append(self, *, scalars: dict | None, gp=None, configs=None, cfg_index=None, traj_index=None,
               state_phi=None, state: dict):
        f = self.f
        g = f["state"]
        n_done = int(g["counters"][COUNTERS.index("n_done")])
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
        f.flush()

    def close(self, summary: dict | None = None):
        """Leave SWMR mode and record summary attributes (acceptance, wall_time, eps, n_done)."""
        self.f.close()
        if summary:
            with _open(self.path, "r+") as f:
                for k, v in summary.items():
                    f.attrs[k] = v


class ConfigurationWriter:
    """Write chains of configurations (C, T, *shape) to an ensemble file, computing the per-measurement
    scalars (m, S, gp) from them: the writer of every sampler that produces configurations rather than
    trajectories (generated samples, ``phi4si sample-neural``).  :meth:`create` makes a new file,
    the constructor reopens one (to resume it after ``n_done`` measurements)."""

    def __init__(self, out, params, dtype, n_done=0):
        self.params, self.dtype, self.n = params, dtype, int(n_done)
        self.w = EnsembleWriter(out)

    @classmethod
    def create(cls, out, params, n_chains, sampler, run, weighted, dtype, first, state):
        create_ensemble(out, shape=params.shape, n_chains=n_chains, dtype=dtype, params=params.to_dict(),
                        sampler=sampler, run=run, state_phi=np.reshape(first, (n_chains, -1)), state=state,
                        weighted=weighted)
        return cls(out, params, dtype)

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


def open_ensemble(path, load: bool = False):
    """Open an ensemble as an :class:`xarray.Dataset` (lazy unless ``load``).

    Close it (``ds.close()`` or ``with open_ensemble(p) as ds:``) when done: while it
    is open, a sampler still writing the file postpones its checkpoints.

    Dimensions: ``chain``, ``traj`` (per-trajectory scalars ``m``, ``S``, ``accepted``,
    ``dH``, ``gp``), ``cfg`` (stored configurations ``phi``; coordinate = trajectory
    index), ``x0 ... x{d-1}``, ``dir``.  Attributes: ``params``, ``sampler``, ``run`` as
    dicts, ``n_done``, ``eps``, ``acceptance``, ``wall_time``, ``version``.  Only
    completed measurements (the first ``n_done`` trajectories) are exposed.

    >>> import os, tempfile
    >>> from phi4si import Phi4Params, sample_mcmc
    >>> path = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(tempfile.mkdtemp(), "e.h5"), chains=2,
    ...                    n_traj=20, n_therm=5, every=2, progress=False)
    >>> with open_ensemble(path) as ds:
    ...     dict(ds.sizes)["traj"], ds.phi.dims, ds.attrs["params"]["lam"]
    (20, ('chain', 'cfg', 'x0', 'x1'), 1.0)
    """
    import xarray as xr

    attrs = check_ensemble(path)
    try:
        orig = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", driver_kwds={"swmr": True})
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
