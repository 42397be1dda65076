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


def test_pandas_columns_read_without_the_block_manager_give_the_same_values():
    import pandas as pd

    from mixframe.io.frames import ColumnCache, _PandasColumn

    df = pd.DataFrame({"x": [1.5, None, 3.0], "g": ["b", "a", None], "k": pd.Categorical(["u", "v", "u"])})

    class NoInternals:                      # what a pandas without ``_mgr`` offers: columns and __getitem__
        columns = df.columns

        def __getitem__(self, name):
            return df[name]

    for name in df.columns:
        direct, fallback = _PandasColumn.of(df, name), _PandasColumn.of(NoInternals(), name)
        assert direct.dtype == fallback.dtype
        assert list(pd.Series(direct.to_numpy()).isna()) == list(pd.Series(fallback.to_numpy()).isna())
    cache = ColumnCache(df)
    assert cache.codes("g")[0].tolist() == [1, 0, -1] and cache.missing("x").tolist() == [False, True, False]
    dup = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    assert _PandasColumn.of(dup, "a") is None       # a duplicated name is not one column


def test_the_private_copy_falls_back_to_pandas_own_shallow_copy():
    import pandas as pd

    from mixframe.results.rows import _shallow_pandas_copy

    df = pd.DataFrame({"x": [1.0, 2.0]})
    calls = []

    class Frame:
        def copy(self, deep):
            calls.append(deep)
            return df.copy(deep=deep)

    assert _shallow_pandas_copy(Frame()).equals(df) and calls == [False]
    copy = _shallow_pandas_copy(df)
    df.loc[0, "x"] = -1.0
    assert copy["x"].tolist() == [1.0, 2.0]
