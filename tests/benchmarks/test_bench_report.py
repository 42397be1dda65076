"""The benchmark report (compare.py) and the build comparison's arithmetic (compare_builds.py)."""
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402
import compare_builds  # noqa: E402

RESULTS = {
    "meta": {"runner": "run_python_peers.py", "python": "3.11.7", "cores": 2},
    "results": {
        "mixframe": {
            "sleepstudy_slopes": {"status": "ok", "seconds": 0.004, "n": 11, "cold_s": 0.5,
                                  "logLik": -871.8141359, "fixef": {"(Intercept)": 251.405105, "Days": 10.467286}},
            "wine": {"status": "ok", "seconds": 0.05, "n": 11, "logLik": -81.56541,
                     "fixef": {"tempwarm": 3.062997, "contactyes": 1.834885},
                     "thresholds": {"1|2": -1.623667, "2|3": 1.513365, "3|4": 4.228527, "4|5": 6.088773}},
        },
        "R": {
            "sleepstudy_slopes": {"status": "ok", "seconds": 0.04, "n": 11, "logLik": -871.8141360,
                                  "fixef": {"(Intercept)": 251.4051048, "Days": 10.46728596}},
        },
        "slowpeer": {
            "sleepstudy_slopes": {"status": "ok", "seconds": 0.5, "n": 1, "logLik": -875.0,
                                  "fixef": {"(Intercept)": 250.0, "Days": 10.0}},
            "wine": {"status": "unsupported", "reason": "no ordinal models"},
        },
        "interlace": {
            "sleepstudy_slopes": {"status": "not installed", "reason": "interlace not importable"},
            "wine": {"status": "not installed", "reason": "interlace not importable"},
        },
    },
}


def _rows(text: str, header: str) -> dict[str, list[str]]:
    """The data rows of the markdown table under ``header``, keyed by task."""
    lines = text.split(header, 1)[1].strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| task |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_report_speed_table_ratios_to_mixframe(tmp_path):
    path = tmp_path / "py.json"
    path.write_text(json.dumps(RESULTS))
    results, metas = compare.load([path])
    stored = compare.load_stored(compare.STORED_REFERENCE, "R")
    text = compare.report(results, metas, "R", 0.01, 1e-3, base="mixframe", stored=stored)
    assert "| task | mixframe | R | interlace | slowpeer | fastest agreeing |" in text
    speed = _rows(text, "### Fit time")
    # the ratios are system seconds / mixframe seconds
    assert speed["sleepstudy_slopes"] == ["**0.004**", "0.040 (10×)", "not installed", "0.500 (125×)¹ ✗", "mixframe"]
    assert speed["wine"] == ["**0.050**", "–", "not installed", "unsupported", "mixframe"]


def test_report_agreement_with_run_and_stored_reference(tmp_path):
    path = tmp_path / "py.json"
    path.write_text(json.dumps(RESULTS))
    results, metas = compare.load([path])
    stored = compare.load_stored(compare.STORED_REFERENCE, "R")
    text = compare.report(results, metas, "R", 0.01, 1e-3, base="mixframe", stored=stored)
    agree = _rows(text, "### Agreement with R")
    # sleepstudy: R was run; wine: R's stored answer (thresholds included in the comparison)
    assert agree["sleepstudy_slopes"][0] == "-871.8141"
    assert agree["sleepstudy_slopes"][1].startswith("✓ ΔLL +1e-07")
    assert agree["sleepstudy_slopes"][3].startswith("✗ ΔLL -3.186")
    assert agree["wine"][0] == "-81.5654 (stored)"
    assert agree["wine"][1].startswith("✓")
    assert "- interlace: not installed — interlace not importable" in text
    assert "- slowpeer / wine: unsupported — no ordinal models" in text
    # without the stored reference there is nothing to check wine against
    bare = compare.report(results, metas, "R", 0.01, 1e-3, base="mixframe", stored=None)
    assert _rows(bare, "### Agreement with R")["wine"][1] == "? logLik -81.5654, no reference"


def test_fixef_diff_includes_thresholds():
    ref = {"fixef": {"a": 1.0}, "thresholds": {"1|2": -2.0}}
    assert compare.fixef_diff({"fixef": {"a": 1.0005}, "thresholds": {"1|2": -2.004}}, ref) == pytest.approx(0.002)
    assert compare.fixef_diff({"fixef": {"b": 1.0}}, ref) is None


def test_stored_reference_covers_the_classic_tasks():
    stored = compare.load_stored(compare.STORED_REFERENCE, "R")
    assert set(stored) == {"sleepstudy_slopes", "penicillin", "insteval", "cbpp", "verbagg", "grouseticks",
                           "salamanders_nb", "wine", "soup"}
    sal = stored["salamanders_nb"]
    # re-expressed in bytewise level order, the linear predictor of each cell is unchanged:
    # R's GP/yes cell = its intercept -1.68323...
    assert sal["fixef"]["(Intercept)"] + sal["fixef"]["sppGP"] + sal["fixef"]["minedyes"] == pytest.approx(
        -1.68323024334398, abs=1e-12)
    assert stored["grouseticks"]["fixef"]["HEIGHT_s"] == pytest.approx(-0.854341035511862)


def test_neighbour_ratios_and_summary():
    seq = [(0, 1.0), (1, 1.1), (0, 1.2), (1, 1.1), (0, 1.0)]
    r = compare_builds.neighbour_ratios(seq)
    assert r == pytest.approx([1.1 / 1.1, 1.1 / 1.1])
    sessions = [[(0, 1.0), (1, 1.2)] * 6, [(1, 1.2), (0, 1.0)] * 6]
    s = compare_builds.summarize(sessions, threshold=0.05)
    assert s["old_s"] == 1.0 and s["new_s"] == 1.2
    assert s["ratio"] == pytest.approx(1.2) and s["paired_ratio"] == pytest.approx(1.2)
    assert s["slower"] and s["rounds"] == 12
    same = compare_builds.summarize([[(0, 2.0), (1, 2.02)] * 8], threshold=0.05)
    assert not same["slower"] and same["paired_ratio"] == pytest.approx(1.01)


def test_paired_interval_is_order_statistics():
    assert compare_builds.paired_interval([1.0] * 5) is None
    vals = [0.9 + 0.01 * i for i in range(21)]  # 0.90 ... 1.10
    lo, hi = compare_builds.paired_interval(vals)
    k = math.floor((21 - 1.96 * math.sqrt(21)) / 2)  # 5
    assert (lo, hi) == (pytest.approx(vals[k]), pytest.approx(vals[20 - k]))


def test_answer_diff_and_report_flags():
    a = {"logLik": -10.0, "fixef": {"x": 2.0}, "thresholds": {"1|2": 0.5}}
    b = {"logLik": -10.0 + 1e-9, "fixef": {"x": 2.0 + 4e-9}, "thresholds": {"1|2": 0.5}}
    dll, dfe = compare_builds.answer_diff(a, b)
    assert dll == pytest.approx(1e-9) and dfe == pytest.approx(2e-9)
    assert compare_builds.answer_diff(a, {"logLik": -10.0, "fixef": {"y": 1.0}})[1] == math.inf
    rec_ok = {"task": "wine", "system": "mixframe", "status": "ok", **compare_builds.summarize(
        [[(0, 1.0), (1, 1.01)] * 4]), "dloglik": 0.0, "dcoef": 0.0}
    rec_bad = {"task": "cbpp", "system": "mixframe", "status": "ok", **compare_builds.summarize(
        [[(0, 1.0), (1, 1.10)] * 4]), "dloglik": 0.0, "dcoef": 0.0}
    builds = [{"label": "old", "describe": "main"}, {"label": "new", "describe": "HEAD"}]
    text = compare_builds.report([rec_ok, rec_bad], builds, 0.05)
    rows = _rows(text, "### Old vs new build")
    assert rows["wine"][-1] == "ok (+1.0 %)"
    assert rows["cbpp"][-1] == "**SLOWER +10.0 %**"
    assert rows["cbpp"][2] == "1.100"
    assert "1 task(s) flagged: cbpp" in text


def test_build_spec_resolution():
    kind, value = compare_builds.resolve_spec(str(BENCH.parent))
    assert kind == "path" and Path(value) == BENCH.parent
    kind, value = compare_builds.resolve_spec("HEAD")
    assert kind == "rev" and len(value) == 40
    with pytest.raises(SystemExit, match="neither a checkout"):
        compare_builds.resolve_spec("no-such-revision-xyz")
    env = compare_builds.worker_env(Path("/tmp/build-x"))
    assert env["PYTHONPATH"].split(":")[0] == "/tmp/build-x"
    assert str(BENCH.parent) not in env["PYTHONPATH"].split(":")


def test_missing_peers_are_not_installed(tmp_path):
    import run
    import run_python_peers as rp

    adapters = rp.load_adapters([])
    assert {"mixframe", "mixframe-polars", "interlace", "mixedlm", "statsmodels"} <= set(adapters)
    assert rp.missing_modules(adapters["mixframe"]) == []
    fake = rp.Adapter(name="nolib", fit=lambda task, df: {}, modules=("no_such_module_xyz.sub",))
    assert rp.missing_modules(fake) == ["no_such_module_xyz"]
    assert rp.not_installed(fake, ["no_such_module_xyz"])["status"] == "not installed"
    # an Rscript that is not there, or does not start, makes R "not installed"
    assert "not on the PATH" in run.r_status(str(tmp_path / "Rscript-missing"))
    broken = tmp_path / "Rscript"
    broken.write_text("#!/bin/sh\necho 'error while loading shared libraries' >&2\nexit 127\n")
    broken.chmod(0o755)
    assert run.r_status(str(broken)) == "does not start: error while loading shared libraries".join(
        [f"{broken} ", ""])
    out = tmp_path / "r.json"
    run.write_not_installed(out, "R", ["wine"], "R is not installed")
    results, metas = compare.load([out])
    text = compare.report(results, metas, "R", 0.01, 1e-3, base="mixframe", stored=None)
    assert "- R: not installed — R is not installed" in text


def test_runner_end_to_end_on_one_small_task(tmp_path):
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "py.json"
    subprocess.run(
        [sys.executable, str(BENCH / "run_python_peers.py"), "--cache", str(tmp_path / "cache"), "--out", str(out),
         "--systems", "mixframe,interlace", "--tasks", "wine", "--target-seconds", "0.01", "--max-repeats", "2"],
        env=env, check=True, capture_output=True, timeout=300,
    )
    res = json.loads(out.read_text())["results"]
    rec = res["mixframe"]["wine"]
    assert rec["status"] == "ok" and rec["mixframe_path"] == str(BENCH.parent / "mixframe")
    assert rec["logLik"] == pytest.approx(-81.5654092921275, abs=1e-3)
    assert rec["fixef_matched_by"] == "name" and set(rec["thresholds"]) == {"1|2", "2|3", "3|4", "4|5"}
    assert res["interlace"]["wine"]["status"] in ("ok", "not installed")
