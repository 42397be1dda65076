"""The ``mixed`` namespace: the API functions' signatures and docstrings, and only what works on lazy data."""
from __future__ import annotations

import inspect

import pandas as pd
import polars as pl
import pytest

import mixframe as mf
from mixframe import api
from mixframe.accessors import LazyMixedNamespace, MixedNamespace

KINDS = ("lmm", "glmm", "clmm", "clm")
SLEEP = "Reaction ~ Days + (Days | Subject)"


def _without_data(fn) -> inspect.Signature:
    sig = inspect.signature(fn)
    return sig.replace(parameters=[p for name, p in sig.parameters.items() if name != "data"])


def _doc_without_data(fn) -> list[str]:
    """The function's docstring lines without the ``data : ...`` entry (its line, the indented ones after)."""
    out, skipping = [], False
    for line in inspect.getdoc(fn).splitlines():
        if line.startswith("data : "):
            skipping = True
        elif not (skipping and line.startswith(" ")):
            skipping = False
            out.append(line)
    return out


@pytest.fixture(scope="module")
def sleep():
    return mf.datasets.sleepstudy()


@pytest.mark.parametrize("kind", KINDS)
def test_methods_have_the_api_signature_and_docstring(sleep, kind):
    fn = getattr(api, kind)
    expected = _without_data(fn)
    assert list(expected.parameters)[0] == "formula"
    assert all(p.kind is p.KEYWORD_ONLY for p in list(expected.parameters.values())[1:])
    for frame in (sleep, pl.from_pandas(sleep)):
        method = getattr(frame.mixed, kind)
        assert inspect.signature(method) == expected
        assert inspect.getdoc(method).splitlines() == _doc_without_data(fn)
        assert "data :" not in method.__doc__ and method.__name__ == kind
    # on the class (what help() reads): self, formula, the keyword-only parameters
    for namespace in (pd.DataFrame.mixed, pl.DataFrame.mixed):
        sig = inspect.signature(getattr(namespace, kind))
        assert list(sig.parameters) == ["self", *expected.parameters]
        assert [p.default for p in list(sig.parameters.values())[1:]] == \
            [p.default for p in expected.parameters.values()]


def test_both_libraries_register_the_same_namespace():
    assert pd.DataFrame.mixed is MixedNamespace and pl.DataFrame.mixed is MixedNamespace
    assert pl.LazyFrame.mixed is LazyMixedNamespace
    public = sorted(n for n in dir(MixedNamespace) if not n.startswith("_"))
    assert public == sorted(KINDS)


def test_lazyframe_namespace_has_only_the_streamed_lmm(sleep):
    lazy = pl.from_pandas(sleep).lazy()
    assert sorted(n for n in dir(lazy.mixed) if not n.startswith("_")) == ["lmm"]
    for kind in ("glmm", "clmm", "clm"):
        with pytest.raises(AttributeError):
            getattr(lazy.mixed, kind)
    assert inspect.signature(lazy.mixed.lmm) == _without_data(api.lmm)
    fit = lazy.mixed.lmm(SLEEP, control={"batch_size": 50})
    ref = sleep.mixed.lmm(SLEEP)
    assert type(fit).__name__ == "StreamedMixedModel"
    assert abs(fit.fixef["(Intercept)"] - 251.405104848485) < 1e-6
    assert abs(fit.fixef["Days"] - 10.467285959596) < 1e-6
    assert abs(fit.loglik - ref.loglik) < 1e-8
    with pytest.raises(ValueError, match="unknown control option 'nagq' for streamed lmm"):
        lazy.mixed.lmm(SLEEP, control={"nagq": 2})


def test_methods_forward_every_argument(sleep):
    d = pl.from_pandas(sleep)
    a = d.mixed.lmm(SLEEP, reml=False, control={"maxiter": 10_000})
    b = mf.lmm(SLEEP, d, reml=False)
    assert a.loglik == b.loglik and a.fixef == b.fixef
    assert abs(a.loglik - (-875.969672244495)) < 1e-4   # lme4's ML fit
    wine = mf.datasets.wine()
    c = wine.mixed.clmm("rating ~ temp + contact", groups="judge", link="probit")
    e = mf.clmm("rating ~ temp + contact", wine, groups="judge", link="probit")
    assert c.fixef == e.fixef and c.loglik == e.loglik
    cbpp = pl.from_pandas(mf.datasets.cbpp())
    g = cbpp.mixed.glmm("cbind(incidence, size - incidence) ~ period", groups="herd", nagq=3)
    h = mf.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, nagq=3)
    assert g.fixef == h.fixef and g.loglik == h.loglik


def test_methods_reject_what_the_signature_does_not_allow(sleep):
    with pytest.raises(TypeError, match="positional"):
        sleep.mixed.lmm(SLEEP, False)
    with pytest.raises(TypeError, match="unexpected keyword argument 'data'"):
        sleep.mixed.lmm(SLEEP, data=sleep)
    with pytest.raises(TypeError, match="unexpected keyword argument 'family'"):
        sleep.mixed.lmm(SLEEP, family="poisson")
    fit = sleep.mixed.lmm(formula="Reaction ~ Days + (1 | Subject)")    # formula by name too
    assert abs(fit.fixef["Days"] - 10.467285959596) < 1e-6


def test_tab_completion_offers_the_parameters(sleep):
    jedi = pytest.importorskip("jedi")
    frame = pl.from_pandas(sleep)
    names = [c.name for c in jedi.Interpreter('frame.mixed.glmm("y ~ x", fam', [{"frame": frame}]).complete()]
    assert "family=" in names
    sigs = jedi.Interpreter("sleep.mixed.lmm(", [{"sleep": sleep}]).get_signatures()
    assert [p.name for p in sigs[0].params] == list(_without_data(api.lmm).parameters)
