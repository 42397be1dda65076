"""Where a fitted model's per-row outputs come from: its row source.

:class:`FrameRows` holds the rows of an in-memory fit: a private copy of the user's frame, taken once when
the model is made (a shallow copy for pandas with copy-on-write and for polars, whose buffers are never
modified in place; a deep copy for older pandas; pyarrow tables are immutable), so that sorting or editing
the caller's frame afterwards cannot misalign ``.fitted`` with its rows.

:class:`StreamRows` holds the stream a streamed LMM was fitted to (a polars LazyFrame, a pyarrow Dataset or
RecordBatchReader, a Dask DataFrame). Its per-row outputs are lazy: ``augment()`` of a LazyFrame is a
LazyFrame (fixed part as polars expressions, BLUPs joined by the grouping columns), of a Dask DataFrame a
Dask DataFrame (``map_partitions``), of an Arrow source a RecordBatchReader; nothing is read until the user
asks. Tidy frames of a streamed fit come back in the stream's library (polars for a LazyFrame, pyarrow for
Arrow sources, pandas for Dask).

Both answer ``augment(raw, data)``, ``predict(raw, newdata, type, re)``, ``data`` and ``like`` (a frame of
the library tidy outputs are returned in), and both pickle.
"""
from __future__ import annotations

import sys

import numpy as np

from ..io import frames
from ..design.build import plain_column
from ._frames import append_columns, check_no_clash, n_rows
from .augment import augment_columns, augment_new_columns
from .predict import new_linear_predictor, predict_values

LAZY_COLUMNS = (".fitted", ".fixed", ".eta", ".resid", ".pearson_resid", ".deviance_resid", ".used")


def _is_stream(data) -> bool:
    from ..stream import is_stream

    return is_stream(data)


def private_copy(data):
    """A copy of an eager frame that later in-place changes of ``data`` cannot reach (cheap: see module)."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, pd.DataFrame):
        if int(pd.__version__.split(".", 1)[0]) < 3:
            return data.copy(deep=True)
        return _shallow_pandas_copy(data)
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(data, pl.DataFrame):
        return data.clone()
    return data


def _shallow_pandas_copy(data):
    """``data.copy(deep=False)`` under copy-on-write (pandas 3), at half its cost: each block is copied without
    its values (registering the reference that makes a later in-place write copy first), and the axes are views.
    ``DataFrame.copy`` does the same through its general machinery; it is used where pandas lacks these
    internals."""
    try:
        mgr = data._mgr
        blocks = tuple(block.copy(deep=False) for block in mgr.blocks)
        out = type(mgr).from_blocks(blocks, [axis.view() for axis in mgr.axes])
        return data._constructor_from_mgr(out, axes=out.axes)
    except (AttributeError, TypeError):
        return data.copy(deep=False)


class FrameRows:
    """The rows of an in-memory fit (every input row, including those dropped for missing values).

    Parameters
    ----------
    data : DataFrame
        The user's frame; the row source keeps its own copy.
    n_total : int
        The number of rows the fit was made on (checked against ``data``).
    """

    __slots__ = ("data",)

    def __init__(self, data, n_total: int):
        if n_rows(data) != n_total:
            raise ValueError(f"the data have {n_rows(data)} rows but the fit was made on {n_total}")
        self.data = private_copy(data)

    @property
    def like(self):
        return self.data

    def augment(self, raw, data=None):
        if data is None:
            return append_columns(self.data, augment_columns(raw))
        return append_columns(data, augment_new_columns(raw, data))

    def predict(self, raw, newdata=None, type=None, re=True):
        return predict_values(raw, newdata, type, re)

    def __getstate__(self):
        return self.data

    def __setstate__(self, state):
        self.data = state


class StreamRows:
    """The stream a streamed LMM was fitted to, and what its lazy per-row outputs need.

    Parameters
    ----------
    data : LazyFrame, Dataset, RecordBatchReader or Dask DataFrame
    like : DataFrame
        A small frame of the library results are returned in.
    columns : list of str
        The model's columns (a row missing any of them is not used).
    weights : str, optional
        The prior-weights column.
    """

    __slots__ = ("columns", "data", "like", "weights")

    def __init__(self, data, like, columns, weights=None):
        self.data, self.like = data, like
        self.columns, self.weights = list(columns), weights

    def _info(self) -> dict:
        return {"columns": self.columns, "weights": self.weights}

    def augment(self, raw, data=None):
        target = self.data if data is None else data
        return _augment_any(raw, target, self._info())

    def predict(self, raw, newdata=None, type=None, re=True):
        target = self.data if newdata is None else newdata
        if type not in (None, "response", "link"):
            raise ValueError(f"type must be 'response' or 'link' for an LMM, got {type!r}")
        if _is_stream(target):
            column = ".fixed" if not re else ".fitted"
            out = _augment_any(raw, target, self._info())
            if _lib(target) == "polars":
                return out.select(column)
            if _lib(target) == "dask":
                return out[column]
            return _select_reader(out, column)
        return predict_values(raw, target, type, re)

    def __getstate__(self):
        return (self.data, self.like, self.columns, self.weights)

    def __setstate__(self, state):
        self.data, self.like, self.columns, self.weights = state


def _lib(data) -> str:
    mod = type(data).__module__
    return "polars" if mod.startswith("polars") else "dask" if mod.startswith("dask") else "arrow"


def _model_columns(call_info, available) -> list:
    return [c for c in call_info.get("columns", ()) if c in available]


def eager_columns(raw, frame, call_info) -> dict:
    """Prediction and residual columns for one eager frame (a Dask partition, an Arrow batch).

    With the response present: ``.fitted, .fixed, .eta, .resid, .pearson_resid, .deviance_resid, .used``
    (``.used`` False where a model column is missing; those rows are null); without it the prediction
    columns and ``.used`` only, as ``MixedModel.augment(newdata)``.
    """
    cols = frames.column_names(frame)
    eta, ok = new_linear_predictor(raw, frame, re=True)
    eta_fixed, _ = new_linear_predictor(raw, frame, re=False)
    used = np.asarray(ok, dtype=bool).copy()
    for name in _model_columns(call_info, cols):
        used &= ~frames.missing_mask(frame, name)
    out = {".fitted": np.where(used, eta, np.nan), ".fixed": np.where(used, eta_fixed, np.nan)}
    out[".eta"] = out[".fitted"]
    response = plain_column(raw.design.response, cols)
    if response is not None:
        y = frames.numeric_column(frame, response)
        w_col = call_info.get("weights")
        w = frames.numeric_column(frame, w_col) if w_col else np.ones_like(y)
        resid = np.where(used, y - eta, np.nan)
        out[".resid"] = resid
        out[".pearson_resid"] = resid * np.sqrt(w)
        out[".deviance_resid"] = resid * np.sqrt(w)
    out[".used"] = used
    return out


def _eager_augment(frame, raw, call_info):
    return append_columns(frame, eager_columns(raw, frame, call_info))


class _PartitionAugmenter:
    """``augment`` of one Dask partition; carries its own token (the fit record is not hashable)."""

    def __init__(self, raw, call_info):
        import dataclasses
        import uuid

        # the partitions need the coefficients, the modes and the design only
        self.raw = dataclasses.replace(raw, df=None, b_sd=[], extra={})
        self.call_info = dict(call_info)
        self.token = uuid.uuid4().hex

    def __call__(self, frame):
        return _eager_augment(frame, self.raw, self.call_info)

    def __dask_tokenize__(self):
        return ("mixframe-augment", self.token)


def _augment_any(raw, data, call_info):
    lib = _lib(data) if _is_stream(data) else "eager"
    if lib == "polars":
        return _polars_augment(raw, data, call_info)
    if lib == "dask":
        meta = data._meta.copy()
        for name in LAZY_COLUMNS:
            if name != ".resid" or plain_column(raw.design.response, list(meta.columns)):
                meta[name] = np.zeros(0, dtype=bool if name == ".used" else float)
        if plain_column(raw.design.response, list(data.columns)) is None:
            meta = meta.drop(columns=[".resid", ".pearson_resid", ".deviance_resid"], errors="ignore")
        return data.map_partitions(_PartitionAugmenter(raw, call_info), meta=meta)
    if lib == "arrow":
        return _arrow_augment(raw, data, call_info)
    return append_columns(data, eager_columns(raw, data, call_info))


def _arrow_augment(raw, data, call_info):
    import pyarrow as pa

    if type(data).__name__ == "RecordBatchReader":
        raise ValueError("a RecordBatchReader can be read once and was consumed by the fit; pass a "
                         "pyarrow Dataset (or a new reader) to augment()")
    source = data.to_batches()
    first = next(iter(data.to_batches()), None)
    if first is None:
        raise ValueError("the dataset has no rows")
    schema = _eager_augment(pa.Table.from_batches([first]), raw, call_info).schema

    def gen():
        for rb in source:
            table = _eager_augment(pa.Table.from_batches([rb]), raw, call_info)
            yield from table.cast(schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, gen())


def _select_reader(reader, column):
    import pyarrow as pa

    schema = pa.schema([reader.schema.field(column)])
    return pa.RecordBatchReader.from_batches(
        schema, (pa.RecordBatch.from_arrays([rb.column(column)], schema=schema) for rb in reader))


# ---------------------------------------------------------------------------------- polars expressions
def _polars_term(name, design, schema):
    """A polars expression for one model column name (numeric, treatment dummy, ``a:b`` products)."""
    import polars as pl

    if name == "(Intercept)":
        return pl.lit(1.0)
    if name in schema and schema[name].is_numeric():
        return pl.col(name).cast(pl.Float64)
    factor_levels = design.extra.get("factor_levels", {})
    for col, levels in factor_levels.items():
        if name.startswith(col) and name[len(col):] in levels:
            return (_label_expr(col, schema) == name[len(col):]).cast(pl.Float64)
    if name in schema and schema[name] == pl.Boolean:
        return pl.col(name).cast(pl.Float64)
    if name.endswith("TRUE") and schema.get(name[:-4]) == pl.Boolean:
        return pl.col(name[:-4]).cast(pl.Float64)
    if ":" in name:
        parts = name.split(":")
        out = _polars_term(parts[0], design, schema)
        for part in parts[1:]:
            out = out * _polars_term(part, design, schema)
        return out
    raise ValueError(f"model column {name!r} cannot be written as a polars expression (supported: numeric "
                     "columns, treatment-coded factors and their products); collect the rows and use "
                     "augment() on an eager frame instead")


def _label_expr(col, schema):
    """The column as the level labels the design uses (strings; integers as R prints them)."""
    import polars as pl

    dtype = schema[col]
    if dtype == pl.Boolean:
        return pl.when(pl.col(col)).then(pl.lit("TRUE")).otherwise(pl.lit("FALSE"))
    if dtype.is_float():
        raise ValueError(f"grouping column {col!r} is floating point; its labels cannot be matched lazily "
                         "(cast it to an integer or a string)")
    return pl.col(col).cast(pl.String)


def _polars_augment(raw, lf, call_info):
    import polars as pl

    design = raw.design
    schema = lf.collect_schema()
    beta = dict(zip(raw.coef_names, np.asarray(raw.coef, dtype=float)))
    fixed = pl.lit(0.0)
    for name in design.x_names:
        fixed = fixed + float(beta[name]) * _polars_term(name, design, schema)
    if design.offset is not None:
        for expr in ([design.extra["offset_column"]] if design.extra.get("offset_column") else []) + list(
                design.extra.get("offsets", ())):
            if plain_column(expr, list(schema.names())) is None:
                raise ValueError(f"offset {expr!r} cannot be written as a polars expression")
            fixed = fixed + pl.col(plain_column(expr, list(schema.names()))).cast(pl.Float64)
    out = lf
    random = pl.lit(0.0)
    for t_i, (term, b) in enumerate(zip(design.terms, raw.b)):
        key = f"__mixframe_key{t_i}"
        labels = [_label_expr(c, schema) for c in term.components]
        key_expr = labels[0] if len(labels) == 1 else pl.concat_str(labels, separator=":")
        b = np.asarray(b, dtype=float).reshape(term.n_levels, term.k)
        table = {key: list(term.levels)}
        names = [f"__mixframe_b{t_i}_{j}" for j in range(term.k)]
        for j, nm in enumerate(names):
            table[nm] = b[:, j]
        out = out.with_columns(key_expr.alias(key)).join(pl.LazyFrame(table), on=key, how="left",
                                                       maintain_order="left").drop(key)
        for j, nm in enumerate(names):
            random = random + _polars_term(term.col_names[j], design, schema) * pl.col(nm).fill_null(0.0)
    cols = _model_columns(call_info, schema.names())
    used = pl.lit(True)
    for c in cols:
        ok = pl.col(c).is_not_null()
        if schema[c].is_float():
            ok = ok & pl.col(c).is_not_nan()
        used = used & ok
    eta = fixed + random
    exprs = [pl.when(used).then(eta).alias(".fitted"), pl.when(used).then(fixed).alias(".fixed"),
             pl.when(used).then(eta).alias(".eta")]
    response = plain_column(design.response, list(schema.names()))
    if response is not None:
        w_col = call_info.get("weights")
        sw = pl.col(w_col).cast(pl.Float64).sqrt() if w_col else pl.lit(1.0)
        resid = pl.when(used).then(pl.col(response).cast(pl.Float64) - eta)
        exprs += [resid.alias(".resid"), (resid * sw).alias(".pearson_resid"),
                  (resid * sw).alias(".deviance_resid")]
    exprs.append(used.alias(".used"))
    check_no_clash(schema.names(), [e.meta.output_name() for e in exprs])
    helper = [f"__mixframe_b{t_i}_{j}" for t_i, t in enumerate(design.terms) for j in range(t.k)]
    return out.with_columns(exprs).drop(helper)
