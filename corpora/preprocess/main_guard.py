"""Refuse to start worker processes from a script that lacks `if __name__ == "__main__":`.

With the forkserver and spawn start methods, every worker imports the script that started it
(as `__mp_main__`). A script that calls `preprocess_flow(...)` or `PreprocessPool(...)` at its top
level therefore runs again in each worker: flows start a second time, each with its own Prefect
API server, and servers and workers outlive the script. Python's own check fires only in some of
these paths and with a message about "bootstrapping"; this one names the script and the fix before
any process starts.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from corpora.errors import UsageError

_GUARD = re.compile(r"""^\s*if\s+__name__\s*==\s*["']__main__["']\s*:""", re.M)


def main_script() -> Path | None:
    """The file of the running script (None in an interactive session, `python -c`, or `-m` of
    a module without a file)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return Path(path) if path else None


def check_main_guard(start_method: str, what: str) -> None:
    """UsageError when `what` would start workers with `start_method` from an unguarded script."""
    if start_method == "fork":
        return  # forked workers do not import the script
    script = main_script()
    if script is None or not script.is_file() or script.suffix != ".py":
        return
    text = script.read_text(encoding="utf-8", errors="replace")
    if _GUARD.search(text):
        return
    raise UsageError(
        f"{script}: {what} starts worker processes, and each worker re-runs this script's top level "
        f'because it has no `if __name__ == "__main__":` guard; put the calls under that guard (see '
        "README, The Python API) or use one worker"
    )
