"""GLMM conditional modes and Laplace deviance: PIRLS against dense Newton, the joint stage, R's log-likelihoods,
and the compiled PIRLS driver against the generic solver of ``mixframe.laplace.modes``."""
import numpy as np
import pytest

from mixframe.design.terms import u_to_b, z_times_b
from mixframe.design.terms import Design
from mixframe.families import get_family
from mixframe.fit.glmm_laplace import GLMMObjective
from mixframe.laplace.modes import GLMM_MODES, GLMRowModel, ModeProblem, compiled_name, find_modes

from fit.test_glmm import dense_z_lambda, load_case, small_design


@pytest.mark.parametrize("name", ["verbagg", "grouseticks", "cbpp_laplace", "salamanders_nb2", "gamma_sim"])
def test_laplace_at_reference_estimates(name):
    """Our Laplace deviance at R's estimates reproduces R's log-likelihood (one PIRLS solve, fast)."""
    ref, design, family = load_case(name)
    fam = get_family(family, ref["link"])
    obj = GLMMObjective(design, fam, obs_info=fam.has_dispersion)
    beta = np.array([ref["fixef"][t] for t in design.x_names])
    if ref["package"] == "lme4":
        theta = np.array([ref["theta"][f"{t.group}.(Intercept)"] for t in design.terms])
        disp = 1.0
    else:
        theta = np.array([v["sd"] for v in ref["varcorr"]])
        disp = ref["nb_size"] if family == "negative_binomial" else ref["sigma"]
    dev, _ = obj.laplace(theta, beta, disp)
    assert -0.5 * dev == pytest.approx(ref["logLik"], abs=1e-4)


@pytest.mark.parametrize("binomial", [True, False])
def test_pirls_against_dense_newton(binomial):
    design = small_design(binomial=binomial)
    fam = get_family("binomial" if binomial else "poisson")
    theta = np.array([0.8, 0.2, 0.5, 0.6])
    beta = np.array([0.2, 0.7])
    obj = GLMMObjective(design, fam)
    dev, st = obj.laplace(theta, beta)
    ZL = dense_z_lambda(design, theta)
    wt = design.weights if binomial else np.ones(design.n_obs)
    u = np.zeros(ZL.shape[1])
    for _ in range(50):       # plain Newton on -loglik + |u|^2 / 2 with a dense solve
        eta = design.X @ beta + ZL @ u
        mu = 1 / (1 + np.exp(-eta)) if binomial else np.exp(eta)
        w = wt * (mu * (1 - mu) if binomial else mu)
        grad = ZL.T @ (wt * (design.y - mu)) - u
        H = ZL.T @ (w[:, None] * ZL) + np.eye(len(u))
        u = u + np.linalg.solve(H, grad)
    np.testing.assert_allclose(st["u"], u, atol=1e-8)
    ll = fam.loglik(design.y, mu, wt)
    dense_dev = -2 * ll + u @ u + np.linalg.slogdet(H)[1]
    assert dev == pytest.approx(dense_dev, rel=1e-10)


def test_joint_pirls_is_stationary_in_beta():
    """The nAGQ=0 stage's beta maximises the penalized likelihood: PIRLS over u at that beta agrees."""
    design = small_design(seed=5)
    fam = get_family("binomial")
    obj = GLMMObjective(design, fam)
    theta = np.array([0.6, 0.1, 0.4, 0.5])
    st = obj.pirls_joint(theta, np.zeros(2))
    st_u = obj.pirls_u(theta, st["beta"], u0=np.zeros(obj.q))
    np.testing.assert_allclose(st_u["u"], st["u"], atol=1e-7)
    for db in (np.array([1e-3, 0]), np.array([0, -1e-3])):
        assert obj.pirls_u(theta, st["beta"] + db)["pdev"] > st["pdev"]


def _with_offset(design, rng):
    return Design(X=design.X, x_names=design.x_names, y=design.y, weights=design.weights,
                  offset=rng.normal(0, 0.3, design.n_obs), terms=design.terms, used=design.used,
                  n_total=design.n_total, response="y")


def _cases():
    ref_cb, cb, _ = load_case("cbpp_laplace")
    ref_gt, gt, _ = load_case("grouseticks")
    ref_va, va, _ = load_case("verbagg")
    pois = _with_offset(small_design(seed=8, binomial=False), np.random.default_rng(8))
    out = {}
    for name, ref, d, fam in [("cbpp", ref_cb, cb, "binomial"), ("grouseticks", ref_gt, gt, "poisson"),
                              ("verbagg", ref_va, va, "binomial")]:
        theta = np.array([ref["theta"][f"{t.group}.(Intercept)"] for t in d.terms])
        beta = np.array([ref["fixef"][t] for t in d.x_names])
        out[name] = (d, fam, theta, beta)
    out["poisson_offset"] = (pois, "poisson", np.array([0.8, 0.2, 0.5, 0.6]), np.array([0.2, 0.7]))
    return out


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_pirls_matches_generic_solver(name):
    """The registered compiled driver and the generic penalized Newton give the same modes and Laplace value."""
    design, family, theta, beta = CASES[name]
    fam = get_family(family)
    fast = GLMMObjective(design, fam)
    slow = GLMMObjective(design, fam, compiled=False)
    assert compiled_name(fast.model, fast.terms) == "glm-canonical"
    assert fast._fast() is not None and slow._fast() is None
    for scale in (1.0, 0.5, 1.5):
        d1, s1 = fast.laplace(theta * scale, beta)
        d2, s2 = slow.laplace(theta * scale, beta)
        assert d1 == pytest.approx(d2, rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(s1["u"], s2["u"], atol=1e-8)
        np.testing.assert_allclose(s1["eta"], s2["eta"], atol=1e-8)
    assert fast.n_pirls_fail == slow.n_pirls_fail == 0


def test_generic_solver_on_its_own():
    """find_modes over u: the mode solves Lambda'Z' score = u, and the penalized deviance is the one reported."""
    design, family, theta, beta = CASES["poisson_offset"]
    obj = GLMMObjective(design, get_family(family), compiled=False)
    model = GLMRowModel(get_family(family), obj.y, obj.wt)
    eta_f = obj.off + obj.X @ beta
    st = find_modes(ModeProblem(obj.terms, obj.sys_u, theta, eta_f=eta_f), model, np.zeros(obj.q), GLMM_MODES)
    assert st["converged"] and st["iterations"] < 20
    u = st["u"]
    eta = eta_f + z_times_b(obj.terms, u_to_b(obj.terms, theta, u))
    mu = np.exp(eta)
    score = obj.y - mu
    ZL = dense_z_lambda(design, theta)
    np.testing.assert_allclose(ZL.T @ score, u, atol=1e-8)
    assert st["pdev"] == pytest.approx(-2 * get_family(family).loglik(obj.y, mu) + u @ u, rel=1e-12)


@pytest.mark.parametrize("maxit", [1, 2, 3])
def test_compiled_and_generic_share_the_iteration_limit(maxit):
    """Stopped after the same number of Newton steps, both paths are at the same point and both count the
    failure to converge."""
    design, family, theta, beta = CASES["grouseticks"]
    fam = get_family(family)
    fast = GLMMObjective(design, fam, maxit=maxit)
    slow = GLMMObjective(design, fam, maxit=maxit, compiled=False)
    assert fast._fast().maxit == maxit == slow.settings.maxit
    assert fast._fast().max_halvings == slow.settings.max_halvings == GLMM_MODES.max_halvings
    d1, s1 = fast.laplace(theta, beta)
    d2, s2 = slow.laplace(theta, beta)
    assert s1["iterations"] == s2["iterations"] == maxit
    assert fast.n_pirls_fail == slow.n_pirls_fail == 1
    np.testing.assert_allclose(s1["u"], s2["u"], atol=1e-9)
    assert d1 == pytest.approx(d2, rel=1e-10)


@pytest.mark.parametrize("name", ["verbagg", "grouseticks", "poisson_offset"])
def test_compiled_pirls_in_concurrent_threads(name):
    """The compiled loop runs without the GIL on its own workspace: two threads evaluating the Laplace deviance
    of two objectives at the same time give the values of one thread alone."""
    import threading

    design, family, theta, beta = CASES[name]
    fam = get_family(family)
    scales = np.linspace(0.4, 1.6, 13)

    def run(obj, out, start):
        start.wait()
        for s in scales:
            dev, st = obj.laplace(theta * s, beta)
            out.append((dev, st["u"].copy()))

    serial = []
    run(GLMMObjective(design, fam), serial, threading.Barrier(1))
    objs = [GLMMObjective(design, fam) for _ in range(2)]
    assert all(o._fast() is not None for o in objs)
    outs = [[], []]
    start = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(o, out, start)) for o, out in zip(objs, outs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in outs:
        assert len(out) == len(scales)
        for (d1, u1), (d0, u0) in zip(out, serial):
            assert d1 == pytest.approx(d0, rel=1e-13)
            np.testing.assert_allclose(u1, u0, rtol=1e-12, atol=1e-14)
