"""The source distribution holds what a build needs (the Cython sources) and the data files; the version is
written once, in pyproject.toml."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

import mixframe

ROOT = Path(mixframe.__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def test_version_is_written_once():
    version = _project()["version"]
    assert mixframe.__version__ == version
    try:
        assert importlib.metadata.version("mixframe") == version
    except importlib.metadata.PackageNotFoundError:   # an uninstalled source tree: pyproject is read
        pass
    source = (ROOT / "mixframe" / "__init__.py").read_text(encoding="utf-8")
    assert version not in source and "importlib.metadata" in source


def _source_copy(dest: Path) -> Path:
    """The source tree without what builds and runs leave in it (a build writes into its source tree)."""
    ignore = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.so",
                                    "*.pyd", "*.pyc", ".pytest_cache", ".hypothesis", "bench-results")

    def skip(folder, names):
        out = set(ignore(folder, names))
        if Path(folder).name == "_kernels":
            out |= {n for n in names if n.endswith(".c")}      # generated from the .pyx sources
        return out

    shutil.copytree(ROOT, dest, ignore=skip)
    return dest


def _build_command(source: Path, outdir: Path) -> list[str]:
    """``python -m build --sdist``, not isolated when this environment meets the build requirements."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package (in the test extra) is not installed")
    from packaging.requirements import Requirement

    ready = True
    for req in tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["build-system"]["requires"]:
        r = Requirement(req)
        try:
            ready &= r.specifier.contains(importlib.metadata.version(r.name), prereleases=True)
        except importlib.metadata.PackageNotFoundError:
            ready = False
    cmd = [sys.executable, "-m", "build", "--sdist", "--outdir", str(outdir)]
    return cmd + (["--no-isolation"] if ready else []) + [str(source)]


def test_sdist_holds_the_kernel_sources_and_data(tmp_path):
    if not (ROOT / "setup.py").exists() or not (ROOT / "_kernels").is_dir():
        pytest.skip("not a source tree")
    source = _source_copy(tmp_path / "src")
    outdir = tmp_path / "dist"
    proc = subprocess.run(_build_command(source, outdir), capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = outdir.glob("mixframe-*.tar.gz")
    version = _project()["version"]
    assert sdist.name == f"mixframe-{version}.tar.gz"
    prefix = f"mixframe-{version}/"
    with tarfile.open(sdist) as tar:
        members = {m.name[len(prefix):] for m in tar.getmembers() if m.isfile()}
        pkg_info = tar.extractfile(prefix + "PKG-INFO").read().decode()
    assert f"\nVersion: {version}\n" in pkg_info

    kernels = {p.relative_to(ROOT).as_posix() for ext in ("pyx", "pxd", "pxi", "h")
               for p in (ROOT / "_kernels").glob(f"*.{ext}")}
    assert any(k.endswith(".pyx") for k in kernels) and any(k.endswith(".pxi") for k in kernels)
    assert kernels <= members, sorted(kernels - members)
    data = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mixframe" / "datasets" / "data").glob("*.csv")}
    assert len(data) >= 10 and data <= members, sorted(data - members)
    assert {"mixframe/datasets/PROVENANCE.md", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md",
            "LICENSE", "mixframe/__init__.py", "mixframe/control.py", "tests/conftest.py"} <= members
    assert any(m.startswith("tests/reference/") and m.endswith(".json") for m in members)
    # nothing built: no compiled modules, no C generated from the kernels
    assert not [m for m in members if m.endswith((".so", ".pyd", ".pyc")) or
                (m.startswith("_kernels/") and m.endswith(".c"))]
