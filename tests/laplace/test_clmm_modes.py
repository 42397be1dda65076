"""CLMM conditional modes: the Laplace value against a dense oracle, the compiled scalar and nested drivers
against the generic solver on the blocked system, and the scalar Laplace gradient."""
import numpy as np
import pytest

from mixframe.design.terms import Design
from mixframe.fit.clm import CLMProblem
from mixframe.fit.clmm_laplace import LaplaceObjective

from fit.test_clmm import LINKS, dense_laplace, reference_fit, simulate


def test_laplace_matches_dense_oracle_for_every_structure():
    rng = np.random.default_rng(7)
    cases = [({}, [0.9]), ({"crossed": True}, [0.8, 0.5]), ({"slope": True}, [0.9, 0.2, 0.4]),
             ({"nested": True}, [0.6, 0.8])]
    for kw, theta in cases:
        d = simulate(rng, **kw)
        prob = CLMProblem(d, "logit", "flexible")
        obj = LaplaceObjective(d, prob.y, prob.code, prob.J, 1)
        assert obj.nested == bool(kw.get("nested"))
        alpha, beta = np.array([-1.0, 0.1, 1.2]), np.array([0.7])
        got = obj(alpha, beta, np.array(theta))
        assert got == pytest.approx(dense_laplace(d, alpha, beta, np.array(theta)), rel=1e-10)


def test_scalar_path_matches_blocked_path():
    d = simulate(np.random.default_rng(13))
    prob = CLMProblem(d, "cloglog", "flexible")
    fast = LaplaceObjective(d, prob.y, prob.code, prob.J, 1)
    slow = LaplaceObjective(d, prob.y, prob.code, prob.J, 1, general=True)
    alpha, beta, theta = np.array([-0.8, 0.0, 0.9]), np.array([0.4]), np.array([0.7])
    assert fast(alpha, beta, theta) == pytest.approx(slow(alpha, beta, theta), rel=1e-11)
    b1, s1, e1 = fast.conditional(alpha, beta, theta)
    b2, s2, e2 = slow.conditional(alpha, beta, theta)
    np.testing.assert_allclose(b1[0], b2[0], atol=1e-9)
    np.testing.assert_allclose(s1[0], s2[0], rtol=1e-9)
    np.testing.assert_allclose(e1, e2, atol=1e-9)


def test_nested_path_matches_blocked_path():
    d = simulate(np.random.default_rng(12), nested=True)
    prob = CLMProblem(d, "probit", "flexible")
    fast = LaplaceObjective(d, prob.y, prob.code, prob.J, 1)
    slow = LaplaceObjective(d, prob.y, prob.code, prob.J, 1, general=True)
    assert fast.nested and not slow.nested
    alpha, beta, theta = np.array([-0.8, 0.0, 0.9]), np.array([0.4]), np.array([0.7, 0.5])
    assert fast(alpha, beta, theta) == pytest.approx(slow(alpha, beta, theta), rel=1e-11)
    for (b1, s1), (b2, s2) in zip(zip(*fast.conditional(alpha, beta, theta)[:2]),
                                  zip(*slow.conditional(alpha, beta, theta)[:2])):
        np.testing.assert_allclose(b1, b2, atol=1e-9)
        np.testing.assert_allclose(s1, s2, rtol=1e-9)


@pytest.mark.parametrize("link", LINKS)
def test_laplace_gradient_against_finite_differences(link):
    d = simulate(np.random.default_rng(3))
    d = Design(X=d.X, x_names=d.x_names, y=d.y, weights=np.linspace(0.5, 1.5, d.n_obs),
               offset=np.linspace(-0.3, 0.3, d.n_obs), terms=d.terms, used=d.used, n_total=d.n_total,
               response="y", response_levels=d.response_levels)
    prob = CLMProblem(d, link, "flexible")
    obj = LaplaceObjective(d, prob.y, prob.code, prob.J, 1)
    assert obj.has_gradient
    v = np.array([-1.0, 0.1, 1.2, 0.7, 0.9])

    def f(v):
        return obj(v[:3], v[3:4], v[4:])

    value, grad = obj.value_and_grad(v[:3], v[3:4], v[4:])
    assert value == pytest.approx(f(v), rel=1e-12)
    h = 1e-6
    g_fd = np.array([(f(v + e) - f(v - e)) / (2 * h) for e in np.eye(v.size) * h])
    np.testing.assert_allclose(grad, g_fd, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("case,nested", [("wine_logit", False), ("wine_probit", False), ("soup", True)])
def test_compiled_modes_match_generic_solver_on_reference_data(case, nested):
    """wine (one scalar term) and soup (RESP / RESP:PROD, nested): compiled and generic modes and values agree."""
    _, design, fit = reference_fit(case)
    prob = CLMProblem(design, fit.link, "flexible")
    fast = LaplaceObjective(design, prob.y, prob.code, prob.J, 1)
    slow = LaplaceObjective(design, prob.y, prob.code, prob.J, 1, general=True)
    assert fast.fast is not None and slow.fast is None and fast.nested == nested
    n_thr = prob.J.shape[1]
    xi, beta = fit.coef[:n_thr], fit.coef[n_thr:]
    theta = np.array([lam[0, 0] for lam in fit.lambdas])
    for scale in (1.0, 0.6, 1.4):
        v1 = fast(xi, beta, theta * scale)
        v2 = slow(xi, beta, theta * scale)
        assert v1 == pytest.approx(v2, rel=1e-10)
        np.testing.assert_allclose(fast.u, slow.u, atol=1e-7)
    b1, s1, e1 = fast.conditional(xi, beta, theta)
    b2, s2, e2 = slow.conditional(xi, beta, theta)
    for x1, x2, y1, y2 in zip(b1, b2, s1, s2):
        np.testing.assert_allclose(x1, x2, atol=1e-7)
        np.testing.assert_allclose(y1, y2, rtol=1e-7)


def test_compiled_clmm_driver_takes_the_settings_record():
    """An iteration limit from ModeSettings reaches the compiled driver (no convergence in one step)."""
    from mixframe.laplace.modes import CLMM_MODES, CumulativeRowModel, ModeSettings, compiled_path

    d = simulate(np.random.default_rng(21))
    prob = CLMProblem(d, "logit", "flexible")
    model = CumulativeRowModel(prob.y, np.empty(0), prob.code)
    model.alpha = np.array([-1.0, 0.1, 1.2])
    eta = np.ascontiguousarray(d.X @ np.array([0.7]))
    one = compiled_path(model, d.terms, None, ModeSettings(maxit=1, utol=CLMM_MODES.utol, ftol=0.0, polish=True))
    full = compiled_path(model, d.terms, None, CLMM_MODES)
    u1, u2 = np.zeros(d.terms[0].n_levels), np.zeros(d.terms[0].n_levels)
    assert one.run(eta, np.array([0.9]), u1)[0] == 2
    status, ll, logdet, uu = full.run(eta, np.array([0.9]), u2)
    assert status == 0 and not np.allclose(u1, u2, atol=1e-6)
    assert -(ll - 0.5 * uu - 0.5 * logdet) == pytest.approx(dense_laplace(d, model.alpha, np.array([0.7]),
                                                                          np.array([0.9])), rel=1e-10)
