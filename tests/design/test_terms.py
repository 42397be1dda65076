"""The theta layout (mixframe.design.terms) against dense oracles."""
import pickle

import numpy as np
import scipy.linalg

from mixframe.design.terms import (Design, RETerm, lambda_times, lambdas_to_theta, split_u, theta_lower_bounds,
                                   theta_start, theta_to_lambdas, u_to_b, z_lambda_u, z_times_b)


def _terms(rng, n=40):
    out = []
    for k, m in ((3, 5), (1, 4), (2, 3)):
        codes = rng.integers(0, m, n).astype(np.int32)
        out.append(RETerm(f"g{k}", codes, [str(j) for j in range(m)], np.ascontiguousarray(rng.normal(size=(n, k))),
                          [f"e{j}" for j in range(k)]))
    return out


def _dense_z(terms):
    """The full sparse Z as a dense matrix: columns term-major, level-major, effect-minor."""
    blocks = []
    for t in terms:
        Zt = np.zeros((t.codes.shape[0], t.q))
        for r, c in enumerate(t.codes):
            Zt[r, c * t.k:(c + 1) * t.k] = t.Z[r]
        blocks.append(Zt)
    return np.hstack(blocks)


def _dense_lambda(terms, theta):
    return scipy.linalg.block_diag(*[np.kron(np.eye(t.n_levels), lam)
                                     for t, lam in zip(terms, theta_to_lambdas(terms, theta))])


def test_theta_order_bounds_and_start():
    rng = np.random.default_rng(1)
    terms = _terms(rng)
    theta = np.arange(1.0, 11.0)               # 6 + 1 + 3 parameters
    lams = theta_to_lambdas(terms, theta)
    np.testing.assert_array_equal(lams[0], [[1, 0, 0], [2, 4, 0], [3, 5, 6]])   # column-major lower triangle
    np.testing.assert_array_equal(lams[1], [[7]])
    np.testing.assert_array_equal(lams[2], [[8, 0], [9, 10]])
    np.testing.assert_array_equal(lambdas_to_theta(lams), theta)
    lower = theta_lower_bounds(terms)
    start = theta_start(terms)
    # the theta entries that land on a diagonal (theta's values are distinct)
    on_diag = np.concatenate([np.isin(part, np.diag(lam)) for part, lam in zip(np.split(theta, [6, 7]), lams)])
    assert on_diag.tolist() == [True, False, False, True, False, True, True, True, False, True]
    np.testing.assert_array_equal(lower, np.where(on_diag, 0.0, -np.inf))
    np.testing.assert_array_equal(start, on_diag.astype(float))
    design = Design(X=np.zeros((40, 1)), x_names=["(Intercept)"], y=np.zeros(40), weights=None, offset=None,
                    terms=terms, used=np.ones(40, bool), n_total=40, response="y")
    np.testing.assert_array_equal(design.theta_lower_bounds(), lower)
    np.testing.assert_array_equal(design.theta_start(), start)
    assert pickle.loads(pickle.dumps(design)).n_theta == 10


def test_lambda_products_match_the_dense_matrices():
    rng = np.random.default_rng(2)
    terms = _terms(rng)
    theta = rng.normal(size=10)
    q = sum(t.q for t in terms)
    u = rng.normal(size=q)
    L = _dense_lambda(terms, theta)
    Z = _dense_z(terms)
    np.testing.assert_allclose(lambda_times(terms, theta, u), L @ u, rtol=1e-14, atol=1e-14)
    bs = u_to_b(terms, theta, u)
    np.testing.assert_allclose(np.concatenate([b.ravel() for b in bs]), L @ u, rtol=1e-14, atol=1e-14)
    assert [b.shape for b in bs] == [(5, 3), (4, 1), (3, 2)]
    assert [s.shape for s in split_u(terms, u)] == [(5, 3), (4, 1), (3, 2)]
    np.testing.assert_allclose(z_times_b(terms, bs), Z @ (L @ u), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(z_lambda_u(terms, theta, u), Z @ L @ u, rtol=1e-13, atol=1e-13)
