"""The bundled data sets load on both backends with R's shapes and level orders."""

from __future__ import annotations

import pandas as pd
import pytest

pl = pytest.importorskip("polars")

from mixframe import datasets

# name -> (rows, columns)
SHAPES = {
    "sleepstudy": (180, ["Reaction", "Days", "Subject"]),
    "dyestuff": (30, ["Batch", "Yield"]),
    "penicillin": (144, ["diameter", "plate", "sample"]),
    "pastes": (60, ["strength", "batch", "cask", "sample"]),
    "insteval": (73421, ["s", "d", "studage", "lectage", "service", "dept", "y"]),
    "cbpp": (56, ["herd", "incidence", "size", "period"]),
    "verbagg": (7584, ["Anger", "Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"]),
    "grouseticks": (403, ["INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT", "HEIGHT_s"]),
    "salamanders": (644, ["site", "mined", "cover", "sample", "DOP", "Wtemp", "DOY", "spp", "count"]),
    "wine": (72, ["response", "rating", "temp", "contact", "bottle", "judge"]),
    "soup": (
        1847,
        [
            "RESP",
            "PROD",
            "PRODID",
            "SURENESS",
            "DAY",
            "SOUPTYPE",
            "SOUPFREQ",
            "COLD",
            "EASY",
            "GENDER",
            "AGEGROUP",
            "LOCATION",
        ],
    ),
    "gamma_sim": (1000, ["g", "x", "y"]),
}

# R's level order (first level = reference), from the reference fits' factor_levels
LEVELS = {
    ("sleepstudy", "Subject"): [
        "308",
        "309",
        "310",
        "330",
        "331",
        "332",
        "333",
        "334",
        "335",
        "337",
        "349",
        "350",
        "351",
        "352",
        "369",
        "370",
        "371",
        "372",
    ],
    ("dyestuff", "Batch"): list("ABCDEF"),
    ("penicillin", "plate"): list("abcdefghijklmnopqrstuvwx"),
    ("penicillin", "sample"): list("ABCDEF"),
    ("pastes", "batch"): list("ABCDEFGHIJ"),
    ("pastes", "cask"): list("abc"),
    ("insteval", "service"): ["0", "1"],
    ("insteval", "studage"): ["2", "4", "6", "8"],
    ("insteval", "lectage"): ["1", "2", "3", "4", "5", "6"],
    ("insteval", "dept"): ["15", "5", "10", "12", "6", "7", "4", "8", "9", "14", "1", "3", "11", "2"],
    ("cbpp", "period"): ["1", "2", "3", "4"],
    ("cbpp", "herd"): [str(i) for i in range(1, 16)],
    ("verbagg", "r2"): ["N", "Y"],
    ("verbagg", "resp"): ["no", "perhaps", "yes"],
    ("verbagg", "Gender"): ["F", "M"],
    ("verbagg", "btype"): ["curse", "scold", "shout"],
    ("verbagg", "situ"): ["other", "self"],
    ("verbagg", "mode"): ["want", "do"],
    ("grouseticks", "YEAR"): ["95", "96", "97"],
    ("salamanders", "spp"): ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"],
    ("salamanders", "mined"): ["yes", "no"],
    ("salamanders", "site"): [f"R-{i}" for i in range(1, 13)] + [f"VF-{i}" for i in range(1, 12)],
    ("wine", "rating"): ["1", "2", "3", "4", "5"],
    ("wine", "temp"): ["cold", "warm"],
    ("wine", "contact"): ["no", "yes"],
    ("wine", "judge"): [str(i) for i in range(1, 10)],
    ("wine", "bottle"): [str(i) for i in range(1, 9)],
    ("soup", "SURENESS"): ["1", "2", "3", "4", "5", "6"],
    ("soup", "PROD"): ["Ref", "Test"],
    ("soup", "SOUPTYPE"): ["Self-made", "Canned", "Dry-mix"],
    ("soup", "SOUPFREQ"): [">1/week", "1-4/month", "<1/month"],
    ("soup", "GENDER"): ["Male", "Female"],
    ("soup", "EASY"): [str(i) for i in range(1, 11)],
    ("gamma_sim", "g"): [str(i) for i in range(1, 41)],
}

NLEVELS = {
    ("insteval", "s"): 2972,
    ("insteval", "d"): 1128,
    ("verbagg", "id"): 316,
    ("verbagg", "item"): 24,
    ("grouseticks", "INDEX"): 403,
    ("grouseticks", "BROOD"): 118,
    ("grouseticks", "LOCATION"): 63,
    ("soup", "RESP"): 185,
    ("pastes", "sample"): 30,
}

ORDERED = {("wine", "rating"), ("soup", "SURENESS"), ("verbagg", "resp")}

FUNCS = {
    "sleepstudy": datasets.sleepstudy,
    "dyestuff": datasets.dyestuff,
    "penicillin": datasets.penicillin,
    "pastes": datasets.pastes,
    "insteval": datasets.insteval,
    "cbpp": datasets.cbpp,
    "wine": datasets.wine,
    "soup": datasets.soup,
    "verbagg": datasets.verbagg,
    "grouseticks": datasets.grouseticks,
    "salamanders": datasets.salamanders,
    "gamma_sim": datasets.gamma_sim,
}


def _levels(df, col):
    if isinstance(df, pd.DataFrame):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), f"{col} is {df[col].dtype}"
        return [str(c) for c in df[col].cat.categories]
    assert isinstance(df.schema[col], pl.Enum), f"{col} is {df.schema[col]}"
    return df.schema[col].categories.to_list()


@pytest.fixture(params=["pandas", "polars"])
def backend(request):
    return request.param


def test_list_datasets():
    assert datasets.list_datasets() == sorted(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape_and_columns(name, backend):
    df = datasets.load(name, backend=backend)
    rows, cols = SHAPES[name]
    assert isinstance(df, pd.DataFrame if backend == "pandas" else pl.DataFrame)
    assert df.shape == (rows, len(cols))
    assert list(df.columns) == cols


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_convenience_function_matches_load(name, backend):
    a = FUNCS[name](backend)
    b = datasets.load(name, backend)
    if backend == "pandas":
        pd.testing.assert_frame_equal(a, b)
    else:
        assert a.equals(b)


@pytest.mark.parametrize(("name", "col"), sorted(LEVELS))
def test_level_order(name, col, backend):
    df = datasets.load(name, backend=backend)
    assert _levels(df, col) == LEVELS[(name, col)]


@pytest.mark.parametrize(("name", "col"), sorted(NLEVELS))
def test_grouping_factors_are_categorical(name, col, backend):
    df = datasets.load(name, backend=backend)
    levels = _levels(df, col)
    assert len(levels) == NLEVELS[(name, col)]
    if all(lv.isdigit() for lv in levels):
        assert levels == sorted(levels, key=int)


@pytest.mark.parametrize(("name", "col"), sorted(ORDERED))
def test_ordinal_responses_are_ordered(name, col):
    df = datasets.load(name)
    assert df[col].cat.ordered
    others = [
        c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype) and (name, c) not in ORDERED
    ]
    assert not any(df[c].cat.ordered for c in others)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_backends_hold_the_same_values(name):
    a = datasets.load(name, "pandas")
    b = datasets.load(name, "polars")
    for col in a.columns:
        left = (
            a[col].astype(str).tolist() if isinstance(a[col].dtype, pd.CategoricalDtype) else a[col].tolist()
        )
        right = b[col].cast(pl.String).to_list() if isinstance(b.schema[col], pl.Enum) else b[col].to_list()
        assert left == right, col


def test_no_missing_values():
    for name in SHAPES:
        df = datasets.load(name)
        assert not df.isna().any().any(), name


def test_values_spot_checks():
    ss = datasets.sleepstudy()
    assert ss["Reaction"].iloc[0] == pytest.approx(249.56)
    assert ss["Subject"].iloc[0] == "308"
    cb = datasets.cbpp()
    assert (cb["incidence"] <= cb["size"]).all()
    assert (int(cb["incidence"].iloc[0]), int(cb["size"].iloc[0])) == (2, 14)
    gt = datasets.grouseticks()
    assert gt["HEIGHT_s"].mean() == pytest.approx(0.0, abs=1e-12)
    assert gt["HEIGHT_s"].std(ddof=1) == pytest.approx(1.0, abs=1e-12)


def test_names_are_case_insensitive():
    assert datasets.load("InstEval").shape == datasets.load("insteval").shape
    assert datasets.load("VerbAgg.csv").shape == (7584, 9)


def test_unknown_name_and_backend():
    with pytest.raises(ValueError, match="unknown data set"):
        datasets.load("nope")
    with pytest.raises(ValueError, match="backend"):
        datasets.load("wine", backend="arrow")


def test_describe():
    for name in datasets.list_datasets():
        assert "Source:" in datasets.describe(name)
