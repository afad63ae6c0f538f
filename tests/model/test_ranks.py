"""Tasks under torchrun (phi4si.model.ranks): two CPU processes (gloo) write the one output file of a
single process, bit for bit, for generate, posterior (its pilot runs shared out too), inpaint,
the SDE, sample-neural reweight and imh; a resume may use another number of processes; the block
methods and a WORLD_SIZE without torchrun are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from phi4si.cli import main
from phi4si.errors import ParameterError
from phi4si.model.ranks import Ranks, current

COMMON = ["--model", "l8", "--batch-size", "6", "--seed", "3", "--threads", "1", "--no-progress"]
TASKS = {
    "gen": ["generate", "--n", "20", "--steps", "4"],
    "post": ["posterior", "--n", "20", "--steps", "4", "--h", "0.05", "--pilot", "16"],
    "sde": ["generate", "--n", "14", "--steps", "4", "--sde", "0.5"],
    "raster": ["generate", "--n", "8", "--steps", "3", "--order", "raster", "--block", "4"],
    "inp": ["inpaint", "--data", "{gen}", "--n", "14", "--mask", "block:4x4@0,0", "--steps", "4"],
    "rew": ["sample-neural", "--method", "reweight", "--n", "20", "--steps", "3"],
    "imh": ["sample-neural", "--method", "imh", "--n", "9", "--chains", "2", "--steps", "3"],
}

SCRIPT = """
import os, sys
import torch.distributed as dist
from phi4si.cli import main
dist.init_process_group("gloo")    # one group for every command of this process (each phi4si command
                                   # run alone initialises and destroys its own)
tasks = {tasks!r}
common = {common!r}
for name, argv in tasks.items():
    argv = [a.replace("{{gen}}", os.path.join(sys.argv[1], "one_gen.h5")) for a in argv]
    rc = main(argv + common + ["--out", os.path.join(sys.argv[1], "two_" + name + ".h5")])
    assert rc in (0, None), (name, rc)
dist.destroy_process_group()
os.write(1, b"done\\n")
"""


def _torchrun(script, *args, nproc=2):
    env = dict(os.environ, PHI4SI_DDP_BACKEND="gloo", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), str(script), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def _same(a, b):
    with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
        for key in ("phi", "log_w", "accepted", "dH"):
            if key in f:
                assert np.array_equal(f[key][:], g[key][:]), (a, key)
        return f["phi"].shape


@pytest.mark.slow   # ~30 s of torchrun start-up (test_train.py::test_ddp_gloo keeps two processes in the default run)
def test_two_processes_write_the_file_of_one(tmp_path):
    for name, argv in TASKS.items():
        argv = [a.replace("{gen}", str(tmp_path / "one_gen.h5")) for a in argv]
        assert main(argv + COMMON + ["--out", str(tmp_path / f"one_{name}.h5")]) in (0, None), name
    script = tmp_path / "tasks.py"
    script.write_text(SCRIPT.format(tasks=TASKS, common=COMMON))
    p = _torchrun(script, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("done") == 2
    for name in TASKS:
        shape = _same(tmp_path / f"one_{name}.h5", tmp_path / f"two_{name}.h5")
        assert shape[-2:] == (8, 8)
    with h5py.File(tmp_path / "two_gen.h5", "r") as f:
        assert '"processes": 2' in f.attrs["run"]
    # nothing but the outputs (no stray temporary or lock files of the followers)
    assert sorted(q.name for q in tmp_path.iterdir() if q.suffix != ".h5") == ["tasks.py"]


RESUME = """
import sys
from phi4si.cli import main
rc = main(["generate", "--n", "30", "--steps", "4", "--resume", "--out", sys.argv[1]] + {common!r})
assert rc in (0, None), rc
"""


@pytest.mark.slow
def test_a_resume_may_use_another_number_of_processes(tmp_path):
    one, part = tmp_path / "one.h5", tmp_path / "part.h5"
    assert main(["generate", "--n", "30", "--steps", "4", "--out", str(one)] + COMMON) in (0, None)
    assert main(["generate", "--n", "12", "--steps", "4", "--out", str(part)] + COMMON) in (0, None)
    script = tmp_path / "resume.py"
    script.write_text(RESUME.format(common=COMMON))
    p = _torchrun(script, part)
    assert p.returncode == 0, p.stdout + p.stderr
    _same(one, part)


def test_block_methods_are_refused_under_several_processes(tmp_path):
    from phi4si import load_model
    from phi4si.model.exact import sample_neural

    with pytest.raises(ParameterError, match="runs its chains in one process"):
        sample_neural(load_model("l8"), "block", tmp_path / "b.h5", 2, ranks=Ranks(rank=0, world=2))
    assert not (tmp_path / "b.h5").exists()


def test_world_size_without_torchrun_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ParameterError, match="launch phi4si generate with torchrun"):
        current("cpu", "phi4si generate")


def test_one_process_owns_every_batch():
    r = Ranks.single()
    assert r.leader and all(r.owns(j) for j in range(5)) and r.all_gather(3) == [3] and r.any(False) is False
    two = Ranks(rank=1, world=2)
    assert [two.owns(j) for j in range(4)] == [False, True, False, True] and not two.leader
