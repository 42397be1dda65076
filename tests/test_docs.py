"""Every ```python block in docs/ runs, so the documentation cannot drift from the library.

Blocks in one page run in order in one namespace. A page whose blocks use a ``backend`` variable
runs twice: as written (``backend = "pandas"``) and with that line changed to ``"polars"``. Blocks fenced as
```python no-run are skipped (shell sessions, sketches of user code).
"""
from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[str]:
    """The runnable python blocks of a Markdown page, in order."""
    blocks = []
    for info, body in FENCE.findall(text):
        words = info.strip().split()
        if words and words[0] == "python" and "no-run" not in words[1:]:
            blocks.append(body)
    return blocks


def _cases():
    cases = []
    for page in sorted(DOCS.glob("*.md")):
        blocks = code_blocks(page.read_text(encoding="utf-8"))
        if not blocks:
            continue
        uses_backend = any(re.search(r"\bbackend\b", b) for b in blocks)
        for backend in (("pandas", "polars") if uses_backend else (None,)):
            cases.append(pytest.param(page, backend, id=f"{page.stem}-{backend or 'plain'}"))
    return cases


def test_fence_parser():
    text = "x\n```python\na = 1\n```\n```python no-run\nb = 2\n```\n```text\nc\n```\n```python\nd = 3\n```\n"
    assert code_blocks(text) == ["a = 1\n", "d = 3\n"]


def test_docs_have_code_and_a_site_map():
    assert len(_cases()) >= 5
    nav = (DOCS / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert page.name in nav, f"{page.name} is missing from docs/mkdocs.yml"
    for name in re.findall(r":\s*([\w.-]+\.md)\s*$", nav, flags=re.MULTILINE):
        assert (DOCS / name).exists(), f"docs/mkdocs.yml names {name}, which does not exist"
    for page in DOCS.glob("*.md"):   # links between pages point at pages that exist
        for target in re.findall(r"\]\(([\w.-]+\.md)\)", page.read_text(encoding="utf-8")):
            assert (DOCS / target).exists(), f"{page.name} links to missing {target}"


@pytest.mark.parametrize(("page", "backend"), _cases())
def test_page_runs(page, backend):
    import matplotlib

    matplotlib.use("Agg")
    namespace = {"__name__": f"docs_{page.stem}"}
    if backend is not None:
        namespace["backend"] = backend
    for number, block in enumerate(code_blocks(page.read_text(encoding="utf-8")), start=1):
        if backend is not None:  # the page's `backend = "pandas"  # or "polars"` line
            block = re.sub(r'^backend\s*=\s*"pandas"', f'backend = "{backend}"', block, flags=re.MULTILINE)
        code = compile(block, f"{page.name}[block {number}]", "exec")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            exec(code, namespace)  # noqa: S102 - the documentation's own examples
    import matplotlib.pyplot as plt

    plt.close("all")
