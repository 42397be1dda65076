"""The frame boundary and the design builder: R names, levels, responses, missing rows, bad input."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import case_frame

from mixframe.io import frames
from mixframe.design.build import build_design
from mixframe.design.newdata import new_design
from mixframe.errors import DataError, FormulaError
from mixframe.formula import parse_formula

ROOT = Path(__file__).resolve().parent.parent.parent
REF = ROOT / "tests" / "reference"
DATA = ROOT / "mixframe" / "datasets" / "data"
CASES = sorted(p.stem for p in REF.glob("*.json"))
FORMULA_OVERRIDE = {"sleepstudy_uncorr": "Reaction ~ Days + (Days || Subject)"}


def load_case(name, backend):
    """The case's data as the reference checker builds them: factor_levels columns categorical in
    that order (an ordinal response ordered), grouping columns strings; polars: Enum columns."""
    case = json.loads((REF / f"{name}.json").read_text())
    formula = FORMULA_OVERRIDE.get(name, case["formula"])
    df = case_frame(case, backend, formula)
    return case, formula, df


def kind_of(case, formula):
    if case["package"] == "ordinal":
        return "clmm" if parse_formula(formula).bars else "clm"
    if case["package"] == "lme4" and case["family"] == "gaussian":
        return "lmm"
    return "glmm"


def canonical(group):
    return ":".join(sorted(group.split(":")))


@pytest.mark.parametrize("backend", ["pandas", "polars"])
@pytest.mark.parametrize("name", CASES)
def test_reference_cases_term_names_levels_and_counts(name, backend):
    case, formula, df = load_case(name, backend)
    kind = kind_of(case, formula)
    family = {"nbinom2": "negative_binomial", "Gamma": "gamma"}.get(case["family"], case["family"])
    d = build_design(formula, df, kind=kind, family=family if kind == "glmm" else None)
    assert d.x_names == list(case["fixef"])
    assert d.n_obs == case["nobs"] and d.used.all() and d.n_total == case["nobs"]
    assert d.X.shape == (d.n_obs, len(case["fixef"])) and d.X.flags.c_contiguous
    assert {canonical(t.group): t.n_levels for t in d.terms} == \
        {canonical(g): n for g, n in (case.get("ngroups") or {}).items()}
    sizes = [t.n_levels for t in d.terms]
    assert sizes == sorted(sizes, reverse=True)
    for t in d.terms:
        assert t.codes.dtype == np.int32 and t.codes.min() == 0 and t.codes.max() == t.n_levels - 1
        assert t.Z.flags.c_contiguous and t.Z.shape[0] == d.n_obs
        assert np.bincount(t.codes).min() > 0
    if case.get("thresholds"):
        cuts = list(case["thresholds"])
        assert [f"{a}|{b}" for a, b in zip(d.response_levels, d.response_levels[1:])] == cuts
    assert np.isfinite(d.y).all()


def test_reference_response_details():
    _, formula, df = load_case("cbpp_laplace", "pandas")
    d = build_design(formula, df, kind="glmm", family="binomial")
    np.testing.assert_allclose(d.weights, df["size"])
    np.testing.assert_allclose(d.y, df["incidence"] / df["size"])
    _, formula, df = load_case("verbagg", "polars")
    d = build_design(formula, df, kind="glmm", family="binomial")
    assert d.response_levels == ["N", "Y"]
    np.testing.assert_array_equal(d.y, (df["r2"] == "Y").to_numpy().astype(float))
    _, formula, df = load_case("grouseticks", "pandas")
    d = build_design(formula, df, kind="glmm", family="poisson")
    np.testing.assert_allclose(d.X[:, d.x_names.index("scale(HEIGHT)")], df["HEIGHT_s"], atol=1e-12)


def test_nested_and_interaction_levels_are_joined_labels():
    _, formula, df = load_case("pastes", "polars")
    d = build_design(formula, df, kind="lmm")
    inner = next(t for t in d.terms if t.group == "batch:cask")
    assert inner.components == ("batch", "cask")
    assert inner.levels[:4] == ["A:a", "A:b", "A:c", "B:a"]
    labels = np.array(inner.levels)[inner.codes]
    np.testing.assert_array_equal(labels, (df["batch"] + ":" + df["cask"]).to_numpy())


def test_uncorrelated_terms_and_levels_largest_first():
    _, formula, df = load_case("sleepstudy_uncorr", "pandas")
    d = build_design(formula, df, kind="lmm")
    assert [(t.group, t.col_names) for t in d.terms] == [("Subject", ["(Intercept)"]), ("Subject", ["Days"])]
    np.testing.assert_array_equal(d.terms[1].Z[:, 0], df["Days"])


# ---------------------------------------------------------------------------------------------
# small synthetic frames


def small_frame(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "f": pd.Categorical(rng.choice(["lo", "mid", "hi"], size=n), categories=["lo", "mid", "hi"]),
        "s": rng.choice(["b", "a", "c"], size=n),
        "g": np.repeat(["g1", "g2", "g3", "g4"], n // 4),
        "h": np.tile(["u", "v"], n // 2),
        "k": rng.integers(1, 4, size=n),
        "cnt": rng.integers(0, 5, size=n).astype(float),
        "tot": np.full(n, 6.0),
    })


def test_factor_slopes_and_treatment_contrasts():
    df = small_frame()
    d = build_design("y ~ f + s + (0 + f | g) + (f | h)", df, kind="lmm")
    assert d.x_names == ["(Intercept)", "fmid", "fhi", "sb", "sc"]
    by_group = {t.group: t for t in d.terms}
    assert by_group["g"].col_names == ["flo", "fmid", "fhi"]
    np.testing.assert_array_equal(by_group["g"].Z.sum(axis=1), 1.0)
    assert by_group["h"].col_names == ["(Intercept)", "fmid", "fhi"]


def test_numeric_grouping_levels_sorted_and_printed_as_r():
    df = small_frame()
    df["k10"] = df["k"] * 5  # 5, 10, 15 sort numerically
    d = build_design("y ~ x + (1 | k10)", df, kind="lmm")
    assert d.terms[0].levels == ["5", "10", "15"]
    df["num_str"] = df["k10"].astype(str)  # strings sort as strings
    d = build_design("y ~ x + (1 | num_str)", df, kind="lmm")
    assert d.terms[0].levels == ["10", "15", "5"]


@pytest.mark.parametrize("response, expect", [
    ("b01", None), ("logical", None), ("two", ["no", "yes"]), ("cbind(cnt, tot - cnt)", None)])
def test_binomial_response_forms(response, expect):
    df = small_frame()
    df["b01"] = (df["x"] > 0).astype(int)
    df["logical"] = df["x"] > 0
    df["two"] = np.where(df["x"] > 0, "yes", "no")
    d = build_design(f"{response} ~ 1 + (1 | g)", df, kind="glmm", family="binomial")
    assert d.response_levels == expect
    if response.startswith("cbind"):
        np.testing.assert_allclose(d.y, df["cnt"] / 6.0)
        np.testing.assert_allclose(d.weights, 6.0)
    else:
        np.testing.assert_array_equal(d.y, (df["x"] > 0).astype(float))


def test_binomial_proportion_with_weights_and_offsets():
    df = small_frame()
    df["p"] = df["cnt"] / df["tot"]
    d = build_design("p ~ x + offset(log(tot)) + (1 | g)", df, kind="glmm", family="binomial",
                     weights="tot", offset=np.ones(len(df)))
    np.testing.assert_allclose(d.weights, 6.0)
    np.testing.assert_allclose(d.offset, 1.0 + np.log(6.0))
    with pytest.raises(DataError, match="binomial response"):
        build_design("cnt ~ x + (1 | g)", df, kind="glmm", family="binomial")


def test_ordinal_responses():
    df = small_frame()
    df["r"] = df["k"]
    d = build_design("r ~ x + (1 | g)", df, kind="clmm")
    assert d.response_levels == ["1", "2", "3"] and "(Intercept)" not in d.x_names
    np.testing.assert_array_equal(d.y, df["k"] - 1)
    d = build_design("r ~ x + (1 | g)", df, kind="clmm", levels=[3.0, 2.0, 1.0])  # reversed order
    assert d.response_levels == ["3", "2", "1"]
    np.testing.assert_array_equal(d.y, 3 - df["k"])
    df["word"] = np.array(["low", "med", "high"])[df["k"] - 1]
    with pytest.raises(DataError, match="levels="):
        build_design("word ~ x", df, kind="clm")
    with pytest.warns(UserWarning, match="'top'"):
        d = build_design("word ~ x", df, kind="clm", levels=["low", "med", "high", "top"])
    assert d.response_levels == ["low", "med", "high"]  # 'top' unobserved: dropped
    df["one"] = "low"
    with pytest.raises(DataError, match="at least 2"), pytest.warns(UserWarning):
        build_design("one ~ x", df, kind="clm", levels=["low", "high"])


def test_ordinal_unobserved_level_warns_with_its_name():
    df = small_frame()
    df["r"] = pd.Categorical(df["k"].astype(str), categories=["1", "2", "3", "4"], ordered=True)
    with pytest.warns(UserWarning, match="'4'"):
        d = build_design("r ~ x + (1 | g)", df, kind="clmm")
    assert d.response_levels == ["1", "2", "3"]


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("formula, kind, error, pattern", [
    ("y ~ xx + (1 | g)", "lmm", FormulaError, r"unknown column 'xx'.*'x'"),
    ("y ~ x + (1 | gg)", "lmm", FormulaError, r"unknown column 'gg'.*'g'"),
    ("y ~ x + (1 | g", "lmm", FormulaError, "unbalanced"),
    ("y ~ x", "lmm", FormulaError, "random-effect term.*least-squares"),
    ("y ~ x + (1 | g)", "clm", FormulaError, "clm takes no random"),
    ("s ~ x + (1 | g)", "lmm", DataError, "'s'.*numeric"),
    ("y ~ x + (1 | one)", "lmm", DataError,
     r"grouping factor 'one' in \(1 \| one\) has 1 level; random effects need at least 2"),
])
def test_bad_inputs(formula, kind, error, pattern):
    df = small_frame()
    df["one"] = "only"
    with pytest.raises(error, match=pattern):
        build_design(formula, df, kind=kind)


def test_infinite_predictor_and_empty_or_all_missing_data():
    df = small_frame()
    df.loc[3, "x"] = np.inf
    with pytest.raises(DataError, match="'x'.*non-finite"):
        build_design("y ~ x + (1 | g)", df, kind="lmm")
    with pytest.raises(DataError, match="no rows"):
        build_design("y ~ x + (1 | g)", small_frame().iloc[:0], kind="lmm")
    df = small_frame()
    df["y"] = np.nan
    with pytest.raises(DataError, match="no complete rows"):
        build_design("y ~ x + (1 | g)", df, kind="lmm")


def test_unsupported_data_type():
    with pytest.raises(DataError, match="pandas DataFrame"):
        build_design("y ~ x + (1 | g)", {"y": [1.0]}, kind="lmm")


# ---------------------------------------------------------------------------------------------
# missing rows, immutability, backends


@pytest.mark.parametrize("backend", ["pandas", "polars", "pyarrow"])
def test_missing_rows_are_dropped_listwise(backend):
    df = small_frame()
    df.loc[0, "y"] = np.nan
    df.loc[1, "x"] = np.nan
    df.loc[2, "g"] = None
    df.loc[3, "f"] = np.nan
    df.loc[4, "tot"] = np.nan  # weights column
    df.loc[5, "s"] = None  # not used by the model: row kept
    data = {"pandas": df, "polars": pl.from_pandas(df), "pyarrow": pa.Table.from_pandas(df)}[backend]
    d = build_design("y ~ x + f + (1 | g)", data, kind="lmm", weights="tot")
    assert d.extra["n_dropped"] == 5
    assert d.extra["missing_by_column"] == {"y": 1, "x": 1, "g": 1, "f": 1, "tot": 1}
    expected = np.ones(24, bool)
    expected[:5] = False
    np.testing.assert_array_equal(d.used, expected)
    assert d.n_obs == 19 and d.y.shape == (19,) and d.weights.shape == (19,)
    assert all(t.codes.shape == (19,) and t.Z.shape == (19, 1) for t in d.terms)
    np.testing.assert_allclose(d.y, df["y"].to_numpy()[expected])


@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_input_frame_is_not_modified(backend):
    df = small_frame()
    df.loc[0, "x"] = np.nan
    data = df if backend == "pandas" else pl.from_pandas(df)
    before = data.copy(deep=True) if backend == "pandas" else data.clone()
    dtypes = list(data.dtypes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_design("y ~ x * f + scale(k) + (x | g) + (1 | g:h)", data, kind="lmm")
    if backend == "pandas":
        pd.testing.assert_frame_equal(data, before)
    else:
        assert data.equals(before)
    assert list(data.dtypes) == dtypes


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=12, max_size=12))
def test_used_mask_equals_complete_cases(holes):
    df = small_frame(n=12, seed=1)
    for i, (hy, hx, hg) in enumerate(holes):
        if hy:
            df.loc[i, "y"] = np.nan
        if hx:
            df.loc[i, "x"] = np.nan
        if hg:
            df.loc[i, "h"] = None
    complete = df[["y", "x", "h"]].notna().all(axis=1).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            d = build_design("y ~ x + (1 | h)", df, kind="glmm", family="gaussian")
        except DataError as exc:  # no complete rows, or one level left
            assert complete.sum() == 0 or "level" in str(exc)
            return
    np.testing.assert_array_equal(d.used, complete)
    np.testing.assert_allclose(d.X[:, 1], df["x"].to_numpy()[complete])
    assert d.terms[0].levels == sorted(set(df["h"][complete]))


# ---------------------------------------------------------------------------------------------
# frames helpers


def test_frames_encoding_and_labels():
    assert [frames.r_number_label(v) for v in (1.0, 2.5, 1e5, 1e-4, -3.0)] == ["1", "2.5", "1e+05", "1e-04", "-3"]
    assert frames.r_sort(["b", "B", "a", "10", "9"]) == ["10", "9", "a", "b", "B"]
    df = pd.DataFrame({"c": pd.Categorical(["x", "y", None], categories=["y", "x"]), "s": ["b", None, "a"]})
    for data in (df, pl.from_pandas(df).with_columns(pl.col("c").cast(pl.Enum(["y", "x"])))):
        codes, levels = frames.encode_column(data, "c")
        assert levels == ["y", "x"] and codes.tolist() == [1, 0, -1] and codes.dtype == np.int32
        assert frames.encode_column(data, "s")[1] == ["a", "b"]
        assert frames.missing_mask(data, "s").tolist() == [False, True, False]


@pytest.mark.parametrize("like, kind", [(pd.DataFrame(), pd.DataFrame), (pl.DataFrame(), pl.DataFrame),
                                        (pa.table({"a": [1]}), pa.Table)])
def test_native_frame_answers_in_the_input_library(like, kind):
    out = frames.native_frame({"a": np.array([1.0, np.nan]), "b": ["x", None]}, like=like)
    assert isinstance(out, kind)
    assert frames.native_namespace_name(out) == frames.native_namespace_name(like)


# ---------------------------------------------------------------------------------------------
# new data


def test_new_design_reproduces_the_fit_and_handles_unseen_and_missing():
    df = small_frame()
    d = build_design("y ~ x * f + scale(x) + (x | g) + (1 | g:h)", df, kind="lmm")
    nd = new_design(d, pl.from_pandas(df))
    np.testing.assert_allclose(nd["X"], d.X)
    for t, nt in zip(d.terms, nd["terms"]):
        np.testing.assert_array_equal(nt["codes"], t.codes)
        np.testing.assert_allclose(nt["Z"], t.Z)
    new = df.iloc[:3].copy()
    new["g"] = ["g1", "zz", "g2"]
    new.loc[new.index[2], "x"] = np.nan
    nd = new_design(d, new)
    assert nd["missing"].tolist() == [False, False, True]
    by_group = {t.group: (t, nt) for t, nt in zip(d.terms, nd["terms"])}
    t_g, nt_g = by_group["g"]
    assert nt_g["codes"].tolist() == [t_g.levels.index("g1"), -1, -1]  # unseen level; missing row
    t_gh, nt_gh = by_group["g:h"]
    assert nt_gh["codes"][0] == t_gh.levels.index("g1:" + new["h"].iloc[0]) and nt_gh["codes"][1] == -1
    assert np.isnan(nd["X"][2]).all() and np.isfinite(nd["X"][:2]).all()
    np.testing.assert_allclose(nd["X"][:2], d.X[:2])  # scale() keeps the fit's centre and spread
    bad = df.iloc[:2].copy()
    bad["f"] = ["lo", "new"]
    with pytest.raises(DataError, match="'f'"):
        new_design(d, bad)


def test_dotted_names_response_expressions_and_index_independence():
    df = small_frame()
    df = df.rename(columns={"x": "age.y"})
    df.index = np.arange(100, 100 + len(df))[::-1]  # not a default index
    d = build_design("log(tot + y * 0.5 + 1) ~ age.y + I(age.y^2) + (0 + age.y | g)", df, kind="lmm")
    assert d.x_names == ["(Intercept)", "age.y", "I(age.y^2)"]
    np.testing.assert_allclose(d.X[:, 2], df["age.y"].to_numpy() ** 2)
    np.testing.assert_allclose(d.y, np.log(7.0 + 0.5 * df["y"].to_numpy()))
    assert d.terms[0].col_names == ["age.y"]


def test_offset_column_carries_to_new_data_and_pyarrow_input():
    df = small_frame()
    table = pa.Table.from_pandas(df)
    d = build_design("cnt ~ x + offset(log(tot)) + (1 | g)", table, kind="glmm", family="poisson",
                     offset="k")
    np.testing.assert_allclose(d.offset, df["k"] + np.log(6.0))
    nd = new_design(d, table)
    np.testing.assert_allclose(nd["offset"], d.offset)
    with pytest.raises(DataError, match="lack"):
        new_design(d, df.drop(columns=["k"]))


def test_terms_ordered_by_levels_stable_for_ties():
    df = small_frame()
    df["g2"] = df["g"]  # same number of levels as g: keeps formula order
    d = build_design("y ~ x + (1 | h) + (1 | g2) + (1 | g) + (1 | g:h)", df, kind="lmm")
    assert [t.group for t in d.terms] == ["g:h", "g2", "g", "h"]


def test_lmm_rejects_a_grouping_factor_with_a_level_per_row():
    df = small_frame()
    df["row"] = [f"r{i}" for i in range(len(df))]
    with pytest.raises(DataError, match="'row'.*fewer levels than observations"):
        build_design("y ~ x + (1 | row)", df, kind="lmm")
    d = build_design("cnt ~ x + (1 | row)", df, kind="glmm", family="poisson")
    assert d.terms[0].n_levels == len(df)


def test_z_times_b_is_the_dense_product():
    from mixframe.design.terms import z_times_b
    from mixframe.design.terms import RETerm

    rng = np.random.default_rng(3)
    n = 50
    terms, bs, dense = [], [], np.zeros(n)
    for m, k in ((7, 2), (4, 1)):
        codes = rng.integers(0, m, n).astype(np.int32)
        Z = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
        terms.append(RETerm(group=f"g{m}", codes=codes, levels=[str(i) for i in range(m)], Z=Z,
                            col_names=[f"c{j}" for j in range(k)]))
        b = rng.normal(size=(m, k))
        bs.append(b)
        dense += np.sum(Z * b[codes], axis=1)
    np.testing.assert_allclose(z_times_b(terms, bs), dense, rtol=1e-13)


@pytest.mark.parametrize("order", ["C", "F"])
def test_first_nonfinite_column_names_the_first_bad_column(order):
    from mixframe.design.encode import _first_nonfinite_column

    X = np.asarray(np.random.default_rng(3).normal(size=(30, 5)), order=order)
    assert _first_nonfinite_column(X) == -1
    X[7, 3] = np.inf
    X[2, 4] = np.nan
    assert _first_nonfinite_column(X) == 3
    X[29, 0] = -np.inf
    assert _first_nonfinite_column(X) == 0
    assert _first_nonfinite_column(X[:, 1:]) == 2          # a strided view


def test_with_fixed_columns_keeps_the_columns_for_new_rows():
    from mixframe.design.build import with_fixed_columns

    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.5, 2.5, 3.5], "x": [0.0, 1.0, 0.0, 1.0, 2.0, 1.0],
                       "g": list("aabbcc")})
    df["x2"] = 2.0 * df["x"]
    design = build_design("y ~ x + x2 + (1 | g)", df, kind="lmm", fixed_columns="all")
    assert design.x_names == ["(Intercept)", "x", "x2"]
    kept = with_fixed_columns(design, [0, 2])
    assert kept.x_names == kept.spec.x_names == ["(Intercept)", "x2"]
    np.testing.assert_array_equal(kept.X, design.X[:, [0, 2]])
    assert kept.X.flags.c_contiguous
    np.testing.assert_array_equal(kept.spec.encode(df.iloc[:3]).X, design.X[:3][:, [0, 2]])
