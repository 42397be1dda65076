"""Adaptive Gauss-Hermite quadrature: against brute-force integration for GLMMs and CLMMs, one node = Laplace,
and the compiled cumulative-link AGQ against the shared formula of ``mixframe.laplace.agq``."""
import numpy as np
import pytest
from scipy import integrate

from mixframe.families import get_family
from mixframe.fit.clm import CLMProblem
from mixframe.fit.clmm import fit_clmm
from mixframe.fit.clmm_laplace import LaplaceObjective
from mixframe.fit.glmm_laplace import GLMMObjective
from mixframe.laplace.agq import agq_loglik
from mixframe.numerics.quadrature import gauss_hermite, gauss_hermite_log

from fit.test_clmm import LINKS, exact_marginal, simulate
from fit.test_glmm import load_case


def test_agq_against_brute_force_integration():
    _, design, _ = load_case("cbpp_laplace")
    fam = get_family("binomial")
    obj = GLMMObjective(design, fam)
    theta, beta = np.array([0.7]), np.array([-1.3, -1.0, -1.1, -1.6])
    nodes, weights = gauss_hermite(25)
    dev_agq, _ = obj.agq(theta, beta, nodes, weights)
    t = design.terms[0]
    eta_f = design.X @ beta
    total = 0.0
    for j in range(t.n_levels):
        rows = t.codes == j

        def integrand(u, rows=rows):
            mu = fam.linkinv(eta_f[rows] + theta[0] * u)
            return np.exp(fam.loglik(design.y[rows], mu, design.weights[rows]) - 0.5 * u * u) / np.sqrt(2 * np.pi)
        total += np.log(integrate.quad(integrand, -12, 12, epsabs=0, epsrel=1e-12, limit=200)[0])
    assert dev_agq == pytest.approx(-2 * total, rel=1e-9)
    # one node is the Laplace approximation
    dev1, _ = obj.agq(theta, beta, np.array([0.0]), np.array([1.0]))
    dev_lap, _ = obj.laplace(theta, beta)
    assert dev1 == pytest.approx(dev_lap, rel=1e-12)


@pytest.mark.parametrize("link", LINKS)
def test_agq_converges_to_the_exact_integral(link):
    d = simulate(np.random.default_rng(2), n_groups=6, per=10)
    prob = CLMProblem(d, link, "flexible")
    alpha, beta, sd = np.array([-1.0, 0.1, 1.2]), np.array([0.7]), 1.1
    exact = exact_marginal(d, alpha, beta, sd, link)
    agq = LaplaceObjective(d, prob.y, prob.code, prob.J, 25)(alpha, beta, np.array([sd]))
    assert agq == pytest.approx(exact, abs=1e-7)
    laplace = LaplaceObjective(d, prob.y, prob.code, prob.J, 1)(alpha, beta, np.array([sd]))
    assert laplace == pytest.approx(exact, abs=0.05 * d.terms[0].n_levels)


def test_one_node_quadrature_is_laplace():
    from mixframe._ext.ordinal_laplace import agq_scalar
    d = simulate(np.random.default_rng(4))
    prob = CLMProblem(d, "probit", "flexible")
    obj = LaplaceObjective(d, prob.y, prob.code, prob.J, 1)
    alpha, beta, theta = np.array([-0.6, 0.0, 0.7]), np.array([0.5]), np.array([0.8])
    lap = obj(alpha, beta, theta)
    x, logw = gauss_hermite_log(1)
    status, ll = agq_scalar(prob.y, obj.eta_fixed(beta), alpha, obj.wts, obj.codes, obj.z, 0.8, prob.code,
                            obj.u, obj.h, x, logw, np.zeros((d.terms[0].n_levels, 1)))
    assert status == 0 and -ll == pytest.approx(lap, rel=1e-12)


def test_nagq_needs_a_single_scalar_term():
    d = simulate(np.random.default_rng(1), crossed=True)
    with pytest.raises(ValueError, match="single scalar"):
        fit_clmm(d, nagq=5)


@pytest.mark.parametrize("link", ["logit", "cloglog", "cauchit"])
@pytest.mark.parametrize("n_nodes", [1, 5, 12])
def test_compiled_clmm_agq_matches_shared_formula(link, n_nodes):
    d = simulate(np.random.default_rng(9), n_groups=8, per=12)
    prob = CLMProblem(d, link, "flexible")
    obj = LaplaceObjective(d, prob.y, prob.code, prob.J, n_nodes)
    alpha, beta, theta = np.array([-0.9, 0.1, 1.0]), np.array([0.6]), np.array([0.9])
    compiled = -obj(alpha, beta, theta)
    t = d.terms[0]
    obj.model.alpha = alpha
    generic = agq_loglik(obj.model, t, 0.9, obj.eta_fixed(beta), obj.u, obj.h, n_nodes)
    assert compiled == pytest.approx(generic, rel=1e-12)


def test_glmm_one_node_and_default_rule():
    """AGQ with one node is the Laplace deviance; the rule by node count equals the explicit nodes/weights."""
    _, design, _ = load_case("cbpp_laplace")
    obj = GLMMObjective(design, get_family("binomial"))
    theta, beta = np.array([0.7]), np.array([-1.3, -1.0, -1.1, -1.6])
    x, w = gauss_hermite(1)
    assert obj.agq(theta, beta, x, w)[0] == pytest.approx(obj.laplace(theta, beta)[0], rel=1e-12)
    st = obj.pirls_u(theta, beta)
    t = design.terms[0]
    z = t.Z[:, 0]
    h = 1.0 + 0.49 * np.bincount(t.codes, weights=st["wf"] * z * z, minlength=t.n_levels)
    eta0 = st["eta"] - 0.7 * z * st["u"][t.codes]
    x, w = gauss_hermite(9)
    assert -2 * agq_loglik(obj.model, t, 0.7, eta0, st["u"], h, 9) == pytest.approx(obj.agq(theta, beta, x, w)[0],
                                                                                     rel=1e-13)
