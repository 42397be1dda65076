"""``control=``: one validated record per model kind, parsed once at the API, for every entry point."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import mixframe as mf
from mixframe.control import (
    KINDS,
    OPTIMIZERS,
    CLMControl,
    CLMMControl,
    GLMMControl,
    LMMControl,
    StreamedLMMControl,
    control_table,
    parse_control,
)

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
WINE = "rating ~ temp + contact"


@pytest.fixture(scope="module")
def frames():
    return {"sleep": mf.datasets.sleepstudy(), "cbpp": mf.datasets.cbpp(), "wine": mf.datasets.wine()}


def _calls(frames):
    """(kind, fit(control)) through mf.* and df.mixed.*, on pandas and polars, for every kind."""
    sleep, cbpp, wine = frames["sleep"], frames["cbpp"], frames["wine"]
    lazy = pl.from_pandas(sleep).lazy()
    calls = []
    for lib, conv in (("pandas", lambda d: d), ("polars", pl.from_pandas)):
        s, c, w = conv(sleep), conv(cbpp), conv(wine)
        calls += [
            ("lmm", f"mf.lmm/{lib}", lambda ctl, s=s: mf.lmm(SLEEP, s, control=ctl)),
            ("lmm", f"mixed.lmm/{lib}", lambda ctl, s=s: s.mixed.lmm(SLEEP, control=ctl)),
            ("glmm", f"mf.glmm/{lib}", lambda ctl, c=c: mf.glmm(CBPP, c, control=ctl)),
            ("glmm", f"mixed.glmm/{lib}", lambda ctl, c=c: c.mixed.glmm(CBPP, control=ctl)),
            ("clmm", f"mf.clmm/{lib}", lambda ctl, w=w: mf.clmm(WINE, w, groups="judge", control=ctl)),
            ("clmm", f"mixed.clmm/{lib}", lambda ctl, w=w: w.mixed.clmm(WINE, groups="judge", control=ctl)),
            ("clm", f"mf.clm/{lib}", lambda ctl, w=w: mf.clm(WINE, w, control=ctl)),
            ("clm", f"mixed.clm/{lib}", lambda ctl, w=w: w.mixed.clm(WINE, control=ctl)),
        ]
    calls += [
        ("streamed lmm", "mf.lmm/lazy", lambda ctl: mf.lmm(SLEEP, lazy, control=ctl)),
        ("streamed lmm", "mixed.lmm/lazy", lambda ctl: lazy.mixed.lmm(SLEEP, control=ctl)),
    ]
    return calls


def _allowed_in(message: str) -> list[str]:
    return eval(message.rsplit("allowed: ", 1)[1])   # the printed list of names


def test_unknown_key_is_an_error_naming_it_for_every_kind_and_entry_point(frames):
    seen = set()
    for kind, name, fit in _calls(frames):
        with pytest.raises(ValueError, match=r"unknown control option 'maxiters'") as err:
            fit({"maxiters": 10})
        assert _allowed_in(str(err.value)) == KINDS[kind].allowed(), name
        assert "did you mean 'maxiter'?" in str(err.value)
        seen.add(kind)
    assert seen == set(KINDS)


def test_unknown_optimizer_is_an_error_for_every_kind(frames):
    for kind, name, fit in _calls(frames):
        with pytest.raises(ValueError, match="'optimizer'") as err:
            fit({"optimizer": "nelder-mead"})
        msg = str(err.value)
        if "optimizer" in KINDS[kind].allowed():       # kinds that take one: the allowed values are listed
            assert "'nelder-mead' is not one of " + str(list(OPTIMIZERS)) in msg, name
        else:                                           # GLMM, CLM: no optimizer setting at all
            assert msg.startswith("unknown control option 'optimizer'") and _allowed_in(msg), name


def test_glmm_rejects_what_it_used_to_ignore(frames):
    for bad in ({"optimizer": "neldermead"}, {"maxiters": 5}, {"verbose": True}, {"batch_size": 10}):
        with pytest.raises(ValueError, match="unknown control option"):
            mf.glmm(CBPP, frames["cbpp"], control=bad)


def test_streamed_only_keys_and_bad_values(frames):
    with pytest.raises(ValueError, match="'batch_size' for lmm.*streamed inputs"):
        mf.lmm(SLEEP, frames["sleep"], control={"batch_size": 40})
    with pytest.raises(ValueError, match="'batch_size' for clmm"):
        mf.clmm(WINE, frames["wine"], groups="judge", control={"batch_size": 40})
    for key, value in (("maxiter", 0), ("maxiter", 2.5), ("maxiter", "10"), ("tol", -1.0),
                       ("tol", float("nan")), ("calc_hessian", "no"), ("hessian_step", 0.0)):
        kind = "glmm" if key in ("calc_hessian", "hessian_step") else "lmm"
        with pytest.raises(ValueError, match=f"control option '{key}' for {kind} must be"):
            parse_control(kind, {key: value})
    with pytest.raises(ValueError, match="'maxeval' and 'maxiter'.*same setting"):
        parse_control("glmm", {"maxeval": 10, "maxiter": 20})
    with pytest.raises(TypeError, match="control must be a dict"):
        mf.lmm(SLEEP, frames["sleep"], control=[("maxiter", 10)])


def test_validation_happens_before_any_work(frames, monkeypatch):
    import mixframe.design.build as build

    def forbidden(*args, **kwargs):
        raise AssertionError("the design was built before control was checked")

    monkeypatch.setattr(build, "build_design", forbidden)
    for fit in (lambda: mf.lmm(SLEEP, frames["sleep"], control={"bad": 1}),
                lambda: mf.glmm(CBPP, frames["cbpp"], control={"bad": 1}),
                lambda: mf.clmm(WINE, frames["wine"], groups="judge", control={"bad": 1}),
                lambda: mf.clm(WINE, frames["wine"], control={"bad": 1})):
        with pytest.raises(ValueError, match="unknown control option 'bad'"):
            fit()


def test_every_documented_key_is_accepted_and_normalised():
    values = {"optimizer": "BOBYQA", "maxiter": 1e4, "maxeval": 500, "tol": 1e-8, "ftol_rel": 1e-12,
              "ftol_abs": 0, "xtol_rel": 1e-9, "xtol_abs": 1e-9, "initial_step": [0.1, 0.2], "verbose": 0,
              "progress": False, "batch_size": 1000.0, "pirls_tol": 1e-12, "hessian_step": 1e-3,
              "calc_hessian": 1}
    for kind, cls in KINDS.items():
        given = {k: values[k] for k in cls.allowed() if not (k == "maxiter" and "maxeval" in cls.allowed())}
        rec = parse_control(kind, given)
        assert type(rec) is cls
        opts = rec.options()
        assert set(opts) == {cls.aliases.get(k, k) for k in given}
        types = {"optimizer": str, "initial_step": tuple, "maxiter": int, "batch_size": int, "verbose": bool,
                 "progress": bool, "calc_hessian": bool}
        for key, value in opts.items():
            assert type(value) is types.get(key, float), key
        if "optimizer" in opts:
            assert opts["optimizer"] == "bobyqa"
        if "initial_step" in opts:
            assert opts["initial_step"] == (0.1, 0.2)
    assert parse_control("glmm", {"maxeval": 500}).options() == {"maxiter": 500}
    assert parse_control("lmm", None) == LMMControl() and LMMControl().options() == {}
    assert parse_control("lmm", {"tol": None}).options() == {}          # None: the default
    # a record of one kind is read as its settings by another
    assert parse_control("streamed lmm", LMMControl(maxiter=5)) == StreamedLMMControl(maxiter=5)
    assert parse_control("lmm", StreamedLMMControl(maxiter=5)) == LMMControl(maxiter=5)
    with pytest.raises(ValueError, match="'batch_size' for lmm"):
        parse_control("lmm", StreamedLMMControl(batch_size=5))
    rec = CLMControl(maxiter=3)
    assert parse_control("clm", rec) is rec
    # records built directly are checked and normalised too
    assert GLMMControl(maxiter=np.int64(50), calc_hessian=np.bool_(False)).options() == \
        {"maxiter": 50, "calc_hessian": False}
    assert type(GLMMControl(maxiter=np.int64(50)).maxiter) is int
    with pytest.raises(ValueError, match="control option 'optimizer' for clmm: 'lbfgs' is not one of"):
        CLMMControl(optimizer="lbfgs")
    with pytest.raises(ValueError, match="control option 'tol' for clm must be"):
        CLMControl(tol="small")


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_allowed_optimizer_fits(frames, optimizer):
    # every optimizer the record admits is one the LMM fitting code runs, to the same optimum
    fit = mf.lmm("Reaction ~ Days + (1 | Subject)", frames["sleep"],
                 control={"optimizer": optimizer, "maxiter": 20_000})
    ref = mf.lmm("Reaction ~ Days + (1 | Subject)", frames["sleep"])
    assert abs(fit.loglik - ref.loglik) < 1e-4
    assert abs(fit.fixef["Days"] - 10.467285959596) < 1e-3


def test_settings_reach_the_fit(frames):
    sleep, wine, cbpp = frames["sleep"], frames["wine"], frames["cbpp"]
    # CLM: the Newton iterations stop at maxiter, with a warning, and the loose tolerance stops it early
    full = mf.clm(WINE, wine)
    assert full.converged and abs(full.loglik - (-86.4919233656491)) < 1e-6     # ordinal::clm on wine
    with pytest.warns(mf.ConvergenceWarning, match="did not converge in 1 iterations"):
        one = mf.clm(WINE, wine, control={"maxiter": 1})
    assert not one.converged and one.loglik < full.loglik - 1e-6
    loose = wine.mixed.clm(WINE, control={"tol": 1.0})
    assert loose.loglik <= full.loglik and abs(loose.loglik - full.loglik) < 1.0
    tight = mf.clm(WINE, wine, control={"tol": 1e-12})
    assert abs(tight.fixef["tempwarm"] - 2.50310200789893) < 1e-8 and tight.loglik >= full.loglik - 1e-12
    # LMM: a small evaluation budget for the derivative-free optimizer is used
    with pytest.warns(mf.ConvergenceWarning):
        short = mf.lmm(SLEEP, sleep, control={"optimizer": "bobyqa", "maxiter": 5})
    assert not short.converged
    # GLMM: calc_hessian=False skips the Hessian (the fit itself is the same)
    a = mf.glmm(CBPP, cbpp)
    b = cbpp.mixed.glmm(CBPP, control={"calc_hessian": False, "maxeval": 100_000})
    assert abs(a.loglik - b.loglik) < 1e-8


def test_records_pickle_and_compare_by_value():
    for kind, cls in KINDS.items():
        rec = parse_control(kind, {"maxiter": 7, "tol": 1e-6})
        back = pickle.loads(pickle.dumps(rec))
        assert back == rec and type(back) is cls and back.options() == {"maxiter": 7, "tol": 1e-6}
        assert hash(back) == hash(rec)
        with pytest.raises(AttributeError):
            rec.maxiter = 8                       # frozen
    assert repr(parse_control("glmm", {"pirls_tol": 1e-10})) == "GLMMControl(pirls_tol=1e-10)"


def test_clm_takes_control_and_the_default_is_the_same_fit(frames):
    wine = frames["wine"]
    a = mf.clm(WINE, wine)
    b = mf.clm(WINE, wine, control={"maxiter": 100, "tol": 1e-9})        # the documented defaults
    c = mf.clm(WINE, wine, control=CLMControl())
    assert a.fixef == b.fixef == c.fixef and a.loglik == b.loglik == c.loglik
    assert abs(a.fixef["contactyes"] - 1.52779765809506) < 1e-6


# ------------------------------------------------------------------------------ documentation stays in step
COLUMNS = {"`lmm`": "lmm", "`lmm`, streamed": "streamed lmm", "`glmm`": "glmm", "`clmm`": "clmm",
           "`clm`": "clm"}


def _doc_table() -> dict[str, dict[str, str]]:
    """kind -> {key: default} from the control table of docs/index.md ("—": not a key of that kind)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "index.md").read_text(encoding="utf-8")
    section = re.search(r"^## Fit settings: `control`\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "docs/index.md has no control section"
    lines = [ln for ln in section.group(1).splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    kinds = [COLUMNS.get(c) for c in header]
    assert [k for k in kinds if k] == list(KINDS)
    table: dict[str, dict[str, str]] = {k: {} for k in KINDS}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for kind, cell in zip(kinds, cells):
            if kind and cell != "—":
                table[kind][cells[0].strip("`")] = cell
    return table


@pytest.mark.parametrize("kind", list(KINDS))
def test_docs_table_lists_every_key_with_its_default(kind):
    documented = _doc_table()[kind]
    assert sorted(documented) == KINDS[kind].allowed()
    assert documented == {key: default for key, default, _ in control_table(kind)}


@pytest.mark.parametrize("fn, cls", [(mf.lmm, StreamedLMMControl), (mf.glmm, GLMMControl),
                                     (mf.clmm, CLMMControl), (mf.clm, CLMControl)])
def test_api_docstrings_name_every_key(fn, cls):
    entry = fn.__doc__.split("control : dict, optional", 1)[1].split("Returns", 1)[0]
    for key in cls.allowed():
        assert f"``{key}``" in entry, (fn.__name__, key)
