"""Which Prefect task runner a flow uses: threads by default, a Dask cluster when asked.

`--dask-address tcp://host:8786` runs the mapped tasks on an existing Dask cluster;
`--dask-workers N` starts a local one with N worker processes. Output is the same either way:
every task writes its own shard atomically, and the flow body does the rest.

Tested in `tests/pipelines/flows/test_annotate.py`.
"""

from __future__ import annotations

from typing import Any

from corpora.errors import ConfigError
from corpora.preprocess.main_guard import check_main_guard


def task_runner(dask_address: str | None = None, dask_workers: int | None = None, threads: int | None = None) -> Any:
    """A task runner for `flow.with_options(task_runner=...)`."""
    # prefect is imported here, not at the top: the CLI imports this module, and `--help` stays fast
    from prefect.task_runners import ThreadPoolTaskRunner

    if dask_address and dask_workers:
        raise ConfigError("give either --dask-address or --dask-workers, not both")
    if dask_address or dask_workers:
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:  # the `dask` extra is not installed
            raise ConfigError("Dask scale-out needs the dask extra: pip install 'biomed-pipelines[dask]'") from exc
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        if dask_workers < 1:
            raise ConfigError(f"--dask-workers must be at least 1, got {dask_workers}")
        import dask

        check_main_guard(dask.config.get("distributed.worker.multiprocessing-method"), "a local Dask cluster")
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": dask_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    return ThreadPoolTaskRunner(max_workers=threads)
