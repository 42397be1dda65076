"""Linear mixed models from cross-products summed over batches of rows.

The profiled deviance of an LMM touches the data only through the blocked cross-product
A = [Z X y]' W [Z X y], the number of rows, the number of fixed effects and the sum of the log prior
weights.  :class:`CrossprodAccumulator` builds A batch by batch with exact sums
(:mod:`mixframe.linalg.crossprod`): the pairs of levels of two terms (the block-sparse part Z_R' W Z_0)
in a dense grid or as sorted runs merged as they grow, the per-level blocks in dense arrays.
Accumulators of different partitions merge exactly, so a tree reduction over partitions gives bitwise
the system of one pass, and the system the in-memory fit builds from the same rows.
:func:`fit_lmm_crossprod` then optimises the deviance on the finished system with the in-memory
LMM's formulas (:class:`~mixframe.fit.lmm.LmmObjective`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..design.terms import Design
from ..errors import DataError
from ..linalg.blocked import BlockedSystem
from ..linalg.crossprod import Crossprods
from .checks import check_random_effect_sizes
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
        fixed_formula=template.fixed_formula, extra=extra, spec=template.spec, n_used=int(n_used))


class CrossprodAccumulator(Crossprods):
    """Running exact sums of the blocked LMM cross-products over batches of complete rows.

    The sums do not depend on how the rows are split into batches or partitions, nor on their order
    (:mod:`mixframe.linalg.crossprod`): the finished system is bitwise the one the in-memory fit builds.

    Parameters
    ----------
    terms : list of RETerm
        The fit's terms (global levels, largest term first); only their shapes are used.
    p : int
        Number of fixed-effect columns.
    weighted : bool
        Rows come with prior weights.
    pairs : {"grid", "runs", None}
        How pairs of levels of two terms are kept (None: a dense grid when it fits; Dask partitions use
        runs, which merge cheaply).

    Examples
    --------
    >>> import numpy as np
    >>> from mixframe.design.terms import RETerm
    >>> t = RETerm("g", np.zeros(0, dtype=np.int32), ["a", "b"], np.zeros((0, 1)), ["(Intercept)"])
    >>> acc = CrossprodAccumulator([t], p=1)
    >>> acc.add([np.array([0, 1, 1], dtype=np.int32)], [np.ones((3, 1))], np.ones((3, 1)),
    ...         np.array([1.0, 2.0, 4.0]))
    >>> acc.n, acc.blocks()["AE1"].tolist()
    (3, [[1.0, 2.0], [1.0, 6.0]])
    """

    def __init__(self, terms, p: int, weighted: bool = False, pairs=None):
        super().__init__(terms, int(p) + 1, weighted=weighted, pairs=pairs)
        self.p = int(p)
        self.n_zero_weight = 0      # rows of prior weight 0: in the sums as nothing, and not counted in n

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
        X = np.asarray(X, dtype=np.float64)
        E = np.empty((X.shape[0], self.ne))
        E[:, :self.p] = X
        E[:, self.p] = y
        super().add(codes, Zs, E, w)
        if w is not None:
            self.n_zero_weight += int(np.count_nonzero(np.asarray(w) == 0.0))

    def merge(self, other):
        super().merge(other)
        self.n_zero_weight += getattr(other, "n_zero_weight", 0)
        return self

    @property
    def log_w(self) -> float:
        return self.log_weights()

    def system(self, release: bool = False) -> StreamSystem:
        """The finished :class:`StreamSystem` holding the summed blocks.

        With ``release`` the pairs of levels are dropped as soon as they have been read (the accumulator
        cannot be used afterwards): the grid of a large crossed design is then not held next to the factor.
        """
        a21_ptr, a21_row, vals = self.a21()
        if release:
            self.release_pairs(term0_only=True)
        system = StreamSystem(self.terms, self.ne, a21_ptr, a21_row)
        system.install_crossprods(self, vals)
        if release:
            self.release_pairs()
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

    def crossprod(self, E, w=None, exact=False):
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
    check_random_effect_sizes(design, "lmm")
    n_weighted = acc.n - getattr(acc, "n_zero_weight", 0)
    obj = StreamObjective(acc.system(release=True), n_weighted, acc.p, acc.log_w, reml)
    ctl = {k: v for k, v in (control or {}).items() if k != "batch_size"}
    opt = optimize_lmm(obj, design, ctl)
    return finish_lmm(obj, design, opt, None, extra={"streamed": True})
