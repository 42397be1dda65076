"""Command line: ``mixframe demo`` and ``mixframe fit DATA "FORMULA" [options]``.

Exit codes: 0 success (also when the reader of the output goes away early, as ``| head`` does); 2 anything that
stops the fit or its output — a missing, empty or malformed file, an unknown column, a formula or data error, a
fit that fails, an output that cannot be written (a closed standard output included) — with a one-line message on
standard error and no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
    fit.add_argument("-o", "--output", default=None, help="write the output to this file instead of stdout")
    return ap


class CliError(Exception):
    """Bad input or a failed fit or write: reported in one line, exit code 2."""


def _read(path: str):
    import polars as pl

    p = Path(path)
    if not p.exists():
        raise CliError(f"data file '{path}' does not exist")
    if p.is_dir():
        raise CliError(f"data file '{path}' is a folder; give a .csv or .parquet file")
    suffix = p.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".txt"):
        raise CliError(f"data file '{path}': expected a .csv or .parquet file")
    if p.stat().st_size == 0:
        raise CliError(f"data file '{path}' is empty")
    try:
        if suffix in (".parquet", ".pq"):
            frame = pl.read_parquet(p)
        else:
            # every row is read before a column's type is chosen, so a value late in the file that changes
            # the type (a number column with a text cell) gives a text column, not a parse failure
            frame = pl.read_csv(p, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise CliError(f"cannot read '{path}' as {'Parquet' if suffix in ('.parquet', '.pq') else 'CSV'}: "
                       f"{exc}") from None
    if frame.height == 0:
        raise CliError(f"data file '{path}' has no rows")
    return frame


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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(err) -> str:
    text = _ANSI.sub("", str(err)).strip() or type(err).__name__
    return " ".join(text.split())


def _open_output(path):
    if path is None:
        if sys.stdout is None or sys.stdout.closed:
            raise CliError("standard output is closed; give --output FILE")
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in main
    except OSError as exc:
        raise CliError(f"cannot write the output to '{path}': {exc.strerror or exc}") from None


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``| head``): stop quietly, as shell tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 0


def main(argv=None) -> int:
    """Entry point of the ``mixframe`` command."""
    args = _parser().parse_args(argv)
    out = None
    try:
        import polars as pl

        pl.Config.set_tbl_cols(20)
        pl.Config.set_tbl_width_chars(160)
        if args.command == "demo":
            demo(args.backend)
            sys.stdout.flush()
            return 0
        out = _open_output(args.output)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fit = _fit(args)
            except (CliError, ValueError):  # FormulaError and DataError are ValueErrors
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the fit is reported in one line
                raise CliError(f"the fit failed ({type(exc).__name__}): {_one_line(exc)}") from None
        for w in caught:
            print(f"warning: {_one_line(w.message)}", file=sys.stderr)
        _emit(fit, args.format, out)
        out.flush()
        return 0
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (CliError, ValueError) as err:
        print(f"mixframe: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # writing the output failed (a full disk, a closed descriptor)
        print(f"mixframe: error: cannot write the output: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        if out is not None and out is not sys.stdout:
            out.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
