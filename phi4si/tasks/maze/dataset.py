"""Training data of the maze task: windows of simulated point-mass trajectories
(:func:`.controller.simulate`) cut, subsampled and checked for validity (:func:`make_dataset`),
and their HDF5 files (:func:`write_dataset`, :func:`read_dataset`).  numpy and h5py only (no
torch: :mod:`.training` turns a file into training data for the network).

:func:`make_dataset` cuts random 300-step windows and keeps every 6th point (50 points per
path), dropping windows whose subsampled polyline is not valid
(:meth:`.geometry.Maze.path_valid`).

>>> d = make_dataset(4, seed=1)
>>> d["paths"].shape, d["stats"]["n_dropped"]
((4, 50, 2), 0)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...errors import ParameterError
from ...io import atomic_write, prepare_output, utc_now
from .checks import check_int
from .controller import ControllerConfig, check_config, check_maze, simulate
from .geometry import MAZE2D_LARGE, Maze, path_length

__all__ = ["DATASET_KIND", "make_dataset", "write_dataset", "read_dataset"]

DATASET_KIND = "maze-trajectories"
_ROUND_STEPS = 2_000_000   # dense agent-steps simulated per round of make_dataset (bounds memory)


def make_dataset(n_windows: int, seed: int, window: int = 300, every: int = 6,
                 config: ControllerConfig = ControllerConfig(), maze: Maze | None = None,
                 n_agents: int | None = None, burn_in: int = 100) -> dict:
    """Training paths for a maze planner: ``n_windows`` valid windows of ``window`` steps,
    subsampled every ``every`` steps.

    Rounds of :func:`simulate` (``n_agents`` agents, default ``min(n_windows, 1000)``, each of
    ``burn_in + k * window`` steps, k windows per agent, k chosen so that a round simulates at
    most ~2e6 agent-steps when ``n_agents * (burn_in + window)`` allows it)
    until enough windows are kept: each agent gives k windows starting at uniform random times
    in ``[burn_in, n_steps - window]``, subsampled at offsets ``0, every, ...`` (window 300,
    every 6 -> 50 points at 0, 6, ..., 294).  Windows whose subsampled polyline is not
    :meth:`Maze.path_valid` are dropped and replaced.  Deterministic given ``seed``.

    Returns a dict: ``paths`` float32 (n_windows, window // every, 2); ``stats`` (n_windows,
    n_cut windows examined, n_dropped, frac_dropped, path length mean / std / min / median /
    max, mean start-to-end distance, mean dense speed in cells per step, dense agent-steps
    simulated, rounds); and the settings ``layout``, ``window``, ``every``, ``seed``,
    ``burn_in``, ``n_agents``, ``controller`` (dict).

    >>> d = make_dataset(8, seed=0)
    >>> d["paths"].shape, d["paths"].dtype, bool(Maze.large().path_valid(d["paths"]).all())
    ((8, 50, 2), dtype('float32'), True)
    """
    n_windows = check_int("n_windows", n_windows, 1)
    seed = check_int("seed", seed, 0)
    window = check_int("window", window, 1)
    every = check_int("every", every, 1)
    burn_in = check_int("burn_in", burn_in, 0)
    if window % every:
        raise ParameterError(f"every = {every} must divide window = {window} (e.g. window 300, every 6)")
    if window < 2 * every:
        raise ParameterError(f"window = {window} must be at least 2 * every = {2 * every} so that a path has two points")
    cfg, maze = check_config(config), check_maze(maze)
    n_agents = min(n_windows, 1000) if n_agents is None else check_int("n_agents", n_agents, 1)
    per_agent = max(1, min(-(-n_windows // n_agents), _ROUND_STEPS // (n_agents * window)))
    n_steps = burn_in + per_agent * window
    rng = np.random.default_rng(seed)
    offsets = np.arange(0, window, every)
    kept, n_kept, n_cut, n_dense, rounds, speed_sum = [], 0, 0, 0, 0, 0.0
    while n_kept < n_windows:
        traj = simulate(n_agents, n_steps, int(rng.integers(2**63)), cfg, maze)
        starts = rng.integers(burn_in, n_steps - window + 1, size=(n_agents, per_agent))
        sub = traj[np.arange(n_agents)[:, None, None], starts[..., None] + offsets].reshape(-1, len(offsets), 2)
        ok = maze.path_valid(sub, upsample=every)
        rounds += 1
        n_dense += traj.shape[0] * traj.shape[1]
        speed_sum += np.linalg.norm(np.diff(traj[:, burn_in:], axis=1), axis=-1).sum()
        if not ok.any():
            raise ParameterError(f"no valid window in {len(sub)} simulated ones: the controller cuts corners; "
                                 "lower v_max or noise_std, or raise a_max")
        need = n_windows - n_kept
        good = np.flatnonzero(ok)
        n_cut += int(good[need - 1]) + 1 if len(good) >= need else len(sub)
        kept.append(sub[good[:need]])
        n_kept += min(need, len(good))
    paths = np.concatenate(kept).astype(np.float32)
    length = path_length(paths.astype(np.float64))
    stats = dict(
        n_windows=n_windows, n_cut=n_cut, n_dropped=n_cut - n_windows, frac_dropped=(n_cut - n_windows) / n_cut,
        path_length_mean=float(length.mean()), path_length_std=float(length.std()),
        path_length_min=float(length.min()), path_length_median=float(np.median(length)),
        path_length_max=float(length.max()),
        displacement_mean=float(np.linalg.norm(paths[:, -1] - paths[:, 0], axis=-1).mean()),
        speed_mean=float(speed_sum / (rounds * n_agents * (n_steps - burn_in - 1))) if n_steps - burn_in > 1 else 0.0,
        n_agent_steps=int(n_dense), rounds=rounds,
    )
    return dict(paths=paths, stats=stats, layout=maze.layout, window=window, every=every, seed=seed,
                burn_in=burn_in, n_agents=n_agents, controller=asdict(cfg))


def write_dataset(out, data: dict, meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write a :func:`make_dataset` result to HDF5; returns the path.

    Dataset ``paths`` (float32, chunked, gzip); root attributes ``kind`` =
    ``"maze-trajectories"``, ``layout``, ``window``, ``every``, ``seed``, ``burn_in``,
    ``n_agents``, ``controller`` and ``statistics`` (JSON), ``version``, ``command``
    (``meta["command"]``, default ""), ``meta`` (the other ``meta`` items, JSON) and ``date``.
    The file is written under a temporary name and renamed, so a failed write leaves nothing.
    Refuses an existing ``out`` unless ``overwrite`` (:class:`OutputExistsError`) and a
    missing parent directory (:class:`ParameterError`).

    >>> import tempfile, os
    >>> d = make_dataset(2, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     f = write_dataset(os.path.join(tmp, "maze.h5"), d, {"command": "doctest"})
    ...     paths, attrs = read_dataset(f)
    >>> paths.shape, attrs["kind"], attrs["command"]
    ((2, 50, 2), 'maze-trajectories', 'doctest')
    """
    import h5py

    from ..._version import __version__

    out = prepare_output(out, overwrite, hint="pass overwrite=True (or choose another path) to replace it")
    if not isinstance(data, dict) or "paths" not in data:
        raise ParameterError("data must be the dict returned by make_dataset (with 'paths', 'stats', ...)")
    paths = np.asarray(data["paths"], dtype=np.float32)
    if paths.ndim != 3 or paths.shape[-1] != 2 or len(paths) == 0:
        raise ParameterError(f"data['paths'] must have shape (N, n, 2) with N >= 1, got {paths.shape}")
    meta = dict(meta or {})
    command = str(meta.pop("command", ""))

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("paths", data=paths, chunks=(min(len(paths), 1024), *paths.shape[1:]),
                             compression="gzip", shuffle=True)
            f.attrs["kind"] = DATASET_KIND
            f.attrs["layout"] = str(data.get("layout", MAZE2D_LARGE))
            for key in ("window", "every", "seed", "burn_in", "n_agents"):
                if data.get(key) is not None:
                    f.attrs[key] = int(data[key])
            f.attrs["controller"] = json.dumps(data.get("controller", {}))
            f.attrs["statistics"] = json.dumps(data.get("stats", {}))
            f.attrs["version"] = __version__
            f.attrs["command"] = command
            f.attrs["meta"] = json.dumps(meta, default=str)
            f.attrs["date"] = utc_now()

    return atomic_write(out, write)


def read_dataset(path) -> tuple[np.ndarray, dict]:
    """Read a file written by :func:`write_dataset`: ``(paths float32 (N, n, 2), attrs)``, the
    JSON attributes (``controller``, ``statistics``, ``meta``) decoded.  Anything else (missing
    file, not HDF5, another kind of file, malformed paths) raises :class:`ParameterError`.

    >>> read_dataset("/nonexistent/maze.h5")
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: /nonexistent/maze.h5: no such file; give the path of a file written by write_dataset
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path}: no such file; give the path of a file written by write_dataset")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ParameterError(f"{path}: not an HDF5 file ({e}); give a file written by write_dataset") from None
    with f:
        kind = f.attrs.get("kind")
        if kind != DATASET_KIND:
            raise ParameterError(f"{path}: not a maze trajectory dataset (attribute kind = {kind!r}, expected "
                                 f"{DATASET_KIND!r}); give a file written by write_dataset")
        if "paths" not in f or not isinstance(f["paths"], h5py.Dataset):
            raise ParameterError(f"{path}: maze dataset without a 'paths' array; the file is corrupted, regenerate it")
        paths = f["paths"][()]
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    if paths.ndim != 3 or paths.shape[-1] != 2:
        raise ParameterError(f"{path}: 'paths' has shape {paths.shape}, expected (N, n, 2); regenerate the file")
    for key in ("controller", "statistics", "meta"):
        if key in attrs:
            try:
                attrs[key] = json.loads(attrs[key])
            except (TypeError, ValueError):
                raise ParameterError(f"{path}: attribute {key!r} is not valid JSON; the file is corrupted") from None
    return paths.astype(np.float32, copy=False), attrs
