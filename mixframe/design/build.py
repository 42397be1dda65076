"""Build the frozen :class:`~mixframe.design.terms.Design` from a formula and a data frame.

Steps: parse the formula; read the frame with the encoder (:func:`mixframe.design.encode.learn`): the
rows used (listwise deletion over every column the model reads), X (R names, treatment contrasts), the
response for the model kind, and one :class:`RETerm` per random-effect bar (int32 codes, levels, Z),
with the :class:`~mixframe.design.spec.DesignSpec` learned from them (kept on the design: new rows and
streamed batches are encoded with it).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..formula import parse_formula
from .encode import group_codes, learn, model_frame, plain_column
from .terms import Design, RETerm

__all__ = ["KINDS", "build_design", "group_codes", "model_frame", "plain_column"]

KINDS = ("lmm", "glmm", "clmm", "clm")


def _fresh(values: np.ndarray) -> np.ndarray:
    """C-contiguous, writeable float64 owned by the design (a copy only of read-only inputs)."""
    if isinstance(values, np.ndarray) and not values.flags.writeable:
        return np.array(values, dtype=np.float64, order="C", copy=True)
    return np.ascontiguousarray(values, dtype=np.float64)


def design_from(spec, data) -> Design:
    """The :class:`Design` of encoded rows (a :class:`~mixframe.design.spec.DesignData`) and their spec."""
    n_obs = data.n
    terms = [RETerm(group=t.group, codes=c, levels=list(t.levels),
                    Z=np.ones((n_obs, 1)) if Z is None else _fresh(Z), col_names=list(t.col_names),
                    expr=t.expr, spec=t.spec, components=tuple(t.components),
                    level_values=getattr(t, "level_values", None))
             for t, c, Z in zip(spec.terms, data.codes, data.Z)]
    extra = {"kind": spec.kind, "family": spec.family, "fixed_rhs": spec.fixed_rhs,
             "intercept_dropped": spec.intercept_dropped, "factor_levels": spec.factor_levels,
             "column_kinds": spec.column_kinds, "offsets": list(spec.offsets),
             "offset_column": spec.offset_column, "offset_array": spec.offset_array,
             "columns": list(spec.all_columns), "n_dropped": data.n_total - n_obs,
             "missing_by_column": dict(data.missing_by_column)}
    return Design(X=_fresh(data.X), x_names=list(spec.x_names), y=_fresh(data.y),
                  weights=None if data.weights is None else _fresh(data.weights),
                  offset=None if data.offset is None else _fresh(data.offset),
                  terms=terms, used=data.used, n_total=data.n_total, response=spec.response,
                  response_levels=spec.response_levels, fixed_spec=spec.fixed_spec, formula=spec.formula,
                  fixed_formula=spec.fixed_formula, extra=extra, spec=spec)


def with_fixed_columns(design, kept) -> Design:
    """The design with only the fixed-effect columns ``kept`` (indices into ``design.x_names``), its spec
    keeping the same columns for new rows and batches; for a fit that decides the rank of X from the
    cross-products it computes (:func:`mixframe.fit.lmm.fit_lmm`)."""
    kept = [int(j) for j in kept]
    spec = design.spec
    full = list(range(len(design.x_names))) if spec.x_keep is None else list(spec.x_keep)
    names = [design.x_names[j] for j in kept]
    spec = dataclasses.replace(spec, x_names=names, x_keep=tuple(full[j] for j in kept))
    return dataclasses.replace(design, X=np.ascontiguousarray(design.X[:, kept]), x_names=names, spec=spec)


def build_design(formula, data, *, kind, family=None, groups=None, random=None, weights=None,
                 offset=None, levels=None, fixed_columns=None, check_response=True) -> Design:
    """Turn a formula and a data frame into the arrays a fit needs.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame, polars.DataFrame or pyarrow.Table
        Never modified.
    kind : {"lmm", "glmm", "clmm", "clm"}
    family : str, optional
        GLMM family name (``"binomial"``, ``"poisson"``, ...); shapes the response checks.
    groups, random : optional
        Extra random intercepts by name, or extra random-effect terms (see :func:`parse_formula`).
    weights, offset : str or array-like, optional
        A column name or one value per input row.
    levels : list, optional
        Order of the categories of a string ordinal response.
    fixed_columns : None, "all" or list of str
        Which fixed-effect columns to keep: None drops the columns aliased with earlier ones (with a
        warning naming them, as lme4 does); see :func:`mixframe.design.encode.learn`.
    check_response : bool, default True
        Refuse a constant response (see :func:`mixframe.design.encode.learn`).

    Returns
    -------
    Design
        With its :class:`~mixframe.design.spec.DesignSpec` in ``spec``.

    Raises
    ------
    FormulaError, DataError

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.5], "x": [0.0, 1.0, 0.0, 1.0], "g": list("aabb")})
    >>> d = build_design("y ~ x + (1 | g)", df, kind="lmm")
    >>> d.x_names, d.terms[0].levels, d.terms[0].codes.tolist()
    (['(Intercept)', 'x'], ['a', 'b'], [0, 0, 1, 1])
    """
    parsed = parse_formula(formula, groups=groups, random=random)
    spec, encoded = learn(parsed, data, kind=kind, family=family, weights=weights, offset=offset,
                          levels=levels, kinds=KINDS, fixed_columns=fixed_columns,
                          check_response=check_response)
    return design_from(spec, encoded)
