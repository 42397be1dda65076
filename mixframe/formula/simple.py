"""Model matrices of simple right-hand sides, built directly with NumPy.

A right-hand side is *simple* when every term is ``1``, ``0``, a column name, or names joined by
``:`` and ``*`` (``x``, ``f``, ``f:x``, ``a*b``), and every name is a plain column: numeric (at most
two in a term), or categorical (a factor, a string or a logical column with at least two observed
levels). For those, :func:`simple_matrix` gives exactly the columns, values and R names that the
formulaic path of :func:`mixframe.formula.fixed.fixed_matrix` gives, without formulaic: the terms
are ordered by degree, and each categorical factor is coded by treatment contrasts (first level the
reference) or by one dummy per level, chosen as formulaic chooses to keep the matrix structurally
full rank. Anything else (calls such as ``log(x)``, ``I()``, ``C()``, powers, ``-`` of a term,
repeated terms) returns None, and the caller goes through formulaic.
"""
from __future__ import annotations

import ast
import functools
import itertools
import keyword
import re
from dataclasses import dataclass

import numpy as np

from .bars import split_sum

__all__ = ["SimpleSpec", "arithmetic_names", "evaluate_arithmetic", "parse_simple", "simple_matrix"]

_TERM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\s*[:*]\s*[A-Za-z_][A-Za-z0-9_]*)*$")
_RESERVED = {"True", "False", "None"}


def parse_simple(rhs: str):
    """Intercept flag and terms (tuples of names, ordered by degree) of a simple right-hand side.

    A fresh list each call (the parse itself is memoised by :func:`_parse_simple`).

    Returns None when the right-hand side is not simple.

    Examples
    --------
    >>> parse_simple("x * f + z")
    (True, [('x',), ('f',), ('z',), ('x', 'f')])
    >>> parse_simple("0 + f:x")
    (False, [('f', 'x')])
    >>> parse_simple("log(x)") is None
    True
    """
    parsed = _parse_simple(rhs)
    return None if parsed is None else (parsed[0], list(parsed[1]))


@functools.lru_cache(maxsize=256)
def _parse_simple(rhs: str):
    """:func:`parse_simple` with the terms as a tuple, memoised (right-hand sides repeat across fits)."""
    intercept = True
    terms: list[tuple] = []
    for sign, piece in split_sum(rhs):
        if piece in ("0", "1"):
            if sign == "-" and piece == "0":
                return None
            intercept = piece == "1" and sign == "+"
            continue
        if sign == "-" or not _TERM.match(piece):
            return None
        chunks = []
        for chunk in piece.split("*"):
            names = tuple(n.strip() for n in chunk.split(":"))
            if any(keyword.iskeyword(n) or n in _RESERVED for n in names):
                return None
            chunks.append(names)
        expanded: list[tuple] = []
        for chunk in chunks:
            expanded += [chunk] + [t + chunk for t in expanded]
        terms += expanded
    seen = set()
    for term in terms:
        key = frozenset(term)
        if len(key) != len(term) or key in seen:
            return None
        seen.add(key)
    return intercept, tuple(sorted(terms, key=len))


def _simplify(scoped: list) -> list:
    """formulaic's rule ``(anything):(reduced) + (anything) -> (anything):(full)``, to a fixed point.

    A scoped term is a tuple of ``(name, reduced)`` factors (``reduced`` is None for a numeric one);
    terms compare as sets of factors.
    """
    out: list = []
    for term in sorted(scoped, key=len):
        factors = set(term)
        combined = False
        for existing in out:
            cofactors = set(existing)
            diff = factors - cofactors
            if len(factors) - 1 != len(cofactors) or len(diff) != 1:
                continue
            new = next(iter(diff))
            if new[1]:
                full = tuple((f[0], False) if f == new else f for f in term)
                rest = [t for t in out if set(t) != cofactors]
                if not any(set(t) == set(full) for t in rest):
                    rest.append(full)
                out = _simplify(rest)
                combined = True
                break
        if not combined and not any(set(t) == factors for t in out):
            out.append(term)
    return out


def _scoped_terms(intercept: bool, terms: list, categorical: set) -> list:
    """The scoped terms (with their coding) in column order, as formulaic's full-rank scoping."""
    spanned: set = set()
    out = [()] if intercept else []
    if intercept:
        spanned.add(frozenset())
    for term in terms:
        options = [((n, True), None) if n in categorical else ((n, None),) for n in term]
        span = []
        for prod in itertools.product(*options):
            scoped = tuple(f for f in prod if f is not None)
            key = frozenset(scoped)
            if key not in spanned and all(frozenset(s) != key for s in span):
                span.append(scoped)
        out += _simplify(span)
        spanned.update(frozenset(s) for s in span)
    return out


@dataclass(frozen=True, eq=False)
class SimpleSpec:
    """What rebuilds a simple model matrix on new rows (the counterpart of a formulaic ModelSpec).

    Attributes
    ----------
    rhs : str
        The right-hand side as written.
    terms : tuple
        Scoped terms in column order: tuples of ``(name, reduced)`` (``reduced`` None: numeric;
        True: treatment contrasts; False: one dummy per level).
    levels : dict of str to list of str
        The levels of each categorical column.
    names : list of str
        R column names.
    """

    rhs: str
    terms: tuple
    levels: dict
    names: list

    def matrix(self, numeric, codes, n: int | None = None) -> np.ndarray:
        """The model matrix from column readers.

        Parameters
        ----------
        numeric : callable
            ``numeric(name)`` → float64 values of a numeric column, one per row.
        codes : callable
            ``codes(name)`` → int32 codes of a categorical column into ``levels[name]``.
        n : int, optional
            Number of rows; needed only when no column is read (intercept only).

        Returns
        -------
        ndarray (n, p) float64, C-contiguous
        """
        return _fill(self.terms, self.levels, numeric, codes, n)

    def matrix_from_frame(self, frame) -> np.ndarray:
        """The model matrix of a pandas frame made by :func:`mixframe.design.build.model_frame`."""
        def numeric(name):
            return np.asarray(frame[name].to_numpy(), dtype=np.float64)

        def codes(name):
            series = frame[name]
            if series.dtype == bool:
                return np.asarray(series.to_numpy(), dtype=np.int32)
            if [str(c) for c in series.cat.categories] != list(self.levels[name]):
                raise ValueError(f"column {name!r} does not have the levels of the fit")
            return np.asarray(series.cat.codes.to_numpy(), dtype=np.int32)

        return self.matrix(numeric, codes, len(frame))


def _fill(terms, levels, numeric, codes, n=None) -> np.ndarray:
    widths = [_width(t, levels) for t in terms]
    blocks = []
    for term in terms:
        value, cell, valid = None, None, None
        stride = 1
        for name, reduced in term:
            if reduced is None:
                v = numeric(name)
                value = v if value is None else value * v
                continue
            c = codes(name)
            k = len(levels[name])
            if reduced:
                c = c - 1
                ok = c >= 0
                valid = ok if valid is None else valid & ok
                k -= 1
            cell = c * stride if cell is None else cell + c * stride
            stride *= k
        blocks.append((value, cell, valid))
        for arr in (value, cell):
            if arr is not None and n is None:
                n = arr.shape[0]
    if n is None:
        raise ValueError("a simple matrix needs at least one column read from the data")
    X = np.empty((n, sum(widths)), dtype=np.float64)
    start = 0
    for (value, cell, valid), width in zip(blocks, widths):
        if cell is None:
            X[:, start] = 1.0 if value is None else value
        else:  # dummy columns: zero the block, then one scattered write per row
            X[:, start:start + width] = 0.0
            rows = np.arange(n) if valid is None else np.flatnonzero(valid)
            cols = cell if valid is None else cell[rows]
            X[rows, start + cols] = 1.0 if value is None else (value if valid is None else value[rows])
        start += width
    return X


def _width(term, levels) -> int:
    width = 1
    for name, reduced in term:
        if reduced is not None:
            width *= len(levels[name]) - (1 if reduced else 0)
    return width


def _names(terms, levels) -> list[str]:
    names = []
    for term in terms:
        if not term:
            names.append("(Intercept)")
            continue
        labels = []
        for name, reduced in term:
            if reduced is None:
                labels.append([name])
            else:
                labels.append([name + lv for lv in levels[name][(1 if reduced else 0):]])
        names.extend(":".join(reversed(p)) for p in itertools.product(*reversed(labels)))
    return names


def simple_matrix(rhs: str, kinds: dict, numeric, codes, n: int | None = None):
    """Model matrix, R names and :class:`SimpleSpec` of a simple right-hand side, or None.

    Parameters
    ----------
    rhs : str
        Right-hand side, e.g. ``"Days"``, ``"temp + contact"``, ``"0 + f:x"``.
    kinds : dict of str to str
        :func:`mixframe.io.frames.column_kind` of every data column the right-hand side may name.
    numeric : callable
        ``numeric(name)`` → float64 values over the rows (finite).
    codes : callable
        ``codes(name)`` → ``(codes, levels)`` over the rows, unused levels dropped.
    n : int, optional
        Number of rows; needed only for an intercept-only right-hand side (``"1"``).

    Returns
    -------
    tuple or None
        ``(X, names, spec)``, or None when ``rhs`` is not simple (see the module notes).

    Examples
    --------
    >>> import numpy as np
    >>> f = (np.array([0, 1, 1], dtype=np.int32), ["a", "b"])
    >>> X, names, _ = simple_matrix("x + f", {"x": "numeric", "f": "string"},
    ...                             lambda n: np.array([1.0, 2.0, 3.0]), lambda n: f)
    >>> names, X.tolist()
    (['(Intercept)', 'x', 'fb'], [[1.0, 1.0, 0.0], [1.0, 2.0, 1.0], [1.0, 3.0, 1.0]])
    """
    parsed = _parse_simple(rhs)
    if parsed is None:
        return None
    intercept, terms = parsed
    names_used = {n for t in terms for n in t}
    if any(name not in kinds for name in names_used) or not (names_used or (intercept and n is not None)):
        return None
    categorical = {n for n in names_used if kinds[n] != "numeric"}
    levels, code_arrays = {}, {}
    for name in sorted(categorical):
        c, lv = codes(name)
        if kinds[name] == "bool":
            if len(lv) != 2 or not (np.any(c == 0) and np.any(c == 1)):
                return None
        elif len(lv) < 2:
            return None
        levels[name], code_arrays[name] = list(lv), c
    if any(sum(n not in categorical for n in t) > 2 for t in terms):
        return None
    scoped = tuple(_scoped_terms(intercept, terms, categorical))
    spec = SimpleSpec(rhs=rhs, terms=scoped, levels=levels, names=_names(scoped, levels))
    X = spec.matrix(numeric, code_arrays.__getitem__) if names_used else np.ones((n, 1))
    return X, list(spec.names), spec


_OPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide}


def _arithmetic_tree(expr: str):
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Name) and node.id not in _RESERVED:
            continue
        if isinstance(node, (ast.operator, ast.unaryop, ast.expr_context)):
            continue
        return None
    return tree


def arithmetic_names(expr: str):
    """Names read by an expression of names, numbers, ``+ - * /`` and parentheses; None otherwise.

    Examples
    --------
    >>> sorted(arithmetic_names("size - incidence"))
    ['incidence', 'size']
    >>> arithmetic_names("log(n)") is None
    True
    """
    tree = _arithmetic_tree(expr)
    if tree is None:
        return None
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def evaluate_arithmetic(expr: str, numeric):
    """Evaluate an arithmetic expression (see :func:`arithmetic_names`) on float64 columns.

    Parameters
    ----------
    expr : str
    numeric : callable
        ``numeric(name)`` → float64 values, or None when ``name`` is not a numeric column.

    Returns
    -------
    ndarray of float64 or None
        None when the expression is not arithmetic or names a column that is not numeric, or
        when it reads no column at all.

    Examples
    --------
    >>> import numpy as np
    >>> cols = {"s": np.array([1.0, 2.0]), "n": np.array([4.0, 4.0])}
    >>> evaluate_arithmetic("n - s", cols.get).tolist()
    [3.0, 2.0]
    """
    tree = _arithmetic_tree(expr)
    if tree is None:
        return None
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    columns = {name: numeric(name) for name in names}
    if not columns or any(v is None for v in columns.values()):
        return None

    def walk(node):
        if isinstance(node, ast.Name):
            return columns[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp):
            operand = walk(node.operand)
            return -operand if isinstance(node.op, ast.USub) else +operand
        return _OPS[type(node.op)](walk(node.left), walk(node.right))

    with np.errstate(all="ignore"):
        out = walk(tree)
    out = np.asarray(out, dtype=np.float64)
    return out if out.ndim == 1 else None
