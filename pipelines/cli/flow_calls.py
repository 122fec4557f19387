"""Running a flow from a CLI command: the summary on stdout, failures on stderr, an exit code.

Tested in `tests/pipelines/cli/test_ingest.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from corpora.errors import PartialFailure
from pipelines.flows.runners import task_runner


def add_dask_options(parser: Any) -> None:
    """The scale-out options every flow command shares."""
    group = parser.add_argument_group("scale-out (Dask)")
    group.add_argument("--dask-address", default=None, help="run tasks on an existing Dask cluster (scheduler address)")
    group.add_argument(
        "--dask-workers", type=int, default=None, help="run tasks on a local Dask cluster with N worker processes"
    )


def with_runner(flow: Any, args: Any) -> Any:
    """The flow with a Dask task runner when --dask-address/--dask-workers were given."""
    if getattr(args, "dask_address", None) or getattr(args, "dask_workers", None):
        return flow.with_options(task_runner=task_runner(args.dask_address, args.dask_workers))
    return flow


def nothing_to_do(what: str) -> int:
    """Say that a rerun has nothing to do, found before any flow (and Prefect's API) started."""
    print(f"nothing to do: {what} (--force redoes them)")
    return 0


def report_partial_failure(exc: PartialFailure) -> int:
    """The totals on stdout, then each failed input once on stderr, one line each; exit code 1."""
    print(exc.summary.text(failures=False))
    print(f"error: {exc}; fix them and rerun (done files are skipped):", file=sys.stderr)
    for report in exc.summary.failed:  # naming the input and what went wrong
        print(f"  {report['error']}", file=sys.stderr)
    return 1


def run_and_report(call: Callable[[], Any], output_hint: str | Callable[[], str]) -> int:
    """Call a flow; print its summary (and the failed inputs); 1 when any input failed, else 0."""
    try:
        summary = call()
    except PartialFailure as exc:
        return report_partial_failure(exc)
    print(summary.text())
    print(f"\n{output_hint() if callable(output_hint) else output_hint}")
    return 0
