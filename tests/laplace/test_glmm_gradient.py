"""The analytic Laplace gradient (canonical links, scalar terms) and the sensitivity of the modes."""
import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve

from mixframe.design.terms import Design, RETerm
from mixframe.families import get_family
from mixframe.fit.glmm_grad import gradient_available, laplace_gradient, mode_sensitivity
from mixframe.fit.glmm_laplace import GLMMObjective

from fit.test_glmm import load_case


def crossed_design(family, seed=5, n=400, offset=False, n_terms=3):
    """Scalar crossed (and a third, partially nested) terms; binomial with trials as weights."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    g1 = rng.integers(0, 40, n).astype(np.int32)
    g2 = rng.integers(0, 7, n).astype(np.int32)
    g3 = (g1 % 5).astype(np.int32)
    X = np.column_stack([np.ones(n), x, rng.integers(0, 2, n)])
    off = rng.normal(0, 0.2, n) if offset else None
    eta = -0.2 + 0.6 * x + rng.normal(0, 0.8, 40)[g1] + rng.normal(0, 0.5, 7)[g2] + (0 if off is None else off)
    if family == "binomial":
        trials = rng.integers(1, 5, n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))) / trials
    else:
        trials, y = None, rng.poisson(np.exp(eta)).astype(float)
    terms = [RETerm("g1", g1, [str(i) for i in range(40)], np.ones((n, 1)), ["(Intercept)"]),
             RETerm("g2", g2, [str(i) for i in range(7)], np.ones((n, 1)), ["(Intercept)"])]
    # a slope-only term: scalar, Z = x
    terms.append(RETerm("g3", g3, [str(i) for i in range(5)], x[:, None].copy(), ["x"]))
    return Design(X=np.ascontiguousarray(X), x_names=["(Intercept)", "x", "z"], y=y, weights=trials, offset=off,
                  terms=terms[:n_terms], used=np.ones(n, bool), n_total=n, response="y")


def dense_gradient(obj, theta, beta):
    """The same gradient from dense matrices (Z Lambda formed explicitly, M inverted): an independent oracle."""
    dev, st = obj.laplace(theta, beta)
    fam = obj.family
    Z = np.zeros((obj.n, obj.q))
    lam = np.zeros(obj.q)
    pos = 0
    for k, t in enumerate(obj.terms):
        Z[np.arange(obj.n), pos + t.codes] = t.Z[:, 0]
        lam[pos:pos + t.q] = theta[k]
        pos += t.q
    ZL = Z * lam
    mu, w = st["mu"], st["w"]
    M = ZL.T @ (w[:, None] * ZL) + np.eye(obj.q)
    Minv = cho_solve(cho_factor(M), np.eye(obj.q))
    h = np.einsum("ij,jk,ik->i", ZL, Minv, ZL)
    dw = obj.wt * (mu * (1 - mu) * (1 - 2 * mu) if fam.name == "binomial" else mu)
    e = obj.wt * (obj.y - mu)
    a = dw * h
    c = Minv @ (ZL.T @ a)
    r = a - w * (ZL @ c) - 2 * e
    g = [None] * len(theta)
    pos = 0
    for k, t in enumerate(obj.terms):
        Ek = np.zeros(obj.q)
        Ek[pos:pos + t.q] = 1.0
        ZE = Z * Ek
        tr = 2 * np.trace(Minv @ ZL.T @ (w[:, None] * ZE))
        g[k] = r @ (ZE @ st["u"]) + (ZE @ c) @ e + tr
        pos += t.q
    return np.concatenate([g, obj.X.T @ r])


@pytest.mark.parametrize("family,offset", [("binomial", False), ("binomial", True), ("poisson", False)])
def test_gradient_against_finite_differences_and_dense_oracle(family, offset):
    d = crossed_design(family, offset=offset)
    obj = GLMMObjective(d, get_family(family))
    assert gradient_available(obj)
    theta = np.array([0.9, 0.4, 0.3])
    beta = np.array([-0.1, 0.5, 0.2])
    x = np.concatenate([theta, beta])

    def dev(z):
        return obj.laplace(z[:3], z[3:])[0]

    h = 1e-5
    fd = np.array([(dev(x + e) - dev(x - e)) / (2 * h) for e in np.eye(len(x)) * h])
    dense = dense_gradient(obj, theta, beta)
    _, st = obj.laplace(theta, beta)
    got = laplace_gradient(obj, theta, beta, st)
    np.testing.assert_allclose(got, dense, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-5)


def test_gradient_with_one_term_and_at_a_zero_variance():
    d = crossed_design("binomial", n_terms=1)
    obj = GLMMObjective(d, get_family("binomial"))
    beta = np.array([-0.1, 0.5, 0.2])
    for theta in (np.array([0.7]), np.array([0.0])):
        x = np.concatenate([theta, beta])
        _, st = obj.laplace(theta, beta)
        got = laplace_gradient(obj, theta, beta, st)
        np.testing.assert_allclose(got, dense_gradient(obj, theta, beta), rtol=1e-9, atol=1e-9)
        h = 1e-5
        e = np.eye(len(x)) * h
        fd = np.array([(obj.laplace((x + v)[:1], (x + v)[1:])[0] - obj.laplace((x - v)[:1], (x - v)[1:])[0])
                       / (2 * h) for v in e])
        # the deviance is even in theta, so at 0 its derivative there is 0 (and so is the central difference)
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-5)


def test_gradient_not_offered_where_it_does_not_apply():
    ref, design, family = load_case("salamanders_nb2")
    assert not gradient_available(GLMMObjective(design, get_family("negative_binomial"), obs_info=True))
    _, design, _ = load_case("cbpp_probit")
    assert not gradient_available(GLMMObjective(design, get_family("binomial", "probit")))


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_mode_sensitivity_against_finite_differences(family):
    d = crossed_design(family, offset=True)
    obj = GLMMObjective(d, get_family(family))
    x = np.array([0.9, 0.4, 0.3, -0.1, 0.5, 0.2])

    def mode(z):
        obj.u[:] = 0.0
        return obj.laplace(z[:3], z[3:])[1]["u"].copy()

    _, st = obj.laplace(x[:3], x[3:])
    laplace_gradient(obj, x[:3], x[3:], st)
    J = mode_sensitivity(obj)
    h = 1e-6
    fd = np.array([(mode(x + e) - mode(x - e)) / (2 * h) for e in np.eye(6) * h])
    np.testing.assert_allclose(J, fd, atol=1e-7)
