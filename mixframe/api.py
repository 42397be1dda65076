"""The public fitting functions: parse -> design -> fit -> result. The only orchestration in the package."""
from __future__ import annotations

import warnings

from .design.build import build_design
from .results import MixedModel
from .results.call import FitCall

__all__ = ["clm", "clmm", "glmm", "lmm"]


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
        Optimizer settings: ``optimizer`` ("bobyqa", "neldermead", ...), ``maxiter``, ``tol``, ``verbose``.

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
    from .fit.lmm import fit_lmm
    from .stream import fit_lmm_stream, is_stream

    if is_stream(data):
        return fit_lmm_stream(formula, data, reml=reml, weights=weights, offset=offset, groups=groups,
                              random=random, control=control)
    design = build_design(formula, data, kind="lmm", groups=groups, random=random, weights=weights,
                          offset=offset)
    _announce_dropped(design)
    raw = fit_lmm(design, reml=reml, control=control)
    info = _call_info(formula, data, groups, random, reml=reml)
    if reml:
        info["call"] = FitCall("lmm", {"formula": formula, "weights": weights, "offset": offset,
                                       "groups": groups, "random": random, "control": control})
    return MixedModel(raw, data=data, call_info=info)


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
    weights, offset, groups, random, control
        As in :func:`lmm`.

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
    from .families import get_family
    from .fit.glmm import fit_glmm

    fam = get_family(family, link)
    design = build_design(formula, data, kind="glmm", family=fam.name, groups=groups, random=random,
                          weights=weights, offset=offset)
    _announce_dropped(design)
    raw = fit_glmm(design, family=fam.name, link=fam.link, nagq=nagq, control=control)
    return MixedModel(raw, data=data, call_info=_call_info(formula, data, groups, random, family=fam.name, nagq=nagq))


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
    weights, groups, random, control
        As in :func:`lmm`.

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
    from .fit.clmm import fit_clmm

    design = build_design(formula, data, kind="clmm", groups=groups, random=random, weights=weights,
                          levels=levels)
    _announce_dropped(design)
    raw = fit_clmm(design, link=link, threshold=threshold, nagq=nagq, control=control)
    return MixedModel(raw, data=data, call_info=_call_info(formula, data, groups, random, threshold=threshold, nagq=nagq))


def clm(formula, data, *, link="logit", threshold="flexible", levels=None, weights=None):
    """Fit a cumulative link model without random effects (the baseline for likelihood-ratio tests).

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.clm("rating ~ temp + contact", mf.datasets.wine())
    >>> round(fit.fixef["tempwarm"], 3)
    2.503
    """
    from .fit.clm import fit_clm

    design = build_design(formula, data, kind="clm", weights=weights, levels=levels)
    _announce_dropped(design)
    raw = fit_clm(design, link=link, threshold=threshold)
    return MixedModel(raw, data=data, call_info=_call_info(formula, data, threshold=threshold))
