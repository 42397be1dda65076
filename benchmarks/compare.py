"""Print a markdown report from benchmark result files.

    python compare.py results-py.json [results-r.json ...] [--base mixframe] [--ref R]

Each file holds ``{"meta": ..., "results": {system: {task: record}}}`` as
written by run_python_peers.py and run_r.R.  The report has:

1. speed: median fit seconds per task and system; every other system's cell
   carries its ratio to mixframe (``--base``): peer seconds / mixframe
   seconds, so 10× means the peer took ten times as long.  The fastest system
   whose answer agrees with R is in bold; a cell marked ✗ is an answer that
   disagrees with R;
2. agreement with R: logLik difference (system - R; positive means a higher
   likelihood than R) and the largest fixed-effect (and threshold) difference,
   relative to max(|R value|, 1).  R's answer comes from an R run in the files
   given, or, for a task that run lacks, from the stored reference
   ``data/r_reference.json`` (R's fits of the nine classic tasks; marked
   "stored"), so the check works without R installed;
3. notes: systems not installed, unsupported models, errors, timeouts,
   convergence flags.

An answer "agrees" when |dlogLik| <= --tol-loglik (default 0.01) and the
relative fixed-effect difference is <= --tol-fixef (default 1e-3).  Systems
without a likelihood (variational Bayes) are judged on fixed effects only and
marked "~".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STORED_REFERENCE = HERE / "data" / "r_reference.json"

ORDER = [
    "sleepstudy_slopes", "penicillin", "insteval", "cbpp", "verbagg", "grouseticks",
    "salamanders_nb", "wine", "soup", "big_lmm", "big_glmm", "big_clmm",
]


def load(paths: list[Path]) -> tuple[dict[str, dict[str, dict]], dict[str, Any]]:
    results: dict[str, dict[str, dict]] = {}
    metas: dict[str, Any] = {}
    for p in paths:
        d = json.loads(p.read_text())
        metas[p.name] = d.get("meta", {})
        for system, tasks in d["results"].items():
            results.setdefault(system, {}).update(tasks)
    return results, metas


def fmt_s(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_e(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 0.01:
        return f"{x:+.3f}"
    return f"{x:+.0e}"


def _coefs(rec: dict) -> dict[str, float]:
    """Fixed effects and (for ordinal models) thresholds, one name space."""
    out = {str(k): float(v) for k, v in (rec.get("fixef") or {}).items()}
    out.update({f"threshold {k}": float(v) for k, v in (rec.get("thresholds") or {}).items()})
    return out


def fixef_diff(rec: dict, ref: dict) -> float | None:
    """Largest relative difference over the reference's coefficients, or None
    when the system lacks one of them."""
    a, b = _coefs(rec), _coefs(ref)
    if rec.get("thresholds") is None:  # a system that reports no thresholds is judged on the rest
        b = {k: v for k, v in b.items() if not k.startswith("threshold ")}
    common = [k for k in b if k in a]
    if not b or len(common) != len(b):
        return None
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1.0) for k in common)


def verdict(rec: dict, ref: dict | None, tol_ll: float, tol_fe: float) -> tuple[str, str]:
    """(agreement mark, text) for one ok record against the reference."""
    if ref is None or ref.get("status") != "ok":
        ll = rec.get("logLik")
        return "?", ("no reference" if ll is None else f"logLik {ll:.4f}, no reference")
    dfe = fixef_diff(rec, ref)
    ll, rll = rec.get("logLik"), ref.get("logLik")
    parts = []
    if ll is not None and rll is not None:
        dll = ll - rll
        parts.append(f"ΔLL {fmt_e(dll)}")
    else:
        dll = None
        parts.append("no logLik")
    parts.append("Δβ n/a" if dfe is None else f"Δβ {dfe:.0e}")
    fe_ok = dfe is not None and dfe <= tol_fe
    if dll is None:
        mark = "~" if fe_ok else "✗"
    else:
        mark = "✓" if abs(dll) <= tol_ll and (dfe is None or fe_ok) else "✗"
    return mark, ", ".join(parts)


def cell_status(rec: dict | None) -> str:
    if rec is None:
        return "–"
    st = rec.get("status")
    if st == "not installed":
        return "not installed"
    if st == "timeout":
        lim = rec.get("limit_s", rec.get("time_limit_s"))
        return f"timeout (>{lim:g} s)" if isinstance(lim, (int, float)) else "timeout"
    if st == "oom":
        return f"out of memory (>{rec.get('mem_limit_gb', '?')} GB)"
    return st or "?"


def system_order(results: dict, base: str, ref_name: str) -> list[str]:
    """mixframe first, then its variants, then the reference, then the rest."""
    names = list(results)
    first = [base] if base in names else []
    variants = sorted(s for s in names if s != base and s.startswith(base))
    ref = [ref_name] if ref_name in names and ref_name not in first + variants else []
    rest = sorted(s for s in names if s not in first + variants + ref)
    return first + variants + ref + rest


def references(results: dict, ref_name: str, stored: dict | None) -> dict[str, tuple[dict, str]]:
    """Per task: (R's record, where it comes from), from the run when it has
    an ok record for the task, else from the stored reference."""
    out: dict[str, tuple[dict, str]] = {}
    for t, rec in (stored or {}).items():
        if rec.get("status") == "ok":
            out[t] = (rec, "stored")
    for t, rec in results.get(ref_name, {}).items():
        if rec.get("status") == "ok":
            out[t] = (rec, "run")
    return out


def report(results, metas, ref_name: str = "R", tol_ll: float = 0.01, tol_fe: float = 1e-3,
           base: str = "mixframe", stored: dict | None = None) -> str:
    """The markdown report of the results ({system: {task: record}})."""
    systems = system_order(results, base, ref_name)
    tasks = [t for t in ORDER if any(t in results[s] for s in systems)]
    tasks += sorted({t for s in systems for t in results[s]} - set(tasks))
    refs = references(results, ref_name, stored)
    base_res = results.get(base, {})
    out: list[str] = []

    def mark_of(s: str, t: str, rec: dict) -> str:
        if s == ref_name and t in refs and refs[t][1] == "run":
            return "✓"
        ref = refs.get(t, (None, ""))[0]
        return verdict(rec, ref, tol_ll, tol_fe)[0]

    # -- speed ---------------------------------------------------------------
    if base in results:
        out.append(f"### Fit time: median seconds (in brackets: ratio to {base}, system ÷ {base}; "
                   ">1 means slower than " + base + ")\n")
    else:
        out.append("### Fit time: median seconds\n")
    out.append("| task | " + " | ".join(systems) + " | fastest agreeing |")
    out.append("|---" * (len(systems) + 2) + "|")
    for t in tasks:
        b = base_res.get(t, {})
        b_ok = b.get("status") == "ok" and b.get("seconds")
        agreeing = {}
        marks = {}
        for s in systems:
            rec = results[s].get(t)
            if rec and rec.get("status") == "ok":
                marks[s] = mark_of(s, t, rec)
                if marks[s] in ("✓", "~"):
                    agreeing[s] = rec["seconds"]
        best = min(agreeing, key=agreeing.get) if agreeing else None
        cells = []
        for s in systems:
            rec = results[s].get(t)
            if rec and rec.get("status") == "ok":
                c = fmt_s(rec["seconds"])
                if s != base and b_ok:
                    c += f" ({rec['seconds'] / b['seconds']:.3g}×)"
                if rec.get("n", 1) == 1:
                    c += "¹"
                if marks[s] == "✗":
                    c += " ✗"
                if s == best:
                    c = f"**{c}**"
            else:
                c = cell_status(rec)
            cells.append(c)
        out.append(f"| {t} | " + " | ".join(cells) + f" | {best or '–'} |")
    out.append("\n¹ one fit only (slow task); other cells are medians of 2–11 fits. "
               f"✗ answer disagrees with {ref_name}. Bold: fastest answer that agrees with {ref_name} "
               "(? when no reference).\n")

    # -- agreement -----------------------------------------------------------
    out.append(f"### Agreement with {ref_name}: logLik difference and max relative fixed-effect difference\n")
    others = [s for s in systems if s != ref_name]
    out.append(f"| task | {ref_name} logLik | " + " | ".join(others) + " |")
    out.append("|---" * (len(others) + 2) + "|")
    for t in tasks:
        ref, src = refs.get(t, (None, ""))
        if ref is not None and ref.get("logLik") is not None:
            rl = f"{ref['logLik']:.4f}" + (" (stored)" if src == "stored" else "")
        else:
            rl = cell_status(results.get(ref_name, {}).get(t))
        cells = []
        for s in others:
            rec = results[s].get(t)
            if rec and rec.get("status") == "ok":
                mark, text = verdict(rec, ref, tol_ll, tol_fe)
                cells.append(f"{mark} {text}")
            else:
                cells.append(cell_status(rec))
        out.append(f"| {t} | {rl} | " + " | ".join(cells) + " |")
    out.append(f"\n✓ agrees (|ΔLL| ≤ {tol_ll}, Δβ ≤ {tol_fe:g}); ✗ differs; ~ no likelihood, "
               "fixed effects agree; ? no reference. ΔLL > 0: higher likelihood than the reference. "
               "(stored): R's answer from `data/r_reference.json`, R not run for this task.\n")

    # -- notes ---------------------------------------------------------------
    notes = []
    for s in systems:
        recs = [results[s][t] for t in tasks if t in results[s]]
        if recs and all(r.get("status") == "not installed" for r in recs):
            notes.append(f"- {s}: not installed — {recs[0].get('reason', '')}")
            continue
        for t in tasks:
            rec = results[s].get(t)
            if not rec:
                continue
            st = rec.get("status")
            if st == "not installed":
                notes.append(f"- {s} / {t}: not installed — {rec.get('reason', '')}")
            elif st == "unsupported":
                notes.append(f"- {s} / {t}: unsupported — {rec.get('reason', '')}")
            elif st == "error":
                notes.append(f"- {s} / {t}: error — {rec.get('error', '')[:300]}")
            elif st in ("timeout", "oom"):
                notes.append(f"- {s} / {t}: {cell_status(rec)}")
            elif st == "ok":
                if rec.get("converged") is False:
                    notes.append(f"- {s} / {t}: fitted, but reports non-convergence")
                if rec.get("messages"):
                    notes.append(f"- {s} / {t}: {'; '.join(map(str, rec['messages']))[:300]}")
                if rec.get("fixef_matched_by") == "position":
                    notes.append(f"- {s} / {t}: fixed effects matched by position (names differ from R)")
                if rec.get("stopped"):
                    notes.append(f"- {s} / {t}: repeats stopped ({rec['stopped']}); median of completed fits")
                if rec.get("note"):
                    notes.append(f"- {s} / {t}: {rec['note']}")
    if notes:
        out.append("### Notes\n")
        out.extend(notes)
        out.append("")

    # -- cold start --------------------------------------------------------
    cold = [(s, t) for s in systems for t in tasks
            if results[s].get(t, {}).get("status") == "ok" and "cold_s" in results[s][t]]
    if cold:
        out.append("### One-off cost (worker start to first fit done: import + load + first fit), seconds\n")
        py = [s for s in systems if any(c[0] == s for c in cold)]
        out.append("| task | " + " | ".join(py) + " |")
        out.append("|---" * (len(py) + 1) + "|")
        for t in tasks:
            row = []
            for s in py:
                rec = results[s].get(t, {})
                row.append(fmt_s(rec["cold_s"]) if rec.get("status") == "ok" and "cold_s" in rec else "–")
            out.append(f"| {t} | " + " | ".join(row) + " |")
        out.append("")

    out.append("### Runs\n")
    for name, m in metas.items():
        keep = {k: m[k] for k in m if k in ("runner", "date", "R", "packages", "python", "versions",
                                             "cores", "target_seconds", "time_limit_s", "blas")}
        out.append(f"- {name}: `{json.dumps(keep)}`")
    return "\n".join(out) + "\n"


def load_stored(path: Path | None, ref_name: str) -> dict | None:
    """The stored reference records ({task: record}), or None."""
    if path is None or not path.exists():
        return None
    return json.loads(path.read_text())["results"].get(ref_name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--base", default="mixframe", help="system the speed ratios are taken to (default: mixframe)")
    ap.add_argument("--ref", default="R", help="system the answers are checked against (default: R)")
    ap.add_argument("--stored-ref", type=Path, default=STORED_REFERENCE,
                    help="stored answers of the reference system, used for tasks it was not run on "
                    "(default: data/r_reference.json)")
    ap.add_argument("--no-stored-ref", action="store_true", help="use only the reference system's run")
    ap.add_argument("--tol-loglik", type=float, default=0.01)
    ap.add_argument("--tol-fixef", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, help="also write the report here")
    a = ap.parse_args(argv)
    results, metas = load(a.files)
    stored = None if a.no_stored_ref else load_stored(a.stored_ref, a.ref)
    text = report(results, metas, a.ref, a.tol_loglik, a.tol_fixef, base=a.base, stored=stored)
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
