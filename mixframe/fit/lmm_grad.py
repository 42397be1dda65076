"""Analytic gradient of the profiled (RE)ML deviance for LMMs whose random-effect terms are all scalar.

With Omega(theta) = [[Lambda'Z'WZ Lambda + I, Lambda'Z'W E], [E'WZ Lambda, E'WE]] for E = [X, y], the profiled
deviance is a combination of log|Omega| and log|Omega_{-y}| (Omega without the response column):

    REML: d = (1 - (n - p)) log|Omega_{-y}| + (n - p) log|Omega| + const
    ML:   d = log|M| + n (log|Omega| - log|Omega_{-y}|) + const,   M = the Z block of Omega.

For a scalar term t, Lambda = theta_t I on its block, and d log|Omega| / d theta_t = 2 (q_t - tr_t(Omega^{-1}))
/ theta_t, tr_t the trace of the term's diagonal block. The Z block of Omega^{-1} is M^{-1} + V (L_X L_X')^{-1} V'
with V = L_Z^{-T} L_XZ' from the blocked factor, and the factor of Omega_{-y} is the leading part of the same
factor. A gradient therefore costs about one more dense triangular inversion than a deviance evaluation.
"""
from __future__ import annotations

import math

import numpy as np

from .._ext.lmm_derivs import OneBlockDeviance
from ..numerics import fdiff
from ..numerics.optim import minimize_1d, trust_region

#: theta_t below this uses a one-sided difference for its gradient component (the analytic form is 0/0 at 0)
SMALL_THETA = 1e-5
#: starting values from the one-term fits are at least this (theta_t = 0 is a stationary point of every
#: scalar term's coordinate, since the deviance is even in theta_t, so a start there would never leave it)
START_FLOOR = 0.01


def all_scalar(design) -> bool:
    return all(t.k == 1 for t in design.terms)


def one_term_deviance(objective, a, C, theta) -> float:
    """The profiled deviance of the model with one scalar random-effect term alone, from that term's
    cross-products: the Z block is diagonal, so the factor is the vector sqrt(theta^2 a + 1) and a small
    Schur complement for [X y]."""
    t2 = theta * theta
    m = t2 * a + 1.0
    schur = objective.system.crossprod_blocks().AEE - (C * (t2 / m)) @ C.T
    try:
        d = np.diag(np.linalg.cholesky(schur))
    except np.linalg.LinAlgError:
        return math.inf
    p = objective.p
    return objective.criterion(float(np.sum(np.log(m))), 2.0 * float(np.sum(np.log(d[:p]))),
                               float(d[p] ** 2))


def one_term_start(objective):
    """Starting theta and a diagonal Hessian model for an LMM whose terms are all scalar: each term fitted
    alone (from the cross-products already built, O(levels) per evaluation).

    With crossed or nested factors each one-term fit also absorbs part of the other terms' variance, but
    in practice its estimate and the curvature of its deviance are close to the full model's optimum and
    the diagonal of its Hessian, which is what a quasi-Newton start needs. Returns (theta, curvature);
    curvature entries are NaN where the one-term deviance is not convex at the start.
    """
    theta, curv = [], []
    for a, C in objective.system.scalar_term_crossprods():
        def dev(th, a=a, C=C):
            return one_term_deviance(objective, a, C, abs(th))   # even in theta

        search = minimize_1d(lambda u: dev(math.exp(u)), math.log(1e-4), math.log(1e4), 1e-4)
        th = max(math.exp(search.x[0]), START_FLOOR) if np.isfinite(search.fun) else 1.0
        c2 = fdiff.hessian(lambda z: dev(z[0]), np.array([th]), 1e-3, floor=0.1)[2][0, 0]
        theta.append(th)
        curv.append(c2 if np.isfinite(c2) and c2 > 0 else math.nan)
    return np.array(theta), np.array(curv)


def profiled_gradient(objective, theta) -> np.ndarray:
    """Gradient of ``objective(theta)`` (an LmmObjective over scalar terms) at theta."""
    with objective.system.blas_context():
        return _gradient(objective, np.asarray(theta, dtype=float))


def _gradient(objective, theta) -> np.ndarray:
    current = objective.system.theta
    f0 = objective(theta) if current is None or not np.array_equal(current, theta) else None
    system = objective.system
    # diagonals of the Z block of M^{-1}, and what the fixed effects (and the response) add to it
    diag, extra_p, extra_full = system.z_inverse_diagonals()
    blocks, pos = [], 0
    for t in system.terms:
        blocks.append((pos, pos + t.q))
        pos += t.q
    p = objective.p
    n = objective.n
    grad = np.empty(theta.size)
    for t, (a, b) in enumerate(blocks):
        q_t = b - a
        tr_m = diag[a:b].sum()
        tr_full = tr_m + extra_full[a:b].sum()
        tr_p = tr_m + extra_p[a:b].sum()
        if abs(theta[t]) < SMALL_THETA:
            grad[t] = math.nan
            continue
        dfull = 2.0 * (q_t - tr_full) / theta[t]
        dp = 2.0 * (q_t - tr_p) / theta[t]
        if objective.reml:
            nmp = n - p
            grad[t] = (1.0 - nmp) * dp + nmp * dfull
        else:
            dm = 2.0 * (q_t - tr_m) / theta[t]
            grad[t] = dm + n * (dfull - dp)
    small = np.flatnonzero(np.isnan(grad))
    if small.size:
        if f0 is None:
            f0 = objective(theta)

        def partial(z):
            at = theta.copy()
            at[small] = z
            return objective(at)

        grad[small] = fdiff.gradient(partial, theta[small], 1e-7, f0=f0)
        objective(theta)
    return grad


# ----------------------------------------------------------------------------------------------------------
# Models with one random-effect term: exact gradient and Hessian

def one_block(objective) -> bool:
    """True when the random effects are one term (the system has no dense block)."""
    return objective.system.q2 == 0 and len(objective.system.terms) == 1


def _theta_layout(k, cache={}):
    """For a k x k relative factor: the (row, column) int32 arrays of its theta (the lower triangle by
    columns) and each column's (start, stop) in theta, its diagonal element first."""
    layout = cache.get(k)
    if layout is None:
        pairs = [(i, j) for j in range(k) for i in range(j, k)]
        columns, start = [], 0
        for j in range(k):
            columns.append((start, start + k - j))
            start += k - j
        layout = cache[k] = (np.array([r for r, _ in pairs], dtype=np.int32),
                             np.array([c for _, c in pairs], dtype=np.int32), tuple(columns))
        layout[0].flags.writeable = False
        layout[1].flags.writeable = False
    return layout


class OneBlockDerivatives:
    """Value, gradient and Hessian of the profiled (RE)ML deviance of a one-term LMM, exactly, from the
    cross-products of the objective's system (compiled: :class:`mixframe._ext.lmm_derivs.OneBlockDeviance`;
    the formulas are in its source). Cost O(levels k ntheta (k ne^2 + ntheta ne)), independent of n.

    Calling it gives ``(deviance, gradient, Hessian)``; :meth:`value` the deviance alone.
    """

    def __init__(self, objective):
        system = objective.system
        rows, cols, self._columns = _theta_layout(system.k0)
        A = system.crossprod_blocks()
        self._dev = OneBlockDeviance(A.A11, A.AE1, A.AEE, rows, cols, float(objective.n), objective.reml,
                                     float(objective.log_w))
        self.n_theta = rows.size

    def value(self, theta) -> float:
        return self._dev.deviance(np.ascontiguousarray(theta, dtype=np.float64))

    def minimize(self, x0, control=None):
        """Newton's method on the exact Hessian (:func:`mixframe.numerics.optim.trust_region`), with the
        tolerances of :func:`mixframe.fit.optimize.minimize_trust_region`. Returns an OptResult.

        No bounds are needed: changing the sign of a column of Lambda leaves Lambda Lambda' and so the
        deviance unchanged, so the search runs over all of theta and a column whose diagonal element ends
        negative is negated (lme4's parameterization keeps the diagonal non-negative). A projection onto
        the bound instead would stop at diagonal 0, where every column's gradient vanishes by that symmetry
        even when 0 is a maximum."""
        from .optimize import control_settings, trust_region_tolerances

        # the kernel is a SmoothObjective: the compiled loop evaluates it without Python
        opt = trust_region(self._dev, np.asarray(x0, dtype=np.float64),
                           **trust_region_tolerances(control_settings(control)))
        x = opt.x
        flip = [(start, stop) for start, stop in self._columns if x[start] < 0.0]
        if flip:
            # the deviance is unchanged by the negation, its derivatives change sign with the coordinates
            signs = np.ones(x.size)
            for start, stop in flip:
                signs[start:stop] = -1.0
            x *= signs
            if opt.gradient is not None:
                opt.gradient = np.asarray(opt.gradient) * signs
            if opt.hessian is not None:
                opt.hessian = np.asarray(opt.hessian) * signs[:, None] * signs
        return opt

    def __call__(self, theta):
        grad = np.empty(self.n_theta)
        hess = np.empty((self.n_theta, self.n_theta))
        f = self._dev.derivatives(np.ascontiguousarray(theta, dtype=np.float64), grad, hess)
        if not np.isfinite(f):
            grad.fill(np.nan)
            hess.fill(np.nan)
        return f, grad, hess
