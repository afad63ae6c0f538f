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
    /state/phi (chain, site), /state attrs     full-precision resume state (rng, eps, counters)

Root attributes: ``phi4si_format``, ``params``/``sampler``/``run`` (JSON), ``n_done``
(completed measured trajectories: everything beyond it is ignored), ``n_therm_done``,
``eps`` (the tuned, frozen step size), ``acceptance``, ``wall_time``, ``version``.

Each flush opens the file, appends, writes the resume state and ``n_done`` last, and
closes it, so a run killed between flushes (even by SIGKILL) leaves a consistent file
holding every completed measurement up to the last flush.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import EnsembleFileError

FORMAT = "phi4si-ensemble/1"
SCALARS = ("m", "S", "accepted", "dH")


def _h5():
    import h5py

    return h5py


class FileBusyError(EnsembleFileError):
    """The file is open in another process (HDF5 file lock); try again later."""


def _open(path, mode):
    h5py = _h5()
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise EnsembleFileError(f"{path}: no such file") from None
    except OSError as e:
        msg = str(e)
        if "lock" in msg or "already open" in msg:
            raise FileBusyError(f"{path}: file is open in another process ({msg})") from None
        raise EnsembleFileError(f"{path}: cannot open as HDF5 ({e}); the file is not an ensemble or is corrupted") from None


def check_ensemble(path) -> dict:
    """Return the root attributes of an ensemble file, or raise :class:`EnsembleFileError`."""
    with _open(path, "r") as f:
        if f.attrs.get("phi4si_format") != FORMAT:
            raise EnsembleFileError(f"{path}: not a phi4si ensemble file (format attribute missing or unknown)")
        return read_attrs(f)


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


def create_ensemble(path, *, shape, n_chains, dtype, params: dict, sampler: dict, run: dict, state_phi, state: dict,
                    extra: dict | None = None):
    """Create a new ensemble file atomically (written to ``path.tmp`` then renamed)."""
    h5py = _h5()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    d = len(shape)
    with h5py.File(tmp, "w", libver=("earliest", "v110")) as f:
        f.attrs["phi4si_format"] = FORMAT
        f.attrs["params"] = json.dumps(params)
        f.attrs["sampler"] = json.dumps(sampler)
        f.attrs["run"] = json.dumps(run)
        f.attrs["extra"] = json.dumps(extra or {})
        f.attrs["version"] = run.get("version", "")
        f.attrs["n_done"] = 0
        f.attrs["n_therm_done"] = 0
        f.attrs["wall_time"] = 0.0
        f.attrs["acceptance"] = np.nan
        f.attrs["eps"] = float(state.get("eps", np.nan))
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
        for name in SCALARS:
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
        _write_state_attrs(g, state)
    os.replace(tmp, path)


def _attach(ds, scales, dims):
    for i, name in enumerate(dims):
        ds.dims[i].attach_scale(scales[name])


def _write_state_attrs(g, state: dict):
    for k, v in state.items():
        g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v


def read_state(path):
    """Return ``(attrs, state_phi, state)`` of an ensemble for resuming."""
    with _open(path, "r") as f:
        if f.attrs.get("phi4si_format") != FORMAT or "state" not in f:
            raise EnsembleFileError(f"{path}: not a resumable phi4si ensemble file")
        attrs = read_attrs(f)
        g = f["state"]
        phi = g["phi"][...]
        state = {}
        for k, v in g.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, str) and v[:1] in "{[":
                v = json.loads(v)
            elif isinstance(v, np.generic):
                v = v.item()
            state[k] = v
    return attrs, phi, state


def append_and_checkpoint(path, *, scalars: dict | None, gp=None, configs=None, cfg_index=None, traj_index=None,
                          state_phi=None, state: dict, attrs: dict):
    """Append measurements, write the resume state, then update ``n_done`` (last)."""
    with _open(path, "r+") as f:
        n_done = int(f.attrs["n_done"])
        if traj_index is not None and len(traj_index):
            t = len(traj_index)
            _truncate(f, n_done)
            for name in SCALARS:
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
        g = f["state"]
        if state_phi is not None:
            g["phi"][...] = state_phi
        _write_state_attrs(g, state)
        for k, v in attrs.items():
            f.attrs[k] = v
        f.attrs["n_done"] = n_done
        f.flush()


def _truncate(f, n_done):
    """Drop anything written beyond ``n_done`` by a flush that was interrupted."""
    if f["traj"].shape[0] > n_done:
        for name in SCALARS + ("gp",):
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

    >>> ds = open_ensemble("ens.h5")          # doctest: +SKIP
    >>> ds.m.mean().item(), ds.phi.dims       # doctest: +SKIP
    (0.01, ('chain', 'cfg', 'x0', 'x1'))
    """
    import xarray as xr

    attrs = check_ensemble(path)
    try:
        raw = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort")
    except Exception as e:  # pragma: no cover - depends on h5netcdf internals
        raise EnsembleFileError(f"{path}: cannot read as an ensemble ({e})") from None
    n = int(attrs["n_done"])
    ncfg = int(np.searchsorted(raw["cfg"].values, n))
    ds = raw.isel(traj=slice(0, n), cfg=slice(0, ncfg))
    ds.attrs = attrs
    ds.set_close(raw.close)  # closing the view closes the file (a running sampler waits for it)
    if load:
        ds = ds.load()
        ds.close()
    return ds
