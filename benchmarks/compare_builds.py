"""Old build against new build of mixframe, side by side in one run.

    python benchmarks/compare_builds.py --builds main,HEAD
    python benchmarks/compare_builds.py --builds HEAD~1,HEAD --tasks sleepstudy_slopes,cbpp --target-seconds 5
    python benchmarks/compare_builds.py --builds main,.          # . = this working tree, as built in place

Each of OLD and NEW is a git revision of this repository or the path of a
checkout whose extensions are built in place.  A revision is exported
(``git archive``, nothing in the repository is touched) into a folder under
``--build-dir`` and its extensions are built there
(``python setup.py build_ext --inplace``); the built extensions are kept in
the same folder, keyed by the blobs of everything the build reads
(``_kernels/``, ``setup.py``, ``pyproject.toml``), the interpreter and the
NumPy version, so a revision whose kernels did not change reuses them.

Timing: for every task (and system: ``mixframe``, the pandas column, by
default; ``--systems mixframe,mixframe-polars`` for both), one worker process
per build loads the prepared data (``suite.py``, the same files for both).
The fits strictly alternate between the two builds, old-new-old-new-...
(so a slow spell on the shared machine hits both), each timed
with ``time.perf_counter`` around the adapter's fit call (the same adapter
as the benchmark table's mixframe column), until both builds have
``--min-rounds`` fits and the budget ``--target-seconds`` (both builds
together) is spent, or ``--max-rounds`` is reached.

The rounds are spread over ``--sessions`` (default 8) sessions: each starts
a fresh worker process per build, pins both to the same CPU (the sessions take
the CPUs in turn; ``--cpus``), warms both up with one untimed fit of a small
task of the same kind, and alternates them.  A process's own luck (memory
layout, cache placement) differs by several per cent between two processes
of the same build; over eight sessions it averages out.

Reported per task: the median fit seconds of each build, the ratio
new ÷ old of the medians (>1: the new build is slower), the median of the
paired ratios (each new fit ÷ the mean of the old fits just before and
after it: the paired figure, with a distribution-free 95 % interval), the number of rounds, and the largest differences between the two
builds' answers (logLik; fixed effects and thresholds relative to
max(|old|, 1)).  A task whose paired ratio exceeds 1 + ``--threshold``
(default 0.05) is flagged SLOWER, and the command then exits with status 1.
The paired figure decides because the fits it compares ran next to each other
on one CPU under the same load, while the medians of the two builds' times can
land in different load regimes of a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import suite  # noqa: E402

# what the extension build reads: a revision differing from another only elsewhere reuses its extensions
BUILD_INPUTS = ("_kernels", "setup.py", "pyproject.toml")
EXT_SUFFIXES = (".so", ".pyd")
MARKER = ".bench-build.json"


# ---------------------------------------------------------------------------
# Builds
# ---------------------------------------------------------------------------


@dataclass
class Build:
    label: str  # "old" | "new"
    spec: str  # as given on the command line
    path: Path  # checkout root holding mixframe/
    revision: str | None = None  # commit, for a git revision
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = f"{self.revision[:12]}" if self.revision else "working tree"
        return f"{self.spec} ({what}, {self.path})"


def _git(*args: str, repo: Path = REPO, binary: bool = False) -> Any:
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout if binary else res.stdout.decode().strip()


def is_checkout(path: Path) -> bool:
    return (path / "mixframe" / "__init__.py").is_file()


def resolve_spec(spec: str, repo: Path = REPO) -> tuple[str, str]:
    """("path", absolute path) for a checkout folder, ("rev", commit) for a git revision."""
    p = Path(spec).expanduser()
    if is_checkout(p.resolve()):
        return "path", str(p.resolve())
    try:
        return "rev", _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", repo=repo)
    except RuntimeError:
        raise SystemExit(f"{spec!r} is neither a checkout folder (with mixframe/) nor a git revision") from None


def build_key(commit: str, python: str, repo: Path = REPO) -> str:
    """Hash of the build inputs of ``commit`` and of the interpreter that builds them."""
    listing = _git("ls-tree", "-r", commit, "--", *BUILD_INPUTS, repo=repo)
    probe = subprocess.run(
        [python, "-c", "import sys, numpy; print(sys.implementation.cache_tag, sys.platform, numpy.__version__)"],
        capture_output=True, text=True, check=False,
    )
    h = hashlib.sha256()
    h.update(listing.encode())
    h.update(probe.stdout.encode())
    return h.hexdigest()[:20]


def export_revision(commit: str, dest: Path, repo: Path = REPO) -> None:
    """The tree of ``commit`` written into ``dest`` (no .git, nothing changed in the repository)."""
    raw = _git("archive", "--format=tar", commit, repo=repo, binary=True)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(dest, filter="data")


def _built_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in (root / "mixframe").rglob("*") if p.suffix in EXT_SUFFIXES)


def run_build(src: Path, spec: str, python: str, nice: bool, notes: list[str], jobs: int = 1) -> None:
    """``python setup.py build_ext --inplace`` in the exported tree ``src``.

    A setuptools older than the project metadata in pyproject.toml (for
    instance one that rejects a PEP 639 ``license`` string) fails before it
    builds anything; the extensions are defined in setup.py alone, so the
    build is then repeated with pyproject.toml set aside in the export."""
    cmd = [python, "setup.py", "build_ext", "--inplace"] + (["-j", str(jobs)] if jobs > 1 else [])
    if nice and shutil.which("nice"):
        cmd = ["nice", "-n", "5", *cmd]
    log = src / "build.log"
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, cwd=str(src), stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text()
    pyproject = src / "pyproject.toml"
    if rc != 0 and "pyproject.toml" in text and pyproject.exists():
        aside = src / "pyproject.toml.aside"
        pyproject.rename(aside)
        try:
            with open(log, "a") as fh:
                fh.write("\n--- again with pyproject.toml set aside ---\n")
                fh.flush()
                rc = subprocess.call(cmd, cwd=str(src), stdout=fh, stderr=subprocess.STDOUT)
        finally:
            aside.rename(pyproject)
        notes.append("built with pyproject.toml set aside (this setuptools rejects its metadata)")
    if rc != 0:
        tail = log.read_text().splitlines()[-20:]
        raise SystemExit(f"build of {spec} failed (exit {rc}), see {log}:\n" + "\n".join(tail))


def build_revision(spec: str, commit: str, label: str, build_dir: Path, python: str, nice: bool,
                   jobs: int = 1) -> Build:
    """Export ``commit`` and give it built extensions (from the extension store when
    an earlier build had the same inputs)."""
    src = build_dir / f"src-{commit[:12]}"
    b = Build(label=label, spec=spec, path=src, revision=commit)
    key = build_key(commit, python)
    marker = src / MARKER
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        b.notes.append("export and extensions reused")
        return b
    if src.exists():
        shutil.rmtree(src)
    export_revision(commit, src)
    store = build_dir / "ext" / key
    if (store / "done").exists():
        for rel in json.loads((store / "done").read_text()):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(store / rel, src / rel)
        b.notes.append(f"extensions reused (inputs {key})")
    else:
        print(f"building {spec} ({commit[:12]}) in {src} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        run_build(src, spec, python, nice, b.notes, jobs)
        built = _built_files(src)
        if not built:
            raise SystemExit(f"build of {spec} produced no extension modules under {src / 'mixframe'}")
        store.mkdir(parents=True, exist_ok=True)
        for rel in built:
            (store / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, store / rel)
        (store / "done").write_text(json.dumps([str(r) for r in built]))
        b.notes.append(f"built in {time.perf_counter() - t0:.0f} s")
    marker.write_text(json.dumps({"commit": commit, "key": key}))
    return b


def prepare_builds(specs: list[str], build_dir: Path, python: str, nice: bool, jobs: int = 1) -> list[Build]:
    builds = []
    for label, spec in zip(("old", "new"), specs):
        kind, value = resolve_spec(spec)
        if kind == "path":
            builds.append(Build(label=label, spec=spec, path=Path(value)))
        else:
            builds.append(build_revision(spec, value, label, build_dir, python, nice, jobs))
    return builds


def worker_env(build_root: Path) -> dict[str, str]:
    """Environment whose ``import mixframe`` finds ``build_root``: it goes first on
    PYTHONPATH, and inherited entries holding another mixframe are dropped."""
    env = dict(os.environ)
    keep = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
            if p and not is_checkout(Path(p).resolve())]
    env["PYTHONPATH"] = os.pathsep.join([str(build_root), *keep])
    return env


# ---------------------------------------------------------------------------
# Worker: one build, one task; fits on request
# ---------------------------------------------------------------------------


def _send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(a: argparse.Namespace) -> None:
    """Load the task's data, then answer one line per request: ``fit`` (one timed
    fit) or ``quit``."""
    import warnings

    import run_python_peers as rp

    try:
        ad = rp.load_adapters([])[a.system]
        task = suite.TASK_BY_NAME[a.task]
        import mixframe

        where = str(Path(mixframe.__file__).resolve().parent)
        expected = str((Path(a.expect_root) / "mixframe").resolve())
        if where != expected:
            _send({"error": f"imported mixframe from {where}, expected {expected}"})
            return
        data = suite.load_frame(task, Path(a.cache))
        data = ad.prepare(task, data) if ad.prepare else data
        wtask = suite.TASK_BY_NAME[a.warmup_task or a.task]
        wdata = suite.load_frame(wtask, Path(a.cache))
        wdata = ad.prepare(wtask, wdata) if ad.prepare else wdata
    except Exception as exc:  # reported to the parent, which records it
        _send({"error": f"{type(exc).__name__}: {exc}"})
        return
    _send({"ready": True, "mixframe": where, "version": getattr(mixframe, "__version__", None)})
    first = True
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            return
        if cmd not in ("fit", "warmup"):
            _send({"error": f"unknown request {cmd!r}"})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if cmd == "warmup":
                    ad.fit(wtask, wdata)
                    _send({"warm": True})
                    continue
                t0 = time.perf_counter()
                out = ad.fit(task, data)
                dt = time.perf_counter() - t0
            except Exception as exc:
                _send({"error": f"{type(exc).__name__}: {exc}"[:2000]})
                continue
        msg: dict[str, Any] = {"seconds": dt}
        if first:
            msg["answer"] = {k: out.get(k) for k in ("logLik", "fixef", "thresholds", "converged")}
            first = False
        _send(msg)


class Worker:
    """A serving worker process for one build and one task."""

    def __init__(self, build: Build, task: str, system: str, cache: Path, python: str,
                 cpus: set[int] | None = None):
        cmd = [python, str(Path(__file__).resolve()), "--serve", "--task", task, "--system", system,
               "--cache", str(cache), "--expect-root", str(build.path), "--warmup-task", warmup_task(task)]
        self.build = build
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=worker_env(build.path), cwd=str(HERE),
                                     preexec_fn=pin)

    def read(self, timeout: float) -> dict:
        out = self.proc.stdout
        ready, _, _ = select.select([out], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no answer within {timeout:g} s")
        line = out.readline()
        if not line:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"worker exited {self.proc.wait()}: {err[-1500:]}")
        return json.loads(line)

    def request(self, what: str, timeout: float) -> dict:
        self.proc.stdin.write(what.encode() + b"\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def fit(self, timeout: float) -> dict:
        return self.request("fit", timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------
# Measurement and summary
# ---------------------------------------------------------------------------


# the small task of the same kind each fresh worker fits once, untimed, before timing starts:
# it loads what the first fit of a process loads lazily, at a few milliseconds' cost
WARMUP = {"lmm": "sleepstudy_slopes", "glmm": "cbpp", "clmm": "wine"}


def warmup_task(task: str) -> str:
    return WARMUP.get(suite.TASK_BY_NAME[task].kind, task)


def paired_interval(ratios: list[float], z: float = 1.96) -> tuple[float, float] | None:
    """Distribution-free 95 % interval for the median of ``ratios`` (order
    statistics of the binomial sign test), or None for fewer than 6 values."""
    n = len(ratios)
    k = int(math.floor((n - z * math.sqrt(n)) / 2.0))
    if n < 6 or k < 0:
        return None
    r = sorted(ratios)
    return r[k], r[n - 1 - k]


def answer_diff(a: dict | None, b: dict | None) -> tuple[float | None, float | None]:
    """(|ΔlogLik|, largest relative coefficient difference) between two answers."""
    if not a or not b:
        return None, None
    dll = None
    if a.get("logLik") is not None and b.get("logLik") is not None:
        dll = abs(float(a["logLik"]) - float(b["logLik"]))
    ca = {**(a.get("fixef") or {}), **{f"t:{k}": v for k, v in (a.get("thresholds") or {}).items()}}
    cb = {**(b.get("fixef") or {}), **{f"t:{k}": v for k, v in (b.get("thresholds") or {}).items()}}
    if set(ca) != set(cb):
        return dll, math.inf
    dfe = max((abs(float(cb[k]) - float(ca[k])) / max(abs(float(ca[k])), 1.0) for k in ca), default=0.0)
    return dll, dfe


def neighbour_ratios(sequence: list[tuple[int, float]]) -> list[float]:
    """Paired ratios of one session: each new-build fit (build 1) divided by the
    mean of the old-build fits (build 0) just before and just after it.

    The builds strictly alternate, so every fit follows a fit of the other
    build (no fit profits from its own warm caches), and taking both
    neighbours cancels a load that rises or falls steadily."""
    out = []
    for p, (b, t) in enumerate(sequence):
        if b != 1:
            continue
        nb = [sequence[q][1] for q in (p - 1, p + 1) if 0 <= q < len(sequence) and sequence[q][0] == 0]
        if nb:
            out.append(t / (sum(nb) / len(nb)))
    return out


def summarize(sessions: list[list[tuple[int, float]]], threshold: float = 0.05) -> dict:
    """Over all sessions' (build, seconds) sequences: the median of each build,
    the ratio new ÷ old of the medians, the median of the paired ratios
    (:func:`neighbour_ratios`) with its 95 % interval, and the flag: the paired
    median above 1 + threshold.  The paired figure decides because the fits it
    compares ran next to each other on the same CPU, under the same load; the
    medians of the two builds' times can fall in different load regimes of a
    shared machine."""
    old = [t for seq in sessions for b, t in seq if b == 0]
    new = [t for seq in sessions for b, t in seq if b == 1]
    ratios = [r for seq in sessions for r in neighbour_ratios(seq)]
    m_old, m_new = statistics.median(old), statistics.median(new)
    paired = statistics.median(ratios)
    return {
        "old_s": m_old,
        "new_s": m_new,
        "ratio": m_new / m_old,
        "paired_ratio": paired,
        "paired_ci": paired_interval(ratios),
        "rounds": min(len(old), len(new)),
        "slower": paired > 1.0 + threshold,
    }


def cpu_cycle(spec: str) -> list[int]:
    """CPUs the sessions pin their workers to, one CPU per session in turn:
    ``auto`` = every CPU this process may run on, ``none`` = no pinning (empty),
    or a comma-separated list."""
    if spec == "none" or not hasattr(os, "sched_setaffinity"):
        return []
    if spec == "auto":
        return sorted(os.sched_getaffinity(0))
    return [int(c) for c in spec.split(",") if c.strip()]


def session_plan(sessions: int, min_rounds: int, max_rounds: int, target: float) -> tuple[int, int, float]:
    """Per session: (rounds at least, rounds at most, fit-time budget)."""
    lo = max(1, math.ceil(min_rounds / sessions))
    hi = max(lo, math.ceil(max_rounds / sessions))
    return lo, hi, target / sessions


def measure(task: str, system: str, builds: list[Build], a: argparse.Namespace) -> dict:
    """Alternate fits of the two builds on one task; the record of the task.

    The rounds are spread over ``a.sessions`` sessions, each with a fresh worker
    process per build (so a process's own luck -- memory layout, where the
    scheduler put it -- averages out), both workers of a session pinned to the
    same CPU (the sessions take the CPUs in turn).  In each session the builds
    strictly alternate, old-new-old-new-...; the first session starts with the
    old build, the next with the new one, and so on."""
    limit = a.time_limit or suite.TASK_BY_NAME[task].time_limit_s
    cycle = cpu_cycle(a.cpus)
    lo, hi, budget = session_plan(a.sessions, a.min_rounds, a.max_rounds, a.target_seconds)
    rec: dict[str, Any] = {"task": task, "system": system}
    sequences: list[list[tuple[int, float]]] = []
    answers: list[dict | None] = [None, None]
    sessions_run = []
    try:
        for j in range(a.sessions):
            cpus = {cycle[j % len(cycle)]} if cycle else None
            order = (0, 1) if j % 2 == 0 else (1, 0)
            workers: list[Worker] = [None, None]  # type: ignore[list-item]
            for i in order:  # the first to start is the first to fit
                workers[i] = Worker(builds[i], task, system, a.cache, a.python, cpus)
            try:
                for w in workers:
                    msg = w.read(timeout=600)
                    if "error" in msg:
                        raise RuntimeError(f"{w.build.label} build: {msg['error']}")
                for w in workers:  # warm-up: untimed
                    msg = w.request("warmup", limit)
                    if "error" in msg:
                        raise RuntimeError(f"{w.build.label} build, warm-up: {msg['error']}")
                spent, r, seq = 0.0, 0, []
                while r < hi and (r < lo or spent < budget):
                    for i in order:
                        msg = workers[i].fit(limit)
                        if "error" in msg:
                            raise RuntimeError(f"{builds[i].label} build: {msg['error']}")
                        seq.append((i, msg["seconds"]))
                        spent += msg["seconds"]
                        if answers[i] is None:  # each build's first answer is compared
                            answers[i] = msg.get("answer")
                    r += 1
                sequences.append(seq)
                sessions_run.append({"cpus": sorted(cpus) if cpus else None, "rounds": r,
                                     "sequence": [[i, t] for i, t in seq]})
            finally:
                for w in workers:
                    if w is not None:
                        w.close()
        rec.update(status="ok", sessions=sessions_run, **summarize(sequences, a.threshold))
        dll, dfe = answer_diff(answers[0], answers[1])
        rec.update(dloglik=dll, dcoef=dfe, loglik_old=(answers[0] or {}).get("logLik"),
                   loglik_new=(answers[1] or {}).get("logLik"))
    except (RuntimeError, TimeoutError) as exc:
        rec.update(status="error", error=str(exc)[:2000])
    return rec


def _fmt_s(x: float) -> str:
    return f"{x:.4g}" if x < 10 else f"{x:.1f}"


def _fmt_d(x: float | None) -> str:
    if x is None:
        return "–"
    if x == math.inf:
        return "names differ"
    return "0" if x == 0 else f"{x:.0e}"


def report(records: list[dict], builds: list[dict], threshold: float) -> str:
    """Markdown table of the records (one per task and system)."""
    multi = len({r["system"] for r in records}) > 1
    out = [f"### Old vs new build, alternating in one run (flag: paired new ÷ old > {1 + threshold:g})\n"]
    for b in builds:
        out.append(f"- {b['label']}: {b['describe']}")
    out.append("")
    head = "| task |" + (" system |" if multi else "")
    out.append(head + " old | new | new ÷ old | paired | paired 95 % | rounds | ΔlogLik | Δcoef | verdict |")
    out.append("|---" * (10 + multi) + "|")
    flagged = []
    for r in records:
        name = f"| {r['task']} |" + (f" {r['system']} |" if multi else "")
        if r.get("status") != "ok":
            out.append(name + " – | – | – | – | – | – | – | – | error: " + r.get("error", "")[:200] + " |")
            flagged.append(r)
            continue
        change = (r["paired_ratio"] - 1.0) * 100.0
        verdict = f"**SLOWER {change:+.1f} %**" if r["slower"] else f"ok ({change:+.1f} %)"
        if r["slower"]:
            flagged.append(r)
        ci = r.get("paired_ci")
        ci_text = f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "–"
        out.append(
            name + f" {_fmt_s(r['old_s'])} | {_fmt_s(r['new_s'])} | {r['ratio']:.3f} | {r['paired_ratio']:.3f} |"
            f" {ci_text} | {r['rounds']} | {_fmt_d(r.get('dloglik'))} | {_fmt_d(r.get('dcoef'))} | {verdict} |"
        )
    out.append("")
    out.append("old, new: median fit seconds. new ÷ old: ratio of the medians (>1: the new build is slower). "
               "paired: median of each new fit's time ÷ the mean of the old fits just before and after it, "
               "with its 95 % interval; the verdict is taken on it. ΔlogLik: |new − old|; Δcoef: largest "
               "fixed-effect or threshold difference relative to max(|old|, 1).")
    if flagged:
        out.append(f"\n{len(flagged)} task(s) flagged: " + ", ".join(r["task"] for r in flagged))
    else:
        out.append("\nNo task lost more than " + f"{threshold * 100:g} %.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builds", help="OLD,NEW: git revisions or checkout folders")
    ap.add_argument("--tasks", default="", help="comma-separated task subset (default: all twelve)")
    ap.add_argument("--systems", default="mixframe",
                    help="mixframe (pandas input), mixframe-polars, or both comma-separated (default: mixframe)")
    ap.add_argument("--target-seconds", type=float, default=60.0,
                    help="fit-time budget per task, both builds together (default 60)")
    ap.add_argument("--min-rounds", type=int, default=8,
                    help="rounds (one fit of each build) at least, all sessions together (default 8)")
    ap.add_argument("--max-rounds", type=int, default=400, help="rounds at most, all sessions together (default 400)")
    ap.add_argument("--threshold", type=float, default=0.05,
                    help="flag a task whose new ÷ old ratio exceeds 1 + this (default 0.05)")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds per fit (default: the task's limit)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="prepared-data folder (default: ~/.cache/mixframe-bench)")
    ap.add_argument("--build-dir", type=Path, default=None,
                    help="where revisions are exported and built, kept for reuse (default: CACHE/builds)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the builds and the fits")
    ap.add_argument("--build-jobs", type=int, default=1, help="parallel compile jobs of a build (default 1)")
    ap.add_argument("--out", type=Path, default=None, help="also write the records as JSON here")
    ap.add_argument("--report", type=Path, default=None, help="also write the markdown table here")
    ap.add_argument("--sessions", type=int, default=8,
                    help="fresh worker pairs per task, the rounds spread over them (default 8)")
    ap.add_argument("--cpus", default="auto",
                    help="CPUs the sessions pin both workers to, one per session in turn: auto (all this "
                    "process may use), none (no pinning), or a list such as 0,1 (default auto)")
    ap.add_argument("--no-nice", action="store_true", help="build and fit at normal priority")
    ap.add_argument("--no-fail", action="store_true", help="exit 0 even when a task is flagged")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--system", help=argparse.SUPPRESS)
    ap.add_argument("--expect-root", help=argparse.SUPPRESS)
    ap.add_argument("--warmup-task", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if not a.serve:
        if not a.builds or len(a.builds.split(",")) != 2:
            ap.error("--builds OLD,NEW is required (two git revisions or checkout folders)")
        if a.min_rounds < 1 or a.max_rounds < a.min_rounds:
            ap.error("need 1 <= --min-rounds <= --max-rounds")
        if a.sessions < 1:
            ap.error("--sessions must be at least 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.serve:
        serve(a)
        return 0
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mixframe-bench"
    a.cache = (a.cache or base).resolve()
    build_dir = (a.build_dir or a.cache / "builds").resolve()
    nice = not a.no_nice
    if nice and hasattr(os, "nice"):
        os.nice(5)  # the fits (children inherit it) and the builds
        nice = False
    systems = [s for s in a.systems.split(",") if s]
    tasks = [t.name for t in suite.get_tasks(a.tasks)]
    needed = sorted(set(tasks) | {warmup_task(t) for t in tasks})
    if not suite.is_prepared(a.cache, needed):
        suite.prepare(a.cache, needed)

    builds = prepare_builds(a.builds.split(","), build_dir, a.python, nice, a.build_jobs)
    info = [{"label": b.label, "spec": b.spec, "path": str(b.path), "revision": b.revision,
             "describe": b.describe(), "notes": b.notes} for b in builds]
    for b in builds:
        print(f"{b.label}: {b.describe()}" + (f" — {'; '.join(b.notes)}" if b.notes else ""), file=sys.stderr)

    records = []
    for task in tasks:
        for system in systems:
            print(f"{task:18s} {system:16s} ", end="", file=sys.stderr, flush=True)
            rec = measure(task, system, builds, a)
            records.append(rec)
            if rec["status"] == "ok":
                print(f"old {rec['old_s']:.4g} s  new {rec['new_s']:.4g} s  paired new/old {rec['paired_ratio']:.3f}"
                      f"  ({rec['rounds']} rounds)" + ("  SLOWER" if rec["slower"] else ""), file=sys.stderr)
            else:
                print("error: " + rec["error"][:300], file=sys.stderr)
            if a.out:
                a.out.write_text(json.dumps({"meta": _meta(a, info), "records": records}, indent=1))
    text = report(records, info, a.threshold)
    print(text)
    if a.report:
        a.report.write_text(text)
    if a.out:
        a.out.write_text(json.dumps({"meta": _meta(a, info), "records": records}, indent=1))
    bad = any(r["status"] != "ok" or r["slower"] for r in records)
    return 1 if bad and not a.no_fail else 0


def _meta(a: argparse.Namespace, builds: list[dict]) -> dict:
    return {
        "runner": "compare_builds.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "builds": builds,
        "target_seconds": a.target_seconds,
        "min_rounds": a.min_rounds,
        "sessions": a.sessions,
        "cpus": a.cpus,
        "max_rounds": a.max_rounds,
        "threshold": a.threshold,
    }


if __name__ == "__main__":
    sys.exit(main())
