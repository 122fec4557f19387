"""Which failures a task retries: transient I/O, never bad input."""

from __future__ import annotations

from typing import Any

from corpora.errors import BiomedError


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry OSErrors (a flaky network mount, a busy file) but not our own input/format errors."""
    try:
        state.result()
    except BiomedError:
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False
