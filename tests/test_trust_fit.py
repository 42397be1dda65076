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
