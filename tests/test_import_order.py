"""Every module of the four packages imports on its own in a fresh interpreter, in alphabetical
order and in reverse: an import cycle shows up as an ImportError in one of the two orders."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT

PACKAGES = ("corpora", "biomodels", "pipelines", "tasks")


def all_modules() -> list[str]:
    """Dotted names of every module and package, from the files (importing nothing here)."""
    names = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":  # runs the CLI
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def test_the_walk_finds_the_sub_packages() -> None:
    names = all_modules()
    for expected in (
        "corpora.formats.pubmed_xml",
        "corpora.preprocess.shard",
        "biomodels.training.trainer",
        "pipelines.cli",
    ):
        assert expected in names


@pytest.mark.parametrize("order", ["alphabetical", "reverse"])
def test_every_module_imports_in_a_fresh_interpreter(order: str) -> None:
    names = all_modules()
    if order == "reverse":
        names.reverse()
    script = (
        "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
        "print('imported', len(sys.argv) - 1)"
    )
    done = subprocess.run([sys.executable, "-c", script, *names], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(names)}"
