"""GLM families (mixframe.families.glm): compiled loops against NumPy/SciPy oracles and finite differences."""
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


def family_sample(fam, link):
    """The family, its dispersion, means on a grid (binomial kept inside (0.05, 0.95)) and a response there."""
    f = get_family(fam, link)
    mu = f.linkinv(eta_for(fam, link))
    if fam == "binomial":
        mu = np.clip(mu, 0.05, 0.95)
    y, wt = response_for(fam, mu)
    return f, DISP[fam], mu, y, wt


@pytest.mark.parametrize("fam,link", PAIRS)
def test_variance_deviance_loglik(fam, link):
    f, d, mu, y, wt = family_sample(fam, link)
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


# a wide grid of means inside each link's range (binomial links: (0, 1); the others: positive); the
# cloglog link function log(-log(1 - mu)) keeps 10 digits only down to mu ~ 1e-4
MU_GRID = {
    "identity": np.array([-3.0, 0.2, 4.0, 50.0]), "log": np.array([1e-6, 0.3, 2.0, 1e4]),
    "logit": np.array([1e-9, 0.02, 0.5, 0.97, 1 - 1e-9]), "probit": np.array([1e-9, 0.02, 0.5, 0.97, 1 - 1e-9]),
    "cloglog": np.array([1e-4, 0.02, 0.5, 0.97, 1 - 1e-9]), "inverse": np.array([1e-3, 0.4, 3.0, 200.0]),
    "sqrt": np.array([1e-4, 0.4, 3.0, 200.0]), "inverse_squared": np.array([1e-2, 0.4, 3.0, 200.0]),
    "cauchit": np.array([1e-6, 0.02, 0.5, 0.97, 1 - 1e-6]),
}
LINK_FAMILY = {lk: fam for fam, links in reversed(ALLOWED_LINKS.items()) for lk in links}


@pytest.mark.parametrize("link", sorted(MU_GRID))
def test_linkinv_of_linkfun_is_identity(link):
    f = get_family(LINK_FAMILY[link], link)
    mu = MU_GRID[link]
    np.testing.assert_allclose(f.linkinv(f.linkfun(mu)), mu, rtol=1e-10)


@pytest.mark.parametrize("link", sorted(MU_GRID))
def test_mu_eta_is_the_derivative_of_linkinv(link):
    """mu_eta against central differences of the family's own inverse link, on a grid of eta."""
    f = get_family(LINK_FAMILY[link], link)
    eta = f.linkfun(MU_GRID[link][1:-1])
    h = 1e-6 * np.maximum(1.0, np.abs(eta))
    fd = (f.linkinv(eta + h) - f.linkinv(eta - h)) / (2 * h)
    np.testing.assert_allclose(f.mu_eta(eta), fd, rtol=1e-6)


def scipy_dist(fam, mu, d):
    """The scipy.stats distribution of one observation (unit weight) with mean mu and dispersion d."""
    if fam == "gaussian":
        return stats.norm(mu, d)
    if fam == "binomial":
        return stats.bernoulli(mu)
    if fam == "poisson":
        return stats.poisson(mu)
    if fam == "gamma":
        return stats.gamma(1 / d ** 2, scale=mu * d ** 2)
    if fam == "inverse_gaussian":
        return stats.invgauss(mu * d ** 2, scale=1 / d ** 2)
    return stats.nbinom(d, d / (d + mu))


@pytest.mark.parametrize("fam,link", PAIRS)
def test_variance_function_is_the_scipy_variance(fam, link):
    """phi V(mu) is Var(y) of the distribution with mean mu (unit weight)."""
    f = get_family(fam, link)
    d = DISP[fam]
    mu = np.clip(f.linkinv(eta_for(fam, link)), 0.05, 0.95) if fam == "binomial" else f.linkinv(eta_for(fam, link))
    dist = scipy_dist(fam, mu, d)
    np.testing.assert_allclose(dist.mean(), mu, rtol=1e-12)
    np.testing.assert_allclose(f.phi(d) * f.variance(mu, d), dist.var(), rtol=1e-10)


@pytest.mark.parametrize("fam,link", PAIRS)
def test_deviance_is_twice_phi_times_the_scipy_loglik_ratio(fam, link):
    """dev_resid = 2 phi (loglik(y; mu = y) - loglik(y; mu)), the log-likelihoods from scipy.stats."""
    f, d, mu, y, wt = family_sample(fam, link)
    sat = np.clip(y, 1e-300, None) if fam in ("poisson", "negative_binomial") else y
    ratio = oracle_loglik(fam, y, sat, wt, d) - oracle_loglik(fam, y, mu, wt, d)
    if fam == "binomial":   # the saturated binomial mean can be 0 or 1
        k, n = np.round(y * wt), np.round(wt)
        ratio = stats.binom.logpmf(k, n, y) - stats.binom.logpmf(k, n, mu)
    np.testing.assert_allclose(f.dev_resid(y, mu, wt, d), 2 * f.phi(d) * ratio, rtol=1e-9, atol=1e-12)


def test_family_pickles_with_its_codes():
    import pickle

    for fam, link in PAIRS:
        f = get_family(fam, link)
        g = pickle.loads(pickle.dumps(f))
        assert g == f and hash(g) == hash(f)
        assert (g.fcode, g.lcode) == (f.fcode, f.lcode) == (int(f.dist), int(f.link_enum))
        eta = eta_for(fam, link)
        np.testing.assert_array_equal(g.linkinv(eta), f.linkinv(eta))


def test_results_use_the_fitted_family():
    """family_of returns the GLMM's own Family, gaussian-identity for an LMM, else the named one."""
    from types import SimpleNamespace

    from mixframe.families import family_of, with_dispersion

    own = get_family("binomial", "probit")
    assert family_of(SimpleNamespace(kind="glmm", extra={"family_obj": own}, family="binomial",
                                     link="logit")) is own
    assert family_of(SimpleNamespace(kind="glmm", extra={}, family="negative_binomial",
                                     link="log")) == get_family("negative_binomial")
    assert family_of(SimpleNamespace(kind="lmm", extra={}, family=None, link=None)) == get_family("gaussian")
    nb = get_family("negative_binomial")
    mu = np.array([0.5, 2.0, 9.0])
    np.testing.assert_allclose(with_dispersion(nb.variance, mu, disp=2.5), mu + mu ** 2 / 2.5, rtol=1e-15)
    np.testing.assert_allclose(with_dispersion(nb.variance, mu), mu + mu ** 2, rtol=1e-15)
