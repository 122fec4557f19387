"""Prefect task: train one model (wiring only; logic in biomodels.training.api).

Tested in `tests/biomodels/training/test_api.py`.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from biomodels.training.api import train
from biomodels.training.config import build_config


@task(name="train-model", task_run_name="train {task} from {model} -> {out}")
def train_model_task(
    task: str,
    model: str,
    train_paths: list[str],
    dev_paths: list[str],
    out: str,
    config_overrides: dict[str, Any] | None = None,
    config_file: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Paths and settings in, the run's summary (output directory, steps, dev metrics) out.

    No retries: a failed training run is a bug or bad input, and a rerun with --resume is the
    user's decision.
    """
    config = build_config(config_file, config_overrides or {})
    return train(task, model, train_paths, dev_paths or None, out, config, resume=resume).as_dict()
