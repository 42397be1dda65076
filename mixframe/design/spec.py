"""What a fitted model knows about its data, without the data: :class:`DesignSpec`.

A spec holds the roles of the columns, the levels of every categorical column and grouping factor,
the fixed part's spec (a :class:`~mixframe.formula.simple.SimpleSpec` or a formulaic ModelSpec), the
shapes of the random-effect terms and how the response, weights and offset are read. It is learned
once, when the fit's design is built (:func:`mixframe.design.build.build_design`), holds no per-row
array, pickles, and turns any frame with the model's columns into arrays coded as the fit's
(:meth:`DesignSpec.encode`, the same encoder that built the fit's arrays): new rows for predictions,
and every batch of a streamed fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ColumnLevels", "DesignData", "DesignSpec", "TermSpec"]

_TABLE_MAX = 1 << 24        # largest lookup table (entries) for integer values or level combinations


class ColumnLevels:
    """The levels of one categorical column (or numeric grouping column) as the fit saw them.

    :meth:`codes` looks a frame's values up in them: numbers with integral values through a table
    indexed by value, strings by hashing (pyarrow ``index_in``), anything else through the labels
    (one dictionary look-up per distinct label). -1 marks a missing value or a value the fit has not
    seen.

    Parameters
    ----------
    name : str
        Column name.
    kind : str
        :func:`mixframe.io.frames.column_kind` of the column in the fit's data.
    labels : list of str
        Level labels, in the fit's order (the codes index them).

    Examples
    --------
    >>> import pandas as pd
    >>> from mixframe.io.frames import ColumnCache
    >>> ColumnLevels("g", "numeric", ["1", "3"]).codes(ColumnCache(pd.DataFrame({"g": [3, 2, 1]}))).tolist()
    [1, -1, 0]
    """

    __slots__ = ("name", "kind", "labels", "_index", "_table", "_value_set")

    def __init__(self, name: str, kind: str, labels):
        self.name, self.kind, self.labels = name, kind, list(labels)
        self._index = self._table = self._value_set = None

    def __getstate__(self):
        return {"name": self.name, "kind": self.kind, "labels": self.labels}

    def __setstate__(self, state):
        self.__init__(state["name"], state["kind"], state["labels"])

    def __repr__(self) -> str:
        return f"ColumnLevels({self.name!r}, {self.kind!r}, {len(self.labels)} levels)"

    @property
    def index(self) -> dict:
        """Label → code."""
        if self._index is None:
            self._index = {lv: i for i, lv in enumerate(self.labels)}
        return self._index

    def _number_table(self):
        """(low, table) when every label is an integral number of moderate size and range, else False."""
        if self._table is None:
            self._table = False
            try:
                values = np.array([float(lv) for lv in self.labels], dtype=np.float64)
            except ValueError:
                return False
            if values.size and np.all(np.isfinite(values)) and np.all(values == np.floor(values)) \
                    and np.abs(values).max() < 1e15:
                low, span = float(values.min()), float(values.max() - values.min())
                if span <= min(4 * values.size + (1 << 20), _TABLE_MAX) and np.unique(values).size == values.size:
                    table = np.full(int(span) + 1, -1, dtype=np.int32)
                    table[(values - low).astype(np.int64)] = np.arange(values.size, dtype=np.int32)
                    self._table = (low, table)
        return self._table

    def codes(self, cache) -> np.ndarray:
        """int32 codes of a column of ``cache`` (a :class:`~mixframe.io.frames.ColumnCache`) into the labels."""
        kind = cache.kind(self.name)
        if kind == "numeric" and self.kind == "numeric":
            found = self._number_table()
            if found:
                from ..linalg.crossprod import table_codes

                return table_codes(cache.numeric(self.name), found[0], found[1])
        if kind == "string" and self.kind == "string":
            arr = cache.strings(self.name)
            if arr is not None:
                import pyarrow as pa
                import pyarrow.compute as pc

                if self._value_set is None:
                    self._value_set = pa.array(self.labels, type=pa.large_string())
                found = pc.index_in(arr, value_set=self._value_set)
                return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int32)
        local, labels = cache.codes(self.name)
        index = self.index
        table = np.array([index.get(lv, -1) for lv in labels] + [-1], dtype=np.int32)
        return table[np.where(local < 0, len(labels), local)]


@dataclass(frozen=True, eq=False)
class TermSpec:
    """A random-effect term ``(expr | group)`` without its rows.

    Attributes
    ----------
    group : str
    components : tuple of str
        The columns making up the grouping factor.
    expr : str
        Left-hand side of the bar.
    col_names : list of str
        Effect names.
    spec : Any
        What rebuilds the term's Z on new rows (None for ``1``).
    levels : list of str
        The grouping factor's levels (interactions: component labels joined by ``":"``).
    parts : tuple of ColumnLevels
        The components' levels (unused ones dropped).
    keys : ndarray of int64 or None
        For an interaction: the level combinations, as indices into the product of the components'
        levels (first component slowest), sorted; the term's code is the position in ``keys``.
    level_values : ndarray or None
        The levels as the values of a numeric grouping column (its dtype), one per label; None for
        strings, factors, logicals, dates and interactions.
    """

    group: str
    components: tuple
    expr: str
    col_names: list
    spec: Any
    levels: list
    parts: tuple
    keys: Any = None
    level_values: Any = None

    @property
    def k(self) -> int:
        return len(self.col_names)

    def codes(self, cache) -> np.ndarray:
        """int32 codes of the grouping factor of every row of ``cache`` (-1: missing or unseen)."""
        if len(self.parts) == 1:
            return self.parts[0].codes(cache)
        codes = [p.codes(cache) for p in self.parts]
        bad = codes[0] < 0
        key = codes[0].astype(np.int64)
        for part, c in zip(self.parts[1:], codes[1:]):
            bad |= c < 0
            key = key * max(len(part.labels), 1) + c
        key = np.where(bad, 0, key)
        table = self._lookup()
        if table is not None:
            out = table[key]
        else:
            keys = np.asarray(self.keys, dtype=np.int64)
            idx = np.minimum(np.searchsorted(keys, key), keys.shape[0] - 1)
            out = np.where(keys[idx] == key, idx, -1).astype(np.int32)
        out[bad] = -1
        return out

    def _lookup(self):
        """Code of every combination of the components' levels (-1 unseen), when the product is small."""
        cached = self.__dict__.get("_table")
        if cached is None:
            size = int(np.prod([max(len(p.labels), 1) for p in self.parts], dtype=np.float64))
            cached = False
            if size <= _TABLE_MAX:
                keys = np.asarray(self.keys, dtype=np.int64)
                cached = np.full(size, -1, dtype=np.int32)
                cached[keys] = np.arange(keys.shape[0], dtype=np.int32)
            object.__setattr__(self, "_table", cached)
        return None if cached is False else cached

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_table"}

    def __setstate__(self, state):
        self.__dict__.update(state)


@dataclass(eq=False)
class DesignSpec:
    """The data-free description of a model's design (see the module notes); read-only by convention
    (it is shared by a fit, its results and the batches it encodes).

    Attributes
    ----------
    formula, kind, family : str, str, str or None
    response : str
        The response as written; ``cbind`` holds the two expressions of a ``cbind(s, f)`` response.
    fixed_rhs : str
        The fixed part's right-hand side.
    offsets : tuple of str
        ``offset(...)`` expressions of the formula.
    weights_column, offset_column : str or None
        Columns given as ``weights=`` / ``offset=``; ``weights_array`` / ``offset_array`` say an array
        was given instead (it cannot be carried to other rows).
    roles : dict of str to set of str
        The data columns by role: ``response``, ``fixed``, ``offset``, ``lhs``, ``grouping``, ``extra``.
    column_kinds : dict of str to str
        Kind of every column of the formula's right-hand sides.
    factor_levels : dict of str to list of str
        Levels of the categorical columns of the fixed part and the bars' left sides.
    columns : dict of str to ColumnLevels
        The same levels, ready to code rows (and those of the grouping components).
    fixed_spec : Any
        A SimpleSpec or formulaic ModelSpec of the fixed part.
    x_names : list of str
    intercept_dropped : bool
        An ordinal model: the intercept column of the fixed part is removed.
    x_keep : tuple of int or None
        The columns of the fixed part's full matrix that X holds, when some are removed (an ordinal
        model's intercept, columns aliased with earlier ones); None: all of them. New rows and streamed
        batches are reduced alike.
    terms : tuple of TermSpec
        In the fit's order (largest first).
    response_levels : list of str or None
        Levels of a factor or ordinal response.
    formulaic_columns : tuple of str
        The columns a formulaic model frame holds (right-hand sides, offsets, response expressions).
    all_columns : list of str
        Every data column the model reads, sorted.
    """

    formula: str
    kind: str
    family: Any
    response: str
    cbind: Any
    fixed_rhs: str
    fixed_formula: str
    offsets: tuple
    weights_column: Any
    offset_column: Any
    weights_array: bool
    offset_array: bool
    roles: dict
    column_kinds: dict
    factor_levels: dict
    columns: dict
    fixed_spec: Any
    x_names: list
    intercept_dropped: bool
    terms: tuple
    response_levels: Any = None
    formulaic_columns: tuple = ()
    all_columns: list = field(default_factory=list)
    x_keep: Any = None

    @property
    def p(self) -> int:
        return len(self.x_names)

    def encode(self, data, *, newdata: bool = False, weights=None, offset=None) -> DesignData:
        """Arrays of ``data`` coded as the fit's (see :func:`mixframe.design.encode.encode`)."""
        from .encode import encode

        return encode(self, data, newdata=newdata, weights=weights, offset=offset)


@dataclass(eq=False)
class DesignData:
    """The arrays of one frame, over its used rows (see :func:`mixframe.design.encode.encode`).

    Attributes
    ----------
    X : ndarray (n, p) float64
    y : ndarray (n,) float64 or None
        None for new data (the response is not read).
    weights, offset : ndarray (n,) or None
    codes : list of int32 arrays (n,)
        Per term, into the term's levels (new data: -1 for a missing or unseen level).
    Z : list of (n, k) float64 arrays or None
        Per term; None for a ``(1 | g)`` term (a column of ones).
    used : ndarray (n_total,) bool
        The rows encoded (complete in the columns read).
    n_total : int
    missing_by_column : dict of str to int
        Rows with a missing value, per column (and ``weights`` / ``offset`` arrays).
    response_levels : list or None
        The response's levels as found (a factor or ordinal response).
    unseen_levels : dict of str to int
        New data: per grouping factor, the rows (complete in its columns) whose level the fit has not
        seen (code -1).
    """

    X: np.ndarray
    y: Any
    weights: Any
    offset: Any
    codes: list
    Z: list
    used: np.ndarray
    n_total: int
    missing_by_column: dict = field(default_factory=dict)
    response_levels: Any = None
    unseen_levels: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def z_matrix(self, i: int) -> np.ndarray:
        """Z of term ``i`` as a matrix (ones for a ``(1 | g)`` term)."""
        Z = self.Z[i]
        return np.ones((self.n, 1)) if Z is None else Z
