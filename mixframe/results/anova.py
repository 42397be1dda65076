"""Likelihood-ratio comparison of nested fits (``mf.anova``)."""
from __future__ import annotations

import numpy as np

from mixframe.models.base import kind_of

from ._frames import make_frame


def _ml_version(fit):
    """The fit itself, or its ML refit when its kind needs one (a REML LMM, as lme4's ``anova`` does)."""
    if kind_of(fit.raw).needs_ml_refit(fit.raw):
        return fit._refit_ml()
    return fit


def _labels(fits, names) -> list[str]:
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(fits):
            raise ValueError(f"anova got {len(fits)} fits but {len(names)} names")
        return names
    labels = [f.formula or f"model_{i + 1}" for i, f in enumerate(fits)]
    if len(set(labels)) < len(labels):
        labels = [f"model_{i + 1}: {lab}" for i, lab in enumerate(labels)]
    return labels


def lrt_columns(logliks, npars, nobs, labels) -> dict:
    """Columns of the likelihood-ratio table, rows sorted by number of parameters.

    ``chisq`` = 2 · max(0, Δ loglik) and ``df`` = Δ npar between consecutive rows; the first row,
    and rows with ``df`` = 0, have null tests.

    Examples
    --------
    >>> cols = lrt_columns([-10.0, -8.0], [3, 4], [50, 50], ["a", "b"])
    >>> float(cols["chisq"][1])
    4.0
    """
    from scipy import stats

    logliks = np.asarray(logliks, dtype=float)
    npars = np.asarray(npars, dtype=np.int64)
    nobs = np.asarray(nobs, dtype=float)
    order = np.argsort(npars, kind="stable")
    ll, k, n = logliks[order], npars[order], nobs[order]
    chisq = np.full(len(ll), np.nan)
    df = np.full(len(ll), np.nan)
    chisq[1:] = 2.0 * np.maximum(0.0, np.diff(ll))
    df[1:] = np.diff(k).astype(float)
    p = np.full(len(ll), np.nan)
    test = np.isfinite(df) & (df > 0)
    p[test] = stats.chi2.sf(chisq[test], df[test])
    return {
        "model": [labels[i] for i in order],
        "npar": k,
        "aic": -2.0 * ll + 2.0 * k,
        "bic": -2.0 * ll + np.log(n) * k,
        "loglik": ll,
        "deviance": -2.0 * ll,
        "chisq": chisq,
        "df": df,
        "p_value": p,
    }


def anova(*fits, names=None):
    """Likelihood-ratio table of nested fits to the same rows.

    REML LMMs are refitted by maximum likelihood first, as lme4's ``anova`` does.  Fits of any
    kind can be compared (a CLM against a CLMM, say) as long as they use the same number of rows.

    Parameters
    ----------
    *fits : MixedModel
        Two or more fits.
    names : list of str, optional
        Labels of the fits for the ``model`` column (default: their formulas).

    Returns
    -------
    DataFrame
        ``model, npar, aic, bic, loglik, deviance, chisq, df, p_value``, sorted by ``npar``
        (``deviance`` is −2 loglik), in the library of the first fit's data.

    Examples
    --------
    >>> import mixframe as mf
    >>> data = mf.datasets.sleepstudy()
    >>> ri = mf.lmm("Reaction ~ Days + (1 | Subject)", data)
    >>> slope = mf.lmm("Reaction ~ Days + (Days | Subject)", data)
    >>> table = mf.anova(ri, slope)
    >>> table["npar"].tolist(), round(float(table["chisq"].iloc[1]), 1)
    ([4, 6], 42.1)
    """
    if len(fits) < 2:
        raise ValueError("anova needs at least two fits to compare")
    labels = _labels(fits, names)
    ml_fits = [_ml_version(f) for f in fits]
    nobs = [f.nobs for f in ml_fits]
    if len(set(nobs)) > 1:
        raise ValueError(f"anova needs fits to the same rows; numbers of observations differ: {nobs}")
    kinds = [kind_of(f.raw) for f in ml_fits]
    cols = lrt_columns([k.loglik(f.raw) for k, f in zip(kinds, ml_fits)],
                       [k.n_params(f.raw) for k, f in zip(kinds, ml_fits)], nobs, labels)
    return make_frame(cols, like=fits[0]._rows.like)
