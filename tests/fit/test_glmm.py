"""GLMM engine: reference fits from R (lme4, glmmTMB), PIRLS and AGQ against dense/brute-force oracles."""
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixframe.design.build import build_design
from mixframe.design.terms import theta_to_lambdas
from mixframe.design.terms import Design, RETerm
from mixframe.errors import ConvergenceWarning, DataError
from mixframe.families import get_family
from mixframe.fit.glmm import fit_glmm
from mixframe.fit.glmm_laplace import GLMMObjective

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "tests" / "reference"
DATA = ROOT / "mixframe" / "datasets" / "data"
SLOW = os.environ.get("MIXFRAME_SLOW") == "1"
FAMILY = {"nbinom2": "negative_binomial", "Gamma": "gamma"}
CASE_FORMULA = {"grouseticks": "TICKS ~ YEAR + HEIGHT_s + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"}


def load_case(name):
    """The reference JSON and the Design built from its csv (factor levels in R's order)."""
    ref = json.loads((REF / f"{name}.json").read_text())
    levels = ref.get("factor_levels") or {}
    formula = CASE_FORMULA.get(name, ref["formula"])
    groups = [g for g in ref["ngroups"]]
    df = pd.read_csv(DATA / ref["data"], dtype={c: str for c in set(levels) | set(groups)})
    for col, lv in levels.items():
        df[col] = pd.Categorical(df[col], categories=[str(x) for x in lv])
    family = FAMILY.get(ref["family"], ref["family"])
    design = build_design(formula, df, kind="glmm", family=family)
    if name == "grouseticks":   # R spells the covariate scale(HEIGHT); the csv column HEIGHT_s is it
        design.x_names[design.x_names.index("HEIGHT_s")] = "scale(HEIGHT)"
    return ref, design, family


def nagq_of(ref):
    return int(ref["method"].split("=")[1]) if ref["method"].startswith("AGQ") else 1


def small_design(seed=3, n=120, binomial=True):
    """A random design with two crossed terms, the first with a correlated intercept and slope."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    g1 = rng.integers(0, 8, n).astype(np.int32)
    g2 = rng.integers(0, 5, n).astype(np.int32)
    X = np.column_stack([np.ones(n), x])
    eta = 0.3 + 0.8 * x + rng.normal(0, 0.7, 8)[g1] + rng.normal(0, 0.5, 5)[g2]
    if binomial:
        trials = rng.integers(1, 6, n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))) / trials
    else:
        trials, y = None, rng.poisson(np.exp(eta)).astype(float)
    t1 = RETerm("g1", g1, [str(i) for i in range(8)], np.ascontiguousarray(X), ["(Intercept)", "x"])
    t2 = RETerm("g2", g2, [str(i) for i in range(5)], np.ones((n, 1)), ["(Intercept)"])
    d = Design(X=np.ascontiguousarray(X), x_names=["(Intercept)", "x"], y=y, weights=trials, offset=None,
               terms=[t1, t2], used=np.ones(n, bool), n_total=n, response="y")
    return d


def dense_z_lambda(design, theta):
    """Dense Z Lambda (n x q) for the oracle."""
    blocks = []
    for t, lam in zip(design.terms, theta_to_lambdas(design.terms, theta)):
        Zt = np.zeros((design.n_obs, t.q))
        for a in range(t.k):
            Zt[np.arange(design.n_obs), t.codes * t.k + a] = t.Z[:, a]
        blocks.append(Zt @ np.kron(np.eye(t.n_levels), lam))
    return np.hstack(blocks)


def test_nagq0_fit_and_rawfit_fields():
    ref, design, _ = load_case("cbpp_laplace")
    raw0 = fit_glmm(design, "binomial", nagq=0)
    assert raw0.method == "PIRLS (nAGQ=0)"
    se0 = np.sqrt(np.diag(raw0.vcov))
    for j, term in enumerate(design.x_names):   # close to the Laplace fit, not equal
        assert abs(raw0.coef[j] - ref["fixef"][term]) < 0.25 * ref["fixef_se"][term]
        assert se0[j] == pytest.approx(ref["fixef_se"][term], rel=0.05)
    raw = fit_glmm(design, "binomial")
    t = design.terms[0]
    np.testing.assert_allclose(raw.eta, raw.eta_fixed + raw.b[0][t.codes, 0], atol=1e-12)
    assert raw.b[0].shape == (15, 1) and raw.b_sd[0].shape == (15, 1)
    assert raw.extra["family_obj"] == get_family("binomial")
    assert raw.extra["glance_extra"]["pearson_dispersion"] > 0
    assert raw.family == "binomial" and raw.link == "logit" and raw.re_scale == 1.0
    assert raw.iterations > 0 and raw.vcov.shape == (4, 4)


def test_bad_inputs():
    _, design, _ = load_case("cbpp_laplace")
    with pytest.raises(ValueError, match="unknown family"):
        fit_glmm(design, "weibull")
    with pytest.raises(ValueError, match="allowed links"):
        fit_glmm(design, "binomial", "sqrt")
    with pytest.raises(DataError, match="non-negative whole counts"):
        fit_glmm(design, "poisson")          # proportions are not counts
    crossed = small_design()
    with pytest.raises(ValueError, match="exactly one scalar random-effect term"):
        fit_glmm(crossed, "binomial", nagq=5)
    with pytest.raises(ValueError, match="nagq"):
        fit_glmm(design, "binomial", nagq=-1)


def test_singular_fit_is_flagged():
    """Random effects with no between-group variation: theta at the boundary, flagged singular."""
    rng = np.random.default_rng(11)
    n = 200
    g = rng.integers(0, 10, n).astype(np.int32)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.5 + 0.3 * x)).astype(float)
    X = np.column_stack([np.ones(n), x])
    t = RETerm("g", g, [str(i) for i in range(10)], np.ones((n, 1)), ["(Intercept)"])
    d = Design(X=X, x_names=["(Intercept)", "x"], y=y, weights=None, offset=np.zeros(n), terms=[t],
               used=np.ones(n, bool), n_total=n, response="y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = fit_glmm(d, "poisson")
    assert raw.theta[0] < 1e-4 and raw.singular
    assert abs(raw.coef[1] - 0.3) < 0.2
    assert np.all(np.isfinite(raw.vcov)) and np.all(np.diag(raw.vcov) > 0)


def test_separation_warns():
    """A predictor that separates the outcome: a ConvergenceWarning naming separation, converged False."""
    rng = np.random.default_rng(1)
    n, m = 300, 15
    g = rng.integers(0, m, n).astype(np.int32)
    x = rng.normal(size=n)
    t = RETerm("g", g, [str(i) for i in range(m)], np.ones((n, 1)), ["(Intercept)"])
    d = Design(X=np.column_stack([np.ones(n), x]), x_names=["(Intercept)", "x"], y=(x > 0).astype(float),
               weights=None, offset=None, terms=[t], used=np.ones(n, bool), n_total=n, response="r")
    with pytest.warns(ConvergenceWarning, match="separated"):
        raw = fit_glmm(d, "binomial")
    assert not raw.converged and any("separated" in m for m in raw.messages)


def test_offset_shifts_intercept():
    _, design, _ = load_case("salamanders_poisson")
    shifted = Design(**{**design.__dict__, "offset": np.full(design.n_obs, 0.5)})
    a = fit_glmm(design, "poisson", control={"calc_hessian": False})
    b = fit_glmm(shifted, "poisson", control={"calc_hessian": False})
    assert b.coef[0] == pytest.approx(a.coef[0] - 0.5, abs=1e-5)
    np.testing.assert_allclose(b.coef[1:], a.coef[1:], atol=1e-5)
    np.testing.assert_allclose(b.eta, a.eta, atol=1e-5)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-6)


def test_vector_random_effect_fit_is_optimal():
    """A correlated intercept-and-slope term plus a crossed intercept: the fit is a local optimum of the
    Laplace deviance and its conditional SDs come from the factor at the mode."""
    design = small_design(seed=9, n=240)
    raw = fit_glmm(design, "binomial")
    assert raw.method == "Laplace" and np.all(np.isfinite(raw.vcov))
    obj = GLMMObjective(design, get_family("binomial"))
    x = np.concatenate([raw.theta, raw.coef])
    n_theta = design.n_theta

    def dev(z):
        return obj.laplace(z[:n_theta], z[n_theta:])[0]

    d0 = dev(x)
    assert -0.5 * d0 == pytest.approx(raw.loglik, abs=1e-8)
    for j in range(len(x)):
        for h in (1e-3, -1e-3):
            z = x.copy()
            z[j] += h
            if j < n_theta and z[j] < design.theta_lower_bounds()[j]:
                continue
            assert dev(z) >= d0 - 1e-7
    assert raw.b[0].shape == (8, 2) and raw.b_sd[1].shape == (5, 1)
    assert np.all(raw.b_sd[0] > 0)
