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

from .._ext.pirls import LaplacePirls
from ..design.terms import theta_to_lambdas
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
                 utol: float = 1e-10):
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
        self.sys_u = BlockedSystem(self.terms, 1)
        self.sys_j = BlockedSystem(self.terms, self.p + 1)
        self._E = np.zeros((n, self.p + 1))
        self._E[:, :self.p] = self.X
        self.u = np.zeros(self.q)          # warm start for the next PIRLS
        self.n_pirls_fail = 0

    # ------------------------------------------------------------------
    def z_lambda_u(self, theta, u) -> np.ndarray:
        """Z Lambda(theta) u on the used rows."""
        out = np.zeros(self.n)
        pos = 0
        for t, lam in zip(self.terms, theta_to_lambdas(self.terms, theta)):
            b = u[pos:pos + t.q].reshape(t.n_levels, t.k) @ lam.T
            pos += t.q
            if t.k == 1:
                out += t.Z[:, 0] * b[t.codes, 0]
            else:
                out += np.einsum("ij,ij->i", t.Z, b[t.codes])
        return out

    def _eval(self, eta, disp, newton=True):
        """Means, PIRLS weights and working residuals, log-likelihood terms and a status at eta.

        With a non-canonical link the weights are the observed information (a Newton step, quadratic
        convergence) wherever that is positive everywhere, else the Fisher weights (scoring).
        The Fisher weights are returned as well.
        """
        mu, wf, r, ll, status = self.family.working(self.y, eta, self.wt, disp)
        w = wf
        if newton and status == 0 and not self.family.canonical:
            wo = self.family.observed_weights(self.y, eta, self.wt, disp)
            if np.all(wo > 0):
                r = wf * r / wo
                w = wo
        return mu, w, r, ll, status, wf

    # ------------------------------------------------------------------
    def pirls_u(self, theta, beta, disp=1.0, u0=None):
        """Conditional mode of u at fixed (theta, beta) by penalized IRLS with step halving.

        Returns
        -------
        dict with u, eta, mu, w (Fisher weights at the mode), ll (terms), pdev, iterations.
        """
        eta_f = self.off + self.X @ beta
        u = (self.u if u0 is None else u0).copy()
        state = self._state(theta, eta_f, u, disp)
        if state is None:
            u = np.zeros(self.q)
            state = self._state(theta, eta_f, u, disp)
            if state is None:
                raise PirlsError("the linear predictor gives invalid means at the starting values")
        def step(state):
            self.sys_u.crossprod((state["eta"] - eta_f + state["r"])[:, None], state["w"])
            if self.sys_u.factor(theta) != 0:
                raise PirlsError("penalized system not positive definite")
            _, u_new = self.sys_u.solve()
            delta = u_new - state["u"]
            return np.max(np.abs(delta)), lambda: self._halve(theta, eta_f, state, delta, disp, None, None)

        return self._iterate(state, step)

    def _iterate(self, state, step):
        """The PIRLS loop shared by the u-only and the joint (u, beta) iterations.

        ``step(state)`` refactors at the state's weights and returns (largest change of the solution, a
        callable giving the step-halved next state or None). Stops on a negligible change of the solution or
        of the penalized deviance; the factor left in the system belongs to the returned state when
        ``state["factored"]`` is True.
        """
        for it in range(1, self.maxit + 1):
            dmax, halve = step(state)
            state["factored"] = True          # the system holds the factor at this state's weights
            if dmax < self.utol:
                break
            new = halve()
            if new is None:
                break
            change = state["pdev"] - new["pdev"]
            state = new
            if abs(change) <= self.tol * (abs(new["pdev"]) + 1.0):
                break
        else:
            # no convergence (e.g. separation drives beta or u to infinity): keep the best point, record it
            self.n_pirls_fail += 1
        state["iterations"] = it
        self.u = state["u"].copy()
        return state

    def _state(self, theta, eta_f, u, disp, beta=None):
        eta = eta_f + self.z_lambda_u(theta, u)
        mu, w, r, ll, status, wf = self._eval(eta, disp)
        if status != 0:
            return None
        return {"u": u, "eta": eta, "mu": mu, "w": w, "wf": wf, "r": r, "ll": ll, "beta": beta,
                "newton": w is not wf, "factored": False,
                "pdev": -2.0 * float(np.sum(ll)) + float(u @ u)}

    def _halve(self, theta, eta_f, state, delta, disp, beta, dbeta):
        """Step-halving along (delta, dbeta) until the penalized deviance does not increase."""
        step = 1.0
        for _ in range(40):
            u = state["u"] + step * delta
            if beta is None:
                new = self._state(theta, eta_f, u, disp)
            else:
                b = beta + step * dbeta
                new = self._state(theta, self.off + self.X @ b, u, disp, beta=b)
            if new is not None and new["pdev"] <= state["pdev"] + 1e-10 * (abs(state["pdev"]) + 1.0):
                return new
            step *= 0.5
        return None

    def pirls_joint(self, theta, beta0, disp=1.0, u0=None):
        """Joint penalized IRLS over (u, beta) at fixed theta (lme4's nAGQ = 0 stage)."""
        beta = np.asarray(beta0, dtype=float).copy()
        u = (self.u if u0 is None else u0).copy()
        state = self._state(theta, self.off + self.X @ beta, u, disp, beta=beta)
        if state is None:
            raise PirlsError("the linear predictor gives invalid means at the starting values")
        def step(state):
            E = self._E
            E[:, self.p] = state["eta"] - self.off + state["r"]
            self.sys_j.crossprod(E, state["w"])
            if self.sys_j.factor(theta) != 0:
                raise PirlsError("penalized system not positive definite")
            b_new, u_new = self.sys_j.solve()
            du, db = u_new - state["u"], b_new - state["beta"]
            dmax = max(np.max(np.abs(du)), np.max(np.abs(db)))
            return dmax, lambda: self._halve(theta, None, state, du, disp, state["beta"], db)

        return self._iterate(state, step)

    # ------------------------------------------------------------------
    def refactor(self, theta, state, disp=1.0, observed=None):
        """Refactor the u-system at the mode's weights (Fisher, or observed information). Returns log det."""
        observed = self.obs_info if observed is None else observed
        w = state["wf"]
        if observed:
            w = self.family.observed_weights(self.y, state["eta"], self.wt, disp)
        sys = self.sys_u
        sys.crossprod(np.ones((self.n, 1)), w)   # any non-zero column: only the Z block is used
        if sys.factor(theta) != 0:
            raise PirlsError("the Hessian of the conditional log-density is not positive definite at the mode")
        return sys.logdets()[0]

    def _factor_usable(self, state) -> bool:
        """True when the last factor was taken at the weights the log-determinant needs."""
        if not state.get("factored"):
            return False
        return self.family.canonical or state["newton"] == self.obs_info

    def _fast(self):
        """The compiled PIRLS driver, for canonical links without a dispersion parameter (else None)."""
        if not hasattr(self, "_fast_pirls"):
            fam = self.family
            ok = fam.canonical and not fam.has_dispersion and fam.name in ("binomial", "poisson")
            self._fast_pirls = (LaplacePirls(self.sys_u, fam.fcode, fam.lcode, self.y, self.wt, self.tol,
                                             self.utol, self.maxit) if ok else None)
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

        Each group's integral over its spherical effect u_j is evaluated at u_j_hat + s_j z_k, with s_j the
        conditional SD of u_j at the mode, nodes z_k and weights w_k of the standard normal density.
        """
        t = self.terms[0]
        state = self.pirls_u(theta, beta, disp)
        lam = float(theta[0])
        zcol = t.Z[:, 0]
        codes = t.codes
        m = t.n_levels
        hsum = np.bincount(codes, weights=state["wf"] * zcol * zcol, minlength=m)
        s = 1.0 / np.sqrt(1.0 + lam * lam * hsum)
        uhat = state["u"]
        eta0 = state["eta"] - lam * zcol * uhat[codes]
        nodes = np.asarray(nodes, dtype=float)
        K = len(nodes)
        U = uhat[None, :] + s[None, :] * nodes[:, None]                     # (K, m) effects at the nodes
        eta = eta0[None, :] + lam * zcol[None, :] * U[:, codes]              # (K, n), all nodes at once
        _, _, _, ll, status = self.family.working(np.tile(self.y, K), eta.ravel(), np.tile(self.wt, K), disp)
        if status == 0:
            keys = (np.arange(K)[:, None] * m + codes[None, :]).ravel()
            llg = np.bincount(keys, weights=ll, minlength=K * m).reshape(K, m)
        else:
            # some node gives an invalid mean: evaluate node by node, an invalid node contributing nothing
            llg = np.empty((K, m))
            for k in range(K):
                _, _, _, llk, st = self.family.working(self.y, eta[k], self.wt, disp)
                llg[k] = np.bincount(codes, weights=llk, minlength=m) if st == 0 else -np.inf
        terms = (np.log(np.asarray(weights, dtype=float))[:, None] + 0.5 * nodes[:, None] ** 2 + llg
                 - 0.5 * U * U)
        mx = np.max(terms, axis=0)
        logint = mx + np.log(np.sum(np.exp(terms - mx), axis=0)) + np.log(s)
        return -2.0 * float(np.sum(logint)), state
