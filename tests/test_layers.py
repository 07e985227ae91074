"""The house's dependencies point one way (spec/architecture.md, "Rules of the house").

``cli`` → ``report`` → (``review``, ``response``) → ``geo`` → ``rules`` → ``ingest``: a room
never imports a room above it, and the core never imports the notebook and plotting stack.
Read from the source (the AST of every module, imports inside functions included), so a
deferred import cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cityops"

#: Presentation: what the core never imports.
PRESENTATION = ("cityops.report", "cityops.cli", "cityops.explore")
NOTEBOOK_STACK = ("papermill", "nbconvert", "nbformat", "ipywidgets", "matplotlib")

#: Room → the cityops modules it may not import (anything above it in the house).
FORBIDDEN = {
    "ingest": (*PRESENTATION, "cityops.rules", "cityops.geo", "cityops.response",
               "cityops.review", "cityops.pipeline", "cityops.scenarios"),
    "rules": (*PRESENTATION, "cityops.geo", "cityops.response", "cityops.review",
              "cityops.pipeline", "cityops.scenarios"),
    "geo": (*PRESENTATION, "cityops.response", "cityops.review"),
    "response": (*PRESENTATION, "cityops.review"),
    "review": PRESENTATION,
    "scenarios": PRESENTATION,
}  # fmt: skip

#: Modules below report/ and review/ that both use (one owner each).
SHARED = ("cap", "i18n", "timeutil", "text", "errors", "fsio", "resources", "units")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from cityops import x`` gives
    ``cityops.x``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _hits(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


def _modules(room: str) -> list[Path]:
    return sorted((PACKAGE / room).glob("*.py"))


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_rooms_import_only_downward(room):
    files = _modules(room)
    assert files, f"cityops/{room}/ has no module"
    upward = {
        f"cityops/{room}/{f.name}": hits
        for f in files
        if (hits := _hits(_imports(f), (*FORBIDDEN[room], *NOTEBOOK_STACK)))
    }
    assert not upward, f"imports pointing up from cityops/{room}/: {upward}"


def test_review_does_not_import_report():
    """The two former upward imports (review/warnings.py → report.cap, review/run.py →
    report.i18n) stay gone: CAP and the wording live below both rooms."""
    for f in _modules("review"):
        assert not _hits(_imports(f), ("cityops.report",)), f.name


@pytest.mark.parametrize("name", SHARED)
def test_shared_modules_sit_below_report_and_review(name):
    hits = _hits(
        _imports(PACKAGE / f"{name}.py"),
        (*PRESENTATION, *NOTEBOOK_STACK, "cityops.review", "cityops.response", "cityops.pipeline"),
    )
    assert not hits, f"cityops/{name}.py imports {hits}"
