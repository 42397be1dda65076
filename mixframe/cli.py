"""Command line: ``mixframe demo`` and ``mixframe fit DATA "FORMULA" [options]``.

Exit codes: 0 success, 2 bad input (missing file, unknown column, formula or data error), 1 anything else.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

KINDS = ("lmm", "glmm", "clmm", "clm")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="mixframe",
        description="Fit mixed-effects models (linear, generalized linear, cumulative link) from the shell.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit the three model kinds on the bundled data sets and print the results")
    demo.add_argument("--backend", choices=["pandas", "polars"], default="polars",
                      help="frame library used for the data and the printed tables (default: polars)")
    fit = sub.add_parser("fit", help="fit one model to a CSV or Parquet file",
                         description="Fit one model to a CSV or Parquet file (read with polars).")
    fit.add_argument("data", help="path to a .csv or .parquet file")
    fit.add_argument("formula", help='lme4-style formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    fit.add_argument("--kind", choices=KINDS, default=None,
                     help="model kind; default: lmm, or glmm when --family is given (not gaussian)")
    fit.add_argument("--family", default=None,
                     help="GLMM family: binomial, poisson, gamma, inverse_gaussian, negative_binomial")
    fit.add_argument("--link", default=None, help="link function (default: the family's canonical link; "
                                                   "for clmm/clm: logit)")
    fit.add_argument("--groups", nargs="*", default=None,
                     help="grouping columns: adds a random intercept (1 | name) for each")
    fit.add_argument("--ml", action="store_true", help="LMM: maximum likelihood instead of REML")
    fit.add_argument("--nagq", type=int, default=1,
                     help="GLMM/CLMM: 1 Laplace (default), >1 adaptive Gauss-Hermite quadrature nodes")
    fit.add_argument("--format", choices=["table", "csv", "json"], default="table",
                     help="table: the summary text; csv/json: the tidy tables (coefficients, variance "
                          "components, glance)")
    return ap


def _read(path: str):
    import polars as pl

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file '{path}' does not exist")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pl.read_parquet(p)
    if p.suffix.lower() in (".csv", ".txt"):
        return pl.read_csv(p, infer_schema_length=10_000)
    raise ValueError(f"data file '{path}': expected a .csv or .parquet file")


def _fit(args):
    import mixframe as mf

    df = _read(args.data)
    kind = args.kind or ("glmm" if args.family and args.family != "gaussian" else "lmm")
    if kind == "lmm":
        return mf.lmm(args.formula, df, reml=not args.ml, groups=args.groups)
    if kind == "glmm":
        return mf.glmm(args.formula, df, family=args.family or "binomial", link=args.link, nagq=args.nagq,
                       groups=args.groups)
    link = args.link or "logit"
    if kind == "clmm":
        return mf.clmm(args.formula, df, link=link, nagq=args.nagq, groups=args.groups)
    return mf.clm(args.formula, df, link=link)


def _emit(fit, fmt: str, out) -> None:
    if fmt == "table":
        print(fit.summary(), file=out)
        return
    tables = {"coefficients": fit.coefficients(), "variance_components": fit.variance_components(),
              "glance": fit.glance()}
    if fmt == "csv":
        for name, frame in tables.items():
            print(f"# {name}", file=out)
            print(frame.write_csv(), file=out, end="")
        return
    print(json.dumps({name: frame.to_dicts() for name, frame in tables.items()}, default=str, indent=1),
          file=out)


def demo(backend: str = "polars", out=None) -> None:
    """Fit an LMM, a GLMM and a CLMM on the bundled data and print the tidy tables."""
    import mixframe as mf

    out = out if out is not None else sys.stdout
    cases = [
        ("Linear mixed model: sleep deprivation (lme4's sleepstudy)",
         lambda: mf.datasets.sleepstudy(backend=backend).mixed.lmm("Reaction ~ Days + (Days | Subject)")),
        ("Generalized linear mixed model: contagious bovine pleuropneumonia (binomial, Laplace)",
         lambda: mf.datasets.cbpp(backend=backend).mixed.glmm(
             "cbind(incidence, size - incidence) ~ period + (1 | herd)", family="binomial")),
        ("Cumulative link mixed model: bitterness of wine rated by judges",
         lambda: mf.datasets.wine(backend=backend).mixed.clmm("rating ~ temp + contact", groups="judge")),
    ]
    import time

    for title, make in cases:
        t0 = time.perf_counter()
        fit = make()
        elapsed = time.perf_counter() - t0
        print("=" * 100, file=out)
        print(f"{title}   [fitted in {elapsed * 1e3:.1f} ms]", file=out)
        print("=" * 100, file=out)
        print(fit.summary(), file=out)
        print("\ncoefficients():", file=out)
        print(fit.coefficients(), file=out)
        print("\nvariance_components():", file=out)
        print(fit.variance_components(), file=out)
        print("\nglance():", file=out)
        print(fit.glance(), file=out)
        print(file=out)


def main(argv=None) -> int:
    """Entry point of the ``mixframe`` command."""
    args = _parser().parse_args(argv)
    try:
        import polars as pl

        pl.Config.set_tbl_cols(20)
        pl.Config.set_tbl_width_chars(160)
        if args.command == "demo":
            demo(args.backend)
            return 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = _fit(args)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        _emit(fit, args.format, sys.stdout)
        return 0
    except (FileNotFoundError, ValueError) as err:  # FormulaError and DataError are ValueErrors
        print(f"mixframe: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
