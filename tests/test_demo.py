"""phi4si demo: every task of the shipped model beside HMC, in one table and a report (short runs here)."""

import json

import pytest

from phi4si.demo import H_SCAN, DemoSettings, run_demo
from phi4si.errors import ParameterError

TINY = dict(n=16, n_exact=8, n_traj=60, chains=2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, DemoSettings(**TINY))


def test_the_table_has_every_task_marked_exact_or_raw(demo):
    out, doc = demo
    tasks = [r["task"] for r in doc["rows"]]
    assert tasks[:3] == ["generation", "inpainting (4x4 block)", "sequential (raster, 4x4)"]
    assert any(t.startswith("independence Metropolis") for t in tasks)
    assert [r["h"] for r in doc["rows"] if r["task"].startswith("posterior h") and "reweighted" not in r["task"]] \
        == list(H_SCAN)
    kinds = {r["task"]: r["kind"] for r in doc["rows"]}
    assert kinds["generation"] == "raw (model)" and kinds["reweighted proposals"] == "exact (reweighted)"
    assert kinds["posterior h = 0.05, reweighted"] == "exact (reweighted)"
    for r in doc["rows"]:                               # every row against HMC at its own h
        main = r.get("abs_m") or r.get("m")
        assert main["ref"] is not None and main["error"] is not None and set(r) >= {"chi", "s"}
        assert ("m" in r) == (r["h"] > 0)
        assert r["gp"]["orbits"] == 15 and r["gp"]["max_z"] >= 0         # G(p) on the 15 orbits of 8x8
    table = doc["table"]
    assert table.count("\n| ") == len(doc["rows"]) + 1 and "exact (Metropolis)" in table and "vs HMC" in table


def test_the_report_and_its_files(demo):
    out, doc = demo
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "table.md", "demo.json", "hist_m.png", "configs.png", "m_of_h.png", "hmc_h0.h5",
            "exact_reweight.h5", "exact_posterior_h0.05.h5"} <= names
    assert {f"hmc_h{h:g}.h5" for h in H_SCAN} <= names
    report = (out / "report.md").read_text()
    assert "![m histograms](hist_m.png)" in report and doc["table"] in report and "THEORY.md" in report
    assert json.loads((out / "demo.json").read_text())["rows"] == json.loads(json.dumps(doc["rows"]))


@pytest.mark.slow   # ~17 s of training
def test_cli_demo_trains_its_own_model_and_refuses_bad_settings(cli, tmp_path):
    rc, out, err = cli("demo", "--out", tmp_path / "d", "--train", "--train-minutes", "0.05", "--n", 16,
                       "--n-exact", 8, "--n-traj", 60)
    assert rc == 0, err
    assert (tmp_path / "d" / "model.pt").exists() and "| generation | 0 | raw (model) |" in out
    assert "[1/10] HMC ground truth" in err and "training a small model" in err and "wrote" in err
    rc, _, err = cli("demo", "--out", tmp_path / "e", "--train", "--model", "l16")
    assert rc != 0 and "--model does not apply" in err and not (tmp_path / "e").exists()
    rc, _, err = cli("demo", "--out", tmp_path / "e", "--model", "l16", "--n", 16, "--n-exact", 8, "--n-traj", 60)
    assert rc != 0 and "needs a model of the 8x8" in err and not (tmp_path / "e").exists()
    with pytest.raises(ParameterError, match="n_exact must be"):
        DemoSettings(n_exact=2)
    with pytest.raises(ParameterError, match="train_minutes"):
        DemoSettings(train_minutes=0)
