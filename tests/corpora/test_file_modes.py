"""Files we write follow the umask, as a plain open() would, not mkstemp's or safetensors' 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from biomodels.training.state import save_weights
from corpora.dataset.manifest import write_json_atomic
from corpora.file_modes import umask_file_mode


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_json_and_weights_get_the_umask_mode(tmp_path: Path, umask_027: None) -> None:
    assert umask_file_mode() == 0o640
    write_json_atomic(tmp_path / "manifest.json", {"a": 1})
    save_weights(torch.nn.Linear(2, 2), tmp_path / "model")
    assert mode(tmp_path / "manifest.json") == 0o640
    assert mode(tmp_path / "model" / "model.safetensors") == 0o640
