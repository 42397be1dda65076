"""What the numbers of a fitted GLMM mean: one "fixed" coefficient block, the family's inverse link from the
linear predictor to the mean, Pearson and deviance residuals, z tests, and lme4's summary layout.

:class:`GlmmKind` is also the base of the LMM's kind (the gaussian-identity case with its own dispersion,
df and REML).
"""
from __future__ import annotations

import re

import numpy as np

from ..base import ModelKind


class GlmmKind(ModelKind):
    """A mixed model for the mean of the response through a link (LMM and GLMM)."""

    name = "glmm"
    title = "Generalized linear mixed model"

    # ------------------------------------------------------------------ response scale
    def family(self, raw):
        """The family object (``linkinv``, ``variance``, ``dev_resid``) of the fit."""
        from mixframe.families import family_of

        return family_of(raw)

    def dispersion(self, raw) -> float | None:
        """The dispersion passed to the family's variance and deviance (NB2 size, ...), or None."""
        return None if raw.sigma is None else float(raw.sigma)

    def response_scale(self, raw) -> dict:
        """Fitted values and residuals on the used rows (arrays of length n_obs): ``fitted, fixed, eta,
        resid, pearson, deviance``."""
        from mixframe.families import with_dispersion

        fam = self.family(raw)
        d = raw.design
        y = np.asarray(d.y, dtype=float)
        wt = np.ones_like(y) if d.weights is None else np.asarray(d.weights, dtype=float)
        mu = np.asarray(fam.linkinv(np.asarray(raw.eta, dtype=float)), dtype=float)
        mu_fixed = np.asarray(fam.linkinv(np.asarray(raw.eta_fixed, dtype=float)), dtype=float)
        resid = y - mu
        disp = self.dispersion(raw)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.asarray(with_dispersion(fam.variance, mu, disp=disp), dtype=float)
            pearson = resid * np.sqrt(wt) / np.sqrt(var)
            dev = np.asarray(with_dispersion(fam.dev_resid, y, mu, wt, disp=disp), dtype=float)
        deviance_resid = np.sign(resid) * np.sqrt(np.clip(dev, 0.0, None))
        return {"fitted": mu, "fixed": mu_fixed, "eta": np.asarray(raw.eta, dtype=float),
                "resid": resid, "pearson": pearson, "deviance": deviance_resid}

    def fitted_columns(self, raw) -> dict:
        from mixframe.results.predict import expand

        used = np.asarray(raw.design.used, dtype=bool)
        r = self.response_scale(raw)
        return {
            ".fitted": expand(r["fitted"], used),
            ".fixed": expand(r["fixed"], used),
            ".eta": expand(r["eta"], used),
            ".resid": expand(r["resid"], used),
            ".pearson_resid": expand(r["pearson"], used),
            ".deviance_resid": expand(r["deviance"], used),
            ".used": used,
        }

    def new_columns(self, raw, eta, eta_fixed, used) -> dict:
        fam = self.family(raw)
        fitted = np.full_like(eta, np.nan)
        fixed = np.full_like(eta, np.nan)
        fitted[used] = fam.linkinv(eta[used])
        fixed[used] = fam.linkinv(eta_fixed[used])
        return {".fitted": fitted, ".fixed": fixed, ".eta": eta, ".used": used}

    def predict(self, raw, eta, used, type: str) -> np.ndarray:
        if type == "link":
            return eta
        mu = np.full_like(eta, np.nan)
        mu[used] = self.family(raw).linkinv(eta[used])
        return mu

    # ------------------------------------------------------------------ variance components
    def residual_variance(self, raw) -> float | None:
        """σ² of a gaussian GLMM; for gamma and inverse-Gaussian GLMMs ``raw.extra["residual_variance"]``
        when the fit supplies it."""
        if raw.family not in ("gaussian", "gamma", "inverse_gaussian"):
            return None
        value = raw.extra.get("residual_variance")
        if value is None and raw.family == "gaussian" and raw.sigma is not None:
            value = float(raw.sigma) ** 2          # the gaussian dispersion is the residual SD
        return None if value is None else float(value)

    def latent_residual_variance(self, raw) -> float | None:
        """σ² (gaussian identity), π²/3 (binomial logit), 1 (binomial probit); None otherwise."""
        if raw.family == "gaussian" and raw.link == "identity":
            return None if raw.sigma is None else float(raw.sigma) ** 2
        if raw.family == "binomial" and raw.link == "logit":
            return np.pi ** 2 / 3.0
        if raw.family == "binomial" and raw.link == "probit":
            return 1.0
        return None

    # ------------------------------------------------------------------ text
    def method_title(self, raw) -> str:
        agq = re.fullmatch(r"AGQ\((\d+)\)", raw.method)
        if raw.method == "Laplace":
            how = "Laplace Approximation"
        elif agq:
            how = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {agq.group(1)}"
        else:
            how = raw.method
        return f"Generalized linear mixed model fit by maximum likelihood ({how})"

    def summary_family_line(self, raw) -> str | None:
        return f" Family: {raw.family}  ( {raw.link} )"

    def dispersion_line(self, raw) -> str | None:
        if raw.sigma is None:
            return None
        what = {"negative_binomial": "NB2 size theta", "gamma": "coefficient of variation"}.get(
            raw.family, "residual SD")
        return f"Dispersion parameter for {raw.family} family ({what}): {raw.sigma:.4g}"

    def summary(self, raw, data_name, threshold) -> str:
        from mixframe.results.summary import mixed_summary

        return mixed_summary(raw, data_name)


GLMM = GlmmKind()
