"""Linear mixed models from cross-products summed over batches of rows.

The profiled deviance of an LMM touches the data only through the blocked cross-product
A = [Z X y]' W [Z X y], the number of rows, the number of fixed effects and the sum of the log prior
weights.  :class:`CrossprodAccumulator` builds A batch by batch (each batch through the compiled
kernel, on a batch-local pattern), keeps the block-sparse part Z_R' W Z_0 as sorted runs of
(key, value) pairs merged as they grow, and sums the dense blocks.  Accumulators of different
partitions merge exactly, so a tree reduction over partitions gives the same system as one pass.
:func:`fit_lmm_crossprod` then optimises the deviance on the finished system with the in-memory
LMM's formulas (:class:`~mixframe.fit.lmm.LmmObjective`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..design.terms import Design
from ..errors import DataError
from .blocked import BlockedSystem
from .lmm import LmmObjective, finish_lmm, optimize_lmm
from .result import RawFit


@dataclasses.dataclass(frozen=True, eq=False)
class StreamedDesign(Design):
    """A :class:`Design` without per-row arrays: the fixed-effects spec, the terms' levels, and counts.

    ``X``, ``y`` and the terms' ``codes``/``Z`` have zero rows; ``n_obs`` is ``n_used``, the number of
    complete rows over every batch, and ``n_total`` the number of rows read.
    """

    n_used: int = 0

    @property
    def n_obs(self) -> int:
        return int(self.n_used)


def streamed_design(template: Design, n_used: int, n_total: int, missing_by_column: dict) -> StreamedDesign:
    """A :class:`StreamedDesign` carrying the levels and specs of ``template`` and the global counts."""
    terms = [dataclasses.replace(t, codes=np.zeros(0, dtype=np.int32), Z=np.zeros((0, t.k)))
             for t in template.terms]
    extra = dict(template.extra)
    extra["n_dropped"] = int(n_total - n_used)
    extra["missing_by_column"] = dict(missing_by_column)
    return StreamedDesign(
        X=np.zeros((0, template.p)), x_names=list(template.x_names), y=np.zeros(0),
        weights=None if template.weights is None else np.zeros(0),
        offset=None if template.offset is None else np.zeros(0), terms=terms,
        used=np.zeros(0, dtype=bool), n_total=int(n_total), response=template.response,
        response_levels=template.response_levels, fixed_spec=template.fixed_spec, formula=template.formula,
        fixed_formula=template.fixed_formula, extra=extra, n_used=int(n_used))


def _merge_runs(a, b):
    """Sum two sorted (keys, values) runs into one sorted run with unique keys."""
    keys = np.concatenate([a[0], b[0]])
    vals = np.concatenate([a[1], b[1]])
    order = np.argsort(keys, kind="stable")  # two sorted runs: the merge is linear
    keys = keys[order]
    if keys.size == 0:
        return keys, vals
    start = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[start], np.add.reduceat(vals[order], start, axis=0)


class CrossprodAccumulator:
    """Running sums of the blocked LMM cross-products over batches of complete rows.

    Parameters
    ----------
    terms : list of RETerm
        The fit's terms (global levels, largest term first); only their shapes are used.
    p : int
        Number of fixed-effect columns.

    Examples
    --------
    >>> import numpy as np
    >>> from mixframe.design.terms import RETerm
    >>> t = RETerm("g", np.zeros(0, dtype=np.int32), ["a", "b"], np.zeros((0, 1)), ["(Intercept)"])
    >>> acc = CrossprodAccumulator([t], p=1)
    >>> acc.add([np.array([0, 1, 1], dtype=np.int32)], [np.ones((3, 1))], np.ones((3, 1)),
    ...         np.array([1.0, 2.0, 4.0]))
    >>> acc.n, acc.A11[:, 0, 0].tolist()
    (3, [1.0, 2.0])
    """

    def __init__(self, terms, p: int):
        self.terms = list(terms)
        self.p = int(p)
        self.ne = self.p + 1
        t0 = self.terms[0]
        self.k0, self.m0 = t0.k, t0.n_levels
        self.q2 = int(sum(t.q for t in self.terms[1:]))
        self.n = 0
        self.log_w = 0.0
        self.A11 = np.zeros((self.m0, self.k0, self.k0))
        self.A22 = np.zeros((self.q2, self.q2))
        self.AE1 = np.zeros((self.ne, self.k0 * self.m0))
        self.AER = np.zeros((self.ne, self.q2))
        self.AEE = np.zeros((self.ne, self.ne))
        self.runs = []

    def add(self, codes, Zs, X, y, w=None):
        """Add the cross-products of one batch of complete rows.

        Parameters
        ----------
        codes, Zs : lists (one per term) of int32 (n,) codes into the global levels and (n, k) matrices
        X : ndarray (n, p)
        y : ndarray (n,)
            The response minus any offset.
        w : ndarray (n,) or None
            Prior weights.
        """
        n = int(np.asarray(y).shape[0])
        if n == 0:
            return
        batch_terms = [dataclasses.replace(t, codes=np.ascontiguousarray(c, dtype=np.int32),
                                           Z=np.ascontiguousarray(Z, dtype=np.float64))
                       for t, c, Z in zip(self.terms, codes, Zs)]
        system = BlockedSystem(batch_terms, self.ne)
        system.crossprod(np.column_stack([X, y]), w)
        c = system.chol
        self.A11 += np.asarray(c.A11)
        self.AE1 += np.asarray(c.AE1)
        self.AEE += np.asarray(c.AEE)
        if self.q2:
            self.A22 += np.asarray(c.A22)
            self.AER += np.asarray(c.AER)
            cols = np.repeat(np.arange(self.m0, dtype=np.int64), np.diff(system.a21_ptr))
            keys = cols * self.q2 + np.asarray(system.a21_row, dtype=np.int64)
            self._push((keys, np.array(c.A21, copy=True)))
        self.n += n
        if w is not None:
            self.log_w += float(np.sum(np.log(w)))

    def _push(self, run):
        self.runs.append(run)
        while len(self.runs) > 1 and 2 * self.runs[-1][0].size >= self.runs[-2][0].size:
            b = self.runs.pop()
            a = self.runs.pop()
            self.runs.append(_merge_runs(a, b))

    def merge(self, other: CrossprodAccumulator) -> CrossprodAccumulator:
        """Add the sums of another accumulator (of the same model) into this one; returns self."""
        self.n += other.n
        self.log_w += other.log_w
        self.A11 += other.A11
        self.A22 += other.A22
        self.AE1 += other.AE1
        self.AER += other.AER
        self.AEE += other.AEE
        for run in other.runs:
            self._push(run)
        return self

    def a21(self):
        """The summed block-sparse part as (a21_ptr, a21_row, values)."""
        run = (np.zeros(0, dtype=np.int64), np.zeros((0, self.k0)))
        for other in self.runs:
            run = _merge_runs(run, other)
        self.runs = [run] if run[0].size else []
        keys, vals = run
        q2 = max(self.q2, 1)
        cols = keys // q2
        a21_ptr = np.searchsorted(cols, np.arange(self.m0 + 1)).astype(np.int32)
        return a21_ptr, (keys % q2).astype(np.int32), vals

    def system(self) -> StreamSystem:
        """The finished :class:`StreamSystem` holding the summed blocks."""
        a21_ptr, a21_row, vals = self.a21()
        system = StreamSystem(self.terms, self.ne, a21_ptr, a21_row)
        system.set_crossprod_blocks(self.A11, vals, self.A22, self.AE1, self.AER, self.AEE)
        return system


class StreamSystem(BlockedSystem):
    """A :class:`BlockedSystem` whose pattern and cross-products come from summed batches, not rows.

    Parameters
    ----------
    terms : list of RETerm
        Only the shapes (``k``, ``n_levels``) are read.
    n_extra : int
        Number of dense columns (p + 1).
    a21_ptr, a21_row : int32 arrays
        The global pattern of Z_R' W Z_0 (see :class:`BlockedSystem`).
    """

    def __init__(self, terms, n_extra: int, a21_ptr, a21_row):
        self._set_structure(terms, n_extra)
        self._set_pattern(a21_ptr, a21_row)

    def crossprod(self, E, w=None):
        raise TypeError("a StreamSystem holds summed cross-products; add rows through CrossprodAccumulator")


class StreamObjective(LmmObjective):
    """:class:`LmmObjective` on a finished :class:`StreamSystem` (same deviance formulas)."""

    def __init__(self, system: StreamSystem, n: int, p: int, log_w: float, reml: bool = True):
        if n <= p:
            raise DataError(f"{n} complete rows cannot estimate {p} fixed effects and a residual variance")
        self.design = None
        self.reml = bool(reml)
        self.n, self.p = int(n), int(p)
        self.system = system
        self.log_w = float(log_w)
        self.evaluations = 0


def fit_lmm_crossprod(design: StreamedDesign, acc: CrossprodAccumulator, reml: bool = True,
                      control: dict | None = None) -> RawFit:
    """Fit an LMM by (RE)ML from summed cross-products; the record has no per-row arrays.

    Parameters
    ----------
    design : StreamedDesign
        Levels, specs and counts (``n_obs`` must equal ``acc.n``).
    acc : CrossprodAccumulator
    reml : bool
    control : dict, optional
        As for :func:`mixframe.fit.lmm.fit_lmm` (``progress`` is ignored here).

    Returns
    -------
    RawFit
        ``eta`` and ``eta_fixed`` are empty: fitted values come from the result's ``augment``.
    """
    for term in design.terms:
        if term.n_levels >= acc.n:
            raise DataError(f"grouping factor {term.group!r} has {term.n_levels} levels for {acc.n} "
                            "observations; an LMM needs fewer levels than observations")
    obj = StreamObjective(acc.system(), acc.n, acc.p, acc.log_w, reml)
    ctl = {k: v for k, v in (control or {}).items() if k != "batch_size"}
    opt = optimize_lmm(obj, design, ctl)
    return finish_lmm(obj, design, opt, None, extra={"streamed": True})
