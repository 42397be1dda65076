"""The frame boundary: the one module that reads pandas, polars and pyarrow input (through narwhals).

Everything past this module works on NumPy arrays: numeric columns as float64 with NaN for a
missing value, factor-like columns as int32 codes (-1 for a missing value) plus a list of level
labels.  Output frames are built back in the library of the input with :func:`native_frame`.

:class:`ColumnCache` reads each column of one frame once (pandas and polars natively, without
narwhals' per-column overhead) and gives the same answers as the functions below.
"""
from __future__ import annotations

import math

import narwhals as nw
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError

__all__ = [
    "ColumnCache",
    "as_frame",
    "column_kind",
    "column_names",
    "drop_unused_levels",
    "encode_column",
    "missing_mask",
    "n_rows",
    "native_frame",
    "native_namespace_name",
    "numeric_column",
    "r_number_label",
    "r_sort",
    "row_labels",
]

_NAMESPACES = {"pandas", "polars", "pyarrow"}


def as_frame(data) -> nw.DataFrame:
    """Wrap a pandas DataFrame, polars DataFrame or pyarrow Table as an eager narwhals frame.

    Parameters
    ----------
    data : pandas.DataFrame, polars.DataFrame, pyarrow.Table or narwhals.DataFrame
        The user's data; it is never modified.

    Returns
    -------
    narwhals.DataFrame

    Raises
    ------
    DataError
        For any other kind of object (a lazy frame must be collected first).

    Examples
    --------
    >>> import pandas as pd
    >>> as_frame(pd.DataFrame({"a": [1, 2]})).shape
    (2, 1)
    """
    if isinstance(data, nw.DataFrame):
        return data
    _check_unique_names(data)
    try:
        frame = nw.from_native(data, eager_only=True)
    except TypeError as exc:
        raise DataError(
            f"data must be a pandas DataFrame, a polars DataFrame or a pyarrow Table; got "
            f"{type(data).__module__}.{type(data).__name__} (collect a lazy frame first)"
        ) from exc
    name = frame.implementation.value
    if name not in _NAMESPACES:
        raise DataError(f"data frames from {name!r} are not supported; use pandas, polars or pyarrow")
    return frame


def _check_unique_names(data) -> None:
    """DataError for a pandas frame or pyarrow Table with a column name used twice."""
    names = getattr(data, "column_names", None) if isinstance(data, pa.Table) else None
    if names is None and type(data).__module__.startswith("pandas") and hasattr(data, "columns"):
        if data.columns.is_unique:
            return
        names = list(data.columns)
    if names is None:
        return
    seen, repeated = set(), []
    for nm in names:
        if nm in seen and nm not in repeated:
            repeated.append(nm)
        seen.add(nm)
    if repeated:
        raise DataError(f"the data have duplicate column names {repeated}; rename them so that each column "
                        f"has its own name")


_NESTED = (nw.List, nw.Array, nw.Struct)


def _unusable(name: str, dtype) -> DataError:
    text = str(dtype)
    if "128" in text:
        return DataError(f"column {name!r} has 128-bit integers ({text}), which NumPy cannot hold; cast it to "
                         f"Int64 or Float64")
    return DataError(f"column {name!r} has type {text}, which a model cannot use (lists, arrays, structs and "
                     f"binary values are not numbers or levels); select or convert a plain column")


def _mixed_types(name: str, series) -> DataError:
    values = series.dropna() if hasattr(series, "dropna") else series
    kinds = sorted({type(v).__name__ for v in list(values)[:10_000]})
    return DataError(f"column {name!r} mixes value types ({', '.join(kinds)}); convert it to one type "
                     f"(e.g. all strings with .astype(str), or numbers with pandas.to_numeric)")


def native_namespace_name(frame) -> str:
    """Name of the library a frame belongs to: ``"pandas"``, ``"polars"`` or ``"pyarrow"``.

    Examples
    --------
    >>> import polars as pl
    >>> native_namespace_name(pl.DataFrame({"a": [1]}))
    'polars'
    """
    return as_frame(frame).implementation.value


def column_names(frame) -> list[str]:
    """Column names of a frame, in order."""
    return list(as_frame(frame).columns)


def n_rows(frame) -> int:
    """Number of rows of a frame (pandas and polars read directly, without narwhals)."""
    library = _direct_library(frame)
    if library == "pandas":
        return len(frame)
    if library == "polars":
        return int(frame.height)
    return int(as_frame(frame).shape[0])


def _series(frame, name: str):
    frame = as_frame(frame)
    if name not in frame.columns:
        raise DataError(f"column {name!r} is not in the data")
    return frame[name]


def _arrow(series) -> pa.Array:
    arr = series.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def is_temporal_type(patype) -> bool:
    """Arrow timestamps, dates and durations: numeric predictors (R's POSIXct, Date, difftime)."""
    return pa.types.is_timestamp(patype) or pa.types.is_date(patype) or pa.types.is_duration(patype)


_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def temporal_numbers(arr: pa.Array) -> np.ndarray:
    """A temporal column as R's numbers: seconds since 1970-01-01 UTC for datetimes (a time-zone-less
    datetime is read as UTC), days since 1970-01-01 for dates, seconds for durations; NaN where missing.

    Examples
    --------
    >>> import datetime as dt
    >>> temporal_numbers(pa.array([dt.date(1970, 1, 3), None])).tolist()
    [2.0, nan]
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_date32(t):
        raw, scale = pc.cast(arr, pa.int32()), 1.0
    elif pa.types.is_date64(t):
        raw, scale = pc.cast(arr, pa.int64()), 86_400_000.0
    else:
        raw, scale = pc.cast(arr, pa.int64()), _PER_SECOND[t.unit]
    values = np.array(pc.fill_null(raw, 0).to_numpy(zero_copy_only=False), dtype=np.float64)
    if scale != 1.0:
        values /= scale
    if arr.null_count:
        values[np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = np.nan
    return values


def _encode_temporal(arr: pa.Array) -> tuple[np.ndarray, list[str]]:
    """A temporal column as a factor of its values: levels in time order, labelled by the values' text."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    raw = pc.cast(arr, pa.int32() if pa.types.is_date32(arr.type) else pa.int64())
    codes, _ = _encode_integers(raw)
    first = np.full(int(codes.max()) + 1 if codes.size and codes.max() >= 0 else 0, -1, dtype=np.int64)
    ok = np.flatnonzero(codes >= 0)
    first[codes[ok]] = ok                                # a row holding each level
    labels = [str(x) for x in arr.take(pa.array(first)).to_pylist()]
    return codes, labels


def column_kind(frame, name: str) -> str:
    """Classify a column.

    Returns
    -------
    str
        ``"numeric"`` (integer, floating, or a datetime, date or duration: see
        :func:`temporal_numbers`), ``"bool"``, ``"factor"`` (a pandas categorical or a
        polars Enum: the levels have an order of their own) or ``"string"`` (strings and other
        categoricals, whose levels are sorted as R sorts them).

    Examples
    --------
    >>> import pandas as pd
    >>> column_kind(pd.DataFrame({"a": ["x"]}), "a")
    'string'
    """
    frame = as_frame(frame)
    dtype = _series(frame, name).dtype
    if isinstance(dtype, _NESTED) or dtype == nw.Binary or "128" in str(dtype):
        raise _unusable(name, dtype)
    if dtype == nw.Boolean:
        return "bool"
    if dtype.is_numeric() or isinstance(dtype, (nw.Datetime, nw.Duration)) or dtype == nw.Date:
        return "numeric"
    if isinstance(dtype, nw.Enum):
        return "factor"
    if dtype == nw.Categorical and frame.implementation.value == "pandas":
        return "factor"
    if dtype in (nw.String, nw.Object) and frame.implementation.value == "pandas":
        # a pandas object column holding Python booleans (e.g. with None) is logical in R terms
        try:
            if pa.types.is_boolean(_arrow(_series(frame, name)).type):
                return "bool"
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise _mixed_types(name, _series(frame, name).to_native()) from exc
    return "string"


def is_integer_column(frame, name: str) -> bool:
    """True when a numeric column has an integer dtype."""
    return _series(frame, name).dtype.is_integer()


def missing_mask(frame, name: str) -> np.ndarray:
    """Boolean mask of missing values (null, and NaN in floating columns).

    Examples
    --------
    >>> import polars as pl
    >>> missing_mask(pl.DataFrame({"a": [1.0, None, float("nan")]}), "a").tolist()
    [False, True, True]
    """
    series = _series(frame, name)
    mask = np.asarray(series.is_null().to_numpy(), dtype=bool)
    if series.dtype.is_float():
        values = np.asarray(series.to_numpy(), dtype=np.float64)
        mask = mask | np.isnan(values)
    return mask


def numeric_column(frame, name: str) -> np.ndarray:
    """A numeric or boolean column as float64 (NaN where missing).

    Raises
    ------
    DataError
        If the column is neither numeric nor boolean.

    Examples
    --------
    >>> import pandas as pd
    >>> numeric_column(pd.DataFrame({"a": [1, 2]}), "a").tolist()
    [1.0, 2.0]
    """
    series = _series(frame, name)
    if column_kind(frame, name) not in ("numeric", "bool"):
        raise DataError(f"column {name!r} is not numeric (found {series.dtype})")
    arr = None if (series.dtype.is_numeric() or series.dtype == nw.Boolean) else _arrow(series)
    if arr is not None and is_temporal_type(arr.type):
        return temporal_numbers(arr)
    null = np.asarray(series.is_null().to_numpy(), dtype=bool)
    if not (series.dtype.is_numeric() or series.dtype == nw.Boolean):
        arr = pc.cast(_arrow(series), pa.float64())
        values = np.array(arr.to_numpy(zero_copy_only=False), dtype=np.float64, copy=True)
        values[null] = np.nan
        return values
    values = np.array(series.cast(nw.Float64).to_numpy(), dtype=np.float64, copy=True)
    values[null] = np.nan
    return values


def r_number_label(value: float, integer: bool = False) -> str:
    """A number as R's ``as.character`` prints it (15 significant digits, 1 not 1.0).

    Examples
    --------
    >>> [r_number_label(v) for v in (1.0, 0.5, 1e5, 123456.0, 0.001, 1e-4)]
    ['1', '0.5', '1e+05', '123456', '0.001', '1e-04']
    """
    if integer:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    mant, exp_text = f"{value:.14e}".split("e")
    exp = int(exp_text)
    digits = mant.replace("-", "").replace(".", "").rstrip("0") or "0"
    sign = "-" if value < 0 else ""
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sci = f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    decimals = max(0, len(digits) - 1 - exp)
    fixed = f"{float(mant + 'e' + exp_text):.{decimals}f}"
    return fixed if len(fixed) <= len(sci) else sci


def _r_collation_key(text: str):
    # R's default (locale) collation: case-insensitive first, lower case before upper case on ties.
    return (text.casefold(), text.swapcase())


def _r_order(labels: list[str], arrow: pa.Array | None = None) -> list[int]:
    """Indices that sort ``labels`` as :func:`r_sort` does (stable).

    Many ASCII labels (``arrow``: the same labels as an Arrow string array, when at hand) are sorted by
    Arrow on the two keys (lower case, swapped case), which for ASCII are the collation key; otherwise by
    one NumPy argsort when no label holds a NUL character: the key ``(casefold, swapcase)`` compares as
    the string ``casefold + NUL + swapcase``."""
    if len(labels) < 64 or any("\x00" in t for t in labels):
        keys = list(map(_r_collation_key, labels))
        return sorted(range(len(labels)), key=keys.__getitem__)
    if arrow is not None and len(arrow) == len(labels) and arrow.null_count == 0 \
            and pc.all(pc.string_is_ascii(arrow)).as_py():
        keys = pa.table({"lower": pc.utf8_lower(arrow), "swapped": pc.utf8_swapcase(arrow)})
        return pc.sort_indices(keys, sort_keys=[("lower", "ascending"), ("swapped", "ascending")]).to_pylist()
    joined = np.array([f"{t.casefold()}\x00{t.swapcase()}" for t in labels])
    return np.argsort(joined, kind="stable").tolist()


def r_sort(labels) -> list[str]:
    """Sort strings as R's ``sort``/``factor`` does in a typical UTF-8 locale.

    Numbers stored as strings sort as strings (``"10"`` before ``"2"``).

    Examples
    --------
    >>> r_sort(["b", "B", "a", "10", "2"])
    ['10', '2', 'a', 'b', 'B']
    """
    return sorted((str(x) for x in labels), key=_r_collation_key)


def _encode_strings(arr: pa.Array) -> tuple[np.ndarray, list[str]]:
    # one hashing pass (dictionary_encode), then the distinct values sorted as R sorts them and the
    # indices remapped by one NumPy take
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.large_string())
    encoded = pc.dictionary_encode(arr)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    uniq = [str(x) for x in encoded.dictionary.to_pylist()]
    order = _r_order(uniq, encoded.dictionary)
    remap = np.full(len(uniq) + 1, -1, dtype=np.int32)
    remap[np.asarray(order, dtype=np.int64)] = np.arange(len(uniq), dtype=np.int32)
    if encoded.indices.null_count:
        indices = pc.fill_null(pc.cast(encoded.indices, pa.int32()), -1).to_numpy(zero_copy_only=False)
    else:                                   # no missing values: the indices as they are (zero copy)
        indices = encoded.indices.to_numpy()
    return remap[indices], [uniq[i] for i in order]


def number_label(value: float) -> str:
    """A floating level's label: as R prints it (:func:`r_number_label`) when that text reads back as
    the same number, else the shortest text that does (``repr``), so distinct values never share a label.

    Examples
    --------
    >>> number_label(0.5), number_label(0.1 + 0.2), number_label(1e5)
    ('0.5', '0.30000000000000004', '1e+05')
    """
    text = r_number_label(value)
    try:
        if float(text.replace("Inf", "inf")) == value:
            return text
    except ValueError:
        pass
    return repr(float(value))


def _encode_numbers(values: np.ndarray, integer: bool) -> tuple[np.ndarray, list[str]]:
    codes = np.full(values.shape[0], -1, dtype=np.int32)
    ok = ~np.isnan(values)
    uniq, inverse = np.unique(values[ok], return_inverse=True)
    codes[ok] = inverse.astype(np.int32)
    if integer:
        return codes, [r_number_label(float(v), True) for v in uniq]
    return codes, [number_label(float(v)) for v in uniq]


def _encode_integers(arr: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Codes and labels of an integer column from its own values (int64/uint64), never through float64:
    ids above 2**53 stay distinct."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool) if arr.null_count else None
    values = np.asarray(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False))
    codes = np.full(values.shape[0], -1, dtype=np.int32)
    ok = slice(None) if null is None else ~null
    uniq, inverse = np.unique(values[ok], return_inverse=True)
    codes[ok] = inverse.astype(np.int32).reshape(-1)
    return codes, [str(int(v)) for v in uniq.tolist()]


def _dictionary_labels(dictionary: pa.Array) -> list[str]:
    """Level labels of a categorical's dictionary: strings as they are, numbers as R prints them."""
    if pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type):
        return [str(x) for x in dictionary.to_pylist()]
    values = np.asarray(dictionary.to_numpy(zero_copy_only=False), dtype=np.float64)
    integer = pa.types.is_integer(dictionary.type)
    return [r_number_label(float(v), integer) for v in values]


def encode_column(frame, name: str) -> tuple[np.ndarray, list[str]]:
    """Dictionary-encode a column as int32 codes and level labels, without a loop over rows.

    Levels are a pandas categorical's or polars Enum's own order; otherwise strings are sorted as R
    sorts them, numbers numerically (labelled as R prints them) and booleans as ``FALSE``, ``TRUE``.
    Every level of a categorical is kept, observed or not (see :func:`drop_unused_levels`).

    Returns
    -------
    codes : ndarray of int32
        0-based level index per row, -1 where the value is missing.
    levels : list of str

    Examples
    --------
    >>> import pandas as pd
    >>> codes, levels = encode_column(pd.DataFrame({"g": ["b", "a", None, "b"]}), "g")
    >>> codes.tolist(), levels
    ([1, 0, -1, 1], ['a', 'b'])
    """
    kind = column_kind(frame, name)
    series = _series(frame, name)
    if kind == "numeric":
        if series.dtype.is_integer():
            return _encode_integers(_arrow(series))
        if not series.dtype.is_numeric():
            return _encode_temporal(_arrow(series))
        return _encode_numbers(numeric_column(frame, name), False)
    if kind == "bool":
        values = numeric_column(frame, name)
        codes = np.where(np.isnan(values), -1, values).astype(np.int32)
        return codes, ["FALSE", "TRUE"]
    arr = _arrow(series)
    if kind == "factor" and pa.types.is_dictionary(arr.type):
        levels = _dictionary_labels(arr.dictionary)
        codes = pc.fill_null(pc.cast(arr.indices, pa.int32()), -1)
        return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int32), levels
    return _encode_strings(arr)


def drop_unused_levels(codes: np.ndarray, levels: list, rows: np.ndarray | None = None):
    """Keep only the levels observed in ``rows`` (all rows by default), in their order.

    Returns
    -------
    codes : ndarray of int32
        Re-indexed codes (-1 stays -1; a row outside ``rows`` whose level was dropped gets -1).
    levels : list of str
    dropped : list of str
        The levels removed.

    Examples
    --------
    >>> import numpy as np
    >>> c, lv, gone = drop_unused_levels(np.array([2, 0, 2], dtype=np.int32), ["a", "b", "c"])
    >>> c.tolist(), lv, gone
    ([1, 0, 1], ['a', 'c'], ['b'])
    """
    codes = np.asarray(codes, dtype=np.int32)
    sel = codes if rows is None else codes[rows]
    counts = np.bincount(sel[sel >= 0] if (sel < 0).any() else sel, minlength=len(levels))
    keep = counts > 0
    if keep.all():
        return np.array(codes, dtype=np.int32, copy=True), list(levels), []
    remap = np.full(len(levels) + 1, -1, dtype=np.int32)
    remap[:-1][keep] = np.arange(int(keep.sum()), dtype=np.int32)
    new_codes = remap[codes]  # index -1 reads the trailing -1
    kept = [lv for lv, k in zip(levels, keep) if k]
    dropped = [lv for lv, k in zip(levels, keep) if not k]
    return new_codes, kept, dropped


def row_labels(codes: np.ndarray, levels: list) -> np.ndarray:
    """Per-row level labels (object array, None where the code is -1), by one vectorised take."""
    table = np.array(list(levels) + [None], dtype=object)
    return table[np.where(codes < 0, len(levels), codes)]


def _to_native_column(values, namespace: str, nan_as_null: bool):
    if isinstance(values, np.ndarray) and values.dtype.kind == "f" and nan_as_null and namespace != "pandas":
        return pa.array(values, mask=np.isnan(values))
    if isinstance(values, np.ndarray) and values.dtype.kind == "O":
        return pa.array(values.tolist())
    if isinstance(values, np.ndarray):
        return pa.array(values)
    return pa.array(list(values))


def native_frame(columns: dict, like, nan_as_null: bool = True):
    """Build a frame in the same library as ``like`` (pandas → pandas, polars → polars, pyarrow → Table).

    Parameters
    ----------
    columns : dict of str to array or list
        Column name → values, all of one length. ``None`` in a list is a missing value.
    like : pandas.DataFrame, polars.DataFrame, pyarrow.Table or narwhals.DataFrame
        A frame of the target library.
    nan_as_null : bool, default True
        For polars and pyarrow output, store NaN in float arrays as null (pandas uses NaN as null).

    Examples
    --------
    >>> import polars as pl
    >>> native_frame({"a": [1.0, 2.0]}, like=pl.DataFrame({"x": [0]})).shape
    (2, 1)
    """
    namespace = native_namespace_name(like)
    if namespace == "pandas":
        import pandas as pd

        data = {k: (np.asarray(v) if isinstance(v, np.ndarray) else list(v)) for k, v in columns.items()}
        return pd.DataFrame(data)
    table = pa.table({k: _to_native_column(v, namespace, nan_as_null) for k, v in columns.items()})
    if namespace == "polars":
        import polars as pl

        return pl.from_arrow(table)
    return table


def _direct_library(data):
    """``"pandas"`` or ``"polars"`` for an eager DataFrame of those (read without narwhals), else None."""
    module = type(data).__module__
    if module.startswith("pandas"):
        import pandas as pd

        return "pandas" if isinstance(data, pd.DataFrame) and data.columns.is_unique else None
    if module.startswith("polars"):
        import polars as pl

        return "polars" if isinstance(data, pl.DataFrame) else None
    return None


class _PandasColumn:
    """One column of a pandas DataFrame, as the reader needs it: its dtype, its values (a NumPy array or a
    pandas extension array) and, for error messages, the Series.

    The values are taken from the frame's block manager when pandas offers it (``_mgr.iget_values``):
    a Series costs ~10 microseconds to make and, under copy-on-write, leaves a reference on the column's
    block that every later copy of the frame pays for. Without that method, the Series is read.
    """

    __slots__ = ("_frame", "_name", "array", "dtype")
    ndim = 1

    def __init__(self, frame, name, values):
        self._frame, self._name = frame, name
        self.array, self.dtype = values, values.dtype

    @classmethod
    def of(cls, frame, name):
        """The column ``name`` of ``frame`` (None when it is not one column, e.g. a duplicated name)."""
        try:
            loc = frame.columns.get_loc(name)
            values = frame._mgr.iget_values(loc) if isinstance(loc, int) else None
        except (AttributeError, TypeError, KeyError):
            values = None
        if values is None or getattr(values, "ndim", 1) != 1:
            series = frame[name]
            if getattr(series, "ndim", 2) != 1:
                return None
            values = series.array if not isinstance(series.dtype, np.dtype) else series.to_numpy()
        return cls(frame, name, values)

    def to_numpy(self):
        return self.array if isinstance(self.array, np.ndarray) else self.array.to_numpy()

    def dropna(self):
        return self._frame[self._name].dropna()


def _frozen(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values).view()  # a view of its own: the flag never touches the user's array
    values.flags.writeable = False
    return values


class ColumnCache:
    """The columns of one frame, each read (and converted) at most once.

    pandas and polars columns of the usual types (numbers, booleans, strings, categoricals, Enums)
    are read with the library's own calls, without narwhals' per-column overhead; anything else goes
    through the narwhals functions of this module, so the results are the same as theirs:
    :meth:`kind` as :func:`column_kind`, :meth:`numeric` as :func:`numeric_column`, :meth:`codes` as
    :func:`encode_column` and :meth:`missing` as :func:`missing_mask`. The arrays returned are
    read-only (they may be views of the user's data): index or copy them, never write to them.

    Parameters
    ----------
    data : pandas.DataFrame, polars.DataFrame, pyarrow.Table or narwhals.DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> cols = ColumnCache(pd.DataFrame({"g": ["b", "a", None], "x": [1, 2, 3]}))
    >>> cols.kind("g"), cols.codes("g")[0].tolist(), cols.missing("g").tolist(), cols.numeric("x").tolist()
    ('string', [1, 0, -1], [False, False, True], [1.0, 2.0, 3.0])
    """

    def __init__(self, data):
        library = _direct_library(data)
        if library is None:
            self._frame = as_frame(data)
            self.library = self._frame.implementation.value
            self.native = self._frame.to_native()
            self.columns = list(self._frame.columns)
            self.n = int(self._frame.shape[0])
        else:  # pandas and polars frames are read directly; narwhals is wrapped around them on demand
            self._frame = None
            self.library, self.native = library, data
            self.columns = list(data.columns)
            self.n = len(data) if library == "pandas" else int(data.height)
        self._series: dict = {}
        self._kind: dict = {}
        self._numeric: dict = {}
        self._codes: dict = {}
        self._missing: dict = {}
        self._arrow: dict = {}

    @property
    def frame(self):
        """The data as a narwhals frame."""
        if self._frame is None:
            self._frame = as_frame(self.native)
        return self._frame

    def __contains__(self, name) -> bool:
        return name in self.columns

    def _native_series(self, name: str):
        if name not in self._series:
            if name not in self.columns:
                raise DataError(f"column {name!r} is not in the data")
            series = None
            if self.library == "pandas":
                series = _PandasColumn.of(self.native, name)
            elif self.library == "polars":
                series = self.native.get_column(name)
            self._series[name] = series
        return self._series[name]

    def _native_kind(self, name: str):
        """(kind, how) for the column types read natively, else None (``how`` picks the reader)."""
        series = self._native_series(name)
        if series is None:
            return None
        dtype = series.dtype
        if self.library == "polars":
            import polars as pl

            if isinstance(dtype, (pl.List, pl.Array, pl.Struct)) or dtype in (pl.Binary, pl.Object) \
                    or "128" in str(dtype):
                raise _unusable(name, dtype)
            if dtype == pl.Boolean:
                return "bool", "pl_num"
            if dtype.is_numeric():
                return "numeric", "pl_num"
            if isinstance(dtype, (pl.Datetime, pl.Duration)) or dtype == pl.Date:
                return "numeric", "temporal"
            if isinstance(dtype, pl.Enum):
                return "factor", "pl_enum"
            if dtype == pl.String:
                return "string", "arrow"
            return None
        import pandas as pd

        if isinstance(dtype, np.dtype):
            if dtype.kind == "b":
                return "bool", "np"
            if dtype.kind in "iuf":
                return "numeric", "np"
            if dtype.kind in "Mm":
                return "numeric", "temporal"
            if dtype.kind == "O":
                try:
                    arr = self._arrow_of(name)
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    raise _mixed_types(name, series) from exc
                if pa.types.is_nested(arr.type) or pa.types.is_binary(arr.type):
                    raise _unusable(name, arr.type)
                if is_temporal_type(arr.type):
                    return "numeric", "temporal"
                return ("bool", "arrow_num") if pa.types.is_boolean(arr.type) else ("string", "arrow")
            return None
        if isinstance(dtype, pd.DatetimeTZDtype):
            return "numeric", "temporal"
        if isinstance(dtype, pd.CategoricalDtype):
            return "factor", "pd_cat"
        if isinstance(dtype, pd.StringDtype):
            return "string", "arrow"
        return None

    def _arrow_of(self, name: str) -> pa.Array:
        if name not in self._arrow:
            series = self._native_series(name)
            if self.library == "pandas":
                # Arrow-backed and other extension arrays hand over their Arrow data (no conversion)
                array = series.array
                arr = pa.array(array) if hasattr(array, "__arrow_array__") else \
                    pa.Array.from_pandas(series.to_numpy())
            else:
                arr = series.to_arrow()
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            self._arrow[name] = arr
        return self._arrow[name]

    def _info(self, name: str):
        if name not in self._kind:
            native = self._native_kind(name)
            self._kind[name] = native if native is not None else (column_kind(self.frame, name), None)
        return self._kind[name]

    def kind(self, name: str) -> str:
        """``"numeric"``, ``"bool"``, ``"factor"`` or ``"string"``, as :func:`column_kind`."""
        return self._info(name)[0]

    def numeric(self, name: str) -> np.ndarray:
        """A numeric or boolean column as float64 with NaN where missing (read-only)."""
        if name not in self._numeric:
            kind, how = self._info(name)
            series = self._native_series(name) if how else None
            if kind not in ("numeric", "bool"):
                values = numeric_column(self.frame, name)  # raises the DataError
            elif how == "np":
                values = np.asarray(series.to_numpy(), dtype=np.float64)
            elif how == "pl_num":
                import polars as pl

                if kind == "numeric" and (series.dtype.is_float() or series.dtype.is_integer()):
                    values = series.to_numpy()  # zero-copy without nulls; nulls come back as NaN
                else:
                    values = series.cast(pl.Float64).to_numpy()
            elif how == "temporal":
                values = temporal_numbers(self._arrow_of(name))
            elif how == "arrow_num":
                arr = self._arrow_of(name)
                values = np.array(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
                values[np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = np.nan
            else:
                values = numeric_column(self.frame, name)
            self._numeric[name] = _frozen(np.asarray(values, dtype=np.float64))
        return self._numeric[name]

    def codes(self, name: str) -> tuple[np.ndarray, list[str]]:
        """int32 codes (-1 where missing, read-only) and level labels, as :func:`encode_column`."""
        if name not in self._codes:
            kind, how = self._info(name)
            if how == "temporal":
                codes, levels = _encode_temporal(self._arrow_of(name))
            elif kind == "numeric" and self._is_integer(name):
                codes, levels = self._integer_codes(name)
            elif kind == "numeric":
                codes, levels = _encode_numbers(self.numeric(name), False)
            elif kind == "bool":
                values = self.numeric(name)
                codes, levels = np.where(np.isnan(values), -1, values).astype(np.int32), ["FALSE", "TRUE"]
            elif how == "arrow":
                codes, levels = _encode_strings(self._arrow_of(name))
            elif how == "pd_cat":
                categorical = self._native_series(name).array
                categories = categorical.categories
                if categories.inferred_type == "string":   # strings as they are, without a round trip to Arrow
                    levels = [str(x) for x in categories.tolist()]
                else:
                    levels = _dictionary_labels(pa.array(categories.to_numpy(), from_pandas=True))
                codes = np.asarray(categorical.codes, dtype=np.int32)
            elif how == "pl_enum":
                arr = self._arrow_of(name)  # a dictionary array: the Enum's categories and the indices
                levels = _dictionary_labels(arr.dictionary)
                codes = pc.fill_null(pc.cast(arr.indices, pa.int32()), -1).to_numpy(zero_copy_only=False)
            else:
                codes, levels = encode_column(self.frame, name)
            self._codes[name] = (_frozen(np.asarray(codes, dtype=np.int32)), list(levels))
        return self._codes[name]

    def value_dtype(self, name: str):
        """NumPy dtype of an integer or floating column (the type its levels keep in output frames),
        else None (strings, factors, logicals, dates)."""
        kind, how = self._info(name)
        if kind != "numeric" or how == "temporal":
            return None
        series = self._native_series(name)
        if series is not None and isinstance(series.dtype, np.dtype):
            return series.dtype
        try:
            arr = self._arrow_of(name) if how is not None else _arrow(self.frame[name])
            if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
                return np.dtype(arr.type.to_pandas_dtype())
        except (pa.ArrowException, TypeError, ValueError, NotImplementedError):
            pass
        return None

    def unordered_categorical(self, name: str) -> bool:
        """True for a categorical column whose categories carry no order: a pandas categorical made
        without ``ordered=True`` or a pyarrow dictionary that is not ordered (a polars Enum is ordered)."""
        if self.kind(name) != "factor":
            return False
        series = self._native_series(name)
        if self.library == "pandas" and series is not None:
            return not bool(getattr(series.dtype, "ordered", True))
        if self.library == "polars":
            return False
        arr = _arrow(self.frame[name])
        return pa.types.is_dictionary(arr.type) and not arr.type.ordered

    def strings(self, name: str):
        """A string column as a pyarrow large_string array (None for a column of another kind)."""
        if self.kind(name) != "string":
            return None
        _, how = self._info(name)
        try:
            arr = self._arrow_of(name) if how == "arrow" else _arrow(self.frame[name])
        except (pa.ArrowException, TypeError, ValueError):
            return None
        if pa.types.is_large_string(arr.type):
            return arr
        if pa.types.is_string(arr.type) or pa.types.is_string_view(arr.type):
            return arr.cast(pa.large_string())
        return None

    def _integer_codes(self, name: str):
        series = self._native_series(name)
        if series is not None and isinstance(series.dtype, np.dtype):    # NumPy integers: no conversion
            uniq, inverse = np.unique(series.to_numpy(), return_inverse=True)
            return inverse.astype(np.int32).reshape(-1), [str(int(v)) for v in uniq.tolist()]
        _, how = self._info(name)
        arr = self._arrow_of(name) if how is not None else _arrow(self.frame[name])
        return _encode_integers(arr)

    def _is_integer(self, name: str) -> bool:
        if self._info(name)[1] == "temporal":
            return False
        series = self._native_series(name)
        if series is not None and isinstance(series.dtype, np.dtype):
            return series.dtype.kind in "iu"
        return is_integer_column(self.frame, name)

    def missing(self, name: str) -> np.ndarray:
        """Boolean mask of missing values (read-only), as :func:`missing_mask`."""
        if name not in self._missing:
            kind, how = self._info(name)
            if how is None:
                mask = missing_mask(self.frame, name)
            elif kind in ("numeric", "bool"):
                from .._ext.checks import count_nan

                values = self.numeric(name)
                mask = np.isnan(values) if count_nan(values) else np.zeros(values.shape[0], dtype=bool)
            elif how == "arrow" and name not in self._codes:
                arr = self._arrow_of(name)     # strings: the nulls, without encoding the column
                mask = np.zeros(len(arr), dtype=bool) if arr.null_count == 0 else \
                    np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            else:
                mask = self.codes(name)[0] < 0
            self._missing[name] = _frozen(mask)
        return self._missing[name]
