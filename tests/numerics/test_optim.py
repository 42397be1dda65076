"""The optimizers of mixframe.numerics.optim on problems with known answers: bounded quadratics, Rosenbrock,
optima on a bound, the trust-region subproblem against a dense oracle, and the status vocabulary."""
import math

import numpy as np
import pytest

from mixframe.numerics import fdiff
from mixframe.numerics.optim import (CONVERGED, FAILED, FTOL, GTOL, MAXEVAL, NOT_FINITE, ROUNDOFF, STATUS_MESSAGES,
                                     SUCCESS, XTOL, OptResult, bfgs_update, bobyqa, lbfgs, minimize_1d, penalty,
                                     trust_region, trust_step)


def _rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def _rosenbrock_grad(x):
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])


def _rosenbrock_hess(x):
    return np.array([[2 - 400 * (x[1] - 3 * x[0] ** 2), -400 * x[0]], [-400 * x[0], 200.0]])


A = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
B = np.array([2.0, -1.0, 1.0])


def _quadratic(x):
    return 0.5 * x @ A @ x - B @ x


def _bounded_quadratic_answer(free):
    want = np.zeros(3)
    want[free] = np.linalg.solve(A[np.ix_(free, free)], B[free])
    return want


# --------------------------------------------------------------------------------------------- statuses
def test_status_vocabulary():
    assert set(STATUS_MESSAGES) == {SUCCESS, FTOL, XTOL, GTOL, ROUNDOFF, MAXEVAL, "maxtime", NOT_FINITE, FAILED}
    assert CONVERGED == {SUCCESS, FTOL, XTOL, GTOL, ROUNDOFF}
    for status in STATUS_MESSAGES:
        r = OptResult(x=np.zeros(1), fun=0.0, evaluations=1, status=status)
        assert r.converged == (status in CONVERGED)
        assert r.message == STATUS_MESSAGES[status]
    with pytest.raises(ValueError, match="unknown optimizer status"):
        OptResult(x=np.zeros(1), fun=0.0, evaluations=1, status="fine")


def test_penalty_policy():
    assert penalty(3.0) == 1e10
    assert penalty(-2e8) == pytest.approx(2e11)
    assert penalty(math.nan) == 1e10


# --------------------------------------------------------------------------------------------- BOBYQA
def test_bobyqa_bounded_quadratic():
    lower = np.array([0.0, 0.0, -np.inf])
    r = bobyqa(_quadratic, np.ones(3), lower)
    assert r.converged and r.status in (FTOL, XTOL, SUCCESS)
    np.testing.assert_allclose(r.x, _bounded_quadratic_answer(np.array([True, False, True])), atol=1e-6)
    assert r.fun == pytest.approx(_quadratic(r.x), rel=1e-14)


def test_bobyqa_optimum_on_upper_and_lower_bounds():
    r = bobyqa(lambda x: (x[0] - 3.0) ** 2 + (x[1] + 3.0) ** 2, [0.0, 0.0], lower=[-1.0, -1.0], upper=[1.0, 1.0])
    assert r.converged
    np.testing.assert_allclose(r.x, [1.0, -1.0], atol=1e-9)


def test_bobyqa_one_parameter_and_failed_points():
    # one parameter goes to BOBYQA like any other; a region where f is not finite is avoided
    r = bobyqa(lambda x: math.inf if x[0] > 2.5 else (x[0] - 2.0) ** 2, [0.0], step=1.0)
    assert r.converged
    assert r.x[0] == pytest.approx(2.0, abs=1e-6)
    assert np.isfinite(r.fun)


def test_bobyqa_rosenbrock_and_evaluation_limit():
    r = bobyqa(_rosenbrock, [-1.2, 1.0], np.full(2, -np.inf))
    assert r.converged
    np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-5)
    short = bobyqa(_rosenbrock, [-1.2, 1.0], np.full(2, -np.inf), max_evals=10)
    assert short.status == MAXEVAL and not short.converged and short.evaluations == 10


def test_bobyqa_nowhere_finite_fails():
    r = bobyqa(lambda x: math.nan, [0.0, 0.0], max_evals=20)
    assert r.status == FAILED and not r.converged


# --------------------------------------------------------------------------------------------- trust region
def test_trust_step_matches_dense_oracle():
    """The subproblem answer against a brute-force search over the boundary and the Newton step."""
    rng = np.random.default_rng(1)
    for case in range(30):
        n = 3
        Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
        w = rng.normal(size=n) * 5.0
        H = Q @ np.diag(w) @ Q.T
        g = rng.normal(size=n)
        radius = float(rng.uniform(0.05, 2.0))
        d, pred, dec, norm = trust_step(H, g, radius)
        model = -(g @ d + 0.5 * d @ H @ d)
        assert pred == pytest.approx(model, rel=1e-8, abs=1e-12)
        assert norm == pytest.approx(np.linalg.norm(d), rel=1e-10)
        assert np.linalg.norm(d) <= radius * (1 + 1e-5)
        # oracle: the best of many points on the sphere and the Newton step (when inside)
        u = rng.normal(size=(20000, n))
        u *= radius / np.linalg.norm(u, axis=1)[:, None]
        vals = -(u @ g + 0.5 * np.einsum("ij,jk,ik->i", u, H, u))
        best = vals.max()
        if np.all(w > 0):
            z = -np.linalg.solve(H, g)
            assert dec == pytest.approx(-g @ z, rel=1e-10)
            if np.linalg.norm(z) <= radius:
                best = max(best, -(g @ z + 0.5 * z @ H @ z))
        else:
            assert dec == math.inf
        assert pred >= best - 1e-3 * max(abs(best), 1.0)


def test_trust_step_hard_case():
    H = np.diag([-2.0, 1.0, 3.0])
    g = np.array([0.0, 1.0, 1.0])          # no component along the negative curvature
    d, pred, dec, norm = trust_step(H, g, 1.5)
    assert np.linalg.norm(d) == pytest.approx(1.5, rel=1e-8)
    assert abs(d[0]) > 0.5
    assert pred == pytest.approx(-(g @ d + 0.5 * d @ H @ d), rel=1e-10)



def _scaled_step_oracle(H, g, radius, scale):
    """The subproblem answer over ||scale * d|| <= radius by dense solves: the Newton step where it fits, else
    d(mu) = -(Hs + mu I)^{-1} gs / scale with mu bisected on ||scale * d(mu)|| = radius (Hs, gs scaled)."""
    Hs, gs = H / np.outer(scale, scale), g / scale
    lam = np.linalg.eigvalsh(Hs)[0]
    eye = np.eye(g.size)
    if lam > 0:
        z = -np.linalg.solve(Hs, gs)
        if np.linalg.norm(z) <= radius:
            return z / scale
    lo = max(0.0, -lam)
    hi = lo + 1.0
    while np.linalg.norm(np.linalg.solve(Hs + hi * eye, gs)) > radius:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.linalg.norm(np.linalg.solve(Hs + mid * eye, gs)) > radius:
            lo = mid
        else:
            hi = mid
    return -np.linalg.solve(Hs + hi * eye, gs) / scale


def test_trust_step_with_scale_matches_dense_oracle():
    rng = np.random.default_rng(7)
    for case in range(40):
        n = int(rng.integers(1, 5))
        Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
        w = rng.normal(size=n) * 3.0 + (2.0 if case % 2 else 0.0)
        H = Q @ np.diag(w) @ Q.T
        g = rng.normal(size=n)
        scale = rng.uniform(0.2, 5.0, size=n)
        radius = float(rng.uniform(0.05, 3.0))
        d, pred, dec, norm = trust_step(H, g, radius, scale)
        want = _scaled_step_oracle(H, g, radius, scale)
        np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-6 * radius / scale.min())
        assert pred == pytest.approx(-(g @ d + 0.5 * d @ H @ d), rel=1e-10, abs=1e-14)
        assert norm == pytest.approx(np.linalg.norm(scale * d), rel=1e-5)
        assert norm <= radius * (1 + 1e-5)
        Hs = H / np.outer(scale, scale)
        if np.linalg.eigvalsh(Hs)[0] > 1e-12 * np.abs(np.linalg.eigvalsh(Hs)).max():
            assert dec == pytest.approx(g @ np.linalg.solve(H, g), rel=1e-9)
        else:
            assert dec == math.inf


def test_trust_step_one_parameter():
    # convex, the Newton step fits: d = -g/h
    d, pred, dec, norm = trust_step(np.array([[2.0]]), np.array([1.0]), 1.0)
    assert d.tolist() == [-0.5] and pred == 0.25 and dec == 0.5 and norm == 0.5
    # convex, too long: on the boundary, decrease 4 - 1
    d, pred, dec, norm = trust_step(np.array([[2.0]]), np.array([4.0]), 1.0)
    assert d[0] == pytest.approx(-1.0, rel=1e-6) and pred == pytest.approx(3.0, rel=1e-5) and dec == 8.0
    # concave: to the boundary downhill
    d, pred, dec, norm = trust_step(np.array([[-1.0]]), np.array([1.0]), 2.0)
    assert d[0] == pytest.approx(-2.0, rel=1e-6) and pred == pytest.approx(4.0, rel=1e-5) and dec == math.inf
    # concave without a gradient (the hard case): a step of the full radius
    d, pred, dec, norm = trust_step(np.array([[-1.0]]), np.array([0.0]), 0.5)
    assert abs(d[0]) == pytest.approx(0.5, rel=1e-12) and pred == pytest.approx(0.125, rel=1e-12)
    assert norm == 0.5
    # a scale of 2 halves the step and reports the scaled length
    d, pred, dec, norm = trust_step(np.array([[2.0]]), np.array([1.0]), 0.5, np.array([2.0]))
    assert d[0] == pytest.approx(-0.25, rel=1e-6) and norm == pytest.approx(0.5, rel=1e-6)
    assert pred == pytest.approx(0.25 - 0.0625, rel=1e-5)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_trust_step_non_finite_hessian_raises(bad):
    H = np.array([[1.0, bad], [bad, 2.0]])
    with pytest.raises(np.linalg.LinAlgError, match="not finite"):
        trust_step(H, np.ones(2), 1.0)
    with pytest.raises(ValueError, match="entries"):
        trust_step(np.eye(2), np.ones(3), 1.0)


def test_trust_region_stops_failed_on_a_non_finite_hessian():
    # the first (Newton) step reaches the minimum x = 1, where the Hessian is NaN: FAILED, that point kept
    def f(x):
        return (x[0] - 1.0) ** 2, np.array([2.0 * (x[0] - 1.0)]), np.array([[math.nan if x[0] > 0.5 else 2.0]])

    opt = trust_region(f, [0.0])
    assert opt.status == FAILED and not opt.converged
    assert opt.x.tolist() == [1.0] and opt.fun == 0.0 and opt.evaluations == 2


def test_trust_region_counts_progress_and_leaves_the_start_alone():
    seen = []
    x0 = np.array([-1.2, 1.0])
    opt = trust_region(_rosenbrock, x0, _rosenbrock_grad, progress=seen.append, ftol_abs=1e-12, ftol_rel=1e-15)
    assert opt.converged and len(seen) == opt.evaluations and set(seen) == {1}
    assert x0.tolist() == [-1.2, 1.0] and opt.x0.tolist() == [-1.2, 1.0]
    # a gradient as a list and a Fortran-ordered Hessian are taken as arrays
    F = np.asfortranarray(np.array([[4.0, 1.0], [1.0, 3.0]]))
    r = trust_region(lambda x: (0.5 * x @ F @ x - x.sum(), list(F @ x - 1.0), F), np.zeros(2), ftol_rel=0.0,
                     ftol_abs=1e-14)
    np.testing.assert_allclose(r.x, np.linalg.solve(F, np.ones(2)), rtol=1e-12)


def test_bfgs_update_matches_the_dense_formula_and_skips():
    rng = np.random.default_rng(3)
    for _ in range(10):
        M = rng.normal(size=(4, 4))
        Bm = M @ M.T + 4.0 * np.eye(4)
        s = rng.normal(size=4)
        y = Bm @ s + 0.1 * rng.normal(size=4)          # s'y well above 0.2 s'Bs: no damping
        Bs = Bm @ s
        want = Bm - np.outer(Bs, Bs) / (s @ Bs) + np.outer(y, y) / (s @ y)
        out = bfgs_update(Bm, s, y)
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out @ s, y, rtol=1e-10)
        assert out is not Bm and np.array_equal(out, out.T)
    # not convex along s and s'y <= 0: skipped, B itself returned; a zero step likewise
    Bm = np.diag([-1.0, 1.0])
    assert bfgs_update(Bm, np.array([1.0, 0.0]), np.array([-1.0, 0.0])) is Bm
    assert bfgs_update(Bm, np.zeros(2), np.ones(2)) is Bm

@pytest.mark.parametrize("exact", [True, False])
def test_trust_region_minimises_rosenbrock(exact):
    derivs = (lambda x: (_rosenbrock_grad(x), _rosenbrock_hess(x))) if exact else _rosenbrock_grad
    opt = trust_region(_rosenbrock, [-1.2, 1.0], derivs, lower=[-np.inf, -np.inf], ftol_abs=1e-12,
                       ftol_rel=1e-15)
    assert opt.converged
    np.testing.assert_allclose(opt.x, [1.0, 1.0], atol=1e-6)
    assert opt.evaluations < (40 if exact else 80)


def test_trust_region_respects_lower_bounds():
    # the unconstrained minimum is (1, 1); with x[0] >= 1.5 it is on the bound, at x[1] = x[0]^2
    opt = trust_region(_rosenbrock, [2.0, 3.0], _rosenbrock_grad, lower=[1.5, -np.inf], ftol_abs=1e-12,
                       ftol_rel=1e-15)
    assert opt.converged
    assert opt.x[0] == pytest.approx(1.5, abs=1e-9)
    assert opt.x[1] == pytest.approx(opt.x[0] ** 2, rel=1e-4)


def test_trust_region_exact_newton_on_bounded_quadratic():
    opt = trust_region(lambda x: (_quadratic(x), A @ x - B, A), np.ones(3), lower=[0.0, 0.0, -np.inf],
                       ftol_abs=1e-14, ftol_rel=0.0)
    assert opt.converged
    np.testing.assert_allclose(opt.x, _bounded_quadratic_answer(np.array([True, False, True])), atol=1e-10)


def test_trust_region_gtol_and_evaluation_limit():
    opt = trust_region(_rosenbrock, [-1.2, 1.0], _rosenbrock_grad, gtol=1e-5, ftol_abs=0.0, ftol_rel=0.0)
    assert opt.status == GTOL and np.max(np.abs(opt.gradient)) <= 1e-5
    short = trust_region(_rosenbrock, [-1.2, 1.0], _rosenbrock_grad, max_evals=3)
    assert short.status == MAXEVAL and short.evaluations == 3 and not short.converged


def test_trust_region_non_finite_start():
    opt = trust_region(lambda x: math.inf, [1.0], lambda x: np.zeros(1))
    assert opt.status == NOT_FINITE and not opt.converged


def test_trust_region_leaves_a_saddle():
    # f = x^4/4 - x^2/2 + y^2: stationary (a maximum in x) at 0, minima at x = +-1
    def f(z):
        x, y = z
        return 0.25 * x ** 4 - 0.5 * x ** 2 + y ** 2, np.array([x ** 3 - x, 2 * y]), \
            np.array([[3 * x ** 2 - 1, 0.0], [0.0, 2.0]])

    opt = trust_region(f, [0.0, 0.5], ftol_abs=1e-14, ftol_rel=0.0)
    assert opt.converged
    np.testing.assert_allclose(np.abs(opt.x), [1.0, 0.0], atol=1e-7)


def _quasi_newton_fd(fg, x0, lower, h=1e-4, tol=1e-9, max_evals=200):
    """The quasi-Newton search of the GLMM gradient path: the first model and every refresh are forward
    differences of the gradient, the trust region is scaled by the curvature, and convergence is declared
    only under a fresh model, which is returned."""
    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    f0, g0 = fg(x0)

    def grad(z):
        return fg(z)[1]

    H0 = fdiff.hessian_from_gradient(grad, x0, h, g0=g0)
    curv = np.abs(np.diag(H0))
    scale = np.sqrt(np.maximum(curv, 1e-8 * curv.max()))
    r = trust_region(fg, x0, lower=lower, hess0=H0, scale=scale, start=(f0, g0),
                     refresh=lambda z, gz: fdiff.hessian_from_gradient(grad, z, h / scale, g0=gz),
                     radius=2.0 * math.sqrt(x0.size), ftol_abs=0.5 * tol, ftol_rel=0.0, xtol_abs=1e-12,
                     xtol_rel=0.0, max_evals=max_evals)
    return r.x, r.fun, r.hessian, r.evaluations, r.converged


def test_newton_bounded_quadratic_with_active_bound():
    def fg(x):
        return 0.5 * x @ A @ x - B @ x, A @ x - B

    lower = np.array([0.0, 0.0, -np.inf])
    x, f, H, n, conv = _quasi_newton_fd(fg, np.array([1.0, 1.0, 1.0]), lower)
    # KKT: x1 = 0 (its gradient is positive there), the rest solve the reduced system
    free = np.array([True, False, True])
    want = _bounded_quadratic_answer(free)
    assert want[0] > 0
    np.testing.assert_allclose(x, want, atol=1e-8)
    assert conv
    np.testing.assert_allclose(H, A, rtol=1e-6)


def test_newton_bounded_rosenbrock_from_far():
    def fg(x):
        return _rosenbrock(x), _rosenbrock_grad(x)

    x, f, H, n, conv = _quasi_newton_fd(fg, np.array([-1.2, 1.0]), np.full(2, -np.inf), tol=1e-14)
    assert conv
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-6)


def test_bfgs_update_is_damped():
    Bm = np.eye(2)
    s = np.array([1.0, 0.0])
    # negative curvature along s: an undamped update would lose positive definiteness
    out = bfgs_update(Bm, s, np.array([-1.0, 0.3]))
    assert np.all(np.linalg.eigvalsh(out) > 0)
    # the secant condition holds for the damped y
    y = np.array([2.0, 0.5])
    out = bfgs_update(Bm, s, y)
    np.testing.assert_allclose(out @ s, y, rtol=1e-12)


# --------------------------------------------------------------------------------------------- others
def test_lbfgs_bounded_and_failed_points():
    def fg(x):
        if x[0] > 3.0:
            return math.inf, None
        return float((x - 2.0) @ (x - 2.0)), 2.0 * (x - 2.0)

    r = lbfgs(fg, np.zeros(2), lower=[-np.inf, 2.5])
    assert r.converged
    np.testing.assert_allclose(r.x, [2.0, 2.5], atol=1e-6)


def test_minimize_1d_golden_section():
    r = minimize_1d(lambda t: math.cosh(t - 0.7), -3.0, 4.0, 1e-8)
    assert r.status == XTOL and r.converged
    assert r.x[0] == pytest.approx(0.7, abs=1e-7)
    assert r.fun == pytest.approx(1.0, abs=1e-14)
