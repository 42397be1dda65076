# Cumulative link mixed-model kernels: conditional modes of one scalar random-effect term or of two nested
# scalar terms by Newton's method, the Laplace gradient of one scalar term, and adaptive Gauss-Hermite
# quadrature, on top of the inline functions of cumlink.pxd.
#
# cython: language_level=3

cimport cython
import numpy as np
from libc.math cimport exp, fabs, INFINITY, log, sqrt

from cumlink cimport bounds, obs_terms, obs_third

# Floor of the curvature used for a Newton step in the random effects. With a log-concave F (all links but
# cauchit) the curvature is at least 1 and the floor never acts; for cauchit it keeps steps bounded where
# the conditional log-likelihood is locally convex, so the iteration climbs towards a true maximum.
DEF MIN_CURV = 0.05

# the absent inner term of the one-term iteration
cdef int[::1] _NO_CODES = np.zeros(0, dtype=np.int32)
cdef double[::1] _NO_VALUES = np.zeros(0)


@cython.boundscheck(False)
@cython.wraparound(False)
def laplace_scalar(const int[::1] y, const double[::1] eta_fix, const double[::1] alpha, const double[::1] wts,
                   const int[::1] codes, const double[::1] z, double lam, int link, double[::1] u,
                   double[::1] h_out, double[::1] ll_out, int maxit, double tol, int max_halvings=40,
                   double slack=1e-10):
    """Conditional modes of one scalar random-effect term by Newton's method, group by group.

    The linear predictor is eta_fix + lam * z * u[codes]; each group's penalized log-likelihood
    sum_i loglik_i - u_j^2 / 2 is maximised in u_j (a step that lowers it is halved).

    Parameters
    ----------
    u : (m,) starting values, overwritten with the modes
    h_out : (m,) the negative second derivative of the penalized log-likelihood at the modes
    ll_out : (m,) each group's conditional log-likelihood at the modes
    maxit, tol : Newton steps at most and the largest step |du| at which the modes count as found (that step
        is taken, and the iteration ends after it)
    max_halvings, slack : a step that raises a group's penalized deviance by more than slack (|value| + 1) is
        halved, at most max_halvings times; then that group stops at its point before the step. These limits
        are those of mixframe.laplace.modes.ModeSettings.

    Returns
    -------
    (status, iterations, loglik, logdet, uu) : status 0; 1 a probability is 0 at the start; 2 no
        convergence; 3 the thresholds do not increase. loglik is the conditional log-likelihood at the
        modes, logdet the sum of log h, uu the sum of squared modes.
    """
    return _arrow_modes(y, eta_fix, alpha, wts, _NO_CODES, codes, _NO_CODES, _NO_VALUES, z, 0.0, lam, link,
                        _NO_VALUES, u, _NO_VALUES, _NO_VALUES, h_out, ll_out, maxit, tol, max_halvings, slack)


@cython.boundscheck(False)
@cython.wraparound(False)
def agq_scalar(const int[::1] y, const double[::1] eta_fix, const double[::1] alpha, const double[::1] wts,
               const int[::1] codes, const double[::1] z, double lam, int link, const double[::1] u,
               const double[::1] h, const double[::1] nodes, const double[::1] log_weights,
               double[:, ::1] work):
    """Adaptive Gauss-Hermite log-likelihood of one scalar random-effect term.

    Group j's integral over u ~ N(0, 1) is centred at its mode u[j] and scaled by h[j]^(-1/2), the
    curvature of its penalized log-likelihood there: with the nodes z_k and log weights of the rule for the
    standard normal density (mixframe.numerics.quadrature),
    log L_j = -log(h_j)/2 + logsumexp_k(log w_k + z_k^2 / 2 + l_j(u_jk) - u_jk^2 / 2),
    u_jk = u_j + z_k / sqrt(h_j) (the formula of mixframe.laplace.agq). ``work`` is an (m, n_nodes) scratch
    array.

    Returns
    -------
    (status, loglik) : status 1 when a probability is 0 at some node
    """
    cdef Py_ssize_t n = y.shape[0], m = u.shape[0], nq = nodes.shape[0], nthr = alpha.shape[0], i, j, k, c
    cdef double x1, x0, r1, r0, g1, g0, lp, w, ujk, mx, s, total = 0.0
    cdef bint has1, has0, weighted = wts.shape[0] > 0
    cdef int status = 0
    with nogil:
        work[:, :] = 0.0
        for i in range(n):
            j = codes[i]
            c = y[i]
            w = wts[i] if weighted else 1.0
            for k in range(nq):
                ujk = u[j] + nodes[k] / sqrt(h[j])
                bounds(alpha, eta_fix[i] + lam * z[i] * ujk, c, nthr, &x1, &x0, &has1, &has0)
                lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
                work[j, k] += w * lp
        for j in range(m):
            mx = -INFINITY
            for k in range(nq):
                ujk = u[j] + nodes[k] / sqrt(h[j])
                work[j, k] += log_weights[k] + 0.5 * nodes[k] * nodes[k] - 0.5 * ujk * ujk
                if work[j, k] > mx:
                    mx = work[j, k]
            if mx == -INFINITY:
                status = 1
                total = -INFINITY
                break
            s = 0.0
            for k in range(nq):
                s += exp(work[j, k] - mx)
            total += mx + log(s) - 0.5 * log(h[j])
    return status, total


@cython.boundscheck(False)
@cython.wraparound(False)
def laplace_scalar_grad(const int[::1] y, const double[::1] eta_fix, const double[::1] alpha,
                        const double[::1] wts, const int[::1] codes, const double[::1] z,
                        const double[:, ::1] X, double lam, int link, const double[::1] u,
                        const double[::1] h, double[::1] grad_alpha_out, double[::1] grad_beta_out):
    """Gradient of the Laplace -log L of one scalar term in the thresholds, beta and lam.

    ``u`` and ``h`` must be the modes and curvatures at these parameters (``laplace_scalar``). The
    total derivative includes the movement of the modes: with f_j the group's -log L and
    G_j = lam * sum(z s) - u_j = 0 at the mode, df_j = df_j|_u + (df_j/du_j) (dG_j / h_j).

    Returns
    -------
    float : the derivative in lam
    """
    cdef Py_ssize_t n = y.shape[0], m = u.shape[0], nthr = alpha.shape[0], p = X.shape[1], i, j, c, k
    cdef double x1, x0, w, zi, e, inv, mj, E, grad_lam = 0.0, lam2 = lam * lam
    cdef bint has1, has0, weighted = wts.shape[0] > 0
    cdef double d[9]
    cdef double[::1] A = np.zeros(m)
    with nogil:
        grad_alpha_out[:] = 0.0
        grad_beta_out[:] = 0.0
        for i in range(n):
            j = codes[i]
            w = wts[i] if weighted else 1.0
            zi = z[i]
            bounds(alpha, eta_fix[i] + lam * zi * u[j], y[i], nthr, &x1, &x0, &has1, &has0)
            obs_third(link, x1, x0, has1, has0, w, d)
            A[j] += zi * zi * zi * d[2]
        for i in range(n):
            j = codes[i]
            c = y[i]
            w = wts[i] if weighted else 1.0
            zi = z[i]
            bounds(alpha, eta_fix[i] + lam * zi * u[j], c, nthr, &x1, &x0, &has1, &has0)
            obs_third(link, x1, x0, has1, has0, w, d)
            inv = 0.5 / h[j]
            mj = 0.5 * lam2 * lam * A[j] / (h[j] * h[j])
            E = -d[0] + inv * lam2 * zi * zi * d[2] - mj * lam * zi * d[1]
            for k in range(p):
                grad_beta_out[k] += X[i, k] * E
            grad_lam += zi * u[j] * E + inv * 2.0 * lam * zi * zi * d[1] + mj * zi * d[0]
            if has1:
                grad_alpha_out[c] += -d[3] + inv * lam2 * zi * zi * d[5] + mj * lam * zi * d[4]
            if has0:
                grad_alpha_out[c - 1] += -d[6] + inv * lam2 * zi * zi * d[8] + mj * lam * zi * d[7]
    return grad_lam


@cython.boundscheck(False)
@cython.wraparound(False)
def laplace_nested(const int[::1] y, const double[::1] eta_fix, const double[::1] alpha, const double[::1] wts,
                   const int[::1] codes_in, const int[::1] codes_out, const int[::1] parent,
                   const double[::1] z_in, const double[::1] z_out, double lam_in, double lam_out, int link,
                   double[::1] u_in, double[::1] u_out, double[::1] h_in, double[::1] c_in, double[::1] schur,
                   int maxit, double tol, int max_halvings=40, double slack=1e-10):
    """Conditional modes of two nested scalar terms by Newton's method, outer group by outer group.

    The inner term's level j lies in the outer level parent[j]; the linear predictor is
    eta_fix + lam_in z_in u_in[codes_in] + lam_out z_out u_out[codes_out]. Within an outer group the
    curvature of the penalized log-likelihood is an arrowhead matrix (the outer effect bordering the
    diagonal of its inner effects), solved and log-determined through its Schur complement.

    Parameters
    ----------
    u_in, u_out : starting values, overwritten with the modes
    h_in, c_in : (m_in,) outputs: each inner effect's curvature and its coupling with its outer effect
    schur : (m_out,) output: the Schur complement of each outer group
    maxit, tol, max_halvings, slack : as ``laplace_scalar`` takes them, the halving per outer group

    Returns
    -------
    (status, iterations, loglik, logdet, uu) as ``laplace_scalar`` returns them
    """
    return _arrow_modes(y, eta_fix, alpha, wts, codes_in, codes_out, parent, z_in, z_out, lam_in, lam_out, link,
                        u_in, u_out, h_in, c_in, schur, np.zeros(u_out.shape[0]), maxit, tol, max_halvings, slack)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef tuple _arrow_modes(const int[::1] y, const double[::1] eta_fix, const double[::1] alpha,
                        const double[::1] wts, const int[::1] codes_in, const int[::1] codes_out,
                        const int[::1] parent, const double[::1] z_in, const double[::1] z_out, double lam_in,
                        double lam_out, int link, double[::1] u_in, double[::1] u_out, double[::1] h_in,
                        double[::1] c_in, double[::1] schur, double[::1] ll_o, int maxit, double tol,
                        int max_halvings, double slack):
    """The Newton iteration of ``laplace_nested``, outer group by outer group; with no inner term
    (``u_in`` empty) it is the group-by-group iteration of ``laplace_scalar`` (each group's curvature then
    is its Schur complement). ll_o (m_out,) receives each outer group's conditional log-likelihood."""
    cdef Py_ssize_t n = y.shape[0], mi = u_in.shape[0], mo = u_out.shape[0], nthr = alpha.shape[0]
    cdef Py_ssize_t i, j = 0, k, c
    cdef bint inner = mi > 0
    cdef double x1, x0, r1, r0, g1, g0, lp, w, d, s, cv, zi = 0.0, zo, hj, dk, maxstep, obj, e
    cdef double ll_tot = 0.0, logdet = 0.0, uu = 0.0
    cdef bint has1, has0, weighted = wts.shape[0] > 0, final = False, first = True, halved, bad = False
    cdef int it = 0, nhalf = 0, status = 2
    for j in range(1, nthr):
        if not (alpha[j] > alpha[j - 1]):
            return 3, 0, -INFINITY, 0.0, 0.0
    # one workspace, cut into the per-group vectors
    cdef double[::1] ws = np.zeros(7 * mo + 2 * mi)
    cdef double[::1] g_out = ws[:mo]
    cdef double[::1] h_out = ws[mo:2 * mo]
    cdef double[::1] rhs = ws[2 * mo:3 * mo]
    cdef double[::1] uu_o = ws[3 * mo:4 * mo]
    cdef double[::1] obj_prev = ws[4 * mo:5 * mo]
    cdef double[::1] halve = ws[5 * mo:6 * mo]
    cdef double[::1] prev_out = ws[6 * mo:7 * mo]
    cdef double[::1] g_in = ws[7 * mo:7 * mo + mi]
    cdef double[::1] prev_in = ws[7 * mo + mi:]
    with nogil:
        # a term whose SD is 0 leaves the likelihood: its penalized modes are exactly 0
        if lam_out == 0.0:
            u_out[:] = 0.0
        if lam_in == 0.0:
            u_in[:] = 0.0
        while True:
            ll_o[:] = 0.0
            g_in[:] = 0.0
            g_out[:] = 0.0
            h_in[:] = 0.0
            h_out[:] = 0.0
            c_in[:] = 0.0
            for i in range(n):
                k = codes_out[i]
                c = y[i]
                zo = z_out[i]
                w = wts[i] if weighted else 1.0
                e = eta_fix[i]
                if inner:
                    j = codes_in[i]
                    zi = z_in[i]
                    e = e + lam_in * zi * u_in[j]
                e = e + lam_out * zo * u_out[k]
                bounds(alpha, e, c, nthr, &x1, &x0, &has1, &has0)
                lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
                d = r1 - r0
                s = -w * d
                cv = -w * (r1 * g1 - r0 * g0 - d * d)
                ll_o[k] += w * lp
                g_out[k] += lam_out * zo * s
                h_out[k] += lam_out * lam_out * zo * zo * cv
                if inner:
                    g_in[j] += lam_in * zi * s
                    h_in[j] += lam_in * lam_in * zi * zi * cv
                    c_in[j] += lam_in * lam_out * zi * zo * cv
            for k in range(mo):
                uu_o[k] = u_out[k] * u_out[k]
            for j in range(mi):
                uu_o[parent[j]] += u_in[j] * u_in[j]
            halved = False
            if first:
                for k in range(mo):
                    if ll_o[k] == -INFINITY:
                        bad = True
            else:
                for k in range(mo):
                    halve[k] = 0.0
                    obj = -ll_o[k] + 0.5 * uu_o[k]
                    if not (obj <= obj_prev[k] + slack * (1.0 + fabs(obj_prev[k]))):
                        halved = True
                        if nhalf < max_halvings:
                            halve[k] = 1.0
                            u_out[k] = 0.5 * (u_out[k] + prev_out[k])
                        else:
                            halve[k] = 2.0
                            u_out[k] = prev_out[k]
                            final = True
                if halved:
                    for j in range(mi):
                        if halve[parent[j]] == 1.0:
                            u_in[j] = 0.5 * (u_in[j] + prev_in[j])
                        elif halve[parent[j]] == 2.0:
                            u_in[j] = prev_in[j]
            if bad:
                status = 1
                break
            if halved:
                nhalf += 1
                continue
            if final:
                status = 0
                break
            if it >= maxit:
                break
            it += 1
            # Newton step through each outer group's Schur complement
            for k in range(mo):
                schur[k] = 1.0 + h_out[k]
                rhs[k] = g_out[k] - u_out[k]
                obj_prev[k] = -ll_o[k] + 0.5 * uu_o[k]
                prev_out[k] = u_out[k]
            for j in range(mi):
                hj = 1.0 + h_in[j]
                if hj < MIN_CURV:
                    hj = MIN_CURV
                k = parent[j]
                schur[k] -= c_in[j] * c_in[j] / hj
                rhs[k] -= c_in[j] * (g_in[j] - u_in[j]) / hj
            maxstep = 0.0
            for k in range(mo):
                if schur[k] < MIN_CURV:
                    schur[k] = MIN_CURV
                dk = rhs[k] / schur[k]
                u_out[k] += dk
                rhs[k] = dk
                if fabs(dk) > maxstep:
                    maxstep = fabs(dk)
            for j in range(mi):
                hj = 1.0 + h_in[j]
                if hj < MIN_CURV:
                    hj = MIN_CURV
                prev_in[j] = u_in[j]
                dk = (g_in[j] - u_in[j] - c_in[j] * rhs[parent[j]]) / hj
                u_in[j] += dk
                if fabs(dk) > maxstep:
                    maxstep = fabs(dk)
            first = False
            nhalf = 0
            if maxstep == 0.0:      # no step at all: the pass just made was at the final point
                status = 0
                break
            if maxstep < tol:
                final = True
        # curvature pieces at the modes and the log-determinant of the arrowhead blocks
        for k in range(mo):
            schur[k] = 1.0 + h_out[k]
            ll_tot += ll_o[k]
            uu += u_out[k] * u_out[k]
        for j in range(mi):
            h_in[j] += 1.0
            schur[parent[j]] -= c_in[j] * c_in[j] / h_in[j]
            logdet += log(h_in[j])
            uu += u_in[j] * u_in[j]
        for k in range(mo):
            logdet += log(schur[k])
    return status, it, ll_tot, logdet, uu
