"""The documentation site cannot lie: every guide's code runs, every page is in the
navigation, every public package has its API reference page.

The site itself is built (``mkdocs build --strict``, warnings as errors) by CI's test
line in README.md; the docstring examples the API reference shows run as doctests.
"""

import importlib.util
import pathlib
import re

import pytest

import jtricks

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
# Pages whose code needs a package jtricks does not depend on: run where it is installed.
NEEDS = {"interop/equinox.md": "equinox"}
# Pages whose code is excerpts of a longer session (data from earlier steps, ``...``).
EXCERPTS = {"USAGE.md", "scaling.md"}  # recipes that continue a training script


def _python_blocks(page: str) -> list[str]:
    """The page's python blocks, each padded so that tracebacks give the page's line."""
    text = (DOCS / page).read_text()
    return ["\n" * text.count("\n", 0, m.start(1)) + m.group(1)
            for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)]


@pytest.mark.parametrize("page", [p for p in PAGES if _python_blocks(p) and p not in EXCERPTS])
def test_page_code_runs(page):
    if page in NEEDS and importlib.util.find_spec(NEEDS[page]) is None:
        pytest.skip(f"{NEEDS[page]} is not installed (an optional interoperability example)")
    namespace: dict = {"__name__": f"docs.{page}"}
    for block in _python_blocks(page):  # one page, one namespace: blocks build on each other
        exec(compile(block, str(DOCS / page), "exec"), namespace)


def test_every_page_is_in_the_navigation():
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", config, re.M))
    assert not sorted(set(PAGES) - listed), "pages missing from mkdocs.yml's nav"
    assert not sorted(listed - set(PAGES)), "mkdocs.yml's nav lists pages that do not exist"


@pytest.mark.parametrize("module", [f"jtricks.{m}" for m in jtricks._SUBMODULES]
                         + ["jtricks.optim.schedules"])
def test_every_public_package_has_an_api_page(module):
    page = DOCS / "api" / f"{module.removeprefix('jtricks.')}.md"
    assert page.exists(), f"no API reference page {page.relative_to(ROOT)} for {module}"
    assert re.search(rf"^::: {re.escape(module)}$", page.read_text(), re.M), page
