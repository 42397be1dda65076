"""Batch sources (mixframe.io.sources): what is a stream, batch readers, and row operations per library."""
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from mixframe.io import sources


def _frame(n=11):
    return pd.DataFrame({"a": np.arange(n, dtype=float), "g": [f"l{i % 3}" for i in range(n)]})


def test_is_stream_and_kinds(tmp_path):
    df = _frame()
    table = pa.Table.from_pandas(df, preserve_index=False)
    pads.write_dataset(table, tmp_path / "ds", format="parquet")
    dataset = pads.dataset(tmp_path / "ds", format="parquet")
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    kinds = {"lazy": (pl.from_pandas(df).lazy(), "polars"), "dataset": (dataset, "dataset"),
             "reader": (reader, "reader"), "pandas": (df, None), "polars": (pl.from_pandas(df), None),
             "table": (table, None), "list": ([1, 2], None)}
    for name, (data, kind) in kinds.items():
        assert sources.source_kind(data) == kind, name
        assert sources.is_stream(data) is (kind is not None), name


def test_dask_frame_is_a_stream():
    dd = pytest.importorskip("dask.dataframe")
    assert sources.source_kind(dd.from_pandas(_frame(), npartitions=2)) == "dask"


@pytest.mark.parametrize("kind", ["lazy", "dataset", "reader"])
def test_batches_read_every_row_in_order_and_again(tmp_path, kind):
    df = _frame(1000)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if kind == "lazy":
        data = pl.from_pandas(df).lazy()
    elif kind == "dataset":
        pads.write_dataset(table, tmp_path / "ds", format="arrow", max_rows_per_file=300, max_rows_per_group=300)
        data = pads.dataset(tmp_path / "ds", format="arrow")
    else:
        data = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=70))
    src = sources.Batches(data, batch_rows=256)
    try:
        assert src.columns() == ["a", "g"]
        for _ in range(2):                       # a second pass reads the same rows (a reader from its spool)
            batches = list(src(["a"]))
            assert all(sources.n_rows(b) <= 256 + 300 for b in batches)
            values = np.concatenate([np.asarray(b["a"] if kind == "lazy" else b.column("a")) for b in batches])
            np.testing.assert_array_equal(np.sort(values), df["a"].to_numpy())
            if kind != "dataset":
                np.testing.assert_array_equal(values, df["a"].to_numpy())
    finally:
        src.close()


@pytest.mark.parametrize("library", ["pandas", "polars", "pyarrow"])
def test_row_operations_in_each_library(library):
    df = _frame(7)
    frame = {"pandas": df, "polars": pl.from_pandas(df),
             "pyarrow": pa.Table.from_pandas(df, preserve_index=False)}[library]

    def col(f):
        return np.asarray(f["a"]) if library != "pyarrow" else f.column("a").to_numpy()

    mask = np.array([True, False, True, True, False, False, True])
    np.testing.assert_array_equal(col(sources.filter_rows(frame, mask)), [0.0, 2.0, 3.0, 6.0])
    np.testing.assert_array_equal(col(sources.take_rows(frame, np.array([5, 1]))), [5.0, 1.0])
    both = sources.concat([frame, sources.take_rows(frame, np.array([0]))])
    assert sources.n_rows(both) == 8
    assert sources.first_rows(frame, [("g",)]).tolist() == [0, 1, 2]
    assert sources.first_rows(frame, [("g",), ("a",)]).tolist() == list(range(7))
    assert sources.arrow_strings(frame, "g").to_pylist() == list(df["g"])
    assert sources.arrow_strings(frame, "a") is None
