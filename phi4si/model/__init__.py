"""The trained-model workflow: data -> train -> checkpoint -> tasks (generate, inpaint, sequential,
posterior) -> log-density -> exact sampling.

Layers, each importing only those above it in this list:

* :mod:`~phi4si.model.data`        training batches from ensembles (:class:`EnsembleData`) and arrays
* :mod:`~phi4si.model.checkpoint`  :class:`TrainedModel`, :func:`load_model`, :class:`DriftModel`
* :mod:`~phi4si.model.train`       :class:`TrainConfig`, :func:`train`
* :mod:`~phi4si.model.posterior`   :class:`Posterior`: rewards h, k, the start time a0 and start mean
* :mod:`~phi4si.model.solve`       :class:`SolveSettings` and the batched solve loop every task runs
* :mod:`~phi4si.model.generate`    generate, inpaint, sequential, sample_posterior, write_samples
* :mod:`~phi4si.model.density`     the model's log q: sample, log_prob, propose_block, conditional_log_prob
* :mod:`~phi4si.model.exact`       reweighting, independence Metropolis, neural block MH, hybrid (sample_neural)
"""

from .checkpoint import CHECKPOINT_FORMAT, DriftModel, TrainedModel, load_model

__all__ = ["CHECKPOINT_FORMAT", "DriftModel", "TrainedModel", "load_model"]
