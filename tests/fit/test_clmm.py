"""Cumulative link models and mixed models: kernels, likelihood oracles and R reference fits."""
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mixframe._ext.ordinal import cumlink_eta, link_functions
from scipy import integrate, optimize, stats
from scipy.special import expit

from mixframe.design.build import build_design
from mixframe.design.terms import Design, RETerm
from mixframe.fit.clm import CLMProblem, fit_clm, make_cdf, threshold_structure
from mixframe.fit.clmm import fit_clmm, rho_to_xi, xi_to_rho

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "reference"
DATA = ROOT.parent / "mixframe" / "datasets" / "data"
LINKS = ["logit", "probit", "cloglog", "loglog", "cauchit"]
CDFS = {
    "logit": stats.logistic.cdf,
    "probit": stats.norm.cdf,
    "cloglog": lambda x: -np.expm1(-np.exp(x)),
    "loglog": lambda x: np.exp(-np.exp(-x)),
    "cauchit": stats.cauchy.cdf,
}
SFS = {
    "logit": stats.logistic.sf,
    "probit": stats.norm.sf,
    "cloglog": lambda x: np.exp(-np.exp(x)),
    "loglog": lambda x: -np.expm1(-np.exp(-x)),
    "cauchit": stats.cauchy.sf,
}


# ---------------------------------------------------------------------------- helpers
def simulate(rng, n_groups=12, per=15, K=4, sd=0.9, slope=False, crossed=False, nested=False):
    """A small ordinal data set with a scalar (or intercept + slope) term, optionally a crossed one."""
    n = n_groups * per
    g = np.repeat(np.arange(n_groups), per).astype(np.int32)
    x = rng.normal(size=n)
    eta = 0.8 * x + sd * rng.normal(size=n_groups)[g]
    if slope:
        eta += 0.5 * x * rng.normal(size=n_groups)[g]
    h = rng.integers(0, 5, size=n).astype(np.int32)
    if crossed:
        eta += 0.6 * rng.normal(size=5)[h]
    latent = eta + rng.logistic(size=n)
    y = np.digitize(latent, np.quantile(latent, np.linspace(0, 1, K + 1)[1:-1]))
    Zg = np.column_stack([np.ones(n), x]) if slope else np.ones((n, 1))
    names = ["(Intercept)", "x"] if slope else ["(Intercept)"]
    terms = [RETerm("g", g, [str(i) for i in range(n_groups)], np.ascontiguousarray(Zg), names)]
    if crossed:
        terms.append(RETerm("h", h, [str(i) for i in range(5)], np.ones((n, 1)), ["(Intercept)"]))
    if nested:     # g:s, each g split in 3 subgroups (listed first: it has more levels)
        sub = (g * 3 + np.arange(n) % 3).astype(np.int32)
        zs = np.ascontiguousarray(rng.uniform(0.5, 1.5, size=(n, 1)))
        terms.insert(0, RETerm("g:s", sub, [f"{i // 3}:{i % 3}" for i in range(3 * n_groups)], zs, ["w"]))
    return Design(X=x[:, None].copy(), x_names=["x"], y=y.astype(float), weights=None, offset=None,
                  terms=terms, used=np.ones(n, bool), n_total=n, response="y",
                  response_levels=[str(k) for k in range(K)])


def dense_Z(design):
    blocks = []
    for t in design.terms:
        Zt = np.zeros((design.n_obs, t.q))
        for j in range(t.k):
            Zt[np.arange(design.n_obs), t.codes * t.k + j] = t.Z[:, j]
        blocks.append(Zt)
    return np.hstack(blocks)


def dense_lambda(design, theta):
    from scipy.linalg import block_diag

    from mixframe.design.terms import theta_to_lambdas
    lams = theta_to_lambdas(design.terms, theta)
    return block_diag(*[np.kron(np.eye(t.n_levels), lam) for t, lam in zip(design.terms, lams)])


def logit_pieces(y, eta, alpha):
    """log P, d/d eta and d2/d eta2 for the logit link with plain NumPy formulas."""
    A = np.concatenate([[-np.inf], alpha, [np.inf]])
    F1, F0 = expit(A[y + 1] - eta), expit(A[y] - eta)
    f1, f0 = F1 * (1 - F1), F0 * (1 - F0)
    d1, d0 = f1 * (1 - 2 * F1), f0 * (1 - 2 * F0)
    P = F1 - F0
    s = -(f1 - f0) / P
    return np.log(P), s, (d1 - d0) / P - s ** 2


def dense_laplace(design, alpha, beta, theta):
    """-log L by the Laplace approximation with dense matrices and Newton's method in NumPy (logit)."""
    y = design.y.astype(int)
    ZL = dense_Z(design) @ dense_lambda(design, theta)
    eta0 = design.X @ beta
    u = np.zeros(ZL.shape[1])
    for _ in range(100):
        lp, s, d2 = logit_pieces(y, eta0 + ZL @ u, alpha)
        H = ZL.T @ (-d2[:, None] * ZL) + np.eye(u.size)
        step = np.linalg.solve(H, ZL.T @ s - u)
        u = u + step
        if np.max(np.abs(step)) < 1e-13:
            break
    lp, s, d2 = logit_pieces(y, eta0 + ZL @ u, alpha)
    H = ZL.T @ (-d2[:, None] * ZL) + np.eye(u.size)
    return -(lp.sum() - 0.5 * u @ u - 0.5 * np.linalg.slogdet(H)[1])


def exact_marginal(design, alpha, beta, sd, link="logit"):
    """-log L of a single scalar random intercept by adaptive numerical integration per group."""
    F = CDFS[link]
    y = design.y.astype(int)
    A = np.concatenate([[-np.inf], alpha, [np.inf]])
    t = design.terms[0]
    eta0 = design.X @ beta
    total = 0.0
    for j in range(t.n_levels):
        rows = t.codes == j

        def integrand(v, rows=rows):
            e = eta0[rows] + sd * v
            with np.errstate(divide="ignore"):
                return np.exp(np.sum(np.log(F(A[y[rows] + 1] - e) - F(A[y[rows]] - e)))) * stats.norm.pdf(v)

        total += np.log(integrate.quad(integrand, -12, 12, epsabs=0, epsrel=1e-12, limit=200)[0])
    return -total


# ---------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("link", LINKS)
def test_link_functions_match_scipy(link):
    x = np.concatenate([np.linspace(-40, 40, 161), [-np.inf, np.inf]])
    cdf, pdf, dpdf = (np.empty_like(x) for _ in range(3))
    link_functions(["logit", "probit", "cloglog", "loglog", "cauchit"].index(link), x, cdf, pdf, dpdf)
    np.testing.assert_allclose(cdf, CDFS[link](x), rtol=1e-12, atol=1e-300)
    xf = x[:-2]
    h = 1e-6
    ref_pdf = (CDFS[link](xf + h) - CDFS[link](xf - h)) / (2 * h)
    np.testing.assert_allclose(pdf[:-2], ref_pdf, atol=1e-8)
    pp, pm, empty = np.empty_like(xf), np.empty_like(xf), np.empty(0)
    link_functions(LINKS.index(link), xf + h, empty, pp, empty)
    link_functions(LINKS.index(link), xf - h, empty, pm, empty)
    np.testing.assert_allclose(dpdf[:-2], (pp - pm) / (2 * h), atol=1e-8)
    np.testing.assert_array_equal(pdf[-2:], 0.0)
    assert make_cdf(link)(np.array([[0.0]])).shape == (1, 1)


@pytest.mark.parametrize("link", LINKS)
def test_score_and_curvature_against_finite_differences(link):
    rng = np.random.default_rng(3)
    n, K = 400, 5
    y = rng.integers(0, K, n).astype(np.int32)
    eta = rng.normal(scale=1.0, size=n)
    alpha = np.array([-1.5, -0.2, 0.4, 1.7])
    code = LINKS.index(link)
    F, S = CDFS[link], SFS[link]
    A = np.concatenate([[-np.inf], alpha, [np.inf]])

    def lp(e):
        x1, x0 = A[y + 1] - e, A[y] - e
        return np.log(np.where(x0 > 0, S(x0) - S(x1), F(x1) - F(x0)))

    score, curv = np.empty(n), np.empty(n)
    status, ll = cumlink_eta(y, eta, alpha, np.empty(0), code, score, curv)
    assert status == 0
    np.testing.assert_allclose(ll, lp(eta).sum(), rtol=1e-10)
    h = 1e-5
    np.testing.assert_allclose(score, (lp(eta + h) - lp(eta - h)) / (2 * h), atol=1e-6)
    sp, sm, work = np.empty(n), np.empty(n), np.empty(n)
    cumlink_eta(y, eta + h, alpha, np.empty(0), code, sp, work)
    cumlink_eta(y, eta - h, alpha, np.empty(0), code, sm, work)
    np.testing.assert_allclose(-curv, (sp - sm) / (2 * h), rtol=1e-5, atol=1e-7)


def test_extreme_linear_predictors_stay_finite():
    y = np.array([0, 4, 2, 2, 0, 4], dtype=np.int32)
    eta = np.array([-60.0, 60.0, -60.0, 60.0, 300.0, -300.0])
    alpha = np.array([-1.0, 0.0, 1.0, 2.0])
    for code in range(5):
        score, curv = np.empty(6), np.empty(6)
        status, ll = cumlink_eta(y, eta, alpha, np.empty(0), code, score, curv)
        assert status == 0 and np.isfinite(ll)
        assert np.all(np.isfinite(score)) and np.all(np.isfinite(curv))


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("threshold", ["flexible", "equidistant", "symmetric"])
def test_clm_gradient_and_hessian(link, threshold):
    d = simulate(np.random.default_rng(5), K=5)
    prob = CLMProblem(d, link, threshold)
    par = np.concatenate([np.linalg.lstsq(prob.J, np.array([-1.2, -0.3, 0.5, 1.4]), rcond=None)[0], [0.4]])
    _, g, H = prob.derivatives(par)
    h = 1e-5
    eye = np.eye(par.size) * h
    g_fd = np.array([(prob.derivatives(par + e)[0] - prob.derivatives(par - e)[0]) / (2 * h) for e in eye])
    H_fd = np.array([(prob.derivatives(par + e)[1] - prob.derivatives(par - e)[1]) / (2 * h) for e in eye])
    np.testing.assert_allclose(g, g_fd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------- thresholds
def test_threshold_structures():
    J, names = threshold_structure(list("123456"), "symmetric")      # 5 thresholds, odd
    assert names == ["central", "spacing.1", "spacing.2"]
    np.testing.assert_allclose(J @ [0.5, 1.0, 3.0], [-2.5, -0.5, 0.5, 1.5, 3.5])
    J, names = threshold_structure(list("12345"), "symmetric")       # 4 thresholds, even
    assert names == ["central.1", "central.2", "spacing.1"]
    np.testing.assert_allclose(J @ [0.0, 1.0, 2.0], [-2.0, 0.0, 1.0, 3.0])
    J, names = threshold_structure(list("12345"), "equidistant")
    np.testing.assert_allclose(J @ [-1.0, 0.5], [-1.0, -0.5, 0.0, 0.5])
    for thr, K in [("flexible", 5), ("equidistant", 5), ("symmetric", 6), ("symmetric", 5)]:
        J, _ = threshold_structure([str(i) for i in range(K)], thr)
        rho = np.random.default_rng(K).normal(size=J.shape[1])
        xi = rho_to_xi(rho, thr, K - 1)
        assert np.all(np.diff(J @ xi) > 0)
        np.testing.assert_allclose(xi_to_rho(xi, thr, K - 1), rho, atol=1e-12)


@pytest.mark.parametrize("threshold", ["equidistant", "symmetric"])
@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_clm_structured_thresholds_match_direct_optimisation(threshold, link):
    d = simulate(np.random.default_rng(11), K=5)
    fit = fit_clm(d, link=link, threshold=threshold)
    prob = CLMProblem(d, link, threshold)

    def negll(par):
        ll = prob.derivatives(par)[0]
        return -ll if np.isfinite(ll) else 1e10

    ref = optimize.minimize(negll, fit.coef + 0.05, method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
    assert fit.loglik >= -ref.fun - 1e-9
    np.testing.assert_allclose(fit.coef, ref.x, atol=1e-4)
    alpha = fit.extra["alpha"]
    assert np.all(np.diff(alpha) > 0)
    if threshold == "equidistant":
        np.testing.assert_allclose(np.diff(alpha), np.diff(alpha)[0])
    flexible = fit_clm(d, link=link)
    assert flexible.loglik >= fit.loglik - 1e-9


# ---------------------------------------------------------------------------- likelihood oracles
def test_threshold_map_jacobian():
    from mixframe.fit.clmm_optim import rho_jacobian
    for thr, K in [("flexible", 5), ("equidistant", 5), ("symmetric", 6), ("symmetric", 5)]:
        J, _ = threshold_structure([str(i) for i in range(K)], thr)
        rho = np.random.default_rng(K).normal(size=J.shape[1])
        h = 1e-6
        fd = np.column_stack([(rho_to_xi(rho + e, thr, K - 1) - rho_to_xi(rho - e, thr, K - 1)) / (2 * h)
                              for e in np.eye(rho.size) * h])
        np.testing.assert_allclose(rho_jacobian(rho, thr, K - 1), fd, atol=1e-8)


@pytest.mark.parametrize("link", LINKS)
def test_clmm_every_link_reaches_a_stationary_point(link):
    d = simulate(np.random.default_rng(9), n_groups=10, per=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_clmm(d, link=link)
    assert np.isfinite(fit.loglik) and fit.loglik >= fit_clm(d, link=link).loglik - 1e-6
    assert fit.extra["max_grad"] < 1e-3
    assert np.all(np.isfinite(np.diag(fit.vcov))) and np.all(np.diag(fit.vcov) > 0)
    assert fit.b[0].shape == (10, 1) and np.all(fit.b_sd[0] > 0)


# ---------------------------------------------------------------------------- R reference fits
def reference_fit(case):
    ref = json.loads((REF / f"{case}.json").read_text())
    groups = {c for g in re.findall(r"\|\s*([\w:]+)\)", ref["formula"]) for c in g.split(":")}
    dtypes = {c: str for c in groups | set(ref["factor_levels"])}
    df = pd.read_csv(DATA / ref["data"], dtype=dtypes)
    response = ref["formula"].split("~")[0].strip()
    for col, levels in ref["factor_levels"].items():
        df[col] = pd.Categorical(df[col], categories=levels, ordered=col == response)
    m = re.search(r"nAGQ=(\d+)", ref["method"])
    kind = "clmm" if ref["varcorr"] else "clm"
    design = build_design(ref["formula"], df, kind=kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "clm":
            fit = fit_clm(design, link=ref["link"])
        else:
            fit = fit_clmm(design, link=ref["link"], nagq=int(m.group(1)) if m else 1)
    return ref, design, fit
