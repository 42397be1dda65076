"""Fit settings: the ``control=`` argument of each model kind, validated once, at the API.

Each kind has one frozen record (:class:`LMMControl`, :class:`StreamedLMMControl`, :class:`GLMMControl`,
:class:`CLMMControl`, :class:`CLMControl`) whose fields are the settings that kind's fitting code
reads. A field left at ``None`` takes the fitting code's default (the ``default`` column of
:func:`control_table`). :func:`parse_control` turns the user's dict (or a record) into the kind's record,
and refuses, before any work is done:

* a key the kind does not read (``ValueError`` naming the key and the allowed ones), and
* an optimizer the kind cannot run (``ValueError`` naming ``optimizer`` and the allowed values),

and normalises each value (integers for counts, floats for tolerances, booleans for switches). The record is
plain data: it pickles, compares by value, and :meth:`Control.options` gives the dict the fitting code reads
(only the fields that were set).

Examples
--------
>>> ctl = parse_control("lmm", {"optimizer": "NelderMead", "maxiter": 5e3})
>>> ctl
LMMControl(optimizer='neldermead', maxiter=5000)
>>> ctl.options()
{'optimizer': 'neldermead', 'maxiter': 5000}
>>> parse_control("glmm", {"maxiters": 10})
Traceback (most recent call last):
...
ValueError: unknown control option 'maxiters' for glmm (did you mean 'maxiter'?); allowed: ['calc_hessian', \
'ftol_abs', 'ftol_rel', 'hessian_step', 'maxeval', 'maxiter', 'pirls_tol', 'progress', 'tol', 'xtol_abs', \
'xtol_rel']
"""
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

__all__ = [
    "CLMControl",
    "CLMMControl",
    "Control",
    "GLMMControl",
    "KINDS",
    "LMMControl",
    "OPTIMIZERS",
    "StreamedLMMControl",
    "control_table",
    "parse_control",
]

#: The derivative-free optimizers (nlopt algorithms) an LMM or CLMM fit can be told to use.
OPTIMIZERS = ("bobyqa", "cobyla", "neldermead", "sbplx")


# ---------------------------------------------------------------------------------- value checks
def _fail(kind: str, key: str, value, want: str):
    raise ValueError(f"control option {key!r} for {kind} must be {want}; got {value!r}")


def _real(value) -> bool:
    """A finite real number (NumPy scalars included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _count(kind, key, value) -> int:
    if not _real(value) or value != int(value) or value < 1:
        _fail(kind, key, value, "a positive whole number")
    return int(value)


def _tolerance(kind, key, value) -> float:
    if not _real(value) or value < 0:
        _fail(kind, key, value, "a finite number >= 0")
    return float(value)


def _step(kind, key, value) -> float:
    if not _real(value) or value <= 0:
        _fail(kind, key, value, "a finite number > 0")
    return float(value)


def _steps(kind, key, value):
    """One initial step for every parameter, or one per parameter (a sequence)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        items = list(value)
        if not items or not all(_real(v) and v > 0 for v in items):
            _fail(kind, key, value, "a number > 0 or a sequence of numbers > 0")
        return tuple(float(v) for v in items)
    return _step(kind, key, value)


def _switch(kind, key, value) -> bool:
    try:    # True, False, 1, 0 and NumPy's booleans; an array's comparison is not one truth value
        ok = isinstance(value, bool) or (not isinstance(value, (float, str)) and value in (0, 1))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        _fail(kind, key, value, "True or False")
    return bool(value)


def _optimizer(kind, key, value) -> str:
    name = value.lower() if isinstance(value, str) else value
    if name not in OPTIMIZERS:
        raise ValueError(f"control option {key!r} for {kind}: {value!r} is not one of {list(OPTIMIZERS)}")
    return name


def _setting(check, default: str, doc: str):
    """A record field: ``None`` (the fitting code's default, described by ``default``) until set."""
    return field(default=None, metadata={"check": check, "default": default, "doc": doc})


# ---------------------------------------------------------------------------------- the records
@functools.lru_cache(maxsize=None)
def _fields_of(cls) -> tuple:
    """The dataclass fields of a control record class (looked up once: a fit reads them twice)."""
    return fields(cls)


@dataclass(frozen=True, repr=False)
class Control:
    """The settings of one fit; the subclasses name the kind and its fields."""

    kind: ClassVar[str] = ""
    #: other names accepted for a field (the name the fitting code also reads)
    aliases: ClassVar[dict[str, str]] = {}
    #: why a key is not a setting of this kind, where that is worth saying
    notes: ClassVar[dict[str, str]] = {}

    def __post_init__(self):
        # a record built directly (LMMControl(maxiter=...)) is checked and normalised as a parsed one is
        for f in _fields_of(type(self)):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, f.metadata["check"](self.kind, f.name, value))

    def options(self) -> dict[str, Any]:
        """The settings that were given, as the dict the fitting functions read."""
        out = {}
        for f in _fields_of(type(self)):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.options().items())})"

    @classmethod
    def allowed(cls) -> list[str]:
        """Every key this kind accepts (fields and their aliases), sorted."""
        return sorted([f.name for f in fields(cls)] + list(cls.aliases))


_OPTIMIZER_LIST = ", ".join(f"`{o}`" for o in OPTIMIZERS)
_MAXITER = "maximum number of objective evaluations"
_VERBOSE = "print each evaluation of the derivative-free optimizer"
_STEP = "first step of the derivative-free optimizer: one number, or one per parameter"
_PROGRESS = "`True` shows a progress bar, `False` hides it; by default it shows for long fits on a terminal"
_NLOPT = {
    "ftol_rel": "stop when an optimizer step changes the objective by less than this, relative",
    "ftol_abs": "stop when an optimizer step changes the objective by less than this",
    "xtol_rel": "stop when an optimizer step changes every parameter by less than this, relative",
    "xtol_abs": "stop when an optimizer step changes every parameter by less than this",
}


@dataclass(frozen=True, repr=False)
class LMMControl(Control):
    """Settings of an in-memory LMM fit (:func:`mixframe.lmm` on a DataFrame)."""

    kind: ClassVar[str] = "lmm"
    notes: ClassVar[dict[str, str]] = {
        "batch_size": "batch_size applies to streamed inputs: a polars LazyFrame, a pyarrow Dataset or "
                      "RecordBatchReader, a dask DataFrame"}

    optimizer: str | None = _setting(_optimizer, "automatic",
                                     f"derivative-free optimizer, one of {_OPTIMIZER_LIST}; by default a "
                                     "Newton or quasi-Newton method on the analytic derivatives where they "
                                     "are available, else `bobyqa`")
    maxiter: int | None = _setting(_count, "100000", _MAXITER)
    tol: float | None = _setting(_tolerance, "none", "sets both `ftol_rel` and `xtol_rel`")
    ftol_rel: float | None = _setting(_tolerance, "1e-13", _NLOPT["ftol_rel"])
    ftol_abs: float | None = _setting(_tolerance, "1e-11", _NLOPT["ftol_abs"])
    xtol_rel: float | None = _setting(_tolerance, "1e-10", _NLOPT["xtol_rel"])
    xtol_abs: float | None = _setting(_tolerance, "1e-10", _NLOPT["xtol_abs"])
    initial_step: float | tuple | None = _setting(_steps, "nlopt's", _STEP)
    verbose: bool | None = _setting(_switch, "False", _VERBOSE)
    progress: bool | None = _setting(_switch, "automatic", _PROGRESS)


@dataclass(frozen=True, repr=False)
class StreamedLMMControl(LMMControl):
    """Settings of a streamed LMM fit (:func:`mixframe.lmm` on a LazyFrame, a pyarrow Dataset or
    RecordBatchReader, or a dask DataFrame): those of :class:`LMMControl` plus the batch size."""

    kind: ClassVar[str] = "streamed lmm"
    notes: ClassVar[dict[str, str]] = {}

    batch_size: int | None = _setting(_count, "500000", "rows per batch read from the source (not used "
                                      "for dask, whose partitions are the batches)")


@dataclass(frozen=True, repr=False)
class GLMMControl(Control):
    """Settings of a GLMM fit (:func:`mixframe.glmm`)."""

    kind: ClassVar[str] = "glmm"
    aliases: ClassVar[dict[str, str]] = {"maxeval": "maxiter"}
    notes: ClassVar[dict[str, str]] = {
        "optimizer": "a GLMM fit chooses its optimizer itself: trust-region Newton on the analytic gradient "
                     "where it is available, else bobyqa",
        "verbose": "a GLMM fit has no evaluation trace; use progress=True for a progress bar"}

    maxiter: int | None = _setting(_count, "100000", _MAXITER + " (`maxeval` is the same setting)")
    tol: float | None = _setting(_tolerance, "none", "sets `ftol_rel`")
    ftol_rel: float | None = _setting(_tolerance, "1e-15", _NLOPT["ftol_rel"])
    ftol_abs: float | None = _setting(_tolerance, "1e-14", _NLOPT["ftol_abs"])
    xtol_rel: float | None = _setting(_tolerance, "1e-12", _NLOPT["xtol_rel"])
    xtol_abs: float | None = _setting(_tolerance, "1e-12", _NLOPT["xtol_abs"])
    pirls_tol: float | None = _setting(_tolerance, "1e-14", "convergence tolerance of the penalized IRLS "
                                       "iterations for the conditional modes")
    hessian_step: float | None = _setting(_step, "1e-4", "finite-difference step of the Hessian behind the "
                                          "standard errors")
    calc_hessian: bool | None = _setting(_switch, "True", "compute that Hessian (`False`: no standard "
                                         "errors, a faster fit)")
    progress: bool | None = _setting(_switch, "automatic", _PROGRESS)


@dataclass(frozen=True, repr=False)
class CLMMControl(Control):
    """Settings of a CLMM fit (:func:`mixframe.clmm`)."""

    kind: ClassVar[str] = "clmm"
    notes: ClassVar[dict[str, str]] = LMMControl.notes

    optimizer: str | None = _setting(_optimizer, "bobyqa",
                                     f"derivative-free optimizer, one of {_OPTIMIZER_LIST}, of the models "
                                     "without an analytic gradient (the others use L-BFGS)")
    maxiter: int | None = _setting(_count, "2000 (L-BFGS), 100000", "maximum number of iterations (L-BFGS) "
                                   "or objective evaluations (derivative-free)")
    tol: float | None = _setting(_tolerance, "1e-11 (L-BFGS)", "L-BFGS: relative reduction of the objective "
                                 "at which it stops; derivative-free: sets `ftol_rel` and `xtol_rel`")
    ftol_rel: float | None = _setting(_tolerance, "1e-9", _NLOPT["ftol_rel"] + " (derivative-free)")
    ftol_abs: float | None = _setting(_tolerance, "1e-7", _NLOPT["ftol_abs"] + " (derivative-free)")
    xtol_rel: float | None = _setting(_tolerance, "1e-6", _NLOPT["xtol_rel"] + " (derivative-free)")
    xtol_abs: float | None = _setting(_tolerance, "1e-6", _NLOPT["xtol_abs"] + " (derivative-free)")
    initial_step: float | tuple | None = _setting(_steps, "0.25 (0.05 with nagq > 1)", _STEP)
    verbose: bool | None = _setting(_switch, "False", _VERBOSE)
    progress: bool | None = _setting(_switch, "automatic", _PROGRESS + " (derivative-free)")


@dataclass(frozen=True, repr=False)
class CLMControl(Control):
    """Settings of a CLM fit (:func:`mixframe.clm`): its Newton-Raphson iterations."""

    kind: ClassVar[str] = "clm"

    maxiter: int | None = _setting(_count, "100", "maximum number of Newton-Raphson iterations")
    tol: float | None = _setting(_tolerance, "1e-9", "stop when the largest absolute gradient element is "
                                 "below this")


#: The record of each kind, by the name :func:`parse_control` takes.
KINDS: dict[str, type[Control]] = {
    "lmm": LMMControl,
    "streamed lmm": StreamedLMMControl,
    "glmm": GLMMControl,
    "clmm": CLMMControl,
    "clm": CLMControl,
}


# ---------------------------------------------------------------------------------- parsing
_DEFAULT_RECORDS: dict = {}   # the records of control=None, one per kind (frozen, so shared)


def parse_control(kind: str, control) -> Control:
    """Validate ``control`` (None, a dict, or a record) for a model kind and return the kind's record.

    ``kind`` is a key of :data:`KINDS`. A record of another kind is read as the dict of its settings (so an
    :class:`LMMControl` serves a streamed fit, and a streamed record without ``batch_size`` an in-memory one).
    A value of ``None`` in the dict leaves that setting at its default.

    Raises
    ------
    ValueError
        An unknown key (the message names it and lists the allowed ones), an optimizer the kind cannot run, or
        a value of the wrong type or range.
    TypeError
        ``control`` is not a dict or a record.
    """
    cls = KINDS[kind]
    if control is None:
        default = _DEFAULT_RECORDS.get(cls)
        if default is None:
            default = _DEFAULT_RECORDS[cls] = cls()
        return default
    if type(control) is cls:
        return control
    if isinstance(control, Control):
        control = control.options()
    if not isinstance(control, Mapping):
        raise TypeError(f"control must be a dict of settings (or None); got {type(control).__name__}")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in control.items():
        name = cls.aliases.get(key, key) if isinstance(key, str) else key
        if name not in known:
            raise ValueError(_unknown_message(cls, key))
        if value is None:
            continue
        if name in given_as:
            raise ValueError(f"control options {given_as[name]!r} and {key!r} for {cls.kind} are the same "
                             "setting; give one of them")
        values[name] = known[name].metadata["check"](cls.kind, key, value)
        given_as[name] = key
    return cls(**values)


def _unknown_message(cls: type[Control], key) -> str:
    allowed = cls.allowed()
    hint = ""
    if isinstance(key, str):
        import difflib

        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        elif key in cls.notes:
            hint = f" ({cls.notes[key]})"
    return f"unknown control option {key!r} for {cls.kind}{hint}; allowed: {allowed}"


def control_table(kind: str) -> list[tuple[str, str, str]]:
    """``(key, default, meaning)`` for every setting of a kind, in the record's order; an alias follows the
    field it names.

    >>> [row[0] for row in control_table("clm")]
    ['maxiter', 'tol']
    """
    cls = KINDS[kind]
    rows = []
    for f in fields(cls):
        rows.append((f.name, f.metadata["default"], f.metadata["doc"]))
        rows.extend((alias, f.metadata["default"], f"the same as `{f.name}`")
                    for alias, target in cls.aliases.items() if target == f.name)
    return rows


def parse_nagq(nagq, kind: str) -> int:
    """The number of quadrature nodes as a whole number: ``0`` (GLMM only: PIRLS alone), ``1`` (Laplace) or more
    (adaptive Gauss-Hermite); anything else — a fraction, a bool, a string, a negative number — is a ValueError.

    >>> parse_nagq(25, "glmm")
    25
    >>> parse_nagq(2.7, "glmm")
    Traceback (most recent call last):
    ...
    ValueError: nagq must be a whole number of quadrature nodes (0, 1 for Laplace, or more); got 2.7
    """
    import numbers

    lowest = 0 if kind == "glmm" else 1
    whole = (isinstance(nagq, numbers.Integral) or (isinstance(nagq, numbers.Real) and float(nagq).is_integer()))
    if isinstance(nagq, bool) or not whole or int(nagq) < lowest:
        choices = "0, 1 for Laplace, or more" if lowest == 0 else "1 for Laplace, or more"
        raise ValueError(f"nagq must be a whole number of quadrature nodes ({choices}); got {nagq!r}")
    return int(nagq)
