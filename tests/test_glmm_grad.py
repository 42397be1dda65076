"""The analytic Laplace gradient (canonical links, scalar terms) and the trust-region quasi-Newton search."""
import numpy as np

from mixframe.families import get_family
from mixframe.fit.glmm_grad import laplace_gradient
from mixframe.fit.glmm_laplace import GLMMObjective
from mixframe.fit.glmm_opt import fd_hessian_from_gradient, newton_bounded

from test_glmm import load_case


def test_gradient_zero_at_reference_optimum():
    """At lme4's estimates for VerbAgg the gradient is small relative to the curvature (R stops within tolerance),
    and one Newton step changes the log-likelihood by less than 1e-6."""
    ref, design, family = load_case("verbagg")
    obj = GLMMObjective(design, get_family(family))
    theta = np.array([ref["theta"][f"{t.group}.(Intercept)"] for t in design.terms])
    beta = np.array([ref["fixef"][t] for t in design.x_names])
    x = np.concatenate([theta, beta])

    def grad(z):
        _, st = obj.laplace(z[:2], z[2:])
        return laplace_gradient(obj, z[:2], z[2:], st)

    g = grad(x)
    H = fd_hessian_from_gradient(grad, x)
    assert 0.5 * g @ np.linalg.solve(H, g) < 1e-6


def test_newton_bounded_quadratic_with_active_bound():
    A = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    b = np.array([2.0, -1.0, 1.0])

    def fg(x):
        return 0.5 * x @ A @ x - b @ x, A @ x - b

    lower = np.array([0.0, 0.0, -np.inf])
    x, f, H, n, conv = newton_bounded(fg, np.array([1.0, 1.0, 1.0]), lower)
    # KKT: x1 = 0 (its gradient is positive there), the rest solve the reduced system
    free = np.array([True, False, True])
    want = np.zeros(3)
    want[free] = np.linalg.solve(A[np.ix_(free, free)], b[free])
    assert want[0] > 0
    np.testing.assert_allclose(x, want, atol=1e-8)
    assert conv
    np.testing.assert_allclose(H, A, rtol=1e-6)


def test_newton_bounded_rosenbrock_from_far():
    def fg(x):
        f = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
        g = np.array([-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]), 200 * (x[1] - x[0] ** 2)])
        return f, g

    x, f, H, n, conv = newton_bounded(fg, np.array([-1.2, 1.0]), np.full(2, -np.inf), tol=1e-14)
    assert conv
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-6)
