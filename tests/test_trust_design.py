"""Trust in the frame → design encoding: aliased fixed effects, exact ids, dates, odd responses, level
types, unseen levels and clear errors (one test per item)."""
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import mixframe as mf

RANK_MSG = "fixed-effect model matrix is rank deficient so dropping 4 columns / coefficients: x2, f2q, f2r, c"


def _aliased_frame(n=300, seed=1):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n // 10), 10)
    df = pd.DataFrame({"x": rng.normal(size=n), "g": g, "f": rng.choice(list("abc"), n)})
    df["x2"] = 2 * df["x"]                                    # a duplicated column
    df["f2"] = df["f"].map({"a": "p", "b": "q", "c": "r"})    # a factor fully aliased with f
    df["c"] = 3.0                                             # constant after the intercept
    eta = df["x"] + np.repeat(rng.normal(size=n // 10), 10)
    df["y"] = 1 + eta + rng.normal(size=n)
    df["yb"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    df["yo"] = pd.Categorical(np.digitize(eta + rng.logistic(size=n), [-1, 0, 1]).astype(str),
                              categories=["0", "1", "2", "3"], ordered=True)
    return df


def _rank_warnings(record):
    return [str(w.message) for w in record if "rank deficient" in str(w.message)]


@pytest.mark.parametrize("kind", ["lmm", "glmm", "clmm", "clm", "stream"])
def test_rank_deficient_fixed_effects_dropped_as_lme4(kind):
    df = _aliased_frame()
    resp = {"lmm": "y", "stream": "y", "glmm": "yb"}.get(kind, "yo")
    bars = "" if kind == "clm" else " + (1 | g)"
    fn = mf.lmm if kind == "stream" else getattr(mf, kind)
    data = pl.from_pandas(df).lazy() if kind == "stream" else df
    extra = {"family": "binomial"} if kind == "glmm" else {}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit = fn(f"{resp} ~ x + x2 + f + f2 + c{bars}", data, **extra)
    assert _rank_warnings(record) == [RANK_MSG]
    ref = (mf.lmm if kind == "stream" else fn)(f"{resp} ~ x + f{bars}", df, **extra)
    a, b = fit.coefficients(), ref.coefficients()
    assert list(a["term"]) == list(b["term"])
    assert not {"x2", "f2q", "f2r", "c"} & set(a["term"])
    np.testing.assert_allclose(np.asarray(a["estimate"], float), np.asarray(b["estimate"], float),
                               rtol=1e-6, atol=1e-8)
    if kind != "clm":
        new = df.head(7)
        np.testing.assert_allclose(np.asarray(fit.predict(new)), np.asarray(ref.predict(new)), rtol=1e-6)


def test_integer_ids_above_2_53_and_float_levels_exact():
    rng = np.random.default_rng(2)
    n_g, per = 24, 8
    df = pd.DataFrame({"id": np.repeat(np.arange(n_g, dtype=np.int64) + 2 ** 60, per),
                       "x": rng.normal(size=n_g * per)})
    df["y"] = df["x"] + np.repeat(rng.normal(size=n_g), per) + rng.normal(size=n_g * per)
    df["sid"] = (df["id"] - 2 ** 60).astype(str)
    ref = mf.lmm("y ~ x + (1 | sid)", df)            # the same groups under string labels
    fit = mf.lmm("y ~ x + (1 | id)", df)
    labels = [str(v) for v in fit.blups()["level"]]
    assert labels == [str(2 ** 60 + i) for i in range(n_g)]
    np.testing.assert_allclose(fit.loglik, ref.loglik, rtol=1e-10)
    big = pl.from_pandas(df).with_columns(
        (pl.col("id").cast(pl.UInt64) + pl.lit(2 ** 63, dtype=pl.UInt64)).alias("u"))
    fit_u = mf.lmm("y ~ x + (1 | u)", big)
    assert [str(v) for v in fit_u.blups()["level"].to_list()] == [str(2 ** 63 + 2 ** 60 + i) for i in range(n_g)]
    np.testing.assert_allclose(fit_u.loglik, ref.loglik, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(fit_u.predict(big.head(5))), np.asarray(ref.predict(df.head(5))),
                               rtol=1e-9)
    # floats that print alike (0.3 and the next double) are two levels with two labels
    base = 0.3 + np.arange(n_g // 2)
    df["fl"] = np.repeat(np.column_stack([base, np.nextafter(base, np.inf)]).ravel(), per)
    fit_f = mf.lmm("y ~ x + (1 | fl)", df)
    levels = [str(v) for v in fit_f.blups()["level"]]
    assert len(levels) == len(set(levels)) == n_g


@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_datetime_date_duration_predictors_are_numbers_as_in_r(backend):
    rng = np.random.default_rng(3)
    n = 120
    epoch = pd.Timestamp("1970-01-01")
    t = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s")
    df = pd.DataFrame({"t": t, "g": np.repeat(np.arange(12), 10)})
    df["d"] = df["t"].dt.normalize().dt.date
    df["dur"] = df["t"] - pd.Timestamp("2024-01-01")
    df["y"] = 1e-6 * (df["t"] - epoch).dt.total_seconds() + rng.normal(size=n) + np.repeat(rng.normal(size=12), 10)
    num = pd.DataFrame({"t": (df["t"] - epoch).dt.total_seconds(),
                        "d": (pd.to_datetime(df["d"]) - epoch).dt.days.astype(float),
                        "dur": df["dur"].dt.total_seconds(), "g": df["g"], "y": df["y"]})
    data = pl.from_pandas(df) if backend == "polars" else df
    if backend == "pandas":
        data = data.assign(tz=df["t"].dt.tz_localize("UTC"))
        num = num.assign(tz=num["t"])
    for col in (["t", "d", "dur"] + (["tz"] if backend == "pandas" else [])):
        fit = mf.lmm(f"y ~ {col} + (1 | g)", data)
        ref = mf.lmm(f"y ~ {col} + (1 | g)", num)
        assert list(fit.fixef) == ["(Intercept)", col]
        np.testing.assert_allclose(fit.fixef[col], ref.fixef[col], rtol=1e-8)
        np.testing.assert_allclose(np.asarray(fit.predict(data.head(5) if backend == "pandas" else data.head(5))),
                                   np.asarray(ref.predict(num.head(5))), rtol=1e-9)
    # as a grouping factor a date stays a factor of its values
    fit = mf.lmm("y ~ 1 + (1 | d)", data)
    assert len(fit.blups()) == df["d"].nunique()
    assert [str(v) for v in list(fit.blups()["level"])[:1]] == [str(min(df["d"]))]


def test_constant_response_is_a_data_error_naming_it():
    rng = np.random.default_rng(4)
    n = 60
    df = pd.DataFrame({"x": rng.normal(size=n), "g": np.repeat(np.arange(6), 10), "yc": 3.5,
                       "y0": 0.0, "y1": 1.0, "k": 0, "s": 0, "f": 5})
    with pytest.raises(mf.DataError, match=r"response 'yc' is constant"):
        mf.lmm("yc ~ x + (1 | g)", df)
    with pytest.raises(mf.DataError, match=r"binomial response 'y0' is all 0"):
        mf.glmm("y0 ~ x + (1 | g)", df, family="binomial")
    with pytest.raises(mf.DataError, match=r"binomial response 'y1' is all 1"):
        mf.glmm("y1 ~ x + (1 | g)", df, family="binomial")
    with pytest.raises(mf.DataError, match=r"binomial response 'cbind\(s, f\)' is all 0"):
        mf.glmm("cbind(s, f) ~ x + (1 | g)", df, family="binomial")
    with pytest.raises(mf.DataError, match=r"poisson response 'k' is all 0"):
        mf.glmm("k ~ x + (1 | g)", df, family="poisson")
    # one varying value is enough: a fit, not an error
    df.loc[0, "yc"] = 4.0
    fit = mf.lmm("yc ~ 1 + (1 | g)", df)
    np.testing.assert_allclose(fit.fixef["(Intercept)"], df["yc"].mean(), rtol=1e-6)


def test_unordered_categorical_ordinal_response_refused_like_strings():
    rng = np.random.default_rng(5)
    n = 200
    x = rng.normal(size=n)
    ycode = np.digitize(x + rng.logistic(size=n), [-1, 0, 1])
    order = ["8", "9", "10", "11"]
    lab = np.array(order)[ycode]
    df = pd.DataFrame({"x": x, "g": np.repeat(np.arange(20), 10),
                       "r": pd.Categorical(lab),                        # unordered: '10' < '11' < '8' < '9'
                       "ro": pd.Categorical(lab, categories=order, ordered=True), "rs": lab})
    for data, col in ((df, "r"), (df, "rs"), (pl.from_pandas(df[["x", "g", "rs"]]), "rs"),
                      (pl.from_pandas(df[["x", "g"]]).with_columns(r=pl.Series(lab).cast(pl.Categorical)), "r")):
        with pytest.raises(mf.DataError, match=rf"ordinal response '{col}' .*levels=\[...\].*ordered categorical"):
            mf.clmm(f"{col} ~ x + (1 | g)", data)
    ref = mf.clmm("ro ~ x + (1 | g)", df)
    fit = mf.clmm("r ~ x + (1 | g)", df, levels=order)
    assert ref.fixef["x"] > 0
    np.testing.assert_allclose(fit.fixef["x"], ref.fixef["x"], rtol=1e-8)
    with pytest.raises(mf.DataError, match=r"repeats \['9'\]"):
        mf.clmm("rs ~ x + (1 | g)", df, levels=["8", "9", "9", "10", "11"])


def test_blup_levels_keep_the_grouping_column_type_and_join_back():
    rng = np.random.default_rng(6)
    n_g, per = 10, 12
    df = pd.DataFrame({"gi": np.repeat(np.arange(n_g, dtype=np.int64) * 7 + 3, per),
                       "x": rng.normal(size=n_g * per)})
    df["gf"] = df["gi"] / 4.0
    df["gs"] = "s" + df["gi"].astype(str)
    df["h"] = np.tile(["u", "v"], n_g * per // 2)
    df["y"] = df["x"] + np.repeat(rng.normal(size=n_g), per) + rng.normal(size=n_g * per)
    for col, kind in (("gi", "i"), ("gf", "f")):
        fit = mf.lmm(f"y ~ x + (1 | {col})", df)
        b = fit.blups()
        assert b["level"].dtype.kind == kind
        joined = df.merge(b[["level", "estimate"]], left_on=col, right_on="level", how="left")
        assert joined["estimate"].notna().all()
        first = joined.groupby(col)["estimate"].first()
        np.testing.assert_allclose(first.to_numpy(), b["estimate"].to_numpy())
    assert mf.lmm("y ~ x + (1 | gs)", df).blups()["level"].map(type).eq(str).all()
    inter = mf.lmm("y ~ x + (1 | gi:h)", df).blups()["level"]
    assert inter.map(type).eq(str).all() and inter.iloc[0] == "3:u"
    p = pl.from_pandas(df).with_columns(pl.col("gi").cast(pl.Int32), pl.col("gi").cast(pl.UInt64).alias("gu"))
    for col in ("gi", "gu", "gf"):
        b = mf.lmm(f"y ~ x + (1 | {col})", p).blups()
        assert b["level"].dtype == p[col].dtype
        joined = p.join(b.select(pl.col("level").alias(col), "estimate"), on=col, how="left")
        assert joined["estimate"].null_count() == 0
        np.testing.assert_allclose(joined.group_by(col, maintain_order=True).first()["estimate"].to_numpy(),
                                   b["estimate"].to_numpy())


def test_unseen_levels_in_newdata_warn_with_their_count():
    sleep = mf.datasets.sleepstudy()
    fit = mf.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    new = sleep.head(6).copy()
    new["Subject"] = new["Subject"].astype(str)
    new.loc[new.index[:3], "Subject"] = ["zz1", "zz2", "zz1"]
    new.loc[new.index[3], "Subject"] = None              # missing, not unseen: not counted
    msg = "3 rows of newdata have levels of 'Subject' not seen in the fit; their random effects are set to 0"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pred = np.asarray(fit.predict(new))
    assert [str(w.message) for w in record if "not seen" in str(w.message)] == [msg]
    np.testing.assert_allclose(pred[:3], fit.fixef["(Intercept)"] + fit.fixef["Days"] * new["Days"].to_numpy()[:3],
                               rtol=1e-12)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit.augment(new)
    assert [str(w.message) for w in record if "not seen" in str(w.message)] == [msg]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.predict(new, re=False)                       # no random effects: nothing to warn about
        fit.predict(sleep.head(6))                       # every level seen


def test_clear_errors_naming_the_column():
    sleep = mf.datasets.sleepstudy()
    d = sleep.assign(k=sleep["Days"].astype(float))
    with pytest.raises(mf.DataError, match=r"random-effect term \(0 \+ I\(1/k\) \| Subject\) has non-finite values in "
                                           r"'I\(1 / k\)' \(18 row"):
        mf.lmm("Reaction ~ Days + (0 + I(1/k) | Subject)", d)
    with pytest.raises(mf.DataError, match=r"non-finite values in 'I\(1 / k\)'"):
        mf.glmm("I(Reaction > 300) ~ Days + (0 + I(1/k) | Subject)", d, family="binomial")
    with pytest.raises(mf.DataError, match=r"\(log\(k\) \| Subject\) has non-finite values in 'log\(k\)'"):
        mf.lmm("Reaction ~ Days + (log(k) | Subject)", d)
    with pytest.raises(mf.DataError, match=r"column 'g' mixes value types \(int, str\)"):
        mf.lmm("Reaction ~ Days + (1 | g)", sleep.assign(g=["a", 1] * 90))
    with pytest.raises(mf.DataError, match=r"column 'z' mixes value types \(float, str\)"):
        mf.lmm("Reaction ~ z + (1 | Subject)", sleep.assign(z=["a", 1.5] * 90))
    with pytest.raises(mf.DataError, match=r"duplicate column names \['Days'\]"):
        mf.lmm("Reaction ~ Days + (1 | Subject)", pd.concat([sleep, sleep[["Days"]]], axis=1))
    p = pl.from_pandas(sleep)
    for col, expr in (("L", pl.concat_list("Days", "Days")), ("S", pl.struct("Days")),
                      ("I128", pl.col("Days").cast(pl.Int128))):
        with pytest.raises(mf.DataError, match=rf"column '{col}' has"):
            mf.lmm(f"Reaction ~ {col} + (1 | Subject)", p.with_columns(expr.alias(col)))
    with pytest.raises(mf.DataError, match=r"the streamed data have no rows"):
        mf.lmm("Reaction ~ Days + (1 | Subject)", p.head(0).lazy())
    w = sleep.assign(w=1.0)
    w.loc[3, "w"] = np.inf
    with pytest.raises(mf.DataError, match=r"the weights column 'w' has 1 non-finite weight"):
        mf.lmm("Reaction ~ Days + (1 | Subject)", w, weights="w")
    with pytest.raises(mf.DataError, match=r"weights= has 1 non-finite weight"):
        mf.lmm("Reaction ~ Days + (1 | Subject)", w, weights=w["w"].to_numpy())
    with pytest.raises(mf.DataError, match=r"response 'Reaction' is constant"):   # not blamed on predictors
        mf.lmm("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=250.0))
    fit = mf.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    for empty in (sleep.head(0), p.head(0)):
        assert np.asarray(fit.predict(empty)).shape == (0,)
        assert fit.augment(empty).shape[0] == 0
    np.testing.assert_allclose(np.asarray(fit.predict(sleep.head(3))), np.asarray(fit.predict())[:3], rtol=1e-12)
