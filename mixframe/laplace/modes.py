"""Conditional modes of the spherical random effects: one penalized Newton solver for every model kind.

At fixed covariance parameters theta the linear predictor is eta = eta_f + Z Lambda(theta) u (or, in the joint
stage of a GLMM, eta = offset + X beta + Z Lambda u over (u, beta)). A *row model* supplies, at eta, per-row
curvatures w_i (working weights: -d^2 loglik_i / d eta_i^2 or the Fisher information), working residuals
r_i = score_i / w_i and the log-likelihood; the solver minimises the penalized deviance

    pdev(u) = -2 loglik(eta(u)) + |u|^2

by Newton steps on the blocked penalized system (``BlockedSystem``): each step is the weighted least-squares solve
u_new = (Lambda'Z'WZ Lambda + I)^{-1} Lambda'Z'W (Z Lambda u + r), and a step that raises pdev is halved.
The rule of iteration, halving and convergence is written once, here, and parametrised by one record,
``ModeSettings``; the compiled drivers (``_ext.pirls`` for canonical GLM links, ``_ext.ordinal_laplace`` for one
scalar or two nested scalar cumulative-link terms) take their limits from the same record. They are registered
below with the structure they apply to; ``compiled_path`` picks one when the model and the terms allow it, and
the tests check each against ``find_modes`` (same modes, same Laplace value).

The Laplace deviance is pdev(u_hat) + log det(Lambda'Z'WZ Lambda + I), W at the mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..design.terms import theta_to_lambdas, z_times_b


@dataclass(frozen=True)
class ModeSettings:
    """Limits of the conditional-mode iteration (the generic solver and every compiled driver).

    Attributes
    ----------
    maxit : int
        Newton steps at most.
    utol : float
        The modes count as found when the largest component of a Newton step is below this.
    ftol : float
        ... or when an accepted step lowers pdev by at most ``ftol * (|pdev| + 1)``.
    polish : bool
        Take the last (negligible) step too and stop at its end, rather than at its start.
    max_halvings : int
        Halvings of a step that raises pdev before the iteration stops at the current point.
    slack : float
        A step is accepted when pdev rises by at most ``slack * (|pdev| + 1)`` (rounding noise).
    curvature_floor : float
        Curvatures used for a step are floored at this when the penalized system is not positive definite with
        the model's own (a link whose distribution is not log-concave); such a factor gives no log-determinant.
    """

    maxit: int = 100
    utol: float = 1e-10
    ftol: float = 1e-14
    polish: bool = False
    max_halvings: int = 40
    slack: float = 1e-10
    curvature_floor: float = 1e-10


#: GLMMs (lme4's PIRLS tolerances): stop at the start of a negligible step
GLMM_MODES = ModeSettings()
#: CLMMs (the ordinal package's): a step below 1e-5 is taken and ends the iteration
CLMM_MODES = ModeSettings(maxit=60, utol=1e-5, ftol=0.0, polish=True)


class ModeError(ArithmeticError):
    """The conditional modes could not be found (invalid means or probabilities, or a singular system)."""


# ---------------------------------------------------------------------------------------------------------
# row models


class GLMRowModel:
    """Per-row terms of a GLM family at eta: Fisher weights, or (``newton``, non-canonical links) the observed
    information wherever it is positive on every row, for quadratic convergence."""

    def __init__(self, family, y, wt, newton: bool = True):
        self.family = family
        self.y = y
        self.wt = wt
        self.newton = newton
        self.disp = 1.0

    def evaluate(self, eta):
        """Dict of w, r, loglik (and mu, wf the Fisher weights, ll the per-row terms, newton); None when a mean
        is invalid."""
        fam = self.family
        mu, wf, r, ll, status = fam.working(self.y, eta, self.wt, self.disp)
        if status != 0:
            return None
        w = wf
        if self.newton and not fam.canonical:
            wo = fam.observed_weights(self.y, eta, self.wt, self.disp)
            if np.all(wo > 0):
                r = wf * r / wo
                w = wo
        return {"w": w, "r": r, "loglik": float(np.sum(ll)), "ll": ll, "mu": mu, "wf": wf, "newton": w is not wf}

    def node_loglik(self, eta, codes, m):
        """Group log-likelihoods (K, m) at K linear predictors (K, n); a row of -inf where a mean is invalid."""
        K = eta.shape[0]
        fam = self.family
        _, _, _, ll, status = fam.working(np.tile(self.y, K), eta.ravel(), np.tile(self.wt, K), self.disp)
        if status == 0:
            keys = (np.arange(K)[:, None] * m + codes[None, :]).ravel()
            return np.bincount(keys, weights=ll, minlength=K * m).reshape(K, m)
        out = np.empty((K, m))
        for k in range(K):
            _, _, _, llk, st = fam.working(self.y, eta[k], self.wt, self.disp)
            out[k] = np.bincount(codes, weights=llk, minlength=m) if st == 0 else -np.inf
        return out


class CumulativeRowModel:
    """Per-row terms of a cumulative link model (thresholds ``alpha`` set before each solve): observed
    curvatures (bounded away from 0, negative only for cauchit) and working residuals."""

    def __init__(self, y, wts, link_code: int):
        from .._ext.ordinal import cumlink_loglik_groups, cumlink_working

        self._working, self._groups = cumlink_working, cumlink_loglik_groups
        self.y = y
        self.wts = wts
        self.code = link_code
        self.alpha = None
        n = y.shape[0]
        self._zero = np.zeros(n)

    def evaluate(self, eta):
        n = eta.shape[0]
        r, w = np.empty(n), np.empty(n)
        status, ll = self._working(self.y, eta, self._zero, self.alpha, self.wts, self.code, r, w)
        if status or not math.isfinite(ll):
            return None
        return {"w": w, "r": r, "loglik": float(ll)}

    def node_loglik(self, eta, codes, m):
        out = np.zeros((eta.shape[0], m))
        for k in range(eta.shape[0]):
            if self._groups(self.y, np.ascontiguousarray(eta[k]), self.alpha, self.wts, codes, self.code, out[k]):
                out[k] = -np.inf
        return out


# ---------------------------------------------------------------------------------------------------------
# the generic solver


class ModeProblem:
    """The penalized system at fixed theta, over x = u (``X is None``: eta = eta_f + Z Lambda u) or jointly over
    x = (u, beta) (eta = offset + X beta + Z Lambda u; ``system`` then has the p columns of X and one more)."""

    def __init__(self, terms, system, theta, eta_f=None, X=None, offset=None, E=None):
        self.terms = terms
        self.system = system
        self._layout = []          # each term's slice of u and its shape
        pos = 0
        for t in terms:
            m, k = t.n_levels, t.k
            self._layout.append((pos, pos + m * k, m, k))
            pos += m * k
        self.q = pos
        self.X = X
        self.offset = offset
        if X is not None and E is None:
            E = np.zeros((X.shape[0], X.shape[1] + 1))
            E[:, :X.shape[1]] = X
        self.E = E
        self._ones = None
        self.at(theta, eta_f)

    def at(self, theta, eta_f=None):
        """The same problem at another theta (and eta_f); returns self."""
        self.theta = np.asarray(theta, dtype=float)
        self.eta_f = eta_f
        # Lambda per term, once per theta (u_to_b's work, without its per-call setup)
        self._blocks = [(a, e, m, k, lam[0, 0] if k == 1 else lam.T)
                        for (a, e, m, k), lam in zip(self._layout, theta_to_lambdas(self.terms, self.theta))]
        return self

    def b(self, u):
        """b = Lambda u per term, (n_levels, k) each (``design.terms.u_to_b`` at this problem's theta)."""
        return [u[a:e].reshape(m, 1) * lam if k == 1 else u[a:e].reshape(m, k) @ lam
                for a, e, m, k, lam in self._blocks]

    def state(self, x, model):
        """The row model's terms at x plus x, u, eta, eta_r = Z Lambda u, pdev (and beta); None when invalid."""
        u = x[:self.q]
        if self.X is None:
            eta_f, beta = self.eta_f, None
        else:
            beta = x[self.q:]
            eta_f = self.offset + self.X @ beta
        eta_r = z_times_b(self.terms, self.b(u))
        eta = eta_f + eta_r
        st = model.evaluate(eta)
        if st is None:
            return None
        st.update(x=x, u=u, beta=beta, eta=eta, eta_r=eta_r, factored=False,
                  pdev=-2.0 * st["loglik"] + float(u @ u))
        return st

    def _crossprod(self, st, w, r):
        if self.X is None:
            self.system.crossprod((st["eta_r"] + r)[:, None], w)
        else:
            self.E[:, self.X.shape[1]] = st["eta"] - self.offset + r
            self.system.crossprod(self.E, w)

    def newton(self, st, settings):
        """Factor at the state's curvatures and solve: (the Newton point, True when the curvatures had to be
        floored, so that the factor is not the Hessian at the state)."""
        w = st["w"]
        self._crossprod(st, w, st["r"])
        floored = False
        if self.system.factor(self.theta) != 0:
            w_floor = np.maximum(w, settings.curvature_floor)
            self._crossprod(st, w_floor, st["r"] * (w / w_floor))
            if self.system.factor(self.theta) != 0:
                raise ModeError("the penalized system is not positive definite")
            floored = True
        beta, u = self.system.solve()
        return (u if self.X is None else np.concatenate([u, beta])), floored

    def refactor(self, w):
        """Factor the u-part at curvatures w (for the log-determinant); nonzero when not positive definite."""
        if self._ones is None or self._ones.shape[0] != w.shape[0]:
            self._ones = np.ones((w.shape[0], 1))
        self.system.crossprod(self._ones, w)     # any column: only the Z block is used
        return self.system.factor(self.theta)


def _halve(problem, model, st, delta, settings):
    """The one halving rule: the first of x + delta, x + delta/2, ... whose pdev does not exceed the current one
    by more than the slack; None when there is none within ``max_halvings``."""
    bound = st["pdev"] + settings.slack * (abs(st["pdev"]) + 1.0)
    step = 1.0
    for _ in range(settings.max_halvings):
        new = problem.state(st["x"] + step * delta, model)
        if new is not None and new["pdev"] <= bound:
            return new
        step *= 0.5
    return None


def find_modes(problem, model, x0, settings=GLMM_MODES):
    """Penalized Newton iteration for the conditional modes from x0 (u, or (u, beta) for a joint problem).

    Returns the final state (a dict: x, u, beta, eta, pdev, w, r, loglik, the model's extra terms, iterations,
    converged, and ``factored``: True when the system holds the factor at this state's curvatures).
    A start with invalid means is replaced by u = 0 (beta kept); ModeError when that is invalid too or a
    system is singular.
    """
    x = np.array(x0, dtype=float)
    st = problem.state(x, model)
    if st is None:
        x[:problem.q] = 0.0
        st = problem.state(x, model)
        if st is None:
            raise ModeError("the linear predictor gives invalid means or probabilities at the start")
    converged = False
    it = 0
    for it in range(1, settings.maxit + 1):
        x_new, floored = problem.newton(st, settings)
        st["factored"] = not floored
        delta = x_new - st["x"]
        dmax = float(np.max(np.abs(delta), initial=0.0))
        if dmax < settings.utol and not settings.polish:
            converged = True
            break
        new = _halve(problem, model, st, delta, settings)
        if new is None:
            converged = True          # no descent along the Newton direction: the mode as far as arithmetic goes
            break
        change = st["pdev"] - new["pdev"]
        st = new
        if dmax < settings.utol or abs(change) <= settings.ftol * (abs(new["pdev"]) + 1.0):
            converged = True
            break
    st["iterations"] = it
    st["converged"] = converged
    return st


def laplace_logdet(problem, st, w=None):
    """log det(Lambda'Z'WZ Lambda + I) at the state (its curvatures, or w): from the factor the iteration left
    when it belongs to them, else after refactoring. ModeError when not positive definite."""
    if w is not None or not st["factored"]:
        if problem.refactor(st["w"] if w is None else w) != 0:
            raise ModeError("the Hessian of the conditional log-density is not positive definite at the mode")
    return problem.system.logdets()[0]


# ---------------------------------------------------------------------------------------------------------
# conditional covariances


def conditional_sds(terms, theta, covs):
    """Conditional SDs of b = Lambda u per term, (n_levels, k) each, from the conditional covariance blocks of u
    (``covs``: (n_levels, k, k) per term, e.g. ``BlockedSystem.cond_cov_u()``): sqrt diag(Lambda C Lambda')."""
    out = []
    for lam, c in zip(theta_to_lambdas(terms, theta), covs):
        cb = np.einsum("ab,jbc,dc->jad", lam, c, lam)
        out.append(np.sqrt(np.maximum(np.einsum("jaa->ja", cb), 0.0)))
    return out


# ---------------------------------------------------------------------------------------------------------
# compiled drivers


_COMPILED: list[tuple[str, object, object]] = []


def register_compiled(name: str, applies, build):
    """Register a compiled driver: ``applies(model, terms)`` tells whether it covers the model and terms,
    ``build(model, terms, system, settings)`` makes it (``system`` the u-system, or None)."""
    _COMPILED.append((name, applies, build))


def compiled_name(model, terms):
    """Name of the first registered compiled driver that covers (model, terms), or None."""
    for name, applies, _ in _COMPILED:
        if applies(model, terms):
            return name
    return None


def compiled_path(model, terms, system=None, settings=None):
    """The compiled driver for (model, terms) built with ``settings``, or None (then ``find_modes`` is used)."""
    for name, applies, build in _COMPILED:
        if applies(model, terms):
            return build(model, terms, system, settings)
    return None


def _glm_applies(model, terms):
    fam = getattr(model, "family", None)
    return (isinstance(model, GLMRowModel) and fam.canonical and not fam.has_dispersion
            and fam.name in ("binomial", "poisson"))


def _glm_build(model, terms, system, settings):
    from .._ext.pirls import LaplacePirls

    s = settings or GLMM_MODES
    fam = model.family
    return LaplacePirls(system, fam.fcode, fam.lcode, model.y, model.wt, s.ftol, s.utol, s.maxit,
                        s.max_halvings, s.slack)


def nested_parent(terms):
    """For two scalar terms whose first (larger) grouping is nested in the second, the outer level of every
    inner level (int32); None for any other structure."""
    if len(terms) != 2 or terms[0].k != 1 or terms[1].k != 1:
        return None
    t_in, t_out = terms
    parent = np.full(t_in.n_levels, -1, dtype=np.int64)
    parent[t_in.codes] = t_out.codes
    if np.any(parent < 0) or not np.array_equal(parent[t_in.codes], t_out.codes):
        return None
    return np.ascontiguousarray(parent, dtype=np.int32)


class _CumulativeCompiled:
    """What the compiled cumulative-link mode drivers share: the row model and the limits from the settings."""

    kernel_name = ""

    def __init__(self, model, settings):
        from .._ext import ordinal_laplace

        self._kernel = getattr(ordinal_laplace, self.kernel_name)
        self.model = model
        self.settings = s = settings or CLMM_MODES
        self._limits = (s.maxit, s.utol, s.max_halvings, s.slack)


class CumulativeScalar(_CumulativeCompiled):
    """Compiled modes of one scalar cumulative-link term, group by group (``_ext.ordinal_laplace``)."""

    kernel_name = "laplace_scalar"

    def __init__(self, model, terms, settings):
        super().__init__(model, settings)
        t = terms[0]
        self.codes = np.ascontiguousarray(t.codes, dtype=np.int32)
        self.z = np.ascontiguousarray(t.Z[:, 0], dtype=float)
        self.h = np.ones(t.n_levels)
        self.ll_groups = np.zeros(t.n_levels)

    def run(self, eta_f, theta, u):
        """Modes from u (in place): (status, loglik, logdet, u'u); status 0 ok, 1 invalid start, 2 no
        convergence, 3 thresholds not increasing."""
        m = self.model
        status, _, ll, logdet, uu = self._kernel(m.y, eta_f, m.alpha, m.wts, self.codes, self.z, float(theta[0]),
                                                 m.code, u, self.h, self.ll_groups, *self._limits)
        return status, ll, logdet, uu

    def cond_cov(self):
        """Conditional covariance blocks of u at the last modes."""
        return [(1.0 / self.h)[:, None, None]]


class CumulativeNested(_CumulativeCompiled):
    """Compiled modes of two nested scalar cumulative-link terms, outer group by outer group."""

    kernel_name = "laplace_nested"

    def __init__(self, model, terms, settings):
        super().__init__(model, settings)
        t_in, t_out = terms
        self.n_in = t_in.n_levels
        self.parent = nested_parent(terms)
        self.codes_in = np.ascontiguousarray(t_in.codes, dtype=np.int32)
        self.codes_out = np.ascontiguousarray(t_out.codes, dtype=np.int32)
        self.z_in = np.ascontiguousarray(t_in.Z[:, 0], dtype=float)
        self.z_out = np.ascontiguousarray(t_out.Z[:, 0], dtype=float)
        self.h_in = np.ones(t_in.n_levels)
        self.c_in = np.zeros(t_in.n_levels)
        self.schur = np.ones(t_out.n_levels)

    def run(self, eta_f, theta, u):
        m = self.model
        status, _, ll, logdet, uu = self._kernel(
            m.y, eta_f, m.alpha, m.wts, self.codes_in, self.codes_out, self.parent, self.z_in, self.z_out,
            float(theta[0]), float(theta[1]), m.code, u[:self.n_in], u[self.n_in:], self.h_in, self.c_in,
            self.schur, *self._limits)
        return status, ll, logdet, uu

    def cond_cov(self):
        """Diagonal of the inverse of the arrowhead blocks (the inner and the outer effects)."""
        s_par = self.schur[self.parent]
        var_in = 1.0 / self.h_in + self.c_in ** 2 / (self.h_in ** 2 * s_par)
        return [var_in[:, None, None], (1.0 / self.schur)[:, None, None]]


register_compiled("glm-canonical", _glm_applies, _glm_build)
register_compiled("cumulative-scalar",
                  lambda model, terms: isinstance(model, CumulativeRowModel) and len(terms) == 1
                  and terms[0].k == 1,
                  lambda model, terms, system, settings: CumulativeScalar(model, terms, settings))
register_compiled("cumulative-nested",
                  lambda model, terms: isinstance(model, CumulativeRowModel) and nested_parent(terms) is not None,
                  lambda model, terms, system, settings: CumulativeNested(model, terms, settings))

__all__ = ["ModeSettings", "GLMM_MODES", "CLMM_MODES", "ModeError", "GLMRowModel", "CumulativeRowModel",
           "ModeProblem", "find_modes", "laplace_logdet", "conditional_sds", "register_compiled",
           "compiled_name", "compiled_path", "nested_parent", "CumulativeScalar", "CumulativeNested"]
