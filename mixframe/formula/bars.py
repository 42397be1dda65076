"""Random-effect bars in lme4 formulas: find ``(expr | g)`` and ``(expr || g)``, strip and expand them.

Parentheses are matched properly (quotes and backticks are skipped), so a bar's left side may
call functions, ``(0 + log(x) | g)``, and bars may be grouped, ``((1 | a) + (0 + x | a))``.
Expansions follow lme4:

- ``(1 + x || g)`` → ``(1 | g) + (0 + x | g)``: one uncorrelated term per effect, intercept first;
- ``(1 | a/b)`` → ``(1 | a) + (1 | a:b)``;
- ``(1 | a:b)`` → one term whose grouping factor is the interaction of ``a`` and ``b``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

__all__ = ["Bar", "bar_split", "check_parentheses", "extract_bars", "join_sum", "matching_close", "split_sum"]

_QUOTES = "'\"`"
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Bar:
    """One random-effect term after expansion.

    Attributes
    ----------
    expr : str
        Left side of the bar (``"1"``, ``"Days"``, ``"0 + Days"``).
    group : str
        Grouping factor, components joined by ``":"`` (``"batch:cask"``).
    components : tuple of str
        Column names making up the grouping factor.
    source : str
        The bar as the user wrote it, for messages.
    """

    expr: str
    group: str
    components: tuple
    source: str = ""

    def __str__(self) -> str:
        return f"({self.expr} | {self.group})"


def _scan(text: str):
    """Yield ``(index, char, depth)`` for every character outside quotes; depth before the char."""
    depth = 0
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in _QUOTES:
            quote = ch
            continue
        yield i, ch, depth
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1


def check_parentheses(text: str) -> None:
    """Raise :class:`FormulaError` naming the term when parentheses do not balance.

    Examples
    --------
    >>> check_parentheses("y ~ x + (1 | g)")
    >>> check_parentheses("y ~ x + (1 | g")
    Traceback (most recent call last):
    ...
    mixframe.errors.FormulaError: unbalanced parentheses: '(' opened in term '(1 | g' is never closed ...
    """
    stack = []
    for i, ch, _ in _scan(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                start = max(text.rfind("+", 0, i), text.rfind("~", 0, i)) + 1
                raise FormulaError(
                    f"unbalanced parentheses: ')' without a matching '(' in term "
                    f"{text[start:i + 1].strip()!r} of {text!r}"
                )
            stack.pop()
    if stack:
        start = stack[0]
        raise FormulaError(
            f"unbalanced parentheses: '(' opened in term {text[start:].strip()!r} is never closed "
            f"in {text!r}"
        )


def matching_close(text: str, open_index: int) -> int:
    """Index of the ``)`` matching the ``(`` at ``open_index`` (-1 if none)."""
    depth = 0
    for i, ch, _ in _scan(text[open_index:]):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return open_index + i
    return -1


def split_sum(text: str) -> list[tuple[str, str]]:
    """Split at top-level ``+`` and ``-`` into ``(sign, term)`` pairs (empty terms dropped).

    Examples
    --------
    >>> split_sum("x - 1 + log(a - b) + (1 | g)")
    [('+', 'x'), ('-', '1'), ('+', 'log(a - b)'), ('+', '(1 | g)')]
    """
    out = []
    sign = "+"
    start = 0
    for i, ch, depth in _scan(text):
        if depth == 0 and ch in "+-":
            piece = text[start:i].strip()
            if piece:
                out.append((sign, piece))
            sign = ch
            start = i + 1
    piece = text[start:].strip()
    if piece:
        out.append((sign, piece))
    return out


def join_sum(terms: list[tuple[str, str]]) -> str:
    """Inverse of :func:`split_sum`.

    Examples
    --------
    >>> join_sum([("+", "x"), ("-", "1")])
    'x - 1'
    """
    text = ""
    for sign, piece in terms:
        if not text:
            text = piece if sign == "+" else f"-{piece}"
        else:
            text += f" {sign} {piece}"
    return text


def _wrapped(piece: str) -> bool:
    return piece.startswith("(") and matching_close(piece, 0) == len(piece) - 1


def bar_split(inner: str):
    """Split ``lhs | rhs`` / ``lhs || rhs`` at the first top-level bar: ``(lhs, double, rhs)`` or None."""
    for i, ch, depth in _scan(inner):
        if depth == 0 and ch == "|":
            double = inner[i + 1:i + 2] == "|"
            return inner[:i].strip(), double, inner[i + (2 if double else 1):].strip()
    return None


def _has_bar(text: str) -> bool:
    return any(ch == "|" for _, ch, _ in _scan(text))


def _column_name(name: str, source: str) -> str:
    name = name.strip()
    if name.startswith("`") and name.endswith("`") and len(name) > 2:
        return name[1:-1]
    if not name:
        raise FormulaError(f"empty grouping factor name in random-effect term {source!r}")
    if not _NAME.match(name):
        raise FormulaError(
            f"grouping factor {name!r} in random-effect term {source!r} must be a column name "
            f"(or names joined by ':' or '/'); quote unusual names with backticks"
        )
    return name


def _group_chain(rhs: str, source: str) -> list[tuple]:
    """``a/b:c`` → [(a,), (a, b, c)]: the nested grouping factors, outermost first."""
    if not rhs:
        raise FormulaError(f"empty right side of the bar in random-effect term {source!r}; "
                           f"name a grouping column, e.g. (1 | group)")
    if any(depth == 0 and ch == "+" for _, ch, depth in _scan(rhs)):
        raise FormulaError(f"'+' on the right of the bar in {source!r}; write one term per grouping "
                           f"factor, e.g. (1 | a) + (1 | b)")
    chain = []
    prefix: tuple = ()
    for part in rhs.split("/"):
        names = tuple(_column_name(n, source) for n in part.split(":"))
        prefix = prefix + names
        chain.append(prefix)
    return chain


def _uncorrelated(lhs: str, source: str) -> list[str]:
    """Left sides of ``(lhs || g)``: ``"1"`` (if the intercept is in) then ``"0 + effect"`` per effect."""
    intercept = True
    effects = []
    for sign, piece in split_sum(lhs):
        if piece == "1":
            intercept = sign == "+"
        elif piece == "0":
            intercept = False
        elif sign == "-":
            raise FormulaError(f"cannot remove {piece!r} in the uncorrelated term {source!r}")
        else:
            effects.append(piece)
    out = (["1"] if intercept else []) + [f"0 + {e}" for e in effects]
    if not out:
        raise FormulaError(f"random-effect term {source!r} has no effects left of the bar")
    return out


def expand_bar(inner: str, source: str) -> list[Bar]:
    """Expand one bar's content ``lhs | rhs`` (without the outer parentheses) into :class:`Bar` s.

    Examples
    --------
    >>> [str(b) for b in expand_bar("Days || Subject", "(Days || Subject)")]
    ['(1 | Subject)', '(0 + Days | Subject)']
    >>> [str(b) for b in expand_bar("1 | batch/cask", "(1 | batch/cask)")]
    ['(1 | batch)', '(1 | batch:cask)']
    """
    split = bar_split(inner)
    if split is None:
        raise FormulaError(f"{source!r} is not a random-effect term (no '|')")
    lhs, double, rhs = split
    if not lhs:
        raise FormulaError(f"empty left side of the bar in random-effect term {source!r}; "
                           f"use 1 for a random intercept, e.g. (1 | g)")
    check_parentheses(lhs)
    chain = _group_chain(rhs, source)
    lhs_list = _uncorrelated(lhs, source) if double else [lhs]
    return [Bar(expr=e, group=":".join(g), components=g, source=source) for e in lhs_list for g in chain]


def extract_bars(terms: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[Bar]]:
    """Separate the bars from the fixed terms of a split right-hand side.

    Parameters
    ----------
    terms : list of (sign, term)
        Output of :func:`split_sum`.

    Returns
    -------
    fixed : list of (sign, term)
        The terms that are not random-effect bars.
    bars : list of Bar
        The expanded bars, in formula order.

    Examples
    --------
    >>> fixed, bars = extract_bars(split_sum("Days + ((1 | S) + (0 + Days | S))"))
    >>> fixed, [str(b) for b in bars]
    ([('+', 'Days')], ['(1 | S)', '(0 + Days | S)'])
    """
    fixed = []
    bars: list[Bar] = []
    for sign, piece in terms:
        if not _has_bar(piece):
            fixed.append((sign, piece))
            continue
        if not _wrapped(piece):
            raise FormulaError(
                f"random-effect term {piece!r} must be a parenthesised bar added with '+', "
                f"like (1 | g) or (x | g)"
            )
        if sign == "-":
            raise FormulaError(f"random-effect term {piece!r} cannot be subtracted; add it with '+'")
        inner = piece[1:-1].strip()
        if bar_split(inner) is not None:
            bars.extend(expand_bar(inner, piece))
            continue
        sub_fixed, sub_bars = extract_bars(split_sum(inner))
        bars.extend(sub_bars)
        if sub_fixed:
            fixed.append((sign, f"({join_sum(sub_fixed)})"))
    return fixed, bars
