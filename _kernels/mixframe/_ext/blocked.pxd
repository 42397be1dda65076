# C-level interface of the blocked Cholesky factor (the module mixframe._ext.blocked, built from blocked.pyx).
#
# Other kernels reach the factor through ``from mixframe._ext.blocked cimport BlockedCholesky`` and the
# ``noexcept nogil`` methods below; Python reaches it only through mixframe.linalg.blocked. Cython looks for the
# declarations of a module under its package path, hence the place of this file: _kernels (the build's include
# path) / mixframe/_ext / blocked.pxd belongs to the module mixframe._ext.blocked. A change here recompiles the
# modules that cimport it, but not blocked.pyx itself: touch that too.
#
# The system and the names of its blocks are described at the top of blocked.pyx. All arrays are C-ordered;
# every pointer argument points to a caller-allocated buffer of the stated length.
#
# cython: language_level=3

cimport cython


@cython.final
cdef class BlockedCholesky:
    cdef readonly Py_ssize_t ne, nnz
    cdef Py_ssize_t k0, m0, q1, q2, nr
    cdef int[::1] a21_ptr, a21_row, r_off, r_k, r_m, row_term, a21t_ptr, a21t_col, a21t_e
    cdef double[::1] rowbuf         # scratch of q2 + 1 (one row of the Schur complement; a column of P)
    cdef double[::1] vbuf           # scratch of q2 (LR u2 in the solve)
    cdef double[:, ::1] Sd
    cdef readonly bint dense_s
    cdef readonly long n_factors    # factorizations so far: tells a cached result which factor it belongs to
    cdef readonly Py_ssize_t slab
    # cross-products (filled in place by set_crossprod, or by mixframe.linalg.blocked through these views)
    cdef readonly double[:, :, ::1] A11
    cdef readonly double[:, ::1] A21, A22, AE1, AER, AEE
    # the factor: L11, S (= L21 before the R factors: LR' S is the block below L11), L22, the dense columns'
    # rows F1, F2 and their block L33; reached through the methods only
    cdef double[:, :, ::1] L11
    cdef double[:, ::1] S, L22
    cdef double[:, ::1] F1, F2, L33, tmp2
    cdef double[::1] lam0, lamR
    cdef int[::1] lamR_off
    cdef int[::1] theta_pos
    cdef double[::1] work

    # ---- the interface for other kernels (each def method of the module is a wrapper over one of these)
    cdef void crossprod_c(self, const int[::1] code0, const double[:, ::1] Z0, const int[:, ::1] rcodes,
                          const double[:, ::1] ZR, const int[::1] zr_off, const int[:, ::1] pos,
                          const double[:, ::1] E, const double[::1] w) noexcept nogil
    cdef void crossprod_scalar_c(self, const int[::1] code0, const double[:, ::1] Z0, const int[:, ::1] rcodes,
                                 const double[:, ::1] ZR, const int[::1] zr_off, const int[:, ::1] pos,
                                 const double* e, const double* w) noexcept nogil
    cdef int factor_c(self, const double* lam0, const double* lamR) noexcept nogil
    cdef int refactor_c(self) noexcept nogil
    cdef void solve_c(self, double* u, double* beta) noexcept nogil
    cdef void logdets_c(self, double* out) noexcept nogil
    cdef int inverse_l22_c(self, double* P) noexcept nogil
    cdef int m_inverse_scalar_c(self, double* P, double* l21, double* diag, double* offd) noexcept nogil
    cdef void msolve_scalar_c(self, double* c, const double* l21) noexcept nogil

    # ---- internal pieces
    cdef bint has_vector_r(self) noexcept nogil
    cdef int _factor(self) noexcept nogil
    cdef void _apply_lamR(self, double[:, ::1] G, double[:, ::1] F2, double[:, ::1] T2) noexcept nogil
    cdef int _dense_quads(self, const double* P, const double* X, double* out) noexcept nogil
    cdef int _quad_forms(self, const double* P, const double* x, double* out) noexcept nogil
    cdef int _quad_blocks(self, const double* P, const double* X, double* out) noexcept nogil
    cdef void _l21(self, double* X, int* emap) noexcept nogil
