# Per-observation loops of the generalized linear model families: links, variances, deviance residuals,
# log-likelihood terms, and the working weights / working residuals of penalized IRLS.
#
# Families and links are small integer codes (see mixframe.families for the names):
#   family: 0 gaussian, 1 binomial, 2 poisson, 3 gamma, 4 inverse_gaussian, 5 negative_binomial (NB2)
#   link:   0 identity, 1 log, 2 logit, 3 probit, 4 cloglog, 5 inverse, 6 sqrt, 7 inverse_squared, 8 cauchit
#
# ``disp`` is the family's dispersion parameter as mixframe reports it: the SD for gaussian, the coefficient of
# variation for gamma, sigma (phi = sigma^2) for the inverse Gaussian, the size theta for NB2; ignored by the
# binomial and Poisson families. Every entry point returns 0, or 1 when a mean or weight is invalid.
#
# cython: language_level=3

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
    if link == 0:
        mu[0] = eta; d1[0] = 1.0; d2[0] = 0.0
    elif link == 1:
        e = exp(eta)
        if e < EPS:
            e = EPS
        mu[0] = e; d1[0] = e; d2[0] = e
    elif link == 2:
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
    elif link == 3:
        t = clamp(eta, -PROBIT_BOUND, PROBIT_BOUND)
        mu[0] = 0.5 * erfc(-t * SQRT1_2)
        s = INV_SQRT_2PI * exp(-0.5 * eta * eta)
        if s < EPS:
            s = EPS
        d1[0] = s; d2[0] = -eta * s
    elif link == 4:
        t = clamp(eta, -700.0, 700.0)
        e = exp(t)
        m = -expm1(-e)
        mu[0] = clamp(m, EPS, 1.0 - EPS)
        s = exp(t - e)
        if s < EPS:
            s = EPS
        d1[0] = s; d2[0] = s * (1.0 - e)
    elif link == 5:
        mu[0] = 1.0 / eta; d1[0] = -1.0 / (eta * eta); d2[0] = 2.0 / (eta * eta * eta)
    elif link == 6:
        mu[0] = eta * eta; d1[0] = 2.0 * eta; d2[0] = 2.0
    elif link == 7:
        s = sqrt(eta)
        mu[0] = 1.0 / s; d1[0] = -0.5 / (eta * s); d2[0] = 0.75 / (eta * eta * s)
    else:
        t = 1.0 + eta * eta
        mu[0] = clamp(0.5 + atan(eta) / M_PI, EPS, 1.0 - EPS)
        d1[0] = 1.0 / (M_PI * t); d2[0] = -2.0 * eta / (M_PI * t * t)


cdef inline double link_fun1(int link, double mu) noexcept nogil:
    if link == 0:
        return mu
    elif link == 1:
        return log(mu)
    elif link == 2:
        return log(mu / (1.0 - mu))
    elif link == 3:
        return probit_q(mu)
    elif link == 4:
        return log(-log(1.0 - mu))
    elif link == 5:
        return 1.0 / mu
    elif link == 6:
        return sqrt(mu)
    elif link == 7:
        return 1.0 / (mu * mu)
    else:
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
    if fam == 0:
        return 1.0
    elif fam == 1:
        return mu * (1.0 - mu)
    elif fam == 2:
        return mu
    elif fam == 3:
        return mu * mu
    elif fam == 4:
        return mu * mu * mu
    return mu + mu * mu / disp


cdef inline double dvariance1(int fam, double mu, double disp) noexcept nogil:
    if fam == 0:
        return 0.0
    elif fam == 1:
        return 1.0 - 2.0 * mu
    elif fam == 2:
        return 1.0
    elif fam == 3:
        return 2.0 * mu
    elif fam == 4:
        return 3.0 * mu * mu
    return 1.0 + 2.0 * mu / disp


cdef inline double phi1(int fam, double disp) noexcept nogil:
    """The variance multiplier phi in Var(y) = phi V(mu) / wt (1 for binomial, Poisson and NB2)."""
    if fam == 0 or fam == 3 or fam == 4:
        return disp * disp
    return 1.0


cdef inline bint valid_mu1(int fam, double mu) noexcept nogil:
    if not isfinite(mu):
        return False
    if fam == 1:
        return 0.0 < mu < 1.0
    if fam == 0:
        return True
    return mu > 0.0


cdef inline double ylogy(double y, double mu) noexcept nogil:
    """y log(y / mu), 0 at y = 0."""
    if y <= 0.0:
        return 0.0
    return y * log(y / mu)


cdef inline double dev_resid1(int fam, double y, double mu, double wt, double disp) noexcept nogil:
    cdef double t
    if fam == 0:
        return wt * (y - mu) * (y - mu)
    elif fam == 1:
        return 2.0 * wt * (ylogy(y, mu) + ylogy(1.0 - y, 1.0 - mu))
    elif fam == 2:
        return 2.0 * wt * (ylogy(y, mu) - (y - mu))
    elif fam == 3:
        return -2.0 * wt * (log(y / mu) - (y - mu) / mu)
    elif fam == 4:
        return wt * (y - mu) * (y - mu) / (y * mu * mu)
    t = disp
    return 2.0 * wt * (ylogy(y, mu) - (y + t) * log((y + t) / (mu + t)))


cdef inline double loglik1(int fam, double y, double mu, double wt, double disp) noexcept nogil:
    cdef double a, n, k, s2
    if wt == 0.0:
        return 0.0
    if fam == 0:
        s2 = disp * disp
        return -0.5 * (LOG_2PI + log(s2 / wt)) - wt * (y - mu) * (y - mu) / (2.0 * s2)
    elif fam == 1:
        n = floor(wt + 0.5)
        k = floor(wt * y + 0.5)
        a = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0)
        if k > 0:
            a += k * log(mu)
        if n - k > 0:
            a += (n - k) * log(1.0 - mu)
        return a
    elif fam == 2:
        a = -mu - lgamma(y + 1.0)
        if y > 0:
            a += y * log(mu)
        return wt * a
    elif fam == 3:
        a = 1.0 / (disp * disp)
        return wt * (-lgamma(a) - a * log(mu / a) + (a - 1.0) * log(y) - a * y / mu)
    elif fam == 4:
        s2 = disp * disp
        return wt * (-0.5 * (LOG_2PI + log(s2 * y * y * y)) - (y - mu) * (y - mu) / (2.0 * s2 * mu * mu * y))
    a = disp
    k = lgamma(y + a) - lgamma(a) - lgamma(y + 1.0) + a * log(a / (a + mu))
    if y > 0:
        k += y * log(mu / (a + mu))
    return wt * k


def link_inverse(int link, const double[::1] eta, double[::1] mu_out, double[::1] mu_eta_out):
    """mu_out = h(eta) and mu_eta_out = h'(eta) for the inverse link h (link code). Returns 0."""
    cdef Py_ssize_t i, n = eta.shape[0]
    cdef double d2
    with nogil:
        for i in range(n):
            link_inv3(link, eta[i], &mu_out[i], &mu_eta_out[i], &d2)
    return 0


def link_function(int link, const double[::1] mu, double[::1] eta_out):
    """eta_out = g(mu) for the link g. Returns 0."""
    cdef Py_ssize_t i, n = mu.shape[0]
    with nogil:
        for i in range(n):
            eta_out[i] = link_fun1(link, mu[i])
    return 0


def variance(int fam, const double[::1] mu, double disp, double[::1] v_out):
    """v_out = V(mu), the family's variance function (NB2: mu + mu^2 / disp). Returns 0."""
    cdef Py_ssize_t i, n = mu.shape[0]
    with nogil:
        for i in range(n):
            v_out[i] = variance1(fam, mu[i], disp)
    return 0


def dev_resids(int fam, const double[::1] y, const double[::1] mu, const double[::1] wt, double disp,
               double[::1] dev_out):
    """Unit deviances times prior weights (squared deviance residuals). Returns 0, or 1 for an invalid mean."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef int status = 0
    with nogil:
        for i in range(n):
            if not valid_mu1(fam, mu[i]):
                status = 1
            dev_out[i] = dev_resid1(fam, y[i], mu[i], wt[i], disp)
    return status


def loglik_terms(int fam, const double[::1] y, const double[::1] mu, const double[::1] wt, double disp,
                 double[::1] ll_out):
    """Per-observation log-likelihood with all normalising constants. Returns 0, or 1 for an invalid mean."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef int status = 0
    with nogil:
        for i in range(n):
            if not valid_mu1(fam, mu[i]):
                status = 1
            ll_out[i] = loglik1(fam, y[i], mu[i], wt[i], disp)
    return status


def pirls_terms(int fam, int link, const double[::1] y, const double[::1] eta, const double[::1] wt,
                double disp, double[::1] mu_out, double[::1] w_out, double[::1] r_out, double[::1] ll_out):
    """Everything one PIRLS iteration needs at the linear predictor eta.

    mu_out = h(eta); w_out = wt h'(eta)^2 / (phi V(mu)) (Fisher working weights on the log-likelihood
    scale); r_out = (y - mu) / h'(eta) (working residual); ll_out = log-likelihood terms.
    Returns 0, or 1 when a mean is outside the family's range or a value is not finite.
    """
    cdef Py_ssize_t i, n = y.shape[0]
    cdef int status = 0
    cdef double m, d1, d2, v, ph = phi1(fam, disp)
    with nogil:
        for i in range(n):
            link_inv3(link, eta[i], &m, &d1, &d2)
            mu_out[i] = m
            if not valid_mu1(fam, m) or d1 == 0.0:
                status = 1
                w_out[i] = 0.0
                r_out[i] = 0.0
                ll_out[i] = -1e300
                continue
            v = variance1(fam, m, disp)
            w_out[i] = wt[i] * d1 * d1 / (ph * v)
            r_out[i] = (y[i] - m) / d1
            ll_out[i] = loglik1(fam, y[i], m, wt[i], disp)
            if not isfinite(ll_out[i]):
                status = 1
    return status


def observed_weights(int fam, int link, const double[::1] y, const double[::1] eta, const double[::1] wt,
                     double disp, double[::1] w_out):
    """Observed information weights: w_out = -d^2 loglik_i / d eta^2.

    Equal to the Fisher weights for canonical links; for other links they add the term
    (y - mu) d/deta [h'(eta) / V(mu)] / phi. Returns 0, or 1 for an invalid mean.
    """
    cdef Py_ssize_t i, n = y.shape[0]
    cdef int status = 0
    cdef double m, d1, d2, v, dv, ph = phi1(fam, disp)
    with nogil:
        for i in range(n):
            link_inv3(link, eta[i], &m, &d1, &d2)
            if not valid_mu1(fam, m):
                status = 1
                w_out[i] = 0.0
                continue
            v = variance1(fam, m, disp)
            dv = dvariance1(fam, m, disp)
            w_out[i] = wt[i] / ph * (d1 * d1 / v - (y[i] - m) * (d2 / v - d1 * d1 * dv / (v * v)))
    return status
