"""Tests of the fitted-model object and its tidy frames, on hand-built RawFit records.

Small fakes check layouts, dtypes, nulls and libraries; records rebuilt from R reference fits
(sleepstudy, cbpp, wine) check the numbers against lme4 and ordinal.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import narwhals as nw
import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import special, stats

from mixframe.design.terms import theta_to_lambdas, z_times_b
from mixframe.design.terms import Design, RETerm
from mixframe.fit.result import RawFit
from mixframe.results import MixedModel, anova

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "tests" / "reference"
DATA = ROOT / "mixframe" / "datasets" / "data"


@pytest.fixture(params=["pandas", "polars"])
def backend(request):
    return request.param


def as_backend(df: pd.DataFrame, backend: str):
    return df if backend == "pandas" else pl.from_pandas(df)


def native_lib(frame) -> str:
    return "pandas" if isinstance(frame, pd.DataFrame) else "polars"


def col(frame, name) -> np.ndarray:
    return frame[name].to_numpy()


def nulls(frame, name) -> np.ndarray:
    return nw.from_native(frame, eager_only=True)[name].is_null().to_numpy()


def columns(frame) -> list:
    return list(nw.from_native(frame, eager_only=True).columns)


def make_raw(kind, design, coef_names, coef, vcov, lambdas, **kw):
    theta = (np.concatenate([lam[np.tril_indices(lam.shape[0])] for lam in lambdas]) if lambdas
             else np.zeros(0))
    base = {"kind": kind, "design": design, "coef_names": coef_names,
            "coef": np.asarray(coef, float), "vcov": np.asarray(vcov, float), "theta": theta,
            "lambdas": lambdas, "re_scale": 1.0, "sigma": None, "b": [], "b_sd": [],
            "eta": np.zeros(design.n_obs), "eta_fixed": np.zeros(design.n_obs), "loglik": -10.0,
            "deviance": 20.0, "n_params": len(coef), "family": "gaussian", "link": "identity",
            "method": "ML", "converged": True, "singular": False, "iterations": 12}
    base.update(kw)
    return RawFit(**base)


# --------------------------------------------------------------------------- a small fake LMM
def small_lmm(uncorrelated=False, reml=True, loglik=-20.0):
    x = np.array([0.0, 1.0, 2.0, 0.5, 1.5, 2.5, 1.0, 0.0, 3.0])
    g = np.array(["a", "a", "a", "b", "b", "b", "c", "c", "c"])
    y = np.array([1.0, 2.2, 2.9, 0.4, np.nan, 1.7, 3.1, 2.5, 4.2])
    used = ~np.isnan(y)
    data = pd.DataFrame({"y": y, "x": x, "g": g}, index=np.arange(100, 109))
    levels = ["a", "b", "c"]
    codes = np.array([levels.index(v) for v in g[used]], dtype=np.int32)
    X = np.column_stack([np.ones(used.sum()), x[used]])
    sigma = 2.0
    if uncorrelated:
        terms = [RETerm("g", codes, levels, X[:, :1].copy(), ["(Intercept)"]),
                 RETerm("g", codes, levels, X[:, 1:].copy(), ["x"], expr="0 + x")]
        lambdas = [np.array([[1.0]]), np.array([[0.8]])]
        b = [np.array([[0.5], [-0.2], [-0.3]]), np.array([[0.1], [0.0], [-0.1]])]
    else:
        terms = [RETerm("g", codes, levels, X.copy(), ["(Intercept)", "x"], expr="x")]
        lambdas = [np.array([[1.0, 0.0], [0.5, 0.8]])]
        b = [np.array([[0.5, 0.1], [-0.2, 0.0], [-0.3, -0.1]])]
    b_sd = [np.full_like(bt, 0.25) for bt in b]
    design = Design(X=X, x_names=["(Intercept)", "x"], y=y[used], weights=None, offset=None,
                    terms=terms, used=used, n_total=len(y), response="y",
                    formula="y ~ x + (x | g)" if not uncorrelated else "y ~ x + (x || g)")
    coef = np.array([1.5, 0.3])
    eta_fixed = X @ coef
    eta = eta_fixed + sum(np.einsum("ij,ij->i", t.Z, bt[t.codes]) for t, bt in zip(terms, b))
    raw = make_raw("lmm", design, ["(Intercept)", "x"], coef, [[0.04, -0.01], [-0.01, 0.02]],
                   lambdas, re_scale=sigma, sigma=sigma, b=b, b_sd=b_sd, eta=eta, eta_fixed=eta_fixed,
                   loglik=loglik, deviance=39.0, n_params=6 if not uncorrelated else 5,
                   method="REML" if reml else "ML", reml_crit=-2 * loglik if reml else None,
                   df=np.array([5.0, 7.0]))
    return raw, data


def small_fit(backend, **kw):
    raw, data = small_lmm(**kw)
    return MixedModel(raw, as_backend(data, backend), {"data_name": "toy"})


@pytest.mark.parametrize("lazy_df", [False, True])
def test_lmm_coefficients(backend, lazy_df):
    raw, data = small_lmm()
    if lazy_df:
        calls = []
        raw = dataclasses.replace(raw, df=lambda: calls.append(1) or np.array([5.0, 7.0]))
    fit = MixedModel(raw, as_backend(data, backend), {"data_name": "toy"})
    out = fit.coefficients()
    assert native_lib(out) == backend
    assert columns(out) == ["coef_type", "term", "estimate", "std_error", "statistic", "df", "p_value",
                            "conf_low", "conf_high"]
    assert list(col(out, "coef_type")) == ["fixed", "fixed"]
    assert list(col(out, "term")) == ["(Intercept)", "x"]
    se = np.sqrt([0.04, 0.02])
    np.testing.assert_allclose(col(out, "std_error"), se)
    t = np.array([1.5, 0.3]) / se
    np.testing.assert_allclose(col(out, "p_value"), 2 * stats.t.sf(np.abs(t), [5.0, 7.0]))
    np.testing.assert_allclose(col(out, "conf_high"), [1.5, 0.3] + stats.t.ppf(0.975, [5, 7]) * se)
    assert col(out, "df").dtype == np.float64
    wald = fit.confint()
    np.testing.assert_allclose(col(wald, "conf_low"), [1.5, 0.3] - stats.norm.ppf(0.975) * se)
    sat = fit.confint(level=0.9, method="satterthwaite")
    np.testing.assert_allclose(col(sat, "conf_low"), [1.5, 0.3] - stats.t.ppf(0.95, [5, 7]) * se)
    with pytest.raises(ValueError):
        fit.confint(method="profile")
    with pytest.raises(ValueError):
        fit.coefficients(level=1.5)
    if lazy_df:
        fit.summary()
        assert len(calls) == 1                      # computed once, on first use


def test_lmm_variance_components(backend):
    fit = small_fit(backend)
    vc = fit.variance_components()
    assert native_lib(vc) == backend
    assert columns(vc) == ["group", "term1", "term2", "vcov", "sdcor"]
    assert list(col(vc, "group")) == ["g", "g", "g", "Residual"]
    lam = np.array([[1.0, 0.0], [0.5, 0.8]])
    cov = 4.0 * lam @ lam.T
    np.testing.assert_allclose(col(vc, "vcov"), [cov[0, 0], cov[1, 1], cov[1, 0], 4.0])
    corr = cov[1, 0] / np.sqrt(cov[0, 0] * cov[1, 1])
    np.testing.assert_allclose(col(vc, "sdcor"), [2.0, np.sqrt(cov[1, 1]), corr, 2.0])
    assert list(nulls(vc, "term2")) == [True, True, False, True]
    assert list(nulls(vc, "term1")) == [False, False, False, True]
    assert col(vc, "term2")[2] == "x"


def test_uncorrelated_terms_keep_group_name(backend):
    fit = small_fit(backend, uncorrelated=True)
    vc = fit.variance_components()
    assert list(col(vc, "group")) == ["g", "g", "Residual"]
    np.testing.assert_allclose(col(vc, "vcov"), [4.0, 4.0 * 0.64, 4.0])
    g = fit.glance()
    assert [c for c in columns(g) if c.startswith("ngroups_")] == ["ngroups_g"]
    assert fit.ngroups == {"g": 3}
    np.testing.assert_allclose(col(fit.icc(), "icc"), [4.0 / 8.0])


def test_lmm_blups(backend):
    fit = small_fit(backend)
    bl = fit.blups()
    assert columns(bl) == ["group", "level", "term", "estimate", "std_error"]
    assert list(col(bl, "level")) == ["a", "b", "c"] * 2
    assert list(col(bl, "term")) == ["(Intercept)"] * 3 + ["x"] * 3
    np.testing.assert_allclose(col(bl, "estimate"), [0.5, -0.2, -0.3, 0.1, 0.0, -0.1])


def test_lmm_augment_keeps_every_row(backend):
    raw, data = small_lmm()
    fit = MixedModel(raw, as_backend(data, backend))
    aug = fit.augment()
    assert native_lib(aug) == backend
    new = [".fitted", ".fixed", ".eta", ".resid", ".pearson_resid", ".deviance_resid", ".used"]
    assert columns(aug) == ["y", "x", "g"] + new
    assert len(col(aug, ".used")) == 9
    assert list(col(aug, ".used")) == list(raw.design.used)
    for name in new[:-1]:
        assert list(nulls(aug, name)) == list(~raw.design.used)
    fitted = col(aug, ".fitted")[raw.design.used]
    np.testing.assert_allclose(fitted, raw.eta)
    np.testing.assert_allclose(col(aug, ".resid")[raw.design.used], raw.design.y - raw.eta)
    np.testing.assert_allclose(col(aug, ".pearson_resid")[raw.design.used], raw.design.y - raw.eta)
    np.testing.assert_allclose(col(aug, ".deviance_resid")[raw.design.used], raw.design.y - raw.eta)
    if backend == "pandas":
        assert list(aug.index) == list(data.index)
        assert "." + "fitted" not in data.columns        # the user's frame is not touched


def test_lmm_glance_and_scalars(backend):
    fit = small_fit(backend)
    g = fit.glance()
    assert native_lib(g) == backend
    expected = ["nobs", "n_dropped", "loglik", "aic", "bic", "deviance", "reml_criterion", "sigma",
                "df_resid", "converged", "singular", "method", "iterations", "ngroups_g"]
    assert columns(g) == expected
    assert col(g, "nobs")[0] == 8 and col(g, "n_dropped")[0] == 1 and col(g, "df_resid")[0] == 2
    assert col(g, "aic")[0] == pytest.approx(40.0 + 12.0)
    assert col(g, "bic")[0] == pytest.approx(40.0 + np.log(8) * 6)
    assert col(g, "method")[0] == "REML"
    assert fit.aic == pytest.approx(52.0) and fit.nobs == 8 and fit.sigma == 2.0
    assert fit.fixef == {"(Intercept)": 1.5, "x": 0.3}
    assert fit.thresholds is None and fit.kind == "lmm"
    assert fit.formula == "y ~ x + (x | g)"
    v = fit.vcov
    assert columns(v) == ["term", "(Intercept)", "x"]
    np.testing.assert_allclose(col(v, "x"), [-0.01, 0.02])
    with pytest.raises(AttributeError):
        fit.kind = "glmm"
    with pytest.raises(ValueError):
        fit.theta[0] = 3.0
    twin = copy.copy(fit)
    assert twin.fixef == fit.fixef and twin.raw is fit.raw


def test_lmm_predict_aligns_with_input():
    raw, data = small_lmm()
    fit = MixedModel(raw, data)
    p = fit.predict()
    assert p.shape == (9,) and np.isnan(p[4])
    np.testing.assert_allclose(p[raw.design.used], raw.eta)
    np.testing.assert_allclose(fit.predict(re=False)[raw.design.used], raw.eta_fixed)
    np.testing.assert_allclose(fit.predict(type="link"), p, equal_nan=True)
    with pytest.raises(ValueError):
        fit.predict(type="prob")


def test_predict_newdata_unseen_level(backend):
    from mixframe.design.build import build_design

    raw0, data = small_lmm()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")               # the dropped row may be announced here
        design = build_design("y ~ x + (x | g)", data, kind="lmm")
    assert design.terms[0].levels == ["a", "b", "c"]
    raw = make_raw("lmm", design, raw0.coef_names, raw0.coef, raw0.vcov, raw0.lambdas,
                   re_scale=2.0, sigma=2.0, b=raw0.b, b_sd=raw0.b_sd, eta=raw0.eta,
                   eta_fixed=raw0.eta_fixed)
    fit = MixedModel(raw, as_backend(data, backend))
    new = as_backend(pd.DataFrame({"x": [1.0, 2.0, np.nan], "g": ["b", "zz", "a"]}), backend)
    p = fit.predict(new)
    b = raw.b[0]
    np.testing.assert_allclose(p[:2], [1.5 + 0.3 + b[1, 0] + b[1, 1], 1.5 + 0.6])
    assert np.isnan(p[2])
    np.testing.assert_allclose(fit.predict(new, re=False)[:2], [1.8, 2.1])
    aug = fit.augment(new)
    assert native_lib(aug) == backend
    assert columns(aug) == ["x", "g", ".fitted", ".fixed", ".eta", ".used"]
    np.testing.assert_allclose(col(aug, ".fixed")[:2], [1.8, 2.1])
    assert list(nulls(aug, ".fitted")) == [False, False, True]
    assert list(col(aug, ".used")) == [True, True, False]


def test_lmm_icc_and_summary():
    fit = small_fit("pandas")
    lam = np.array([[1.0, 0.0], [0.5, 0.8]])
    v0 = 4.0 * (lam @ lam.T)[0, 0]
    np.testing.assert_allclose(fit.icc()["icc"], [v0 / (v0 + 4.0)])
    text = fit.summary()
    for part in ["Linear mixed model fit by REML", "Formula: y ~ x + (x | g)", "   Data: toy",
                 "REML criterion at convergence: 40.0", "AIC", "df.resid", "Scaled residuals:",
                 "Random effects:", " Groups   Name", "Corr", "Residual",
                 "Number of obs: 8, groups:  g, 3", "Fixed effects:", "Std. Error", "t value",
                 "Pr(>|t|)", "Correlation of Fixed Effects:", "(Intr)"]:
        assert part in text, part
    assert repr(fit) == str(text)


# --------------------------------------------------------------------------- a small fake CLMM
def small_clmm(kind="clmm"):
    x = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 1.0])
    judge = np.array(["j1", "j1", "j1", "j2", "j2", "j2", "j2"])
    rating = ["low", "mid", "high", "low", None, "mid", "high"]
    used = np.array([r is not None for r in rating])
    levels = ["low", "mid", "high"]
    y = np.array([levels.index(r) for r in rating if r is not None], dtype=float)
    X = x[used][:, None]
    codes = np.array([0 if j == "j1" else 1 for j in judge[used]], dtype=np.int32)
    terms = [RETerm("judge", codes, ["j1", "j2"], np.ones((used.sum(), 1)), ["(Intercept)"])]
    if kind == "clm":
        terms = []
    design = Design(X=X, x_names=["x"], y=y, weights=None, offset=None, terms=terms, used=used,
                    n_total=7, response="rating", response_levels=levels,
                    formula="rating ~ x" + (" + (1 | judge)" if kind == "clmm" else ""))
    coef = np.array([-0.5, 1.0, 0.8])
    b = [np.array([[0.4], [-0.4]])] if kind == "clmm" else []
    eta_fixed = X[:, 0] * 0.8
    eta = eta_fixed + (b[0][codes, 0] if b else 0.0)
    lambdas = [np.array([[0.7]])] if kind == "clmm" else []
    raw = make_raw(kind, design, ["low|mid", "mid|high", "x"], coef, np.diag([0.2, 0.3, 0.1]),
                   lambdas, b=b, b_sd=[np.full((2, 1), 0.3)] if b else [], eta=eta,
                   eta_fixed=eta_fixed, coef_types=["threshold", "threshold", "location"],
                   family="cumulative", link="logit", method="Laplace" if kind == "clmm" else "ML",
                   loglik=-7.0 if kind == "clmm" else -7.5, n_params=4 if kind == "clmm" else 3)
    data = pd.DataFrame({"rating": rating, "x": x, "judge": judge})
    return raw, data


def test_clmm_coefficients_and_properties(backend):
    raw, data = small_clmm()
    fit = MixedModel(raw, as_backend(data, backend))
    out = fit.coefficients()
    assert columns(out) == ["coef_type", "term", "estimate", "std_error", "statistic", "df",
                            "p_value", "conf_low", "conf_high", "exp_estimate", "exp_conf_low",
                            "exp_conf_high"]
    assert list(col(out, "coef_type")) == ["threshold", "threshold", "location"]
    assert nulls(out, "df").all()
    np.testing.assert_allclose(col(out, "exp_estimate"), np.exp([-0.5, 1.0, 0.8]))
    np.testing.assert_allclose(col(out, "p_value"), 2 * stats.norm.sf(np.abs(raw.coef) /
                                                                    np.sqrt([0.2, 0.3, 0.1])))
    assert fit.fixef == {"x": 0.8}
    assert fit.thresholds == {"low|mid": -0.5, "mid|high": 1.0}
    vc = fit.variance_components()
    assert list(col(vc, "group")) == ["judge"]
    np.testing.assert_allclose(fit.icc()["icc"] if backend == "pandas" else col(fit.icc(), "icc"),
                               [0.49 / (0.49 + np.pi ** 2 / 3)])


def test_clmm_augment_and_predict(backend):
    raw, data = small_clmm()
    fit = MixedModel(raw, as_backend(data, backend))
    aug = fit.augment()
    new = [".prob_low", ".prob_mid", ".prob_high", ".fitted", ".predicted", ".eta", ".used"]
    assert columns(aug) == ["rating", "x", "judge"] + new
    probs = np.column_stack([col(aug, c) for c in new[:3]])
    used = raw.design.used
    np.testing.assert_allclose(probs[used].sum(axis=1), 1.0)
    assert all(nulls(aug, c)[4] for c in new[:6])
    cum = special.expit(np.array([-0.5, 1.0])[None, :] - raw.eta[:, None])
    np.testing.assert_allclose(probs[used][:, 0], cum[:, 0])
    np.testing.assert_allclose(probs[used][:, 1], cum[:, 1] - cum[:, 0])
    obs = raw.design.y.astype(int)
    np.testing.assert_allclose(col(aug, ".fitted")[used], probs[used][np.arange(6), obs])
    labels = np.array(["low", "mid", "high"])[np.argmax(probs[used], axis=1)]
    assert list(col(aug, ".predicted")[used]) == list(labels)
    p = fit.predict()
    assert p.shape == (7, 3) and np.isnan(p[4]).all()
    assert fit.predict(type="cum.prob").shape == (7, 2)
    cls = fit.predict(type="class")
    assert cls[4] is None and list(cls[used]) == list(labels)
    np.testing.assert_allclose(fit.predict(type="linear.predictor")[used], raw.eta)
    pf = fit.predict(re=False)[used]
    np.testing.assert_allclose(pf[:, 0], special.expit(-0.5 - raw.eta_fixed))
    with pytest.raises(ValueError):
        fit.predict(type="response")


def test_clmm_summary_layout():
    raw, data = small_clmm()
    text = MixedModel(raw, data, {"data_name": "toy"}).summary()
    for part in ["Cumulative Link Mixed Model fitted with the Laplace approximation",
                 "formula: rating ~ x + (1 | judge)", "data:    toy", "link", "threshold", "logLik",
                 "niter", "Random effects:", "Number of groups:  judge 2", "Coefficients:",
                 "z value", "Pr(>|z|)", "Threshold coefficients:", "low|mid"]:
        assert part in text, part
    assert text.index("Coefficients:") < text.index("Threshold coefficients:")


# --------------------------------------------------------------------------- likelihood-ratio tests
def test_anova_chisq_arithmetic(backend):
    raw_a, data = small_lmm(reml=False, loglik=-100.0)
    raw_b, _ = small_lmm(reml=False, loglik=-95.0, uncorrelated=True)
    small = MixedModel(raw_a, as_backend(data, backend))           # 6 parameters
    smaller = MixedModel(raw_b, as_backend(data, backend))         # 5 parameters
    tab = anova(small, smaller, names=["full", "uncorr"])
    assert native_lib(tab) == backend
    assert columns(tab) == ["model", "npar", "aic", "bic", "loglik", "deviance", "chisq", "df",
                            "p_value"]
    assert list(col(tab, "model")) == ["uncorr", "full"]
    assert list(col(tab, "npar")) == [5, 6]
    assert nulls(tab, "chisq")[0] and nulls(tab, "p_value")[0]
    assert col(tab, "chisq")[1] == pytest.approx(0.0)          # a worse bigger model: max(0, .)
    raw_c, _ = small_lmm(reml=False, loglik=-90.0)
    tab = anova(MixedModel(raw_b, data), MixedModel(raw_c, data))
    assert col(tab, "chisq")[1] == pytest.approx(10.0)
    assert col(tab, "df")[1] == pytest.approx(1.0)
    assert col(tab, "p_value")[1] == pytest.approx(stats.chi2.sf(10.0, 1))
    np.testing.assert_allclose(col(tab, "deviance"), [190.0, 180.0])
    np.testing.assert_allclose(col(tab, "aic"), [190.0 + 10, 180.0 + 12])


def test_anova_refits_reml_and_checks_rows():
    raw_reml, data = small_lmm(reml=True, loglik=-50.0)
    raw_ml, _ = small_lmm(reml=False, loglik=-48.0)
    raw_small, _ = small_lmm(reml=False, loglik=-49.0, uncorrelated=True)
    ml_fit = MixedModel(raw_ml, data)
    reml_fit = MixedModel(raw_reml, data, {"refit_ml": lambda: ml_fit})
    tab = anova(reml_fit, MixedModel(raw_small, data))
    np.testing.assert_allclose(tab["loglik"], [-49.0, -48.0])
    with pytest.raises(ValueError, match="refit"):
        anova(MixedModel(raw_reml, data), ml_fit)
    with pytest.raises(ValueError):
        anova(ml_fit)
    raw_clm, wine = small_clmm("clm")
    with pytest.raises(ValueError, match="same rows"):
        anova(ml_fit, MixedModel(raw_clm, wine))


def test_anova_clm_against_clmm():
    raw_clmm, data = small_clmm("clmm")
    raw_clm, _ = small_clmm("clm")
    clm = MixedModel(raw_clm, data)
    assert clm.variance_components().shape[0] == 0 and clm.icc().shape[0] == 0
    assert "Cumulative Link Model" in clm.summary()
    tab = anova(MixedModel(raw_clmm, data), clm)
    assert list(tab["npar"]) == [3, 4]
    assert tab["chisq"].iloc[1] == pytest.approx(1.0)
    assert tab["p_value"].iloc[1] == pytest.approx(stats.chi2.sf(1.0, 1))


# --------------------------------------------------------------------------- records rebuilt from R fits
def reference(case):
    return json.loads((REF / f"{case}.json").read_text())


def ref_term(ref, df, group, Z, names):
    """A random-intercept/slope term with R's level order (taken from the reference ranef)."""
    rows = ref["ranef"][group]
    levels = list(dict.fromkeys(r["level"] for r in rows))
    codes = np.array([levels.index(str(v)) for v in df[group]], dtype=np.int32)
    b = np.array([[r["estimate"] for r in rows if r["term"] == n] for n in names]).T
    b_sd = np.array([[r["condsd"] for r in rows if r["term"] == n] for n in names]).T
    return RETerm(group, codes, levels, Z, names), b, b_sd


def sleepstudy_fit():
    ref = reference("sleepstudy_reml")
    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    X = np.column_stack([np.ones(len(df)), df["Days"].to_numpy(float)])
    term, b, b_sd = ref_term(ref, df, "Subject", X.copy(), ["(Intercept)", "Days"])
    design = Design(X=X, x_names=["(Intercept)", "Days"], y=df["Reaction"].to_numpy(float),
                    weights=None, offset=None, terms=[term], used=np.ones(len(df), bool),
                    n_total=len(df), response="Reaction", formula=ref["formula"])
    theta = np.array(list(ref["theta"].values()))
    lambdas = theta_to_lambdas([term], theta)
    beta = np.array(list(ref["fixef"].values()))
    eta_fixed = X @ beta
    raw = make_raw("lmm", design, list(ref["fixef"]), beta, ref["vcov"], lambdas,
                   re_scale=ref["sigma"], sigma=ref["sigma"], b=[b], b_sd=[b_sd],
                   eta=eta_fixed + z_times_b([term], [b]), eta_fixed=eta_fixed,
                   loglik=ref["logLik"], deviance=ref["deviance"], n_params=ref["df"],
                   method="REML", reml_crit=ref["REMLcrit"])
    return raw, df, ref


def test_sleepstudy_against_lme4(backend):
    raw, df, ref = sleepstudy_fit()
    fit = MixedModel(raw, as_backend(df, backend))
    vc = fit.variance_components()
    want = ref["varcorr"]
    assert list(col(vc, "group")) == [r["group"] for r in want]
    np.testing.assert_allclose(col(vc, "vcov"), [r["variance"] for r in want], rtol=1e-6)
    np.testing.assert_allclose(col(vc, "sdcor"), [r["sd"] if r["corr"] is None else r["corr"]
                                                 for r in want], rtol=1e-6)
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-10)
    assert fit.bic == pytest.approx(ref["BIC"], rel=1e-10)
    aug = fit.augment()
    np.testing.assert_allclose(col(aug, ".fitted")[:20], ref["fitted_head"], rtol=1e-8)
    np.testing.assert_allclose(col(aug, ".pearson_resid")[:20], ref["pearson_resid_head"], atol=1e-6)
    pred = ref["predictions"]
    np.testing.assert_allclose(fit.predict(re=False)[:10], pred["fixed_response"], rtol=1e-8)
    bl = fit.blups()
    flat = [r["estimate"] for r in ref["ranef"]["Subject"]]
    np.testing.assert_allclose(col(bl, "estimate"), flat)
    assert "Subject  (Intercept) 612.10" in fit.summary()


def cbpp_fit(family_obj=None):
    ref = reference("cbpp_laplace")
    df = pd.read_csv(DATA / "cbpp.csv", dtype={"herd": str, "period": str})
    period = df["period"].to_numpy()
    X = np.column_stack([np.ones(len(df))] + [(period == p).astype(float) for p in "234"])
    term, b, b_sd = ref_term(ref, df, "herd", np.ones((len(df), 1)), ["(Intercept)"])
    size = df["size"].to_numpy(float)
    design = Design(X=X, x_names=list(ref["fixef"]), y=df["incidence"].to_numpy(float) / size,
                    weights=size, offset=None, terms=[term], used=np.ones(len(df), bool),
                    n_total=len(df), response="cbind(incidence, size - incidence)",
                    formula=ref["formula"])
    beta = np.array(list(ref["fixef"].values()))
    lambdas = [np.array([[ref["theta"]["herd.(Intercept)"]]])]
    extra = {"glance_extra": {"pearson_dispersion": 1.25}}
    if family_obj is not None:
        extra["family_obj"] = family_obj
    raw = make_raw("glmm", design, list(ref["fixef"]), beta, ref["vcov"], lambdas, b=[b],
                   b_sd=[b_sd], eta=X @ beta + z_times_b([term], [b]), eta_fixed=X @ beta,
                   loglik=ref["logLik"], deviance=ref["deviance"], n_params=ref["df"],
                   family="binomial", link="logit", method="Laplace", extra=extra)
    return raw, df, ref


class LogitBinomial:
    """A family object as the GLMM code provides it (only the three methods used)."""

    def linkinv(self, eta):
        return special.expit(eta)

    def variance(self, mu):
        return mu * (1 - mu)

    def dev_resid(self, y, mu, wt):
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(y > 0, y * np.log(y / mu), 0.0)
            c = np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)), 0.0)
        return 2 * wt * (a + c)


@pytest.mark.parametrize("family_source", ["by_name", "custom", "own"])
def test_cbpp_against_lme4(backend, family_source):
    family_obj = {"by_name": None, "custom": LogitBinomial()}.get(family_source)
    if family_source == "own":
        family_obj = real_family("binomial", "logit")
    raw, df, ref = cbpp_fit(family_obj)
    fit = MixedModel(raw, as_backend(df, backend), {"data_name": "cbpp"})
    aug = fit.augment()
    np.testing.assert_allclose(col(aug, ".fitted")[:20], ref["fitted_head"], rtol=1e-7)
    np.testing.assert_allclose(col(aug, ".resid")[:20], ref["resid_head"], atol=1e-8)
    np.testing.assert_allclose(col(aug, ".pearson_resid")[:20], ref["pearson_resid_head"], rtol=1e-6)
    np.testing.assert_allclose(col(aug, ".deviance_resid")[:20], ref["deviance_resid_head"],
                               rtol=1e-6)
    assert np.sum(col(aug, ".deviance_resid") ** 2) == pytest.approx(ref["deviance"], rel=1e-6)
    pred = ref["predictions"]
    np.testing.assert_allclose(fit.predict()[:10], pred["conditional_response"], rtol=1e-7)
    np.testing.assert_allclose(fit.predict(type="link", re=False)[:10], pred["fixed_link"], rtol=1e-10)
    coefs = fit.coefficients()
    assert nulls(coefs, "df").all()
    np.testing.assert_allclose(col(coefs, "exp_estimate"), np.exp(list(ref["fixef"].values())))
    np.testing.assert_allclose(col(coefs, "std_error"), list(ref["fixef_se"].values()), rtol=1e-10)
    vc = fit.variance_components()
    assert list(col(vc, "group")) == ["herd"]                    # no residual row for binomial
    np.testing.assert_allclose(col(vc, "vcov"), [ref["varcorr"][0]["variance"]], rtol=1e-8)
    g = fit.glance()
    assert col(g, "pearson_dispersion")[0] == 1.25 and nulls(g, "sigma")[0]
    assert nulls(g, "reml_criterion")[0] and col(g, "ngroups_herd")[0] == 15
    np.testing.assert_allclose(col(fit.icc(), "icc"), [0.4125 / (0.4125 + np.pi ** 2 / 3)], rtol=1e-3)
    text = fit.summary()
    for part in ["Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)",
                 " Family: binomial  ( logit )", "   Data: cbpp", "194.1", "204.2", "-92.0",
                 "z value", "Pr(>|z|)", "Number of obs: 56, groups:  herd, 15", "(Intercept)  -1.3985"]:
        assert part in text, part


def real_family(name, link):
    """The package's own family object (needs the compiled kernels)."""
    try:
        from mixframe.families import get_family
        return get_family(name, link)
    except ImportError:
        pytest.skip("compiled family kernels are not built")


@pytest.mark.parametrize("own_family", [False, True])
def test_negative_binomial_against_glmmtmb(own_family):
    ref = reference("salamanders_nb2")
    df = pd.read_csv(DATA / "Salamanders.csv")
    spp = df["spp"].to_numpy()
    X = np.column_stack([np.ones(len(df))]
                        + [(spp == s).astype(float) for s in ["PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]]
                        + [(df["mined"] == "no").to_numpy(float)])
    term, b, b_sd = ref_term(ref, df, "site", np.ones((len(df), 1)), ["(Intercept)"])
    design = Design(X=X, x_names=list(ref["fixef"]), y=df["count"].to_numpy(float), weights=None,
                    offset=None, terms=[term], used=np.ones(len(df), bool), n_total=len(df),
                    response="count", formula=ref["formula"])
    beta = np.array(list(ref["fixef"].values()))
    extra = {"family_obj": real_family("negative_binomial", "log")} if own_family else {}
    raw = make_raw("glmm", design, list(ref["fixef"]), beta, ref["vcov"],
                   [np.array([[ref["varcorr"][0]["sd"]]])], b=[b], b_sd=[b_sd],
                   eta=X @ beta + z_times_b([term], [b]), eta_fixed=X @ beta, sigma=ref["nb_size"],
                   loglik=ref["logLik"], deviance=ref["deviance"], n_params=ref["df"],
                   family="negative_binomial", link="log", method="Laplace", extra=extra)
    fit = MixedModel(raw, df)
    aug = fit.augment()
    np.testing.assert_allclose(aug[".fitted"][:20], ref["fitted_head"], rtol=1e-6)
    np.testing.assert_allclose(aug[".pearson_resid"][:20], ref["pearson_resid_head"], rtol=1e-5)
    np.testing.assert_allclose(fit.predict(re=False)[:10], ref["predictions"]["fixed_response"],
                               rtol=1e-8)
    assert fit.sigma == ref["nb_size"]
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-10)
    assert list(fit.variance_components()["group"]) == ["site"]
    assert fit.icc().shape[0] == 0                       # no ICC for a count model
    assert "exp_estimate" in fit.coefficients().columns   # rate ratios for the log link


def test_wine_against_ordinal(backend):
    ref = reference("wine_logit")
    df = pd.read_csv(DATA / "wine.csv", dtype={"judge": str, "rating": str, "bottle": str})
    X = np.column_stack([(df["temp"] == "warm").to_numpy(float),
                         (df["contact"] == "yes").to_numpy(float)])
    term, b, b_sd = ref_term(ref, df, "judge", np.ones((len(df), 1)), ["(Intercept)"])
    levels = ref["factor_levels"]["rating"]
    design = Design(X=X, x_names=["tempwarm", "contactyes"], y=df["rating"].map(levels.index)
                    .to_numpy(float), weights=None, offset=None, terms=[term],
                    used=np.ones(len(df), bool), n_total=len(df), response="rating",
                    response_levels=levels, formula=ref["formula"])
    thr, beta = list(ref["thresholds"].values()), list(ref["fixef"].values())
    raw = make_raw("clmm", design, list(ref["thresholds"]) + list(ref["fixef"]), thr + beta,
                   np.asarray(ref["vcov_full"])[:6, :6], [np.array([[ref["theta"]["judge"][0][0]]])],
                   b=[b], b_sd=[b_sd], eta=X @ beta + z_times_b([term], [b]), eta_fixed=X @ beta,
                   coef_types=["threshold"] * 4 + ["location"] * 2, family="cumulative",
                   link="logit", method="Laplace", loglik=ref["logLik"], deviance=ref["deviance"],
                   n_params=ref["df"])
    fit = MixedModel(raw, as_backend(df, backend))
    pred = ref["predictions"]
    np.testing.assert_allclose(fit.predict()[:5], pred["conditional_prob"], rtol=1e-6)
    np.testing.assert_allclose(fit.predict(re=False)[:5], pred["fixed_prob"], rtol=1e-8)
    aug = fit.augment()
    np.testing.assert_allclose(col(aug, ".fitted")[:20], ref["fitted_head"], rtol=1e-6)
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-10)
    assert fit.bic == pytest.approx(ref["BIC"], rel=1e-10)
    assert fit.thresholds == ref["thresholds"]
    coefs = fit.coefficients()
    np.testing.assert_allclose(col(coefs, "std_error")[:4], list(ref["thresholds_se"].values()))
    assert "judge  (Intercept) 1.279    1.131" in fit.summary()


def test_pyarrow_input_gives_pyarrow_frames():
    import pyarrow as pa

    raw, data = small_lmm()
    fit = MixedModel(raw, pa.Table.from_pandas(data, preserve_index=False))
    assert isinstance(fit.coefficients(), pa.Table)
    aug = fit.augment()
    assert isinstance(aug, pa.Table) and aug.column(".fitted").null_count == 1


@pytest.mark.parametrize("family, extra, residual", [
    ("gaussian", {}, 0.25), ("gamma", {}, None), ("gamma", {"residual_variance": 0.09}, 0.09),
    ("poisson", {}, None)])
def test_glmm_residual_rows(family, extra, residual):
    raw0, data = small_lmm()
    link = {"gaussian": "identity", "gamma": "log", "poisson": "log"}[family]
    sigma = {"gaussian": 0.5, "gamma": 0.3, "poisson": None}[family]
    raw = make_raw("glmm", raw0.design, raw0.coef_names, raw0.coef, raw0.vcov, raw0.lambdas,
                   b=raw0.b, b_sd=raw0.b_sd, eta=raw0.eta, eta_fixed=raw0.eta_fixed, sigma=sigma,
                   family=family, link=link, method="AGQ(7)", extra=extra)
    fit = MixedModel(raw, data)
    vc = fit.variance_components()
    has_row = "Residual" in list(vc["group"])
    assert has_row == (residual is not None)
    if has_row:
        assert vc["vcov"].iloc[-1] == pytest.approx(residual)
        assert vc["sdcor"].iloc[-1] == pytest.approx(np.sqrt(residual))
    lam = raw0.lambdas[0]
    np.testing.assert_allclose(vc["vcov"].iloc[0], (lam @ lam.T)[0, 0])   # re_scale 1 for a GLMM
    text = fit.summary()
    assert "(Adaptive Gauss-Hermite Quadrature, nAGQ = 7)" in text
    assert ("Dispersion parameter" in text) == (sigma is not None)
    assert ("exp_estimate" in fit.coefficients().columns) == (link == "log")
    if family == "poisson":
        mu = np.exp(raw0.eta)
        aug = fit.augment()
        used = raw0.design.used
        np.testing.assert_allclose(aug[".fitted"][used], mu)
        np.testing.assert_allclose(aug[".pearson_resid"][used], (raw0.design.y - mu) / np.sqrt(mu))
        np.testing.assert_allclose(fit.predict(type="link", re=False)[used], raw0.eta_fixed)
