"""The NumPy fast path of the design builder gives exactly what the formulaic path gives.

Every design is built twice, once as usual and once with ``encode._FAST = False`` (every matrix and
expression through formulaic), and every array, name and level is compared for equality; so is the
encoding of new rows by :func:`new_design`. The column cache is checked against the narwhals
functions of :mod:`mixframe.io.frames`.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import case_frame
from mixframe.io import frames
from mixframe.design import encode as build
from mixframe.design.build import build_design, group_codes
from mixframe.design.newdata import new_design
from mixframe.errors import DataError, FormulaError
from mixframe.formula import parse_formula
from mixframe.formula.simple import SimpleSpec, parse_simple

ROOT = Path(__file__).resolve().parent.parent.parent
REF = ROOT / "tests" / "reference"
DATA = ROOT / "mixframe" / "datasets" / "data"
CASES = sorted(p.stem for p in REF.glob("*.json"))
OVERRIDE = {"sleepstudy_uncorr": "Reaction ~ Days + (Days || Subject)"}
FAMILY = {"nbinom2": "negative_binomial", "Gamma": "gamma"}


def reference_case(name, backend):
    """Data as the reference checker loads them: ``factor_levels`` columns categorical in that order
    (an ordinal response ordered), grouping columns strings; polars: those columns as Enum."""
    case = json.loads((REF / f"{name}.json").read_text())
    formula = OVERRIDE.get(name, case["formula"])
    df = case_frame(case, backend, formula)
    if case["package"] == "ordinal":
        kind = "clmm" if parse_formula(formula).bars else "clm"
        kw = {}
    elif case["package"] == "lme4" and case["family"] == "gaussian":
        kind, kw = "lmm", {}
    else:
        kind, kw = "glmm", {"family": FAMILY.get(case["family"], case["family"])}
    return formula, df, kind, kw


def both_paths(formula, df, monkeypatch, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = build_design(formula, df, **kw)
        monkeypatch.setattr(build, "_FAST", False)
        try:
            slow = build_design(formula, df, **kw)
        finally:
            monkeypatch.setattr(build, "_FAST", True)
    return fast, slow


def same_array(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def assert_same_design(fast, slow):
    assert fast.x_names == slow.x_names
    for name in ("X", "y", "weights", "offset", "used"):
        same_array(getattr(fast, name), getattr(slow, name))
    assert fast.X.flags.c_contiguous and fast.X.flags.writeable and fast.y.flags.writeable
    assert (fast.n_total, fast.response, fast.response_levels) == (slow.n_total, slow.response, slow.response_levels)
    for key in ("factor_levels", "column_kinds", "intercept_dropped", "columns", "n_dropped", "missing_by_column"):
        assert fast.extra[key] == slow.extra[key], key
    assert len(fast.terms) == len(slow.terms)
    for a, b in zip(fast.terms, slow.terms):
        assert (a.group, a.levels, a.col_names, a.components, a.expr) == (b.group, b.levels, b.col_names,
                                                                           b.components, b.expr)
        same_array(a.codes, b.codes)
        same_array(a.Z, b.Z)
        assert a.Z.flags.c_contiguous and a.Z.flags.writeable


def assert_same_new_design(fast, slow, newdata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = new_design(fast, newdata), new_design(slow, newdata)
    same_array(a["X"], b["X"])
    same_array(a["offset"], b["offset"])
    same_array(a["missing"], b["missing"])
    for ta, tb in zip(a["terms"], b["terms"]):
        same_array(ta["codes"], tb["codes"])
        same_array(ta["Z"], tb["Z"])


@pytest.mark.parametrize("backend", ["pandas", "polars"])
@pytest.mark.parametrize("name", CASES)
def test_reference_cases_fast_equals_formulaic(name, backend, monkeypatch):
    formula, df, kind, kw = reference_case(name, backend)
    fast, slow = both_paths(formula, df, monkeypatch, kind=kind, **kw)
    assert_same_design(fast, slow)
    assert_same_new_design(fast, slow, df.head(40))


def test_reference_cases_take_the_fast_path():
    for name in ("sleepstudy_reml", "cbpp_laplace", "wine_logit", "verbagg", "dyestuff"):
        formula, df, kind, kw = reference_case(name, "pandas")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = build_design(formula, df, kind=kind, **kw)
        assert isinstance(d.fixed_spec, SimpleSpec), name
        assert all(t.spec is None or isinstance(t.spec, SimpleSpec) for t in d.terms)


def synthetic(n=60, seed=3, missing=True):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "z": rng.normal(size=n).round(1),
        "k": rng.integers(1, 4, size=n),
        "f": pd.Categorical(rng.choice(["lo", "mid", "hi"], size=n), categories=["lo", "mid", "hi", "unused"]),
        "s": rng.choice(["b", "a", "C", "c"], size=n),
        "b": rng.random(n) > 0.4,
        "fi": pd.Categorical(rng.choice([10, 2, 3], size=n), categories=[2, 3, 10]),
        "g": np.repeat([f"g{i}" for i in range(6)], n // 6),
        "h": np.tile(["u", "v", "w"], n // 3),
        "gi": np.repeat(np.arange(5, 11), n // 6),
        "cnt": rng.integers(0, 5, size=n).astype(float),
        "tot": np.full(n, 6.0),
        "w": rng.uniform(0.5, 2.0, size=n),
        "ord": pd.Categorical(rng.choice(["1", "2", "3"], size=n), categories=["1", "2", "3"], ordered=True),
    })
    if missing:
        df.loc[[1, 7], "x"] = np.nan
        df.loc[[4], "s"] = None
        df.loc[[9], "f"] = np.nan
        df.loc[[12], "g"] = None
        df.loc[[15], "k"] = np.nan
        df.loc[[16], "gi"] = np.nan
        df.loc[[17], "z"] = np.nan
        df.loc[[18], "ord"] = np.nan
    return df


def as_polars(df):
    out = pl.from_pandas(df)
    return out.with_columns(pl.col("f").cast(pl.Enum(["lo", "mid", "hi", "unused"])),
                            pl.col("ord").cast(pl.Enum(["1", "2", "3"])))


FORMULAS = [
    ("y ~ x + (1 | g)", {}),
    ("y ~ x * f + (x | g)", {}),
    ("y ~ f:x + s + (1 | g)", {}),
    ("y ~ 0 + f + s + (1 | g)", {}),
    ("y ~ x - 1 + (0 + x | g)", {}),
    ("y ~ f * s * x + (1 | g) + (1 | h)", {}),
    ("y ~ b + b:x + (b | g)", {}),
    ("y ~ fi + k + (1 | gi)", {}),
    ("y ~ x + (0 + f | g)", {}),
    ("y ~ x + z + x:z + (x + z || g)", {}),
    ("y ~ s:f + (1 | g:h)", {}),
    ("y ~ 1 + (1 | g/h)", {}),
    ("y ~ x + log(tot) + I(z > 0) + (1 | g)", {}),
    ("y ~ x + offset(tot - cnt) + (1 | g)", {}),
    ("y ~ x + (1 | g)", {"weights": "w", "offset": "z"}),
    ("cbind(cnt, tot - cnt) ~ x + f + (1 | g)", {"kind": "glmm", "family": "binomial"}),
    ("b ~ x + (1 | g)", {"kind": "glmm", "family": "binomial"}),
    ("cnt ~ s + offset(log(tot)) + (1 | g)", {"kind": "glmm", "family": "poisson"}),
    ("ord ~ x + f + (1 | g)", {"kind": "clmm"}),
    ("ord ~ x * s", {"kind": "clm"}),
]


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("backend", ["pandas", "polars"])
@pytest.mark.parametrize("formula,kw", FORMULAS)
def test_extra_formulas_fast_equals_formulaic(formula, kw, backend, missing, monkeypatch):
    df = synthetic(missing=missing)
    data = as_polars(df) if backend == "polars" else df
    kw = {"kind": "lmm", **kw}
    fast, slow = both_paths(formula, data, monkeypatch, **kw)
    assert_same_design(fast, slow)
    assert fast.n_obs == slow.n_obs and (fast.n_obs < 60) == missing
    new = synthetic(n=30, seed=11)
    assert_same_new_design(fast, slow, as_polars(new) if backend == "polars" else new)


@pytest.mark.parametrize("rhs", ["x * f", "0 + f:s", "s * f * x", "b:x + f", "x:z + f:x"])
def test_simple_formulas_do_not_fall_back(rhs):
    d = build_design(f"y ~ {rhs} + (1 | g)", synthetic(missing=False), kind="lmm")
    assert isinstance(d.fixed_spec, SimpleSpec)


@pytest.mark.parametrize("rhs", ["log(x)", "x + x", "I(x^2)", "(x + z)^2", "x * z * k", "a.b", "x - z"])
def test_other_right_hand_sides_are_not_simple(rhs):
    parsed = parse_simple(rhs)
    if parsed is not None:  # three numeric columns in one term: simple to parse, but not built in NumPy
        assert rhs == "x * z * k"
        df = synthetic(missing=False)
        d = build_design(f"y ~ {rhs} + (1 | g)", df, kind="lmm")
        assert not isinstance(d.fixed_spec, SimpleSpec)


def test_single_level_and_one_valued_logical_fall_back_identically(monkeypatch):
    df = synthetic(missing=False).assign(one=pd.Categorical(["a"] * 60), t=True)
    for rhs in ("x + one", "x + t", "0 + t"):
        fast, slow = both_paths(f"y ~ {rhs} + (1 | g)", df, monkeypatch, kind="lmm")
        assert_same_design(fast, slow)


def test_design_does_not_alias_or_freeze_the_input():
    df = synthetic(missing=False)
    d = build_design("y ~ x + (x | g)", df, kind="lmm", weights="w", offset="z")
    before = (d.y.copy(), d.X.copy(), d.weights.copy(), d.offset.copy(), d.terms[0].Z.copy())
    df.loc[:, ["y", "x", "w", "z"]] = 0.0
    for a, b in zip((d.y, d.X, d.weights, d.offset, d.terms[0].Z), before):
        np.testing.assert_array_equal(a, b)
        assert a.flags.writeable


def test_group_codes_counting_and_sorting_branches_agree():
    rng = np.random.default_rng(5)
    n = 5000
    df = pd.DataFrame({"a": rng.integers(0, 300, n).astype(str), "b": rng.integers(0, 400, n).astype(str)})
    for frame in (df, df.assign(b=rng.choice(["x", "Y"], n))):  # 300 x 400 combinations: np.unique; else counting
        codes, labels = group_codes(frame, ("a", "b"), np.ones(n, dtype=bool))
        pairs = (frame["a"] + ":" + frame["b"]).to_numpy()
        np.testing.assert_array_equal(np.array(labels, dtype=object)[codes], pairs)
        rank_a = {v: i for i, v in enumerate(frames.r_sort(set(frame["a"])))}
        rank_b = {v: i for i, v in enumerate(frames.r_sort(set(frame["b"])))}
        split = [p.split(":") for p in set(pairs)]
        assert labels == [f"{a}:{b}" for a, b in sorted(split, key=lambda ab: (rank_a[ab[0]], rank_b[ab[1]]))]


def mixed_columns(n=120, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(["b", "a", "B", "ß", "ss", "10", "2", "é", "e"])
    df = pd.DataFrame({
        "f": rng.normal(size=n), "i": rng.integers(0, 5, n), "b": rng.random(n) > .5,
        "s": pd.Series(words[rng.integers(0, len(words), n)]).where(rng.random(n) > .1),
        "c": pd.Categorical(words[rng.integers(0, 3, n)], categories=["b", "a", "B", "zz"]),
        "ci": pd.Categorical(rng.integers(0, 3, n), categories=[2, 0, 1]),
        "ob": pd.Series([True, None, False, True] * (n // 4), dtype=object),
        "n64": pd.array(list(rng.integers(0, 3, n - 1)) + [None], dtype="Int64"),
    })
    df.loc[3, "f"] = np.nan
    df.loc[5, "c"] = np.nan
    return df


@pytest.mark.parametrize("backend", ["pandas", "polars", "pyarrow"])
def test_column_cache_matches_the_narwhals_functions(backend):
    df = mixed_columns()
    if backend == "polars":
        df = pl.from_pandas(df.drop(columns=["ob"])).with_columns(
            pl.col("c").cast(pl.Enum(["b", "a", "B", "zz"])), pl.col("s").cast(pl.Categorical).alias("scat"))
    elif backend == "pyarrow":
        df = pa.Table.from_pandas(df.drop(columns=["ob"]))
    cache = frames.ColumnCache(df)
    assert cache.n == frames.n_rows(df) and cache.columns == frames.column_names(df)
    for name in cache.columns:
        kind = frames.column_kind(df, name)
        assert cache.kind(name) == kind, name
        codes, levels = frames.encode_column(df, name)
        assert cache.codes(name)[1] == levels, name
        np.testing.assert_array_equal(cache.codes(name)[0], codes)
        np.testing.assert_array_equal(cache.missing(name), frames.missing_mask(df, name))
        if kind in ("numeric", "bool"):
            np.testing.assert_array_equal(cache.numeric(name), frames.numeric_column(df, name))
            assert not cache.numeric(name).flags.writeable


def test_string_encoding_sorts_as_r_and_round_trips():
    rng = np.random.default_rng(1)
    words = ["b", "a", "B", "ß", "ss", "SS", "10", "2", "é", "e", "", "A b"]
    for _ in range(100):
        values = [words[i] if rng.random() > .2 else None for i in rng.integers(0, len(words), rng.integers(0, 40))]
        codes, levels = frames.encode_column(pa.table({"v": pa.array(values, type=pa.string())}), "v")
        present = [v for v in values if v is not None]
        assert levels == frames.r_sort(dict.fromkeys(present))
        assert [levels[c] if c >= 0 else None for c in codes] == values


@pytest.mark.parametrize("ascii_only", [True, False])
@pytest.mark.parametrize("with_nulls", [True, False])
def test_many_string_levels_sort_as_r(ascii_only, with_nulls):
    """Beyond 64 distinct labels the order comes from Arrow (ASCII) or one NumPy argsort, as r_sort's."""
    rng = np.random.default_rng(2 + ascii_only + 2 * with_nulls)
    alphabet = list("aAbBzZ09 _-.") + ([] if ascii_only else ["é", "É", "ß", "ø"])
    labels = list(dict.fromkeys("".join(rng.choice(alphabet, size=rng.integers(1, 5))) for _ in range(600)))
    values = [labels[i] for i in rng.integers(0, len(labels), 3000)]
    if with_nulls:
        values = [None if rng.random() < 0.05 else v for v in values]
    present = [v for v in values if v is not None]
    assert len(set(present)) > 64
    codes, levels = frames.encode_column(pa.table({"v": pa.array(values, type=pa.string())}), "v")
    assert levels == frames.r_sort(dict.fromkeys(present))
    assert [levels[c] if c >= 0 else None for c in codes] == values
    frame = pd.DataFrame({"v": pd.array(values, dtype="str")})
    cache = frames.ColumnCache(frame)
    assert cache.codes("v")[1] == levels
    np.testing.assert_array_equal(cache.codes("v")[0], codes)


def test_n_rows_of_every_frame_kind():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    assert frames.n_rows(df) == frames.n_rows(pl.from_pandas(df)) == frames.n_rows(pa.Table.from_pandas(df)) == 3


@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_new_rows_of_an_interaction_factor_get_the_fit_codes(backend):
    df = synthetic(missing=False)
    d = build_design("y ~ x + (1 | g:h)", df, kind="lmm")
    new = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0], "g": ["g1", "g5", "zz", None, "g0"],
                        "h": ["u", "w", "u", "v", None]})
    out = new_design(d, pl.from_pandas(new) if backend == "polars" else new)
    term = out["terms"][0]
    levels = d.terms[0].levels
    expected = [levels.index(f"{g}:{h}") if f"{g}:{h}" in levels else -1 for g, h in zip(new["g"], new["h"])]
    expected[3] = expected[4] = -1  # a missing component
    assert term["codes"].tolist() == expected and expected[:2] != [-1, -1]


def test_the_users_columns_stay_writeable():
    df = synthetic(missing=False)
    df["big"] = pd.Categorical([f"l{i // 2}" for i in range(60)], categories=[f"l{i}" for i in range(40000)])
    build_design("y ~ x + f + (1 | big)", df, kind="lmm")
    cache = frames.ColumnCache(df)
    cache.codes("big"), cache.numeric("x")
    assert df["big"].array.codes.dtype == np.int32  # the codes are read without a copy
    df.loc[0, "x"] = 5.0
    df.loc[0, "big"] = "l7"
    assert df.loc[0, "x"] == 5.0 and df.loc[0, "big"] == "l7"


_NAMES = ["x", "z", "f", "s", "b", "fi"]
_terms = st.lists(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3, unique=True), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(terms=_terms, joins=st.lists(st.sampled_from([":", "*"]), min_size=3, max_size=3),
       intercept=st.sampled_from(["", "0 + ", "1 + ", " - 1"]))
def test_random_simple_formulas_fast_equals_formulaic(terms, joins, intercept, monkeypatch):
    pieces = [joins[0].join(t) if len(t) < 3 else f"{t[0]}{joins[1]}{t[1]}{joins[2]}{t[2]}" for t in terms]
    rhs = " + ".join(pieces)
    rhs = rhs + intercept if intercept == " - 1" else intercept + rhs
    df = synthetic(missing=False)
    try:
        fast, slow = both_paths(f"y ~ {rhs} + (1 | g)", df, monkeypatch, kind="lmm")
    except (FormulaError, DataError) as exc:  # both paths must refuse alike
        monkeypatch.setattr(build, "_FAST", False)
        with pytest.raises(type(exc)):
            build_design(f"y ~ {rhs} + (1 | g)", df, kind="lmm")
        return
    assert_same_design(fast, slow)


@pytest.mark.parametrize("formula,kw", FORMULAS[:6] + FORMULAS[15:17])
def test_pyarrow_tables_fast_equals_formulaic(formula, kw, monkeypatch):
    table = pa.Table.from_pandas(synthetic(missing=True))
    fast, slow = both_paths(formula, table, monkeypatch, **{"kind": "lmm", **kw})
    assert_same_design(fast, slow)
