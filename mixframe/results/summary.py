"""Printed summaries: lme4's layout for LMMs and GLMMs, ordinal's layout for CLMMs and CLMs."""
from __future__ import annotations

import numpy as np

from mixframe.models.base import kind_of

from . import tidy
from ._text import SIGNIF_LEGEND, abbreviate, format_column, format_p, grid, stars


class SummaryText(str):
    """A summary string that prints as text in an interactive session.

    Examples
    --------
    >>> SummaryText("a\\nb")
    a
    b
    """

    def __repr__(self) -> str:
        return str(self)


def _criteria_block(raw) -> list[str]:
    aic, bic = tidy.information_criteria(raw)
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    # the deviance as lme4's summary prints it: -2 log-likelihood (a GLMM's ``raw.deviance`` is the sum of
    # its conditional deviance residuals, as lme4's deviance() returns)
    deviance = -2.0 * raw.loglik if raw.kind == "glmm" else raw.deviance
    values = [f"{aic:.1f}", f"{bic:.1f}", f"{raw.loglik:.1f}", f"{deviance:.1f}",
              str(raw.design.n_obs - raw.n_params)]
    widths = [max(len(n), len(v)) + 1 for n, v in zip(names, values)]
    return ["".join(n.rjust(w) for n, w in zip(names, widths)),
            "".join(v.rjust(w) for v, w in zip(values, widths))]


def _scaled_residuals(raw) -> list[str]:
    kind = kind_of(raw)
    r = kind.response_scale(raw)["pearson"]
    r = r[np.isfinite(r)] / kind.residual_scale(raw)
    if r.size == 0:
        return []
    q = np.quantile(r, [0.0, 0.25, 0.5, 0.75, 1.0])
    cols = [(h, [f"{v:.4f}"], "r") for h, v in zip(["Min", "1Q", "Median", "3Q", "Max"], q)]
    return ["Scaled residuals:"] + grid(cols)


def random_effects_table(raw, with_corr: bool = True) -> list[str]:
    """Groups / Name / Variance / Std.Dev. (/ Corr) rows, one per effect, then the residual."""
    groups, names, var, sd, corr = [], [], [], [], []
    max_k = 1
    for term, cov in zip(raw.design.terms, tidy.term_covariances(raw)):
        k = term.k
        max_k = max(max_k, k)
        s = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        for i, name in enumerate(term.col_names):
            groups.append(term.group if i == 0 else "")
            names.append(name)
            var.append(cov[i, i])
            sd.append(s[i])
            corr.append([cov[i, j] / (s[i] * s[j]) if s[i] * s[j] > 0 else np.nan
                         for j in range(i)])
    res = tidy.residual_variance(raw)
    if res is not None:
        groups.append("Residual")
        names.append("")
        var.append(res)
        sd.append(np.sqrt(res))
        corr.append([])
    columns = [("Groups", groups, "l"), ("Name", names, "l"),
               ("Variance", format_column(var), "l"), ("Std.Dev.", format_column(sd), "l")]
    if with_corr and max_k > 1:
        for j in range(max_k - 1):
            cells = [f"{row[j]:.2f}" if j < len(row) and np.isfinite(row[j]) else "" for row in corr]
            columns.append(("Corr" if j == 0 else "", cells, "r"))
    return ["Random effects:"] + grid(columns, indent=" ")


def _groups_line(raw) -> str:
    parts = "; ".join(f"{g}, {n}" for g, n in tidy.ngroups(raw).items())
    line = f"Number of obs: {raw.design.n_obs}"
    return line + (f", groups:  {parts}" if parts else "")


def coefficient_table(raw, rows: np.ndarray, with_p: bool = True) -> list[str]:
    """The Estimate / Std. Error / (df) / statistic / p-value table of the selected coefficients."""
    cols = tidy.coefficient_columns(raw)
    rows = np.asarray(rows, dtype=int)
    names = [cols["term"][i] for i in rows]
    est, se = cols["estimate"][rows], cols["std_error"][rows]
    both = format_column(np.concatenate([est, se]))
    stat_name = "t value" if tidy.uses_t(raw) else "z value"
    columns = [("", names, "l"), ("Estimate", both[: len(rows)], "r"),
               ("Std. Error", both[len(rows):], "r")]
    if tidy.uses_t(raw):
        columns.append(("df", format_column(cols["df"][rows], digits=4), "r"))
    columns.append((stat_name, format_column(cols["statistic"][rows], digits=4), "r"))
    if with_p:
        p = cols["p_value"][rows]
        columns.append((f"Pr(>|{stat_name[0]}|)", [format_p(v) for v in p], "r"))
        columns.append(("", [stars(v) for v in p], "l"))
    return grid(columns)


def _correlation_block(raw, rows: np.ndarray) -> list[str]:
    """Correlations of the estimates of the selected coefficients (lme4 prints those of the fixed effects)."""
    v = np.asarray(raw.vcov, dtype=float)[np.ix_(rows, rows)]
    p = v.shape[0]
    if p < 2 or p > 12:
        return []
    s = np.sqrt(np.diag(v))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = v / np.outer(s, s)
    names = [raw.coef_names[i] for i in rows]
    short = [abbreviate(n) for n in names]
    columns = [("", names[1:], "l")]
    for j in range(p - 1):
        cells = [f"{r[i, j]:.3f}" if i > j else "" for i in range(1, p)]
        columns.append((short[j], cells, "r"))
    return ["", "Correlation of Fixed Effects:"] + grid(columns)


def block_title(block: str) -> str:
    """The heading of a coefficient block: ``"zero_inflation"`` -> ``"Zero inflation"``.

    Examples
    --------
    >>> block_title("zero_inflation")
    'Zero inflation'
    """
    text = block.replace("_", " ")
    return text[:1].upper() + text[1:]


def _messages(raw) -> list[str]:
    out = []
    if raw.singular:
        out.append("boundary (singular) fit: a variance is estimated at zero or a correlation at +-1")
    if not raw.converged:
        out.append("the optimizer did not report convergence")
    out.extend(str(m) for m in raw.messages)
    return out


def mixed_summary(raw, data_name: str | None = None) -> str:
    """lme4-style summary of an LMM or a GLMM."""
    kind = kind_of(raw)
    lines = [kind.method_title(raw)]
    family_line = kind.summary_family_line(raw)
    if family_line:
        lines.append(family_line)
    lines.append(f"Formula: {raw.design.formula}")
    if data_name:
        lines.append(f"   Data: {data_name}")
    lines.append("")
    if raw.reml_crit is not None:
        lines += [f"REML criterion at convergence: {raw.reml_crit:.1f}", ""]
    lines += _criteria_block(raw) + [""]
    scaled = _scaled_residuals(raw)
    if scaled:
        lines += scaled + [""]
    if raw.design.terms:
        lines += random_effects_table(raw)
    lines.append(_groups_line(raw))
    dispersion = kind.dispersion_line(raw)
    if dispersion:
        lines.append(dispersion)
    with_p = kind.summary_with_p(raw)
    fixed = raw.block_index(kind.x_block)
    lines += ["", "Fixed effects:"] + coefficient_table(raw, fixed, with_p=with_p)
    for block in raw.block_names:         # a further linear predictor: its own table
        if block != kind.x_block:
            lines += ["", f"{block_title(block)}:"] + coefficient_table(raw, raw.block_index(block), with_p)
    if with_p:
        lines += ["---", SIGNIF_LEGEND]
    lines += _correlation_block(raw, fixed)
    msgs = _messages(raw)
    if msgs:
        lines += [""] + msgs
    return "\n".join(lines)


def ordinal_summary(raw, data_name: str | None = None, threshold: str = "flexible") -> str:
    """ordinal-style summary of a CLMM or a CLM."""
    kind = kind_of(raw)
    aic, _ = tidy.information_criteria(raw)
    lines = [kind.method_title(raw), "", f"formula: {raw.design.formula}"]
    if data_name:
        lines.append(f"data:    {data_name}")
    lines.append("")
    info = [("link", raw.link), ("threshold", threshold), ("nobs", str(raw.design.n_obs)),
            ("logLik", f"{raw.loglik:.2f}"), ("AIC", f"{aic:.2f}"), ("niter", str(raw.iterations))]
    if raw.extra.get("max_grad") is not None:
        info.append(("max.grad", f"{raw.extra['max_grad']:.2e}"))
    if raw.extra.get("cond_H") is not None:
        info.append(("cond.H", f"{raw.extra['cond_H']:.1e}"))
    lines += grid([(h, [v], "l") for h, v in info], indent=" ") + [""]
    if raw.design.terms:
        lines += random_effects_table(raw, with_corr=True)
        groups = " ".join(f"{g} {n}" for g, n in tidy.ngroups(raw).items())
        lines += [f"Number of groups:  {groups}", ""]
    loc = raw.block_index(kind.x_block)
    thr = raw.block_index(kind.threshold_block)
    if loc.size:
        lines += ["Coefficients:"] + coefficient_table(raw, loc) + ["---", SIGNIF_LEGEND, ""]
    else:
        lines += ["No location coefficients", ""]
    lines += ["Threshold coefficients:"] + coefficient_table(raw, thr, with_p=False)
    msgs = _messages(raw)
    if msgs:
        lines += [""] + msgs
    return "\n".join(lines)


def summary_text(raw, data_name: str | None = None, threshold: str = "flexible") -> SummaryText:
    """The summary of any fit kind, in the layout its kind prints."""
    return SummaryText(kind_of(raw).summary(raw, data_name, threshold))
