"""Text helpers for the printed summaries: R-like number columns and aligned tables."""
from __future__ import annotations

import math

import numpy as np


def decimals_for(values, digits: int = 4, max_decimals: int = 8) -> int:
    """Decimals that show every finite non-zero value with at least ``digits`` significant digits.

    Examples
    --------
    >>> decimals_for([251.405, 6.825])
    3
    """
    need = 0
    for v in np.asarray(values, dtype=float).ravel():
        if np.isfinite(v) and v != 0.0:
            need = max(need, digits - 1 - math.floor(math.log10(abs(v))))
    return min(need, max_decimals)


def format_column(values, digits: int = 4, blank_nan: bool = False) -> list[str]:
    """Format numbers with a common number of decimals, as R's ``format(x, digits=)`` does.

    Examples
    --------
    >>> format_column([612.1, 35.07])
    ['612.10', ' 35.07']
    """
    dec = decimals_for(values, digits)
    out = []
    for v in np.asarray(values, dtype=float).ravel():
        if np.isnan(v):
            out.append("" if blank_nan else "NA")
        else:
            out.append(f"{v:.{dec}f}")
    width = max((len(s) for s in out), default=0)
    return [s.rjust(width) if s else s for s in out]


def format_p(p: float) -> str:
    """A p-value in the style of R's ``format.pval`` (``< 2e-16`` at the bottom).

    Examples
    --------
    >>> format_p(0.000344)
    '0.000344'
    """
    if p is None or np.isnan(p):
        return "NA"
    if p < 2.2e-16:
        return "< 2e-16"
    if p < 1e-4:
        return f"{p:.2e}"
    return f"{p:.3g}"


def stars(p: float) -> str:
    """Significance stars: *** < 0.001 < ** < 0.01 < * < 0.05 < . < 0.1."""
    if p is None or np.isnan(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def grid(columns: list[tuple[str, list[str], str]], indent: str = "") -> list[str]:
    """Lay out columns ``(header, cells, align)`` with ``align`` "l" or "r", one space apart."""
    widths = [max([len(h)] + [len(c) for c in cells]) for h, cells, _ in columns]
    n_rows = max((len(cells) for _, cells, _ in columns), default=0)

    def cell(text, width, align):
        return text.ljust(width) if align == "l" else text.rjust(width)

    lines = [indent + " ".join(cell(h, w, a) for (h, _, a), w in zip(columns, widths)).rstrip()]
    for i in range(n_rows):
        row = [cell(cells[i] if i < len(cells) else "", w, a)
               for (_, cells, a), w in zip(columns, widths)]
        lines.append(indent + " ".join(row).rstrip())
    return lines


def abbreviate(name: str, min_length: int = 6) -> str:
    """Shorten a name as R's ``abbreviate`` does: drop lower-case vowels, then lower-case letters,
    from the right (never the first character), then cut.

    Examples
    --------
    >>> abbreviate("(Intercept)")
    '(Intr)'
    """
    chars = list(name)
    for pool in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > min_length and i > 0:
            if chars[i] in pool:
                del chars[i]
            i -= 1
    return "".join(chars[:min_length]) if len(chars) > min_length else "".join(chars)
