"""Render results/*.json of evaluate_generation.py as markdown tables into README.md, the
posterior study's tables (results/posterior_*.md, written by posterior_study.py) into their block,
and the image and maze results (results/images_*.json of `phi4si image evaluate`,
results/maze_planning.json of `phi4si maze evaluate`, results/maze_plan_*.json of `phi4si maze plan`)
into theirs.

    python papers/negrel2025/make_tables.py          # print
    python papers/negrel2025/make_tables.py --write  # replace the block between the markers in README.md
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
BEGIN, END = "<!-- BEGIN GENERATED TABLES (make_tables.py) -->", "<!-- END GENERATED TABLES -->"
PBEGIN, PEND = "<!-- BEGIN POSTERIOR TABLES (make_tables.py) -->", "<!-- END POSTERIOR TABLES -->"
TBEGIN, TEND = "<!-- BEGIN IMAGE AND MAZE TABLES (make_tables.py) -->", "<!-- END IMAGE AND MAZE TABLES -->"
TASK_PREFIXES = ("posterior_", "images_", "maze_")


def _fmt(e, k):
    if e.get("rel_dev") is None:
        return "n/a"
    return f"{e['gen']:.4g}({1e4 * e['gen_err']:.0f}e-4) {100 * e['rel_dev']:+.1f}% z={e['z']:+.1f}"


def table(path: Path) -> str:
    d = json.loads(path.read_text())
    tc = d.get("train_config") or {}
    ref = d["runs"][0]
    head = (f"**{path.stem}**: model trained on {'x'.join(map(str, d['train_shape']))} "
            f"({tc.get('model')}, param {tc.get('param')}, measure {tc.get('measure')}, {d.get('model_step')} steps, "
            f"{(d.get('train_wall_time') or 0) / 60:.1f} min), evaluated on {'x'.join(map(str, d['shape']))}, "
            f"N = {d['n']} per row. HMC reference: "
            + ", ".join(f"{k} = {ref[k]['ref']:.4g}({1e4 * ref[k]['ref_err']:.0f}e-4)" for k in ("abs_m", "chi", "binder", "xi2")))
    full = all("s" in r and "G_p" in r for r in d["runs"])      # <S>/V and G(p) on every orbit (newer runs)
    keys = ("abs_m", "chi", "binder", "xi2") + (("s",) if full else ())
    rows = ["| task/solver:steps | cfg/s | <\\|m\\|> | chi | U4 | xi_2 | " + ("<S>/V | G(p): max dev, max z | " if full else "")
            + "TV(m) [null] | max z G(t) |", "|" + "---|" * (8 + 2 * full)]
    for r in d["runs"]:
        gp = (f" | {100 * r['G_p']['max_rel_dev']:.1f}%, {r['G_p']['max_z']:.1f}" if full else "")
        rows.append(f"| {r['setting']} | {r['cfg_per_s']:.0f} | " + " | ".join(_fmt(r[k], k) for k in keys) + gp
                    + f" | {r['hist_m']['tv']:.3f} [{r['hist_m']['tv_null_mean']:.3f}] | {r['G']['max_z']:.1f} |")
    return head + "\n\n" + "\n".join(rows) + "\n"


def images_table(path: Path) -> str:
    d = json.loads(path.read_text())
    st = d["settings"]
    head = (f"**{path.stem}**: `{d['command']}`; model at step {d.get('model_step')} "
            f"({(d.get('train_wall_time') or 0) / 60:.1f} min of training), {st['n_images']} held-out images, "
            f"{st['solver']} {st['steps']} steps. PSNR (dB) / SSIM, mean +- standard error over the images:")
    methods = list(next(iter(d["tasks"].values()))["scores"])
    rows = ["| task | " + " | ".join(methods) + " | phi4si - biharmonic | s / image |",
            "|---|" + "---|" * (len(methods) + 2)]
    for name, t in d["tasks"].items():
        cells = [f"{t['scores'][m]['psnr']:.2f}({100 * t['scores'][m]['psnr_err']:.0f}) / "
                 f"{t['scores'][m]['ssim']:.3f}({1000 * t['scores'][m]['ssim_err']:.0f})" for m in methods]
        dd = t["phi4si_minus_biharmonic"]
        rows.append(f"| {name}: {t['mask']}, noise {t['noise']} | " + " | ".join(cells)
                    + f" | {dd['psnr']:+.2f}({100 * dd['psnr_err']:.0f}) dB / {dd['ssim']:+.3f}({1000 * dd['ssim_err']:.0f})"
                    + f" | {t['seconds_per_image']:.4f} |")
    return head + "\n\n" + "\n".join(rows) + "\n"


def maze_table(path: Path) -> str:
    d = json.loads(path.read_text())
    st, lr, k = d["settings"], d["length_ratio"], d["k"]
    return (f"**{path.stem}**: `{d['command']}`; model at step {d.get('model_step')} "
            f"({(d.get('train_wall_time') or 0) / 60:.1f} min of training).\n\n"
            "| plans | valid | length / geodesic: median, mean, q90, q99, max | k: mean, median, max "
            "| k values searched: mean, median, max | found at k_min | another round | samples / plan | s / plan |\n"
            "|---|---|---|---|---|---|---|---|---|\n"
            f"| {d['n_plans']} | {d['n_valid']} | {lr['median']:.3f}, {lr['mean']:.3f}, {lr['q90']:.3f}, "
            f"{lr['q99']:.3f}, {lr['max']:.3f} | {k['mean']:.1f}, {k['median']:.0f}, {k['max']} | "
            f"{k['k_values_searched_mean']:.2f}, {k['k_values_searched_median']:.0f}, {k['k_values_searched_max']} | "
            f"{100 * k['found_at_first_k']:.1f} % | {k.get('needed_another_round', 0)} | "
            f"{k['samples_per_plan_mean']:.1f} | {d['seconds_per_plan']:.4f} |\n\n"
            f"(tries {st['tries']} per k, {st['solver']} {st['steps']} steps, rounds {st.get('rounds', 1)}, "
            f"margin {st['margin']}, step_max {st['step_max']:.3f} cells, seed {st['seed']})\n")


def plan_line(path: Path) -> str:
    d = json.loads(path.read_text())
    via = "" if not d.get("via") else " via " + ", ".join(f"({x:g}, {y:g})" for x, y in d["via"])
    return (f"* **{path.stem}**: ({d['start'][0]:g}, {d['start'][1]:g}) -> ({d['goal'][0]:g}, {d['goal'][1]:g}){via}: "
            f"{'valid' if d['valid'] else 'INVALID'}, k = {d['k']} (search from {d['k_min']}), length "
            f"{d['length']:.2f} vs geodesic {d['shortest_length']:.2f} ({d['length'] / d['shortest_length']:.3f}x), "
            f"{d['seconds']:.2f} s\n")


def maze_settings_table(path: Path) -> str:
    d = json.loads(path.read_text())
    rows = ["| solver:steps:tries | valid | length / geodesic: median, q90 | k values searched | another round "
            "| samples / plan | s / plan | time vs baseline |", "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        rows.append(f"| {r['setting']} | {r['n_valid']} / {d['n_plans']} | {r['length_ratio_median']:.3f}, "
                    f"{r['length_ratio_q90']:.3f} | {r['k_values_searched_mean']:.2f} | {r['needed_another_round']} | "
                    f"{r['samples_per_plan']:.1f} | {r['seconds_per_plan']:.4f} | {r['time_vs_baseline']:.2f} |")
    return (f"**{path.stem}**: `{d['command']}`; the same {d['n_plans']} pairs (seed {d['seed']}) for every row, "
            f"{d['threads']} threads, baseline {d['baseline']}.\n\n" + "\n".join(rows) + "\n")


def task_tables() -> str:
    r = HERE / "results"
    parts = [images_table(f) for f in sorted(r.glob("images_*.json"))]
    parts += [maze_table(f) for f in sorted(r.glob("maze_planning*.json"))]
    parts += [maze_settings_table(f) for f in sorted(r.glob("maze_settings*.json"))]
    plans = "".join(plan_line(f) for f in sorted(r.glob("maze_plan_*.json")))
    return "\n".join(parts) + ("\n" + plans if plans else "")


def _replace(s, begin, end, text):
    i, j = s.index(begin) + len(begin), s.index(end)
    return s[:i] + "\n" + text + s[j:]


def main():
    files = sorted(f for f in (HERE / "results").glob("*.json") if not f.stem.startswith(TASK_PREFIXES)
                   and {"runs", "train_shape"} <= set(json.loads(f.read_text())))   # evaluate_generation.py outputs
    text = "\n".join(table(f) for f in files)
    post = "\n".join(f.read_text() for f in sorted((HERE / "results").glob("posterior_*.md")))
    if "--write" in sys.argv:
        readme = HERE / "README.md"
        s = _replace(readme.read_text(), BEGIN, END, text)
        if PBEGIN in s:
            s = _replace(s, PBEGIN, PEND, post)
        if TBEGIN in s:
            s = _replace(s, TBEGIN, TEND, task_tables())
        readme.write_text(s)
        print(f"updated {readme}")
    else:
        print(text + "\n" + post + "\n" + task_tables())


if __name__ == "__main__":
    main()
