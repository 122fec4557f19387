"""The tree a newcomer walks: every module of the four packages has a test module of the same name
at the mirrored path, or a pointer in its docstring to the test module that exercises it."""

from __future__ import annotations

import ast
import re

from tests.helpers.paths import ROOT

PACKAGES = ("corpora", "biomodels", "pipelines", "tasks")
POINTER = re.compile(r"Tested in `(tests/[\w/]+\.py)`")


def library_modules() -> list:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and "samples" not in path.parts
    )


def test_every_module_has_a_mirrored_test_or_a_pointer() -> None:
    lost = []
    for path in library_modules():
        rel = path.relative_to(ROOT)
        if (ROOT / "tests" / rel.parent / f"test_{rel.name}").is_file():
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        pointers = POINTER.findall(doc)
        if not pointers or not all((ROOT / p).is_file() for p in pointers):
            lost.append(str(rel))
    assert lost == []


def test_every_test_module_mirrors_a_module_or_says_what_it_tests() -> None:
    """A test file at a package path is named after a module there (or is a cross-cutting test
    whose docstring says what it covers)."""
    strays = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        rel = path.relative_to(ROOT / "tests")
        if rel.parts[0] not in PACKAGES:
            continue
        module = ROOT / rel.parent / rel.name.removeprefix("test_")
        if module.is_file():
            continue
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))):
            strays.append(str(rel))
    assert strays == []


def test_library_code_cites_nothing_outside_the_repository() -> None:
    for path in library_modules():
        text = path.read_text(encoding="utf-8")
        assert "DESIGN section" not in text and "biomegatron-facts" not in text and "../" + "shared" not in text, path
