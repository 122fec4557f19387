"""Prefect task: make sure a demo model exists (trains it on the bundled samples when missing).

Tested in `tests/biomodels/training/test_demo_models.py`.
"""

from __future__ import annotations

from prefect import task

from biomodels.training.demo_models import ensure_demo_model


@task(name="demo-model", task_run_name="demo {task_name} model")
def demo_model_task(task_name: str, out_dir: str) -> dict:
    return ensure_demo_model(task_name, out_dir)
