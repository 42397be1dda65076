"""The lme4 formula parser: bars found, stripped and expanded; errors that name the term."""
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixframe.errors import FormulaError
from mixframe.formula import parse_formula, split_sum
from mixframe.formula.fixed import expression_columns, fixed_matrix, to_formulaic


def bars_of(formula, **kw):
    return [(b.expr, b.group, b.components) for b in parse_formula(formula, **kw).bars]


# ---------------------------------------------------------------------------------------------
# happy paths


def test_simple_correlated_bar():
    p = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert p.response == "Reaction"
    assert p.fixed == "Days"
    assert bars_of("Reaction ~ Days + (Days | Subject)") == [("Days", "Subject", ("Subject",))]
    assert p.fixed_formula == "Reaction ~ Days"


def test_double_bar_expands_intercept_first():
    assert bars_of("y ~ x + (x || g)") == [("1", "g", ("g",)), ("0 + x", "g", ("g",))]
    assert bars_of("y ~ (1 + x + log(z) || g)") == [
        ("1", "g", ("g",)), ("0 + x", "g", ("g",)), ("0 + log(z)", "g", ("g",))]
    assert bars_of("y ~ (0 + x + z || g)") == [("0 + x", "g", ("g",)), ("0 + z", "g", ("g",))]
    assert bars_of("y ~ (x - 1 || g)") == [("0 + x", "g", ("g",))]


def test_nested_slash_expansion():
    assert bars_of("strength ~ 1 + (1 | batch/cask)") == [
        ("1", "batch", ("batch",)), ("1", "batch:cask", ("batch", "cask"))]
    assert [b[1] for b in bars_of("y ~ (1 | a/b/c)")] == ["a", "a:b", "a:b:c"]


def test_interaction_grouping_factor():
    assert bars_of("y ~ service + (1 | dept:service)") == [("1", "dept:service", ("dept", "service"))]


def test_r_stored_uncorrelated_form_with_grouping_parentheses():
    p = parse_formula("Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))")
    assert p.fixed == "Days"
    assert [(b.expr, b.group) for b in p.bars] == [("1", "Subject"), ("0 + Days", "Subject")]


def test_function_calls_left_of_the_bar():
    assert bars_of("y ~ x + (0 + log(x) | g) + (1 + I(x^2) | h)") == [
        ("0 + log(x)", "g", ("g",)), ("1 + I(x^2)", "h", ("h",))]


def test_intercept_only_fixed_part():
    p = parse_formula("y ~ (1 | g)")
    assert p.fixed == "1"
    p = parse_formula("y ~ 0 + (1 | g)")
    assert p.fixed == "0"
    p = parse_formula("y ~ -1 + x + (1 | g)")
    assert re.sub(r"\s", "", p.fixed) == "1-1+x"


def test_groups_and_random_arguments():
    p = parse_formula("rating ~ temp", groups="judge")
    assert [(b.expr, b.group) for b in p.bars] == [("1", "judge")]
    p = parse_formula("rating ~ temp + (1 | judge)", groups=["bottle"], random=["(0 + x | judge)", "1 | a/b"])
    assert [(b.expr, b.group) for b in p.bars] == [
        ("1", "judge"), ("1", "bottle"), ("0 + x", "judge"), ("1", "a"), ("1", "a:b")]
    p = parse_formula("y ~ x", random="1 + x | g")
    assert [(b.expr, b.group) for b in p.bars] == [("1 + x", "g")]
    p = parse_formula("y ~ x", random="(1 | a) + (x || b)", groups="a:c")
    assert [(b.expr, b.group) for b in p.bars] == [("1", "a:c"), ("1", "a"), ("1", "b"), ("0 + x", "b")]


def test_cbind_response_and_offsets():
    p = parse_formula("cbind(incidence, size - incidence) ~ period + offset(log(size)) + (1 | herd)")
    assert p.cbind == ("incidence", "size - incidence")
    assert p.offsets == ("log(size)",)
    assert p.fixed == "period"
    p = parse_formula("y ~ offset(a) + offset(b) + (1 | g)")
    assert p.offsets == ("a", "b") and p.fixed == "1"


def test_plain_response_is_not_cbind():
    assert parse_formula("log(y) ~ x + (1 | g)").cbind is None


def test_backticked_group_name():
    assert bars_of("y ~ (1 | `my group`)") == [("1", "my group", ("my group",))]


def test_split_sum_respects_nesting():
    assert split_sum("a + f(b - c) - 1 + (x | g)") == [("+", "a"), ("+", "f(b - c)"), ("-", "1"),
                                                       ("+", "(x | g)")]


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("formula, fragment", [
    ("y ~ x + (1 | g", "(1 | g"),
    ("y ~ x + (1 | g))", "(1 | g))"),
    ("y ~ log(x + (1 | g)", "log(x"),
])
def test_unbalanced_parentheses_name_the_term(formula, fragment):
    with pytest.raises(FormulaError, match="unbalanced") as info:
        parse_formula(formula)
    assert fragment in str(info.value)


@pytest.mark.parametrize("formula, pattern", [
    ("y + x", "no '~'"),
    ("~ x + (1 | g)", "no response"),
    ("y ~ x + ( | g)", r"empty left side.*\( \| g\)"),
    ("y ~ x + (1 | )", r"empty right side.*\(1 \| \)"),
    ("y ~ x + (1 || )", "empty right side"),
    ("y ~ x + (1 | a + b)", r"'\+' on the right"),
    ("y ~ x - (1 | g)", "cannot be subtracted"),
    ("y ~ x * (1 | g)", "parenthesised bar"),
    ("y ~ x + (1 | log(g))", "must be a column name"),
    ("y ~ x + (0 || g)", "no effects"),
    ("y ~ x ~ z", "more than one"),
    ("y ~ ", "nothing on the right"),
])
def test_malformed_formulas(formula, pattern):
    with pytest.raises(FormulaError, match=pattern):
        parse_formula(formula)


def test_formula_must_be_a_string():
    with pytest.raises(FormulaError):
        parse_formula(42)


def test_random_argument_must_hold_bars_only():
    with pytest.raises(FormulaError, match="random"):
        parse_formula("y ~ x", random=["x + (1 | g)"])


def test_cbind_needs_two_arguments():
    with pytest.raises(FormulaError, match="two arguments"):
        parse_formula("cbind(a) ~ x + (1 | g)")


# ---------------------------------------------------------------------------------------------
# the fixed part through formulaic, with R names


def test_expression_columns_skip_functions():
    assert expression_columns("log(x) + scale(h) + f:g + np.exp(q) + C(w)") == {"x", "h", "f", "g", "q", "w"}
    assert expression_columns("I(size - incidence)") == {"size", "incidence"}


def test_power_inside_calls_becomes_python_power():
    assert to_formulaic("I(x^2) + (a + b)^2") == "I(x**2) + (a + b)^2"


def test_r_names_for_factors_interactions_and_calls():
    df = pd.DataFrame({
        "recipe": pd.Categorical(list("ABCABC"), categories=list("ABC")),
        "temperature": pd.Categorical(["175", "185", "195", "185", "175", "195"],
                                      categories=["175", "185", "195"]),
        "week": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "HEIGHT": [10.0, 12.0, 9.0, 14.0, 11.0, 13.0],
    })
    _, names, _ = fixed_matrix("recipe * temperature", df)
    assert names[:5] == ["(Intercept)", "recipeB", "recipeC", "temperature185", "temperature195"]
    assert names[5:] == ["recipeB:temperature185", "recipeC:temperature185", "recipeB:temperature195",
                         "recipeC:temperature195"]
    X, names, _ = fixed_matrix("I(week > 2) + scale(HEIGHT) + log(week) + I(week^2)", df)
    assert names == ["(Intercept)", "I(week > 2)TRUE", "scale(HEIGHT)", "log(week)", "I(week^2)"]
    np.testing.assert_allclose(X[:, 1], [0, 0, 1, 1, 1, 1])
    h = df["HEIGHT"].to_numpy()
    np.testing.assert_allclose(X[:, 2], (h - h.mean()) / h.std(ddof=1))  # R's scale(): n - 1 SD
    np.testing.assert_allclose(X[:, 4], df["week"] ** 2)


def test_r_names_full_dummies_and_numeric_factor_levels():
    df = pd.DataFrame({"f": pd.Categorical(list("abab")), "n": [1.0, 2.0, 1.0, 2.0]})
    assert fixed_matrix("0 + f", df)[1] == ["fa", "fb"]
    assert fixed_matrix("C(n)", df)[1] == ["(Intercept)", "C(n)2"]


# ---------------------------------------------------------------------------------------------
# property tests: formulas generated from a small grammar parse into the expected terms

NAMES = ["x", "z", "Days", "age.y", "w_2"]
GROUPS = ["g", "Subject", "batch", "cask", "site.id"]
LHS = [("1", ["1"]), ("x", ["1", "0 + x"]), ("1 + x", ["1", "0 + x"]), ("0 + x", ["0 + x"]),
       ("x + log(z)", ["1", "0 + x", "0 + log(z)"]), ("0 + x + z", ["0 + x", "0 + z"])]


@st.composite
def formulas(draw):
    fixed = draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
    n_bars = draw(st.integers(1, 3))
    pieces, expected = [], []
    for _ in range(n_bars):
        lhs, lhs_double = draw(st.sampled_from(LHS))
        double = draw(st.booleans())
        chain = draw(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3, unique=True))
        nested = draw(st.booleans())
        if nested:
            rhs = "/".join(chain)
            groups = [tuple(chain[:i + 1]) for i in range(len(chain))]
        else:
            rhs = ":".join(chain)
            groups = [tuple(chain)]
        sp = draw(st.sampled_from(["", " "]))
        pieces.append(f"({lhs}{sp}{'||' if double else '|'}{sp}{rhs})")
        lhs_list = lhs_double if double else [lhs]
        expected.extend((e, ":".join(g), g) for e in lhs_list for g in groups)
    order = draw(st.permutations(list(range(len(fixed) + len(pieces)))))
    items = fixed + pieces
    rhs = " + ".join(items[i] for i in order) or "1"
    bar_order = [items[i] for i in order if items[i] in pieces]
    # the expected bars follow the order in which the bars appear in the formula
    expected_sorted = []
    for piece in bar_order:
        idx = pieces.index(piece)
        start = sum(_expansion_size(p, LHS) for p in pieces[:idx])
        expected_sorted.extend(expected[start:start + _expansion_size(pieces[idx], LHS)])
    return f"y ~ {rhs}", fixed, expected_sorted


def _expansion_size(piece, lhs_table):
    inner = piece[1:-1]
    double = "||" in inner
    lhs, rhs = re.split(r"\s*\|\|?\s*", inner, maxsplit=1)
    n_lhs = len(dict(lhs_table)[lhs]) if double else 1
    n_groups = len(rhs.split("/")) if "/" in rhs else 1
    return n_lhs * n_groups


@settings(max_examples=150, deadline=None)
@given(formulas())
def test_generated_formulas_round_trip(case):
    formula, fixed, expected = case
    p = parse_formula(formula)
    assert [(b.expr, b.group, b.components) for b in p.bars] == expected
    got_fixed = [t for _, t in split_sum(p.fixed)]
    assert sorted(got_fixed) == sorted(fixed or ["1"])


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="()|~+ xg1", min_size=1, max_size=25))
def test_arbitrary_text_parses_or_raises_formula_error(text):
    try:
        p = parse_formula(text)
    except FormulaError:
        return
    assert "|" not in p.fixed
    for bar in p.bars:
        assert bar.expr and bar.group


def test_parses_are_shared_and_equal_to_fresh_ones():
    """parse_formula memoises frozen parses: list and tuple arguments give the same (equal) answer, and a
    malformed formula still raises on every call."""
    from mixframe.formula.parse import _parse
    from mixframe.formula.simple import parse_simple

    p1 = parse_formula("y ~ x + (x | g)", groups=["h"], random=["(1 | k)"])
    p2 = parse_formula("y ~ x + (x | g)", groups=("h",), random=("(1 | k)",))
    assert p1 == p2 == _parse("y ~ x + (x | g)", ["h"], ["(1 | k)"])
    for _ in range(2):
        with pytest.raises(FormulaError):
            parse_formula("y ~ x + (x | g")
    with pytest.raises(FormulaError):
        parse_formula("y ~ x", groups=[["g"]])
    first = parse_simple("x * f")
    first[1].append(("junk",))                  # callers get their own list
    assert parse_simple("x * f") == (True, [("x",), ("f",), ("x", "f")])
