"""Per-row columns of ``augment()``: fitted values, linear predictors and residuals.

LMM/GLMM: ``.fitted`` (response scale, with random effects), ``.fixed`` (response scale,
population level), ``.eta``, ``.resid`` (y − fitted), ``.pearson_resid``
((y − μ)·√w / √V(μ), as lme4's ``residuals(type = "pearson")``; V of the NB2 includes θ), ``.deviance_resid``, ``.used``.
CLMM/CLM: ``.prob_<level>`` per category, ``.fitted`` (probability of the observed category, as
ordinal's ``fitted()``), ``.predicted`` (the most probable category), ``.eta`` (location
predictor), ``.used``.  Rows with ``.used`` False have nulls everywhere else.

The columns come from the fit's model kind (:mod:`mixframe.models`), which maps the linear predictor to the
response scale.
"""
from __future__ import annotations

from mixframe.models.base import kind_of

from .predict import linear_predictor


def response_scale(raw) -> dict:
    """Fitted values and residuals of an LMM/GLMM on the used rows (arrays of length n_obs)."""
    return kind_of(raw).response_scale(raw)


def augment_columns(raw) -> dict:
    """New columns for every input row of the fit, in input order.

    Examples
    --------
    Given a fitted ``raw`` record, ``augment_columns(raw)[".used"]`` is ``raw.design.used``.
    """
    return kind_of(raw).fitted_columns(raw)


def augment_new_columns(raw, newdata) -> dict:
    """Prediction columns for the rows of ``newdata`` (no response, so no residuals).

    LMM/GLMM: ``.fitted``, ``.fixed``, ``.eta``, ``.used``; CLMM/CLM: ``.prob_<level>``,
    ``.predicted``, ``.eta``, ``.used``.
    """
    eta, used = linear_predictor(raw, newdata, re=True)
    eta_fixed, _ = linear_predictor(raw, newdata, re=False)
    return kind_of(raw).new_columns(raw, eta, eta_fixed, used)
