"""Linear mixed models from streamed cross-products (polars LazyFrame, pyarrow Dataset / record batches, Dask).

Two passes over the data, never holding it whole:

1. **Levels.** Every batch is reduced to its complete rows (listwise deletion, counted) and, for every
   grouping factor (an interaction ``a:b`` by its observed combinations) and every categorical predictor,
   the rows where a value first appears (found by hashing). Their union is a small *template* frame
   holding every level; the in-memory design builder turns it into a design whose codes and contrasts
   are global.
2. **Cross-products.** Every batch is coded against the template (:class:`_Coder`: numbers looked up by
   value, strings by hashing, simple model matrices built from the global codes) and added to a
   :class:`~mixframe.fit.lmm_stream.CrossprodAccumulator`, whose exact sums make the result independent
   of the batching; Dask partitions are accumulated on the workers and merged by a tree reduction, the
   fit runs on the client.

Memory is bounded by the design (levels, pairs of levels, fixed-effect columns, the batch size), not by
the rows.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from .design.build import _columns_of, build_design, model_frame, plain_column
from .errors import DataError, FormulaError
from .fit.crossprod import table_codes
from .fit.lmm_stream import CrossprodAccumulator, fit_lmm_crossprod, streamed_design
from .formula import parse_formula
from .formula.fixed import evaluate_numeric, matrix_from_spec
from .formula.simple import SimpleSpec, evaluate_arithmetic
from .io import frames, sources
from .io.sources import is_stream

__all__ = ["fit_lmm_stream", "is_stream"]

DEFAULT_BATCH_ROWS = 500_000
_STATEFUL = re.compile(r"\b(scale|center|poly|bs|cr|cc|te|ns|standardize)\s*\(")
_AS_FACTOR = re.compile(r"\b(?:C|factor|as\.factor)\s*\(\s*`?([A-Za-z_.][A-Za-z0-9_.]*)")


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
        if self.response_col is None:
            self.formulaic = self.formulaic | self.roles["response"]
        self.factor_cols = None  # set from the first batch (needs the column kinds)

    def set_kinds(self, frame):
        """Categorical predictors (factors, strings, logicals, and columns made factors by ``C()`` or
        ``factor()``) need every level in the template, like grouping factors."""
        if self.factor_cols is None:
            texts = [self.parsed.fixed] + [b.expr for b in self.parsed.bars]
            coerced = {m for t in texts for m in _AS_FACTOR.findall(t)} & self.formulaic
            self.factor_cols = sorted(c for c in self.formulaic
                                      if c in coerced or frames.column_kind(frame, c) in ("factor", "string", "bool"))
            self.level_sets += [(c,) for c in self.factor_cols if (c,) not in self.level_sets]


def _complete(frame, spec: _Spec):
    """(complete rows of ``frame``, their column cache, number of rows, missing count per column)."""
    spec.set_kinds(frame)
    cache = frames.ColumnCache(frame)
    n = cache.n
    ok = None
    missing = {}
    for name in spec.columns:
        miss = cache.missing(name)
        if miss.any():
            missing[name] = int(miss.sum())
            ok = ~miss if ok is None else ok & ~miss
    if ok is None or ok.all():
        return frame, cache, n, missing
    sub = sources.filter_rows(frame, ok)
    return sub, frames.ColumnCache(sub), n, missing


class _Scan:
    """Pass-1 summary: row counts, missing counts, and the rows of the template."""

    def __init__(self):
        self.n_total, self.n_used, self.batches = 0, 0, 0
        self.missing = {}
        self.parts, self._rows, self._size = [], 0, 0

    def add(self, frame, spec):
        sub, _, n, missing = _complete(frame, spec)
        self.n_total += n
        self.n_used += sources.n_rows(sub)
        self.batches += 1
        for k, v in missing.items():
            self.missing[k] = self.missing.get(k, 0) + v
        rep = sources.take_rows(sub, sources.first_rows(sub, spec.level_sets)) if sources.n_rows(sub) else sub
        self.parts.append(rep)
        self._rows += sources.n_rows(rep)
        if self._rows > 4 * self._size + 20_000:
            self.compact(spec)
        return self

    def compact(self, spec):
        parts = [p for p in self.parts if sources.n_rows(p)] or self.parts[:1]
        merged = sources.concat(parts)
        merged = sources.take_rows(merged, sources.first_rows(merged, spec.level_sets))
        self.parts, self._rows = [merged], sources.n_rows(merged)
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


def _template_frame(scan: _Scan, spec: _Spec):
    if scan.n_used == 0:
        raise DataError(f"no complete rows: every row has a missing value in {sorted(scan.missing)}")
    scan.compact(spec)
    rows = scan.parts[0]
    return sources.concat([rows, rows])  # every level at least twice: the builder's level checks see counts > 1


# ---------------------------------------------------------------------------------- pass 2: coding batches
class _ColumnLevels:
    """Codes of a column's values into its global levels, the levels the template design saw.

    Numbers are looked up by value (a table for compact integers, else a binary search), strings by
    hashing (pyarrow ``index_in``); other kinds through their labels. -1 marks a missing value or a
    value the first pass did not see.
    """

    def __init__(self, cache, name: str):
        codes, labels = cache.codes(name)
        codes, labels, _ = frames.drop_unused_levels(codes, labels)
        self.name, self.labels = name, list(labels)
        self.kind = cache.kind(name)
        self.index = {lv: i for i, lv in enumerate(self.labels)}
        self.values = self.table = self.value_set = None
        if self.kind == "numeric":
            values = cache.numeric(name)
            uniq = np.unique(values[~np.isnan(values)])
            if uniq.shape[0] == len(self.labels):
                self.values = uniq
                span = uniq[-1] - uniq[0] if uniq.size else 0.0
                if uniq.size and np.all(uniq == np.floor(uniq)) and span <= 4 * uniq.size + (1 << 20):
                    self.low = float(uniq[0])
                    self.table = np.full(int(span) + 1, -1, dtype=np.int32)
                    self.table[(uniq - self.low).astype(np.int64)] = np.arange(uniq.size, dtype=np.int32)
        elif self.kind == "string":
            import pyarrow as pa

            self.value_set = pa.array(self.labels, type=pa.large_string())

    def codes(self, frame, cache) -> np.ndarray:
        kind = cache.kind(self.name)
        if kind == "numeric" and self.values is not None:
            return self._numeric(cache.numeric(self.name))
        if kind == "string" and self.value_set is not None:
            arr = sources.arrow_strings(frame, self.name)
            if arr is not None:
                import pyarrow.compute as pc

                found = pc.index_in(arr, value_set=self.value_set)
                return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int32)
        local, labels = cache.codes(self.name)
        table = np.array([self.index.get(lv, -1) for lv in labels] + [-1], dtype=np.int32)
        return table[np.where(local < 0, len(labels), local)]

    def _numeric(self, v: np.ndarray) -> np.ndarray:
        if self.table is not None:
            return table_codes(v, self.low, self.table)
        idx = np.searchsorted(self.values, v)
        idx = np.minimum(idx, self.values.shape[0] - 1)
        return np.where(self.values[idx] == v, idx, -1).astype(np.int32)


class _TermLevels:
    """Codes of a grouping factor (one column or an interaction ``a:b``) into the fit's levels."""

    def __init__(self, term, columns: dict, cache, frame):
        self.term = term
        self.parts = [columns[c] for c in term.components]
        key = self._key([p.codes(frame, cache) for p in self.parts])
        self.size = int(np.prod([max(len(p.labels), 1) for p in self.parts], dtype=np.float64))
        if self.size <= (1 << 24):
            self.table = np.full(self.size, -1, dtype=np.int32)
            self.table[key] = term.codes
            self.keys = None
        else:
            self.keys, first = np.unique(key, return_index=True)
            self.table = np.asarray(term.codes)[first].astype(np.int32)

    def _key(self, codes):
        key = codes[0].astype(np.int64)
        for part, c in zip(self.parts[1:], codes[1:]):
            key = key * max(len(part.labels), 1) + c
        return key

    def codes(self, frame, cache) -> np.ndarray:
        codes = [p.codes(frame, cache) for p in self.parts]
        bad = codes[0] < 0
        for c in codes[1:]:
            bad |= c < 0
        key = np.where(bad, 0, self._key(codes))
        if self.keys is None:
            out = self.table[key]
        else:
            idx = np.minimum(np.searchsorted(self.keys, key), self.keys.shape[0] - 1)
            out = np.where(self.keys[idx] == key, self.table[idx], -1)
        return np.where(bad, -1, out).astype(np.int32)


class _Coder:
    """Turns a batch of complete rows into the arrays of the cross-products, coded as the template design.

    Simple right-hand sides (columns, factors, products) are built with the same NumPy code as the
    in-memory design, from global codes; anything else goes through formulaic with the template's spec.
    """

    def __init__(self, spec: _Spec, frame):
        self.spec = spec
        self.design = build_design(spec.formula, frame, kind="lmm", groups=spec.groups, random=spec.random,
                                   weights=spec.weights, offset=spec.offset)
        cache = frames.ColumnCache(frame)
        names = {c for t in self.design.terms for c in t.components} | set(spec.factor_cols)
        self.columns = {c: _ColumnLevels(cache, c) for c in sorted(names)}
        self.terms = [_TermLevels(t, self.columns, cache, frame) for t in self.design.terms]
        self.factor_levels = self.design.extra.get("factor_levels", {})

    def _simple(self, spec_obj) -> bool:
        return isinstance(spec_obj, SimpleSpec) and all(
            name in self.columns and list(levels) == self.columns[name].labels
            for name, levels in spec_obj.levels.items())

    def encode(self, frame, cache):
        """(codes, Zs, X, y minus offset, weights) of a batch of complete rows."""
        d, spec = self.design, self.spec
        n = cache.n
        codes = []
        for t, coder in zip(d.terms, self.terms):
            c = coder.codes(frame, cache)
            if (c < 0).any():
                raise DataError(f"grouping factor {t.group!r} has a level that the first pass did not see; "
                                "the data changed between the two passes")
            codes.append(c)
        pdf = []

        def model_frame_once():
            if not pdf:
                pdf.append(model_frame(cache, spec.formulaic, np.ones(n, dtype=bool),
                                       factor_levels=self.factor_levels)[0])
            return pdf[0]

        def factor_codes(name):
            return self.columns[name].codes(frame, cache)

        if self._simple(d.fixed_spec):
            X = d.fixed_spec.matrix(cache.numeric, factor_codes, n)
        else:
            X = matrix_from_spec(d.fixed_spec, model_frame_once())
        Zs = []
        for t in d.terms:
            if t.spec is None:
                Zs.append(None)
            elif self._simple(t.spec):
                Zs.append(t.spec.matrix(cache.numeric, factor_codes, n))
            else:
                Zs.append(matrix_from_spec(t.spec, model_frame_once(), where=f"random-effect term ({t.expr} | "
                                                                              f"{t.group})"))
        y = self._numeric(spec.parsed.response, cache, model_frame_once)
        off = None
        if d.extra.get("offset_column"):
            off = cache.numeric(d.extra["offset_column"])
        for expr in d.extra.get("offsets", ()):
            values = self._numeric(expr, cache, model_frame_once)
            off = values if off is None else off + values
        if off is not None:
            y = y - off
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise DataError("a batch has non-finite values in the response, an offset or a fixed-effect column "
                            "(e.g. log of 0 or an infinite value); replace or remove them")
        w = None
        if spec.weights is not None:
            w = cache.numeric(spec.weights)
            if (w < 0).any():
                raise DataError("weights must be non-negative")
        return codes, Zs, X, y, w

    @staticmethod
    def _numeric(expr, cache, model_frame_once):
        col = plain_column(expr, cache.columns)
        if col is not None:
            if cache.kind(col) not in ("numeric", "bool"):
                raise DataError(f"column {col!r} must be numeric; found {cache.kind(col)} values")
            return cache.numeric(col)

        def numeric_or_none(name):
            ok = name in cache and cache.kind(name) == "numeric"
            return cache.numeric(name) if ok else None

        values = evaluate_arithmetic(expr, numeric_or_none)
        if values is not None:
            return values
        return np.asarray(evaluate_numeric(expr, model_frame_once(), "response"), dtype=np.float64)


def _accumulate(acc: CrossprodAccumulator, frame, spec: _Spec, coder: _Coder):
    """Add the complete rows of one batch."""
    sub, cache, _, _ = _complete(frame, spec)
    if cache.n == 0:
        return acc
    codes, Zs, X, y, w = coder.encode(sub, cache)
    acc.add(codes, Zs, X, y, w)
    return acc


# ---------------------------------------------------------------------------------- local sources
def _passes_local(data, spec_args, control):
    batch_rows = int((control or {}).get("batch_size", DEFAULT_BATCH_ROWS))
    source = sources.Batches(data, batch_rows)
    try:
        spec = _Spec(*spec_args[:1], source.columns(), *spec_args[1:])
        scan = _Scan()
        for frame in sources.progress(source(spec.columns), control, desc="levels"):
            scan.add(frame, spec)
        coder = _Coder(spec, _template_frame(scan, spec))
        acc = CrossprodAccumulator(coder.design.terms, coder.design.p, weighted=spec.weights is not None)
        for frame in sources.progress(source(spec.columns), control, total=scan.batches, desc="cross-products"):
            _accumulate(acc, frame, spec, coder)
    finally:
        source.close()
    return spec, scan, coder.design, acc, source.like()


# ---------------------------------------------------------------------------------- Dask
def _scan_partition(frame, spec):
    return _Scan().add(frame, spec)


def _merge_scans(a, b, spec):
    return a.merge(b, spec)


def _accumulate_partition(frame, spec, coder):
    acc = CrossprodAccumulator(coder.design.terms, coder.design.p, weighted=spec.weights is not None,
                               pairs="runs")
    return _accumulate(acc, frame, spec, coder)


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
    spec_d = dask.delayed(spec, traverse=False)          # one task holding it, shared by every partition
    scan = _tree([dask.delayed(_scan_partition)(p, spec_d) for p in parts], _merge_scans, spec_d).compute()
    coder = _Coder(spec, _template_frame(scan, spec))
    coder_d = dask.delayed(coder, traverse=False)
    acc = _tree([dask.delayed(_accumulate_partition)(p, spec_d, coder_d) for p in parts],
                _merge_accumulators).compute()
    return spec, scan, coder.design, acc, pd.DataFrame({"_": [0]})


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
    if sources.source_kind(data) == "dask":
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
