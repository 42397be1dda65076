"""Every operation of the penalized system against the dense matrix [M, Lambda'Z'W E; E'WZ Lambda, E'WE]."""
import numpy as np
import pytest

from mixframe.linalg.blocked import BlockedSystem
from mixframe.linalg.system import FACTOR_FIXED, FACTOR_OK, PenalizedSystem

from linalg.dense_oracle import dense_system, dense_Z, make_term, random_theta

# crossed designs; the first has a vector term in each block, the scalar ones serve the gradient's diagonals
VECTOR = [[(14, 2), (6, 1), (5, 2)], [(9, 1), (7, 2)], [(11, 2), (4, 1)]]
SCALAR = [[(40, 1), (7, 1)], [(30, 1), (12, 1), (5, 1)], [(25, 1)], [(150, 1), (50, 1)]]


def _case(spec, weighted, seed, p=3, n=260):
    rng = np.random.default_rng(seed)
    terms = [make_term(rng, n, m, k, f"g{i}") for i, (m, k) in enumerate(spec)]
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n) + X @ rng.normal(size=p)
    w = rng.uniform(0.5, 2.0, size=n) if weighted else None
    theta = random_theta(rng, terms, 0.4)
    system = BlockedSystem(terms, p + 1)
    system.crossprod(np.column_stack([X, y]), w)
    assert system.factor(theta) == FACTOR_OK
    Omega, q = dense_system(terms, X, y, w, theta)
    return system, terms, X, y, w, theta, Omega, q


def _schur(Omega, q):
    """The dense columns' block once the random effects are eliminated."""
    return Omega[q:, q:] - Omega[q:, :q] @ np.linalg.solve(Omega[:q, :q], Omega[:q, q:])


@pytest.mark.parametrize("spec", VECTOR + SCALAR)
@pytest.mark.parametrize("weighted", [False, True])
def test_factor_logdets_solve_and_fixed_block(spec, weighted):
    system, terms, X, y, w, theta, Omega, q = _case(spec, weighted, 7 * len(spec) + weighted)
    assert isinstance(system, PenalizedSystem)
    assert system.is_factored_at(theta) and not system.is_factored_at(theta * 1.01)
    p = X.shape[1]
    ldz, ldx, r2 = system.logdets()
    ld_m = np.linalg.slogdet(Omega[:q, :q])[1]
    ld_fixed = np.linalg.slogdet(Omega[:q + p, :q + p])[1]
    ld_all = np.linalg.slogdet(Omega)[1]
    np.testing.assert_allclose([ldz, ldx, np.log(r2)], [ld_m, ld_fixed - ld_m, ld_all - ld_fixed], rtol=1e-10)
    beta, u = system.solve()
    sol = np.linalg.solve(Omega[:q + p, :q + p], Omega[:q + p, -1])
    np.testing.assert_allclose(u, sol[:q], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(beta, sol[q:], rtol=1e-9, atol=1e-10)
    schur = _schur(Omega, q)
    np.testing.assert_allclose(system.extra_factor(), np.linalg.cholesky(schur), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(system.fixed_block(), np.linalg.cholesky(schur[:p, :p]), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("spec", VECTOR + SCALAR)
def test_conditional_covariances_are_the_diagonal_blocks_of_the_inverse(spec):
    system, terms, X, y, w, theta, Omega, q = _case(spec, True, 3 + len(spec))
    cov = np.linalg.inv(Omega[:q, :q])
    blocks = system.cond_cov_u()
    assert [b.shape for b in blocks] == [(t.n_levels, t.k, t.k) for t in terms]
    off = 0
    for t, blk in zip(terms, blocks):
        want = np.stack([cov[off + j * t.k:off + (j + 1) * t.k, off + j * t.k:off + (j + 1) * t.k]
                         for j in range(t.n_levels)])
        np.testing.assert_allclose(blk, want, rtol=1e-8, atol=1e-12)
        off += t.q


@pytest.mark.parametrize("spec", SCALAR)
@pytest.mark.parametrize("weighted", [False, True])
def test_z_inverse_diagonals(spec, weighted):
    system, terms, X, y, w, theta, Omega, q = _case(spec, weighted, 11 * len(spec) + weighted)
    p = X.shape[1]
    d_m, d_fixed, d_full = system.z_inverse_diagonals()
    np.testing.assert_allclose(d_m, np.diag(np.linalg.inv(Omega[:q, :q])), rtol=1e-9)
    np.testing.assert_allclose(d_m + d_fixed, np.diag(np.linalg.inv(Omega[:q + p, :q + p]))[:q], rtol=1e-9)
    np.testing.assert_allclose(d_m + d_full, np.diag(np.linalg.inv(Omega))[:q], rtol=1e-9)
    assert np.all(d_fixed > 0) and np.all(d_full >= d_fixed)


def test_z_inverse_diagonals_need_scalar_terms():
    system = _case(VECTOR[1], False, 1)[0]
    with pytest.raises(ValueError, match="scalar"):
        system.z_inverse_diagonals()
    with pytest.raises(ValueError, match="scalar"):
        system.scalar_term_crossprods()


@pytest.mark.parametrize("spec", [VECTOR[0], SCALAR[1]])
def test_crossprod_blocks_and_scalar_term_crossprods(spec):
    system, terms, X, y, w, theta, Omega, q = _case(spec, True, 5)
    n = X.shape[0]
    Z = dense_Z(terms, n)
    E = np.column_stack([X, y])
    ZtWZ = Z.T @ (Z * w[:, None])
    EtWZ = E.T @ (Z * w[:, None])
    A = system.crossprod_blocks()
    q1 = terms[0].q
    k0 = terms[0].k
    np.testing.assert_allclose(A.A11, np.stack([ZtWZ[j * k0:(j + 1) * k0, j * k0:(j + 1) * k0]
                                                for j in range(terms[0].n_levels)]), rtol=1e-12)
    np.testing.assert_allclose(A.A22, ZtWZ[q1:, q1:], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(A.AE1, EtWZ[:, :q1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(A.AER, EtWZ[:, q1:], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(A.AEE, E.T @ (E * w[:, None]), rtol=1e-12)
    # A21: Z_R'WZ_0 on the pattern, entry e at row a21_row[e] of its level's columns
    cols = np.repeat(np.arange(terms[0].n_levels), np.diff(system.a21_ptr))
    for e in range(0, len(system.a21_row), 7):
        j, r = cols[e], system.a21_row[e]
        np.testing.assert_allclose(A.A21[e], ZtWZ[q1 + r, j * k0:(j + 1) * k0], rtol=1e-12, atol=1e-12)
    assert not A.A11.flags.writeable
    if all(t.k == 1 for t in terms):
        off = 0
        for t, (a, C) in zip(terms, system.scalar_term_crossprods()):
            np.testing.assert_allclose(a, np.diag(ZtWZ)[off:off + t.q], rtol=1e-12)
            np.testing.assert_allclose(C, EtWZ[:, off:off + t.q], rtol=1e-12, atol=1e-12)
            off += t.q


def test_the_views_follow_new_cross_products():
    system, terms, X, y, w, theta, Omega, q = _case(SCALAR[0], False, 2)
    A = system.crossprod_blocks()
    before = A.AEE.copy()
    system.crossprod(np.column_stack([X, 2.0 * y]), w)
    assert A.AEE[-1, -1] == pytest.approx(4.0 * before[-1, -1], rel=1e-14)


def test_a_degenerate_fixed_effect_fails_in_the_fixed_block():
    rng = np.random.default_rng(4)
    n = 120
    terms = [make_term(rng, n, 10, 1, "g")]
    x = rng.normal(size=n)
    system = BlockedSystem(terms, 4)
    system.crossprod(np.column_stack([np.ones(n), x, np.zeros(n), rng.normal(size=n)]))   # a column of zeros
    assert system.factor(np.array([0.7])) == FACTOR_FIXED
    assert system.theta is None and not system.is_factored_at(np.array([0.7]))
