# The checks every fit makes of its arrays (finite values, a response that varies, a fixed-effects matrix of full
# rank) and of its answer (lme4's convergence test), each in one pass over the numbers. At the sizes of most fits
# a NumPy reduction costs more in dispatch than in arithmetic, and a fit makes a dozen of them.
#
# cython: language_level=3

cimport cython
from libc.math cimport NAN, fabs, isfinite, sqrt
from libc.stdlib cimport free, malloc

from scipy.linalg.cython_lapack cimport dpotrf


def count_nonfinite(const double[::1] values):
    """The number of NaN and infinite values of a vector (a loop the compiler vectorises: x - x is 0 exactly
    when x is finite)."""
    cdef Py_ssize_t i, n = values.shape[0], bad = 0
    cdef double d
    with nogil:
        for i in range(n):
            d = values[i] - values[i]
            bad += d != d
    return bad


def count_nan(const double[::1] values):
    """The number of NaN values of a vector (a vectorised loop: x != x exactly for NaN)."""
    cdef Py_ssize_t i, n = values.shape[0], nan = 0
    with nogil:
        for i in range(n):
            nan += values[i] != values[i]
    return nan


def is_constant(const double[::1] values):
    """(True, the value) when every element equals the first (an empty vector: (True, NaN)), else (False, NaN);
    stops at the first element that differs."""
    cdef Py_ssize_t i, n = values.shape[0]
    cdef double first
    cdef bint same = True
    if n == 0:
        return True, NAN
    first = values[0]
    with nogil:
        for i in range(1, n):
            if values[i] != first:
                same = False
                break
    return bool(same), (first if same else NAN)


cdef int _cholesky(double* a, int n) noexcept nogil:
    """Lower Cholesky factor in place of a symmetric n x n matrix stored by rows (LAPACK sees the transpose, its
    upper triangle); the LAPACK info."""
    cdef char uplo = b'U'
    cdef int info = 0
    if n > 0:
        dpotrf(&uplo, &n, a, &n, &info)
    return info


def full_rank_crossprod(const double[:, :] xtx, double tol):
    """True when every diagonal element of the Cholesky factor of the unit-scaled cross-product D^-1/2 X'X D^-1/2
    (D its diagonal) exceeds ``tol``: no column is within ``tol`` of the span of the ones before it. False also
    for a zero column or a factor that fails."""
    cdef Py_ssize_t i, j, p = xtx.shape[0]
    cdef double* a
    cdef double* d
    cdef bint ok = True
    if p == 0:
        return True
    a = <double*> malloc(p * p * sizeof(double))
    d = <double*> malloc(p * sizeof(double))
    if a == NULL or d == NULL:
        free(a)
        free(d)
        raise MemoryError()
    with nogil:
        for i in range(p):
            d[i] = sqrt(xtx[i, i]) if xtx[i, i] > 0.0 else 0.0
            if not d[i] > 0.0:
                ok = False
        if ok:
            for i in range(p):
                for j in range(p):
                    a[i * p + j] = xtx[i, j] / (d[i] * d[j])
            ok = _cholesky(a, <int> p) == 0
            if ok:
                for i in range(p):
                    if not a[i * p + i] > tol:
                        ok = False
    free(a)
    free(d)
    return bool(ok)


def scaled_gradient(const double[::1] gradient, const double[:, :] hessian, const unsigned char[::1] is_free):
    """lme4's scaled-gradient test over the free parameters: with R'R = H (the symmetrised Hessian of the free
    parameters), the largest over them of min(|R^-T g|_i, |g|_i).

    Returns (status, worst, max |g|): status 0 when H has a Cholesky factor, 1 when a value is not finite, 2 when
    H is not positive definite (worst is then max |g|)."""
    cdef Py_ssize_t n = gradient.shape[0], m = 0, i, j, a_, b_
    cdef double* h
    cdef double* g
    cdef Py_ssize_t* idx
    cdef double s, max_g = 0.0, worst = 0.0
    cdef int status = 0
    h = <double*> malloc((n * n + n + 1) * sizeof(double))
    idx = <Py_ssize_t*> malloc((n + 1) * sizeof(Py_ssize_t))
    if h == NULL or idx == NULL:
        free(h)
        free(idx)
        raise MemoryError()
    with nogil:
        for i in range(n):
            if is_free[i]:
                idx[m] = i
                m += 1
        g = h + m * m
        for a_ in range(m):
            g[a_] = gradient[idx[a_]]
            if not isfinite(g[a_]):
                status = 1
            if fabs(g[a_]) > max_g:
                max_g = fabs(g[a_])
            for b_ in range(m):
                h[a_ * m + b_] = 0.5 * (hessian[idx[a_], idx[b_]] + hessian[idx[b_], idx[a_]])
                if not isfinite(h[a_ * m + b_]):
                    status = 1
        if status == 0 and _cholesky(h, <int> m) != 0:
            status = 2
        if status == 0:
            # forward substitution with the lower factor, row by row (its transpose is LAPACK's upper one)
            for i in range(m):
                s = g[i]
                for j in range(i):
                    s -= h[i * m + j] * g[j]       # g[j] holds the solution for j < i by now
                s /= h[i * m + i]
                worst = max(worst, min(fabs(s), fabs(g[i])))
                g[i] = s
        elif status == 2:
            worst = max_g
    free(h)
    free(idx)
    return status, worst, max_g
