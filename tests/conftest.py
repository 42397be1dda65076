"""Shared fixtures: reference cases from R and the data sets loaded as the reference checks load them."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REF_DIR = Path(__file__).parent / "reference"
DATA_DIR = Path(__file__).parent.parent / "mixframe" / "datasets" / "data"


def load_case(name: str) -> dict:
    return json.loads((REF_DIR / f"{name}.json").read_text())


def bar_groups(formula: str) -> set:
    """Grouping columns named in the random-effect bars of an lme4 formula."""
    import re
    out = set()
    for inner in re.findall(r"\(([^()]*\|[^()]*)\)", formula):
        rhs = inner.split("|")[-1]
        out.update(p.strip() for p in re.split(r"[/:+]", rhs) if p.strip())
    return out


def case_frame(case: dict, backend: str = "pandas", formula: str | None = None):
    """The case's CSV with factor columns as categoricals in R's level order (ordinal responses ordered)."""
    formula = formula or case["formula"]
    levels = case.get("factor_levels") or {}
    groups = bar_groups(formula)
    df = pd.read_csv(DATA_DIR / case["data"], dtype={c: str for c in set(levels) | groups})
    response = formula.split("~")[0].strip()
    for col, lv in levels.items():
        if col in df.columns:
            ordered = case.get("package") == "ordinal" and col == response
            df[col] = pd.Categorical(df[col], categories=[str(x) for x in lv], ordered=ordered)
    if backend == "polars":
        import polars as pl
        out = pl.from_pandas(df)
        return out.with_columns([pl.col(c).cast(pl.Enum([str(x) for x in lv]))
                                 for c, lv in levels.items() if c in out.columns])
    return df


@pytest.fixture(params=["pandas", "polars"])
def backend(request):
    return request.param


def rng():
    return np.random.default_rng(20261121)
