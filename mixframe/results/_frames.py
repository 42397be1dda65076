"""Turning result columns into frames of the user's library.

Every tidy frame is assembled here from plain columns: NumPy float arrays use NaN for "not
defined" (a true null in polars and pyarrow output, NaN in pandas), lists of labels use None.
The frame is built by :func:`mixframe.io.frames.native_frame`, so the output follows the input's
library; label columns are then typed as strings even when empty or all null.
"""
from __future__ import annotations

import narwhals as nw
import numpy as np

from mixframe.io.frames import as_frame, native_frame
from mixframe.io.frames import n_rows as frames_n_rows


def _prepare(values):
    """A column as native_frame takes it, and whether it holds labels."""
    arr = np.asarray(values) if not isinstance(values, list) else None
    if arr is not None and arr.dtype.kind == "f":
        return np.asarray(arr, dtype=np.float64), False
    if arr is not None and arr.dtype.kind == "b":
        return arr, False
    if arr is not None and arr.dtype.kind in "iu":   # the integer type as it is (levels keep their column's)
        return arr, False
    return [None if v is None else str(v) for v in list(values)], True


def make_frame(columns: dict, like):
    """Build a frame from ``columns`` (name -> array or list) in the library of ``like``.

    Parameters
    ----------
    columns : dict
        Column name to values: float/bool/int NumPy arrays (NaN = null) or lists of labels
        (None = null).
    like : DataFrame
        The user's input frame (pandas, polars or pyarrow).

    Returns
    -------
    DataFrame in the library of ``like``.

    Examples
    --------
    >>> import polars as pl
    >>> make_frame({"a": np.array([1.0, np.nan])}, like=pl.DataFrame({"x": [0]}))["a"].null_count()
    1
    """
    prepared, labels = {}, []
    for name, values in columns.items():
        prepared[name], is_label = _prepare(values)
        if is_label:
            labels.append(name)
    frame = native_frame(prepared, like=like)
    if not labels:
        return frame
    wrapped = nw.from_native(frame, eager_only=True)
    return wrapped.with_columns(*[nw.col(c).cast(nw.String) for c in labels]).to_native()


def append_columns(data, columns: dict):
    """Return ``data`` with ``columns`` added on the right, rows kept in order (pandas index too).

    Parameters
    ----------
    data : DataFrame
        pandas, polars or pyarrow frame.
    columns : dict
        New columns, each as long as ``data``.

    Raises
    ------
    DataError
        When ``data`` already has a column of one of these names: the caller's column is never replaced.
    """
    frame = as_frame(data)
    check_no_clash(frame.columns, columns)
    extra = nw.from_native(make_frame(columns, like=data), eager_only=True)
    return frame.with_columns(*[extra[c] for c in extra.columns]).to_native()


def check_no_clash(existing, added) -> None:
    """A :class:`DataError` when an output column (``.fitted``, ...) would overwrite a column of the data."""
    clash = [c for c in added if c in set(existing)]
    if clash:
        from ..errors import DataError

        raise DataError(f"the data already have column(s) {', '.join(map(repr, clash))}, which augment() adds; "
                        "rename or drop them first (augmenting an augmented frame: pass the original rows)")


def n_rows(data) -> int:
    """Number of rows of any frame mixframe accepts."""
    return frames_n_rows(data)
