"""Prefect task: pretrain one encoder (wiring only; logic in biomodels.training.pretrain).

Tested in `tests/biomodels/training/test_pretrain.py`.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from biomodels.training.config import build_config
from biomodels.training.pretrain import pretrain


@task(name="pretrain-encoder", task_run_name="pretrain {model} -> {out}")
def pretrain_task(
    inputs: list[str],
    out: str,
    model: str = "scratch",
    config_overrides: dict[str, Any] | None = None,
    config_file: str | None = None,
    resume: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Inputs and settings in, the run's summary out. No retries: rerun with --resume."""
    config = build_config(config_file, config_overrides or {})
    return pretrain(inputs, out, config, model=model, resume=resume, command=command).as_dict()
