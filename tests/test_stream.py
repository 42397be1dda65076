"""Streamed LMM fits (LazyFrame, pyarrow Dataset / RecordBatchReader, Dask) against in-memory fits.

The cross-products of a streamed fit are sums over batches, so they differ from the one-pass sums only
by rounding: the deviance at a given theta agrees to ~1e-12.  The optimizer then stops within its own
tolerance of the optimum, so theta and the variance components agree to ~1e-6, the fixed effects and
the log-likelihood much more closely.
"""
import warnings
from itertools import pairwise

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

import mixframe as mf
from mixframe.design.build import build_design
from mixframe.fit.lmm import LmmObjective

SLEEP = "Reaction ~ Days + (Days | Subject)"


def _write_parts(df: pd.DataFrame, path, cuts):
    """Write ``df`` as Parquet files split at the row positions ``cuts`` (uneven parts)."""
    path.mkdir(exist_ok=True)
    bounds = [0, *cuts, len(df)]
    for i, (a, b) in enumerate(pairwise(bounds)):
        pl.from_pandas(df.iloc[a:b].reset_index(drop=True)).write_parquet(path / f"part-{i:03d}.parquet")
    return str(path / "*.parquet")


def _synthetic(seed=1, n=3000):
    """Crossed factors, a categorical predictor, levels confined to some parts, missing values spread."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 60, n)
    g1[: n // 3] = rng.integers(0, 20, n // 3)           # levels 20.. only after the first third
    g2 = rng.integers(0, 12, n)
    trt = rng.choice(["ctl", "hi", "lo"], n)
    x = rng.normal(size=n)
    y = (1.0 + 0.5 * x + np.where(trt == "hi", 0.8, 0.0) + rng.normal(0, 0.7, 60)[g1]
         + rng.normal(0, 0.4, 12)[g2] + rng.normal(0, 1.0, n))
    df = pd.DataFrame({"y": y, "x": x, "trt": trt, "g1": [f"a{v:02d}" for v in g1], "g2": g2})
    miss = rng.choice(n, 40, replace=False)
    df.loc[miss[:15], "y"] = np.nan
    df.loc[miss[15:30], "x"] = np.nan
    df.loc[miss[30:], "g1"] = None
    return df


def _check_same(fit, ref, theta_rtol=2e-5):
    assert fit.nobs == ref.nobs
    assert int(_pandas(fit.glance())["n_dropped"][0]) == int(_pandas(ref.glance())["n_dropped"][0])
    assert list(fit.fixef) == list(ref.fixef)
    np.testing.assert_allclose(list(fit.fixef.values()), list(ref.fixef.values()), rtol=1e-6)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=theta_rtol, atol=1e-7)
    np.testing.assert_allclose(fit.loglik, ref.loglik, rtol=1e-10)
    np.testing.assert_allclose(fit.sigma, ref.sigma, rtol=1e-6)
    a, b = _pandas(fit.variance_components()), _pandas(ref.variance_components())
    np.testing.assert_allclose(a["vcov"], b["vcov"], rtol=theta_rtol * 2, atol=1e-8)
    a, b = _pandas(fit.blups()), _pandas(ref.blups())
    assert a["level"].tolist() == b["level"].tolist()
    scale = float(np.max(np.abs(b["estimate"])))
    np.testing.assert_allclose(a["estimate"], b["estimate"], atol=theta_rtol * scale)
    np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=theta_rtol * 2)
    a, b = _pandas(fit.coefficients()), _pandas(ref.coefficients())
    np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=1e-5)


def _pandas(frame):
    if isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(frame, pa.Table):
        return frame.to_pandas()
    return frame.to_pandas()


@pytest.fixture(scope="module")
def sleep():
    return mf.datasets.sleepstudy()


@pytest.fixture(scope="module")
def sleep_ref(sleep):
    return mf.lmm(SLEEP, sleep)


def test_deviance_at_fixed_theta_matches(sleep):
    """The summed cross-products give the in-memory deviance at any theta (rounding only)."""
    from mixframe.fit.lmm_stream import CrossprodAccumulator, StreamObjective

    d = build_design(SLEEP, sleep, kind="lmm")
    ref = LmmObjective(d, reml=True)
    acc = CrossprodAccumulator(d.terms, d.p)
    cuts = [0, 7, 61, 62, 140, 180]
    parts = []
    for a, b in pairwise(cuts):
        part = CrossprodAccumulator(d.terms, d.p)
        part.add([t.codes[a:b] for t in d.terms], [t.Z[a:b] for t in d.terms], d.X[a:b], d.y[a:b])
        parts.append(part)
    for part in reversed(parts):
        acc.merge(part)
    obj = StreamObjective(acc.system(), acc.n, acc.p, acc.log_w, reml=True)
    for theta in ([1.0, 0.0, 1.0], [0.9667, 0.0152, 0.2309], [2.0, -0.5, 0.1]):
        assert obj(theta) == pytest.approx(ref(theta), rel=1e-12)


def test_lazyframe_sleepstudy(tmp_path, sleep, sleep_ref):
    glob = _write_parts(sleep, tmp_path / "sleep", [17, 90, 101])
    fit = mf.lmm(SLEEP, pl.scan_parquet(glob), control={"batch_size": 40})
    _check_same(fit, sleep_ref)
    assert isinstance(fit.glance(), pl.DataFrame)
    aug = fit.augment()
    assert isinstance(aug, pl.LazyFrame)
    got = aug.collect()
    want = sleep_ref.augment()
    np.testing.assert_allclose(got[".fitted"].to_numpy(), want[".fitted"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(got[".fixed"].to_numpy(), want[".fixed"].to_numpy(), rtol=1e-9)
    pred = fit.predict(re=False)
    assert isinstance(pred, pl.LazyFrame)
    np.testing.assert_allclose(pred.collect()[".fixed"].to_numpy(), sleep_ref.predict(re=False), rtol=1e-9)


def test_single_batch_is_exact(sleep, sleep_ref):
    fit = mf.lmm(SLEEP, pl.from_pandas(sleep).lazy())
    assert fit.loglik == pytest.approx(sleep_ref.loglik, rel=1e-13)
    np.testing.assert_allclose(fit.theta, sleep_ref.theta, rtol=1e-8)


def test_pyarrow_dataset_and_reader(tmp_path, sleep, sleep_ref):
    glob = _write_parts(sleep, tmp_path / "sleep", [50, 51, 120])
    ds = pads.dataset(str(tmp_path / "sleep"), format="parquet")
    fit = mf.lmm(SLEEP, ds, control={"batch_size": 30})
    _check_same(fit, sleep_ref)
    assert isinstance(fit.coefficients(), pa.Table)
    reader = fit.augment()
    table = reader.read_all()
    np.testing.assert_allclose(table[".fixed"].to_numpy(), sleep_ref.augment()[".fixed"].to_numpy(),
                               rtol=1e-9)
    rbr = ds.scanner().to_reader()
    fit2 = mf.lmm(SLEEP, rbr, control={"batch_size": 25})
    _check_same(fit2, sleep_ref)
    assert glob


def test_synthetic_uneven_parts_with_missing(tmp_path):
    df = _synthetic()
    formula = "y ~ x + trt + (1 | g1) + (1 | g2)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mf.lmm(formula, df)
        glob = _write_parts(df, tmp_path / "syn", [5, 700, 701, 2400])
        fit = mf.lmm(formula, pl.scan_parquet(glob), control={"batch_size": 333})
    assert fit.glance()["n_dropped"][0] == 40
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


def test_insteval_lazyframe_subset():
    full = mf.datasets.insteval()
    data = pl.from_pandas(full[full["d"].cat.codes < 120].reset_index(drop=True))
    formula = "y ~ service + (1|s) + (1|d) + (1|dept:service)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mf.lmm(formula, data)       # the same polars frame in memory: same level order
        fit = mf.lmm(formula, data.lazy(), control={"batch_size": 2500})
    assert fit.ngroups == ref.ngroups
    _check_same(fit, ref, theta_rtol=1e-4)


def test_errors():
    lf = pl.LazyFrame({"y": [1.0, 2.0, 3.0, 4.0], "x": [1.0, 2.0, 3.0, 4.0], "g": list("aabb")})
    with pytest.raises(mf.FormulaError, match="scale"):
        mf.lmm("y ~ scale(x) + (1 | g)", lf)
    with pytest.raises(mf.DataError, match="column name"):
        mf.lmm("y ~ x + (1 | g)", lf, weights=np.ones(4))
    with pytest.raises(mf.FormulaError):
        mf.lmm("y ~ x + (1 | nope)", lf)


def test_dask_local_cluster(sleep, sleep_ref):
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    df = _synthetic(seed=5, n=2000)
    formula = "y ~ x + trt + (1 | g1) + (1 | g2)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mf.lmm(formula, df)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        ddf = dd.from_pandas(df, npartitions=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = mf.lmm(formula, ddf)
        _check_same(fit, ref)
        assert isinstance(fit.glance(), pd.DataFrame)
        aug = fit.augment()
        assert type(aug).__module__.startswith("dask")
        got = aug.compute()
        np.testing.assert_allclose(got[".fixed"].to_numpy(), ref.augment()[".fixed"].to_numpy(), rtol=1e-7, atol=1e-8,
                                   equal_nan=True)
        sfit = mf.lmm(SLEEP, dd.from_pandas(sleep, npartitions=3))
        _check_same(sfit, sleep_ref)
