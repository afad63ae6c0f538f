"""The fault-injection suite of issue 19 ("Nothing lost, nothing silent"): every long-running command
under kill -9 and Ctrl-C at random points, write errors, concurrent writers, bad parameters.

Every case asserts what a user sees and keeps: the exit status, ONE clean line on stderr (no
traceback, no "Exception ignored"), pre-existing files unchanged, no temporary or lock files left
behind, and where a run can be continued, that ``--resume`` ends exactly where an uninterrupted run
ends, bit for bit.

Write errors are real ones from the kernel: the command runs with a file-size limit
(``RLIMIT_FSIZE``, SIGXFSZ ignored), so every write past it fails with EFBIG, exactly where a full
disk fails with ENOSPC (the checks key on "the system refused the write", not on the errno).

The random points come from a seeded generator (``FAULT_SEED``), so a failure can be replayed.
``python tests/fault_table.py`` runs this suite with the other fault tests and writes the table of
cases tried / held / broke per category (benchmarks/results/fault_table.md).
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from processes import n_done, wait_for

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FAULT_SEED = int(os.environ.get("FAULT_SEED", "19"))


# ------------------------------------------------------------------------------------------------ helpers
def _limit(nbytes):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


def _run(args, cwd, limit=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "phi4si", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=timeout, preexec_fn=None if limit is None else _limit(limit))


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "phi4si", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd)


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err and "Exception ignored" not in err, err
    return lines[0]


def _listing(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock", ".repair"))]






def _same_ensembles(a, b, keys=("m", "S", "phi"), atol=0.0):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for k in keys:
            x, y = fa[k][...], fb[k][...]
            assert x.shape == y.shape, (k, x.shape, y.shape)
            if atol:
                assert np.allclose(x, y, rtol=atol, atol=atol), k
            else:
                assert np.array_equal(x, y), f"{k} differs"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A small ensemble and a tiny trained model, shared by the cases (read-only to them)."""
    from phi4si import Phi4Params, TrainConfig, sample_mcmc, train

    d = tmp_path_factory.mktemp("lab")
    ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), d / "e.h5", chains=2, n_traj=60, n_therm=10, progress=False)
    train(ens, d / "m.pt", TrainConfig(steps=5, model="tiny", batch_size=8, threads=1), progress=False)
    return d


def _work(tmp_path, lab) -> Path:
    """A fresh folder with links to the shared inputs (so the listing check sees only this case's files)."""
    w = tmp_path / "w"
    w.mkdir()
    for name in ("e.h5", "m.pt"):
        (w / name).symlink_to(lab / name)
    return w


# the long-running commands, small; each writes OUT and can be resumed (train: with --resume too)
COMMANDS = {
    "sample-mcmc": ["sample-mcmc", "--shape", "8", "8", "--chains", "2", "--n-therm", "20", "--n-traj", "4000",
                    "--every", "2", "--seed", "3", "--flush-seconds", "0.02", "--no-progress", "--out", "OUT"],
    "generate": ["generate", "--model", "m.pt", "--n", "3000", "--batch-size", "32", "--steps", "2", "--seed", "5",
                 "--threads", "1", "--no-progress", "--out", "OUT"],
    "inpaint": ["inpaint", "--model", "m.pt", "--data", "e.h5", "--mask", "block:2x2@0,0", "--batch-size", "8",
                "--steps", "2", "--threads", "1", "--no-progress", "--out", "OUT"],
    "posterior": ["posterior", "--model", "m.pt", "--h", "0.05", "--n", "2000", "--batch-size", "32", "--steps", "2",
                  "--pilot", "16", "--threads", "1", "--no-progress", "--out", "OUT"],
    "sample-neural": ["sample-neural", "--model", "m.pt", "--method", "reweight", "--n", "1500", "--steps", "2",
                      "--batch-size", "32", "--threads", "1", "--seed", "4", "--no-progress", "--out", "OUT"],
    "train": ["train", "--data", "e.h5", "--model", "tiny", "--steps", "300", "--batch-size", "8", "--val-every", "100",
              "--checkpoint-every", "20", "--threads", "1", "--seed", "3", "--no-progress", "--out", "OUT"],
}
SUFFIX = {"train": ".pt"}


def _cmd(name, out):
    return [str(out) if a == "OUT" else a for a in COMMANDS[name]]


def _same_result(name, ref, out):
    if name == "train":
        import torch

        a, b = torch.load(ref, weights_only=False), torch.load(out, weights_only=False)
        assert a["step"] == b["step"]
        for key in ("model_state", "ema_state"):
            for p in a[key]:
                assert torch.equal(a[key][p], b[key][p]), f"{key}.{p} differs"
    else:
        _same_ensembles(ref, out)


@pytest.fixture(scope="module")
def references(lab):
    """The uninterrupted run of every command (computed on first use)."""
    cache = {}

    def get(name):
        if name not in cache:
            out = lab / f"ref-{name}{SUFFIX.get(name, '.h5')}"
            r = _run(_cmd(name, out), lab)
            assert r.returncode == 0, r.stderr
            cache[name] = out
        return cache[name]

    return get


# ------------------------------------------------------------------------------------------------ write errors
# (limit in bytes: 20 kB stops the very first write; the larger ones stop a run part-way)
WRITE_CASES = [("generate", 20_000), ("generate", 400_000), ("sample-mcmc", 20_000), ("sample-mcmc", 1_500_000),
               ("sample-neural", 400_000), ("train", 20_000), ("inpaint", 20_000), ("posterior", 400_000)]
SLOW_WRITE = {("generate", 400_000), ("sample-mcmc", 1_500_000), ("sample-neural", 400_000), ("posterior", 400_000), ("inpaint", 20_000)}


@pytest.mark.parametrize("name,limit", [pytest.param(n, lim, id=f"write-errors/{n}-{lim // 1000}kB",
                                                     marks=[pytest.mark.slow] if (n, lim) in SLOW_WRITE else [])
                                        for n, lim in WRITE_CASES])
def test_write_error_stops_with_one_line_and_resumes(tmp_path, lab, references, name, limit):
    w = _work(tmp_path, lab)
    out = w / f"out{SUFFIX.get(name, '.h5')}"
    r = _run(_cmd(name, out), w, limit=limit)
    assert r.returncode == 1, (r.returncode, r.stderr)
    line = _one_line(r.stderr)
    assert "writing failed" in line or "cannot reserve room" in line, line
    assert not _leftovers(w), _leftovers(w)
    if out.exists():                       # part-way: the file is whole up to its last checkpoint
        assert "continue with --resume" in line or name == "train", line
        r = _run(_cmd(name, out) + ["--resume"], w)
        assert r.returncode == 0, r.stderr
        _same_result(name, references(name), out)
    else:
        assert "nothing was written" in line, line


@pytest.mark.slow
def test_write_error_with_overwrite_keeps_the_old_file(tmp_path, lab):
    w = _work(tmp_path, lab)
    out = w / "g.h5"
    r = _run(_cmd("generate", out)[:-2] + ["--n", "10", "--out", out], w)
    assert r.returncode == 0, r.stderr
    before = _listing(w)
    r = _run(_cmd("generate", out) + ["--overwrite"], w, limit=20_000)
    assert r.returncode == 1 and "nothing was written" in _one_line(r.stderr)
    assert _listing(w) == before and not _leftovers(w)


def test_read_only_destination_is_refused_before_any_work(tmp_path, lab, monkeypatch, cli):
    """(As root a chmod does not make a folder read-only: the probe's refusal is injected.)"""
    import errno
    import tempfile

    w = _work(tmp_path, lab)

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    for name in ("generate", "sample-mcmc", "sample-neural", "train"):
        rc, _, err = cli(*[str(w / a) if a in ("m.pt", "e.h5") else a for a in _cmd(name, w / "o.x")])
        assert rc == 1 and "cannot write into" in _one_line(err) and "Read-only" in err, (name, err)
    assert sorted(p.name for p in w.iterdir()) == ["e.h5", "m.pt"]


# ------------------------------------------------------------------------------------------------ kill -9, Ctrl-C
def _progress(name, out):
    if name == "train":
        def done():
            try:
                import torch
                return torch.load(out, weights_only=False)["step"] if out.exists() else 0
            except Exception:  # noqa: BLE001 - a checkpoint being renamed into place
                return 0
        return done
    return lambda: n_done(out)


TOTAL = {"sample-mcmc": 4000, "generate": 3000, "sample-neural": 1500, "train": 300, "posterior": 2000, "inpaint": 120}
KILL_CASES = [("generate", 0), ("sample-mcmc", 0), ("train", 0), ("sample-neural", 0),
              ("generate", 1), ("sample-mcmc", 1), ("train", 1), ("posterior", 0), ("generate", 2)]
FAST_KILL = {("generate", 0)}


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGKILL, id="kill-9", marks=pytest.mark.slow),   # kill -9 of a
                                 pytest.param(signal.SIGINT, id="sigint")])   # writer: test_store.py, test_writers.py
@pytest.mark.parametrize("name,k", [pytest.param(n, k, id=f"{n}-{k}",
                                                 marks=[] if (n, k) in FAST_KILL else [pytest.mark.slow])
                                    for n, k in KILL_CASES])
def test_fault_at_a_random_point_then_resume_equals_the_uninterrupted_run(tmp_path, lab, references, name, k, sig):
    frac = float(np.random.default_rng([FAULT_SEED, zlib.crc32(name.encode()), k, int(sig)]).uniform(0.05, 0.6))
    w = _work(tmp_path, lab)
    out = w / f"out{SUFFIX.get(name, '.h5')}"
    ref = references(name)
    p = _start(_cmd(name, out), w)
    wait_for(lambda: _progress(name, out)() >= max(1, int(frac * TOTAL[name])), p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert p.returncode == -9
    else:
        assert p.returncode == 130, err
        assert "continue with the same command and --resume" in _one_line(err), err
    r = _run(_cmd(name, out) + ["--resume"], w)
    assert r.returncode == 0, r.stderr
    _same_result(name, ref, out)
    assert not _leftovers(w), _leftovers(w)


@pytest.mark.parametrize("name,delay", [pytest.param("sample-mcmc", 0.3, id="sample-mcmc-0.3s"),
                                        pytest.param("generate", 1.0, id="generate-1.0s"),
                                        pytest.param("sample-mcmc", 1.5, id="sample-mcmc-1.5s", marks=pytest.mark.slow),
                                        pytest.param("train", 0.6, id="train-0.6s", marks=pytest.mark.slow),
                                        pytest.param("sample-neural", 2.0, id="sample-neural-2.0s",
                                                     marks=pytest.mark.slow)])
def test_ctrl_c_during_start_up(tmp_path, lab, references, name, delay):
    """A Ctrl-C while the command starts (imports, kernel compilation) is never swallowed: exit 130
    with one line; whatever it left can be resumed to the uninterrupted result."""
    w = _work(tmp_path, lab)
    out = w / f"out{SUFFIX.get(name, '.h5')}"
    p = _start(_cmd(name, out), w)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the run ended before the signal")
    assert p.returncode == 130, (p.returncode, err)
    _one_line(err)
    assert not _leftovers(w), _leftovers(w)
    if out.exists():
        r = _run(_cmd(name, out) + ["--resume"], w)
        assert r.returncode == 0, r.stderr
        _same_result(name, references(name), out)


@pytest.mark.slow
def test_killed_overwrite_of_generate_keeps_the_old_file(tmp_path, lab):
    w = _work(tmp_path, lab)
    out = w / "g.h5"
    assert _run(_cmd("generate", out)[:-2] + ["--n", "10", "--out", out], w).returncode == 0
    before = _listing(w)
    p = _start(_cmd("generate", out) + ["--overwrite"], w)
    time.sleep(0.5)             # loading torch and the model: before the first batch
    p.kill()
    p.wait()
    assert _listing(w) == before
    r = _run(_cmd("generate", out)[:-2] + ["--n", "10", "--out", out], w)   # the stale temporary is harmless
    assert r.returncode == 1 and "exists" in _one_line(r.stderr)


# ------------------------------------------------------------------------------------------------ concurrency
@pytest.mark.slow
@pytest.mark.parametrize("name", ["generate", "sample-neural"])
def test_a_live_task_refuses_a_twin_a_resume_and_an_overwrite(tmp_path, lab, name):
    w = _work(tmp_path, lab)
    out = w / "live.h5"
    cmd = _cmd(name, out)
    cmd[cmd.index("--n") + 1] = "100000"
    p = _start(cmd, w)
    try:
        wait_for(lambda: n_done(out) > 0, p)
        r = _run(cmd, w)                    # a twin: the file exists already
        assert r.returncode == 1 and "exists" in _one_line(r.stderr), r.stderr
        for extra in (["--resume"], ["--overwrite"]):
            r = _run(cmd + extra, w)
            assert r.returncode == 1, (extra, r.stderr)
            assert "being written by another process (pid" in _one_line(r.stderr), r.stderr
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=120)
    assert p.returncode == 130 and n_done(out) > 0


# ------------------------------------------------------------------------------------------------ bad parameters
BAD = [
    # (command line, exit status, a phrase of the one line)
    (["generate", "--model", "m.pt", "--n", "4", "--h", "1e12", "--out", "o.h5"], 1, "standard deviations"),
    (["posterior", "--model", "m.pt", "--n", "4", "--h", "1e12", "--out", "o.h5"], 1, "standard deviations"),
    (["posterior", "--model", "m.pt", "--n", "4", "--k", "1e12", "--out", "o.h5"], 1, "needs a <="),
    (["generate", "--model", "m.pt", "--n", "4", "--k", "1e12", "--out", "o.h5"], 1, "needs a <="),
    (["generate", "--model", "m.pt", "--n", "0", "--out", "o.h5"], 1, "n must be >= 1"),
    (["generate", "--model", "m.pt", "--n", "-5", "--out", "o.h5"], 1, ">= 1"),
    (["generate", "--model", "m.pt", "--n", "1000000000000", "--out", "o.h5"], 1, "free"),
    (["generate", "--model", "m.pt", "--n", "4", "--steps", "0", "--out", "o.h5"], 1, "steps"),
    (["generate", "--model", "m.pt", "--n", "4", "--batch-size", "0", "--out", "o.h5"], 1, "--batch-size"),
    (["generate", "--model", "m.pt", "--n", "4", "--sde", "-1", "--out", "o.h5"], 1, "sde"),
    (["generate", "--model", "m.pt", "--n", "4", "--sde", "nan", "--out", "o.h5"], 2, "sde"),
    (["generate", "--model", "m.pt", "--n", "4", "--shape", "4", "4", "4", "--out", "o.h5"], 1, "3-d shape"),
    (["generate", "--model", "m.pt", "--n", "4", "--resume", "--out", "o.h5"], 1, "cannot resume"),
    (["generate", "--model", "m.pt", "--n", "4", "--resume", "--overwrite", "--out", "o.h5"], 1, "exclude"),
    (["generate", "--model", "nope.pt", "--n", "4", "--out", "o.h5"], 1, "nope.pt"),
    (["generate", "--model", "e.h5", "--n", "4", "--out", "o.h5"], 1, "e.h5"),
    (["generate", "--model", "m.pt", "--n", "4", "--out", "nodir/o.h5"], 1, "does not exist"),
    (["generate", "--model", "m.pt", "--n", "4", "--out", "."], 1, "directory"),
    (["generate", "--model", "m.pt", "--n", "4", "--order", "raster", "--out", "o.h5"], 1, "block"),
    (["generate", "--model", "m.pt", "--n", "4", "--block", "2", "--out", "o.h5"], 1, "--order"),
    (["inpaint", "--model", "m.pt", "--data", "e.h5", "--mask", "block:9x9@0,0", "--out", "o.h5"], 1, "block"),
    (["inpaint", "--model", "m.pt", "--data", "e.h5", "--mask", "random:2", "--out", "o.h5"], 1, "random"),
    (["inpaint", "--model", "m.pt", "--data", "e.h5", "--mask", "nope.npy", "--out", "o.h5"], 1, "nope.npy"),
    (["inpaint", "--model", "m.pt", "--data", "e.h5", "--mask", "block:2x2@0,0", "--out", "e.h5"], 1, "--data"),
    (["inpaint", "--model", "m.pt", "--data", "e.h5", "--mask", "block:2x2@0,0", "--n", "100000", "--out", "o.h5"],
     1, "holds only"),
    (["posterior", "--model", "m.pt", "--n", "4", "--out", "o.h5"], 1, "reward"),
    (["posterior", "--model", "m.pt", "--n", "4", "--h", "0.1", "--a0", "1.5", "--out", "o.h5"], 1, "a0"),
    (["posterior", "--model", "m.pt", "--n", "4", "--h", "0.1", "--pilot", "1", "--out", "o.h5"], 1, "pilot"),
    (["sample-neural", "--model", "m.pt", "--method", "imh", "--n", "0", "--out", "o.h5"], 1, "n"),
    (["sample-neural", "--model", "m.pt", "--method", "reweight", "--n", "4", "--chains", "3", "--out", "o.h5"], 1,
     "chains"),
    (["sample-neural", "--model", "m.pt", "--method", "reweight", "--n", "4", "--a0", "0.5", "--out", "o.h5"], 1,
     "--proposal posterior"),
    (["sample-mcmc", "--shape", "4", "4", "--n-traj", "10", "--eps", "0", "--out", "o.h5"], 1, "eps"),
    (["sample-mcmc", "--shape", "4", "4", "--n-traj", "10", "--lam", "1e300", "--out", "o.h5"], 1, "lam"),
    (["sample-mcmc", "--shape", "4", "4", "--n-traj", "10", "--chains", "100000000", "--out", "o.h5"], 1, "memory"),
    (["sample-mcmc", "--shape", "100000", "100000", "--n-traj", "10", "--out", "o.h5"], 1, "memory"),
    (["sample-mcmc", "--shape", "4", "4", "--n-traj", "1000000000000", "--every", "1", "--out", "o.h5"], 1, "free"),
    (["sample-mcmc", "--shape", "1", "4", "--n-traj", "10", "--out", "o.h5"], 2, "shape"),
    (["sample-mcmc", "--shape", "4", "4", "--n-traj", "10", "--sampler", "nope", "--out", "o.h5"], 2, "sampler"),
    (["train", "--data", "e.h5", "--batch-size", "100000000", "--steps", "2", "--out", "t.pt"], 1, "machine has"),
    (["train", "--data", "e.h5", "--net", "base_channels=1000000", "--steps", "2", "--out", "t.pt"], 1, "machine has"),
    (["train", "--data", "e.h5", "--lr", "-1", "--steps", "2", "--out", "t.pt"], 1, "lr"),
    (["train", "--data", "e.h5", "--steps", "2", "--log", ".", "--out", "t.pt"], 1, "directory"),
    (["train", "--data", "nope.h5", "--steps", "2", "--out", "t.pt"], 1, "nope.h5"),
    (["train", "--data", "m.pt", "--steps", "2", "--out", "t.pt"], 1, "m.pt"),
    (["analyze", "m.pt"], 1, "m.pt"),
    (["analyze", "nope.h5"], 1, "nope.h5"),
    (["plot", "e.h5", "--out", ""], 1, "out"),
    (["maze", "plan", "--model", "m.pt", "--start", "-100", "1.5", "--goal", "1", "1", "--out", "p.npz"], 1, ""),
]


@pytest.mark.parametrize("args,status,phrase", [pytest.param(a, s, ph, id=f"bad-parameters/{i:02d}-{a[0]}")
                                                for i, (a, s, ph) in enumerate(BAD)])
def test_bad_parameters_are_refused_with_one_line(tmp_path, lab, cli, monkeypatch, args, status, phrase):
    w = _work(tmp_path, lab)
    monkeypatch.chdir(w)
    before = _listing(w)
    rc, _, err = cli(*args)
    assert rc == status, (rc, err)
    if status == 2:     # argparse: its usage, then one error line
        assert "Traceback" not in err
        line = err.strip().splitlines()[-1]
        assert "error:" in line, err
    else:
        line = _one_line(err)
    assert phrase.lower() in line.lower(), line
    assert _listing(w) == before and not _leftovers(w)
