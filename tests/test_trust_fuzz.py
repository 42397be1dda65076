"""Whole fits from random formulas over a fixed frame: every one ends in a fit, a FormulaError or a DataError —
never another exception (a grammar of sensible and odd pieces, bounded in examples and time)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import mixframe as mf  # noqa: E402


def _frame():
    rng = np.random.default_rng(7)
    n = 120
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    z = rng.uniform(0.1, 3.0, n)
    eta = 0.4 * x - 0.3 * z + rng.normal(0, 0.5, 12)[g]
    return pd.DataFrame({
        "y": eta + rng.normal(0, 0.7, n),
        "yb": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int),
        "yc": rng.poisson(np.exp(0.5 + 0.3 * eta)),
        "yo": pd.Categorical(np.digitize(eta, [-0.5, 0.2, 0.8]) + 1, categories=[1, 2, 3, 4], ordered=True),
        "x": x, "z": z, "k": rng.integers(0, 4, n).astype(float),
        "f": rng.choice(list("abc"), n), "b": x > 0,
        "g": g.astype(str), "h": h.astype(str), "w": rng.uniform(0.5, 2.0, n),
        "x2": 2 * x, "c": 1.0,
    })


DATA = _frame()
ATOMS = ["x", "z", "k", "f", "b", "x2", "c", "nope", "1", "0", "2.5", ".", "`x`"]
CALLS = ["log", "exp", "sqrt", "abs", "I", "C", "factor", "scale", "poly", "offset", "eval", "open", "np.exp",
         "__import__", "lambda"]
OPS = [" + ", " - ", " * ", ":", " / ", " ^ ", " | ", " ~ ", ", "]
BARS = ["(1 | g)", "(x | g)", "(1 + x || g)", "(1 | g/h)", "(1 | g:h)", "(0 + z | h)", "(1 | nope)",
        "(log(z) | g)", "(1 | f)", "(1 |)", "(x | g", "(I(1/k) | g)"]


@st.composite
def term(draw, depth=0):
    if depth < 2 and draw(st.booleans()):
        call = draw(st.sampled_from(CALLS))
        inner = draw(term(depth + 1))
        if draw(st.booleans()):
            inner = inner + draw(st.sampled_from([" > 1", " + 1", " * 2", " ** 2", "[0]", ".real", ", 2"]))
        return f"{call}({inner})"
    return draw(st.sampled_from(ATOMS))


@st.composite
def formula(draw):
    response = draw(st.sampled_from(["y", "yb", "yc", "yo", "log(z)", "cbind(yc, 10 - yc)", "nope", ""]))
    pieces = [draw(term()) for _ in range(draw(st.integers(1, 3)))]
    rhs = pieces[0]
    for piece in pieces[1:]:
        rhs += draw(st.sampled_from(OPS[:5])) + piece
    for bar in draw(st.lists(st.sampled_from(BARS), max_size=2)):
        rhs += " + " + bar
    return f"{response} ~ {rhs}"


KINDS = [("lmm", {}), ("glmm", {"family": "binomial"}), ("glmm", {"family": "poisson"}), ("clmm", {}),
         ("clm", {}), ("glmm", {"family": "gamma"}), ("lmm", {"weights": "w"})]


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(formula(), st.sampled_from(KINDS))
def test_random_formulas_fit_or_fail_cleanly(text, kind):
    name, kw = kind
    fit = getattr(mf, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = fit(text, DATA, **kw)
        except (mf.FormulaError, mf.DataError):
            return
    # a fit: its tables can be read
    model.coefficients()
    model.glance()
