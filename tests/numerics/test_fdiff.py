"""Finite differences of mixframe.numerics.fdiff against analytic derivatives."""
import numpy as np
import pytest

from mixframe.numerics import fdiff


def f(x):
    return np.exp(0.3 * x[0]) * np.sin(x[1]) + x[0] ** 2 * x[2] + np.log1p(x[2] ** 2)


def grad(x):
    return np.array([0.3 * np.exp(0.3 * x[0]) * np.sin(x[1]) + 2 * x[0] * x[2],
                     np.exp(0.3 * x[0]) * np.cos(x[1]),
                     x[0] ** 2 + 2 * x[2] / (1 + x[2] ** 2)])


def hess(x):
    e = np.exp(0.3 * x[0])
    return np.array([[0.09 * e * np.sin(x[1]) + 2 * x[2], 0.3 * e * np.cos(x[1]), 2 * x[0]],
                     [0.3 * e * np.cos(x[1]), -e * np.sin(x[1]), 0.0],
                     [2 * x[0], 0.0, 2 * (1 - x[2] ** 2) / (1 + x[2] ** 2) ** 2]])


X = np.array([0.8, -0.4, 1.3])


def test_step_policy():
    np.testing.assert_array_equal(fdiff.step_sizes([0.0, -30.0], 1e-4), [1e-4, 1e-4])
    np.testing.assert_allclose(fdiff.step_sizes([0.0, -30.0], 1e-4, floor=1.0), [1e-4, 3e-3])
    np.testing.assert_allclose(fdiff.step_sizes([0.05, 2.0], [1e-3, 1e-2], floor=0.1), [1e-4, 2e-2])


def test_gradient_central_and_forward():
    np.testing.assert_allclose(fdiff.gradient(f, X), grad(X), rtol=1e-8)
    np.testing.assert_allclose(fdiff.gradient(f, X, 1e-5, floor=1.0), grad(X), rtol=1e-8)
    forward = fdiff.gradient(f, X, 1e-7, f0=f(X))
    np.testing.assert_allclose(forward, grad(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("richardson", [False, True])
def test_hessian_from_values(richardson):
    f0, g, H = fdiff.hessian(f, X, 1e-3 if richardson else 1e-4, floor=1.0, richardson=richardson)
    assert f0 == f(X)
    np.testing.assert_allclose(g, grad(X), rtol=1e-6)
    np.testing.assert_allclose(H, hess(X), rtol=1e-5, atol=1e-6 if not richardson else 1e-8)
    np.testing.assert_array_equal(H, H.T)


def test_richardson_is_more_accurate():
    h = 1e-2
    plain = fdiff.hessian(f, X, h)[2]
    extrapolated = fdiff.hessian(f, X, h, richardson=True)[2]
    assert np.max(np.abs(extrapolated - hess(X))) < 0.05 * np.max(np.abs(plain - hess(X)))


def test_hessian_exact_for_quadratics():
    A = np.array([[2.0, -1.0, 0.5], [-1.0, 3.0, 0.2], [0.5, 0.2, 1.0]])
    _, g, H = fdiff.hessian(lambda x: 0.5 * x @ A @ x + x.sum(), X, 0.1)
    np.testing.assert_allclose(H, A, rtol=1e-10)
    np.testing.assert_allclose(g, A @ X + 1.0, rtol=1e-10)


def test_hessian_from_gradient():
    np.testing.assert_allclose(fdiff.hessian_from_gradient(grad, X), hess(X), rtol=1e-7, atol=1e-8)
    H = fdiff.hessian_from_gradient(grad, X, 1e-6, floor=1.0, g0=grad(X))
    np.testing.assert_allclose(H, hess(X), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(H, H.T)


@pytest.mark.parametrize("richardson", [False, True])
def test_jacobian_of_array_valued_function(richardson):
    def m(x):
        return np.array([[x[0] * x[1], np.sin(x[2])], [x[1] ** 2, np.exp(x[0])]])

    J = fdiff.jacobian(m, X, 1e-4, floor=0.1, richardson=richardson)
    want = np.zeros((2, 2, 3))
    want[0, 0] = [X[1], X[0], 0.0]
    want[0, 1, 2] = np.cos(X[2])
    want[1, 0, 1] = 2 * X[1]
    want[1, 1, 0] = np.exp(X[0])
    np.testing.assert_allclose(J, want, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fdiff.jacobian(grad, X), hess(X), rtol=1e-7, atol=1e-8)
