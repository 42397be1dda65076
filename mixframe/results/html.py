"""Rich display of a fitted model in a notebook (``MixedModel._repr_html_``).

The page shows, top to bottom: a title line (model kind, family and link, method, formula), any
warnings in a highlighted box (singular fit, failed convergence, the fit's own messages), the fit
statistics, the coefficient table and the variance components. Numbers are rounded to four
significant digits in a column-consistent way; p-values as R prints them.
"""
from __future__ import annotations

import html
import math

import numpy as np

from mixframe.models.base import kind_of

from . import tidy
from ._text import format_column, format_p, stars

_STYLE = (
    "<style>"
    ".mixframe-fit{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;max-width:60em}"
    ".mixframe-fit h4{margin:0.2em 0 0.3em 0}"
    ".mixframe-fit .mf-model{margin:0 0 0.6em 0}"
    ".mixframe-fit code{font-size:12px}"
    ".mixframe-fit table{border-collapse:collapse;margin:0.2em 0 0.8em 0}"
    ".mixframe-fit th,.mixframe-fit td{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
    ".mixframe-fit th{font-weight:600}"
    ".mixframe-fit td.mf-text,.mixframe-fit th.mf-text{text-align:left}"
    ".mixframe-fit caption{caption-side:top;text-align:left;font-weight:600;padding:2px 0}"
    ".mixframe-fit .mf-warning{background:#fff4e5;border-left:4px solid #e69500;padding:4px 8px;"
    "margin:0.3em 0 0.6em 0;color:#5a3b00}"
    "</style>"
)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _signif(value, digits: int = 4) -> str:
    """One number with ``digits`` significant digits (fixed notation where that is readable)."""
    if value is None:
        return ""
    v = float(value)
    if math.isnan(v):
        return ""
    if v == 0.0 or 1e-4 <= abs(v) < 1e7:
        return format_column([v], digits)[0].strip()
    return f"{v:.{digits - 1}e}"


def _numbers(values, digits: int = 4) -> list[str]:
    """A column of numbers with a shared number of decimals; blanks for NaN."""
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size and (np.max(np.abs(finite)) >= 1e7 or
                        np.min(np.abs(finite[finite != 0]), initial=1.0) < 1e-4):
        return [_signif(v, digits) for v in arr]
    return [s.strip() for s in format_column(arr, digits, blank_nan=True)]


def _table(caption: str, header: list[str], columns: list[list[str]], text_columns: int = 1) -> str:
    """An HTML table; the first ``text_columns`` columns are left-aligned labels."""
    def cls(j):
        return ' class="mf-text"' if j < text_columns else ""

    head = "".join(f"<th{cls(j)}>{_esc(h)}</th>" for j, h in enumerate(header))
    n = len(columns[0]) if columns else 0
    rows = []
    for i in range(n):
        cells = "".join(f"<td{cls(j)}>{_esc(col[i])}</td>" for j, col in enumerate(columns))
        rows.append(f"<tr>{cells}</tr>")
    return (f"<table><caption>{_esc(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def model_line(raw, formula: str) -> str:
    """The title line: model kind, family and link, method, formula (plain text).

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
    >>> model_line(fit.raw, fit.formula)
    'Linear mixed model · gaussian (identity) · REML · Reaction ~ Days + (Days | Subject)'
    """
    return " · ".join([*_model_parts(raw), formula])


def _model_parts(raw) -> list[str]:
    kind = kind_of(raw)
    return [kind.title, kind.family_label(raw), raw.method]


def fit_warnings(raw) -> list[str]:
    """The warnings worth showing: singular fit, non-convergence, and the fit's own messages."""
    notes = []
    if raw.singular:
        notes.append("Singular fit: a variance component is estimated at zero or a correlation at ±1; "
                     "consider simplifying the random effects.")
    if not raw.converged:
        notes.append("The optimizer did not report convergence; the estimates may not be the optimum.")
    for message in raw.messages or []:
        text = str(message).strip()
        if not text:
            continue
        duplicate = (raw.singular and "singular" in text.lower()) or any(text == n for n in notes)
        if not duplicate:
            notes.append(text)
    return notes


def _statistics(raw) -> str:
    aic, bic = tidy.information_criteria(raw)
    header = ["observations", "log-likelihood", "AIC", "BIC", "deviance"]
    values = [str(raw.design.n_obs), _signif(raw.loglik, 6), _signif(aic, 6), _signif(bic, 6),
              _signif(raw.deviance, 6)]
    if raw.reml_crit is not None:
        header.append("REML criterion")
        values.append(_signif(raw.reml_crit, 6))
    if raw.sigma is not None:
        header.append("sigma")
        values.append(_signif(raw.sigma))
    for name, count in tidy.ngroups(raw).items():
        header.append(f"groups: {name}")
        values.append(str(count))
    header.append("iterations")
    values.append(str(raw.iterations))
    return _table("Fit statistics", header, [[v] for v in values], text_columns=0)


def _coefficients(raw) -> str:
    cols = tidy.coefficient_columns(raw)
    p = np.asarray(cols["p_value"], dtype=float)
    use_t = tidy.uses_t(raw)
    header = ["term", "estimate", "std. error", "t" if use_t else "z"]
    body = [list(cols["term"]), _numbers(cols["estimate"]), _numbers(cols["std_error"]),
            _numbers(cols["statistic"], 3)]
    if use_t:
        header.append("df")
        body.append(_numbers(cols["df"], 3))
    header += ["p-value", "", "95% CI low", "95% CI high"]
    n = len(p)
    bounds = _numbers(np.concatenate([cols["conf_low"], cols["conf_high"]]))
    body += [[format_p(v) for v in p], [stars(v) for v in p], bounds[:n], bounds[n:]]
    text_columns = 1
    if "exp_estimate" in cols:
        kind = kind_of(raw)
        header.append(kind.ratio_label(raw))
        ratios = _numbers(cols["exp_estimate"])
        # exp of a cut-point is no ratio: leave those cells empty
        ratios = [r if t != kind.threshold_block else "" for r, t in zip(ratios, cols["coef_type"])]
        body.append(ratios)
    # a fit of one block ("fixed"): the column would say nothing
    if len(kind_of(raw).blocks) > 1 or len(raw.block_names) > 1:
        header.insert(0, "type")
        body.insert(0, list(cols["coef_type"]))
        text_columns = 2
    return _table("Coefficients", header, body, text_columns=text_columns)


def _variance_components(raw) -> str:
    cols = tidy.variance_component_columns(raw)
    if len(cols["group"]) == 0:
        return ""
    term2 = ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t)
             for t in cols["term2"]]
    term1 = ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t)
             for t in cols["term1"]]
    kinds = ["SD" if t2 == "" else "corr" for t2 in term2]
    header = ["group", "term", "with", "variance / covariance", "SD / corr", ""]
    body = [list(cols["group"]), term1, term2, _numbers(cols["vcov"]), _numbers(cols["sdcor"]), kinds]
    return _table("Variance components", header, body, text_columns=3)


def model_html(raw, formula: str) -> str:
    """The notebook view of a fitted model as one HTML fragment.

    Parameters
    ----------
    raw : RawFit
        The finished fit.
    formula : str
        The formula as the user gave it.

    Returns
    -------
    str
        A self-contained ``<div>`` with its own small style sheet.

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.lmm("Yield ~ 1 + (1 | Batch)", mf.datasets.dyestuff())
    >>> page = model_html(fit.raw, fit.formula)
    >>> "Variance components" in page and "Batch" in page
    True
    """
    description = _esc(" · ".join(_model_parts(raw)[1:]))
    parts = [_STYLE, '<div class="mixframe-fit">',
             f"<h4>{_esc(kind_of(raw).title)}</h4>",
             f'<div class="mf-model">{description}<br><code>{_esc(formula)}</code></div>']
    for note in fit_warnings(raw):
        parts.append(f'<div class="mf-warning" role="alert">&#9888; {_esc(note)}</div>')
    parts.append(_statistics(raw))
    parts.append(_coefficients(raw))
    parts.append(_variance_components(raw))
    parts.append("</div>")
    return "".join(parts)
