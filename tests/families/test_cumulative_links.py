"""Cumulative links (mixframe.families.cumulative): distribution functions, quantiles, pickling."""
import pickle

import numpy as np
import pytest
from scipy import stats

from mixframe.families import CumLink, cdf, dpdf, link_code, make_cdf, pdf, quantile
from mixframe.families.cumulative import ordinal_probs

SCIPY = {
    CumLink.LOGIT: stats.logistic, CumLink.PROBIT: stats.norm, CumLink.CLOGLOG: stats.gumbel_l,
    CumLink.LOGLOG: stats.gumbel_r, CumLink.CAUCHIT: stats.cauchy,
}
X = np.array([-6.0, -2.2, -0.5, 0.0, 0.7, 1.9, 5.5])


@pytest.mark.parametrize("link", list(CumLink))
def test_cdf_pdf_against_scipy(link):
    dist = SCIPY[link]
    np.testing.assert_allclose(cdf(link, X), dist.cdf(X), rtol=1e-12)
    np.testing.assert_allclose(pdf(link, X), dist.pdf(X), rtol=1e-12)
    # by name too, and any shape
    np.testing.assert_allclose(cdf(link.label, X.reshape(7, 1)), dist.cdf(X).reshape(7, 1), rtol=1e-12)


@pytest.mark.parametrize("link", list(CumLink))
def test_density_derivative_against_finite_differences(link):
    h = 1e-5
    np.testing.assert_allclose(dpdf(link, X), (pdf(link, X + h) - pdf(link, X - h)) / (2 * h),
                               rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("link", list(CumLink))
def test_quantile_inverts_the_cdf(link):
    p = np.array([1e-6, 0.01, 0.3, 0.5, 0.8, 0.999])
    np.testing.assert_allclose(cdf(link, quantile(link, p)), p, rtol=1e-9)
    np.testing.assert_allclose(quantile(link, p), SCIPY[link].ppf(p), rtol=1e-9, atol=1e-12)


def test_link_code_by_name_and_errors():
    assert link_code("loglog") is CumLink.LOGLOG and link_code(CumLink.PROBIT) is CumLink.PROBIT
    with pytest.raises(ValueError, match="not a cumulative link"):
        link_code("log")
    with pytest.raises(ValueError, match="not a cumulative link"):
        make_cdf("identity")


@pytest.mark.parametrize("link", list(CumLink))
def test_cumulative_link_functions_pickle(link):
    F = make_cdf(link.label)
    G = pickle.loads(pickle.dumps(F))
    np.testing.assert_array_equal(G(X), F(X))
    np.testing.assert_allclose(G(X), SCIPY[link].cdf(X), rtol=1e-12)
    for fn in (cdf, pdf, dpdf, quantile):
        assert pickle.loads(pickle.dumps(fn)) is fn


def test_fitted_clm_cdf_pickles():
    from mixframe.design.terms import Design
    from mixframe.fit.clm import fit_clm

    y = np.array([0, 1, 2, 1, 0, 2, 2, 1, 0, 1], dtype=float)
    x = np.array([[0.], [1.], [1.], [0.], [0.], [1.], [1.], [1.], [0.], [0.]])
    d = Design(X=x, x_names=["x"], y=y, weights=None, offset=None, terms=[], used=np.ones(10, bool),
               n_total=10, response="y", response_levels=["a", "b", "c"])
    raw = fit_clm(d, link="probit")
    F = pickle.loads(pickle.dumps(raw.extra["cdf"]))
    np.testing.assert_array_equal(F(X), raw.extra["cdf"](X))
    np.testing.assert_allclose(F(X), stats.norm.cdf(X), rtol=1e-12)
    probs = ordinal_probs(raw, raw.eta)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)
    alpha = raw.extra["alpha"]
    np.testing.assert_allclose(probs[:, 0], stats.norm.cdf(alpha[0] - raw.eta), rtol=1e-12)
