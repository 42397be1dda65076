"""The analytic Laplace gradient (canonical links, scalar terms) and the trust-region quasi-Newton search."""
import numpy as np

from mixframe.families import get_family
from mixframe.fit.glmm_grad import laplace_gradient
from mixframe.fit.glmm_laplace import GLMMObjective
from mixframe.numerics.fdiff import hessian_from_gradient as fd_hessian_from_gradient

from fit.test_glmm import load_case


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


