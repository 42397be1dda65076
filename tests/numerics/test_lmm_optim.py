"""The LMM optimizers and the derivatives they use: exact gradients and Hessians against finite differences,
the trust-region methods on known problems, and the fitted optimum against derivative-free BOBYQA."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import mixframe as mf
from mixframe.design.build import build_design
from mixframe.linalg.blocked import BlockedSystem
from mixframe.fit.lmm import LmmObjective, optimize_lmm
from mixframe.fit.lmm_grad import OneBlockDerivatives, one_block, one_term_deviance, one_term_start, \
    profiled_gradient

from linalg.dense_oracle import make_term


def _frame(seed, n_levels=(30, 8), per=6, k=1, weights=False):
    """Random data with one or two crossed grouping factors (g, h) and predictors x, z."""
    rng = np.random.default_rng(seed)
    m = n_levels[0]
    n = m * per
    g = np.repeat(np.arange(m), per)
    h = rng.integers(0, n_levels[1], size=n)
    h[:n_levels[1]] = np.arange(n_levels[1])
    x, z = rng.normal(size=n), rng.normal(size=n)
    Zg = np.column_stack([np.ones(n), x, z])[:, :k]
    bg = rng.normal(size=(m, k)) * np.array([0.8, 0.4, 0.3])[:k]
    y = 1.0 + 0.5 * x + np.sum(Zg * bg[g], axis=1) + 0.6 * rng.normal(size=n_levels[1])[h] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{i:03d}" for i in g], "h": [f"h{i:02d}" for i in h]})
    if weights:
        df["w"] = rng.uniform(0.5, 2.0, size=n)
    return df


def _fd_gradient(f, theta, h=1e-5):
    out = np.empty(theta.size)
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = h
        out[i] = (f(theta + e) - f(theta - e)) / (2.0 * h)
    return out


# ---------------------------------------------------------------------------------------------------------
# one random-effect term: exact gradient and Hessian

@pytest.mark.parametrize("rhs, k", [("(1 | g)", 1), ("(x | g)", 2), ("(x + z | g)", 3)])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("weights", [False, True])
def test_one_block_derivatives_match_finite_differences(rhs, k, reml, weights):
    df = _frame(k * 10 + weights, k=k, weights=weights)
    design = build_design(f"y ~ x + {rhs}", df, kind="lmm", weights="w" if weights else None)
    obj = LmmObjective(design, reml=reml)
    assert one_block(obj)
    derivs = OneBlockDerivatives(obj)
    rng = np.random.default_rng(k)
    theta = np.array([rng.uniform(0.3, 1.2) if i == j else rng.normal(scale=0.3)
                      for j in range(k) for i in range(j, k)])
    f, g, H = derivs(theta)
    assert f == pytest.approx(obj(theta), rel=1e-12)
    assert derivs.value(theta) == pytest.approx(f, rel=1e-14)
    np.testing.assert_allclose(g, _fd_gradient(obj, theta), rtol=1e-6, atol=1e-6 * np.max(np.abs(g)))
    H_fd = np.column_stack([(derivs(theta + e)[1] - derivs(theta - e)[1]) / 2e-5 for e in 1e-5 * np.eye(theta.size)])
    np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(H)))
    np.testing.assert_allclose(H, H.T)


def test_one_block_derivatives_without_fixed_effects():
    df = _frame(3, k=2)
    obj = LmmObjective(build_design("y ~ 0 + (x | g)", df, kind="lmm"), reml=True)
    derivs = OneBlockDerivatives(obj)
    theta = np.array([0.7, 0.1, 0.4])
    f, g, _ = derivs(theta)
    assert f == pytest.approx(obj(theta), rel=1e-12)
    np.testing.assert_allclose(g, _fd_gradient(obj, theta), rtol=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_one_block_newton_reaches_bobyqa_optimum(seed):
    """The trust-region Newton fit is at least as good as BOBYQA's, singular fits included."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 4))
    df = _frame(100 + seed, n_levels=(int(rng.integers(4, 30)), 5), per=int(rng.integers(3, 9)), k=k)
    if seed % 3 == 0:       # no group variance at all: the optimum is on the boundary
        df["y"] = 1.0 + 0.5 * df["x"] + np.random.default_rng(seed).normal(size=len(df))
    formula = "y ~ x + " + ["(1 | g)", "(x | g)", "(x + z | g)"][k - 1]
    reml = bool(seed % 2)
    if df["g"].nunique() * k >= len(df):    # as many random effects as rows: lme4's check.nobs.vs.nRE stops
        with pytest.raises(mf.DataError, match="number of random effects"):
            mf.lmm(formula, df, reml=reml)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        newton = mf.lmm(formula, df, reml=reml)
        bobyqa = mf.lmm(formula, df, reml=reml, control={"optimizer": "bobyqa"})
    assert newton.converged
    assert -2 * newton.loglik <= -2 * bobyqa.loglik + 1e-8 * abs(bobyqa.loglik)
    lower = build_design(formula, df, kind="lmm").theta_lower_bounds()
    assert np.all(np.asarray(newton.theta)[np.isfinite(lower)] >= 0.0)


def test_one_block_newton_leaves_zero_when_zero_is_a_maximum():
    """theta = 0 is a stationary point of an even deviance; a start there must not end there."""
    df = _frame(5, n_levels=(25, 5), per=8)
    obj = LmmObjective(build_design("y ~ x + (1 | g)", df, kind="lmm"), reml=True)
    derivs = OneBlockDerivatives(obj)
    f0, g0, H0 = derivs(np.array([0.0]))
    assert g0[0] == pytest.approx(0.0, abs=1e-8) and H0[0, 0] < 0.0
    opt = derivs.minimize(np.array([0.0]))
    assert opt.converged and opt.x[0] > 0.1 and opt.fun < f0


# ---------------------------------------------------------------------------------------------------------
# scalar crossed terms: analytic gradient, one-term starts, quasi-Newton fit

@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("weights", [False, True])
def test_profiled_gradient_matches_finite_differences(reml, weights):
    df = _frame(7 + weights, n_levels=(40, 12), weights=weights)
    design = build_design("y ~ x + (1 | g) + (1 | h)", df, kind="lmm", weights="w" if weights else None)
    obj = LmmObjective(design, reml=reml)
    for theta in (np.array([0.8, 0.5]), np.array([1.3, 0.2]), np.array([-0.7, 0.4])):
        np.testing.assert_allclose(profiled_gradient(obj, theta), _fd_gradient(obj, theta), rtol=2e-6)


def test_one_term_start_is_each_term_fitted_alone():
    df = _frame(11, n_levels=(40, 12))
    obj = LmmObjective(build_design("y ~ x + (1 | g) + (1 | h)", df, kind="lmm"), reml=True)
    theta, curv = one_term_start(obj)
    for t, name in enumerate(["g", "h"]):
        alone = mf.lmm(f"y ~ x + (1 | {name})", df)
        assert theta[t] == pytest.approx(max(alone.theta[0], 0.01), rel=1e-3)
        # the curvature is the second derivative of that one-term deviance
        single = LmmObjective(build_design(f"y ~ x + (1 | {name})", df, kind="lmm"), reml=True)
        h = 1e-3
        fd = (single(np.array([theta[t] + h])) - 2 * single(np.array([theta[t]])) + single(np.array([theta[t] - h])))
        assert curv[t] == pytest.approx(fd / h ** 2, rel=1e-3)
        a, C = (np.asarray(obj.system.chol.A11)[:, 0, 0], np.asarray(obj.system.chol.AE1)) if t == 0 else \
            (np.diagonal(np.asarray(obj.system.chol.A22)), np.asarray(obj.system.chol.AER))
        assert one_term_deviance(obj, a, C, theta[t]) == pytest.approx(single(np.array([theta[t]])), rel=1e-10)


def test_scalar_terms_quasi_newton_matches_bobyqa(monkeypatch):
    """The gradient path (dense block of at least GRADIENT_FROM_Q2 rows) reaches BOBYQA's optimum."""
    import mixframe.fit.lmm as lmm_mod

    df = _frame(13, n_levels=(60, 25), per=5)
    design = build_design("y ~ x + (1 | g) + (1 | h)", df, kind="lmm")
    monkeypatch.setattr(lmm_mod, "GRADIENT_FROM_Q2", 1)
    opt = optimize_lmm(LmmObjective(design, reml=True), design)
    ref = optimize_lmm(LmmObjective(design, reml=True), design, control={"optimizer": "bobyqa"})
    assert opt.converged
    assert opt.fun <= ref.fun + 1e-9 * abs(ref.fun)
    np.testing.assert_allclose(opt.x, ref.x, rtol=1e-4)
    assert np.all(opt.x >= 0)


# ---------------------------------------------------------------------------------------------------------
# kernel pieces used by the gradient

def test_inverse_and_transposed_solve_of_dense_block():
    rng = np.random.default_rng(0)
    terms = [make_term(rng, 400, 60, 1, "a"), make_term(rng, 400, 30, 1, "b")]
    sys = BlockedSystem(terms, 2)
    sys.crossprod(np.column_stack([np.ones(400), rng.normal(size=400)]))
    assert sys.factor(np.array([0.8, 0.6])) == 0
    L22 = sys.dense_factor()
    P = sys.inverse_m22()
    np.testing.assert_allclose(np.tril(P), np.tril(np.linalg.inv(L22 @ L22.T)), rtol=1e-10, atol=1e-12)
    assert sys.inverse_m22() is P                       # kept for the same factor
    B = rng.normal(size=(3, sys.q2))
    X = B.copy()
    sys.chol.solve_l22_t(X)
    np.testing.assert_allclose(X @ L22, B, rtol=1e-10, atol=1e-10)
    assert sys.factor(np.array([0.5, 0.6])) == 0
    np.testing.assert_allclose(np.tril(sys.inverse_m22()), np.tril(np.linalg.inv(
        sys.dense_factor() @ sys.dense_factor().T)), rtol=1e-10, atol=1e-12)


def test_conditional_sds_are_computed_on_first_use_at_the_optimum():
    sleep = mf.datasets.sleepstudy()
    fit = mf.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    raw = fit._raw
    raw.ddf()                                           # Satterthwaite moves the factor elsewhere first
    blups = fit.blups()
    obj = raw.extra["objective"]
    obj(np.asarray(raw.theta))
    lam = raw.lambdas[0]
    cu = obj.system.cond_cov_u()[0]
    ref = raw.sigma * np.sqrt(np.einsum("ab,jbc,ac->ja", lam, cu, lam))
    np.testing.assert_allclose(np.asarray(blups["std_error"]).reshape(2, -1).T, ref, rtol=1e-10)  # term-major
    assert math.isclose(fit.sigma, raw.sigma)
