"""Every model kind returns the API.md frames, in the input's library, through df.mixed and mf.X alike."""
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import mixframe as mf

COEF_COLS = ["term", "estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high"]
VC_COLS = ["group", "term1", "term2", "vcov", "sdcor"]
BLUP_COLS = ["group", "level", "term", "estimate", "std_error"]
GLANCE_COLS = ["nobs", "n_dropped", "loglik", "aic", "bic", "deviance", "reml_criterion", "sigma", "df_resid",
               "converged", "singular", "method", "iterations"]


def fits(backend):
    sleep = mf.datasets.sleepstudy(backend=backend)
    cbpp = mf.datasets.cbpp(backend=backend)
    wine = mf.datasets.wine(backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "lmm": (sleep, sleep.mixed.lmm("Reaction ~ Days + (Days | Subject)")),
            "glmm": (cbpp, cbpp.mixed.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                           family="binomial")),
            "clmm": (wine, wine.mixed.clmm("rating ~ temp + contact", groups="judge")),
            "clm": (wine, wine.mixed.clm("rating ~ temp + contact")),
        }


@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_frames_follow_the_contract(backend):
    native = pd.DataFrame if backend == "pandas" else pl.DataFrame
    for kind, (data, fit) in fits(backend).items():
        co = fit.coefficients()
        assert isinstance(co, native), kind
        cols = list(co.columns)
        assert all(c in cols for c in COEF_COLS), (kind, cols)
        assert cols[0] == "coef_type", kind
        blocks = ["threshold"] * 4 + ["location"] * 2 if kind in ("clmm", "clm") else \
            ["fixed"] * len(fit.fixef)
        assert list(co["coef_type"]) == blocks, kind
        if kind in ("glmm", "clmm", "clm"):
            assert {"exp_estimate", "exp_conf_low", "exp_conf_high"} <= set(cols)
        assert isinstance(fit.glance(), native)
        assert all(c in fit.glance().columns for c in GLANCE_COLS), kind
        aug = fit.augment()
        assert isinstance(aug, native) and len(aug) == len(data), kind
        assert ".used" in aug.columns
        if kind != "clm":
            assert list(fit.variance_components().columns) == VC_COLS
            assert list(fit.blups().columns) == BLUP_COLS
        assert isinstance(fit.summary(), str) and len(fit.summary()) > 100
        assert fit.nobs == len(data)


def test_accessor_equals_function_and_frame_untouched():
    d = mf.datasets.sleepstudy()
    before = d.copy()
    a = d.mixed.lmm("Reaction ~ Days + (1 | Subject)")
    b = mf.lmm("Reaction ~ Days + (1 | Subject)", d)
    assert a.fixef == b.fixef
    pd.testing.assert_frame_equal(d, before)
    assert not hasattr(d, "_mixframe_fit")


def test_predict_unseen_levels_get_zero():
    d = mf.datasets.sleepstudy()
    fit = mf.lmm("Reaction ~ Days + (Days | Subject)", d)
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["not-a-subject", "not-a-subject"]})
    np.testing.assert_allclose(fit.predict(new), fit.predict(new, re=False))
    cprob = mf.clmm("rating ~ temp + contact", mf.datasets.wine(), groups="judge").predict(type="prob")
    np.testing.assert_allclose(cprob.sum(axis=1), 1.0)
