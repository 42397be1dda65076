# Penalized IRLS for the conditional modes u of a GLMM at fixed (theta, beta), and the Laplace deviance.
#
# One call runs the whole iteration: the linear predictor eta = X beta + offset + Z Lambda u from the level
# codes, the family's means, weights and working residuals, the weighted cross-products and the blocked
# factor (mixframe._ext.blocked), the solve, and step halving on the penalized deviance. For canonical links
# the working weights are both the Fisher and the observed information, so the factor of the last iteration
# gives the Laplace log-determinant directly.
#
# cython: language_level=3

cimport cython
from libc.math cimport fabs
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dtrsv
from scipy.linalg.cython_lapack cimport dpotri

import numpy as np

include "family_core.pxi"


@cython.final
cdef class LaplacePirls:
    """Workspace for penalized IRLS on one design (see mixframe.fit.glmm_laplace for the Python driver)."""
    cdef object chol, sys
    cdef bint scalar
    cdef double[::1] l21, ebuf
    cdef int[:, ::1] lev             # scalar terms: each row's index into u for every term
    cdef double[:, ::1] zv           # scalar terms: each row's Z value for every term
    cdef double[:, :, ::1] A11
    cdef double[:, ::1] A21, A22, AE1, AER, AEE
    cdef int fam, link
    cdef Py_ssize_t n, q, q1, k0, nr
    cdef const double[::1] y, wt
    cdef const int[::1] code0, zr_off, r_off, r_k
    cdef const int[:, ::1] rcodes, pos
    cdef const int[::1] a21_ptr, a21_row
    cdef const double[:, ::1] Z0, ZR
    cdef double[::1] eta, eta_f, mu, w, r, z, u, u_new, u_try, b, lam0, lamR, dev
    cdef int[::1] lamR_off
    cdef double[:, ::1] E
    cdef double[::1] empty_beta
    cdef object head, E_obj, w_obj, lam0_obj, lamR_obj, u_new_obj, beta_obj
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
        self.pos, self.a21_ptr, self.a21_row = system.pos, system.a21_ptr, system.a21_row
        self.nr = self.r_k.shape[0]
        self.lamR_off = np.zeros(self.nr + 1, dtype=np.int32)
        for t in range(self.nr):
            self.lamR_off[t + 1] = self.lamR_off[t] + self.r_k[t] * self.r_k[t]
        n = self.n
        self.eta, self.eta_f, self.mu, self.w = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        self.r, self.z, self.dev = np.zeros(n), np.zeros(n), np.zeros(n)
        self.u, self.u_new, self.u_try, self.b = (np.zeros(self.q), np.zeros(self.q), np.zeros(self.q),
                                                  np.zeros(self.q))
        self.E = np.zeros((n, 1))
        self.empty_beta = np.zeros(0)
        self.lam0 = np.zeros(self.k0 * self.k0)
        self.lamR = np.zeros(self.lamR_off[self.nr])
        # -2 x the saturated log-likelihood: the Laplace deviance is sum(dev) + const_ll + u'u + log det
        for i in range(n):
            s += loglik1(fam, y[i], y[i], wt[i], 1.0)
        self.const_ll = -2.0 * s
        # numpy objects handed to the factor's methods (no memoryview re-wrapping per call)
        self.head = (system.code0, system.Z0, system.rcodes, system.ZR, system.zr_off, system.pos)
        self.E_obj, self.w_obj = np.asarray(self.E), np.asarray(self.w)
        self.lam0_obj, self.lamR_obj = np.asarray(self.lam0), np.asarray(self.lamR)
        self.u_new_obj, self.beta_obj = np.asarray(self.u_new), np.asarray(self.empty_beta)
        self.tol, self.utol, self.maxit = tol, utol, maxit
        self.max_halvings, self.slack = max_halvings, slack
        # all terms scalar: the cross-products are accumulated here, in one specialised pass
        self.scalar = (self.k0 == 1 and self.nr <= 64 and all(self.r_k[t] == 1 for t in range(self.nr))
                       and system.chol.ne == 1)
        self.A11, self.A21, self.A22 = self.chol.A11, self.chol.A21, self.chol.A22
        self.AE1, self.AER, self.AEE = self.chol.AE1, self.chol.AER, self.chol.AEE
        if self.scalar:
            lev = np.empty((self.n, self.nr + 1), dtype=np.int32)
            zv = np.empty((self.n, self.nr + 1))
            lev[:, 0] = np.asarray(system.code0)
            zv[:, 0] = np.asarray(system.Z0)[:, 0]
            for t in range(self.nr):
                lev[:, t + 1] = self.q1 + system.r_off[t] + np.asarray(system.rcodes)[:, t]
                zv[:, t + 1] = np.asarray(system.ZR)[:, system.zr_off[t]]
            self.lev, self.zv = lev, zv
        self.l21 = np.zeros(self.a21_row.shape[0])       # L21 = LR' S on the pattern (scalar terms)
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
        """eta, mu, weights, working residuals and deviance terms at u; returns the penalized deviance
        (sum of deviance residuals + u'u), or a huge value when a mean is invalid."""
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
            dev[i] = dev_resid1(fam, y[i], m, wt[i], disp)
            total += dev[i]
        for a in range(self.q):
            total += u[a] * u[a]
        return total

    def laplace(self, const double[::1] eta_f, const double[::1] lam0, const double[::1] lamR,
                double[::1] u0, double disp=1.0):
        """Run PIRLS from u0 (updated in place to the mode). Returns (status, penalized deviance incl. the
        saturated constant, log det). status: 0 ok, 1 invalid start, 2 factor failed, 3 no convergence."""
        cdef Py_ssize_t i, a, it, h
        cdef double pdev, pnew, step, dmax, ld, change, bound
        cdef bint factor_current = False
        cdef int st
        self.eta_f[:] = eta_f
        self.lam0[:] = lam0
        if self.lamR.shape[0] > 0:
            self.lamR[:] = lamR
        self.u[:] = u0
        pdev = self._state(self.u, disp)
        if pdev >= 1e300:
            self.u[:] = 0.0
            pdev = self._state(self.u, disp)
            if pdev >= 1e300:
                return 1, np.inf, np.inf
        self.halvings = 0
        st = 3
        for it in range(1, self.maxit + 1):
            self.iterations = it
            if self.scalar:
                self._crossprod_scalar(False)
            else:
                for i in range(self.n):
                    self.E[i, 0] = (self.eta[i] - self.eta_f[i]) + self.r[i]
                self.chol.set_crossprod(*self.head, self.E_obj, self.w_obj)
            if self.chol.update(self.lam0_obj, self.lamR_obj) != 0:
                return 2, np.inf, np.inf
            factor_current = True
            self.chol.solve(self.u_new_obj, self.beta_obj)
            dmax = 0.0
            for a in range(self.q):
                if fabs(self.u_new[a] - self.u[a]) > dmax:
                    dmax = fabs(self.u_new[a] - self.u[a])
            if dmax < self.utol:
                st = 0
                break
            step = 1.0
            pnew = 1e300
            bound = pdev + self.slack * (fabs(pdev + self.const_ll) + 1.0)
            for h in range(self.max_halvings):
                for a in range(self.q):
                    self.u_try[a] = self.u[a] + step * (self.u_new[a] - self.u[a])
                pnew = self._state(self.u_try, disp)
                if pnew <= bound:
                    break
                step *= 0.5
                self.halvings += 1
            if not (pnew <= bound):
                pdev = self._state(self.u, disp)     # restore the state of the current u
                st = 0
                break
            self.u[:] = self.u_try
            change = pdev - pnew
            pdev = pnew
            factor_current = False
            if fabs(change) <= self.tol * (fabs(pnew + self.const_ll) + 1.0):
                st = 0
                break
        if not factor_current:
            if self.scalar:
                self._crossprod_scalar(True)
            else:
                for i in range(self.n):
                    self.E[i, 0] = 1.0
                self.chol.set_crossprod(*self.head, self.E_obj, self.w_obj)
            if self.chol.update(self.lam0_obj, self.lamR_obj) != 0:
                return 2, np.inf, np.inf
        ld = self.chol.logdets()[0]
        u0[:] = self.u
        return st, pdev + self.const_ll, ld

    cdef void _crossprod_scalar(self, bint unit_e) noexcept nogil:
        """A = [Z E]' W [Z E] for scalar terms and the one extra column E (the working response, or 1 when
        only the Z block is needed), accumulated straight into the factor's cross-product arrays."""
        cdef Py_ssize_t i, t, s_, j, rt, q1 = self.q1, q2 = self.q - self.q1, nr = self.nr
        cdef Py_ssize_t nnz = self.A21.shape[0]
        cdef double wi, z0, ei, wz, v, aee = 0.0
        cdef double* a11 = &self.A11[0, 0, 0]
        cdef double* ae1 = &self.AE1[0, 0]
        cdef double* a21 = NULL
        cdef double* a22 = NULL
        cdef double* aer = NULL
        cdef double zr[64]
        cdef double zz[64]
        cdef Py_ssize_t rr[64]
        memset(a11, 0, q1 * sizeof(double))
        memset(ae1, 0, q1 * sizeof(double))
        if nnz > 0:
            a21 = &self.A21[0, 0]
            memset(a21, 0, nnz * sizeof(double))
        if q2 > 0:
            a22 = &self.A22[0, 0]
            aer = &self.AER[0, 0]
            memset(a22, 0, q2 * q2 * sizeof(double))
            memset(aer, 0, q2 * sizeof(double))
        for i in range(self.n):
            wi = self.w[i]
            j = self.code0[i]
            z0 = self.Z0[i, 0]
            ei = 1.0 if unit_e else (self.eta[i] - self.eta_f[i]) + self.r[i]
            wz = wi * z0
            a11[j] += wz * z0
            ae1[j] += wz * ei
            aee += wi * ei * ei
            for t in range(nr):
                zz[t] = self.ZR[i, self.zr_off[t]]
                zr[t] = wi * zz[t]
                rt = self.r_off[t] + self.rcodes[i, t]
                rr[t] = rt
                a21[self.pos[i, t]] += zr[t] * z0
                aer[rt] += zr[t] * ei
                a22[rt * q2 + rt] += zr[t] * zz[t]
                for s_ in range(t):
                    v = zr[t] * zz[s_]
                    a22[rt * q2 + rr[s_]] += v
                    a22[rr[s_] * q2 + rt] += v
        self.AEE[0, 0] = aee

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
        cdef Py_ssize_t i, j, e1, r, t, s_, rt, rs
        cdef double v0, vt, hi, m, d1, d2, var, dvar, ph, acc, lam
        cdef double[:, :, ::1] L11 = self.chol.L11
        cdef double[:, ::1] S = self.chol.S
        cdef double[:, ::1] P = np.array(self.chol.L22, copy=True)
        cdef double[:, ::1] L22 = self.chol.L22
        cdef double[::1] lamt = np.empty(nr + 1)
        cdef double[::1] x = self.l21
        cdef double[::1] Bp = np.empty(self.a21_row.shape[0])
        cdef double[::1] ycol = np.empty(max(q2, 1))
        cdef double[::1] dinv = np.empty(self.q)
        cdef double[::1] a = np.empty(n)
        cdef double[::1] e = self.ebuf
        cdef double[::1] c = np.zeros(self.q)
        cdef double[::1] trs = np.zeros(nr + 1)
        cdef int info = 0, nq2 = <int>q2, inc = 1
        cdef char uplo = b'U'
        cdef Py_ssize_t nt = nr + 1, base
        cdef double ai
        cdef double gt[65]
        cdef int fam = self.fam, link = self.link
        cdef bint canon = ((fam == DIST_BINOMIAL and link == LINK_LOGIT)
                           or (fam == DIST_POISSON and link == LINK_LOG))
        cdef const int* lv = &self.lev[0, 0]
        cdef const double* zp = &self.zv[0, 0]
        cdef const int* posp = &self.pos[0, 0] if nr > 0 else NULL
        cdef const double* Pp = &P[0, 0] if q2 > 0 else NULL
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
            # P = M22^{-1} = (L22 L22')^{-1}; C-lower L22 is Fortran-upper, and so is the result
            if q2 > 0:
                dpotri(&uplo, &nq2, &P[0, 0], &nq2, &info)
                for r in range(q2):
                    for rs in range(r + 1, q2):
                        P[r, rs] = P[rs, r]
            # per level j of block 1 (L11 = l_j, L21 column x on the pattern):
            # d_j = (1 + x_j' P x_j) / l_j^2 ; M^{-1}_{jr} = -(P x_j)_r / l_j on the pattern
            for j in range(m0):
                if q2 > 0 and self.a21_ptr[j + 1] > self.a21_ptr[j]:
                    for r in range(q2):
                        ycol[r] = 0.0
                    for e1 in range(self.a21_ptr[j], self.a21_ptr[j + 1]):
                        rt = self.a21_row[e1]
                        x[e1] = S[e1, 0] * lamt[1 + self._term_of_row(rt)]
                        for r in range(q2):
                            ycol[r] += x[e1] * Pp[rt * q2 + r]
                    acc = 0.0
                    for e1 in range(self.a21_ptr[j], self.a21_ptr[j + 1]):
                        rt = self.a21_row[e1]
                        acc += x[e1] * ycol[rt]
                        Bp[e1] = -ycol[rt] / L11[j, 0, 0]
                    dinv[j] = (1.0 + acc) / (L11[j, 0, 0] * L11[j, 0, 0])
                else:
                    dinv[j] = 1.0 / (L11[j, 0, 0] * L11[j, 0, 0])
                trs[0] += dinv[j]
            for r in range(q2):
                dinv[q1 + r] = P[r, r]
                trs[1 + self._term_of_row(r)] += P[r, r]
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
            self._msolve(&c[0], L11, L22)
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

    cdef void _msolve(self, double* c, double[:, :, ::1] L11, double[:, ::1] L22) noexcept nogil:
        """c <- M^{-1} c with the current factor (scalar terms; L21 from the last scalar_gradient call):
        forward through L11, L21, L22, then backward."""
        cdef Py_ssize_t j, e1, m0 = self.q1, q1 = self.q1, q2 = self.q - self.q1
        cdef int nq2 = <int>q2, inc = 1
        cdef char uplo = b'U', tr_t = b'T', tr_n = b'N', diag_n = b'N'
        for j in range(m0):
            c[j] /= L11[j, 0, 0]
        if q2 > 0:
            for j in range(m0):
                for e1 in range(self.a21_ptr[j], self.a21_ptr[j + 1]):
                    c[q1 + self.a21_row[e1]] -= self.l21[e1] * c[j]
            dtrsv(&uplo, &tr_t, &diag_n, &nq2, &L22[0, 0], &nq2, &c[q1], &inc)
            dtrsv(&uplo, &tr_n, &diag_n, &nq2, &L22[0, 0], &nq2, &c[q1], &inc)
            for j in range(m0):
                for e1 in range(self.a21_ptr[j], self.a21_ptr[j + 1]):
                    c[j] -= self.l21[e1] * c[q1 + self.a21_row[e1]]
        for j in range(m0):
            c[j] /= L11[j, 0, 0]

    def mode_sensitivity(self, const double[:, ::1] X, double[:, ::1] J):
        """d u_hat / d (theta, beta) at the mode of the last ``laplace`` + ``scalar_gradient`` calls (scalar
        terms, canonical link): row c of J (n_terms + p rows, q columns) solves
        M J_c = Lambda_c'Z'e - Lambda'Z'W (X_c + Z Lambda_c u_hat), the implicit-function derivative of the
        mode's equation Lambda'Z'e = u."""
        cdef Py_ssize_t n = self.n, q1 = self.q1, nr = self.nr, p = X.shape[1], nt = self.nr + 1
        cdef Py_ssize_t i, t, l, c, lev_t, lev_l
        cdef double wi, zt, zl, s_t, lam_l
        cdef double[::1] lamt = np.empty(nt)
        cdef double[:, :, ::1] L11 = self.chol.L11
        cdef double[:, ::1] L22 = self.chol.L22
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
                self._msolve(&J[c, 0], L11, L22)

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
