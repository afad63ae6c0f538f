"""Same seeds, same bits: compare what two versions of phi4si write for the same small runs.

A refactor that only changes the code's shape must leave every number it writes unchanged.  This
script runs a fixed list of small ``phi4si`` commands (sample-mcmc with every sampler, train on CPU
with ``--steps``, generate at once, sequentially and by the SDE, inpaint, posterior under h and k,
sample-neural with every method, the image and maze commands) in a scratch folder, once with the
code of a git revision (checked out into a temporary worktree) and once with the working tree, and
compares a digest of every output file:

* HDF5: the bytes, dtype and shape of every dataset and every attribute;
* model checkpoints: every tensor (model, EMA, optimiser), RNG state and setting;
* JSON outputs and training logs: every value.

Only what records the moment or the place of a run is left out (``date``, wall times, seconds,
absolute paths, the command line, which names the scratch folder); ``--self-check`` runs the new
code twice to show that nothing else varies between runs.

    python tests/same_bits.py --before 4764c02          # compare revision 4764c02 with the working tree
    python tests/same_bits.py --self-check              # the working tree against itself

It prints one line per output file and exits 1 if any digest differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Keys whose values record when or where a run happened, not what it computed.
VOLATILE = {"date", "wall_time", "seconds", "seconds_per_plan", "command", "model", "data", "train_wall_time",
            "time", "elapsed", "log", "out", "path", "model_path", "host", "started", "finished", "t", "secs",
            "seconds_per_sample", "samples_per_second", "rate", "per_second", "flow_seconds", "wall"}
_WORK = []   # the scratch folder of the run being digested: its name is replaced by "<work>" in strings

# (name, argv, outputs): the runs, in order (later runs read earlier outputs).
T = ["--threads", "1"]
RUNS = [
    ("hmc", ["sample-mcmc", "--shape", "8", "8", "--chains", "2", "--n-traj", "60", "--n-therm", "20", "--every", "2",
             "--seed", "3", "--out", "hmc.h5", "--no-progress"], ["hmc.h5"]),
    ("hmc_omelyan", ["sample-mcmc", "--shape", "6", "4", "--sampler", "hmc", "--integrator", "omelyan", "--chains", "2",
                     "--n-traj", "30", "--n-therm", "10", "--lam", "4.572", "--h", "0.1", "--seed", "4",
                     "--dtype", "float32", "--out", "hmc_om.h5", "--no-progress"], ["hmc_om.h5"]),
    ("fahmc", ["sample-mcmc", "--shape", "8", "8", "--sampler", "fahmc", "--chains", "2", "--n-traj", "30",
               "--n-therm", "10", "--seed", "5", "--out", "fahmc.h5", "--no-progress"], ["fahmc.h5"]),
    ("langevin", ["sample-mcmc", "--shape", "8", "8", "--sampler", "langevin", "--chains", "2", "--n-traj", "30",
                  "--n-therm", "10", "--seed", "6", "--eps", "0.01", "--out", "langevin.h5", "--no-progress"],
     ["langevin.h5"]),
    ("mala", ["sample-mcmc", "--shape", "8", "8", "--sampler", "mala", "--chains", "2", "--n-traj", "30",
              "--n-therm", "10", "--seed", "7", "--out", "mala.h5", "--no-progress"], ["mala.h5"]),
    ("resume", ["sample-mcmc", "--shape", "8", "8", "--chains", "2", "--n-traj", "90", "--n-therm", "20", "--every",
                "2", "--seed", "3", "--out", "hmc_resume.h5", "--no-progress", "--resume"], ["hmc_resume.h5"]),
    ("analyze", ["analyze", "hmc.h5", "--json"], ["@stdout"]),
    ("train", ["train", "--data", "hmc.h5", "--out", "m.pt", "--steps", "24", "--model", "tiny", "--batch-size", "16",
               "--val-every", "12", "--checkpoint-every", "12", "--warmup", "5", "--seed", "2", *T, "--no-progress"],
     ["m.pt", "m.pt.log"]),
    ("train_resume", ["train", "--data", "hmc.h5", "--out", "m.pt", "--steps", "36", "--model", "tiny",
                      "--batch-size", "16", "--val-every", "12", "--checkpoint-every", "12", "--warmup", "5",
                      "--seed", "2", *T, "--no-progress", "--resume"], ["m.pt"]),
    ("generate", ["generate", "--model", "m.pt", "--n", "12", "--steps", "4", "--seed", "1", "--batch-size", "5",
                  "--out", "gen.h5", *T, "--no-progress"], ["gen.h5"]),
    ("generate_sde", ["generate", "--model", "m.pt", "--n", "6", "--steps", "4", "--sde", "0.5", "--seed", "2",
                      "--grid-power", "2", "--out", "gen_sde.h5", *T, "--no-progress"], ["gen_sde.h5"]),
    ("sequential", ["generate", "--model", "m.pt", "--n", "6", "--steps", "3", "--order", "random", "--block", "4",
                    "--seed", "3", "--out", "seq.h5", *T, "--no-progress"], ["seq.h5"]),
    ("coarse_to_fine", ["generate", "--model", "m.pt", "--n", "4", "--steps", "2", "--order", "coarse_to_fine",
                        "--levels", "2", "--seed", "3", "--solver", "rk4", "--out", "c2f.h5", *T, "--no-progress"],
     ["c2f.h5"]),
    ("inpaint", ["inpaint", "--model", "m.pt", "--data", "hmc.h5", "--n", "8", "--mask", "random:0.5", "--steps", "4",
                 "--seed", "4", "--out", "inp.h5", *T, "--no-progress"], ["inp.h5"]),
    ("inpaint_seq", ["inpaint", "--model", "m.pt", "--data", "hmc.h5", "--n", "4", "--mask", "block:4x4@2,2",
                     "--order", "raster", "--block", "2", "--steps", "2", "--seed", "4", "--out", "inp_seq.h5", *T,
                     "--no-progress"], ["inp_seq.h5"]),
    ("posterior_h", ["posterior", "--model", "m.pt", "--h", "0.2", "--n", "8", "--steps", "4", "--pilot", "16",
                     "--seed", "5", "--out", "post_h.h5", *T, "--no-progress"], ["post_h.h5"]),
    ("posterior_k", ["posterior", "--model", "m.pt", "--k", "0.1", "--h", "0.1", "--n", "6", "--steps", "4",
                     "--start", "noise", "--seed", "6", "--out", "post_k.h5", *T, "--no-progress"], ["post_k.h5"]),
    ("posterior_inpaint", ["posterior", "--model", "m.pt", "--h", "0.3", "--data", "hmc.h5", "--n", "4", "--mask",
                           "block:4x4@0,0", "--steps", "3", "--start", "0.1", "--seed", "7", "--out", "post_inp.h5",
                           *T, "--no-progress"], ["post_inp.h5"]),
    ("reweight", ["sample-neural", "--model", "m.pt", "--method", "reweight", "--n", "8", "--steps", "3",
                  "--seed", "1", "--out", "rw.h5", *T, "--no-progress"], ["rw.h5"]),
    ("reweight_post", ["sample-neural", "--model", "m.pt", "--method", "reweight", "--n", "6", "--steps", "3",
                       "--h", "0.2", "--proposal", "posterior", "--pilot", "8", "--divergence", "hutchinson",
                       "--probes", "2", "--seed", "2", "--out", "rw_post.h5", *T, "--no-progress"], ["rw_post.h5"]),
    ("imh", ["sample-neural", "--model", "m.pt", "--method", "imh", "--n", "6", "--chains", "2", "--steps", "3",
             "--seed", "3", "--out", "imh.h5", *T, "--no-progress"], ["imh.h5"]),
    ("block", ["sample-neural", "--model", "m.pt", "--method", "block", "--n", "3", "--block", "4", "--steps", "2",
               "--divergence", "exact", "--seed", "4", "--out", "block.h5", *T, "--no-progress"], ["block.h5"]),
    ("hybrid", ["sample-neural", "--model", "m.pt", "--method", "hybrid", "--n", "3", "--block", "4", "--steps", "2",
                "--hmc-traj", "2", "--chains", "2", "--seed", "5", "--out", "hybrid.h5", *T, "--no-progress"],
     ["hybrid.h5"]),
    ("image_train", ["image", "train", "--out", "im.pt", "--steps", "16", "--model", "tiny", "--batch-size", "16",
                     "--val-every", "8", "--checkpoint-every", "8", "--warmup", "4", "--n-test", "40", "--seed", "1",
                     *T, "--no-progress"], ["im.pt", "im.pt.log"]),
    ("image_generate", ["image", "generate", "--model", "im.pt", "--n", "4", "--steps", "3", "--seed", "1",
                        "--out", "im_gen.h5", *T], ["im_gen.h5"]),
    ("image_sequential", ["image", "generate", "--model", "im.pt", "--n", "3", "--steps", "2", "--order", "random",
                          "--block", "4", "--seed", "2", "--out", "im_seq.h5", *T], ["im_seq.h5"]),
    ("image_inpaint", ["image", "inpaint", "--model", "im.pt", "--mask", "random:0.6", "--noise", "0.05", "--n", "4",
                       "--steps", "3", "--seed", "3", "--out", "im_inp.h5", *T], ["im_inp.h5"]),
    ("image_edit", ["image", "edit", "--model", "im.pt", "--region", "block:3x3@1,1", "--region", "block:2x4@4,2",
                    "--steps", "3", "--seed", "4", "--out", "im_edit.h5", *T], ["im_edit.h5"]),
    ("image_evaluate", ["image", "evaluate", "--model", "im.pt", "--n-images", "6", "--steps", "3", "--n-mean", "2",
                        "--seed", "5", "--out", "im_eval.json", *T], ["im_eval.json"]),
    ("maze_dataset", ["maze", "dataset", "--out", "mz.h5", "--n-windows", "64", "--seed", "1"], ["mz.h5"]),
    ("maze_train", ["maze", "train", "--data", "mz.h5", "--out", "mz.pt", "--steps", "12", "--model", "tiny",
                    "--batch-size", "16", "--val-every", "6", "--checkpoint-every", "6", "--warmup", "3", "--seed", "1",
                    *T, "--no-progress"], ["mz.pt", "mz.pt.log"]),
    ("maze_plan", ["maze", "plan", "--model", "mz.pt", "--start", "1.5", "1.5", "--goal", "4.5", "3.5", "--via", "1.5",
                   "3.5", "--steps", "3", "--tries", "2", "--rounds", "1", "--seed", "2", "--out", "mz_plan.json",
                   *T], ["mz_plan.json"]),
    ("maze_evaluate", ["maze", "evaluate", "--model", "mz.pt", "--n-plans", "4", "--steps", "3", "--tries", "2",
                       "--rounds", "1", "--seed", "3", "--out", "mz_eval.json", "--plans", "mz_plans.h5", *T],
     ["mz_eval.json", "mz_plans.h5"]),
]


def _volatile(key) -> bool:
    k = str(key)
    return k in VOLATILE or k.startswith("seconds") or k.endswith("_seconds") or k.endswith("wall_time")


def _norm(v):
    """Drop volatile keys from JSON-like values (recursively); parse JSON strings."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str) and _WORK and _WORK[0] in v:
        v = v.replace(_WORK[0], "<work>")
    if isinstance(v, str) and v[:1] in "{[":
        try:
            v = json.loads(v)
        except ValueError:
            return v
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items()) if not _volatile(k)}
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return v


def _h(obj) -> str:
    return hashlib.sha256(obj if isinstance(obj, bytes) else json.dumps(obj, sort_keys=True, default=repr).encode()
                          ).hexdigest()[:16]


def _digest_h5(path) -> dict:
    import h5py
    import numpy as np

    out = {}
    with h5py.File(path, "r") as f:
        def attrs(name, obj):
            for k, v in obj.attrs.items():
                if _volatile(k) or k in ("DIMENSION_LIST", "REFERENCE_LIST"):
                    continue
                v = v.tolist() if isinstance(v, np.ndarray) else (v.item() if isinstance(v, np.generic) else v)
                out[f"{name}@{k}"] = _h(_norm(v))

        attrs("/", f)

        def visit(name, obj):
            attrs(name, obj)
            if isinstance(obj, h5py.Dataset) and "names" in obj.attrs:   # named counters (the resume state)
                names = json.loads(obj.attrs["names"])
                a = np.asarray(obj[()])
                for i, k in enumerate(names):
                    if not _volatile(k):
                        out[f"{name}[{k}]"] = _h(a[i].tobytes())
            elif isinstance(obj, h5py.Dataset):
                a = np.asarray(obj[()])
                out[name] = _h(a.dtype.str.encode() + str(a.shape).encode() + (a.tobytes() if a.dtype != object
                                                                               else repr(a.tolist()).encode()))

        f.visititems(visit)
    return out


def _tensors(v):
    import numpy as np
    import torch

    if isinstance(v, torch.Tensor):
        return _h(v.detach().cpu().contiguous().numpy().tobytes() + str(v.dtype).encode() + str(tuple(v.shape)).encode())
    if isinstance(v, np.ndarray):
        return _h(v.tobytes())
    if isinstance(v, dict):
        return {str(k): _tensors(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0])) if not _volatile(k)}
    if isinstance(v, (list, tuple)):
        return [_tensors(x) for x in v]
    return _norm(v)


def _digest_pt(path) -> dict:
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=False)
    return {k: _h(_tensors(v)) for k, v in ck.items() if not _volatile(k)}


def _digest(path: Path) -> dict:
    if path.suffix == ".h5":
        return _digest_h5(path)
    if path.suffix == ".pt":
        return _digest_pt(path)
    text = path.read_text()
    if path.suffix == ".log":
        return {f"line{i}": _h(_norm(json.loads(line))) for i, line in enumerate(text.splitlines()) if line.strip()}
    return {"json": _h(_norm(json.loads(text)))}


def run_all(code_root: Path, work: Path, only=None) -> dict:
    """Run every command with the package found at ``code_root``; return {run: {file: digest}}."""
    for d in (work, work.parent / f"numba_cache_{work.name}"):
        if d.exists():
            shutil.rmtree(d)
    work.mkdir(parents=True)
    # a fresh numba cache for each side: a kernel loaded from the cache can differ from a fresh compile in
    # the last bits of a few floating-point results (observed for force_batch), so both sides compile
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2",
           "NUMBA_CACHE_DIR": str(work.parent / f"numba_cache_{work.name}")}
    res = {}
    _WORK[:] = [str(work.resolve())]
    for name, argv, outputs in RUNS:
        if only and name not in only:
            continue
        if name == "resume":
            # a shorter run of the same settings, continued to the full length
            first = ["sample-mcmc", "--shape", "8", "8", "--chains", "2", "--n-traj", "40", "--n-therm", "20",
                     "--every", "2", "--seed", "3", "--out", "hmc_resume.h5", "--no-progress"]
            subprocess.run([sys.executable, "-m", "phi4si", *first], cwd=work, env=env, check=True,
                           capture_output=True)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "phi4si", *argv], cwd=work, env=env, capture_output=True, text=True)
        if p.returncode not in (0, 3):  # maze plan exits 3 when no valid path was found (the JSON is written)
            raise SystemExit(f"{name}: phi4si {' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
        dig = {}
        for o in outputs:
            dig[o] = {"stdout": _h(_norm(json.loads(p.stdout)))} if o == "@stdout" else _digest(work / o)
        dig["@exit"] = {"status": str(p.returncode)}
        res[name] = dig
        print(f"  {name:18s} {time.perf_counter() - t0:6.1f} s", file=sys.stderr)
    return res


def compare(a: dict, b: dict) -> int:
    bad = 0
    for name in a:
        for f in a[name]:
            da, db = a[name][f], b.get(name, {}).get(f)
            if da == db:
                print(f"same     {name:18s} {f} ({len(da)} items)")
                continue
            bad += 1
            keys = sorted(set(da) | set(db or {}))
            diff = [k for k in keys if (db or {}).get(k) != da.get(k)]
            print(f"DIFFERS  {name:18s} {f}: {', '.join(diff[:8])}{' ...' if len(diff) > 8 else ''}")
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default=None, help="git revision to compare the working tree with")
    ap.add_argument("--self-check", action="store_true", help="run the working tree twice")
    ap.add_argument("--only", nargs="+", default=None, help="run only these runs (by name)")
    ap.add_argument("--keep", default=None, help="keep the scratch folders under this folder")
    ap.add_argument("--save", default=None, help="write both digests as JSON here")
    args = ap.parse_args(argv)
    if (args.before is None) == (not args.self_check):
        ap.error("give --before REV or --self-check")
    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="phi4si_same_bits_"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        if args.before:
            old = scratch / "before_src"
            if old.exists():
                shutil.rmtree(old)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(old), args.before],
                           check=True, capture_output=True)
            try:
                print(f"before: {args.before}", file=sys.stderr)
                a = run_all(old, scratch / "before", args.only)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                               capture_output=True)
        else:
            print("first run of the working tree", file=sys.stderr)
            a = run_all(ROOT, scratch / "before", args.only)
        print("working tree", file=sys.stderr)
        b = run_all(ROOT, scratch / "after", args.only)
        if args.save:
            Path(args.save).write_text(json.dumps({"before": a, "after": b}, indent=1))
        bad = compare(a, b)
        n = sum(len(v) for v in a.values())
        print(f"{n - bad} of {n} outputs identical" + (f"; {bad} differ" if bad else ""))
        return 1 if bad else 0
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
