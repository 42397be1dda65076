# Inline pieces shared by the cumulative link kernels (ordinal.pyx, ordinal_laplace.pyx).
#
# An observation in category c (0-based, of K) has probability P = F(x1) - F(x0) with x1 = alpha_c - eta and
# x0 = alpha_{c-1} - eta, where alpha_{-1} = -inf and alpha_{K-1} = +inf. Everything is computed on the log
# scale from log F, log S (S = 1 - F), log f and g = f'/f, so the tails keep their precision: P is taken as a
# difference of lower-tail probabilities when x0 <= 0 and of upper-tail probabilities otherwise.
#
# Links are the integer codes CUMLINK_* of codes.pxi (generated from mixframe/families/codes.py): logit,
# probit, cloglog (F(x) = 1 - exp(-exp(x))), loglog (F(x) = exp(-exp(-x))), cauchit.
# (0.91893853320467274178 below is log(sqrt(2 pi)).)

include "codes.pxi"

from libc.math cimport atan, erfc, exp, expm1, fabs, INFINITY, log, log1p, M_PI, NAN, sqrt


cdef inline double log_ndtr(double x) noexcept nogil:
    """log of the standard normal CDF, with an asymptotic series far in the lower tail."""
    cdef double r, r2
    if x > -35.0:
        return log(0.5 * erfc(-x / sqrt(2.0)))
    r2 = 1.0 / (x * x)
    r = 1.0 + r2 * (-1.0 + r2 * (3.0 + r2 * (-15.0 + r2 * (105.0 + r2 * (-945.0 + r2 * 10395.0)))))
    return -0.5 * x * x - log(-x) - 0.91893853320467274178 + log(r)


cdef inline double cauchy_cdf(double x) noexcept nogil:
    if x < 0.0:
        return atan(-1.0 / x) / M_PI
    return 0.5 + atan(x) / M_PI


cdef inline void link_eval(int link, double x, double* lF, double* lS, double* lf, double* g) noexcept nogil:
    """log F(x), log S(x), log f(x) and g(x) = f'(x)/f(x) for a finite x."""
    cdef double e, ex
    if link == CUMLINK_LOGIT:                   # logistic
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
    elif link == CUMLINK_PROBIT:                # normal
        lF[0] = log_ndtr(x)
        lS[0] = log_ndtr(-x)
        lf[0] = -0.5 * x * x - 0.91893853320467274178
        g[0] = -x
    elif link == CUMLINK_CLOGLOG:               # Gumbel for minima: F = 1 - exp(-exp(x))
        ex = exp(x)
        lS[0] = -ex
        if x < -30.0:
            lF[0] = x - 0.5 * ex
        else:
            lF[0] = log(-expm1(-ex))
        lf[0] = x - ex
        g[0] = 1.0 - ex
    elif link == CUMLINK_LOGLOG:                # Gumbel for maxima: F = exp(-exp(-x))
        ex = exp(-x)
        lF[0] = -ex
        if x > 30.0:
            lS[0] = -x - 0.5 * ex
        else:
            lS[0] = log(-expm1(-ex))
        lf[0] = -x - ex
        g[0] = ex - 1.0
    else:                                           # CUMLINK_CAUCHIT
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


cdef inline double obs_terms(int link, double x1, double x0, bint has1, bint has0,
                             double* r1, double* r0, double* g1, double* g0) noexcept nogil:
    """log P of one observation; r1 = f(x1)/P, r0 = f(x0)/P (0 where the bound is infinite), g1, g0."""
    cdef double out
    if link == CUMLINK_LOGIT and (has1 or has0):
        r1[0] = 0.0
        r0[0] = 0.0
        g1[0] = 0.0
        g0[0] = 0.0
        out = obs_logit(x1, x0, has1, has0, r1, r0, g1, g0)
        if out == out:
            return out
    return obs_terms_general(link, x1, x0, has1, has0, r1, r0, g1, g0)


cdef inline void bounds(const double[::1] alpha, double eta, Py_ssize_t c, Py_ssize_t nthr,
                        double* x1, double* x0, bint* has1, bint* has0) noexcept nogil:
    has1[0] = c < nthr
    has0[0] = c > 0
    x1[0] = alpha[c] - eta if has1[0] else INFINITY
    x0[0] = alpha[c - 1] - eta if has0[0] else -INFINITY


cdef inline double dlog_density_slope(int link, double x) noexcept nogil:
    """g'(x), the derivative of g = f'/f (so f''/f = g^2 + g')."""
    cdef double e
    if link == CUMLINK_LOGIT:
        e = exp(-fabs(x))
        return -2.0 * e / ((1.0 + e) * (1.0 + e))
    if link == CUMLINK_PROBIT:
        return -1.0
    if link == CUMLINK_CLOGLOG:
        return -exp(x)
    if link == CUMLINK_LOGLOG:
        return -exp(-x)
    return (2.0 * x * x - 2.0) / ((1.0 + x * x) * (1.0 + x * x))   # CUMLINK_CAUCHIT


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
