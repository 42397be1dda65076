"""What the numbers of a fitted LMM mean, and its quantities computed on first use.

An LMM is the gaussian-identity case of :class:`~mixframe.models.glmm.result.GlmmKind` with the residual SD
as its scale, Satterthwaite t tests, REML fits refitted by ML for likelihood-ratio tests, and lme4's title.

:class:`LmmDeferred` holds what the conditional SDs of the random effects and the Satterthwaite df need (the
design, θ, σ and the criterion); the penalized system is kept while the fit lives in this process and
rebuilt from the design after unpickling. A streamed design has no rows to rebuild it from, so a streamed
record computes both quantities before it is pickled.
"""
from __future__ import annotations

import numpy as np

from ..glmm.result import GlmmKind


class LmmDeferred:
    """The recipe of an LMM's lazy quantities (picklable: numbers and the design, no closures).

    Parameters
    ----------
    design : Design
        The fitted design (in memory or streamed).
    theta : ndarray
        The estimate of θ.
    sigma : float
        The residual SD at θ.
    reml : bool
        The criterion that was optimised.
    objective : LmmObjective, optional
        The fitted objective, reused while the record lives in this process.
    """

    def __init__(self, design, theta, sigma, reml, objective=None):
        self.design = design
        self.theta = np.asarray(theta, dtype=float).copy()
        self.sigma = float(sigma)
        self.reml = bool(reml)
        self.objective = objective
        self._done: dict = {}

    def _objective(self):
        if self.objective is None:
            from mixframe.fit.lmm import LmmObjective

            if self.design.X.shape[0] != self.design.n_obs:
                raise ValueError("this streamed LMM record was unpickled without its conditional SDs and "
                                 "Satterthwaite df, and has no rows to compute them from")
            self.objective = LmmObjective(self.design, self.reml)
        return self.objective

    def conditional_sds(self) -> list:
        """σ · sqrt(diag(Λ C_u Λ')) per term and level, (n_levels, k) arrays, at the estimate."""
        if "sds" not in self._done:
            from mixframe.design.terms import theta_to_lambdas

            obj = self._objective()
            obj._factor(self.theta)     # the factor may have moved (Satterthwaite df evaluate elsewhere)
            lambdas = theta_to_lambdas(self.design.terms, self.theta)
            self._done["sds"] = [
                self.sigma * np.sqrt(np.maximum(np.einsum("ab,jbc,ac->ja", lam, cu, lam), 0.0))
                for lam, cu in zip(lambdas, obj.system.cond_cov_u())]
        return self._done["sds"]

    def satterthwaite(self):
        """Satterthwaite df per fixed effect (None where the deviance Hessian is not positive definite)."""
        if "df" not in self._done:
            from mixframe.fit.satterthwaite import satterthwaite_df

            self._done["df"] = satterthwaite_df(self._objective(), self.theta, self.sigma)
        return self._done["df"]

    def __getstate__(self):
        if self.design.X.shape[0] != self.design.n_obs:    # streamed: nothing to rebuild the system from
            self.conditional_sds()
            self.satterthwaite()
        state = dict(self.__dict__)
        state["objective"] = None
        return state


class LmmKind(GlmmKind):
    """A linear mixed model fitted by REML or ML."""

    name = "lmm"
    title = "Linear mixed model"

    def dispersion(self, raw) -> float | None:
        return None

    def ddf(self, raw) -> np.ndarray | None:
        return raw.ddf()

    def uses_t(self, raw) -> bool:
        return raw.df is not None

    def residual_variance(self, raw) -> float | None:
        return float(raw.sigma) ** 2

    def latent_residual_variance(self, raw) -> float | None:
        return None if raw.sigma is None else float(raw.sigma) ** 2

    def residual_scale(self, raw) -> float:
        return float(raw.sigma)

    def needs_ml_refit(self, raw) -> bool:
        return raw.reml_crit is not None

    def method_title(self, raw) -> str:
        how = "REML" if raw.method.upper() == "REML" else "maximum likelihood"
        title = f"Linear mixed model fit by {how}"
        if self.uses_t(raw):
            title += ". t-tests use Satterthwaite's method"
        return title

    def summary_family_line(self, raw) -> str | None:
        return None

    def dispersion_line(self, raw) -> str | None:
        return None

    def summary_with_p(self, raw) -> bool:
        return self.uses_t(raw)


LMM = LmmKind()
