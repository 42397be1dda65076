"""The trust-region driver on a compiled SmoothObjective (the one-term LMM deviance kernel) against the same
objective given as Python callables around its def methods: the same iterates, bit for bit."""
import math

import numpy as np
import pytest

from mixframe._ext import trust_region as _tr
from mixframe._ext.lmm_derivs import OneBlockDeviance
from mixframe.design.build import build_design
from mixframe.fit.lmm import LmmObjective
from mixframe.fit.lmm_grad import OneBlockDerivatives
from mixframe.numerics.optim import NOT_FINITE, trust_region

from test_lmm_optim import _frame


def _kernel(k, reml, seed=0):
    rhs = {1: "(1 | g)", 2: "(x | g)", 3: "(x + z | g)"}[k]
    obj = LmmObjective(build_design(f"y ~ x + {rhs}", _frame(seed + k, k=k), kind="lmm"), reml=reml)
    return OneBlockDerivatives(obj)._dev, obj


def _callables(dev):
    """The Python-callable form of dev: value at trial points, (gradient, Hessian) at accepted ones."""
    nt = dev.n_vars

    def derivs(theta):
        grad, hess = np.empty(nt), np.empty((nt, nt))
        dev.derivatives(theta, grad, hess)
        return grad, hess

    return (lambda theta: dev.deviance(theta)), derivs


def _start(k):
    return np.array([1.0 if i == j else 0.0 for j in range(k) for i in range(j, k)])


def _assert_same(a, b):
    assert a.status == b.status
    assert a.evaluations == b.evaluations
    assert a.fun == b.fun
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.gradient, b.gradient)
    np.testing.assert_array_equal(a.hessian, b.hessian)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("bounded", [False, True])
def test_smooth_objective_matches_python_callables(k, reml, bounded):
    dev, obj = _kernel(k, reml)
    fun, derivs = _callables(dev)
    x0 = _start(k) * 0.3
    lower = None
    if bounded:     # the diagonal of the relative factor held at 0.5 or above: some steps are projected
        lower = np.array([0.5 if i == j else -np.inf for j in range(k) for i in range(j, k)])
    compiled = trust_region(dev, x0, lower=lower)
    python = trust_region(fun, x0, derivs, lower=lower)
    _assert_same(compiled, python)
    assert compiled.status in ("ftol", "xtol")
    assert compiled.evaluations > 3
    # the optimum of the deviance as the plain LMM objective sees it
    assert compiled.fun == pytest.approx(obj(compiled.x), rel=1e-12)
    if not bounded:
        assert np.max(np.abs(compiled.gradient)) < 1e-4


@pytest.mark.parametrize("k", [1, 2])
def test_smooth_objective_quasi_newton_loop(k):
    """The compiled loop under a BFGS model: the objective's Hessian is ignored, its gradient used."""
    dev, _ = _kernel(k, True, seed=5)
    fun, derivs = _callables(dev)
    x0 = _start(k) * 0.5
    f0, g0, _ = dev.evaluate(x0)
    H0 = np.eye(x0.size) * max(1.0, np.max(np.abs(g0)))
    args = (None, None, x0, f0, g0, H0, False, None, None, None, 1e-11, 1e-13, 1e-10, 1e-10, 0.0, 1, 200)
    a = _tr.minimize(dev, None, *args)
    b = _tr.minimize(fun, lambda t: derivs(t)[0], *args)
    assert a[1] == b[1] and a[4] == b[4] and a[5] == b[5] and a[6] == b[6]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[3], b[3])
    assert a[4] > 4
    ref = trust_region(dev, x0)
    np.testing.assert_allclose(a[0], ref.x, rtol=1e-4, atol=1e-5)


def test_smooth_objective_evaluate_and_wrappers():
    dev, obj = _kernel(2, True)
    theta = np.array([0.8, 0.2, 0.5])
    f, g, H = dev.evaluate(theta)
    assert f == obj(theta)
    assert f == dev.deviance(theta)
    grad, hess = np.empty(3), np.empty((3, 3))
    assert dev.derivatives(theta, grad, hess) == f
    np.testing.assert_array_equal(g, grad)
    np.testing.assert_array_equal(H, hess)
    assert H.shape == (3, 3)
    np.testing.assert_array_equal(H, H.T)
    # a point where the system is not positive definite: the value is inf, no derivatives
    bad = np.array([math.nan, 0.0, 1.0])
    assert dev.evaluate(bad)[1:] == (None, None)
    with pytest.raises(ValueError):
        dev.deviance(np.ones(2))
    with pytest.raises(ValueError):
        dev.derivatives(theta, np.empty(2), hess)


def test_smooth_objective_driver_checks():
    dev, _ = _kernel(2, True)
    fun, derivs = _callables(dev)
    with pytest.raises(ValueError):
        trust_region(dev, _start(2), derivs)
    with pytest.raises(ValueError):
        trust_region(dev, np.ones(2))
    # the base class is defined nowhere
    r = trust_region(_tr.SmoothObjective(), np.zeros(0))
    assert r.status == NOT_FINITE and math.isnan(r.fun)
