"""Linear mixed models from streamed cross-products (polars LazyFrame, pyarrow Dataset / record batches, Dask)."""
from __future__ import annotations


def is_stream(data) -> bool:
    """True for inputs that are fitted batch by batch instead of in memory."""
    mod = type(data).__module__
    name = type(data).__name__
    if mod.startswith("polars") and name == "LazyFrame":
        return True
    if mod.startswith("pyarrow") and name in ("FileSystemDataset", "Dataset", "UnionDataset",
                                                "RecordBatchReader"):
        return True
    if mod.startswith("dask") and name == "DataFrame":
        return True
    return False


def fit_lmm_stream(formula, data, **kw):
    raise NotImplementedError
