"""Encode new rows the way a fitted :class:`~mixframe.design.terms.Design` was encoded (for predict).

The fixed matrix is rebuilt from the stored formulaic ModelSpec (same columns, same factor levels,
the fit's ``scale()`` centre and spread); grouping labels are looked up in the fit's levels (-1 for a
level the fit has not seen). Rows with a missing value in a column the predictions need are marked
in a mask and get NaN / -1 instead of raising.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..io import frames
from ..errors import DataError
from ..formula.fixed import evaluate_numeric, expression_columns, matrix_from_spec, r_column_names
from .build import model_frame, plain_column
from .terms import Design

__all__ = ["needed_columns", "new_design"]


def needed_columns(design: Design, columns=()) -> dict:
    """Columns a prediction reads, by role: ``fixed`` (fixed part and bar left sides, offsets) and
    ``grouping`` (grouping-factor components)."""
    rhs = design.extra.get("fixed_rhs") or design.fixed_formula.split("~", 1)[1]
    fixed = set(expression_columns(rhs, columns))
    for term in design.terms:
        if term.expr.strip() != "1":
            fixed |= expression_columns(term.expr, columns)
    for expr in design.extra.get("offsets", ()):
        fixed |= expression_columns(f"I({expr})", columns)
    grouping = {c for term in design.terms for c in term.components}
    return {"fixed": fixed, "grouping": grouping}


def _codes_into(cache, term, ok: np.ndarray) -> np.ndarray:
    """Codes of the new rows into the fit's levels of ``term`` (-1: unseen level or missing row).

    Labels are looked up once per distinct label (or label combination), never once per row.
    """
    n = ok.shape[0]
    index = {lv: i for i, lv in enumerate(term.levels)}
    if len(term.components) == 1:
        codes, labels = cache.codes(term.components[0])
        table = np.array([index.get(lv, -1) for lv in labels] + [-1], dtype=np.int32)
        out = table[np.where(codes < 0, len(labels), codes)]
    else:
        key = np.zeros(n, dtype=np.int64)
        missing = np.zeros(n, dtype=bool)
        parts = []
        for name in term.components:
            codes, labels = cache.codes(name)
            missing |= codes < 0
            key = key * max(len(labels), 1) + np.maximum(codes, 0)
            parts.append(labels)
        uniq, inverse = np.unique(key, return_inverse=True)
        found = []
        for k in uniq.tolist():
            names = []
            for labels in reversed(parts):
                k, r = divmod(k, max(len(labels), 1))
                names.append(labels[r] if labels else "")
            found.append(index.get(":".join(reversed(names)), -1))
        out = np.asarray(found, dtype=np.int32)[inverse.reshape(-1)]
        out[missing] = -1
    out = np.array(out, dtype=np.int32).reshape(n)
    out[~ok] = -1
    return out


def _scatter(values: np.ndarray, ok: np.ndarray, width: int) -> np.ndarray:
    full = np.full((ok.shape[0], width), np.nan)
    full[ok] = values
    return np.ascontiguousarray(full)


def _offset(design: Design, cache, pdf, ok: np.ndarray):
    has_offset = design.offset is not None
    if not has_offset:
        return None
    n = ok.shape[0]
    total = np.zeros(n)
    col = design.extra.get("offset_column")
    if col is not None:
        total += cache.numeric(col)
    elif design.extra.get("offset_array"):
        warnings.warn("the offset= array of the fit cannot be applied to new rows; it is taken as 0 there "
                      "(pass the offset as a column name to carry it over)", UserWarning, stacklevel=3)
    for expr in design.extra.get("offsets", ()):
        col_name = plain_column(expr, cache.columns)
        if col_name is not None:
            total += cache.numeric(col_name)
        elif ok.any():
            part = np.full(n, np.nan)
            part[ok] = evaluate_numeric(expr, pdf, "offset")
            total += part
    total[~ok] = np.nan
    return total


def new_design(design: Design, newdata) -> dict:
    """Fixed matrix, offset and random-effect codes/Z for new rows, encoded as in the fit.

    Parameters
    ----------
    design : Design
        The design of a fit (from :func:`~mixframe.design.build.build_design`).
    newdata : pandas.DataFrame, polars.DataFrame or pyarrow.Table
        Rows to encode; the response is not needed.

    Returns
    -------
    dict
        ``X`` (n, p) float64 with the fit's columns; ``offset`` (n,) or None when the fit had none;
        ``terms``: one dict per fit term (same order) with ``group``, ``codes`` (int32 into the fit's
        levels, -1 for an unseen level or a missing row) and ``Z`` (n, k); ``missing`` (n,) bool, True
        where a needed value is missing (those rows hold NaN in ``X``, ``Z`` and ``offset``); ``n``.

    Raises
    ------
    DataError
        A needed column is absent, has the wrong type, or a fixed-effect factor has a level the
        fit has not seen.

    Examples
    --------
    >>> import pandas as pd
    >>> from mixframe.design.build import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.5], "x": [0.0, 1.0, 0.0, 1.0], "g": list("aabb")})
    >>> d = build_design("y ~ x + (1 | g)", df, kind="lmm")
    >>> nd = new_design(d, pd.DataFrame({"x": [2.0, None], "g": ["b", "z"]}))
    >>> nd["X"][0].tolist(), nd["terms"][0]["codes"].tolist(), nd["missing"].tolist()
    ([1.0, 2.0], [1, -1], [False, True])
    """
    cache = frames.ColumnCache(newdata)
    n = cache.n
    cols = cache.columns
    roles = needed_columns(design, design.extra.get("columns", ()))
    extra_cols = {design.extra["offset_column"]} if design.extra.get("offset_column") else set()
    needed = roles["fixed"] | roles["grouping"] | extra_cols
    absent = sorted(c for c in needed if c not in cols)
    if absent:
        raise DataError(f"new data lack the column(s) {absent} used by the model")
    missing = np.zeros(n, dtype=bool)
    for name in sorted(roles["fixed"] | extra_cols):
        missing |= cache.missing(name)
    ok = ~missing
    pdf, _, _ = model_frame(cache, roles["fixed"], ok, factor_levels=design.extra.get("factor_levels", {}))
    names = r_column_names(design.fixed_spec)
    if ok.any():
        X_ok = matrix_from_spec(design.fixed_spec, pdf)
        if design.extra.get("intercept_dropped"):
            X_ok = X_ok[:, [i for i, nm in enumerate(names) if nm != "(Intercept)"]]
    else:
        X_ok = np.zeros((0, design.p))
    terms = []
    for term in design.terms:
        if term.spec is None:
            Z = np.ones((n, term.k))
            Z[~ok] = np.nan
        elif ok.any():
            Z = _scatter(matrix_from_spec(term.spec, pdf, where=f"random-effect term ({term.expr} | "
                                                                    f"{term.group})"), ok, term.k)
        else:
            Z = np.full((n, term.k), np.nan)
        terms.append({"group": term.group, "codes": _codes_into(cache, term, ok), "Z": np.ascontiguousarray(Z)})
    return {"X": _scatter(X_ok, ok, design.p), "offset": _offset(design, cache, pdf, ok), "terms": terms,
            "missing": missing, "n": n}
