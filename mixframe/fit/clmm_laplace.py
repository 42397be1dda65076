"""The marginal log-likelihood of a cumulative link mixed model at given parameters.

With spherical random effects u ~ N(0, I), b = Lambda(theta) u and the location
eta = x'beta + offset + z'b, the conditional log-likelihood l(u) = sum_i log P(Y_i = y_i | u) is
maximised in u by the penalized Newton solver of ``mixframe.laplace.modes`` with the cumulative-link row
model (per-row score and curvature): on the blocked Cholesky of ``BlockedSystem`` for any random-effect
structure, or by a registered compiled driver — a group-by-group scalar Newton for one scalar term, an
outer-group-by-outer-group Newton (the curvature of each outer group is an arrowhead matrix) for two nested
scalar terms such as ``(1 | a) + (1 | a:b)``. The Laplace approximation is then

    log L = l(u_hat) - |u_hat|^2 / 2 - log det(H) / 2,

and adaptive Gauss-Hermite quadrature (``mixframe.laplace.agq``) refines it for one scalar term.
"""
from __future__ import annotations

import numpy as np

from .._ext.ordinal_laplace import agq_scalar, laplace_scalar_grad
from ..design.terms import u_to_b, z_times_b
from ..laplace.modes import (CLMM_MODES, CumulativeRowModel, ModeError, ModeProblem, compiled_name,
                             compiled_path, conditional_sds, find_modes, laplace_logdet, nested_parent)
from ..linalg.blocked import BlockedSystem
from ..numerics.quadrature import gauss_hermite_log

INNER_TOL = CLMM_MODES.utol       # largest Newton step in u at which the modes count as found (one more step follows)
INNER_MAXIT = CLMM_MODES.maxit

__all__ = ["LaplaceObjective", "InnerError", "nested_parent", "INNER_TOL", "INNER_MAXIT"]


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
        self.settings = CLMM_MODES
        self.model = CumulativeRowModel(y, self.wts, link_code)
        path = None if general else compiled_name(self.model, self.terms)
        self.scalar = path == "cumulative-scalar"
        self.nested = path == "cumulative-nested"
        self.nagq = int(nagq)
        if self.nagq > 1 and not self.scalar:
            raise ValueError("adaptive Gauss-Hermite quadrature (nagq > 1) needs a single scalar "
                             "random-effect term such as (1 | g); use nagq=1 (Laplace) for this model")
        self.fast = None if path is None else compiled_path(self.model, self.terms, None, self.settings)
        if self.scalar:
            self.codes, self.z, self.h = self.fast.codes, self.fast.z, self.fast.h
            if self.nagq > 1:
                self.nodes, self.log_weights = gauss_hermite_log(self.nagq)
                self.work = np.zeros((self.terms[0].n_levels, self.nagq))
        if self.nested:
            self.parent = self.fast.parent
        self.sys = BlockedSystem(self.terms, 1) if path is None else None
        self._problem = None
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
        return z_times_b(self.terms, u_to_b(self.terms, theta, u))

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

    def probe(self, xi, beta, theta) -> float:
        """-log L at a trial point (a variance put on its bound, say) that leaves the modes where they were:
        the next evaluation near the current point starts from its own modes, not from the trial's."""
        u = self.u.copy()
        try:
            return self(xi, beta, theta)
        finally:
            self.u[:] = u

    def _compiled(self, alpha, eta0, theta) -> float:
        """-log L from the registered compiled driver (warm start from the last modes, else from 0)."""
        self.model.alpha = alpha
        status, ll, logdet, uu = self.fast.run(eta0, theta, self.u)
        if status == 3:
            return np.inf
        if status != 0:           # a poor warm start: begin again from u = 0
            self.u[:] = 0.0
            status, ll, logdet, uu = self.fast.run(eta0, theta, self.u)
        if status != 0 or not np.isfinite(ll) or not np.isfinite(logdet):
            self.u[:] = 0.0
            raise InnerError("the conditional modes could not be found")
        return -(ll - 0.5 * uu - 0.5 * logdet)

    def _nested(self, alpha, beta, theta) -> float:
        return self._compiled(alpha, self.eta_fixed(beta), theta)

    def _scalar(self, alpha, beta, theta) -> float:
        eta0 = self._eta0 = self.eta_fixed(beta)
        value = self._compiled(alpha, eta0, theta)
        if self.nagq > 1 and np.isfinite(value):
            status, ll = agq_scalar(self.y, eta0, alpha, self.wts, self.codes, self.z, float(theta[0]), self.code,
                                    self.u, self.h, self.nodes, self.log_weights, self.work)
            if status:
                raise InnerError("zero probability at a quadrature node")
            return -ll
        return value

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
        """The generic penalized Newton solver for u on the blocked system; returns (l(u_hat), log det H) and
        keeps u_hat."""
        self.model.alpha = alpha
        if self._problem is None:
            self._problem = ModeProblem(self.terms, self.sys, theta, eta_f=eta0)
        problem = self._problem.at(theta, eta0)
        try:
            st = find_modes(problem, self.model, self.u, self.settings)
            if not st["converged"]:
                raise InnerError("Newton's method for the conditional modes did not converge")
            logdet = laplace_logdet(problem, st)
        except ModeError as e:
            self.u[:] = 0.0
            raise InnerError(str(e)) from None
        except InnerError:
            self.u[:] = 0.0
            raise
        self.u[:] = st["u"]
        return st["loglik"], logdet

    # ------------------------------------------------------------------
    def conditional(self, xi, beta, theta):
        """Modes and conditional SDs of the random effects at the parameters, per term.

        Returns (b, b_sd, eta) with b and b_sd lists of (n_levels, k) arrays (b = Lambda u_hat, the
        conditional covariance Lambda H^{-1} Lambda' block by block) and eta = x'beta + offset + z'b.
        """
        value = self(xi, beta, theta)
        if not np.isfinite(value):
            raise InnerError("the conditional modes could not be found at the estimates")
        covs = self.sys.cond_cov_u() if self.fast is None else self.fast.cond_cov()
        b = u_to_b(self.terms, theta, self.u)
        b_sd = conditional_sds(self.terms, theta, covs)
        eta = self.eta_fixed(beta) + self.eta_random(theta, self.u)
        return b, b_sd, eta
