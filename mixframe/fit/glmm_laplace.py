"""The GLMM objective: penalized IRLS for the conditional modes and the Laplace / adaptive Gauss-Hermite
approximations of the marginal deviance, all on the compiled blocked Cholesky factor.

Notation: eta = offset + X beta + Z Lambda(theta) u, with spherical random effects u ~ N(0, I).
The penalized objective minimised over u (and over beta in the nAGQ = 0 stage) is

    pdev(u) = -2 sum_i loglik_i(y_i | eta_i) + ||u||^2,

and the Laplace deviance is pdev(u_hat) + log det(Lambda' Z' W Z Lambda + I), with W the Fisher weights (lme4's
choice) or, for families with a dispersion parameter, the observed-information weights (glmmTMB's choice, the
exact Hessian of -loglik in eta). Both include every normalising constant, so -deviance/2 is the approximate
marginal log-likelihood.
"""
from __future__ import annotations

import numpy as np

from ..design.terms import u_to_b, z_times_b
from ..laplace.agq import agq_loglik
from ..laplace.modes import (GLMM_MODES, GLMRowModel, ModeError, ModeProblem, ModeSettings, compiled_path,
                             find_modes, laplace_logdet)
from ..linalg.blocked import BlockedSystem


class PirlsError(ArithmeticError):
    """Penalized IRLS could not reach a valid conditional mode."""


class GLMMObjective:
    """Objective functions of a GLMM at given covariance parameters.

    Parameters
    ----------
    design : Design
        Fixed-effects matrix, response, prior weights, offset and random-effect terms.
    family : Family
        Response family and link.
    obs_info : bool
        Use observed-information weights in the log-determinant (glmmTMB's Laplace) instead of Fisher weights
        (lme4's Laplace). The modes are the same either way.
    tol : float
        PIRLS stops when the penalized deviance changes by less than this (relative).
    maxit : int
        Maximum PIRLS iterations.
    utol : float
        PIRLS stops when the largest update of u (and beta) is below this.
    compiled : bool
        Use the registered compiled PIRLS driver where it applies (``laplace.modes.compiled_path``); False runs
        the generic solver ``laplace.modes.find_modes`` everywhere (for checks).

    Examples
    --------
    >>> import numpy as np
    >>> from mixframe.datasets import cbpp
    >>> from mixframe.design.build import build_design
    >>> from mixframe.families import get_family
    >>> d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp(),
    ...                  kind="glmm", family="binomial")
    >>> obj = GLMMObjective(d, get_family("binomial"))
    >>> dev, state = obj.laplace(np.array([0.642261]), np.array([-1.398532, -0.992333, -1.128672, -1.580314]))
    >>> round(-dev / 2, 3)
    -92.026
    """

    def __init__(self, design, family, obs_info: bool = False, tol: float = 1e-14, maxit: int = 100,
                 utol: float = 1e-10, compiled: bool = True):
        self.design = design
        self.family = family
        self.terms = list(design.terms)
        self.X = np.ascontiguousarray(design.X, dtype=np.float64)
        self.y = np.ascontiguousarray(design.y, dtype=np.float64)
        n = len(self.y)
        self.n = n
        self.p = self.X.shape[1]
        self.wt = np.ones(n) if design.weights is None else np.ascontiguousarray(design.weights, dtype=np.float64)
        self.off = np.zeros(n) if design.offset is None else np.ascontiguousarray(design.offset, dtype=np.float64)
        self.q = sum(t.q for t in self.terms)
        self.obs_info = obs_info
        self.tol = tol
        self.utol = utol
        self.maxit = maxit
        self.settings = ModeSettings(maxit=maxit, utol=utol, ftol=tol, polish=GLMM_MODES.polish,
                                     max_halvings=GLMM_MODES.max_halvings, slack=GLMM_MODES.slack,
                                     curvature_floor=GLMM_MODES.curvature_floor)
        self.model = GLMRowModel(family, self.y, self.wt)
        self.compiled = compiled
        self._problem_u = self._problem_j = None
        self.sys_u = BlockedSystem(self.terms, 1)
        self.sys_j = BlockedSystem(self.terms, self.p + 1)
        self._E = np.zeros((n, self.p + 1))
        self._E[:, :self.p] = self.X
        self.u = np.zeros(self.q)          # warm start for the next PIRLS
        self.n_pirls_fail = 0

    # ------------------------------------------------------------------
    def z_lambda_u(self, theta, u) -> np.ndarray:
        """Z Lambda(theta) u on the used rows."""
        return z_times_b(self.terms, u_to_b(self.terms, theta, u))

    def _solve(self, problem, x0, disp):
        self.model.disp = disp
        try:
            state = find_modes(problem, self.model, x0, self.settings)
        except ModeError as e:
            raise PirlsError(str(e)) from None
        if not state["converged"]:
            # no convergence (e.g. separation drives beta or u to infinity): keep the best point, record it
            self.n_pirls_fail += 1
        self.u = state["u"].copy()
        return state

    def pirls_u(self, theta, beta, disp=1.0, u0=None):
        """Conditional mode of u at fixed (theta, beta) by penalized IRLS with step halving.

        Returns
        -------
        dict with u, eta, mu, w, wf (Fisher weights at the mode), ll (terms), pdev, iterations.
        """
        eta_f = self.off + self.X @ beta
        if self._problem_u is None:
            self._problem_u = ModeProblem(self.terms, self.sys_u, theta, eta_f=eta_f)
        return self._solve(self._problem_u.at(theta, eta_f), self.u if u0 is None else u0, disp)

    def pirls_joint(self, theta, beta0, disp=1.0, u0=None):
        """Joint penalized IRLS over (u, beta) at fixed theta (lme4's nAGQ = 0 stage)."""
        if self._problem_j is None:
            self._problem_j = ModeProblem(self.terms, self.sys_j, theta, X=self.X, offset=self.off, E=self._E)
        problem = self._problem_j.at(theta)
        x0 = np.concatenate([self.u if u0 is None else u0, np.asarray(beta0, dtype=float)])
        return self._solve(problem, x0, disp)

    # ------------------------------------------------------------------
    def refactor(self, theta, state, disp=1.0, observed=None):
        """Refactor the u-system at the mode's weights (Fisher, or observed information). Returns log det."""
        observed = self.obs_info if observed is None else observed
        w = state["wf"]
        if observed:
            w = self.family.observed_weights(self.y, state["eta"], self.wt, disp)
        try:
            if self._problem_u is None:
                self._problem_u = ModeProblem(self.terms, self.sys_u, theta)
            return laplace_logdet(self._problem_u.at(theta, self._problem_u.eta_f), state, w)
        except ModeError as e:
            raise PirlsError(str(e)) from None

    def _factor_usable(self, state) -> bool:
        """True when the last factor was taken at the weights the log-determinant needs."""
        if not state.get("factored"):
            return False
        return self.family.canonical or state["newton"] == self.obs_info

    def _fast(self):
        """The registered compiled PIRLS driver (canonical binomial/Poisson links), else None."""
        if not hasattr(self, "_fast_pirls"):
            self._fast_pirls = (compiled_path(self.model, self.terms, self.sys_u, self.settings)
                                if self.compiled else None)
        return self._fast_pirls

    def laplace(self, theta, beta, disp=1.0):
        """Laplace deviance at (theta, beta[, disp]) with PIRLS over u; returns (deviance, state)."""
        fast = self._fast()
        if fast is not None:
            lam0, lamR = self.sys_u.lambdas_flat(np.asarray(theta, dtype=float))
            u = self.u.copy()
            with self.sys_u.blas_context():
                status, pdev, ld = fast.laplace(self.off + self.X @ beta, np.ascontiguousarray(lam0),
                                                np.ascontiguousarray(lamR), u, disp)
            if status in (1, 2):
                self.sys_u.theta = None
                raise PirlsError("penalized IRLS failed (invalid means or a singular penalized system)")
            self.sys_u.theta = np.array(theta, dtype=float)     # the factor now held belongs to this theta
            if status == 3:
                self.n_pirls_fail += 1
            self.u = u.copy()
            eta, mu, w = fast.arrays()
            state = {"u": u, "eta": eta, "mu": mu, "w": w, "wf": w, "beta": None, "newton": False,
                     "factored": True, "pdev": pdev, "iterations": fast.iterations}
            return pdev + ld, state
        state = self.pirls_u(theta, beta, disp)
        if self._factor_usable(state):
            ld = self.sys_u.logdets()[0]
        else:
            ld = self.refactor(theta, state, disp)
        return state["pdev"] + ld, state

    def stage1(self, theta, beta0, disp=1.0):
        """nAGQ = 0 deviance at theta: beta and u from joint PIRLS; returns (deviance, state)."""
        state = self.pirls_joint(theta, beta0, disp)
        if self._factor_usable(state):
            ld = self.sys_j.logdets()[0]
        else:
            ld = self.refactor(theta, state, disp)
        return state["pdev"] + ld, state

    def agq(self, theta, beta, nodes, weights, disp=1.0):
        """Adaptive Gauss-Hermite deviance (-2 log marginal likelihood) for one scalar random-effect term.

        ``nodes`` and ``weights``: the rule for the standard normal density (``numerics.quadrature``). Each
        group's integral is centred at the mode and scaled by the conditional SD of u_j there (Fisher weights),
        see ``laplace.agq``.
        """
        t = self.terms[0]
        state = self.pirls_u(theta, beta, disp)
        lam = float(theta[0])
        zcol = t.Z[:, 0]
        hsum = np.bincount(t.codes, weights=state["wf"] * zcol * zcol, minlength=t.n_levels)
        uhat = state["u"]
        eta0 = state["eta"] - lam * zcol * uhat[t.codes]
        ll = agq_loglik(self.model, t, lam, eta0, uhat, 1.0 + lam * lam * hsum, nodes=nodes,
                        log_weights=np.log(np.asarray(weights, dtype=float)))
        return -2.0 * ll, state
