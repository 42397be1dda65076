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
    assert header[:4] == ["term", "estimate", "std_error", "statistic"]
    days = next(line for line in lines if line.startswith("Days,"))
    assert abs(float(days.split(",")[1]) - 10.467) < 1e-3          # lme4: 10.46729


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


# Bad input: exit 2 with one line on stderr and no traceback.

def _one_line_error(code, out, err):
    assert code == 2 and out == ""
    assert err.startswith("mixframe: error:") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_empty_csv_exit_2(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("")
    err = _one_line_error(*run(["fit", str(path), FORMULA], capsys))
    assert "empty" in err


def test_header_only_csv_exit_2(tmp_path, capsys):
    path = tmp_path / "header.csv"
    path.write_text("Reaction,Days,Subject\n")
    err = _one_line_error(*run(["fit", str(path), FORMULA], capsys))
    assert "no rows" in err


def test_malformed_csv_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_bytes(b'Reaction,Days,Subject\n1,2,"unterminated\n3,4\n\xff\xfe,,,,,,\n')
    _one_line_error(*run(["fit", str(path), FORMULA], capsys))


def test_type_change_after_many_rows(tmp_path, capsys):
    # a numeric column whose 20,000th value is text is read as text (every row is read before a type is
    # chosen), so it is a factor, as R's read.csv makes it, instead of a parse failure
    path = tmp_path / "late.csv"
    rows = ["y,x,g"] + [f"{(i * 7919) % 13}.5,{i % 5},{i % 20}" for i in range(20_000)] + ["3.5,oops,1"]
    path.write_text("\n".join(rows) + "\n")
    code, out, err = run(["fit", str(path), "y ~ x + (1 | g)", "--format", "json"], capsys)
    assert code == 0, err
    terms = [row["term"] for row in json.loads(out)["coefficients"]]
    assert terms == ["(Intercept)", "x1", "x2", "x3", "x4", "xoops"]


def test_empty_parquet_exit_2(tmp_path, capsys):
    pl = pytest.importorskip("polars")
    path = tmp_path / "empty.parquet"
    pl.DataFrame({"Reaction": [], "Days": [], "Subject": []},
                 schema={"Reaction": pl.Float64, "Days": pl.Float64, "Subject": pl.String}).write_parquet(path)
    err = _one_line_error(*run(["fit", str(path), FORMULA], capsys))
    assert "no rows" in err


def test_not_parquet_exit_2(tmp_path, capsys):
    path = tmp_path / "fake.parquet"
    path.write_text("this is not parquet")
    err = _one_line_error(*run(["fit", str(path), FORMULA], capsys))
    assert "Parquet" in err


def test_failing_fit_exit_2(monkeypatch, capsys):
    import mixframe as mf

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(mf, "lmm", broken)
    err = _one_line_error(*run(["fit", SLEEP, FORMULA], capsys))
    assert "the fit failed (RuntimeError): boom second line" in err


def test_output_file_and_unwritable_output(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, out, err = run(["fit", SLEEP, FORMULA, "--format", "json", "-o", str(target)], capsys)
    assert code == 0 and out == "" and json.loads(target.read_text())["glance"][0]["nobs"] == 180
    err = _one_line_error(*run(["fit", SLEEP, FORMULA, "-o", str(tmp_path / "no" / "such" / "dir.txt")], capsys))
    assert "cannot write" in err


def test_closed_stdout_is_an_error():
    done = subprocess.run(f'"{sys.executable}" -m mixframe fit "{SLEEP}" "{FORMULA}" >&-', shell=True,
                          capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "standard output" in done.stderr and "Traceback" not in done.stderr


def test_broken_pipe_is_quiet():
    proc = subprocess.Popen([sys.executable, "-m", "mixframe", "fit", SLEEP, FORMULA, "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away before anything is written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
