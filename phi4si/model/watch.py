"""A reference scale for the validation loss: the model being trained compared with an ensemble of
the target (e.g. an independent HMC run) at each validation.

The loss says whether training goes down, not whether the samples are right: a model can match
<|m|> and chi while its action density <S>/V is off by a factor two.  :class:`ReferenceCheck`
generates ``n`` samples from the EMA network at each validation (its own noise stream, the same at
every validation, so that successive entries differ by the network only; the trainer's random
streams are untouched, so a resumed run stays bit-exact) and logs, per observable of
:func:`phi4si.compare`, the relative deviation and z-score against the reference, the worst
deviation of the momentum spectrum G(p) and the histogram distance of m with its null level.

>>> import os, tempfile
>>> from phi4si import Phi4Params, sample_mcmc
>>> d = tempfile.mkdtemp()
>>> ref = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), os.path.join(d, "r.h5"), chains=2, n_traj=40, n_therm=10,
...                   progress=False)
>>> ReferenceCheck(ref, n=32).n
32
"""

from __future__ import annotations

import math

from ..errors import ParameterError

__all__ = ["ReferenceCheck"]

LOGGED = ("abs_m", "chi", "binder", "xi2", "s", "phi2", "phi4")     # (s: the action per site, <S>/V)


class ReferenceCheck:
    """Compare the trainer's model with the ensemble file ``reference`` at each validation: ``n``
    samples by ``steps`` steps of the default solver, noise stream ``seed``."""

    def __init__(self, reference, n: int = 256, steps: int = 16, seed: int = 0):
        from ..analysis.compare import summarize

        for name, v, lo in (("reference_n", n, 8), ("reference_steps", steps, 1)):
            if isinstance(v, bool) or int(v) != v or int(v) < lo:
                raise ParameterError(f"{name} must be an integer >= {lo}, got {v}")
        self.path, self.n, self.steps, self.seed = str(reference), int(n), int(steps), int(seed)
        self.summary = summarize(reference, label="reference")

    def check_data(self, params: dict) -> None:
        """Refuse, before training, a reference of other couplings or another lattice than the data."""
        from ..analysis.compare import couplings

        a, b = couplings(self.summary.params), couplings(params)
        if a != b:
            raise ParameterError(f"--reference {self.path} has {a}, the training data {b}: give an ensemble of "
                                 "the training couplings and lattice")

    def __call__(self, model) -> dict:
        """The log entry for ``model`` (a :class:`~phi4si.model.checkpoint.TrainedModel`)."""
        from ..analysis.compare import compare, configurations
        from ..lattice.params import Phi4Params
        from .generate import generate

        phi = generate(model, self.n, steps=self.steps, seed=self.seed, progress=False)
        params = Phi4Params.from_dict(self.summary.params)
        c = compare([self.summary, configurations(phi, params, label="model")])
        out = {}
        for k in LOGGED:
            try:
                r = c.row("model", k)
            except KeyError:
                continue
            out[k] = {"value": _f(r["value"]), "rel": _f(r["rel"]), "z": _f(r["z"])}
        sp, h = c.spectra["model"], c.histograms["model"]
        out["G_p"] = {"max_rel": _f(sp["max_rel"]), "max_z": _f(sp["max_z"])}
        out["hist_m"] = {k: _f(v) for k, v in h.items() if isinstance(v, (int, float))}
        return out


def _f(v):
    v = float(v)
    return round(v, 5) if math.isfinite(v) else None
