"""Time mixframe against R (lme4, glmmTMB, ordinal) and the Python peers in one command.

Steps:

1. prepare the benchmark data cache for the selected tasks if it is missing
   (``suite.py prepare``: the classic data sets bundled with the package, the
   seeded synthetic ones);
2. run the R reference fits (``run_r.R``) when ``Rscript`` works and has
   jsonlite (``--r auto``, the default); otherwise R is recorded as
   "not installed".  ``--r-json FILE`` reuses an R result of an earlier run;
3. run ``run_python_peers.py``: mixframe, mixframe-polars, interlace, mixedlm
   and statsmodels in one run, each fit in a worker process of its own; a peer
   that is not installed is recorded as "not installed";
4. print the markdown report of ``compare.py`` (speed with the ratio of every
   system to mixframe, agreement with R -- from the R run, or from the stored
   reference ``data/r_reference.json`` for tasks R did not fit) and save it
   next to the result files.

By default the mixframe timed is this checkout (its root goes first on the
workers' ``PYTHONPATH``; the extensions must be built in place); ``--installed``
times the mixframe installed in ``--python`` instead.

Example::

    python benchmarks/run.py --tasks sleepstudy_slopes,penicillin,cbpp,wine --target-seconds 5

See benchmarks/README.md for installing the peers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import suite  # noqa: E402


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mixframe-bench"


def checkout_env(installed: bool) -> dict[str, str]:
    """Environment for the runners; unless ``installed``, the repository root
    goes first on PYTHONPATH, so the workers import this checkout."""
    env = dict(os.environ)
    if not installed:
        parts = [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO)]
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def mixframe_location(python: str, env: dict[str, str]) -> str | None:
    """Where ``python`` imports mixframe from, or None if it cannot."""
    probe = "import mixframe, sys; sys.stdout.write(mixframe.__file__)"
    res = subprocess.run(
        [python, "-c", probe], env=env, cwd=str(Path.home()), capture_output=True, text=True, check=False
    )
    return res.stdout.strip() if res.returncode == 0 else None


def r_status(rscript: str = "Rscript") -> str | None:
    """None when ``rscript`` runs and has jsonlite, else the reason it cannot be used."""
    if shutil.which(rscript) is None:
        return f"{rscript} is not on the PATH"
    try:
        res = subprocess.run(
            [rscript, "-e", 'cat(requireNamespace("jsonlite", quietly = TRUE))'],
            capture_output=True, text=True, timeout=120, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{rscript} does not start: {exc}"
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
        return f"{rscript} does not start: " + (lines[-1] if lines else f"exit {res.returncode}")
    if "TRUE" not in res.stdout:
        return "R package jsonlite is not installed"
    return None


def write_not_installed(path: Path, system: str, tasks: list[str], reason: str) -> None:
    """A result file recording ``system`` as not installed for every task."""
    rec = {"status": "not installed", "reason": reason}
    doc = {"meta": {"runner": "run.py", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "note": reason},
           "results": {system: {t: dict(rec) for t in tasks}}}
    path.write_text(json.dumps(doc, indent=1))


def _run(cmd: list, *, nice: bool, cwd: Path, env: dict[str, str] | None = None) -> int:
    if nice and shutil.which("nice"):
        cmd = ["nice", *cmd]
    print("+ " + " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call([str(c) for c in cmd], cwd=str(cwd), env=env)
    print(f"  ({time.perf_counter() - t0:.0f} s, exit {rc})", file=sys.stderr, flush=True)
    return rc


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=None,
                    help="prepared-data folder, outside the repository (default: ~/.cache/mixframe-bench)")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="where result JSONs and report.md go (default: CACHE/results)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter that has mixframe's dependencies and the peers (default: this one)")
    ap.add_argument("--systems", default="",
                    help="comma-separated Python systems: mixframe, mixframe-polars, interlace, "
                    "mixedlm, statsmodels (default: all)")
    ap.add_argument("--tasks", default="", help="comma-separated task subset (default: all twelve)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds per fit (default: the task's own limit, 600 s; 300 s for big_*)")
    ap.add_argument("--target-seconds", type=float, default=60.0,
                    help="time budget for the repeats of one task and system (default 60)")
    ap.add_argument("--max-repeats", type=int, default=11)
    ap.add_argument("--mem-limit-gb", type=float, default=16.0)
    ap.add_argument("--r", choices=("auto", "yes", "no"), default="auto",
                    help="run the R reference fits: auto (when Rscript works), yes (fail without it), no")
    ap.add_argument("--rscript", default="Rscript", help="the Rscript to run (default: Rscript on the PATH)")
    ap.add_argument("--r-json", type=Path, default=None,
                    help="reuse an R result file from an earlier run instead of running R")
    ap.add_argument("--extra-json", type=Path, action="append", default=[],
                    help="more result files to put in the report (repeatable)")
    ap.add_argument("--skip-python", action="store_true",
                    help="do not run the Python systems; report from existing files only")
    ap.add_argument("--no-nice", action="store_true", help="run the fits at normal priority")
    ap.add_argument("--installed", action="store_true",
                    help="time the mixframe installed in --python instead of this checkout")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    tasks = [t.name for t in suite.get_tasks(a.tasks)]
    cache = (a.cache or default_cache()).resolve()
    out_dir = (a.out_dir or cache / "results").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    nice = not a.no_nice
    stamp = time.strftime("%Y%m%d-%H%M%S")
    limits = ["--target-seconds", str(a.target_seconds), "--max-repeats", str(a.max_repeats),
              "--tasks", ",".join(tasks)]
    if a.time_limit is not None:
        limits += ["--time-limit", str(a.time_limit)]

    # 1. data
    if not suite.is_prepared(cache, tasks):
        rc = _run([a.python, HERE / "suite.py", "prepare", "--cache", cache, "--tasks", ",".join(tasks)],
                  nice=False, cwd=HERE)
        if rc:
            return rc

    files: list[Path] = []

    # 2. R
    if a.r_json is not None:
        files.append(a.r_json.resolve())
    elif a.r != "no":
        why = r_status(a.rscript)
        if why is not None and a.r == "yes":
            print(f"--r yes, but R cannot be used: {why}", file=sys.stderr)
            return 2
        r_out = out_dir / f"r-{stamp}.json"
        if why is not None:
            print(f"R: not installed ({why})", file=sys.stderr)
            write_not_installed(r_out, "R", tasks, why)
        else:
            _run([a.rscript, HERE / "run_r.R", "--cache", cache, "--out", r_out, *limits], nice=nice, cwd=HERE)
        if r_out.exists():
            files.append(r_out)

    # 3. Python systems, mixframe among them
    if not a.skip_python:
        env = checkout_env(a.installed)
        where = mixframe_location(a.python, env)
        wants_mixframe = not a.systems or any(s.startswith("mixframe") for s in a.systems.split(","))
        if wants_mixframe and where is None:
            print(f"{a.python} cannot import mixframe"
                  + (" (is it installed?)" if a.installed else
                     f" from {REPO} (build the extensions: python setup.py build_ext --inplace)"),
                  file=sys.stderr)
            return 2
        if where:
            print(f"mixframe from {where}", file=sys.stderr)
        py_out = out_dir / f"py-{stamp}.json"
        cmd = [a.python, HERE / "run_python_peers.py", "--cache", cache, "--out", py_out,
               "--mem-limit-gb", str(a.mem_limit_gb), *limits]
        if a.systems:
            cmd += ["--systems", a.systems]
        rc = _run(cmd, nice=nice, cwd=HERE, env=env)
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
    rc = subprocess.call([a.python, str(HERE / "compare.py"), *map(str, files), "--out", str(report)],
                         cwd=str(HERE))
    print(f"results: {', '.join(map(str, files))}\nreport: {report}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
