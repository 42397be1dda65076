"""The protocol a fitted model kind implements, and the table that maps a fit record to its kind.

A fit record (:class:`mixframe.fit.result.FitResult`) holds numbers; its :class:`ModelKind` says what they
mean: which coefficient blocks it has and which one multiplies the fixed-effects design, how the linear
predictor maps to the response scale (fitted values, residuals, probabilities), which residual variance
the variance components and the ICC show, whether tests are t-based, how the method is titled and what the
printed summary shows. :mod:`mixframe.results` (tidy frames, summary, HTML, augment, predict, anova) asks
these questions through the kind and never tests the kind's name.

A new kind is a new module with a subclass of :class:`ModelKind` and one line in :data:`KIND_MODULES`.
"""
from __future__ import annotations

from importlib import import_module

import numpy as np

#: the module and attribute holding each kind's implementation, imported on first use
KIND_MODULES = {
    "lmm": ("mixframe.models.lmm.result", "LMM"),
    "glmm": ("mixframe.models.glmm.result", "GLMM"),
    "clmm": ("mixframe.models.clmm.result", "CLMM"),
    "clm": ("mixframe.models.clmm.result", "CLM"),
}
_RESOLVED: dict = {}


def kind_of(raw) -> ModelKind:
    """The :class:`ModelKind` of a fit record (by its ``kind`` name)."""
    name = raw.kind
    impl = _RESOLVED.get(name)
    if impl is None:
        if name not in KIND_MODULES:
            raise ValueError(f"unknown model kind '{name}'; known: {sorted(KIND_MODULES)}")
        module, attr = KIND_MODULES[name]
        impl = _RESOLVED[name] = getattr(import_module(module), attr)
    return impl


class ModelKind:
    """What a fitted kind's numbers mean. Subclasses override the class attributes and the methods below.

    Attributes
    ----------
    name : the kind's name (``fit.kind``)
    title : the model's name in words ("Linear mixed model")
    blocks : the coefficient blocks in ``coefficients()`` order
    x_block : the block whose coefficients multiply the columns of the fixed-effects design
    threshold_block : the block of cut-points (ordinal kinds), else None
    predict_types : the ``type=`` values ``predict`` accepts; the first is the default
    ratio_links : links whose exponentiated coefficients are ratios (odds, rates)
    """

    name = ""
    title = ""
    blocks: tuple = ("fixed",)
    x_block = "fixed"
    threshold_block: str | None = None
    predict_types: tuple = ("response", "link")
    ratio_links: tuple = ("log", "logit")

    # ------------------------------------------------------------------ coefficients
    def coef_types(self, raw) -> list:
        """The block of each coefficient, in coefficient order."""
        return list(raw.coef_types)

    def ddf(self, raw) -> np.ndarray | None:
        """Denominator df per coefficient when tests are t-based, else None (z-based)."""
        return None

    def uses_t(self, raw) -> bool:
        """True when coefficient tests and intervals use t quantiles (the kind supplies df)."""
        return False

    def exp_columns(self, raw) -> bool:
        """Whether ``coefficients()`` adds ``exp_estimate, exp_conf_low, exp_conf_high``."""
        return raw.link in self.ratio_links

    def ratio_label(self, raw) -> str:
        """The name of the exponentiated estimate in the HTML view."""
        return {"logit": "odds ratio", "log": "ratio"}.get(raw.link, "exp(estimate)")

    # ------------------------------------------------------------------ variance components
    def residual_variance(self, raw) -> float | None:
        """The residual variance shown after the random effects (σ²), or None when there is none."""
        return None

    def latent_residual_variance(self, raw) -> float | None:
        """The level-1 variance of the ICC, or None where the ICC is undefined."""
        return None

    # ------------------------------------------------------------------ per-row outputs
    def fitted_columns(self, raw) -> dict:
        """``augment()`` columns for every input row of the fit, in input order."""
        raise NotImplementedError

    def new_columns(self, raw, eta, eta_fixed, used) -> dict:
        """``augment(newdata)`` columns from the linear predictors on new rows (``used``: usable rows)."""
        raise NotImplementedError

    def predict(self, raw, eta, used, type: str) -> np.ndarray:
        """``predict(type=...)`` from the linear predictor (NaN where not ``used``)."""
        raise NotImplementedError

    def check_predict_type(self, type: str | None) -> str:
        """``type`` or the default, after checking it is one of :attr:`predict_types`."""
        if type is None:
            return self.predict_types[0]
        if type not in self.predict_types:
            raise ValueError(f"type must be one of {', '.join(repr(a) for a in self.predict_types)} for a "
                             f"{self.name.upper()}, got {type!r}")
        return type

    # ------------------------------------------------------------------ likelihood and text
    def loglik(self, raw) -> float:
        """The maximised log-likelihood (the REML one for REML fits)."""
        return float(raw.loglik)

    def n_params(self, raw) -> int:
        """The number of estimated parameters (for AIC, BIC and likelihood-ratio tests)."""
        return int(raw.n_params)

    def needs_ml_refit(self, raw) -> bool:
        """True when likelihood-ratio tests need the model refitted by maximum likelihood (REML fits)."""
        return False

    def family_label(self, raw) -> str:
        """Family and link in words ("binomial (logit)", "cumulative probit")."""
        return f"{raw.family} ({raw.link})"

    def method_title(self, raw) -> str:
        """The first line of the printed summary."""
        raise NotImplementedError

    def summary(self, raw, data_name: str | None, threshold: str) -> str:
        """The printed summary."""
        raise NotImplementedError

    # the parts of an lme4-style summary (kinds printed in ordinal's layout leave them as they are)
    def summary_family_line(self, raw) -> str | None:
        """The " Family: ..." line under the title, or None."""
        return None

    def dispersion_line(self, raw) -> str | None:
        """The line naming the estimated dispersion parameter, or None."""
        return None

    def summary_with_p(self, raw) -> bool:
        """Whether the coefficient table of the summary shows p-values and stars."""
        return True

    def residual_scale(self, raw) -> float:
        """The scale the "Scaled residuals" of the summary divide the Pearson residuals by."""
        res = self.residual_variance(raw)
        return 1.0 if res is None else float(np.sqrt(res))
