"""Cumulative link mixed models: ``P(Y <= j | b) = F(alpha_j - x'beta - z'b)``.

The marginal likelihood (Laplace for any random-effect structure, adaptive Gauss-Hermite for one
scalar term) is maximised over the thresholds, beta and theta (the elements of the relative factors
Lambda; for a scalar term its SD) by BOBYQA, starting from the fit without random effects. The
thresholds enter the optimizer through an ordering-preserving map (first value and log increments),
so every trial point has increasing thresholds; theta keeps its lower bound 0 on the diagonal, so a
variance estimated at zero lands exactly on the boundary. At the optimum a finite-difference Hessian
over (thresholds, beta, log SD) gives the covariance matrix, a Newton step from it polishes the
estimates, and the conditional modes and SDs of the random effects are read off the final system.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..design.lam import theta_to_lambdas
from ..errors import ConvergenceWarning, DataError, SingularFitWarning
from .clm import CLMProblem, make_cdf, newton_clm, start_thresholds, threshold_structure
from .clmm_laplace import LaplaceObjective
from .optimize import minimize_bounded
from .result import RawFit

SNAP_SD = 1e-2      # a diagonal theta below this is tried at 0 ...
SNAP_TOL = 1e-7     # ... and kept there when -log L rises by at most this much (a boundary, singular fit)


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


# ---------------------------------------------------------------------- finite differences
def fd_hessian(f, x, rel_step: float = 1e-4):
    """Central-difference gradient and Hessian of a scalar function in n^2 + n + 1 evaluations.

    The diagonal uses f(x +- h_i e_i); an off-diagonal entry the symmetric second-order formula
    [f(x+ei+ej) - f(x+ei) - f(x+ej) + 2 f(x) - f(x-ei) - f(x-ej) + f(x-ei-ej)] / (2 h_i h_j).
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    h = rel_step * np.maximum(1.0, np.abs(x))
    E = np.diag(h)
    f0 = f(x)
    fp = np.array([f(x + E[i]) for i in range(n)])
    fm = np.array([f(x - E[i]) for i in range(n)])
    g = (fp - fm) / (2 * h)
    H = np.diag((fp - 2 * f0 + fm) / h ** 2)
    for i in range(n):
        for j in range(i):
            fpp = f(x + E[i] + E[j])
            fmm = f(x - E[i] - E[j])
            H[i, j] = H[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (2 * h[i] * h[j])
    return f0, g, H


def fd_gradient(f, x, fx, rel_step: float = 1e-5):
    """Central-difference gradient (2 n evaluations); ``fx`` = f(x) is not re-evaluated."""
    x = np.asarray(x, dtype=float)
    h = rel_step * np.maximum(1.0, np.abs(x))
    g = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h[i]
        g[i] = (f(x + e) - f(x - e)) / (2 * h[i])
    return g


class _Params:
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
        tau = v[b:]
        theta[free] = np.where(self.diag[free], np.exp(tau), tau)
        return v[:a], v[a:b], theta


def _polish(objective, layout, xi, beta, theta, free, max_newton: int = 4):
    """Newton steps on the finite-difference Hessian over (xi, beta, tau) from the optimizer's answer.

    Returns (v, f, gradient, Hessian) at the final point v (the Hessian is retaken after any step
    larger than 1e-2, so the covariance matrix belongs to the estimates).
    """
    def f_inf(v):
        return objective(*layout.from_inference(v, theta, free))

    v = layout.to_inference(xi, beta, theta, free)
    f0, g, H = fd_hessian(f_inf, v)
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
            f0, g = f1, fd_gradient(f_inf, v, f1)
            break
        f0, g, H = fd_hessian(f_inf, v)
    return v, f0, g, H


def fit_clmm(design, link: str = "logit", threshold: str = "flexible", nagq: int = 1,
             control: dict | None = None) -> RawFit:
    """Maximum-likelihood fit of a cumulative link mixed model.

    Parameters
    ----------
    design : Design
        ``y`` the 0-based category codes, ``response_levels`` the K labels, ``X`` without intercept,
        at least one random-effect term.
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    threshold : {"flexible", "equidistant", "symmetric"}
    nagq : int
        1: Laplace approximation; > 1: adaptive Gauss-Hermite with that many nodes (one scalar
        random-effect term only, ValueError otherwise).
    control : dict, optional
        Optimizer settings as ``mixframe.fit.optimize.minimize_bounded`` takes them
        (``maxiter``, ``tol``, ``initial_step``, ...).

    Returns
    -------
    RawFit
        kind ``"clmm"``: ``coef`` the threshold parameters then beta, ``vcov`` their block of the
        inverse Hessian of -log L over (thresholds, beta, log SDs), ``theta`` the relative factor
        elements (the SD of a scalar term), ``b``/``b_sd`` conditional modes and SDs.

    Examples
    --------
    >>> import mixframe as mf
    >>> from mixframe.design.build import build_design
    >>> df = mf.datasets.wine()
    >>> d = build_design("rating ~ temp + contact + (1 | judge)", df, kind="clmm")
    >>> round(float(fit_clmm(d).loglik), 2)
    -81.57
    """
    if not design.terms:
        raise DataError("a cumulative link mixed model needs a random-effect term such as (1 | g); "
                        "use clm() for a model without random effects")
    nagq = int(nagq)
    if nagq < 1:
        raise ValueError(f"nagq must be 1 (Laplace) or more (adaptive Gauss-Hermite); got {nagq}")
    clm = CLMProblem(design, link, threshold)
    n_thr = clm.K - 1
    objective = LaplaceObjective(design, clm.y, clm.code, clm.J, nagq)
    # start: the fit without random effects, identity relative factors
    xi0 = start_thresholds(clm.y, clm.K, design.weights, link, clm.J)
    par0, _, _, _, _, _ = newton_clm(clm, np.concatenate([xi0, np.zeros(clm.p)]))
    lower_theta = design.theta_lower_bounds()
    layout = _Params(clm.n_xi, clm.p, np.isfinite(lower_theta), threshold, n_thr)
    x0 = np.concatenate([xi_to_rho(par0[:clm.n_xi], threshold, n_thr), par0[clm.n_xi:],
                         design.theta_start()])
    lower = np.concatenate([np.full(clm.n_xi + clm.p, -np.inf), lower_theta])

    def f_opt(x):
        return objective(*layout.split_opt(x))

    ctl = {"ftol_rel": 1e-9, "ftol_abs": 1e-7, "xtol_rel": 1e-6, "xtol_abs": 1e-6, "initial_step": 0.25}
    ctl.update(control or {})
    opt = minimize_bounded(f_opt, x0, lower, control=ctl)
    n_eval_opt = objective.n_eval
    xi, beta, theta = layout.split_opt(opt.x)
    fmin = objective(xi, beta, theta)
    # a small SD that the likelihood cannot tell from 0 is put on the boundary
    for i in np.flatnonzero(layout.diag & (theta < SNAP_SD)):
        trial = theta.copy()
        trial[i] = 0.0
        f_trial = objective(xi, beta, trial)
        if f_trial <= fmin + SNAP_TOL:
            theta, fmin = trial, min(fmin, f_trial)
    free = ~(layout.diag & (theta == 0.0))
    v, fmin, g, H = _polish(objective, layout, xi, beta, theta, free)
    xi, beta, theta = layout.from_inference(v, theta, free)
    messages = [] if opt.converged else [f"optimizer: {opt.message}"]
    try:   # predicted gain of one more Newton step: near zero at a maximum
        decrement = float(g @ np.linalg.solve(H, g)) if g.size else 0.0
    except np.linalg.LinAlgError:
        decrement = np.inf
    converged = bool(np.isfinite(fmin) and 0.0 <= decrement < 1e-5 or (opt.converged and decrement < 1e-3))
    try:
        vcov_full = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        vcov_full = np.full_like(H, np.nan)
        messages.append("the Hessian is singular; standard errors are not available")
    ev = np.linalg.eigvalsh(H)
    n_coef = clm.n_xi + clm.p
    b, b_sd, eta = objective.conditional(xi, beta, theta)
    singular = bool(np.any(~free))
    if not converged:
        msg = (f"clmm did not converge: optimizer {opt.message}, max |gradient| {np.max(np.abs(g)):.2e}, "
               f"Newton decrement {decrement:.2e}")
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        messages.append(msg)
    if singular:
        msg = "boundary (singular) fit: a random-effect variance is estimated as 0"
        warnings.warn(msg, SingularFitWarning, stacklevel=2)
        messages.append(msg)
    ll = -float(fmin)
    st_names = [f"ST{i + 1}" for i in range(int(free.sum()))]
    return RawFit(
        kind="clmm", design=design, coef_names=list(clm.xi_names) + list(design.x_names),
        coef=np.concatenate([xi, beta]), vcov=vcov_full[:n_coef, :n_coef], theta=np.asarray(theta),
        lambdas=theta_to_lambdas(design.terms, theta), re_scale=1.0, sigma=None, b=b, b_sd=b_sd,
        eta=eta, eta_fixed=objective.eta_fixed(beta), loglik=ll, deviance=-2.0 * ll,
        n_params=int(n_coef + theta.size), family="cumulative", link=link,
        method="Laplace" if nagq == 1 else f"AGQ({nagq})", converged=converged,
        singular=singular, iterations=int(objective.n_eval),
        coef_types=["threshold"] * clm.n_xi + ["location"] * clm.p,
        messages=messages,
        extra={"cdf": make_cdf(link), "n_categories": clm.K, "alpha": clm.J @ xi,
               "alpha_names": threshold_structure(design.response_levels, "flexible")[1],
               "threshold": threshold, "nagq": nagq, "vcov_full": vcov_full,
               "vcov_full_names": list(clm.xi_names) + list(design.x_names) + st_names,
               "max_grad": float(np.max(np.abs(g))) if g.size else 0.0,
               "cond_H": float(ev.max() / ev.min()) if ev.size and ev.min() > 0 else np.inf,
               "optimizer_evaluations": n_eval_opt},
    )
