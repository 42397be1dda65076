"""The blocked Cholesky kernel against a dense NumPy oracle."""
import numpy as np
import pytest

from mixframe.linalg.blocked import BlockedSystem

from linalg.dense_oracle import dense_lambda, dense_Z, make_term, random_theta


CASES = [
    [(40, 1), (7, 1)],            # crossed scalar
    [(30, 2)],                    # one vector term
    [(25, 2), (6, 1), (4, 1)],    # vector first, two scalar
    [(20, 1), (5, 2)],            # vector term in block 2
    [(12, 3), (5, 2)],
    [(150, 1), (50, 1)],          # sparse pattern (the row-by-row Schur complement)
    [(120, 2), (40, 1), (30, 2)], # sparse, vector terms in both blocks
]


def test_both_schur_paths_are_exercised():
    rng = np.random.default_rng(0)
    kinds = set()
    for spec in CASES:
        terms = [make_term(rng, 300, m, k, f"g{i}") for i, (m, k) in enumerate(spec)]
        if len(terms) > 1:
            kinds.add(bool(BlockedSystem(terms, 2).chol.dense_s))
    assert kinds == {True, False}


@pytest.mark.parametrize("spec", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_factor_matches_dense(spec, weighted):
    rng = np.random.default_rng(len(spec) * 10 + weighted)
    n, p = 300, 3
    terms = [make_term(rng, n, m, k, f"g{i}") for i, (m, k) in enumerate(spec)]
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n) if weighted else None
    theta = random_theta(rng, terms, 0.3)
    sys = BlockedSystem(terms, p + 1)
    sys.crossprod(np.column_stack([X, y]), w)
    assert sys.factor(theta) == 0
    ldz, ldx, r2 = sys.logdets()
    beta, u = sys.solve()

    Z = dense_Z(terms, n)
    Lam = dense_lambda(terms, theta)
    W = np.diag(w if w is not None else np.ones(n))
    ZL = Z @ Lam
    Mzz = ZL.T @ W @ ZL + np.eye(Z.shape[1])
    ldz_ref = np.linalg.slogdet(Mzz)[1]
    big = np.block([[Mzz, ZL.T @ W @ X], [X.T @ W @ ZL, X.T @ W @ X]])
    rhs = np.concatenate([ZL.T @ W @ y, X.T @ W @ y])
    sol = np.linalg.solve(big, rhs)
    u_ref, beta_ref = sol[:Z.shape[1]], sol[Z.shape[1]:]
    resid = y - X @ beta_ref - ZL @ u_ref
    r2_ref = resid @ W @ resid + u_ref @ u_ref
    schur = X.T @ W @ X - X.T @ W @ ZL @ np.linalg.solve(Mzz, ZL.T @ W @ X)
    ldx_ref = np.linalg.slogdet(schur)[1]
    np.testing.assert_allclose([ldz, ldx, r2], [ldz_ref, ldx_ref, r2_ref], rtol=1e-10)
    np.testing.assert_allclose(beta, beta_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(u, u_ref, rtol=1e-8, atol=1e-10)
    # conditional covariance blocks of u
    cov = np.linalg.inv(Mzz)
    blocks = sys.cond_cov_u()
    off = 0
    for t, blk in zip(terms, blocks):
        for j in range(t.n_levels):
            sl = slice(off + j * t.k, off + (j + 1) * t.k)
            np.testing.assert_allclose(blk[j], cov[sl, sl], rtol=1e-8, atol=1e-12)
        off += t.q


@pytest.mark.parametrize("spec", [s for s in CASES if len(s) > 1])
def test_dense_factor_is_the_factor_of_the_schur_complement(spec):
    """L22 L22' is the Schur complement of the first term's block in Lambda'Z'WZ Lambda + I."""
    rng = np.random.default_rng(len(spec) + 40)
    n = 300
    terms = [make_term(rng, n, m, k, f"g{i}") for i, (m, k) in enumerate(spec)]
    theta = random_theta(rng, terms, 0.3)
    w = rng.uniform(0.5, 2.0, size=n)
    sys = BlockedSystem(terms, 2)
    sys.crossprod(np.column_stack([np.ones(n), rng.normal(size=n)]), w)
    assert sys.factor(theta) == 0
    ZL = dense_Z(terms, n) @ dense_lambda(terms, theta)
    M = ZL.T @ (ZL * w[:, None]) + np.eye(ZL.shape[1])
    q1 = terms[0].q
    schur = M[q1:, q1:] - M[q1:, :q1] @ np.linalg.solve(M[:q1, :q1], M[:q1, q1:])
    L22 = sys.dense_factor()
    assert L22.shape == (sys.q2, sys.q2) and np.all(np.triu(L22, 1) == 0)
    np.testing.assert_allclose(L22 @ L22.T, schur, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(L22, np.linalg.cholesky(schur), rtol=1e-8, atol=1e-10)
