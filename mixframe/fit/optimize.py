"""Bound-constrained derivative-free minimisation (BOBYQA through nlopt) with a fit log."""
from __future__ import annotations

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

    def objective(x, grad):
        bar.update(1)
        val = float(fun(x))
        if not np.isfinite(val):
            val = 1e300
        if val < best[0]:
            best[0], best[1] = val, x.copy()
        if ctl["verbose"]:
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


def minimize_with_gradient(fun_grad, x0, lower, control: dict | None = None, desc: str = "fitting") -> OptSummary:
    """Minimise with an analytic gradient (L-BFGS-B, lower bounds) where each evaluation is expensive.

    ``fun_grad(x)`` returns ``(f, g)``. Tolerances: ``ftol_rel`` on the relative decrease and a projected
    gradient of at most 1e-6 per unit of the objective's scale.
    """
    from scipy.optimize import minimize

    from ..progress import progress_bar, progress_enabled

    ctl = control_settings(control)
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    count = [0]
    with progress_bar(total=None, desc=desc, enabled=progress_enabled(control)) as bar:
        def wrapped(x):
            bar.update(1)
            count[0] += 1
            f, g = fun_grad(x)
            if not np.isfinite(f):
                return 1e300, np.zeros_like(x)
            return f, g

        res = minimize(wrapped, np.maximum(x0, lower), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": int(ctl["maxiter"]), "ftol": max(ctl["ftol_rel"], 1e-15),
                                "gtol": 1e-7, "maxcor": 20})
    return OptSummary(x0=x0, x=np.asarray(res.x, dtype=float), fmin=float(res.fun), evaluations=count[0],
                      return_code=int(res.status), message=str(res.message), converged=bool(res.success))
