"""Stale `checkpoint.tmp-<pid>` folders (a save killed half-way) are removed at the next save or resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from biomodels.training.state import atomic_replace_dir, find_checkpoint


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def half_written(folder: Path) -> Path:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"half")
    return folder


def test_a_killed_save_leaves_a_tmp_folder_that_the_next_save_removes(tmp_path: Path) -> None:
    stale = half_written(tmp_path / f"checkpoint.tmp-{dead_pid()}")
    live = half_written(tmp_path / f"checkpoint.tmp-{os.getppid()}")  # another process, still running
    other = half_written(tmp_path / f"best.tmp-{dead_pid()}")  # another target: not this save's business
    atomic_replace_dir(lambda tmp: (tmp / "trainer_state.json").write_text("{}"), tmp_path / "checkpoint")
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint", live.name, other.name])


def test_resume_removes_stale_tmp_folders_and_finds_the_complete_checkpoint(tmp_path: Path) -> None:
    atomic_replace_dir(lambda tmp: (tmp / "trainer_state.json").write_text("{}"), tmp_path / "checkpoint")
    stale = half_written(tmp_path / f"checkpoint.tmp-{dead_pid()}")
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint"
    assert not stale.exists()
