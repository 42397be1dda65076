"""Cumulative link models without random effects, and the pieces every ordinal fit shares.

The model is ``P(Y <= j) = F(alpha_j - x'beta)`` for the ``K - 1`` increasing thresholds ``alpha``.
The thresholds are ``alpha = J @ xi`` for a structure matrix ``J`` ("flexible": the identity;
"equidistant": a first threshold and a spacing; "symmetric": thresholds symmetric about a central
one, or two central ones for an even number of thresholds; the links and structures live in
:mod:`mixframe.families.cumulative`). The fit is Newton-Raphson on
``(xi, beta)`` with the analytic gradient and Hessian from ``mixframe._ext.ordinal``; a step that
would break the ordering of the thresholds or lower the likelihood is halved.
"""
from __future__ import annotations

import warnings

import numpy as np

from .._ext.ordinal import cumlink_full
from .convergence import SEPARATION_MESSAGE, separated
from ..errors import ConvergenceWarning, DataError
from ..families.cumulative import LINKS, THRESHOLDS, link_code, make_cdf, quantile, threshold_structure
from .result import RawFit

__all__ = ["LINKS", "THRESHOLDS", "CLMProblem", "fit_clm", "link_code", "make_cdf", "newton_clm",
           "response_codes", "start_thresholds", "threshold_structure"]


def response_codes(design):
    """int32 category codes and the number of categories K; DataError on bad codes or empty categories."""
    levels = design.response_levels
    if not levels:
        raise DataError(f"response {design.response!r} of an ordinal model needs ordered levels")
    K = len(levels)
    y = np.asarray(design.y, dtype=float)
    if np.any(~np.isfinite(y)) or np.any(y != np.round(y)) or np.any((y < 0) | (y > K - 1)):
        raise DataError(f"response {design.response!r}: codes must be integers 0..{K - 1}")
    codes = np.ascontiguousarray(y, dtype=np.int32)
    counts = np.bincount(codes, minlength=K)
    if np.any(counts == 0):
        empty = [str(levels[i]) for i in np.flatnonzero(counts == 0)]
        raise DataError(f"response {design.response!r} has no observations in level(s) {empty}; "
                        "drop unused levels before fitting")
    return codes, K


def start_thresholds(codes, K, weights, link, J):
    """Threshold parameters matching the marginal cumulative proportions (beta = 0)."""
    w = np.ones(codes.size) if weights is None else np.asarray(weights, dtype=float)
    cum = np.cumsum(np.bincount(codes, weights=w, minlength=K))[:-1] / w.sum()
    alpha0 = quantile(link, np.clip(cum, 1e-6, 1 - 1e-6))
    xi0 = np.linalg.lstsq(J, alpha0, rcond=None)[0]
    if not np.all(np.diff(J @ xi0) > 0):      # a structure that cannot follow the margins: spread evenly
        xi0 = np.linalg.lstsq(J, np.linspace(-1.0, 1.0, K - 1), rcond=None)[0]
    return xi0


def _weights_arg(design):
    return np.empty(0) if design.weights is None else np.ascontiguousarray(design.weights, dtype=float)


def _offset(design):
    return np.zeros(design.n_obs) if design.offset is None else np.asarray(design.offset, dtype=float)


class CLMProblem:
    """Log-likelihood of a cumulative link model with its analytic gradient and Hessian in (xi, beta)."""

    def __init__(self, design, link: str, threshold: str):
        self.design = design
        self.link = link
        self.code = link_code(link)
        self.y, self.K = response_codes(design)
        self.J, self.xi_names = threshold_structure(design.response_levels, threshold)
        self.X = np.ascontiguousarray(design.X, dtype=float)
        self.wts = _weights_arg(design)
        self.offset = _offset(design)
        self.n_xi, self.p = self.J.shape[1], self.X.shape[1]

    def split(self, par):
        return par[:self.n_xi], par[self.n_xi:]

    def derivatives(self, par):
        """(loglik, gradient, Hessian) at par = (xi, beta); loglik is -inf outside the valid region."""
        xi, beta = self.split(np.asarray(par, dtype=float))
        alpha = np.ascontiguousarray(self.J @ xi)
        if not np.all(np.diff(alpha) > 0):
            return -np.inf, None, None
        eta = self.X @ beta + self.offset
        nthr = self.K - 1
        ga = np.empty(nthr)
        haa = np.empty((nthr, nthr))
        hab = np.empty((nthr, self.p))
        score = np.empty(self.y.size)
        d2 = np.empty(self.y.size)
        status, ll = cumlink_full(self.y, eta, alpha, self.wts, self.X, self.code, ga, haa, hab, score, d2)
        if status:
            return -np.inf, None, None
        grad = np.concatenate([self.J.T @ ga, self.X.T @ score])
        hxx = self.X.T @ (d2[:, None] * self.X)
        hxb = self.J.T @ hab
        hess = np.block([[self.J.T @ haa @ self.J, hxb], [hxb.T, hxx]])
        return ll, grad, hess


def newton_clm(problem: CLMProblem, par0, maxiter: int = 100, gtol: float = 1e-9):
    """Maximise the log-likelihood by Newton's method on its exact Hessian, in the trust region of
    :func:`mixframe.numerics.optim.trust_region`, to max |gradient| below ``gtol``.

    Returns (par, loglik, gradient, Hessian, iterations, converged).
    """
    from ..numerics.optim import trust_region

    def negll(par):
        ll, g, H = problem.derivatives(par)
        if not np.isfinite(ll):
            return np.inf, None, None
        return -ll, -g, -H

    start = negll(np.asarray(par0, dtype=float))
    if not np.isfinite(start[0]):
        raise DataError("the starting thresholds give a zero probability to some observation")
    res = trust_region(negll, par0, start=start, gtol=gtol, ftol_abs=0.0, ftol_rel=0.0, xtol_abs=1e-12,
                       xtol_rel=0.0, max_evals=maxiter)
    g, H = -res.gradient, -res.hessian
    return res.x, -res.fun, g, H, res.evaluations, bool(res.converged or np.max(np.abs(g)) < 1e-6)


def fit_clm(design, link: str = "logit", threshold: str = "flexible", control: dict | None = None) -> RawFit:
    """Maximum-likelihood fit of a cumulative link model ``P(Y <= j) = F(alpha_j - x'beta)``.

    Parameters
    ----------
    design : Design
        ``y`` holds 0-based category codes, ``response_levels`` the K labels, ``X`` no intercept.
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    threshold : {"flexible", "equidistant", "symmetric"}
    control : dict, optional
        ``maxiter`` (Newton iterations, default 100) and ``tol`` (gradient tolerance, default 1e-9).

    Returns
    -------
    RawFit
        kind ``"clm"``; ``coef`` the threshold parameters then beta, ``vcov`` the inverse of the
        negative Hessian; ``extra["alpha"]`` the K-1 thresholds, ``extra["cdf"]`` the link's CDF.

    Examples
    --------
    >>> import numpy as np
    >>> from mixframe.design.terms import Design
    >>> y = np.array([0, 1, 2, 2, 0, 2, 0, 1, 0, 1], dtype=float)
    >>> x = np.array([[0.], [1.], [1.], [0.], [0.], [1.], [1.], [1.], [0.], [0.]])
    >>> d = Design(X=x, x_names=["x"], y=y, weights=None, offset=None, terms=[],
    ...            used=np.ones(10, bool), n_total=10, response="y", response_levels=["a", "b", "c"])
    >>> fit = fit_clm(d)
    >>> fit.coef_names
    ['a|b', 'b|c', 'x']
    """
    ctl = dict(control or {})
    unknown = sorted(set(ctl) - {"maxiter", "tol"})
    if unknown:
        raise ValueError(f"unknown control option(s) {unknown} for clm; known: ['maxiter', 'tol']")

    problem = CLMProblem(design, link, threshold)
    xi0 = start_thresholds(problem.y, problem.K, design.weights, link, problem.J)
    par0 = np.concatenate([xi0, np.zeros(problem.p)])
    par, ll, g, H, iters, converged = newton_clm(problem, par0, maxiter=int(ctl.get("maxiter", 100)),
                                                 gtol=float(ctl.get("tol", 1e-9)))
    messages = []
    if not converged:
        msg = (f"Newton-Raphson did not converge in {iters} iterations "
               f"(max |gradient| {np.max(np.abs(g)):.2e})")
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        messages.append(msg)
    try:
        vcov = np.linalg.inv(-H)
    except np.linalg.LinAlgError:
        vcov = np.full_like(H, np.nan)
        messages.append("the Hessian is singular; standard errors are not available")
    if separated(par[problem.n_xi:], np.sqrt(np.abs(np.diag(vcov)))[problem.n_xi:]):
        warnings.warn(SEPARATION_MESSAGE, ConvergenceWarning, stacklevel=2)
        messages.append(SEPARATION_MESSAGE)
    ev = np.linalg.eigvalsh(-H)
    xi, beta = problem.split(par)
    eta = design.X @ beta + problem.offset
    return RawFit(
        kind="clm", design=design, coef_names=list(problem.xi_names) + list(design.x_names),
        coef=np.asarray(par), vcov=vcov, theta=np.zeros(0), lambdas=[], re_scale=1.0, sigma=None,
        b=[], b_sd=[], eta=eta, eta_fixed=eta.copy(), loglik=float(ll), deviance=float(-2.0 * ll),
        n_params=int(par.size), family="cumulative", link=link, method="ML", converged=bool(converged),
        singular=False, iterations=int(iters),
        coef_types=["threshold"] * problem.n_xi + ["location"] * problem.p, messages=messages,
        extra={"cdf": make_cdf(link), "n_categories": problem.K, "alpha": problem.J @ xi,
               "alpha_names": threshold_structure(design.response_levels, "flexible")[1],
               "threshold": threshold, "max_grad": float(np.max(np.abs(g))),
               "cond_H": float(ev.max() / ev.min()) if ev.min() > 0 else np.inf},
    )
