"""Linear mixed models from streamed cross-products (polars LazyFrame, pyarrow Dataset / record batches, Dask).

Two passes over the data, never holding it whole:

1. **Levels.** Every batch is reduced to its complete rows (listwise deletion, counted) and, for every
   grouping factor (an interaction ``a:b`` by its observed combinations) and every categorical predictor,
   one representative row per level.  Their union is a small *template* frame holding every level; the
   in-memory design builder turns it into a design whose codes and contrasts are global.
2. **Cross-products.** Every batch is encoded against the template design
   (:func:`~mixframe.design.newdata.new_design`) and added to a
   :class:`~mixframe.fit.lmm_stream.CrossprodAccumulator`; Dask partitions are accumulated on the
   workers and merged by a tree reduction, the fit runs on the client.

Memory is bounded by the design (levels, fixed-effect columns, the batch size), not by the rows.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings

import numpy as np

from . import frames
from .design.build import _columns_of, build_design, model_frame, plain_column
from .design.newdata import new_design
from .errors import DataError, FormulaError
from .fit.lmm_stream import CrossprodAccumulator, fit_lmm_crossprod, streamed_design
from .formula import parse_formula
from .formula.fixed import evaluate_numeric, expression_columns

__all__ = ["fit_lmm_stream", "is_stream"]

DEFAULT_BATCH_ROWS = 500_000
_STATEFUL = re.compile(r"\b(scale|center|poly|bs|cr|cc|te|ns|standardize)\s*\(")


def is_stream(data) -> bool:
    """True for inputs that are fitted batch by batch instead of in memory."""
    mod = type(data).__module__
    name = type(data).__name__
    if mod.startswith("polars") and name == "LazyFrame":
        return True
    if mod.startswith("pyarrow") and name in ("FileSystemDataset", "Dataset", "UnionDataset",
                                                "RecordBatchReader"):
        return True
    return bool(mod.startswith("dask") and name == "DataFrame")


def _kind(data) -> str:
    mod = type(data).__module__
    if mod.startswith("polars"):
        return "polars"
    if mod.startswith("dask"):
        return "dask"
    return "reader" if type(data).__name__ == "RecordBatchReader" else "dataset"


# ---------------------------------------------------------------------------------- native frame helpers
def _filter(frame, mask: np.ndarray):
    """Rows of a native frame where ``mask`` holds."""
    if mask.all():
        return frame
    mod = type(frame).__module__
    if mod.startswith("polars"):
        import polars as pl

        return frame.filter(pl.Series(mask))
    if mod.startswith("pyarrow"):
        import pyarrow as pa

        return frame.filter(pa.array(mask))
    return frame.loc[mask].reset_index(drop=True)


def _take(frame, idx: np.ndarray):
    mod = type(frame).__module__
    if mod.startswith("polars"):
        return frame[np.asarray(idx, dtype=np.int64)]
    if mod.startswith("pyarrow"):
        return frame.take(np.asarray(idx, dtype=np.int64))
    return frame.iloc[np.asarray(idx, dtype=np.int64)].reset_index(drop=True)


def _concat(parts):
    mod = type(parts[0]).__module__
    if len(parts) == 1:
        return parts[0]
    if mod.startswith("polars"):
        import polars as pl

        return pl.concat(parts, how="vertical_relaxed")
    if mod.startswith("pyarrow"):
        import pyarrow as pa

        return pa.concat_tables(parts, promote_options="permissive").combine_chunks()
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


def _n(frame) -> int:
    return int(frame.num_rows) if hasattr(frame, "num_rows") else len(frame)


# ---------------------------------------------------------------------------------- the model's columns
class _Spec:
    """What the two passes need to know about the model: columns by role, level sets, arguments."""

    def __init__(self, formula, columns, groups, random, weights, offset):
        for what, value in (("weights", weights), ("offset", offset)):
            if value is not None and not isinstance(value, str):
                raise DataError(f"{what}= must be a column name for streamed data (an array cannot be "
                                f"matched to batches)")
        self.formula, self.groups, self.random = formula, groups, random
        self.weights, self.offset = weights, offset
        self.parsed = parse_formula(formula, groups=groups, random=random)
        if not self.parsed.bars:
            raise FormulaError(f"formula {formula!r} has no random-effect term; add a random-effect term "
                               "such as (1 | group)")
        found = _STATEFUL.search(self.parsed.fixed) or any(_STATEFUL.search(b.expr) for b in self.parsed.bars)
        if found:
            raise FormulaError(f"{found.group(1)}() needs the whole column at once and cannot be used with "
                               "streamed data; transform the column in the query before fitting")
        self.roles = _columns_of(self.parsed, list(columns), weights, offset)
        self.columns = sorted(set().union(*self.roles.values()))
        self.response_col = plain_column(self.parsed.response, self.columns)
        self.level_sets = list(dict.fromkeys(tuple(b.components) for b in self.parsed.bars))
        self.formulaic = self.roles["fixed"] | self.roles["lhs"] | self.roles["offset"]
        self.factor_cols = None  # set from the first batch (needs the column kinds)

    def set_kinds(self, frame):
        if self.factor_cols is None:
            self.factor_cols = sorted(c for c in self.formulaic
                                      if frames.column_kind(frame, c) in ("factor", "string"))
            self.level_sets += [(c,) for c in self.factor_cols if (c,) not in self.level_sets]


def _complete(frame, spec: _Spec):
    """(complete rows of ``frame``, number of rows, missing count per column)."""
    spec.set_kinds(frame)
    n = _n(frame)
    ok = np.ones(n, dtype=bool)
    missing = {}
    for name in spec.columns:
        miss = frames.missing_mask(frame, name)
        if miss.any():
            missing[name] = int(miss.sum())
            ok &= ~miss
    return _filter(frame, ok), n, missing


def _representatives(frame, spec: _Spec):
    """One row per observed level of every level set (first occurrence), as a native frame."""
    if _n(frame) == 0:
        return frame
    keep = []
    for cols in spec.level_sets:
        key = None
        for name in cols:
            codes, levels = frames.encode_column(frame, name)
            key = codes.astype(np.int64) if key is None else key * max(len(levels), 1) + codes
        keep.append(np.unique(key, return_index=True)[1])
    return _take(frame, np.unique(np.concatenate(keep)))


class _Scan:
    """Pass-1 summary: row counts, missing counts, and the rows of the template."""

    def __init__(self):
        self.n_total, self.n_used, self.batches = 0, 0, 0
        self.missing = {}
        self.parts, self._rows, self._size = [], 0, 0

    def add(self, frame, spec):
        sub, n, missing = _complete(frame, spec)
        self.n_total += n
        self.n_used += _n(sub)
        self.batches += 1
        for k, v in missing.items():
            self.missing[k] = self.missing.get(k, 0) + v
        rep = _representatives(sub, spec)
        self.parts.append(rep)
        self._rows += _n(rep)
        if self._rows > 4 * self._size + 20_000:
            self.compact(spec)
        return self

    def compact(self, spec):
        parts = [p for p in self.parts if _n(p)] or self.parts[:1]
        merged = _representatives(_concat(parts), spec)
        self.parts, self._rows = [merged], _n(merged)
        self._size = self._rows

    def merge(self, other, spec):
        self.n_total += other.n_total
        self.n_used += other.n_used
        self.batches += other.batches
        for k, v in other.missing.items():
            self.missing[k] = self.missing.get(k, 0) + v
        self.parts += other.parts
        self._rows += other._rows
        self.compact(spec)
        return self


def _template_design(scan: _Scan, spec: _Spec):
    if scan.n_used == 0:
        raise DataError(f"no complete rows: every row has a missing value in {sorted(scan.missing)}")
    scan.compact(spec)
    rows = scan.parts[0]
    frame = _concat([rows, rows])  # every level at least twice: the builder's level checks see counts > 1
    return build_design(spec.formula, frame, kind="lmm", groups=spec.groups, random=spec.random,
                        weights=spec.weights, offset=spec.offset)


# ---------------------------------------------------------------------------------- pass 2: one batch
def _response(sub, spec: _Spec, template):
    if spec.response_col is not None:
        if frames.column_kind(sub, spec.response_col) not in ("numeric", "bool"):
            raise DataError(f"response column {spec.response_col!r} must be numeric")
        return frames.numeric_column(sub, spec.response_col)
    expr = spec.parsed.response
    cols = expression_columns(f"I({expr})", spec.columns)
    pdf, _, _ = model_frame(sub, cols, np.ones(_n(sub), dtype=bool),
                            factor_levels=template.extra.get("factor_levels", {}))
    return np.asarray(evaluate_numeric(expr, pdf, "response"), dtype=np.float64)


def _accumulate(acc: CrossprodAccumulator, frame, spec: _Spec, template):
    """Encode the complete rows of one batch against the template design and add them."""
    sub, _, _ = _complete(frame, spec)
    if _n(sub) == 0:
        return acc
    nd = new_design(template, sub)
    X = nd["X"]
    y = _response(sub, spec, template)
    if nd["offset"] is not None:
        y = y - nd["offset"]
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise DataError("a batch has non-finite values in the response or a fixed-effect column "
                        "(e.g. log of 0 or an infinite value); replace or remove them")
    codes = [t["codes"] for t in nd["terms"]]
    for t, c in zip(template.terms, codes):
        if (c < 0).any():
            raise DataError(f"grouping factor {t.group!r} has a level that the first pass did not see; "
                            "the data changed between the two passes")
    w = None
    if spec.weights is not None:
        w = frames.numeric_column(sub, spec.weights)
        if (w < 0).any():
            raise DataError("weights must be non-negative")
    acc.add(codes, [t["Z"] for t in nd["terms"]], X, y, w)
    return acc


# ---------------------------------------------------------------------------------- sources of batches
def _progress(iterable, control, total=None, desc=""):
    flag = (control or {}).get("progress")
    enabled = bool(flag) if flag is not None else sys.stderr.isatty()
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch")


def _coalesce(tables, batch_rows: int):
    """Join small Arrow record batches into tables of about ``batch_rows`` rows."""
    import pyarrow as pa

    buf, rows = [], 0
    for b in tables:
        buf.append(b)
        rows += b.num_rows
        if rows >= batch_rows:
            yield pa.Table.from_batches(buf)
            buf, rows = [], 0
    if buf:
        yield pa.Table.from_batches(buf)


class _Batches:
    """Re-iterable batches of the model's columns from a LazyFrame, a Dataset or a (spooled) reader."""

    def __init__(self, data, batch_rows: int):
        self.data, self.kind, self.batch_rows = data, _kind(data), int(batch_rows)
        self._spool = None
        self._read = False

    def columns(self):
        if self.kind == "polars":
            return self.data.collect_schema().names()
        return list(self.data.schema.names)

    def like(self):
        if self.kind == "polars":
            import polars as pl

            return pl.DataFrame({"_": [0]})
        import pyarrow as pa

        return pa.table({"_": [0]})

    def __call__(self, cols):
        if self.kind == "polars":
            return iter(self.data.select(cols).collect_batches(chunk_size=self.batch_rows))
        if self.kind == "dataset":
            return _coalesce(self.data.to_batches(columns=cols, batch_size=self.batch_rows), self.batch_rows)
        return self._reader(cols)

    def _reader(self, cols):
        """A RecordBatchReader can be read once: the first pass spools the columns to a temporary file."""
        import pyarrow as pa

        if self._spool is not None:
            source = pa.memory_map(self._spool)
            return _coalesce(pa.ipc.open_stream(source), self.batch_rows)
        if self._read:
            raise DataError("this RecordBatchReader has already been consumed")
        self._read = True
        fd, path = tempfile.mkstemp(suffix=".arrow", prefix="mixframe-")
        os.close(fd)
        self._spool = path

        def spool():
            writer = None
            try:
                for rb in self.data:
                    rb = pa.RecordBatch.from_arrays([rb.column(c) for c in cols], names=list(cols))
                    if writer is None:
                        writer = pa.ipc.new_stream(path, rb.schema)
                    writer.write_batch(rb)
                    yield rb
            finally:
                if writer is not None:
                    writer.close()
        return _coalesce(spool(), self.batch_rows)

    def close(self):
        if self._spool is not None and os.path.exists(self._spool):
            os.remove(self._spool)


def _passes_local(data, spec_args, control):
    batch_rows = int((control or {}).get("batch_size", DEFAULT_BATCH_ROWS))
    source = _Batches(data, batch_rows)
    try:
        spec = _Spec(*spec_args[:1], source.columns(), *spec_args[1:])
        scan = _Scan()
        for frame in _progress(source(spec.columns), control, desc="levels"):
            scan.add(frame, spec)
        template = _template_design(scan, spec)
        acc = CrossprodAccumulator(template.terms, template.p)
        for frame in _progress(source(spec.columns), control, total=scan.batches, desc="cross-products"):
            _accumulate(acc, frame, spec, template)
    finally:
        source.close()
    return spec, scan, template, acc, source.like()


# ---------------------------------------------------------------------------------- Dask
def _scan_partition(frame, spec):
    return _Scan().add(frame, spec)


def _merge_scans(a, b, spec):
    return a.merge(b, spec)


def _accumulate_partition(frame, spec, template):
    return _accumulate(CrossprodAccumulator(template.terms, template.p), frame, spec, template)


def _merge_accumulators(a, b):
    return a.merge(b)


def _tree(items, merge, *args):
    import dask

    while len(items) > 1:
        items = [dask.delayed(merge)(items[i], items[i + 1], *args) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _passes_dask(data, spec_args):
    import dask
    import pandas as pd

    spec = _Spec(spec_args[0], list(data.columns), *spec_args[1:])
    head = data._meta[spec.columns] if hasattr(data, "_meta") else data[spec.columns].head(1)
    spec.set_kinds(head)
    parts = data[spec.columns].to_delayed()
    scan = _tree([dask.delayed(_scan_partition)(p, spec) for p in parts], _merge_scans, spec).compute()
    template = _template_design(scan, spec)
    acc = _tree([dask.delayed(_accumulate_partition)(p, spec, template) for p in parts],
                _merge_accumulators).compute()
    return spec, scan, template, acc, pd.DataFrame({"_": [0]})


# ---------------------------------------------------------------------------------- entry point
def fit_lmm_stream(formula, data, *, reml=True, weights=None, offset=None, groups=None, random=None,
                   control=None):
    """Fit a linear mixed model to data that are read in batches (see the module notes).

    Parameters
    ----------
    formula : str
        lme4 syntax, as for :func:`mixframe.lmm`.
    data : polars.LazyFrame, pyarrow.dataset.Dataset, pyarrow.RecordBatchReader or dask.dataframe.DataFrame
    reml, groups, random
        As for :func:`mixframe.lmm`.
    weights, offset : str, optional
        Column names (arrays cannot be matched to batches).
    control : dict, optional
        Optimizer settings as for :func:`mixframe.lmm`, plus ``batch_size`` (rows per batch, default
        500,000) and ``progress`` (True forces a progress bar over batches, False hides it; by default it
        shows on an interactive terminal).

    Returns
    -------
    StreamedMixedModel

    Examples
    --------
    >>> import polars as pl, mixframe as mf
    >>> lf = pl.from_pandas(mf.datasets.sleepstudy()).lazy()
    >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", lf)
    >>> round(fit.fixef["Days"], 4)
    10.4673
    """
    from .results.streamed import StreamedMixedModel

    spec_args = (formula, groups, random, weights, offset)
    if _kind(data) == "dask":
        spec, scan, template, acc, like = _passes_dask(data, spec_args)
    else:
        spec, scan, template, acc, like = _passes_local(data, spec_args, control)
    if acc.n != scan.n_used:
        raise DataError(f"the second pass read {acc.n} complete rows, the first {scan.n_used}; "
                        "the data changed between the passes")
    design = streamed_design(template, acc.n, scan.n_total, scan.missing)
    n_dropped = scan.n_total - scan.n_used
    if n_dropped:
        warnings.warn(f"{n_dropped} of {scan.n_total} rows dropped for missing values in the model's "
                      "columns; they are kept in augment() with .used = False", UserWarning, stacklevel=3)
    raw = fit_lmm_crossprod(design, acc, reml=reml, control=control)

    def refit_ml():
        return fit_lmm_stream(formula, data, reml=False, weights=weights, offset=offset, groups=groups,
                              random=random, control=control)

    info = {"formula": formula, "reml": reml, "columns": spec.columns, "weights": weights}
    if reml:
        info["refit_ml"] = refit_ml
    return StreamedMixedModel(raw, data, like=like, call_info=info)
