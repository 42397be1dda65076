"""Frame → arrays: the one encoder, used for the fit, for new rows and for every streamed batch.

:func:`learn` reads a frame for a fit: it finds the rows used (listwise deletion over every column the
model reads), learns the levels of every categorical column and grouping factor from them, builds X,
the response, weights, offset and per-term codes and Z, and returns them with the
:class:`~mixframe.design.spec.DesignSpec` it learned. :func:`encode` reads any other frame with that
spec: the same steps and the same validation rules, with the levels looked up instead of learned.

Every column is read once per call (:class:`mixframe.io.frames.ColumnCache`) and subset to the used
rows once (:class:`Rows`). Simple right-hand sides (columns, ``a:b``, ``a*b``, ``0 +``) and simple
arithmetic (``size - incidence``) are built directly with NumPy (:mod:`mixframe.formula.simple`);
everything else (``log()``, ``I()``, ``scale()``, ``C()``, ...) goes through formulaic on a pandas
model frame. Both give the same arrays; ``_FAST = False`` forces formulaic (for tests).

The validation rules, applied to the fit's rows and to every batch (new rows for predictions are only
checked for what they need):

- a row with a missing value in a column the model reads is dropped (counted per column);
- numeric columns, X, the response and the offset must be finite; weights non-negative;
- a binomial response is 0/1, logical, a two-level factor, a proportion or ``cbind(s, f)`` with
  non-negative counts; an ordinal response has an order (a factor, an Enum, or ``levels=``);
- a categorical value of the fixed part must be one of the fit's levels; a grouping level too, except
  in new rows (an unseen level gets code -1 there).
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from ..errors import DataError, FormulaError
from ..formula.fixed import (check_columns, evaluate_numeric, expression_columns, fixed_matrix,
                             matrix_from_spec)
from ..formula.simple import SimpleSpec, evaluate_arithmetic, simple_matrix
from .._ext.checks import count_nonfinite, full_rank_crossprod, is_constant
from ..io import frames
from .spec import ColumnLevels, DesignData, DesignSpec, TermSpec

__all__ = ["RANK_TOL", "Rows", "encode", "group_codes", "independent_columns", "learn", "model_frame",
           "plain_column", "reduce_fixed", "used_rows"]

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


def _recode(codes: np.ndarray, levels: list, target: list, name: str) -> np.ndarray:
    """Map codes into ``levels`` onto codes into ``target`` (DataError for an unknown label)."""
    index = {lv: i for i, lv in enumerate(target)}
    table = np.array([index.get(lv, -2) for lv in levels] + [-1], dtype=np.int32)
    out = table[np.where(codes < 0, len(levels), codes)]
    if (out == -2).any():
        unknown = sorted({levels[c] for c in np.unique(codes[out == -2])})
        raise DataError(f"column {name!r} has values {unknown[:5]} not among its levels {list(target)[:10]}")
    return out


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


def _group_codes(cache, components, rows):
    """(codes, labels, component levels, keys) of a grouping factor over ``rows`` (None: every row); ``keys``
    (None for one component) are the observed combinations as indices into the product of the components'
    levels."""
    key = None
    comp_levels = []
    for name in components:
        codes, lv = cache.codes(name)
        codes, lv, _ = frames.drop_unused_levels(codes if rows is None else codes[rows], lv)
        comp_levels.append(lv)
        key = codes.astype(np.int64) if key is None else key * len(lv) + codes
    if len(components) == 1 and not (key < 0).any():
        return codes, comp_levels[0], comp_levels, None  # every kept level is observed: already dense
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
    return inverse.astype(np.int32).reshape(-1), labels, comp_levels, np.asarray(uniq, dtype=np.int64)


def group_codes(frame, components, rows: np.ndarray):
    """int32 codes and labels of a grouping factor over ``rows`` (unused levels dropped).

    An interaction ``a:b`` has one level per observed combination, labelled ``"A:a"``, ordered with
    the first component varying slowest (as R's ``a:b`` with unused levels dropped).
    ``frame`` may be a :class:`mixframe.io.frames.ColumnCache`.
    """
    cache = frame if isinstance(frame, frames.ColumnCache) else frames.ColumnCache(frame)
    codes, labels, _, _ = _group_codes(cache, components, rows)
    return codes, labels


class Rows:
    """The used rows of a frame's columns, each column subset at most once per call.

    With ``spec`` (a :class:`DesignSpec`), categorical columns are coded into the spec's levels
    (a value outside them is a DataError); without, their levels are those observed in the rows.
    """

    def __init__(self, cache: frames.ColumnCache, used: np.ndarray, model_columns, spec=None):
        self.cache, self.used = cache, used
        self.all = bool(used.all())
        self.n = int(used.sum())
        self.model_columns = set(model_columns)
        self.spec = spec
        self._numeric, self._codes, self._frame = {}, {}, None

    def take(self, values: np.ndarray) -> np.ndarray:
        return values if self.all else values[self.used]

    def numeric(self, name: str) -> np.ndarray:
        """float64 values over the used rows (may be read-only: copy before storing)."""
        if name not in self._numeric:
            self._numeric[name] = self.take(self.cache.numeric(name))
        return self._numeric[name]

    def numeric_read(self, name):
        """The values :meth:`numeric` returned for ``name`` if it was read (else None)."""
        return self._numeric.get(name)

    def numeric_or_none(self, name: str):
        ok = name in self.cache and self.cache.kind(name) == "numeric"
        return self.numeric(name) if ok else None

    def codes(self, name: str):
        """(codes, levels) over the used rows: the observed levels, or the spec's."""
        if name not in self._codes:
            if self.spec is not None and name in self.spec.columns:
                levels = self.spec.columns[name]
                codes = self.take(levels.codes(self.cache))
                if (codes < 0).any():
                    _unseen(self.cache, name, codes, levels.labels, self.take)
                self._codes[name] = (codes, levels.labels)
            else:
                codes, lv = self.cache.codes(name)
                codes, lv, _ = frames.drop_unused_levels(self.take(codes), lv)
                self._codes[name] = (codes, lv)
        return self._codes[name]

    def frame(self):
        """The pandas model frame of the formula's columns for formulaic (built on first use)."""
        if self._frame is None:
            levels = None if self.spec is None else self.spec.factor_levels
            self._frame = model_frame(self.cache, self.model_columns, self.used, factor_levels=levels)[0]
        return self._frame

    def levels_and_kinds(self):
        """What :func:`model_frame` reports: levels of the factor columns and kinds of all."""
        kinds = {name: self.cache.kind(name) for name in sorted(self.model_columns)}
        levels = {name: self.codes(name)[1] for name, k in kinds.items() if k not in ("numeric", "bool")}
        return levels, kinds

    def matrix(self, rhs: str, where: str):
        """(X, names, spec) of a right-hand side, learned from the rows: NumPy for a simple one, else
        formulaic."""
        if _FAST:
            kinds = {name: self.cache.kind(name) for name in self.model_columns}
            out = simple_matrix(rhs, kinds, self.numeric, self.codes, n=self.n)
            if out is not None:
                return out
        return fixed_matrix(rhs, self.frame(), where=where)

    def matrix_of(self, spec, where: str) -> np.ndarray:
        """The model matrix of the rows with a fit's spec (a SimpleSpec or a formulaic ModelSpec)."""
        if isinstance(spec, SimpleSpec) and _FAST and all(
                name in self.spec.columns and self.spec.columns[name].labels == list(levels)
                for name, levels in spec.levels.items()):
            return spec.matrix(self.numeric, lambda name: self.codes(name)[0], self.n)
        return matrix_from_spec(spec, self.frame(), where=where)


def _unseen(cache, name, codes, labels, take):
    """Raise the DataError for values of ``name`` outside the fit's ``labels`` (codes -1 where not missing)."""
    bad = (codes < 0) & ~take(cache.missing(name))
    if bad.any():
        local, local_labels = cache.codes(name)
        found = sorted({local_labels[c] for c in np.unique(take(local)[bad]) if c >= 0})
        raise DataError(f"column {name!r} has values {found[:5]} not among its levels {list(labels)[:10]}")


# ---------------------------------------------------------------------------------- the model's columns
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


def used_rows(cache, columns, n_total, arrays):
    """Rows complete in ``columns`` and the ``arrays`` (weights/offset given as arrays), and the
    missing count per column."""
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


def _n_nonfinite(values) -> int:
    """The number of non-finite values of an array (one compiled pass over a contiguous one)."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.ravel(order="K")       # a view of a C- or F-ordered array
    return count_nonfinite(flat if flat.flags.c_contiguous else np.ascontiguousarray(flat))


def _first_nonfinite_column(M) -> int:
    """Index of the first column of a matrix holding a non-finite value, or -1."""
    if not _n_nonfinite(M):
        return -1
    return int(np.flatnonzero(~np.isfinite(M).all(axis=0))[0])


def _check_finite(rows: Rows, names):
    for name in sorted(names):
        if rows.cache.kind(name) == "numeric":
            values = rows.numeric(name)
            if _n_nonfinite(values):
                bad = ~np.isfinite(values)
                raise DataError(f"column {name!r} has {int(bad.sum())} non-finite value(s) "
                                f"(e.g. {values[bad][0]}); replace or remove them")


def _check_x(X, x_names):
    j = _first_nonfinite_column(X)
    if j >= 0:
        name = x_names[j]
        raise DataError(f"fixed-effect column {name!r} has non-finite values (e.g. log of 0)")


def _numeric_expr(expr, rows: Rows, where):
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


# ---------------------------------------------------------------------------------- rank of X
#: a column is aliased when its residual, after projection on the kept earlier columns, is below this
#: fraction of its own norm (the tolerance of R's ``qr``, which lm and lme4 use)
RANK_TOL = 1e-7


def independent_columns(xtx: np.ndarray, tol: float = RANK_TOL) -> list[int]:
    """Indices of the columns kept by the sequential rank check of a cross-product ``X'X``.

    Columns are taken in order; column ``j`` is kept unless its squared residual after projection on
    the kept earlier columns is below ``tol**2`` of its squared norm (an all-zero column is never kept).
    This is R's unpivoted ``qr`` rule (lme4 keeps the first of aliased columns in the formula's
    order), decided from the cross-product so that in-memory and streamed fits decide alike.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(5.0)
    >>> X = np.column_stack([np.ones(5), x, 2 * x, x ** 2])
    >>> independent_columns(X.T @ X)
    [0, 1, 3]
    """
    xtx = np.asarray(xtx, dtype=np.float64)
    p = xtx.shape[0]
    # full rank, the usual case: one Cholesky factor of the unit-scaled X'X, whose diagonal holds the residual
    # norms the loop below would find
    if full_rank_crossprod(xtx, tol):
        return list(range(p))
    norms = np.sqrt(np.clip(np.diag(xtx), 0.0, None))
    from scipy.linalg import solve_triangular

    kept: list[int] = []
    L = np.zeros((xtx.shape[0], xtx.shape[0]))     # Cholesky factor of the kept columns (unit scale)
    for j in range(xtx.shape[0]):
        if not norms[j] > 0:
            continue
        b = xtx[kept, j] / (norms[kept] * norms[j]) if kept else np.zeros(0)
        if kept:
            lj = solve_triangular(L[:len(kept), :len(kept)], b, lower=True, check_finite=False)
            r2 = 1.0 - float(lj @ lj)
        else:
            lj, r2 = b, 1.0
        if r2 > tol * tol:
            i = len(kept)
            L[i, :i] = lj
            L[i, i] = np.sqrt(r2)
            kept.append(j)
    return kept


def reduce_fixed(xtx: np.ndarray, names, implicit_intercept: bool = False, stacklevel: int = 2):
    """The columns of X kept by :func:`independent_columns` (all of them when X has full rank), with one
    UserWarning naming the dropped ones.

    ``implicit_intercept`` (ordinal models): ``xtx`` is the cross-product of ``[1, X]``, the ones
    column standing for the thresholds; a column aliased with it (constant on the rows) is dropped.

    Returns
    -------
    list of int
        Indices into ``names`` (the columns of X, without the implicit intercept).
    """
    names = list(names)
    kept = independent_columns(xtx)
    if implicit_intercept:
        kept = [j - 1 for j in kept if j > 0]
    dropped = [nm for j, nm in enumerate(names) if j not in set(kept)]
    if dropped:
        n = len(dropped)
        warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {n} "
                      f"{'column / coefficient' if n == 1 else 'columns / coefficients'}: {', '.join(dropped)}",
                      UserWarning, stacklevel=stacklevel)
    return kept


def _x_crossprod(X: np.ndarray, implicit_intercept: bool) -> np.ndarray:
    if implicit_intercept:
        s = X.sum(axis=0)
        out = np.empty((X.shape[1] + 1, X.shape[1] + 1))
        out[0, 0] = X.shape[0]
        out[0, 1:] = out[1:, 0] = s
        out[1:, 1:] = X.T @ X
        return out
    return X.T @ X


# ---------------------------------------------------------------------------------- the response
def _binomial_response(response, cbind, rows: Rows, weights, levels=None):
    if cbind:
        s = _numeric_expr(cbind[0], rows, "cbind successes")
        f = _numeric_expr(cbind[1], rows, "cbind failures")
        if (s < 0).any() or (f < 0).any():
            raise DataError(f"cbind response {response!r} has negative counts")
        n = s + f
        y = np.divide(s, n, out=np.zeros_like(n), where=n > 0)
        return y, (n if weights is None else weights * n), None
    col = plain_column(response, rows.cache.columns)
    if col is not None and rows.cache.kind(col) in ("factor", "string"):
        if levels is None:
            codes, lv = rows.codes(col)
        else:
            codes = _lookup(rows, col, levels)
            lv = list(levels)
        if len(lv) > 2:
            raise DataError(f"binomial response {col!r} has {len(lv)} levels {lv[:5]}; it needs 2 "
                            f"(the second is the success)")
        return (codes >= 1).astype(np.float64), weights, lv
    y = _numeric_expr(response, rows, "binomial response")
    if ((y < 0) | (y > 1)).any():
        raise DataError(f"binomial response {response!r} must be 0/1, logical, a two-level factor, "
                        f"a proportion with weights, or cbind(successes, failures); found values in "
                        f"[{y.min():g}, {y.max():g}]")
    return y, weights, None


def _lookup(rows: Rows, col: str, labels) -> np.ndarray:
    """Codes of a column over the used rows into given labels (DataError for another value)."""
    cache = rows.cache
    local, lv = cache.codes(col)
    return _recode(rows.take(local), lv, list(labels), col)


def _level_text(value) -> str:
    """A user-given level as the frames module labels it (TRUE/FALSE, 1 not 1.0)."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return frames.r_number_label(float(value))
    return str(value)


def _ordinal_response(response, rows: Rows, levels, fitted_levels=None):
    cache = rows.cache
    col = plain_column(response, cache.columns)
    if col is None:
        raise FormulaError(f"the ordinal response {response!r} must be a column name")
    if fitted_levels is not None:
        return _lookup(rows, col, fitted_levels).astype(np.float64), list(fitted_levels)
    kind = cache.kind(col)
    codes, lv = cache.codes(col)
    codes = rows.take(codes)
    if levels is not None:
        lv_given = [_level_text(x) for x in levels]
        repeated = sorted({x for x in lv_given if lv_given.count(x) > 1})
        if repeated:
            raise DataError(f"levels= for the ordinal response {col!r} repeats {repeated}; give each level "
                            f"once, in order")
        codes = _recode(codes, lv, lv_given, col)
        lv = lv_given
    elif kind == "string":
        raise DataError(f"ordinal response {col!r} holds strings, whose order is unknown; pass levels=[...] "
                        f"in order, or make it an ordered categorical / polars Enum")
    elif cache.unordered_categorical(col):
        raise DataError(f"ordinal response {col!r} is an unordered categorical, whose order is unknown; pass "
                        f"levels=[...] in order, or make it an ordered categorical / polars Enum")
    codes, kept, dropped = frames.drop_unused_levels(codes, lv)
    if dropped:
        warnings.warn(f"response levels {dropped} of {col!r} have no observations and are dropped",
                      UserWarning, stacklevel=4)
    if len(kept) < 2:
        raise DataError(f"ordinal response {col!r} has {len(kept)} observed categor"
                        f"{'y' if len(kept) == 1 else 'ies'}; it needs at least 2")
    return codes.astype(np.float64), kept


def _response(response, cbind, rows: Rows, kind, family, weights, levels, fitted_levels=None):
    """(y, weights, response_levels) for the model kind (``fitted_levels``: the fit's, to look up)."""
    if kind in ("clmm", "clm"):
        y, lv = _ordinal_response(response, rows, levels, fitted_levels)
        return y, weights, lv
    if kind == "glmm" and (family or "binomial") == "binomial":
        return _binomial_response(response, cbind, rows, weights, fitted_levels)
    if cbind:
        raise FormulaError(f"cbind(...) responses are for the binomial family; got {family or kind!r}")
    where = "response" if kind == "lmm" else f"{family} response"
    return _numeric_expr(response, rows, where), weights, None


def _check_response_varies(y, w, response, kind, family):
    """DataError naming the response when it cannot be fitted: a constant LMM response, a binomial
    response without successes or without failures, a Poisson response of zeros (rows of zero weight
    do not count)."""
    yv = y if w is None else y[w > 0]
    if yv.size == 0:
        return
    # every rule is about a constant response (the binomial proportions and Poisson counts are >= 0)
    constant, value = is_constant(np.ascontiguousarray(yv, dtype=np.float64))
    if not constant:
        return
    fam = (family or "binomial") if kind == "glmm" else None
    if kind == "lmm":
        raise DataError(f"the response {response!r} is constant (every value is {value:g}); a linear mixed "
                        f"model needs a response that varies")
    if fam == "binomial" and value in (0.0, 1.0):
        what = "0 (no successes)" if value == 0 else "1 (no failures)"
        raise DataError(f"the binomial response {response!r} is all {what}; the model cannot be fitted")
    if fam == "poisson" and value == 0:
        raise DataError(f"the poisson response {response!r} is all 0; the model cannot be fitted")


def _weights(w_all, rows: Rows, column=None):
    w = None if w_all is None else rows.take(w_all)
    if w is not None and _n_nonfinite(w):
        bad = ~np.isfinite(w)
        where = f"the weights column {column!r}" if column else "weights="
        raise DataError(f"{where} has {int(bad.sum())} non-finite weight(s) (e.g. {w[bad][0]}); weights must be "
                        f"finite and non-negative")
    if w is not None and (w < 0).any():
        raise DataError("weights must be non-negative")
    return w


def _check_z(Z, names, where: str):
    """DataError naming the effect of a random-effect term whose column has non-finite values."""
    j = -1 if Z is None else _first_nonfinite_column(Z)
    if j >= 0:
        bad = ~np.isfinite(Z[:, j])
        raise DataError(f"{where} has non-finite values in {names[j]!r} ({int(bad.sum())} row(s), e.g. "
                        f"{Z[bad, j][0]}); replace or remove them (e.g. a log of 0 or a division by 0)")


def _offset(o_all, offsets, rows: Rows, check: bool = True):
    off = None if o_all is None else rows.take(o_all)
    for expr in offsets:
        values = _numeric_expr(expr, rows, "offset")
        off = values if off is None else off + values
    if check and off is not None and _n_nonfinite(off):
        raise DataError("the offset has non-finite values")
    return off


# ---------------------------------------------------------------------------------- the fit: learn and encode
def _check_kind(parsed, kind, kinds):
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}; got {kind!r}")
    if kind == "clm" and parsed.bars:
        raise FormulaError(f"clm takes no random-effect terms; found {', '.join(map(str, parsed.bars))}: "
                           f"use clmm")
    if kind != "clm" and not parsed.bars:
        hint = ("add a random-effect term such as (1 | group), or use an ordinary least-squares tool "
                "for a model without random effects") if kind == "lmm" else \
            "add a random-effect term such as (1 | group)"
        raise FormulaError(f"formula {parsed.formula!r} has no random-effect term; {hint}")


def _learn_term(bar, rows: Rows, kind):
    """(TermSpec, codes, Z or None) of one bar, its levels learned from the rows."""
    cache = rows.cache
    codes, labels, comp_levels, keys = _group_codes(cache, bar.components, None if rows.all else rows.used)
    if len(labels) < 2:
        raise DataError(f"grouping factor {bar.group!r} in {bar} has {len(labels)} level"
                        f"{'' if len(labels) == 1 else 's'}; random effects need at least 2")
    if kind == "lmm" and len(labels) >= rows.n:
        raise DataError(f"grouping factor {bar.group!r} in {bar} has {len(labels)} levels for "
                        f"{rows.n} observations; an LMM needs fewer levels than observations")
    if bar.expr.strip() == "1":
        Z, names, spec = None, ["(Intercept)"], None
    else:
        Z, names, spec = rows.matrix(bar.expr, where=f"random-effect term {bar}")
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effect term {bar} has no effects left of the bar")
        _check_z(Z, names, f"random-effect term {bar.source or bar}")
    parts = tuple(ColumnLevels(c, cache.kind(c), lv) for c, lv in zip(bar.components, comp_levels))
    values = None
    if len(bar.components) == 1:
        dtype = cache.value_dtype(bar.components[0])
        if dtype is not None:
            read = int if dtype.kind in "iu" else float
            values = np.array([read(lv) for lv in labels], dtype=dtype)
    term = TermSpec(group=bar.group, components=tuple(bar.components), expr=bar.expr, col_names=list(names),
                    spec=spec, levels=list(labels), parts=parts, keys=keys, level_values=values)
    return term, codes, Z


def _kept_fixed(X, x_names, kind, intercept_dropped, fixed_columns):
    """(X, names, x_keep) with the intercept of an ordinal model and aliased columns removed;
    ``x_keep`` (None when every column stays) indexes the columns of the fixed part's full matrix."""
    keep = [i for i, n in enumerate(x_names) if n != "(Intercept)"] if intercept_dropped else \
        list(range(len(x_names)))
    names = [x_names[i] for i in keep]
    if fixed_columns is None:
        implicit = kind in ("clmm", "clm")
        sel = reduce_fixed(_x_crossprod(X[:, keep] if intercept_dropped else X, implicit), names, implicit,
                           stacklevel=6)
    elif isinstance(fixed_columns, str) and fixed_columns == "all":
        sel = list(range(len(keep)))
    else:
        wanted = set(fixed_columns)
        sel = [i for i, nm in enumerate(names) if nm in wanted]
    x_keep = [keep[i] for i in sel]
    if len(x_keep) == len(x_names):
        return X, list(x_names), None
    return X[:, x_keep], [x_names[i] for i in x_keep], x_keep


def learn(parsed, data, *, kind, family=None, weights=None, offset=None, levels=None, kinds=(),
          fixed_columns=None, check_response=True):
    """Read a fit's frame: the arrays of its used rows and the spec learned from them.

    Parameters
    ----------
    parsed : ParsedFormula
        The parsed formula (:func:`mixframe.formula.parse_formula`).
    data : pandas.DataFrame, polars.DataFrame or pyarrow.Table
    kind, family, weights, offset, levels
        As for :func:`mixframe.design.build.build_design`.
    kinds : tuple of str
        The model kinds accepted.
    fixed_columns : None, "all" or list of str
        None: aliased columns of X are dropped (:func:`reduce_fixed`, with a warning naming them);
        ``"all"``: every column is kept; a list: the columns of those names are kept (a streamed fit,
        whose rank is decided from the summed cross-products).
    check_response : bool, default True
        Refuse a response that cannot be fitted (constant, no binomial successes or failures, Poisson
        zeros); False for the template rows of a streamed fit, which hold a few rows of the data only.

    Returns
    -------
    spec : DesignSpec
    data : DesignData
        Terms in the order of ``spec.terms`` (largest first).
    """
    cache = frames.ColumnCache(data)
    n_total = cache.n
    _check_kind(parsed, kind, kinds)
    if n_total == 0:
        raise DataError("the data have no rows")
    cols = cache.columns
    w_all, w_col = _vector_arg(weights, cache, n_total, "weights")
    o_all, o_col = _vector_arg(offset, cache, n_total, "offset")
    roles = _columns_of(parsed, cols, w_col, o_col)
    every = set().union(*roles.values())
    used, culprits = used_rows(cache, every, n_total,
                                {"weights": None if w_col else w_all, "offset": None if o_col else o_all})
    n_obs = int(used.sum())
    if n_obs == 0:
        raise DataError(f"no complete rows: every row has a missing value in {sorted(culprits)}")
    formulaic_cols = roles["fixed"] | roles["lhs"] | roles["offset"] | {
        c for c in roles["response"] if plain_column(parsed.response, cols) != c}
    rows = Rows(cache, used, formulaic_cols)
    finite = every - roles["grouping"] - ({w_col} if w_col else set())
    _check_finite(rows, finite)
    factor_levels, col_kinds = rows.levels_and_kinds()
    X, x_names, fixed_spec = rows.matrix(parsed.fixed, where="the fixed effects")
    _check_x(X, x_names)
    intercept_dropped = kind in ("clmm", "clm") and "(Intercept)" in x_names
    X, x_names, x_keep = _kept_fixed(X, x_names, kind, intercept_dropped, fixed_columns)
    w = _weights(w_all, rows, w_col)
    y, w, response_levels = _response(parsed.response, parsed.cbind, rows, kind, family, w, levels)
    # a response that is a column as it is was checked with the columns (_check_finite)
    y_col = plain_column(parsed.response, cols)
    if not (y_col in finite and y is rows.numeric_read(y_col)) and _n_nonfinite(y):
        raise DataError(f"response {parsed.response!r} has non-finite values")
    if check_response:
        _check_response_varies(y, w, parsed.response, kind, family)
    off = _offset(o_all, parsed.offsets, rows)
    learned = [_learn_term(bar, rows, kind) for bar in parsed.bars]
    order = sorted(range(len(learned)), key=lambda i: -len(learned[i][0].levels))  # stable: ties keep order
    learned = [learned[i] for i in order]
    columns = {name: ColumnLevels(name, col_kinds[name], lv) for name, lv in factor_levels.items()}
    for term, _, _ in learned:
        for part in term.parts:
            columns.setdefault(part.name, part)
    for part_spec in [fixed_spec] + [t.spec for t, _, _ in learned]:
        if isinstance(part_spec, SimpleSpec):  # logical columns of simple matrices, coded as learned
            for name, lv in part_spec.levels.items():
                columns.setdefault(name, ColumnLevels(name, col_kinds[name], lv))
    spec = DesignSpec(
        formula=parsed.formula, kind=kind, family=family, response=parsed.response,
        cbind=tuple(parsed.cbind) if parsed.cbind else None, fixed_rhs=parsed.fixed,
        fixed_formula=parsed.fixed_formula, offsets=tuple(parsed.offsets), weights_column=w_col,
        offset_column=o_col, weights_array=w_col is None and w_all is not None,
        offset_array=o_col is None and o_all is not None,
        roles=roles, column_kinds=col_kinds, factor_levels=factor_levels,
        columns=columns, fixed_spec=fixed_spec, x_names=list(x_names), intercept_dropped=intercept_dropped,
        x_keep=None if x_keep is None else tuple(x_keep),
        terms=tuple(t for t, _, _ in learned), response_levels=response_levels,
        formulaic_columns=tuple(sorted(formulaic_cols)), all_columns=sorted(every))
    out = DesignData(X=X, y=y, weights=w, offset=off, codes=[c for _, c, _ in learned],
                     Z=[Z for _, _, Z in learned], used=used, n_total=n_total, missing_by_column=culprits,
                     response_levels=response_levels)
    return spec, out


def encode(spec: DesignSpec, data, *, newdata: bool = False, weights=None, offset=None) -> DesignData:
    """Arrays of a frame coded as the fit described by ``spec`` was.

    Parameters
    ----------
    spec : DesignSpec
    data : pandas.DataFrame, polars.DataFrame, pyarrow.Table or a ColumnCache of one
    newdata : bool, default False
        False (a batch of a fit's data): every column of the model is read, rows with a missing value
        are dropped, and the rules of the fit apply (a grouping level the fit has not seen is an error).
        True (rows to predict): the response and weights are not read; a row is used when its
        fixed-part, bar and offset columns are complete; a missing or unseen grouping level is code -1.
    weights, offset : array-like, optional
        Per-row values for a spec whose fit had them as arrays (a batch of the fit's own rows).

    Returns
    -------
    DesignData

    Raises
    ------
    DataError
        A needed column is absent or has the wrong type, a value breaks a rule of the fit (see the
        module notes).

    Examples
    --------
    >>> import pandas as pd
    >>> from mixframe.design.build import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.5], "x": [0.0, 1.0, 0.0, 1.0], "g": list("aabb")})
    >>> spec = build_design("y ~ x + (1 | g)", df, kind="lmm").spec
    >>> out = spec.encode(df.iloc[2:])
    >>> out.X.tolist(), out.y.tolist(), out.codes[0].tolist()
    ([[1.0, 0.0], [1.0, 1.0]], [3.0, 4.5], [1, 1])
    """
    cache = data if isinstance(data, frames.ColumnCache) else frames.ColumnCache(data)
    n_total = cache.n
    roles = spec.roles
    if newdata:
        read = set(roles["fixed"]) | set(roles["lhs"]) | set(roles["offset"])
        if spec.offset_column:
            read.add(spec.offset_column)
        needed = read | set(roles["grouping"])
    else:
        read = needed = set(spec.all_columns)
    absent = sorted(c for c in needed if c not in cache.columns)
    if absent:
        raise DataError(f"{'new data lack' if newdata else 'the data lack'} the column(s) {absent} used by "
                        f"the model")
    w_all = o_all = None
    if not newdata and spec.weights_column is None and weights is not None:
        w_all = _vector_arg(weights, cache, n_total, "weights")[0]
    if spec.offset_column is None and offset is not None:
        o_all = _vector_arg(offset, cache, n_total, "offset")[0]
    elif spec.offset_column is not None:
        o_all = cache.numeric(spec.offset_column)
    if spec.weights_column is not None and not newdata:
        w_all = cache.numeric(spec.weights_column)
    used, culprits = used_rows(cache, read, n_total, {"weights": w_all if spec.weights_column is None else None,
                                                       "offset": o_all if spec.offset_column is None else None})
    rows = Rows(cache, used, [c for c in spec.formulaic_columns if c in read], spec=spec)
    if rows.n == 0:
        return _no_rows(spec, used, n_total, culprits, newdata, w_all is not None, o_all is not None)
    if not newdata:
        _check_finite(rows, set(read) - set(roles["grouping"]) - {spec.weights_column})
    X = rows.matrix_of(spec.fixed_spec, "the fixed effects")
    if spec.x_keep is not None:
        X = X[:, list(spec.x_keep)]
    elif spec.intercept_dropped:
        from ..formula.fixed import r_column_names

        names = r_column_names(spec.fixed_spec)
        X = X[:, [i for i, nm in enumerate(names) if nm != "(Intercept)"]]
    if not newdata:
        _check_x(X, spec.x_names)
    y = w = response_levels = None
    if not newdata:
        w = _weights(w_all, rows, spec.weights_column)
        y, w, response_levels = _response(spec.response, spec.cbind, rows, spec.kind, spec.family, w, None,
                                          spec.response_levels)
        if _n_nonfinite(y):
            raise DataError(f"response {spec.response!r} has non-finite values")
    off = _offset(o_all, spec.offsets, rows, check=not newdata)
    codes, Zs, unseen = [], [], {}
    for term in spec.terms:
        c = rows.take(term.codes(cache))
        if (c < 0).any():
            if not newdata:
                raise DataError(f"grouping factor {term.group!r} has a level that the fit has not seen "
                                f"(levels: {term.levels[:10]})")
            present = c < 0
            for comp in term.components:
                present &= ~rows.take(cache.missing(comp))
            if present.any():
                unseen[term.group] = max(unseen.get(term.group, 0), int(present.sum()))
        codes.append(c)
        if term.spec is None:
            Zs.append(None)
        else:
            Z = rows.matrix_of(term.spec, f"random-effect term ({term.expr} | {term.group})")
            if not newdata:
                _check_z(Z, term.col_names, f"random-effect term ({term.expr} | {term.group})")
            Zs.append(Z)
    return DesignData(X=X, y=y, weights=w, offset=off, codes=codes, Z=Zs, used=used, n_total=n_total,
                      missing_by_column=culprits, response_levels=response_levels, unseen_levels=unseen)


def _no_rows(spec: DesignSpec, used, n_total, culprits, newdata, weighted, offset) -> DesignData:
    """The empty :class:`DesignData` of a frame without a complete row."""
    empty = np.zeros(0)
    weighted = weighted or (spec.cbind is not None and spec.kind == "glmm")
    return DesignData(X=np.zeros((0, spec.p)), y=None if newdata else empty,
                      weights=empty if weighted and not newdata else None,
                      offset=empty if offset or spec.offsets else None,
                      codes=[np.zeros(0, dtype=np.int32) for _ in spec.terms],
                      Z=[None if t.spec is None else np.zeros((0, t.k)) for t in spec.terms], used=used,
                      n_total=n_total, missing_by_column=culprits, response_levels=spec.response_levels)
