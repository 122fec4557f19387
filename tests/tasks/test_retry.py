"""Task retries: transient I/O is retried, the project's own input errors never are."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from corpora.errors import MalformedInputError
from tasks.retry import is_transient


class FinishedState:
    """What Prefect hands the retry condition: a state whose `result()` raises the task's error."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def result(self) -> None:
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (OSError(5, "Input/output error"), True),
        (TimeoutError("mount busy"), True),  # an OSError subclass
        (MalformedInputError("x.xml", "malformed XML", line=3), False),
        (OSError(errno.ENAMETOOLONG, "File name too long"), False),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), False),
        (PermissionError(errno.EACCES, "Permission denied"), False),
        (IsADirectoryError(errno.EISDIR, "Is a directory"), False),
        (OSError(errno.EAGAIN, "Resource temporarily unavailable"), True),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
        (ValueError("a bug"), False),
        (None, False),
    ],
)
def test_only_transient_io_is_retried(error: BaseException | None, retried: bool) -> None:
    assert is_transient(None, None, FinishedState(error)) is retried


def test_a_249_character_file_name_is_not_retried(tmp_path: Path) -> None:
    """Issue 14.11: the real error of a too-long name (Errno 36) was retried as transient."""
    with pytest.raises(OSError) as info:
        (tmp_path / ("n" * 249 + ".xml.gz")).open("wb").close()
    assert info.value.errno == errno.ENAMETOOLONG
    assert is_transient(None, None, FinishedState(info.value)) is False
