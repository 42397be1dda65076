"""The test every fit passes before it is called converged: at the reported point the gradient of the
criterion is small and its Hessian positive definite, over the parameters not on a bound.

As lme4's ``checkConv`` (``check.conv.grad`` tolerance 2e-3, ``check.conv.hess`` 1e-6), on the deviance
scale (-2 log-likelihood, or the REML criterion): the gradient passes when in every coordinate the smaller of
the scaled gradient ``R^{-1} g`` (``R'R = H``, the Cholesky factor) and the gradient itself is below the
tolerance; the Hessian when it has a Cholesky factor and no eigenvalue below ``-hess_tol``.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpotrf, dtrtrs

GRAD_TOL = 2e-3
HESS_TOL = 1e-6


def convergence_failures(gradient, hessian, free=None, grad_tol: float = GRAD_TOL,
                         hess_tol: float = HESS_TOL) -> list[str]:
    """What fails at a reported point (an empty list when nothing does).

    ``gradient``/``hessian`` are of the deviance (-2 log L scale); ``free`` selects the parameters that are
    not on a bound (all when None)."""
    g = np.asarray(gradient, dtype=float).ravel()
    H = np.asarray(hessian, dtype=float)
    out = []
    if free is not None:
        free = np.asarray(free, dtype=bool)
        # a parameter on its (lower) bound: the criterion must not fall going into the interior, to first
        # order, nor, where its derivative vanishes (a variance parameter the criterion is even in), to
        # second order: else the bound is a saddle or a maximum the search stopped on
        for i in np.flatnonzero(~free):
            if g[i] < -grad_tol or (abs(g[i]) < grad_tol and np.isfinite(H[i, i]) and H[i, i] < -hess_tol):
                out.append(f"parameter {i + 1} is on its bound but the criterion decreases into the interior")
        idx = np.flatnonzero(free)
        g, H = g[idx], H[np.ix_(idx, idx)]
    if g.size == 0:
        return out
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
        return ["the gradient or Hessian of the criterion is not finite at the reported point"]
    H = 0.5 * (H + H.T)
    c, info = dpotrf(H, lower=0)          # H = R'R
    if info == 0:
        step = dtrtrs(c, g, lower=0, trans=1)[0]      # R^{-T} g: lme4's scaled gradient
    else:                                 # not positive definite: how many directions descend
        step = None
        n_neg = int(np.sum(np.linalg.eigvalsh(H) < -hess_tol))
        out.append(f"degenerate Hessian with {n_neg} negative eigenvalue{'s' if n_neg > 1 else ''}" if n_neg
                   else "the Hessian is not positive definite (unable to evaluate the scaled gradient)")
    max_g = float(np.max(np.abs(g)))
    worst = float(np.max(np.minimum(np.abs(step), np.abs(g)))) if step is not None else max_g
    if worst >= grad_tol:
        out.append(f"failed to converge with max|grad| = {max_g:.3g} (tol = {grad_tol:g})")
    return out
