"""Parse a whole lme4 formula: response, fixed part, offsets and random-effect bars."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import FormulaError
from .bars import Bar, bar_split, check_parentheses, extract_bars, join_sum, matching_close, split_sum
from .safety import check_formula_text, r_idioms

__all__ = ["ParsedFormula", "call_argument", "parse_formula"]


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into its parts.

    Attributes
    ----------
    formula : str
        The formula as given.
    response : str
        Left side as written (``"Reaction"``, ``"cbind(incidence, size - incidence)"``).
    cbind : tuple of str or None
        ``(successes, failures)`` expressions of a ``cbind`` response.
    fixed : str
        Right side without bars and offsets (``"1"`` when nothing is left).
    bars : tuple of Bar
        Random-effect terms, expanded, in formula order (then ``groups=``, then ``random=``).
    offsets : tuple of str
        Expressions inside ``offset(...)`` terms.
    """

    formula: str
    response: str
    cbind: tuple | None
    fixed: str
    bars: tuple
    offsets: tuple

    @property
    def fixed_formula(self) -> str:
        """The formula without its random part: ``"response ~ fixed"``."""
        return f"{self.response} ~ {self.fixed}"


def _top_level_index(text: str, char: str) -> list[int]:
    out = []
    depth = 0
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == char and depth == 0:
            out.append(i)
    return out


def call_argument(piece: str, name: str):
    """The argument text of ``name(...)`` when ``piece`` is exactly that call, else None.

    Examples
    --------
    >>> call_argument("offset(log(n))", "offset")
    'log(n)'
    >>> call_argument("offset(a) * b", "offset") is None
    True
    """
    match = re.match(rf"^{name}\s*\(", piece)
    if not match:
        return None
    open_index = match.end() - 1
    if matching_close(piece, open_index) != len(piece) - 1:
        return None
    return piece[open_index + 1:-1].strip()


def _parse_cbind(response: str):
    inner = call_argument(response, "cbind")
    if inner is None:
        return None
    commas = _top_level_index(inner, ",")
    if len(commas) != 1:
        raise FormulaError(f"cbind response {response!r} needs exactly two arguments: "
                           f"cbind(successes, failures)")
    successes, failures = inner[:commas[0]].strip(), inner[commas[0] + 1:].strip()
    if not successes or not failures:
        raise FormulaError(f"empty argument in the cbind response {response!r}")
    return successes, failures


def _extra_bars(groups, random) -> list[Bar]:
    bars: list[Bar] = []
    if groups is not None:
        names = [groups] if isinstance(groups, str) else list(groups)
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise FormulaError(f"groups= takes column names; got {name!r}")
            bars.extend(extract_bars([("+", f"(1 | {name.strip()})")])[1])
    if random is not None:
        texts = [random] if isinstance(random, str) else list(random)
        for text in texts:
            if not isinstance(text, str):
                raise FormulaError(f"random= takes terms like '(1 | g)'; got {text!r}")
            check_parentheses(text)
            check_formula_text(text, f"random={text!r}")
            text = r_idioms(text)
            # a bar at the top level ("1 + x | g") is one term written without its parentheses
            terms = [("+", f"({text.strip()})")] if bar_split(text.strip()) is not None else split_sum(text)
            fixed, found = extract_bars(terms)
            if fixed or not found:
                raise FormulaError(f"random={text!r} must hold random-effect terms only, like '(1 | g)'")
            bars.extend(found)
    return bars


def parse_formula(formula: str, groups=None, random=None) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part, offsets and expanded bars.

    Parameters
    ----------
    formula : str
        Two-sided formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    groups : str or list of str, optional
        Each name adds a random intercept ``(1 | name)``.
    random : str or list of str, optional
        Extra random-effect terms, e.g. ``["(1 | judge)", "(1 | bottle)"]``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        No ``~``, no response, unbalanced parentheses, a malformed bar.

    Examples
    --------
    >>> p = parse_formula("y ~ x + offset(log(n)) + (x || g)")
    >>> p.fixed, p.offsets, [str(b) for b in p.bars]
    ('x', ('log(n)',), ['(1 | g)', '(0 + x | g)'])
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x + (1 | g)'; got {type(formula).__name__}")
    key = (formula, _hashable(groups), _hashable(random))
    try:
        hash(key)
    except TypeError:          # an odd groups=/random= value: parse it uncached (and let it raise)
        return _parse(formula, groups, random)
    return _parse_cached(*key)


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=128)
def _parse_cached(formula, groups, random) -> ParsedFormula:
    """The parse of a formula is a frozen value: fits of the same formula share it."""
    return _parse(formula, groups, random)


def _parse(formula: str, groups, random) -> ParsedFormula:
    text = formula.strip()
    check_parentheses(text)
    check_formula_text(text, f"the formula {formula!r}")
    text = r_idioms(text)
    tildes = _top_level_index(text, "~")
    if not tildes:
        raise FormulaError(f"formula {formula!r} has no '~'; write it as 'response ~ predictors + (1 | group)'")
    if len(tildes) > 1:
        raise FormulaError(f"formula {formula!r} has more than one '~'")
    response, rhs = text[:tildes[0]].strip(), text[tildes[0] + 1:].strip()
    if not response:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if not rhs:
        raise FormulaError(f"formula {formula!r} has nothing on the right of '~'; use 1 for an intercept")
    if "|" in response:
        raise FormulaError(f"the response {response!r} cannot contain a random-effect bar")
    fixed_terms, bars = extract_bars(split_sum(rhs))
    kept, offsets = [], []
    for sign, piece in fixed_terms:
        arg = call_argument(piece, "offset")
        if arg is None:
            kept.append((sign, piece))
        elif sign == "-" or not arg:
            raise FormulaError(f"offset term {piece!r} must be added with '+' and name an expression")
        else:
            offsets.append(arg)
    fixed = join_sum(kept) or "1"
    if fixed.startswith("-"):
        fixed = "1 " + fixed.replace("-", "- ", 1)
    bars.extend(_extra_bars(groups, random))
    return ParsedFormula(formula=formula, response=response, cbind=_parse_cbind(response), fixed=fixed,
                         bars=tuple(bars), offsets=tuple(offsets))
