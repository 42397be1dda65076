"""Linear mixed models from streamed cross-products (polars LazyFrame, pyarrow Dataset / record batches, Dask).

Two passes over the data, never holding it whole:

1. **Levels.** Every batch is reduced to its complete rows (listwise deletion, counted) and, for every
   grouping factor (an interaction ``a:b`` by its observed combinations) and every categorical predictor,
   the rows where a value first appears (found by hashing). Their union is a small *template* frame
   holding every level; the in-memory design builder turns it into a design whose codes and contrasts
   are global.
2. **Cross-products.** Every batch is encoded with the template design's spec (the encoder of every fit,
   :meth:`mixframe.design.spec.DesignSpec.encode`: numbers looked up by value, strings by hashing,
   simple model matrices built from the global codes) and added to a
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

from .design.build import build_design
from .design.encode import _columns_of, plain_column, reduce_fixed, used_rows
from .errors import DataError, FormulaError
from .fit.lmm_stream import CrossprodAccumulator, fit_lmm_crossprod, streamed_design
from .formula import parse_formula
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
    """(complete rows of ``frame``, number of rows, missing count per column), by the encoder's rule."""
    spec.set_kinds(frame)
    cache = frames.ColumnCache(frame)
    ok, missing = used_rows(cache, spec.columns, cache.n, {})
    return sources.filter_rows(frame, ok), cache.n, missing


class _Scan:
    """Pass-1 summary: row counts, missing counts, and the rows of the template."""

    def __init__(self):
        self.n_total, self.n_used, self.batches = 0, 0, 0
        self.missing = {}
        self.parts, self._rows, self._size = [], 0, 0

    def add(self, frame, spec):
        sub, n, missing = _complete(frame, spec)
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
    if scan.n_total == 0:
        raise DataError("the streamed data have no rows")
    if scan.n_used == 0:
        raise DataError(f"no complete rows: every row has a missing value in {sorted(scan.missing)}")
    scan.compact(spec)
    rows = scan.parts[0]
    return sources.concat([rows, rows])  # every level at least twice: the builder's level checks see counts > 1


# ---------------------------------------------------------------------------------- pass 2: coding batches
def _template_design(spec: _Spec, scan: _Scan, fixed_columns="all"):
    """The design of the template rows (every level of the data, each at least twice): its
    :class:`~mixframe.design.spec.DesignSpec` encodes every batch. Its fixed columns are all of the
    formula's (the template's rows cannot tell which are aliased) or ``fixed_columns``."""
    return build_design(spec.formula, _template_frame(scan, spec), kind="lmm", groups=spec.groups,
                        random=spec.random, weights=spec.weights, offset=spec.offset,
                        fixed_columns=fixed_columns, check_response=False)


def _kept_columns(acc: CrossprodAccumulator, template):
    """The fixed columns kept by the rank check of the summed X'X (the in-memory fit's rule), or None
    when X has full rank; warns naming the dropped ones."""
    from .linalg.crossprod import _tri_order, _values

    p = template.p
    EE = np.empty((acc.ne, acc.ne))      # the dense columns' block only (not the random effects' blocks)
    r, c = _tri_order(acc.ne)
    EE[r, c] = EE[c, r] = _values(acc.ee)
    XtX = EE[:p, :p]
    kept = reduce_fixed(XtX, template.x_names, stacklevel=4)
    return None if len(kept) == p else [template.x_names[j] for j in kept]


def _accumulate(acc: CrossprodAccumulator, frame, design):
    """Add the complete rows of one batch, encoded by the template design's spec (the encoder of the
    in-memory fit: same rows dropped, same checks, same codes and matrices)."""
    data = design.spec.encode(frame)
    if data.n == 0:
        return acc
    y = data.y if data.offset is None else data.y - data.offset
    acc.add(data.codes, data.Z, data.X, y, data.weights)
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
        template = _template_design(spec, scan)
        for attempt in range(2):     # a second pass only when X is rank deficient, with the kept columns
            acc = CrossprodAccumulator(template.terms, template.p, weighted=spec.weights is not None)
            for frame in sources.progress(source(spec.columns), control, total=scan.batches,
                                          desc="cross-products"):
                _accumulate(acc, frame, template)
            kept = _kept_columns(acc, template) if attempt == 0 else None
            if kept is None:
                break
            template = _template_design(spec, scan, kept)
    finally:
        source.close()
    return spec, scan, template, acc, source.like()


# ---------------------------------------------------------------------------------- Dask
def _scan_partition(frame, spec):
    return _Scan().add(frame, spec)


def _merge_scans(a, b, spec):
    return a.merge(b, spec)


def _accumulate_partition(frame, template):
    acc = CrossprodAccumulator(template.terms, template.p, weighted=template.spec.weights_column is not None,
                               pairs="runs")
    return _accumulate(acc, frame, template)


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
    template = _template_design(spec, scan)
    for attempt in range(2):         # a second pass only when X is rank deficient, with the kept columns
        template_d = dask.delayed(template, traverse=False)
        acc = _tree([dask.delayed(_accumulate_partition)(p, template_d) for p in parts],
                    _merge_accumulators).compute()
        kept = _kept_columns(acc, template) if attempt == 0 else None
        if kept is None:
            break
        template = _template_design(spec, scan, kept)
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
    MixedModel

    Examples
    --------
    >>> import polars as pl, mixframe as mf
    >>> lf = pl.from_pandas(mf.datasets.sleepstudy()).lazy()
    >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", lf)
    >>> round(fit.fixef["Days"], 4)
    10.4673
    """
    from .results import MixedModel
    from .results.call import FitCall

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
    info = {"formula": formula, "reml": reml, "columns": spec.columns, "weights": weights}
    if reml:
        info["call"] = FitCall("lmm", {"formula": formula, "weights": weights, "offset": offset,
                                       "groups": groups, "random": random, "control": control})
    return MixedModel.from_stream(raw, data, like, spec.columns, weights, call_info=info)
