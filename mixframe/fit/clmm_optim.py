"""Optimisation of the CLMM likelihood: parameter maps, finite differences, the optimizers, Newton polish.

Two coordinate systems are used:

- the optimizer's ``(rho, beta, theta)``: rho maps to threshold parameters whose thresholds always
  increase (first value, then log increments), theta has its lower bounds (0 on diagonals);
- the inference coordinates ``(xi, beta, tau)``: the threshold parameters themselves, beta, and
  tau = log theta for the free diagonal elements (theta itself for off-diagonal ones), the scale on
  which the covariance matrix is reported. Diagonal elements at 0 (boundary fits) are held fixed.
"""
from __future__ import annotations

import numpy as np

from ..numerics import fdiff
from ..numerics.optim import lbfgs
from .optimize import minimize_bounded


# ---------------------------------------------------------------------- threshold maps
def xi_to_rho(xi, threshold: str, n_thr: int):
    """Unconstrained optimizer coordinates of the threshold parameters (inverse of ``rho_to_xi``)."""
    xi = np.asarray(xi, dtype=float)
    if threshold == "flexible":
        return np.concatenate([xi[:1], np.log(np.diff(xi))])
    if threshold == "equidistant":
        return np.array([xi[0], np.log(xi[1])])
    if n_thr % 2:     # symmetric, odd: central, increasing spacings
        return np.concatenate([xi[:1], np.log(np.diff(np.concatenate([[0.0], xi[1:]])))])
    return np.concatenate([xi[:1], [np.log(xi[1] - xi[0])], np.log(np.diff(np.concatenate([[0.0], xi[2:]])))])


def rho_to_xi(rho, threshold: str, n_thr: int):
    """Threshold parameters from unconstrained coordinates; the thresholds J @ xi always increase."""
    rho = np.asarray(rho, dtype=float)
    if threshold == "flexible":
        return rho[0] + np.concatenate([[0.0], np.cumsum(np.exp(rho[1:]))])
    if threshold == "equidistant":
        return np.array([rho[0], np.exp(rho[1])])
    if n_thr % 2:
        return np.concatenate([rho[:1], np.cumsum(np.exp(rho[1:]))])
    return np.concatenate([rho[:1], [rho[0] + np.exp(rho[1])], np.cumsum(np.exp(rho[2:]))])


def rho_jacobian(rho, threshold: str, n_thr: int):
    """d xi / d rho (square), for the chain rule from threshold parameters to optimizer coordinates."""
    rho = np.asarray(rho, dtype=float)
    n = rho.size
    e = np.exp(rho)
    Jr = np.zeros((n, n))
    if threshold == "flexible":
        Jr[:, 0] = 1.0
        for k in range(1, n):
            Jr[k:, k] = e[k]
    elif threshold == "equidistant":
        Jr[0, 0], Jr[1, 1] = 1.0, e[1]
    elif n_thr % 2:
        Jr[0, 0] = 1.0
        for k in range(1, n):
            Jr[k:, k] = e[k]
    else:
        Jr[0, 0] = Jr[1, 0] = 1.0
        Jr[1, 1] = e[1]
        for k in range(2, n):
            Jr[k:, k] = e[k]
    return Jr


# ---------------------------------------------------------------------- finite differences
def fd_hessian(f, x, rel_step: float = 1e-4):
    """(f, gradient, Hessian) by central differences with relative steps (:func:`mixframe.numerics.fdiff.hessian`)."""
    return fdiff.hessian(f, x, rel_step, floor=1.0)


def fd_gradient(f, x, rel_step: float = 1e-5):
    """Central-difference gradient with relative steps (:func:`mixframe.numerics.fdiff.gradient`)."""
    return fdiff.gradient(f, x, rel_step, floor=1.0)


def fd_jacobian_of_gradient(fg, x, rel_step: float = 1e-5):
    """(f, g, H): H by central differences of an analytic gradient, relative steps, symmetrized."""
    f0, g0 = fg(x)
    return f0, g0, fdiff.hessian_from_gradient(lambda z: fg(z)[1], x, rel_step, floor=1.0)


# ---------------------------------------------------------------------- coordinates
class Params:
    """Layout of the parameter vectors: optimizer (rho, beta, theta) and inference (xi, beta, tau)."""

    def __init__(self, n_xi, p, theta_diag, threshold, n_thr):
        self.n_xi, self.p = n_xi, p
        self.diag = np.asarray(theta_diag, dtype=bool)
        self.threshold, self.n_thr = threshold, n_thr

    def split_opt(self, x):
        a, b = self.n_xi, self.n_xi + self.p
        return rho_to_xi(x[:a], self.threshold, self.n_thr), x[a:b], x[b:]

    def to_inference(self, xi, beta, theta, free):
        """(xi, beta, tau) with tau = log theta on free diagonal elements and theta elsewhere (free only)."""
        tau = np.where(self.diag, np.log(np.maximum(theta, 1e-300)), theta)
        return np.concatenate([xi, beta, tau[free]])

    def from_inference(self, v, theta_fixed, free):
        a, b = self.n_xi, self.n_xi + self.p
        theta = theta_fixed.copy()
        theta[free] = np.where(self.diag[free], np.exp(v[b:]), v[b:])
        return v[:a], v[a:b], theta


# ---------------------------------------------------------------------- optimizers
def optimize_bobyqa(objective, layout: Params, x0, lower, control=None):
    """BOBYQA on (rho, beta, theta); returns (x, converged, message)."""
    ctl = {"ftol_rel": 1e-9, "ftol_abs": 1e-7, "xtol_rel": 1e-6, "xtol_abs": 1e-6, "initial_step": 0.25}
    ctl.update(control or {})
    opt = minimize_bounded(lambda x: objective(*layout.split_opt(x)), x0, lower, control=ctl)
    return opt.x, opt.converged, opt.message


def optimize_lbfgs(objective, layout: Params, x0, lower, control=None):
    """L-BFGS (scipy) on (rho, beta, theta) with the analytic Laplace gradient of one scalar term.

    Returns (x, converged, message). ``lower`` is accepted for symmetry with ``optimize_bobyqa``;
    the one SD needs no bound (see below).
    """
    ctl = dict(control or {})
    a = layout.n_xi

    def fun(x):
        xi, beta, theta = layout.split_opt(x)
        val, g = objective.value_and_grad(xi, beta, theta)
        if g is None:
            return np.inf, None
        g_rho = rho_jacobian(x[:a], layout.threshold, layout.n_thr).T @ g[:a]
        return val, np.concatenate([g_rho, g[a:]])

    # -log L is even in the SD of a single scalar term (u -> -u), so the SD is left unbounded and its
    # absolute value taken: the optimizer cannot stall at 0, where the gradient vanishes by symmetry.
    def run(start):
        res = lbfgs(fun, start, ftol=float(ctl.get("tol", 1e-11)), gtol=1e-6,
                    max_iter=int(ctl.get("maxiter", 2000)), memory=20)
        x = res.x.copy()
        x[a + layout.p:] = np.abs(x[a + layout.p:])
        return x, res.converged, res.message

    x, ok, msg = run(x0)
    if x[-1] < 1e-2:   # at (or near) zero: make sure it is a minimum in the SD, not a saddle
        probe = x.copy()
        probe[-1] = 0.25
        if fun(probe)[0] < fun(x)[0] - 1e-8:
            x, ok, msg = run(probe)
    return x, ok, msg


# ---------------------------------------------------------------------- Newton polish
def polish(objective, layout: Params, xi, beta, theta, free, max_newton: int = 4):
    """Newton steps on a finite-difference Hessian over (xi, beta, tau) from the optimizer's answer.

    With an analytic gradient (``objective.has_gradient``) the Hessian is the difference quotient of
    the gradient, else of the function values. Returns (v, f, gradient, Hessian) at the final point v;
    the Hessian is retaken after any step larger than 1e-2, so the covariance matrix belongs to the
    estimates.
    """
    b = layout.n_xi + layout.p

    def f_inf(v):
        return objective(*layout.from_inference(v, theta, free))

    def fg_inf(v):
        xi_, beta_, theta_ = layout.from_inference(v, theta, free)
        val, g = objective.value_and_grad(xi_, beta_, theta_)
        if g is None:
            return np.inf, np.full(v.size, np.nan)
        g_tau = np.where(layout.diag, theta_ * g[b:], g[b:])[free]
        return val, np.concatenate([g[:b], g_tau])

    if objective.has_gradient:
        def curvature(v):
            return fd_jacobian_of_gradient(fg_inf, v)

        def gradient(v):
            return fg_inf(v)[1]
    else:
        def curvature(v):
            return fd_hessian(f_inf, v)

        def gradient(v):
            return fd_gradient(f_inf, v)

    v = layout.to_inference(xi, beta, theta, free)
    f0, g, H = curvature(v)
    for _ in range(max_newton):
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or step @ g >= 0:
            break
        t, accepted = 1.0, False
        while t > 1e-4:
            f1 = f_inf(v + t * step)
            if f1 <= f0:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        v = v + t * step
        if np.max(np.abs(t * step)) < 1e-2:   # the Hessian still holds; the gradient is taken anew
            f0, g = f1, gradient(v)
            break
        f0, g, H = curvature(v)
    return v, f0, g, H
