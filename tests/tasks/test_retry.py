"""Task retries: transient I/O is retried, the project's own input errors never are."""

from __future__ import annotations

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
        (ValueError("a bug"), False),
        (None, False),
    ],
)
def test_only_transient_io_is_retried(error: BaseException | None, retried: bool) -> None:
    assert is_transient(None, None, FinishedState(error)) is retried
