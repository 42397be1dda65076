"""The public fitting functions: parse -> design -> fit -> result. The only orchestration in the package.

Importing this module is cheap: the formula parser, the design builder, the fitting code and the compiled
kernels are imported by the first fit, inside the functions below.
"""
from __future__ import annotations

import functools
import sys
import warnings

from .control import parse_control, parse_nagq

__all__ = ["clm", "clmm", "glmm", "lmm"]


def _caller_frame():
    """The innermost frame outside mixframe (the user's line that called the fit)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        internal = name == "mixframe" or name.startswith("mixframe.") or frame.f_code.co_filename.startswith(
            "<mixframe.")
        if not internal:
            return frame
        frame = frame.f_back
    return None


def _warnings_at_caller(fit):
    """Warnings raised while fitting point at the user's line, not at the library's, and obey the user's filters.

    They are collected during the fit and issued again, in order, from the first frame outside the package."""
    @functools.wraps(fit)
    def wrapper(*args, **kwargs):
        caught = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                return fit(*args, **kwargs)
        finally:  # the user's filters are back in force here
            _reissue(caught)
    return wrapper


def _reissue(pending) -> None:
    if not pending:
        return
    frame = _caller_frame()
    for w in pending:
        if frame is None:
            warnings.warn(w.message, w.category, stacklevel=2)
            continue
        registry = frame.f_globals.setdefault("__warningregistry__", {})
        warnings.warn_explicit(w.message, w.category, frame.f_code.co_filename, frame.f_lineno,
                               module=frame.f_globals.get("__name__"), registry=registry)


def _announce_dropped(design) -> None:
    n_dropped = int(design.n_total - design.n_obs)
    if n_dropped:
        by_col = design.extra.get("missing_by_column") or {}
        where = ", ".join(f"{c!r}: {k}" for c, k in by_col.items() if k)
        where = f" (missing values per column: {where})" if where else ""
        warnings.warn(f"{n_dropped} of {design.n_total} rows dropped for missing values in the model's "
                      f"columns{where}; they are counted in glance().n_dropped and kept in augment() with "
                      ".used = False", UserWarning, stacklevel=3)


def _full_formula(formula, groups=None, random=None) -> str:
    """The formula with the terms that ``groups=`` and ``random=`` add, as a reader would write it."""
    extra = []
    for g in ([groups] if isinstance(groups, str) else list(groups or [])):
        extra.append(f"(1 | {g})")
    for r in ([random] if isinstance(random, str) else list(random or [])):
        extra.append(r.strip())
    return formula if not extra else f"{formula} + " + " + ".join(extra)


def _call_info(formula, data, groups=None, random=None, **kw) -> dict:
    return {"formula": _full_formula(formula, groups, random), **kw}


@_warnings_at_caller
def lmm(formula, data, *, reml=True, weights=None, offset=None, groups=None, random=None, control=None):
    """Fit a linear mixed model by REML (default) or ML.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas or polars DataFrame (or pyarrow Table)
    reml : bool
        REML (default) or maximum likelihood.
    weights, offset : column name or array, optional
        Prior weights (residual variance sigma^2 / w) and an offset added to the linear predictor.
    groups : str or list of str, optional
        Adds ``(1 | name)`` for each name.
    random : str or list of str, optional
        Adds these random-effect terms, e.g. ``["(1|judge)", "(1|bottle)"]``.
    control : dict, optional
        Fit settings, checked before any work (an unknown key or optimizer is a ``ValueError`` that names it
        and lists the allowed ones; see :class:`mixframe.control.LMMControl`): ``optimizer`` (``"bobyqa"``,
        ``"neldermead"``, ``"cobyla"``, ``"sbplx"``: a derivative-free method instead of the default Newton or
        quasi-Newton method on analytic derivatives), ``maxiter`` (evaluations), ``tol`` (sets ``ftol_rel``
        and ``xtol_rel``), ``ftol_rel``, ``ftol_abs``, ``xtol_rel``, ``xtol_abs``, ``initial_step``,
        ``verbose``, ``progress`` (True/False: show/hide the progress bar). Streamed inputs (a polars
        LazyFrame, a pyarrow Dataset or RecordBatchReader, a dask DataFrame) also take ``batch_size`` (rows
        per batch; :class:`mixframe.control.StreamedLMMControl`).

    Returns
    -------
    MixedModel

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
    >>> round(fit.fixef["Days"], 4)
    10.4673
    """
    from .stream import is_stream

    if is_stream(data):
        from .stream import fit_lmm_stream

        control = parse_control("streamed lmm", control)
        return fit_lmm_stream(formula, data, reml=reml, weights=weights, offset=offset, groups=groups,
                              random=random, control=control.options())
    from .design.build import build_design
    from .fit.lmm import fit_lmm
    from .results import MixedModel
    from .results.call import FitCall

    control = parse_control("lmm", control)
    # without weights the rank of X is decided by the fit, from the exact X'X it computes anyway
    unweighted = weights is None
    design = build_design(formula, data, kind="lmm", groups=groups, random=random, weights=weights,
                          offset=offset, fixed_columns="all" if unweighted else None)
    _announce_dropped(design)
    raw = fit_lmm(design, reml=reml, control=control.options(), check_rank=unweighted)
    info = _call_info(formula, data, groups, random, reml=reml)
    if reml:
        info["call"] = FitCall("lmm", {"formula": formula, "weights": weights, "offset": offset,
                                       "groups": groups, "random": random, "control": control})
    return MixedModel(raw, data=data, call_info=info)


@_warnings_at_caller
def glmm(formula, data, *, family="binomial", link=None, nagq=1, weights=None, offset=None, groups=None,
         random=None, control=None):
    """Fit a generalized linear mixed model (Laplace, adaptive Gauss-Hermite quadrature, or nAGQ=0 PIRLS).

    Parameters
    ----------
    formula : str
        lme4 syntax; binomial responses may be 0/1, logical, a two-level factor (second level =
        success), a proportion with ``weights``, or ``cbind(successes, failures)``.
    data : pandas or polars DataFrame
    family : {"binomial", "poisson", "gamma", "inverse_gaussian", "negative_binomial", "gaussian"}
    link : str, optional
        The family's canonical link when None.
    nagq : int
        1 Laplace (default); > 1 adaptive Gauss-Hermite with that many nodes (one scalar random-effect term
        only); 0 the fast PIRLS-only fit.
    weights, offset, groups, random
        As in :func:`lmm`.
    control : dict, optional
        Fit settings, checked before any work (an unknown key is a ``ValueError`` that names it and lists the
        allowed ones; see :class:`mixframe.control.GLMMControl`): ``maxiter`` (or ``maxeval``: objective
        evaluations), ``tol`` (sets ``ftol_rel``), ``ftol_rel``, ``ftol_abs``, ``xtol_rel``, ``xtol_abs``,
        ``pirls_tol`` (the conditional modes' iterations), ``hessian_step`` and ``calc_hessian`` (the
        finite-difference Hessian behind the standard errors), ``progress``. A GLMM fit chooses its optimizer
        itself, so ``optimizer`` is not a setting.

    Returns
    -------
    MixedModel

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...               mf.datasets.cbpp(), family="binomial")
    >>> round(fit.fixef["period2"], 3)
    -0.992
    """
    from .design.build import build_design
    from .families import get_family
    from .fit.glmm import fit_glmm
    from .results import MixedModel

    control = parse_control("glmm", control)
    nagq = parse_nagq(nagq, "glmm")
    fam = get_family(family, link)
    design = build_design(formula, data, kind="glmm", family=fam.name, groups=groups, random=random,
                          weights=weights, offset=offset)
    _announce_dropped(design)
    raw = fit_glmm(design, family=fam.name, link=fam.link, nagq=nagq, control=control.options())
    return MixedModel(raw, data=data, call_info=_call_info(formula, data, groups, random, family=fam.name, nagq=nagq))


@_warnings_at_caller
def clmm(formula, data, *, link="logit", threshold="flexible", nagq=1, levels=None, weights=None, groups=None,
         random=None, control=None):
    """Fit a cumulative link mixed model for an ordinal response.

    ``link(P(Y <= k | b)) = alpha_k - x'beta - z'b``.

    Parameters
    ----------
    formula : str
        e.g. ``"rating ~ temp + contact + (1 | judge)"``; the intercept is absorbed into the thresholds.
    data : pandas or polars DataFrame
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    threshold : {"flexible", "equidistant", "symmetric"}
    nagq : int
        1 Laplace; > 1 adaptive Gauss-Hermite quadrature (one grouping factor with a random intercept).
    levels : list, optional
        The order of the response categories when the response is not an ordered categorical.
    weights, groups, random
        As in :func:`lmm`.
    control : dict, optional
        Fit settings, checked before any work (an unknown key or optimizer is a ``ValueError`` that names it
        and lists the allowed ones; see :class:`mixframe.control.CLMMControl`): ``maxiter`` and ``tol`` (of
        L-BFGS, used with the analytic gradient of one scalar random-effect term and nagq=1; otherwise of the
        derivative-free optimizer), and for the derivative-free optimizer ``optimizer`` (``"bobyqa"``,
        ``"neldermead"``, ``"cobyla"``, ``"sbplx"``), ``ftol_rel``, ``ftol_abs``, ``xtol_rel``, ``xtol_abs``,
        ``initial_step``, ``verbose``, ``progress``.

    Returns
    -------
    MixedModel

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.clmm("rating ~ temp + contact", mf.datasets.wine(), groups="judge")
    >>> round(fit.fixef["tempwarm"], 3)
    3.063
    """
    from .design.build import build_design
    from .fit.clmm import fit_clmm
    from .linalg.blocked import _one_blas_thread
    from .results import MixedModel

    control = parse_control("clmm", control)
    nagq = parse_nagq(nagq, "clmm")
    design = build_design(formula, data, kind="clmm", groups=groups, random=random, weights=weights,
                          levels=levels)
    _announce_dropped(design)
    with _one_blas_thread():  # its dense algebra is small: threads would only cost (far more on busy cores)
        raw = fit_clmm(design, link=link, threshold=threshold, nagq=nagq, control=control.options())
    return MixedModel(raw, data=data, call_info=_call_info(formula, data, groups, random, threshold=threshold, nagq=nagq))


@_warnings_at_caller
def clm(formula, data, *, link="logit", threshold="flexible", levels=None, weights=None, control=None):
    """Fit a cumulative link model without random effects (the baseline for likelihood-ratio tests).

    ``link(P(Y <= k)) = alpha_k - x'beta``, fitted by Newton-Raphson.

    Parameters
    ----------
    formula : str
        e.g. ``"rating ~ temp + contact"``; the intercept is absorbed into the thresholds.
    data : pandas or polars DataFrame
    link, threshold, levels, weights
        As in :func:`clmm`.
    control : dict, optional
        Fit settings, checked before any work (an unknown key is a ``ValueError`` that names it and lists the
        allowed ones; see :class:`mixframe.control.CLMControl`): ``maxiter`` (Newton-Raphson iterations,
        default 100) and ``tol`` (the largest absolute gradient element at which it stops, default 1e-9).

    Returns
    -------
    MixedModel

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.clm("rating ~ temp + contact", mf.datasets.wine())
    >>> round(fit.fixef["tempwarm"], 3)
    2.503
    """
    from .design.build import build_design
    from .fit.clm import fit_clm
    from .linalg.blocked import _one_blas_thread
    from .results import MixedModel

    control = parse_control("clm", control)
    design = build_design(formula, data, kind="clm", weights=weights, levels=levels)
    _announce_dropped(design)
    with _one_blas_thread():
        raw = fit_clm(design, link=link, threshold=threshold, control=control.options())
    return MixedModel(raw, data=data, call_info=_call_info(formula, data, threshold=threshold))
