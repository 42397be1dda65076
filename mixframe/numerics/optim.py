"""Bound-constrained minimisation of functions of a few parameters.

* :func:`bobyqa` — derivative-free BOBYQA (or another nlopt algorithm) through nlopt;
* :func:`trust_region` — a trust-region Newton method on an exact Hessian, or quasi-Newton on damped BFGS
  updates, with lower bounds; its subproblem is solved by :func:`trust_step`;
* :func:`lbfgs` — scipy's L-BFGS-B on an analytic gradient;
* :func:`minimize_1d` — golden-section search on a bracket.

Each returns an :class:`OptResult` whose ``status`` is one of the module's status constants (see
:data:`STATUS_MESSAGES`); ``converged`` is true exactly for the statuses in :data:`CONVERGED`.

Rules shared by every method:

* a non-finite objective value is a failed point: nlopt is shown :func:`penalty` of it (far above every value
  of the objective), the trust-region methods reject the step and shrink the radius; the best finite point
  is what is returned;
* nlopt's ``RoundoffLimited`` means the best point is as good as floating point allows: status
  :data:`ROUNDOFF`, converged, the best point kept;
* a one-parameter problem is solved like any other (nlopt's BOBYQA handles one parameter);
  :func:`minimize_1d` is for searches on a known bracket.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._ext import trust_region as _tr

__all__ = ["CONVERGED", "FAILED", "FTOL", "GTOL", "MAXEVAL", "MAXTIME", "NOT_FINITE", "ROUNDOFF", "STATUS_MESSAGES",
           "SUCCESS", "XTOL", "OptResult", "bfgs_update", "bobyqa", "lbfgs", "minimize_1d", "penalty",
           "trust_region", "trust_step"]

# ---------------------------------------------------------------------------------------------- statuses
SUCCESS = "success"          #: the method's own success criterion
FTOL = "ftol"                #: the (predicted or realised) decrease fell below the function tolerance
XTOL = "xtol"                #: the step fell below the parameter tolerance
GTOL = "gtol"                #: the gradient fell below its tolerance
ROUNDOFF = "roundoff"        #: no further progress is possible in floating point; the best point kept
MAXEVAL = "maxeval"          #: the evaluation limit was reached
MAXTIME = "maxtime"          #: the time limit was reached
NOT_FINITE = "not_finite"    #: the objective or its derivatives are not finite at the start
FAILED = "failed"            #: the method failed (an error in the optimizer); the best point kept

STATUS_MESSAGES = {
    SUCCESS: "success",
    FTOL: "function tolerance reached",
    XTOL: "parameter tolerance reached",
    GTOL: "gradient tolerance reached",
    ROUNDOFF: "stopped by roundoff; best point kept",
    MAXEVAL: "maximum number of evaluations reached",
    MAXTIME: "maximum time reached",
    NOT_FINITE: "objective or derivatives not finite at the start",
    FAILED: "optimizer failed; best point kept",
}

#: the statuses that count as convergence
CONVERGED = frozenset({SUCCESS, FTOL, XTOL, GTOL, ROUNDOFF})

#: the least value a failed (non-finite) point is shown as to nlopt
FAILURE_PENALTY = 1e10


@dataclass
class OptResult:
    """What a minimisation did: its start and answer, the evaluations it took, and how it stopped."""

    x: np.ndarray
    fun: float
    evaluations: int
    status: str
    message: str = ""
    x0: np.ndarray | None = None
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    trace: list = field(default_factory=list)

    def __post_init__(self):
        if self.status not in STATUS_MESSAGES:
            raise ValueError(f"unknown optimizer status {self.status!r}; known: {sorted(STATUS_MESSAGES)}")
        if not self.message:
            self.message = STATUS_MESSAGES[self.status]

    @property
    def converged(self) -> bool:
        return self.status in CONVERGED


def penalty(first_value: float) -> float:
    """The value a non-finite point is shown as: ``max(FAILURE_PENALTY, 1e3 |f|)`` for the first finite value
    f of the objective (so it stays far above every value of objectives of any magnitude)."""
    return max(FAILURE_PENALTY, 1e3 * abs(first_value)) if math.isfinite(first_value) else FAILURE_PENALTY


# ---------------------------------------------------------------------------------------------- nlopt
_NLOPT_STATUS = {1: SUCCESS, 2: SUCCESS, 3: FTOL, 4: XTOL, 5: MAXEVAL, 6: MAXTIME}


def bobyqa(fun, x0, lower=None, upper=None, *, step=None, ftol_rel=1e-13, ftol_abs=1e-11, xtol_rel=1e-10,
           xtol_abs=1e-10, max_evals=100_000, algorithm="bobyqa", trace=False, progress=None) -> OptResult:
    """Minimise ``fun(x)`` subject to ``lower <= x <= upper`` by BOBYQA (nlopt), or the nlopt algorithm named.

    Parameters
    ----------
    fun : callable
        Objective of one 1-D float array.
    x0 : array_like
        Start; moved into the bounds.
    lower, upper : array_like or None
        Bounds (infinite entries allowed).
    step : float or array_like, optional
        Initial step per coordinate (nlopt's default when None).
    ftol_rel, ftol_abs, xtol_rel, xtol_abs, max_evals
        nlopt's stopping rules.
    algorithm : {"bobyqa", "neldermead", "cobyla", "sbplx"}
    trace : bool
        Keep every (x, f) evaluated in ``trace``.
    progress : callable, optional
        Called with 1 after each evaluation.

    Examples
    --------
    >>> r = bobyqa(lambda x: (x[0] - 1.0) ** 2 + (x[1] + 2.0) ** 2, [0.0, 0.0], lower=[-np.inf, -1.0])
    >>> np.round(r.x, 6).tolist(), r.converged
    ([1.0, -1.0], True)
    """
    import nlopt

    algorithms = {"bobyqa": nlopt.LN_BOBYQA, "neldermead": nlopt.LN_NELDERMEAD, "cobyla": nlopt.LN_COBYLA,
                  "sbplx": nlopt.LN_SBPLX}
    x0 = np.asarray(x0, dtype=float)
    n = x0.size
    lo = np.full(n, -np.inf) if lower is None else np.where(np.isfinite(lower), lower, -np.inf).astype(float)
    hi = np.full(n, np.inf) if upper is None else np.where(np.isfinite(upper), upper, np.inf).astype(float)
    best = [math.inf, np.clip(x0, lo, hi), math.nan]       # best finite value, its point, the penalty
    history = []
    isfinite = math.isfinite

    def objective(x, grad):
        if progress is not None:
            progress(1)
        val = float(fun(x))
        if trace:
            history.append((x.copy(), val))
        if not isfinite(val):
            if best[2] != best[2]:
                best[2] = penalty(math.nan)
            return best[2]
        if best[2] != best[2]:
            best[2] = penalty(val)
        if val < best[0]:
            best[0], best[1] = val, x.copy()
        return val

    opt = nlopt.opt(algorithms[algorithm], n)
    opt.set_min_objective(objective)
    opt.set_lower_bounds(lo)
    opt.set_upper_bounds(hi)
    opt.set_ftol_rel(ftol_rel)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_rel(xtol_rel)
    opt.set_xtol_abs(np.full(n, xtol_abs))
    opt.set_maxeval(int(max_evals))
    if step is not None:
        opt.set_initial_step(np.broadcast_to(np.asarray(step, dtype=float), (n,)).copy())
    message = ""
    try:
        opt.optimize(best[1].copy())
        status = _NLOPT_STATUS.get(int(opt.last_optimize_result()), FAILED)
    except nlopt.RoundoffLimited:
        status = ROUNDOFF
    except (RuntimeError, ValueError) as err:
        status, message = FAILED, f"optimizer failed ({type(err).__name__}: {err}); best point kept"
    if not isfinite(best[0]):
        status, message = FAILED, "no finite objective value found"
    return OptResult(x=np.asarray(best[1], dtype=float), fun=float(best[0]), evaluations=int(opt.get_numevals()),
                     status=status, message=message, x0=x0, trace=history)


# ---------------------------------------------------------------------------------------------- trust region
def trust_step(H, g, radius, scale=None):
    """The minimiser d of the model g'd + d'Hd/2 over ||scale * d|| <= radius, for a small symmetric H,
    positive definite or not (Moré and Sorensen).

    Everything comes from the eigen-decomposition of H (LAPACK dsyev). When H is positive definite (its least
    eigenvalue above 1e-12 of the largest in magnitude) and the Newton step -H^{-1}g fits, it is the answer.
    Otherwise the step is d(mu) = -(H + mu I)^{-1} g on the boundary, with mu > max(0, -lambda_min) found by
    Newton's method on 1/||d(mu)|| = 1/radius (concave in mu, so the iteration climbs monotonically from a mu
    where the step is too long); in the "hard case" (g without a component along the lowest eigenvector) the
    boundary is reached along that eigenvector. Compiled (:mod:`mixframe._ext.trust_region`), the same code
    as each step of :func:`trust_region`.

    Returns
    -------
    (d, predicted decrease -(g'd + d'Hd/2), Newton decrement g'H^{-1}g or inf where H is not positive definite,
    ||scale * d||)

    Raises
    ------
    numpy.linalg.LinAlgError
        Where the eigen-decomposition fails or H is not finite.
    """
    return _tr.trust_step(H, g, float(radius), scale)


def bfgs_update(B, s, y):
    """BFGS update of the Hessian model B for the step s and the gradient change y, Powell-damped: where the
    model is convex along s but s'y < 0.2 s'Bs, y is replaced by a combination with Bs (s'y = 0.2 s'Bs),
    which keeps a positive definite B so. A model that is not convex along s takes the plain update (it adds
    curvature along y); the update is skipped (B itself returned) where s'y is not clearly positive. Compiled,
    the same code as the updates within :func:`trust_region`."""
    return _tr.bfgs_update(B, s, y)


def trust_region(fun, x0, derivs=None, *, lower=None, hess0=None, scale=None, refresh=None, radius=None,
                 ftol_abs=1e-11, ftol_rel=1e-13, xtol_abs=1e-10, xtol_rel=1e-10, gtol=0.0, max_evals=1000,
                 start=None, progress=None) -> OptResult:
    """Minimise a smooth function of a few parameters subject to lower bounds.

    Parameters
    ----------
    fun : callable or SmoothObjective
        ``fun(x)`` returns f, or ``(f, g)``, or ``(f, g, H)`` (gradient and Hessian at every trial point). Or
        a compiled :class:`mixframe._ext.trust_region.SmoothObjective` (value, exact gradient and Hessian),
        which the loop evaluates through its C methods without Python (``derivs`` must then be None).
    x0 : array_like
        Start; moved onto the bounds.
    derivs : callable, optional
        With a ``fun`` that returns f alone: ``derivs(x)`` returns the gradient or ``(gradient, Hessian)``. It is
        called only at accepted points, right after ``fun`` at the same x (so it may reuse that work).
    lower : array_like, optional
        Lower bounds (-inf allowed).
    hess0 : array_like, optional
        Without an exact Hessian: the first Hessian model, a matrix or its diagonal (positive entries); else
        max(1, max |g|) times the identity.
    scale : array_like, optional
        The trust region is ``||scale * d|| <= radius`` (and the step tolerance is measured in that norm).
    refresh : callable, optional
        ``refresh(x, g)`` returns a new Hessian model (e.g. by finite differences of the gradient). A
        quasi-Newton model that meets a stopping rule is refreshed and the search goes on; it stops only under
        a fresh model, which is the one returned. ``hess0``, if given, is taken as refresh's value at x0.
    radius : float, optional
        The first trust radius; max(1, ||scale * x0||) by default.
    ftol_abs, ftol_rel : float
        Stop (:data:`FTOL`) when the model is convex and its Newton step predicts a decrease (g'H^{-1}g / 2)
        below ``max(ftol_abs, ftol_rel |f|)``.
    xtol_abs, xtol_rel : float
        Stop (:data:`XTOL`) when the step is below ``xtol_rel ||x|| + xtol_abs``.
    gtol : float
        Stop (:data:`GTOL`) when max |g| over the free variables is at most this.
    max_evals : int
        Evaluations of ``fun`` allowed (:data:`MAXEVAL`).
    start : tuple, optional
        What ``fun(x0)`` returns, where the caller has it already (x0 must then be within the bounds).
    progress : callable, optional
        Called with 1 after each evaluation.

    Notes
    -----
    Each step minimises the model over the free variables (those not held at their bound by the gradient)
    within the trust radius (:func:`trust_step`) and is projected onto the bounds. A step is accepted when it
    lowers f; the radius doubles after a step on the boundary whose decrease exceeds 3/4 of the prediction,
    becomes half the step where the decrease is below 1/4 of it, and a quarter of the step after a rejection.
    An exact Hessian is used as it is (indefinite ones included); a quasi-Newton model takes
    :func:`bfgs_update` after every accepted step. The loop is compiled (:mod:`mixframe._ext.trust_region`):
    between two evaluations of ``fun`` (and ``derivs``, ``refresh``, ``progress``) no Python runs, and none at
    all for a SmoothObjective.

    Examples
    --------
    >>> A = np.array([[3.0, 1.0], [1.0, 2.0]])
    >>> r = trust_region(lambda x: (0.5 * x @ A @ x - x.sum(), A @ x - 1.0, A), np.zeros(2))
    >>> np.round(r.x, 8).tolist(), r.status
    ([0.2, 0.4], 'ftol')
    """
    x = np.array(x0, dtype=float)
    x_start = x.copy()
    lo = None
    if lower is not None:
        lo = np.where(np.isfinite(lower), lower, -np.inf).astype(float)
        if np.any(np.isfinite(lo)):
            x = np.maximum(x, lo)
        else:
            lo = None
    smooth = isinstance(fun, _tr.SmoothObjective)
    if smooth and derivs is not None:
        raise ValueError("a SmoothObjective brings its own derivatives: derivs must be None")
    if start is None:
        f, g, H = _unpack(fun.evaluate(x) if smooth else fun(x), derivs, x)
        evals = 1
        if progress is not None:
            progress(1)
    else:
        f, g, H = _unpack(start, derivs, x)
        evals = 0
    if not math.isfinite(f) or g is None or not _tr.all_finite(g):
        return OptResult(x=x, fun=f, evaluations=evals, status=NOT_FINITE, x0=x_start)
    exact = H is not None
    if not exact:
        H = _first_model(hess0, g)
        if H is None:
            H = np.asarray(refresh(x, g), dtype=float) if refresh is not None else \
                np.eye(x.size) * max(float(np.max(np.abs(g))), 1.0)
    if scale is not None:
        scale = np.asarray(scale, dtype=float)
    x, f, g, H, evals, stop, settled = _tr.minimize(
        fun, derivs, refresh, progress, x, f, g, H, exact, lo, scale, None if radius is None else float(radius),
        ftol_abs, ftol_rel, xtol_abs, xtol_rel, gtol, evals, int(max_evals))
    if not settled:
        H = np.asarray(refresh(x, g), dtype=float)
    return OptResult(x=x, fun=f, evaluations=evals, status=_STOPS[stop], x0=x_start, gradient=g, hessian=H)


#: the statuses of the compiled loop's stopping codes
_STOPS = {_tr.STOP_MAXEVAL: MAXEVAL, _tr.STOP_FTOL: FTOL, _tr.STOP_XTOL: XTOL, _tr.STOP_GTOL: GTOL,
          _tr.STOP_FAILED: FAILED}


def _first_model(hess0, g):
    """The first quasi-Newton model from hess0 (a matrix with a positive diagonal, or positive diagonal
    entries), or None where hess0 is missing or unusable."""
    if hess0 is None:
        return None
    h = np.asarray(hess0, dtype=float)
    if not np.all(np.isfinite(h)):
        return None
    if h.ndim == 2:
        return h.copy() if np.all(np.diag(h) > 0) else None
    return np.diag(h) if np.all(h > 0) else None


def _unpack(out, derivs, x):
    """(f, g, H or None) from what fun(x) returned, calling derivs(x) where fun gave the value alone."""
    if type(out) is tuple:
        f = float(out[0])
        g = None if out[1] is None else np.asarray(out[1], dtype=float)
        H = np.asarray(out[2], dtype=float) if len(out) > 2 and out[2] is not None else None
        return f, g, H
    f = float(out)
    if not math.isfinite(f):
        return f, None, None
    d = derivs(x)
    if type(d) is tuple:
        return f, np.asarray(d[0], dtype=float), np.asarray(d[1], dtype=float)
    return f, np.asarray(d, dtype=float), None


# ---------------------------------------------------------------------------------------------- L-BFGS-B
def lbfgs(fun_grad, x0, lower=None, upper=None, *, ftol=1e-11, gtol=1e-6, max_iter=2000, memory=20) -> OptResult:
    """Minimise ``fun_grad(x) -> (f, gradient)`` by scipy's L-BFGS-B within the bounds.

    A point where f is not finite or the gradient is None is a failed point: the method is shown
    :func:`penalty` of it with a zero gradient (its line search backs off), and if it ends on one the best
    finite point is returned.

    Examples
    --------
    >>> r = lbfgs(lambda x: (float((x - 2.0) @ (x - 2.0)), 2.0 * (x - 2.0)), np.zeros(3))
    >>> np.round(r.x, 6).tolist(), r.converged
    ([2.0, 2.0, 2.0], True)
    """
    from scipy.optimize import minimize

    x0 = np.asarray(x0, dtype=float)
    best = [math.inf, None, math.nan]       # best finite value, its point, the penalty

    def wrapped(x):
        f, g = fun_grad(x)
        if g is None or not math.isfinite(f):
            if best[2] != best[2]:
                best[2] = penalty(math.nan)
            return best[2], np.zeros_like(x)
        if best[2] != best[2]:
            best[2] = penalty(f)
        if f < best[0]:
            best[0], best[1] = f, x.copy()
        return f, g

    bounds = None
    if lower is not None or upper is not None:
        lo = [None] * x0.size if lower is None else [v if np.isfinite(v) else None for v in lower]
        hi = [None] * x0.size if upper is None else [v if np.isfinite(v) else None for v in upper]
        bounds = list(zip(lo, hi))
    res = minimize(wrapped, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": int(max_iter), "ftol": float(ftol), "gtol": float(gtol), "maxcor": int(memory)})
    x, fx = np.asarray(res.x, dtype=float), float(res.fun)
    if res.success:
        status = GTOL if "PGTOL" in str(res.message).upper() else FTOL
    else:
        status = MAXEVAL if res.status == 1 else FAILED
    if best[1] is None:
        status = FAILED
    elif not fx < best[2]:
        x, fx = best[1].copy(), best[0]
    return OptResult(x=x, fun=fx, evaluations=int(res.nfev), status=status, message=str(res.message), x0=x0,
                     gradient=np.asarray(res.jac, dtype=float))


# ---------------------------------------------------------------------------------------------- one dimension
def minimize_1d(f, a, b, tol) -> OptResult:
    """Golden-section search for a minimum of f on [a, b], to an interval of width ``tol``.

    Examples
    --------
    >>> r = minimize_1d(lambda t: (t - 0.3) ** 2, 0.0, 1.0, 1e-8)
    >>> round(float(r.x[0]), 6), r.status
    (0.3, 'xtol')
    """
    r = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    evals = 2
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = f(d)
        evals += 1
    x, fx = (c, fc) if fc <= fd else (d, fd)
    return OptResult(x=np.array([x]), fun=float(fx), evaluations=evals, status=XTOL if math.isfinite(fx) else FAILED)
