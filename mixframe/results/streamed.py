"""The result of an LMM fitted from streamed cross-products (:func:`mixframe.stream.fit_lmm_stream`).

The numbers are those of the in-memory :class:`~mixframe.results.model.MixedModel`; frames come back
in the library of the stream (polars for a LazyFrame, pyarrow for Arrow sources, pandas for Dask).
Per-row outputs are lazy: ``augment()`` of a LazyFrame is a LazyFrame (fixed part as polars
expressions, BLUPs joined by the grouping columns), of a Dask DataFrame a Dask DataFrame
(``map_partitions``), of an Arrow source a RecordBatchReader; nothing is read until the user asks.
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from ..io import frames
from ..design.build import plain_column
from ..stream import is_stream
from . import tidy
from ._frames import append_columns, make_frame
from ._scalars import RawScalars
from .predict import new_linear_predictor, predict_values
from .summary import summary_text

LAZY_COLUMNS = (".fitted", ".fixed", ".eta", ".resid", ".pearson_resid", ".deviance_resid", ".used")


class StreamedMixedModel(RawScalars):
    """A linear mixed model fitted batch by batch (immutable).

    Parameters
    ----------
    raw : RawFit
        The fit record (no per-row arrays).
    data : LazyFrame, Dataset, RecordBatchReader or Dask DataFrame
        The stream the model was fitted to.
    like : DataFrame
        A small frame of the library results are returned in.
    call_info : dict, optional
        ``formula``, ``columns`` (the model's columns), ``weights``, ``refit_ml``.
    """

    __slots__ = ("_call_info", "_data", "_like", "_raw")

    def __init__(self, raw, data, like, call_info: dict | None = None):
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_like", like)
        object.__setattr__(self, "_call_info", MappingProxyType(dict(call_info or {})))

    def __setattr__(self, name, value):
        raise AttributeError("a fitted model is immutable")


    @property
    def data(self):
        """The stream the model was fitted to."""
        return self._data


    def _frame(self, columns: dict):
        return make_frame(columns, like=self._like)

    def _refit_ml(self):
        if self._raw.reml_crit is None:
            return self
        return self._call_info["refit_ml"]()

    # ------------------------------------------------------------------ tidy frames
    def coefficients(self, level: float = 0.95):
        """Fixed effects with SEs, Satterthwaite df, t tests and intervals (see ``MixedModel``)."""
        return self._frame(tidy.coefficient_columns(self._raw, level))

    def confint(self, level: float = 0.95, method: str = "wald"):
        """``term, conf_low, conf_high`` of the fixed effects."""
        return self._frame(tidy.confint_columns(self._raw, level, method))

    def variance_components(self):
        """``group, term1, term2, vcov, sdcor`` as lme4's ``as.data.frame(VarCorr())``."""
        return self._frame(tidy.variance_component_columns(self._raw))

    def blups(self):
        """``group, level, term, estimate, std_error`` of the random effects."""
        return self._frame(tidy.blup_columns(self._raw))

    def icc(self):
        """Intraclass correlation per grouping factor."""
        return self._frame(tidy.icc_columns(self._raw))

    def glance(self):
        """One-row frame of fit statistics; ``n_dropped`` counts the incomplete rows of every batch."""
        return self._frame(tidy.glance_columns(self._raw))

    def summary(self):
        """lme4-style summary (without the scaled-residual quantiles, which need another pass)."""
        return summary_text(self._raw, None)

    def __repr__(self) -> str:
        return str(self.summary())

    # ------------------------------------------------------------------ per-row outputs, lazily
    def augment(self, data=None):
        """The rows of the stream (or of ``data``) with fitted values and residuals, lazily.

        Returns a polars LazyFrame for a LazyFrame, a Dask DataFrame for a Dask DataFrame, a
        pyarrow RecordBatchReader for an Arrow source, and an eager frame with the prediction
        columns for an eager ``data`` (as ``MixedModel.augment``).

        Raises
        ------
        ValueError
            A LazyFrame whose model has a fixed-effect or random-effect column that cannot be written
            as a polars expression (supported: numeric columns, treatment-coded factors, products).
        """
        target = self._data if data is None else data
        return _augment_any(self._raw, target, self._call_info)

    def predict(self, newdata=None, type: str | None = None, re: bool = True):
        """Predictions: lazily (a LazyFrame / Dask Series / Arrow reader of ``.fitted`` or ``.eta``) for a
        stream, a NumPy array for an eager frame (as ``MixedModel.predict``)."""
        target = self._data if newdata is None else newdata
        if type not in (None, "response", "link"):
            raise ValueError(f"type must be 'response' or 'link' for an LMM, got {type!r}")
        if is_stream(target):
            column = ".fitted" if re else ".fixed"
            out = _augment_any(self._raw, target, self._call_info)
            if _lib(target) == "polars":
                return out.select(column)
            if _lib(target) == "dask":
                return out[column]
            return _select_reader(out, column)
        return predict_values(self._raw, target, type, re)

    # ------------------------------------------------------------------ scalars
    kind = property(lambda self: "lmm", doc="``\"lmm\"``.")
    formula = property(lambda self: self._call_info.get("formula") or self._raw.design.formula)

    @property
    def fixef(self) -> dict:
        """Fixed effects ``{term: estimate}``."""
        return {n: float(c) for n, c in zip(self._raw.coef_names, self._raw.coef)}

    @property
    def theta(self) -> np.ndarray:
        out = np.array(self._raw.theta, dtype=float, copy=True)
        out.flags.writeable = False
        return out


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

        self.raw = dataclasses.replace(raw, df=None, extra={})
        self.call_info = {k: v for k, v in call_info.items() if not callable(v)}
        self.token = uuid.uuid4().hex

    def __call__(self, frame):
        return _eager_augment(frame, self.raw, self.call_info)

    def __dask_tokenize__(self):
        return ("mixframe-augment", self.token)


def _augment_any(raw, data, call_info):
    lib = _lib(data) if is_stream(data) else "eager"
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
    helper = [f"__mixframe_b{t_i}_{j}" for t_i, t in enumerate(design.terms) for j in range(t.k)]
    return out.with_columns(exprs).drop(helper)
