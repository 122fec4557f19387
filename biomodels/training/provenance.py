"""Where a trained model came from: the command that made it and the commit of the code.

Together with the sha256 of every input file and the settings (written by `train` and
`pretrain`), this is what `biomed.json` needs for a model to be rebuilt or audited.

Tested in `tests/biomodels/training/test_pretrain.py`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again (`biomed ...` for the console script)."""
    args = list(sys.argv if argv is None else argv)
    if args and Path(args[0]).name in ("biomed", "__main__.py"):
        args[0] = "biomed"
    return " ".join(shlex.quote(a) for a in args)


def git_commit(path: Path = REPO_ROOT) -> str | None:
    """The commit checked out at `path`, with `+dirty` when tracked files differ; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def provenance(command: str | None = None) -> dict[str, str | None]:
    """`{"command": ..., "commit": ...}` for biomed.json."""
    return {"command": command or command_line(), "commit": git_commit()}


__all__ = ["command_line", "git_commit", "provenance"]
