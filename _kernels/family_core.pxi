# Per-observation family and link functions shared by the kernels (included, not compiled alone).
#
# Families and links are the integer codes DIST_* and LINK_* of codes.pxi, generated from
# mixframe/families/codes.py (the one table of the codes).

include "codes.pxi"

from libc.math cimport exp, expm1, log, sqrt, erfc, atan, tan, lgamma, fabs, isfinite, floor, M_PI

cdef double EPS = 2.220446049250313e-16
cdef double LOGIT_BOUND = 30.0
cdef double PROBIT_BOUND = 8.125890664701906   # -qnorm(eps)
cdef double SQRT1_2 = 0.7071067811865476
cdef double INV_SQRT_2PI = 0.3989422804014327
cdef double LOG_2PI = 1.8378770664093453


cdef inline double clamp(double x, double lo, double hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


cdef inline void link_inv3(int link, double eta, double* mu, double* d1, double* d2) noexcept nogil:
    """mu = h(eta), d1 = h'(eta), d2 = h''(eta) for inverse link h."""
    cdef double e, m, t, s
    if link == LINK_IDENTITY:
        mu[0] = eta; d1[0] = 1.0; d2[0] = 0.0
    elif link == LINK_LOG:
        e = exp(eta)
        if e < EPS:
            e = EPS
        mu[0] = e; d1[0] = e; d2[0] = e
    elif link == LINK_LOGIT:
        t = clamp(eta, -LOGIT_BOUND, LOGIT_BOUND)
        e = exp(-fabs(t))
        if t >= 0:
            m = 1.0 / (1.0 + e)
        else:
            m = e / (1.0 + e)
        mu[0] = m
        s = m * (1.0 - m)
        if s < EPS:
            s = EPS
        d1[0] = s; d2[0] = s * (1.0 - 2.0 * m)
    elif link == LINK_PROBIT:
        t = clamp(eta, -PROBIT_BOUND, PROBIT_BOUND)
        mu[0] = 0.5 * erfc(-t * SQRT1_2)
        s = INV_SQRT_2PI * exp(-0.5 * eta * eta)
        if s < EPS:
            s = EPS
        d1[0] = s; d2[0] = -eta * s
    elif link == LINK_CLOGLOG:
        t = clamp(eta, -700.0, 700.0)
        e = exp(t)
        m = -expm1(-e)
        mu[0] = clamp(m, EPS, 1.0 - EPS)
        s = exp(t - e)
        if s < EPS:
            s = EPS
        d1[0] = s; d2[0] = s * (1.0 - e)
    elif link == LINK_INVERSE:
        mu[0] = 1.0 / eta; d1[0] = -1.0 / (eta * eta); d2[0] = 2.0 / (eta * eta * eta)
    elif link == LINK_SQRT:
        mu[0] = eta * eta; d1[0] = 2.0 * eta; d2[0] = 2.0
    elif link == LINK_INVERSE_SQUARED:
        s = sqrt(eta)
        mu[0] = 1.0 / s; d1[0] = -0.5 / (eta * s); d2[0] = 0.75 / (eta * eta * s)
    else:                                           # LINK_CAUCHIT
        t = 1.0 + eta * eta
        mu[0] = clamp(0.5 + atan(eta) / M_PI, EPS, 1.0 - EPS)
        d1[0] = 1.0 / (M_PI * t); d2[0] = -2.0 * eta / (M_PI * t * t)


cdef inline double link_fun1(int link, double mu) noexcept nogil:
    if link == LINK_IDENTITY:
        return mu
    elif link == LINK_LOG:
        return log(mu)
    elif link == LINK_LOGIT:
        return log(mu / (1.0 - mu))
    elif link == LINK_PROBIT:
        return probit_q(mu)
    elif link == LINK_CLOGLOG:
        return log(-log(1.0 - mu))
    elif link == LINK_INVERSE:
        return 1.0 / mu
    elif link == LINK_SQRT:
        return sqrt(mu)
    elif link == LINK_INVERSE_SQUARED:
        return 1.0 / (mu * mu)
    else:                                           # LINK_CAUCHIT
        return tan(M_PI * (mu - 0.5))


cdef double probit_q(double p) noexcept nogil:
    """Normal quantile by Newton refinement of a rational starting value (to full double precision)."""
    cdef double x, t, err
    cdef int it
    if p <= 0.0:
        return -PROBIT_BOUND
    if p >= 1.0:
        return PROBIT_BOUND
    t = sqrt(-2.0 * log(p if p < 0.5 else 1.0 - p))
    x = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1.0 + 1.432788 * t + 0.189269 * t * t
                                                           + 0.001308 * t * t * t)
    if p < 0.5:
        x = -x
    for it in range(50):
        err = 0.5 * erfc(-x * SQRT1_2) - p
        t = INV_SQRT_2PI * exp(-0.5 * x * x)
        if t <= 0.0:
            break
        x -= err / t
        if fabs(err) < 1e-17:
            break
    return x


cdef inline double variance1(int fam, double mu, double disp) noexcept nogil:
    if fam == DIST_GAUSSIAN:
        return 1.0
    elif fam == DIST_BINOMIAL:
        return mu * (1.0 - mu)
    elif fam == DIST_POISSON:
        return mu
    elif fam == DIST_GAMMA:
        return mu * mu
    elif fam == DIST_INVERSE_GAUSSIAN:
        return mu * mu * mu
    return mu + mu * mu / disp         # DIST_NEGATIVE_BINOMIAL


cdef inline double dvariance1(int fam, double mu, double disp) noexcept nogil:
    if fam == DIST_GAUSSIAN:
        return 0.0
    elif fam == DIST_BINOMIAL:
        return 1.0 - 2.0 * mu
    elif fam == DIST_POISSON:
        return 1.0
    elif fam == DIST_GAMMA:
        return 2.0 * mu
    elif fam == DIST_INVERSE_GAUSSIAN:
        return 3.0 * mu * mu
    return 1.0 + 2.0 * mu / disp         # DIST_NEGATIVE_BINOMIAL


cdef inline double phi1(int fam, double disp) noexcept nogil:
    """The variance multiplier phi in Var(y) = phi V(mu) / wt (1 for binomial, Poisson and NB2)."""
    if fam == DIST_GAUSSIAN or fam == DIST_GAMMA or fam == DIST_INVERSE_GAUSSIAN:
        return disp * disp
    return 1.0


cdef inline bint valid_mu1(int fam, double mu) noexcept nogil:
    if not isfinite(mu):
        return False
    if fam == DIST_BINOMIAL:
        return 0.0 < mu < 1.0
    if fam == DIST_GAUSSIAN:
        return True
    return mu > 0.0


cdef inline double ylogy(double y, double mu) noexcept nogil:
    """y log(y / mu), 0 at y = 0."""
    if y <= 0.0:
        return 0.0
    return y * log(y / mu)


cdef inline double dev_resid1(int fam, double y, double mu, double wt, double disp) noexcept nogil:
    cdef double t
    if fam == DIST_GAUSSIAN:
        return wt * (y - mu) * (y - mu)
    elif fam == DIST_BINOMIAL:
        return 2.0 * wt * (ylogy(y, mu) + ylogy(1.0 - y, 1.0 - mu))
    elif fam == DIST_POISSON:
        return 2.0 * wt * (ylogy(y, mu) - (y - mu))
    elif fam == DIST_GAMMA:
        return -2.0 * wt * (log(y / mu) - (y - mu) / mu)
    elif fam == DIST_INVERSE_GAUSSIAN:
        return wt * (y - mu) * (y - mu) / (y * mu * mu)
    t = disp                                        # DIST_NEGATIVE_BINOMIAL
    return 2.0 * wt * (ylogy(y, mu) - (y + t) * log((y + t) / (mu + t)))


cdef inline double loglik1(int fam, double y, double mu, double wt, double disp) noexcept nogil:
    cdef double a, n, k, s2
    if wt == 0.0:
        return 0.0
    if fam == DIST_GAUSSIAN:
        s2 = disp * disp
        return -0.5 * (LOG_2PI + log(s2 / wt)) - wt * (y - mu) * (y - mu) / (2.0 * s2)
    elif fam == DIST_BINOMIAL:
        n = floor(wt + 0.5)
        k = floor(wt * y + 0.5)
        a = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0)
        if k > 0:
            a += k * log(mu)
        if n - k > 0:
            a += (n - k) * log(1.0 - mu)
        return a
    elif fam == DIST_POISSON:
        a = -mu - lgamma(y + 1.0)
        if y > 0:
            a += y * log(mu)
        return wt * a
    elif fam == DIST_GAMMA:
        a = 1.0 / (disp * disp)
        return wt * (-lgamma(a) - a * log(mu / a) + (a - 1.0) * log(y) - a * y / mu)
    elif fam == DIST_INVERSE_GAUSSIAN:
        s2 = disp * disp
        return wt * (-0.5 * (LOG_2PI + log(s2 * y * y * y)) - (y - mu) * (y - mu) / (2.0 * s2 * mu * mu * y))
    a = disp                                        # DIST_NEGATIVE_BINOMIAL
    k = lgamma(y + a) - lgamma(a) - lgamma(y + 1.0) + a * log(a / (a + mu))
    if y > 0:
        k += y * log(mu / (a + mu))
    return wt * k


