"""The optimizer settings of a fit (``control``) and the entry points that run the methods of
:mod:`mixframe.numerics.optim` under them, with a progress bar."""
from __future__ import annotations

from ..numerics.optim import OptResult, bobyqa, trust_region

#: the record every optimizer returns (kept under its former name for the modules that import it)
OptSummary = OptResult

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

_ALGORITHMS = ("bobyqa", "neldermead", "cobyla", "sbplx")


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


def minimize_bounded(fun, x0, lower, upper=None, control: dict | None = None, desc: str = "fitting") -> OptResult:
    """Minimise ``fun(x)`` from ``x0`` subject to ``lower <= x <= upper`` by the nlopt algorithm ``control``
    names (BOBYQA by default), with its tolerances (:func:`mixframe.numerics.optim.bobyqa`).

    A progress bar counts the evaluations of long fits (``control={"progress": True/False}``; automatic by
    default).
    """
    from ..progress import progress_bar, progress_enabled

    ctl = control_settings(control)
    with progress_bar(total=None, desc=desc, enabled=progress_enabled(control)) as bar:
        return bobyqa(fun, x0, lower, upper, step=ctl["initial_step"], ftol_rel=ctl["ftol_rel"],
                      ftol_abs=ctl["ftol_abs"], xtol_rel=ctl["xtol_rel"], xtol_abs=ctl["xtol_abs"],
                      max_evals=int(ctl["maxiter"]), algorithm=ctl["optimizer"], trace=bool(ctl["verbose"]),
                      progress=bar.update)


def minimize_trust_region(fun, derivs, x0, lower, hess0=None, control: dict | None = None,
                          desc: str = "fitting") -> OptResult:
    """Minimise a smooth function of a few parameters subject to lower bounds, with analytic derivatives, by
    :func:`mixframe.numerics.optim.trust_region`.

    ``derivs(x)`` returns the gradient, or ``(gradient, Hessian)`` (Newton on the exact Hessian, else
    quasi-Newton from ``hess0``, the diagonal of an approximate Hessian). The search stops when the model
    predicts a decrease below a tenth of ``ftol_abs`` or a hundredth of ``ftol_rel`` relative to |f| (stricter
    than :func:`minimize_bounded`, which stops on realised decreases, because a quasi-Newton model
    underestimates what is left), or when the step falls below ``xtol_rel`` relative to |x| plus ``xtol_abs``.
    """
    from ..progress import progress_bar, progress_enabled

    ctl = control_settings(control)
    with progress_bar(total=None, desc=desc, enabled=progress_enabled(control)) as bar:
        return trust_region(fun, x0, derivs, lower=lower, hess0=hess0, **trust_region_tolerances(ctl),
                            progress=bar.update)


def trust_region_tolerances(ctl: dict) -> dict:
    """The stopping rules of :func:`mixframe.numerics.optim.trust_region` under the settings ``ctl``."""
    return {"ftol_abs": 0.1 * ctl["ftol_abs"], "ftol_rel": 0.01 * ctl["ftol_rel"], "xtol_abs": ctl["xtol_abs"],
            "xtol_rel": ctl["xtol_rel"], "max_evals": int(ctl["maxiter"])}
