"""The command line: ``mixframe fit`` on CSV and Parquet files, its output formats and exit codes."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixframe import cli

DATA = Path(__file__).resolve().parents[1] / "mixframe" / "datasets" / "data"
SLEEP = str(DATA / "sleepstudy.csv")
FORMULA = "Reaction ~ Days + (Days | Subject)"


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_table(capsys):
    code, out, err = run(["fit", SLEEP, FORMULA], capsys)
    assert code == 0, err
    assert "Linear mixed model fit by REML" in out and "Subject" in out
    assert "(Intercept)" in out and "Days" in out


def test_fit_csv(capsys):
    code, out, _ = run(["fit", SLEEP, FORMULA, "--format", "csv"], capsys)
    assert code == 0
    sections = [line for line in out.splitlines() if line.startswith("# ")]
    assert sections == ["# coefficients", "# variance_components", "# glance"]
    lines = out.splitlines()
    header = lines[lines.index("# coefficients") + 1].split(",")
    assert header[:5] == ["coef_type", "term", "estimate", "std_error", "statistic"]
    days = next(line for line in lines if line.startswith("fixed,Days,"))
    assert abs(float(days.split(",")[2]) - 10.467) < 1e-3          # lme4: 10.46729


def test_fit_json(capsys):
    code, out, _ = run(["fit", SLEEP, FORMULA, "--format", "json", "--ml"], capsys)
    assert code == 0
    tables = json.loads(out)
    assert set(tables) == {"coefficients", "variance_components", "glance"}
    assert tables["glance"][0]["method"] == "ML" and tables["glance"][0]["nobs"] == 180
    assert [row["group"] for row in tables["variance_components"]] == ["Subject"] * 3 + ["Residual"]


def test_fit_parquet_glmm(tmp_path, capsys):
    pl = pytest.importorskip("polars")
    path = tmp_path / "cbpp.parquet"
    frame = pl.read_csv(DATA / "cbpp.csv").with_columns(pl.col("herd", "period").cast(pl.String))
    frame.write_parquet(path)
    code, out, err = run(["fit", str(path), "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                          "--family", "binomial", "--format", "json"], capsys)
    assert code == 0, err
    coefs = {row["term"]: row["estimate"] for row in json.loads(out)["coefficients"]}
    assert set(coefs) == {"(Intercept)", "period2", "period3", "period4"}
    assert abs(coefs["(Intercept)"] - (-1.3985)) < 1e-3             # lme4: -1.39854


def test_fit_clmm_with_groups(capsys):
    code, out, err = run(["fit", str(DATA / "wine.csv"), "rating ~ temp + contact", "--kind", "clmm",
                          "--groups", "judge"], capsys)
    assert code == 0, err
    assert "tempwarm" in out and "judge" in out


def test_bad_column_exit_2(capsys):
    code, out, err = run(["fit", SLEEP, "Reaction ~ Hours + (1 | Subject)"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("mixframe: error:") and "Hours" in err and "Traceback" not in err


def test_missing_file_exit_2(tmp_path, capsys):
    code, _, err = run(["fit", str(tmp_path / "nope.csv"), FORMULA], capsys)
    assert code == 2 and "does not exist" in err


def test_wrong_suffix_exit_2(tmp_path, capsys):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    code, _, err = run(["fit", str(path), FORMULA], capsys)
    assert code == 2 and ".csv or .parquet" in err


def test_demo_prints_three_models():
    out = io.StringIO()
    cli.demo("pandas", out=out)
    text = out.getvalue()
    assert text.count("fitted in") == 3
    for piece in ("Linear mixed model", "Generalized linear mixed model", "Cumulative link mixed model",
                  "variance_components()", "glance()"):
        assert piece in text


def test_module_entry_point_subprocess():
    # one process start (slow on a busy machine): the exit code must reach the shell
    done = subprocess.run([sys.executable, "-m", "mixframe", "fit", SLEEP, "y ~ x + (1 | Subject)"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("mixframe: error:") and done.stdout == ""
