"""`biomed --help` and every command's `--help` answer without loading Prefect, torch or spaCy
(each costs seconds on a small machine; they load when a command runs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.cli import build_parser
from tests.helpers.paths import ROOT

HEAVY = ("prefect", "torch", "spacy", "transformers", "dask")


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in commands()]])
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    script = (
        "import sys\n"
        "from pipelines.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED []"
    assert "usage: biomed" in done.stdout
