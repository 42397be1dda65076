"""Sources of batches: the inputs that are read batch by batch instead of in memory.

A *stream* is a polars LazyFrame, a pyarrow Dataset, a pyarrow RecordBatchReader or a Dask DataFrame
(:func:`is_stream`). :class:`Batches` reads the model's columns of a local stream in batches of about
``batch_rows`` rows, as often as asked (a RecordBatchReader, readable once, is spooled to a temporary
Arrow file on the first pass); Dask frames are read by their partitions on the workers. The eager
batches are pandas or polars DataFrames or pyarrow Tables; :func:`filter_rows`, :func:`take_rows`,
:func:`concat` and :func:`first_rows` work on them in their own library.

Inputs are told apart with narwhals' dependency checks (which never import a library that is not
loaded already) and isinstance checks on pyarrow's classes.
"""
from __future__ import annotations

import os
import sys
import tempfile

import narwhals.dependencies as nwd
import numpy as np
import pyarrow as pa

from ..errors import DataError

__all__ = [
    "Batches",
    "arrow_strings",
    "concat",
    "filter_rows",
    "first_rows",
    "is_stream",
    "n_rows",
    "progress",
    "source_kind",
    "take_rows",
]


def _pyarrow_source(data) -> str | None:
    """``"dataset"`` or ``"reader"`` for a pyarrow Dataset or RecordBatchReader, else None."""
    if isinstance(data, pa.RecordBatchReader):
        return "reader"
    if "pyarrow.dataset" in sys.modules:
        import pyarrow.dataset as pads

        if isinstance(data, pads.Dataset):
            return "dataset"
    elif type(data).__module__.startswith("pyarrow._dataset"):
        import pyarrow.dataset as pads

        return "dataset" if isinstance(data, pads.Dataset) else None
    return None


def source_kind(data) -> str | None:
    """What kind of stream ``data`` is: ``"polars"`` (a LazyFrame), ``"dataset"``, ``"reader"`` or
    ``"dask"``; None for anything else (eager frames included).

    Examples
    --------
    >>> import polars as pl
    >>> source_kind(pl.DataFrame({"a": [1]}).lazy()), source_kind(pl.DataFrame({"a": [1]}))
    ('polars', None)
    """
    if nwd.is_polars_lazyframe(data):
        return "polars"
    if nwd.is_dask_dataframe(data):
        return "dask"
    return _pyarrow_source(data)


def is_stream(data) -> bool:
    """True for inputs that are fitted batch by batch instead of in memory.

    Examples
    --------
    >>> import pandas as pd, polars as pl
    >>> is_stream(pl.DataFrame({"a": [1]}).lazy()), is_stream(pd.DataFrame({"a": [1]}))
    (True, False)
    """
    for module in ("pandas", "polars"):     # the common eager frames, answered without the dependency probes
        lib = sys.modules.get(module)
        if lib is not None and type(data) is lib.DataFrame:
            return False
    return source_kind(data) is not None


# ---------------------------------------------------------------------------------- eager batches
def _library(frame) -> str:
    """``"polars"``, ``"pyarrow"`` or ``"pandas"`` for an eager batch."""
    if nwd.is_polars_dataframe(frame):
        return "polars"
    if nwd.is_pyarrow_table(frame):
        return "pyarrow"
    if nwd.is_pandas_dataframe(frame):
        return "pandas"
    raise DataError(f"a batch must be a pandas or polars DataFrame or a pyarrow Table; got "
                    f"{type(frame).__module__}.{type(frame).__name__}")


def n_rows(frame) -> int:
    """Number of rows of an eager batch."""
    return int(frame.num_rows) if hasattr(frame, "num_rows") else len(frame)


def filter_rows(frame, mask: np.ndarray):
    """Rows of an eager batch where ``mask`` holds (the batch itself when every row does)."""
    if mask.all():
        return frame
    library = _library(frame)
    if library == "polars":
        import polars as pl

        return frame.filter(pl.Series(mask))
    if library == "pyarrow":
        return frame.filter(pa.array(mask))
    return frame.loc[mask].reset_index(drop=True)


def take_rows(frame, idx: np.ndarray):
    """Rows ``idx`` of an eager batch, in that order."""
    idx = np.asarray(idx, dtype=np.int64)
    library = _library(frame)
    if library == "polars":
        return frame[idx]
    if library == "pyarrow":
        return frame.take(idx)
    return frame.iloc[idx].reset_index(drop=True)


def concat(parts):
    """Eager batches of one library stacked (types promoted where they differ)."""
    if len(parts) == 1:
        return parts[0]
    library = _library(parts[0])
    if library == "polars":
        import polars as pl

        return pl.concat(parts, how="vertical_relaxed")
    if library == "pyarrow":
        return pa.concat_tables(parts, promote_options="permissive").combine_chunks()
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


def first_rows(frame, level_sets) -> np.ndarray:
    """Indices of the rows where some level set (a tuple of columns) shows a value combination for the first
    time in ``frame``, by hashing (a level may be seen more than once: callers remove repeats).

    Examples
    --------
    >>> import pandas as pd
    >>> first_rows(pd.DataFrame({"g": ["a", "a", "b"], "h": [1, 2, 1]}), [("g",), ("h",)]).tolist()
    [0, 1, 2]
    """
    n = n_rows(frame)
    if n == 0 or not level_sets:
        return np.zeros(min(n, 1), dtype=np.int64)
    library = _library(frame)
    if library == "pandas":
        keep = np.zeros(n, dtype=bool)
        for cols in level_sets:
            keep |= ~frame.duplicated(subset=list(cols), keep="first").to_numpy()
        return np.flatnonzero(keep)
    import polars as pl

    if library == "pyarrow":
        names = sorted({c for cols in level_sets for c in cols})
        frame = pl.from_arrow(frame.select(names))
    exprs = [pl.col(cols[0]).is_first_distinct() if len(cols) == 1 else
             pl.struct([pl.col(c) for c in cols]).is_first_distinct() for cols in level_sets]
    keep = frame.select(pl.any_horizontal(exprs).alias("keep")).get_column("keep").to_numpy()
    return np.flatnonzero(keep)


def arrow_strings(frame, name):
    """A string column of an eager batch as a pyarrow large_string array (None for other types)."""
    library = _library(frame)
    if library == "polars":
        arr = frame.get_column(name).to_arrow()
    elif library == "pyarrow":
        arr = frame.column(name)
    else:
        try:
            arr = pa.array(frame[name], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_string(arr.type) or pa.types.is_string_view(arr.type):
        return arr.cast(pa.large_string())
    return None


# ---------------------------------------------------------------------------------- batch readers
def progress(iterable, control, total=None, desc=""):
    """``iterable`` with a progress bar over batches when ``control["progress"]`` asks for one (by default:
    on an interactive terminal)."""
    flag = (control or {}).get("progress")
    enabled = bool(flag) if flag is not None else sys.stderr.isatty()
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch")


def _coalesce(tables, batch_rows: int):
    """Join small Arrow record batches into tables of about ``batch_rows`` rows."""
    buf, rows = [], 0
    for b in tables:
        buf.append(b)
        rows += b.num_rows
        if rows >= batch_rows:
            yield pa.Table.from_batches(buf)
            buf, rows = [], 0
    if buf:
        yield pa.Table.from_batches(buf)


class Batches:
    """Re-iterable batches of chosen columns from a LazyFrame, a Dataset or a (spooled) RecordBatchReader.

    Parameters
    ----------
    data : polars.LazyFrame, pyarrow.dataset.Dataset or pyarrow.RecordBatchReader
    batch_rows : int
        Rows per batch (about: Arrow batches are joined up to it).

    Examples
    --------
    >>> import polars as pl
    >>> src = Batches(pl.DataFrame({"a": range(5), "b": range(5)}).lazy(), batch_rows=2)
    >>> src.columns(), sum(b.height for b in src(["a"]))
    (['a', 'b'], 5)
    """

    def __init__(self, data, batch_rows: int):
        self.kind = source_kind(data)
        if self.kind not in ("polars", "dataset", "reader"):
            raise DataError(f"cannot read batches from {type(data).__module__}.{type(data).__name__}")
        self.data, self.batch_rows = data, int(batch_rows)
        self._spool = None
        self._read = False

    def columns(self) -> list:
        """The source's column names."""
        if self.kind == "polars":
            return self.data.collect_schema().names()
        return list(self.data.schema.names)

    def like(self):
        """An empty-ish eager frame of the library the batches come in (for output frames)."""
        if self.kind == "polars":
            import polars as pl

            return pl.DataFrame({"_": [0]})
        return pa.table({"_": [0]})

    def __call__(self, cols):
        """An iterator over eager batches holding the columns ``cols``."""
        if self.kind == "polars":
            return iter(self.data.select(cols).collect_batches(chunk_size=self.batch_rows))
        if self.kind == "dataset":
            return _coalesce(self.data.to_batches(columns=cols, batch_size=self.batch_rows), self.batch_rows)
        return self._reader(cols)

    def _reader(self, cols):
        """A RecordBatchReader can be read once: the first pass spools the columns to a temporary file."""
        if self._spool is not None:
            source = pa.memory_map(self._spool)
            return _coalesce(pa.ipc.open_stream(source), self.batch_rows)
        if self._read:
            raise DataError("this RecordBatchReader has already been consumed")
        self._read = True
        fd, path = tempfile.mkstemp(suffix=".arrow", prefix="mixframe-")
        os.close(fd)
        self._spool = path

        def spool():
            writer = None
            try:
                for rb in self.data:
                    rb = pa.RecordBatch.from_arrays([rb.column(c) for c in cols], names=list(cols))
                    if writer is None:
                        writer = pa.ipc.new_stream(path, rb.schema)
                    writer.write_batch(rb)
                    yield rb
            finally:
                if writer is not None:
                    writer.close()
        return _coalesce(spool(), self.batch_rows)

    def close(self):
        """Remove the spool file, if any."""
        if self._spool is not None and os.path.exists(self._spool):
            os.remove(self._spool)
