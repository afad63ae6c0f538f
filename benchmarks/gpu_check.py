"""The checks and figures of benchmarks/gpu_check.sh (which runs it last):

    python benchmarks/gpu_check.py OUTDIR [DEVICE]      # DEVICE: cuda (default), cuda:N or cpu (a dry run)

Reads the files the shell script wrote into OUTDIR and checks, each row PASS or FAIL:

* hmc: the two HMC runs (seeds 1 and 2) agree, |z| < 4 on <|m|> and chi (a sanity check of the data);
* train: the run finished on DEVICE with bf16 autocast (the checkpoint's train_config);
* DEVICE = cpu: generate, inpaint, posterior (h = 0.05) and reweight of DEVICE against the CPU runs of
  the same model and seeds: <|m|> (posterior: <m>), chi and <S>/V within 4 combined standard errors
  (phi4si.compare; importance weights applied to the reweighted files);
* paired: the CPU runs draw the same noise as the first configurations of the DEVICE runs (CPU torch
  generators, the same batch size), so configuration by configuration they differ only by the
  device's arithmetic (TF32 convolutions on CUDA): median relative RMS difference < 2 % and under 1 %
  of the configurations above 10 %; reweight: median |delta log w| < 0.25; inpaint: the observed sites
  are the data's, bit for bit, on both devices;
* vs HMC: the DEVICE samples against the independent HMC reference (ref.h5; posterior: ref_h0.05.h5).
  Raw model samples carry the short training's bias, judged by relative deviations: <|m|> within
  10 %, chi within 20 % (generation, inpainting), <m> and chi within 20 % (posterior), or else within
  4 combined standard errors (<m> at h = 0.05 is ~0.03 +- 0.003: 20 % is under 2 sigma); <S>/V is
  reported only (a few-minute model is known to be 5-8 % high, benchmarks/README.md). The reweighted
  samples are exact: |z| < 4 on <|m|>, chi and <S>/V;
* torchrun: the one-process torchrun generate equals the plain DEVICE run of the same seed (bit for
  bit on the CPU; max |difference| < 1e-3 on CUDA);
* compile: the training ran with phi4si train --compile (inductor on cuda, aot_eager on a CPU dry run)
  where the flag exists, and torch.compile of the trained U-Net is checked here against eager: the float32 forward (inference) and a bf16-autocast
  forward + backward (a training step), outputs within tolerance, and their throughputs.

Then throughput: configurations (training: samples) per second of every step from OUTDIR/times.tsv
(wall time with the process start) and from the wall time the output file records (the work alone).
Prints one table, writes benchmarks/results/gpu_check.json (DEVICE cuda; a copy in OUTDIR) or
OUTDIR/gpu_check.json only (DEVICE cpu: nothing CPU-only lands in benchmarks/results), and exits 1
when a check fails (2 on an error).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

Z_MAX = 4.0
RESULT_FILES = {"hmc_data": "data.h5", "hmc_ref": "ref.h5", "hmc_ref_h0.05": "ref_h0.05.h5",
                "torchrun": "gen_torchrun.h5"}
TASK_FILES = {"generate": "gen", "inpaint": "inp", "posterior": "post", "reweight": "rw"}
for _t, _f in TASK_FILES.items():
    for _s in ("dev", "cpu"):
        RESULT_FILES[f"{_t}_{_s}"] = f"{_f}_{_s}.h5"


class Checks:
    def __init__(self):
        self.rows = []

    def add(self, group, name, ok, detail):
        ok = bool(ok) if ok is not None else None
        self.rows.append({"group": group, "check": name, "pass": ok, "detail": detail})
        return ok

    def failed(self):
        return [r for r in self.rows if r["pass"] is False]


def _fin(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v, digits=4):
    return "nan" if not _fin(v) else f"{v:.{digits}g}"


def read_phi(path, n=None):
    import h5py

    with h5py.File(path, "r") as f:
        phi = f["phi"][...]
        phi = phi.reshape(-1, *phi.shape[2:])          # (chain, cfg, *lattice) -> (chain-major cfg, *lattice)
        log_w = f["log_w"][...].reshape(-1) if "log_w" in f else None
    if n is not None:
        phi = phi[:n]
        log_w = None if log_w is None else log_w[:n]
    return phi, log_w


def file_attrs(path):
    import h5py

    with h5py.File(path, "r") as f:
        a = dict(f.attrs)
    out = {"wall_time": float(a["wall_time"]) if "wall_time" in a else None}
    for k in ("run", "sampler"):
        try:
            out[k] = json.loads(a[k]) if k in a else {}
        except (TypeError, ValueError):
            out[k] = {}
    return out


def read_times(path):
    steps = {}
    lines = path.read_text().splitlines()
    for line in lines[1:]:
        name, dev, n, unit, sec, cmd = (line.split("\t") + [""] * 6)[:6]
        steps[name] = {"device": dev, "n": int(n), "unit": unit, "seconds": float(sec), "command": cmd}
    return steps


# ------------------------------------------------------------------------------------------ the checks
def row(c, label, key):
    r = c.row(label, key)
    return r["value"], r["error"], r["ref"], r["ref_error"], r["rel"], r["z"]


def check_hmc(ck, out):
    from phi4si import compare

    c = compare([out / "ref.h5", out / "data.h5"], labels=["ref", "data"])
    for key in ("abs_m", "chi"):
        v, e, rv, re_, rel, z = row(c, "data", key)
        ck.add("hmc", f"HMC seed 1 = seed 2: {key}", _fin(z) and abs(z) < Z_MAX,
               f"{_fmt(v)} +- {_fmt(e, 2)} vs {_fmt(rv)} +- {_fmt(re_, 2)}, z {z:+.2f}")


def check_train(ck, out, dev):
    import torch

    ckpt = torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    tc = ckpt.get("train_config", {})
    hist = ckpt.get("history") or []
    last = hist[-1] if hist else {}
    info = {"steps": int(ckpt.get("step", 0)), "wall_time": float(ckpt.get("wall_time") or float("nan")),
            "batch_size": int(tc.get("batch_size", 0)), "device": tc.get("device"), "amp": tc.get("amp"),
            "model": tc.get("model"), "final": bool(ckpt.get("final")), "compile": tc.get("compile"),
            "last_loss": last.get("loss"), "last_val": last.get("val"), "reference": last.get("reference")}
    info["steps_per_s"] = info["steps"] / info["wall_time"] if info["wall_time"] > 0 else float("nan")
    info["samples_per_s"] = info["steps_per_s"] * info["batch_size"]
    want = "cuda" if dev.startswith("cuda") else "cpu"
    ok = str(info["device"]).startswith(want) and info["amp"] == "bf16" and info["final"] and info["steps"] > 0
    ck.add("train", f"train: {info['steps']} steps on {dev}, bf16", ok,
           f"device {info['device']}, amp {info['amp']}, final {info['final']}, "
           f"{info['steps_per_s']:.1f} steps/s, last loss {_fmt(info['last_loss'])}")
    ref = info["reference"] or {}
    if ref:
        ck.add("train", "train --reference (last validation), info", None,
               ", ".join(f"{k} {100 * ref[k]['rel']:+.1f} %" for k in ("abs_m", "chi", "s")
                         if k in ref and _fin(ref[k].get("rel"))))
    return info


def check_device_vs_cpu(ck, out, dev):
    from phi4si import compare

    figures = {}
    for task, f in TASK_FILES.items():
        c = compare([out / f"{f}_cpu.h5", out / f"{f}_dev.h5"], labels=["cpu", "dev"])
        keys = ("m", "chi", "s") if task == "posterior" else ("abs_m", "chi", "s")
        figures[task] = {}
        for key in keys:
            v, e, rv, re_, rel, z = row(c, "dev", key)
            figures[task][key] = {"dev": v, "dev_error": e, "cpu": rv, "cpu_error": re_, "z": z}
            ck.add("device", f"{task}: {dev} = cpu, {key}", _fin(z) and abs(z) < Z_MAX,
                   f"{_fmt(v)} +- {_fmt(e, 2)} vs {_fmt(rv)} +- {_fmt(re_, 2)}, z {z:+.2f}")
    return figures


def check_paired(ck, out, dev):
    from phi4si.analysis.observables import ess_fraction

    figures = {}
    for task, f in TASK_FILES.items():
        cpu, lw_cpu = read_phi(out / f"{f}_cpu.h5")
        n = len(cpu)
        devs, lw_dev = read_phi(out / f"{f}_dev.h5", n)
        if devs.shape != cpu.shape:
            ck.add("paired", f"{task}: same noise, {dev} vs cpu", False, f"shapes {devs.shape} vs {cpu.shape}")
            continue
        axes = tuple(range(1, cpu.ndim))
        rel = np.sqrt(np.mean((devs - cpu) ** 2, axis=axes)) / np.sqrt(np.mean(cpu ** 2, axis=axes) + 1e-30)
        med, big = float(np.median(rel)), float(np.mean(rel > 0.1))
        figures[task] = {"n": n, "median_rel_rms": med, "max_rel_rms": float(rel.max()), "frac_above_10pct": big}
        ck.add("paired", f"{task}: same noise, {dev} vs cpu (first {n})", med < 0.02 and big < 0.01,
               f"relative RMS difference median {med:.2e}, max {rel.max():.2e}, {100 * big:.1f} % above 10 %")
        if lw_cpu is not None and lw_dev is not None:
            d = np.abs(lw_dev - lw_cpu)
            e_dev, e_cpu = ess_fraction(lw_dev), ess_fraction(lw_cpu)
            figures[task].update({"median_abs_dlogw": float(np.median(d)), "max_abs_dlogw": float(d.max()),
                                  "ess_fraction_dev": e_dev, "ess_fraction_cpu": e_cpu})
            ck.add("paired", f"{task}: log w, {dev} vs cpu (first {n})", float(np.median(d)) < 0.25,
                   f"|delta log w| median {np.median(d):.2e}, max {d.max():.2e}; ESS/N {e_dev:.3f} vs {e_cpu:.3f}")
    data, _ = read_phi(out / "data.h5")
    known = np.ones(data.shape[1:], bool)
    known[:4, :4] = False                                    # --mask block:4x4@0,0: the unknown sites
    for s, label in (("dev", f"DEVICE {dev}"), ("cpu", "cpu")):
        inp, _ = read_phi(out / f"inp_{s}.h5")
        same = bool(np.array_equal(inp[:, known], data[: len(inp)][:, known]))
        moved = float(np.mean(inp[:, ~known] != data[: len(inp)][:, ~known]))
        ck.add("paired", f"inpaint ({label}): observed sites = data, bit for bit", same and moved > 0.99,
               f"{len(inp)} configurations, dtype {inp.dtype}; inpainted sites changed: {100 * moved:.1f} %")
    return figures


def check_vs_hmc(ck, out, dev):
    from phi4si import compare

    figures = {}
    plan = [("generate", "gen_dev.h5", "ref.h5", {"abs_m": 0.10, "chi": 0.20}),
            ("inpaint", "inp_dev.h5", "ref.h5", {"abs_m": 0.10, "chi": 0.20}),
            ("posterior h=0.05", "post_dev.h5", "ref_h0.05.h5", {"m": 0.20, "chi": 0.20})]
    for task, f, ref, tol in plan:
        c = compare([out / ref, out / f], labels=["hmc", "model"])
        figures[task] = {}
        for key in (*tol, "s"):
            v, e, rv, re_, rel, z = row(c, "model", key)
            figures[task][key] = {"model": v, "error": e, "hmc": rv, "hmc_error": re_, "rel": rel, "z": z}
            detail = f"{_fmt(v)} +- {_fmt(e, 2)} vs HMC {_fmt(rv)} +- {_fmt(re_, 2)}: {100 * rel:+.1f} % (z {z:+.1f})"
            if key in tol:          # a bias below tol, or a deviation within the statistical errors
                ck.add("vs HMC", f"{task} (raw, {dev}) vs HMC: {key} within {100 * tol[key]:.0f} % or {Z_MAX:g} sigma",
                       (_fin(rel) and abs(rel) < tol[key]) or (_fin(z) and abs(z) < Z_MAX), detail)
            else:
                ck.add("vs HMC", f"{task} (raw, {dev}) vs HMC: {key}, info", None, detail)
    c = compare([out / "ref.h5", out / "rw_dev.h5"], labels=["hmc", "model"])
    ess = c.summaries[1].ess_fraction
    figures["reweight"] = {"ess_fraction": ess}
    for key in ("abs_m", "chi", "s"):
        v, e, rv, re_, rel, z = row(c, "model", key)
        figures["reweight"][key] = {"model": v, "error": e, "hmc": rv, "hmc_error": re_, "rel": rel, "z": z}
        ck.add("vs HMC", f"reweight (exact, {dev}) vs HMC: {key}", _fin(z) and abs(z) < Z_MAX,
               f"{_fmt(v)} +- {_fmt(e, 2)} vs HMC {_fmt(rv)} +- {_fmt(re_, 2)}, z {z:+.2f} (ESS/N {_fmt(ess, 3)})")
    return figures


def check_torchrun(ck, out, dev):
    a, _ = read_phi(out / "gen_dev.h5")
    b, _ = read_phi(out / "gen_torchrun.h5")
    attrs = file_attrs(out / "gen_torchrun.h5")
    if a.shape != b.shape:
        ck.add("torchrun", "torchrun (1 process) = plain run", False, f"shapes {b.shape} vs {a.shape}")
        return {}
    d = float(np.max(np.abs(a - b)))
    tol = 0.0 if dev == "cpu" else 1e-3
    ck.add("torchrun", "torchrun (1 process) = plain run" + (" (bit for bit)" if tol == 0 else ""), d <= tol,
           f"{len(a)} configurations, max |difference| {d:.2e} (tolerance {tol:g}); "
           f"processes {attrs['run'].get('processes')}, PHI4SI_DDP_BACKEND {'gloo' if dev == 'cpu' else 'nccl'}")
    return {"max_abs_diff": d, "processes": attrs["run"].get("processes")}


def _bench(fn, sync, reps):
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) / reps


def check_compile(ck, out, dev, threads):
    """torch.compile of the trained network against eager: inference (float32 forward) and a
    training step (bf16 autocast forward + backward)."""
    import copy

    import torch

    from phi4si import load_model

    if threads:
        torch.set_num_threads(int(threads))
    cuda = dev.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = load_model(out / "model.pt", device=dev)
    net = model.net.eval()
    n = 512 if cuda else 128
    reps = 20 if cuda else 3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, *model.shape, generator=g).to(dev)
    a = torch.rand(n, 1, *model.shape, generator=g).to(dev)
    fig = {"batch": n, "flag_in_phi4si_train": bool(int(os.environ.get("GPU_CHECK_COMPILE_FLAG", "0") or 0))}
    with torch.no_grad():
        y_eager = net(x, a)
        t_eager = _bench(lambda: net(x, a), sync, reps)
    fig["forward_eager_cfg_per_s"] = n / t_eager
    try:
        t0 = time.perf_counter()
        cnet = torch.compile(net)
        with torch.no_grad():
            y_comp = cnet(x, a)
            sync()
            fig["forward_compile_first_call_s"] = time.perf_counter() - t0
            t_comp = _bench(lambda: cnet(x, a), sync, reps)
        err = float((y_comp - y_eager).abs().max() / y_eager.abs().max().clamp_min(1e-30))
        fig.update(forward_compiled_cfg_per_s=n / t_comp, forward_max_rel_diff=err)
        ck.add("compile", f"torch.compile forward (float32, {dev}) = eager", err < 1e-2,
               f"max rel. difference {err:.1e}; {n / t_comp:,.0f} vs eager {n / t_eager:,.0f} cfg/s "
               f"({t_eager / t_comp:.2f}x), first call {fig['forward_compile_first_call_s']:.1f} s")
    except Exception as e:  # noqa: BLE001 - a compile failure is what this check is for
        ck.add("compile", f"torch.compile forward (float32, {dev}) = eager", False,
               f"{type(e).__name__}: {str(e)[:300]}")
        fig["forward_error"] = traceback.format_exc()[-2000:]

    tnet = copy.deepcopy(model.net).train().requires_grad_(True)   # (load_model freezes the weights)
    target = torch.randn(n, 1, *model.shape, generator=g).to(dev)

    def make_step(f):
        def step():
            tnet.zero_grad(set_to_none=True)
            with torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16):
                loss = (f(x, a).float() - target).square().mean()
            loss.backward()
            return loss
        return step

    eager_step = make_step(tnet)
    loss_eager = float(eager_step())
    t_eager = _bench(eager_step, sync, reps)
    fig["train_step_eager_samples_per_s"] = n / t_eager
    try:
        t0 = time.perf_counter()
        comp_step = make_step(torch.compile(tnet))
        loss_comp = float(comp_step())
        sync()
        fig["train_step_compile_first_call_s"] = time.perf_counter() - t0
        t_comp = _bench(comp_step, sync, reps)
        rel = abs(loss_comp - loss_eager) / max(abs(loss_eager), 1e-30)
        fig.update(train_step_compiled_samples_per_s=n / t_comp, train_loss_rel_diff=rel)
        ck.add("compile", f"torch.compile train step (bf16 fwd+bwd, {dev}) = eager", rel < 2e-2,
               f"loss rel. difference {rel:.1e}; {n / t_comp:,.0f} vs eager {n / t_eager:,.0f} samples/s "
               f"({t_eager / t_comp:.2f}x), first call {fig['train_step_compile_first_call_s']:.1f} s")
    except Exception as e:  # noqa: BLE001
        ck.add("compile", f"torch.compile train step (bf16 fwd+bwd, {dev}) = eager", False,
               f"{type(e).__name__}: {str(e)[:300]}")
        fig["train_step_error"] = traceback.format_exc()[-2000:]
    return fig


# ------------------------------------------------------------------------------------------ throughput
def throughput(out, times, train):
    rows = {}
    for name, t in times.items():
        if name == "preflight":
            continue
        r = dict(t)
        r["per_s"] = t["n"] / t["seconds"] if t["seconds"] > 0 and t["n"] > 0 else None
        r["work_seconds"] = None
        if name == "train":
            r["n"], r["unit"] = train["steps"] * train["batch_size"], "samples"
            r["steps"] = train["steps"]
            r["per_s"] = r["n"] / t["seconds"] if t["seconds"] > 0 else None
            r["work_seconds"] = train["wall_time"]
        elif name in RESULT_FILES and (out / RESULT_FILES[name]).exists():
            r["work_seconds"] = file_attrs(out / RESULT_FILES[name])["wall_time"]
        w = r["work_seconds"]
        r["work_per_s"] = r["n"] / w if _fin(w) and w > 0 and r["n"] > 0 else None
        rows[name] = r
    return rows


def device_info(dev):
    import torch

    info = {"device": dev, "torch": torch.__version__, "cuda_build": torch.version.cuda}
    if dev.startswith("cuda") and torch.cuda.is_available():
        i = int(dev.split(":")[1]) if ":" in dev else 0
        p = torch.cuda.get_device_properties(i)
        info.update(device_name=torch.cuda.get_device_name(i), memory_gib=round(p.total_memory / 2**30, 1),
                    capability=f"{p.major}.{p.minor}", cudnn=torch.backends.cudnn.version(),
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    else:
        from _common import cpuinfo

        info["device_name"] = f"cpu ({cpuinfo().get('model')})"
    return info


def main(argv) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    out = Path(argv[0]).resolve()
    dev = argv[1] if len(argv) > 1 else "cuda"
    from _common import machine_info, save

    times = read_times(out / "times.tsv")
    ck = Checks()
    res = {"what": "benchmarks/gpu_check.sh: phi4si on a GPU against the CPU and HMC", **device_info(dev)}
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("GPU_CHECK_")
                   and k not in ("GPU_CHECK_COMPILE_FLAG", "GPU_CHECK_THREADS_USED"))
    res["command"] = (env + " " if env else "") + f"bash benchmarks/gpu_check.sh {out} {dev}"
    res["machine"] = machine_info()
    res["date"] = res["machine"]["date"]
    res["figures"] = {}
    sections = [("hmc", lambda: check_hmc(ck, out)),
                ("train", lambda: check_train(ck, out, dev)),
                ("device_vs_cpu", lambda: check_device_vs_cpu(ck, out, dev)),
                ("paired", lambda: check_paired(ck, out, dev)),
                ("vs_hmc", lambda: check_vs_hmc(ck, out, dev)),
                ("torchrun", lambda: check_torchrun(ck, out, dev)),
                ("compile", lambda: check_compile(ck, out, dev, os.environ.get("GPU_CHECK_THREADS_USED")))]
    for name, fn in sections:
        try:
            res["figures"][name] = fn()
        except Exception as e:  # noqa: BLE001 - one broken section must not hide the others
            ck.add(name, f"{name}: the check itself ran", False, f"{type(e).__name__}: {str(e)[:300]}")
            res["figures"][name] = {"error": traceback.format_exc()[-3000:]}
            traceback.print_exc()
    train = res["figures"].get("train") or {}
    steps = throughput(out, times, train if "steps" in train else {"steps": 0, "batch_size": 0, "wall_time": None})
    res["steps"] = steps
    res["checks"] = ck.rows
    res["passed"] = not ck.failed()
    res["total_seconds"] = sum(t["seconds"] for t in times.values())

    print(f"\ngpu_check: {res['device_name']} ({dev}), torch {res['torch']}, {res['date']}")
    w = max(len(r["check"]) for r in ck.rows)
    print(f"\n{'check':{w}s}  {'result':6s}  detail")
    for r in ck.rows:
        mark = "INFO" if r["pass"] is None else "PASS" if r["pass"] else "FAIL"
        print(f"{r['check']:{w}s}  {mark:6s}  {r['detail']}")
    print(f"\n{'step':16s} {'device':7s} {'n':>7s} {'unit':14s} {'wall s':>8s} {'per s':>10s} "
          f"{'work s':>8s} {'work/s':>10s}")
    for name, r in steps.items():
        print(f"{name:16s} {r['device']:7s} {r['n']:7d} {r['unit']:14s} {r['seconds']:8.1f} "
              f"{_fmt(r['per_s'], 4) if r['per_s'] else '-':>10s} "
              f"{_fmt(r['work_seconds'], 3) if _fin(r['work_seconds']) else '-':>8s} "
              f"{_fmt(r['work_per_s'], 4) if r['work_per_s'] else '-':>10s}")
    print(f"{'(steps 0-4)':16s} {'':7s} {'':7s} {'':14s} {res['total_seconds']:8.1f}")
    c = res["figures"].get("compile") or {}
    if not c.get("flag_in_phi4si_train"):
        print("\nnote: phi4si train has no --compile flag; the compile rows time torch.compile of the trained "
              "network (forward, and a bf16 forward + backward) against eager")
    nf = len(ck.failed())
    print(f"\n{len(ck.rows)} rows: {sum(r['pass'] is True for r in ck.rows)} PASS, {nf} FAIL, "
          f"{sum(r['pass'] is None for r in ck.rows)} INFO")

    if dev == "cpu":
        dest = save("gpu_check.json", res, str(out / "gpu_check.json"))
    else:
        dest = save("gpu_check.json", res)
        save("gpu_check.json", res, str(out / "gpu_check.json"))
    print(f"wrote {dest}")
    if nf:
        print("gpu_check: FAILED: " + "; ".join(r["check"] for r in ck.failed()), file=sys.stderr)
        return 1
    print("gpu_check: all checks PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("gpu_check: FAILED: gpu_check.py raised (above)", file=sys.stderr)
        sys.exit(2)
