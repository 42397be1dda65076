# Blocked Cholesky factor of the penalized system for mixed models.
#
# The system, for random-effect terms T0 (the one with the most levels, "block 1") and T1..Tr ("block 2",
# treated as one dense block) and e extra dense columns E (the fixed-effects matrix X then a response column):
#
#     [ L0'A11 L0 + I    .                 .   ]   [ L11  0    0   ] [ L11  0    0   ]'
#     [ LR'A21 L0        LR'A22 LR + I     .   ] = [ L21  L22  0   ] [ L21  L22  0   ]
#     [ AE1 L0           AER LR            AEE ]   [ L31  L32  L33 ] [ L31  L32  L33 ]
#
# where A = [Z E]' W [Z E] are weighted cross-products and L0, LR are the block-diagonal relative covariance
# factors Lambda(theta). A11 is block diagonal (one k0 x k0 block per level of T0), so L11 is too; A21 is
# block-sparse and keeps its pattern in S = A21 L0 L11^{-T}; the Schur complement of block 2 is dense.
# All matrices here are C-ordered; LAPACK sees the transpose, so a C-lower factor is a Fortran-upper one.
#
# cython: language_level=3

cimport cython
from libc.math cimport log, sqrt
from libc.string cimport memcpy, memset
from scipy.linalg.cython_lapack cimport dpotrf, dpotri
from scipy.linalg.cython_blas cimport dtrsm, dtrsv, dsyrk, dsymm
from libc.stdlib cimport malloc, free

import numpy as np

#: the dense Schur complement scatters S into a buffer of at most this many bytes (a slab of levels of term 0)
DENSE_SLAB_BYTES = 64 << 20
#: the dense Schur complement is used when its multiply-adds are at most this many times the sparse one's
DENSE_COST_RATIO = 50.0


include "small_dense.pxi"


cdef inline void row_times_lam_solve(const double* v, const double* lam, const double* L, double* out,
                                     Py_ssize_t k) noexcept nogil:
    """out = (v @ lam) @ inv(L).T for a row vector v of length k, lam and L lower k x k."""
    cdef Py_ssize_t a, c
    cdef double s
    for a in range(k):               # out = v @ lam  (lam lower: column a gets rows c >= a)
        s = 0.0
        for c in range(a, k):
            s += v[c] * lam[c * k + a]
        out[a] = s
    for a in range(k):               # solve x L' = out  <=>  L x' = out'  (forward substitution)
        s = out[a]
        for c in range(a):
            s -= L[a * k + c] * out[c]
        out[a] = s / L[a * k + a]


@cython.final
cdef class BlockedCholesky:
    """Workspace and factor for one blocked system; ``update(theta-derived lambdas)`` refactors in place.

    Parameters are the block structure (see mixframe.linalg.blocked.BlockedSystem, which builds it). The def
    methods serve mixframe.linalg.blocked; other kernels call the ``*_c`` methods (declared in the .pxd)
    without the GIL.
    """
    # the attributes and the C-level methods are declared in mixframe/_ext/blocked.pxd

    def __init__(self, Py_ssize_t k0, Py_ssize_t m0, int[::1] a21_ptr, int[::1] a21_row,
                 int[::1] r_off, int[::1] r_k, int[::1] r_m, Py_ssize_t ne):
        cdef Py_ssize_t t, i, r
        self.k0 = k0
        self.m0 = m0
        self.q1 = k0 * m0
        self.a21_ptr = a21_ptr
        self.a21_row = a21_row
        self.nnz = a21_row.shape[0]
        self.r_off = r_off
        self.r_k = r_k
        self.r_m = r_m
        self.nr = r_k.shape[0]
        self.q2 = 0
        for t in range(self.nr):
            self.q2 += r_k[t] * r_m[t]
        self.ne = ne
        self.row_term = np.zeros(self.q2, dtype=np.int32)
        for t in range(self.nr):
            for r in range(r_off[t], r_off[t] + r_k[t] * r_m[t]):
                self.row_term[r] = <int>t
        self.A11 = np.zeros((m0, k0, k0))
        self.A21 = np.zeros((self.nnz, k0))
        self.A22 = np.zeros((self.q2, self.q2))
        self.AE1 = np.zeros((ne, self.q1))
        self.AER = np.zeros((ne, self.q2))
        self.AEE = np.zeros((ne, ne))
        self.L11 = np.zeros((m0, k0, k0))
        self.S = np.zeros((self.nnz, k0))
        self.L22 = np.zeros((self.q2, self.q2))
        self.tmp2 = np.zeros((self.q2, self.q2)) if self.nr > 0 and self.has_vector_r() else np.zeros((0, 0))
        self.F1 = np.zeros((ne, self.q1))
        self.F2 = np.zeros((ne, self.q2))
        self.L33 = np.zeros((ne, ne))
        self.lam0 = np.zeros(k0 * k0)
        self.lamR_off = np.zeros(self.nr + 1, dtype=np.int32)
        for t in range(self.nr):
            self.lamR_off[t + 1] = self.lamR_off[t] + r_k[t] * r_k[t]
        self.lamR = np.zeros(self.lamR_off[self.nr])
        self.work = np.zeros(max(k0, 1) * k0 * 4 + self.q2 + 8)
        self.rowbuf = np.zeros(self.q2 + 1)
        self.vbuf = np.zeros(max(self.q2, 1))
        # A densely filled pattern (crossed factors that meet in most cells) is better served by BLAS: S is
        # scattered, a slab of levels of term 0 at a time, into a dense q2 x (levels * k0) buffer of at most
        # DENSE_SLAB_BYTES, and G = A22 - S S' is one dsyrk per slab. The slab keeps the memory at the size of
        # the pattern itself, however many levels term 0 has.
        # The row-by-row sparse product costs about DENSE_COST_RATIO times more per multiply-add than dsyrk.
        counts = np.diff(np.asarray(a21_ptr, dtype=np.float64))
        sparse_work = float(np.sum(counts * (counts + 1.0))) * 0.5 * k0 * k0
        dense_work = 0.5 * float(self.q2) * float(self.q2 + 1) * float(self.q1)
        self.dense_s = self.q2 > 0 and dense_work <= DENSE_COST_RATIO * sparse_work
        if self.dense_s:
            self.slab = max(1, min(m0, DENSE_SLAB_BYTES // (8 * self.q2 * max(k0, 1))))
            self.Sd = np.zeros((int(self.q2), int(self.slab * k0)))
            empty = np.zeros(0, dtype=np.int32)
            self.a21t_e, self.a21t_col, self.a21t_ptr = empty, empty, np.zeros(self.q2 + 1, dtype=np.int32)
        else:
            # the transposed pattern: for each row of block 2, its (level of term 0, entry) pairs; the entries
            # are stored level by level, so a stable sort by row keeps the levels in order within a row
            self.slab = 0
            self.Sd = np.zeros((0, 0))
            order = np.argsort(np.asarray(a21_row), kind="stable")
            self.a21t_e = order.astype(np.int32)
            cols = np.repeat(np.arange(m0, dtype=np.int32), np.diff(np.asarray(a21_ptr, dtype=np.int64)))
            self.a21t_col = cols[order]
            del cols
            self.a21t_ptr = np.searchsorted(np.asarray(a21_row)[order], np.arange(self.q2 + 1)).astype(np.int32)

    cdef bint has_vector_r(self) noexcept nogil:
        cdef Py_ssize_t t
        for t in range(self.nr):
            if self.r_k[t] > 1:
                return True
        return False

    # ------------------------------------------------------------------ cross-products
    def set_crossprod(self, const int[::1] code0, const double[:, ::1] Z0, const int[:, ::1] rcodes,
                      const double[:, ::1] ZR, const int[::1] zr_off, const int[:, ::1] pos,
                      const double[:, ::1] E, const double[::1] w):
        """Accumulate A = [Z E]' W [Z E] in one pass over the rows (w may be empty for unit weights).

        code0 (n,): level of T0; Z0 (n, k0); rcodes (n, nr): level of each R term; ZR (n, sum k_t): the R
        terms' model matrices side by side, term t from column zr_off[t]; pos (n, nr): index of the first
        A21 entry of the row's (T0 level, R block) pair; E (n, ne).
        """
        with nogil:
            self.crossprod_c(code0, Z0, rcodes, ZR, zr_off, pos, E, w)

    cdef void crossprod_c(self, const int[::1] code0, const double[:, ::1] Z0, const int[:, ::1] rcodes,
                          const double[:, ::1] ZR, const int[::1] zr_off, const int[:, ::1] pos,
                          const double[:, ::1] E, const double[::1] w) noexcept nogil:
        """:meth:`set_crossprod`."""
        cdef int[::1] r_off_ = self.r_off
        cdef int[::1] r_k_ = self.r_k
        cdef Py_ssize_t n = code0.shape[0]
        cdef Py_ssize_t i, a, c, t, s, b, d, j, e0, r0, r1, kt, ks
        cdef Py_ssize_t k0 = self.k0, ne = self.ne, nr = self.nr
        cdef double wi, zi
        cdef bint weighted = w.shape[0] > 0
        cdef double[:, :, ::1] A11 = self.A11
        cdef double[:, ::1] A21 = self.A21, A22 = self.A22, AE1 = self.AE1, AER = self.AER, AEE = self.AEE
        if A11.shape[0] > 0:
            memset(&A11[0, 0, 0], 0, A11.shape[0] * k0 * k0 * sizeof(double))
        if self.nnz > 0:
            memset(&A21[0, 0], 0, self.nnz * k0 * sizeof(double))
        if self.q2 > 0:
            memset(&A22[0, 0], 0, self.q2 * self.q2 * sizeof(double))
            memset(&AER[0, 0], 0, ne * self.q2 * sizeof(double))
        memset(&AE1[0, 0], 0, ne * self.q1 * sizeof(double))
        memset(&AEE[0, 0], 0, ne * ne * sizeof(double))
        for i in range(n):
            wi = w[i] if weighted else 1.0
            j = code0[i]
            for a in range(k0):
                zi = wi * Z0[i, a]
                for c in range(k0):
                    A11[j, a, c] += zi * Z0[i, c]
                for d in range(ne):
                    AE1[d, j * k0 + a] += zi * E[i, d]
            for t in range(nr):
                kt = r_k_[t]
                r0 = r_off_[t] + rcodes[i, t] * kt
                e0 = pos[i, t]
                for b in range(kt):
                    zi = wi * ZR[i, zr_off[t] + b]
                    for a in range(k0):
                        A21[e0 + b, a] += zi * Z0[i, a]
                    for d in range(ne):
                        AER[d, r0 + b] += zi * E[i, d]
                    for s in range(nr):
                        ks = r_k_[s]
                        r1 = r_off_[s] + rcodes[i, s] * ks
                        for c in range(ks):
                            A22[r0 + b, r1 + c] += zi * ZR[i, zr_off[s] + c]
            for d in range(ne):
                zi = wi * E[i, d]
                for c in range(d + 1):
                    AEE[d, c] += zi * E[i, c]
        for d in range(ne):
            for c in range(d + 1, ne):
                AEE[d, c] = AEE[c, d]

    cdef void crossprod_scalar_c(self, const int[::1] code0, const double[:, ::1] Z0, const int[:, ::1] rcodes,
                                 const double[:, ::1] ZR, const int[::1] zr_off, const int[:, ::1] pos,
                                 const double* e, const double* w) noexcept nogil:
        """:meth:`set_crossprod` specialised to scalar terms (k0 = 1, every R term scalar, at most 64 of them)
        and one dense column e (ne = 1), with weights w (n each): one pass that adds each pair of terms to
        both triangles of A22 at once."""
        cdef Py_ssize_t i, t, s_, j, rt, q1 = self.q1, q2 = self.q2, nr = self.nr, nnz = self.nnz
        cdef Py_ssize_t n = code0.shape[0]
        cdef double wi, z0, ei, wz, v, aee = 0.0
        cdef double* a11 = &self.A11[0, 0, 0]
        cdef double* ae1 = &self.AE1[0, 0]
        cdef double* a21 = NULL
        cdef double* a22 = NULL
        cdef double* aer = NULL
        cdef double zr[64]
        cdef double zz[64]
        cdef Py_ssize_t rr[64]
        memset(a11, 0, q1 * sizeof(double))
        memset(ae1, 0, q1 * sizeof(double))
        if nnz > 0:
            a21 = &self.A21[0, 0]
            memset(a21, 0, nnz * sizeof(double))
        if q2 > 0:
            a22 = &self.A22[0, 0]
            aer = &self.AER[0, 0]
            memset(a22, 0, q2 * q2 * sizeof(double))
            memset(aer, 0, q2 * sizeof(double))
        for i in range(n):
            wi = w[i]
            j = code0[i]
            z0 = Z0[i, 0]
            ei = e[i]
            wz = wi * z0
            a11[j] += wz * z0
            ae1[j] += wz * ei
            aee += wi * ei * ei
            for t in range(nr):
                zz[t] = ZR[i, zr_off[t]]
                zr[t] = wi * zz[t]
                rt = self.r_off[t] + rcodes[i, t]
                rr[t] = rt
                a21[pos[i, t]] += zr[t] * z0
                aer[rt] += zr[t] * ei
                a22[rt * q2 + rt] += zr[t] * zz[t]
                for s_ in range(t):
                    v = zr[t] * zz[s_]
                    a22[rt * q2 + rr[s_]] += v
                    a22[rr[s_] * q2 + rt] += v
        self.AEE[0, 0] = aee

    # ------------------------------------------------------------------ factorization
    def update(self, const double[::1] lam0, const double[::1] lamR):
        """Factor the system at the given relative factors (lam0: k0*k0 C-ordered lower; lamR: the R terms'
        k_t*k_t lower factors concatenated). Returns 0, or a positive code if a block is not positive
        definite (1: block 1, 2: block 2, 3: the fixed-effects block)."""
        cdef int status
        if lam0.shape[0] != self.lam0.shape[0] or (self.lamR.shape[0] > 0
                                                   and lamR.shape[0] != self.lamR.shape[0]):
            raise ValueError("lam0 must hold k0*k0 values and lamR the R terms' factors")
        with nogil:
            status = self.factor_c(&lam0[0], &lamR[0] if self.lamR.shape[0] > 0 else NULL)
        return status

    cdef int factor_c(self, const double* lam0, const double* lamR) noexcept nogil:
        """:meth:`update`: lam0 holds k0*k0 values, lamR the R terms' (read only when there are R terms)."""
        if self.lam0.shape[0] > 0:
            memcpy(&self.lam0[0], lam0, self.lam0.shape[0] * sizeof(double))
        if self.lamR.shape[0] > 0:
            memcpy(&self.lamR[0], lamR, self.lamR.shape[0] * sizeof(double))
        return self.refactor_c()

    cdef int refactor_c(self) noexcept nogil:
        """Factor at the relative factors in place (counted in n_factors); the status of :meth:`update`."""
        self.n_factors += 1
        return self._factor()

    def set_theta_positions(self, int[::1] pos):
        """Where each element of theta goes for :meth:`update_theta`: an index into lam0 followed by lamR."""
        self.theta_pos = pos

    def update_theta(self, const double[::1] theta):
        """:meth:`update` from theta itself (placed by :meth:`set_theta_positions`; the rest of the relative
        factors stays 0): one call per evaluation of an objective."""
        cdef int status
        cdef Py_ssize_t i, pos, n0 = self.lam0.shape[0]
        with nogil:
            for i in range(theta.shape[0]):
                pos = self.theta_pos[i]
                if pos < n0:
                    self.lam0[pos] = theta[i]
                else:
                    self.lamR[pos - n0] = theta[i]
            status = self.refactor_c()
        return status

    cdef int _factor(self) noexcept nogil:
        cdef int[::1] a21_ptr_ = self.a21_ptr
        cdef int[::1] a21_row_ = self.a21_row
        cdef int[::1] a21t_ptr_ = self.a21t_ptr
        cdef int[::1] a21t_col_ = self.a21t_col
        cdef int[::1] a21t_e_ = self.a21t_e
        cdef Py_ssize_t k0 = self.k0, m0 = self.m0, q2 = self.q2, ne = self.ne
        cdef Py_ssize_t j, a, c, e1, e2, r1, r2, t, b, d, lev, kt, off, ee
        cdef double s
        cdef int info = 0, n_int, ne_int, kk_int, status = 0
        cdef double one = 1.0, minus_one = -1.0
        cdef char uplo = b'U', side = b'L', trans = b'T', diag = b'N'
        cdef double* tmp
        cdef double* buf
        cdef double[:, ::1] Sd = self.Sd
        cdef Py_ssize_t j0, j1
        cdef int ld_int
        cdef double[:, :, ::1] L11 = self.L11, A11 = self.A11
        cdef double[:, ::1] S = self.S, A21 = self.A21, L22 = self.L22, A22 = self.A22
        cdef double[:, ::1] F1 = self.F1, F2 = self.F2, AE1 = self.AE1, AER = self.AER, L33 = self.L33
        cdef double[:, ::1] AEE = self.AEE
        cdef double[::1] work = self.work
        cdef double[:, ::1] T2 = self.tmp2
        cdef double[::1] lam0 = self.lam0
        if True:
            tmp = &work[0]
            # block 1: L11[j] = chol(lam0' A11[j] lam0 + I)
            for j in range(m0):
                for a in range(k0):
                    for c in range(k0):
                        s = 0.0
                        for b in range(k0):
                            s += A11[j, a, b] * lam0[b * k0 + c]
                        tmp[a * k0 + c] = s
                for a in range(k0):
                    for c in range(k0):
                        s = 0.0
                        for b in range(k0):
                            s += lam0[b * k0 + a] * tmp[b * k0 + c]
                        L11[j, a, c] = s + (1.0 if a == c else 0.0)
                if chol_lower(&L11[j, 0, 0], k0, k0) != 0:
                    return 1
            # S = A21 lam0 L11^{-T} (row by row); F1 = AE1 lam0 L11^{-T}
            for j in range(m0):
                for e1 in range(a21_ptr_[j], a21_ptr_[j + 1]):
                    row_times_lam_solve(&A21[e1, 0], &lam0[0], &L11[j, 0, 0], &S[e1, 0], k0)
                for d in range(ne):
                    row_times_lam_solve(&AE1[d, j * k0], &lam0[0], &L11[j, 0, 0], &F1[d, j * k0], k0)
            if q2 > 0:
                # G = A22 - S S' (lower triangle, into L22), row by row through a dense buffer that
                # stays in cache: G[r1, :r1+1] = A22[r1, :r1+1] - sum over entries e1 of row r1 of
                # S[e1] . S[e2] for the entries e2 of the same level j with row <= r1.
                if self.dense_s:
                    for r1 in range(q2):
                        memcpy(&L22[r1, 0], &A22[r1, 0], (r1 + 1) * sizeof(double))
                    n_int = <int>q2
                    ld_int = <int>(self.slab * k0)
                    j0 = 0
                    while j0 < m0:
                        j1 = min(m0, j0 + self.slab)
                        for j in range(j0, j1):
                            for e1 in range(a21_ptr_[j], a21_ptr_[j + 1]):
                                for a in range(k0):
                                    Sd[a21_row_[e1], (j - j0) * k0 + a] = S[e1, a]
                        # C-lower L22 -= Sd Sd' over the slab's columns  <=>  Fortran-upper C -= B' B with
                        # B = the slab viewed as a (columns x q2) Fortran matrix of leading dimension ld
                        kk_int = <int>((j1 - j0) * k0)
                        dsyrk(&uplo, &trans, &n_int, &kk_int, &minus_one, &Sd[0, 0], &ld_int, &one,
                              &L22[0, 0], &n_int)
                        for j in range(j0, j1):
                            for e1 in range(a21_ptr_[j], a21_ptr_[j + 1]):
                                for a in range(k0):
                                    Sd[a21_row_[e1], (j - j0) * k0 + a] = 0.0
                        j0 = j1
                else:
                    buf = &self.rowbuf[0]
                    for r1 in range(q2):
                        memset(buf, 0, (r1 + 1) * sizeof(double))
                        for t in range(a21t_ptr_[r1], a21t_ptr_[r1 + 1]):
                            e1 = a21t_e_[t]
                            j = a21t_col_[t]
                            if k0 == 1:
                                s = S[e1, 0]
                                for e2 in range(a21_ptr_[j], e1 + 1):
                                    buf[a21_row_[e2]] += s * S[e2, 0]
                                continue
                            for e2 in range(a21_ptr_[j], e1 + 1):
                                s = 0.0
                                for a in range(k0):
                                    s += S[e1, a] * S[e2, a]
                                buf[a21_row_[e2]] += s
                        for r2 in range(r1 + 1):
                            L22[r1, r2] = A22[r1, r2] - buf[r2]
                # F2 <- AER - F1 S'
                memcpy(&F2[0, 0], &AER[0, 0], ne * q2 * sizeof(double))
                for j in range(m0):
                    for e1 in range(a21_ptr_[j], a21_ptr_[j + 1]):
                        r1 = a21_row_[e1]
                        for d in range(ne):
                            s = 0.0
                            for a in range(k0):
                                s += F1[d, j * k0 + a] * S[e1, a]
                            F2[d, r1] -= s
                # M22 = LR' G LR + I ; F2 <- F2 LR
                self._apply_lamR(L22, F2, T2)
                for r1 in range(q2):
                    L22[r1, r1] += 1.0
                # chol: C-lower L22 is Fortran-upper
                n_int = <int>q2
                dpotrf(&uplo, &n_int, &L22[0, 0], &n_int, &info)
                if info != 0:
                    return 2
                # F2 <- F2 L22^{-T}: in Fortran view F2' (q2 x ne) = U^{-T} F2'  with U = L22'
                if ne > 0:
                    ne_int = <int>ne
                    dtrsm(&side, &uplo, &trans, &diag, &n_int, &ne_int, &one, &L22[0, 0], &n_int,
                          &F2[0, 0], &n_int)
            # L33 = chol(AEE - F1 F1' - F2 F2')
            for d in range(ne):
                for ee in range(d + 1):
                    s = AEE[d, ee]
                    for a in range(self.q1):
                        s -= F1[d, a] * F1[ee, a]
                    for a in range(q2):
                        s -= F2[d, a] * F2[ee, a]
                    L33[d, ee] = s
                    L33[ee, d] = s
            if ne > 0:
                ne_int = <int>ne
                dpotrf(&uplo, &ne_int, &L33[0, 0], &ne_int, &info)
                if info != 0:
                    status = 3
                for d in range(ne):
                    for ee in range(d + 1, ne):
                        L33[d, ee] = 0.0
        return status

    cdef void _apply_lamR(self, double[:, ::1] G, double[:, ::1] F2, double[:, ::1] T2) noexcept nogil:
        """G <- LR' G LR and F2 <- F2 LR for the block-diagonal R factor."""
        cdef int[::1] r_off_ = self.r_off
        cdef int[::1] r_k_ = self.r_k
        cdef int[::1] r_m_ = self.r_m
        cdef int[::1] row_term_ = self.row_term
        cdef int[::1] lamR_off_ = self.lamR_off
        cdef Py_ssize_t q2 = self.q2, ne = self.ne, t, lev, b, c, r, kt, off, base, lo
        cdef double s, lamv
        cdef double[::1] lamR = self.lamR
        cdef bint vector = T2.shape[0] > 0
        cdef double* lv = &self.work[0]
        if not vector:
            # all R terms scalar: G[r, c] *= l[r] l[c], F2[:, r] *= l[r]
            for r in range(q2):
                lv[r] = lamR[lamR_off_[row_term_[r]]]
            for r in range(q2):
                lamv = lv[r]
                for c in range(r + 1):
                    G[r, c] *= lamv * lv[c]
                for c in range(ne):
                    F2[c, r] *= lamv
            return
        # general: G holds its lower triangle; make it whole, then T2 = G LR (column blocks) and
        # G = LR' T2 (row blocks)
        for r in range(q2):
            for c in range(r + 1, q2):
                G[r, c] = G[c, r]
        for t in range(self.nr):
            kt = r_k_[t]
            lo = lamR_off_[t]
            for lev in range(r_m_[t]):
                base = r_off_[t] + lev * kt
                for r in range(q2):
                    for c in range(kt):
                        s = 0.0
                        for b in range(c, kt):
                            s += G[r, base + b] * lamR[lo + b * kt + c]
                        T2[r, base + c] = s
                for r in range(ne):
                    for c in range(kt):
                        s = 0.0
                        for b in range(c, kt):
                            s += F2[r, base + b] * lamR[lo + b * kt + c]
                        lv[c] = s
                    for c in range(kt):
                        F2[r, base + c] = lv[c]
        for t in range(self.nr):
            kt = r_k_[t]
            lo = lamR_off_[t]
            for lev in range(r_m_[t]):
                base = r_off_[t] + lev * kt
                for c in range(q2):
                    for r in range(kt):
                        s = 0.0
                        for b in range(r, kt):
                            s += lamR[lo + b * kt + r] * T2[base + b, c]
                        G[base + r, c] = s

    # ------------------------------------------------------------------ results
    def logdets(self):
        """(log det of the Z block, log det of the fixed-effects block RX'RX, penalized RSS r^2).

        The last extra column is the response; the fixed-effects block is the first ne - 1 columns.
        """
        cdef double out[3]
        with nogil:
            self.logdets_c(out)
        return out[0], out[1], out[2]

    cdef void logdets_c(self, double* out) noexcept nogil:
        """out[0:3] <- the three values of :meth:`logdets`."""
        cdef Py_ssize_t j, a, r, d
        cdef double ldz = 0.0, ldx = 0.0, r2 = 0.0
        cdef double[:, :, ::1] L11 = self.L11
        cdef double[:, ::1] L22 = self.L22, L33 = self.L33
        for j in range(self.m0):
            for a in range(self.k0):
                ldz += log(L11[j, a, a])
        for r in range(self.q2):
            ldz += log(L22[r, r])
        for d in range(self.ne - 1):
            ldx += log(L33[d, d])
        if self.ne > 0:
            r2 = L33[self.ne - 1, self.ne - 1] ** 2
        out[0] = 2.0 * ldz
        out[1] = 2.0 * ldx
        out[2] = r2

    def solve(self, double[::1] u_out, double[::1] beta_out):
        """The solution of the penalized least-squares system: beta (ne - 1) and the spherical effects u (q1+q2)."""
        if u_out.shape[0] != self.q1 + self.q2 or beta_out.shape[0] != max(self.ne - 1, 0):
            raise ValueError("u_out must hold q1 + q2 values and beta_out ne - 1")
        with nogil:
            self.solve_c(&u_out[0] if u_out.shape[0] > 0 else NULL,
                         &beta_out[0] if beta_out.shape[0] > 0 else NULL)
        return 0

    cdef void solve_c(self, double* u_out, double* beta_out) noexcept nogil:
        """:meth:`solve` into u_out (q1 + q2) and beta_out (ne - 1)."""
        cdef int[::1] a21_ptr_ = self.a21_ptr
        cdef int[::1] a21_row_ = self.a21_row
        cdef int[::1] r_off_ = self.r_off
        cdef int[::1] r_k_ = self.r_k
        cdef int[::1] r_m_ = self.r_m
        cdef int[::1] lamR_off_ = self.lamR_off
        cdef Py_ssize_t p = self.ne - 1, q1 = self.q1, q2 = self.q2, k0 = self.k0
        cdef Py_ssize_t d, c, j, a, e1, r1, t, b, kt, base, lo, lev
        cdef double s
        cdef int n_int, inc = 1
        cdef char uplo = b'U', trans = b'N', diag = b'N'
        cdef double[:, ::1] L33 = self.L33, F1 = self.F1, F2 = self.F2, S = self.S
        cdef double* v = &self.vbuf[0]
        cdef double[::1] lamR_ = self.lamR
        cdef double[:, :, ::1] L11_ = self.L11
        cdef double[:, ::1] L22_ = self.L22
        # beta: L33[:p,:p]' beta = L33[p,:p]
        for d in range(p - 1, -1, -1):
            s = L33[p, d]
            for c in range(d + 1, p):
                s -= L33[c, d] * beta_out[c]
            beta_out[d] = s / L33[d, d]
        # u2: L22' u2 = F2[p,:] - F2[:p,:]' beta
        for r1 in range(q2):
            s = F2[p, r1]
            for d in range(p):
                s -= F2[d, r1] * beta_out[d]
            u_out[q1 + r1] = s
        if q2 > 0:
            n_int = <int>q2
            # C-lower L22' x = c  <=>  Fortran-upper U x = c (no transpose)
            dtrsv(&uplo, &trans, &diag, &n_int, &L22_[0, 0], &n_int, &u_out[q1], &inc)
            # v = LR u2 (every row of block 2 belongs to one level of one R term)
            for t in range(self.nr):
                kt = r_k_[t]
                lo = lamR_off_[t]
                for lev in range(r_m_[t]):
                    base = r_off_[t] + lev * kt
                    for b in range(kt):
                        s = 0.0
                        for c in range(b + 1):
                            s += lamR_[lo + b * kt + c] * u_out[q1 + base + c]
                        v[base + b] = s
        # u1: L11' u1 = F1[p,:] - F1[:p,:]' beta - S' v
        for j in range(self.m0):
            for a in range(k0):
                s = F1[p, j * k0 + a]
                for d in range(p):
                    s -= F1[d, j * k0 + a] * beta_out[d]
                u_out[j * k0 + a] = s
            for e1 in range(a21_ptr_[j], a21_ptr_[j + 1]):
                r1 = a21_row_[e1]
                for a in range(k0):
                    u_out[j * k0 + a] -= S[e1, a] * v[r1]
            for a in range(k0 - 1, -1, -1):
                s = u_out[j * k0 + a]
                for c in range(a + 1, k0):
                    s -= L11_[j, c, a] * u_out[j * k0 + c]
                u_out[j * k0 + a] = s / L11_[j, a, a]

    cdef int _dense_quads(self, const double* P, const double* X, double* out) noexcept nogil:
        """out[j] = X_j' P X_j (k0 x k0, level after level) through BLAS, for a dense pattern: the entries of a
        slab of levels are scattered into the zeroed buffer Sd (q2 x slab k0), Y = P Sd by one dsymm, and each
        block is a sum over the rows of Sd and Y. Returns 0, or 1 when the workspace cannot be allocated."""
        cdef Py_ssize_t q2 = self.q2, k0 = self.k0, m0 = self.m0, ld = self.slab * k0
        cdef Py_ssize_t j, j0, j1, e1, a, c, r, col, kk
        cdef int[::1] ptr = self.a21_ptr
        cdef int[::1] row = self.a21_row
        cdef double* Sd = &self.Sd[0, 0]
        cdef double* Y = <double*>malloc(q2 * ld * sizeof(double))
        cdef double* acc = <double*>malloc(ld * k0 * sizeof(double))
        cdef int m_int, n_int = <int>q2, ld_int = <int>ld
        cdef double one = 1.0, zero = 0.0
        cdef char side = b'R', uplo = b'U'
        if Y == NULL or acc == NULL:
            free(Y)
            free(acc)
            return 1
        j0 = 0
        while j0 < m0:
            j1 = min(m0, j0 + self.slab)
            kk = (j1 - j0) * k0
            for j in range(j0, j1):
                for e1 in range(ptr[j], ptr[j + 1]):
                    for a in range(k0):
                        Sd[row[e1] * ld + (j - j0) * k0 + a] = X[e1 * k0 + a]
            # C-order Y = P Sd  <=>  Fortran Y' (kk x q2) = Sd' P with P symmetric: its C-lower triangle is the
            # Fortran-upper one
            m_int = <int>kk
            dsymm(&side, &uplo, &m_int, &n_int, &one, <double*>P, &n_int, Sd, &ld_int, &zero, Y, &ld_int)
            memset(acc, 0, kk * k0 * sizeof(double))
            for r in range(q2):
                if k0 == 1:
                    for col in range(kk):
                        acc[col] += Sd[r * ld + col] * Y[r * ld + col]
                else:
                    for col in range(kk):
                        for c in range(k0):
                            acc[col * k0 + c] += Sd[r * ld + col] * Y[r * ld + col - col % k0 + c]
            for j in range(j0, j1):
                for a in range(k0):
                    for c in range(k0):
                        out[j * k0 * k0 + a * k0 + c] = acc[((j - j0) * k0 + a) * k0 + c]
                for e1 in range(ptr[j], ptr[j + 1]):
                    for a in range(k0):
                        Sd[row[e1] * ld + (j - j0) * k0 + a] = 0.0
            j0 = j1
        free(Y)
        free(acc)
        return 0

    cdef int _quad_forms(self, const double* P, const double* x, double* out) noexcept nogil:
        """out[j] = x_j' P x_j for every level j of term 0 (k0 = 1): BLAS for a dense pattern, else entry by
        entry. Returns 0, or 1 when the workspace of the dense path cannot be allocated."""
        cdef Py_ssize_t j, e1, e2, r1, q2 = self.q2
        cdef double s, t
        cdef int[::1] ptr = self.a21_ptr
        cdef int[::1] row = self.a21_row
        if self.dense_s and self.k0 == 1:
            return self._dense_quads(P, x, out)
        for j in range(self.m0):
            s = 0.0
            for e1 in range(ptr[j], ptr[j + 1]):
                r1 = row[e1]
                t = 0.0
                for e2 in range(ptr[j], e1):
                    t += x[e2] * P[r1 * q2 + row[e2]]
                s += x[e1] * (x[e1] * P[r1 * q2 + r1] + 2.0 * t)
            out[j] = s
        return 0

    cdef int _quad_blocks(self, const double* P, const double* X, double* out) noexcept nogil:
        """out[j] = X_j' P X_j (k0 x k0, level after level) for X with one row of k0 per pattern entry: BLAS for
        a dense pattern, else entry by entry. Returns 0, or 1 when the dense path's workspace cannot be
        allocated."""
        cdef Py_ssize_t j, e1, e2, r1, r2, a, c, k0 = self.k0, q2 = self.q2, kk = self.k0 * self.k0
        cdef double p
        cdef int[::1] ptr = self.a21_ptr
        cdef int[::1] row = self.a21_row
        if self.dense_s and self.nnz > 0:
            return self._dense_quads(P, X, out)
        for j in range(self.m0):
            for a in range(kk):
                out[j * kk + a] = 0.0
            for e1 in range(ptr[j], ptr[j + 1]):
                r1 = row[e1]
                for e2 in range(ptr[j], e1 + 1):
                    r2 = row[e2]
                    p = P[r1 * q2 + r2]
                    for a in range(k0):
                        for c in range(k0):
                            if e2 == e1:
                                out[j * kk + a * k0 + c] += X[e1 * k0 + a] * X[e1 * k0 + c] * p
                            else:
                                out[j * kk + a * k0 + c] += (X[e1 * k0 + a] * X[e2 * k0 + c]
                                                             + X[e2 * k0 + a] * X[e1 * k0 + c]) * p
        return 0

    def inverse_l22(self, double[:, ::1] P_out):
        """P_out <- (L22 L22')^{-1} in its lower triangle (the strict upper triangle is a copy of L22's, not
        part of the result). Returns the LAPACK info (0 on success)."""
        cdef int info
        if self.q2 == 0:
            return 0
        if P_out.shape[0] != self.q2 or P_out.shape[1] != self.q2:
            raise ValueError("P_out must be q2 x q2")
        with nogil:
            info = self.inverse_l22_c(&P_out[0, 0])
        return info

    cdef int inverse_l22_c(self, double* P) noexcept nogil:
        """:meth:`inverse_l22` into P (q2 x q2); returns the LAPACK info."""
        cdef int n_int = <int>self.q2, info = 0
        cdef char uplo = b'U'
        if self.q2 == 0:
            return 0
        memcpy(P, &self.L22[0, 0], self.q2 * self.q2 * sizeof(double))
        # C-lower L22 is the Fortran-upper U with U'U = L22 L22'; dpotri leaves inv(U'U) in U's triangle
        dpotri(&uplo, &n_int, P, &n_int, &info)
        return info

    cdef int m_inverse_scalar_c(self, double* P, double* l21, double* diag, double* offd) noexcept nogil:
        """The parts of M^{-1} (M = Lambda'Z'WZ Lambda + I, the random-effects block) that the gradient of a
        Laplace deviance needs, for scalar random-effect terms at the current factor:

        * P (q2 x q2, whole) <- the block-2 block of M^{-1}, (L22 L22')^{-1};
        * l21 (nnz) <- L21 = LR' S on the pattern (for :meth:`msolve_scalar_c`);
        * diag (q1 + q2) <- the diagonal of M^{-1}: (1 + x_j' P x_j) / L11_j^2 for level j of block 1, x_j its
          column of L21, then the diagonal of P;
        * offd (nnz) <- the block-1 x block-2 entries of M^{-1} on the pattern: -(P x_j)_r / L11_j.

        Returns the LAPACK info of the inversion (0 on success)."""
        cdef Py_ssize_t q1 = self.q1, q2 = self.q2, j, e1, r, rs, rt
        cdef int[::1] ptr = self.a21_ptr
        cdef int[::1] row = self.a21_row
        cdef int[::1] row_term_ = self.row_term
        cdef int[::1] lamR_off_ = self.lamR_off
        cdef double[::1] lamR_ = self.lamR
        cdef double[:, :, ::1] L11 = self.L11
        cdef double[:, ::1] S = self.S
        cdef double* ycol = &self.rowbuf[0]
        cdef double acc, l
        cdef int info = 0
        if q2 > 0:
            info = self.inverse_l22_c(P)
            for r in range(q2):
                for rs in range(r + 1, q2):
                    P[r * q2 + rs] = P[rs * q2 + r]
        for j in range(self.m0):
            l = L11[j, 0, 0]
            if q2 > 0 and ptr[j + 1] > ptr[j]:
                # ycol = P x_j
                for r in range(q2):
                    ycol[r] = 0.0
                for e1 in range(ptr[j], ptr[j + 1]):
                    rt = row[e1]
                    l21[e1] = S[e1, 0] * lamR_[lamR_off_[row_term_[rt]]]
                    for r in range(q2):
                        ycol[r] += l21[e1] * P[rt * q2 + r]
                acc = 0.0
                for e1 in range(ptr[j], ptr[j + 1]):
                    rt = row[e1]
                    acc += l21[e1] * ycol[rt]
                    offd[e1] = -ycol[rt] / l
                diag[j] = (1.0 + acc) / (l * l)
            else:
                diag[j] = 1.0 / (l * l)
        for r in range(q2):
            diag[q1 + r] = P[r * q2 + r]
        return info

    cdef void msolve_scalar_c(self, double* c, const double* l21) noexcept nogil:
        """c (q1 + q2) <- M^{-1} c at the current factor, for scalar random-effect terms, with l21 from
        :meth:`m_inverse_scalar_c`: forward through L11, L21 and L22, then backward."""
        cdef Py_ssize_t j, e1, m0 = self.m0, q1 = self.q1, q2 = self.q2
        cdef int nq2 = <int>q2, inc = 1
        cdef char uplo = b'U', tr_t = b'T', tr_n = b'N', diag_n = b'N'
        cdef int[::1] ptr = self.a21_ptr
        cdef int[::1] row = self.a21_row
        cdef double[:, :, ::1] L11 = self.L11
        for j in range(m0):
            c[j] /= L11[j, 0, 0]
        if q2 > 0:
            for j in range(m0):
                for e1 in range(ptr[j], ptr[j + 1]):
                    c[q1 + row[e1]] -= l21[e1] * c[j]
            dtrsv(&uplo, &tr_t, &diag_n, &nq2, &self.L22[0, 0], &nq2, &c[q1], &inc)
            dtrsv(&uplo, &tr_n, &diag_n, &nq2, &self.L22[0, 0], &nq2, &c[q1], &inc)
            for j in range(m0):
                for e1 in range(ptr[j], ptr[j + 1]):
                    c[j] -= l21[e1] * c[q1 + row[e1]]
        for j in range(m0):
            c[j] /= L11[j, 0, 0]

    def dense_factor(self, double[:, ::1] out):
        """out (q2 x q2) <- L22, the lower Cholesky factor of block 2 once block 1 is eliminated (its strict
        upper triangle is workspace, not part of the factor)."""
        if out.shape[0] != self.q2 or out.shape[1] != self.q2:
            raise ValueError("out must be q2 x q2")
        if self.q2 > 0:
            with nogil:
                memcpy(&out[0, 0], &self.L22[0, 0], self.q2 * self.q2 * sizeof(double))
        return 0

    def solve_l22_t(self, double[:, ::1] B):
        """B <- B L22^{-1} in place for B (rows x q2): each row b becomes the solution x of L22' x = b."""
        cdef int n_int = <int>self.q2, nrhs = <int>B.shape[0]
        cdef double one = 1.0
        cdef char side = b'L', uplo = b'U', trans = b'N', diag = b'N'
        if self.q2 == 0 or nrhs == 0:
            return 0
        with nogil:
            # Fortran view: B is q2 x nrhs, U = L22' upper; solve U X = B
            dtrsm(&side, &uplo, &trans, &diag, &n_int, &nrhs, &one, &self.L22[0, 0], &n_int, &B[0, 0], &n_int)
        return 0

    # ------------------------------------------------------------------ pieces of the inverse
    def fixed_factor(self, double[:, ::1] out):
        """out (ne x ne) <- L33, the lower Cholesky factor of the dense columns' block (the fixed effects, then
        the response) after the random effects are eliminated."""
        cdef Py_ssize_t ne = self.ne
        if out.shape[0] != ne or out.shape[1] != ne:
            raise ValueError("out must be ne x ne")
        if ne > 0:
            with nogil:
                memcpy(&out[0, 0], &self.L33[0, 0], ne * ne * sizeof(double))
        return 0

    def z_inverse_parts(self, const double[:, ::1] P, double[::1] diag_out, double[:, ::1] V_out):
        """For scalar random-effect terms (k0 = 1 and every block-2 term scalar), at the current factor and with
        P = (L22 L22')^{-1} from :meth:`inverse_l22` (lower triangle read):

        * diag_out (q1 + q2) <- the diagonal of M^{-1}, M = Lambda'Z'WZ Lambda + I the random-effects block:
          block 2 is the diagonal of P; level j of block 1 is (1 + x_j' P x_j) / L11_j^2, x_j the level's
          column of L21 = LR' S;
        * V_out (q1 + q2, ne) <- V = L_Z^{-T} L_EZ', L_Z = [L11 0; L21 L22] the factor of M and L_EZ = [F1 F2]
          the rows of the dense columns, so that the random-effects block of the inverse of the whole system
          is M^{-1} + V (L33 L33')^{-1} V' (and of the system without its last columns, the same with the
          leading part of V and L33).

        Returns 0; raises MemoryError when the workspace of a dense pattern cannot be allocated."""
        cdef Py_ssize_t q1 = self.q1, q2 = self.q2, m0 = self.m0, ne = self.ne, nnz = self.nnz
        cdef Py_ssize_t j, e, r, d
        cdef double s, l
        cdef int status = 0, n_int = <int>q2, nrhs = <int>ne
        cdef double one = 1.0
        cdef char side = b'L', uplo = b'U', trans = b'N', diag = b'N'
        if self.k0 != 1 or self.has_vector_r():
            raise ValueError("z_inverse_parts needs scalar random-effect terms")
        if diag_out.shape[0] != q1 + q2 or V_out.shape[0] != q1 + q2 or V_out.shape[1] != ne:
            raise ValueError("diag_out must have q1 + q2 entries and V_out q1 + q2 rows of ne")
        if q2 > 0 and (P.shape[0] != q2 or P.shape[1] != q2):
            raise ValueError("P must be q2 x q2")
        cdef int[::1] ptr = self.a21_ptr
        cdef int[::1] row = self.a21_row
        cdef int[::1] row_term_ = self.row_term
        cdef int[::1] lamR_off_ = self.lamR_off
        cdef double[::1] lamR = self.lamR
        cdef double[:, :, ::1] L11 = self.L11
        cdef double[:, ::1] S = self.S, F1 = self.F1
        cdef double[::1] x = np.empty(max(nnz, 1))
        cdef double[::1] quad = np.empty(max(m0, 1))
        cdef double[:, ::1] W2 = np.array(self.F2, copy=True) if q2 > 0 else np.zeros((0, 0))
        with nogil:
            if q2 == 0:
                for j in range(m0):
                    l = L11[j, 0, 0]
                    diag_out[j] = 1.0 / (l * l)
                    for d in range(ne):
                        V_out[j, d] = F1[d, j] / l
            else:
                # the entries of L21 = LR' S (one relative factor per scalar term of block 2)
                for e in range(nnz):
                    x[e] = S[e, 0] * lamR[lamR_off_[row_term_[row[e]]]]
                if m0 > 0 and nnz > 0:
                    status = self._quad_forms(&P[0, 0], &x[0], &quad[0])
                else:
                    for j in range(m0):
                        quad[j] = 0.0
                if status == 0:
                    for r in range(q2):
                        diag_out[q1 + r] = P[r, r]
                    for j in range(m0):
                        l = L11[j, 0, 0]
                        diag_out[j] = (1.0 + quad[j]) / (l * l)
                    # block 2 of V: each row w of W2 solves L22' w = the row of F2 (Fortran: U X = B, U = L22')
                    if ne > 0:
                        dtrsm(&side, &uplo, &trans, &diag, &n_int, &nrhs, &one, &self.L22[0, 0], &n_int,
                              &W2[0, 0], &n_int)
                    for r in range(q2):
                        for d in range(ne):
                            V_out[q1 + r, d] = W2[d, r]
                    # block 1: L11_j V1_j = F1_j - L21_j' V2
                    for j in range(m0):
                        l = L11[j, 0, 0]
                        for d in range(ne):
                            s = 0.0
                            for e in range(ptr[j], ptr[j + 1]):
                                s += x[e] * W2[d, row[e]]
                            V_out[j, d] = (F1[d, j] - s) / l
        if status != 0:
            raise MemoryError("no memory for the dense quadratic forms")
        return 0

    cdef void _l21(self, double* X, int* emap) noexcept nogil:
        """X (nnz x k0) <- L21 = LR' S on the pattern: entry e, at row base + b of a level block of term t,
        gets sum over c >= b of LR_t[c, b] S[the level's entry at row base + c]. emap: q2 ints, all -1 on entry
        and on return."""
        cdef int[::1] ptr = self.a21_ptr
        cdef int[::1] row = self.a21_row
        cdef int[::1] r_off_ = self.r_off
        cdef int[::1] r_k_ = self.r_k
        cdef int[::1] row_term_ = self.row_term
        cdef int[::1] lamR_off_ = self.lamR_off
        cdef double[::1] lamR = self.lamR
        cdef double[:, ::1] S = self.S
        cdef Py_ssize_t k0 = self.k0, j, e, e2, r, t, kt, b, c, a, base, lo
        cdef double lam
        for j in range(self.m0):
            for e in range(ptr[j], ptr[j + 1]):
                emap[row[e]] = <int>e
            for e in range(ptr[j], ptr[j + 1]):
                r = row[e]
                t = row_term_[r]
                kt = r_k_[t]
                lo = lamR_off_[t]
                if kt == 1:
                    lam = lamR[lo]
                    for a in range(k0):
                        X[e * k0 + a] = lam * S[e, a]
                    continue
                b = (r - r_off_[t]) % kt
                base = r - b
                for a in range(k0):
                    X[e * k0 + a] = 0.0
                for c in range(b, kt):
                    e2 = emap[base + c]
                    if e2 < 0:
                        continue
                    lam = lamR[lo + c * kt + b]
                    for a in range(k0):
                        X[e * k0 + a] += lam * S[e2, a]
            for e in range(ptr[j], ptr[j + 1]):
                emap[row[e]] = -1

    def cond_cov_blocks(self, const double[:, ::1] P, double[:, :, ::1] out0, double[::1] out_r):
        """The diagonal blocks of M^{-1} (M = Lambda'Z'WZ Lambda + I, the random-effects block) at the current
        factor, given P = (L22 L22')^{-1} from :meth:`inverse_l22` (lower triangle read; 0 x 0 without block 2):

        * out0 (m0, k0, k0) <- level j of term 0: L11_j^{-T} (I + L21_j' P L21_j) L11_j^{-1}, L21_j the level's
          column block of L21 = LR' S (the block of the factor below L11);
        * out_r (sum of m_t k_t^2 over the block-2 terms) <- the k_t x k_t diagonal blocks of P, term after
          term and level after level, each in C order.

        These are the conditional covariances of the spherical effects u (up to the residual variance).
        Returns 0; raises MemoryError when a workspace cannot be allocated."""
        cdef Py_ssize_t k0 = self.k0, m0 = self.m0, q2 = self.q2, nnz = self.nnz, kk = self.k0 * self.k0
        cdef Py_ssize_t j, a, c, t, kt, lev, base, o = 0, total = 0
        cdef double l
        cdef int status = 0, k_int = <int>k0
        cdef double one = 1.0
        cdef char left = b'L', right = b'R', uplo = b'U', notrans = b'N', trans = b'T', diag = b'N'
        for t in range(self.nr):
            total += self.r_m[t] * self.r_k[t] * self.r_k[t]
        if out0.shape[0] != m0 or out0.shape[1] != k0 or out0.shape[2] != k0 or out_r.shape[0] != total:
            raise ValueError("out0 must be (m0, k0, k0) and out_r hold the block-2 terms' diagonal blocks")
        if q2 > 0 and (P.shape[0] != q2 or P.shape[1] != q2):
            raise ValueError("P must be q2 x q2")
        cdef double[:, :, ::1] L11 = self.L11
        cdef double* X = NULL
        cdef int* emap = NULL
        with nogil:
            # I + L21_j' P L21_j into out0
            if q2 > 0 and nnz > 0 and m0 > 0:
                X = <double*>malloc(nnz * k0 * sizeof(double))
                emap = <int*>malloc(q2 * sizeof(int))
                if X == NULL or emap == NULL:
                    status = 1
                else:
                    for a in range(q2):
                        emap[a] = -1
                    self._l21(X, emap)
                    if k0 == 1:
                        status = self._quad_forms(&P[0, 0], X, &out0[0, 0, 0])
                    else:
                        status = self._quad_blocks(&P[0, 0], X, &out0[0, 0, 0])
                free(X)
                free(emap)
            else:
                for j in range(m0):
                    for a in range(kk):
                        out0[j, a // k0, a % k0] = 0.0
            if status == 0:
                for j in range(m0):
                    for a in range(k0):
                        out0[j, a, a] += 1.0
                    if k0 == 1:
                        l = L11[j, 0, 0]
                        out0[j, 0, 0] /= l * l
                    else:
                        # C-lower L11_j is the Fortran-upper U = L11_j'; U^{-1} A U^{-T} = L^{-T} A L^{-1} (A symmetric)
                        dtrsm(&left, &uplo, &notrans, &diag, &k_int, &k_int, &one, &L11[j, 0, 0], &k_int,
                              &out0[j, 0, 0], &k_int)
                        dtrsm(&right, &uplo, &trans, &diag, &k_int, &k_int, &one, &L11[j, 0, 0], &k_int,
                              &out0[j, 0, 0], &k_int)
                # block 2: the diagonal blocks of P (its lower triangle, made whole)
                for t in range(self.nr):
                    kt = self.r_k[t]
                    for lev in range(self.r_m[t]):
                        base = self.r_off[t] + lev * kt
                        for a in range(kt):
                            for c in range(kt):
                                out_r[o + a * kt + c] = P[base + a, base + c] if a >= c else P[base + c, base + a]
                        o += kt * kt
        if status != 0:
            raise MemoryError("no memory for the conditional covariances")
        return 0
