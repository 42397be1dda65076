# Penalized IRLS for the conditional modes u of a GLMM at fixed (theta, beta), and the Laplace deviance.
#
# One call runs the whole iteration: the linear predictor eta = X beta + offset + Z Lambda u from the level
# codes, the family's means, weights and working residuals, the weighted cross-products and the blocked
# factor (mixframe._ext.blocked), the solve, and step halving on the penalized deviance. For canonical links
# the working weights are both the Fisher and the observed information, so the factor of the last iteration
# gives the Laplace log-determinant directly. The factor is used through its C interface (the cimported
# BlockedCholesky, declared in mixframe/_ext/blocked.pxd), so the iteration runs without the GIL.
#
# cython: language_level=3

cimport cython
from libc.math cimport fabs
from libc.string cimport memcpy

from mixframe._ext.blocked cimport BlockedCholesky

import numpy as np

include "family_core.pxi"


@cython.final
cdef class LaplacePirls:
    """Workspace for penalized IRLS on one design (see mixframe.fit.glmm_laplace for the Python driver)."""
    cdef BlockedCholesky chol
    cdef object sys
    cdef bint scalar
    cdef double[::1] l21, ebuf
    cdef int[:, ::1] lev             # scalar terms: each row's index into u for every term
    cdef double[:, ::1] zv           # scalar terms: each row's Z value for every term
    cdef int fam, link
    cdef Py_ssize_t n, q, q1, k0, nr
    cdef const double[::1] y, wt
    cdef const int[::1] code0, zr_off, r_off, r_k
    cdef const int[:, ::1] rcodes, pos
    cdef const double[:, ::1] Z0, ZR
    cdef double[::1] eta, eta_f, mu, w, r, u, u_new, u_try, b, lam0, lamR, dev
    cdef int[::1] lamR_off
    cdef double[:, ::1] E, ones     # the dense column of the cross-products: the working response, or 1
    cdef public double const_ll
    cdef public int iterations, halvings
    cdef public double tol, utol, slack
    cdef public int maxit, max_halvings

    def __init__(self, system, int fam, int link, const double[::1] y, const double[::1] wt,
                 double tol=1e-14, double utol=1e-10, int maxit=100, int max_halvings=40, double slack=1e-10):
        # the limits are those of mixframe.laplace.modes.ModeSettings (the generic solver's rule)
        cdef Py_ssize_t i, t
        cdef double s = 0.0
        self.sys = system
        self.chol = system.chol
        self.fam, self.link = fam, link
        self.y, self.wt = y, wt
        self.n = y.shape[0]
        self.q1 = system.q1
        self.q = system.q1 + system.q2
        self.k0 = system.k0
        self.code0, self.Z0 = system.code0, system.Z0
        self.rcodes, self.ZR = system.rcodes, system.ZR
        self.zr_off, self.r_off, self.r_k = system.zr_off, system.r_off, system.r_k
        self.pos = system.pos
        self.nr = self.r_k.shape[0]
        self.lamR_off = np.zeros(self.nr + 1, dtype=np.int32)
        for t in range(self.nr):
            self.lamR_off[t + 1] = self.lamR_off[t] + self.r_k[t] * self.r_k[t]
        n = self.n
        self.eta, self.eta_f, self.mu, self.w = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        self.r, self.dev = np.zeros(n), np.zeros(n)
        self.u, self.u_new, self.u_try, self.b = (np.zeros(self.q), np.zeros(self.q), np.zeros(self.q),
                                                  np.zeros(self.q))
        self.E, self.ones = np.zeros((n, 1)), np.ones((n, 1))
        self.lam0 = np.zeros(self.k0 * self.k0)
        self.lamR = np.zeros(self.lamR_off[self.nr])
        if self.chol.ne != 1 or self.chol.q1 != self.q1 or self.chol.q2 != self.q - self.q1:
            raise ValueError("the system must have the random effects of the design and one extra column")
        # -2 x the saturated log-likelihood: the Laplace deviance is sum(dev) + const_ll + u'u + log det
        for i in range(n):
            s += loglik1(fam, y[i], y[i], wt[i], 1.0)
        self.const_ll = -2.0 * s
        self.tol, self.utol, self.maxit = tol, utol, maxit
        self.max_halvings, self.slack = max_halvings, slack
        # all terms scalar: the cross-products are accumulated in one specialised pass
        self.scalar = self.k0 == 1 and self.nr <= 64 and all(self.r_k[t] == 1 for t in range(self.nr))
        if self.scalar:
            lev = np.empty((self.n, self.nr + 1), dtype=np.int32)
            zv = np.empty((self.n, self.nr + 1))
            lev[:, 0] = np.asarray(system.code0)
            zv[:, 0] = np.asarray(system.Z0)[:, 0]
            for t in range(self.nr):
                lev[:, t + 1] = self.q1 + system.r_off[t] + np.asarray(system.rcodes)[:, t]
                zv[:, t + 1] = np.asarray(system.ZR)[:, system.zr_off[t]]
            self.lev, self.zv = lev, zv
        self.l21 = np.zeros(max(self.chol.nnz, 1))       # L21 = LR' S on the pattern (scalar terms)
        self.ebuf = np.zeros(self.n)                      # e = -1/2 d dev / d eta at the mode

    def saturated(self, double disp):
        """-2 x the saturated log-likelihood at this dispersion (binomial and Poisson ignore it)."""
        cdef Py_ssize_t i
        cdef double s = 0.0
        for i in range(self.n):
            s += loglik1(self.fam, self.y[i], self.y[i], self.wt[i], disp)
        return -2.0 * s

    cdef void _b_from_u(self, double[::1] u) noexcept nogil:
        """b = Lambda u (block 1: lam0 per level; block 2: each term's factor per level)."""
        cdef Py_ssize_t j, a, c, t, lev, base, kt, lo, m
        cdef double s
        cdef Py_ssize_t k0 = self.k0
        for j in range(self.q1 // k0 if k0 > 0 else 0):
            for a in range(k0):
                s = 0.0
                for c in range(a + 1):
                    s += self.lam0[a * k0 + c] * u[j * k0 + c]
                self.b[j * k0 + a] = s
        for t in range(self.nr):
            kt = self.r_k[t]
            lo = self.lamR_off[t]
            if t + 1 < self.nr:
                m = (self.r_off[t + 1] - self.r_off[t]) // kt
            else:
                m = (self.q - self.q1 - self.r_off[t]) // kt
            for lev in range(m):
                base = self.q1 + self.r_off[t] + lev * kt
                for a in range(kt):
                    s = 0.0
                    for c in range(a + 1):
                        s += self.lamR[lo + a * kt + c] * u[base + c]
                    self.b[base + a] = s

    cdef double _state(self, double[::1] u, double disp) noexcept nogil:
        """eta, mu, weights, working residuals, the working response (E) and the deviance terms at u; returns
        the penalized deviance (sum of deviance residuals + u'u), or a huge value when a mean is invalid."""
        cdef Py_ssize_t i, a, t, kt
        cdef double e, m, d1, d2, v, ph = phi1(self.fam, disp), total = 0.0
        cdef Py_ssize_t k0 = self.k0, nt = self.nr + 1, n = self.n
        cdef int fam = self.fam, link = self.link
        cdef const double* eta_f = &self.eta_f[0]
        cdef const double* y = &self.y[0]
        cdef const double* wt = &self.wt[0]
        cdef double* eta = &self.eta[0]
        cdef double* mu = &self.mu[0]
        cdef double* w = &self.w[0]
        cdef double* r = &self.r[0]
        cdef double* dev = &self.dev[0]
        cdef double* z = &self.E[0, 0]
        cdef const double* b = &self.b[0]
        cdef const int* lv = NULL
        cdef const double* zp = NULL
        self._b_from_u(u)
        if self.scalar:
            lv = &self.lev[0, 0]
            zp = &self.zv[0, 0]
        for i in range(n):
            e = eta_f[i]
            if self.scalar:
                for t in range(nt):
                    e += zp[i * nt + t] * b[lv[i * nt + t]]
            else:
                for a in range(k0):
                    e += self.Z0[i, a] * b[self.code0[i] * k0 + a]
                for t in range(self.nr):
                    kt = self.r_k[t]
                    for a in range(kt):
                        e += self.ZR[i, self.zr_off[t] + a] * b[self.q1 + self.r_off[t] + self.rcodes[i, t] * kt + a]
            eta[i] = e
            link_inv3(link, e, &m, &d1, &d2)
            if not valid_mu1(fam, m) or d1 == 0.0:
                return 1e300
            mu[i] = m
            v = variance1(fam, m, disp)
            w[i] = wt[i] * d1 * d1 / (ph * v)
            r[i] = (y[i] - m) / d1
            z[i] = (e - eta_f[i]) + r[i]
            dev[i] = dev_resid1(fam, y[i], m, wt[i], disp)
            total += dev[i]
        for a in range(self.q):
            total += u[a] * u[a]
        return total

    def laplace(self, const double[::1] eta_f, const double[::1] lam0, const double[::1] lamR,
                double[::1] u0, double disp=1.0):
        """Run PIRLS from u0 (updated in place to the mode). Returns (status, penalized deviance incl. the
        saturated constant, log det). status: 0 ok, 1 invalid start, 2 factor failed, 3 no convergence."""
        cdef int st
        cdef double pdev = 0.0, ld = 0.0
        if (eta_f.shape[0] != self.n or lam0.shape[0] != self.lam0.shape[0] or u0.shape[0] != self.q
                or (self.lamR.shape[0] > 0 and lamR.shape[0] != self.lamR.shape[0])):
            raise ValueError("eta_f, lam0, lamR and u0 must match the design")
        with nogil:
            st = self._run(&eta_f[0], &lam0[0], &lamR[0] if self.lamR.shape[0] > 0 else NULL, &u0[0], disp,
                           &pdev, &ld)
        if st == 1 or st == 2:
            return st, np.inf, np.inf
        return st, pdev + self.const_ll, ld

    cdef int _run(self, const double* eta_f, const double* lam0, const double* lamR, double* u0, double disp,
                  double* pdev_out, double* ld_out) noexcept nogil:
        """The iteration of :meth:`laplace` (u0 is left alone unless the status is 0 or 3)."""
        cdef Py_ssize_t a, it, h, q = self.q
        cdef double pdev, pnew, step, dmax, change, bound
        cdef bint factor_current = False
        cdef int st
        cdef double lds[3]
        cdef double* u = &self.u[0]
        cdef double* u_new = &self.u_new[0]
        cdef double* u_try = &self.u_try[0]
        memcpy(&self.eta_f[0], eta_f, self.n * sizeof(double))
        memcpy(&self.lam0[0], lam0, self.lam0.shape[0] * sizeof(double))
        if self.lamR.shape[0] > 0:
            memcpy(&self.lamR[0], lamR, self.lamR.shape[0] * sizeof(double))
        memcpy(u, u0, q * sizeof(double))
        pdev = self._state(self.u, disp)
        if pdev >= 1e300:
            for a in range(q):
                u[a] = 0.0
            pdev = self._state(self.u, disp)
            if pdev >= 1e300:
                return 1
        self.halvings = 0
        st = 3
        for it in range(1, self.maxit + 1):
            self.iterations = it
            self._crossprods(self.E)
            if self.chol.factor_c(&self.lam0[0], &self.lamR[0] if self.lamR.shape[0] > 0 else NULL) != 0:
                return 2
            factor_current = True
            self.chol.solve_c(u_new, NULL)
            dmax = 0.0
            for a in range(q):
                if fabs(u_new[a] - u[a]) > dmax:
                    dmax = fabs(u_new[a] - u[a])
            if dmax < self.utol:
                st = 0
                break
            step = 1.0
            pnew = 1e300
            bound = pdev + self.slack * (fabs(pdev + self.const_ll) + 1.0)
            for h in range(self.max_halvings):
                for a in range(q):
                    u_try[a] = u[a] + step * (u_new[a] - u[a])
                pnew = self._state(self.u_try, disp)
                if pnew <= bound:
                    break
                step *= 0.5
                self.halvings += 1
            if not (pnew <= bound):
                pdev = self._state(self.u, disp)     # restore the state of the current u
                st = 0
                break
            memcpy(u, u_try, q * sizeof(double))
            change = pdev - pnew
            pdev = pnew
            factor_current = False
            if fabs(change) <= self.tol * (fabs(pnew + self.const_ll) + 1.0):
                st = 0
                break
        if not factor_current:
            self._crossprods(self.ones)
            if self.chol.factor_c(&self.lam0[0], &self.lamR[0] if self.lamR.shape[0] > 0 else NULL) != 0:
                return 2
        self.chol.logdets_c(lds)
        memcpy(u0, u, q * sizeof(double))
        pdev_out[0] = pdev
        ld_out[0] = lds[0]
        return st

    cdef void _crossprods(self, double[:, ::1] E) noexcept nogil:
        """Install A = [Z E]' W [Z E] in the factor at the current weights, for the one extra column E (n x 1:
        the working response, or 1 when only the Z block is needed)."""
        if self.scalar:
            self.chol.crossprod_scalar_c(self.code0, self.Z0, self.rcodes, self.ZR, self.zr_off, self.pos,
                                         &E[0, 0], &self.w[0])
        else:
            self.chol.crossprod_c(self.code0, self.Z0, self.rcodes, self.ZR, self.zr_off, self.pos, E, self.w)

    def arrays(self):
        """Copies of (eta, mu, w) at the mode of the last call."""
        return np.asarray(self.eta).copy(), np.asarray(self.mu).copy(), np.asarray(self.w).copy()

    def scalar_gradient(self, double disp, double[::1] r_out, double[::1] g_theta):
        """Analytic gradient pieces of the Laplace deviance at the mode of the last ``laplace`` call, for a
        canonical link and scalar random-effect terms (see mixframe.fit.glmm_grad for the formulas).

        Fills g_theta (one entry per term, block-1 term first) and r_out (n,) with s - 2e, so that the
        gradient in beta is X' r_out. The factor left by ``laplace`` (at the mode's weights) is used."""
        if not self.scalar:
            raise ValueError("the analytic gradient needs scalar random-effect terms (at most 65)")
        cdef Py_ssize_t n = self.n, q1 = self.q1, q2 = self.q - self.q1, nr = self.nr, m0 = self.q1
        cdef Py_ssize_t i, j, r, t, s_, rt, rs
        cdef double v0, vt, hi, m, d1, d2, var, dvar, ph, acc, lam
        cdef double[:, ::1] P = np.empty((q2, q2))
        cdef double[::1] lamt = np.empty(nr + 1)
        cdef double[::1] x = self.l21
        cdef double[::1] Bp = np.empty(self.l21.shape[0])
        cdef double[::1] dinv = np.empty(self.q)
        cdef double[::1] a = np.empty(n)
        cdef double[::1] e = self.ebuf
        cdef double[::1] c = np.zeros(self.q)
        cdef double[::1] trs = np.zeros(nr + 1)
        cdef int info = 0
        cdef Py_ssize_t nt = nr + 1, base
        cdef double ai
        cdef double gt[65]
        cdef int fam = self.fam, link = self.link
        cdef bint canon = ((fam == DIST_BINOMIAL and link == LINK_LOGIT)
                           or (fam == DIST_POISSON and link == LINK_LOG))
        cdef const int* lv = &self.lev[0, 0]
        cdef const double* zp = &self.zv[0, 0]
        cdef const int* posp = &self.pos[0, 0] if nr > 0 else NULL
        cdef double* Pp = &P[0, 0] if q2 > 0 else NULL
        cdef const double* etap = &self.eta[0]
        cdef const double* mup = &self.mu[0]
        cdef const double* wp = &self.w[0]
        cdef const double* up = &self.u[0]
        cdef const double* yp = &self.y[0]
        cdef const double* wtp = &self.wt[0]
        lamt[0] = self.lam0[0]
        for t in range(nr):
            lamt[t + 1] = self.lamR[t]
        with nogil:
            ph = phi1(self.fam, disp)
            # from the factor: P = M22^{-1} (whole), the diagonal dinv of M^{-1} (level j of block 1:
            # (1 + x_j' P x_j) / l_j^2 with l_j = L11_j and x_j its column of L21), the entries
            # M^{-1}_{jr} = -(P x_j)_r / l_j on the pattern (Bp), and x = L21 on the pattern
            info = self.chol.m_inverse_scalar_c(Pp, &x[0], &dinv[0], &Bp[0])
            for j in range(m0):
                trs[0] += dinv[j]
            for r in range(q2):
                trs[1 + self._term_of_row(r)] += dinv[q1 + r]
            # leverages h_i, a_i = h_i dw_i/deta_i and the right-hand side Lambda'Z'a
            for i in range(n):
                base = i * nt
                j = lv[base]
                v0 = lamt[0] * zp[base]
                hi = v0 * v0 * dinv[j]
                for t in range(1, nt):
                    rt = lv[base + t] - q1
                    vt = lamt[t] * zp[base + t]
                    hi += 2.0 * v0 * vt * Bp[posp[i * nr + t - 1]] + vt * vt * Pp[rt * q2 + rt]
                    for s_ in range(1, t):
                        rs = lv[base + s_] - q1
                        hi += 2.0 * vt * lamt[s_] * zp[base + s_] * Pp[rt * q2 + rs]
                if canon:
                    # canonical link: dmu/deta = V(mu), so dw/deta = wt mu'' and e = wt (y - mu)
                    m = mup[i]
                    if fam == DIST_BINOMIAL:
                        d1 = m * (1.0 - m)
                        d2 = (d1 if d1 > EPS else EPS) * (1.0 - 2.0 * m)     # as link_inv3 bounds it
                    else:
                        d2 = m
                    ai = hi * wtp[i] * d2
                    e[i] = wtp[i] * (yp[i] - m)
                else:
                    link_inv3(link, etap[i], &m, &d1, &d2)
                    var = variance1(fam, m, disp)
                    dvar = dvariance1(fam, m, disp)
                    ai = hi * wtp[i] * (2.0 * d1 * d2 / var - d1 * d1 * d1 * dvar / (var * var)) / ph
                    e[i] = wtp[i] * (yp[i] - mup[i]) * d1 / (var * ph)
                a[i] = ai
                for t in range(nt):
                    c[lv[base + t]] += lamt[t] * zp[base + t] * ai
            # c = M^{-1} c
            self.chol.msolve_scalar_c(&c[0], &x[0])
            # r = a - W Z Lambda c - 2e ; theta parts
            for t in range(nt):
                gt[t] = 0.0
            for i in range(n):
                base = i * nt
                acc = 0.0
                for t in range(nt):
                    acc += lamt[t] * zp[base + t] * c[lv[base + t]]
                hi = a[i] - wp[i] * acc - 2.0 * e[i]
                r_out[i] = hi
                for t in range(nt):
                    rt = lv[base + t]
                    gt[t] += zp[base + t] * (hi * up[rt] + c[rt] * e[i])
            for t in range(nt):
                g_theta[t] = gt[t]
            for t in range(nr + 1):
                lam = lamt[t]
                if lam != 0.0:
                    g_theta[t] += 2.0 * (self._term_levels(t) - trs[t]) / lam
        return info

    def mode_sensitivity(self, const double[:, ::1] X, double[:, ::1] J):
        """d u_hat / d (theta, beta) at the mode of the last ``laplace`` + ``scalar_gradient`` calls (scalar
        terms, canonical link): row c of J (n_terms + p rows, q columns) solves
        M J_c = Lambda_c'Z'e - Lambda'Z'W (X_c + Z Lambda_c u_hat), the implicit-function derivative of the
        mode's equation Lambda'Z'e = u (M^{-1} applied by the factor, with L21 from ``scalar_gradient``)."""
        cdef Py_ssize_t n = self.n, q1 = self.q1, nr = self.nr, p = X.shape[1], nt = self.nr + 1
        cdef Py_ssize_t i, t, l, c, lev_t, lev_l
        cdef double wi, zt, zl, s_t, lam_l
        cdef double[::1] lamt = np.empty(nt)
        lamt[0] = self.lam0[0]
        for t in range(nr):
            lamt[t + 1] = self.lamR[t]
        cdef const int* lv = &self.lev[0, 0]
        cdef const double* zp = &self.zv[0, 0]
        cdef const double* Xp = &X[0, 0] if p > 0 else NULL
        cdef double* Jp = &J[0, 0]
        cdef Py_ssize_t q = self.q, base
        cdef double lz[65]
        J[:, :] = 0.0
        with nogil:
            for i in range(n):
                base = i * nt
                wi = self.w[i]
                for l in range(nt):
                    lz[l] = lamt[l] * zp[base + l] * wi
                for t in range(nt):
                    lev_t = lv[base + t]
                    zt = zp[base + t]
                    s_t = zt * self.u[lev_t]                  # (Z E_t u_hat)_i
                    Jp[t * q + lev_t] += zt * self.ebuf[i]     # E_t'Z'e
                    for l in range(nt):
                        Jp[t * q + lv[base + l]] -= lz[l] * s_t
                for l in range(nt):
                    lev_l = lv[base + l]
                    for c in range(p):
                        Jp[(nt + c) * q + lev_l] -= lz[l] * Xp[i * p + c]
            for c in range(nt + p):
                self.chol.msolve_scalar_c(&J[c, 0], &self.l21[0])

    cdef inline Py_ssize_t _term_of_row(self, Py_ssize_t r) noexcept nogil:
        """The block-2 term (0-based among the R terms) of a block-2 row (scalar terms)."""
        cdef Py_ssize_t t = self.nr - 1
        while t > 0 and r < self.r_off[t]:
            t -= 1
        return t

    cdef inline double _term_levels(self, Py_ssize_t t) noexcept nogil:
        """Number of levels of term t (0: block 1; t > 0: the (t-1)-th R term), scalar terms."""
        if t == 0:
            return <double>self.q1
        if t < self.nr:
            return <double>(self.r_off[t] - self.r_off[t - 1])
        return <double>(self.q - self.q1 - self.r_off[t - 1])
