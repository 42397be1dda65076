"""Exact, order-independent LMM cross-products A = [Z E]' W [Z E], for rows in memory or in batches.

Every cell of A is a sum over rows of one product per row, ``(w_i u_i) v_i``, formed the same way wherever the
row is read. The sums are exact (``mixframe._ext.crossprod``: integer bins at fixed bit positions), rounded once
at the end, so the same rows give bitwise the same A whatever their order, batching or partitioning: an LMM
fitted from a stream equals the in-memory fit of the same rows, not merely to rounding.

When every term is a plain intercept ``(1 | g)`` and there are no weights, the Z blocks are counts; they are
summed as integers, which is exact too. The blocks, for term 0 (the largest) and the others ("R terms"):

============  =====================================================  ======================================
block         cells                                                  kept as
============  =====================================================  ======================================
A11           per level of term 0: Z0' W Z0 (lower triangle)         counts or exact cells
A22 diagonal  per level of each R term: its own Z'WZ (lower)         counts or exact cells
AE1, AER      per level of each term: Z' W E                         exact cells
AEE           E' W E (lower triangle)                                exact cells
A21, A22 off  per observed pair of levels of two terms               :class:`PairBlock`
log weights   sum of log w                                           one exact cell
============  =====================================================  ======================================
"""
from __future__ import annotations

import functools

import numpy as np

from .._ext import crossprod as _cp
from ..errors import DataError

#: a dense grid of pair cells is used up to this many bytes; sparser or larger pairs are kept as sorted runs
PAIR_GRID_BYTES = 1 << 29
_CELL_BYTES = 8 * _cp.CELL
_EMPTY_W = np.empty(0)
_ONES = np.empty((0, 1))   # a model matrix with no rows stands for a column of ones (an intercept-only term)


def exact_sum(values) -> float:
    """The sum of ``values`` computed exactly and rounded once: the same for any order of the values.

    Examples
    --------
    >>> exact_sum([1e16, 1.0, -1e16]), sum([1e16, 1.0, -1e16])
    (1.0, 0.0)
    """
    x = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        return float(np.sum(x))
    return float(_cp.exact_sum(x))


def table_codes(values, low: float, table) -> np.ndarray:
    """int32 codes of numbers through a lookup table: ``table[v - low]`` for the integral values in its range,
    -1 for every other value (missing, fractional, or outside).

    Examples
    --------
    >>> table_codes(np.array([3.0, 5.0, 4.5, np.nan, 9.0]), 3.0, np.array([0, -1, 1], dtype=np.int32)).tolist()
    [0, 1, -1, -1, -1]
    """
    out = np.empty(np.shape(values)[0], dtype=np.int32)
    _cp.table_codes(np.ascontiguousarray(values, dtype=np.float64), float(low), table, out)
    return out


def count_terms(terms, weighted: bool) -> bool:
    """True when the Z blocks are counts: every term a scalar intercept ``(1 | g)`` and no weights."""
    return not weighted and all(t.k == 1 and getattr(t, "spec", None) is None for t in terms)


def _offsets(sizes) -> np.ndarray:
    """int64 starts of consecutive blocks of the given sizes, and the end: [0, s0, s0 + s1, ...]."""
    out = [0]
    for size in sizes:
        out.append(out[-1] + int(size))
    return np.array(out, dtype=np.int64)


def _tri(k: int) -> int:
    return k * (k + 1) // 2


def _values(cells) -> np.ndarray:
    out = np.empty(cells.shape[0])
    _cp.cell_values(cells, out)
    return out


def _check(bad: int) -> None:
    if bad:
        raise DataError(f"{bad} cross-product term(s) are not finite: the response, a fixed-effect column or "
                        "a random-effect column holds values too large to square; rescale them")


class PairBlock:
    """Cross-products of the observed pairs of levels of two terms ``a`` and ``b``.

    The cell of the pair (level la of a, level lb of b) holds, row-major over (b's columns, a's columns),
    the sums of (w v_b) u_a; with ``count`` it holds the number of rows of the pair. Pairs are keyed
    ``la * m_b + lb`` and kept either in a dense grid over every pair (fast, when it fits in
    ``PAIR_GRID_BYTES``) or as sorted runs of (key, cells) merged as they grow.

    Parameters
    ----------
    m_a, k_a, m_b, k_b : int
        Levels and columns of the two terms.
    count : bool
        Cells are counts (both terms scalar intercepts, no weights).
    grid : bool or None
        Dense grid (True), runs (False), or the grid when it fits (None).
    """

    def __init__(self, m_a: int, k_a: int, m_b: int, k_b: int, count: bool, grid=None):
        self.m_a, self.k_a, self.m_b, self.k_b = int(m_a), int(k_a), int(m_b), int(k_b)
        self.count = bool(count)
        self.per = 1 if self.count else self.k_a * self.k_b
        self.rows = 0
        self.grid = None
        self.runs = []
        if grid is None:
            grid = self.grid_bytes() <= PAIR_GRID_BYTES
        if grid:
            self._make_grid()

    def grid_bytes(self, dtype=np.int32) -> int:
        cells = self.m_a * self.m_b * self.per
        return cells * (np.dtype(dtype).itemsize if self.count else _CELL_BYTES)

    def _make_grid(self):
        cells = self.m_a * self.m_b
        self.grid = np.zeros(cells, dtype=np.int32) if self.count else _cp.new_cells(cells * self.per)
        for run in self.runs:
            self._run_into_grid(run)
        self.runs = []

    def _run_into_grid(self, run):
        keys, vals = run                                    # keys of a run are unique
        if self.count:
            self._widen()
            self.grid[keys] += vals[:, 0].astype(self.grid.dtype)
        else:
            pos = (keys[:, None] * self.per + np.arange(self.per)).reshape(-1)
            target = _cp.new_cells(pos.size)
            target[...] = self.grid[pos]
            _cp.merge_cells(target, np.ascontiguousarray(vals))
            self.grid[pos] = target

    def _widen(self):
        """Counts in int32 until they could overflow it (no cell counts more than ``rows``)."""
        if self.grid is not None and self.count and self.grid.dtype == np.int32 and self.rows >= 2 ** 31 - 1:
            self.grid = self.grid.astype(np.int64)

    def add(self, la, lb, U, V, w=None):
        """Add rows with levels ``la`` of a and ``lb`` of b (int32) and model matrices U (n, k_a), V (n, k_b)."""
        keys = la.astype(np.int64) * self.m_b + lb
        self.rows += keys.shape[0]
        if self.grid is not None:
            if self.count:
                self._widen()
                _cp.add_counts(keys, self.grid)
            else:
                _check(_cp.pair_exact(keys * self.per, U, V, _EMPTY_W if w is None else w, self.grid))
            return
        uniq, inverse = np.unique(keys, return_inverse=True)
        inverse = inverse.reshape(-1)
        if self.count:
            vals = np.bincount(inverse, minlength=uniq.shape[0]).astype(np.int64)[:, None]
        else:
            vals = _cp.new_cells(uniq.shape[0] * self.per)
            _check(_cp.pair_exact(inverse.astype(np.int64) * self.per, U, V, _EMPTY_W if w is None else w, vals))
        self._push((uniq, vals))

    def _push(self, run):
        self.runs.append(run)
        while len(self.runs) > 1 and 2 * self.runs[-1][0].size >= self.runs[-2][0].size:
            b = self.runs.pop()
            a = self.runs.pop()
            self.runs.append(_cp.merge_runs(a[0], a[1], b[0], b[1], self.per, not self.count))
        entries = sum(r[0].size for r in self.runs)
        if entries * (8 + self.per * (8 if self.count else _CELL_BYTES)) > self.grid_bytes() and \
                self.grid_bytes() <= PAIR_GRID_BYTES:
            self._make_grid()

    def merge(self, other: PairBlock) -> PairBlock:
        """Add the sums of ``other`` (same terms) into this block; returns self."""
        self.rows += other.rows
        if other.grid is not None and self.grid is None:
            self._make_grid()
        if self.grid is not None:
            if other.grid is not None:
                if self.count:
                    self._widen()
                    if other.grid.dtype != self.grid.dtype:
                        self.grid = self.grid.astype(np.int64)
                    self.grid += other.grid
                else:
                    _cp.merge_cells(self.grid, other.grid)
            else:
                for run in other.runs:
                    self._run_into_grid(run)
            return self
        for run in other.runs:
            self._push(run)
        return self

    def entries(self):
        """(keys, values): the observed pairs in key order and their sums, float64 (pairs, per)."""
        if self.grid is not None:
            if self.count:
                keys = np.flatnonzero(self.grid)
                return keys, self.grid[keys].astype(np.float64)[:, None]
            touched = self.grid[::self.per, 0] >= 0
            keys = np.flatnonzero(touched)
            pos = (keys[:, None] * self.per + np.arange(self.per)).reshape(-1)
            return keys, _values(np.ascontiguousarray(self.grid[pos])).reshape(-1, self.per)
        run = (np.zeros(0, dtype=np.int64), np.zeros((0, 1 if self.count else _cp.CELL), dtype=np.int64))
        for other in self.runs:
            run = _cp.merge_runs(run[0], run[1], other[0], other[1], self.per, not self.count)
        self.runs = [run] if run[0].size else []
        keys, vals = run
        if self.count:
            return keys, vals.astype(np.float64)
        return keys, _values(vals).reshape(-1, self.per)

    def csr(self):
        """For a count grid: (ptr over levels of a, levels of b, counts) without temporaries of the grid's size."""
        ptr = np.empty(self.m_a + 1, dtype=np.int32)
        cols, vals = _cp.grid_runs(self.grid, self.m_a, self.m_b, ptr)
        return ptr, cols, vals


class Crossprods:
    """Running exact sums of the blocked LMM cross-products over rows given in any number of batches.

    Parameters
    ----------
    terms : list of RETerm
        The fit's terms (largest first); only ``k``, ``n_levels`` and ``spec`` are read.
    n_extra : int
        Dense columns E (fixed effects then the response).
    weighted : bool
        Whether rows come with prior weights.
    pairs : {"grid", "runs", None}
        How the pairs of levels of two terms are kept (None: a dense grid when it fits).
    term0_pairs : bool
        Keep the pairs of term 0 with the others here (False when the caller knows their pattern,
        see :meth:`add`).

    Examples
    --------
    >>> import numpy as np
    >>> from mixframe.design.terms import RETerm
    >>> t = RETerm("g", np.zeros(0, dtype=np.int32), ["a", "b"], np.zeros((0, 1)), ["(Intercept)"])
    >>> acc = Crossprods([t], n_extra=2)
    >>> acc.add([np.array([0, 1, 1], dtype=np.int32)], [np.ones((3, 1))], np.ones((3, 2)))
    >>> acc.n, acc.blocks()["A11"][:, 0, 0].tolist()
    (3, [1.0, 2.0])
    """

    def __init__(self, terms, n_extra: int, weighted: bool = False, pairs=None, term0_pairs: bool = True):
        self.terms = list(terms)
        self.ne = int(n_extra)
        self.weighted = bool(weighted)
        self.count = count_terms(self.terms, self.weighted)
        ks = [t.k for t in self.terms]
        ms = [t.n_levels for t in self.terms]
        self.k, self.m = ks, ms
        self.n = 0
        self.logw_cell = _cp.new_cells(1)
        self.logw_zero = False
        self.diag = [np.zeros(m, dtype=np.int64) if self.count else _cp.new_cells(m * _tri(k))
                     for m, k in zip(ms, ks)]
        self.ze = [_cp.new_cells(m * k * self.ne) for m, k in zip(ms, ks)]
        self.ee = _cp.new_cells(_tri(self.ne))
        grid = {"grid": True, "runs": False, None: None}[pairs]
        self.pairs = {}
        for t in range(1, len(self.terms)):
            for s in range(t):
                if s == 0 and not term0_pairs:
                    continue
                self.pairs[(t, s)] = PairBlock(ms[s], ks[s], ms[t], ks[t], self.count, grid)

    # ------------------------------------------------------------------ adding rows
    def add(self, codes, Zs, E, w=None, a21=None):
        """Add a batch of complete rows.

        Parameters
        ----------
        codes, Zs : lists (one per term) of int32 (n,) codes into the terms' levels and (n, k) matrices
            (None for an intercept-only term)
        E : ndarray (n, n_extra)
            Fixed-effects columns and the response (minus any offset).
        w : ndarray (n,) or None
            Prior weights (only when the accumulator is ``weighted``).
        a21 : tuple (pos, cells), optional
            Where the pairs of term 0 with R term t go when the caller holds their pattern: ``pos[t - 1]``
            (n,) int64 the first cell of each row's pair and ``cells`` the array of those cells (counts
            float64, or exact cells), laid out as the factor's A21.
        """
        E = np.ascontiguousarray(E, dtype=np.float64)
        n = E.shape[0]
        if n == 0:
            return
        if (w is not None) != self.weighted:
            raise ValueError("weights must be given for every batch of a weighted accumulator, and only then")
        if self.n + n >= _cp.MAX_TERMS:
            raise DataError(f"more than {_cp.MAX_TERMS:,} rows: the exact cross-product sums would overflow")
        wv = _EMPTY_W if w is None else np.ascontiguousarray(w, dtype=np.float64)
        codes = [np.ascontiguousarray(c, dtype=np.int32) for c in codes]
        Zs = [_ONES if Z is None else np.ascontiguousarray(Z, dtype=np.float64) for Z in Zs]
        if self.count and not all(Z is _ONES or (Z == 1.0).all() for Z in Zs):
            raise ValueError("intercept-only terms need a model matrix of ones")
        bad = 0
        for t, (c, Z) in enumerate(zip(codes, Zs)):
            if self.count:
                self.diag[t] += np.bincount(c, minlength=self.m[t])
            else:
                bad += _cp.level_exact(c, Z, Z, wv, self.diag[t], True)
            bad += _cp.level_exact(c, Z, E, wv, self.ze[t], False)
        bad += _cp.level_exact(np.empty(0, dtype=np.int32), E, E, wv, self.ee, True)
        for (t, s), block in self.pairs.items():
            block.add(codes[s], codes[t], Zs[s], Zs[t], wv if self.weighted else None)
        if a21 is not None:
            pos, cells = a21
            for t in range(1, len(self.terms)):
                if self.count:
                    _cp.add_counts(pos[t - 1], cells.reshape(-1))
                else:
                    bad += _cp.pair_exact(pos[t - 1], Zs[0], Zs[t], wv, cells)
        if self.weighted:
            with np.errstate(divide="ignore"):
                log_w = np.log(wv)
            if not np.isfinite(log_w).all():      # zero weights: the log-likelihood's weight term is -inf
                self.logw_zero = True
                log_w = log_w[np.isfinite(log_w)]
            bad += _cp.level_exact(np.empty(0, dtype=np.int32), np.ascontiguousarray(log_w[:, None]), _ONES,
                                   _EMPTY_W, self.logw_cell, False)
        _check(bad)
        self.n += n

    def merge(self, other: Crossprods) -> Crossprods:
        """Add the sums of another accumulator of the same model; returns self."""
        if other.count != self.count or len(other.terms) != len(self.terms):
            raise ValueError("cannot merge the cross-products of different models")
        self.n += other.n
        _cp.merge_cells(self.logw_cell, other.logw_cell)
        self.logw_zero |= other.logw_zero
        for a, b in zip(self.diag + self.ze + [self.ee], other.diag + other.ze + [other.ee]):
            if self.count and a.ndim == 1:
                a += b
            else:
                _cp.merge_cells(a, b)
        for key, block in self.pairs.items():
            block.merge(other.pairs[key])
        return self

    # ------------------------------------------------------------------ the finished blocks
    def log_weights(self) -> float:
        """The sum of the log prior weights over the rows of positive weight (a row of weight zero adds
        nothing to the likelihood, so nothing to its weight term)."""
        if not self.weighted:
            return 0.0
        return float(_values(self.logw_cell)[0])

    def blocks(self, target: dict | None = None) -> dict:
        """The summed blocks as the factor stores them: A11 (m0, k0, k0), A22 (q2, q2) symmetric (without the
        pairs of term 0), AE1 (ne, q1), AER (ne, q2), AEE (ne, ne) symmetric.

        ``target`` may hold arrays of those shapes to fill in place (the factor's own: no second copy of a
        large A22)."""
        ne, ks, ms = self.ne, self.k, self.m
        q1 = ms[0] * ks[0]
        q2 = int(sum(m * k for m, k in zip(ms[1:], ks[1:])))
        out = dict(target or {})
        for name, shape in (("A11", (ms[0], ks[0], ks[0])), ("A22", (q2, q2)), ("AE1", (ne, q1)),
                            ("AER", (ne, q2)), ("AEE", (ne, ne))):
            if name not in out:
                out[name] = np.empty(shape)
        out["A11"][...] = self._diag_block(0)
        out["AE1"][...] = _values(self.ze[0]).reshape(ms[0], ks[0], ne).transpose(2, 0, 1).reshape(ne, q1)
        offs = _offsets([m * k for m, k in zip(ms[1:], ks[1:])])
        A22, AER = out["A22"], out["AER"]
        A22[...] = 0.0
        for t in range(1, len(self.terms)):
            m, k, o = ms[t], ks[t], offs[t - 1]
            idx = o + np.arange(m)[:, None] * k + np.arange(k)          # (m, k) rows of block 2
            A22[idx[:, :, None], idx[:, None, :]] = self._diag_block(t)
            AER[:, o:o + m * k] = _values(self.ze[t]).reshape(m, k, ne).transpose(2, 0, 1).reshape(ne, m * k)
        for (t, s), block in self.pairs.items():
            if s == 0:
                continue
            keys, vals = block.entries()
            ls, lt = keys // ms[t], keys % ms[t]
            rows = (offs[t - 1] + lt[:, None] * ks[t] + np.arange(ks[t]))[:, :, None]
            cols = (offs[s - 1] + ls[:, None] * ks[s] + np.arange(ks[s]))[:, None, :]
            vals = vals.reshape(-1, ks[t], ks[s])
            A22[rows, cols] = vals
            A22[cols.transpose(0, 2, 1), rows.transpose(0, 2, 1)] = vals.transpose(0, 2, 1)
        tri = _values(self.ee)
        r, c = _tri_order(ne)
        out["AEE"][r, c] = tri
        out["AEE"][c, r] = tri
        return out

    def release_pairs(self, term0_only: bool = False) -> None:
        """Drop the pairs of levels (all, or those of term 0) once they have been read."""
        self.pairs = {key: b for key, b in self.pairs.items() if term0_only and key[1] != 0}

    def _diag_block(self, t) -> np.ndarray:
        m, k = self.m[t], self.k[t]
        if self.count:
            return self.diag[t].astype(np.float64).reshape(m, 1, 1)
        tri = _values(self.diag[t]).reshape(m, _tri(k))
        out = np.empty((m, k, k))
        r, c = _tri_order(k)
        out[:, r, c] = tri
        out[:, c, r] = tri
        return out

    def a21(self):
        """The pairs of term 0 with the R terms as the factor's pattern: (a21_ptr, a21_row, values (nnz, k0)).

        Rows of block 2 are ordered term by term, level by level, column by column; entries by level of
        term 0, then row."""
        ks, ms = self.k, self.m
        m0, k0 = ms[0], ks[0]
        if len(self.terms) == 1:
            return np.zeros(m0 + 1, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros((0, k0))
        offs = _offsets([m * k for m, k in zip(ms[1:], ks[1:])])
        if len(self.terms) == 2 and self.count and self.pairs[(1, 0)].grid is not None:
            ptr, cols, vals = self.pairs[(1, 0)].csr()
            return ptr, cols, vals[:, None]
        js, rows, values = [], [], []
        for t in range(1, len(self.terms)):
            keys, vals = self.pairs[(t, 0)].entries()
            kt = ks[t]
            js.append(np.repeat(keys // ms[t], kt))
            rows.append((offs[t - 1] + (keys % ms[t])[:, None] * kt + np.arange(kt)).reshape(-1))
            values.append(vals.reshape(-1, k0))
        j, row, val = np.concatenate(js), np.concatenate(rows), np.concatenate(values)
        if len(self.terms) > 2:
            order = np.argsort(j, kind="stable")
            j, row, val = j[order], row[order], val[order]
        ptr = np.searchsorted(j, np.arange(m0 + 1)).astype(np.int32)
        return ptr, row.astype(np.int32), np.ascontiguousarray(val)


@functools.lru_cache(maxsize=64)
def _tri_order(k: int):
    """Row and column of the lower-triangle cells in the order the kernel stores them: (0,0), (1,0), (1,1), ...
    (read-only arrays, made once per k)."""
    rows = np.repeat(np.arange(k), np.arange(1, k + 1))
    cols = np.concatenate([np.arange(a + 1) for a in range(k)]) if k else np.zeros(0, dtype=np.int64)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols
