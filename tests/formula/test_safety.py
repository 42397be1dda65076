"""A formula is data, never code: every way of smuggling a call into a formula is a FormulaError before anything
runs, for every model kind, the command line and new data; the allowed functions work."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import mixframe as mf
from mixframe import cli
from mixframe.formula.safety import check_expression, check_formula_text

DATA = Path(__file__).resolve().parents[2] / "mixframe" / "datasets" / "data"


def payloads(marker: Path) -> list[str]:
    """Python expressions that would create ``marker`` if a formula ever executed them."""
    m = str(marker)
    return [
        f'__import__("os").system("touch {m}")',
        f'open("{m}", "w").write("x")',
        f'eval("open(\'{m}\', \'w\')")',
        f'exec("open(\'{m}\', \'w\')")',
        f'(lambda: open("{m}", "w"))()',
        f'getattr(__builtins__, "open")("{m}", "w")',
        f'np.lib.npyio.savetxt("{m}", Days)',
        f'Days.__class__.__base__',
        f'compile("1", "{m}", "eval")',
        f'globals()["__builtins__"]',
        f'Days[0]',
        f'[open("{m}", "w") for _ in Days]',
    ]


PLACES = {
    "I()": "Reaction ~ Days + I({p}) + (1 | Subject)",
    "offset()": "Reaction ~ Days + offset({p}) + (1 | Subject)",
    "call": "Reaction ~ Days + log({p}) + (1 | Subject)",
    "response": "I(Reaction + {p}) ~ Days + (1 | Subject)",
    "random left side": "Reaction ~ Days + (0 + I({p}) | Subject)",
}


@pytest.fixture
def sleep():
    return mf.datasets.sleepstudy()


@pytest.mark.parametrize("place", sorted(PLACES))
def test_no_formula_runs_code(place, sleep, tmp_path):
    marker = tmp_path / "ran"
    for payload in payloads(marker):
        formula = PLACES[place].format(p=payload)
        with pytest.raises(mf.FormulaError):
            mf.lmm(formula, sleep)
        assert not marker.exists(), formula


@pytest.mark.parametrize("kind", ["glmm", "clmm", "clm"])
def test_no_formula_runs_code_other_kinds(kind, tmp_path):
    marker = tmp_path / "ran"
    cbpp = mf.datasets.cbpp()
    wine = mf.datasets.wine()
    for payload in payloads(marker):
        with pytest.raises(mf.FormulaError):
            if kind == "glmm":
                mf.glmm(f"cbind(incidence, size - incidence) ~ period + offset({payload}) + (1 | herd)", cbpp)
            elif kind == "clmm":
                mf.clmm(f"rating ~ temp + I({payload}) + (1 | judge)", wine)
            else:
                mf.clm(f"rating ~ temp + I({payload})", wine)
        assert not marker.exists(), payload


def test_no_formula_runs_code_streamed(sleep, tmp_path):
    marker = tmp_path / "ran"
    lazy = pl.from_pandas(sleep).lazy()
    with pytest.raises(mf.FormulaError):
        mf.lmm(f'Reaction ~ Days + offset(__import__("os").system("touch {marker}")) + (1 | Subject)', lazy)
    with pytest.raises(mf.FormulaError):
        mf.lmm("Reaction ~ Days + (1 | Subject)", lazy, random=f'(0 + I(open("{marker}", "w")) | Subject)')
    assert not marker.exists()


def test_cli_rejects_code(tmp_path, capsys):
    marker = tmp_path / "ran"
    code = cli.main(["fit", str(DATA / "sleepstudy.csv"),
                     f'Reaction ~ Days + I(__import__("os").system("touch {marker}")) + (1 | Subject)'])
    out, err = capsys.readouterr()
    assert code == 2 and "not allowed" in err and "Traceback" not in err
    assert not marker.exists()


def test_messages_name_the_piece(sleep):
    with pytest.raises(mf.FormulaError, match=r"calling 'eval'"):
        mf.lmm('Reaction ~ I(eval("1")) + (1 | Subject)', sleep)
    with pytest.raises(mf.FormulaError, match=r"double underscore.*__import__"):
        mf.lmm('Reaction ~ offset(__import__("os")) + (1 | Subject)', sleep)
    with pytest.raises(mf.FormulaError, match=r"subscript.*Days\[0\]"):
        mf.lmm("Reaction ~ I(Days[0]) + (1 | Subject)", sleep)
    with pytest.raises(mf.FormulaError, match=r"'np.exp'"):
        mf.lmm("Reaction ~ np.exp(Days) + (1 | Subject)", sleep)
    with pytest.raises(mf.FormulaError, match=r"not supported"):
        mf.lmm("Reaction ~ .", sleep)
    with pytest.raises(mf.FormulaError, match=r"keyword 'lambda'"):
        mf.lmm("Reaction ~ lambda + (1 | Subject)", sleep)


@pytest.mark.parametrize("terms, columns", [
    ("log(w) + exp(Days / 10) + sqrt(w) + abs(Days - 4) + pow(Days, 2) + I(Days > 4)",
     lambda x: [np.log(x + 1), np.exp(x / 10), np.sqrt(x + 1), np.abs(x - 4), x ** 2, (x > 4).astype(float)]),
    ("sin(Days) + cos(Days) + floor(Days / 3) + ceil(Days / 4) + round(Days / 7)",
     lambda x: [np.sin(x), np.cos(x), np.floor(x / 3), np.ceil(x / 4), np.round(x / 7)]),
    ("log1p(Days) + scale(w) + log10(w + Days) + I(Days^2)",   # log10(w) would be aliased with log1p(Days)
     lambda x: [np.log1p(x), (x - x.mean()) / x.std(ddof=1), np.log10(2 * x + 1), x ** 2]),
])
def test_allowed_functions_fit(sleep, terms, columns):
    d = sleep.assign(w=sleep["Days"] + 1.0)
    fit = mf.lmm(f"Reaction ~ {terms} + (1 | Subject)", d)
    x = d["Days"].to_numpy(float)
    X = np.column_stack([np.ones_like(x), *columns(x)])
    # the expressions computed by hand give the same fixed-effects fit: same fitted population means
    eta_fixed = X @ np.array(list(fit.fixef.values()))
    np.testing.assert_allclose(fit.predict(re=False), eta_fixed, rtol=1e-9)


def test_r_factor_idioms(sleep):
    a = mf.lmm("Reaction ~ factor(Days) + (1 | Subject)", sleep)
    b = mf.lmm("Reaction ~ as.factor(Days) + (1 | Subject)", sleep)
    c = mf.lmm("Reaction ~ C(Days) + (1 | Subject)", sleep)
    assert list(a.fixef)[1] == "factor(Days)1" and len(a.fixef) == 10
    np.testing.assert_allclose(list(a.fixef.values()), list(c.fixef.values()), rtol=1e-10)
    np.testing.assert_allclose(list(b.fixef.values()), list(c.fixef.values()), rtol=1e-10)


def test_predict_newdata_evaluates_only_the_checked_formula(sleep, tmp_path):
    fit = mf.lmm("Reaction ~ log(Days + 1) + (1 | Subject)", sleep)
    new = pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", "309"]})
    p = fit.predict(new)
    ref = fit.fixef["(Intercept)"] + fit.fixef["log(Days + 1)"] * np.log([2.0, 3.0])
    blups = {lv: e for lv, e in zip(*(np.asarray(fit.blups()[c]) for c in ("level", "estimate")))}
    np.testing.assert_allclose(p, ref + np.array([blups["308"], blups["309"]]), rtol=1e-10)


def test_check_expression_reads_columns():
    assert check_expression("log(n) + I(x > 2) * `age.y`") == {"n", "x", "age.y"}
    assert check_expression("size - incidence", columns={"size", "incidence"}) == {"size", "incidence"}
    with pytest.raises(mf.FormulaError, match="unknown column 'open'"):
        check_expression("open", columns={"x"})
    check_formula_text("y ~ a*b + a:b - 1 + (1 + x || g) + (1 | g1/g2) + x %in% a + poly(x, 2)")


def test_library_messages_have_no_colour_codes(sleep):
    from mixframe.formula.fixed import plain_message

    assert plain_message(ValueError("\x1b[1;31mbad\x1b[0m\n  term")) == "bad term"
    with pytest.raises(mf.FormulaError) as info:
        mf.lmm("Reaction ~ Days + poly(Days, 2, 3, 4, 5) + (1 | Subject)", sleep)
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value) and "poly(Days" in str(info.value)
