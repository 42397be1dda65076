# Per-observation loops of the generalized linear model families: links, variances, deviance residuals,
# log-likelihood terms, and the working weights / working residuals of penalized IRLS.
#
# Families and links are the integer codes DIST_* and LINK_* of codes.pxi, generated from the enums Dist and
# Link of mixframe/families/codes.py; mixframe.families.glm.Family is the Python door to these loops.
#
# ``disp`` is the family's dispersion parameter as mixframe reports it: the SD for gaussian, the coefficient of
# variation for gamma, sigma (phi = sigma^2) for the inverse Gaussian, the size theta for NB2; ignored by the
# binomial and Poisson families. Every entry point returns 0, or 1 when a mean or weight is invalid.
#
# cython: language_level=3

include "family_core.pxi"


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
