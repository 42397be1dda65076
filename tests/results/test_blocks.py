"""Coefficients come in blocks, and the results ask the model kind, never the kind's name: a further block
(a zero-inflation predictor, say) is a further block in every output, with no new branch."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import stats

import mixframe as mf
from mixframe.models import ModelKind, kind_of
from mixframe.models.clmm.result import CLM, CLMM
from mixframe.models.glmm.result import GLMM
from mixframe.models.lmm.result import LMM


@pytest.fixture(scope="module")
def cbpp_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", mf.datasets.cbpp(),
                       family="binomial")


def with_zero_inflation(fit):
    """The cbpp fit with a two-coefficient block appended (estimates 0.5, -0.25; SEs 0.2, 0.1)."""
    raw = fit.raw
    p = len(raw.coef_names)
    vcov = np.zeros((p + 2, p + 2))
    vcov[:p, :p] = raw.vcov
    vcov[p, p], vcov[p + 1, p + 1] = 0.04, 0.01
    extended = dataclasses.replace(
        raw, coef_names=list(raw.coef_names) + ["zi~(Intercept)", "zi~period2"],
        coef=np.concatenate([raw.coef, [0.5, -0.25]]), vcov=vcov,
        coef_types=list(raw.coef_types) + ["zero_inflation"] * 2)
    return mf.MixedModel(extended, fit.data, dict(fit.call_info))


def test_the_table_maps_each_kind_to_its_implementation():
    records = {"lmm": LMM, "glmm": GLMM, "clmm": CLMM, "clm": CLM}
    for name, impl in records.items():
        raw = type("Record", (), {"kind": name})()
        assert kind_of(raw) is impl and impl.name == name and isinstance(impl, ModelKind)
    with pytest.raises(ValueError, match="unknown model kind 'zip'"):
        kind_of(type("Record", (), {"kind": "zip"})())
    assert LMM.x_block == GLMM.x_block == "fixed" and LMM.threshold_block is None
    assert CLMM.blocks == CLM.blocks == ("threshold", "location") and CLMM.x_block == "location"


def test_every_kind_records_its_blocks():
    wine = mf.datasets.wine()
    fit = mf.clmm("rating ~ temp + contact", wine, groups="judge")
    assert fit.raw.block_names == ["threshold", "location"]
    assert list(fit.raw.block_index("location")) == [4, 5]
    assert fit.thresholds == fit.raw.block("threshold")
    assert list(fit.thresholds) == ["1|2", "2|3", "3|4", "4|5"]
    assert fit.fixef == fit.raw.block("location")
    sleep = mf.lmm("Reaction ~ Days + (1 | Subject)", mf.datasets.sleepstudy())
    assert sleep.raw.block_names == ["fixed"] and sleep.raw.block_index("threshold").size == 0


def test_a_further_block_is_reported_and_kept_out_of_the_linear_predictor(cbpp_fit):
    fit = cbpp_fit
    zi = with_zero_inflation(fit)
    co = zi.coefficients()
    assert co["coef_type"].tolist() == ["fixed"] * 4 + ["zero_inflation"] * 2
    rows = co.iloc[4:]
    np.testing.assert_allclose(rows["std_error"], [0.2, 0.1])
    np.testing.assert_allclose(rows["statistic"], [2.5, -2.5])
    np.testing.assert_allclose(rows["p_value"], 2 * stats.norm.sf(2.5))
    np.testing.assert_allclose(rows["exp_estimate"], np.exp([0.5, -0.25]))   # logit link: odds ratios
    # the fixed block alone multiplies the design: fixef, predictions and fitted values are unchanged
    assert zi.fixef == fit.fixef
    np.testing.assert_array_equal(zi.predict(), fit.predict())
    new = mf.datasets.cbpp().head(5)
    np.testing.assert_array_equal(zi.predict(new), fit.predict(new))
    np.testing.assert_array_equal(zi.augment()[".fitted"], fit.augment()[".fitted"])
    # the summary prints the block in a table of its own after the fixed effects; correlations: fixed only
    text = str(zi.summary())
    head, _, tail = text.partition("Zero inflation:")
    assert "zi~(Intercept)" not in head and "zi~period2" in tail
    assert text.count("Correlation of Fixed Effects:") == 1
    assert str(fit.summary()).split("Correlation of Fixed Effects:")[1] == \
        text.split("Correlation of Fixed Effects:")[1]
    page = zi._repr_html_()
    assert "<th class=\"mf-text\">type</th>" in page and "zero_inflation" in page
    assert "<th class=\"mf-text\">type</th>" not in fit._repr_html_()
