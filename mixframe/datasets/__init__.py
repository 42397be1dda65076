"""Classic mixed-model data sets, bundled with the package.

Every data set is returned with its factor columns as categoricals whose
levels follow R's level order (the first level is the reference level under
treatment contrasts), so that a fit here names its terms as R does:

* pandas: ``pandas.Categorical`` columns (``ordered=True`` for ordinal responses);
* polars: ``polars.Enum`` columns (an Enum is always ordered by its categories).

Factors whose labels are numbers in the CSV files (``period`` 1..4, ``YEAR``
95/96/97, grouping ids such as ``Subject`` or ``herd``) become categoricals
with string labels, ordered by their numeric value as R orders them.

Examples
--------
>>> from mixframe import datasets
>>> d = datasets.sleepstudy()
>>> d.shape
(180, 3)
>>> list(d["Subject"].cat.categories[:3])
['308', '309', '310']
>>> list(datasets.salamanders()["spp"].cat.categories)
['GP', 'PR', 'DM', 'EC-A', 'EC-L', 'DES-L', 'DF']
>>> "wine" in datasets.list_datasets()
True
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = [
    "cbpp",
    "describe",
    "dyestuff",
    "gamma_sim",
    "grouseticks",
    "insteval",
    "list_datasets",
    "load",
    "pastes",
    "penicillin",
    "salamanders",
    "sleepstudy",
    "soup",
    "verbagg",
    "wine",
]

# How the levels of a factor column are ordered.
_NUMERIC = "numeric"  # labels are integers: order by value, as R's factor() of a number
_SORTED = "sorted"  # labels sorted bytewise (R's default for character data in the C locale)


@dataclass(frozen=True)
class _Factor:
    levels: str | tuple[str, ...]  # _NUMERIC, _SORTED, or the explicit R level order
    ordered: bool = False


@dataclass(frozen=True)
class _Dataset:
    name: str
    file: str
    source: str
    description: str
    factors: dict[str, _Factor] = field(default_factory=dict)


_INSTEVAL_DEPT = ("15", "5", "10", "12", "6", "7", "4", "8", "9", "14", "1", "3", "11", "2")
_VERBAGG_ITEM = (
    "S1WantCurse",
    "S1WantScold",
    "S1WantShout",
    "S2WantCurse",
    "S2WantScold",
    "S2WantShout",
    "S3WantCurse",
    "S3WantScold",
    "S3WantShout",
    "S4wantCurse",
    "S4WantScold",
    "S4WantShout",
    "S1DoCurse",
    "S1DoScold",
    "S1DoShout",
    "S2DoCurse",
    "S2DoScold",
    "S2DoShout",
    "S3DoCurse",
    "S3DoScold",
    "S3DoShout",
    "S4DoCurse",
    "S4DoScold",
    "S4DoShout",
)
_SALAMANDER_SITE = tuple(f"R-{i}" for i in range(1, 13)) + tuple(f"VF-{i}" for i in range(1, 12))

_DATASETS: dict[str, _Dataset] = {
    d.name: d
    for d in (
        _Dataset(
            "sleepstudy",
            "sleepstudy.csv",
            "lme4::sleepstudy",
            "Reaction times (ms) of 18 subjects over 10 days of sleep deprivation.",
            {"Subject": _Factor(_NUMERIC)},
        ),
        _Dataset(
            "dyestuff",
            "Dyestuff.csv",
            "lme4::Dyestuff",
            "Yield of dyestuff from 6 batches of an intermediate product, 5 preparations each.",
            {"Batch": _Factor(_SORTED)},
        ),
        _Dataset(
            "penicillin",
            "Penicillin.csv",
            "lme4::Penicillin",
            "Diameter of growth-inhibition zones: 24 plates crossed with 6 penicillin samples.",
            {"plate": _Factor(_SORTED), "sample": _Factor(_SORTED)},
        ),
        _Dataset(
            "pastes",
            "Pastes.csv",
            "lme4::Pastes",
            "Strength of a chemical paste: 10 batches, 3 casks nested in each batch, 2 assays per cask.",
            {"batch": _Factor(_SORTED), "cask": _Factor(_SORTED), "sample": _Factor(_SORTED)},
        ),
        _Dataset(
            "insteval",
            "InstEval.csv",
            "lme4::InstEval",
            "73,421 lecture ratings (1-5) by 2,972 students of 1,128 instructors.",
            {
                "s": _Factor(_NUMERIC),
                "d": _Factor(_NUMERIC),
                "studage": _Factor(_NUMERIC),
                "lectage": _Factor(_NUMERIC),
                "service": _Factor(_NUMERIC),
                "dept": _Factor(_INSTEVAL_DEPT),
            },
        ),
        _Dataset(
            "cbpp",
            "cbpp.csv",
            "lme4::cbpp",
            "Contagious bovine pleuropneumonia: new cases (incidence) out of herd size, 15 herds x 4 periods.",
            {"herd": _Factor(_NUMERIC), "period": _Factor(_NUMERIC)},
        ),
        _Dataset(
            "verbagg",
            "VerbAgg.csv",
            "lme4::VerbAgg",
            "Verbal aggression questionnaire: 316 persons x 24 items, ordinal and binary responses.",
            {
                "Gender": _Factor(("F", "M")),
                "item": _Factor(_VERBAGG_ITEM),
                "resp": _Factor(("no", "perhaps", "yes"), ordered=True),
                "id": _Factor(_NUMERIC),
                "btype": _Factor(("curse", "scold", "shout")),
                "situ": _Factor(("other", "self")),
                "mode": _Factor(("want", "do")),
                "r2": _Factor(("N", "Y")),
            },
        ),
        _Dataset(
            "grouseticks",
            "grouseticks.csv",
            "lme4::grouseticks",
            "Ticks counted on 403 red grouse chicks in 118 broods at 63 locations, 1995-1997.",
            {
                "INDEX": _Factor(_NUMERIC),
                "BROOD": _Factor(_NUMERIC),
                "YEAR": _Factor(_NUMERIC),
                "LOCATION": _Factor(_NUMERIC),
            },
        ),
        _Dataset(
            "salamanders",
            "Salamanders.csv",
            "glmmTMB::Salamanders",
            "Salamander counts at 23 stream sites (mined or not), 7 species/life stages, 4 visits.",
            {
                "site": _Factor(_SALAMANDER_SITE),
                "mined": _Factor(("yes", "no")),
                "spp": _Factor(("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF")),
            },
        ),
        _Dataset(
            "wine",
            "wine.csv",
            "ordinal::wine",
            "Bitterness ratings (1-5) of white wine by 9 judges: 2 temperatures x 2 contact conditions.",
            {
                "rating": _Factor(_NUMERIC, ordered=True),
                "temp": _Factor(("cold", "warm")),
                "contact": _Factor(("no", "yes")),
                "bottle": _Factor(_NUMERIC),
                "judge": _Factor(_NUMERIC),
            },
        ),
        _Dataset(
            "soup",
            "soup.csv",
            "ordinal::soup",
            "Discrimination study of packet soup: 185 respondents, sureness ratings on 6 levels.",
            {
                "RESP": _Factor(_NUMERIC),
                "PROD": _Factor(("Ref", "Test")),
                "PRODID": _Factor(_NUMERIC),
                "SURENESS": _Factor(_NUMERIC, ordered=True),
                "DAY": _Factor(_NUMERIC),
                "SOUPTYPE": _Factor(("Self-made", "Canned", "Dry-mix")),
                "SOUPFREQ": _Factor((">1/week", "1-4/month", "<1/month")),
                "COLD": _Factor(("No", "Yes")),
                "EASY": _Factor(_NUMERIC),
                "GENDER": _Factor(("Male", "Female")),
                "AGEGROUP": _Factor(("18-30", "31-40", "41-50", "51-65")),
                "LOCATION": _Factor(("Region 1", "Region 2", "Region 3")),
            },
        ),
        _Dataset(
            "gamma_sim",
            "gamma_sim.csv",
            "simulated in R (seed 101)",
            "Simulated Gamma responses (shape 5, log link): 40 groups x 25 observations.",
            {"g": _Factor(_NUMERIC)},
        ),
    )
}

# Spellings accepted by load() besides the canonical lower-case names.
_ALIASES = {"salamanders_nb": "salamanders", "instevals": "insteval"}


def list_datasets() -> list[str]:
    """Names of the bundled data sets, for :func:`load`.

    Examples
    --------
    >>> from mixframe.datasets import list_datasets
    >>> list_datasets()[:3]
    ['cbpp', 'dyestuff', 'gamma_sim']
    """
    return sorted(_DATASETS)


def describe(name: str) -> str:
    """One-line description and source of a bundled data set.

    Examples
    --------
    >>> from mixframe.datasets import describe
    >>> describe("cbpp").startswith("Contagious bovine pleuropneumonia")
    True
    """
    spec = _spec(name)
    return f"{spec.description} Source: {spec.source}."


def _spec(name: str) -> _Dataset:
    key = str(name).strip().lower()
    key = key.removesuffix(".csv")
    key = _ALIASES.get(key, key)
    if key not in _DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(list_datasets())}")
    return _DATASETS[key]


def _read_bytes(file: str) -> bytes:
    return resources.files(__name__).joinpath("data", file).read_bytes()


def _levels(spec: _Dataset, column: str, factor: _Factor, labels: set[str]) -> list[str]:
    """The level order of one factor column, checked against the labels present."""
    if factor.levels == _NUMERIC:
        try:
            return sorted(labels, key=int)
        except ValueError as exc:
            raise ValueError(
                f"data set {spec.name!r}: column {column!r} was declared numeric-coded but holds {exc}"
            ) from None
    if factor.levels == _SORTED:
        return sorted(labels)
    levels = list(factor.levels)
    unknown = sorted(labels - set(levels))
    if unknown:
        raise ValueError(
            f"data set {spec.name!r}: column {column!r} has labels {unknown} outside its level list"
        )
    return levels


def _load_pandas(spec: _Dataset, raw: bytes) -> Any:
    import pandas as pd

    df = pd.read_csv(io.BytesIO(raw), dtype={c: str for c in spec.factors})
    for col, factor in spec.factors.items():
        values = df[col].astype(object)
        levels = _levels(spec, col, factor, set(values.dropna()))
        df[col] = pd.Categorical(values, categories=levels, ordered=factor.ordered)
    return df


def _load_polars(spec: _Dataset, raw: bytes) -> Any:
    import polars as pl

    df = pl.read_csv(
        io.BytesIO(raw),
        schema_overrides={c: pl.String for c in spec.factors},
        infer_schema_length=None,
    )
    casts = []
    for col, factor in spec.factors.items():
        labels = set(df.get_column(col).drop_nulls().unique().to_list())
        levels = _levels(spec, col, factor, labels)
        casts.append(pl.col(col).cast(pl.Enum(levels)))
    return df.with_columns(casts)


def load(name: str, backend: str = "pandas") -> Any:
    """Load a bundled data set.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets` (case-insensitive; R's spelling such as
        ``"InstEval"`` or ``"VerbAgg"`` works too).
    backend : {"pandas", "polars"}
        The DataFrame library of the result.

    Returns
    -------
    pandas.DataFrame or polars.DataFrame
        Factor columns as ``pandas.Categorical`` / ``polars.Enum`` in R's
        level order; ordinal responses (wine ``rating``, soup ``SURENESS``,
        VerbAgg ``resp``) ordered.

    Examples
    --------
    >>> from mixframe.datasets import load
    >>> wine = load("wine")
    >>> wine["rating"].cat.ordered
    True
    >>> load("cbpp", backend="polars")["period"].dtype
    Enum(categories=['1', '2', '3', '4'])
    """
    spec = _spec(name)
    raw = _read_bytes(spec.file)
    if backend == "pandas":
        return _load_pandas(spec, raw)
    if backend == "polars":
        return _load_polars(spec, raw)
    raise ValueError(f"backend must be 'pandas' or 'polars', got {backend!r}")


def sleepstudy(backend: str = "pandas") -> Any:
    """lme4's sleepstudy: ``Reaction``, ``Days``, ``Subject`` (180 rows). See :func:`load`."""
    return load("sleepstudy", backend)


def dyestuff(backend: str = "pandas") -> Any:
    """lme4's Dyestuff: ``Batch``, ``Yield`` (30 rows). See :func:`load`."""
    return load("dyestuff", backend)


def penicillin(backend: str = "pandas") -> Any:
    """lme4's Penicillin: ``diameter``, ``plate``, ``sample`` (144 rows). See :func:`load`."""
    return load("penicillin", backend)


def pastes(backend: str = "pandas") -> Any:
    """lme4's Pastes: ``strength``, ``batch``, ``cask``, ``sample`` (60 rows). See :func:`load`."""
    return load("pastes", backend)


def insteval(backend: str = "pandas") -> Any:
    """lme4's InstEval: ``s``, ``d``, ``studage``, ``lectage``, ``service``, ``dept``, ``y``
    (73,421 rows). See :func:`load`."""
    return load("insteval", backend)


def cbpp(backend: str = "pandas") -> Any:
    """lme4's cbpp: ``herd``, ``incidence``, ``size``, ``period`` (56 rows). See :func:`load`."""
    return load("cbpp", backend)


def wine(backend: str = "pandas") -> Any:
    """ordinal's wine: ``response``, ``rating`` (ordered), ``temp``, ``contact``, ``bottle``,
    ``judge`` (72 rows). See :func:`load`."""
    return load("wine", backend)


def soup(backend: str = "pandas") -> Any:
    """ordinal's soup: ``RESP``, ``PROD``, ``SURENESS`` (ordered) and respondent covariates
    (1,847 rows). See :func:`load`."""
    return load("soup", backend)


def verbagg(backend: str = "pandas") -> Any:
    """lme4's VerbAgg: ``Anger``, ``Gender``, ``item``, ``resp`` (ordered), ``id``, ``btype``,
    ``situ``, ``mode``, ``r2`` (7,584 rows). See :func:`load`."""
    return load("verbagg", backend)


def grouseticks(backend: str = "pandas") -> Any:
    """lme4's grouseticks plus ``HEIGHT_s`` = scale(HEIGHT) (403 rows). See :func:`load`."""
    return load("grouseticks", backend)


def salamanders(backend: str = "pandas") -> Any:
    """glmmTMB's Salamanders: ``site``, ``mined``, site covariates, ``spp``, ``count``
    (644 rows). See :func:`load`."""
    return load("salamanders", backend)


def gamma_sim(backend: str = "pandas") -> Any:
    """A simulated Gamma GLMM data set: ``g``, ``x``, ``y`` (1,000 rows). See :func:`load`."""
    return load("gamma_sim", backend)
