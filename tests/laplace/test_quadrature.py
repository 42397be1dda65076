"""The one Gauss-Hermite convention: nodes and weights for the standard normal density."""
import math

import numpy as np
import pytest
from scipy import integrate

from mixframe.numerics.quadrature import gauss_hermite, gauss_hermite_log


def normal_moment(k):
    return 0.0 if k % 2 else float(math.prod(range(k - 1, 0, -2)))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 20])
def test_polynomials_times_phi_are_exact(n):
    x, w = gauss_hermite(n)
    assert w.sum() == pytest.approx(1.0, rel=1e-13)
    for k in range(2 * n):
        scale = w @ np.abs(x) ** k          # rounding of the sum is relative to its absolute terms
        assert abs(w @ x ** k - normal_moment(k)) <= 1e-13 * scale + 1e-15, k
    rng = np.random.default_rng(n)
    c = rng.normal(size=2 * n)
    exact = sum(ci * normal_moment(k) for k, ci in enumerate(c))
    scale = sum(abs(ci) * (w @ np.abs(x) ** k) for k, ci in enumerate(c))
    assert abs(w @ np.polyval(c[::-1], x) - exact) <= 1e-12 * scale


def test_against_numerical_integration_and_log_weights():
    x, w = gauss_hermite(30)
    f = lambda t: np.cos(t) * np.exp(0.3 * t)   # noqa: E731
    phi = lambda t: np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)   # noqa: E731
    exact = integrate.quad(lambda t: f(t) * phi(t), -40, 40, epsabs=0, epsrel=1e-13, limit=400)[0]
    assert w @ f(x) == pytest.approx(exact, rel=1e-12)
    # the e^{-t^2} form of the same rule
    g_exact = integrate.quad(lambda t: np.cos(t) * np.exp(-t * t), -12, 12, epsabs=0, epsrel=1e-13, limit=400)[0]
    assert np.sqrt(np.pi) * (w @ np.cos(x / np.sqrt(2))) == pytest.approx(g_exact, rel=1e-12)
    xl, lw = gauss_hermite_log(30)
    np.testing.assert_array_equal(xl, x)
    np.testing.assert_allclose(np.exp(lw), w, rtol=1e-14)
    with pytest.raises(ValueError):
        gauss_hermite(0)
