"""Predictions of a fit, on its own rows or on new data.

Without new data every prediction has one entry per INPUT row (``design.n_total``), NaN for rows
that were dropped for missing values, so it lines up with the user's frame.  With new data the
rows come from :func:`mixframe.design.newdata.new_design`; random effects of levels the fit never
saw are 0, and rows the new design cannot use (missing values) are NaN.
"""
from __future__ import annotations

import numpy as np

from mixframe.models.base import kind_of


def expand(values: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Place per-used-row values into an array over all rows, NaN for the unused ones.

    Examples
    --------
    >>> expand(np.array([1.0, 2.0]), np.array([True, False, True]))
    array([ 1., nan,  2.])
    """
    values = np.asarray(values, dtype=float)
    used = np.asarray(used, dtype=bool)
    out = np.full((used.shape[0],) + values.shape[1:], np.nan)
    out[used] = values
    return out


def location_names(raw) -> list:
    """Names of the coefficients that multiply columns of X (the kind's design block: LMM/GLMM "fixed",
    CLMM/CLM "location")."""
    return [raw.coef_names[i] for i in raw.block_index(kind_of(raw).x_block)]


def beta_on_x(raw) -> np.ndarray:
    """The coefficient of every column of ``design.X`` (0 for a column without one)."""
    x_names = list(raw.design.x_names)
    beta = np.zeros(len(x_names))
    coef = dict(zip(raw.coef_names, np.asarray(raw.coef, dtype=float)))
    for name in location_names(raw):
        if name not in x_names:
            raise ValueError(f"coefficient '{name}' has no column in the design matrix")
        beta[x_names.index(name)] = coef[name]
    return beta


def random_part(raw, codes: list, Zs: list) -> np.ndarray:
    """Σ_t rowsum(Z_t * b_t[code]) with code −1 (a level the fit never saw) contributing 0."""
    n = Zs[0].shape[0] if Zs else 0
    out = np.zeros(n)
    if n == 0:                        # no rows (an empty new frame): nothing to add
        return out
    for b, code, Z in zip(raw.b, codes, Zs):
        code = np.asarray(code, dtype=np.int64)
        Z = np.asarray(Z, dtype=float).reshape(n, -1)
        seen = code >= 0
        rows = np.zeros_like(Z)
        rows[seen] = np.asarray(b, dtype=float).reshape(-1, Z.shape[1])[code[seen]]
        out += np.einsum("ij,ij->i", Z, rows)
    return out


def new_linear_predictor(raw, newdata, re: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Linear predictor on new rows (offset included) and the mask of usable rows.

    Returns
    -------
    eta : ndarray, one entry per row of ``newdata`` (NaN where a needed value is missing)
    used : ndarray of bool
    """
    from mixframe.design.newdata import new_design

    nd = new_design(raw.design, newdata, warn_unseen=re)
    used = ~np.asarray(nd["missing"], dtype=bool)
    X = np.asarray(nd["X"], dtype=float)
    eta = np.full(X.shape[0], np.nan)
    eta[used] = X[used] @ beta_on_x(raw)
    if nd.get("offset") is not None:
        eta[used] += np.asarray(nd["offset"], dtype=float)[used]
    if re and raw.design.terms:
        codes = [np.asarray(t["codes"])[used] for t in nd["terms"]]
        Zs = [np.asarray(t["Z"], dtype=float)[used] for t in nd["terms"]]
        eta[used] += random_part(raw, codes, Zs)
    return eta, used


def linear_predictor(raw, newdata=None, re: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """η per row of the input (or of ``newdata``) with its usable-row mask."""
    if newdata is None:
        used = np.asarray(raw.design.used, dtype=bool)
        eta = raw.eta if re else raw.eta_fixed
        return expand(eta, used), used
    return new_linear_predictor(raw, newdata, re)


def class_labels(raw, probs: np.ndarray, used: np.ndarray) -> np.ndarray:
    """The most probable category per row of an ordinal fit."""
    return kind_of(raw).class_labels(raw, probs, used)


def predict_values(raw, newdata=None, type: str | None = None, re: bool = True) -> np.ndarray:
    """The array behind ``MixedModel.predict`` (see there)."""
    kind = kind_of(raw)
    type = kind.check_predict_type(type)
    eta, used = linear_predictor(raw, newdata, re=re)
    return kind.predict(raw, eta, used, type)
