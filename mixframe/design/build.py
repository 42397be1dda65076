"""Build the frozen :class:`~mixframe.design.terms.Design` from a formula and a data frame.

Steps: parse the formula; find every column the model reads; drop rows with a missing value in any
of them (listwise); build X (R names, treatment contrasts), the response for the model kind, and one
:class:`RETerm` per random-effect bar (int32 codes, levels, Z).

Every column is read once per call (:class:`mixframe.io.frames.ColumnCache`) and subset to the used
rows once (:class:`_Rows`). Simple right-hand sides (columns, ``a:b``, ``a*b``, ``0 +``) and simple
arithmetic (``size - incidence``) are built directly with NumPy (:mod:`mixframe.formula.simple`);
everything else (``log()``, ``I()``, ``scale()``, ``C()``, ...) goes through formulaic on a pandas
model frame. Both give the same arrays; ``_FAST = False`` forces formulaic (for tests).
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from ..io import frames
from ..errors import DataError, FormulaError
from ..formula import parse_formula
from ..formula.fixed import check_columns, evaluate_numeric, expression_columns, fixed_matrix
from ..formula.simple import evaluate_arithmetic, simple_matrix
from .terms import Design, RETerm

__all__ = ["KINDS", "build_design", "group_codes", "model_frame", "plain_column"]

KINDS = ("lmm", "glmm", "clmm", "clm")
_PLAIN = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_FAST = True  # False: every matrix and expression through formulaic (the reference path)


def plain_column(expr: str, columns) -> str | None:
    """The column name when ``expr`` is just a column (bare or in backticks), else None."""
    expr = expr.strip()
    if expr.startswith("`") and expr.endswith("`") and expr[1:-1] in columns:
        return expr[1:-1]
    if _PLAIN.match(expr) and expr in columns:
        return expr
    return None


def model_frame(frame, names, rows: np.ndarray, factor_levels: dict | None = None):
    """A pandas frame of ``names`` over ``rows`` for formulaic (numbers float64, logicals bool,
    factors categorical with unused levels dropped, or with the given ``factor_levels``).

    Parameters
    ----------
    frame : data frame or :class:`mixframe.io.frames.ColumnCache`
    names : iterable of str
    rows : ndarray of bool or int
    factor_levels : dict of str to list, optional

    Returns
    -------
    frame : pandas.DataFrame
    levels : dict of str to list
        The levels used for each factor column.
    kinds : dict of str to str
        :func:`mixframe.io.frames.column_kind` of each column.
    """
    import pandas as pd

    cache = frame if isinstance(frame, frames.ColumnCache) else frames.ColumnCache(frame)
    data, levels, kinds = {}, {}, {}
    for name in sorted(names):
        kind = cache.kind(name)
        kinds[name] = kind
        if kind == "numeric":
            data[name] = cache.numeric(name)[rows]
        elif kind == "bool":
            data[name] = cache.numeric(name)[rows] > 0.5
        else:
            codes, lv = cache.codes(name)
            codes = codes[rows]
            if factor_levels is not None and name in factor_levels:
                codes = _recode(codes, lv, factor_levels[name], name)
                lv = list(factor_levels[name])
            else:
                codes, lv, _ = frames.drop_unused_levels(codes, lv)
            data[name] = pd.Categorical.from_codes(codes, categories=lv)
            levels[name] = lv
    n = int(np.count_nonzero(rows)) if np.asarray(rows).dtype == bool else len(rows)
    return pd.DataFrame(data, index=pd.RangeIndex(n)), levels, kinds


class _Rows:
    """The used rows of the data's columns, each column subset at most once per call."""

    def __init__(self, cache: frames.ColumnCache, used: np.ndarray, model_columns):
        self.cache, self.used = cache, used
        self.all = bool(used.all())
        self.n = int(used.sum())
        self.model_columns = set(model_columns)
        self._numeric, self._codes, self._frame = {}, {}, None

    def take(self, values: np.ndarray) -> np.ndarray:
        return values if self.all else values[self.used]

    def numeric(self, name: str) -> np.ndarray:
        """float64 values over the used rows (may be read-only: copy before storing)."""
        if name not in self._numeric:
            self._numeric[name] = self.take(self.cache.numeric(name))
        return self._numeric[name]

    def numeric_or_none(self, name: str):
        ok = name in self.cache and self.cache.kind(name) == "numeric"
        return self.numeric(name) if ok else None

    def codes(self, name: str):
        """(codes, levels) over the used rows, unused levels dropped."""
        if name not in self._codes:
            codes, lv = self.cache.codes(name)
            codes, lv, _ = frames.drop_unused_levels(self.take(codes), lv)
            self._codes[name] = (codes, lv)
        return self._codes[name]

    def frame(self):
        """The pandas model frame of the formula's columns for formulaic (built on first use)."""
        if self._frame is None:
            self._frame = model_frame(self.cache, self.model_columns, self.used)[0]
        return self._frame

    def levels_and_kinds(self):
        """What :func:`model_frame` reports: levels of the factor columns and kinds of all."""
        kinds = {name: self.cache.kind(name) for name in sorted(self.model_columns)}
        levels = {name: self.codes(name)[1] for name, k in kinds.items() if k not in ("numeric", "bool")}
        return levels, kinds

    def matrix(self, rhs: str, where: str):
        """(X, names, spec) of a right-hand side: NumPy for a simple one, else formulaic."""
        if _FAST:
            kinds = {name: self.cache.kind(name) for name in self.model_columns}
            out = simple_matrix(rhs, kinds, self.numeric, self.codes, n=self.n)
            if out is not None:
                return out
        return fixed_matrix(rhs, self.frame(), where=where)


def _recode(codes: np.ndarray, levels: list, target: list, name: str) -> np.ndarray:
    """Map codes into ``levels`` onto codes into ``target`` (DataError for an unknown label)."""
    index = {lv: i for i, lv in enumerate(target)}
    table = np.array([index.get(lv, -2) for lv in levels] + [-1], dtype=np.int32)
    out = table[np.where(codes < 0, len(levels), codes)]
    if (out == -2).any():
        unknown = sorted({levels[c] for c in np.unique(codes[out == -2])})
        raise DataError(f"column {name!r} has values {unknown[:5]} not among its levels {list(target)[:10]}")
    return out


def group_codes(frame, components, rows: np.ndarray):
    """int32 codes and labels of a grouping factor over ``rows`` (unused levels dropped).

    An interaction ``a:b`` has one level per observed combination, labelled ``"A:a"``, ordered with
    the first component varying slowest (as R's ``a:b`` with unused levels dropped).
    ``frame`` may be a :class:`mixframe.io.frames.ColumnCache`.
    """
    cache = frame if isinstance(frame, frames.ColumnCache) else frames.ColumnCache(frame)
    key = None
    comp_levels = []
    for name in components:
        codes, lv = cache.codes(name)
        codes, lv, _ = frames.drop_unused_levels(codes[rows], lv)
        comp_levels.append(lv)
        key = codes.astype(np.int64) if key is None else key * len(lv) + codes
    if len(components) == 1 and not (key < 0).any():
        return codes, comp_levels[0]  # every kept level is observed: the codes are already dense
    total = int(np.prod([len(lv) for lv in comp_levels], dtype=np.float64))
    if (key >= 0).all() and total <= max(4 * key.shape[0], 1 << 16):
        present = np.bincount(key, minlength=total) > 0  # a counting sort instead of np.unique's sort
        uniq = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[key]
    else:
        uniq, inverse = np.unique(key, return_inverse=True)
    labels = []
    for k in uniq.tolist():
        parts = []
        for lv in reversed(comp_levels):
            k, r = divmod(k, len(lv))
            parts.append(lv[r])
        labels.append(":".join(reversed(parts)))
    return inverse.astype(np.int32).reshape(-1), labels


def _vector_arg(value, cache, n_total: int, what: str):
    """A weights/offset argument: column name → (values, column) or array → (values, None)."""
    if value is None:
        return None, None
    if isinstance(value, str):
        check_columns({value}, cache.columns, f"{what}=")
        if cache.kind(value) not in ("numeric", "bool"):
            raise DataError(f"{what} column {value!r} must be numeric")
        return cache.numeric(value), value
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n_total:
        raise DataError(f"{what} has {arr.shape[0]} values; the data have {n_total} rows")
    return arr.copy(), None


def _columns_of(parsed, frame_columns, weights_col, offset_col):
    """Every data column the model reads, by role (checked to exist)."""
    cbind = parsed.cbind or ()
    resp = set()
    for expr in (cbind or (parsed.response,)):
        col = plain_column(expr, frame_columns)
        resp |= {col} if col else expression_columns(f"I({expr})", frame_columns)
    fixed = expression_columns(parsed.fixed, frame_columns)
    offs = set().union(*(expression_columns(f"I({e})", frame_columns) for e in parsed.offsets))
    lhs = set().union(*(expression_columns(b.expr, frame_columns) for b in parsed.bars))
    grouping = {c for b in parsed.bars for c in b.components}
    check_columns(resp, frame_columns, f"the response {parsed.response!r}")
    check_columns(fixed, frame_columns, f"the fixed part {parsed.fixed!r}")
    check_columns(offs, frame_columns, "offset()")
    for bar in parsed.bars:
        check_columns(expression_columns(bar.expr, frame_columns), frame_columns, f"random-effect term {bar.source or bar}")
        check_columns(set(bar.components), frame_columns, f"random-effect term {bar.source or bar}")
    extra = {c for c in (weights_col, offset_col) if c}
    return {"response": resp, "fixed": fixed, "offset": offs, "lhs": lhs, "grouping": grouping, "extra": extra}


def _used_rows(cache, columns, n_total, arrays):
    used = np.ones(n_total, dtype=bool)
    culprits = {}
    for name in sorted(columns):
        miss = cache.missing(name)
        if miss.any():
            culprits[name] = int(miss.sum())
            used &= ~miss
    for what, arr in arrays.items():
        if arr is not None:
            miss = np.isnan(arr)
            if miss.any():
                culprits[what] = int(miss.sum())
            used &= ~miss
    return used, culprits


def _check_finite(rows: _Rows, names):
    for name in sorted(names):
        if rows.cache.kind(name) == "numeric":
            values = rows.numeric(name)
            if not np.isfinite(values).all():
                bad = ~np.isfinite(values)
                raise DataError(f"column {name!r} has {int(bad.sum())} non-finite value(s) "
                                f"(e.g. {values[bad][0]}); replace or remove them")


def _numeric_expr(expr, rows: _Rows, where):
    col = plain_column(expr, rows.cache.columns)
    if col is not None:
        kind = rows.cache.kind(col)
        if kind not in ("numeric", "bool"):
            raise DataError(f"{where} column {col!r} must be numeric; found {kind} values")
        return rows.numeric(col)
    if _FAST:
        values = evaluate_arithmetic(expr, rows.numeric_or_none)
        if values is not None:
            return values
    return evaluate_numeric(expr, rows.frame(), where)


def _binomial_response(parsed, rows: _Rows, weights):
    if parsed.cbind:
        s = _numeric_expr(parsed.cbind[0], rows, "cbind successes")
        f = _numeric_expr(parsed.cbind[1], rows, "cbind failures")
        if (s < 0).any() or (f < 0).any():
            raise DataError(f"cbind response {parsed.response!r} has negative counts")
        n = s + f
        y = np.divide(s, n, out=np.zeros_like(n), where=n > 0)
        return y, (n if weights is None else weights * n), None
    col = plain_column(parsed.response, rows.cache.columns)
    if col is not None and rows.cache.kind(col) in ("factor", "string"):
        codes, lv = rows.codes(col)
        if len(lv) > 2:
            raise DataError(f"binomial response {col!r} has {len(lv)} levels {lv[:5]}; it needs 2 "
                            f"(the second is the success)")
        return (codes >= 1).astype(np.float64), weights, lv
    y = _numeric_expr(parsed.response, rows, "binomial response")
    if ((y < 0) | (y > 1)).any():
        raise DataError(f"binomial response {parsed.response!r} must be 0/1, logical, a two-level factor, "
                        f"a proportion with weights, or cbind(successes, failures); found values in "
                        f"[{y.min():g}, {y.max():g}]")
    return y, weights, None


def _level_text(value) -> str:
    """A user-given level as the frames module labels it (TRUE/FALSE, 1 not 1.0)."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return frames.r_number_label(float(value))
    return str(value)


def _ordinal_response(parsed, rows: _Rows, levels):
    cache = rows.cache
    col = plain_column(parsed.response, cache.columns)
    if col is None:
        raise FormulaError(f"the ordinal response {parsed.response!r} must be a column name")
    kind = cache.kind(col)
    codes, lv = cache.codes(col)
    codes = rows.take(codes)
    if levels is not None:
        lv_given = [_level_text(x) for x in levels]
        codes = _recode(codes, lv, lv_given, col)
        lv = lv_given
    elif kind == "string":
        raise DataError(f"ordinal response {col!r} holds strings, whose order is unknown; pass levels=[...] "
                        f"in order, or make it an ordered categorical / polars Enum")
    codes, kept, dropped = frames.drop_unused_levels(codes, lv)
    if dropped:
        warnings.warn(f"response levels {dropped} of {col!r} have no observations and are dropped",
                      UserWarning, stacklevel=3)
    if len(kept) < 2:
        raise DataError(f"ordinal response {col!r} has {len(kept)} observed categor"
                        f"{'y' if len(kept) == 1 else 'ies'}; it needs at least 2")
    return codes.astype(np.float64), kept


def _response(parsed, rows: _Rows, kind, family, weights, levels):
    """(y, weights, response_levels) for the model kind."""
    if kind in ("clmm", "clm"):
        y, lv = _ordinal_response(parsed, rows, levels)
        return y, weights, lv
    if kind == "glmm" and (family or "binomial") == "binomial":
        return _binomial_response(parsed, rows, weights)
    if parsed.cbind:
        raise FormulaError(f"cbind(...) responses are for the binomial family; got {family or kind!r}")
    where = "response" if kind == "lmm" else f"{family} response"
    return _numeric_expr(parsed.response, rows, where), weights, None


def _re_term(bar, rows: _Rows, kind) -> RETerm:
    codes, labels = group_codes(rows.cache, bar.components, rows.used)
    if len(labels) < 2:
        raise DataError(f"grouping factor {bar.group!r} in {bar} has {len(labels)} level"
                        f"{'' if len(labels) == 1 else 's'}; random effects need at least 2")
    if kind == "lmm" and len(labels) >= rows.n:
        raise DataError(f"grouping factor {bar.group!r} in {bar} has {len(labels)} levels for "
                        f"{rows.n} observations; an LMM needs fewer levels than observations")
    if bar.expr.strip() == "1":
        Z, names, spec = np.ones((codes.shape[0], 1)), ["(Intercept)"], None
    else:
        Z, names, spec = rows.matrix(bar.expr, where=f"random-effect term {bar}")
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effect term {bar} has no effects left of the bar")
    return RETerm(group=bar.group, codes=codes, levels=labels, Z=_fresh(Z), col_names=list(names),
                  expr=bar.expr, spec=spec, components=tuple(bar.components))


def _fresh(values: np.ndarray) -> np.ndarray:
    """C-contiguous, writeable float64 owned by the design (a copy only of read-only inputs)."""
    if isinstance(values, np.ndarray) and not values.flags.writeable:
        return np.array(values, dtype=np.float64, order="C", copy=True)
    return np.ascontiguousarray(values, dtype=np.float64)


def _check_kind(parsed, kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if kind == "clm" and parsed.bars:
        raise FormulaError(f"clm takes no random-effect terms; found {', '.join(map(str, parsed.bars))}: "
                           f"use clmm")
    if kind != "clm" and not parsed.bars:
        hint = ("add a random-effect term such as (1 | group), or use an ordinary least-squares tool "
                "for a model without random effects") if kind == "lmm" else \
            "add a random-effect term such as (1 | group)"
        raise FormulaError(f"formula {parsed.formula!r} has no random-effect term; {hint}")


def build_design(formula, data, *, kind, family=None, groups=None, random=None, weights=None,
                 offset=None, levels=None) -> Design:
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

    Returns
    -------
    Design

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
    cache = frames.ColumnCache(data)
    n_total = cache.n
    parsed = parse_formula(formula, groups=groups, random=random)
    _check_kind(parsed, kind)
    if n_total == 0:
        raise DataError("the data have no rows")
    cols = cache.columns
    w_all, w_col = _vector_arg(weights, cache, n_total, "weights")
    o_all, o_col = _vector_arg(offset, cache, n_total, "offset")
    roles = _columns_of(parsed, cols, w_col, o_col)
    every = set().union(*roles.values())
    used, culprits = _used_rows(cache, every, n_total,
                                {"weights": None if w_col else w_all, "offset": None if o_col else o_all})
    n_obs = int(used.sum())
    if n_obs == 0:
        raise DataError(f"no complete rows: every row has a missing value in {sorted(culprits)}")
    formulaic_cols = roles["fixed"] | roles["lhs"] | roles["offset"] | {
        c for c in roles["response"] if plain_column(parsed.response, cols) != c}
    rows = _Rows(cache, used, formulaic_cols)
    _check_finite(rows, every - roles["grouping"])
    factor_levels, col_kinds = rows.levels_and_kinds()
    X, x_names, spec = rows.matrix(parsed.fixed, where="the fixed effects")
    if not np.isfinite(X).all():
        bad = ~np.isfinite(X)
        name = x_names[int(np.nonzero(bad.any(axis=0))[0][0])]
        raise DataError(f"fixed-effect column {name!r} has non-finite values (e.g. log of 0)")
    intercept_dropped = kind in ("clmm", "clm") and "(Intercept)" in x_names
    if intercept_dropped:
        keep = [i for i, n in enumerate(x_names) if n != "(Intercept)"]
        X, x_names = X[:, keep], [x_names[i] for i in keep]
    w = None if w_all is None else rows.take(w_all)
    if w is not None and (w < 0).any():
        raise DataError("weights must be non-negative")
    y, w, response_levels = _response(parsed, rows, kind, family, w, levels)
    if not np.isfinite(y).all():
        raise DataError(f"response {parsed.response!r} has non-finite values")
    off = None if o_all is None else rows.take(o_all)
    for expr in parsed.offsets:
        values = _numeric_expr(expr, rows, "offset")
        off = values if off is None else off + values
    if off is not None and not np.isfinite(off).all():
        raise DataError("the offset has non-finite values")
    terms = [_re_term(bar, rows, kind) for bar in parsed.bars]
    terms = sorted(terms, key=lambda t: -t.n_levels)  # stable: ties keep formula order
    extra = {"kind": kind, "family": family, "fixed_rhs": parsed.fixed, "intercept_dropped": intercept_dropped,
             "factor_levels": factor_levels, "column_kinds": col_kinds, "offsets": parsed.offsets,
             "offset_column": o_col, "offset_array": o_col is None and o_all is not None,
             "columns": sorted(every), "n_dropped": n_total - n_obs,
             "missing_by_column": culprits}
    return Design(X=_fresh(X), x_names=list(x_names), y=_fresh(y),
                  weights=None if w is None else _fresh(w), offset=None if off is None else _fresh(off),
                  terms=terms, used=used, n_total=n_total, response=parsed.response,
                  response_levels=response_levels, fixed_spec=spec, formula=formula,
                  fixed_formula=parsed.fixed_formula, extra=extra)
