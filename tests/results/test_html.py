"""The notebook view of a fitted model, and the progress bar (both are interactive display)."""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import mixframe as mf
from mixframe.progress import ProgressBar, progress_bar, progress_enabled


def _text(page: str) -> str:
    """The visible text of the page: style sheet and tags removed."""
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", page)


@pytest.fixture(scope="module")
def dyestuff_fit():
    return mf.lmm("Yield ~ 1 + (1|Batch)", mf.datasets.dyestuff())


@pytest.fixture(scope="module")
def singular_fit():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(6)], 5), "y": rng.normal(size=30)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.lmm("y ~ 1 + (1 | g)", df)


def test_html_has_model_line_and_tables(dyestuff_fit):
    page = dyestuff_fit._repr_html_()
    assert page.count("<table>") == 3
    for caption in ("Fit statistics", "Coefficients", "Variance components"):
        assert f"<caption>{caption}</caption>" in page
    text = _text(page)
    assert "Linear mixed model" in text and "gaussian (identity)" in text and "REML" in text
    assert "Yield ~ 1 + (1|Batch)" in text
    assert "Batch" in text and "Residual" in text and "(Intercept)" in text
    assert 'class="mf-warning"' not in page and not dyestuff_fit.singular


def test_html_numbers_are_rounded(dyestuff_fit):
    page = dyestuff_fit._repr_html_()
    estimate = dyestuff_fit.fixef["(Intercept)"]         # 1527.5 (to rounding): four significant digits
    assert abs(estimate - 1527.5) < 0.01 and f">{estimate:.4g}<" in page and ">19.38<" in page
    assert str(estimate) not in page
    cells = re.findall(r"<td>(-?[0-9.]+)</td>", page)
    assert cells and all(len(c.replace("-", "").replace(".", "")) <= 9 for c in cells)


def test_html_warns_on_singular_fit(singular_fit):
    assert singular_fit.singular
    page = singular_fit._repr_html_()
    assert 'class="mf-warning"' in page
    warning = re.search(r'<div class="mf-warning"[^>]*>(.*?)</div>', page).group(1)
    assert "Singular fit" in warning
    # the fit's own singular message is not repeated a second time
    assert page.count("mf-warning\"") == 1


def test_html_escapes_and_shows_ordinal_and_glmm():
    wine = mf.clmm("rating ~ temp + contact", mf.datasets.wine(), groups="judge")
    page = wine._repr_html_()
    text = _text(page)
    assert "Cumulative link mixed model" in text and "cumulative logit" in text
    assert "1|2" in text and "tempwarm" in text and "odds ratio" in text
    assert "judge" in text
    cbpp = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", mf.datasets.cbpp(),
                   family="binomial")
    page = cbpp._repr_html_()
    assert "binomial (logit)" in _text(page) and "Laplace" in page and "period2" in page
    assert "<th>z</th>" in page


def test_html_shows_nonconvergence_and_messages(dyestuff_fit):
    import dataclasses

    from mixframe.results.html import fit_warnings, model_html

    raw = dataclasses.replace(dyestuff_fit.raw, converged=False, messages=["max evaluations <reached>"])
    notes = fit_warnings(raw)
    assert any("did not report convergence" in n for n in notes)
    page = model_html(raw, "Yield ~ 1 + (1|Batch)")
    assert "max evaluations &lt;reached&gt;" in page and page.count('class="mf-warning"') == 2


# ---------------------------------------------------------------------- progress
def test_progress_disabled_is_silent_and_counts():
    with progress_bar(total=5, desc="x", enabled=False) as bar:
        for _ in range(5):
            bar.update()
        bar.set_postfix(deviance=1.0)
    assert bar.count == 5 and isinstance(bar, ProgressBar) and bar._bar is None


def test_progress_enabled_draws_after_delay():
    out = io.StringIO()
    with progress_bar(total=3, desc="fitting LMM", enabled=True, delay=0.0, file=out) as bar:
        for _ in range(3):
            bar.update(1)
    assert "fitting LMM" in out.getvalue() and bar.count == 3


def test_progress_quick_work_shows_nothing():
    out = io.StringIO()
    with progress_bar(total=3, desc="quick", enabled=True, file=out) as bar:   # default delay 2 s
        bar.update(3)
    assert out.getvalue() == ""


def test_progress_auto_is_off_when_not_interactive(monkeypatch):
    monkeypatch.delenv("MIXFRAME_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())   # not a terminal
    assert progress_bar().enabled is False
    monkeypatch.setenv("MIXFRAME_PROGRESS", "1")
    assert progress_bar().enabled is True


def test_progress_control_switch():
    assert progress_enabled({"progress": True}) is True
    assert progress_enabled({"progress": False}) is False
    assert progress_enabled({"maxiter": 10}) is None and progress_enabled(None) is None
