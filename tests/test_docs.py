"""Every ```python block in docs/ runs, and prints what the page shows, so the documentation cannot drift from
the library.

Blocks in one page run in order in one namespace. A page whose blocks use a ``backend`` variable
runs twice: as written (``backend = "pandas"``) and with that line changed to ``"polars"``. Blocks fenced as
```python no-run are skipped (shell sessions, sketches of user code). A ```text block that directly follows a
python block is that block's output: the run as written must print exactly it (trailing spaces aside).
``python tests/test_docs.py --update`` rewrites those text blocks from what the code prints now.
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
    return [body for body, _ in runnable_blocks(text)]


def runnable_blocks(text: str) -> list[tuple[str, tuple | None]]:
    """(code, output) per runnable python block: output is the (start, end, body) of the ```text block that
    directly follows it (only blank lines between), or None."""
    fences = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(fences):
        words = m.group(1).strip().split()
        if not (words and words[0] == "python" and "no-run" not in words[1:]):
            continue
        shown = None
        if i + 1 < len(fences):
            nxt = fences[i + 1]
            if nxt.group(1).strip() == "text" and not text[m.end():nxt.start()].strip():
                shown = (nxt.start(2), nxt.end(2), nxt.group(2))
        out.append((m.group(2), shown))
    return out


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def same_output(printed: str, shown: str, rtol: float = 5e-3, atol: float = 1e-9) -> bool:
    """The text agrees word for word (runs of spaces aside) and every number to ``rtol`` (the last printed
    digits of optimizer output, and column widths that follow them, may differ between machines)."""
    a, b = " ".join(printed.split()), " ".join(shown.split())
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return False
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
        fx, fy = float(x), float(y)
        if abs(fx - fy) > atol + rtol * max(abs(fx), abs(fy)):
            return False
    return True


def run_page(page: Path, backend: str | None):
    """Run a page's blocks in order (frames printed 160 characters wide); (block number, printed output, shown
    output span) per block."""
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    namespace = {"__name__": f"docs_{page.stem}"}
    if backend is not None:
        namespace["backend"] = backend
    results = []
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        for number, (block, shown) in enumerate(runnable_blocks(page.read_text(encoding="utf-8")), start=1):
            if backend is not None:  # the page's `backend = "pandas"  # or "polars"` line
                block = re.sub(r'^backend\s*=\s*"pandas"', f'backend = "{backend}"', block, flags=re.MULTILINE)
            code = compile(block, f"{page.name}[block {number}]", "exec")
            printed = io.StringIO()
            with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
                warnings.simplefilter("ignore")
                exec(code, namespace)  # noqa: S102 - the documentation's own examples
            results.append((number, printed.getvalue(), shown))
    import matplotlib.pyplot as plt

    plt.close("all")
    return results


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


def test_same_output():
    assert same_output("a  0.000549 ***\nb 1.5", "a 0.00055 ***\nb   1.5")
    assert not same_output("a 0.0006", "a 0.00055")
    assert not same_output("term x", "term y")


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
    for number, printed, shown in run_page(page, backend):
        if shown is not None and backend in (None, "pandas"):   # the page shows the run as written
            assert same_output(printed, shown[2]), (f"{page.name} block {number} prints otherwise:\n{printed}\n"
                                                    f"the page shows:\n{shown[2]}")


def update_outputs() -> None:
    """Rewrite every page's output blocks with what its code prints now (as written)."""
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        uses_backend = any(re.search(r"\bbackend\b", b) for b in code_blocks(text))
        spans = [(shown[0], shown[1], printed) for _, printed, shown in
                 run_page(page, "pandas" if uses_backend else None) if shown is not None]
        for start, end, printed in reversed(spans):
            text = text[:start] + _normalise(printed) + "\n" + text[end:]
        page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--update"]:
        update_outputs()
