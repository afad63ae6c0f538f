"""Bad files end with one line, quickly (issue 19, "Nothing lost, nothing silent").

Truncated, partial, foreign, empty or damaged (NaN) ensemble files and bad model checkpoints are
refused by every reader -- ``analyze``, ``plot``, ``sample-mcmc --resume``, ``open_ensemble``,
``EnsembleData``, ``train --resume``, ``generate --model`` -- with exit status 1 and ONE line on
stderr naming the file and what is wrong: no traceback, no hang (a truncated file used to sleep
for minutes inside the HDF5 SWMR open), the bad file byte-identical afterwards and nothing new
left in its folder.  The checks live in one place, :func:`phi4si.store.verify_file` (raw bytes:
signature, superblock end-of-file address) and :func:`phi4si.store.verify_contents` (schema,
shapes, readable committed data, NaN/inf), and :func:`phi4si.model.checkpoint.read_checkpoint`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import phi4si
from phi4si import Phi4Params
from phi4si.errors import CheckpointError, EnsembleFileError

P = Phi4Params((4, 4), -1.0, 1.0)
RESUME = ("--shape", "4", "4", "--m2", "-1.0", "--lam", "1.0", "--chains", "2", "--n-traj", "40", "--every", "2",
          "--no-progress")
TRAIN = ("--model", "tiny", "--batch-size", "4", "--warmup", "1", "--threads", "1", "--no-progress", "--steps", "2")
TRUNC = re.compile(r"truncated HDF5 file")
NOT_HDF5 = r"not a readable HDF5 ensemble"


@pytest.fixture(scope="session")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    return Path(phi4si.sample_mcmc(P, str(d / "e.h5"), chains=2, n_traj=40, every=2, progress=False))


def _cut(n):
    def make(good, p):
        data = good.read_bytes()
        p.write_bytes(data[:n(len(data))])
    return make


def _write(content):
    def make(good, p):
        p.write_bytes(content)
    return make


def _directory(good, p):
    p.mkdir()


def _foreign(good, p):
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
        f.attrs["note"] = "some other program's file"


def _inject(name, index, value=np.nan):
    def make(good, p):
        shutil.copyfile(good, p)
        with h5py.File(p, "r+") as f:
            f[name][index] = value
    return make


RNG = np.random.default_rng(19)
# kind: (how to make it, what the one line must say)
BAD = {
    "empty": (_write(b""), r"empty file \(0 bytes\)"),
    "cut at 8": (_cut(lambda n: 8), TRUNC),
    "cut at 100": (_cut(lambda n: 100), TRUNC),
    "cut at 512": (_cut(lambda n: 512), TRUNC),
    "cut at 4096": (_cut(lambda n: 4096), TRUNC),
    "cut in half": (_cut(lambda n: n // 2), TRUNC),
    "cut by 1 byte": (_cut(lambda n: n - 1), TRUNC),
    "random bytes": (_write(RNG.bytes(4096)), r"no HDF5 signature"),
    "signature + random": (_write(b"\x89HDF\r\n\x1a\n" + RNG.bytes(4088)), NOT_HDF5),
    "directory": (_directory, r"is a directory"),
    "foreign HDF5": (_foreign, r"not a phi4si ensemble"),
    "NaN in m": (_inject("m", (1, 5)), r"/m contain NaN or inf \(1 NaN values, first at chain 1, trajectory 5\)"),
    "inf in S": (_inject("S", (0, 7), np.inf), r"/S contain NaN or inf \(1 inf values, first at chain 0, trajectory 7\)"),
    "NaN in phi": (_inject("phi", (1, 3, 2, 1)),
                   r"configurations /phi contain NaN or inf \(1 NaN values, first at chain 1, configuration 3 = "
                   r"trajectory 6\)"),
    "NaN in state phi": (_inject("state/phi", (0, 7)), r"resume state /state/phi contain NaN or inf \(1 NaN values, "
                                                       r"first in chain 0\)"),
}
# EnsembleData's own words for files that are not ensembles (kept from before)
DATA_MATCH = {"foreign HDF5": r"not a phi4si ensemble \(no configurations 'phi'\)"}


@pytest.fixture
def bad_file(good, tmp_path, request):
    kind = request.param
    folder = tmp_path / "bad"
    folder.mkdir()
    p = folder / "ens.h5"
    BAD[kind][0](good, p)
    return kind, p


def _digest(p: Path):
    if p.is_dir():
        return "dir", sorted(os.listdir(p))
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


def _snapshot(p: Path):
    return _digest(p), sorted(os.listdir(p.parent))


def _one_line(cmd, rc, err, p, match):
    assert rc == 1, (cmd, rc, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"phi4si {cmd}: error: "), err
    assert str(p) in lines[0], err
    assert re.search(match, lines[0]), (match, err)


@pytest.mark.parametrize("bad_file", list(BAD), indirect=True)
def test_every_reader_refuses(bad_file, cli, tmp_path):
    kind, p = bad_file
    match = BAD[kind][1]
    before = _snapshot(p)
    t0 = time.perf_counter()
    for cmd, args in (("analyze", (p,)), ("analyze", ("--json", p)), ("plot", (p, "--out", p.parent / "plots")),
                      ("sample-mcmc", (*RESUME, "--out", p, "--resume"))):
        rc, _, err = cli(cmd, *args)
        m = match
        if cmd == "sample-mcmc" and kind == "foreign HDF5":
            m = r"not a resumable phi4si ensemble"
        _one_line(cmd, rc, err, p, m)
        assert _snapshot(p) == before, cmd
    with pytest.raises(EnsembleFileError, match=match) as e:
        phi4si.open_ensemble(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(EnsembleFileError, match=DATA_MATCH.get(kind, match)):
        from phi4si.model.data import EnsembleData

        EnsembleData(p)
    assert _snapshot(p) == before
    assert time.perf_counter() - t0 < 10


def test_truncated_file_is_refused_at_once_in_a_fresh_process(good, tmp_path):
    """The hang itself: ``phi4si analyze`` of the first 4096 bytes slept > 14 minutes in the SWMR open."""
    p = tmp_path / "cut.h5"
    p.write_bytes(good.read_bytes()[:4096])
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "phi4si", "analyze", str(p)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == (f"phi4si analyze: error: {p}: truncated HDF5 file: 4096 of its "
                                f"{good.stat().st_size} bytes; not a readable HDF5 ensemble (an incomplete copy "
                                "or download? copy it again)")
    assert time.perf_counter() - t0 < 30


def test_verify_file_is_fast_and_accepts_good_and_user_block_files(good, tmp_path):
    from phi4si.store import verify_file

    t0 = time.perf_counter()
    for _ in range(100):
        verify_file(good)
    assert time.perf_counter() - t0 < 1.0
    ub = tmp_path / "ub.h5"                      # a user block: the signature at 512, not 0
    with h5py.File(ub, "w", userblock_size=512) as f:
        f["x"] = np.arange(1000.0)
    verify_file(ub)
    old = tmp_path / "old.h5"                    # superblock version 0 (the default libver)
    with h5py.File(old, "w", libver="earliest") as f:
        f["x"] = np.arange(1000.0)
    assert old.read_bytes()[8] == 0
    verify_file(old)
    for src in (ub, old):
        cut = tmp_path / f"cut-{src.name}"
        cut.write_bytes(src.read_bytes()[:-1])
        with pytest.raises(EnsembleFileError, match=TRUNC):
            verify_file(cut)


def test_good_files_still_open(good):
    with phi4si.open_ensemble(good) as ds:
        assert ds.sizes["traj"] == 40 and ds.sizes["cfg"] == 20
    assert phi4si.store.check_ensemble(good)["n_done"] == 40


def test_large_datasets_are_sampled_not_read(good, tmp_path, monkeypatch):
    """Above the read budget only the first and last chunk of a dataset are read (a 1 GB ensemble opens fast):
    NaN in the last chunk is still found, NaN in the middle of a large dataset is not looked for."""
    import phi4si.store as store

    monkeypatch.setattr(store, "READ_ALL_BYTES", 64)
    p = tmp_path / "e.h5"
    shutil.copyfile(good, p)
    with h5py.File(p, "r+") as f:
        f["phi"][0, 19, 0, 0] = np.nan          # the last stored configuration
    with pytest.raises(EnsembleFileError, match=r"/phi contain NaN or inf \(1 NaN values, first at chain 0, "
                                                r"configuration 19 = trajectory 38\)"):
        store.check_ensemble(p)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="session")
def good_model(good, tmp_path_factory):
    from phi4si import TrainConfig, train

    out = tmp_path_factory.mktemp("model") / "m.pt"
    train(good, out, TrainConfig(steps=2, model="tiny", batch_size=4, warmup=1), progress=False)
    return out


BAD_CK = {
    "empty": (_write(b""), r"empty file \(0 bytes\), not a readable torch checkpoint"),
    "truncated": (None, r"not a readable torch checkpoint .*truncated or not a checkpoint"),
    "random bytes": (_write(RNG.bytes(2048)), r"not a readable torch checkpoint"),
    "directory": (_directory, r"is a directory"),     # train: "--out ... is a directory" (cli/io)
}


@pytest.mark.parametrize("kind", list(BAD_CK))
def test_bad_checkpoints(kind, good, good_model, cli, tmp_path):
    from phi4si.model.checkpoint import load_model, read_checkpoint

    folder = tmp_path / "bad"
    folder.mkdir()
    p = folder / "m.pt"
    make, match = BAD_CK[kind]
    if make is None:
        p.write_bytes(good_model.read_bytes()[: good_model.stat().st_size // 2])
    else:
        make(good_model, p)
    before = _snapshot(p)
    rc, _, err = cli("train", "--data", good, "--out", p, "--resume", *TRAIN)
    _one_line("train", rc, err, p, match)
    assert _snapshot(p) == before
    rc, _, err = cli("generate", "--model", p, "--n", "2", "--out", folder / "g.h5", "--steps", "2", "--no-progress")
    _one_line("generate", rc, err, p, match)
    assert _snapshot(p) == before
    for f in (read_checkpoint, load_model):
        with pytest.raises(CheckpointError, match=match):
            f(p)


def test_foreign_checkpoint_resume_stays_a_resume_error(good, tmp_path, cli):
    import torch

    p = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, p)
    rc, _, err = cli("train", "--data", good, "--out", p, "--resume", *TRAIN)
    _one_line("train", rc, err, p, r"cannot resume .*: not a phi4si model checkpoint")
