"""Every reference case from R, fitted through the public API on pandas and polars, against R's answer.

This is the suite's one check of the R references; it uses the comparison and tolerances of the project's
reference check (see ``reference_check.py`` beside this file). ``regenerate.R`` rewrites the JSON fixtures from R.
"""
import warnings

import pytest

from reference_check import FORMULA_OVERRIDE, compare, fit_case
from conftest import REF_DIR, case_frame, load_case

CASES = sorted(p.stem for p in REF_DIR.glob("*.json"))


@pytest.mark.parametrize("backend", ["pandas", "polars"])
@pytest.mark.parametrize("name", CASES)
def test_reference_case(name, backend):
    case = load_case(name)
    formula = FORMULA_OVERRIDE.get(name, case["formula"])
    df = case_frame(case, backend, formula)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kind, fit = fit_case(case, df, formula)
    failures = compare(case, kind, fit, formula)
    assert not failures, "\n".join(f"{q}: ours {o!r}, R {r!r}, tolerance {t!r}" for q, o, r, t in failures)
