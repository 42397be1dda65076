# Cumulative link kernels: link distributions and the per-observation pieces of the ordinal likelihood
# (log-likelihood, score and curvature in the location, threshold derivatives), on top of the inline
# functions of cumlink.pxd.
#
# cython: language_level=3

cimport cython
import numpy as np
from libc.math cimport exp, expm1, fabs, INFINITY

from cumlink cimport bounds, link_eval, obs_terms


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
    link : cumulative link code (CumLink of mixframe/families/codes.py, CUMLINK_* in codes.pxi)
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

    With eta = eta_fix + eta_re, score s and curvature w (kept at least 1e-10 away from 0; negative only
    for a link whose F is not log-concave, cauchit), z = eta_re + s / w.

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
                if not (fabs(cv) > 1e-10):
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
