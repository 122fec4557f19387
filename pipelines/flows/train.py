"""The train flow: one training task, then a table artifact of the final dev metrics.

Tested in `tests/biomodels/training/test_api.py`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.train import train_model_task


def metric_rows(task: str, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (scope, precision/recall/F1 or EM/F1, support) of the final dev metrics."""
    if not metrics:
        return []
    if task == "qa":
        return [
            {
                "scope": "overall",
                "exact_match": round(metrics["exact_match"], 2),
                "f1": round(metrics["f1"], 2),
                "support": metrics["total"],
            }
        ]
    per = metrics.get("per_type") if task == "ner" else metrics.get("per_class")
    overall = {
        "scope": "overall (micro)",
        "precision": round(metrics["precision"], 4),
        "recall": round(metrics["recall"], 4),
        "f1": round(metrics["f1"], 4),
        "support": metrics.get("n_gold", metrics.get("tp", 0) + metrics.get("fn", 0)),
    }
    rows = [overall]
    for label, row in (per or {}).items():
        rows.append(
            {
                "scope": label,
                "precision": round(row["precision"], 4),
                "recall": round(row["recall"], 4),
                "f1": round(row["f1"], 4),
                "support": row["support"],
            }
        )
    return rows


@flow(name="train")
def train_flow(
    task: str,
    model: str,
    train: list[str],
    dev: list[str] | None,
    out: str,
    config_overrides: dict[str, Any] | None = None,
    config_file: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train a `task` model and publish its dev metrics (artifact key `train-metrics`)."""
    from prefect.artifacts import create_table_artifact

    outcome = train_model_task(
        task, model, list(train), list(dev or []), out, config_overrides or {}, config_file, resume
    )
    rows = metric_rows(task, outcome["dev_metrics"])
    if rows:
        create_table_artifact(table=rows, key="train-metrics", description=f"{task} dev metrics of {out}")
    get_run_logger().info("trained %s model in %s: %s", task, out, outcome["headline"] or "no dev set")
    return outcome
