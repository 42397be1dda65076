"""Fit every benchmark task with mixframe and the Python mixed-model libraries.

Systems measured out of the box:

* ``mixframe``, ``mixframe-polars`` -- this package (``mixframe_adapter.py``
  next to this file: pandas input, and the same data as a polars frame)
* ``interlace``   -- interlace-lme: interlace.fit (LMM), interlace.glmer, interlace.clmm
* ``mixedlm``     -- mixedlm: mixedlm.lmer, mixedlm.glmer
* ``statsmodels`` -- statsmodels: MixedLM (LMM; crossed effects through
  ``vc_formula``), BinomialBayesMixedGLM / PoissonBayesMixedGLM (variational
  Bayes: posterior means, no likelihood)

Every peer is optional: a library that is not installed in the interpreter
running this file is recorded as ``"not installed"`` for every task, and the
other systems run as usual.  A task a library cannot fit is recorded as
``"unsupported"`` with the reason.

Each (system, task) pair runs in its own worker process, so that one library's
imports, caches or memory do not affect another, and so that a fit can be
stopped: a fit running longer than the task's time limit (``time_limit_s`` in
suite.py: 600 s, 300 s for the synthetic large tasks; ``--time-limit``
overrides) is killed and recorded as ``"timeout"``; a worker whose resident
memory passes ``--mem-limit-gb`` is killed and recorded as ``"oom"``.

Timing: ``seconds`` is the median of N fit calls on data already loaded and
converted (``prepare`` below is not timed).  Fits repeat while one more (at
the median so far) stays within ``--target-seconds`` (default 60) in all, up
to ``--max-repeats`` (default 11); a fit slower than half the target runs
once.  Also recorded: ``import_s`` (importing the library), ``load_s``
(reading the prepared data), ``cold_s`` (worker start to the end of the first
fit: what a one-off script pays) and ``process_s`` (the worker's whole life,
all repeats included), and ``peak_rss_mb``.

Adding a library
----------------
Write a file that defines ``ADAPTERS = [Adapter(...)]`` (or one ``ADAPTER``)
and pass it with ``--adapter path/to/file.py``; it is measured in the same run
as the others (``--systems`` picks a subset, e.g. ``--systems mylib,mixframe``).
An adapter is::

    Adapter(
        name="mylib",
        modules=("mylib",),                 # imported (and timed) before fitting
        dist="mylib",                       # distribution name, for the version
        supports=lambda task: None,         # None, or the reason it cannot fit the task
        prepare=lambda task, df: df,        # optional, untimed: convert the pandas frame
        fit=fit_mylib,                      # timed: fit(task, data) -> dict
    )

``fit`` returns ``{"logLik": float | None, "fixef": {name: value},
"thresholds": {...} (clmm), "converged": bool | None, "varcomp": any}`` and
may raise ``Unsupported("reason")``.  Fixed-effect names may follow R
(``"(Intercept)"``, ``"period2"``), patsy (``"period[T.2]"``) or any
convention in R's column order; see ``normalise_fixef``.  ``task`` is a
``suite.Task``: ``task.flat_formula`` is the full lme4 formula,
``task.fixed_formula`` / ``task.random_parts()`` give the pieces.

Usage::

    python run_python_peers.py --cache DIR --out results_py.json \
        [--systems mixframe,interlace,mixedlm,statsmodels] [--tasks a,b] \
        [--adapter mylib_adapter.py] [--time-limit S] [--target-seconds 60]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import suite  # noqa: E402
from suite import Task  # noqa: E402

MIXFRAME_ADAPTER = HERE / "mixframe_adapter.py"

# Adapter files do `from run_python_peers import Adapter, Unsupported`: make
# that the running module, not a second copy, so `except Unsupported` matches.
sys.modules.setdefault("run_python_peers", sys.modules[__name__])


class Unsupported(Exception):
    """Raised by an adapter for a model its library cannot fit."""


@dataclass
class Adapter:
    name: str
    fit: Callable[[Task, Any], dict]
    modules: tuple[str, ...] = ()
    dist: str | None = None
    supports: Callable[[Task], str | None] = lambda task: None
    prepare: Callable[[Task, Any], Any] | None = None


def explicit_terms(task: Task) -> list[str]:
    """Random terms with the intercept written out: ``(Days|Subject)`` ->
    ``(1 + Days | Subject)`` (some libraries read ``(x|g)`` as slope only)."""
    return [
        f"({' + '.join(eff)} {'|' if corr else '||'} {grp})"
        for eff, grp, corr in task.random_parts()
    ]


def intercepts_only(task: Task) -> bool:
    return all(eff == ["1"] for eff, _, _ in task.random_parts())


def _floats(d: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in dict(d).items()}


# ---------------------------------------------------------------------------
# interlace
# ---------------------------------------------------------------------------

_INTERLACE_FAMILY = {"binomial": "binomial", "poisson": "poisson", "nbinom2": "negativebinomial"}


def interlace_prepare(task: Task, df):
    if task.trials:  # interlace takes a proportion response with trial weights
        df = df.copy()
        df["_prop"] = df[task.response] / df[task.trials]
    return df


def interlace_fit(task: Task, df) -> dict:
    import interlace

    random = explicit_terms(task)
    if task.kind == "lmm":
        r = interlace.fit(task.fixed_formula, df, random=random, method="REML" if task.reml else "ML")
    elif task.kind == "glmm":
        kw: dict[str, Any] = {}
        formula = task.fixed_formula
        if task.trials:
            formula = f"_prop ~ {task.fixed}"
            kw["weights"] = df[task.trials].to_numpy(dtype=float)
        if task.family == "nbinom2":
            kw["dispformula"] = "~1"  # estimate the NB dispersion (otherwise held at 1)
        r = interlace.glmer(formula, df, family=_INTERLACE_FAMILY[task.family], random=random, **kw)
    else:
        r = interlace.clmm(task.fixed_formula, df, random=random, link=task.link)
    out = {
        "logLik": float(r.llf),
        "fixef": _floats(r.fe_params),
        "converged": bool(r.converged),
        "varcomp": {str(k): _jsonable(v) for k, v in dict(r.variance_components).items()},
    }
    if task.kind == "clmm":
        out["thresholds"] = _floats(r.thresholds)
    if task.family == "nbinom2" and getattr(r, "disp_params", None) is not None:
        out["nb_theta"] = float(math.exp(float(r.disp_params.iloc[0])))
    return out


def interlace_supports(task: Task) -> str | None:
    if task.kind == "glmm" and task.family not in _INTERLACE_FAMILY:
        return f"family {task.family}"
    if task.kind == "clmm" and not intercepts_only(task):
        return "clmm with random slopes"
    return None


# ---------------------------------------------------------------------------
# mixedlm
# ---------------------------------------------------------------------------


def mixedlm_supports(task: Task) -> str | None:
    if task.kind == "clmm":
        return "no cumulative link (ordinal) mixed model"
    if task.family == "nbinom2":
        return "glmer_nb takes the NB dispersion theta as a fixed input (not estimated)"
    return None


def mixedlm_fit(task: Task, df) -> dict:
    import mixedlm
    from mixedlm.families import Binomial, Poisson

    if task.kind == "lmm":
        m = mixedlm.lmer(task.flat_formula, df, REML=task.reml)
    else:
        formula = task.flat_formula
        if task.trials:  # successes / trials syntax
            formula = f"{task.response} / {task.trials} ~ {task.fixed} + " + " + ".join(task.random)
        family = {"binomial": Binomial, "poisson": Poisson}[task.family]()
        m = mixedlm.glmer(formula, df, family=family)
    conv = None
    try:
        conv = not bool(getattr(m, "optinfo", {}).get("warnings"))
    except Exception:
        pass
    return {"logLik": float(m.logLik()), "fixef": _floats(m.fixef()), "converged": conv,
            "varcomp": _jsonable(getattr(m, "theta", None))}


# ---------------------------------------------------------------------------
# statsmodels
# ---------------------------------------------------------------------------


def statsmodels_supports(task: Task) -> str | None:
    parts = task.random_parts()
    if task.kind == "clmm":
        return "no ordinal mixed model"
    if task.kind == "lmm":
        if len(parts) > 1 and not intercepts_only(task):
            return "crossed random slopes"
        return None
    if task.family == "nbinom2":
        return "no negative binomial mixed model"
    if task.trials:
        return "BinomialBayesMixedGLM takes binary (0/1) responses only"
    if not intercepts_only(task):
        return "random slopes in Bayes mixed GLM"
    return None


def statsmodels_prepare(task: Task, df):
    df = df.copy()
    df["_one"] = 1
    for g in task.groups:
        df[g] = df[g].astype(object)  # patsy treats object columns as categorical
    for c in task.factors:
        df[c] = df[c].astype(object)
    return df


def statsmodels_fit(task: Task, df) -> dict:
    parts = task.random_parts()
    if task.kind == "lmm":
        from statsmodels.regression.mixed_linear_model import MixedLM

        if len(parts) == 1:
            eff, grp, _ = parts[0]
            slopes = [e for e in eff if e != "1"]
            re_formula = "~" + " + ".join(slopes) if slopes else None
            model = MixedLM.from_formula(task.fixed_formula, df, groups=grp, re_formula=re_formula)
        else:  # crossed intercepts: one group holding all observations, one vc per factor
            vc = {g: f"0 + C({g})" for _, g, _ in parts}
            model = MixedLM.from_formula(
                task.fixed_formula, df, groups="_one", re_formula="0", vc_formula=vc
            )
        r = model.fit(reml=task.reml)
        return {"logLik": float(r.llf), "fixef": _floats(r.fe_params), "converged": bool(r.converged),
                "varcomp": {"cov_re": _jsonable(r.cov_re.values), "vcomp": _jsonable(r.vcomp),
                            "scale": float(r.scale)}}
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM, PoissonBayesMixedGLM

    cls = {"binomial": BinomialBayesMixedGLM, "poisson": PoissonBayesMixedGLM}[task.family]
    vc = {g: f"0 + C({g})" for _, g, _ in parts}
    model = cls.from_formula(task.fixed_formula, vc, df)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = model.fit_vb()
    conv = not any("did not converge" in str(x.message) for x in w)
    k = len(r.fe_mean)
    return {"logLik": None, "fixef": dict(zip(model.exog_names[:k], map(float, r.fe_mean))),
            "converged": conv, "varcomp": {"log_sd_mean": _jsonable(r.vcp_mean)},
            "note": "variational Bayes (fit_vb): posterior means, no likelihood"}


PEERS: list[Adapter] = [
    Adapter("interlace", interlace_fit, ("interlace",), "interlace-lme", interlace_supports, interlace_prepare),
    Adapter("mixedlm", mixedlm_fit, ("mixedlm",), "mixedlm", mixedlm_supports),
    Adapter("statsmodels", statsmodels_fit,
            ("statsmodels.regression.mixed_linear_model", "statsmodels.genmod.bayes_mixed_glm"),
            "statsmodels", statsmodels_supports, statsmodels_prepare),
]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _jsonable(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, (np.floating, np.integer)):
            return v.item()
    except ImportError:
        pass
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def _norm_name(name: str) -> str:
    s = name.strip()
    if s in ("Intercept", "const", "(Intercept)"):
        return "(Intercept)"
    if s.startswith("C(") and ")" in s:
        inner, rest = s[2:].split(")", 1)
        s = inner.split(",")[0] + rest
    return s.replace("[T.", "").replace("]", "")


def normalise_fixef(task: Task, df, fixef: dict[str, float]) -> tuple[dict[str, float], str]:
    """Map a library's fixed-effect names onto R's (``period2``).  Names are
    matched after normalising patsy/formulaic forms; failing that, by position
    when the count agrees (the libraries keep R's column order)."""
    expected = suite.expected_fixef_names(task, df)
    normed = {_norm_name(k): v for k, v in fixef.items()}
    if set(normed) == set(expected):
        return {k: normed[k] for k in expected}, "name"
    if len(fixef) == len(expected):
        return dict(zip(expected, fixef.values())), "position"
    return fixef, "unmatched"


def load_adapters(paths: list[str]) -> dict[str, Adapter]:
    """The built-in peers, mixframe's adapters, then the adapter files given
    (a later adapter of the same name replaces an earlier one)."""
    adapters = {a.name: a for a in PEERS}
    for p in [str(MIXFRAME_ADAPTER), *paths]:
        spec = importlib.util.spec_from_file_location(Path(p).stem, p)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[Path(p).stem] = mod
        spec.loader.exec_module(mod)
        found = list(getattr(mod, "ADAPTERS", [])) + ([mod.ADAPTER] if hasattr(mod, "ADAPTER") else [])
        if not found:
            raise SystemExit(f"{p}: defines neither ADAPTERS nor ADAPTER")
        for a in found:
            adapters[a.name] = a
    return adapters


def _version(a: Adapter) -> str | None:
    try:
        return importlib.metadata.version(a.dist or a.name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_modules(a: Adapter) -> list[str]:
    """Top-level modules of the adapter that this interpreter cannot find."""
    out = []
    for m in a.modules:
        top = m.split(".")[0]
        try:
            found = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        if not found and top not in out:
            out.append(top)
    return out


def not_installed(a: Adapter, missing: list[str]) -> dict:
    return {"status": "not installed",
            "reason": f"{', '.join(missing)} not importable by {sys.executable}"}


# ---------------------------------------------------------------------------
# Worker: one (system, task) pair
# ---------------------------------------------------------------------------


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, default=_jsonable))
    os.replace(tmp, path)


def worker(a: argparse.Namespace) -> None:
    t_start = time.time()
    adapters = load_adapters(a.adapter)
    ad = adapters[a.system]
    task = suite.TASK_BY_NAME[a.task]
    res_path, status_path = Path(a.result), Path(a.result + ".status")
    rec: dict[str, Any] = {"status": "running"}

    t0 = time.perf_counter()
    try:
        for m in ad.modules:
            importlib.import_module(m)
    except ModuleNotFoundError as e:
        rec.update(status="not installed", reason=f"{e.name or e} not importable by {sys.executable}")
        _write_json(res_path, rec)
        return
    rec["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = suite.load_frame(task, Path(a.cache))
    rec["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = ad.prepare(task, df) if ad.prepare else df
    rec["prepare_s"] = time.perf_counter() - t0

    times: list[float] = []
    caught: list[str] = []
    while True:
        _write_json(status_path, {"fit_start": time.time(), "n_done": len(times)})
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            try:
                out = ad.fit(task, data)
            except Unsupported as e:
                rec.update(status="unsupported", reason=str(e))
                _write_json(res_path, rec)
                return
            except Exception as e:  # a failure is a result too
                rec.update(status="error", error=f"{type(e).__name__}: {e}"[:2000])
                _write_json(res_path, rec)
                return
            dt = time.perf_counter() - t0
        times.append(dt)
        if len(times) == 1:
            rec["cold_s"] = time.time() - t_start
            caught = sorted({f"{x.category.__name__}: {x.message}"[:300] for x in w})
            fixef, how = normalise_fixef(task, df, out.pop("fixef", {}) or {})
            rec.update(out)
            rec.update(fixef=fixef, fixef_matched_by=how)
            if caught:
                rec["warnings"] = caught
        med = statistics.median(times)
        rec.update(status="ok", seconds=med, times=times, n=len(times))
        _write_json(res_path, rec)
        # repeat while another fit still fits in the time budget
        if len(times) >= a.max_repeats or sum(times) + med > a.target_seconds:
            break


# ---------------------------------------------------------------------------
# Parent: schedule the workers
# ---------------------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def run_one(system: str, task: Task, a: argparse.Namespace, tmpdir: Path) -> dict:
    limit = a.time_limit or task.time_limit_s
    result = tmpdir / f"{system}__{task.name}.json"
    for p in (result, Path(str(result) + ".status")):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--system", system,
           "--task", task.name, "--cache", str(a.cache), "--result", str(result),
           "--target-seconds", str(a.target_seconds), "--max-repeats", str(a.max_repeats)]
    for p in a.adapter:
        cmd += ["--adapter", p]
    spawn = time.time()
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    killed, peak = None, 0.0
    status_path = Path(str(result) + ".status")
    while True:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.time()
        peak = max(peak, _rss_mb(proc.pid))
        fit_start = None
        try:
            fit_start = json.loads(status_path.read_text())["fit_start"]
        except (OSError, ValueError, KeyError):
            pass
        if fit_start is None and now - spawn > limit + 300:
            killed = "timeout"  # stuck before fitting (import/load)
        elif fit_start is not None and now - fit_start > limit:
            killed = "timeout"
        elif peak > a.mem_limit_gb * 1024:
            killed = "oom"
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, st, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.25)
    proc.returncode = os.waitstatus_to_exitcode(st)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    process_s = time.time() - spawn
    rec: dict[str, Any] = {}
    if result.exists():
        rec = json.loads(result.read_text())
    peak = max(peak, ru.ru_maxrss / 1024.0)
    if killed and rec.get("status") != "ok":
        rec["status"] = killed
        rec["limit_s" if killed == "timeout" else "mem_limit_gb"] = (
            limit if killed == "timeout" else a.mem_limit_gb)
    elif killed:  # stopped during a repeat: keep the completed fits
        rec["stopped"] = killed
    elif not rec or rec.get("status") == "running":
        rec["status"] = "error"
        rec["error"] = f"worker exited {proc.returncode}: " + stderr[-1500:]
    rec.update(process_s=process_s, peak_rss_mb=round(peak, 1), time_limit_s=limit)
    return rec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="folder written by `suite.py prepare`")
    ap.add_argument("--out", type=Path, help="result JSON (parent mode)")
    ap.add_argument("--systems", default="", help="comma-separated (default: all adapters)")
    ap.add_argument("--tasks", default="", help="comma-separated (default: all tasks)")
    ap.add_argument("--adapter", action="append", default=[], help="extra adapter file (repeatable)")
    ap.add_argument("--time-limit", type=float, default=None, help="per-fit limit, s (default: per task)")
    ap.add_argument("--mem-limit-gb", type=float, default=16.0)
    ap.add_argument("--target-seconds", type=float, default=60.0)
    ap.add_argument("--max-repeats", type=int, default=11)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--system", help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.cache = a.cache.resolve()

    if a.worker:
        worker(a)
        return
    if a.out is None:
        ap.error("--out is required")

    adapters = load_adapters(a.adapter)
    systems = [s for s in a.systems.split(",") if s] or list(adapters)
    unknown = [s for s in systems if s not in adapters]
    if unknown:
        ap.error(f"unknown system(s) {unknown}; known: {list(adapters)}")
    tasks = suite.get_tasks(a.tasks)
    if not suite.is_prepared(a.cache, [t.name for t in tasks]):
        suite.prepare(a.cache, [t.name for t in tasks])
    tmpdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))

    results: dict[str, dict[str, Any]] = {s: {} for s in systems}
    meta = {
        "runner": "run_python_peers.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "versions": {s: _version(adapters[s]) for s in systems},
        "executable": sys.executable,
        "target_seconds": a.target_seconds,
        "max_repeats": a.max_repeats,
        "time_limit_s": a.time_limit,
        "mem_limit_gb": a.mem_limit_gb,
    }
    missing = {s: missing_modules(adapters[s]) for s in systems}
    for s in systems:
        if missing[s]:
            print(f"[{s}] not installed ({', '.join(missing[s])})", file=sys.stderr)
    for task in tasks:
        for s in systems:
            reason = adapters[s].supports(task)
            if missing[s]:
                rec = not_installed(adapters[s], missing[s])
            elif reason:
                rec = {"status": "unsupported", "reason": reason}
            else:
                print(f"[{s}] {task.name:18s} ", end="", flush=True, file=sys.stderr)
                rec = run_one(s, task, a, tmpdir)
                if rec["status"] == "ok":
                    ll = rec.get("logLik")
                    print(f"{rec['seconds']:9.3f} s (n={rec['n']})  logLik "
                          f"{'n/a' if ll is None else f'{ll:.4f}'}", file=sys.stderr)
                else:
                    print(rec["status"], rec.get("error", rec.get("reason", ""))[:200], file=sys.stderr)
            results[s][task.name] = rec
            a.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=_jsonable))
    shutil.rmtree(tmpdir, ignore_errors=True)
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
