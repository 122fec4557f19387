"""A script without the `__main__` guard is told so before any worker process starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from corpora.errors import UsageError
from corpora.preprocess import main_guard
from tests.helpers.paths import ROOT

UNGUARDED = """
from corpora.preprocess import PreprocessPool

with PreprocessPool(None, 2) as pool:
    print("workers started")
"""


def test_unguarded_script_is_refused_before_workers_start(tmp_path: Path) -> None:
    script = tmp_path / "annotate_my_corpus.py"
    script.write_text(UNGUARDED, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120, env=None
    )
    assert proc.returncode == 1 and "workers started" not in proc.stdout
    assert f"{script}: preprocessing with 2 worker processes starts worker processes" in proc.stderr
    assert 'no `if __name__ == "__main__":` guard' in proc.stderr
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(script) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


@pytest.mark.parametrize(
    ("source", "method", "refused"),
    [
        ("run()\n", "forkserver", True),
        ("run()\n", "spawn", True),
        ("run()\n", "fork", False),  # forked workers do not import the script
        ("if __name__ == '__main__':\n    run()\n", "spawn", False),
        ('if __name__=="__main__":\n    run()\n', "forkserver", False),
    ],
)
def test_guard_check(tmp_path: Path, monkeypatch, source: str, method: str, refused: bool) -> None:
    script = tmp_path / "job.py"
    script.write_text(source, encoding="utf-8")
    monkeypatch.setattr(main_guard, "main_script", lambda: script)
    if refused:
        with pytest.raises(UsageError, match="job.py: a pool starts worker processes"):
            main_guard.check_main_guard(method, "a pool")
    else:
        main_guard.check_main_guard(method, "a pool")


def test_interactive_sessions_are_not_checked(monkeypatch) -> None:
    monkeypatch.setattr(main_guard, "main_script", lambda: None)
    main_guard.check_main_guard("spawn", "a pool")
