"""Time mixframe against R (lme4, glmmTMB, ordinal) and the Python peers in one command.

Steps:

1. prepare the benchmark data cache if it is missing (``suite.py prepare``);
2. run ``run_python_peers.py`` with ``benchmarks/mixframe_adapter.py``, so that
   mixframe is timed in the same run, on the same data and with the same
   worker-per-fit protocol as interlace, mixedlm and statsmodels;
3. with ``--with-r`` and ``Rscript`` on the PATH, run the R reference fits
   (``run_r.R``); or reuse an earlier R result with ``--r-json``;
4. print the markdown report of ``compare.py`` (speed, agreement with R, notes)
   and save it next to the result files.

The benchmark suite itself (task list, runners, report) lives outside the
repository, in ``../shared/bench`` relative to the repository root by default
(``--bench-dir`` or the environment variable ``MIXFRAME_BENCH_DIR`` override).

Example::

    python benchmarks/run.py --python .venv-bench/bin/python \
        --systems mixframe,mixframe-polars,interlace --with-r

See benchmarks/README.md for installing the peers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ADAPTER = HERE / "mixframe_adapter.py"


def default_bench_dir() -> Path:
    env = os.environ.get("MIXFRAME_BENCH_DIR")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "bench"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mixframe-bench"


def _env(use_checkout: bool) -> dict[str, str]:
    """Environment for the runners; with use_checkout the repository root goes
    first on PYTHONPATH, so the worker processes import this working tree."""
    env = dict(os.environ)
    if use_checkout:
        parts = [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def _check_import(python: str, env: dict[str, str]) -> str | None:
    """Where `python` imports mixframe from, or None if it cannot."""
    probe = "import mixframe, sys; sys.stdout.write(mixframe.__file__)"
    res = subprocess.run(
        [python, "-c", probe], env=env, cwd=str(Path.home()), capture_output=True, text=True, check=False
    )
    return res.stdout.strip() if res.returncode == 0 else None


def _run(cmd: list, *, nice: bool, cwd: Path, env: dict[str, str] | None = None) -> int:
    if nice and shutil.which("nice"):
        cmd = ["nice", *cmd]
    print("+ " + " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call([str(c) for c in cmd], cwd=str(cwd), env=env)
    print(f"  ({time.perf_counter() - t0:.0f} s, exit {rc})", file=sys.stderr, flush=True)
    return rc


def _limits(a: argparse.Namespace) -> list[str]:
    out = ["--target-seconds", str(a.target_seconds), "--max-repeats", str(a.max_repeats)]
    if a.time_limit is not None:
        out += ["--time-limit", str(a.time_limit)]
    if a.tasks:
        out += ["--tasks", a.tasks]
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--bench-dir",
        type=Path,
        default=None,
        help="folder holding suite.py, run_python_peers.py, run_r.R, compare.py "
        "(default: ../shared/bench from the repository root, or $MIXFRAME_BENCH_DIR)",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="prepared-data folder, outside the repository (default: ~/.cache/mixframe-bench)",
    )
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where result JSONs and report.md go (default: CACHE/results)",
    )
    ap.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that has mixframe and the peers installed (default: this one)",
    )
    ap.add_argument(
        "--systems",
        default="",
        help="comma-separated Python systems: mixframe, mixframe-polars, interlace, "
        "mixedlm, statsmodels (default: all)",
    )
    ap.add_argument("--tasks", default="", help="comma-separated task subset (default: all twelve)")
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds per fit (default: the task's own limit, 600 s; 300 s for big_*)",
    )
    ap.add_argument(
        "--target-seconds",
        type=float,
        default=60.0,
        help="time budget for the repeats of one task (default 60)",
    )
    ap.add_argument("--max-repeats", type=int, default=11)
    ap.add_argument("--mem-limit-gb", type=float, default=16.0)
    ap.add_argument(
        "--with-r",
        action="store_true",
        help="also run the R reference fits (needs Rscript with lme4, glmmTMB, ordinal)",
    )
    ap.add_argument(
        "--r-json",
        type=Path,
        default=None,
        help="reuse an R result file from an earlier run instead of running R",
    )
    ap.add_argument(
        "--extra-json",
        type=Path,
        action="append",
        default=[],
        help="more result files to put in the report (repeatable)",
    )
    ap.add_argument(
        "--skip-python",
        action="store_true",
        help="do not run the Python systems; report from existing files only",
    )
    ap.add_argument("--no-nice", action="store_true", help="run the fits at normal priority")
    ap.add_argument(
        "--use-checkout",
        action="store_true",
        help="time this working tree (repository root put first on PYTHONPATH) "
        "instead of the mixframe installed in --python",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    bench = (a.bench_dir or default_bench_dir()).resolve()
    needed = ("suite.py", "run_python_peers.py", "run_r.R", "compare.py")
    missing = [f for f in needed if not (bench / f).exists()]
    if missing:
        print(
            f"benchmark suite not found in {bench} (missing {', '.join(missing)}); pass --bench-dir",
            file=sys.stderr,
        )
        return 2
    cache = (a.cache or default_cache()).resolve()
    out_dir = (a.out_dir or cache / "results").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    nice = not a.no_nice
    stamp = time.strftime("%Y%m%d-%H%M%S")

    # 1. data
    if not (cache / "tasks.json").exists():
        rc = _run([a.python, bench / "suite.py", "prepare", "--cache", cache], nice=False, cwd=bench)
        if rc:
            return rc

    files: list[Path] = []

    # 2. R first or reused, so that the report has its reference
    if a.r_json is not None:
        files.append(a.r_json.resolve())
    elif a.with_r:
        if shutil.which("Rscript") is None:
            print("--with-r given but Rscript is not on the PATH; skipping R", file=sys.stderr)
        else:
            r_out = out_dir / f"r-{stamp}.json"
            r_cmd = [
                "Rscript",
                bench / "run_r.R",
                "--cache",
                cache,
                "--out",
                r_out,
                "--target-seconds",
                str(a.target_seconds),
                "--max-repeats",
                str(a.max_repeats),
            ]
            if a.time_limit is not None:
                r_cmd += ["--time-limit", str(a.time_limit)]
            if a.tasks:
                r_cmd += ["--tasks", a.tasks]
            _run(r_cmd, nice=nice, cwd=bench)
            if r_out.exists():
                files.append(r_out)

    # 3. Python systems, mixframe among them
    if not a.skip_python:
        env = _env(a.use_checkout)
        wants_mixframe = not a.systems or "mixframe" in a.systems
        if wants_mixframe:
            where = _check_import(a.python, env)
            if where is None:
                print(
                    f"{a.python} cannot import mixframe: install it there "
                    "(pip install -e . --no-build-isolation) or pass --use-checkout",
                    file=sys.stderr,
                )
                return 2
            print(f"mixframe from {where}", file=sys.stderr)
        py_out = out_dir / f"py-{stamp}.json"
        cmd = [
            a.python,
            bench / "run_python_peers.py",
            "--cache",
            cache,
            "--out",
            py_out,
            "--adapter",
            ADAPTER,
            "--mem-limit-gb",
            str(a.mem_limit_gb),
            *_limits(a),
        ]
        if a.systems:
            cmd += ["--systems", a.systems]
        rc = _run(cmd, nice=nice, cwd=bench, env=env)
        if py_out.exists():
            files.append(py_out)
        elif rc:
            return rc

    files += [p.resolve() for p in a.extra_json]
    if not files:
        print("no result files to report on", file=sys.stderr)
        return 1

    # 4. report
    report = out_dir / f"report-{stamp}.md"
    rc = subprocess.call(
        [a.python, str(bench / "compare.py"), *map(str, files), "--out", str(report)], cwd=str(bench)
    )
    print(f"results: {', '.join(map(str, files))}\nreport: {report}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
