"""Fitting, per model kind: the objective at its parameters and the fit (``lmm``, ``glmm``, ``clmm``, ``clm``,
with their derivatives, starts and checks), and the plain fit record (``result``).

The numerical building blocks they compose live in :mod:`mixframe.linalg` (the penalized system),
:mod:`mixframe.laplace` (conditional modes, quadrature), :mod:`mixframe.numerics` (optimizers, finite
differences) and :mod:`mixframe.families`; which module may import which compiled kernel is listed in
:mod:`mixframe._ext`.
"""
