# Cumulative link kernels: link distributions and the per-observation pieces of the ordinal likelihood.
#
# An observation in category c (0-based, of K) has probability P = F(x1) - F(x0) with x1 = alpha_c - eta and
# x0 = alpha_{c-1} - eta, where alpha_{-1} = -inf and alpha_{K-1} = +inf. Everything is computed on the log
# scale from log F, log S (S = 1 - F), log f and g = f'/f, so the tails keep their precision: P is taken as a
# difference of lower-tail probabilities when x0 <= 0 and of upper-tail probabilities otherwise.
#
# Link codes: 0 logit, 1 probit, 2 cloglog (F(x) = 1 - exp(-exp(x))), 3 loglog (F(x) = exp(-exp(-x))),
# 4 cauchit.
#
# cython: language_level=3

cimport cython
import numpy as np
from libc.math cimport (atan, erfc, exp, expm1, fabs, INFINITY, log, log1p, M_PI, NAN, sqrt)

DEF LOG_SQRT_2PI = 0.91893853320467274178


cdef inline double log_ndtr(double x) noexcept nogil:
    """log of the standard normal CDF, with an asymptotic series far in the lower tail."""
    cdef double r, r2
    if x > -35.0:
        return log(0.5 * erfc(-x / sqrt(2.0)))
    r2 = 1.0 / (x * x)
    r = 1.0 + r2 * (-1.0 + r2 * (3.0 + r2 * (-15.0 + r2 * (105.0 + r2 * (-945.0 + r2 * 10395.0)))))
    return -0.5 * x * x - log(-x) - LOG_SQRT_2PI + log(r)


cdef inline double cauchy_cdf(double x) noexcept nogil:
    if x < 0.0:
        return atan(-1.0 / x) / M_PI
    return 0.5 + atan(x) / M_PI


cdef inline void link_eval(int link, double x, double* lF, double* lS, double* lf, double* g) noexcept nogil:
    """log F(x), log S(x), log f(x) and g(x) = f'(x)/f(x) for a finite x."""
    cdef double e, ex
    if link == 0:                                   # logistic
        e = exp(-fabs(x))
        if x >= 0.0:
            lF[0] = -log1p(e)
            lS[0] = -x - log1p(e)
            g[0] = (e - 1.0) / (1.0 + e)
        else:
            lF[0] = x - log1p(e)
            lS[0] = -log1p(e)
            g[0] = (1.0 - e) / (1.0 + e)
        lf[0] = lF[0] + lS[0]
    elif link == 1:                                 # normal
        lF[0] = log_ndtr(x)
        lS[0] = log_ndtr(-x)
        lf[0] = -0.5 * x * x - LOG_SQRT_2PI
        g[0] = -x
    elif link == 2:                                 # Gumbel for minima: F = 1 - exp(-exp(x))
        ex = exp(x)
        lS[0] = -ex
        if x < -30.0:
            lF[0] = x - 0.5 * ex
        else:
            lF[0] = log(-expm1(-ex))
        lf[0] = x - ex
        g[0] = 1.0 - ex
    elif link == 3:                                 # Gumbel for maxima: F = exp(-exp(-x))
        ex = exp(-x)
        lF[0] = -ex
        if x > 30.0:
            lS[0] = -x - 0.5 * ex
        else:
            lS[0] = log(-expm1(-ex))
        lf[0] = -x - ex
        g[0] = ex - 1.0
    else:                                           # Cauchy
        lF[0] = log(cauchy_cdf(x))
        lS[0] = log(cauchy_cdf(-x))
        lf[0] = -log(M_PI) - log1p(x * x)
        g[0] = -2.0 * x / (1.0 + x * x)


cdef inline void logistic_parts(double x, double* F, double* S, double* lF, double* lS) noexcept nogil:
    """F(x), S(x) = 1 - F(x) and their logs for the logistic distribution."""
    cdef double e = exp(-fabs(x)), l1 = log1p(e)
    if x >= 0.0:
        F[0] = 1.0 / (1.0 + e)
        S[0] = e / (1.0 + e)
        lF[0] = -l1
        lS[0] = -x - l1
    else:
        F[0] = e / (1.0 + e)
        S[0] = 1.0 / (1.0 + e)
        lF[0] = x - l1
        lS[0] = -l1


cdef inline double obs_logit(double x1, double x0, bint has1, bint has0,
                             double* r1, double* r0, double* g1, double* g0) noexcept nogil:
    """The logit case of ``obs_terms`` with fewer transcendental calls; NaN asks for the general path."""
    cdef double F1 = 0.0, S1 = 0.0, F0 = 0.0, S0 = 0.0, lF = 0.0, lS = 0.0, P
    cdef double e1, e0
    if has1 and has0:
        if not (x1 > x0):
            return -INFINITY
        e1 = exp(-fabs(x1))
        e0 = exp(-fabs(x0))
        if x1 >= 0.0:
            F1 = 1.0 / (1.0 + e1)
            S1 = e1 * F1
        else:
            S1 = 1.0 / (1.0 + e1)
            F1 = e1 * S1
        if x0 >= 0.0:
            F0 = 1.0 / (1.0 + e0)
            S0 = e0 * F0
        else:
            S0 = 1.0 / (1.0 + e0)
            F0 = e0 * S0
        P = S0 - S1 if x0 > 0.0 else F1 - F0
        if not (P > 1e-280):
            return NAN
        r1[0] = F1 * S1 / P
        r0[0] = F0 * S0 / P
        g1[0] = S1 - F1
        g0[0] = S0 - F0
        return log(P)
    if has1:
        logistic_parts(x1, &F1, &S1, &lF, &lS)
        r1[0] = S1
        g1[0] = S1 - F1
        return lF
    logistic_parts(x0, &F0, &S0, &lF, &lS)
    r0[0] = F0
    g0[0] = S0 - F0
    return lS


cdef inline double obs_terms(int link, double x1, double x0, bint has1, bint has0,
                             double* r1, double* r0, double* g1, double* g0) noexcept nogil:
    """log P of one observation; r1 = f(x1)/P, r0 = f(x0)/P (0 where the bound is infinite), g1, g0."""
    cdef double out
    if link == 0 and (has1 or has0):
        r1[0] = 0.0
        r0[0] = 0.0
        g1[0] = 0.0
        g0[0] = 0.0
        out = obs_logit(x1, x0, has1, has0, r1, r0, g1, g0)
        if out == out:
            return out
    return obs_terms_general(link, x1, x0, has1, has0, r1, r0, g1, g0)


cdef inline double obs_terms_general(int link, double x1, double x0, bint has1, bint has0,
                                     double* r1, double* r0, double* g1, double* g0) noexcept nogil:
    """log P on the log scale for every link (see ``obs_terms``)."""
    cdef double lF1 = 0.0, lS1 = 0.0, lf1 = 0.0, lF0 = 0.0, lS0 = 0.0, lf0 = 0.0
    cdef double logP
    r1[0] = 0.0
    r0[0] = 0.0
    g1[0] = 0.0
    g0[0] = 0.0
    if has1:
        link_eval(link, x1, &lF1, &lS1, &lf1, g1)
    if has0:
        link_eval(link, x0, &lF0, &lS0, &lf0, g0)
    if has1 and has0:
        if not (x1 > x0):
            return -INFINITY
        if x0 > 0.0:
            logP = lS0 + log1p(-exp(lS1 - lS0))
        else:
            logP = lF1 + log1p(-exp(lF0 - lF1))
    elif has1:
        logP = lF1
    elif has0:
        logP = lS0
    else:
        return 0.0
    if has1:
        r1[0] = exp(lf1 - logP)
    if has0:
        r0[0] = exp(lf0 - logP)
    return logP


cdef inline void bounds(const double[::1] alpha, double eta, Py_ssize_t c, Py_ssize_t nthr,
                        double* x1, double* x0, bint* has1, bint* has0) noexcept nogil:
    has1[0] = c < nthr
    has0[0] = c > 0
    x1[0] = alpha[c] - eta if has1[0] else INFINITY
    x0[0] = alpha[c - 1] - eta if has0[0] else -INFINITY


@cython.boundscheck(False)
@cython.wraparound(False)
def cumlink_eta(const int[::1] y, const double[::1] eta, const double[::1] alpha, const double[::1] wts,
                int link, double[::1] score_out, double[::1] curv_out):
    """Log-likelihood, score and curvature of every observation with respect to eta.

    Parameters
    ----------
    y : int32 (n,) category codes 0..K-1
    eta : (n,) location x'beta (+ z'b); the model is F(alpha_c - eta)
    alpha : (K-1,) increasing thresholds
    wts : (n,) prior weights, or empty for unit weights
    link : link code (0 logit, 1 probit, 2 cloglog, 3 loglog, 4 cauchit)
    score_out : (n,) d loglik_i / d eta_i (weighted)
    curv_out : (n,) -d^2 loglik_i / d eta_i^2 (weighted)

    Returns
    -------
    (status, loglik) : status 0, or 1 when some probability is 0 (loglik is then -inf)
    """
    return _cumlink_eta(y, eta, None, alpha, wts, link, score_out, curv_out, None)


@cython.boundscheck(False)
@cython.wraparound(False)
def cumlink_working(const int[::1] y, const double[::1] eta_fix, const double[::1] eta_re,
                    const double[::1] alpha, const double[::1] wts, int link, double[::1] z_out,
                    double[::1] w_out):
    """Working response and weights of one Newton step in the random effects.

    With eta = eta_fix + eta_re, score s and curvature w (floored at 1e-10), z = eta_re + s / w.

    Returns
    -------
    (status, loglik) : status 0, or 1 when some probability is 0
    """
    return _cumlink_eta(y, eta_fix, eta_re, alpha, wts, link, z_out, w_out, eta_re)


cdef _cumlink_eta(const int[::1] y, const double[::1] eta, const double[::1] eta2, const double[::1] alpha,
                  const double[::1] wts, int link, double[::1] score_out, double[::1] curv_out,
                  const double[::1] working):
    """Shared loop: eta2 (optional) is added to eta; with ``working`` the outputs are z and floored w."""
    cdef Py_ssize_t n = y.shape[0], nthr = alpha.shape[0], i, c
    cdef double x1, x0, r1, r0, g1, g0, lp, w, d, total = 0.0
    cdef bint has1, has0, weighted = wts.shape[0] > 0, add = eta2 is not None, work = working is not None
    cdef int status = 0
    cdef double e, cv
    with nogil:
        for i in range(n):
            c = y[i]
            w = wts[i] if weighted else 1.0
            e = eta[i] + eta2[i] if add else eta[i]
            bounds(alpha, e, c, nthr, &x1, &x0, &has1, &has0)
            lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
            if lp == -INFINITY:
                status = 1
            d = r1 - r0
            total += w * lp
            cv = -w * (r1 * g1 - r0 * g0 - d * d)
            if work:
                if not (cv > 1e-10):
                    cv = 1e-10
                score_out[i] = working[i] - w * d / cv
            else:
                score_out[i] = -w * d
            curv_out[i] = cv
    return status, total


@cython.boundscheck(False)
@cython.wraparound(False)
def cumlink_full(const int[::1] y, const double[::1] eta, const double[::1] alpha, const double[::1] wts,
                 const double[:, ::1] X, int link, double[::1] grad_a_out, double[:, ::1] hess_aa_out,
                 double[:, ::1] hess_ab_out, double[::1] score_out, double[::1] d2eta_out):
    """Log-likelihood and its first and second derivatives in the thresholds and in eta.

    The derivatives in beta follow from those in eta (d eta / d beta = x): the caller forms
    X' score and X' diag(d2eta) X. This kernel accumulates the threshold gradient (K-1), the
    threshold Hessian (K-1, K-1) and the threshold-by-beta block (K-1, p) of the Hessian.

    Returns
    -------
    (status, loglik) : status 0, or 1 when some probability is 0
    """
    cdef Py_ssize_t n = y.shape[0], nthr = alpha.shape[0], p = X.shape[1], i, c, j
    cdef double x1, x0, r1, r0, g1, g0, lp, w, d, total = 0.0, h1e, h0e
    cdef bint has1, has0, weighted = wts.shape[0] > 0
    cdef int status = 0
    with nogil:
        grad_a_out[:] = 0.0
        hess_aa_out[:, :] = 0.0
        hess_ab_out[:, :] = 0.0
        for i in range(n):
            c = y[i]
            w = wts[i] if weighted else 1.0
            bounds(alpha, eta[i], c, nthr, &x1, &x0, &has1, &has0)
            lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
            if lp == -INFINITY:
                status = 1
            d = r1 - r0
            total += w * lp
            score_out[i] = -w * d
            d2eta_out[i] = w * (r1 * g1 - r0 * g0 - d * d)
            if has1:
                grad_a_out[c] += w * r1
                hess_aa_out[c, c] += w * (r1 * g1 - r1 * r1)
                h1e = w * (-r1 * g1 + r1 * d)
                for j in range(p):
                    hess_ab_out[c, j] += h1e * X[i, j]
            if has0:
                grad_a_out[c - 1] -= w * r0
                hess_aa_out[c - 1, c - 1] += w * (-r0 * g0 - r0 * r0)
                h0e = w * (r0 * g0 - r0 * d)
                for j in range(p):
                    hess_ab_out[c - 1, j] += h0e * X[i, j]
            if has1 and has0:
                hess_aa_out[c, c - 1] += w * r1 * r0
                hess_aa_out[c - 1, c] += w * r1 * r0
    return status, total


@cython.boundscheck(False)
@cython.wraparound(False)
def cumlink_loglik_groups(const int[::1] y, const double[::1] eta, const double[::1] alpha,
                          const double[::1] wts, const int[::1] codes, int link, double[::1] out):
    """Add each observation's weighted log-probability to ``out[codes[i]]``; returns a status (1: P = 0)."""
    cdef Py_ssize_t n = y.shape[0], nthr = alpha.shape[0], i, c
    cdef double x1, x0, r1, r0, g1, g0, lp
    cdef bint has1, has0, weighted = wts.shape[0] > 0
    cdef int status = 0
    with nogil:
        for i in range(n):
            c = y[i]
            bounds(alpha, eta[i], c, nthr, &x1, &x0, &has1, &has0)
            lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
            if lp == -INFINITY:
                status = 1
            out[codes[i]] += (wts[i] if weighted else 1.0) * lp
    return status


@cython.boundscheck(False)
@cython.wraparound(False)
def add_zb(const int[::1] codes, const double[:, ::1] Z, const double[:, ::1] b, double[::1] out):
    """out[i] += Z[i, :] @ b[codes[i], :] (the random-effect part of the linear predictor, one term)."""
    cdef Py_ssize_t n = codes.shape[0], k = Z.shape[1], i, j, lev
    cdef double s
    with nogil:
        for i in range(n):
            lev = codes[i]
            s = 0.0
            for j in range(k):
                s += Z[i, j] * b[lev, j]
            out[i] += s


@cython.boundscheck(False)
@cython.wraparound(False)
def link_functions(int link, const double[::1] x, double[::1] cdf_out, double[::1] pdf_out,
                   double[::1] dpdf_out):
    """CDF F(x), density f(x) and density derivative f'(x) of a link's distribution, elementwise.

    Any output may be empty to skip it.
    """
    cdef Py_ssize_t n = x.shape[0], i
    cdef double lF, lS, lf, g, xi, f
    cdef bint want_c = cdf_out.shape[0] > 0, want_p = pdf_out.shape[0] > 0, want_d = dpdf_out.shape[0] > 0
    with nogil:
        for i in range(n):
            xi = x[i]
            if xi == INFINITY or xi == -INFINITY:
                if want_c:
                    cdf_out[i] = 1.0 if xi > 0 else 0.0
                if want_p:
                    pdf_out[i] = 0.0
                if want_d:
                    dpdf_out[i] = 0.0
                continue
            link_eval(link, xi, &lF, &lS, &lf, &g)
            f = exp(lf)
            if want_c:
                cdf_out[i] = exp(lF) if lF < -0.6931471805599453 else -expm1(lS)
            if want_p:
                pdf_out[i] = f
            if want_d:
                dpdf_out[i] = f * g if f > 0.0 else 0.0


@cython.boundscheck(False)
@cython.wraparound(False)
def laplace_scalar(const int[::1] y, const double[::1] eta_fix, const double[::1] alpha, const double[::1] wts,
                   const int[::1] codes, const double[::1] z, double lam, int link, double[::1] u,
                   double[::1] h_out, double[::1] ll_out, int maxit, double tol):
    """Conditional modes of one scalar random-effect term by Newton's method, group by group.

    The linear predictor is eta_fix + lam * z * u[codes]; each group's penalized log-likelihood
    sum_i loglik_i - u_j^2 / 2 is maximised in u_j (a step that lowers it is halved).

    Parameters
    ----------
    u : (m,) starting values, overwritten with the modes
    h_out : (m,) the negative second derivative of the penalized log-likelihood at the modes
    ll_out : (m,) each group's conditional log-likelihood at the modes
    maxit, tol : iteration limit and the largest step |du| at which the modes count as found

    Returns
    -------
    (status, iterations, loglik, logdet, uu) : status 0; 1 a probability is 0 at the start; 2 no
        convergence; 3 the thresholds do not increase. loglik is the conditional log-likelihood at the
        modes, logdet the sum of log h, uu the sum of squared modes.
    """
    cdef Py_ssize_t n = y.shape[0], m = u.shape[0], nthr = alpha.shape[0], i, j, c
    cdef double x1, x0, r1, r0, g1, g0, lp, w, d, zi, hj, step, maxstep, obj, bad_start = 0.0
    cdef bint has1, has0, weighted = wts.shape[0] > 0, final = False, first = True, halved
    cdef int it = 0, nhalf = 0, status = 2
    cdef double[::1] g = np.zeros(m)
    cdef double[::1] u_prev = np.zeros(m)
    cdef double[::1] obj_prev = np.zeros(m)
    cdef double ll_tot = 0.0, logdet = 0.0, uu = 0.0
    for j in range(1, nthr):
        if not (alpha[j] > alpha[j - 1]):
            return 3, 0, -INFINITY, 0.0, 0.0
    with nogil:
        while it < maxit:
            it += 1
            ll_out[:] = 0.0
            h_out[:] = 0.0
            g[:] = 0.0
            for i in range(n):
                j = codes[i]
                c = y[i]
                zi = z[i]
                w = wts[i] if weighted else 1.0
                bounds(alpha, eta_fix[i] + lam * zi * u[j], c, nthr, &x1, &x0, &has1, &has0)
                lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
                d = r1 - r0
                ll_out[j] += w * lp
                g[j] -= lam * zi * w * d
                h_out[j] -= lam * lam * zi * zi * w * (r1 * g1 - r0 * g0 - d * d)
            halved = False
            if first:
                for j in range(m):
                    if ll_out[j] == -INFINITY:
                        bad_start = 1.0
            else:
                for j in range(m):
                    obj = -ll_out[j] + 0.5 * u[j] * u[j]
                    if not (obj <= obj_prev[j] + 1e-10 * (1.0 + fabs(obj_prev[j]))) and nhalf < 40:
                        u[j] = 0.5 * (u[j] + u_prev[j])
                        halved = True
            if bad_start > 0.0:
                status = 1
                break
            if halved:
                nhalf += 1
                continue
            if final:
                status = 0
                break
            maxstep = 0.0
            for j in range(m):
                hj = h_out[j] + 1.0
                if hj < 1e-8:
                    hj = 1e-8
                step = (g[j] - u[j]) / hj
                u_prev[j] = u[j]
                obj_prev[j] = -ll_out[j] + 0.5 * u[j] * u[j]
                u[j] += step
                if fabs(step) > maxstep:
                    maxstep = fabs(step)
            first = False
            nhalf = 0
            if maxstep < tol:
                final = True
        for j in range(m):
            h_out[j] += 1.0
            ll_tot += ll_out[j]
            logdet += log(h_out[j])
            uu += u[j] * u[j]
    return status, it, ll_tot, logdet, uu


@cython.boundscheck(False)
@cython.wraparound(False)
def agq_scalar(const int[::1] y, const double[::1] eta_fix, const double[::1] alpha, const double[::1] wts,
               const int[::1] codes, const double[::1] z, double lam, int link, const double[::1] u,
               const double[::1] h, const double[::1] nodes, const double[::1] log_weights,
               double[:, ::1] work):
    """Adaptive Gauss-Hermite log-likelihood of one scalar random-effect term.

    Group j's integral over u ~ N(0, 1) is centred at its mode u[j] and scaled by h[j]^(-1/2), the
    curvature of its penalized log-likelihood there: with Gauss-Hermite nodes x_k and log weights,
    log L_j = -log(h_j)/2 - log(pi)/2 + logsumexp_k(log w_k + x_k^2 + l_j(u_jk) - u_jk^2 / 2),
    u_jk = u_j + sqrt(2 / h_j) x_k. ``work`` is an (m, n_nodes) scratch array.

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
                ujk = u[j] + sqrt(2.0 / h[j]) * nodes[k]
                bounds(alpha, eta_fix[i] + lam * z[i] * ujk, c, nthr, &x1, &x0, &has1, &has0)
                lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
                work[j, k] += w * lp
        for j in range(m):
            mx = -INFINITY
            for k in range(nq):
                ujk = u[j] + sqrt(2.0 / h[j]) * nodes[k]
                work[j, k] += log_weights[k] + nodes[k] * nodes[k] - 0.5 * ujk * ujk
                if work[j, k] > mx:
                    mx = work[j, k]
            if mx == -INFINITY:
                status = 1
                total = -INFINITY
                break
            s = 0.0
            for k in range(nq):
                s += exp(work[j, k] - mx)
            total += mx + log(s) - 0.5 * log(h[j]) - 0.5 * log(M_PI)
    return status, total


cdef inline double dlog_density_slope(int link, double x) noexcept nogil:
    """g'(x), the derivative of g = f'/f (so f''/f = g^2 + g')."""
    cdef double e
    if link == 0:
        e = exp(-fabs(x))
        return -2.0 * e / ((1.0 + e) * (1.0 + e))
    if link == 1:
        return -1.0
    if link == 2:
        return -exp(x)
    if link == 3:
        return -exp(-x)
    return (2.0 * x * x - 2.0) / ((1.0 + x * x) * (1.0 + x * x))


cdef inline void obs_third(int link, double x1, double x0, bint has1, bint has0, double w,
                           double* out) noexcept nogil:
    """Weighted derivatives of log P for the Laplace gradient.

    out[0] s = dl/deta, out[1] c = -d2l/deta2, out[2] t = dc/deta; for the upper threshold
    out[3] dl/da1, out[4] ds/da1, out[5] dc/da1; for the lower one out[6..8] likewise.
    """
    cdef double r1, r0, g1, g0, k1 = 0.0, k0 = 0.0, s, q2, q3, sa
    obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
    if has1:
        k1 = g1 * g1 + dlog_density_slope(link, x1)
    if has0:
        k0 = g0 * g0 + dlog_density_slope(link, x0)
    s = -(r1 - r0)
    q2 = r1 * g1 - r0 * g0
    q3 = -(r1 * k1 - r0 * k0)
    out[0] = w * s
    out[1] = -w * (q2 - s * s)
    out[2] = -w * (q3 - 3.0 * q2 * s + 2.0 * s * s * s)
    sa = -r1 * g1 - s * r1
    out[3] = w * r1
    out[4] = w * sa
    out[5] = -w * (r1 * k1 - q2 * r1 - 2.0 * s * sa)
    sa = r0 * g0 + s * r0
    out[6] = -w * r0
    out[7] = w * sa
    out[8] = -w * (-r0 * k0 + q2 * r0 - 2.0 * s * sa)


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
                   int maxit, double tol):
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

    Returns
    -------
    (status, iterations, loglik, logdet, uu) as ``laplace_scalar`` returns them
    """
    cdef Py_ssize_t n = y.shape[0], mi = u_in.shape[0], mo = u_out.shape[0], nthr = alpha.shape[0]
    cdef Py_ssize_t i, j, k, c
    cdef double x1, x0, r1, r0, g1, g0, lp, w, d, s, cv, zi, zo, hj, dk, maxstep, obj
    cdef double ll_tot = 0.0, logdet = 0.0, uu = 0.0
    cdef bint has1, has0, weighted = wts.shape[0] > 0, final = False, first = True, halved, bad = False
    cdef int it = 0, nhalf = 0, status = 2
    cdef double[::1] ll_o = np.zeros(mo)
    cdef double[::1] g_in = np.zeros(mi)
    cdef double[::1] g_out = np.zeros(mo)
    cdef double[::1] h_out = np.zeros(mo)
    cdef double[::1] rhs = np.zeros(mo)
    cdef double[::1] uu_o = np.zeros(mo)
    cdef double[::1] obj_prev = np.zeros(mo)
    cdef double[::1] halve = np.zeros(mo)
    cdef double[::1] prev_in = np.zeros(mi)
    cdef double[::1] prev_out = np.zeros(mo)
    for j in range(1, nthr):
        if not (alpha[j] > alpha[j - 1]):
            return 3, 0, -INFINITY, 0.0, 0.0
    with nogil:
        while it < maxit:
            it += 1
            ll_o[:] = 0.0
            g_in[:] = 0.0
            g_out[:] = 0.0
            h_in[:] = 0.0
            h_out[:] = 0.0
            c_in[:] = 0.0
            for i in range(n):
                j = codes_in[i]
                k = codes_out[i]
                c = y[i]
                zi = z_in[i]
                zo = z_out[i]
                w = wts[i] if weighted else 1.0
                bounds(alpha, eta_fix[i] + lam_in * zi * u_in[j] + lam_out * zo * u_out[k], c, nthr,
                       &x1, &x0, &has1, &has0)
                lp = obs_terms(link, x1, x0, has1, has0, &r1, &r0, &g1, &g0)
                d = r1 - r0
                s = -w * d
                cv = -w * (r1 * g1 - r0 * g0 - d * d)
                ll_o[k] += w * lp
                g_in[j] += lam_in * zi * s
                g_out[k] += lam_out * zo * s
                h_in[j] += lam_in * lam_in * zi * zi * cv
                h_out[k] += lam_out * lam_out * zo * zo * cv
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
                    if not (obj <= obj_prev[k] + 1e-10 * (1.0 + fabs(obj_prev[k]))) and nhalf < 40:
                        halve[k] = 1.0
                        halved = True
                        u_out[k] = 0.5 * (u_out[k] + prev_out[k])
                if halved:
                    for j in range(mi):
                        if halve[parent[j]] > 0.0:
                            u_in[j] = 0.5 * (u_in[j] + prev_in[j])
            if bad:
                status = 1
                break
            if halved:
                nhalf += 1
                continue
            if final:
                status = 0
                break
            # Newton step through each outer group's Schur complement
            for k in range(mo):
                schur[k] = 1.0 + h_out[k]
                rhs[k] = g_out[k] - u_out[k]
                obj_prev[k] = -ll_o[k] + 0.5 * uu_o[k]
                prev_out[k] = u_out[k]
            for j in range(mi):
                hj = 1.0 + h_in[j]
                if hj < 1e-8:
                    hj = 1e-8
                k = parent[j]
                schur[k] -= c_in[j] * c_in[j] / hj
                rhs[k] -= c_in[j] * (g_in[j] - u_in[j]) / hj
            maxstep = 0.0
            for k in range(mo):
                if schur[k] < 1e-8:
                    schur[k] = 1e-8
                dk = rhs[k] / schur[k]
                u_out[k] += dk
                rhs[k] = dk
                if fabs(dk) > maxstep:
                    maxstep = fabs(dk)
            for j in range(mi):
                hj = 1.0 + h_in[j]
                if hj < 1e-8:
                    hj = 1e-8
                prev_in[j] = u_in[j]
                dk = (g_in[j] - u_in[j] - c_in[j] * rhs[parent[j]]) / hj
                u_in[j] += dk
                if fabs(dk) > maxstep:
                    maxstep = fabs(dk)
            first = False
            nhalf = 0
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
