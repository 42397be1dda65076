# The profiled LMM deviance with its exact gradient and Hessian in theta, for a model whose random effects are
# one term (k effects per level, m levels): the penalized system has only its block-diagonal Z block.
#
# Per level j, with A = Z_j'WZ_j (k x k), C = E'WZ_j (ne x k; E = [X y]) and Lambda lower-triangular,
#
#     M = Lambda'A Lambda + I = L L',   G = Lambda'C',   H = M^{-1} G,   S = E'WE - sum_j G'H,
#
# log|Z block| = sum_j log|M|; S is the Schur complement of [X y], whose fixed-effects block S_pp gives
# log|R_X|^2 = log|S_pp| and whose response row the penalized RSS r^2 = v'Sv, v = (-beta, 1),
# beta = S_pp^{-1} S_py. theta_i is the element (r_i, c_i) of Lambda; with E_i = e_{r_i} e_{c_i}',
#
#     M_i  = E_i'A Lambda + Lambda'A E_i,       M_il = A[r_i, r_l] (e_{c_i} e_{c_l}' + e_{c_l} e_{c_i}'),
#     d log|M|  = tr(M^{-1} M_i),               d2 log|M| = tr(M^{-1} M_il) - tr(M^{-1} M_i M^{-1} M_l),
#     dS_i  = -(G_i'H + H'R_i),                 d2S_il = -(R_i'M^{-1}R_l + R_l'M^{-1}R_i - H'M_il H),
#
# where G_i = E_i'C' (its row c_i is C[:, r_i]') and R_i = G_i - M_i H. The second derivatives of S enter
# only through v'd2S_il v and the trace of S_pp^{-1} d2S_il, which are summed level by level once v and
# S_pp^{-1} are known (a second pass), so the cost is O(m (ntheta k ne^2 + ntheta^2 k ne)), independent of n.
# Then (beta profiled out, as an envelope)
#
#     d r^2 = v'S_i v,      d2 r^2 = v'S_il v - 2 (S_i v)_p' S_pp^{-1} (S_l v)_p,
#     d log|S_pp| = tr(S_pp^{-1} S_i),   d2 log|S_pp| = tr(S_pp^{-1} S_il) - tr(S_pp^{-1} S_i S_pp^{-1} S_l),
#
# and the deviance is log|L_Z|^2 + log|S_pp| + (n - p) (1 + log(2 pi r^2 / (n - p))) (REML) or
# log|L_Z|^2 + n (1 + log(2 pi r^2 / n)) (ML), less the sum of the log prior weights.
#
# cython: language_level=3

cimport cython
from libc.math cimport INFINITY, M_PI, log, sqrt

import numpy as np


cdef int _chol(double* M, Py_ssize_t k, Py_ssize_t ld) noexcept nogil:
    """In-place lower Cholesky of a k x k block with row stride ld (upper part zeroed). 0 or the failing pivot."""
    cdef Py_ssize_t i, j, l
    cdef double s
    for j in range(k):
        s = M[j * ld + j]
        for l in range(j):
            s -= M[j * ld + l] * M[j * ld + l]
        if s <= 0.0:
            return <int>(j + 1)
        s = sqrt(s)
        M[j * ld + j] = s
        for i in range(j + 1, k):
            for l in range(j):
                M[i * ld + j] -= M[i * ld + l] * M[j * ld + l]
            M[i * ld + j] /= s
        for i in range(j):
            M[i * ld + j] = 0.0
    return 0


cdef void _spd_inverse(const double* L, double* Linv, double* out, Py_ssize_t k) noexcept nogil:
    """out = (L L')^{-1} from a lower Cholesky factor L (k x k); Linv receives L^{-1}."""
    cdef Py_ssize_t i, j, l
    cdef double s
    for j in range(k):
        for i in range(k):
            Linv[i * k + j] = 0.0
        Linv[j * k + j] = 1.0 / L[j * k + j]
        for i in range(j + 1, k):
            s = 0.0
            for l in range(j, i):
                s -= L[i * k + l] * Linv[l * k + j]
            Linv[i * k + j] = s / L[i * k + i]
    for i in range(k):
        for j in range(k):
            s = 0.0
            for l in range(i if i > j else j, k):
                s += Linv[l * k + i] * Linv[l * k + j]
            out[i * k + j] = s


@cython.final
cdef class OneBlockDeviance:
    """The profiled deviance of a one-term LMM from its cross-products, with exact derivatives.

    Parameters: the cross-products A11 (m, k, k), AE1 (ne, m k), AEE (ne, ne) (kept by reference: refresh
    nothing, they are read at each call), the position (rows[i], cols[i]) of each theta in the relative
    factor, the number of observations n, whether the criterion is REML, and the sum of the log prior weights.
    """
    cdef const double[:, :, ::1] A11
    cdef const double[:, ::1] AE1, AEE
    cdef int[::1] rows, cols
    cdef Py_ssize_t m, k, ne, nt, p
    cdef double n, log_w
    cdef bint reml
    # workspace
    cdef double[::1] lam, T, M, Li, Mi, G, H, R, Hv, S, Lp, Lpi, P, v, Sv, dr2, gz
    cdef double[:, ::1] Md, N, Rt, Rtv, RtP, HP, hz, a2, b2, W
    cdef double[:, :, ::1] dS

    def __init__(self, const double[:, :, ::1] A11, const double[:, ::1] AE1, const double[:, ::1] AEE,
                 int[::1] rows, int[::1] cols, double n, bint reml, double log_w):
        self.A11, self.AE1, self.AEE = A11, AE1, AEE
        self.rows, self.cols = rows, cols
        self.m, self.k, self.ne, self.nt = A11.shape[0], A11.shape[1], AEE.shape[0], rows.shape[0]
        self.p = self.ne - 1
        self.n, self.reml, self.log_w = n, reml, log_w
        k, ne, nt, p = self.k, self.ne, self.nt, max(self.p, 1)
        self.lam, self.T, self.M, self.Li, self.Mi = (np.zeros(k * k) for _ in range(5))
        self.G, self.H, self.R = (np.zeros(k * ne) for _ in range(3))
        self.Hv = np.zeros(k)
        self.S = np.zeros(ne * ne)
        self.Lp, self.Lpi, self.P = (np.zeros(p * p) for _ in range(3))
        self.v = np.zeros(ne)
        self.Sv = np.zeros(nt * ne)
        self.dr2 = np.zeros(nt)
        self.gz = np.zeros(nt)
        self.Md, self.N = np.zeros((nt, k * k)), np.zeros((nt, k * k))
        self.Rt, self.Rtv = np.zeros((nt, k * ne)), np.zeros((nt, k))
        self.RtP, self.HP = np.zeros((nt, k * p)), np.zeros((k, p))
        self.hz, self.a2, self.b2 = np.zeros((nt, nt)), np.zeros((nt, nt)), np.zeros((nt, nt))
        self.W = np.zeros((nt, p * p))
        self.dS = np.zeros((nt, ne, ne))

    def deviance(self, const double[::1] theta):
        """The profiled deviance at theta (inf where the system is not positive definite)."""
        cdef double f
        with nogil:
            f = self._value(theta)
        return f

    def derivatives(self, const double[::1] theta, double[::1] grad, double[:, ::1] hess):
        """The profiled deviance at theta, its gradient into ``grad`` and Hessian into ``hess``."""
        cdef double f
        with nogil:
            f = self._value(theta)
            if f != INFINITY:
                self._derivs(grad, hess)
        return f

    # ---------------------------------------------------------------------------------------------
    cdef int _level(self, Py_ssize_t j) noexcept nogil:
        """M = L L' (L in self.M), L^{-1}, M^{-1}, G and H of level j; 0 or non-zero if M is not definite."""
        cdef Py_ssize_t k = self.k, ne = self.ne, mk = self.AE1.shape[1], a, b, c, d
        cdef double s
        cdef const double* A = &self.A11[j, 0, 0]
        cdef const double* C = &self.AE1[0, 0] + j * k        # C[d, c] = C[d * mk + c]
        cdef double* lam = &self.lam[0]
        cdef double* T = &self.T[0]
        cdef double* M = &self.M[0]
        cdef double* Mi = &self.Mi[0]
        cdef double* G = &self.G[0]
        cdef double* H = &self.H[0]
        for a in range(k):                           # T = A Lambda
            for b in range(k):
                s = 0.0
                for c in range(b, k):
                    s = s + A[a * k + c] * lam[c * k + b]
                T[a * k + b] = s
        for a in range(k):                           # M = Lambda'T + I
            for b in range(k):
                s = 1.0 if a == b else 0.0
                for c in range(a, k):
                    s = s + lam[c * k + a] * T[c * k + b]
                M[a * k + b] = s
        if _chol(M, k, k) != 0:
            return 1
        _spd_inverse(M, &self.Li[0], Mi, k)
        for a in range(k):                           # G = Lambda'C'
            for d in range(ne):
                s = 0.0
                for c in range(a, k):
                    s = s + lam[c * k + a] * C[d * mk + c]
                G[a * ne + d] = s
        for a in range(k):                           # H = M^{-1} G
            for d in range(ne):
                s = 0.0
                for b in range(k):
                    s = s + Mi[a * k + b] * G[b * ne + d]
                H[a * ne + d] = s
        return 0

    cdef double _value(self, const double[::1] theta) noexcept nogil:
        cdef Py_ssize_t k = self.k, ne = self.ne, p = self.p, j, a, d, e, i
        cdef double s, ldz = 0.0, ldx = 0.0, r2, dof
        cdef double* lam = &self.lam[0]
        cdef double* S = &self.S[0]
        cdef double* M = &self.M[0]
        cdef double* G = &self.G[0]
        cdef double* H = &self.H[0]
        cdef double* Lp = &self.Lp[0]
        cdef double* P = &self.P[0]
        cdef double* v = &self.v[0]
        for a in range(k * k):
            lam[a] = 0.0
        for i in range(self.nt):
            lam[self.rows[i] * k + self.cols[i]] = theta[i]
        for d in range(ne):
            for e in range(ne):
                S[d * ne + e] = self.AEE[d, e]
        for j in range(self.m):
            if self._level(j) != 0:
                return INFINITY
            for a in range(k):
                ldz += 2.0 * log(M[a * k + a])
            for d in range(ne):                      # S -= G'H
                for e in range(ne):
                    s = 0.0
                    for a in range(k):
                        s = s + G[a * ne + d] * H[a * ne + e]
                    S[d * ne + e] -= s
        # fixed-effects block: S_pp = Lp Lp', P = S_pp^{-1}, beta = P S_py, v = (-beta, 1), r2 = v'S v
        for d in range(p):
            for e in range(p):
                Lp[d * p + e] = S[d * ne + e]
        if p > 0:
            if _chol(Lp, p, p) != 0:
                return INFINITY
            for d in range(p):
                ldx += 2.0 * log(Lp[d * p + d])
            _spd_inverse(Lp, &self.Lpi[0], P, p)
        for d in range(p):
            s = 0.0
            for e in range(p):
                s = s + P[d * p + e] * S[e * ne + p]
            v[d] = -s
        v[p] = 1.0
        r2 = 0.0
        for d in range(ne):
            s = 0.0
            for e in range(ne):
                s = s + S[d * ne + e] * v[e]
            r2 += v[d] * s
        if not r2 > 0.0:
            return INFINITY
        if self.reml:
            dof = self.n - p
            return ldz + ldx + dof * (1.0 + log(2.0 * M_PI) + log(r2 / dof)) - self.log_w
        return ldz + self.n * (1.0 + log(2.0 * M_PI) + log(r2 / self.n)) - self.log_w

    cdef void _derivs(self, double[::1] grad, double[:, ::1] hess) noexcept nogil:
        """Gradient and Hessian at the theta of the last _value (which left lam, S, P and v)."""
        cdef Py_ssize_t k = self.k, ne = self.ne, p = self.p, nt = self.nt, mk = self.AE1.shape[1]
        cdef Py_ssize_t kk = k * k, kne = k * ne, kp = k * p, nene = ne * ne, pp = p * p
        cdef Py_ssize_t j, a, b, c, d, e, i, l, ri, ci, rl, cl
        cdef double s, t, ail, r2 = 0.0, wt, trw
        cdef const double* A
        cdef const double* C
        cdef double* T = &self.T[0]
        cdef double* Li = &self.Li[0]
        cdef double* Mi = &self.Mi[0]
        cdef double* H = &self.H[0]
        cdef double* R = &self.R[0]
        cdef double* Hv = &self.Hv[0]
        cdef double* HP = &self.HP[0, 0]
        cdef double* S = &self.S[0]
        cdef double* P = &self.P[0]
        cdef double* v = &self.v[0]
        cdef double* Sv = &self.Sv[0]
        cdef double* dr2 = &self.dr2[0]
        cdef double* gz = &self.gz[0]
        cdef double* Md = &self.Md[0, 0]
        cdef double* N = &self.N[0, 0]
        cdef double* Rt = &self.Rt[0, 0]
        cdef double* Rtv = &self.Rtv[0, 0]
        cdef double* RtP = &self.RtP[0, 0]
        cdef double* hz = &self.hz[0, 0]
        cdef double* a2 = &self.a2[0, 0]
        cdef double* b2 = &self.b2[0, 0]
        cdef double* W = &self.W[0, 0]
        cdef double* dS = &self.dS[0, 0, 0]
        cdef double* Mdi
        cdef double* Ni
        cdef double* Rti
        cdef double* dSi
        for i in range(nt):
            gz[i] = 0.0
        for i in range(nt * nt):
            hz[i] = 0.0
            a2[i] = 0.0
            b2[i] = 0.0
        for i in range(nt * nene):
            dS[i] = 0.0
        for j in range(self.m):
            self._level(j)
            A = &self.A11[j, 0, 0]
            C = &self.AE1[0, 0] + j * k
            for a in range(k):                       # H v and H_p P
                s = 0.0
                for d in range(ne):
                    s = s + H[a * ne + d] * v[d]
                Hv[a] = s
                for d in range(p):
                    s = 0.0
                    for e in range(p):
                        s = s + H[a * ne + e] * P[e * p + d]
                    HP[a * p + d] = s
            for i in range(nt):
                ri = self.rows[i]
                ci = self.cols[i]
                Mdi = Md + i * kk
                Ni = N + i * kk
                Rti = Rt + i * kne
                dSi = dS + i * nene
                for a in range(kk):
                    Mdi[a] = 0.0
                for b in range(k):                   # M_i: row and column c_i get row r_i of T
                    Mdi[ci * k + b] += T[ri * k + b]
                    Mdi[b * k + ci] += T[ri * k + b]
                s = 0.0
                for a in range(k):                   # N_i = M^{-1} M_i and its trace
                    for b in range(k):
                        t = 0.0
                        for c in range(k):
                            t = t + Mi[a * k + c] * Mdi[c * k + b]
                        Ni[a * k + b] = t
                    s = s + Ni[a * k + a]
                gz[i] += s
                for a in range(k):                   # R_i = G_i - M_i H
                    for d in range(ne):
                        s = C[d * mk + ri] if a == ci else 0.0
                        for b in range(k):
                            s = s - Mdi[a * k + b] * H[b * ne + d]
                        R[a * ne + d] = s
                for d in range(ne):                  # dS_i -= G_i'H + H'R_i
                    for e in range(ne):
                        s = C[d * mk + ri] * H[ci * ne + e]
                        for a in range(k):
                            s = s + H[a * ne + d] * R[a * ne + e]
                        dSi[d * ne + e] -= s
                for a in range(k):                   # Rt_i = L^{-1} R_i, Rt_i v, Rt_i,p P
                    for d in range(ne):
                        s = 0.0
                        for c in range(a + 1):
                            s = s + Li[a * k + c] * R[c * ne + d]
                        Rti[a * ne + d] = s
                    s = 0.0
                    for d in range(ne):
                        s = s + Rti[a * ne + d] * v[d]
                    Rtv[i * k + a] = s
                    for d in range(p):
                        s = 0.0
                        for e in range(p):
                            s = s + Rti[a * ne + e] * P[e * p + d]
                        RtP[i * kp + a * p + d] = s
            for i in range(nt):
                ri = self.rows[i]
                ci = self.cols[i]
                for l in range(i, nt):
                    rl = self.rows[l]
                    cl = self.cols[l]
                    ail = A[ri * k + rl]
                    s = 2.0 * ail * Mi[cl * k + ci]
                    for a in range(k):
                        for b in range(k):
                            s = s - N[i * kk + a * k + b] * N[l * kk + b * k + a]
                    hz[i * nt + l] += s
                    # v'd2Q_il v and tr(P d2Q_il,pp), d2Q = -d2S
                    s = -2.0 * ail * Hv[ci] * Hv[cl]
                    t = 0.0
                    for d in range(p):
                        t = t - 2.0 * ail * HP[ci * p + d] * H[cl * ne + d]
                    for a in range(k):
                        s = s + 2.0 * Rtv[i * k + a] * Rtv[l * k + a]
                        for d in range(p):
                            t = t + 2.0 * RtP[i * kp + a * p + d] * Rt[l * kne + a * ne + d]
                    a2[i * nt + l] += s
                    b2[i * nt + l] += t
        # assemble: r2, S_i v, d r2; d2 r2; the log|S_pp| terms (REML)
        for d in range(ne):
            s = 0.0
            for e in range(ne):
                s = s + S[d * ne + e] * v[e]
            r2 += v[d] * s
        for i in range(nt):
            t = 0.0
            for d in range(ne):
                s = 0.0
                for e in range(ne):
                    s = s + dS[i * nene + d * ne + e] * v[e]
                Sv[i * ne + d] = s
                t = t + v[d] * s
            dr2[i] = t
        wt = (self.n - p) if self.reml else self.n
        if self.reml and p > 0:
            for i in range(nt):                      # W_i = P S_i,pp
                for a in range(p):
                    for b in range(p):
                        s = 0.0
                        for c in range(p):
                            s = s + P[a * p + c] * dS[i * nene + c * ne + b]
                        W[i * pp + a * p + b] = s
        for i in range(nt):
            trw = 0.0
            if self.reml:
                for a in range(p):
                    trw = trw + W[i * pp + a * p + a]
            grad[i] = gz[i] + trw + wt * dr2[i] / r2
        for i in range(nt):
            for l in range(i, nt):
                # d2 r2 = v'S_il v - 2 (S_i v)_p' P (S_l v)_p, with v'S_il v = -a2
                s = -a2[i * nt + l]
                for d in range(p):
                    t = 0.0
                    for e in range(p):
                        t = t + P[d * p + e] * Sv[l * ne + e]
                    s = s - 2.0 * Sv[i * ne + d] * t
                t = hz[i * nt + l] + wt * (s / r2 - dr2[i] * dr2[l] / (r2 * r2))
                if self.reml:
                    # d2 log|S_pp| = tr(P S_il) - tr(W_i W_l), with tr(P S_il) = -b2
                    t = t - b2[i * nt + l]
                    for a in range(p):
                        for b in range(p):
                            t = t - W[i * pp + a * p + b] * W[l * pp + b * p + a]
                hess[i, l] = t
                hess[l, i] = t

    # ---------------------------------------------------------------------------------------------
    def minimize(self, double[::1] x, const double[::1] lower, double ftol_abs, double ftol_rel,
                 double xtol_abs, double xtol_rel, int max_evals):
        """Minimise the deviance over theta >= lower from x (updated in place): a trust-region Newton method
        on the exact Hessian. The step minimises the quadratic model over the free variables (those not held
        at their bound by a gradient pushing outward) within the trust radius: the Newton step when the free
        block of the Hessian is positive definite and the step fits, else -(H + lambda I)^{-1} g with lambda
        found by Newton's method on 1/||step|| = 1/radius, from Cholesky factors (Moré and Sorensen). Steps
        are projected onto the bounds.

        Stops when the Newton step predicts a decrease below max(ftol_abs, ftol_rel |f|) (code 1), when a
        step falls below xtol_rel |x| + xtol_abs (code 2) or after max_evals evaluations (code 0). Returns
        (deviance, evaluations, code); code -1 when the start is not positive definite, -2 when the Hessian
        is not finite. At most 64 parameters.
        """
        cdef Py_ssize_t n = self.nt, i
        cdef double[::1] g = np.zeros(n), xt = np.zeros(n), d = np.zeros(n), q = np.zeros(n)
        cdef double[:, ::1] H = np.zeros((n, n)), A = np.zeros((n, n))
        cdef int[::1] free = np.zeros(n, dtype=np.int32)
        cdef double f, ft, pred, tol, rho, step, xnorm, lam, lam_min, nd, nq, radius
        cdef int evals = 1, code = 0, it
        with nogil:
            f = self._value(x)
            if f == INFINITY:
                code = -1
            else:
                self._derivs(g, H)
                xnorm = 0.0
                for i in range(n):
                    xnorm += x[i] * x[i]
                radius = sqrt(xnorm) if xnorm > 1.0 else 1.0
                while evals < max_evals:
                    for i in range(n):
                        free[i] = not (x[i] <= lower[i] and g[i] >= 0.0)
                        if H[i, i] != H[i, i]:
                            code = -2
                    if code != 0:
                        break
                    lam_min = 0.0
                    for i in range(n):
                        if free[i] and H[i, i] > lam_min:
                            lam_min = H[i, i]
                    lam_min = 1e-10 * lam_min + 1e-300
                    tol = ftol_rel * (f if f > 0 else -f)
                    if ftol_abs > tol:
                        tol = ftol_abs
                    lam = 0.0
                    if _damped_step(H, g, free, 0.0, A, d, q, n) == 0:
                        # the (projected) Newton step decides convergence, and is taken when it fits
                        if _projected_decrease(x, lower, d, g, H, xt, n) <= tol:
                            code = 1
                            break
                        nd = _norm(d, n)
                    else:
                        lam = lam_min
                        while _damped_step(H, g, free, lam, A, d, q, n) != 0:
                            lam *= 4.0
                        nd = _norm(d, n)
                    if nd > radius:
                        for it in range(20):             # ||d(lam)|| = radius, lam increasing from below
                            nq = _norm(q, n)
                            lam += (nd / nq) * (nd / nq) * (nd - radius) / radius
                            if _damped_step(H, g, free, lam, A, d, q, n) != 0:
                                break
                            nd = _norm(d, n)
                            if nd <= 1.05 * radius and nd >= 0.9 * radius:
                                break
                    pred = _projected_decrease(x, lower, d, g, H, xt, n)
                    step = 0.0
                    xnorm = 0.0
                    for i in range(n):
                        step += (xt[i] - x[i]) * (xt[i] - x[i])
                        xnorm += x[i] * x[i]
                    step = sqrt(step)
                    if step <= xtol_rel * sqrt(xnorm) + xtol_abs:
                        code = 2
                        break
                    ft = self._value(xt)
                    evals += 1
                    if ft < f and pred > 0.0:
                        rho = (f - ft) / pred
                        for i in range(n):
                            x[i] = xt[i]
                        f = ft
                        self._derivs(g, H)
                        if rho > 0.75 and step > 0.8 * radius:
                            radius = 2.0 * radius
                        elif rho < 0.25:
                            radius = 0.5 * step
                    else:
                        radius = 0.25 * step
        return f, evals, code


cdef double _norm(double[::1] v, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(n):
        s += v[i] * v[i]
    return sqrt(s)


cdef int _damped_step(double[:, ::1] H, double[::1] g, int[::1] free, double mu, double[:, ::1] A,
                      double[::1] d, double[::1] q, Py_ssize_t n) noexcept nogil:
    """d = -(H_FF + mu I)^{-1} g_F on the free variables (0 elsewhere) and q = L^{-1} d with L L' the
    Cholesky factor of H_FF + mu I (so q'q = d'(H_FF + mu I)^{-1} d); non-zero when not positive definite."""
    cdef Py_ssize_t i, a, b, nf = 0
    cdef double s
    cdef int idx[64]
    if n > 64:
        return 1
    for i in range(n):
        d[i] = 0.0
        q[i] = 0.0
        if free[i]:
            idx[nf] = <int>i
            nf += 1
    if nf == 0:
        return 0
    for a in range(nf):
        for b in range(nf):
            A[a, b] = H[idx[a], idx[b]] + (mu if a == b else 0.0)
    if _chol(&A[0, 0], nf, A.shape[1]) != 0:
        return 1
    for a in range(nf):                      # L y = -g_F
        s = -g[idx[a]]
        for b in range(a):
            s -= A[a, b] * d[idx[b]]
        d[idx[a]] = s / A[a, a]
    for a in range(nf - 1, -1, -1):          # L' d = y
        s = d[idx[a]]
        for b in range(a + 1, nf):
            s -= A[b, a] * d[idx[b]]
        d[idx[a]] = s / A[a, a]
    for a in range(nf):                      # L q = d
        s = d[idx[a]]
        for b in range(a):
            s -= A[a, b] * q[idx[b]]
        q[idx[a]] = s / A[a, a]
    return 0


cdef double _projected_decrease(double[::1] x, const double[::1] lower, double[::1] d, double[::1] g,
                                double[:, ::1] H, double[::1] xt, Py_ssize_t n) noexcept nogil:
    """xt = max(x + d, lower) and the decrease -(g's + s'Hs/2) the quadratic model predicts for s = xt - x."""
    cdef Py_ssize_t i, j
    cdef double s, q = 0.0, lin = 0.0
    for i in range(n):
        xt[i] = x[i] + d[i]
        if xt[i] < lower[i]:
            xt[i] = lower[i]
    for i in range(n):
        s = xt[i] - x[i]
        lin += g[i] * s
        for j in range(n):
            q += s * H[i, j] * (xt[j] - x[j])
    return -(lin + 0.5 * q)
