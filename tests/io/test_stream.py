"""Streamed LMM fits (LazyFrame, pyarrow Dataset / RecordBatchReader, Dask) against in-memory fits.

The cross-products are summed exactly (``mixframe.linalg.crossprod``), so the same rows give the same system
whatever the batching, the partitioning or the row order, and the streamed fit equals the in-memory fit of
the same data: coefficients, variance components, BLUPs and glance are compared at 1e-8 relative (with an
absolute floor of 1e-12 of each quantity's scale for values at zero).
"""
import math
import warnings
from fractions import Fraction
from itertools import pairwise

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

import mixframe as mf
from mixframe.design.build import build_design
from mixframe.linalg.blocked import BlockedSystem
from mixframe.linalg.crossprod import exact_sum
from mixframe.fit.lmm import LmmObjective
from mixframe.fit.lmm_stream import CrossprodAccumulator, StreamObjective

SLEEP = "Reaction ~ Days + (Days | Subject)"
INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)"
SYNTH = "y ~ x + trt + (1 | g1) + (1 | g2)"
RTOL = 1e-8


# ---------------------------------------------------------------------------------- helpers
def _write_parts(df, path, cuts):
    """Write ``df`` (pandas or polars) as Parquet files split at the row positions ``cuts`` (uneven parts)."""
    path.mkdir(exist_ok=True)
    frame = df if isinstance(df, pl.DataFrame) else pl.from_pandas(df)
    bounds = [0, *cuts, frame.height]
    for i, (a, b) in enumerate(pairwise(bounds)):
        frame.slice(a, b - a).write_parquet(path / f"part-{i:03d}.parquet")
    return str(path / "*.parquet")


def _synthetic(seed=1, n=3000):
    """Crossed factors, a categorical predictor, levels confined to some parts, missing values spread."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 60, n)
    g1[: n // 3] = rng.integers(0, 20, n // 3)           # levels 20.. only after the first third
    g1[-n // 10:] = rng.integers(60, 66, n // 10)         # levels 60.. only in the last tenth
    g2 = rng.integers(0, 12, n)
    trt = rng.choice(["ctl", "hi", "lo"], n)
    x = rng.normal(size=n)
    y = (1.0 + 0.5 * x + np.where(trt == "hi", 0.8, 0.0) + rng.normal(0, 0.7, 66)[g1]
         + rng.normal(0, 0.4, 12)[g2] + rng.normal(0, 1.0, n))
    df = pd.DataFrame({"y": y, "x": x, "trt": trt, "g1": [f"a{v:02d}" for v in g1], "g2": g2,
                       "w": rng.uniform(0.5, 2.0, n)})
    miss = rng.choice(n, 40, replace=False)
    df.loc[miss[:15], "y"] = np.nan
    df.loc[miss[15:30], "x"] = np.nan
    df.loc[miss[30:], "g1"] = None
    return df


def _pandas(frame):
    return frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()


def _close(got, want, what):
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12 * max(scale, 1e-300), err_msg=what)


def _check_same(fit, ref):
    """Every number of the fit equals the in-memory fit's to 1e-8 relative."""
    assert fit.nobs == ref.nobs
    assert list(fit.fixef) == list(ref.fixef)
    _close(list(fit.fixef.values()), list(ref.fixef.values()), "fixed effects")
    _close(fit.theta, ref.theta, "theta")
    _close([fit.loglik, fit.sigma, fit.aic, fit.bic, fit.deviance], [ref.loglik, ref.sigma, ref.aic, ref.bic,
                                                                     ref.deviance], "likelihood and sigma")
    a, b = _pandas(fit.coefficients()), _pandas(ref.coefficients())
    assert list(a["term"]) == list(b["term"])
    for col in ("estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high"):
        _close(a[col], b[col], f"coefficients: {col}")
    a, b = _pandas(fit.variance_components()), _pandas(ref.variance_components())
    assert list(a["group"]) == list(b["group"]) and list(a["term1"]) == list(b["term1"])
    _close(a["vcov"], b["vcov"], "variance components")
    _close(a["sdcor"], b["sdcor"], "variance components (SD / correlation)")
    a, b = _pandas(fit.blups()), _pandas(ref.blups())
    assert list(a["group"]) == list(b["group"]) and list(a["level"]) == list(b["level"])
    _close(a["estimate"], b["estimate"], "BLUPs")
    _close(a["std_error"], b["std_error"], "conditional SDs")
    a, b = _pandas(fit.glance()), _pandas(ref.glance())
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if a[col].dtype.kind in "biuf":
            _close(a[col], b[col], f"glance: {col}")
        else:
            assert list(a[col]) == list(b[col]), col


@pytest.fixture(scope="module")
def sleep():
    return mf.datasets.sleepstudy()


@pytest.fixture(scope="module")
def sleep_ref(sleep):
    return mf.lmm(SLEEP, sleep)


@pytest.fixture(scope="module")
def synth():
    return _synthetic()


@pytest.fixture(scope="module")
def synth_ref(synth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.lmm(SYNTH, synth)


# ---------------------------------------------------------------------------------- exact sums
def test_exact_sum_is_correctly_rounded_and_order_free():
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e-200, 1e200):
        x = rng.normal(size=500) * scale * np.exp(rng.normal(size=500) * 3)
        x = np.concatenate([x, -x[:250] * (1 + 1e-12)])      # heavy cancellation
        want = float(sum(Fraction(v) for v in x))
        assert math.isclose(exact_sum(x), want, rel_tol=1e-15, abs_tol=1e-300 * scale)
        for _ in range(5):
            assert exact_sum(rng.permutation(x)) == exact_sum(x)
    assert exact_sum([1e16, 1.0, -1e16]) == 1.0
    assert exact_sum([]) == 0.0


def _blocks(system):
    c = system.chol
    return {name: np.asarray(getattr(c, name)).copy() for name in ("A11", "A21", "A22", "AE1", "AER", "AEE")}


@pytest.mark.parametrize("formula,weighted", [(SLEEP, False), (SLEEP, True),
                                              ("y ~ x + trt + (x | g1) + (1 | g2)", False), (SYNTH, False)])
def test_crossprods_do_not_depend_on_row_order_or_batches(formula, weighted, sleep, synth):
    data = sleep if formula == SLEEP else synth.dropna().reset_index(drop=True)
    d = build_design(formula, data, kind="lmm")
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 2.0, d.n_obs) if weighted else None
    E = np.column_stack([d.X, d.y])
    one = BlockedSystem(d.terms, d.p + 1)
    one.crossprod(E, w, exact=True)
    perm = rng.permutation(d.n_obs)
    shuffled = [dataclass_rows(t, perm) for t in d.terms]
    other = BlockedSystem(shuffled, d.p + 1)
    other.crossprod(E[perm], None if w is None else w[perm], exact=True)
    want = _blocks(one)
    for name, value in _blocks(other).items():
        assert np.array_equal(value, want[name]), name       # bitwise
    # uneven batches, accumulated separately and merged in another order
    cuts = [0, 1, 17, 18, max(19, d.n_obs // 2), d.n_obs]
    parts = []
    for a, b in pairwise(cuts):
        idx = perm[a:b]
        acc = CrossprodAccumulator(d.terms, d.p, weighted=weighted)
        acc.add([t.codes[idx] for t in d.terms], [t.Z[idx] for t in d.terms], d.X[idx], d.y[idx],
                None if w is None else w[idx])
        parts.append(acc)
    total = parts[-1]
    for part in parts[-2::-1]:
        total = part.merge(total)
    streamed = total.system()
    assert np.array_equal(streamed.a21_ptr, one.a21_ptr) and np.array_equal(streamed.a21_row, one.a21_row)
    for name, value in _blocks(streamed).items():
        assert np.array_equal(value, want[name]), name
    assert total.log_w == one.log_w


def dataclass_rows(term, idx):
    import dataclasses

    return dataclasses.replace(term, codes=term.codes[idx], Z=np.ascontiguousarray(term.Z[idx]))


def test_deviance_at_fixed_theta_is_the_in_memory_one(sleep):
    d = build_design(SLEEP, sleep, kind="lmm")
    ref = LmmObjective(d, reml=True)
    parts = []
    for a, b in pairwise([0, 7, 61, 62, 140, 180]):
        part = CrossprodAccumulator(d.terms, d.p)
        part.add([t.codes[a:b] for t in d.terms], [t.Z[a:b] for t in d.terms], d.X[a:b], d.y[a:b])
        parts.append(part)
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc.merge(part)
    obj = StreamObjective(acc.system(), acc.n, acc.p, acc.log_w, reml=True)
    for theta in ([1.0, 0.0, 1.0], [0.9667, 0.0152, 0.2309], [2.0, -0.5, 0.1]):
        assert obj(theta) == ref(theta)


@pytest.mark.parametrize("formula", ["y ~ x + (x | g1) + (1 | g2)", "y ~ x + (1 | g1) + (1 | g2) + (1 | trt)"])
def test_dense_pair_grid_and_sorted_runs_agree(synth, formula, monkeypatch):
    from mixframe.linalg import crossprod

    data = synth.dropna().reset_index(drop=True)
    d = build_design(formula, data, kind="lmm")
    systems = []
    for pairs in ("grid", "runs", "runs-then-grid"):
        if pairs == "runs":     # no grid fits: the runs stay runs
            monkeypatch.setattr(crossprod, "PAIR_GRID_BYTES", 0)
        else:
            monkeypatch.undo()
        acc = CrossprodAccumulator(d.terms, d.p, pairs="grid" if pairs == "grid" else "runs")
        for idx in np.array_split(np.arange(d.n_obs), 7):
            acc.add([t.codes[idx] for t in d.terms], [t.Z[idx] for t in d.terms], d.X[idx], d.y[idx])
        assert (acc.pairs[(1, 0)].grid is None) == (pairs == "runs")
        systems.append(acc.system())
    want = _blocks(systems[0])
    for other in systems[1:]:
        got = _blocks(other)
        assert all(np.array_equal(got[k], want[k]) for k in want)


def test_dense_schur_by_slabs_matches_the_sparse_path(monkeypatch):
    """The dense Schur complement, one slab of levels at a time, and the BLAS quadratic forms agree with the
    row-by-row sparse path (the memory of the dense path is a slab, whatever the number of levels)."""
    import mixframe._ext.blocked as kernel

    from mixframe.fit.lmm_grad import profiled_gradient

    rng = np.random.default_rng(11)
    n = 20_000
    g1, g2 = rng.integers(0, 400, n), rng.integers(0, 30, n)
    df = pd.DataFrame({"y": rng.normal(0, 0.6, 400)[g1] + rng.normal(0, 0.4, 30)[g2] + rng.normal(size=n),
                       "x": rng.normal(size=n), "g1": g1, "g2": g2})
    d = build_design("y ~ x + (1 | g1) + (1 | g2)", df, kind="lmm")
    results = {}
    for name, slab_bytes, ratio in (("one slab", 64 << 20, 1e9), ("slabs", 8 * 30 * 7, 1e9), ("sparse", 0, 0.0)):
        monkeypatch.setattr(kernel, "DENSE_SLAB_BYTES", max(slab_bytes, 8 * 30))
        monkeypatch.setattr(kernel, "DENSE_COST_RATIO", ratio)
        obj = LmmObjective(d, reml=True)
        chol = obj.system.chol
        assert chol.dense_s == (name != "sparse")
        assert name != "slabs" or chol.slab == 7
        theta = np.array([0.7, 0.45])
        dev = obj(theta)
        grad = profiled_gradient(obj, theta)
        cond = obj.system.cond_cov_u()
        results[name] = (dev, grad, cond)
    for name in ("slabs", "sparse"):
        dev, grad, cond = results[name]
        want = results["one slab"]
        assert dev == pytest.approx(want[0], rel=1e-12)
        np.testing.assert_allclose(grad, want[1], rtol=1e-9)
        for a, b in zip(cond, want[2]):
            np.testing.assert_allclose(a, b, rtol=1e-10)


# ---------------------------------------------------------------------------------- sleepstudy
def test_lazyframe_sleepstudy(tmp_path, sleep, sleep_ref):
    glob = _write_parts(sleep.sample(frac=1.0, random_state=4), tmp_path / "sleep", [17, 90, 101])
    fit = mf.lmm(SLEEP, pl.scan_parquet(glob), control={"batch_size": 40})
    _check_same(fit, sleep_ref)
    assert isinstance(fit.glance(), pl.DataFrame)
    aug = fit.augment()
    assert isinstance(aug, pl.LazyFrame)
    got = aug.collect().sort(["Subject", "Days"])
    want = sleep_ref.augment().sort_values(["Subject", "Days"])
    np.testing.assert_allclose(got[".fitted"].to_numpy(), want[".fitted"].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(got[".fixed"].to_numpy(), want[".fixed"].to_numpy(), rtol=RTOL)
    pred = fit.predict(re=False)
    assert isinstance(pred, pl.LazyFrame)


def test_single_batch_is_the_in_memory_fit(sleep, sleep_ref):
    fit = mf.lmm(SLEEP, pl.from_pandas(sleep).lazy())
    assert fit.loglik == sleep_ref.loglik
    assert fit.theta.tolist() == sleep_ref.theta.tolist()


def test_pyarrow_dataset_and_reader(tmp_path, sleep, sleep_ref):
    _write_parts(sleep, tmp_path / "sleep", [50, 51, 120])
    ds = pads.dataset(str(tmp_path / "sleep"), format="parquet")
    fit = mf.lmm(SLEEP, ds, control={"batch_size": 30})
    _check_same(fit, sleep_ref)
    assert isinstance(fit.coefficients(), pa.Table)
    table = fit.augment().read_all()
    np.testing.assert_allclose(table[".fixed"].to_numpy(), sleep_ref.augment()[".fixed"].to_numpy(), rtol=RTOL)
    fit2 = mf.lmm(SLEEP, ds.scanner().to_reader(), control={"batch_size": 25})
    _check_same(fit2, sleep_ref)


# ---------------------------------------------------------------------------------- synthetic, uneven parts
def test_synthetic_uneven_parts_with_missing(tmp_path, synth, synth_ref):
    glob = _write_parts(synth, tmp_path / "syn", [5, 700, 701, 2400])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mf.lmm(SYNTH, pl.scan_parquet(glob), control={"batch_size": 333})
        fit2 = mf.lmm(SYNTH, pads.dataset(str(tmp_path / "syn"), format="parquet"), control={"batch_size": 512})
    assert fit.glance()["n_dropped"][0] == 40
    _check_same(fit, synth_ref)
    _check_same(fit2, synth_ref)


@pytest.mark.parametrize("formula,kw", [
    ("y ~ x * trt + (x | g1) + (1 | g2)", {}),
    ("y ~ x + (x || g1) + (1 | g2:trt)", {"reml": False}),
    ("y ~ x + trt + (1 | g1) + (1 | g2)", {"weights": "w"}),
    ("y ~ x + offset(w) + (1 | g1) + (0 + x | g2)", {}),
    ("y ~ log(w) + x + (1 | g1)", {}),
])
def test_synthetic_model_variants(tmp_path, synth, formula, kw):
    glob = _write_parts(synth.sample(frac=1.0, random_state=2), tmp_path / "syn", [900, 901, 2000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mf.lmm(formula, synth, **kw)
        fit = mf.lmm(formula, pl.scan_parquet(glob), control={"batch_size": 700}, **kw)
    _check_same(fit, ref)


def test_predictor_levels_seen_only_in_late_batches(tmp_path):
    """Factor levels, a logical's TRUE and the values of a ``C()`` column that first appear late still get
    their columns: the first pass collects the levels of every categorical predictor."""
    rng = np.random.default_rng(3)
    n = 3000
    g, k = rng.integers(0, 40, n), rng.integers(0, 4, n)
    k[:2000] = rng.integers(0, 2, 2000)
    flag = np.zeros(n, dtype=bool)
    flag[2500:] = rng.random(500) > 0.5
    lvl = np.where(np.arange(n) < 2800, "a", rng.choice(["a", "z"], n))
    df = pd.DataFrame({"y": rng.normal(size=n) + 0.3 * k + flag + rng.normal(size=40)[g], "k": k, "flag": flag,
                       "lvl": lvl, "g": g})
    glob = _write_parts(df, tmp_path / "late", [1000, 2000])
    for formula in ("y ~ C(k) + flag + lvl + (1 | g)", "y ~ flag * k + (1 | g)"):
        ref = mf.lmm(formula, df)
        fit = mf.lmm(formula, pl.scan_parquet(glob), control={"batch_size": 500})
        _check_same(fit, ref)


def test_missing_rows_warn_and_augment(tmp_path):
    df = _synthetic(seed=3, n=800)
    glob = _write_parts(df, tmp_path / "syn", [100, 450])
    with pytest.warns(UserWarning, match="40 of 800 rows dropped"):
        fit = mf.lmm("y ~ x + (1 | g1)", pl.scan_parquet(glob), control={"batch_size": 128})
    aug = fit.augment().collect()
    assert aug.height == 800
    assert (~aug[".used"]).sum() == 40
    assert aug.filter(~pl.col(".used"))[".fitted"].null_count() == 40


# ---------------------------------------------------------------------------------- InstEval
@pytest.fixture(scope="module")
def insteval_parts(tmp_path_factory):
    path = tmp_path_factory.mktemp("insteval")
    _write_parts(mf.datasets.insteval(), path, [5000, 5001, 30000, 52000])
    return path


def test_insteval_lazyframe_and_dataset(insteval_parts):
    path = insteval_parts
    memory = pl.read_parquet(path / "*.parquet")   # the same data in memory, with the same column types
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mf.lmm(INSTEVAL, memory)
        fit = mf.lmm(INSTEVAL, pl.scan_parquet(path / "*.parquet"), control={"batch_size": 20_000})
        fit2 = mf.lmm(INSTEVAL, pads.dataset(str(path), format="parquet"), control={"batch_size": 7_000})
    assert fit.ngroups == ref.ngroups == {"s": 2972, "d": 1128, "dept:service": 28}
    _check_same(fit, ref)
    _check_same(fit2, ref)


def test_errors():
    lf = pl.LazyFrame({"y": [1.0, 2.0, 3.0, 4.0], "x": [1.0, 2.0, 3.0, 4.0], "g": list("aabb")})
    with pytest.raises(mf.FormulaError, match="scale"):
        mf.lmm("y ~ scale(x) + (1 | g)", lf)
    with pytest.raises(mf.DataError, match="column name"):
        mf.lmm("y ~ x + (1 | g)", lf, weights=np.ones(4))
    with pytest.raises(mf.FormulaError):
        mf.lmm("y ~ x + (1 | nope)", lf)


# ---------------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def _uneven(dd, df, cuts):
    """A Dask DataFrame whose partitions are the uneven slices of ``df`` at ``cuts``."""
    bounds = [0, *cuts, len(df)]
    parts = [df.iloc[a:b].reset_index(drop=True) for a, b in pairwise(bounds)]
    return dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])


def test_dask_local_cluster(dask_client, sleep, sleep_ref, synth, synth_ref):
    import dask.dataframe as dd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mf.lmm(SYNTH, _uneven(dd, synth, [5, 700, 701, 2400]))
    _check_same(fit, synth_ref)
    assert isinstance(fit.glance(), pd.DataFrame)
    aug = fit.augment()
    assert type(aug).__module__.startswith("dask")
    got = aug.compute()
    np.testing.assert_allclose(got[".fixed"].to_numpy(), synth_ref.augment()[".fixed"].to_numpy(), rtol=RTOL,
                               equal_nan=True)
    sfit = mf.lmm(SLEEP, _uneven(dd, sleep.sample(frac=1.0, random_state=9), [3, 100]))
    _check_same(sfit, sleep_ref)


def test_dask_insteval(dask_client):
    import dask.dataframe as dd

    full = mf.datasets.insteval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mf.lmm(INSTEVAL, full)
        fit = mf.lmm(INSTEVAL, _uneven(dd, full, [1000, 20000, 20001, 61000]))
    _check_same(fit, ref)
