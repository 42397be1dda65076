"""Linear mixed models: the profiled (RE)ML deviance at theta, its optimisation, and the fit record.

The deviance follows Bates, Maechler, Bolker & Walker (2015), JSS 67(1), eqs. (34) and (41): with the blocked
factor L of [Lambda'Z'WZLambda + I, ...; X'WZLambda, X'WX] and the penalized residual sum of squares r^2,

    ML:   log|L_Z|^2 + n (1 + log(2 pi r^2 / n))
    REML: log|L_Z|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

minus the sum of the log prior weights.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.linalg.lapack import dtrtri

from ..design.build import with_fixed_columns
from ..design.encode import reduce_fixed
from ..design.terms import theta_to_lambdas, u_to_b, z_times_b
from ..errors import ConvergenceWarning, DataError, SingularFitWarning
from ..linalg.blocked import BlockedSystem
from .checks import check_random_effect_sizes
from .lmm_grad import OneBlockDerivatives, all_scalar, one_block, one_term_start, profiled_gradient
from ..numerics.fdiff import hessian as hessian_fd
from .boundary import snap_to_bounds
from .convergence import convergence_failures
from .optimize import control_settings, minimize_bounded, minimize_trust_region
from ..models.lmm.result import LmmDeferred
from .result import Deferred, RawFit

LOG_2PI = math.log(2.0 * math.pi)
SINGULAR_TOL = 1e-4
#: scalar-term LMMs whose dense block has at least this many rows use the gradient-based optimizer
GRADIENT_FROM_Q2 = 200


class LmmObjective:
    """The profiled deviance of an LMM as a pure function of theta (and, unprofiled, of theta and sigma).

    Parameters
    ----------
    design : Design
    reml : bool
    """

    def __init__(self, design, reml: bool = True):
        self.design = design
        self.reml = bool(reml)
        n, p = design.X.shape
        if design.weights is not None:      # a row of weight zero contributes nothing, not even to n
            n = int(np.count_nonzero(np.asarray(design.weights) > 0))
        if n <= p:
            raise DataError(f"{n} complete rows cannot estimate {p} fixed effects and a residual variance")
        self.n, self.p = n, p
        y = design.y if design.offset is None else design.y - design.offset
        self.system = BlockedSystem(design.terms, p + 1)
        # exact sums: the same rows give the same system in any order or batching (streamed fits)
        self.system.crossprod(np.column_stack([design.X, y]), design.weights, exact=True)
        self.log_w = self.system.log_w
        self.evaluations = 0

    def _factor(self, theta):
        if not self.system.is_factored_at(theta) and self.system.factor(theta) != 0:
            return None
        return self.system.logdets()

    def __call__(self, theta) -> float:
        """Profiled deviance (REML criterion when reml) at theta; inf where the system is not definite."""
        self.evaluations += 1
        parts = self._factor(theta)
        if parts is None:
            return math.inf
        return self.criterion(*parts)

    def criterion(self, ldz, ldx, r2) -> float:
        """The profiled deviance from the log-determinants and the penalized RSS of a factor."""
        if self.reml:
            nmp = self.n - self.p
            return ldz + ldx + nmp * (1.0 + LOG_2PI + math.log(r2 / nmp)) - self.log_w
        return ldz + self.n * (1.0 + LOG_2PI + math.log(r2 / self.n)) - self.log_w

    def deviance_at(self, theta, sigma, reml=None) -> float:
        """Unprofiled -2 (RE)ML log-likelihood at (theta, sigma), beta and u at their conditional optimum."""
        reml = self.reml if reml is None else reml
        parts = self._factor(theta)
        if parts is None:
            return math.inf
        ldz, ldx, r2 = parts
        s2 = sigma * sigma
        if reml:
            return ldz + ldx + (self.n - self.p) * (LOG_2PI + math.log(s2)) + r2 / s2 - self.log_w
        return ldz + self.n * (LOG_2PI + math.log(s2)) + r2 / s2 - self.log_w

    def sigma_hat(self, theta, reml=None) -> float:
        reml = self.reml if reml is None else reml
        parts = self._factor(theta)
        r2 = parts[2]
        return math.sqrt(r2 / ((self.n - self.p) if reml else self.n))

    def vcov_beta(self, theta, sigma) -> np.ndarray:
        """sigma^2 (R_X' R_X)^{-1} at theta."""
        if self._factor(theta) is None:
            return np.full((self.p, self.p), np.nan)
        inv = tri_inv(self.system.fixed_block())
        return sigma * sigma * (inv.T @ inv)


def fit_lmm(design, reml: bool = True, control: dict | None = None, check_rank: bool = False) -> RawFit:
    """Fit a linear mixed model by (RE)ML. Returns the raw fit record.

    ``check_rank``: the design keeps every fixed-effect column (``build_design(..., fixed_columns="all")``) and
    the aliased ones are dropped here, by the rank check of X'X (:func:`mixframe.design.encode.reduce_fixed`)
    read off the exact cross-products the objective computes anyway (an unweighted fit's)."""
    check_random_effect_sizes(design, "lmm")
    obj = LmmObjective(design, reml)
    if check_rank:
        p = design.p
        kept = reduce_fixed(obj.system.crossprod_blocks().AEE[:p, :p], design.x_names, stacklevel=3)
        if len(kept) < p:
            design = with_fixed_columns(design, kept)
            obj = LmmObjective(design, reml)

    def linear_predictors(beta, bs):
        eta_fixed = design.X @ beta
        if design.offset is not None:
            eta_fixed = eta_fixed + design.offset
        return eta_fixed + z_times_b(design.terms, bs), eta_fixed

    with obj.system.blas_context():     # entered once: every factorization of the fit runs inside it
        opt = optimize_lmm(obj, design, control)
        return finish_lmm(obj, design, opt, linear_predictors)


def optimize_lmm(obj, design, control=None):
    """Minimise the profiled deviance over theta.

    * one random-effect term: a trust-region Newton method on the exact gradient and Hessian (a handful of
      iterations instead of BOBYQA's dozens of evaluations);
    * scalar terms whose dense block makes each evaluation expensive: a quasi-Newton method on the analytic
      gradient, started from the terms fitted one at a time, with their curvatures as the Hessian model;
    * otherwise, or when ``control`` names an optimizer: derivative-free BOBYQA (or the one named).
    """
    desc = f"LMM ({'REML' if obj.reml else 'ML'})"
    lower = design.theta_lower_bounds()
    opt = _search_lmm(obj, design, control, lower, desc)
    # a diagonal theta the criterion cannot tell from its bound 0 is put on it (ten times the search's
    # own tolerance: the deviance at 0 and at 1e-16 differ by rounding only)
    ctl = control_settings(control)
    x, fmin = snap_to_bounds(obj, opt.x, np.flatnonzero(np.isfinite(lower)), fmin=opt.fun,
                             tol_abs=10.0 * ctl["ftol_abs"], tol_rel=10.0 * ctl["ftol_rel"])
    if x is not opt.x:
        opt.x, opt.fun = x, fmin
        opt.gradient = opt.hessian = None      # the search's derivatives were at the point before the snap
    opt.checks = _check_lmm(obj, opt, lower)
    if opt.checks and not _default_optimizer(control) and control_settings(control)["optimizer"] != "bobyqa":
        # the optimizer the caller chose stopped where the checks fail (Nelder-Mead on a simplex collapsed
        # onto a bound): BOBYQA from that point, off the bound, finishes the search
        start = np.where(np.isfinite(lower) & (opt.x <= lower), 0.1, opt.x)
        ctl2 = {k: v for k, v in dict(control).items() if k != "optimizer"}
        polish = minimize_bounded(obj, start, lower, control=ctl2, desc=desc)
        x, fmin = snap_to_bounds(obj, polish.x, np.flatnonzero(np.isfinite(lower)), fmin=polish.fun,
                                 tol_abs=10.0 * ctl["ftol_abs"], tol_rel=10.0 * ctl["ftol_rel"])
        if fmin <= opt.fun:
            first = opt
            polish.x, polish.fun = x, fmin
            polish.evaluations += first.evaluations
            polish.message = (f"{ctl['optimizer']} stopped at a point that failed the convergence checks "
                              f"({'; '.join(first.checks)}); finished by BOBYQA: {polish.message}")
            opt = polish
            opt.checks = _check_lmm(obj, opt, lower)
    return opt


def _check_lmm(obj, opt, lower) -> list:
    """lme4's convergence checks at the reported theta (:mod:`mixframe.fit.convergence`): the search's own
    gradient and Hessian at its answer (exact for a one-block model; the Hessian model of the gradient-based
    search), the exact derivatives of a one-block model at a snapped point, central differences otherwise."""
    x = np.asarray(opt.x, dtype=float)
    free = ~(x <= lower)                       # -inf bounds: always free
    derivs = getattr(opt, "derivatives", None)
    if opt.hessian is not None and opt.gradient is not None:
        g, H = opt.gradient, opt.hessian       # the search's, at x
    elif derivs is not None:
        _, g, H = derivs(x)
    else:
        _, g, H = hessian_fd(obj, x, 1e-4, floor=1e-2)
    return convergence_failures(g, H, free)


def _search_lmm(obj, design, control, lower, desc):
    if _default_optimizer(control) and one_block(obj) and design.n_theta <= 64:
        block = OneBlockDerivatives(obj)
        opt = block.minimize(design.theta_start(), control)
        opt.derivatives = block
        return opt
    if _default_optimizer(control) and all_scalar(design) and obj.system.q2 >= GRADIENT_FROM_Q2:
        # the deviance is even in each scalar theta_t: search without bounds (a bound would hold a
        # coordinate at 0, a stationary point by symmetry, on a noisy gradient) and report |theta|
        theta0, curv = one_term_start(obj)
        opt = minimize_trust_region(obj, lambda th: profiled_gradient(obj, th), theta0,
                                    np.full(lower.size, -np.inf),
                                    hess0=curv if np.all(np.isfinite(curv)) else None, control=control,
                                    desc=desc)
        # |theta| is reported; the deviance is even in each theta_t, so its derivatives there change sign
        # with the coordinates that were negative
        signs = np.where(opt.x < 0.0, -1.0, 1.0)
        opt.x = np.abs(opt.x)
        if opt.gradient is not None:
            opt.gradient = np.asarray(opt.gradient) * signs
        if opt.hessian is not None:
            opt.hessian = np.asarray(opt.hessian) * np.outer(signs, signs)
        return opt
    return minimize_bounded(obj, design.theta_start(), lower, control=control, desc=desc)


def _default_optimizer(control) -> bool:
    """True unless the caller chose an optimizer (then BOBYQA or the one named is used as asked)."""
    return not (control and "optimizer" in control)


def finish_lmm(obj, design, opt, linear_predictors=None, extra=None) -> RawFit:
    """The fit record at the optimizer's theta: beta, sigma, vcov, conditional modes and SDs, likelihoods,
    warnings, and (on first use, see :class:`~mixframe.models.lmm.result.LmmDeferred`) the conditional SDs and
    the Satterthwaite df. ``linear_predictors(beta, b)`` returns (eta, eta_fixed) on the
    used rows; without it (streamed data) they are left empty."""
    reml = obj.reml
    theta = opt.x
    dev = obj(theta)  # leaves the factor at the optimum
    if not np.isfinite(dev):
        raise DataError("the model could not be fitted: the penalized system is singular at every "
                        "tried value; check for collinear or constant predictors")
    sys = obj.system
    ldz, _, r2 = sys.logdets()
    n, p = obj.n, obj.p
    sigma = math.sqrt(r2 / ((n - p) if reml else n))
    beta, u = sys.solve()
    rx_inv = tri_inv(sys.fixed_block())
    vcov = sigma ** 2 * (rx_inv.T @ rx_inv)
    lambdas = theta_to_lambdas(design.terms, theta)
    bs = u_to_b(design.terms, theta, u)
    lazy = LmmDeferred(design, theta, sigma, reml, objective=obj)
    b_sd = Deferred(lazy.conditional_sds)
    eta, eta_fixed = linear_predictors(beta, bs) if linear_predictors else (np.zeros(0), np.zeros(0))
    # deviance as lme4 reports it: -2 ML log-likelihood (at the REML estimates for a REML fit)
    ml_dev = ldz + n * (1.0 + LOG_2PI + math.log(r2 / n)) - obj.log_w
    messages = []
    singular = _is_singular(design, theta)
    if singular:
        messages.append("boundary (singular) fit: a variance component is estimated as zero or a "
                        "correlation as +-1; consider simplifying the random effects")
        warnings.warn(messages[-1], SingularFitWarning, stacklevel=4)
    checks = list(getattr(opt, "checks", []))
    if not opt.converged:
        messages.append(f"optimizer did not converge ({opt.message}) after {opt.evaluations} evaluations; "
                        "try rescaling predictors, simplifying the random effects, or control={'maxiter': ...}")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=4)
    if checks:
        messages.append("model failed to converge at the reported estimates: " + "; ".join(checks)
                        + "; try another optimizer, rescaling predictors or simplifying the random effects")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=4)
    converged = bool(opt.converged and not checks)

    return RawFit(
        kind="lmm", design=design, coef_names=list(design.x_names), coef=beta, vcov=vcov,
        theta=theta, lambdas=lambdas, re_scale=sigma, sigma=sigma, b=bs, b_sd=b_sd,
        eta=eta, eta_fixed=eta_fixed, loglik=-dev / 2.0, deviance=ml_dev, n_params=p + design.n_theta + 1,
        family="gaussian", link="identity", method="REML" if reml else "ML",
        converged=converged, singular=singular, iterations=opt.evaluations,
        reml_crit=dev if reml else None, df=Deferred(lazy.satterthwaite), messages=messages,
        extra={"optimizer": opt.message, "objective": obj, **(extra or {})},
    )


def tri_inv(L) -> np.ndarray:
    """Inverse of a lower-triangular matrix (LAPACK dtrtri)."""
    if L.shape[0] == 0:
        return L.copy()
    inv, info = dtrtri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("singular triangular factor")
    return np.tril(inv)


def _is_singular(design, theta) -> bool:
    """True when a diagonal element of a relative factor (a parameter with bound 0) is below SINGULAR_TOL."""
    lower = design.theta_lower_bounds().tolist()
    return any(t < SINGULAR_TOL for t, lo in zip(np.asarray(theta, dtype=float).tolist(), lower) if lo == 0.0)
