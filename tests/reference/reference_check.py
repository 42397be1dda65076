"""One comparison of a fitted model with R's reference answer, with the tolerances of the project's reference
check (``../shared/tools/check_reference.py``): the suite and that tool judge a fit by the same rules.

``compare(case, kind, fit, formula)`` returns a list of failures, ``(quantity, ours, R's, tolerance)``; an empty
list is a pass. Beyond the reference check's quantities it also holds the fit to R's deviance (as each package
defines it), its number of parameters, its singular flag and its convergence.
"""
from __future__ import annotations

import math
import re

import numpy as np

# Tolerances on |ours - R| (the names and values of the reference check):
#   fe_se_frac       fixed effects and thresholds: this fraction of R's standard error
#   se_rel           their standard errors: relative, per model kind
#   sd_rel, sd_abs   random-effect SDs (and an LMM's residual SD): sd_rel * |R| + sd_abs
#   corr_abs         random-effect correlations
#   loglik_abs       maximised log-likelihood (the REML one for REML fits)
#   blup_rel_sd      conditional modes: this fraction of R's SD of that random effect (at least sd_abs / blup_rel_sd)
#   prob_abs         ordinal category probabilities with the random effects at zero
#   df_rel           Satterthwaite denominator df of LMM fixed effects
#   condsd_rel       conditional SDs of the random effects (largest relative difference over the levels)
#   pred_rel         link-scale predictions of the first rows, with and without random effects, relative to max(|R|, 1)
#   disp_rel         a GLMM's dispersion as glmmTMB's sigma() defines it
TOL = {
    "fe_se_frac": 2e-3,
    "se_rel": {"lmm": 2e-3, "glmm": 1e-2, "clmm": 1e-2},
    "sd_rel": 2e-3,
    "sd_abs": 1e-4,
    "corr_abs": 5e-3,
    "loglik_abs": 1e-3,
    "blup_rel_sd": 5e-3,
    "prob_abs": 1e-3,
    "df_rel": 1e-2,
    "condsd_rel": 1e-2,
    "pred_rel": 1e-3,
    "disp_rel": 5e-3,
}

# Formulas written back as the user writes them where R stores an expansion.
FORMULA_OVERRIDE = {"sleepstudy_uncorr": "Reaction ~ Days + (Days || Subject)"}


def bar_groups(formula: str) -> set[str]:
    """Columns used as grouping factors in the bars ``(expr | g)`` of ``formula`` (``g1/g2``, ``g1:g2``: both)."""
    groups, stack = set(), []
    for i, ch in enumerate(formula):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            inner = formula[stack.pop() + 1:i]
            depth, bar = 0, None
            for j, c in enumerate(inner):
                depth += (c == "(") - (c == ")")
                if c == "|" and depth == 0:
                    bar = j
                    break
            if bar is None:
                continue
            for name in re.split(r"[/:+]", inner[bar + 1:].lstrip("|")):
                name = name.strip()
                if name and "(" not in name:
                    groups.add(name)
    return groups


def canonical_group(group: str, level: str | None, factors: set[str]) -> tuple[str, str | None]:
    """A spelling-independent key for a grouping factor (R's ``g.1`` is ``g``; ``b:a`` is ``a:b``) and a level."""
    m = re.fullmatch(r"(.+)\.\d+", group)
    if m and group not in factors and m.group(1) in factors:
        group = m.group(1)
    parts = group.split(":")
    if len(parts) > 1:
        order = sorted(range(len(parts)), key=parts.__getitem__)
        group = ":".join(parts[i] for i in order)
        if level is not None:
            lparts = level.split(":")
            if len(lparts) == len(parts):
                level = ":".join(lparts[i] for i in order)
    return group, level


def kind_of(case: dict, formula: str) -> str:
    if case["package"] == "ordinal":
        return "clmm" if bar_groups(formula) else "clm"
    if case["package"] == "lme4" and case["family"] == "gaussian" and case["link"] == "identity":
        return "lmm"
    return "glmm"


def reference_loglik(case: dict) -> float:
    """R's log-likelihood on the scale a correct fit reports (the exact integral for lme4's nAGQ > 1 fits)."""
    if case["method"].startswith("AGQ") and case.get("logLik_integrated") is not None:
        return case["logLik_integrated"]
    exact = (case.get("check_outer_limits") or {}).get("exact_newton_step", {}).get("exact_laplace_logLik_optimum")
    return case["logLik"] if exact is None else exact


def fit_case(case: dict, df, formula: str):
    """Fit a case through the public API as R's call does; returns (kind, fit)."""
    import mixframe as mf

    kind = kind_of(case, formula)
    m = re.search(r"nAGQ=(\d+)", case["method"])
    nagq = int(m.group(1)) if m else 1
    extra = {"weights": case["weights"]} if case.get("weights") else {}
    if kind in ("clmm", "clm") and case.get("threshold", "flexible") != "flexible":
        extra["threshold"] = case["threshold"]
    if kind == "lmm":
        return kind, mf.lmm(formula, df, reml=case["method"] == "REML", **extra)
    if kind == "glmm":
        family = {"nbinom2": "negative_binomial", "Gamma": "gamma",
                  "inverse.gaussian": "inverse_gaussian"}.get(case["family"], case["family"])
        return kind, mf.glmm(formula, df, family=family, link=case["link"], nagq=nagq, **extra)
    if kind == "clmm":
        return kind, mf.clmm(formula, df, link=case["link"], nagq=nagq, **extra)
    return kind, mf.clm(formula, df, link=case["link"], **extra)


def _isnull(x) -> bool:
    import pandas as pd

    return x is None or (pd.api.types.is_scalar(x) and bool(pd.isna(x)))


def _to_pandas(frame):
    return frame.to_pandas() if hasattr(frame, "to_pandas") else frame


def _close(a, b, tol) -> bool:
    return a is not None and b is not None and math.isfinite(a) and abs(a - b) <= tol


class _Failures(list):
    def check(self, ok, quantity, ours, ref, tol):
        if not ok:
            self.append((quantity, ours, ref, tol))


def compare(case: dict, kind: str, fit, formula: str) -> list:
    """Every quantity R's reference holds, against the fit; the failures (an empty list is a pass)."""
    out = _Failures()
    factors = set(case.get("ngroups") or {}) | bar_groups(formula)
    _coefficients(case, kind, fit, out)
    if case["package"] in ("glmmTMB", "TMB"):
        ref = case.get("nb_size") if case["family"].startswith("nbinom") else case.get("sigma")
        if ref is not None:
            o = None if _isnull(fit.sigma) else float(fit.sigma)
            out.check(_close(o, ref, TOL["disp_rel"] * ref), "sigma (dispersion)", o, ref, TOL["disp_rel"] * ref)
    ref_ll = reference_loglik(case)
    out.check(_close(float(fit.loglik), ref_ll, TOL["loglik_abs"]), "loglik", fit.loglik, ref_ll, TOL["loglik_abs"])
    out.check(fit.nobs == case["nobs"], "nobs", fit.nobs, case["nobs"], 0)
    if case.get("varcorr"):
        _variance_components(case, kind, fit, factors, out)
    if case.get("ranef"):
        _blups(case, fit, factors, out)
    _predictions(case, kind, fit, out)
    _record(case, kind, fit, out)
    return list(out)


def _record(case, kind, fit, out):
    """The deviance (lme4's GLMM deviance is the sum of squared deviance residuals; otherwise -2 logLik, and for
    REML fits the ML deviance at the REML estimates), the number of parameters, the singular flag, convergence."""
    ref = case.get("deviance")
    if ref is not None and not case["method"].startswith("AGQ"):
        tol = 1e-4 * abs(ref) if kind == "glmm" and case["package"] == "lme4" else 2e-3
        out.check(_close(float(fit.deviance), ref, tol), "deviance", fit.deviance, ref, tol)
    if case.get("df") is not None:
        n_params = fit.raw.n_params
        out.check(n_params == case["df"], "number of parameters", n_params, case["df"], 0)
    if case.get("singular") is not None:
        out.check(bool(fit.singular) == bool(case["singular"]), "singular", fit.singular, case["singular"], 0)
    out.check(bool(fit.converged), "converged", fit.converged, True, 0)


def _coefficients(case, kind, fit, out):
    co = _to_pandas(fit.coefficients())
    est = dict(zip(co["term"], co["estimate"]))
    se = dict(zip(co["term"], co["std_error"]))
    se_rel = TOL["se_rel"]["lmm" if kind == "lmm" else ("clmm" if kind in ("clmm", "clm") else "glmm")]
    ref_fe = {**(case.get("fixef") or {}), **(case.get("thresholds") or {})}
    ref_se = {**(case.get("fixef_se") or {}), **(case.get("thresholds_se") or {})}
    for term, r in ref_fe.items():
        tol = TOL["fe_se_frac"] * ref_se.get(term, 1.0) + 1e-9 * abs(r)
        out.check(_close(est.get(term), r, tol), f"estimate[{term}]", est.get(term), r, tol)
        if term in ref_se:
            out.check(_close(se.get(term), ref_se[term], se_rel * ref_se[term]), f"std_error[{term}]",
                      se.get(term), ref_se[term], se_rel * ref_se[term])
    if kind == "lmm" and case.get("satterthwaite"):
        out.check("df" in co.columns, "coefficients() has a df column", None, None, None)
        dfs = dict(zip(co["term"], co["df"])) if "df" in co.columns else {}
        for term, r in case["satterthwaite"].items():
            o = dfs.get(term)
            o = None if _isnull(o) else float(o)
            out.check(_close(o, r["df"], TOL["df_rel"] * r["df"]), f"df[{term}]", o, r["df"], TOL["df_rel"] * r["df"])


def _vc_key(group, term1, term2, factors):
    group, _ = canonical_group(group, None, factors)
    if term1 is not None and term2 is not None:
        term1, term2 = sorted((term1, term2))
    return group, term1, term2


def _variance_components(case, kind, fit, factors, out):
    vc = _to_pandas(fit.variance_components())
    rows = {}
    for g, t1, t2, sdcor in zip(vc["group"], vc["term1"], vc["term2"], vc["sdcor"]):
        key = _vc_key(str(g), None if _isnull(t1) else str(t1), None if _isnull(t2) else str(t2), factors)
        rows[key] = None if _isnull(sdcor) else float(sdcor)
    for r in case["varcorr"]:
        if r["group"] == "Residual":
            if kind != "lmm":  # a GLMM's dispersion is compared as sigma, above
                continue
            key = ("Residual", None, None)
        else:
            key = _vc_key(r["group"], r["term1"], r["term2"], factors)
        ref = r["corr"] if r["term2"] is not None else r["sd"]
        if ref is None:
            continue
        tol = TOL["corr_abs"] if r["term2"] is not None else TOL["sd_rel"] * abs(ref) + TOL["sd_abs"]
        out.check(_close(rows.get(key), ref, tol), f"sdcor[{r['group']}:{r['term1']},{r['term2']}]",
                  rows.get(key), ref, tol)


def _blups(case, fit, factors, out):
    bl = _to_pandas(fit.blups())
    ours, ours_sd = {}, {}
    for g, lv, t, e, sd in zip(bl["group"], bl["level"], bl["term"], bl["estimate"], bl["std_error"]):
        key = (*canonical_group(str(g), str(lv), factors), str(t))
        ours[key] = math.nan if _isnull(e) else float(e)
        ours_sd[key] = math.nan if _isnull(sd) else float(sd)
    sds = {(canonical_group(r["group"], None, factors)[0], r["term1"]): r["sd"]
           for r in case.get("varcorr") or [] if r["term2"] is None and r["group"] != "Residual"}
    floor = TOL["sd_abs"] / TOL["blup_rel_sd"]
    for group, rows in case["ranef"].items():
        worst = worst_sd = 0.0
        missing = 0
        for r in rows:
            cg, clv = canonical_group(group, str(r["level"]), factors)
            o = ours.get((cg, clv, r["term"]))
            if o is None:
                missing += 1
                continue
            err = abs(o - r["estimate"]) / max(sds.get((cg, r["term"]), 1.0), floor)
            worst = max(worst, err if math.isfinite(err) else math.inf)
            if r.get("condsd") and r["condsd"] > floor * TOL["blup_rel_sd"]:
                e_sd = abs(ours_sd[(cg, clv, r["term"])] - r["condsd"]) / r["condsd"]
                worst_sd = max(worst_sd, e_sd if math.isfinite(e_sd) else math.inf)
        out.check(missing == 0, f"blups[{group}] present", len(rows) - missing, len(rows), 0)
        out.check(worst <= TOL["blup_rel_sd"], f"blups[{group}] max |diff|/sd", worst, 0.0, TOL["blup_rel_sd"])
        out.check(worst_sd <= TOL["condsd_rel"], f"blups[{group}] std_error", worst_sd, 0.0, TOL["condsd_rel"])


def _predictions(case, kind, fit, out):
    pred = case.get("predictions")
    if not isinstance(pred, dict):
        return
    rows = [i - 1 for i in pred.get("rows", [])]
    if kind in ("lmm", "glmm") and pred.get("fixed_link"):
        for re_flag, key in ((False, "fixed_link"), (True, "conditional_link")):
            p = np.asarray(fit.predict(type="link", re=re_flag), dtype=float)[rows]
            ref = np.asarray(pred[key], dtype=float)
            err = float(np.max(np.abs(p - ref) / np.maximum(np.abs(ref), 1.0)))
            out.check(err <= TOL["pred_rel"], f"predict(link, re={re_flag})", err, 0.0, TOL["pred_rel"])
    if kind in ("clmm", "clm") and pred.get("fixed_prob"):
        p = np.asarray(fit.predict(type="prob", re=False))[rows]
        err = float(np.max(np.abs(p - np.asarray(pred["fixed_prob"]))))
        out.check(err <= TOL["prob_abs"], "predict(prob, re=False)", err, 0.0, TOL["prob_abs"])
