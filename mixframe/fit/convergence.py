"""The test every fit passes before it is called converged: at the reported point the gradient of the
criterion is small and its Hessian positive definite, over the parameters not on a bound.

As lme4's ``checkConv`` (``check.conv.grad`` tolerance 2e-3, ``check.conv.hess`` 1e-6), on the deviance
scale (-2 log-likelihood, or the REML criterion): the gradient passes when in every coordinate the smaller of
the scaled gradient ``R^{-1} g`` (``R'R = H``, the Cholesky factor) and the gradient itself is below the
tolerance; the Hessian when it has a Cholesky factor and no eigenvalue below ``-hess_tol``.
"""
from __future__ import annotations

import math

import numpy as np

from .._ext.checks import scaled_gradient

GRAD_TOL = 2e-3
HESS_TOL = 1e-6


def convergence_failures(gradient, hessian, free=None, grad_tol: float = GRAD_TOL,
                         hess_tol: float = HESS_TOL) -> list[str]:
    """What fails at a reported point (an empty list when nothing does).

    ``gradient``/``hessian`` are of the deviance (-2 log L scale); ``free`` selects the parameters that are
    not on a bound (all when None). The scaled gradient is computed in one compiled call
    (:func:`mixframe._ext.checks.scaled_gradient`): the check runs after every fit."""
    g = np.ascontiguousarray(gradient, dtype=np.float64).reshape(-1)
    H = np.asarray(hessian, dtype=np.float64)
    n = g.shape[0]
    out = []
    if free is None:
        fl = np.ones(n, dtype=np.uint8)
    else:
        fl = np.ascontiguousarray(free, dtype=np.uint8)
        if not fl.all():
            # a parameter on its (lower) bound: the criterion must not fall going into the interior, to first
            # order, nor, where its derivative vanishes (a variance parameter the criterion is even in), to
            # second order: else the bound is a saddle or a maximum the search stopped on
            for i in np.flatnonzero(fl == 0).tolist():
                gi, hii = float(g[i]), float(H[i, i])
                if gi < -grad_tol or (abs(gi) < grad_tol and math.isfinite(hii) and hii < -hess_tol):
                    out.append(f"parameter {i + 1} is on its bound but the criterion decreases into the interior")
            if not fl.any():
                return out
    status, worst, max_g = scaled_gradient(g, H, fl)
    if status == 1:
        return ["the gradient or Hessian of the criterion is not finite at the reported point"]
    if status == 2:                            # not positive definite: how many directions descend
        idx = np.flatnonzero(fl)
        Hs = H[np.ix_(idx, idx)]
        n_neg = int(np.sum(np.linalg.eigvalsh(0.5 * (Hs + Hs.T)) < -hess_tol))
        out.append(f"degenerate Hessian with {n_neg} negative eigenvalue{'s' if n_neg > 1 else ''}" if n_neg
                   else "the Hessian is not positive definite (unable to evaluate the scaled gradient)")
    if worst >= grad_tol:
        out.append(f"failed to converge with max|grad| = {max_g:.3g} (tol = {grad_tol:g})")
    return out


SEPARATION_MESSAGE = ("fitted probabilities numerically 0 or 1 or very large coefficients: the data may be "
                      "(quasi-)completely separated")


def separated(coef, se, probabilities=None, coef_limit: float = 15.0, se_limit: float = 1e3) -> bool:
    """lme4-style separation test of a model for probabilities (binomial GLMMs, cumulative link models): a
    coefficient above ``coef_limit`` in absolute value on the link scale, a standard error above ``se_limit``
    (or not finite where the coefficient is large), or fitted probabilities numerically 0 or 1."""
    coef = np.abs(np.asarray(coef, dtype=float))
    se = np.asarray(se, dtype=float)
    if coef.size and (np.any(coef > coef_limit) or np.any(se > se_limit)):
        return True
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=float)
        return bool(np.any((p < 1e-8) | (p > 1 - 1e-8)))
    return False
