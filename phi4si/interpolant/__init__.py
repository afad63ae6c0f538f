"""Operator-based stochastic interpolants (THEORY.md section 4).

Modules, one concept each:

* :mod:`~phi4si.interpolant.operators`  - families alpha(a), beta(a) (Hadamard, Fourier-diagonal)
* :mod:`~phi4si.interpolant.drifts`     - eta0, eta1, b and the score; conversions; :class:`Drift`
* :mod:`~phi4si.interpolant.measures`   - training measures nu over a (diagonal, hypercube,
  sequential blocks, inpainting masks, mixtures with a curriculum)
* :mod:`~phi4si.interpolant.partitions` - lattice partitions (blocks, coarse-to-fine) and orders
* :mod:`~phi4si.interpolant.paths`      - tasks as paths s -> a(s) (generation, inpainting,
  sequential generation in any order, tables, callables) and integration grids
* :mod:`~phi4si.interpolant.masks`      - masks of unknown sites from specs (``block:RxC@I,J``,
  ``random:F``, ``FILE.npy``), periodic (lattices) or clipped (images), shared or per sample
* :mod:`~phi4si.interpolant.integrate`  - ODE (Euler, Heun, RK4) and SDE (Euler-Maruyama) solvers
* :mod:`~phi4si.interpolant.likelihood` - log-density of the flow's samples (the ODE with its
  divergence: exact, Hutchinson or coloured probes)
* :mod:`~phi4si.interpolant.rewards`    - posterior drifts under a quadratic reward by the analytic
  reward transform (no retraining)
* :mod:`~phi4si.interpolant.oracle`     - exact drifts of Gaussian and Gaussian-mixture targets

Submodules (all but :mod:`~phi4si.interpolant.partitions` and :mod:`~phi4si.interpolant.masks`) import
torch; this package's ``__init__`` does not import them eagerly.
"""
