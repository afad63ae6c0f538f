"""``phi4si models``: the trained models shipped with phi4si (:mod:`phi4si.model.shipped`)."""

from __future__ import annotations

__all__ = ["add_parsers", "cmd_models"]


def add_parsers(sub):
    m = sub.add_parser("models", help="the trained models shipped with phi4si (data/models): names, lattices, quality",
                       epilog="a shipped model's name works wherever a model file does: --model l16, "
                              "phi4si.load_model('l16'); data/models/rebuild.sh makes them again")
    m.add_argument("--json", action="store_true", help="the manifest itself, as JSON")
    m.set_defaults(func=cmd_models)


def cmd_models(args, argv):
    """List the shipped models with the quality their manifest records."""
    import json

    from ..model.shipped import MODELS_DIR, shipped

    models = shipped()
    if args.json:
        print(json.dumps(models, indent=1))
        return
    if not models:
        print(f"no shipped models ({MODELS_DIR / 'manifest.json'} is missing or empty)")
        return
    print(f"{'name':6s} {'lattice':8s} {'m2':>5s} {'lam':>6s} {'network':8s} {'steps':>6s} {'train':>7s}  "
          f"quality against HMC (relative deviation, z) at {'generate defaults'}")
    for name, e in models.items():
        q = e.get("quality") or {}
        obs = q.get("observables", {})
        parts = [f"{k} {v['rel_dev']:+.1%} ({v['z']:+.1f})" for k, v in obs.items()]
        if "G_p" in q:
            parts.append(f"G(p) max|z| {q['G_p']['max_abs_z']:.1f}")
        lattice = "x".join(map(str, e["shape"]))
        minutes = f"{e['train_wall_time_s'] / 60:.0f} min" if e.get("train_wall_time_s") else "?"
        print(f"{name:6s} {lattice:8s} {e['m2']:5g} {e['lam']:6g} {e['network'] + ('/odd' if e.get('odd') else ''):8s} "
              f"{e['steps']:6d} {minutes:>7s}  " + ", ".join(parts))
