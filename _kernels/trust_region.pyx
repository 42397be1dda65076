# The bounded trust-region (quasi-)Newton loop of mixframe.numerics.optim.trust_region and its subproblem
# solver, compiled: the objective and its derivatives are Python callables, called once per evaluation, or a
# compiled SmoothObjective (declared in mixframe/_ext/trust_region.pxd), whose C methods the loop calls
# directly; all the arithmetic between two calls (free set, subproblem, projection, radius, stopping rules,
# BFGS update) runs here on caller-sized work buffers.
#
# The subproblem: minimise g'd + d'Hd/2 over ||s * d|| <= radius (Moré and Sorensen). With H = V diag(w) V'
# (one dsyev) and gl = V'g, the step in the eigenbasis is z_i = -gl_i / (w_i + mu): mu = 0 where H is
# positive definite (w_0 > 1e-12 max |w|) and the Newton step fits; else mu > max(0, -w_0) solves
# ||z(mu)|| = radius by Newton's method on 1/||z(mu)|| (from mu = -w_0 + 1e-10 max |w|, where the step is too
# long, so the iteration climbs monotonically); in the hard case (that step already fits) the boundary is
# reached along the lowest eigenvector.
#
# cython: language_level=3

cimport cython
cimport numpy as cnp
from libc.math cimport INFINITY, NAN, copysign, fabs, isfinite, sqrt
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport ddot, dgemv
from scipy.linalg.cython_lapack cimport dsyev

import numpy as np

cnp.import_array()

# how the loop ended (mapped onto the status names by mixframe.numerics.optim)
STOP_MAXEVAL = 0
STOP_FTOL = 1
STOP_XTOL = 2
STOP_GTOL = 3
STOP_FAILED = 4

cdef int _NONE = -1, _MAXEVAL = 0, _FTOL = 1, _XTOL = 2, _GTOL = 3, _FAILED = 4


cdef class SmoothObjective:
    """A compiled objective of ``n_vars`` variables with its gradient and Hessian: the loop of
    :func:`minimize` calls its C methods (see trust_region.pxd) without Python. Subclasses (in other kernels)
    implement them; the base class is defined nowhere (its value is NaN)."""

    cdef double value(self, const double* x) noexcept nogil:
        return NAN

    cdef double value_grad_hess(self, const double* x, double* g, double* H) noexcept nogil:
        return NAN

    def evaluate(self, x):
        """(f, gradient, Hessian) at x, or (f, None, None) where f is not finite."""
        cdef cnp.ndarray xa = as_doubles(x, self.n_vars, "point")
        cdef cnp.ndarray g = new_vector(self.n_vars)
        cdef cnp.ndarray H = new_matrix(self.n_vars)
        cdef double f = self.value_grad_hess(data(xa), data(g), data(H))
        if not isfinite(f):
            return f, None, None
        return f, g, H


cdef inline Py_ssize_t step_work_size(int m) noexcept nogil:
    """Doubles of work the subproblem of m variables needs."""
    return <Py_ssize_t>m * m + 5 * m + 1 + (3 * m - 1 if m > 0 else 1)


cdef double fsum_squares(const double* z, int m, double* partials) noexcept nogil:
    """The correctly rounded sum of the rounded squares z_i * z_i (Shewchuk's exact partial sums, rounded
    half-even at the end); a non-finite plain sum is returned as it is. partials holds m + 1 doubles."""
    cdef double x, y, t, hi, lo, yr, plain = 0.0
    cdef int i, j, k, count = 0
    for i in range(m):
        plain += z[i] * z[i]
    if not isfinite(plain):
        return plain
    for i in range(m):
        x = z[i] * z[i]
        k = 0
        for j in range(count):
            y = partials[j]
            if fabs(x) < fabs(y):
                t = x
                x = y
                y = t
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:
                partials[k] = lo
                k += 1
            x = hi
        partials[k] = x
        count = k + 1
    hi = 0.0
    if count > 0:
        count -= 1
        hi = partials[count]
        lo = 0.0
        while count > 0:
            x = hi
            count -= 1
            y = partials[count]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if count > 0 and ((lo < 0.0 and partials[count - 1] < 0.0) or (lo > 0.0 and partials[count - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi


cdef double from_eigenbasis(int m, double* V, const double* w, const double* gl, double* z, const double* s,
                            double* d) noexcept nogil:
    """d = V z (divided by s where s is given); returns the predicted decrease -(gl'z + z'diag(w)z/2)."""
    cdef double pred = 0.0, zero = 0.0, unit = 1.0
    cdef int i, one = 1
    for i in range(m):
        pred -= gl[i] * z[i] + 0.5 * w[i] * z[i] * z[i]
    dgemv("N", &m, &m, &unit, V, &m, z, &one, &zero, d, &one)
    if s != NULL:
        for i in range(m):
            d[i] = d[i] / s[i]
    return pred


cdef int solve_step(int m, const double* H, const double* g, double radius, const double* s, double* d,
                    double* out, double* work) noexcept nogil:
    """The subproblem for the m x m row-major H and gradient g (scaled by s unless NULL) into d; out receives
    (predicted decrease, Newton decrement or inf, ||s * d||). Returns -1 where the eigen-decomposition fails or
    its eigenvalues are not finite, else 0. work holds step_work_size(m) doubles."""
    cdef double* a = work
    cdef double* w = a + <Py_ssize_t>m * m
    cdef double* gl = w + m
    cdef double* z = gl + m
    cdef double* gs = z + m
    cdef double* partials = gs + m
    cdef double* lw = partials + m + 1
    cdef int lwork = 3 * m - 1 if m > 0 else 1
    cdef int info = 0, one = 1, i, j, it
    cdef double zero = 0.0, unit = 1.0, top, dec, s2, s3, nz, mu, zi, den, pred
    for j in range(m):                  # column-major copy, scaled: a[i, j] = H[i, j] / (s_i s_j)
        for i in range(m):
            if s == NULL:
                a[i + j * m] = H[i * m + j]
            else:
                a[i + j * m] = H[i * m + j] / (s[i] * s[j])
    for i in range(m):
        gs[i] = g[i] if s == NULL else g[i] / s[i]
    dsyev("V", "U", &m, a, &m, w, lw, &lwork, &info)
    if info != 0 or not isfinite(w[m - 1] + w[0]):
        return -1
    dgemv("T", &m, &m, &unit, a, &m, gs, &one, &zero, gl, &one)
    top = fabs(w[0])
    if fabs(w[m - 1]) > top:
        top = fabs(w[m - 1])
    if 1e-300 > top:
        top = 1e-300
    if w[0] > 1e-12 * top:
        dec = 0.0
        s2 = 0.0
        for i in range(m):
            zi = -gl[i] / w[i]
            z[i] = zi
            dec -= gl[i] * zi
            s2 += zi * zi
        nz = sqrt(s2)
        if nz <= radius:
            dgemv("N", &m, &m, &unit, a, &m, z, &one, &zero, d, &one)
            if s != NULL:
                for i in range(m):
                    d[i] = d[i] / s[i]
            out[0] = 0.5 * dec
            out[1] = dec
            out[2] = nz
            return 0
        mu = 0.0
    else:
        dec = INFINITY
        mu = -w[0] + 1e-10 * top
        for i in range(m):
            z[i] = -gl[i] / (w[i] + mu)
        nz = sqrt(fsum_squares(z, m, partials))
        if nz < radius:                 # hard case: complete the step along the lowest eigenvector
            z[0] -= copysign(sqrt(radius * radius - nz * nz), gl[0] if gl[0] != 0.0 else 1.0)
            out[0] = from_eigenbasis(m, a, w, gl, z, s, d)
            out[1] = dec
            out[2] = radius
            return 0
    for it in range(100):               # ||z(mu)|| = radius: Newton on 1/||z(mu)|| = 1/radius
        s2 = 0.0
        s3 = 0.0
        for i in range(m):
            den = w[i] + mu
            zi = gl[i] / den
            s2 += zi * zi
            s3 += zi * zi / den
        nz = sqrt(s2)
        if fabs(nz - radius) <= 1e-6 * radius:
            break
        mu += (nz - radius) / radius * s2 / s3
    for i in range(m):
        z[i] = -gl[i] / (w[i] + mu)
    out[0] = from_eigenbasis(m, a, w, gl, z, s, d)
    out[1] = dec
    out[2] = nz
    return 0


cdef bint bfgs(int n, double* B, const double* s, double* y, double* Bs) noexcept nogil:
    """The Powell-damped BFGS update of the row-major symmetric B in place for the step s and gradient
    change y (y is overwritten by its damped version); False where the update is skipped (B unchanged)."""
    cdef int i, j, one = 1
    cdef double zero = 0.0, unit = 1.0, sBs, sy, phi, v
    dgemv("T", &n, &n, &unit, B, &n, <double*>s, &one, &zero, Bs, &one)
    sBs = ddot(&n, <double*>s, &one, Bs, &one)
    if sBs == 0.0:
        return False
    sy = ddot(&n, <double*>s, &one, y, &one)
    if 0.0 < sBs and sy < 0.2 * sBs:
        phi = 0.8 * sBs / (sBs - sy)
        for i in range(n):
            y[i] = phi * y[i] + (1.0 - phi) * Bs[i]
        sy = ddot(&n, <double*>s, &one, y, &one)
    if not sy > 1e-12 * sqrt(ddot(&n, <double*>s, &one, <double*>s, &one) * ddot(&n, y, &one, y, &one)):
        return False
    for i in range(n):
        for j in range(n):
            B[i * n + j] = B[i * n + j] - Bs[i] * Bs[j] / sBs + y[i] * y[j] / sy
    for i in range(n):
        for j in range(i, n):
            v = 0.5 * (B[i * n + j] + B[j * n + i])
            B[i * n + j] = v
            B[j * n + i] = v
    return True


cdef inline double norm2(int n, const double* v, const double* s, double* tmp) noexcept nogil:
    """||s * v|| (||v|| where s is NULL)."""
    cdef int i, one = 1
    if s == NULL:
        return sqrt(ddot(&n, <double*>v, &one, <double*>v, &one))
    for i in range(n):
        tmp[i] = s[i] * v[i]
    return sqrt(ddot(&n, tmp, &one, tmp, &one))


cdef cnp.ndarray as_doubles(obj, Py_ssize_t size, str what):
    """obj as a C-contiguous float64 array (itself where it is one) of the given size (any size where
    size < 0)."""
    if obj is None:
        raise ValueError(f"the {what} is missing")
    arr = <cnp.ndarray>cnp.PyArray_FROM_OTF(obj, cnp.NPY_DOUBLE, cnp.NPY_ARRAY_IN_ARRAY)
    if size >= 0 and cnp.PyArray_SIZE(arr) != size:
        raise ValueError(f"the {what} has {cnp.PyArray_SIZE(arr)} entries, not {size}")
    return arr


cdef inline double* data(cnp.ndarray arr) noexcept:
    return <double*>cnp.PyArray_DATA(arr)


cdef inline cnp.ndarray new_vector(Py_ssize_t n):
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    return <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)


cdef inline cnp.ndarray new_matrix(Py_ssize_t n):
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = n
    return <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, cnp.NPY_DOUBLE, 0)


def all_finite(g) -> bool:
    """Whether every entry of the float array g is finite."""
    cdef cnp.ndarray arr = <cnp.ndarray>cnp.PyArray_FROM_OTF(g, cnp.NPY_DOUBLE, cnp.NPY_ARRAY_IN_ARRAY)
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(arr)
    cdef double* p = data(arr)
    for i in range(n):
        if not isfinite(p[i]):
            return False
    return True


def trust_step(H, g, double radius, scale=None):
    """The subproblem step: (d, predicted decrease, Newton decrement or inf, ||scale * d||); raises
    numpy.linalg.LinAlgError where the Hessian is not finite."""
    cdef cnp.ndarray ga = as_doubles(g, -1, "gradient")
    cdef int m = <int>cnp.PyArray_SIZE(ga)
    if m == 0:
        raise ValueError("the model has no variables")
    cdef cnp.ndarray Ha = as_doubles(H, <Py_ssize_t>m * m, "Hessian")
    cdef cnp.ndarray sa = None if scale is None else as_doubles(scale, m, "scale")
    cdef cnp.ndarray d = new_vector(m)
    cdef cnp.ndarray work = new_vector(step_work_size(m))
    cdef double out[3]
    cdef int rc
    cdef double* Hp = data(Ha)
    cdef double* gp = data(ga)
    cdef double* sp = NULL if sa is None else data(sa)
    cdef double* dp = data(d)
    cdef double* wp = data(work)
    with nogil:
        rc = solve_step(m, Hp, gp, radius, sp, dp, out, wp)
    if rc != 0:
        raise np.linalg.LinAlgError("the model Hessian is not finite")
    return d, out[0], out[1], out[2]


def bfgs_update(B, s, y):
    """The damped BFGS update of B (a new array), or B itself where the update is skipped."""
    cdef cnp.ndarray sa = as_doubles(s, -1, "step")
    cdef int n = <int>cnp.PyArray_SIZE(sa)
    cdef cnp.ndarray out = np.array(B, dtype=np.float64, order="C")
    if cnp.PyArray_SIZE(out) != <Py_ssize_t>n * n:
        raise ValueError(f"the model has {cnp.PyArray_SIZE(out)} entries, not {n * n}")
    cdef cnp.ndarray ya = np.array(y, dtype=np.float64, order="C")
    if cnp.PyArray_SIZE(ya) != n:
        raise ValueError(f"the gradient change has {cnp.PyArray_SIZE(ya)} entries, not {n}")
    cdef cnp.ndarray Bs = new_vector(n)
    cdef bint done
    cdef double* Bp = data(out)
    cdef double* sp = data(sa)
    cdef double* yp = data(ya)
    cdef double* Bsp = data(Bs)
    with nogil:
        done = bfgs(n, Bp, sp, yp, Bsp)
    return out if done else B


@cython.boundscheck(False)
@cython.wraparound(False)
def minimize(fun, derivs, refresh, progress, cnp.ndarray x, double f, g, H, bint exact, lower, scale, radius,
             double ftol_abs, double ftol_rel, double xtol_abs, double xtol_rel, double gtol, Py_ssize_t evals,
             Py_ssize_t max_evals):
    """The loop of mixframe.numerics.optim.trust_region from the point x (within the bounds ``lower``, a
    float array or None where no bound is finite) with value f, gradient g and Hessian model H (exact or not),
    after ``evals`` evaluations. Returns (x, f, g, H, evaluations, STOP_* code, settled), ``settled`` false
    where a quasi-Newton model met no stopping rule since its last refresh.

    ``fun`` is a Python callable (then ``derivs`` as in trust_region) or a SmoothObjective (``derivs``
    unused), evaluated through its C methods: ``value`` at each trial point, ``value_grad_hess`` at each
    accepted one (its Hessian is ignored for a quasi-Newton model)."""
    cdef int n = <int>cnp.PyArray_SIZE(x)
    cdef int m, i, k, l, rc, stop, status = _MAXEVAL, one = 1
    cdef bint bounded = lower is not None, all_free, settled = True, accepted
    cdef double xnorm, bound, pred = 0.0, dec, step = 0.0, tol, ft = 0.0, actual, v, zero = 0.0, unit = 1.0
    cdef double res[3]
    cdef cnp.ndarray xa = as_doubles(x, n, "start")
    cdef cnp.ndarray ga = as_doubles(g, n, "gradient")
    cdef cnp.ndarray Ha = as_doubles(H, <Py_ssize_t>n * n, "Hessian")
    cdef cnp.ndarray lo = None if lower is None else as_doubles(lower, n, "lower bound")
    cdef cnp.ndarray sa = None if scale is None else as_doubles(scale, n, "scale")
    cdef cnp.ndarray xt = None, gt
    cdef double rad
    cdef double* xp = data(xa)
    cdef double* gp = data(ga)
    cdef double* Hp
    cdef double* lop = NULL if lo is None else data(lo)
    cdef double* sp = NULL if sa is None else data(sa)
    cdef double* xtp
    cdef double* gtp
    cdef double* gfp
    cdef double* Hfp
    cdef double* sfp
    cdef SmoothObjective smooth = fun if isinstance(fun, SmoothObjective) else None
    if smooth is not None and smooth.n_vars != n:
        raise ValueError(f"the objective has {smooth.n_vars} variables, not {n}")
    if not exact:           # the quasi-Newton model lives in an array of its own, updated in place
        Ha = np.array(Ha, dtype=np.float64, order="C", copy=True)
    Hp = data(Ha)
    cdef Py_ssize_t nn = <Py_ssize_t>n * n
    cdef double* buf = <double*>malloc((2 * nn + 8 * n + step_work_size(n) + 8) * sizeof(double))
    cdef int* idx = <int*>malloc((n + 1) * sizeof(int))
    if buf == NULL or idx == NULL:
        free(buf)
        free(idx)
        raise MemoryError()
    cdef double* Hf = buf
    cdef double* gf = Hf + nn
    cdef double* sf = gf + n
    cdef double* df = sf + n
    cdef double* d = df + n
    cdef double* Hd = d + n
    cdef double* y = Hd + n
    cdef double* Bs = y + n
    cdef double* work = Bs + n
    try:
        xnorm = norm2(n, xp, sp, Hd)
        if radius is None:
            radius = 1.0 if 1.0 > xnorm else xnorm
        rad = <double>radius
        bound = xnorm
        while evals < max_evals:
            # the free variables: those not held at their bound by the gradient
            m = n
            if bounded:
                m = 0
                for i in range(n):
                    if not (xp[i] <= lop[i] and gp[i] >= 0.0):
                        idx[m] = i
                        m += 1
            all_free = m == n
            if all_free:
                gfp, Hfp, sfp = gp, Hp, sp
            else:
                for k in range(m):
                    gf[k] = gp[idx[k]]
                    for l in range(m):
                        Hf[k * m + l] = Hp[idx[k] * n + idx[l]]
                    if sp != NULL:
                        sf[k] = sp[idx[k]]
                gfp, Hfp, sfp = gf, Hf, (NULL if sp == NULL else sf)
            stop = _NONE
            if gtol > 0.0 and (m == 0 or max_abs(m, gfp) <= gtol):
                stop = _GTOL
            elif m == 0:
                stop = _FTOL
            else:
                rc = solve_step(m, Hfp, gfp, rad, sfp, df, res, work)
                if rc != 0:
                    status = _FAILED
                    break
                pred, dec, step = res[0], res[1], res[2]
                tol = ftol_rel * fabs(f)
                if ftol_abs > tol:
                    tol = ftol_abs
                if 0.5 * dec <= tol:
                    stop = _FTOL
            if stop == _NONE:
                xt = new_vector(n)
                xtp = data(xt)
                if not bounded:
                    for i in range(n):
                        d[i] = df[i]
                        xtp[i] = xp[i] + d[i]
                else:
                    if all_free:
                        for i in range(n):
                            d[i] = df[i]
                    else:
                        for i in range(n):
                            d[i] = 0.0
                        for k in range(m):
                            d[idx[k]] = df[k]
                    for i in range(n):      # projected onto the bounds
                        v = xp[i] + d[i]
                        xtp[i] = lop[i] if v < lop[i] else v
                        d[i] = xtp[i] - xp[i]
                    dgemv("T", &n, &n, &unit, Hp, &n, d, &one, &zero, Hd, &one)
                    pred = -(ddot(&n, gp, &one, d, &one) + 0.5 * ddot(&n, d, &one, Hd, &one))
                    step = norm2(n, d, sp, Hd)
                if step <= xtol_rel * (xnorm if xnorm >= 0.0 else bound) + xtol_abs:
                    if xnorm < 0.0:
                        xnorm = norm2(n, xp, sp, Hd)
                        bound = xnorm
                    if step <= xtol_rel * xnorm + xtol_abs:
                        stop = _XTOL
            if stop != _NONE:
                if settled:
                    status = stop
                    break
                copy_into(Hp, as_doubles(refresh(xa, ga), nn, "refreshed Hessian"), nn)
                settled = True
                continue
            if smooth is not None:
                ft = smooth.value(xtp)
            else:
                out = fun(xt)
            evals += 1
            if progress is not None:
                progress(1)
            if smooth is None:
                ft = <double>(out[0] if type(out) is tuple else out)
            if ft < f:          # False for NaN
                actual = f - ft
                if actual > 0.75 * pred and step > 0.8 * rad:      # (a projected step may beat its model)
                    rad *= 2.0
                elif actual < 0.25 * pred:
                    rad = 0.5 * step
                if smooth is not None:
                    gt = new_vector(n)
                    if exact:
                        Ha = new_matrix(n)
                    smooth.value_grad_hess(xtp, data(gt), data(Ha) if exact else Hf)
                else:
                    if derivs is not None and exact:
                        gt_obj, Ht_obj = derivs(xt)
                    else:
                        gt_obj, Ht_obj = unpack_derivatives(out, derivs, xt)
                    gt = as_doubles(gt_obj, n, "gradient")
                    if exact:
                        Ha = as_doubles(Ht_obj, nn, "Hessian")
                gtp = data(gt)
                if exact:
                    Hp = data(Ha)
                else:
                    for i in range(n):
                        y[i] = gtp[i] - gp[i]
                    bfgs(n, Hp, d, y, Bs)
                    settled = refresh is None
                xa, xp, f, ga, gp = xt, xtp, ft, gt, gtp
                bound += step               # ||x|| <= bound: the exact norm is needed only for short steps
                xnorm = -1.0
            else:
                rad = 0.25 * step
    finally:
        free(buf)
        free(idx)
    return xa, f, ga, Ha, evals, status, settled


cdef inline double max_abs(int m, const double* v) noexcept nogil:
    """max |v_i|, NaN where some v_i is NaN."""
    cdef double top = 0.0, a
    cdef int i
    for i in range(m):
        a = fabs(v[i])
        if a != a:
            return a
        if a > top:
            top = a
    return top


cdef inline void copy_into(double* dst, cnp.ndarray src, Py_ssize_t size) noexcept:
    cdef double* p = data(src)
    cdef Py_ssize_t i
    for i in range(size):
        dst[i] = p[i]


cdef tuple unpack_derivatives(out, derivs, x):
    """(gradient, Hessian or None) at an accepted point from what the objective returned there, calling
    derivs(x) where it returned the value alone."""
    if type(out) is tuple:
        return out[1], (out[2] if len(out) > 2 else None)
    d = derivs(x)
    if type(d) is tuple:
        return d[0], d[1]
    return d, None
