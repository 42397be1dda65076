"""The compiled checks (mixframe._ext.checks) against NumPy oracles."""
import numpy as np
import pytest

from mixframe._ext.checks import count_nan, count_nonfinite, full_rank_crossprod, is_constant, scaled_gradient

RNG = np.random.default_rng(20261202)


@pytest.mark.parametrize("values", [
    np.array([3.0, -1.0, 2.5]),
    np.array([np.nan, 1.0, np.inf, -4.0, -np.inf]),
    np.array([np.nan, np.inf]),
    np.array([]),
    RNG.normal(size=1001),
])
def test_count_nonfinite_counts_nan_and_infinities(values):
    assert count_nonfinite(values) == int((~np.isfinite(values)).sum())


@pytest.mark.parametrize("values", [
    np.array([3.0, np.inf, -np.inf]),
    np.array([np.nan, 1.0, np.nan]),
    np.array([]),
    RNG.normal(size=1001),
])
def test_count_nan_counts_nan_only(values):
    assert count_nan(values) == int(np.isnan(values).sum())


def test_count_nonfinite_reads_read_only_views():
    v = np.arange(5.0)
    v.flags.writeable = False
    assert count_nonfinite(v) == 0


@pytest.mark.parametrize("values, expected", [
    (np.array([2.0, 2.0, 2.0]), (True, 2.0)),
    (np.array([0.0]), (True, 0.0)),
    (np.array([1.0, 1.0, 1.0 + 1e-15]), (False, None)),
    (np.array([5.0, 4.0] + [5.0] * 100), (False, None)),
])
def test_is_constant_compares_every_value_with_the_first(values, expected):
    same, value = is_constant(values)
    assert same is expected[0]
    assert value == expected[1] if same else np.isnan(value)
    assert is_constant(np.array([]))[0] is True


def _oracle_full_rank(xtx, tol):
    d = np.sqrt(np.diag(xtx))
    if not (d > 0).all():
        return False
    try:
        L = np.linalg.cholesky(xtx / np.outer(d, d))
    except np.linalg.LinAlgError:
        return False
    return bool(np.diag(L).min() > tol)


@pytest.mark.parametrize("case", ["full", "aliased", "nearly", "zero", "one", "empty"])
def test_full_rank_crossprod_matches_the_cholesky_of_the_scaled_crossproduct(case):
    X = RNG.normal(size=(40, 4))
    if case == "aliased":
        X[:, 2] = X[:, 0] - 3.0 * X[:, 1]
    elif case == "nearly":
        X[:, 3] = X[:, 1] + 1e-9 * RNG.normal(size=40)
    elif case == "zero":
        X[:, 1] = 0.0
    elif case == "one":
        X = X[:, :1]
    elif case == "empty":
        X = X[:, :0]
    xtx = X.T @ X
    expected = True if case == "empty" else _oracle_full_rank(xtx, 1e-7)
    assert full_rank_crossprod(xtx, 1e-7) is expected
    assert expected is (case in ("full", "one", "empty"))


def _oracle_scaled_gradient(g, H, free):
    idx = np.flatnonzero(free)
    gs, Hs = g[idx], 0.5 * (H + H.T)[np.ix_(idx, idx)]
    L = np.linalg.cholesky(Hs)
    step = np.linalg.solve(L, gs)
    return max(min(abs(a), abs(b)) for a, b in zip(step, gs)) if idx.size else 0.0


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_scaled_gradient_matches_a_dense_oracle(n):
    A = RNG.normal(size=(n, n))
    H = A @ A.T + n * np.eye(n)
    H[0, -1] += 0.01                                  # not quite symmetric: the test symmetrises it
    g = RNG.normal(size=n) * 1e-2
    free = np.ones(n, dtype=np.uint8)
    if n > 2:
        free[1] = 0
    status, worst, max_g = scaled_gradient(g, H, free)
    assert status == 0
    assert worst == pytest.approx(_oracle_scaled_gradient(g, H, free.astype(bool)), rel=1e-12)
    assert max_g == pytest.approx(np.abs(g[free.astype(bool)]).max(), rel=1e-15)


def test_scaled_gradient_reports_indefinite_and_non_finite_hessians():
    g = np.array([0.1, -0.3])
    assert scaled_gradient(g, np.diag([1.0, -1.0]), np.ones(2, dtype=np.uint8)) == (2, 0.3, 0.3)
    assert scaled_gradient(g, np.array([[1.0, np.nan], [np.nan, 1.0]]), np.ones(2, dtype=np.uint8))[0] == 1
    assert scaled_gradient(np.array([np.inf, 0.0]), np.eye(2), np.ones(2, dtype=np.uint8))[0] == 1
    # a parameter that is not free is not looked at
    assert scaled_gradient(np.array([np.inf, 0.0]), np.eye(2), np.array([0, 1], dtype=np.uint8))[0] == 0
