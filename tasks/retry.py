"""Which failures a task retries: transient I/O, never bad input."""

from __future__ import annotations

import errno
from typing import Any

from corpora.errors import BiomedError

# OSErrors that say something about the path or the permissions, not the moment: the same call
# fails the same way on a retry, so retrying only delays the report (a 249-character file name,
# ENAMETOOLONG, was retried twice).
PERMANENT_ERRNOS = frozenset(
    {
        errno.ENAMETOOLONG,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ELOOP,
        errno.EINVAL,
        errno.EEXIST,
    }
)


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry OSErrors that may pass (a flaky network mount, a busy file), not a path that cannot
    work (see PERMANENT_ERRNOS) and not our own input/format errors."""
    try:
        state.result()
    except BiomedError:
        return False
    except OSError as exc:
        return exc.errno not in PERMANENT_ERRNOS
    except Exception:
        return False
    return False
