"""DesignSpec and the one encoder: the spec learned with a fit pickles and encodes the fit's own rows
into the very arrays of the fit-time build; any split of the rows encodes to the pieces of the whole
(a streamed batch is a piece); new rows go through the same encoder."""
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixframe as mf
from conftest import case_frame
from mixframe.design.build import build_design
from mixframe.design.newdata import new_design
from mixframe.design.spec import ColumnLevels
from mixframe.formula import parse_formula
from mixframe.io.frames import ColumnCache

REF = Path(__file__).resolve().parent.parent / "reference"
CASES = sorted(p.stem for p in REF.glob("*.json"))
FAMILY = {"nbinom2": "negative_binomial", "Gamma": "gamma"}


def _case(name, backend):
    case = json.loads((REF / f"{name}.json").read_text())
    formula = case["formula"]
    df = case_frame(case, backend)
    if case["package"] == "ordinal":
        return formula, df, {"kind": "clmm" if parse_formula(formula).bars else "clm"}
    if case["package"] == "lme4" and case["family"] == "gaussian":
        return formula, df, {"kind": "lmm"}
    return formula, df, {"kind": "glmm", "family": FAMILY.get(case["family"], case["family"])}


def _build(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(formula, df, **kw)


def _same(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _assert_encodes_design(data, design):
    _same(data.X, design.X)
    _same(data.y, design.y)
    _same(data.weights, design.weights)
    _same(data.offset, design.offset)
    _same(data.used, design.used)
    assert data.n_total == design.n_total
    assert data.missing_by_column == design.extra["missing_by_column"]
    for i, term in enumerate(design.terms):
        _same(data.codes[i], term.codes)
        _same(data.z_matrix(i), term.Z)


def _rows(df, start, stop):
    return df.iloc[start:stop] if isinstance(df, pd.DataFrame) else df.slice(start, stop - start)


@pytest.mark.parametrize("backend", ["pandas", "polars"])
@pytest.mark.parametrize("name", CASES)
def test_spec_pickles_and_encodes_the_fit_arrays(name, backend):
    formula, df, kw = _case(name, backend)
    design = _build(formula, df, **kw)
    spec = pickle.loads(pickle.dumps(design.spec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _assert_encodes_design(spec.encode(df), design)


@pytest.mark.parametrize("name", [c for c in CASES if c != "insteval"])
def test_two_halves_encode_to_the_whole(name):
    formula, df, kw = _case(name, "pandas")
    design = _build(formula, df, **kw)
    n = len(df)
    cut = n // 2 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [design.spec.encode(_rows(df, 0, cut)), design.spec.encode(_rows(df, cut, n))]
    _same(np.concatenate([p.X for p in parts]), design.X)
    _same(np.concatenate([p.y for p in parts]), design.y)
    _same(np.concatenate([p.used for p in parts]), design.used)
    for i, term in enumerate(design.terms):
        _same(np.concatenate([p.codes[i] for p in parts]), term.codes)
        _same(np.concatenate([p.z_matrix(i) for p in parts]), term.Z)
    if design.weights is not None:
        _same(np.concatenate([p.weights for p in parts]), design.weights)


def test_two_halves_of_a_large_crossed_design_in_polars():
    formula, df, kw = _case("insteval", "polars")
    design = _build(formula, df, **kw)
    cut = 33_333
    parts = [design.spec.encode(df.slice(0, cut)), design.spec.encode(df.slice(cut))]
    _same(np.concatenate([p.X for p in parts]), design.X)
    for i, term in enumerate(design.terms):
        _same(np.concatenate([p.codes[i] for p in parts]), term.codes)


def test_every_data_set_builds_and_reencodes():
    """The packaged data sets with a model of each kind: pickled designs encode their own rows again."""
    cases = [
        ("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy(), {"kind": "lmm"}),
        ("strength ~ 1 + (1 | batch/cask)", mf.datasets.load("Pastes"), {"kind": "lmm"}),
        ("rating ~ temp * contact + (1 | judge)", mf.datasets.load("wine"), {"kind": "clmm"}),
        ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", mf.datasets.load("VerbAgg"),
         {"kind": "glmm", "family": "binomial"}),
        ("count ~ spp + mined + offset(log(sample)) + (1 | site)", mf.datasets.load("Salamanders"),
         {"kind": "glmm", "family": "poisson"}),
    ]
    for formula, df, kw in cases:
        design = pickle.loads(pickle.dumps(_build(formula, df, **kw)))
        _assert_encodes_design(design.spec.encode(df), design)


def test_design_pickles_and_new_rows_use_the_same_encoder():
    df = mf.datasets.sleepstudy()
    design = _build("Reaction ~ Days + log1p(Days) + (Days | Subject)", df, kind="lmm")
    again = pickle.loads(pickle.dumps(design))
    _same(again.X, design.X)
    nd_a, nd_b = new_design(design, df), new_design(again, df)
    for key in ("X", "missing"):
        _same(nd_a[key], nd_b[key])
    # every row is complete: the new-row encoding of the fit's rows is the fit's arrays
    _same(nd_a["X"], design.X)
    for t_new, term in zip(nd_a["terms"], design.terms):
        _same(t_new["codes"], term.codes)
        _same(t_new["Z"], term.Z)


def test_unseen_levels_batch_versus_new_rows():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 5.5, 7.0], "x": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
                       "f": list("ababab"), "g": list("ppqqrr")})
    design = _build("y ~ x + f + (1 | g)", df, kind="lmm")
    new = pd.DataFrame({"y": [1.0, 2.0], "x": [1.0, 2.0], "f": ["a", "b"], "g": ["q", "zz"]})
    with pytest.raises(mf.DataError, match="level that the fit has not seen"):
        design.spec.encode(new)
    out = design.spec.encode(new, newdata=True)
    assert out.codes[0].tolist() == [1, -1]
    np.testing.assert_array_equal(out.X, [[1.0, 1.0, 0.0], [1.0, 2.0, 1.0]])
    with pytest.raises(mf.DataError, match="not among its levels"):
        design.spec.encode(new.assign(f=["a", "c"]), newdata=True)


def test_batch_rules_are_the_fit_rules():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 5.5, 7.0], "x": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
                       "g": list("ppqqrr"), "w": [1.0, 2.0, 1.0, 1.0, 2.0, 1.0]})
    spec = _build("y ~ x + (1 | g)", df, kind="lmm", weights="w").spec
    bad = df.assign(x=[0.0, np.inf, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(mf.DataError, match="non-finite"):
        _build("y ~ x + (1 | g)", bad, kind="lmm", weights="w")
    with pytest.raises(mf.DataError, match="non-finite"):
        spec.encode(bad)
    with pytest.raises(mf.DataError, match="non-negative"):
        spec.encode(df.assign(w=-df["w"]))
    missing = df.assign(y=[np.nan, 2.0, 3.5, 4.0, 5.5, 7.0])
    out = spec.encode(missing)
    assert out.n == 5 and out.missing_by_column == {"y": 1} and not out.used[0]
    _same(out.weights, df["w"].to_numpy()[1:])


def test_column_levels_lookups_agree_with_label_matching():
    rng = np.random.default_rng(3)
    values = rng.integers(-5, 40, 500)
    frame = pd.DataFrame({"i": values, "f": values.astype(float), "s": values.astype(str),
                          "h": np.where(values > 30, 0.25, values)})
    cache = ColumnCache(frame)
    for name in ("i", "f", "s", "h"):
        codes, labels = cache.codes(name)
        keep = labels[::2]             # half the levels: the others are unseen
        found = ColumnLevels(name, cache.kind(name), keep).codes(cache)
        index = {lv: j for j, lv in enumerate(keep)}
        want = np.array([index.get(labels[c], -1) for c in codes], dtype=np.int32)
        np.testing.assert_array_equal(found, want)
    restored = pickle.loads(pickle.dumps(ColumnLevels("s", "string", ["1", "2"])))
    assert restored.labels == ["1", "2"] and restored.codes(cache)[values == 2].tolist() == [1] * int((values == 2).sum())


def test_a_batch_without_complete_rows_is_empty():
    df = mf.datasets.load("cbpp")
    design = _build("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, kind="glmm", family="binomial")
    out = design.spec.encode(df.head(3).assign(incidence=np.nan))
    assert out.n == 0 and out.X.shape == (0, 4) and out.y.shape == (0,) and out.weights.shape == (0,)
    assert out.used.tolist() == [False] * 3 and out.missing_by_column == {"incidence": 3}
    assert [c.shape for c in out.codes] == [(0,)]
    with pytest.raises(mf.DataError, match="new data lack"):
        design.spec.encode(df.drop(columns="period"), newdata=True)
