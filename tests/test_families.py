"""Families and links: compiled loops against NumPy/SciPy oracles and finite differences."""
import numpy as np
import pytest
from scipy import special, stats

from mixframe.errors import DataError
from mixframe.families import ALLOWED_LINKS, get_family

RNG = np.random.default_rng(7)

# eta values inside each link's domain
ETA = {
    "identity": np.array([0.3, 1.2, 2.5]), "log": np.array([-1.0, 0.2, 1.5]),
    "logit": np.array([-2.0, 0.1, 1.7]), "probit": np.array([-1.5, 0.2, 1.1]),
    "cloglog": np.array([-2.0, -0.3, 0.6]), "inverse": np.array([0.4, 0.9, 2.0]),
    "sqrt": np.array([0.5, 1.1, 2.2]), "inverse_squared": np.array([0.3, 0.8, 1.6]),
    "cauchit": np.array([-1.2, 0.3, 2.0]),
}
LINKINV = {
    "identity": lambda e: e, "log": np.exp, "logit": special.expit, "probit": stats.norm.cdf,
    "cloglog": lambda e: 1 - np.exp(-np.exp(e)), "inverse": lambda e: 1 / e, "sqrt": lambda e: e ** 2,
    "inverse_squared": lambda e: 1 / np.sqrt(e), "cauchit": stats.cauchy.cdf,
}
VAR = {"gaussian": lambda m, d: np.ones_like(m), "binomial": lambda m, d: m * (1 - m), "poisson": lambda m, d: m,
       "gamma": lambda m, d: m ** 2, "inverse_gaussian": lambda m, d: m ** 3,
       "negative_binomial": lambda m, d: m + m ** 2 / d}
PAIRS = [(f, lk) for f, links in ALLOWED_LINKS.items() for lk in links]
DISP = {"gaussian": 0.7, "binomial": 1.0, "poisson": 1.0, "gamma": 0.4, "inverse_gaussian": 0.6,
        "negative_binomial": 2.5}


def eta_for(fam, link):
    """eta values in the link's domain giving valid means for the family."""
    if fam == "binomial" and link == "log":
        return np.array([-2.0, -1.0, -0.3])
    return ETA[link]


def response_for(fam, mu):
    """A valid response near mu (binomial: proportion of 5 trials, with weights 5)."""
    if fam == "binomial":
        return np.array([1, 2, 5]) / 5.0, np.full(3, 5.0)
    if fam in ("poisson", "negative_binomial"):
        return np.array([0.0, 3.0, 7.0]), np.ones(3)
    if fam == "gaussian":
        return mu + np.array([0.3, -0.2, 0.5]), np.array([1.0, 2.0, 0.5])
    return mu * np.array([0.7, 1.3, 1.05]), np.array([1.0, 2.0, 1.0])


def oracle_loglik(fam, y, mu, wt, d):
    if fam == "gaussian":
        return stats.norm.logpdf(y, mu, d / np.sqrt(wt))
    if fam == "binomial":
        return stats.binom.logpmf(np.round(y * wt), np.round(wt), mu)
    if fam == "poisson":
        return wt * stats.poisson.logpmf(y, mu)
    if fam == "gamma":
        a = 1 / d ** 2
        return wt * stats.gamma.logpdf(y, a, scale=mu / a)
    if fam == "inverse_gaussian":
        lam = 1 / d ** 2
        return wt * stats.invgauss.logpdf(y, mu / lam, scale=lam)
    return wt * stats.nbinom.logpmf(y, d, d / (d + mu))


def oracle_dev(fam, y, mu, wt, d):
    def ylogy(a, b):
        return np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / b), 0.0)
    if fam == "gaussian":
        return wt * (y - mu) ** 2
    if fam == "binomial":
        return 2 * wt * (ylogy(y, mu) + ylogy(1 - y, 1 - mu))
    if fam == "poisson":
        return 2 * wt * (ylogy(y, mu) - (y - mu))
    if fam == "gamma":
        return -2 * wt * (np.log(y / mu) - (y - mu) / mu)
    if fam == "inverse_gaussian":
        return wt * (y - mu) ** 2 / (y * mu ** 2)
    return 2 * wt * (ylogy(y, mu) - (y + d) * np.log((y + d) / (mu + d)))


@pytest.mark.parametrize("fam,link", PAIRS)
def test_link_against_numpy_and_fd(fam, link):
    f = get_family(fam, link)
    eta = ETA[link]
    mu = f.linkinv(eta)
    np.testing.assert_allclose(mu, LINKINV[link](eta), rtol=1e-12)
    np.testing.assert_allclose(f.linkfun(mu), eta, rtol=1e-9, atol=1e-12)
    h = 1e-6
    fd = (LINKINV[link](eta + h) - LINKINV[link](eta - h)) / (2 * h)
    np.testing.assert_allclose(f.mu_eta(eta), fd, rtol=1e-6)


@pytest.mark.parametrize("fam,link", PAIRS)
def test_variance_deviance_loglik(fam, link):
    f = get_family(fam, link)
    d = DISP[fam]
    mu = f.linkinv(eta_for(fam, link))
    if fam == "binomial":
        mu = np.clip(mu, 0.05, 0.95)
    y, wt = response_for(fam, mu)
    np.testing.assert_allclose(f.variance(mu, d), VAR[fam](mu, d), rtol=1e-12)
    np.testing.assert_allclose(f.dev_resid(y, mu, wt, d), oracle_dev(fam, y, mu, wt, d), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f.loglik_terms(y, mu, wt, d), oracle_loglik(fam, y, mu, wt, d), rtol=1e-9)
    assert f.loglik(y, mu, wt, d) == pytest.approx(float(np.sum(oracle_loglik(fam, y, mu, wt, d))), rel=1e-9)


@pytest.mark.parametrize("fam,link", PAIRS)
def test_working_quantities_are_loglik_derivatives(fam, link):
    """w * r is d loglik / d eta and the observed weights are -d2 loglik / d eta2 (finite differences)."""
    f = get_family(fam, link)
    d = DISP[fam]
    eta = eta_for(fam, link)
    mu0 = f.linkinv(eta)
    y, wt = response_for(fam, np.clip(mu0, 0.05, 0.95) if fam == "binomial" else mu0)

    def ll(e):
        return f.loglik_terms(y, f.linkinv(e), wt, d)

    mu, w, r, terms, status = f.working(y, eta, wt, d)
    assert status == 0
    np.testing.assert_allclose(terms, ll(eta), rtol=1e-12)
    h = 1e-5
    grad = (ll(eta + h) - ll(eta - h)) / (2 * h)
    np.testing.assert_allclose(w * r, grad, rtol=1e-6, atol=1e-8)
    hess = (ll(eta + h) - 2 * ll(eta) + ll(eta - h)) / h ** 2
    np.testing.assert_allclose(f.observed_weights(y, eta, wt, d), -hess, rtol=2e-4, atol=1e-5)
    # Fisher weights: wt mu_eta^2 / (phi V)
    fisher = wt * f.mu_eta(eta) ** 2 / (f.phi(d) * f.variance(mu, d))
    np.testing.assert_allclose(w, fisher, rtol=1e-12)


def test_invalid_mean_sets_status():
    f = get_family("poisson", "identity")
    _, _, _, _, status = f.working(np.array([1.0, 2.0]), np.array([1.0, -0.5]), None)
    assert status == 1


def test_get_family_defaults_and_errors():
    assert get_family("binomial").link == "logit"
    assert get_family("gamma").link == "inverse"
    assert get_family("inverse_gaussian").link == "inverse_squared"
    assert get_family("negative_binomial").link == "log"
    assert get_family("Gamma", "log") == get_family("gamma", "log")
    assert get_family("binomial").canonical and not get_family("binomial", "probit").canonical
    with pytest.raises(ValueError, match="unknown family"):
        get_family("weibull")
    with pytest.raises(ValueError, match="logit, probit, cloglog, log, cauchit"):
        get_family("binomial", "sqrt")
    with pytest.raises(ValueError, match="allowed links"):
        get_family("poisson", "logit")


def test_validate_response_names_the_column():
    with pytest.raises(DataError, match="'incidence'"):
        get_family("binomial").validate_response(np.array([0.0, 1.5]), None, "incidence")
    with pytest.raises(DataError, match="whole number"):
        get_family("binomial").validate_response(np.array([0.5, 0.3]), np.array([2.0, 2.0]), "p")
    with pytest.raises(DataError, match="'count'.*non-negative whole counts"):
        get_family("poisson").validate_response(np.array([0.0, -1.0]), None, "count")
    with pytest.raises(DataError, match="non-negative whole counts"):
        get_family("negative_binomial").validate_response(np.array([0.5, 2.0]), None, "count")
    with pytest.raises(DataError, match="strictly positive"):
        get_family("gamma").validate_response(np.array([1.0, 0.0]), None, "y")
    with pytest.raises(DataError, match="strictly positive"):
        get_family("inverse_gaussian").validate_response(np.array([-1.0, 2.0]), None, "y")
    get_family("binomial").validate_response(np.array([0.0, 1.0, 1.0]), None, "r2")
    get_family("poisson").validate_response(np.array([0.0, 4.0]), None, "count")


def test_valid_mu_and_eta():
    assert get_family("binomial").valid_mu([0.2, 0.9]) and not get_family("binomial").valid_mu([0.0, 0.5])
    assert not get_family("poisson").valid_mu([-1.0])
    assert get_family("gamma", "inverse").valid_eta([0.5]) and not get_family("gamma", "inverse").valid_eta([0.0])
    assert not get_family("inverse_gaussian").valid_eta([-0.1])
