"""Bound-constrained minimisation with a fit log: derivative-free BOBYQA through nlopt, and a trust-region
(quasi-)Newton method for a few parameters with analytic derivatives."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import nlopt
import numpy as np

DEFAULTS = {
    "optimizer": "bobyqa",
    "maxiter": 100_000,
    "ftol_rel": 1e-13,
    "ftol_abs": 1e-11,
    "xtol_rel": 1e-10,
    "xtol_abs": 1e-10,
    "initial_step": None,
    "verbose": False,
}

_ALGORITHMS = {
    "bobyqa": nlopt.LN_BOBYQA,
    "neldermead": nlopt.LN_NELDERMEAD,
    "cobyla": nlopt.LN_COBYLA,
    "sbplx": nlopt.LN_SBPLX,
}


def control_settings(control: dict | None) -> dict:
    """Merge a user's ``control`` dict with the defaults; unknown keys are an error naming them."""
    out = dict(DEFAULTS)
    if control:
        unknown = sorted(set(control) - set(DEFAULTS) - {"tol", "progress", "batch_size"})
        if unknown:
            raise ValueError(f"unknown control option(s) {unknown}; known: {sorted(DEFAULTS)}")
        out.update({k: v for k, v in control.items() if k in DEFAULTS or k == "tol"})
        if "tol" in control:
            out["ftol_rel"] = out["xtol_rel"] = float(control["tol"])
    if out["optimizer"] not in _ALGORITHMS:
        raise ValueError(f"control optimizer {out['optimizer']!r} is not one of {sorted(_ALGORITHMS)}")
    return out


@dataclass
class OptSummary:
    """What the optimizer did: start, result, evaluations, and its return code."""

    x0: np.ndarray
    x: np.ndarray
    fmin: float
    evaluations: int
    return_code: int
    message: str
    converged: bool
    trace: list = field(default_factory=list)


_MESSAGES = {
    nlopt.SUCCESS: "success",
    nlopt.STOPVAL_REACHED: "stopping value reached",
    nlopt.FTOL_REACHED: "function tolerance reached",
    nlopt.XTOL_REACHED: "parameter tolerance reached",
    nlopt.MAXEVAL_REACHED: "maximum number of evaluations reached",
    nlopt.MAXTIME_REACHED: "maximum time reached",
}


def minimize_bounded(fun, x0, lower, upper=None, control: dict | None = None, desc: str = "fitting") -> OptSummary:
    """Minimise ``fun(x)`` from ``x0`` subject to ``lower <= x <= upper``.

    Non-finite objective values are treated as a large penalty so the optimizer backs off. A progress bar
    counts the evaluations of long fits (``control={"progress": True/False}``; automatic by default).
    """
    from ..progress import progress_bar, progress_enabled

    with progress_bar(total=None, desc=desc, enabled=progress_enabled(control)) as bar:
        return _minimize(fun, x0, lower, upper, control, bar)


def _minimize(fun, x0, lower, upper, control, bar) -> OptSummary:
    ctl = control_settings(control)
    x0 = np.asarray(x0, dtype=float)
    n = x0.size
    lower = np.asarray(lower, dtype=float)
    upper = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=float)
    trace = []
    best = [np.inf, x0.copy()]
    verbose = bool(ctl["verbose"])
    tick = bar.update
    isfinite = math.isfinite

    def objective(x, grad):
        tick(1)
        val = float(fun(x))
        if not isfinite(val):
            val = 1e300
        if val < best[0]:
            best[0], best[1] = val, x.copy()
        if verbose:
            trace.append((x.copy(), val))
        return val

    algo = _ALGORITHMS[ctl["optimizer"]]
    if algo == nlopt.LN_BOBYQA and n == 1:
        algo = nlopt.LN_BOBYQA  # nlopt's BOBYQA handles one parameter
    opt = nlopt.opt(algo, n)
    opt.set_min_objective(objective)
    opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
    opt.set_upper_bounds(np.where(np.isfinite(upper), upper, np.inf))
    opt.set_ftol_rel(ctl["ftol_rel"])
    opt.set_ftol_abs(ctl["ftol_abs"])
    opt.set_xtol_rel(ctl["xtol_rel"])
    opt.set_xtol_abs(np.full(n, ctl["xtol_abs"]))
    opt.set_maxeval(int(ctl["maxiter"]))
    if ctl["initial_step"] is not None:
        opt.set_initial_step(np.broadcast_to(np.asarray(ctl["initial_step"], dtype=float), (n,)).copy())
    x_start = np.clip(x0, np.where(np.isfinite(lower), lower, -np.inf), upper)
    code = None
    try:
        x = opt.optimize(x_start)
        fmin = opt.last_optimum_value()
        code = opt.last_optimize_result()
    except (nlopt.RoundoffLimited, RuntimeError) as err:  # keep the best point seen
        x, fmin = best[1], best[0]
        code = -4
        msg = f"optimizer stopped early ({type(err).__name__}); best point kept"
    else:
        msg = _MESSAGES.get(code, f"nlopt code {code}")
    converged = code is not None and code > 0 and code != nlopt.MAXEVAL_REACHED and code != nlopt.MAXTIME_REACHED
    if code == -4:
        converged = np.isfinite(fmin) and fmin < 1e299
    return OptSummary(x0=x0, x=np.asarray(x, dtype=float), fmin=float(fmin),
                      evaluations=int(opt.get_numevals()), return_code=int(code), message=msg,
                      converged=bool(converged), trace=trace)


def _trust_step(B, g, radius):
    """The minimiser of g'd + d'Bd/2 over ||d|| <= radius for a small symmetric B, positive definite or not
    (Moré and Sorensen: d = -(B + mu I)^{-1} g with mu >= max(0, -lambda_min), on the boundary unless the
    Newton step fits; in the "hard case" the boundary is reached along the lowest eigenvector)."""
    w, V = np.linalg.eigh(B)
    gt = V.T @ g
    scale = max(float(np.max(np.abs(w))), 1e-300)
    if w[0] > 1e-12 * scale:
        d = -gt / w
        if np.linalg.norm(d) <= radius:
            return V @ d
        mu = 0.0
    else:
        mu = -w[0] + 1e-10 * scale
        d = -gt / (w + mu)
        nd = np.linalg.norm(d)
        if nd < radius:                 # hard case: complete the step along the lowest eigenvector
            d[0] += -math.copysign(math.sqrt(radius * radius - nd * nd), gt[0] if gt[0] != 0.0 else 1.0)
            return V @ d
    # ||d(mu)|| = radius by Newton's method on 1/||d(mu)|| = 1/radius (concave in mu: it climbs monotonically
    # from a mu where the step is too long)
    for _ in range(100):
        d = -gt / (w + mu)
        nd = np.linalg.norm(d)
        if abs(nd - radius) <= 1e-6 * radius:
            break
        slope = np.sum(gt * gt / (w + mu) ** 3) / nd      # -d||d||/dmu
        mu += (nd - radius) / radius * nd / slope
    return V @ (-gt / (w + mu))


def _bfgs_update(B, s, y):
    """Powell-damped BFGS update of the Hessian model B with the step s and the gradient change y."""
    Bs = B @ s
    sBs = float(s @ Bs)
    if sBs <= 0.0:
        return B
    sy = float(s @ y)
    if sy < 0.2 * sBs:                 # damping keeps B positive definite
        phi = 0.8 * sBs / (sBs - sy)
        y = phi * y + (1.0 - phi) * Bs
        sy = float(s @ y)
    B = B - np.outer(Bs, Bs) / sBs + np.outer(y, y) / sy
    return 0.5 * (B + B.T)


def minimize_trust_region(fun, derivs, x0, lower, hess0=None, control: dict | None = None,
                          desc: str = "fitting") -> OptSummary:
    """Minimise a smooth function of a few parameters subject to lower bounds, with analytic derivatives.

    ``derivs(x)`` returns the gradient, or ``(gradient, Hessian)``: a trust-region Newton method with the
    exact Hessian (indefinite ones included), else a quasi-Newton method whose Hessian model starts from
    ``hess0`` (the diagonal of an approximate Hessian; a good one makes the first steps Newton steps) and
    takes damped BFGS updates. Each step minimises the model over the free variables (those not held at a
    bound by the gradient) within the trust radius and is projected onto the bounds. A trial point costs one
    ``fun(x)``; ``derivs(x)`` is called only at accepted points, after ``fun`` at the same x (so it can reuse
    that work). Stops when the model predicts a decrease below a tenth of ``ftol_abs`` or a hundredth of
    ``ftol_rel`` relative to |f| (stricter than :func:`minimize_bounded`, which stops on realised decreases,
    because a quasi-Newton model underestimates what is left), or when the step falls below ``xtol_rel``
    relative to |x| plus ``xtol_abs``.
    """
    from ..progress import progress_bar, progress_enabled

    ctl = control_settings(control)
    lower = np.asarray(lower, dtype=float)
    lo = np.where(np.isfinite(lower), lower, -np.inf)
    x = np.maximum(np.asarray(x0, dtype=float), lo)
    n = x.size
    max_evals = int(ctl["maxiter"])
    with progress_bar(total=None, desc=desc, enabled=progress_enabled(control)) as bar:
        f = float(fun(x))
        evals = 1
        bar.update(1)
        if not np.isfinite(f):
            return OptSummary(x0=np.asarray(x0, dtype=float), x=x, fmin=f, evaluations=evals, return_code=-1,
                              message="objective not finite at the start", converged=False)
        g, B = _derivatives(derivs, x)
        exact = B is not None
        if not exact:
            if hess0 is not None and np.all(np.isfinite(hess0)) and np.all(np.asarray(hess0) > 0):
                B = np.diag(np.asarray(hess0, dtype=float))
            else:
                B = np.eye(n) * max(float(np.max(np.abs(g))), 1.0)
        radius = max(float(np.linalg.norm(x)), 1.0)
        code, message = 0, "maximum number of evaluations reached"
        while evals < max_evals:
            free = ~((x <= lo) & (g >= 0.0))
            d = np.zeros(n)
            if np.any(free):
                d[free] = _trust_step(B[np.ix_(free, free)], g[free], radius)
            # convergence on the model's decrease over the free variables; the step itself is projected
            if -float(g @ d + 0.5 * d @ B @ d) <= max(0.1 * ctl["ftol_abs"], 0.01 * ctl["ftol_rel"] * abs(f)):
                code, message = 1, "predicted decrease below tolerance"
                break
            xt = np.maximum(x + d, lo)
            d = xt - x
            pred = -float(g @ d + 0.5 * d @ B @ d)
            step = float(np.linalg.norm(d))
            if step <= ctl["xtol_rel"] * float(np.linalg.norm(x)) + ctl["xtol_abs"]:
                code, message = 2, "step below tolerance"
                break
            ft = float(fun(xt))
            evals += 1
            bar.update(1)
            if np.isfinite(ft) and ft < f:
                gt, Bt = _derivatives(derivs, xt)
                B = Bt if exact else _bfgs_update(B, d, gt - g)
                ratio = (f - ft) / pred if pred > 0.0 else 1.0     # a projected step may beat its model
                if ratio > 0.75:
                    radius = max(radius, 2.0 * step)
                elif ratio < 0.25:
                    radius = 0.5 * step
                x, f, g = xt, ft, gt
            else:
                radius = 0.25 * step
        converged = code > 0
    return OptSummary(x0=np.asarray(x0, dtype=float), x=x, fmin=f, evaluations=evals, return_code=code,
                      message=message, converged=converged)


def _derivatives(derivs, x):
    """(gradient, Hessian or None) from a derivs(x) that returns either."""
    out = derivs(x)
    if isinstance(out, tuple):
        return np.asarray(out[0], dtype=float), np.asarray(out[1], dtype=float)
    return np.asarray(out, dtype=float), None
