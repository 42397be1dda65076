"""Per-row columns of ``augment()``: fitted values, linear predictors and residuals.

LMM/GLMM: ``.fitted`` (response scale, with random effects), ``.fixed`` (response scale,
population level), ``.eta``, ``.resid`` (y − fitted), ``.pearson_resid``
((y − μ)·√w / √V(μ), as lme4's ``residuals(type = "pearson")``; V of the NB2 includes θ), ``.deviance_resid``, ``.used``.
CLMM/CLM: ``.prob_<level>`` per category, ``.fitted`` (probability of the observed category, as
ordinal's ``fitted()``), ``.predicted`` (the most probable category), ``.eta`` (location
predictor), ``.used``.  Rows with ``.used`` False have nulls everywhere else.
"""
from __future__ import annotations

import numpy as np

from .predict import class_labels, expand, linear_predictor


def response_scale(raw) -> dict:
    """Fitted values and residuals of an LMM/GLMM on the used rows (arrays of length n_obs)."""
    from ..families import family_of, with_dispersion

    fam = family_of(raw)
    d = raw.design
    y = np.asarray(d.y, dtype=float)
    wt = np.ones_like(y) if d.weights is None else np.asarray(d.weights, dtype=float)
    mu = np.asarray(fam.linkinv(np.asarray(raw.eta, dtype=float)), dtype=float)
    mu_fixed = np.asarray(fam.linkinv(np.asarray(raw.eta_fixed, dtype=float)), dtype=float)
    resid = y - mu
    disp = None if raw.kind == "lmm" or raw.sigma is None else float(raw.sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.asarray(with_dispersion(fam.variance, mu, disp=disp), dtype=float)
        pearson = resid * np.sqrt(wt) / np.sqrt(var)
        dev = np.asarray(with_dispersion(fam.dev_resid, y, mu, wt, disp=disp), dtype=float)
    deviance_resid = np.sign(resid) * np.sqrt(np.clip(dev, 0.0, None))
    return {"fitted": mu, "fixed": mu_fixed, "eta": np.asarray(raw.eta, dtype=float),
            "resid": resid, "pearson": pearson, "deviance": deviance_resid}


def _ordinal_columns(raw, eta: np.ndarray, used: np.ndarray, observed=None) -> dict:
    from ..families import ordinal_probs

    levels = [str(v) for v in raw.design.response_levels]
    probs = np.full((eta.shape[0], len(levels)), np.nan)
    probs[used] = ordinal_probs(raw, eta[used])
    cols = {f".prob_{lv}": probs[:, k] for k, lv in enumerate(levels)}
    if observed is not None:
        fitted = np.full(eta.shape[0], np.nan)
        rows = np.flatnonzero(used)
        fitted[rows] = probs[rows, observed]
        cols[".fitted"] = fitted
    cols[".predicted"] = list(class_labels(raw, probs, used))
    cols[".eta"] = eta
    cols[".used"] = used
    return cols


def augment_columns(raw) -> dict:
    """New columns for every input row of the fit, in input order.

    Examples
    --------
    Given a fitted ``raw`` record, ``augment_columns(raw)[".used"]`` is ``raw.design.used``.
    """
    used = np.asarray(raw.design.used, dtype=bool)
    if raw.kind in ("clmm", "clm"):
        eta = expand(raw.eta, used)
        observed = np.asarray(raw.design.y).astype(np.int64)
        return _ordinal_columns(raw, eta, used, observed)
    r = response_scale(raw)
    return {
        ".fitted": expand(r["fitted"], used),
        ".fixed": expand(r["fixed"], used),
        ".eta": expand(r["eta"], used),
        ".resid": expand(r["resid"], used),
        ".pearson_resid": expand(r["pearson"], used),
        ".deviance_resid": expand(r["deviance"], used),
        ".used": used,
    }


def augment_new_columns(raw, newdata) -> dict:
    """Prediction columns for the rows of ``newdata`` (no response, so no residuals).

    LMM/GLMM: ``.fitted``, ``.fixed``, ``.eta``, ``.used``; CLMM/CLM: ``.prob_<level>``,
    ``.predicted``, ``.eta``, ``.used``.
    """
    from ..families import family_of

    eta, used = linear_predictor(raw, newdata, re=True)
    if raw.kind in ("clmm", "clm"):
        return _ordinal_columns(raw, eta, used)
    eta_fixed, _ = linear_predictor(raw, newdata, re=False)
    fam = family_of(raw)
    fitted = np.full_like(eta, np.nan)
    fixed = np.full_like(eta, np.nan)
    fitted[used] = fam.linkinv(eta[used])
    fixed[used] = fam.linkinv(eta_fixed[used])
    return {".fitted": fitted, ".fixed": fixed, ".eta": eta, ".used": used}
