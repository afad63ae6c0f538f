"""Analysis of ensembles: Gamma-method statistics, observables, importance weights, the report of
``phi4si analyze`` and the plots of ``phi4si plot``.

* :mod:`~phi4si.analysis.stats`        the Gamma method (pyerrors): :class:`Estimate`, autocorrelation times
* :mod:`~phi4si.analysis.observables`  m, chi, U4, xi_2, S/V, the correlator C(t) and G(p), on arrays and datasets
* :mod:`~phi4si.analysis.weights`      importance log-weights against -S_{h,k}, ESS/N, weighted means
* :mod:`~phi4si.analysis.report`       :func:`analyze_file` and :func:`format_table` (what ``phi4si analyze`` prints)
* :mod:`~phi4si.analysis.compare`      ensembles against a reference: every observable, G(p), C(t), m histograms
  (``phi4si compare``)
* :mod:`~phi4si.analysis.plot`         the PNGs of ``phi4si plot`` and ``phi4si compare``
"""

from .report import analyze_file, format_table

__all__ = ["analyze_file", "format_table"]
