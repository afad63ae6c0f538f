"""Shared helpers of the benchmark scripts: machine/version info and JSON output."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def cpuinfo() -> dict:
    """CPU model, SIMD width and nominal clock from /proc/cpuinfo (Linux)."""
    info = {"model": platform.processor() or platform.machine(), "flags": [], "mhz": None}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key == "model name" and info["model"] in ("", platform.machine(), platform.processor()):
            info["model"] = val
        elif key == "flags" and not info["flags"]:
            info["flags"] = val.split()
        elif key == "cpu MHz" and info["mhz"] is None:
            info["mhz"] = float(val)
        elif key == "cpu family" and "family" not in info:
            info["family"] = int(val)
        elif key == "model" and "model_number" not in info:
            info["model_number"] = int(val)
    fl = set(info["flags"])
    info["simd_bits"] = 512 if "avx512f" in fl else 256 if "avx2" in fl or "avx" in fl else 128
    info["fma"] = "fma" in fl
    info["flags"] = sorted(f for f in fl if f.startswith(("avx", "fma", "sse4")))
    return info


def machine_info() -> dict:
    import numba
    import numpy as np
    import scipy

    import phi4si

    out = {
        "cpu": cpuinfo(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "scipy": scipy.__version__,
        "phi4si": phi4si.__version__,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": _git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "env": {k: os.environ[k] for k in ("NUMBA_THREADING_LAYER", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                           "OMP_WAIT_POLICY") if k in os.environ},
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        out["torch"] = None
    return out


def threading_layer() -> str | None:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region run yet
        return None


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # pragma: no cover
        return ""


def save(name: str, data: dict, out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data.setdefault("machine", {})["loadavg_end"] = list(os.getloadavg())
    path.write_text(json.dumps(data, indent=2, default=_default) + "\n")
    return path


def _default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")
