"""Every fitted model pickles, and the unpickled model gives the same frames; per-row outputs never read the
caller's frame again (sorting or editing it after the fit changes nothing)."""
from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import mixframe as mf
from mixframe.fit.result import TRANSIENT_EXTRA

FRAMES = ("coefficients", "variance_components", "blups", "glance")


def _fit(kind, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "lmm":
            return mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy(backend=backend))
        if kind == "glmm":
            return mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                           mf.datasets.cbpp(backend=backend), family="binomial")
        if kind == "clmm":
            return mf.clmm("rating ~ temp + contact", mf.datasets.wine(backend=backend), groups="judge")
        if kind == "clm":
            return mf.clm("rating ~ temp + contact", mf.datasets.wine(backend=backend))
        if kind == "streamed":
            lf = pl.from_pandas(mf.datasets.sleepstudy()).lazy()
            return mf.lmm("Reaction ~ Days + (Days | Subject)", lf)
    raise ValueError(kind)


def _eager(frame):
    """A LazyFrame collected; eager frames as they are."""
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def assert_same(a, b):
    a, b = _eager(a), _eager(b)
    assert type(a) is type(b)
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    elif isinstance(a, pl.DataFrame):
        assert a.equals(b, null_equal=True)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def assert_same_model(fit, twin):
    assert type(twin) is type(fit) and twin.kind == fit.kind and twin.formula == fit.formula
    for name in FRAMES:
        assert_same(getattr(fit, name)(), getattr(twin, name)())
    assert_same(fit.augment(), twin.augment())
    assert_same(fit.predict(), twin.predict())
    assert_same(fit.predict(re=False), twin.predict(re=False))
    assert str(fit.summary()) == str(twin.summary())
    assert fit.loglik == twin.loglik and fit.fixef == twin.fixef and fit.thresholds == twin.thresholds
    np.testing.assert_array_equal(fit.theta, twin.theta)


def _kinds():
    out = []
    for kind in ("lmm", "glmm", "clmm", "clm"):
        for backend in ("pandas", "polars"):
            out.append(pytest.param(kind, backend, id=f"{kind}-{backend}"))
    out.append(pytest.param("streamed", "polars", id="streamed-lazyframe"))
    return out


@pytest.mark.parametrize("kind, backend", _kinds())
@pytest.mark.parametrize("evaluated", [False, True], ids=["fresh", "evaluated"])
def test_model_pickles_and_gives_the_same_frames(kind, backend, evaluated):
    fit = _fit(kind, backend)
    if evaluated:                 # the lazy quantities computed before pickling, or after unpickling
        fit.blups(), fit.coefficients()
    twin = pickle.loads(pickle.dumps(fit))
    assert_same_model(fit, twin)
    again = pickle.loads(pickle.dumps(twin))     # a model that was unpickled pickles again
    assert_same_model(fit, again)


@pytest.mark.parametrize("kind", ["clmm", "clm"])
@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_ordinal_record_without_a_stored_cdf_pickles(kind, backend):
    fit = _fit(kind, backend)
    raw = fit.raw
    plain = dataclasses.replace(raw, extra={k: v for k, v in raw.extra.items() if k != "cdf"})
    model = mf.MixedModel(plain, fit.data, dict(fit.call_info))
    twin = pickle.loads(pickle.dumps(model))
    assert_same_model(model, twin)
    # the link named by the record gives the probabilities the stored CDF gave
    np.testing.assert_allclose(twin.predict(), fit.predict(), rtol=1e-13, atol=1e-15)
    assert twin.coefficients()["coef_type"].to_list() == ["threshold"] * 4 + ["location"] * 2


def test_lmm_record_is_plain_data():
    fit = _fit("lmm", "pandas")
    raw = fit.raw
    assert "objective" in raw.extra                        # kept for reuse in this process ...
    back = pickle.loads(pickle.dumps(raw))
    assert not set(TRANSIENT_EXTRA) & set(back.extra)       # ... and not pickled
    # the lazy quantities are recomputed from the record and its design after unpickling
    np.testing.assert_array_equal(np.asarray(back.ddf()), np.asarray(raw.ddf()))
    for a, b in zip(back.b_sd, raw.b_sd):
        np.testing.assert_array_equal(a, b)
    assert fit.call_info["call"].function == "lmm"
    ml = pickle.loads(pickle.dumps(fit))._refit_ml()      # the REML fit refits by ML from its own rows
    assert ml.method == "ML"
    assert ml.loglik == pytest.approx(-875.969672, abs=1e-5)  # lme4: logLik(refitML(fm1)) = -875.9697


def test_streamed_refit_and_anova_after_unpickling():
    fit = pickle.loads(pickle.dumps(_fit("streamed", "polars")))
    lf = pl.from_pandas(mf.datasets.sleepstudy()).lazy()
    small = mf.lmm("Reaction ~ Days + (1 | Subject)", lf)
    table = mf.anova(small, fit)
    assert isinstance(table, pl.DataFrame)
    assert table["chisq"][1] == pytest.approx(42.139, abs=1e-3)
    assert table["npar"].to_list() == [4, 6]


def test_lmm_returns_one_class_whatever_the_input():
    eager = _fit("lmm", "pandas")
    streamed = _fit("streamed", "polars")
    assert type(eager) is type(streamed) is mf.MixedModel
    assert isinstance(streamed.augment(), pl.LazyFrame)
    np.testing.assert_allclose(streamed.coefficients()["estimate"].to_numpy(),
                               eager.coefficients()["estimate"].to_numpy(), rtol=1e-10)


# ------------------------------------------------------------------ no live reference to the caller's frame
def test_sorting_the_pandas_frame_in_place_after_the_fit_keeps_augment_aligned():
    data = mf.datasets.sleepstudy()
    fit = mf.lmm("Reaction ~ Days + (Days | Subject)", data)
    before = fit.augment()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                   # pandas 3 deprecates inplace=
        data.sort_values("Reaction", inplace=True)
    data["Days"] = 0.0
    data.loc[data.index[0], "Reaction"] = -1.0
    after = fit.augment()
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    used = fit.raw.design.used
    np.testing.assert_allclose(after[".fitted"].to_numpy()[used], fit.raw.eta, rtol=0, atol=0)
    np.testing.assert_allclose(after["Reaction"] - after[".fitted"], after[".resid"], atol=1e-9)
    assert fit.data["Days"].max() == 9


def test_renaming_and_editing_the_pandas_frame_after_the_fit_leave_the_models_copy_alone():
    data = mf.datasets.sleepstudy()
    fit = mf.lmm("Reaction ~ Days + (Days | Subject)", data)
    before = fit.augment()
    data.index.name = "row"
    data.columns = ["a", "b", "c"]
    data.iloc[0, 0] = -1.0
    data["d"] = 1.0
    after = fit.augment()
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    assert after.index.name is None and list(fit.data.columns) == ["Reaction", "Days", "Subject"]


def test_editing_the_polars_frame_in_place_after_the_fit_keeps_augment_aligned():
    data = mf.datasets.sleepstudy(backend="polars")
    fit = mf.lmm("Reaction ~ Days + (Days | Subject)", data)
    before = fit.augment()
    data.replace_column(0, data["Reaction"].sort())
    data.drop_in_place("Days")
    after = fit.augment()
    assert before.equals(after)
    np.testing.assert_allclose((after["Reaction"] - after[".fitted"]).to_numpy(), after[".resid"].to_numpy(),
                               atol=1e-9)
