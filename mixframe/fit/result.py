"""The raw fit record every fitting routine returns; ``mixframe.results`` turns it into tidy frames."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class RawFit:
    """Numbers of a finished fit, on the used rows (``design.used``).

    kind : "lmm" | "glmm" | "clmm" | "clm"
    design : the Design that was fitted
    coef_names : names of ``coef`` in order. LMM/GLMM: the fixed effects (= design.x_names).
        CLMM/CLM: thresholds first ("1|2", ...), then the location effects (x_names without intercept).
    coef : estimates in ``coef_names`` order (link scale)
    vcov : covariance of ``coef`` (same order)
    coef_types : for CLMM/CLM, "threshold" or "location" per coefficient; None otherwise
    theta : the optimizer's covariance parameters (see mixframe.design.terms)
    lambdas : per-term relative factor (k x k); the covariance of term t's effects is
        ``re_scale**2 * lam @ lam.T``
    re_scale : sigma for an LMM, 1.0 otherwise
    sigma : LMM residual SD; GLMM dispersion as API.md defines (NB2 size, Gamma CV, inverse
        Gaussian/gaussian SD); None for binomial, Poisson, ordinal
    b : per-term conditional modes, (n_levels, k) arrays
    b_sd : per-term conditional SDs, (n_levels, k) arrays
    eta : linear predictor with random effects and offset, on used rows (CLMM: x'beta + z'b, no thresholds)
    eta_fixed : the same without random effects
    loglik : maximised log-likelihood (REML one for REML fits)
    deviance : as lme4/glmmTMB/ordinal report it (see reference README)
    reml_crit : REML criterion or None
    n_params : number of estimated parameters (for AIC/BIC)
    df : Satterthwaite denominator df per coefficient (LMM), a zero-argument callable computing them on first
        use (read them through ``ddf()``), or None
    family, link : strings
    method : "REML", "ML", "Laplace", "AGQ(k)", "PIRLS (nAGQ=0)"
    converged, singular : bool
    iterations : optimizer function evaluations
    messages : warnings raised / optimizer messages
    extra : kind-specific extras (e.g. GLMM Pearson dispersion ratio, CLMM cond_H)
    """

    kind: str
    design: Any
    coef_names: list
    coef: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    lambdas: list
    re_scale: float
    sigma: float | None
    b: list
    b_sd: list
    eta: np.ndarray
    eta_fixed: np.ndarray
    loglik: float
    deviance: float
    n_params: int
    family: str
    link: str
    method: str
    converged: bool
    singular: bool
    iterations: int
    coef_types: list | None = None
    reml_crit: float | None = None
    df: np.ndarray | None = None
    messages: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def ddf(self):
        """The Satterthwaite df as an array (computed once, on first use), or None."""
        if callable(self.df):
            cache = self.__dict__.get("_ddf_cache")
            if cache is None:
                cache = self.__dict__["_ddf_cache"] = (self.df(),)
            return cache[0]
        return self.df
