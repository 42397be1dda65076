"""The benchmark task list and its data: complete, parseable, reproducible byte for byte."""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import suite  # noqa: E402

TWELVE = [
    "sleepstudy_slopes", "penicillin", "insteval", "cbpp", "verbagg", "grouseticks",
    "salamanders_nb", "wine", "soup", "big_lmm", "big_glmm", "big_clmm",
]


def test_task_list_is_the_twelve_tasks():
    assert [t.name for t in suite.TASKS] == TWELVE
    assert set(suite.PREPARE) == set(TWELVE)
    kinds = {t.name: (t.kind, t.family, t.link) for t in suite.TASKS}
    assert kinds["salamanders_nb"] == ("glmm", "nbinom2", "log")
    assert kinds["grouseticks"] == ("glmm", "poisson", "log")
    assert kinds["soup"] == ("clmm", "cumulative", "logit")
    assert [t.name for t in suite.TASKS if t.kind == "lmm"] == ["sleepstudy_slopes", "penicillin", "insteval", "big_lmm"]


def test_random_terms_parse():
    t = suite.TASK_BY_NAME["sleepstudy_slopes"]
    assert t.random_parts() == [(["1", "Days"], "Subject", True)]
    assert t.flat_formula == "Reaction ~ Days + (Days|Subject)"
    cbpp = suite.TASK_BY_NAME["cbpp"]
    assert cbpp.lhs == "cbind(incidence, size - incidence)"
    assert cbpp.fixed_formula == "incidence ~ period"
    soup = suite.TASK_BY_NAME["soup"]
    assert soup.random_parts() == [(["1"], "RESP", True), (["1"], "RESP_PROD", True)]
    assert soup.groups == ["RESP", "RESP_PROD"]
    # every task's JSON form round-trips through the manifest format
    for t in suite.TASKS:
        d = json.loads(json.dumps(t.to_json()))
        assert d["name"] == t.name and d["flat_formula"] == t.flat_formula
        # every grouping column and every fixed term is a column the preparation declares or makes
        for g in t.groups:
            assert g in t.factors


def test_get_tasks_selects_and_rejects():
    assert [t.name for t in suite.get_tasks("wine,cbpp")] == ["wine", "cbpp"]
    assert len(suite.get_tasks(None)) == 12
    with pytest.raises(SystemExit, match="unknown task"):
        suite.get_tasks("nope")


def test_classic_data_come_from_the_bundled_data_sets():
    d = suite.data_dir()
    assert all((d / f).is_file() for f in suite.CLASSIC_FILES)
    sleep = suite.prepared_frame(suite.TASK_BY_NAME["sleepstudy_slopes"])
    assert sleep.shape == (180, 3)
    assert sleep["Subject"].map(type).eq(str).all()
    soup = suite.prepared_frame(suite.TASK_BY_NAME["soup"])
    assert len(soup) == 1847
    assert (soup["RESP_PROD"] == soup["RESP"] + ":" + soup["PROD"]).all()
    grouse = suite.prepared_frame(suite.TASK_BY_NAME["grouseticks"])
    h = pd.read_csv(d / "grouseticks.csv")["HEIGHT"].to_numpy(float)
    np.testing.assert_allclose(grouse["HEIGHT_s"], (h - h.mean()) / h.std(ddof=1), rtol=0, atol=1e-12)
    verb = suite.prepared_frame(suite.TASK_BY_NAME["verbagg"])
    raw = pd.read_csv(d / "VerbAgg.csv")
    assert set(verb["r2"].unique()) == {0, 1}
    assert verb["r2"].sum() == (raw["r2"] == "Y").sum() == 3611


def test_expected_fixef_names_follow_bytewise_levels():
    df = suite.prepared_frame(suite.TASK_BY_NAME["salamanders_nb"])
    names = suite.expected_fixef_names(suite.TASK_BY_NAME["salamanders_nb"], df)
    assert names == ["(Intercept)", "sppDF", "sppDM", "sppEC-A", "sppEC-L", "sppGP", "sppPR", "minedyes"]
    wine = suite.prepared_frame(suite.TASK_BY_NAME["wine"])
    assert suite.expected_fixef_names(suite.TASK_BY_NAME["wine"], wine) == ["tempwarm", "contactyes"]


@pytest.mark.parametrize(
    "gen, kwargs",
    [
        (suite.gen_big_lmm, {"n_g": 300, "per": 20}),
        (suite.gen_big_glmm, {"n_s": 120, "n_i": 30}),
        (suite.gen_big_clmm, {"n_g": 200}),
    ],
)
def test_generators_give_the_same_bytes_twice(gen, kwargs):
    a = suite.csv_bytes(gen(**kwargs))
    b = suite.csv_bytes(gen(**kwargs))
    assert a == b
    assert suite.sha256(a) == suite.sha256(b)
    # a different seed gives different data (the seed is what fixes it)
    c = suite.csv_bytes(gen(seed=suite.SEED + 100, **kwargs))
    assert c != a


def test_generators_recover_their_parameters():
    d = suite.gen_big_lmm(n_g=400, per=50)
    assert d.shape == (20_000, 3) and d["g"].nunique() == 400
    slope = np.polyfit(d["x"], d["y"], 1)[0]
    assert abs(slope - 0.5) < 0.1
    c = suite.gen_big_clmm(n_g=200)
    assert c.shape == (20_000, 4)
    assert sorted(c["y"].unique()) == [1, 2, 3, 4, 5]
    g = suite.gen_big_glmm(n_s=200, n_i=40)
    assert g.shape == (8_000, 4) and set(g["y"].unique()) == {0, 1}
    assert g["subject"].str.len().eq(4).all()  # labels zero-padded: s001 ... s200


def test_prepare_writes_checksums_and_verifies(tmp_path):
    names = ["wine", "cbpp"]
    m1 = suite.prepare(tmp_path / "a", names)
    m2 = suite.prepare(tmp_path / "b", names)
    assert m1["sha256"] == m2["sha256"] and set(m1["sha256"]) == set(names)
    assert (tmp_path / "a" / "wine.csv").read_bytes() == (tmp_path / "b" / "wine.csv").read_bytes()
    assert suite.is_prepared(tmp_path / "a", names)
    assert not suite.is_prepared(tmp_path / "a", ["soup"])
    assert suite.verify(tmp_path / "a") == []
    (tmp_path / "a" / "wine.csv").write_text("rating\n1\n")
    assert suite.verify(tmp_path / "a") == ["wine"]
    loaded = suite.load_frame(suite.TASK_BY_NAME["cbpp"], tmp_path / "b")
    assert loaded.shape == (56, 4) and loaded["herd"].map(type).eq(str).all()
