"""The fixed part of a formula, through formulaic, with R semantics and R column names.

- Logical values (a boolean column, ``I(week > 2)``) are factors with levels FALSE, TRUE, as in R,
  so their coefficient is named ``I(week > 2)TRUE``.
- Column names follow R's ``model.matrix``: ``(Intercept)``, ``Days``, ``tempwarm`` (factor name
  followed by the level), interactions joined by ``":"``, calls kept as written (``scale(HEIGHT)``).
- ``scale()`` is formulaic's, which matches R's (centred, divided by the n - 1 standard deviation).

formulaic (and pandas) are imported on first use, not with this module: simple right-hand sides
never need them (see :mod:`mixframe.formula.simple`).
"""
from __future__ import annotations

import ast
import difflib
import itertools
import re

import numpy as np

from ..errors import DataError, FormulaError
from ..io.frames import r_number_label
from .safety import check_expression
from .simple import SimpleSpec, _parse_simple, arithmetic_names

__all__ = [
    "EVAL_CONTEXT",
    "check_columns",
    "evaluate_numeric",
    "expression_columns",
    "fixed_matrix",
    "matrix_from_spec",
    "r_column_names",
    "to_formulaic",
]

_R_SYNTACTIC = re.compile(r"^[A-Za-z.][A-Za-z0-9._]*$")
_BACKTICKED = re.compile(r"`([^`]+)`")

# Functions available to expressions besides formulaic's transforms (log, exp, scale, C, I, ...); every expression
# is checked against mixframe.formula.safety.FUNCTIONS before it is evaluated. ``factor`` (R's factor() and
# as.factor()) is formulaic's C, added on first use.
EVAL_CONTEXT = {"sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p, "expm1": np.expm1, "sin": np.sin, "cos": np.cos,
                "tan": np.tan, "floor": np.floor, "ceil": np.ceil, "round": np.round, "pow": np.power, "pi": np.pi}


_MATERIALIZER = []
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain_message(exc) -> str:
    """A library's exception text without terminal colour codes, folded to one line."""
    return " ".join(_ANSI.sub("", str(exc)).split())


def _r_materializer():
    """The class ``RMaterializer``: formulaic's pandas materializer, treating logical values as
    two-level factors as R does (defined on first use, so that formulaic loads only when needed)."""
    if not _MATERIALIZER:
        import pandas as pd
        from formulaic.materializers.pandas import PandasMaterializer
        from formulaic.transforms import TRANSFORMS
        from interface_meta import override

        EVAL_CONTEXT.setdefault("factor", TRANSFORMS["C"])

        class SafeMaterializer(PandasMaterializer):
            """formulaic's pandas materializer that evaluates only expressions the formula allow-list accepts,
            reading only the data's columns (see :mod:`mixframe.formula.safety`)."""

            REGISTER_NAME = "mixframe_safe"
            REGISTER_INPUTS = ()
            REGISTER_OUTPUTS = ("pandas", "numpy")

            @override
            def _evaluate(self, expr, metadata, spec):
                check_expression(expr, "the formula", columns=set(map(str, self.data.columns)))
                return super()._evaluate(expr, metadata, spec)

        class RMaterializer(SafeMaterializer):
            """The safe materializer, treating logical values as two-level factors as R does."""

            REGISTER_NAME = "mixframe_r"

            @override
            def _is_categorical(self, values) -> bool:
                raw = getattr(values, "__wrapped__", values)
                if isinstance(raw, (pd.Series, np.ndarray)) and raw.dtype == bool:
                    return True
                return super()._is_categorical(values)

        _MATERIALIZER.extend([RMaterializer, SafeMaterializer])
    return _MATERIALIZER[0]


def _safe_materializer():
    """The allow-list-checking materializer without R's logical-as-factor rule."""
    _r_materializer()
    return _MATERIALIZER[1]


def __getattr__(name):
    if name == "RMaterializer":
        return _r_materializer()
    if name == "SafeMaterializer":
        return _safe_materializer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _quote_dotted(text: str, columns) -> str:
    """Backtick R-style column names that are not Python names (``age.y``) so formulaic reads them."""
    for name in sorted(columns, key=len, reverse=True):
        if name.isidentifier() or not _R_SYNTACTIC.match(name):
            continue
        text = re.sub(rf"(?<![\w.`]){re.escape(name)}(?![\w.`])", f"`{name}`", text)
    return text


def to_formulaic(text: str, columns=()) -> str:
    """R spelling → formulaic spelling: ``^`` inside a call (a power, not the formula operator) → ``**``;
    column names such as ``age.y`` (given in ``columns``) are quoted with backticks.

    Examples
    --------
    >>> to_formulaic("I(x^2) + (a + b)^2")
    'I(x**2) + (a + b)^2'
    >>> to_formulaic("log(age.y)", columns=["age.y"])
    'log(`age.y`)'
    """
    out = []
    call_depths = []
    for i, ch in enumerate(text):
        if ch == "(":
            prev = text[:i].rstrip()
            call_depths.append(bool(prev) and (prev[-1].isalnum() or prev[-1] in "_."))
        elif ch == ")" and call_depths:
            call_depths.pop()
        out.append("**" if ch == "^" and any(call_depths) else ch)
    return _quote_dotted("".join(out), columns)


def _r_expr_name(expr: str) -> str:
    expr = re.sub(r"`([A-Za-z.][A-Za-z0-9._]*)`", r"\1", expr)  # R shows syntactic names bare
    return expr.replace(" ** ", "^").replace("**", "^")


def _python_names(expr: str) -> set[str]:
    """Data names read by a Python expression: bare names that are neither called nor attribute roots."""
    quoted = set(_BACKTICKED.findall(expr))
    expr = _BACKTICKED.sub("_", expr)
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"cannot parse the expression {expr!r}: {exc.msg}") from exc
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            skip.add(id(node.func))
        if isinstance(node, ast.Attribute):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name):
                skip.add(id(root))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in skip}
    return (names - {"_"}) | quoted


def _quick_columns(text: str):
    """Names of a simple right-hand side or of ``I(arithmetic)``, read without formulaic; else None."""
    text = text.strip()
    if text.startswith("I(") and text.endswith(")"):
        names = arithmetic_names(text[2:-1])
        return None if names is None or not names else names
    parsed = _parse_simple(text)
    return None if parsed is None else {n for term in parsed[1] for n in term}


def expression_columns(text: str, columns=()) -> set[str]:
    """Names an expression or right-hand side reads from the data (functions excluded).

    Examples
    --------
    >>> sorted(expression_columns("log(x) + scale(h) + f:g + exp(q)"))
    ['f', 'g', 'h', 'q', 'x']
    """
    quick = _quick_columns(text)
    if quick is not None:
        return quick
    from formulaic import Formula

    try:
        formula = Formula(to_formulaic(text, columns))
    except Exception as exc:  # formulaic's parser errors carry no common base class
        raise FormulaError(f"cannot parse {text!r}: {plain_message(exc)}") from exc
    names: set[str] = set()
    for term in formula:
        for factor in term.factors:
            method = getattr(factor.eval_method, "value", factor.eval_method)
            if method == "lookup":
                names.add(factor.expr)
            elif method == "python":
                names |= _python_names(factor.expr)
    return names


def check_columns(names, available, where: str) -> None:
    """Raise :class:`FormulaError` for the first name that is neither a column nor a known function.

    The message names the column, where it was used and the closest column names.
    """
    if all(name in available for name in names):     # the usual case: every name is a column
        return
    available = list(available)
    known = set(available) | set(EVAL_CONTEXT)
    for name in sorted(names):
        if name in known:
            continue
        from formulaic.transforms import TRANSFORMS

        if name in TRANSFORMS:
            continue
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
        if not close:
            close = [c for c in available if c.lower() == name.lower()]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise FormulaError(f"unknown column {name!r} in {where}{hint} (columns: "
                           f"{', '.join(available[:20])}{', ...' if len(available) > 20 else ''})")


def _level_label(level) -> str:
    if isinstance(level, (bool, np.bool_)):
        return "TRUE" if level else "FALSE"
    if isinstance(level, (int, np.integer)):
        return str(int(level))
    if isinstance(level, (float, np.floating)):
        return r_number_label(float(level))
    return str(level)


def _factor_labels(scoped_factor, spec) -> list[str] | None:
    expr = scoped_factor.factor.expr
    name = _r_expr_name(expr)
    kind, state = spec.encoder_state.get(expr, (None, {}))
    if kind is None or getattr(kind, "value", kind) != "categorical":
        return [name]
    contrasts_state = state.get("contrasts")
    if contrasts_state is None:
        return None
    labels = contrasts_state.contrasts.get_coding_column_names(contrasts_state.levels,
                                                              reduced_rank=scoped_factor.reduced)
    return [name + _level_label(lv) for lv in labels]


def _fallback_name(column: str) -> str:
    if column == "Intercept":
        return "(Intercept)"
    column = re.sub(r"\[T\.([^\]]*)\]", r"\1", column)
    column = re.sub(r"\[([^\]]*)\]", r"\1", column)
    return _r_expr_name(column)


def r_column_names(spec) -> list[str]:
    """R's ``model.matrix`` column names for a formulaic ModelSpec (first factor varies fastest), or
    the names a :class:`~mixframe.formula.simple.SimpleSpec` holds.

    Examples
    --------
    >>> import pandas as pd
    >>> import pandas as pd
    >>> df = pd.DataFrame({"t": pd.Categorical(["cold", "warm"]), "x": [1.0, 2.0]})
    >>> r_column_names(fixed_matrix("t + x", df)[2])
    ['(Intercept)', 'twarm', 'x']
    """
    if isinstance(spec, SimpleSpec):
        return list(spec.names)
    names = []
    for structure in spec.structure:
        term_names = []
        for scoped in structure.scoped_terms:
            if not scoped.factors:
                term_names.append("(Intercept)")
                continue
            labels = [_factor_labels(sf, spec) for sf in scoped.factors]
            if any(lb is None for lb in labels):
                term_names = None
                break
            term_names.extend(":".join(reversed(p)) for p in itertools.product(*reversed(labels)))
        if term_names is None or len(term_names) != len(structure.columns):
            term_names = [_fallback_name(c) for c in structure.columns]
        names.extend(term_names)
    return names


def _materialize(formula_or_spec, frame, where: str, materializer=None):
    from formulaic import model_matrix

    materializer = _r_materializer() if materializer is None else materializer
    try:
        return model_matrix(formula_or_spec, frame, materializer=materializer, context=EVAL_CONTEXT,
                            na_action="ignore", output="pandas")
    except (FormulaError, DataError):
        raise
    except Exception as exc:  # formulaic raises several unrelated exception types
        raise FormulaError(f"cannot build {where}: {plain_message(exc)}") from exc


def fixed_matrix(rhs: str, frame, where: str = "the fixed effects"):
    """Model matrix of a right-hand side, with R column names.

    Returns
    -------
    X : ndarray (n, p) float64, C-contiguous
    names : list of str
    spec : formulaic.ModelSpec
    """
    mm = _materialize(to_formulaic(rhs, frame.columns), frame, where)
    spec = mm.model_spec
    X = np.ascontiguousarray(np.asarray(mm, dtype=np.float64))
    return X, r_column_names(spec), spec


def matrix_from_spec(spec, frame, where: str = "the fixed effects") -> np.ndarray:
    """Rebuild a model matrix on new rows with a stored ModelSpec or
    :class:`~mixframe.formula.simple.SimpleSpec` (same columns as the fit)."""
    if isinstance(spec, SimpleSpec):
        try:
            return spec.matrix_from_frame(frame)
        except (AttributeError, KeyError, ValueError, TypeError) as exc:
            raise DataError(f"cannot build {where} for the new data: {plain_message(exc)}") from exc
    import warnings

    from formulaic.errors import DataMismatchWarning

    _r_materializer()  # registers the materializers a stored spec names (a fresh process, a Dask worker)
    with warnings.catch_warnings():
        # a categorical term with a value the fit did not see would become NaN columns: an error instead
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            mm = spec.get_model_matrix(frame, context=EVAL_CONTEXT)
        except DataMismatchWarning as exc:
            raise DataError(f"cannot build {where} for these rows: a categorical term has a value the fit did "
                            f"not see ({plain_message(exc)}); a fixed-effect factor needs every level among the "
                            "fitted rows (for a streamed fit, whose levels of computed factors come from its "
                            "first rows: write a factor such as I(x > 3) as a column of the data)") from None
        except Exception as exc:  # formulaic raises several unrelated exception types
            raise DataError(f"cannot build {where} for the new data: {plain_message(exc)}") from exc
    return np.ascontiguousarray(np.asarray(mm, dtype=np.float64))


def evaluate_numeric(expr: str, frame, where: str) -> np.ndarray:
    """Evaluate an expression (``"size - incidence"``, ``"log(n)"``) as one float64 column.

    Raises
    ------
    DataError
        If the expression does not give one numeric value per row.
    """
    mm = _materialize(f"0 + I({to_formulaic(expr, frame.columns)})", frame, where,
                      materializer=_safe_materializer())
    values = np.asarray(mm, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != 1:
        raise DataError(f"{where} {expr!r} must give one number per row; got {values.shape[1]} columns")
    return values[:, 0].copy()
