"""ColumnCache read paths that the design tests do not reach first: missing masks of string columns taken
from their Arrow nulls (before any encoding), and string columns handed over as Arrow arrays."""
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from mixframe.io import frames


def _strings():
    values = ["b", None, "a", "B", None, "zz", "a"]
    return pd.DataFrame({"obj": pd.Series(values, dtype=object),
                         "nan_obj": pd.Series(["x", np.nan, "y", "x", "y", np.nan, "x"], dtype=object),
                         "arrow": pd.Series(values, dtype="string[pyarrow]"),
                         "full": pd.Series(list("abcabca"), dtype=object)})


@pytest.mark.parametrize("backend", ["pandas", "polars", "pyarrow"])
def test_string_missing_masks_before_encoding(backend):
    df = _strings()
    if backend == "polars":
        df = pl.from_pandas(df)
    elif backend == "pyarrow":
        df = pa.Table.from_pandas(df, preserve_index=False)
    for name in frames.column_names(df):
        cache = frames.ColumnCache(df)
        assert cache.kind(name) == "string"
        mask = cache.missing(name)                 # first: before the column is encoded
        np.testing.assert_array_equal(mask, frames.missing_mask(df, name))
        np.testing.assert_array_equal(mask, cache.codes(name)[0] < 0)
        strings = cache.strings(name)
        assert pa.types.is_large_string(strings.type)
        want = frames.row_labels(*frames.encode_column(df, name)).tolist()
        assert strings.to_pylist() == want
    assert frames.ColumnCache(pd.DataFrame({"x": [1.0]})).strings("x") is None
