"""Tidy columns of a fit: coefficients, variance components, BLUPs, intervals, ICC, glance.

Each function takes the :class:`~mixframe.fit.result.RawFit` and returns a dict of columns
(NumPy arrays or lists; NaN and None mean null).  :class:`~mixframe.results.model.MixedModel`
turns them into frames of the user's library.
"""
from __future__ import annotations

import numpy as np

from mixframe.models.base import kind_of

#: the ordinal kinds (kept for callers that group kinds by name; results ask the kind itself)
ORDINAL_KINDS = ("clmm", "clm")


def has_exp_columns(raw) -> bool:
    """Odds/rate-ratio columns: log and logit links, and every ordinal model (the kind decides)."""
    return kind_of(raw).exp_columns(raw)


def uses_t(raw) -> bool:
    """Whether coefficient tests are t-based (LMMs with Satterthwaite df); everything else is z-based."""
    return kind_of(raw).uses_t(raw)


def coef_df(raw) -> np.ndarray:
    """Denominator df per coefficient (NaN where z-based); the kind computes them on first use."""
    n = len(raw.coef_names)
    if not uses_t(raw):
        return np.full(n, np.nan)
    value = kind_of(raw).ddf(raw)
    if value is None:
        return np.full(n, np.nan)
    return np.asarray(value, dtype=float).reshape(n).copy()


def std_errors(raw) -> np.ndarray:
    """Square roots of the diagonal of the coefficient covariance (NaN where not positive)."""
    diag = np.diag(np.asarray(raw.vcov, dtype=float)).copy()
    with np.errstate(invalid="ignore"):
        return np.where(diag >= 0, np.sqrt(np.abs(diag)), np.nan)


def _crit(level: float, df: np.ndarray) -> np.ndarray:
    from scipy import stats

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    q = 0.5 + level / 2.0
    z = stats.norm.ppf(q)
    with np.errstate(invalid="ignore"):
        t = stats.t.ppf(q, np.where(np.isnan(df), 1.0, df))
    return np.where(np.isnan(df), z, t)


def _p_values(statistic: np.ndarray, df: np.ndarray) -> np.ndarray:
    from scipy import stats

    a = np.abs(statistic)
    with np.errstate(invalid="ignore"):
        p_t = 2.0 * stats.t.sf(a, np.where(np.isnan(df), 1.0, df))
    return np.where(np.isnan(df), 2.0 * stats.norm.sf(a), p_t)


def coefficient_columns(raw, level: float = 0.95) -> dict:
    """Columns of ``coefficients()``: estimates, SEs, tests and intervals per coefficient.

    Examples
    --------
    Given a fitted ``raw`` record, ``coefficient_columns(raw)["p_value"]`` holds two-sided p-values.
    """
    est = np.asarray(raw.coef, dtype=float)
    se = std_errors(raw)
    df = coef_df(raw)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = est / se
    crit = _crit(level, df)
    cols = {"coef_type": kind_of(raw).coef_types(raw)}
    cols.update({
        "term": list(raw.coef_names),
        "estimate": est,
        "std_error": se,
        "statistic": statistic,
        "df": df,
        "p_value": _p_values(statistic, df),
        "conf_low": est - crit * se,
        "conf_high": est + crit * se,
    })
    if has_exp_columns(raw):
        with np.errstate(over="ignore"):
            cols["exp_estimate"] = np.exp(est)
            cols["exp_conf_low"] = np.exp(cols["conf_low"])
            cols["exp_conf_high"] = np.exp(cols["conf_high"])
    return cols


def confint_columns(raw, level: float = 0.95, method: str = "wald") -> dict:
    """Columns of ``confint()``.

    ``method="wald"`` uses normal quantiles (as lme4's ``confint(method = "Wald")``);
    ``method="satterthwaite"`` uses t quantiles with the Satterthwaite df of an LMM.
    """
    method = method.lower()
    if method not in ("wald", "satterthwaite"):
        raise ValueError(f"confint method must be 'wald' or 'satterthwaite', got '{method}'")
    if method == "satterthwaite" and not uses_t(raw):
        raise ValueError("method='satterthwaite' needs an LMM with Satterthwaite df")
    est = np.asarray(raw.coef, dtype=float)
    se = std_errors(raw)
    df = coef_df(raw) if method == "satterthwaite" else np.full(len(est), np.nan)
    crit = _crit(level, df)
    return {"term": list(raw.coef_names), "conf_low": est - crit * se, "conf_high": est + crit * se}


def term_covariances(raw) -> list[np.ndarray]:
    """Covariance matrix of each random-effect term: ``re_scale**2 * lam @ lam.T``."""
    scale2 = float(raw.re_scale) ** 2
    return [scale2 * np.asarray(lam, dtype=float) @ np.asarray(lam, dtype=float).T
            for lam in raw.lambdas]


def residual_variance(raw) -> float | None:
    """The residual variance shown in VarCorr (σ² of LMMs and gaussian GLMMs, the gamma and
    inverse-Gaussian ones the fit supplies), or None; the kind decides."""
    return kind_of(raw).residual_variance(raw)


def variance_component_columns(raw) -> dict:
    """Columns of ``variance_components()`` in the layout of lme4's ``as.data.frame(VarCorr())``.

    Per term: one row per variance (``term2`` null, ``sdcor`` the SD), then one per covariance
    in lme4's lower-triangle order (``sdcor`` the correlation); a ``Residual`` row last.
    """
    group, term1, term2, vcov, sdcor = [], [], [], [], []
    for term, cov in zip(raw.design.terms, term_covariances(raw)):
        names = list(term.col_names)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        for i, name in enumerate(names):
            group.append(term.group)
            term1.append(name)
            term2.append(None)
            vcov.append(cov[i, i])
            sdcor.append(sd[i])
        for j in range(len(names)):
            for i in range(j + 1, len(names)):
                group.append(term.group)
                term1.append(names[j])
                term2.append(names[i])
                vcov.append(cov[i, j])
                denom = sd[i] * sd[j]
                sdcor.append(cov[i, j] / denom if denom > 0 else np.nan)
    res = residual_variance(raw)
    if res is not None:
        group.append("Residual")
        term1.append(None)
        term2.append(None)
        vcov.append(res)
        sdcor.append(np.sqrt(res))
    return {"group": group, "term1": term1, "term2": term2,
            "vcov": np.asarray(vcov, dtype=float), "sdcor": np.asarray(sdcor, dtype=float)}


def _level_column(terms):
    """The ``level`` column of ``blups()``: the grouping columns' own values (integers or floats, of
    the column's dtype) when every term has such levels of one kind, else the labels as strings
    (strings, factors, interactions ``a:b``, or terms of different kinds)."""
    values = [getattr(t, "level_values", None) for t in terms]
    kinds = {v.dtype.kind if v is not None else None for v in values}
    typed = bool(values) and None not in kinds and (kinds <= {"i"} or kinds <= {"u"} or kinds <= {"f"})
    parts = []
    for term, v in zip(terms, values):
        lv = np.asarray(v) if typed else np.array([str(x) for x in term.levels], dtype=object)
        parts.extend([lv] * term.k)
    if not parts:
        return []
    out = np.concatenate(parts)
    return out if typed else out.tolist()


def blup_columns(raw) -> dict:
    """Columns of ``blups()``: per term, per effect, per level (lme4's ``as.data.frame(ranef())``).

    ``level`` keeps the grouping column's type (integers, floats) so that the table joins back to the
    data; string, factor and interaction levels are strings."""
    group, name, est, se = [], [], [], []
    for term, b, b_sd in zip(raw.design.terms, raw.b, raw.b_sd):
        b = np.asarray(b, dtype=float).reshape(term.n_levels, term.k)
        b_sd = np.asarray(b_sd, dtype=float).reshape(term.n_levels, term.k)
        for j, effect in enumerate(term.col_names):
            group.extend([term.group] * term.n_levels)
            name.extend([effect] * term.n_levels)
            est.append(b[:, j])
            se.append(b_sd[:, j])
    est = np.concatenate(est) if est else np.zeros(0)
    se = np.concatenate(se) if se else np.zeros(0)
    level = _level_column(raw.design.terms)
    return {"group": group, "level": level, "term": name, "estimate": est, "std_error": se}


def ngroups(raw) -> dict:
    """Number of levels per grouping factor, in term order, each factor once."""
    out = {}
    for term in raw.design.terms:
        out.setdefault(term.group, term.n_levels)
    return out


def latent_residual_variance(raw) -> float | None:
    """The level-1 variance of the ICC: σ², π²/3 (logit), 1 (probit); None where undefined."""
    return kind_of(raw).latent_residual_variance(raw)


def icc_columns(raw) -> dict:
    """Columns of ``icc()``: the intraclass correlation of each grouping factor.

    The ICC of factor g is var_g / (Σ var + residual), with var_g the random-intercept variance
    of g (summed over its terms) — the correlation at covariate value 0.  Factors without a
    random intercept get no row; models without a level-1 variance (Poisson, ...) give no rows.
    """
    res = latent_residual_variance(raw)
    if res is None:
        return {"group": [], "icc": np.zeros(0)}
    intercept_var = {}
    for term, cov in zip(raw.design.terms, term_covariances(raw)):
        if "(Intercept)" in term.col_names:
            i = list(term.col_names).index("(Intercept)")
            intercept_var[term.group] = intercept_var.get(term.group, 0.0) + cov[i, i]
    total = sum(intercept_var.values()) + res
    groups = list(intercept_var)
    return {"group": groups, "icc": np.array([intercept_var[g] / total for g in groups])}


def information_criteria(raw) -> tuple[float, float]:
    """AIC = −2 loglik + 2 n_params; BIC = −2 loglik + log(nobs) n_params."""
    n = raw.design.n_obs
    kind = kind_of(raw)
    loglik, k = kind.loglik(raw), kind.n_params(raw)
    aic = -2.0 * loglik + 2.0 * k
    bic = -2.0 * loglik + np.log(n) * k
    return float(aic), float(bic)


def glance_columns(raw) -> dict:
    """Columns of the one-row ``glance()`` frame."""
    aic, bic = information_criteria(raw)
    n = raw.design.n_obs
    cols = {
        "nobs": np.array([n], dtype=np.int64),
        "n_dropped": np.array([raw.design.n_total - n], dtype=np.int64),
        "loglik": np.array([raw.loglik], dtype=float),
        "aic": np.array([aic]),
        "bic": np.array([bic]),
        "deviance": np.array([raw.deviance], dtype=float),
        "reml_criterion": np.array([np.nan if raw.reml_crit is None else raw.reml_crit], dtype=float),
        "sigma": np.array([np.nan if raw.sigma is None else raw.sigma], dtype=float),
        "df_resid": np.array([n - raw.n_params], dtype=np.int64),
        "converged": np.array([bool(raw.converged)]),
        "singular": np.array([bool(raw.singular)]),
        "method": [raw.method],
        "iterations": np.array([raw.iterations], dtype=np.int64),
    }
    for name, count in ngroups(raw).items():
        cols[f"ngroups_{name}"] = np.array([count], dtype=np.int64)
    for name, value in raw.extra.get("glance_extra", {}).items():
        if value is None:
            cols[name] = np.array([np.nan])
        else:
            cols[name] = [value] if isinstance(value, str) else np.array([value])
    return cols


def vcov_columns(raw) -> dict:
    """Columns of the ``vcov`` frame: ``term`` then one column per coefficient."""
    v = np.asarray(raw.vcov, dtype=float)
    cols = {"term": list(raw.coef_names)}
    for j, name in enumerate(raw.coef_names):
        cols[name] = v[:, j].copy()
    return cols
