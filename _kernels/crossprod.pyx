# Order-independent (reproducible) sums for the LMM cross-products A = [Z X y]' W [Z X y].
#
# A floating-point sum depends on the order of its terms, so the same rows summed in another order (other
# batches, other partitions, rows shuffled) give cross-products that differ in the last bits, and an optimizer
# fed those stops at another point of a flat optimum. Here every cell of A is summed *exactly* in integers:
#
# * A term x (a double, itself a product of data values formed the same way for every row) is split at fixed
#   bit positions into 30-bit digits: digit b holds the bits of |x| at positions [30 b, 30 b + 30) of its
#   exponent-biased binary expansion (x = m 2^(P - 1074), bits of m at positions P .. P + 52). Bit slicing is
#   exact, so the digit of x at a bin does not depend on anything but x.
# * A cell keeps three bins (int64 sums of the signed digits) at positions I, I - 1, I - 2, where the index I is
#   the highest bin any of its terms reaches. When a larger term arrives the window moves up and the lowest bins
#   are dropped whole, so the kept bins always hold the sum, over every term, of that term's digits at those
#   bins: a function of the set of terms, not of their order. (This is the indexed summation of Demmel & Nguyen,
#   "Parallel reproducible summation", IEEE Trans. Computers 64(7), 2015, with integer bins and truncated digits.)
# * Cells of two accumulators (two batches, two Dask partitions) add the same way, so any tree of partial sums
#   gives the same bins; the value is then rounded once to the nearest double.
#
# The kept window is 61 to 90 bits below the leading bit of the largest term (a double has 53), and a bin
# overflows only after 2^33 terms (MAX_TERMS). Terms whose digits all fall below the window are dropped
# (they are below 2^-60 of the largest term).
#
# A cell is four int64: [index (-1: no term yet), bin I, bin I - 1, bin I - 2].
#
# cython: language_level=3

cimport cython
from libc.stdint cimport int64_t, uint64_t, int32_t
from libc.string cimport memcpy
from libc.stdlib cimport malloc, free

import numpy as np

cdef extern from *:
    """
    #include <math.h>
    #include <string.h>
    #include <stdint.h>
    #define MF_BIN 30
    #define MF_MASK ((int64_t)0x3FFFFFFF)

    /* bins (hi, mid, lo) at index I: the exact integer hi 2^60 + mid 2^30 + lo in units of 2^(30 (I - 2) - 1074),
       rounded once to the nearest double (the conversion from __int128 rounds to nearest) */
    static inline double mf_bins_value(long long I, long long hi, long long mid, long long lo) {
        __int128 t = ((__int128)hi << 60) + ((__int128)mid << 30) + (__int128)lo;
        if (I < 0 || t == 0) return 0.0;
        return ldexp((double)t, (int)(30 * (I - 2) - 1074));
    }

    /* raise the index of cell c to top, dropping the bins that leave the window */
    static inline void mf_move_up(int64_t* c, int64_t top) {
        int64_t s = top - c[0];
        if (c[0] < 0 || s >= 3) { c[1] = 0; c[2] = 0; c[3] = 0; }
        else if (s == 1) { c[3] = c[2]; c[2] = c[1]; c[1] = 0; }
        else if (s == 2) { c[3] = c[1]; c[2] = 0; c[1] = 0; }
        c[0] = top;
    }

    /* the general case: any finite x, any state of the cell */
    static int mf_exact_add_slow(int64_t* c, uint64_t bits) {
        int64_t e = (int64_t)((bits >> 52) & 0x7FF), p, top, d;
        uint64_t m = bits & ((((uint64_t)1) << 52) - 1);
        unsigned __int128 v;
        int64_t neg;
        if (e == 0x7FF) return 1;
        if (e == 0) {
            if (m == 0) { if (c[0] < 0) c[0] = 0; return 0; }   /* +-0: the cell has a term, nothing to add */
            p = 0;                                              /* subnormal: m 2^(0 - 1074) */
        } else {
            m |= ((uint64_t)1) << 52;
            p = e - 1;
        }
        top = (p + 52) / MF_BIN;
        if (top > c[0]) mf_move_up(c, top);
        d = p - MF_BIN * (c[0] - 2);           /* the position of m's lowest bit above the window's base: <= 37 */
        if (d >= 0) v = (unsigned __int128)m << d;
        else if (d > -64) v = (unsigned __int128)(m >> (-d));
        else v = 0;
        neg = -(int64_t)(bits >> 63);
        c[1] += (((int64_t)(v >> 60)) ^ neg) - neg;
        c[2] += (((int64_t)(v >> 30) & MF_MASK) ^ neg) - neg;
        c[3] += (((int64_t)v & MF_MASK) ^ neg) - neg;
        return 0;
    }

    /* add x to cell c; returns 1 for a non-finite x (not added). The usual case (a normal number whose bits all
       fall inside the current window) takes no division and no wide shift. */
    static inline int mf_exact_add(int64_t* c, double x) {
        uint64_t bits, m, lo64, hi64;
        int64_t e, d, neg;
        memcpy(&bits, &x, 8);
        e = (int64_t)((bits >> 52) & 0x7FF);
        d = e - 1 - MF_BIN * (c[0] - 2);
        if (__builtin_expect(e == 0 || e == 0x7FF || d < 0 || d > 37 || c[0] < 0, 0))
            return mf_exact_add_slow(c, bits);
        m = (bits & ((((uint64_t)1) << 52) - 1)) | (((uint64_t)1) << 52);
        lo64 = m << d;                          /* m 2^d = hi64 2^64 + lo64 */
        hi64 = (m >> 1) >> (63 - d);
        neg = -(int64_t)(bits >> 63);
        c[1] += (((int64_t)((lo64 >> 60) | (hi64 << 4))) ^ neg) - neg;
        c[2] += (((int64_t)(lo64 >> 30) & MF_MASK) ^ neg) - neg;
        c[3] += (((int64_t)lo64 & MF_MASK) ^ neg) - neg;
        return 0;
    }
    #define mf_prefetch(p) __builtin_prefetch((p), 1, 3)
    /* prefetch every cache line of ncells consecutive cells */
    static inline void mf_prefetch_cells(const int64_t* c, long long ncells) {
        const char* p = (const char*)c;
        long long bytes = ncells * 32, off;
        for (off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 1, 3);
        __builtin_prefetch(p + bytes - 1, 1, 3);
    }
    """
    double mf_bins_value(long long I, long long hi, long long mid, long long lo) nogil
    int mf_exact_add(int64_t* c, double x) nogil
    void mf_move_up(int64_t* c, int64_t top) nogil
    void mf_prefetch(void* p) nogil
    void mf_prefetch_cells(int64_t* c, long long ncells) nogil

#: a bin holds digits below 2^30, so an int64 bin is safe for this many terms per cell
MAX_TERMS = 1 << 33
#: the int64 words of one cell
CELL = 4
#: rows ahead whose cells are prefetched (the per-level and pair cells are visited at random)
cdef enum:
    PREFETCH = 32
    LANES = 4
    WORDS = 4


cdef inline int exact_add(int64_t* c, double x) noexcept nogil:
    """Add the term x to the cell c; returns 1 for a non-finite x (not added), else 0."""
    return mf_exact_add(c, x)


cdef inline void exact_merge(int64_t* a, const int64_t* b) noexcept nogil:
    """a += b for two cells (the window of the result is the higher one)."""
    cdef int64_t s, h, m, l
    if b[0] < 0:
        return
    if b[0] > a[0]:
        mf_move_up(a, b[0])
    s = a[0] - b[0]
    h = b[1]
    m = b[2]
    l = b[3]
    if s == 0:
        a[1] += h
        a[2] += m
        a[3] += l
    elif s == 1:
        a[2] += h
        a[3] += m
    elif s == 2:
        a[3] += h


# ---------------------------------------------------------------------------------------------- block sums
def level_exact(const int32_t[::1] codes, const double[:, ::1] U, const double[:, ::1] V, const double[::1] w,
                int64_t[:, ::1] cells, bint sym):
    """Per-level cross-products: cell (codes[i], a, c) gets (w_i U[i, a]) V[i, c] for every row i.

    codes (n,) int32 levels, or empty for one level (every row in level 0); U (n, ku), V (n, kv), either of them
    with no rows standing for a column of ones (ku or kv must then be 1); w (n,) prior weights or empty. With
    ``sym`` (U and V the same matrix) only c <= a is kept, ku (ku + 1) / 2 cells per level in the order (0,0),
    (1,0), (1,1), (2,0), ...; otherwise ku kv cells per level, a-major. ``cells`` is (levels * cells per level,
    4). Returns the number of non-finite terms (which are not added).
    """
    cdef Py_ssize_t ku = U.shape[1], kv = V.shape[1]
    cdef Py_ssize_t n = codes.shape[0] if codes.shape[0] > 0 else max(U.shape[0], V.shape[0])
    cdef Py_ssize_t i, a, c, per, jj
    cdef bint weighted = w.shape[0] > 0
    cdef bint levels = codes.shape[0] > 0
    cdef bint unit_u = U.shape[0] == 0, unit_v = V.shape[0] == 0
    cdef double ui, vc
    cdef int bad = 0
    per = ku * (ku + 1) // 2 if sym else ku * kv
    if (not unit_u and U.shape[0] != n) or (not unit_v and V.shape[0] != n) or (weighted and w.shape[0] != n) \
            or (levels and codes.shape[0] != n) or (unit_u and ku != 1) or (unit_v and kv != 1):
        raise ValueError("level_exact: row counts differ")
    if sym and kv != ku:
        raise ValueError("level_exact: a symmetric block needs U and V of the same width")
    if cells.shape[0] < per or cells.shape[1] != CELL:
        raise ValueError("level_exact: cells have the wrong shape")
    cdef int64_t* target
    cdef int64_t* lanes = NULL
    if not levels:
        # one level: every row adds to the same few cells; LANES interleaved copies of them break the chain of
        # dependent updates, and are merged at the end (exactly, so the result is the same)
        lanes = <int64_t*>malloc(LANES * per * WORDS * sizeof(int64_t))
        if lanes == NULL:
            raise MemoryError()
        for i in range(LANES * per):
            lanes[i * WORDS] = -1
            lanes[i * WORDS + 1] = 0
            lanes[i * WORDS + 2] = 0
            lanes[i * WORDS + 3] = 0
    with nogil:
        for i in range(n):
            if levels:
                if i + PREFETCH < n:
                    mf_prefetch_cells(&cells[codes[i + PREFETCH] * per, 0], per)
                target = &cells[codes[i] * per, 0]
            else:
                target = &lanes[(i % LANES) * per * WORDS]
            jj = 0
            for a in range(ku):
                ui = 1.0 if unit_u else U[i, a]
                if weighted:
                    ui = w[i] * ui
                if sym:
                    for c in range(a + 1):
                        vc = 1.0 if unit_v else V[i, c]
                        bad += exact_add(&target[jj * WORDS], ui * vc)
                        jj += 1
                else:
                    for c in range(kv):
                        vc = 1.0 if unit_v else V[i, c]
                        bad += exact_add(&target[jj * WORDS], ui * vc)
                        jj += 1
        if not levels:
            for i in range(LANES):
                for jj in range(per):
                    exact_merge(&cells[jj, 0], &lanes[(i * per + jj) * WORDS])
    free(lanes)
    return bad


def pair_exact(const int64_t[::1] pos, const double[:, ::1] U, const double[:, ::1] V, const double[::1] w,
               int64_t[:, ::1] cells):
    """Cross-products of two terms: cell pos[i] + b ku + a gets (w_i V[i, b]) U[i, a] for every row i.

    pos (n,) the first cell of the row's pair of levels; U (n, ku) the column term's matrix, V (n, kv) the row
    term's, either with no rows for a column of ones; w (n,) prior weights or empty. Returns the number of
    non-finite terms.
    """
    cdef Py_ssize_t n = pos.shape[0], ku = U.shape[1], kv = V.shape[1]
    cdef Py_ssize_t i, a, b
    cdef bint weighted = w.shape[0] > 0
    cdef bint unit_u = U.shape[0] == 0, unit_v = V.shape[0] == 0
    cdef double vi, ua
    cdef int bad = 0
    if (not unit_u and U.shape[0] != n) or (not unit_v and V.shape[0] != n) or (weighted and w.shape[0] != n) \
            or (unit_u and ku != 1) or (unit_v and kv != 1):
        raise ValueError("pair_exact: row counts differ")
    with nogil:
        for i in range(n):
            if i + PREFETCH < n:
                mf_prefetch_cells(&cells[pos[i + PREFETCH], 0], kv * ku)
            for b in range(kv):
                vi = 1.0 if unit_v else V[i, b]
                if weighted:
                    vi = w[i] * vi
                for a in range(ku):
                    ua = 1.0 if unit_u else U[i, a]
                    bad += exact_add(&cells[pos[i] + b * ku + a, 0], vi * ua)
    return bad


ctypedef fused count_t:
    int32_t
    int64_t
    double


def add_counts(const int64_t[::1] pos, count_t[::1] counts):
    """counts[pos[i]] += 1 for every i (an in-place bincount)."""
    cdef Py_ssize_t i, n = pos.shape[0]
    with nogil:
        for i in range(n):
            if i + PREFETCH < n:
                mf_prefetch(&counts[pos[i + PREFETCH]])
            counts[pos[i]] += 1


def exact_sum(const double[::1] x):
    """The sum of x, exact and rounded once (the same whatever the order of x); NaN if x has a non-finite value."""
    cdef int64_t c[4]
    cdef Py_ssize_t i
    cdef int bad = 0
    c[0] = -1
    c[1] = 0
    c[2] = 0
    c[3] = 0
    with nogil:
        for i in range(x.shape[0]):
            bad += exact_add(c, x[i])
    if bad:
        return float("nan")
    return mf_bins_value(c[0], c[1], c[2], c[3])


# ---------------------------------------------------------------------------------------------- cells
def new_cells(Py_ssize_t n):
    """n empty cells: an (n, 4) int64 array."""
    out = np.zeros((n, CELL), dtype=np.int64)
    out[:, 0] = -1
    return out


def cell_values(const int64_t[:, ::1] cells, double[::1] out):
    """out[i] = the value of cell i, rounded once to the nearest double."""
    cdef Py_ssize_t i
    if out.shape[0] != cells.shape[0]:
        raise ValueError("cell_values: sizes differ")
    with nogil:
        for i in range(cells.shape[0]):
            out[i] = mf_bins_value(cells[i, 0], cells[i, 1], cells[i, 2], cells[i, 3])


def merge_cells(int64_t[:, ::1] dst, const int64_t[:, ::1] src):
    """dst += src cell by cell (same layout)."""
    cdef Py_ssize_t i
    if dst.shape[0] != src.shape[0]:
        raise ValueError("merge_cells: sizes differ")
    with nogil:
        for i in range(dst.shape[0]):
            exact_merge(&dst[i, 0], &src[i, 0])


def merge_runs(const int64_t[::1] keys_a, const int64_t[:, ::1] vals_a, const int64_t[::1] keys_b,
               const int64_t[:, ::1] vals_b, Py_ssize_t per, bint exact):
    """Sum two runs (sorted unique int64 keys, ``per`` values per key) into one sorted run.

    ``exact``: the values are cells ((keys * per, 4) int64); otherwise counts ((keys * per, 1) int64).
    Returns (keys, values).
    """
    cdef Py_ssize_t na = keys_a.shape[0], nb = keys_b.shape[0]
    cdef Py_ssize_t ia = 0, ib = 0, io = 0, v, width = vals_a.shape[1]
    cdef int64_t ka, kb
    keys_np = np.empty(na + nb, dtype=np.int64)
    vals_np = np.empty(((na + nb) * per, width), dtype=np.int64)
    cdef int64_t[::1] keys = keys_np
    cdef int64_t[:, ::1] vals = vals_np
    if vals_b.shape[1] != width or vals_a.shape[0] != na * per or vals_b.shape[0] != nb * per:
        raise ValueError("merge_runs: run shapes differ")
    with nogil:
        while ia < na or ib < nb:
            ka = keys_a[ia] if ia < na else 0
            kb = keys_b[ib] if ib < nb else 0
            if ib >= nb or (ia < na and ka < kb):
                keys[io] = ka
                memcpy(&vals[io * per, 0], &vals_a[ia * per, 0], per * width * 8)
                ia += 1
            elif ia >= na or kb < ka:
                keys[io] = kb
                memcpy(&vals[io * per, 0], &vals_b[ib * per, 0], per * width * 8)
                ib += 1
            else:
                keys[io] = ka
                memcpy(&vals[io * per, 0], &vals_a[ia * per, 0], per * width * 8)
                for v in range(per):
                    if exact:
                        exact_merge(&vals[io * per + v, 0], &vals_b[ib * per + v, 0])
                    else:
                        vals[io * per + v, 0] += vals_b[ib * per + v, 0]
                ia += 1
                ib += 1
            io += 1
    if io < na + nb:
        return keys_np[:io].copy(), vals_np[:io * per].copy()
    return keys_np, vals_np


def grid_runs(count_t[::1] grid, Py_ssize_t n_rows, Py_ssize_t n_cols, int32_t[::1] ptr_out):
    """The non-zero cells of a dense row-major (n_rows, n_cols) count grid: ptr_out (n_rows + 1) gets the
    offsets of each row's entries; returns (cols int32, counts float64) in row-major order."""
    cdef Py_ssize_t r, c, k = 0, nnz = 0
    if grid.shape[0] != n_rows * n_cols or ptr_out.shape[0] != n_rows + 1:
        raise ValueError("grid_runs: sizes differ")
    with nogil:
        for r in range(n_rows * n_cols):
            if grid[r] != 0:
                nnz += 1
    cols_np = np.empty(nnz, dtype=np.int32)
    vals_np = np.empty(nnz, dtype=np.float64)
    cdef int32_t[::1] cols = cols_np
    cdef double[::1] vals = vals_np
    with nogil:
        ptr_out[0] = 0
        for r in range(n_rows):
            for c in range(n_cols):
                if grid[r * n_cols + c] != 0:
                    cols[k] = <int32_t>c
                    vals[k] = <double>grid[r * n_cols + c]
                    k += 1
            ptr_out[r + 1] = <int32_t>k
    return cols_np, vals_np


# ---------------------------------------------------------------------------------- batch helpers
def table_codes(const double[::1] values, double low, const int32_t[::1] table, int32_t[::1] out):
    """out[i] = table[values[i] - low] for integral values in the table's range, else -1 (missing, not an
    integer, or out of range)."""
    cdef Py_ssize_t i, n = values.shape[0], size = table.shape[0]
    cdef double k
    cdef Py_ssize_t ki
    with nogil:
        for i in range(n):
            k = values[i] - low
            if k >= 0.0 and k < <double>size:
                ki = <Py_ssize_t>k
                out[i] = table[ki] if <double>ki == k else -1
            else:
                out[i] = -1
