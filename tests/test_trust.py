"""Odd and hostile input: each test holds one item of the project's trust list (a clear error or a correct fit,
never a silent wrong answer). Formula safety is held by tests/formula/test_safety.py and the command line's
failures by tests/test_cli.py."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import mixframe as mf

SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture
def sleep():
    return mf.datasets.sleepstudy()


# 7. Per-row outputs never re-read the caller's frame; an output column never replaces an input column.

def test_augment_survives_in_place_sort(sleep):
    fit = mf.lmm(SLEEP, sleep)
    before = fit.augment()
    sleep.sort_values("Reaction", inplace=True)
    sleep["Reaction"] = 0.0
    after = fit.augment()
    pd.testing.assert_frame_equal(before, after)
    np.testing.assert_allclose(after[".fitted"] + after[".resid"], after["Reaction"], rtol=1e-12)


@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_output_column_names_are_not_replaced(sleep, backend):
    data = sleep.assign(**{".fitted": 1.0})
    data = pl.from_pandas(data) if backend == "polars" else data
    fit = mf.lmm(SLEEP, data)
    with pytest.raises(mf.DataError, match=r"'\.fitted'.*rename or drop"):
        fit.augment()
    with pytest.raises(mf.DataError, match=r"'\.fitted'"):
        fit.augment(data)
    lazy = pl.from_pandas(sleep.assign(**{".resid": 1.0})).lazy()
    with pytest.raises(mf.DataError, match=r"'\.resid'"):
        mf.lmm(SLEEP, lazy).augment()


# A non-integral or otherwise odd nagq is an error, not silently rounded.

@pytest.mark.parametrize("nagq", [2.7, -1, True, "3", None])
def test_nagq_must_be_a_whole_number(nagq):
    cbpp = mf.datasets.cbpp()
    with pytest.raises(ValueError, match="nagq must be a whole number"):
        mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, nagq=nagq)
    with pytest.raises(ValueError, match="nagq must be a whole number"):
        mf.clmm("rating ~ temp + (1 | judge)", mf.datasets.wine(), nagq=0 if nagq is None else nagq)


def test_nagq_integral_float_is_accepted():
    cbpp = mf.datasets.cbpp()
    a = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, nagq=5.0)
    b = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, nagq=5)
    assert a.loglik == b.loglik and a.method == b.method


# Warnings point at the user's line, not at the library's, through mf.* and the accessors alike.

def test_warnings_point_at_the_callers_line(sleep):
    import inspect
    import warnings

    sleep.loc[0, "Days"] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        mf.lmm("Reaction ~ Days + (1 | Subject)", sleep)
        sleep.mixed.lmm("Reaction ~ Days + (1 | Subject)")
    dropped = [w for w in caught if "rows dropped" in str(w.message)]
    assert [(w.filename, w.lineno) for w in dropped] == [(__file__, line), (__file__, line + 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the user's filters decide: here, a warning is an error
        with pytest.raises(UserWarning, match="rows dropped"):
            mf.lmm("Reaction ~ Days + (1 | Subject)", sleep)


# A computed factor whose level a streamed batch or new data shows for the first time is an error, never NaN
# columns silently dropped from the fit.

def test_unseen_level_of_a_computed_factor_is_an_error(sleep):
    formula = "Reaction ~ log(Days + 1) + I(Days > 3) + (1 | Subject)"
    lazy = pl.from_pandas(sleep).lazy()
    try:
        fit = mf.lmm(formula, lazy)
    except mf.DataError as err:
        assert "did not see" in str(err)
    else:  # a streamed fit that can learn the levels must give the in-memory answer
        ref = mf.lmm(formula, sleep)
        assert fit.fixef == pytest.approx(ref.fixef, rel=1e-8)
    small = mf.lmm(formula, sleep[sleep["Days"] <= 3])
    with pytest.raises(mf.DataError, match="did not see"):
        small.predict(sleep[sleep["Days"] > 5])


# Dask clusters of processes: formulas through formulaic work on the workers, and the model ships to them.

def test_dask_process_cluster():
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    sleep = mf.datasets.sleepstudy()
    formula = "Reaction ~ log(Days + 1) + I(Days ** 2) + (1 | Subject)"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  death_timeout=60) as cluster, distributed.Client(cluster, timeout=60):
        fit = mf.lmm(formula, dd.from_pandas(sleep, npartitions=3))
        augmented = fit.augment().compute()
    ref = mf.lmm(formula, sleep)
    assert fit.loglik == pytest.approx(ref.loglik, rel=1e-10)
    np.testing.assert_allclose(augmented[".fitted"].to_numpy(), ref.augment()[".fitted"].to_numpy(), rtol=1e-9)


# A perfectly separated ordinal model gets the separation warning a GLMM gets.

@pytest.mark.parametrize("kind", ["clm", "clmm"])
def test_separated_ordinal_model_warns(kind):
    wine = mf.datasets.wine()
    data = wine.assign(sep=(np.asarray(wine["rating"].astype(int)) >= 3).astype(float))
    formula = "rating ~ temp + sep" + (" + (1 | judge)" if kind == "clmm" else "")
    with pytest.warns(mf.ConvergenceWarning, match="separated"):
        getattr(mf, kind)(formula, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mf.ConvergenceWarning)
        getattr(mf, kind)("rating ~ temp + contact" + (" + (1 | judge)" if kind == "clmm" else ""), wine)
