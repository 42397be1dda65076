"""Trust in the fits: each test holds one item of the project's trust list that lives in the fitting code
(identifiable random effects, exact boundaries, honest convergence, every optimizer, valid odd input, the
printed deviance)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixframe as mf

DATA = Path(__file__).parent / "data"


def _read(name, **kw):
    return pd.read_csv(DATA / name, **kw)


# 1. More random effects than observations: lme4's check.nobs.vs.nRE / check.nobs.vs.nlev (LMM, GLMM stop),
#    ordinal's warnings (CLMM). The data: 36 rows, g a level per row, h 18 levels of 2 rows (tests/data/nre36.csv).

@pytest.fixture
def nre36():
    d = _read("nre36.csv")
    d["g"] = "g" + d["g"].astype(str)
    d["h"] = "h" + d["h"].astype(str)
    return d


def test_more_random_effects_than_observations(nre36):
    with pytest.raises(mf.DataError, match=r"number of observations \(=36\) <= number of random effects "
                                           r"\(=36\) for term \(x \| h\)"):
        mf.lmm("y ~ x + (x | h)", nre36)
    with pytest.raises(mf.DataError, match=r"grouping factor 'g'"):
        mf.lmm("y ~ 1 + (1 | g)", nre36)
    # glmer allows as many random effects as observations, not more
    with pytest.raises(mf.DataError, match=r"number of observations \(=36\) < number of random effects "
                                           r"\(=72\) for term \(x \| g\)"):
        mf.glmm("cnt ~ x + (x | g)", nre36, family="poisson")
    fit = mf.glmm("yb ~ 1 + (1 | g)", nre36, family="binomial")
    assert fit.glance()["loglik"][0] == pytest.approx(-24.8977, abs=1e-3)      # glmer's logLik
    with pytest.warns(UserWarning) as record:
        mf.clmm("yo ~ x + (x | h)", nre36, levels=[1, 2, 3])
    texts = [str(w.message) for w in record]
    assert r"no. random effects (=36) >= no. observations (=36) for term: (x | h)" in texts
    assert r"no. random effects (=36) >= no. observations (=36)" in texts


# 2. Exact zero variance: a boundary estimate is theta == 0, as lme4 and MixedModels.jl report on Dyestuff2
#    (tests/data/Dyestuff2.csv, written from lme4::Dyestuff2), for every kind.

def test_boundary_estimate_is_exactly_zero(nre36):
    d = _read("Dyestuff2.csv")
    ml = mf.lmm("Yield ~ 1 + (1 | Batch)", d, reml=False)
    assert np.all(ml.theta == 0.0) and bool(ml.glance()["singular"][0])
    assert ml.glance()["loglik"][0] == pytest.approx(-81.4365183269, abs=1e-9)     # lme4
    assert ml.glance()["sigma"][0] == pytest.approx(3.65323135137, rel=1e-9)
    reml = mf.lmm("Yield ~ 1 + (1 | Batch)", d)
    assert np.all(reml.theta == 0.0)
    assert reml.glance()["loglik"][0] == pytest.approx(-80.9141389061, abs=1e-9)
    for kw in ({}, {"nagq": 0}, {"nagq": 5}):
        fit = mf.glmm("cnt ~ 1 + (1 | h)", nre36, family="poisson", **kw)
        assert np.all(fit.theta == 0.0), kw
        assert fit.glance()["loglik"][0] == pytest.approx(-62.67914856, abs=1e-7)    # glmer
    assert np.all(mf.glmm("cnt ~ 1 + (1 | h)", nre36, family="negative_binomial").theta == 0.0)
    clmm = mf.clmm("yo ~ x + (1 | h)", nre36, levels=[1, 2, 3])
    assert np.all(clmm.theta[np.isfinite(clmm.theta)] >= 0.0)


# 3. A GLMM boundary fit warns SingularFitWarning, as LMM and CLMM fits do.

@pytest.mark.parametrize("kw", [{}, {"nagq": 0}, {"nagq": 5}, {"family": "negative_binomial"}])
def test_glmm_boundary_fit_warns_singular(nre36, kw):
    kw = {"family": "poisson", **kw}
    with pytest.warns(mf.SingularFitWarning, match="boundary"):
        fit = mf.glmm("cnt ~ 1 + (1 | h)", nre36, **kw)
    assert bool(fit.glance()["singular"][0])
    cbpp = mf.datasets.cbpp()
    with warnings.catch_warnings():
        warnings.simplefilter("error", mf.SingularFitWarning)
        fit = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    assert not bool(fit.glance()["singular"][0])


# 4. A fit that stops at a bad point says so (lme4's checkConv: a small gradient and a positive definite
#    Hessian at the reported point), and the CLMM on carData's WVS (tests/data/WVS.csv) reaches ordinal's
#    optimum for (1 | country/religion): at least its sub-model (1 | country:religion), -5251.10 in R.

def test_clmm_nested_wvs_reaches_the_optimum():
    d = _read("WVS.csv")
    kw = dict(link="loglog", levels=["Too Little", "About Right", "Too Much"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.SingularFitWarning)
        nested = mf.clmm("poverty ~ gender + degree + age + (1 | country/religion)", d, **kw)
        sub = mf.clmm("poverty ~ gender + degree + age + (1 | country:religion)", d, **kw)
    g, gs = nested.glance(), sub.glance()
    assert gs["loglik"][0] == pytest.approx(-5251.1018, abs=1e-3)
    assert g["loglik"][0] >= gs["loglik"][0] - 1e-6
    assert bool(g["converged"][0])
    se = nested.coefficients()["std_error"].to_numpy()
    assert np.all(np.isfinite(se))


@pytest.mark.parametrize("kind", ["lmm", "glmm"])
def test_a_fit_stopped_early_is_not_converged(kind):
    with pytest.warns(mf.ConvergenceWarning, match=r"max\|grad\|"):
        if kind == "lmm":
            fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy(),
                         control={"optimizer": "bobyqa", "maxiter": 12})
        elif kind == "glmm":
            fit = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", mf.datasets.cbpp(),
                          family="binomial", control={"maxiter": 4})
    assert not bool(fit.glance()["converged"][0])
    # a CLMM's Newton polish recovers from an early stop; the rule itself, on known derivatives
    from mixframe.fit.convergence import convergence_failures

    H = np.array([[4.0, 1.0], [1.0, 2.0]])
    assert convergence_failures([1e-4, -2e-4], H) == []
    assert convergence_failures([0.5, 0.0], H) == ["failed to converge with max|grad| = 0.5 (tol = 0.002)"]
    assert convergence_failures([0.0, 0.0], np.diag([1.0, -1.0]))[0] == "degenerate Hessian with 1 negative eigenvalue"
    assert convergence_failures([0.5, 0.0], np.diag([1.0, -1.0]), free=[True, False]) != []
    assert convergence_failures([1e-4, 7.0], np.diag([1.0, -1.0]), free=[True, False]) == []


# 5. Every optimizer offered reaches the optimum or says it did not: Nelder-Mead on nlme's Orthodont
#    (tests/data/Orthodont.csv) stopped on a bound at -221.92; lme4's optimizers reach -221.32, not singular.

@pytest.mark.parametrize("optimizer", ["bobyqa", "neldermead", "cobyla", "sbplx"])
def test_every_optimizer_reaches_the_orthodont_optimum(optimizer):
    d = _read("Orthodont.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = mf.lmm("distance ~ age + (age | Subject)", d, control={"optimizer": optimizer})
    g = fit.glance()
    assert g["loglik"][0] == pytest.approx(-221.318343, abs=1e-6)     # lme4 (REML)
    assert bool(g["converged"][0]) and not bool(g["singular"][0])
    np.testing.assert_allclose(fit.theta, [1.77658038, -0.10534497, 0.13704994], rtol=1e-3)    # lme4


# 6. Valid input refused today. A row of prior weight zero contributes nothing: the fit equals the fit
#    without it (LMM, GLMM, CLMM). An inverse Gaussian GLMM whose estimates lie near the edge of the
#    1/mu^2 link's range (tests/data/invgauss_edge.csv, simulated) is a fit, not an internal PirlsError.
#    (glmer and glm stop on this sample with NaN in PIRLS; mixframe reports the fit and its convergence.)

@pytest.mark.parametrize("reml", [True, False])
def test_zero_prior_weight_is_a_dropped_row(reml, nre36):
    s = mf.datasets.sleepstudy()
    s["w"] = 1.0
    s.loc[4, "w"] = 0.0
    a = mf.lmm("Reaction ~ Days + (Days | Subject)", s, weights="w", reml=reml)
    b = mf.lmm("Reaction ~ Days + (Days | Subject)", s.drop(index=4), reml=reml)
    assert a.glance()["loglik"][0] == pytest.approx(b.glance()["loglik"][0], rel=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-8)
    np.testing.assert_allclose(list(a.fixef.values()), list(b.fixef.values()), rtol=1e-10)
    import polars as pl

    streamed = mf.lmm("Reaction ~ Days + (Days | Subject)", pl.from_pandas(s).lazy(), weights="w", reml=reml)
    assert streamed.glance()["loglik"][0] == pytest.approx(b.glance()["loglik"][0], rel=1e-10)
    np.testing.assert_allclose(streamed.theta, b.theta, rtol=1e-6)
    d = nre36.assign(w=1.0)
    d.loc[3, "w"] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mf.glmm("cnt ~ x + (1 | h)", d, family="poisson", weights="w")
        b = mf.glmm("cnt ~ x + (1 | h)", d.drop(index=3), family="poisson")
        c = mf.clmm("yo ~ x + (1 | h)", d, weights="w", levels=[1, 2, 3])
        e = mf.clmm("yo ~ x + (1 | h)", d.drop(index=3), levels=[1, 2, 3])
    assert a.glance()["loglik"][0] == pytest.approx(b.glance()["loglik"][0], rel=1e-10)
    assert c.glance()["loglik"][0] == pytest.approx(e.glance()["loglik"][0], rel=1e-8)


def test_inverse_gaussian_near_the_edge_of_its_link_is_a_fit():
    d = _read("invgauss_edge.csv")
    d["g"] = "g" + d["g"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mf.glmm("y ~ x + (1 | g)", d, family="inverse_gaussian")
    g = fit.glance()
    assert np.isfinite(g["loglik"][0])
    assert np.all(np.isfinite(fit.coefficients()["std_error"].to_numpy()))
    # the estimates are inside the link's range: 1/mu^2 > 0 on every row, the fitted means finite
    fitted = fit.augment()[".fitted"].to_numpy()
    assert np.all(np.isfinite(fitted)) and np.all(fitted > 0)


# 7. The GLMM summary's deviance is lme4's -2 logLik (184.1 for cbpp), as lme4 prints it.

def test_glmm_summary_deviance_is_minus_twice_loglik():
    fit = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", mf.datasets.cbpp(),
                  family="binomial")
    lines = str(fit.summary()).splitlines()
    head = next(i for i, line in enumerate(lines) if "deviance" in line and "df.resid" in line)
    names, values = lines[head].split(), lines[head + 1].split()
    table = dict(zip(names, values))
    assert table["deviance"] == "184.1" and table["logLik"] == "-92.0"
    assert float(table["deviance"]) == pytest.approx(-2 * fit.glance()["loglik"][0], abs=0.05)


# 6 (flat REML surface). On `Reaction ~ 1 + (1 | Subject)` the fit stops at the stationary point of the REML
# criterion (the exact derivative vanishes to 1e-8); lme4's theta (0.80783103775588, R 4.x, lme4 1.1) lies
# 4.7e-8 relative beyond it, where the derivative is 2.7e-6 and the criterion is no lower.

def test_flat_reml_surface_reaches_the_stationary_point():
    from mixframe.design.build import build_design
    from mixframe.fit.lmm import LmmObjective
    from mixframe.fit.lmm_grad import OneBlockDerivatives

    sleep = mf.datasets.sleepstudy()
    fit = mf.lmm("Reaction ~ 1 + (1 | Subject)", sleep)
    obj = LmmObjective(build_design("Reaction ~ 1 + (1 | Subject)", sleep, kind="lmm"), reml=True)
    f, g, H = OneBlockDerivatives(obj)(np.asarray(fit.theta, dtype=float))
    assert abs(g[0]) < 1e-8 and H[0, 0] > 0
    assert f <= obj(np.array([0.80783103775588])) + 1e-11
    assert fit.glance()["reml_criterion"][0] == pytest.approx(1904.32651707221, abs=1e-9)     # lme4
