"""Plots of a fitted model render with the Agg backend and carry the expected elements."""
from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt

import mixframe as mf
from mixframe.plot import ppoints


@pytest.fixture(scope="module")
def sleep_fit():
    return mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy(backend="polars"))


@pytest.fixture(scope="module")
def cbpp_fit():
    return mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", mf.datasets.cbpp(),
                   family="binomial")


@pytest.fixture(scope="module")
def wine_fit():
    return mf.clmm("rating ~ temp + contact", mf.datasets.wine(), groups="judge")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _save(ax, path):
    fig = np.atleast_1d(ax)[0].figure
    fig.savefig(path, dpi=50)
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _n_points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets"))


def test_caterpillar_one_panel_per_term(sleep_fit, tmp_path):
    axes = sleep_fit.plot.caterpillar()
    assert len(axes) == 2
    for ax, term in zip(axes, ["(Intercept)", "Days"]):
        marker_line = ax.lines[0]
        assert len(marker_line.get_xdata()) == 18 == len(ax.get_yticklabels())
        assert term in ax.get_xlabel() and "1.96" in ax.get_xlabel()
    # ordered by the intercept: the x values of the first panel increase bottom to top
    assert np.all(np.diff(axes[0].lines[0].get_xdata()) >= 0)
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    blups = sleep_fit.blups().to_pandas()
    intercepts = blups[blups["term"] == "(Intercept)"].sort_values("estimate")
    assert labels == intercepts["level"].tolist()
    _save(axes, tmp_path / "caterpillar.png")


def test_caterpillar_into_given_axes_and_bad_group(wine_fit, tmp_path):
    _, ax = plt.subplots()
    out = wine_fit.plot.caterpillar(group="judge", ax=ax)
    assert out is ax and len(ax.get_yticklabels()) == 9 and ax.get_ylabel() == "judge"
    _save(out, tmp_path / "wine.png")
    with pytest.raises(ValueError, match="not a grouping factor"):
        wine_fit.plot.caterpillar(group="bottle")
    with pytest.raises(ValueError, match="2 Axes"):
        wine_fit.plot.caterpillar(ax=[ax, ax])


def test_residuals_and_qq(sleep_fit, cbpp_fit, tmp_path):
    ax = sleep_fit.plot.residuals()
    assert _n_points(ax) == 180
    assert ax.get_xlabel() == "fitted values" and ax.get_ylabel() == "residuals"
    _save(ax, tmp_path / "resid.png")
    ax = cbpp_fit.plot.residuals()
    assert _n_points(ax) == 56 and "deviance" in ax.get_ylabel()
    ax = sleep_fit.plot.qq()
    assert _n_points(ax) == 180 and "normal" in ax.get_xlabel()
    ax = sleep_fit.plot.qq(which="random", term="Days")
    assert _n_points(ax) == 18 and "Days" in ax.get_ylabel()
    _save(ax, tmp_path / "qq.png")
    with pytest.raises(ValueError, match="which"):
        sleep_fit.plot.qq(which="fitted")


def test_qq_points_sorted_against_normal_quantiles(sleep_fit):
    ax = sleep_fit.plot.qq(which="random")
    xy = ax.collections[0].get_offsets()
    assert np.all(np.diff(xy[:, 1]) >= 0)
    np.testing.assert_allclose(xy[:, 0], __import__("scipy").stats.norm.ppf(ppoints(18)))


def test_ppoints_matches_r():
    # R: ppoints(5) = (1:5 - 3/8) / (5 + 1 - 3/4); ppoints(12) = (1:12 - 1/2) / 12
    np.testing.assert_allclose(ppoints(5), (np.arange(1, 6) - 0.375) / 5.25)
    np.testing.assert_allclose(ppoints(12), (np.arange(1, 13) - 0.5) / 12)


def test_predicted_glmm_categorical(cbpp_fit, tmp_path):
    ax = cbpp_fit.plot.predicted("period")
    population = ax.lines[-1]
    np.testing.assert_allclose(population.get_ydata(), cbpp_fit.predict(
        mf.datasets.cbpp().iloc[[0, 1, 2, 3]], re=False))
    assert len(ax.lines) == 15 + 1          # one grey curve per herd, one population curve
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert ax.get_ylabel() == "predicted probability" and ax.get_xlabel() == "period"
    _save(ax, tmp_path / "pred_glmm.png")


def test_predicted_clmm_one_line_per_category(wine_fit, tmp_path):
    ax = wine_fit.plot.predicted("temp", groups=False, at={"contact": "yes"})
    assert len(ax.lines) == 5
    total = np.sum([line.get_ydata() for line in ax.lines], axis=0)
    np.testing.assert_allclose(total, 1.0)
    assert ax.get_legend().get_texts()[0].get_text() == "rating=1"
    _save(ax, tmp_path / "pred_clmm.png")
    ax = wine_fit.plot.predicted("temp")
    assert len(ax.lines) == 9 * 5 + 5
    with pytest.raises(ValueError, match="not a column"):
        wine_fit.plot.predicted("colour")


def test_predicted_numeric_lmm(sleep_fit):
    ax = sleep_fit.plot.predicted("Days", n_points=11, groups=False)
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), np.linspace(0, 9, 11))
    fe = sleep_fit.fixef
    np.testing.assert_allclose(line.get_ydata(), fe["(Intercept)"] + fe["Days"] * np.linspace(0, 9, 11))


def test_residuals_refused_for_ordinal(wine_fit):
    with pytest.raises(ValueError, match="ordinal"):
        wine_fit.plot.residuals()
