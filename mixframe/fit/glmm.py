"""Fitting generalized linear mixed models: Laplace, adaptive Gauss-Hermite quadrature and the PIRLS-only mode.

The optimisation follows lme4's two stages. Stage 1 optimises the covariance parameters theta with beta and u
both from penalized IRLS (the ``nagq=0`` fit). Stage 2 optimises (theta, beta) jointly, PIRLS over u only,
with the Laplace deviance (``nagq=1``) or the adaptive Gauss-Hermite deviance (``nagq>1``, one scalar term).
Families with a dispersion parameter (negative binomial, gamma, inverse Gaussian, gaussian with a non-identity
link) add its logarithm to stage 2 and use the exact (observed-information) Laplace approximation, as glmmTMB
does. Standard errors come from a finite-difference Hessian of the stage-2 deviance over all parameters.

For the common case of a canonical link without a dispersion parameter (binomial logit, Poisson log) and scalar
random-effect terms, the Laplace deviance has an analytic gradient (mixframe.fit.glmm_grad); the fit is then one
trust-region quasi-Newton search over (theta, beta) from the GLM start, and its last Hessian — central
differences of the analytic gradient — gives the standard errors. Stage 1 is not needed on that path.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..design.terms import theta_to_lambdas, u_to_b
from ..errors import ConvergenceWarning, SingularFitWarning
from ..families import Family, get_family
from ..laplace.modes import conditional_sds
from ..numerics.quadrature import gauss_hermite
from .boundary import snap_to_bounds
from .convergence import SEPARATION_MESSAGE, convergence_failures, separated
from .checks import check_random_effect_sizes
from .glmm_grad import gradient_available, laplace_gradient, mode_sensitivity
from .glmm_laplace import GLMMObjective, PirlsError
from ..numerics.fdiff import hessian as hessian_fd
from ..numerics.fdiff import jacobian
from .glmm_opt import glm_start, initial_dispersion
from .result import RawFit

#: the gradient path stops when the Newton decrement g'H^{-1}g (twice the predicted decrease) is below this
NEWTON_DECREMENT_TOL = 1e-9


def _control(control) -> dict:
    c = {"maxeval": 100000, "xtol_rel": 1e-12, "ftol_rel": 1e-15, "ftol_abs": 1e-14, "xtol_abs": 1e-12,
         "pirls_tol": 1e-14, "hessian_step": 1e-4, "calc_hessian": True, "verbose": False}
    if control:
        c.update({k: v for k, v in dict(control).items() if v is not None})
        if "maxiter" in c:
            c["maxeval"] = int(c["maxiter"])
        if "tol" in c:
            c["ftol_rel"] = float(c["tol"])
    return c


def _bobyqa(f, x0, lower, step, ctl):
    """BOBYQA (:func:`mixframe.numerics.optim.bobyqa`) under the GLMM settings, with a progress bar."""
    from ..numerics.optim import bobyqa
    from ..progress import progress_bar, progress_enabled

    with progress_bar(total=None, desc=ctl.get("desc", "GLMM"), enabled=progress_enabled(ctl)) as bar:
        return bobyqa(f, x0, lower, step=step, ftol_rel=ctl["ftol_rel"], ftol_abs=ctl["ftol_abs"],
                      xtol_rel=ctl["xtol_rel"], xtol_abs=ctl["xtol_abs"], max_evals=int(ctl["maxeval"]),
                      progress=bar.update)


def fit_glmm(design, family="binomial", link=None, nagq: int = 1, control=None) -> RawFit:
    """Fit a GLMM by maximum (approximate marginal) likelihood.

    Parameters
    ----------
    design : Design
        The model design (response as float; binomial: proportion with the trials as weights).
    family : str or Family
        Family name (``"binomial"``, ``"poisson"``, ``"gamma"``, ``"inverse_gaussian"``,
        ``"negative_binomial"``, ``"gaussian"``) or a Family object.
    link : str or None
        Link name; None takes the canonical one.
    nagq : int
        0: PIRLS-only fit (stage 1); 1: Laplace; > 1: adaptive Gauss-Hermite with that many nodes (one scalar
        random-effect term only).
    control : dict or None
        ``maxeval``/``maxiter``, ``ftol_rel``/``tol``, ``xtol_rel``, ``pirls_tol``, ``calc_hessian``.

    Returns
    -------
    RawFit

    Raises
    ------
    ValueError
        Unknown family or link, or ``nagq > 1`` with anything but one scalar random-effect term.
    mixframe.errors.DataError
        A response the family cannot have.

    Examples
    --------
    >>> from mixframe.datasets import cbpp
    >>> from mixframe.design.build import build_design
    >>> design = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp(),
    ...                       kind="glmm", family="binomial")
    >>> raw = fit_glmm(design, "binomial")
    >>> round(raw.loglik, 3), raw.method
    (-92.026, 'Laplace')
    """
    fam = family if isinstance(family, Family) and link is None else get_family(family, link)
    nagq = int(nagq)
    if nagq < 0:
        raise ValueError(f"nagq must be 0, 1 or a larger number of quadrature nodes; got {nagq}")
    if not design.terms:
        raise ValueError("a GLMM needs at least one random-effect term")
    if nagq > 1 and (len(design.terms) != 1 or design.terms[0].k != 1):
        raise ValueError("adaptive Gauss-Hermite quadrature (nagq > 1) needs exactly one scalar random-effect term "
                         "such as (1 | g); this model has " + ", ".join(f"({' + '.join(t.col_names)} | {t.group})"
                                                                       for t in design.terms)
                         + ". Use nagq=1 (Laplace).")
    fam.validate_response(design.y, design.weights, design.response or "response")
    check_random_effect_sizes(design, "glmm")
    ctl = _control(control)
    messages: list[str] = []
    disp_free = fam.has_dispersion
    obj = GLMMObjective(design, fam, obs_info=disp_free, tol=ctl["pirls_tol"])
    # small dense blocks: every BLAS call of the fit (starting values, factors, Hessians) on one thread
    with obj.sys_u.blas_context():
        return _fit(obj, fam, design, nagq, ctl, messages, disp_free)


def _fit(obj, fam, design, nagq, ctl, messages, disp_free) -> RawFit:
    n_theta = design.n_theta
    p = design.p

    beta0 = glm_start(obj)
    disp0 = initial_dispersion(obj, beta0) if disp_free else 1.0
    theta0 = design.theta_start()
    lower_theta = design.theta_lower_bounds()
    n_evals = 0

    if nagq == 1 and gradient_available(obj):
        return _fit_with_gradient(obj, fam, design, beta0, theta0, ctl)

    # ---- stage 1: theta (and the log dispersion), beta and u from PIRLS -------------------------
    cache = {"beta": beta0.copy()}

    def f1(x):
        dp = float(np.exp(x[-1])) if disp_free else 1.0
        try:
            dev, st = obj.stage1(x[:n_theta], cache["beta"], dp)
        except PirlsError:
            return math.inf
        cache["beta"] = st["beta"].copy()
        return dev

    x1 = np.concatenate([theta0] + ([[np.log(disp0)]] if disp_free else []))
    lower1 = np.concatenate([lower_theta] + ([[-np.inf]] if disp_free else []))
    # stage 1 only provides the start of stage 2: a looser tolerance saves evaluations, not accuracy
    ctl1 = dict(ctl, ftol_rel=max(ctl["ftol_rel"], 1e-8), xtol_rel=max(ctl["xtol_rel"], 1e-6),
                ftol_abs=max(ctl["ftol_abs"], 1e-6), xtol_abs=max(ctl["xtol_abs"], 1e-6))
    res1 = _bobyqa(f1, x1, lower1, np.full(len(x1), 0.1), ctl1)
    x1 = res1.x
    diag = np.flatnonzero(np.isfinite(lower_theta))
    if nagq == 0:   # the PIRLS-only answer: a variance the criterion cannot tell from 0 is 0
        x1 = snap_to_bounds(f1, x1, diag)[0]
    n_evals += res1.evaluations
    th1 = x1[:n_theta]
    disp0 = float(np.exp(x1[-1])) if disp_free else 1.0
    _, st1 = obj.stage1(th1, cache["beta"], disp0)
    beta1 = st1["beta"].copy()
    conv = res1.converged

    nodes = weights = None
    if nagq == 0:
        x_opt, method = np.concatenate([th1, beta1] + ([[np.log(disp0)]] if disp_free else [])), "PIRLS (nAGQ=0)"
        dev_fun = None
    else:
        # ---- stage 2: (theta, beta[, log dispersion]) jointly ------------------------------------
        if nagq > 1:
            nodes, weights = gauss_hermite(nagq)

        def dev_fun(x):
            th, be = x[:n_theta], x[n_theta:n_theta + p]
            dp = float(np.exp(x[-1])) if disp_free else 1.0
            if nagq > 1:
                return obj.agq(th, be, nodes, weights, dp)[0]
            return obj.laplace(th, be, dp)[0]

        def f2(x):
            try:
                return dev_fun(x)
            except PirlsError:
                return math.inf

        x0 = np.concatenate([th1, beta1] + ([[np.log(disp0)]] if disp_free else []))
        se1 = _fixed_se(obj)
        step = np.concatenate([np.full(n_theta, 0.05), np.where(np.isfinite(se1), 0.5 * se1, 0.1)]
                              + ([[0.1]] if disp_free else []))
        lower = np.concatenate([lower_theta, np.full(p + disp_free, -np.inf)])
        res2 = _bobyqa(f2, x0, lower, step, ctl)
        x_opt = snap_to_bounds(f2, res2.x, diag)[0]
        n_evals += res2.evaluations
        conv = conv and res2.converged
        if not res2.converged:
            messages.append(f"optimizer (BOBYQA) stopped: {res2.message}")
        method = "Laplace" if nagq <= 1 else f"AGQ({nagq})"

    return _finish(obj, fam, design, x_opt, dev_fun, nagq, method, disp_free, conv, n_evals, messages, ctl,
                   nodes, weights)


def _fit_with_gradient(obj, fam, design, beta0, theta0, ctl) -> RawFit:
    """Laplace fit with the analytic gradient (canonical link, scalar terms): a trust-region quasi-Newton
    search over (theta, beta) from the GLM start, whose final finite-difference Hessian (of the gradient)
    gives the standard errors."""
    n_theta, p = design.n_theta, design.p

    last = {}          # the latest full evaluation: point, mode and the mode's sensitivity there

    def evaluate(x, anchor):
        th, be = x[:n_theta], x[n_theta:]
        if last:
            # start PIRLS from the first-order prediction of the mode at x, unless the step is so long that the
            # linearisation is not to be trusted (a change of more than one standard deviation in some u)
            du = (x - last["x"]) @ last["J"]
            obj.u = last["u"] + du if np.max(np.abs(du), initial=0.0) < 1.0 else last["u"]
        try:
            dev, st = obj.laplace(th, be)
            g = laplace_gradient(obj, th, be, st)
            if anchor:
                last.update(x=np.array(x, dtype=float), u=st["u"].copy(), J=mode_sensitivity(obj))
            return dev, g
        except (PirlsError, np.linalg.LinAlgError):
            if anchor:
                last.clear()
            return np.inf, np.zeros(len(x))

    def fun_grad(x):
        return evaluate(x, True)

    def probe(x):
        # finite-difference points of the Hessian: predicted from the iterate, which stays the anchor
        return evaluate(x, False)[1]

    def dev_fun(x):
        return obj.laplace(x[:n_theta], x[n_theta:])[0]

    from ..numerics.fdiff import hessian_from_gradient
    from ..numerics.optim import trust_region
    from ..progress import progress_bar, progress_enabled

    # Each scalar term's deviance is even in its theta (u -> -u), so the search runs unconstrained and reports
    # |theta|: a variance at 0 is a stationary point, which a bound would turn into a false stop.
    #
    # Quasi-Newton from the forward-difference Hessian of the gradient at the start (step ``hessian_step``),
    # in the trust-region norm scaled by the square roots of that Hessian's diagonal; convergence only under a
    # freshly differenced Hessian (steps ``hessian_step`` in the scaled coordinates, so every parameter moves
    # by the same fraction of its curvature scale), which is returned for the standard errors.
    x0 = np.concatenate([theta0, beta0])
    h = ctl["hessian_step"]
    count = [0]
    with progress_bar(total=None, desc=ctl.get("desc", "GLMM"), enabled=progress_enabled(ctl)) as bar:
        def counted(x):
            bar.update(1)
            return fun_grad(x)

        def counted_probe(x):
            bar.update(1)
            count[0] += 1
            return probe(x)

        f0, g0 = counted(x0)
        H0 = hessian_from_gradient(counted_probe, x0, h, g0=g0)
        curv = np.abs(np.diag(H0))
        dscale = np.sqrt(np.maximum(curv, 1e-8 * max(float(np.max(curv)), 1e-300)))
        res = trust_region(counted, x0, hess0=H0, scale=dscale, start=(f0, g0),
                           refresh=lambda z, gz: hessian_from_gradient(counted_probe, z, h / dscale, g0=gz),
                           radius=2.0 * math.sqrt(x0.size), ftol_abs=0.5 * NEWTON_DECREMENT_TOL, ftol_rel=0.0,
                           xtol_abs=1e-12, xtol_rel=0.0, max_evals=int(min(ctl["maxeval"], 1000)))
    x, H, conv = res.x, res.hessian, res.converged
    n_evals = 1 + res.evaluations + count[0]
    flip = np.concatenate([np.where(x[:n_theta] < 0, -1.0, 1.0), np.ones(p)])
    x, H = x * flip, H * np.outer(flip, flip)

    def dev_or_inf(z):
        try:
            return dev_fun(z)
        except (PirlsError, np.linalg.LinAlgError):
            return math.inf

    x = snap_to_bounds(dev_or_inf, x, np.flatnonzero(np.isfinite(design.theta_lower_bounds())))[0]
    messages = [] if conv else ["the quasi-Newton search did not converge"]
    return _finish(obj, fam, design, x, dev_fun, 1, "Laplace", False, conv, n_evals, messages, ctl, None, None,
                   hessian=H if ctl["calc_hessian"] else None, stacklevel=5,
                   gradient=None if res.gradient is None else res.gradient * flip)


def _fixed_se(obj) -> np.ndarray:
    """SEs of beta from the fixed-effects block of the current joint factor (stage 1)."""
    try:
        L = obj.sys_j.fixed_block()
        Linv = np.linalg.inv(L)
        return np.sqrt(np.sum(Linv * Linv, axis=0))
    except np.linalg.LinAlgError:
        return np.full(obj.p, np.nan)


def _finish(obj, fam, design, x, dev_fun, nagq, method, disp_free, conv, n_evals, messages, ctl, nodes, weights,
            hessian=None, stacklevel=4, gradient=None):
    n_theta, p = design.n_theta, design.p
    theta, beta = np.asarray(x[:n_theta], float), np.asarray(x[n_theta:n_theta + p], float)
    disp = float(np.exp(x[-1])) if disp_free and len(x) > n_theta + p else 1.0
    if nagq > 1:
        dev, st = obj.agq(theta, beta, nodes, weights, disp)
        obj.refactor(theta, st, disp, observed=False)
    else:
        dev, st = obj.laplace(theta, beta, disp)
    # conditional modes and SDs from the factor at the mode
    lams = theta_to_lambdas(design.terms, theta)
    b = u_to_b(design.terms, theta, st["u"])
    b_sd = conditional_sds(design.terms, theta, obj.sys_u.cond_cov_u())
    eta = st["eta"]
    eta_fixed = obj.off + design.X @ beta
    mu = st["mu"]
    # covariance of the fixed effects
    vcov = cov_all = None
    if dev_fun is not None and ctl["calc_hessian"]:
        if hessian is not None:
            H = hessian
        else:
            gradient, H = _hessian_near_edge(dev_fun, np.asarray(x, float), ctl["hessian_step"])
        if gradient is not None:
            lower_all = np.concatenate([design.theta_lower_bounds(), np.full(len(x) - n_theta, -np.inf)])
            free = ~(np.isfinite(lower_all) & (np.asarray(x, float) <= lower_all))
            checks = convergence_failures(gradient, H, free)
            if checks:
                messages.append("model failed to converge at the reported estimates: " + "; ".join(checks))
        try:
            cov_all = 2.0 * np.linalg.inv(H)
            V = cov_all[n_theta:n_theta + p, n_theta:n_theta + p]
            V = 0.5 * (V + V.T)
            if np.all(np.isfinite(V)) and np.all(np.linalg.eigvalsh(V) > 0):
                vcov = V
        except np.linalg.LinAlgError:
            pass
        if vcov is None:
            messages.append("finite-difference Hessian not positive definite; standard errors from the "
                            "conditional fixed-effects information instead")
    if vcov is None:
        vcov = _vcov_rx(obj, theta, beta, disp)
    elif disp_free and nagq == 1:
        try:
            b_sd = _add_parameter_uncertainty(obj, design, np.asarray(x, float), cov_all, b_sd, st["u"],
                                              ctl["hessian_step"])
        except PirlsError:     # a difference point outside the family's range: the conditional SDs only
            obj.pirls_u(theta, beta, disp, u0=st["u"])
    n_params = p + n_theta + (1 if disp_free else 0)
    loglik = -0.5 * dev
    if disp_free:
        deviance = -2.0 * loglik
    else:
        deviance = float(np.sum(fam.dev_resid(obj.y, mu, obj.wt, disp)))
    sigma = disp if disp_free else None
    singular = bool(np.any(theta[design.theta_lower_bounds() == 0] < 1e-4))
    extra = {"family_obj": fam, "glance_extra": {}}
    if fam.name in ("binomial", "poisson"):
        pearson = (obj.y - mu) ** 2 * obj.wt / fam.variance(mu, disp)
        extra["glance_extra"]["pearson_dispersion"] = float(np.sum(pearson) / max(obj.n - n_params, 1))
    _check_separation(fam, beta, vcov, mu, obj, messages)
    if obj.n_pirls_fail:
        messages.append(f"penalized IRLS reached its iteration limit at {obj.n_pirls_fail} parameter values")
    if not conv:
        messages.append("the optimizer did not report convergence")
    for m in messages:
        warnings.warn(f"{m}; consider rescaling continuous predictors, simplifying the random-effects structure "
                      "or increasing control['maxeval']", ConvergenceWarning, stacklevel=stacklevel)
    if singular:
        warnings.warn("boundary (singular) fit: a variance component is estimated as zero or a correlation as "
                      "+-1; consider simplifying the random effects", SingularFitWarning, stacklevel=stacklevel)
    return RawFit(
        kind="glmm", design=design, coef_names=list(design.x_names), coef=beta, vcov=vcov, theta=theta,
        lambdas=lams, re_scale=1.0, sigma=sigma, b=b, b_sd=b_sd, eta=eta, eta_fixed=eta_fixed,
        loglik=float(loglik), deviance=float(deviance), n_params=int(n_params), family=fam.name, link=fam.link,
        method=method, converged=bool(conv and not messages), singular=singular, iterations=int(n_evals),
        messages=list(messages), extra=extra)


def _hessian_near_edge(dev_fun, x, step):
    """Central-difference gradient and Hessian of the deviance at ``x``, with smaller steps where a
    difference point leaves the family's valid range (an inverse Gaussian or gamma fit whose linear
    predictor is close to 0 under the inverse-type link): a step ten times smaller, up to three times; NaN
    when none fits (the standard errors then come from the conditional information)."""
    for k in range(4):
        try:
            _, g, H = hessian_fd(dev_fun, x, step * 0.1 ** k)
            return g, H
        except PirlsError:
            continue
    return np.full(x.size, np.nan), np.full((x.size, x.size), np.nan)


def _add_parameter_uncertainty(obj, design, x, cov_all, b_sd, u_hat, h):
    """Conditional SDs of the random effects including the uncertainty of the estimated parameters.

    As glmmTMB reports them: Var(b) = H_bb^{-1} + J Cov(x) J' with J = d b_hat / d x, the sensitivity of the
    conditional modes to the parameters (central differences), and Cov(x) from the deviance Hessian.
    """
    n_theta, p = design.n_theta, design.p
    disp_of = (lambda z: float(np.exp(z[-1]))) if len(x) > n_theta + p else (lambda z: 1.0)

    def modes(z):
        st = obj.pirls_u(z[:n_theta], z[n_theta:n_theta + p], disp_of(z), u0=u_hat)
        return np.concatenate([bt.ravel() for bt in u_to_b(design.terms, z[:n_theta], st["u"])])

    J = jacobian(modes, x, h)
    extra = np.einsum("ij,jk,ik->i", J, cov_all, J)
    obj.pirls_u(x[:n_theta], x[n_theta:n_theta + p], disp_of(x), u0=u_hat)
    out, pos = [], 0
    for t, sd in zip(design.terms, b_sd):
        add = np.maximum(extra[pos:pos + t.q], 0.0).reshape(t.n_levels, t.k)
        out.append(np.sqrt(sd ** 2 + add))
        pos += t.q
    return out


def _vcov_rx(obj, theta, beta, disp):
    """Covariance of beta from the fixed-effects block of the joint penalized system at the mode."""
    st = obj.pirls_u(theta, beta, disp)
    E = obj._E
    E[:, obj.p] = st["eta"] - obj.off + st["r"]
    obj.sys_j.crossprod(E, st["w"])
    obj.sys_j.factor(theta)
    L = obj.sys_j.fixed_block()
    Linv = np.linalg.inv(L)
    return Linv.T @ Linv


def _check_separation(fam, beta, vcov, mu, obj, messages):
    se = np.sqrt(np.abs(np.diag(vcov)))
    if fam.name == "binomial":
        if separated(beta, se, mu):
            messages.append(SEPARATION_MESSAGE)
    elif np.any(np.abs(beta) > 50) or np.any(se > 1e4):
        messages.append("very large coefficients or standard errors")
