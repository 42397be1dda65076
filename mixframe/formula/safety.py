"""A formula is data, never code: the allow-list every expression of a formula passes before anything is evaluated.

A formula is read at two levels. At the top level it is Wilkinson notation over names: ``~ + - * / : ^ | ||``,
parentheses, numbers, column names (R-style dotted or in backticks) and calls. Each call, ``log(x)``,
``I(week > 2)``, ``C(f)``, ``offset(log(n))``, ``cbind(s, n - s)``, is an expression in a small language:
column names, numeric (and string) literals, arithmetic, comparison and boolean operators, and calls of the
functions in :data:`FUNCTIONS`. Anything else — attribute access, names with double underscores, calls of
anything not on the list, lambdas, subscripts, comprehensions, assignments, starred arguments — is a
:class:`~mixframe.errors.FormulaError` naming the piece, raised before any evaluation, so a formula from an
untrusted source is safe to fit.

The same check runs again inside the materializer, on every expression formulaic is about to evaluate
(fitting, new data, streamed batches and Dask workers alike), against the data's own column names.
"""
from __future__ import annotations

import ast
import keyword
import re

from ..errors import FormulaError
from .bars import matching_close

__all__ = ["FUNCTIONS", "check_expression", "check_formula_text", "r_idioms"]

# Functions a formula may call. formulaic supplies the transforms (log, exp, scale, center, poly, bs, cr, C, I, Q,
# contrasts); mixframe.formula.fixed.EVAL_CONTEXT supplies the element-wise NumPy ones; offset() and cbind() are
# read by the formula parser itself.
FUNCTIONS = frozenset({
    "I", "C", "Q", "offset", "cbind", "factor", "as.factor",
    "log", "log2", "log10", "log1p", "exp", "exp2", "exp10", "expm1", "sqrt", "abs",
    "sin", "cos", "tan", "floor", "ceil", "round", "pow",
    "scale", "center", "standardize", "poly", "bs", "cr", "cs", "cc",
    "Treatment", "Sum", "Helmert", "Diff", "contr",
})
# Bare names that are values, not columns.
CONSTANTS = frozenset({"True", "False", "None", "pi"})

_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.UAdd, ast.USub, ast.Not,
              ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.BitAnd, ast.BitOr,
              ast.Invert)
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name, ast.Load, ast.Constant,
          ast.Call, ast.keyword, ast.List, ast.Tuple, *_OPERATORS)
_WHAT = {ast.Attribute: "attribute access", ast.Subscript: "a subscript", ast.Lambda: "a lambda",
         ast.NamedExpr: "an assignment", ast.Starred: "a starred argument", ast.IfExp: "a conditional expression",
         ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
         ast.GeneratorExp: "a comprehension", ast.Dict: "a dictionary", ast.Set: "a set", ast.Await: "await",
         ast.Yield: "yield", ast.YieldFrom: "yield", ast.JoinedStr: "an f-string", ast.Slice: "a slice"}
_R_NAME = re.compile(r"(?<![\w.`)\]])([A-Za-z.][A-Za-z0-9._]*)(?![\w.`])")
_BACKTICKED = re.compile(r"`([^`]*)`")
_ALLOWED_HINT = ("allowed: column names, numbers, arithmetic/comparison/boolean operators and the functions "
                 + ", ".join(sorted(FUNCTIONS)))


def _reject(piece: str, what: str, where: str):
    raise FormulaError(f"{what} is not allowed in a formula ({piece!r} in {where}); {_ALLOWED_HINT}")


def _dotted_to_names(expr: str, where: str):
    """Replace backticked names and R-style dotted names (``age.y``) by placeholder identifiers, so that the
    Python parser sees one name where R sees one; returns the rewritten text and the placeholder → name map."""
    names: dict[str, str] = {}

    def hold(name: str) -> str:
        if "__" in name:
            _reject(name, "a name with a double underscore", where)
        key = f"_v{len(names)}_"
        names[key] = name
        return key

    expr = _BACKTICKED.sub(lambda m: hold(m.group(1)), expr)

    def dotted(m):
        name = m.group(1)
        if "." not in name or name.startswith(".") and name[1:2].isdigit() or _is_number(name):
            return name
        return hold(name)

    return _R_NAME.sub(dotted, expr), names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_expression(expr: str, where: str = "the formula", columns=None) -> set[str]:
    """Check one expression (the inside of a formula's call, or a whole call) against the allow-list.

    Parameters
    ----------
    expr : str
        Python-spelled expression, e.g. ``"log(n)"``, ``"I(week > 2)"``, ``"size - incidence"``.
    where : str
        Where it stands, for messages.
    columns : collection of str, optional
        The data's column names. When given, every bare name must be a column or a constant.

    Returns
    -------
    set of str
        The column names the expression reads.

    Raises
    ------
    FormulaError
        Naming the first piece that is not allowed.

    Examples
    --------
    >>> sorted(check_expression("log(n) + I(x > 2)"))
    ['n', 'x']
    >>> check_expression('__import__("os").system("id")')
    Traceback (most recent call last):
    ...
    mixframe.errors.FormulaError: a name with a double underscore is not allowed in a formula ...
    """
    if "__" in expr:
        piece = re.search(r"[\w.]*__[\w.]*", expr)
        _reject(piece.group(0) if piece else expr, "a name with a double underscore", where)
    text, held = _dotted_to_names(expr, where)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"cannot read the expression {expr!r} in {where}: {exc.msg}") from None
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                _reject(ast.get_source_segment(text, node.func) or expr, "calling an expression", where)
            name = held.get(node.func.id, node.func.id)
            if name not in FUNCTIONS:
                _reject(f"{name}(...)", f"calling {name!r}", where)
            called.add(id(node.func))
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, complex, str, bool, type(None))):
                _reject(repr(node.value), "this literal", where)
        elif not isinstance(node, _NODES):
            _reject(ast.get_source_segment(text, node) or expr, _WHAT.get(type(node), type(node).__name__), where)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in called:
            name = held.get(node.id, node.id)
            if name in CONSTANTS:
                continue
            if columns is not None and name not in columns:
                if name in FUNCTIONS:
                    _reject(name, f"the function {name!r} used as a value", where)
                raise FormulaError(f"unknown column {name!r} in {where}")
            names.add(name)
    return names


_TOP_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<backtick>`[^`]*`)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z.][A-Za-z0-9._]*)
  | (?P<in>%in%)
  | (?P<op>\|\||[~+\-*/:^|])
  | (?P<open>\()
  | (?P<close>\))
""", re.VERBOSE)


def check_formula_text(text: str, where: str = "the formula") -> None:
    """Check a formula or a piece of one at the top (Wilkinson) level, and every call in it.

    Raises
    ------
    FormulaError
        For a character or construct that a formula cannot hold, or a call that is not allowed.

    Examples
    --------
    >>> check_formula_text("y ~ x + log(n) + (1 + x | g)")
    >>> check_formula_text("y ~ x + offset(open('f').write('x'))")
    Traceback (most recent call last):
    ...
    mixframe.errors.FormulaError: calling an expression is not allowed in a formula ...
    """
    i, n = 0, len(text)
    while i < n:
        m = _TOP_TOKEN.match(text, i)
        if m is None:
            piece = text[i:i + 20]
            raise FormulaError(f"unexpected {text[i]!r} in {where} at {piece!r}; a formula holds column names, "
                               "numbers, the operators ~ + - * / : ^ | and calls such as log(x) or I(x > 2)")
        kind = m.lastgroup
        token = m.group(0)
        if kind == "name":
            if token == ".":
                raise FormulaError(f"'.' (all other columns) is not supported in {where}; "
                                   "name the predictors, e.g. 'y ~ x1 + x2 + (1 | g)'")
            if "__" in token:
                _reject(token, "a name with a double underscore", where)
            if keyword.iskeyword(token) and token not in CONSTANTS:
                _reject(token, f"the keyword {token!r}", where)
            j = m.end()
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] == "(":
                close = matching_close(text, j)
                if close < 0:
                    raise FormulaError(f"unbalanced parentheses in {where}: {text[j:]!r}")
                check_expression(to_python(text[m.start():close + 1]), where)
                i = close + 1
                continue
        elif kind == "backtick" and "__" in token:
            _reject(token, "a name with a double underscore", where)
        i = m.end()


def to_python(text: str) -> str:
    """R spelling of a call → Python spelling: ``^`` inside a call is a power."""
    return text.replace("^", "**")


_AS_FACTOR_CALL = re.compile(r"(?<![\w.])as\.factor\s*\(")


def r_idioms(text: str) -> str:
    """R's ``as.factor(x)`` in a formula is ``factor(x)``: a factor coded by treatment contrasts, as ``C(x)``
    (``factor`` is formulaic's ``C``; its coefficients are named as R names them, ``factor(age)2``).

    Examples
    --------
    >>> r_idioms("y ~ factor(age) + as.factor(g) + x")
    'y ~ factor(age) + factor(g) + x'
    """
    return _AS_FACTOR_CALL.sub("factor(", text)
