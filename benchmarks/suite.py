"""Benchmark task list for mixed-effects model fitting.

Every task names a data set, the model in lme4 syntax, the kind of model
(lmm / glmm / clmm), its family and link, and the R call that serves as the
reference fit.  The module also prepares the data: it reads the classic data
sets from the CSV files bundled with the package (``mixframe/datasets/data/``
of this checkout; see :func:`data_dir`), adds derived columns (interaction
factors, standardised covariates), generates the synthetic data sets with a
fixed seed, and writes everything to a cache folder so that every system --
R and all Python libraries -- fits exactly the same numbers.  The manifest
``tasks.json`` records the SHA-256 of every prepared CSV file, so two caches
can be checked for identical data.

Command line::

    python suite.py prepare --cache /path/to/cache     # writes <task>.csv, <task>.parquet, tasks.json
    python suite.py list                                # prints the task table

The cache folder should live outside the repository (the synthetic files are
large: about 60 MB for big_lmm).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20261121

# the classic data sets every task reads (file names as bundled with the package)
CLASSIC_FILES = (
    "sleepstudy.csv", "Penicillin.csv", "InstEval.csv", "cbpp.csv", "VerbAgg.csv",
    "grouseticks.csv", "Salamanders.csv", "wine.csv", "soup.csv",
)


def data_dir() -> Path:
    """The folder holding the classic data sets, first found of:

    1. ``$MIXFRAME_BENCH_DATA`` (a folder of CSV files with the same names);
    2. ``mixframe/datasets/data`` of the checkout this file belongs to;
    3. the data folder of an installed ``mixframe.datasets``;
    4. ``benchmarks/data``.

    A folder counts only if it holds every file in ``CLASSIC_FILES``.
    """
    candidates: list[Path] = []
    env = os.environ.get("MIXFRAME_BENCH_DATA")
    if env:
        candidates.append(Path(env))
    candidates.append(HERE.parent / "mixframe" / "datasets" / "data")
    try:
        spec = importlib.util.find_spec("mixframe.datasets")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "data")
    candidates.append(HERE / "data")
    for c in candidates:
        if all((c / f).is_file() for f in CLASSIC_FILES):
            return c
    raise FileNotFoundError(
        "classic data sets not found; looked in " + ", ".join(map(str, candidates))
        + f" for {', '.join(CLASSIC_FILES)}"
    )


# ---------------------------------------------------------------------------
# Task definition
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    name: str
    source: str  # CSV file name in data/, or "synthetic"
    kind: str  # "lmm" | "glmm" | "clmm"
    family: str  # "gaussian" | "binomial" | "poisson" | "nbinom2" | "cumulative"
    link: str  # "identity" | "logit" | "log"
    formula: str  # the model in lme4 syntax (as written for R)
    r_call: str  # R expression that fits the model; the data frame is `d`
    response: str  # response column
    fixed: str  # right-hand side of the fixed part, e.g. "Days" or "1"
    random: tuple[str, ...]  # lme4-style terms on columns of the prepared data
    factors: tuple[str, ...]  # categorical columns (grouping and fixed factors)
    trials: str | None = None  # binomial trials column: cbind(y, trials - y)
    reml: bool = False  # LMM only
    ordinal: bool = False  # response is an ordered category coded 1..K
    size: str = "small"  # "small" | "large" (large tasks get a shorter time limit)
    time_limit_s: int = 600  # per-fit limit for the Python runner
    description: str = ""

    # -- convenience views used by adapters ---------------------------------
    @property
    def lhs(self) -> str:
        """Left-hand side in lme4 syntax (cbind form for binomial counts)."""
        if self.trials:
            return f"cbind({self.response}, {self.trials} - {self.response})"
        return self.response

    @property
    def fixed_formula(self) -> str:
        """Fixed part only, e.g. ``"Reaction ~ Days"``."""
        return f"{self.response} ~ {self.fixed}"

    @property
    def flat_formula(self) -> str:
        """lme4 formula on the prepared columns (derived interaction columns
        instead of ``a:b`` grouping), e.g. ``"y ~ service + (1|s) + (1|dept_service)"``."""
        return f"{self.lhs} ~ {self.fixed} + " + " + ".join(self.random)

    def random_parts(self) -> list[tuple[list[str], str, bool]]:
        """Each random term as (effects, grouping column, correlated).

        ``"(Days|Subject)"`` -> (["1", "Days"], "Subject", True).
        """
        out = []
        for term in self.random:
            inner = term.strip()[1:-1]
            correlated = "||" not in inner
            lhs, grp = inner.split("||") if not correlated else inner.split("|")
            effects = [e.strip() for e in lhs.split("+")]
            if "0" not in effects and "1" not in effects:
                effects = ["1"] + effects
            effects = [e for e in effects if e != "0"]
            out.append((effects, grp.strip(), correlated))
        return out

    @property
    def groups(self) -> list[str]:
        return [g for _, g, _ in self.random_parts()]

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(
            lhs=self.lhs,
            fixed_formula=self.fixed_formula,
            flat_formula=self.flat_formula,
            groups=self.groups,
        )
        return d


# ---------------------------------------------------------------------------
# Data preparation
# ---------------------------------------------------------------------------


def _read(name: str, str_cols: list[str]) -> pd.DataFrame:
    return pd.read_csv(data_dir() / name, dtype={c: str for c in str_cols})


def _interaction(df: pd.DataFrame, a: str, b: str) -> pd.Series:
    return df[a].astype(str) + ":" + df[b].astype(str)


def prep_sleepstudy() -> pd.DataFrame:
    return _read("sleepstudy.csv", ["Subject"])


def prep_penicillin() -> pd.DataFrame:
    return _read("Penicillin.csv", ["plate", "sample"])


def prep_insteval() -> pd.DataFrame:
    d = _read("InstEval.csv", ["s", "d", "dept", "service"])
    d["dept_service"] = _interaction(d, "dept", "service")
    return d[["y", "service", "s", "d", "dept", "dept_service"]]


def prep_cbpp() -> pd.DataFrame:
    return _read("cbpp.csv", ["herd", "period"])


def prep_verbagg() -> pd.DataFrame:
    d = _read("VerbAgg.csv", ["id", "item", "Gender", "btype", "situ"])
    # r2 is a factor N/Y in R; glmer models P(r2 == "Y").  Coded 0/1 here so
    # every system sees the same numeric response.
    d["r2"] = (d["r2"] == "Y").astype(int)
    return d[["r2", "Anger", "Gender", "btype", "situ", "id", "item"]]


def prep_grouseticks() -> pd.DataFrame:
    d = _read("grouseticks.csv", ["INDEX", "BROOD", "LOCATION", "YEAR"])
    h = d["HEIGHT"].astype(float)
    d["HEIGHT_s"] = (h - h.mean()) / h.std(ddof=1)  # as R's scale()
    return d[["TICKS", "YEAR", "HEIGHT_s", "BROOD", "INDEX", "LOCATION"]]


def prep_salamanders() -> pd.DataFrame:
    d = _read("Salamanders.csv", ["site", "spp", "mined"])
    return d[["count", "spp", "mined", "site"]]


def prep_wine() -> pd.DataFrame:
    d = _read("wine.csv", ["temp", "contact", "judge"])
    return d[["rating", "temp", "contact", "judge"]]


def prep_soup() -> pd.DataFrame:
    d = _read("soup.csv", ["RESP", "PROD"])
    d["RESP_PROD"] = _interaction(d, "RESP", "PROD")
    return d[["SURENESS", "PROD", "RESP", "RESP_PROD"]]


def _labels(prefix: str, n: int) -> np.ndarray:
    width = len(str(n))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)])


def gen_big_lmm(seed: int = SEED, n_g: int = 20_000, per: int = 50) -> pd.DataFrame:
    """1,000,000 rows, 20,000 groups of 50; y ~ x + (x|g).

    beta = (2.0, 0.5); random intercept SD 1.0, slope SD 0.4, correlation 0.3;
    residual SD 1.0.  ``n_g`` and ``per`` shrink it for tests only.
    """
    rng = np.random.default_rng(seed)
    n = n_g * per
    g = np.repeat(np.arange(n_g), per)
    x = rng.normal(size=n)
    sd = np.array([1.0, 0.4])
    corr = np.array([[1.0, 0.3], [0.3, 1.0]])
    cov = corr * np.outer(sd, sd)
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_g)
    y = 2.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n)
    return pd.DataFrame({"y": np.round(y, 6), "x": np.round(x, 6), "g": _labels("g", n_g)[g]})


def gen_big_glmm(seed: int = SEED + 1, n_s: int = 2_000, n_i: int = 100) -> pd.DataFrame:
    """2,000 subjects fully crossed with 100 items (200,000 rows), binary y.

    logit P(y=1) = -0.5 + 0.8 x + u_subject + v_item; SD(u) = 1.0, SD(v) = 0.6.
    ``n_s`` and ``n_i`` shrink it for tests only.
    """
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(n_s), n_i)
    i = np.tile(np.arange(n_i), n_s)
    n = n_s * n_i
    x = np.round(rng.normal(size=n), 6)
    u = rng.normal(scale=1.0, size=n_s)
    v = rng.normal(scale=0.6, size=n_i)
    eta = -0.5 + 0.8 * x + u[s] + v[i]
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame(
        {"y": y, "x": x, "subject": _labels("s", n_s)[s], "item": _labels("i", n_i)[i]}
    )


def gen_big_clmm(seed: int = SEED + 2, n_g: int = 1_000, per: int = 100) -> pd.DataFrame:
    """100,000 rows, 1,000 groups of 100; 5-level ordinal y ~ x1 + x2 + (1|g).

    Latent y* = 0.8 x1 - 0.5 x2 + u_g + logistic noise, SD(u) = 1.0,
    thresholds (-2.0, -0.7, 0.5, 1.8); y = 1 + #(thresholds below y*).
    ``n_g`` and ``per`` shrink it for tests only.
    """
    rng = np.random.default_rng(seed)
    n = n_g * per
    g = np.repeat(np.arange(n_g), per)
    x1 = np.round(rng.normal(size=n), 6)
    x2 = np.round(rng.normal(size=n), 6)
    u = rng.normal(size=n_g)
    ystar = 0.8 * x1 - 0.5 * x2 + u[g] + rng.logistic(size=n)
    cuts = np.array([-2.0, -0.7, 0.5, 1.8])
    y = 1 + (ystar[:, None] > cuts[None, :]).sum(axis=1)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": _labels("g", n_g)[g]})


# ---------------------------------------------------------------------------
# The task list
# ---------------------------------------------------------------------------

TASKS: list[Task] = [
    Task(
        name="sleepstudy_slopes",
        source="sleepstudy.csv",
        kind="lmm", family="gaussian", link="identity", reml=True,
        formula="Reaction ~ Days + (Days|Subject)",
        r_call="lme4::lmer(Reaction ~ Days + (Days|Subject), data = d, REML = TRUE)",
        response="Reaction", fixed="Days", random=("(Days|Subject)",),
        factors=("Subject",),
        description="180 rows, 18 subjects, correlated random intercept and slope",
    ),
    Task(
        name="penicillin",
        source="Penicillin.csv",
        kind="lmm", family="gaussian", link="identity", reml=True,
        formula="diameter ~ 1 + (1|plate) + (1|sample)",
        r_call="lme4::lmer(diameter ~ 1 + (1|plate) + (1|sample), data = d, REML = TRUE)",
        response="diameter", fixed="1", random=("(1|plate)", "(1|sample)"),
        factors=("plate", "sample"),
        description="144 rows, 24 plates crossed with 6 samples",
    ),
    Task(
        name="insteval",
        source="InstEval.csv",
        kind="lmm", family="gaussian", link="identity", reml=True,
        formula="y ~ service + (1|s) + (1|d) + (1|dept:service)",
        r_call="lme4::lmer(y ~ service + (1|s) + (1|d) + (1|dept:service), data = d, REML = TRUE)",
        response="y", fixed="service", random=("(1|s)", "(1|d)", "(1|dept_service)"),
        factors=("service", "s", "d", "dept", "dept_service"),
        size="large",
        description="73,421 rows; 2,972 students x 1,128 lecturers x 28 dept:service, crossed",
    ),
    Task(
        name="cbpp",
        source="cbpp.csv",
        kind="glmm", family="binomial", link="logit",
        formula="cbind(incidence, size - incidence) ~ period + (1|herd)",
        r_call="lme4::glmer(cbind(incidence, size - incidence) ~ period + (1|herd), data = d, family = binomial)",
        response="incidence", trials="size", fixed="period", random=("(1|herd)",),
        factors=("herd", "period"),
        description="56 rows, binomial counts, 15 herds, Laplace",
    ),
    Task(
        name="verbagg",
        source="VerbAgg.csv",
        kind="glmm", family="binomial", link="logit",
        formula="r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
        r_call="lme4::glmer(r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item), data = d, family = binomial)",
        response="r2", fixed="Anger + Gender + btype + situ", random=("(1|id)", "(1|item)"),
        factors=("Gender", "btype", "situ", "id", "item"),
        description="7,584 binary responses; 316 persons x 24 items, crossed, Laplace",
    ),
    Task(
        name="grouseticks",
        source="grouseticks.csv",
        kind="glmm", family="poisson", link="log",
        formula="TICKS ~ YEAR + HEIGHT_s + (1|BROOD) + (1|INDEX) + (1|LOCATION)",
        r_call="lme4::glmer(TICKS ~ YEAR + HEIGHT_s + (1|BROOD) + (1|INDEX) + (1|LOCATION), data = d, family = poisson)",
        response="TICKS", fixed="YEAR + HEIGHT_s",
        random=("(1|BROOD)", "(1|INDEX)", "(1|LOCATION)"),
        factors=("YEAR", "BROOD", "INDEX", "LOCATION"),
        description="403 counts; observation-level + brood + location effects; HEIGHT_s = (HEIGHT-mean)/sd",
    ),
    Task(
        name="salamanders_nb",
        source="Salamanders.csv",
        kind="glmm", family="nbinom2", link="log",
        formula="count ~ spp + mined + (1|site)",
        r_call="glmmTMB::glmmTMB(count ~ spp + mined + (1|site), data = d, family = glmmTMB::nbinom2)",
        response="count", fixed="spp + mined", random=("(1|site)",),
        factors=("spp", "mined", "site"),
        description="644 counts, 23 sites, negative binomial (NB2, dispersion estimated)",
    ),
    Task(
        name="wine",
        source="wine.csv",
        kind="clmm", family="cumulative", link="logit", ordinal=True,
        formula="rating ~ temp + contact + (1|judge)",
        r_call="ordinal::clmm(rating ~ temp + contact + (1|judge), data = d, link = 'logit')",
        response="rating", fixed="temp + contact", random=("(1|judge)",),
        factors=("temp", "contact", "judge"),
        description="72 ratings on 5 levels, 9 judges",
    ),
    Task(
        name="soup",
        source="soup.csv",
        kind="clmm", family="cumulative", link="logit", ordinal=True,
        formula="SURENESS ~ PROD + (1|RESP) + (1|RESP:PROD)",
        r_call="ordinal::clmm(SURENESS ~ PROD + (1|RESP) + (1|RESP:PROD), data = d, link = 'logit')",
        response="SURENESS", fixed="PROD", random=("(1|RESP)", "(1|RESP_PROD)"),
        factors=("PROD", "RESP", "RESP_PROD"),
        description="1,847 ratings on 6 levels; 185 respondents and respondent:product",
    ),
    Task(
        name="big_lmm",
        source="synthetic",
        kind="lmm", family="gaussian", link="identity", reml=True,
        formula="y ~ x + (x|g)",
        r_call="lme4::lmer(y ~ x + (x|g), data = d, REML = TRUE)",
        response="y", fixed="x", random=("(x|g)",),
        factors=("g",),
        size="large", time_limit_s=300,
        description="synthetic: 1,000,000 rows, 20,000 groups, correlated intercept+slope",
    ),
    Task(
        name="big_glmm",
        source="synthetic",
        kind="glmm", family="binomial", link="logit",
        formula="y ~ x + (1|subject) + (1|item)",
        r_call="lme4::glmer(y ~ x + (1|subject) + (1|item), data = d, family = binomial)",
        response="y", fixed="x", random=("(1|subject)", "(1|item)"),
        factors=("subject", "item"),
        size="large", time_limit_s=300,
        description="synthetic: 200,000 binary rows, 2,000 subjects x 100 items, crossed",
    ),
    Task(
        name="big_clmm",
        source="synthetic",
        kind="clmm", family="cumulative", link="logit", ordinal=True,
        formula="y ~ x1 + x2 + (1|g)",
        r_call="ordinal::clmm(y ~ x1 + x2 + (1|g), data = d, link = 'logit')",
        response="y", fixed="x1 + x2", random=("(1|g)",),
        factors=("g",),
        size="large", time_limit_s=300,
        description="synthetic: 100,000 rows, 5 ordered levels, 1,000 groups",
    ),
]

PREPARE: dict[str, Callable[[], pd.DataFrame]] = {
    "sleepstudy_slopes": prep_sleepstudy,
    "penicillin": prep_penicillin,
    "insteval": prep_insteval,
    "cbpp": prep_cbpp,
    "verbagg": prep_verbagg,
    "grouseticks": prep_grouseticks,
    "salamanders_nb": prep_salamanders,
    "wine": prep_wine,
    "soup": prep_soup,
    "big_lmm": gen_big_lmm,
    "big_glmm": gen_big_glmm,
    "big_clmm": gen_big_clmm,
}

TASK_BY_NAME = {t.name: t for t in TASKS}


def get_tasks(names: str | list[str] | None = None) -> list[Task]:
    """Tasks selected by a comma-separated string or list; all when empty."""
    if not names:
        return list(TASKS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASK_BY_NAME]
    if unknown:
        raise SystemExit(f"unknown task(s): {unknown}; known: {list(TASK_BY_NAME)}")
    return [TASK_BY_NAME[n] for n in names]


# ---------------------------------------------------------------------------
# Cache files
# ---------------------------------------------------------------------------


def prepared_frame(task: Task) -> pd.DataFrame:
    """The task's data as every system receives it (factors as ``str``)."""
    df = PREPARE[task.name]()
    for c in task.factors:
        df[c] = df[c].astype(str)
    return df


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The CSV text the cache holds for a prepared frame.  pandas writes floats
    with the shortest round-trip representation, so R reads the same doubles."""
    return df.to_csv(index=False, lineterminator="\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare(cache: Path, names: list[str] | None = None, force: bool = False) -> dict:
    """Write <task>.csv, <task>.parquet and tasks.json into *cache*; returns
    the manifest (task definitions, seed, SHA-256 of each prepared CSV)."""
    cache.mkdir(parents=True, exist_ok=True)
    manifest_path = cache / "tasks.json"
    checksums: dict[str, str] = {}
    if manifest_path.exists():
        try:
            checksums = dict(json.loads(manifest_path.read_text()).get("sha256", {}))
        except ValueError:
            checksums = {}
    for t in get_tasks(names):
        csv_path, pq_path = cache / f"{t.name}.csv", cache / f"{t.name}.parquet"
        if csv_path.exists() and pq_path.exists() and t.name in checksums and not force:
            continue
        df = prepared_frame(t)
        raw = csv_bytes(df)
        csv_path.write_bytes(raw)
        df.to_parquet(pq_path, index=False)
        checksums[t.name] = sha256(raw)
        print(f"prepared {t.name}: {len(df):,} rows -> {csv_path}", file=sys.stderr)
    manifest = {
        "seed": SEED,
        "data_dir": str(data_dir()),
        "sha256": {k: checksums[k] for k in TASK_BY_NAME if k in checksums},
        "tasks": [t.to_json() for t in TASKS],
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def verify(cache: Path) -> list[str]:
    """Names of the prepared tasks whose CSV no longer matches its recorded SHA-256."""
    manifest = json.loads((cache / "tasks.json").read_text())
    return [
        name for name, digest in manifest.get("sha256", {}).items()
        if not (cache / f"{name}.csv").exists() or _file_sha256(cache / f"{name}.csv") != digest
    ]


def is_prepared(cache: Path, names: list[str] | None = None) -> bool:
    """True when tasks.json records every selected task and its files exist."""
    try:
        manifest = json.loads((cache / "tasks.json").read_text())
    except (OSError, ValueError):
        return False
    done = manifest.get("sha256", {})
    return all(
        t.name in done and (cache / f"{t.name}.csv").exists() and (cache / f"{t.name}.parquet").exists()
        for t in get_tasks(names)
    )


def load_frame(task: Task, cache: Path) -> pd.DataFrame:
    """The prepared data as a pandas DataFrame: factors as str, ordinal
    responses as integers 1..K, everything else numeric."""
    pq = cache / f"{task.name}.parquet"
    if pq.exists():
        df = pd.read_parquet(pq)
    else:
        df = pd.read_csv(cache / f"{task.name}.csv", dtype={c: str for c in task.factors})
    for c in task.factors:
        df[c] = df[c].astype(str)
    return df


def expected_fixef_names(task: Task, df: pd.DataFrame) -> list[str]:
    """Fixed-effect names as R reports them, in R's order: ``(Intercept)``
    (not for clmm, whose thresholds take its place), then per term a numeric
    column's name or factor name + level for every level but the first
    (treatment contrasts, levels sorted bytewise)."""
    names = [] if task.kind == "clmm" else ["(Intercept)"]
    for term in (s.strip() for s in task.fixed.split("+")):
        if term in ("1", "0", ""):
            continue
        if term in task.factors:
            levels = sorted(df[term].astype(str).unique())
            names += [f"{term}{lv}" for lv in levels[1:]]
        else:
            names.append(term)
    return names


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the prepared data and tasks.json into a cache folder")
    p.add_argument("--cache", required=True, type=Path)
    p.add_argument("--tasks", default="", help="comma-separated subset (default: all)")
    p.add_argument("--force", action="store_true", help="rewrite files that exist")
    v = sub.add_parser("verify", help="check the prepared CSV files against their recorded SHA-256")
    v.add_argument("--cache", required=True, type=Path)
    sub.add_parser("list", help="print the task list")
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.cache, [n for n in a.tasks.split(",") if n] or None, a.force)
    elif a.cmd == "verify":
        bad = verify(a.cache)
        if bad:
            raise SystemExit(f"changed since prepared: {', '.join(bad)}")
        print("all prepared files match tasks.json")
    else:
        for t in TASKS:
            print(f"{t.name:18s} {t.kind:5s} {t.family:10s} {t.formula}")


if __name__ == "__main__":
    main()
