"""Encode new rows the way a fitted :class:`~mixframe.design.terms.Design` was encoded (for predict).

The rows go through the fit's own encoder (:meth:`mixframe.design.spec.DesignSpec.encode` with
``newdata=True``): the fixed matrix is rebuilt from the stored spec (same columns, same factor levels,
the fit's ``scale()`` centre and spread); grouping labels are looked up in the fit's levels (-1 for a
level the fit has not seen). Rows with a missing value in a column the predictions need are marked
in a mask and get NaN / -1 instead of raising.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import DataError
from ..formula.fixed import expression_columns
from .terms import Design

__all__ = ["needed_columns", "new_design"]


def needed_columns(design: Design, columns=()) -> dict:
    """Columns a prediction reads, by role: ``fixed`` (fixed part and bar left sides, offsets) and
    ``grouping`` (grouping-factor components)."""
    spec = design.spec
    if spec is not None:
        roles = spec.roles
        return {"fixed": set(roles["fixed"]) | set(roles["lhs"]) | set(roles["offset"]),
                "grouping": set(roles["grouping"])}
    rhs = design.extra.get("fixed_rhs") or design.fixed_formula.split("~", 1)[1]
    fixed = set(expression_columns(rhs, columns))
    for term in design.terms:
        if term.expr.strip() != "1":
            fixed |= expression_columns(term.expr, columns)
    for expr in design.extra.get("offsets", ()):
        fixed |= expression_columns(f"I({expr})", columns)
    grouping = {c for term in design.terms for c in term.components}
    return {"fixed": fixed, "grouping": grouping}


def _scatter(values: np.ndarray, ok: np.ndarray, width: int) -> np.ndarray:
    full = np.full((ok.shape[0], width), np.nan)
    full[ok] = values
    return np.ascontiguousarray(full)


def new_design(design: Design, newdata, warn_unseen: bool = True) -> dict:
    """Fixed matrix, offset and random-effect codes/Z for new rows, encoded as in the fit.

    Parameters
    ----------
    design : Design
        The design of a fit (from :func:`~mixframe.design.build.build_design`).
    newdata : pandas.DataFrame, polars.DataFrame or pyarrow.Table
        Rows to encode; the response is not needed.
    warn_unseen : bool, default True
        Warn, per grouping factor, how many rows have a level the fit has not seen (their random
        effects are 0 in predictions).

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
    spec = design.spec
    if spec is None:
        raise DataError("this design carries no spec to encode new rows with (build it with build_design)")
    data = spec.encode(newdata, newdata=True)
    if warn_unseen:
        for group, count in data.unseen_levels.items():
            warnings.warn(f"{count} row{' of newdata has a level' if count == 1 else 's of newdata have levels'} "
                          f"of {group!r} not seen in the fit; their random effects are set to 0",
                          UserWarning, stacklevel=2)
    ok = data.used
    n = data.n_total
    if spec.offset_array:
        warnings.warn("the offset= array of the fit cannot be applied to new rows; it is taken as 0 there "
                      "(pass the offset as a column name to carry it over)", UserWarning, stacklevel=2)
    offset = None
    if design.offset is not None:
        offset = np.full(n, np.nan)
        offset[ok] = 0.0 if data.offset is None else data.offset
    terms = []
    for term, codes, Z in zip(design.terms, data.codes, data.Z):
        full = np.array(codes if ok.all() else _scatter_codes(codes, ok), dtype=np.int32)
        if Z is None:
            Zn = np.ones((n, term.k))
            Zn[~ok] = np.nan
        else:
            Zn = _scatter(Z, ok, term.k)
        terms.append({"group": term.group, "codes": full, "Z": np.ascontiguousarray(Zn)})
    return {"X": _scatter(data.X, ok, design.p), "offset": offset, "terms": terms, "missing": ~ok, "n": n}


def _scatter_codes(codes: np.ndarray, ok: np.ndarray) -> np.ndarray:
    full = np.full(ok.shape[0], -1, dtype=np.int32)
    full[ok] = codes
    return full
