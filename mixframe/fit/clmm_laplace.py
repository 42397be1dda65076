"""The marginal log-likelihood of a cumulative link mixed model at given parameters.

With spherical random effects u ~ N(0, I), b = Lambda(theta) u and the location
eta = x'beta + offset + z'b, the conditional log-likelihood l(u) = sum_i log P(Y_i = y_i | u) is
maximised in u by Newton's method: the curvature of the penalized log-likelihood l(u) - |u|^2 / 2 is
H = Lambda'Z'WZ Lambda + I with W diagonal, so each step is the penalized weighted least-squares
solve u_new = H^{-1} Lambda'Z'W (Z Lambda u + s / w) with per-row score s and curvature w — the
blocked Cholesky of ``BlockedSystem`` for any random-effect structure, a group-by-group scalar Newton
(compiled) for one scalar term, or an outer-group-by-outer-group Newton (compiled; the curvature of
each outer group is an arrowhead matrix) for two nested scalar terms such as ``(1 | a) + (1 | a:b)``.
The Laplace approximation is then

    log L = l(u_hat) - |u_hat|^2 / 2 - log det(H) / 2,

and adaptive Gauss-Hermite quadrature refines it for one scalar term.
"""
from __future__ import annotations

import numpy as np

from .._ext.ordinal import add_zb, cumlink_working
from .._ext.ordinal_laplace import agq_scalar, laplace_nested, laplace_scalar, laplace_scalar_grad
from ..design.terms import split_u, theta_to_lambdas
from ..linalg.blocked import BlockedSystem

INNER_TOL = 1e-5      # largest Newton step in u at which the modes count as found (one more step follows)
INNER_MAXIT = 60


def nested_parent(terms):
    """For two scalar terms whose first (larger) grouping is nested in the second, the outer level of
    every inner level (int32); None for any other structure."""
    if len(terms) != 2 or terms[0].k != 1 or terms[1].k != 1:
        return None
    t_in, t_out = terms
    parent = np.full(t_in.n_levels, -1, dtype=np.int64)
    parent[t_in.codes] = t_out.codes
    if np.any(parent < 0) or not np.array_equal(parent[t_in.codes], t_out.codes):
        return None
    return np.ascontiguousarray(parent, dtype=np.int32)


class InnerError(ArithmeticError):
    """The conditional modes could not be found (zero probabilities or a non-positive-definite system)."""


class LaplaceObjective:
    """-log L(xi, beta, theta) of a CLMM by Laplace (``nagq=1``) or adaptive Gauss-Hermite quadrature.

    Parameters
    ----------
    design : Design
        With at least one random-effect term; ``y`` the 0-based category codes.
    y : ndarray of int32
        The category codes.
    link_code : int
        Kernel code of the link (see ``mixframe.fit.clm.LINKS``).
    J : ndarray (K-1, n_xi)
        Threshold structure: alpha = J @ xi.
    nagq : int
        1 for the Laplace approximation; more for adaptive Gauss-Hermite (one scalar term only).
    general : bool
        Use the blocked-Cholesky Newton even where a specialised compiled one exists (for checks).
    """

    def __init__(self, design, y, link_code: int, J, nagq: int = 1, general: bool = False):
        self.design = design
        self.terms = list(design.terms)
        self.y = y
        self.code = link_code
        self.J = J
        self.X = np.ascontiguousarray(design.X, dtype=float)
        self.offset = np.zeros(design.n_obs) if design.offset is None else np.asarray(design.offset, float)
        self.wts = (np.empty(0) if design.weights is None
                    else np.ascontiguousarray(design.weights, dtype=float))
        self.q = sum(t.q for t in self.terms)
        self.scalar = len(self.terms) == 1 and self.terms[0].k == 1 and not general
        self.nagq = int(nagq)
        if self.nagq > 1 and not self.scalar:
            raise ValueError("adaptive Gauss-Hermite quadrature (nagq > 1) needs a single scalar "
                             "random-effect term such as (1 | g); use nagq=1 (Laplace) for this model")
        if self.scalar:
            t = self.terms[0]
            self.codes = np.ascontiguousarray(t.codes, dtype=np.int32)
            self.z = np.ascontiguousarray(t.Z[:, 0], dtype=float)
            self.h = np.ones(t.n_levels)
            self.ll_groups = np.zeros(t.n_levels)
            if self.nagq > 1:
                x, w = np.polynomial.hermite.hermgauss(self.nagq)
                self.nodes, self.log_weights = x, np.log(w)
                self.work = np.zeros((t.n_levels, self.nagq))
        self.parent = None if self.scalar or general else nested_parent(self.terms)
        self.nested = self.parent is not None
        if self.nested:
            t_in, t_out = self.terms
            self.codes_in = np.ascontiguousarray(t_in.codes, dtype=np.int32)
            self.codes_out = np.ascontiguousarray(t_out.codes, dtype=np.int32)
            self.z_in = np.ascontiguousarray(t_in.Z[:, 0], dtype=float)
            self.z_out = np.ascontiguousarray(t_out.Z[:, 0], dtype=float)
            self.h_in = np.ones(t_in.n_levels)
            self.c_in = np.zeros(t_in.n_levels)
            self.schur = np.ones(t_out.n_levels)
        if not self.scalar:
            self.sys = None if self.nested else BlockedSystem(self.terms, 1)
            self._codes = [np.ascontiguousarray(t.codes, dtype=np.int32) for t in self.terms]
            self._Z = [np.ascontiguousarray(t.Z, dtype=float) for t in self.terms]
        self.u = np.zeros(self.q)
        self.n_eval = 0
        self._flexible = J.shape[0] == J.shape[1] and np.array_equal(J, np.eye(J.shape[0]))
        self._eta0 = None

    # ------------------------------------------------------------------
    def alpha(self, xi):
        """The thresholds J @ xi."""
        if self._flexible:
            return np.array(xi, dtype=float)
        return np.ascontiguousarray(self.J @ np.asarray(xi, dtype=float))

    def eta_fixed(self, beta):
        """x'beta + offset on the used rows."""
        eta = self.X @ np.asarray(beta, dtype=float)
        return eta if self.design.offset is None else eta + self.offset

    def eta_random(self, theta, u):
        """Z Lambda(theta) u on the used rows."""
        out = np.zeros(self.design.n_obs)
        lams = theta_to_lambdas(self.terms, theta)
        for ut, lam, codes, Z in zip(split_u(self.terms, u), lams, self._codes_list(), self._Z_list()):
            add_zb(codes, Z, np.ascontiguousarray(ut @ lam.T), out)
        return out

    def _codes_list(self):
        return [self.codes] if self.scalar else self._codes

    def _Z_list(self):
        return [np.ascontiguousarray(self.z[:, None])] if self.scalar else self._Z

    # ------------------------------------------------------------------
    def __call__(self, xi, beta, theta) -> float:
        """-log L at (xi, beta, theta); +inf where the thresholds are not increasing or the modes fail."""
        self.n_eval += 1
        alpha = self.alpha(xi)
        try:
            if self.scalar:
                return self._scalar(alpha, beta, theta)
            return self._nested(alpha, beta, theta) if self.nested else self._general(alpha, beta, theta)
        except InnerError:
            return np.inf

    def _nested(self, alpha, beta, theta) -> float:
        eta0 = self.eta_fixed(beta)
        n_in = self.terms[0].n_levels
        u_in, u_out = self.u[:n_in], self.u[n_in:]
        args = (self.y, eta0, alpha, self.wts, self.codes_in, self.codes_out, self.parent, self.z_in,
                self.z_out, float(theta[0]), float(theta[1]), self.code)
        out = (self.h_in, self.c_in, self.schur, INNER_MAXIT, INNER_TOL)
        status, _, ll, logdet, uu = laplace_nested(*args, u_in, u_out, *out)
        if status == 3:
            return np.inf
        if status != 0:           # a poor warm start: begin again from u = 0
            self.u[:] = 0.0
            status, _, ll, logdet, uu = laplace_nested(*args, u_in, u_out, *out)
        if status != 0 or not np.isfinite(ll) or not np.isfinite(logdet):
            self.u[:] = 0.0
            raise InnerError("the conditional modes could not be found")
        return -(ll - 0.5 * uu - 0.5 * logdet)

    def _scalar(self, alpha, beta, theta) -> float:
        eta0 = self._eta0 = self.eta_fixed(beta)
        lam = float(theta[0])
        args = (self.y, eta0, alpha, self.wts, self.codes, self.z, lam, self.code)
        out = (self.h, self.ll_groups, INNER_MAXIT, INNER_TOL)
        status, _, ll, logdet, uu = laplace_scalar(*args, self.u, *out)
        if status == 3:
            return np.inf
        if status != 0:           # a poor warm start: begin again from u = 0
            self.u[:] = 0.0
            status, _, ll, logdet, uu = laplace_scalar(*args, self.u, *out)
        if status != 0 or not np.isfinite(ll) or not np.isfinite(logdet):
            self.u[:] = 0.0
            raise InnerError("the conditional modes could not be found")
        if self.nagq > 1:
            status, ll = agq_scalar(*args, self.u, self.h, self.nodes, self.log_weights, self.work)
            if status:
                raise InnerError("zero probability at a quadrature node")
            return -ll
        return -(ll - 0.5 * uu - 0.5 * logdet)

    @property
    def has_gradient(self) -> bool:
        """True when ``value_and_grad`` is available (Laplace with one scalar term)."""
        return self.scalar and self.nagq == 1

    def value_and_grad(self, xi, beta, theta):
        """-log L and its analytic gradient in (xi, beta, theta) (Laplace, one scalar term).

        Returns (value, gradient); the value is +inf (and the gradient None) outside the valid region.
        """
        self.n_eval += 1
        alpha = self.alpha(xi)
        try:
            value = self._scalar(alpha, beta, theta)
        except InnerError:
            return np.inf, None
        if not np.isfinite(value):
            return np.inf, None
        ga = np.empty(alpha.size)
        gb = np.empty(self.X.shape[1])
        gl = laplace_scalar_grad(self.y, self._eta0, alpha, self.wts, self.codes, self.z, self.X,
                                 float(theta[0]), self.code, self.u, self.h, ga, gb)
        return value, np.concatenate([ga if self._flexible else self.J.T @ ga, gb, [gl]])

    def _general(self, alpha, beta, theta) -> float:
        if alpha.size > 1 and not np.all(alpha[1:] > alpha[:-1]):
            return np.inf
        ll, logdet = self.solve_modes(alpha, self.eta_fixed(beta), theta)
        return -(ll - 0.5 * self.u @ self.u - 0.5 * logdet)

    def solve_modes(self, alpha, eta0, theta):
        """Newton's method for u on the blocked system; returns (l(u_hat), log det H) and keeps u_hat."""
        n = eta0.size
        z = np.empty(n)
        w = np.empty(n)
        u = self.u.copy()
        u_prev = obj_prev = None
        final = False
        nhalf = 0
        lams = theta_to_lambdas(self.terms, theta)
        for _ in range(INNER_MAXIT * 2):
            eta_r = self._eta_random(lams, u)
            status, ll = cumlink_working(self.y, eta0, eta_r, alpha, self.wts, self.code, z, w)
            obj = -ll + 0.5 * u @ u
            if u_prev is not None and not (obj <= obj_prev + 1e-10 * (1.0 + abs(obj_prev))) and nhalf < 40:
                u = 0.5 * (u + u_prev)
                nhalf += 1
                continue
            if status or not np.isfinite(obj):
                if u_prev is None and np.any(u != 0):
                    u = np.zeros_like(u)      # the warm start was poor: begin again from 0
                    continue
                self.u[:] = 0.0
                raise InnerError("zero probability at the conditional modes")
            self.sys.crossprod(z, w)
            if self.sys.factor(theta) != 0:
                # negative curvatures (cauchit) made H indefinite: no Laplace approximation at a final
                # point, and a step on the curvature floored at 0 (H >= I) elsewhere
                if final:
                    self.u[:] = 0.0
                    raise InnerError("the penalized system is not positive definite at the modes")
                w_floor = np.maximum(w, 1e-10)
                self.sys.crossprod(eta_r + (z - eta_r) * (w / w_floor), w_floor)
                if self.sys.factor(theta) != 0:
                    self.u[:] = 0.0
                    raise InnerError("the penalized system is not positive definite")
            elif final:
                self.u[:] = u
                return ll, self.sys.logdets()[0]
            _, u_new = self.sys.solve()
            if np.max(np.abs(u_new - u), initial=0.0) < INNER_TOL:
                final = True
            u_prev, obj_prev, u, nhalf = u, obj, u_new, 0
        self.u[:] = 0.0
        raise InnerError("Newton's method for the conditional modes did not converge")

    def _eta_random(self, lams, u):
        out = np.zeros(self.design.n_obs)
        pos = 0
        for t, lam, codes, Z in zip(self.terms, lams, self._codes, self._Z):
            ut = u[pos:pos + t.q].reshape(t.n_levels, t.k)
            pos += t.q
            add_zb(codes, Z, ut * lam[0, 0] if t.k == 1 else np.ascontiguousarray(ut @ lam.T), out)
        return out

    # ------------------------------------------------------------------
    def conditional(self, xi, beta, theta):
        """Modes and conditional SDs of the random effects at the parameters, per term.

        Returns (b, b_sd, eta) with b and b_sd lists of (n_levels, k) arrays (b = Lambda u_hat, the
        conditional covariance Lambda H^{-1} Lambda' block by block) and eta = x'beta + offset + z'b.
        """
        value = self(xi, beta, theta)
        if not np.isfinite(value):
            raise InnerError("the conditional modes could not be found at the estimates")
        lams = theta_to_lambdas(self.terms, theta)
        us = split_u(self.terms, self.u)
        if self.scalar:
            covs = [(1.0 / self.h)[:, None, None]]
        elif self.nested:     # inverse of the arrowhead blocks, diagonal entries
            s_par = self.schur[self.parent]
            var_in = 1.0 / self.h_in + self.c_in ** 2 / (self.h_in ** 2 * s_par)
            covs = [var_in[:, None, None], (1.0 / self.schur)[:, None, None]]
        else:
            covs = self.sys.cond_cov_u()
        b, b_sd = [], []
        for ut, lam, cov in zip(us, lams, covs):
            b.append(ut @ lam.T)
            cb = np.einsum("ab,jbc,dc->jad", lam, cov, lam)
            b_sd.append(np.sqrt(np.maximum(np.einsum("jaa->ja", cb), 0.0)))
        eta = self.eta_fixed(beta) + self.eta_random(theta, self.u)
        return b, b_sd, eta
