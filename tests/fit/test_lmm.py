"""LMM objective at R's theta against R's criterion, and LMM-specific behaviour."""

import numpy as np
import pytest

import mixframe as mf
from mixframe.design.build import build_design
from mixframe.fit.lmm import LmmObjective

from conftest import case_frame, load_case

LMM_CASES = ["sleepstudy_reml", "sleepstudy_ml", "sleepstudy_uncorr", "sleepstudy_ri", "dyestuff",
             "penicillin", "pastes", "insteval"]
FORMULAS = {"sleepstudy_uncorr": "Reaction ~ Days + (Days || Subject)"}


@pytest.mark.parametrize("name", LMM_CASES)
def test_deviance_at_R_theta(name):
    case = load_case(name)
    formula = FORMULAS.get(name, case["formula"])
    design = build_design(formula, case_frame(case, formula=formula), kind="lmm")
    reml = case["method"] == "REML"
    obj = LmmObjective(design, reml=reml)
    theta = np.array(list(case["theta"].values()))
    ours = obj(theta)
    ref = case["REMLcrit"] if reml else -2.0 * case["logLik"]
    assert ours == pytest.approx(ref, rel=1e-8)


def test_weights_scale_residual_variance():
    d = mf.datasets.sleepstudy()
    base = mf.lmm("Reaction ~ Days + (1 | Subject)", d)
    w = np.full(len(d), 4.0)
    weighted = mf.lmm("Reaction ~ Days + (1 | Subject)", d, weights=w)
    assert weighted.sigma == pytest.approx(2.0 * base.sigma, rel=1e-6)
    np.testing.assert_allclose(list(weighted.fixef.values()), list(base.fixef.values()), rtol=1e-6)


def test_singular_fit_warns_and_is_recorded():
    rs = np.random.default_rng(1)
    import pandas as pd
    d = pd.DataFrame({"g": np.repeat(list("abcdefgh"), 10), "x": rs.normal(size=80)})
    d["y"] = 1.0 + 0.5 * d["x"] + rs.normal(size=80)   # no group variance at all
    with pytest.warns(mf.SingularFitWarning):
        fit = mf.lmm("y ~ x + (1 | g)", d)
    assert fit.singular
    assert bool(fit.glance()["singular"][0])


def test_offset_enters_linear_predictor():
    d = mf.datasets.sleepstudy()
    off = np.asarray(d["Days"], dtype=float) * 10.0
    fit = mf.lmm("Reaction ~ Days + (1 | Subject)", d, offset=off)
    base = mf.lmm("Reaction ~ Days + (1 | Subject)", d)
    assert fit.fixef["Days"] == pytest.approx(base.fixef["Days"] - 10.0, rel=1e-6)
    np.testing.assert_allclose(fit.predict(type="link"), base.predict(type="link"), rtol=1e-6)


def test_ml_refit_for_anova():
    d = mf.datasets.sleepstudy()
    small = mf.lmm("Reaction ~ Days + (1 | Subject)", d)
    big = mf.lmm("Reaction ~ Days + (Days | Subject)", d)
    tab = mf.anova(small, big)
    chisq = float(np.asarray(tab["chisq"])[-1])
    # lme4: anova(refit ML) gives Chisq 42.139 on 2 df
    assert chisq == pytest.approx(42.139, abs=2e-3)
