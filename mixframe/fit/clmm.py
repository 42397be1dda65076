"""Cumulative link mixed models: ``P(Y <= j | b) = F(alpha_j - x'beta - z'b)``.

The marginal likelihood (Laplace for any random-effect structure, adaptive Gauss-Hermite for one
scalar term) is maximised over the thresholds, beta and theta (the elements of the relative factors
Lambda; for a scalar term its SD), starting from the fit without random effects: by L-BFGS-B on the
analytic gradient of the Laplace approximation for one scalar term, by BOBYQA otherwise. The
thresholds enter the optimizer through an ordering-preserving map (first value and log increments),
so every trial point has increasing thresholds; theta keeps its lower bound 0 on the diagonal, so a
variance estimated at zero lands exactly on the boundary. At the optimum a finite-difference Hessian
over (thresholds, beta, log SD) gives the covariance matrix, Newton steps on it polish the
estimates, and the conditional modes and SDs of the random effects are read off the final system.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..design.terms import theta_to_lambdas
from ..errors import ConvergenceWarning, DataError, SingularFitWarning
from .boundary import snap_to_bounds
from .convergence import SEPARATION_MESSAGE, convergence_failures, separated
from .checks import check_random_effect_sizes
from .clm import CLMProblem, make_cdf, newton_clm, start_thresholds, threshold_structure
from .clmm_laplace import LaplaceObjective
from .clmm_optim import Params, optimize_bobyqa, optimize_lbfgs, polish, rho_to_xi, xi_to_rho
from .optimize import control_settings
from .result import RawFit

__all__ = ["fit_clmm", "rho_to_xi", "xi_to_rho"]

SNAP_TOL = 1e-7     # a diagonal theta is kept at 0 when -log L there rises by at most this much (a boundary fit)


#: a diagonal theta whose bound lay this far above the optimum (in -log L) before the Newton polish is not tried
#: again after it: the polish moves the estimates too little to close such a gap
CLEAR_MARGIN = 0.5


def _snap_sds(objective, layout, xi, beta, theta, fmin, skip=(), margins=None):
    """Put each diagonal theta on 0 where -log L there is at most SNAP_TOL above ``fmin`` (every one is tried,
    except the indices in ``skip``: see the call). Returns (theta, fmin, whether any moved)."""
    candidates = [i for i in np.flatnonzero(layout.diag).tolist() if i not in skip]
    snapped, f = snap_to_bounds(lambda th: objective.probe(xi, beta, th), theta, candidates, fmin=fmin,
                                tol_abs=SNAP_TOL, tol_rel=0.0, below=np.inf, margins=margins)
    return snapped, f, snapped is not theta


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
        Optimizer settings: ``maxiter`` and ``tol`` (both optimizers), and for BOBYQA what
        ``mixframe.fit.optimize.minimize_bounded`` takes (``initial_step``, ``ftol_rel``, ...).

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
    control_settings(control)      # unknown options are an error naming them
    check_random_effect_sizes(design, "clmm")
    nagq = int(nagq)
    if nagq < 1:
        raise ValueError(f"nagq must be 1 (Laplace) or more (adaptive Gauss-Hermite); got {nagq}")
    clm = CLMProblem(design, link, threshold)
    n_thr = clm.K - 1
    objective = LaplaceObjective(design, clm.y, clm.code, clm.J, nagq)
    # start: the fit without random effects, identity relative factors
    xi0 = start_thresholds(clm.y, clm.K, design.weights, link, clm.J)
    par0 = newton_clm(clm, np.concatenate([xi0, np.zeros(clm.p)]), gtol=1e-4)[0]   # a start only
    lower_theta = design.theta_lower_bounds()
    layout = Params(clm.n_xi, clm.p, np.isfinite(lower_theta), threshold, n_thr)
    # random effects widen the latent scale: conditional effects exceed marginal ones by about
    # sqrt(1 + c * total variance), c = 0.346 (logistic, Zeger et al. 1988) or 1 (normal)
    theta0 = design.theta_start()
    scale = np.sqrt(1.0 + (1.0 if link == "probit" else 0.346) * len(design.terms))
    par0 = par0 * scale
    x0 = np.concatenate([xi_to_rho(par0[:clm.n_xi], threshold, n_thr), par0[clm.n_xi:], theta0])
    lower = np.concatenate([np.full(clm.n_xi + clm.p, -np.inf), lower_theta])
    if objective.has_gradient:
        x_opt, opt_converged, opt_message = optimize_lbfgs(objective, layout, x0, lower, control)
    else:
        ctl = dict(control or {})
        if nagq > 1:   # quadrature refines the Laplace answer: start there, with a small first step
            laplace = LaplaceObjective(design, clm.y, clm.code, clm.J, 1)
            x0 = optimize_lbfgs(laplace, layout, x0, lower, control)[0]
            objective.n_eval += laplace.n_eval
            ctl.setdefault("initial_step", 0.05)
        x_opt, opt_converged, opt_message = optimize_bobyqa(objective, layout, x0, lower, ctl)
    n_eval_opt = objective.n_eval
    xi, beta, theta = layout.split_opt(x_opt)
    fmin = objective(xi, beta, theta)
    # an SD that the likelihood cannot tell from 0 is put on the boundary, before and again after the
    # Newton polish. Every diagonal theta is tried (one evaluation each), not only small ones: near 0 the
    # likelihood is flat in an SD, and the search (derivative-free, or Newton in log SD) can stop well inside
    # (0.02 on carData's WVS for (1 | country/religion)) at a point worse than the boundary
    margins = {}
    theta, fmin, _ = _snap_sds(objective, layout, xi, beta, theta, fmin, margins=margins)
    free = ~(layout.diag & (theta == 0.0))
    v0 = layout.to_inference(xi, beta, theta, free)
    v, fmin, g, H = polish(objective, layout, xi, beta, theta, free)
    xi, beta, theta = layout.from_inference(v, theta, free)
    small_move = bool(np.max(np.abs(v - v0), initial=0.0) < 1e-2)
    clear = {i for i, gap in margins.items() if gap > CLEAR_MARGIN} if small_move else set()
    theta, fmin, snapped = _snap_sds(objective, layout, xi, beta, theta, fmin, skip=clear)
    if snapped:
        free = ~(layout.diag & (theta == 0.0))
        v, fmin, g, H = polish(objective, layout, xi, beta, theta, free)
        xi, beta, theta = layout.from_inference(v, theta, free)
    if not np.isfinite(fmin):
        raise ArithmeticError("the Laplace approximation is not defined at the estimates: the conditional "
                              "log-likelihood has no maximum in the random effects (possible with "
                              "link='cauchit'); try another link")
    messages = [] if opt_converged else [f"optimizer: {opt_message}"]
    try:   # predicted gain of one more Newton step: near zero at a maximum
        decrement = float(g @ np.linalg.solve(H, g)) if g.size else 0.0
    except np.linalg.LinAlgError:
        decrement = np.inf
    converged = bool((0.0 <= decrement < 1e-5) or (opt_converged and decrement < 1e-3))
    ev = np.linalg.eigvalsh(H) if np.all(np.isfinite(H)) else np.full(H.shape[0], np.nan)
    # lme4's checks on the deviance scale (-2 log L): a small gradient and a positive definite Hessian
    checks = convergence_failures(2.0 * g, 2.0 * H) if g.size else []
    converged = converged and not checks
    if ev.size and ev.min() > 0:
        vcov_full = np.linalg.inv(H)
    else:
        vcov_full = np.full_like(H, np.nan)
        messages.append("the Hessian is not positive definite; standard errors are not available")
    n_coef = clm.n_xi + clm.p
    b, b_sd, eta = objective.conditional(xi, beta, theta)
    singular = bool(np.any(~free))
    if not converged:
        msg = (f"clmm did not converge: optimizer {opt_message}, max |gradient| {np.max(np.abs(g)):.2e}, "
               f"Newton decrement {decrement:.2e}" + "".join(f"; {c}" for c in checks))
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        messages.append(msg)
    if separated(beta, np.sqrt(np.abs(np.diag(vcov_full)))[clm.n_xi:n_coef]):
        warnings.warn(SEPARATION_MESSAGE, ConvergenceWarning, stacklevel=2)
        messages.append(SEPARATION_MESSAGE)
    if singular:   # recorded in RawFit.singular; the results layer reports it
        warnings.warn("boundary (singular) fit: a random-effect variance is estimated as 0",
                      SingularFitWarning, stacklevel=2)
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
