"""The pretrain flow: one pretraining task, then artifacts of the held-out metrics and the curve.

Tested in `tests/biomodels/training/test_pretrain.py`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.pretrain import pretrain_task


@flow(name="pretrain")
def pretrain_flow(
    inputs: list[str],
    out: str,
    model: str = "scratch",
    config_overrides: dict[str, Any] | None = None,
    config_file: str | None = None,
    resume: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Pretrain an encoder; publish its held-out MLM metrics (artifact key `pretrain-metrics`)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    outcome = pretrain_task(list(inputs), out, model, config_overrides or {}, config_file, resume, command)
    held = outcome["held_out"]
    if held:
        rows = [{"metric": k, "value": round(v, 4)} for k, v in held.items()]
        create_table_artifact(table=rows, key="pretrain-metrics", description=f"held-out MLM metrics of {out}")
    if outcome["plot_path"]:
        create_markdown_artifact(
            markdown=f"Training curve: `{outcome['plot_path']}` ({outcome['global_step']} steps)",
            key="pretrain-curve",
        )
    get_run_logger().info("pretrained %s in %s: %s", model, out, held or "no held-out text")
    return outcome
