"""File permissions that follow the user's umask.

`tempfile.mkstemp` (our atomic JSON writes) and safetensors' writer create files readable by their
owner only (0600). Datasets and model folders are meant to be shared (a curation team, a model
server running as another user), so files we write get the mode a plain `open(path, "w")` would
give: 0666 minus the umask.
"""

from __future__ import annotations

import os
from pathlib import Path


def umask_file_mode() -> int:
    """0666 minus the process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def apply_umask(path: str | Path) -> None:
    """Give `path` (a file we just wrote) the mode the umask asks for."""
    os.chmod(path, umask_file_mode())
