"""The compiled checks (mixframe._ext.checks) against NumPy oracles."""
import numpy as np
import pytest

from mixframe._ext.checks import finite_range, first_nonfinite_column, full_rank_crossprod, scaled_gradient

RNG = np.random.default_rng(20261202)


@pytest.mark.parametrize("values", [
    np.array([3.0, -1.0, 2.5]),
    np.array([np.nan, 1.0, np.inf, -4.0]),
    np.array([np.nan, np.inf]),
    np.array([]),
    RNG.normal(size=1000),
])
def test_finite_range_counts_the_non_finite_values_and_bounds_the_rest(values):
    bad, lo, hi = finite_range(values)
    ok = np.isfinite(values)
    assert bad == int((~ok).sum())
    if ok.any():
        assert (lo, hi) == (values[ok].min(), values[ok].max())
    else:
        assert np.isnan(lo) and np.isnan(hi)


def test_finite_range_reads_read_only_views():
    v = np.arange(5.0)
    v.flags.writeable = False
    assert finite_range(v) == (0, 0.0, 4.0)


@pytest.mark.parametrize("order", ["C", "F"])
def test_first_nonfinite_column_is_the_first_column_with_a_bad_value(order):
    X = np.asarray(RNG.normal(size=(30, 5)), order=order)
    assert first_nonfinite_column(X) == -1
    X[7, 3] = np.inf
    X[2, 4] = np.nan
    assert first_nonfinite_column(X) == 3
    X[29, 0] = -np.inf
    assert first_nonfinite_column(X) == 0
    assert first_nonfinite_column(X[:, 1:]) == 2          # strided views


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
