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
from libc.stdlib cimport calloc, free

from mixframe._ext.trust_region cimport SmoothObjective


include "small_dense.pxi"


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
cdef class OneBlockDeviance(SmoothObjective):
    """The profiled deviance of a one-term LMM from its cross-products, with exact derivatives.

    Parameters: the cross-products A11 (m, k, k), AE1 (ne, m k), AEE (ne, ne) (kept by reference: refresh
    nothing, they are read at each call), the position (rows[i], cols[i]) of each theta in the relative
    factor, the number of observations n, whether the criterion is REML, and the sum of the log prior weights.

    A SmoothObjective of the ntheta variables: mixframe.numerics.optim.trust_region evaluates it through the
    C methods ``value`` (the deviance) and ``value_grad_hess`` (deviance, gradient, Hessian), of which
    :meth:`deviance` and :meth:`derivatives` are the Python wrappers.
    """
    cdef const double[:, :, ::1] A11
    cdef const double[:, ::1] AE1, AEE
    cdef const int[::1] rows, cols
    cdef Py_ssize_t m, k, ne, nt, p
    cdef double n, log_w
    cdef bint reml
    # workspace: pieces of one zeroed allocation (work), each of the size allocated in __init__
    cdef double* work
    cdef double* lam
    cdef double* T
    cdef double* M
    cdef double* Li
    cdef double* Mi
    cdef double* G
    cdef double* H
    cdef double* Hv
    cdef double* S
    cdef double* Lp
    cdef double* Lpi
    cdef double* P
    cdef double* v
    cdef double* Sv
    cdef double* dr2
    cdef double* gz
    cdef double* Md
    cdef double* Rt
    cdef double* RtP
    cdef double* HP
    cdef double* hz
    cdef double* a2
    cdef double* b2
    cdef double* W
    cdef double* dS
    # the theta of the last value() call whose state the workspace holds (value_grad_hess() there reuses it)
    cdef double* last_theta
    cdef bint have_last
    cdef double _last_f

    def __init__(self, const double[:, :, ::1] A11, const double[:, ::1] AE1, const double[:, ::1] AEE,
                 const int[::1] rows, const int[::1] cols, double n, bint reml, double log_w):
        cdef Py_ssize_t k, ne, nt, p, kk, total
        cdef double* w
        self.A11, self.AE1, self.AEE = A11, AE1, AEE
        self.rows, self.cols = rows, cols
        self.m, self.k, self.ne, self.nt = A11.shape[0], A11.shape[1], AEE.shape[0], rows.shape[0]
        self.n_vars = self.nt
        self.p = self.ne - 1
        self.n, self.reml, self.log_w = n, reml, log_w
        k, ne, nt, p = self.k, self.ne, self.nt, max(self.p, 1)
        kk = k * k
        total = (5 * kk + 2 * k * ne + k + ne * ne + 3 * p * p + ne + nt * ne + 2 * nt + nt * 4 * k + nt * ne
                 + nt * p + k * p + 3 * nt * nt + nt * p * p + nt * ne * ne + nt)
        free(self.work)
        self.work = <double*>calloc(total, sizeof(double))
        if self.work == NULL:
            raise MemoryError()
        w = self.work
        self.lam = w; w += kk
        self.T = w; w += kk
        self.M = w; w += kk
        self.Li = w; w += kk
        self.Mi = w; w += kk
        self.G = w; w += k * ne
        self.H = w; w += k * ne
        self.Hv = w; w += k
        self.S = w; w += ne * ne
        self.Lp = w; w += p * p
        self.Lpi = w; w += p * p
        self.P = w; w += p * p
        self.v = w; w += ne
        self.Sv = w; w += nt * ne
        self.dr2 = w; w += nt
        self.gz = w; w += nt
        self.Md = w; w += nt * 4 * k
        self.Rt = w; w += nt * ne
        self.RtP = w; w += nt * p
        self.HP = w; w += k * p
        self.hz = w; w += nt * nt
        self.a2 = w; w += nt * nt
        self.b2 = w; w += nt * nt
        self.W = w; w += nt * p * p
        self.dS = w; w += nt * ne * ne
        self.last_theta = w; w += nt
        self.have_last = False

    def __dealloc__(self):
        free(self.work)

    def deviance(self, const double[::1] theta):
        """The profiled deviance at theta (inf where the system is not positive definite)."""
        if theta.shape[0] != self.nt:
            raise ValueError(f"theta has {theta.shape[0]} entries, not {self.nt}")
        return self.value(&theta[0])

    def derivatives(self, const double[::1] theta, double[::1] grad, double[:, ::1] hess):
        """The profiled deviance at theta, its gradient into ``grad`` and Hessian into ``hess`` (left as
        they are where the deviance is inf). Right after :meth:`deviance` at the same theta the deviance is
        not evaluated again."""
        if theta.shape[0] != self.nt or grad.shape[0] != self.nt or hess.shape[0] != self.nt \
                or hess.shape[1] != self.nt:
            raise ValueError(f"theta, the gradient and the Hessian must have {self.nt} entries a side")
        return self.value_grad_hess(&theta[0], &grad[0], &hess[0, 0])

    cdef double value(self, const double* theta) noexcept nogil:
        cdef double f = self._value(theta)
        cdef Py_ssize_t i
        self.have_last = f != INFINITY
        self._last_f = f
        if self.have_last:
            for i in range(self.nt):
                self.last_theta[i] = theta[i]
        return f

    cdef double value_grad_hess(self, const double* theta, double* grad, double* hess) noexcept nogil:
        cdef double f
        cdef Py_ssize_t i
        cdef bint again = self.have_last
        for i in range(self.nt):
            if self.last_theta[i] != theta[i]:
                again = False
        self.have_last = False
        f = self._last_f if again else self._value(theta)
        if f != INFINITY:
            self._derivs(grad, hess)
        return f

    # ---------------------------------------------------------------------------------------------
    cdef int _level_factor(self, Py_ssize_t j) noexcept nogil:
        """M = Lambda'A_j Lambda + I of level j and its lower Cholesky factor, in place in self.M (T = A_j Lambda
        as workspace); 0, or 1 when M is not positive definite."""
        cdef Py_ssize_t k = self.k, a, b, c
        cdef double s
        cdef const double* A = &self.A11[j, 0, 0]
        cdef double* lam = self.lam
        cdef double* T = self.T
        cdef double* M = self.M
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
        return 1 if chol_lower(M, k, k) != 0 else 0

    cdef int _level(self, Py_ssize_t j) noexcept nogil:
        """M = L L' (L in self.M), L^{-1}, M^{-1}, G and H of level j; 0 or non-zero if M is not definite."""
        cdef Py_ssize_t k = self.k, ne = self.ne, mk = self.AE1.shape[1], a, b, c, d
        cdef double s
        cdef const double* C = &self.AE1[0, 0] + j * k        # C[d, c] = C[d * mk + c]
        cdef double* lam = self.lam
        cdef double* M = self.M
        cdef double* Mi = self.Mi
        cdef double* G = self.G
        cdef double* H = self.H
        if self._level_factor(j) != 0:
            return 1
        _spd_inverse(M, self.Li, Mi, k)
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

    cdef int _level_value(self, Py_ssize_t j) noexcept nogil:
        """L (in self.M) and Y = L^{-1} G (in self.H) of level j, for the value alone (G'M^{-1}G = Y'Y)."""
        cdef Py_ssize_t k = self.k, ne = self.ne, mk = self.AE1.shape[1], a, b, c, d
        cdef double s
        cdef const double* C = &self.AE1[0, 0] + j * k
        cdef double* lam = self.lam
        cdef double* M = self.M
        cdef double* Y = self.H
        if self._level_factor(j) != 0:
            return 1
        for a in range(k):                           # Y = L^{-1} Lambda'C'
            for d in range(ne):
                s = 0.0
                for c in range(a, k):
                    s = s + lam[c * k + a] * C[d * mk + c]
                for b in range(a):
                    s = s - M[a * k + b] * Y[b * ne + d]
                Y[a * ne + d] = s / M[a * k + a]
        return 0

    cdef double _value(self, const double* theta) noexcept nogil:
        cdef Py_ssize_t k = self.k, ne = self.ne, p = self.p, j, a, d, e, i
        cdef double s, ldz = 0.0, ldx = 0.0, r2, dof
        cdef double* lam = self.lam
        cdef double* S = self.S
        cdef double* M = self.M
        cdef double* Y = self.H
        cdef double* Lp = self.Lp
        cdef double* P = self.P
        cdef double* v = self.v
        for a in range(k * k):
            lam[a] = 0.0
        for i in range(self.nt):
            lam[self.rows[i] * k + self.cols[i]] = theta[i]
        for d in range(ne):
            for e in range(ne):
                S[d * ne + e] = self.AEE[d, e]
        for j in range(self.m):
            if self._level_value(j) != 0:
                return INFINITY
            for a in range(k):
                ldz += 2.0 * log(M[a * k + a])
            for d in range(ne):                      # S -= Y'Y (lower triangle)
                for e in range(d + 1):
                    s = 0.0
                    for a in range(k):
                        s = s + Y[a * ne + d] * Y[a * ne + e]
                    S[d * ne + e] -= s
        for d in range(ne):
            for e in range(d + 1, ne):
                S[d * ne + e] = S[e * ne + d]
        # fixed-effects block: S_pp = Lp Lp', P = S_pp^{-1}, beta = P S_py, v = (-beta, 1), r2 = v'S v
        for d in range(p):
            for e in range(p):
                Lp[d * p + e] = S[d * ne + e]
        if p > 0:
            if chol_lower(Lp, p, p) != 0:
                return INFINITY
            for d in range(p):
                ldx += 2.0 * log(Lp[d * p + d])
            _spd_inverse(Lp, self.Lpi, P, p)
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

    cdef void _derivs(self, double* grad, double* hess) noexcept nogil:
        """Gradient and Hessian at the theta of the last _value (which left lam, S, P and v).

        Per level, with t_i = (A Lambda)[r_i, :], u_i = M^{-1} e_{c_i}, w_i = M^{-1} t_i, h_i = H[c_i, :],
        z_i = H't_i and beta_i = C[:, r_i] - z_i, everything is of rank one or two:
        M^{-1}M_i = u_i t_i' + w_i e_{c_i}', R_i = e_{c_i} beta_i' - t_i h_i',
        dQ_i = beta_i h_i' + h_i beta_i',
        L^{-1}R_i = alpha_i beta_i' - gamma_i h_i' (alpha_i = L^{-1}e_{c_i}, gamma_i = L^{-1}t_i), so the pair
        terms cost O(k + p) each."""
        cdef Py_ssize_t k = self.k, ne = self.ne, p = self.p, nt = self.nt, mk = self.AE1.shape[1]
        cdef Py_ssize_t nene = ne * ne, pp = p * p
        cdef Py_ssize_t j, a, b, c, d, e, i, l, ri, ci, rl, cl
        cdef double s, t, ail, r2 = 0.0, wt, trw, bv, x1, x2, x3, x4
        cdef const double* A
        cdef const double* C
        cdef double* T = self.T
        cdef double* Li = self.Li
        cdef double* Mi = self.Mi
        cdef double* H = self.H
        cdef double* Hv = self.Hv
        cdef double* HP = self.HP
        cdef double* S = self.S
        cdef double* P = self.P
        cdef double* v = self.v
        cdef double* Sv = self.Sv
        cdef double* dr2 = self.dr2
        cdef double* gz = self.gz
        cdef double* wv = self.Md          # per i: w_i (k), alpha_i (k), gamma_i (k), Rt_i v (k)
        cdef double* beta = self.Rt        # per i: beta_i (ne)
        cdef double* Pb = self.RtP         # per i: P beta_i,p (p)
        cdef double* hz = self.hz
        cdef double* a2 = self.a2
        cdef double* b2 = self.b2
        cdef double* W = self.W
        cdef double* dS = self.dS
        cdef double* wi
        cdef double* wl
        cdef double* bi
        cdef double* dSi
        cdef Py_ssize_t kw = 4 * k
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
                wi = wv + i * kw
                bi = beta + i * ne
                dSi = dS + i * nene
                s = 0.0
                for a in range(k):                   # w_i = M^{-1} t_i, d log|M| = 2 w_i[c_i]
                    t = 0.0
                    for b in range(k):
                        t = t + Mi[a * k + b] * T[ri * k + b]
                    wi[a] = t
                gz[i] += 2.0 * wi[ci]
                for a in range(k):                   # alpha_i = L^{-1} e_{c_i}, gamma_i = L^{-1} t_i
                    wi[k + a] = Li[a * k + ci]
                    t = 0.0
                    for b in range(a + 1):
                        t = t + Li[a * k + b] * T[ri * k + b]
                    wi[2 * k + a] = t
                bv = 0.0
                for d in range(ne):                  # beta_i = C[:, r_i] - H't_i
                    t = C[d * mk + ri]
                    for a in range(k):
                        t = t - H[a * ne + d] * T[ri * k + a]
                    bi[d] = t
                    bv = bv + t * v[d]
                for a in range(k):                   # L^{-1}R_i v = alpha_i (beta_i.v) - gamma_i (h_i.v)
                    wi[3 * k + a] = wi[k + a] * bv - wi[2 * k + a] * Hv[ci]
                for d in range(p):
                    t = 0.0
                    for e in range(p):
                        t = t + P[d * p + e] * bi[e]
                    Pb[i * p + d] = t
                for d in range(ne):                  # dS_i -= beta_i h_i' + h_i beta_i'
                    for e in range(ne):
                        dSi[d * ne + e] -= bi[d] * H[ci * ne + e] + H[ci * ne + d] * bi[e]
            for i in range(nt):
                ri = self.rows[i]
                ci = self.cols[i]
                wi = wv + i * kw
                for l in range(i, nt):
                    rl = self.rows[l]
                    cl = self.cols[l]
                    wl = wv + l * kw
                    ail = A[ri * k + rl]
                    # tr(M^{-1}M_i M^{-1}M_l) = (t_i.u_l)(t_l.u_i) + (t_i.w_l) u_i[c_l] + u_l[c_i] (t_l.w_i)
                    #                           + w_l[c_i] w_i[c_l]
                    x1 = 0.0
                    x2 = 0.0
                    x3 = 0.0
                    x4 = 0.0
                    for a in range(k):
                        x1 = x1 + T[ri * k + a] * Mi[a * k + cl]
                        x2 = x2 + T[rl * k + a] * Mi[a * k + ci]
                        x3 = x3 + T[ri * k + a] * wl[a]
                        x4 = x4 + T[rl * k + a] * wi[a]
                    s = (x1 * x2 + x3 * Mi[ci * k + cl] + Mi[cl * k + ci] * x4 + wl[ci] * wi[cl])
                    hz[i * nt + l] += 2.0 * ail * Mi[cl * k + ci] - s
                    # v'd2Q_il v = 2 (Rt_i v).(Rt_l v) - 2 A_il Hv[c_i] Hv[c_l]
                    s = -2.0 * ail * Hv[ci] * Hv[cl]
                    x1 = 0.0
                    x2 = 0.0
                    x3 = 0.0
                    x4 = 0.0
                    for a in range(k):
                        s = s + 2.0 * wi[3 * k + a] * wl[3 * k + a]
                        x1 = x1 + wi[k + a] * wl[k + a]              # alpha_i.alpha_l
                        x2 = x2 + wi[k + a] * wl[2 * k + a]          # alpha_i.gamma_l
                        x3 = x3 + wi[2 * k + a] * wl[k + a]          # gamma_i.alpha_l
                        x4 = x4 + wi[2 * k + a] * wl[2 * k + a]      # gamma_i.gamma_l
                    a2[i * nt + l] += s
                    # tr(P d2Q_il,pp) = 2 tr(Rt_i,p P Rt_l,p') - 2 A_il h_i,p'P h_l,p
                    t = 0.0
                    for d in range(p):
                        t = t + (x1 * Pb[i * p + d] * beta[l * ne + d] - x2 * Pb[i * p + d] * H[cl * ne + d]
                                 - x3 * HP[ci * p + d] * beta[l * ne + d]
                                 + (x4 - ail) * HP[ci * p + d] * H[cl * ne + d])
                    b2[i * nt + l] += 2.0 * t
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
                hess[i * nt + l] = t
                hess[l * nt + i] = t
